// IPv4 header (RFC 791 §3.1): a view over a Buffer and a plain representation (CONVENTIONS.md 1).
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |Version|  IHL  |    DSCP   |ECN|          Total Length         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |         Identification        |Flags|      Fragment Offset    |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |  Time to Live |    Protocol   |         Header Checksum       |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                       Source Address                          |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                    Destination Address                        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                    Options                    |    Padding    |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// (The TOS octet of RFC 791 is DSCP + ECN since RFC 2474 §3 and RFC 3168 §5.)

import { internetChecksum, verifyChecksum } from './checksum.js';
import type { DropReason } from './counters.js';
import { readU32, writeU16, writeU32 } from './bytes.js';

export const IPV4_VERSION = 4;
/** The header without options: IHL = 5 words. */
export const IPV4_MIN_HEADER_LEN = 20;
/** IHL is 4 bits of 32-bit words: at most 15 words. */
export const IPV4_MAX_HEADER_LEN = 60;
export const IPV4_MAX_TOTAL_LEN = 0xffff;
export const IPV4_ADDRESS_LEN = 4;

// Field offsets (RFC 791 §3.1).
export const IPV4_OFF_VER_IHL = 0;
export const IPV4_OFF_TOS = 1;
export const IPV4_OFF_TOTAL_LEN = 2;
export const IPV4_OFF_IDENT = 4;
export const IPV4_OFF_FLAGS_FRAG = 6;
export const IPV4_OFF_TTL = 8;
export const IPV4_OFF_PROTOCOL = 9;
export const IPV4_OFF_CHECKSUM = 10;
export const IPV4_OFF_SRC = 12;
export const IPV4_OFF_DST = 16;
export const IPV4_OFF_OPTIONS = 20;

// Flags, in the 16-bit word at IPV4_OFF_FLAGS_FRAG. RFC 791: "Bit 0: reserved, must be zero;
// Bit 1: (DF) 0 = May Fragment, 1 = Don't Fragment; Bit 2: (MF) 0 = Last Fragment, 1 = More Fragments."
export const IPV4_FLAG_RESERVED = 0x8000;
export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
/** "The fragment offset is measured in units of 8 octets (64 bits)." */
export const IPV4_FRAG_OFFSET_MASK = 0x1fff;
export const IPV4_FRAG_OFFSET_UNIT = 8;

// Options (RFC 791 §3.1, "Options").
/** "End of Option list. This option occupies only 1 octet; it has no length octet." */
export const IPV4_OPT_EOL = 0;
/** "No Operation. This option occupies only 1 octet; it has no length octet." */
export const IPV4_OPT_NOP = 1;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** The TTL we put on packets we originate (Linux's default `net.ipv4.ip_default_ttl`). */
export const IPV4_DEFAULT_TTL = 64;

/**
 * Checks an IPv4 packet the way Linux's `ip_rcv_core` does and returns why it must be dropped,
 * or `null` when the header is sound. Never throws, never allocates. Trailing bytes beyond
 * Total Length are allowed and ignored ("pskb_trim_rcsum" in the kernel).
 */
export function checkIpv4(buf: Uint8Array): DropReason | null {
  const len = buf.length;
  if (len < IPV4_MIN_HEADER_LEN) return 'badLength';
  const verIhl = buf[IPV4_OFF_VER_IHL];
  if (verIhl >>> 4 !== IPV4_VERSION) return 'badVersion';
  // RFC 791: "Internet Header Length is the length of the internet header in 32 bit words ...
  // Note that the minimum value for a correct header is 5."
  const headerLen = (verIhl & 0x0f) * 4;
  if (headerLen < IPV4_MIN_HEADER_LEN) return 'badHeaderLength';
  // The options announced by IHL are not all in the buffer.
  if (headerLen > len) return 'truncatedOptions';
  // RFC 791: "Total Length is the length of the datagram, measured in octets, including
  // internet header and data."
  const totalLength = (buf[IPV4_OFF_TOTAL_LEN] << 8) | buf[IPV4_OFF_TOTAL_LEN + 1];
  if (totalLength < headerLen) return 'badHeaderLength';
  if (totalLength > len) return 'badLength';
  if (!verifyChecksum(buf, 0, headerLen)) return 'badChecksum';
  if (headerLen > IPV4_MIN_HEADER_LEN && !optionsWellFormed(buf, IPV4_OFF_OPTIONS, headerLen)) return 'truncatedOptions';
  // We do not reassemble: RFC 791 "If this is the last fragment ... the more fragments flag is
  // zero"; a whole datagram has MF = 0 and offset = 0.
  const flagsFrag = (buf[IPV4_OFF_FLAGS_FRAG] << 8) | buf[IPV4_OFF_FLAGS_FRAG + 1];
  if ((flagsFrag & (IPV4_FLAG_MF | IPV4_FRAG_OFFSET_MASK)) !== 0) return 'fragment';
  return null;
}

/**
 * Walks the option TLVs in `buf[start..end)`. RFC 791: "The option field is variable in length.
 * There may be zero or more options. There are two cases for the format of an option: Case 1:
 * A single octet of option-type. Case 2: An option-type octet, an option-length octet, and the
 * actual option-data octets. The option-length octet counts the option-type octet and the
 * option-length octet as well as the option-data octets."
 */
function optionsWellFormed(buf: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const type = buf[i];
    if (type === IPV4_OPT_EOL) return true;
    if (type === IPV4_OPT_NOP) {
      i += 1;
      continue;
    }
    if (i + 1 >= end) return false;
    const optLen = buf[i + 1];
    if (optLen < 2 || i + optLen > end) return false;
    i += optLen;
  }
  return true;
}

/**
 * A view over an IPv4 packet. Getters and setters read and write the buffer in place; the
 * buffer is never copied. Build one from untrusted bytes with `Ipv4Packet.check`, which
 * guarantees every getter stays within the buffer; the constructor only checks that the fixed
 * header fits (for builders writing into a buffer sized by `Ipv4Repr.bufferLen`).
 */
export class Ipv4Packet {
  readonly buffer: Buffer;

  constructor(buffer: Buffer) {
    if (buffer.length < IPV4_MIN_HEADER_LEN) {
      throw new RangeError(`an IPv4 header needs ${IPV4_MIN_HEADER_LEN} bytes, the buffer has ${buffer.length}`);
    }
    this.buffer = buffer;
  }

  /** The view, or the reason the packet must be dropped (see `checkIpv4`). */
  static check(buffer: Buffer): Ipv4Packet | DropReason {
    const reason = checkIpv4(buffer);
    return reason ?? new Ipv4Packet(buffer);
  }

  get version(): number {
    return this.buffer[IPV4_OFF_VER_IHL] >>> 4;
  }
  set version(v: number) {
    const b = this.buffer;
    b[IPV4_OFF_VER_IHL] = ((v & 0x0f) << 4) | (b[IPV4_OFF_VER_IHL] & 0x0f);
  }

  /** Header length in bytes (IHL × 4). */
  get headerLen(): number {
    return (this.buffer[IPV4_OFF_VER_IHL] & 0x0f) * 4;
  }
  /** Sets IHL from a length in bytes (a multiple of 4, 20 to 60). */
  set headerLen(bytes: number) {
    const b = this.buffer;
    b[IPV4_OFF_VER_IHL] = (b[IPV4_OFF_VER_IHL] & 0xf0) | ((bytes >>> 2) & 0x0f);
  }

  /** The whole former TOS octet. */
  get tos(): number {
    return this.buffer[IPV4_OFF_TOS];
  }
  set tos(v: number) {
    this.buffer[IPV4_OFF_TOS] = v & 0xff;
  }

  /** Differentiated Services Code Point (RFC 2474 §3): the upper 6 bits of the former TOS. */
  get dscp(): number {
    return this.buffer[IPV4_OFF_TOS] >>> 2;
  }
  set dscp(v: number) {
    const b = this.buffer;
    b[IPV4_OFF_TOS] = ((v & 0x3f) << 2) | (b[IPV4_OFF_TOS] & 0x03);
  }

  /** Explicit Congestion Notification (RFC 3168 §5): the lower 2 bits. */
  get ecn(): number {
    return this.buffer[IPV4_OFF_TOS] & 0x03;
  }
  set ecn(v: number) {
    const b = this.buffer;
    b[IPV4_OFF_TOS] = (b[IPV4_OFF_TOS] & 0xfc) | (v & 0x03);
  }

  get totalLength(): number {
    return (this.buffer[IPV4_OFF_TOTAL_LEN] << 8) | this.buffer[IPV4_OFF_TOTAL_LEN + 1];
  }
  set totalLength(v: number) {
    writeU16(this.buffer, IPV4_OFF_TOTAL_LEN, v);
  }

  get ident(): number {
    return (this.buffer[IPV4_OFF_IDENT] << 8) | this.buffer[IPV4_OFF_IDENT + 1];
  }
  set ident(v: number) {
    writeU16(this.buffer, IPV4_OFF_IDENT, v);
  }

  private get flagsFrag(): number {
    return (this.buffer[IPV4_OFF_FLAGS_FRAG] << 8) | this.buffer[IPV4_OFF_FLAGS_FRAG + 1];
  }
  private set flagsFrag(v: number) {
    writeU16(this.buffer, IPV4_OFF_FLAGS_FRAG, v);
  }

  get dontFragment(): boolean {
    return (this.flagsFrag & IPV4_FLAG_DF) !== 0;
  }
  set dontFragment(on: boolean) {
    this.flagsFrag = on ? this.flagsFrag | IPV4_FLAG_DF : this.flagsFrag & ~IPV4_FLAG_DF;
  }

  get moreFragments(): boolean {
    return (this.flagsFrag & IPV4_FLAG_MF) !== 0;
  }
  set moreFragments(on: boolean) {
    this.flagsFrag = on ? this.flagsFrag | IPV4_FLAG_MF : this.flagsFrag & ~IPV4_FLAG_MF;
  }

  /** Fragment offset in bytes (the field counts 8-octet units). */
  get fragmentOffset(): number {
    return (this.flagsFrag & IPV4_FRAG_OFFSET_MASK) * IPV4_FRAG_OFFSET_UNIT;
  }
  set fragmentOffset(bytes: number) {
    this.flagsFrag = (this.flagsFrag & ~IPV4_FRAG_OFFSET_MASK) | (Math.floor(bytes / IPV4_FRAG_OFFSET_UNIT) & IPV4_FRAG_OFFSET_MASK);
  }

  /** MF set or a non-zero offset: a piece of a larger datagram. */
  get isFragment(): boolean {
    return (this.flagsFrag & (IPV4_FLAG_MF | IPV4_FRAG_OFFSET_MASK)) !== 0;
  }

  get ttl(): number {
    return this.buffer[IPV4_OFF_TTL];
  }
  set ttl(v: number) {
    this.buffer[IPV4_OFF_TTL] = v & 0xff;
  }

  get protocol(): number {
    return this.buffer[IPV4_OFF_PROTOCOL];
  }
  set protocol(v: number) {
    this.buffer[IPV4_OFF_PROTOCOL] = v & 0xff;
  }

  get checksum(): number {
    return (this.buffer[IPV4_OFF_CHECKSUM] << 8) | this.buffer[IPV4_OFF_CHECKSUM + 1];
  }
  set checksum(v: number) {
    writeU16(this.buffer, IPV4_OFF_CHECKSUM, v);
  }

  /** Source address as an unsigned 32-bit number (no allocation). */
  get src(): number {
    return readU32(this.buffer, IPV4_OFF_SRC);
  }
  set src(v: number) {
    writeU32(this.buffer, IPV4_OFF_SRC, v);
  }

  /** Destination address as an unsigned 32-bit number (no allocation). */
  get dst(): number {
    return readU32(this.buffer, IPV4_OFF_DST);
  }
  set dst(v: number) {
    writeU32(this.buffer, IPV4_OFF_DST, v);
  }

  /** Source address: a 4-byte view into the packet (not a copy). */
  get srcAddress(): Buffer {
    return this.buffer.subarray(IPV4_OFF_SRC, IPV4_OFF_SRC + 4);
  }
  set srcAddress(bytes: Uint8Array) {
    this.buffer.set(bytes.subarray(0, 4), IPV4_OFF_SRC);
  }

  /** Destination address: a 4-byte view into the packet (not a copy). */
  get dstAddress(): Buffer {
    return this.buffer.subarray(IPV4_OFF_DST, IPV4_OFF_DST + 4);
  }
  set dstAddress(bytes: Uint8Array) {
    this.buffer.set(bytes.subarray(0, 4), IPV4_OFF_DST);
  }

  /** The options region, bytes 20 to IHL × 4 (empty without options). A view, not a copy. */
  get options(): Buffer {
    return this.buffer.subarray(IPV4_OFF_OPTIONS, Math.max(IPV4_OFF_OPTIONS, this.headerLen));
  }

  /** Bytes from the end of the header to Total Length: the upper-layer message. A view, not a copy. */
  get payload(): Buffer {
    return this.buffer.subarray(this.headerLen, this.totalLength);
  }

  /** The header checksum verifies (RFC 791: "The checksum field is the 16 bit one's complement of the one's complement sum of all 16 bit words in the header."). */
  verifyChecksum(): boolean {
    return verifyChecksum(this.buffer, 0, this.headerLen);
  }

  /** Computes the header checksum and writes it. RFC 791: "For purposes of computing the checksum, the value of the checksum field is zero." */
  fillChecksum(): void {
    const b = this.buffer;
    b[IPV4_OFF_CHECKSUM] = 0;
    b[IPV4_OFF_CHECKSUM + 1] = 0;
    writeU16(b, IPV4_OFF_CHECKSUM, internetChecksum(b, 0, this.headerLen));
  }
}

/**
 * The header fields that a builder sets and a parser reads, without options (we never emit
 * any, and parsing skips them: `Ipv4Packet.options` has them for whoever needs them).
 * Addresses are unsigned 32-bit numbers: comparing and hashing them costs nothing, and parsing
 * them allocates nothing. `address.ts` converts to and from text.
 */
export interface Ipv4Repr {
  version: 4;
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  /** Length of the upper-layer message (Total Length − header length). */
  payloadLen: number;
  dscp: number;
  ecn: number;
  ident: number;
  dontFragment: boolean;
}

export const Ipv4Repr = {
  /** Reads the representation of a checked packet. */
  parse(packet: Ipv4Packet): Ipv4Repr {
    return {
      version: 4,
      src: packet.src,
      dst: packet.dst,
      protocol: packet.protocol,
      ttl: packet.ttl,
      payloadLen: packet.totalLength - packet.headerLen,
      dscp: packet.dscp,
      ecn: packet.ecn,
      ident: packet.ident,
      dontFragment: packet.dontFragment,
    };
  },

  /** Bytes of the header that `emit` writes. */
  headerLen(_repr: Ipv4Repr): number {
    return IPV4_MIN_HEADER_LEN;
  },

  /** Bytes of the whole packet: header and payload. Size the output buffer with this. */
  bufferLen(repr: Ipv4Repr): number {
    return IPV4_MIN_HEADER_LEN + repr.payloadLen;
  },

  /**
   * Writes the 20-byte header, checksum included, at the start of `target`; the payload goes
   * after it (at `IPV4_MIN_HEADER_LEN`) and is the caller's. Throws a RangeError only on a
   * programming error: a buffer smaller than the header, or a payload too long for IPv4.
   */
  emit(repr: Ipv4Repr, target: Buffer | Ipv4Packet): void {
    const buf = target instanceof Ipv4Packet ? target.buffer : target;
    const totalLength = IPV4_MIN_HEADER_LEN + repr.payloadLen;
    if (totalLength > IPV4_MAX_TOTAL_LEN) throw new RangeError(`IPv4 payload of ${repr.payloadLen} bytes exceeds the 65535-byte total length`);
    if (buf.length < IPV4_MIN_HEADER_LEN) throw new RangeError(`an IPv4 header needs ${IPV4_MIN_HEADER_LEN} bytes, the buffer has ${buf.length}`);
    buf[IPV4_OFF_VER_IHL] = (IPV4_VERSION << 4) | (IPV4_MIN_HEADER_LEN >>> 2);
    buf[IPV4_OFF_TOS] = ((repr.dscp & 0x3f) << 2) | (repr.ecn & 0x03);
    writeU16(buf, IPV4_OFF_TOTAL_LEN, totalLength);
    writeU16(buf, IPV4_OFF_IDENT, repr.ident);
    writeU16(buf, IPV4_OFF_FLAGS_FRAG, repr.dontFragment ? IPV4_FLAG_DF : 0);
    buf[IPV4_OFF_TTL] = repr.ttl & 0xff;
    buf[IPV4_OFF_PROTOCOL] = repr.protocol & 0xff;
    buf[IPV4_OFF_CHECKSUM] = 0;
    buf[IPV4_OFF_CHECKSUM + 1] = 0;
    writeU32(buf, IPV4_OFF_SRC, repr.src);
    writeU32(buf, IPV4_OFF_DST, repr.dst);
    writeU16(buf, IPV4_OFF_CHECKSUM, internetChecksum(buf, 0, IPV4_MIN_HEADER_LEN));
  },
};
