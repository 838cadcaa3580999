// The TCP segment (RFC 9293 §3.1): a view over a Buffer (`TcpPacket`), a plain representation
// (`TcpRepr`), the parser of the packet path (`parseTcp`) and the builder that writes a whole
// IP + TCP packet into one buffer (`emitIpTcp`), with full or offloaded (partial) checksums and
// the virtio-net header of a TSO super-segment (CONVENTIONS.md 1).
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |          Source Port          |       Destination Port        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                        Sequence Number                        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                    Acknowledgment Number                      |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |  Data |       |C|E|U|A|P|R|S|F|                               |
//   | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//   |       |       |R|E|G|K|H|T|N|N|                               |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |           Checksum            |         Urgent Pointer        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                           [Options]                           |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                                                               :
//   :                             Data                              :
//   :                                                               |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Nothing here throws on what arrives from the network: a malformed segment is counted in
// `TcpCodecCounters` and dropped. Builders throw a RangeError only on a programming error (a
// buffer smaller than `tcpPacketLen`, options over 40 bytes).

import { readU16, readU32, writeU16, writeU32 } from '../ip/bytes.js';
import { fold, internetChecksum, pseudoHeaderSumV4, pseudoHeaderSumV6, verifyChecksum } from '../ip/checksum.js';
import { TcpCodecCounters, type TcpDropReason } from './drops.js';
import {
  IPPROTO_TCP,
  IPV4_ADDRESS_LEN,
  IPV4_FLAG_DF,
  IPV4_MAX_TOTAL_LEN,
  IPV4_MIN_HEADER_LEN,
  IPV4_OFF_CHECKSUM,
  IPV4_OFF_DST,
  IPV4_OFF_FLAGS_FRAG,
  IPV4_OFF_IDENT,
  IPV4_OFF_PROTOCOL,
  IPV4_OFF_SRC,
  IPV4_OFF_TOS,
  IPV4_OFF_TOTAL_LEN,
  IPV4_OFF_TTL,
  IPV4_OFF_VER_IHL,
  IPV4_VERSION,
  Ipv4Packet,
} from '../ip/ipv4.js';
import {
  IPV6_ADDRESS_LEN,
  IPV6_FLOW_LABEL_MASK,
  IPV6_HEADER_LEN,
  IPV6_MAX_PAYLOAD_LEN,
  IPV6_OFF_DST,
  IPV6_OFF_HOP_LIMIT,
  IPV6_OFF_NEXT_HEADER,
  IPV6_OFF_PAYLOAD_LEN,
  IPV6_OFF_SRC,
  IPV6_VERSION,
  Ipv6Packet,
} from '../ip/ipv6.js';
import { IpPacketInfo } from '../ip/packet.js';
import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VNET_HDR_NONE,
  type VnetHdr,
} from '../ip/vnet.js';
import {
  emitOptions,
  newTcpOptions,
  optionsLen,
  optionsWellFormed,
  parseOptionsAt,
  TCP_MAX_OPTIONS_LEN,
  type TcpOptions,
} from './options.js';
import type { Seq } from './seq.js';

// The options codec lives in options.ts; the segment module is the one entry point of both.
export * from './options.js';

// Sizes (RFC 9293 §3.1).
/** RFC 9293 §3.1: "Data Offset (DOffset): 4 bits. The number of 32-bit words in the TCP header." Without options it is 5 words. */
export const TCP_HEADER_LEN = 20;
/** 15 words, the most a 4-bit Data Offset can say. */
export const TCP_MAX_HEADER_LEN = TCP_HEADER_LEN + TCP_MAX_OPTIONS_LEN;
/** The unit of Data Offset: a 32-bit word. */
export const TCP_DATA_OFFSET_UNIT = 4;
/** The smallest valid Data Offset: the fixed header, 5 words. */
export const TCP_MIN_DATA_OFFSET = TCP_HEADER_LEN / TCP_DATA_OFFSET_UNIT;

// Field offsets (RFC 9293 §3.1).
export const TCP_OFF_SRC_PORT = 0;
export const TCP_OFF_DST_PORT = 2;
export const TCP_OFF_SEQ = 4;
export const TCP_OFF_ACK = 8;
/** Data Offset (high 4 bits) and Rsrvd (low 4 bits). */
export const TCP_OFF_DATA_OFFSET = 12;
/** The eight control bits. */
export const TCP_OFF_FLAGS = 13;
export const TCP_OFF_WINDOW = 14;
/** Also the virtio-net `csum_offset` of TCP: where the checksum goes, counted from the TCP header. */
export const TCP_OFF_CHECKSUM = 16;
export const TCP_OFF_URGENT = 18;
export const TCP_OFF_OPTIONS = 20;

// Control bits, in the octet at TCP_OFF_FLAGS (RFC 9293 §3.1).
/** "FIN: No more data from sender." */
export const TCP_FLAG_FIN = 0x01;
/** "SYN: Synchronize sequence numbers." */
export const TCP_FLAG_SYN = 0x02;
/** "RST: Reset the connection." */
export const TCP_FLAG_RST = 0x04;
/** "PSH: Push function (see the Send Call description in Section 3.9.1)." */
export const TCP_FLAG_PSH = 0x08;
/** "ACK: Acknowledgment field is significant." */
export const TCP_FLAG_ACK = 0x10;
/** "URG: Urgent pointer field is significant." */
export const TCP_FLAG_URG = 0x20;
/** "ECE: ECN-Echo (see [RFC3168])." */
export const TCP_FLAG_ECE = 0x40;
/** "CWR: Congestion Window Reduced (see [RFC3168])." */
export const TCP_FLAG_CWR = 0x80;
/** Every control bit. */
export const TCP_FLAGS_MASK = 0xff;
/**
 * RFC 9293 §3.1: "Rsrvd - Reserved (4 bits): A set of control bits reserved for future use.
 * Must be zero in generated segments and must be ignored in received segments if the
 * corresponding future features are not implemented by the sending or receiving host."
 */
export const TCP_RESERVED_MASK = 0x0f;

/**
 * RFC 9293 §3.7.1: "If an MSS Option is not received at connection setup, TCP implementations
 * MUST assume a default send MSS of 536 (576 - 40) for IPv4 or 1220 (1280 - 60) for IPv6
 * (MUST-15)."
 */
export const TCP_DEFAULT_MSS_V4 = 536;
export const TCP_DEFAULT_MSS_V6 = 1220;

// The codec's drop reasons and counters live in drops.ts (options.ts counts into them too).
export * from './drops.js';

/**
 * Checks the TCP segment in `buf[start..end)`: the fixed header fits, Data Offset is sane, the
 * options are well formed. Returns why it must be dropped, or `null`. Never throws, never
 * allocates. The checksum is not looked at (it needs the pseudo-header).
 */
export function checkTcp(buf: Uint8Array, start = 0, end = buf.length): TcpDropReason | null {
  const len = end - start;
  if (len < TCP_HEADER_LEN) return 'tcpTruncated';
  // RFC 9293 §3.1: "Data Offset (DOffset): 4 bits. The number of 32-bit words in the TCP
  // header. This indicates where the data begins."
  const headerLen = (buf[start + TCP_OFF_DATA_OFFSET] >>> 4) * TCP_DATA_OFFSET_UNIT;
  if (headerLen < TCP_HEADER_LEN || headerLen > len) return 'tcpBadDataOffset';
  if (headerLen > TCP_HEADER_LEN && !optionsWellFormed(buf, start + TCP_OFF_OPTIONS, start + headerLen)) return 'tcpBadOptions';
  return null;
}

/**
 * A view over a TCP segment (header, options, data) in a Buffer that holds exactly the segment
 * (the IP payload: `IpPacketInfo.payload`). Getters and setters read and write the buffer in
 * place; nothing is copied. Build one from untrusted bytes with `TcpPacket.check`, after which
 * every getter stays within the buffer; the constructor only checks that the fixed header fits
 * (for builders writing into a buffer they sized).
 */
export class TcpPacket {
  readonly buffer: Buffer;

  constructor(buffer: Buffer) {
    if (buffer.length < TCP_HEADER_LEN) {
      throw new RangeError(`a TCP header needs ${TCP_HEADER_LEN} bytes, the buffer has ${buffer.length}`);
    }
    this.buffer = buffer;
  }

  /** The view, or the reason the segment must be dropped (see `checkTcp`). */
  static check(buffer: Buffer): TcpPacket | TcpDropReason {
    return checkTcp(buffer) ?? new TcpPacket(buffer);
  }

  get srcPort(): number {
    return readU16(this.buffer, TCP_OFF_SRC_PORT);
  }
  set srcPort(v: number) {
    writeU16(this.buffer, TCP_OFF_SRC_PORT, v);
  }

  get dstPort(): number {
    return readU16(this.buffer, TCP_OFF_DST_PORT);
  }
  set dstPort(v: number) {
    writeU16(this.buffer, TCP_OFF_DST_PORT, v);
  }

  /** RFC 9293 §3.1: "The sequence number of the first data octet in this segment (except when SYN is present)." */
  get seq(): Seq {
    return readU32(this.buffer, TCP_OFF_SEQ);
  }
  set seq(v: Seq) {
    writeU32(this.buffer, TCP_OFF_SEQ, v);
  }

  /** RFC 9293 §3.1: "If the ACK control bit is set, this field contains the value of the next sequence number the sender of the segment is expecting to receive." */
  get ack(): Seq {
    return readU32(this.buffer, TCP_OFF_ACK);
  }
  set ack(v: Seq) {
    writeU32(this.buffer, TCP_OFF_ACK, v);
  }

  /** Data Offset in 32-bit words. */
  get dataOffset(): number {
    return this.buffer[TCP_OFF_DATA_OFFSET] >>> 4;
  }
  set dataOffset(words: number) {
    const b = this.buffer;
    b[TCP_OFF_DATA_OFFSET] = ((words & 0x0f) << 4) | (b[TCP_OFF_DATA_OFFSET] & TCP_RESERVED_MASK);
  }

  /** Header length in bytes, options included: Data Offset × 4. */
  get headerLen(): number {
    return this.dataOffset * TCP_DATA_OFFSET_UNIT;
  }
  set headerLen(bytes: number) {
    this.dataOffset = bytes / TCP_DATA_OFFSET_UNIT;
  }

  /** The four reserved bits (zero from a conforming sender). */
  get reserved(): number {
    return this.buffer[TCP_OFF_DATA_OFFSET] & TCP_RESERVED_MASK;
  }
  set reserved(v: number) {
    const b = this.buffer;
    b[TCP_OFF_DATA_OFFSET] = (b[TCP_OFF_DATA_OFFSET] & 0xf0) | (v & TCP_RESERVED_MASK);
  }

  /** The eight control bits (`TCP_FLAG_*`). */
  get flags(): number {
    return this.buffer[TCP_OFF_FLAGS];
  }
  set flags(v: number) {
    this.buffer[TCP_OFF_FLAGS] = v & TCP_FLAGS_MASK;
  }

  /** True when every bit of `flag` is set (`p.has(TCP_FLAG_SYN | TCP_FLAG_ACK)`). */
  has(flag: number): boolean {
    return (this.buffer[TCP_OFF_FLAGS] & flag) === flag;
  }

  /** Sets or clears the control bits of `flag`. */
  setFlag(flag: number, on: boolean): void {
    const b = this.buffer;
    b[TCP_OFF_FLAGS] = on ? b[TCP_OFF_FLAGS] | (flag & TCP_FLAGS_MASK) : b[TCP_OFF_FLAGS] & ~flag & TCP_FLAGS_MASK;
  }

  /** The raw 16-bit Window field, not scaled (RFC 7323 §2.2: scaling is the connection's business). */
  get window(): number {
    return readU16(this.buffer, TCP_OFF_WINDOW);
  }
  set window(v: number) {
    writeU16(this.buffer, TCP_OFF_WINDOW, v);
  }

  get checksum(): number {
    return readU16(this.buffer, TCP_OFF_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buffer, TCP_OFF_CHECKSUM, v);
  }

  /** RFC 9293 §3.1: "This field communicates the current value of the urgent pointer as a positive offset from the sequence number in this segment." */
  get urgent(): number {
    return readU16(this.buffer, TCP_OFF_URGENT);
  }
  set urgent(v: number) {
    writeU16(this.buffer, TCP_OFF_URGENT, v);
  }

  /** The options area, bytes 20 to Data Offset × 4 (empty without options). A view, not a copy. */
  get options(): Buffer {
    const end = this.headerLen;
    return this.buffer.subarray(TCP_OFF_OPTIONS, end > TCP_OFF_OPTIONS ? end : TCP_OFF_OPTIONS);
  }

  /** The data after the header. A view, not a copy. */
  get payload(): Buffer {
    return this.buffer.subarray(this.headerLen);
  }

  /** Parses the options into `out` (a fresh object unless one is given); see `parseOptionsAt`. */
  parseOptions(out: TcpOptions = newTcpOptions(), counters?: TcpCodecCounters): TcpOptions | TcpDropReason {
    const reason = parseOptionsAt(this.buffer, TCP_OFF_OPTIONS, this.headerLen, out, counters);
    return reason ?? out;
  }

  /**
   * The checksum verifies against the pseudo-header sum `pseudoSum` (an accumulator from
   * `pseudoHeaderSumV4/V6` or `ipPseudoHeaderSum` for a TCP length of `buffer.length`).
   *
   * RFC 9293 §3.1: "The checksum field is the 16-bit ones' complement of the ones' complement
   * sum of all 16-bit words in the header and text. ... The checksum also covers a pseudo-header
   * ... conceptually prefixed to the TCP header."
   */
  verifyChecksum(pseudoSum: number): boolean {
    return verifyChecksum(this.buffer, 0, this.buffer.length, pseudoSum);
  }

  /** Computes and writes the full checksum. RFC 9293 §3.1: "While computing the checksum, the checksum field itself is replaced with zeros." */
  fillChecksum(pseudoSum: number): void {
    const b = this.buffer;
    b[TCP_OFF_CHECKSUM] = 0;
    b[TCP_OFF_CHECKSUM + 1] = 0;
    writeU16(b, TCP_OFF_CHECKSUM, internetChecksum(b, 0, b.length, pseudoSum));
  }

  /**
   * Writes the folded pseudo-header sum, not complemented, in the checksum field: what a device
   * that completes the checksum (virtio-net NEEDS_CSUM, Linux CHECKSUM_PARTIAL) expects. The
   * device sums from the TCP header to the end with this field included and writes the
   * complement, which is then the full checksum.
   */
  fillPartialChecksum(pseudoSum: number): void {
    writeU16(this.buffer, TCP_OFF_CHECKSUM, fold(pseudoSum));
  }
}

// The representation.

/**
 * The fields of a segment that a parser reads and a builder sets. `window` is the raw 16-bit
 * field; `flags` the eight control bits (the reserved bits are read as zero and written as zero,
 * RFC 9293 §3.1). `payload` is a view into the packet on parse: copy it to keep it past the life
 * of the packet buffer. The checksum is not a field: it is verified on parse and computed on emit.
 */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: Seq;
  ack: Seq;
  flags: number;
  window: number;
  urgent: number;
  options: TcpOptions;
  payload: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** A representation with every field zero and no options or data: a parse target to reuse, or a template for a builder. */
export function newTcpRepr(): TcpRepr {
  return { srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0, urgent: 0, options: newTcpOptions(), payload: EMPTY };
}

/** How `parseTcp` treats the checksum. */
export interface TcpParseOptions {
  /**
   * `verify`: the checksum must verify against the pseudo-header, or the segment is dropped
   * (`tcpBadChecksum`). `skip`: not looked at, for packets whose checksum the kernel owns: a
   * GSO super-segment or a checksum-offloaded one from the device (virtio-net NEEDS_CSUM: the
   * field holds only the pseudo-header sum) or one the device already verified (DATA_VALID).
   */
  checksum: 'verify' | 'skip';
}

/**
 * Parses the TCP segment in `buf[start..end)` into `out` (a fresh representation unless one is
 * given for reuse). `pseudoSum` is the pseudo-header accumulator for a TCP length of
 * `end - start`, or `null` to skip the checksum. On a drop, counts the reason and returns `null`.
 * Never throws; with `out` given, allocates only the payload view (and views of MPTCP or
 * unknown options, see `parseOptionsAt`).
 */
export function parseTcpSegment(
  buf: Buffer,
  start: number,
  end: number,
  pseudoSum: number | null,
  counters: TcpCodecCounters,
  out?: TcpRepr,
): TcpRepr | null {
  const reason = checkHeader(buf, start, end);
  if (reason !== null) {
    counters.increment(reason);
    return null;
  }
  if (pseudoSum === null) {
    counters.increment('tcpChecksumSkipped');
  } else if (!verifyChecksum(buf, start, end, pseudoSum)) {
    // RFC 9293 §3.1: "The TCP checksum is never optional. The sender MUST generate it (MUST-2)
    // and the receiver MUST check it (MUST-3)." A segment that fails it is dropped, silently.
    counters.increment('tcpBadChecksum');
    return null;
  }
  const headerLen = (buf[start + TCP_OFF_DATA_OFFSET] >>> 4) * TCP_DATA_OFFSET_UNIT;
  const repr = out ?? newTcpRepr();
  const optReason = parseOptionsAt(buf, start + TCP_OFF_OPTIONS, start + headerLen, repr.options, counters);
  if (optReason !== null) {
    counters.increment(optReason);
    return null;
  }
  repr.srcPort = readU16(buf, start + TCP_OFF_SRC_PORT);
  repr.dstPort = readU16(buf, start + TCP_OFF_DST_PORT);
  repr.seq = readU32(buf, start + TCP_OFF_SEQ);
  repr.ack = readU32(buf, start + TCP_OFF_ACK);
  repr.flags = buf[start + TCP_OFF_FLAGS];
  repr.window = readU16(buf, start + TCP_OFF_WINDOW);
  repr.urgent = readU16(buf, start + TCP_OFF_URGENT);
  repr.payload = buf.subarray(start + headerLen, end);
  counters.increment('tcpSegmentsParsed');
  return repr;
}

/** The header checks of `checkTcp` but the options walk, which the parser does as it reads them. */
function checkHeader(buf: Uint8Array, start: number, end: number): TcpDropReason | null {
  const len = end - start;
  if (len < TCP_HEADER_LEN) return 'tcpTruncated';
  const headerLen = (buf[start + TCP_OFF_DATA_OFFSET] >>> 4) * TCP_DATA_OFFSET_UNIT;
  if (headerLen < TCP_HEADER_LEN || headerLen > len) return 'tcpBadDataOffset';
  return null;
}

/**
 * Parses the TCP segment carried by an IP packet checked by the IP layer: an `IpPacketInfo`
 * from `parseIpPacket` (the packet path), or an `Ipv4Packet`/`Ipv6Packet` view. The
 * pseudo-header is taken from the packet's addresses. On a drop, counts the reason and returns
 * `null`. Never throws; see `parseTcpSegment` for reuse of `out`.
 */
export function parseTcp(
  ip: IpPacketInfo | Ipv4Packet | Ipv6Packet,
  counters: TcpCodecCounters,
  opts: TcpParseOptions,
  out?: TcpRepr,
): TcpRepr | null {
  let version: 4 | 6;
  let start: number;
  let end: number;
  let protocol: number;
  if (ip instanceof IpPacketInfo) {
    version = ip.version;
    start = ip.headerLen;
    end = ip.end;
    protocol = ip.protocol;
  } else if (ip instanceof Ipv4Packet) {
    version = 4;
    start = ip.headerLen;
    end = ip.totalLength;
    protocol = ip.protocol;
  } else {
    version = 6;
    start = ip.headerLen;
    end = IPV6_HEADER_LEN + ip.payloadLength;
    protocol = ip.protocol;
  }
  const buf = ip.buffer;
  // A view built without `check` may claim more than the buffer holds.
  if (end > buf.length || start > end) {
    counters.increment('tcpTruncated');
    return null;
  }
  if (protocol !== IPPROTO_TCP) {
    counters.increment('tcpNotTcp');
    return null;
  }
  let pseudoSum: number | null = null;
  if (opts.checksum === 'verify') {
    pseudoSum = version === 4
      ? pseudoHeaderSumV4(buf, buf, IPPROTO_TCP, end - start, IPV4_OFF_SRC, IPV4_OFF_DST)
      : pseudoHeaderSumV6(buf, buf, IPPROTO_TCP, end - start, IPV6_OFF_SRC, IPV6_OFF_DST);
  }
  return parseTcpSegment(buf, start, end, pseudoSum, counters, out);
}

/** Bytes of the TCP header `emit` writes for `repr`: 20 plus the options (SACK blocks trimmed to fit). */
export function tcpHeaderLen(repr: TcpRepr): number {
  return TCP_HEADER_LEN + optionsLen(repr.options);
}

/** How `emitTcp`/`emitIpTcp` fill the checksum. */
export type TcpChecksumMode = 'full' | 'partial';

/**
 * The representation's `parse`, `bufferLen` and `emit` over a bare TCP segment (no IP header),
 * in the manner of `Ipv4Repr` (CONVENTIONS.md 1). The packet path uses `parseTcp` and
 * `emitIpTcp`, which take the pseudo-header from the IP header.
 */
export const TcpRepr = {
  /** Parses a checked or unchecked view; `pseudoSum` for a TCP length of `packet.buffer.length`, or `null` to skip the checksum. */
  parse(packet: TcpPacket, counters: TcpCodecCounters, pseudoSum: number | null, out?: TcpRepr): TcpRepr | null {
    return parseTcpSegment(packet.buffer, 0, packet.buffer.length, pseudoSum, counters, out);
  },
  headerLen: tcpHeaderLen,
  /** Bytes of the segment: header, options and payload. */
  bufferLen(repr: TcpRepr): number {
    return tcpHeaderLen(repr) + repr.payload.length;
  },
  emit(repr: TcpRepr, buf: Buffer, offset: number, pseudoSum: number, mode: TcpChecksumMode, counters?: TcpCodecCounters): number {
    return emitTcp(buf, offset, repr, pseudoSum, mode, counters);
  },
};

/**
 * Writes the TCP segment of `repr` at `buf[offset..]`: header, options, then the payload (the
 * one copy the data path makes). With a `pseudoSum`, also the checksum: `full` computes it,
 * `partial` writes the folded pseudo-header sum for a device to finish (TSO, NEEDS_CSUM).
 * Returns the bytes written. Throws a RangeError only on a programming error (see `emitOptions`).
 */
export function emitTcp(
  buf: Buffer,
  offset: number,
  repr: TcpRepr,
  pseudoSum: number,
  mode: TcpChecksumMode,
  counters?: TcpCodecCounters,
): number {
  const needed = TCP_HEADER_LEN + optionsLen(repr.options) + repr.payload.length;
  if (offset + needed > buf.length) throw new RangeError(`a TCP segment of ${needed} bytes does not fit at offset ${offset} of ${buf.length}`);
  const optLen = emitOptions(repr.options, buf, offset + TCP_OFF_OPTIONS, counters);
  const headerLen = TCP_HEADER_LEN + optLen;
  const end = offset + headerLen + repr.payload.length;
  writeU16(buf, offset + TCP_OFF_SRC_PORT, repr.srcPort);
  writeU16(buf, offset + TCP_OFF_DST_PORT, repr.dstPort);
  writeU32(buf, offset + TCP_OFF_SEQ, repr.seq);
  writeU32(buf, offset + TCP_OFF_ACK, repr.ack);
  // RFC 9293 §3.1, Rsrvd: "Must be zero in generated segments".
  buf[offset + TCP_OFF_DATA_OFFSET] = (headerLen / TCP_DATA_OFFSET_UNIT) << 4;
  buf[offset + TCP_OFF_FLAGS] = repr.flags & TCP_FLAGS_MASK;
  writeU16(buf, offset + TCP_OFF_WINDOW, repr.window);
  buf[offset + TCP_OFF_CHECKSUM] = 0;
  buf[offset + TCP_OFF_CHECKSUM + 1] = 0;
  writeU16(buf, offset + TCP_OFF_URGENT, repr.urgent);
  buf.set(repr.payload, offset + headerLen);
  if (mode === 'full') {
    // RFC 9293 §3.1: "The checksum field is the 16-bit ones' complement of the ones' complement
    // sum of all 16-bit words in the header and text. The checksum computation needs to ensure
    // the 16-bit alignment of the data being summed. If a segment contains an odd number of
    // header and text octets, alignment can be achieved by padding the last octet with zeros on
    // its right to form a 16-bit word for checksum purposes."
    writeU16(buf, offset + TCP_OFF_CHECKSUM, internetChecksum(buf, offset, end, pseudoSum));
  } else {
    // Checksum offload (virtio-net VIRTIO_NET_HDR_F_NEEDS_CSUM, Linux CHECKSUM_PARTIAL): the
    // field holds the folded pseudo-header sum, not complemented; the device sums from
    // csum_start to the end, this field included, and stores the complement at
    // csum_start + csum_offset.
    writeU16(buf, offset + TCP_OFF_CHECKSUM, fold(pseudoSum));
  }
  return end - offset;
}

/** The IP header fields of a packet built by `emitIpTcp`. */
export interface IpTcpHeader {
  ipVersion: 4 | 6;
  /** Source address: 4 bytes for IPv4, 16 for IPv6. */
  src: Uint8Array;
  /** Destination address: 4 bytes for IPv4, 16 for IPv6. */
  dst: Uint8Array;
  /** IPv4 Time to Live, or IPv6 Hop Limit. */
  ttl: number;
  /** The IPv4 TOS octet or the IPv6 Traffic Class: DSCP << 2 | ECN. Default 0. */
  tos?: number;
  /** IPv4 Identification. Default 0. */
  ident?: number;
  /** IPv4 Don't Fragment. Default true: TCP does path MTU discovery (RFC 1191), as Linux does. */
  dontFragment?: boolean;
  /** IPv6 Flow Label (RFC 6437). Default 0. */
  flowLabel?: number;
}

/** How `emitIpTcp` fills the TCP checksum, and where it counts. */
export interface EmitIpTcpOptions {
  /** `full`: computed here. `partial`: the pseudo-header sum only, for TSO or checksum offload (NEEDS_CSUM). */
  checksum: TcpChecksumMode;
  counters?: TcpCodecCounters;
}

/** Bytes of the IP header `emitIpTcp` writes: 20 or 40 (no IP options, no extension headers). */
export function ipHeaderLenFor(ipVersion: 4 | 6): number {
  return ipVersion === 4 ? IPV4_MIN_HEADER_LEN : IPV6_HEADER_LEN;
}

/** Bytes of the whole IP + TCP packet `emitIpTcp` writes for `repr`: size the output buffer with this. */
export function tcpPacketLen(repr: TcpRepr, ipVersion: 4 | 6): number {
  return ipHeaderLenFor(ipVersion) + tcpHeaderLen(repr) + repr.payload.length;
}

/**
 * Writes a whole IP + TCP packet for `ip` and `repr` at `buf[offset..]` — IP header, TCP header
 * and options in place, payload copied once — and returns its length (`tcpPacketLen`). Nothing
 * is concatenated and nothing is allocated. Leave room before `offset` for a virtio-net header
 * (`VNET_HDR_LEN`) when writing to the TUN device, and fill it with `tcpOffloadVnetHdr` when the
 * checksum is partial or the payload is a TSO super-segment.
 *
 * Throws a RangeError only on a programming error: a buffer too small, addresses of the wrong
 * size, a packet over the 65535-byte IP limit, options over 40 bytes.
 */
export function emitIpTcp(buf: Buffer, offset: number, ip: IpTcpHeader, repr: TcpRepr, opts: EmitIpTcpOptions): number {
  const tcpLen = tcpHeaderLen(repr) + repr.payload.length;
  const ipLen = ipHeaderLenFor(ip.ipVersion);
  const total = ipLen + tcpLen;
  if (offset + total > buf.length) throw new RangeError(`an IP + TCP packet of ${total} bytes does not fit at offset ${offset} of ${buf.length}`);
  const tos = ip.tos ?? 0;
  let pseudoSum: number;
  if (ip.ipVersion === 4) {
    if (ip.src.length !== IPV4_ADDRESS_LEN || ip.dst.length !== IPV4_ADDRESS_LEN) throw new RangeError('IPv4 addresses are 4 bytes');
    if (total > IPV4_MAX_TOTAL_LEN) throw new RangeError(`an IPv4 packet of ${total} bytes exceeds the 65535-byte total length`);
    const o = offset;
    buf[o + IPV4_OFF_VER_IHL] = (IPV4_VERSION << 4) | (IPV4_MIN_HEADER_LEN / 4);
    buf[o + IPV4_OFF_TOS] = tos & 0xff;
    writeU16(buf, o + IPV4_OFF_TOTAL_LEN, total);
    writeU16(buf, o + IPV4_OFF_IDENT, ip.ident ?? 0);
    writeU16(buf, o + IPV4_OFF_FLAGS_FRAG, ip.dontFragment === false ? 0 : IPV4_FLAG_DF);
    buf[o + IPV4_OFF_TTL] = ip.ttl & 0xff;
    buf[o + IPV4_OFF_PROTOCOL] = IPPROTO_TCP;
    buf[o + IPV4_OFF_CHECKSUM] = 0;
    buf[o + IPV4_OFF_CHECKSUM + 1] = 0;
    buf.set(ip.src, o + IPV4_OFF_SRC);
    buf.set(ip.dst, o + IPV4_OFF_DST);
    writeU16(buf, o + IPV4_OFF_CHECKSUM, internetChecksum(buf, o, o + IPV4_MIN_HEADER_LEN));
    pseudoSum = pseudoHeaderSumV4(buf, buf, IPPROTO_TCP, tcpLen, o + IPV4_OFF_SRC, o + IPV4_OFF_DST);
  } else {
    if (ip.src.length !== IPV6_ADDRESS_LEN || ip.dst.length !== IPV6_ADDRESS_LEN) throw new RangeError('IPv6 addresses are 16 bytes');
    if (tcpLen > IPV6_MAX_PAYLOAD_LEN) throw new RangeError(`an IPv6 payload of ${tcpLen} bytes exceeds 65535 (jumbograms are not supported)`);
    const o = offset;
    const flow = (ip.flowLabel ?? 0) & IPV6_FLOW_LABEL_MASK;
    buf[o] = (IPV6_VERSION << 4) | ((tos >>> 4) & 0x0f);
    buf[o + 1] = ((tos & 0x0f) << 4) | (flow >>> 16);
    buf[o + 2] = (flow >>> 8) & 0xff;
    buf[o + 3] = flow & 0xff;
    writeU16(buf, o + IPV6_OFF_PAYLOAD_LEN, tcpLen);
    buf[o + IPV6_OFF_NEXT_HEADER] = IPPROTO_TCP;
    buf[o + IPV6_OFF_HOP_LIMIT] = ip.ttl & 0xff;
    buf.set(ip.src, o + IPV6_OFF_SRC);
    buf.set(ip.dst, o + IPV6_OFF_DST);
    pseudoSum = pseudoHeaderSumV6(buf, buf, IPPROTO_TCP, tcpLen, o + IPV6_OFF_SRC, o + IPV6_OFF_DST);
  }
  emitTcp(buf, offset + ipLen, repr, pseudoSum, opts.checksum, opts.counters);
  opts.counters?.increment('tcpSegmentsEmitted');
  return total;
}

/**
 * The virtio-net header for a packet written by `emitIpTcp` with a `partial` checksum: the
 * device (the kernel behind TUN) completes the checksum and, when the payload is longer than
 * `mss`, cuts the packet into segments of `mss` payload bytes (TSO; `gso_size = mss`), as the
 * kernel does for a virtio-net guest. Fills and returns `out` (a fresh header unless given);
 * write it with `emitVnetHdr` in front of the packet.
 *
 * - flags NEEDS_CSUM, csum_start = the TCP header's offset in the packet, csum_offset = 16;
 * - gso_type TCPV4 or TCPV6 when the payload exceeds `mss` (with the ECN bit when the segment
 *   carries CWR, as `virtio_net_hdr_from_skb` sets it for SKB_GSO_TCP_ECN), NONE otherwise;
 * - hdr_len = IP header + TCP header.
 *
 * `mss` is the payload of each segment: the send MSS less the options every segment carries
 * (Linux's `mss_cache`: 1448 for IPv4 and 1428 for IPv6 on a 1500-byte MTU with timestamps).
 * The pseudo-header sum in the packet covers the whole super-segment's TCP length; the kernel's
 * segmentation (`tcp_gso_segment`) adjusts it for each segment, copies the header and options
 * into each, advances the sequence number, and leaves PSH and FIN on the last segment only.
 * (Checked by hand on this kernel: super-segments of 4 × MSS + 101 bytes written to a TUN device
 * with IFF_VNET_HDR and TUN_F_CSUM|TSO4|TSO6, forwarded to a veth without TSO, came out as five
 * segments with correct checksums, IPv4 and IPv6.)
 */
export function tcpOffloadVnetHdr(ipVersion: 4 | 6, repr: TcpRepr, mss: number, out: VnetHdr = { ...VNET_HDR_NONE }): VnetHdr {
  const ipLen = ipHeaderLenFor(ipVersion);
  out.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  out.csumStart = ipLen;
  out.csumOffset = TCP_OFF_CHECKSUM;
  out.hdrLen = ipLen + tcpHeaderLen(repr);
  if (mss > 0 && repr.payload.length > mss) {
    out.gsoType = ipVersion === 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
    if ((repr.flags & TCP_FLAG_CWR) !== 0) out.gsoType |= VIRTIO_NET_HDR_GSO_ECN;
    out.gsoSize = mss;
  } else {
    out.gsoType = VIRTIO_NET_HDR_GSO_NONE;
    out.gsoSize = 0;
  }
  return out;
}
