// The 0-RTT TCP Convert Protocol (RFC 8803, "Convert"), version 1: the message codec.
//
// A Convert message is what a client writes at the very start of its bytestream to a Transport
// Converter (ideally in the payload of its SYN), and what the Converter writes back at the start
// of its own bytestream: a 32-bit fixed header followed by TLVs. Everything after `Total Length`
// words is the application's data. The codec is sans-IO: bytes in, a representation out (or a
// typed drop reason with the Error code that goes on the wire); a representation in, bytes out.
//
// Sections are RFC 8803's: §4.1 the fixed header, §4.2.1 the generic TLV, §4.2.3 Info, §4.2.4
// Supported TCP Extensions, §4.2.5 Connect, §4.2.6 Extended TCP Header, §4.2.7 Cookie, §4.2.8
// Error. Checked against stored copies: the numbers (the IANA "TCP Convert Protocol (Convert)
// Parameters" registry) and the Error TLV figures (the plain one, and the one whose Value is a
// zero byte and an echo of the message). The stored copies of the RFC's prose reachable from
// here stop at its first page, so the sentences quoted below are the RFC's wording as known, not
// re-read; where they and the RFC differ, the RFC wins.
//
// Numbers (IANA registry): versions 0 Reserved, 1 Assigned; TLVs 1 Info, 10 Connect,
// 20 Extended TCP Header, 21 Supported TCP Extension, 22 Cookie, 30 Error; errors
// 0 Unsupported Version, 1 Malformed Message, 2 Unsupported Message, 3 Missing Cookie,
// 32 Not Authorized, 33 Unsupported TCP Option, 64 Resource Exceeded, 65 Network Failure,
// 96 Connection Reset, 97 Destination Unreachable.
import { CounterSet } from '../ip/counters.js';
import { formatIpAddress, type IpFamily, parseIpAddress } from '../ip/address.js';

// RFC 8803 §4.1, The Convert Fixed Header:
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |    Version    |  Total Length |          Unassigned           |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// "This document specifies version 1. Version 0 is reserved by this document and MUST NOT be
// used." "The Total Length is the number of 32-bit words, including the header, of the
// bytestream that are consumed by the Convert messages. Since Total Length is also an 8-bit
// unsigned integer, those messages cannot consume more than 1020 bytes of data." "A Total
// Length of zero is invalid and the connection MUST be reset upon reception of a header with
// such total length." "The Unassigned field MUST be set to zero in this version of the protocol."

/** The version this codec speaks (RFC 8803 §4.1). */
export const CONVERT_VERSION = 1;
/** Bytes of the fixed header. */
export const CONVERT_HEADER_LEN = 4;
/** Total Length and TLV Length count 32-bit words. */
export const CONVERT_WORD = 4;
/** 255 words: the most a Convert message can consume of the bytestream. */
export const CONVERT_MAX_LEN = 255 * CONVERT_WORD;
export const CONVERT_OFF_VERSION = 0;
export const CONVERT_OFF_TOTAL_LENGTH = 1;
export const CONVERT_OFF_UNASSIGNED = 2;

/**
 * mptun's choice, not RFC 8803's: a client keeps a few connections to its concentrator open
 * ahead of its apps (each app connection then waits one round trip, not two). The concentrator
 * waits this long for the first byte of a connection before closing it; the client replaces a
 * pooled connection unused for CONVERT_POOL_MAX_AGE_MS, well inside it.
 */
export const CONVERT_IDLE_TIMEOUT_MS = 60_000;
export const CONVERT_POOL_MAX_AGE_MS = 30_000;

// RFC 8803 §4.2.1, the generic Convert TLV:
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |     Type      |     Length    |             Value ...         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   //                              ...                            //
//
// Length is in 32-bit words and covers the Type and Length octets: every TLV is a multiple of
// four bytes and TLVs are aligned on 32-bit boundaries.
export const TLV_OFF_TYPE = 0;
export const TLV_OFF_LENGTH = 1;
export const TLV_HEADER_LEN = 2;

/** RFC 8803 §4.2.3 Info TLV (a client asks which TCP extensions the Converter supports). */
export const CONVERT_TLV_INFO = 1;
/** RFC 8803 §4.2.5 Connect TLV (the destination). */
export const CONVERT_TLV_CONNECT = 10;
/** RFC 8803 §4.2.6 Extended TCP Header TLV (the Converter returns to the client the extended header of the server's SYN+ACK). */
export const CONVERT_TLV_EXTENDED_TCP_HEADER = 20;
/** RFC 8803 §4.2.4 Supported TCP Extensions TLV (IANA: "Supported TCP Extension TLV") (the Converter's answer to Info). */
export const CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS = 21;
/** RFC 8803 §4.2.7 Cookie TLV (an opaque value that proves the client may use the Converter). */
export const CONVERT_TLV_COOKIE = 22;
/** RFC 8803 §4.2.8 Error TLV. */
export const CONVERT_TLV_ERROR = 30;

// RFC 8803 §4.2.8, the Error TLV and its codes (IANA "Convert Errors"):
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |  Type=0x1E    |     Length    |  Error Code   |  Value        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   //                     ... (optional) Value                    //
//
// The codes are grouped by who is at fault (IANA note): 0-31 message validation and processing
// errors, 32-63 client-side errors, 64-95 Transport Converter-side errors, 96-127 errors caused by
// the destination server. What each code's Value holds (§4.2.8) is written next to it.

/** Unsupported Version. Value: the version(s) the Converter supports, one octet each (here: 1). */
export const CONVERT_ERR_UNSUPPORTED_VERSION = 0;
/**
 * Malformed Message: the message could not be parsed and validated (bad lengths, a truncated TLV,
 * a Connect TLV "enclosing a multicast, broadcast, or loopback IP address"). Value: a zero octet,
 * then the received message (§4.2.8: "the Value field MUST echo the received message shifted by
 * one byte to keep to original alignment of the message"); see `errorEcho`.
 */
export const CONVERT_ERR_MALFORMED_MESSAGE = 1;
/** Unsupported Message: a TLV type the Converter does not support. Value: as Malformed Message's, the echo. */
export const CONVERT_ERR_UNSUPPORTED_MESSAGE = 2;
/** Missing Cookie: the Converter requires a Cookie TLV and the Connect came without one. */
export const CONVERT_ERR_MISSING_COOKIE = 3;
/** Not Authorized: "administratively prohibited, authorization failure, or invalid Cookie TLV"; Value zero. */
export const CONVERT_ERR_NOT_AUTHORIZED = 32;
/** Unsupported TCP Option: a TCP option the client asked the Converter to use towards the server cannot be used. Value: the Kinds, one octet each. */
export const CONVERT_ERR_UNSUPPORTED_TCP_OPTION = 33;
/** Resource Exceeded: the Converter lacks the resources for the request. Value: the delay in seconds the client SHOULD wait (0: a default of at least 30 s). */
export const CONVERT_ERR_RESOURCE_EXCEEDED = 64;
/** Network Failure: the Converter cannot relay the request. Value: a delay, as Resource Exceeded's. */
export const CONVERT_ERR_NETWORK_FAILURE = 65;
/** Connection Reset: "the final destination responded with a RST segment"; Value zero. */
export const CONVERT_ERR_CONNECTION_RESET = 96;
/** Destination Unreachable: an ICMP destination unreachable came back; "The Value field MUST echo the Code field of the received ICMP message." */
export const CONVERT_ERR_DESTINATION_UNREACHABLE = 97;

/** The names of the Error codes, as the RFC and the IANA registry write them. */
export const CONVERT_ERROR_NAMES: Readonly<Record<number, string>> = {
  [CONVERT_ERR_UNSUPPORTED_VERSION]: 'Unsupported Version',
  [CONVERT_ERR_MALFORMED_MESSAGE]: 'Malformed Message',
  [CONVERT_ERR_UNSUPPORTED_MESSAGE]: 'Unsupported Message',
  [CONVERT_ERR_MISSING_COOKIE]: 'Missing Cookie',
  [CONVERT_ERR_NOT_AUTHORIZED]: 'Not Authorized',
  [CONVERT_ERR_UNSUPPORTED_TCP_OPTION]: 'Unsupported TCP Option',
  [CONVERT_ERR_RESOURCE_EXCEEDED]: 'Resource Exceeded',
  [CONVERT_ERR_NETWORK_FAILURE]: 'Network Failure',
  [CONVERT_ERR_CONNECTION_RESET]: 'Connection Reset',
  [CONVERT_ERR_DESTINATION_UNREACHABLE]: 'Destination Unreachable',
};

export function convertErrorName(code: number): string {
  return CONVERT_ERROR_NAMES[code] ?? `error ${code}`;
}

// Connect TLV, RFC 8803 §4.2.5:
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |  Type=0xA     |     Length    |      Remote Peer Port         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                                                               |
//   |           Remote Peer IP Address (128 bits)                   |
//   |                                                               |
//   |                                                               |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   /                      TCP Options (Variable)                   /
//   /                              ...                              /
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// "The Remote Peer IP Address MUST be encoded as an IPv6 address. IPv4 addresses MUST be encoded
// using the IPv4-mapped IPv6 address format defined in [RFC4291]." The TCP Options field holds
// TCP options (Kind, Length, ...) that the client asks the Converter to use towards the server,
// padded to a 32-bit boundary.
export const CONNECT_OFF_PORT = 2;
export const CONNECT_OFF_ADDRESS = 4;
export const CONNECT_OFF_TCP_OPTIONS = 20;
/** A Connect TLV without TCP options: 5 words. */
export const CONNECT_MIN_LEN = 20;

// Info (§4.2.3), Supported TCP Extensions (§4.2.4), Extended TCP Header (§4.2.6) and Cookie
// (§4.2.7) all start with a 16-bit Unassigned/Zero field after Type and Length:
//
//   |     Type      |     Length    |          Unassigned           |
//   /            Kinds / Returned Extended TCP header / Opaque Value /
//
// Info is that one word only. Supported TCP Extensions lists one TCP option Kind per octet,
// padded with zeros. The Cookie's value is opaque to the protocol (the Converter's own format:
// src/convert/cookie.ts for mptun's).
export const TLV_OFF_ZERO = 2;
export const TLV_OFF_BODY = 4;

/**
 * Why a Convert message was refused. Each is a counter name; `CONVERT_DROP_ERROR[reason]` is
 * the Error code that goes back to the sender.
 */
export const CONVERT_DROP_REASONS = [
  /** A version other than 1 (RFC 8803 §4.1): Unsupported Version. */
  'convertBadVersion',
  /** Total Length of zero (RFC 8803 §4.1): no Error TLV, the connection is reset. */
  'convertZeroTotalLength',
  /** A TLV of Length zero, or one that runs past Total Length. */
  'convertBadTlvLength',
  /** A known TLV whose Length is too short for its fixed fields (a Connect under 5 words, an Error under 1 word ...). */
  'convertTlvTooShort',
  /** A TLV type that this codec does not know: Unsupported Message. */
  'convertUnknownTlv',
] as const;

export type ConvertDropReason = (typeof CONVERT_DROP_REASONS)[number];

/**
 * The Error code that answers each drop reason; `null`: no answer, the connection is reset
 * (RFC 8803 §4.1: "A Total Length of zero is invalid and the connection MUST be reset upon
 * reception of a header with such total length.").
 */
export const CONVERT_DROP_ERROR: Readonly<Record<ConvertDropReason, number | null>> = {
  convertBadVersion: CONVERT_ERR_UNSUPPORTED_VERSION,
  convertZeroTotalLength: null,
  convertBadTlvLength: CONVERT_ERR_MALFORMED_MESSAGE,
  convertTlvTooShort: CONVERT_ERR_MALFORMED_MESSAGE,
  convertUnknownTlv: CONVERT_ERR_UNSUPPORTED_MESSAGE,
};

export const CONVERT_COUNTER_NAMES = [...CONVERT_DROP_REASONS, 'convertParsed', 'convertIncomplete', 'convertEmitted'] as const;
export type ConvertCounterName = (typeof CONVERT_COUNTER_NAMES)[number];

export class ConvertCounters extends CounterSet<ConvertCounterName> {
  constructor() {
    super(CONVERT_COUNTER_NAMES);
  }
}

/** One TLV, as a plain representation. */
export type ConvertTlv =
  | { type: typeof CONVERT_TLV_INFO }
  | { type: typeof CONVERT_TLV_CONNECT; port: number; /** 16 bytes, IPv4 as ::ffff:a.b.c.d */ address: Uint8Array; tcpOptions: Uint8Array }
  | { type: typeof CONVERT_TLV_EXTENDED_TCP_HEADER; tcpHeader: Uint8Array }
  | { type: typeof CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS; kinds: number[] }
  | { type: typeof CONVERT_TLV_COOKIE; value: Uint8Array }
  | { type: typeof CONVERT_TLV_ERROR; code: number; /** at least one byte: the 8-bit Value and any optional bytes after it */ value: Uint8Array };

/** A Convert message: the fixed header's version and the TLVs, in order. */
export interface ConvertMessage {
  version: number;
  tlvs: ConvertTlv[];
}

/** What `parseConvert` found at the start of a bytestream. */
export type ConvertParse =
  /** Not all of the message is there yet: read until `need` bytes are buffered. */
  | { kind: 'incomplete'; need: number }
  /** Refused: answer with an Error TLV of `error` and close, or (`error` null) reset the connection. */
  | { kind: 'drop'; reason: ConvertDropReason; error: number | null }
  /** A whole message, `length` bytes of the bytestream; the application's data follows. */
  | { kind: 'message'; message: ConvertMessage; length: number };

/**
 * A checked view of a Convert message at the start of `buf`: the fixed header has been read,
 * all `totalLength` words are there, and every TLV's Length stays inside them.
 */
export class ConvertView {
  private constructor(readonly buf: Uint8Array, readonly offset: number) {}

  /** The view, or what is wrong: a drop reason, or the byte count still needed. */
  static check(buf: Uint8Array, offset = 0): ConvertView | ConvertDropReason | { need: number } {
    const avail = buf.length - offset;
    if (avail < CONVERT_HEADER_LEN) return { need: CONVERT_HEADER_LEN };
    // RFC 8803 §4.1: "Version 0 is reserved by this document and MUST NOT be used."; this codec speaks 1.
    if (buf[offset + CONVERT_OFF_VERSION] !== CONVERT_VERSION) return 'convertBadVersion';
    const words = buf[offset + CONVERT_OFF_TOTAL_LENGTH];
    // RFC 8803 §4.1: "A Total Length of zero is invalid and the connection MUST be reset upon
    // reception of a header with such total length."
    if (words === 0) return 'convertZeroTotalLength';
    const total = words * CONVERT_WORD;
    if (avail < total) return { need: total };
    let at = offset + CONVERT_HEADER_LEN;
    const end = offset + total;
    while (at < end) {
      if (end - at < TLV_HEADER_LEN) return 'convertBadTlvLength';
      const len = buf[at + TLV_OFF_LENGTH] * CONVERT_WORD;
      if (len === 0 || at + len > end) return 'convertBadTlvLength';
      at += len;
    }
    return new ConvertView(buf, offset);
  }

  get version(): number {
    return this.buf[this.offset + CONVERT_OFF_VERSION];
  }

  /** Total Length in 32-bit words. */
  get totalLength(): number {
    return this.buf[this.offset + CONVERT_OFF_TOTAL_LENGTH];
  }

  /** Bytes of the bytestream this message consumes. */
  get byteLength(): number {
    return this.totalLength * CONVERT_WORD;
  }

  get unassigned(): number {
    return (this.buf[this.offset + CONVERT_OFF_UNASSIGNED] << 8) | this.buf[this.offset + CONVERT_OFF_UNASSIGNED + 1];
  }

  /** Each TLV's type and the bytes it covers (Type and Length included), in order. */
  *tlvs(): Generator<{ type: number; bytes: Uint8Array }> {
    let at = this.offset + CONVERT_HEADER_LEN;
    const end = this.offset + this.byteLength;
    while (at < end) {
      const len = this.buf[at + TLV_OFF_LENGTH] * CONVERT_WORD;
      yield { type: this.buf[at + TLV_OFF_TYPE], bytes: this.buf.subarray(at, at + len) };
      at += len;
    }
  }
}

function u16(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

/** One TLV's representation from its bytes (Type and Length included), or why not. */
export function parseTlv(type: number, b: Uint8Array): ConvertTlv | ConvertDropReason {
  switch (type) {
    case CONVERT_TLV_INFO:
      return { type };
    case CONVERT_TLV_CONNECT:
      if (b.length < CONNECT_MIN_LEN) return 'convertTlvTooShort';
      return { type, port: u16(b, CONNECT_OFF_PORT), address: b.subarray(CONNECT_OFF_ADDRESS, CONNECT_OFF_ADDRESS + 16), tcpOptions: b.subarray(CONNECT_OFF_TCP_OPTIONS) };
    case CONVERT_TLV_EXTENDED_TCP_HEADER:
      if (b.length < TLV_OFF_BODY) return 'convertTlvTooShort';
      return { type, tcpHeader: b.subarray(TLV_OFF_BODY) };
    case CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS: {
      if (b.length < TLV_OFF_BODY) return 'convertTlvTooShort';
      const kinds: number[] = [];
      // The list is padded with zeros (Kind 0 is End of Option List, never a supported extension;
      // §4.2.4: Kinds 0, 1 and 2 "MUST NOT appear in this list", so a 1 or 2 is read but means nothing).
      for (let i = TLV_OFF_BODY; i < b.length; i++) if (b[i] !== 0) kinds.push(b[i]);
      return { type, kinds };
    }
    case CONVERT_TLV_COOKIE:
      if (b.length < TLV_OFF_BODY) return 'convertTlvTooShort';
      return { type, value: b.subarray(TLV_OFF_BODY) };
    case CONVERT_TLV_ERROR:
      // Type, Length, Error Code and the 8-bit Value make the smallest Error TLV: one word.
      return { type, code: b[2], value: b.subarray(3) };
    default:
      return 'convertUnknownTlv';
  }
}

/**
 * Parses the Convert message at the start of a bytestream. Never throws: malformed input is a
 * drop reason (counted in `counters` when given) with the Error code to answer.
 */
export function parseConvert(buf: Uint8Array, counters?: ConvertCounters): ConvertParse {
  const v = ConvertView.check(buf);
  if (typeof v === 'string') return drop(v, counters);
  if (!(v instanceof ConvertView)) {
    counters?.increment('convertIncomplete');
    return { kind: 'incomplete', need: v.need };
  }
  const tlvs: ConvertTlv[] = [];
  for (const { type, bytes } of v.tlvs()) {
    const tlv = parseTlv(type, bytes);
    if (typeof tlv === 'string') return drop(tlv, counters);
    tlvs.push(tlv);
  }
  counters?.increment('convertParsed');
  return { kind: 'message', message: { version: v.version, tlvs }, length: v.byteLength };
}

function drop(reason: ConvertDropReason, counters?: ConvertCounters): ConvertParse {
  counters?.increment(reason);
  return { kind: 'drop', reason, error: CONVERT_DROP_ERROR[reason] };
}

const pad4 = (n: number): number => (n + 3) & ~3;

/** Bytes of one TLV on the wire (a multiple of four). */
export function tlvBufferLen(tlv: ConvertTlv): number {
  switch (tlv.type) {
    case CONVERT_TLV_INFO:
      return 4;
    case CONVERT_TLV_CONNECT:
      return CONNECT_MIN_LEN + pad4(tlv.tcpOptions.length);
    case CONVERT_TLV_EXTENDED_TCP_HEADER:
      return TLV_OFF_BODY + pad4(tlv.tcpHeader.length);
    case CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS:
      return TLV_OFF_BODY + pad4(tlv.kinds.length);
    case CONVERT_TLV_COOKIE:
      return TLV_OFF_BODY + pad4(tlv.value.length);
    case CONVERT_TLV_ERROR:
      return pad4(3 + Math.max(1, tlv.value.length));
  }
}

/** Bytes of the whole message (header and TLVs). */
export function convertBufferLen(msg: ConvertMessage): number {
  let n = CONVERT_HEADER_LEN;
  for (const tlv of msg.tlvs) n += tlvBufferLen(tlv);
  return n;
}

/** A message that cannot be emitted (too long for Total Length, a port or Kind out of range). */
export class ConvertEmitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConvertEmitError';
  }
}

/**
 * Writes `msg` into `buf` at `offset` (room for `convertBufferLen(msg)` bytes); returns the byte
 * count. Padding is written as zeros, Unassigned fields as zero.
 */
export function emitConvert(msg: ConvertMessage, buf: Uint8Array, offset = 0, counters?: ConvertCounters): number {
  const total = convertBufferLen(msg);
  if (total > CONVERT_MAX_LEN) throw new ConvertEmitError(`a Convert message is at most ${CONVERT_MAX_LEN} bytes, this one is ${total}`);
  if (buf.length - offset < total) throw new ConvertEmitError(`emitConvert: ${total} bytes do not fit in ${buf.length - offset}`);
  buf.fill(0, offset, offset + total);
  buf[offset + CONVERT_OFF_VERSION] = msg.version;
  buf[offset + CONVERT_OFF_TOTAL_LENGTH] = total / CONVERT_WORD;
  let at = offset + CONVERT_HEADER_LEN;
  for (const tlv of msg.tlvs) {
    const len = tlvBufferLen(tlv);
    buf[at + TLV_OFF_TYPE] = tlv.type;
    buf[at + TLV_OFF_LENGTH] = len / CONVERT_WORD;
    switch (tlv.type) {
      case CONVERT_TLV_INFO:
        break;
      case CONVERT_TLV_CONNECT:
        if (!Number.isInteger(tlv.port) || tlv.port < 0 || tlv.port > 0xffff) throw new ConvertEmitError(`bad port ${tlv.port}`);
        if (tlv.address.length !== 16) throw new ConvertEmitError('the Connect TLV address is 16 bytes (IPv4 as IPv4-mapped IPv6)');
        buf[at + CONNECT_OFF_PORT] = tlv.port >> 8;
        buf[at + CONNECT_OFF_PORT + 1] = tlv.port & 0xff;
        buf.set(tlv.address, at + CONNECT_OFF_ADDRESS);
        buf.set(tlv.tcpOptions, at + CONNECT_OFF_TCP_OPTIONS);
        break;
      case CONVERT_TLV_EXTENDED_TCP_HEADER:
        buf.set(tlv.tcpHeader, at + TLV_OFF_BODY);
        break;
      case CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS:
        tlv.kinds.forEach((k, i) => {
          // RFC 8803 §4.2.4: "TCP option Kinds 0, 1, and 2 defined in [RFC0793] are supported by all
          // TCP implementations and thus MUST NOT appear in this list."
          if (!Number.isInteger(k) || k < 3 || k > 255) throw new ConvertEmitError(`TCP option Kind ${k} cannot be in a Supported TCP Extensions TLV`);
          buf[at + TLV_OFF_BODY + i] = k;
        });
        break;
      case CONVERT_TLV_COOKIE:
        buf.set(tlv.value, at + TLV_OFF_BODY);
        break;
      case CONVERT_TLV_ERROR:
        buf[at + 2] = tlv.code;
        buf.set(tlv.value, at + 3);
        break;
    }
    at += len;
  }
  counters?.increment('convertEmitted');
  return total;
}

/** `emitConvert` into a new buffer of the right size. */
export function encodeConvert(msg: ConvertMessage, counters?: ConvertCounters): Buffer {
  const out = Buffer.alloc(convertBufferLen(msg));
  emitConvert(msg, out, 0, counters);
  return out;
}

// Addresses in the Connect TLV.

const V4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** The 16 bytes of the Connect TLV for an address of either family (IPv4 → ::ffff:a.b.c.d). */
export function connectAddressBytes(address: string | Uint8Array): Uint8Array {
  const bytes = typeof address === 'string' ? parseIpAddress(address).bytes : address;
  if (bytes.length === 16) return Uint8Array.from(bytes);
  if (bytes.length !== 4) throw new ConvertEmitError(`an address has 4 or 16 bytes, got ${bytes.length}`);
  const out = new Uint8Array(16);
  out.set(V4_MAPPED_PREFIX, 0);
  out.set(bytes, 12);
  return out;
}

/** The destination named by 16 Connect bytes: an IPv4-mapped address is IPv4. */
export function connectDestination(address16: Uint8Array): { family: IpFamily; bytes: Uint8Array; text: string } {
  const mapped = V4_MAPPED_PREFIX.every((b, i) => address16[i] === b);
  const bytes = mapped ? address16.subarray(12, 16) : address16.subarray(0, 16);
  return { family: mapped ? 4 : 6, bytes, text: formatIpAddress(bytes) };
}

// What a client and a Converter exchange, in one call each.

export interface ConnectRequest {
  /** The destination's address (text, or 4/16 bytes). */
  address: string | Uint8Array;
  port: number;
  /** The Cookie TLV's opaque value, when the Converter wants one. */
  cookie?: Uint8Array;
  /** TCP options to ask the Converter to use towards the destination (rarely needed). */
  tcpOptions?: Uint8Array;
}

/** The message a client writes first (in its SYN when it can): header, Connect, and the Cookie. */
export function encodeConnect(dst: string | Uint8Array, port: number, cookie?: Uint8Array): Buffer {
  return encodeConnectRequest({ address: dst, port, cookie });
}

export function encodeConnectRequest(req: ConnectRequest): Buffer {
  const tlvs: ConvertTlv[] = [{ type: CONVERT_TLV_CONNECT, port: req.port, address: connectAddressBytes(req.address), tcpOptions: req.tcpOptions ?? new Uint8Array(0) }];
  if (req.cookie) tlvs.push({ type: CONVERT_TLV_COOKIE, value: req.cookie });
  return encodeConvert({ version: CONVERT_VERSION, tlvs });
}

/** The most of a received message an Error TLV can echo: a reply has at most 1020 bytes, less its header (4), the Error TLV's Type, Length and Error Code (3) and the zero octet (1). */
export const ERROR_ECHO_MAX = CONVERT_MAX_LEN - CONVERT_HEADER_LEN - 4;

/**
 * The Value of a Malformed Message (1) or Unsupported Message (2) Error TLV: RFC 8803 §4.2.8, "To
 * ease troubleshooting, the Value field MUST echo the received message shifted by one byte to
 * keep to original alignment of the message" (the figure: Error Code, a zero octet, then the
 * echo). `received` is the Convert message as it came (header included); what does not fit in
 * one reply is cut.
 */
export function errorEcho(received: Uint8Array): Uint8Array {
  const n = Math.min(received.length, ERROR_ECHO_MAX);
  const out = new Uint8Array(1 + n);
  out.set(received.subarray(0, n), 1);
  return out;
}

/**
 * The Converter's reply: the header alone (the destination accepted), or the header and an Error
 * TLV whose Value is one octet (`value` a number; zero when not given) or the bytes given.
 */
export function encodeReply(error?: { code: number; value?: number | Uint8Array }): Buffer {
  const value = error?.value instanceof Uint8Array ? error.value : Uint8Array.of(error?.value ?? 0);
  const tlvs: ConvertTlv[] = error ? [{ type: CONVERT_TLV_ERROR, code: error.code, value }] : [];
  return encodeConvert({ version: CONVERT_VERSION, tlvs });
}

/** What the client reads back from the Converter. */
export type ConvertReply =
  | { kind: 'incomplete'; need: number }
  /** Malformed reply: the client should give up on this connection. */
  | { kind: 'drop'; reason: ConvertDropReason }
  /** The destination accepted; the bytes after `length` are the server's data. */
  | { kind: 'ok'; length: number; tlvs: ConvertTlv[] }
  /** The Converter refused or the destination failed: `code` (and `value`, e.g. the ICMP code or a retry delay). */
  | { kind: 'error'; length: number; code: number; value: number; /** the whole Value (an echo, a list of Kinds ...) */ valueBytes: Uint8Array };

export function parseReply(buf: Uint8Array, counters?: ConvertCounters): ConvertReply {
  const p = parseConvert(buf, counters);
  if (p.kind === 'incomplete') return p;
  if (p.kind === 'drop') return { kind: 'drop', reason: p.reason };
  for (const tlv of p.message.tlvs) {
    if (tlv.type === CONVERT_TLV_ERROR) return { kind: 'error', length: p.length, code: tlv.code, value: tlv.value[0] ?? 0, valueBytes: tlv.value };
  }
  return { kind: 'ok', length: p.length, tlvs: p.message.tlvs };
}

/** The request a Converter takes from a parsed message. */
export interface ConnectParsed {
  port: number;
  family: IpFamily;
  /** 4 or 16 bytes. */
  address: Uint8Array;
  text: string;
  cookie: Uint8Array | null;
  tcpOptions: Uint8Array;
  /** The options in `tcpOptions`, in order (padding left out). */
  tcpOptionList: ConnectTcpOption[];
  info: boolean;
}

/** One TCP option of a Connect TLV's TCP Options field: its Kind and Length (2: no value). */
export interface ConnectTcpOption {
  kind: number;
  length: number;
}

/**
 * The options of a Connect TLV's TCP Options field, or `null` when the field is malformed.
 * RFC 8803 §4.2.5: each option is Kind, Length (at least 2) and the value; "option types 0 (EOL)
 * and 1 (NOP) ... MUST NOT be placed inside the TCP options field of the Connect TLV"; the field
 * is padded with zeros to a 32-bit boundary (so zeros are padding only when nothing but zeros
 * follows).
 */
export function connectTcpOptions(field: Uint8Array): ConnectTcpOption[] | null {
  const out: ConnectTcpOption[] = [];
  let at = 0;
  while (at < field.length) {
    const kind = field[at];
    if (kind === 0) return field.subarray(at).every((b) => b === 0) ? out : null;
    if (kind === 1 || at + 1 >= field.length) return null;
    const length = field[at + 1];
    if (length < 2 || at + length > field.length) return null;
    out.push({ kind, length });
    at += length;
  }
  return out;
}

/**
 * The destination and cookie of a client's message, or the Error code to answer: a message with
 * no Connect TLV (or two), or with a malformed TCP Options field, is Malformed.
 */
export function connectRequest(msg: ConvertMessage): ConnectParsed | { error: number } {
  let connect: Extract<ConvertTlv, { type: typeof CONVERT_TLV_CONNECT }> | null = null;
  let cookie: Uint8Array | null = null;
  let info = false;
  for (const tlv of msg.tlvs) {
    if (tlv.type === CONVERT_TLV_CONNECT) {
      if (connect) return { error: CONVERT_ERR_MALFORMED_MESSAGE };
      connect = tlv;
    } else if (tlv.type === CONVERT_TLV_COOKIE) {
      if (cookie) return { error: CONVERT_ERR_MALFORMED_MESSAGE };
      cookie = tlv.value;
    } else if (tlv.type === CONVERT_TLV_INFO) info = true;
    // Error, Extended TCP Header and Supported TCP Extensions are the Converter's to send.
    else return { error: CONVERT_ERR_UNSUPPORTED_MESSAGE };
  }
  if (!connect) return { error: CONVERT_ERR_MALFORMED_MESSAGE };
  const tcpOptionList = connectTcpOptions(connect.tcpOptions);
  if (!tcpOptionList) return { error: CONVERT_ERR_MALFORMED_MESSAGE };
  const d = connectDestination(connect.address);
  return { port: connect.port, family: d.family, address: d.bytes, text: d.text, cookie, tcpOptions: connect.tcpOptions, tcpOptionList, info };
}
