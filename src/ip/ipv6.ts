// IPv6 header (RFC 8200 §3) and the walk over its extension headers (RFC 8200 §4): a view over
// a Buffer and a plain representation (CONVENTIONS.md 1).
//
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |Version| Traffic Class |           Flow Label                  |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |         Payload Length        |  Next Header  |   Hop Limit   |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                                                               |
//   +                         Source Address                        +
//   |                            (128 bits)                         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                                                               |
//   +                      Destination Address                      +
//   |                            (128 bits)                         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The Traffic Class octet is DSCP (6 bits, RFC 2474) + ECN (2 bits, RFC 3168).

import { readU16, writeU16 } from './bytes.js';
import type { DropReason } from './counters.js';

export const IPV6_VERSION = 6;
export const IPV6_HEADER_LEN = 40;
export const IPV6_ADDRESS_LEN = 16;
export const IPV6_MAX_PAYLOAD_LEN = 0xffff;

// Field offsets (RFC 8200 §3).
export const IPV6_OFF_VER_TC_FLOW = 0;
export const IPV6_OFF_PAYLOAD_LEN = 4;
export const IPV6_OFF_NEXT_HEADER = 6;
export const IPV6_OFF_HOP_LIMIT = 7;
export const IPV6_OFF_SRC = 8;
export const IPV6_OFF_DST = 24;

export const IPV6_FLOW_LABEL_MASK = 0x000fffff;

// Next Header values (IANA "Assigned Internet Protocol Numbers"; RFC 8200 §4.1 lists the
// extension headers).
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
/** RFC 8200 §4.7: "The value 59 in the Next Header field of an IPv6 header or any extension header indicates that there is nothing following that header." */
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;

/** RFC 8200 §4.5: the Fragment header is 8 octets long. */
export const IPV6_FRAGMENT_HEADER_LEN = 8;
/** "Fragment Offset 13-bit unsigned integer. The offset, in 8-octet units" — the high 13 bits of the 16-bit word at offset 2. */
export const IPV6_FRAG_OFFSET_MASK = 0xfff8;
/** "M flag. 1 = more fragments; 0 = last fragment." */
export const IPV6_FRAG_M = 0x0001;

/** The hop limit we put on packets we originate (Linux's default `net.ipv6.conf.*.hop_limit`). */
export const IPV6_DEFAULT_HOP_LIMIT = 64;

/** Where the upper-layer header starts and which protocol it is, once extension headers are skipped. */
export interface UpperLayer {
  /** The upper-layer protocol: the Next Header of the last extension header (or of the IPv6 header). */
  protocol: number;
  /** Offset of the upper-layer header from the start of the IPv6 header. */
  headerLen: number;
}

/**
 * Walks the extension headers of the packet in `buf` (whose payload ends at `end`) far enough
 * to find the upper-layer protocol and its offset, and writes them to `out`. Returns why the
 * packet must be dropped, or `null`. Never throws, never allocates.
 *
 * RFC 8200 §4: "extension headers are not processed, inserted, or deleted by any node along a
 * packet's delivery path, until the packet reaches the node ... identified in the Destination
 * Address field" — and mptun impersonates that node, so it walks them. Options themselves are
 * not interpreted (their "skip over this option" action is what RFC 8200 §4.2 gives unknown
 * options of types 00xxxxxx, and none of the known ones matter to an endpoint that only
 * answers pings and terminates TCP).
 */
export function findUpperLayer(buf: Uint8Array, end: number, out: UpperLayer): DropReason | null {
  let next = buf[IPV6_OFF_NEXT_HEADER];
  let offset = IPV6_HEADER_LEN;
  for (;;) {
    // RFC 8200 §4.3: "The Hop-by-Hop Options header ... is identified by a Next Header value of
    // 0 in the IPv6 header"; §4.1: "The Hop-by-Hop Options header, when present, MUST
    // immediately follow the IPv6 header."
    if (next === IPPROTO_HOPOPTS && offset !== IPV6_HEADER_LEN) return 'badExtensionHeader';
    switch (next) {
      case IPPROTO_HOPOPTS:
      case IPPROTO_ROUTING:
      case IPPROTO_DSTOPTS: {
        // RFC 8200 §4.3/4.4/4.6: "Hdr Ext Len 8-bit unsigned integer. Length of the ... header
        // in 8-octet units, not including the first 8 octets."
        if (offset + 2 > end) return 'truncatedExtensionHeader';
        const len = (buf[offset + 1] + 1) * 8;
        if (offset + len > end) return 'truncatedExtensionHeader';
        next = buf[offset];
        offset += len;
        break;
      }
      case IPPROTO_FRAGMENT: {
        if (offset + IPV6_FRAGMENT_HEADER_LEN > end) return 'truncatedExtensionHeader';
        // RFC 8200 §4.5: an atomic fragment (offset 0, M = 0; RFC 6946) is a whole packet and
        // is processed as such; anything else is a piece that would need reassembly, which we
        // do not do.
        const offM = readU16(buf, offset + 2);
        if ((offM & (IPV6_FRAG_OFFSET_MASK | IPV6_FRAG_M)) !== 0) return 'fragment';
        next = buf[offset];
        offset += IPV6_FRAGMENT_HEADER_LEN;
        break;
      }
      case IPPROTO_AH: {
        // RFC 4302 §2.2: "Payload Length: This 8-bit field specifies the length of AH in
        // 32-bit words (4-byte units), minus '2'."
        if (offset + 2 > end) return 'truncatedExtensionHeader';
        const len = (buf[offset + 1] + 2) * 4;
        if (offset + len > end) return 'truncatedExtensionHeader';
        next = buf[offset];
        offset += len;
        break;
      }
      default:
        // An upper-layer protocol (TCP, UDP, ICMPv6, ESP whose contents are opaque, No Next Header).
        out.protocol = next;
        out.headerLen = offset;
        return null;
    }
  }
}

/**
 * Checks an IPv6 packet and finds its upper layer: returns why it must be dropped, or `null`
 * with `out` filled in. Never throws, never allocates. Bytes beyond the payload are ignored.
 */
export function checkIpv6(buf: Uint8Array, out: UpperLayer): DropReason | null {
  if (buf.length < IPV6_HEADER_LEN) return 'badLength';
  if (buf[IPV6_OFF_VER_TC_FLOW] >>> 4 !== IPV6_VERSION) return 'badVersion';
  // RFC 8200 §3: "Payload Length 16-bit unsigned integer. Length of the IPv6 payload, i.e., the
  // rest of the packet following this IPv6 header, in octets. (Note that any extension headers
  // present are considered part of the payload, i.e., included in the length count.)"
  const end = IPV6_HEADER_LEN + readU16(buf, IPV6_OFF_PAYLOAD_LEN);
  if (end > buf.length) return 'badLength';
  return findUpperLayer(buf, end, out);
}

/**
 * A view over an IPv6 packet. Getters and setters read and write the buffer in place; the
 * buffer is never copied. Build one from untrusted bytes with `Ipv6Packet.check`, which also
 * finds the upper layer; the constructor only checks that the fixed header fits.
 */
export class Ipv6Packet implements UpperLayer {
  readonly buffer: Buffer;
  /** The upper-layer protocol, after extension headers (set by `check`/`findUpperLayer`). */
  protocol: number;
  /** Offset of the upper-layer header (set by `check`/`findUpperLayer`; 40 without extension headers). */
  headerLen: number;

  constructor(buffer: Buffer) {
    if (buffer.length < IPV6_HEADER_LEN) {
      throw new RangeError(`an IPv6 header needs ${IPV6_HEADER_LEN} bytes, the buffer has ${buffer.length}`);
    }
    this.buffer = buffer;
    this.protocol = buffer[IPV6_OFF_NEXT_HEADER];
    this.headerLen = IPV6_HEADER_LEN;
  }

  /** The view with its upper layer found, or the reason the packet must be dropped. */
  static check(buffer: Buffer): Ipv6Packet | DropReason {
    if (buffer.length < IPV6_HEADER_LEN) return 'badLength';
    const view = new Ipv6Packet(buffer);
    return checkIpv6(buffer, view) ?? view;
  }

  /** Walks the extension headers again (after a builder changed them). */
  findUpperLayer(): DropReason | null {
    return findUpperLayer(this.buffer, Math.min(this.buffer.length, IPV6_HEADER_LEN + this.payloadLength), this);
  }

  get version(): number {
    return this.buffer[IPV6_OFF_VER_TC_FLOW] >>> 4;
  }
  set version(v: number) {
    const b = this.buffer;
    b[0] = ((v & 0x0f) << 4) | (b[0] & 0x0f);
  }

  /** The Traffic Class octet: 4 bits in byte 0, 4 bits in byte 1. */
  get trafficClass(): number {
    const b = this.buffer;
    return ((b[0] & 0x0f) << 4) | (b[1] >>> 4);
  }
  set trafficClass(v: number) {
    const b = this.buffer;
    b[0] = (b[0] & 0xf0) | ((v >>> 4) & 0x0f);
    b[1] = ((v & 0x0f) << 4) | (b[1] & 0x0f);
  }

  get dscp(): number {
    return this.trafficClass >>> 2;
  }
  set dscp(v: number) {
    this.trafficClass = ((v & 0x3f) << 2) | (this.trafficClass & 0x03);
  }

  get ecn(): number {
    return this.trafficClass & 0x03;
  }
  set ecn(v: number) {
    this.trafficClass = (this.trafficClass & 0xfc) | (v & 0x03);
  }

  /** RFC 6437: the 20-bit Flow Label. */
  get flowLabel(): number {
    const b = this.buffer;
    return ((b[1] & 0x0f) << 16) | (b[2] << 8) | b[3];
  }
  set flowLabel(v: number) {
    const b = this.buffer;
    b[1] = (b[1] & 0xf0) | ((v >>> 16) & 0x0f);
    b[2] = (v >>> 8) & 0xff;
    b[3] = v & 0xff;
  }

  get payloadLength(): number {
    return readU16(this.buffer, IPV6_OFF_PAYLOAD_LEN);
  }
  set payloadLength(v: number) {
    writeU16(this.buffer, IPV6_OFF_PAYLOAD_LEN, v);
  }

  /** The Next Header field of the fixed header (the first extension header, if any). */
  get nextHeader(): number {
    return this.buffer[IPV6_OFF_NEXT_HEADER];
  }
  set nextHeader(v: number) {
    this.buffer[IPV6_OFF_NEXT_HEADER] = v & 0xff;
  }

  get hopLimit(): number {
    return this.buffer[IPV6_OFF_HOP_LIMIT];
  }
  set hopLimit(v: number) {
    this.buffer[IPV6_OFF_HOP_LIMIT] = v & 0xff;
  }

  /** Source address: a 16-byte view into the packet (not a copy). */
  get srcAddress(): Buffer {
    return this.buffer.subarray(IPV6_OFF_SRC, IPV6_OFF_SRC + IPV6_ADDRESS_LEN);
  }
  set srcAddress(bytes: Uint8Array) {
    this.buffer.set(bytes.subarray(0, IPV6_ADDRESS_LEN), IPV6_OFF_SRC);
  }

  /** Destination address: a 16-byte view into the packet (not a copy). */
  get dstAddress(): Buffer {
    return this.buffer.subarray(IPV6_OFF_DST, IPV6_OFF_DST + IPV6_ADDRESS_LEN);
  }
  set dstAddress(bytes: Uint8Array) {
    this.buffer.set(bytes.subarray(0, IPV6_ADDRESS_LEN), IPV6_OFF_DST);
  }

  /** Everything after the fixed header up to Payload Length, extension headers included. A view. */
  get payload(): Buffer {
    return this.buffer.subarray(IPV6_HEADER_LEN, IPV6_HEADER_LEN + this.payloadLength);
  }

  /** The extension headers, between the fixed header and the upper layer. A view. */
  get extensionHeaders(): Buffer {
    return this.buffer.subarray(IPV6_HEADER_LEN, this.headerLen);
  }

  /** The upper-layer header and data. A view. */
  get upperLayerPayload(): Buffer {
    return this.buffer.subarray(this.headerLen, IPV6_HEADER_LEN + this.payloadLength);
  }
}

/**
 * The fixed-header fields that a builder sets and a parser reads. `src`/`dst` are 16-byte
 * buffers; `Ipv6Repr.parse` returns views into the packet (no copy), so copy them
 * (`Buffer.from(repr.src)`) to keep them past the life of the packet buffer.
 * `emit` writes no extension headers: `nextHeader` is then the upper-layer protocol.
 */
export interface Ipv6Repr {
  version: 6;
  src: Buffer;
  dst: Buffer;
  nextHeader: number;
  hopLimit: number;
  /** Payload Length: everything after the fixed header. */
  payloadLen: number;
  dscp: number;
  ecn: number;
  flowLabel: number;
}

export const Ipv6Repr = {
  parse(packet: Ipv6Packet): Ipv6Repr {
    return {
      version: 6,
      src: packet.srcAddress,
      dst: packet.dstAddress,
      nextHeader: packet.nextHeader,
      hopLimit: packet.hopLimit,
      payloadLen: packet.payloadLength,
      dscp: packet.dscp,
      ecn: packet.ecn,
      flowLabel: packet.flowLabel,
    };
  },

  headerLen(_repr: Ipv6Repr): number {
    return IPV6_HEADER_LEN;
  },

  bufferLen(repr: Ipv6Repr): number {
    return IPV6_HEADER_LEN + repr.payloadLen;
  },

  /**
   * Writes the 40-byte fixed header at the start of `target`; the payload is the caller's.
   * Throws a RangeError only on a programming error (buffer too small, payload over 65535).
   */
  emit(repr: Ipv6Repr, target: Buffer | Ipv6Packet): void {
    const buf = target instanceof Ipv6Packet ? target.buffer : target;
    if (repr.payloadLen > IPV6_MAX_PAYLOAD_LEN) throw new RangeError(`IPv6 payload of ${repr.payloadLen} bytes exceeds 65535 (jumbograms are not supported)`);
    if (buf.length < IPV6_HEADER_LEN) throw new RangeError(`an IPv6 header needs ${IPV6_HEADER_LEN} bytes, the buffer has ${buf.length}`);
    const tc = ((repr.dscp & 0x3f) << 2) | (repr.ecn & 0x03);
    const flow = repr.flowLabel & IPV6_FLOW_LABEL_MASK;
    buf[0] = (IPV6_VERSION << 4) | (tc >>> 4);
    buf[1] = ((tc & 0x0f) << 4) | (flow >>> 16);
    buf[2] = (flow >>> 8) & 0xff;
    buf[3] = flow & 0xff;
    writeU16(buf, IPV6_OFF_PAYLOAD_LEN, repr.payloadLen);
    buf[IPV6_OFF_NEXT_HEADER] = repr.nextHeader & 0xff;
    buf[IPV6_OFF_HOP_LIMIT] = repr.hopLimit & 0xff;
    buf.set(repr.src.subarray(0, IPV6_ADDRESS_LEN), IPV6_OFF_SRC);
    buf.set(repr.dst.subarray(0, IPV6_ADDRESS_LEN), IPV6_OFF_DST);
  },
};
