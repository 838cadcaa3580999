// The entry point of the IP layer on the packet path: one call that checks an IPv4 or IPv6
// packet (dispatching on the version nibble), counts and drops what is malformed, and says
// where the upper layer is — without copying the packet.

import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from './checksum.js';
import type { IpCounters } from './counters.js';
import {
  checkIpv4,
  IPV4_ADDRESS_LEN,
  IPV4_MIN_HEADER_LEN,
  IPV4_OFF_DST,
  IPV4_OFF_PROTOCOL,
  IPV4_OFF_SRC,
  IPV4_OFF_TOTAL_LEN,
  IPV4_OFF_TTL,
  Ipv4Repr,
} from './ipv4.js';
import {
  checkIpv6,
  IPV6_ADDRESS_LEN,
  IPV6_HEADER_LEN,
  IPV6_OFF_DST,
  IPV6_OFF_HOP_LIMIT,
  IPV6_OFF_PAYLOAD_LEN,
  IPV6_OFF_SRC,
  Ipv6Repr,
  type UpperLayer,
} from './ipv6.js';

const EMPTY = Buffer.alloc(0);

/**
 * What the upper layers need to know about a checked IP packet. Plain fields are filled by
 * `parseIpPacket`; the Buffer-valued getters (`src`, `dst`, `payload`, `packet`) make a view
 * (not a copy) each time they are read, so read them once, or use the offsets with the
 * offset-taking helpers (`pseudoHeaderSum`, `IpPrefix.contains`) to allocate nothing at all.
 * One object can be reused for every packet (`parseIpPacket(buf, counters, info)`).
 */
export class IpPacketInfo implements UpperLayer {
  version: 4 | 6 = 4;
  /** The upper-layer protocol (TCP = 6, ICMP = 1, ICMPv6 = 58 ...), after any IPv6 extension headers. */
  protocol = 0;
  /** Offset of the upper-layer header: IPv4 IHL × 4 (options included), or 40 + IPv6 extension headers. */
  headerLen = 0;
  /** End of the packet: IPv4 Total Length, or 40 + IPv6 Payload Length. Bytes past it are ignored. */
  end = 0;
  /** IPv4 TTL or IPv6 Hop Limit. */
  ttl = 0;
  /** The buffer given to `parseIpPacket`, not copied. */
  buffer: Buffer = EMPTY;

  get srcOffset(): number {
    return this.version === 4 ? IPV4_OFF_SRC : IPV6_OFF_SRC;
  }
  get dstOffset(): number {
    return this.version === 4 ? IPV4_OFF_DST : IPV6_OFF_DST;
  }
  get addressLen(): number {
    return this.version === 4 ? IPV4_ADDRESS_LEN : IPV6_ADDRESS_LEN;
  }
  /** Source address bytes (4 or 16): a view into the packet. */
  get src(): Buffer {
    const o = this.srcOffset;
    return this.buffer.subarray(o, o + this.addressLen);
  }
  /** Destination address bytes (4 or 16): a view into the packet. */
  get dst(): Buffer {
    const o = this.dstOffset;
    return this.buffer.subarray(o, o + this.addressLen);
  }
  /** Length of the upper-layer header and data. */
  get payloadLength(): number {
    return this.end - this.headerLen;
  }
  /** The upper-layer header and data: a view into the packet. */
  get payload(): Buffer {
    return this.buffer.subarray(this.headerLen, this.end);
  }
  /** The IP packet without trailing bytes: a view. */
  get packet(): Buffer {
    return this.buffer.subarray(0, this.end);
  }
}

/**
 * Checks an IP packet of either version. On success fills `into` (a fresh object unless one is
 * given for reuse) and returns it; on failure counts the drop reason in `counters` and returns
 * `null` (the fields of `into` are then unspecified). Never throws; allocates nothing when
 * `into` is given.
 */
export function parseIpPacket(buf: Buffer, counters: IpCounters, into?: IpPacketInfo): IpPacketInfo | null {
  if (buf.length === 0) {
    counters.increment('badLength');
    return null;
  }
  const version = buf[0] >>> 4;
  if (version === 4) {
    const reason = checkIpv4(buf);
    if (reason !== null) {
      counters.increment(reason);
      return null;
    }
    const info = into ?? new IpPacketInfo();
    info.version = 4;
    info.buffer = buf;
    info.protocol = buf[IPV4_OFF_PROTOCOL];
    info.headerLen = (buf[0] & 0x0f) * 4;
    info.end = (buf[IPV4_OFF_TOTAL_LEN] << 8) | buf[IPV4_OFF_TOTAL_LEN + 1];
    info.ttl = buf[IPV4_OFF_TTL];
    return info;
  }
  if (version === 6) {
    const info = into ?? new IpPacketInfo();
    const reason = checkIpv6(buf, info);
    if (reason !== null) {
      counters.increment(reason);
      return null;
    }
    info.version = 6;
    info.buffer = buf;
    info.end = IPV6_HEADER_LEN + ((buf[IPV6_OFF_PAYLOAD_LEN] << 8) | buf[IPV6_OFF_PAYLOAD_LEN + 1]);
    info.ttl = buf[IPV6_OFF_HOP_LIMIT];
    return info;
  }
  counters.increment('badVersion');
  return null;
}

/**
 * The pseudo-header sum of the IP packet in `buf` (version `version`, addresses at their fixed
 * offsets) for an upper-layer message of `protocol` and `length` bytes: an unfolded
 * accumulator to feed to `onesSum`/`verifyChecksum`/`internetChecksum` over that message.
 * Works on received packets and on headers just written by `emitIpHeader` alike.
 */
export function ipPseudoHeaderSum(version: 4 | 6, buf: Uint8Array, protocol: number, length: number): number {
  return version === 4
    ? pseudoHeaderSumV4(buf, buf, protocol, length, IPV4_OFF_SRC, IPV4_OFF_DST)
    : pseudoHeaderSumV6(buf, buf, protocol, length, IPV6_OFF_SRC, IPV6_OFF_DST);
}

/**
 * The pseudo-header sum of a parsed packet; `length` defaults to its upper-layer length and
 * `protocol` to its upper-layer protocol.
 */
export function pseudoHeaderSum(info: IpPacketInfo, length = info.payloadLength, protocol = info.protocol): number {
  return ipPseudoHeaderSum(info.version, info.buffer, protocol, length);
}

/** A representation of either version, for code that builds packets of both. */
export type IpRepr = Ipv4Repr | Ipv6Repr;

/** Bytes of the IP header that `emitIpHeader` writes (20 or 40). */
export function ipHeaderLen(repr: IpRepr): number {
  return repr.version === 4 ? IPV4_MIN_HEADER_LEN : IPV6_HEADER_LEN;
}

/** Bytes of the whole packet: size the output buffer with this. */
export function ipBufferLen(repr: IpRepr): number {
  return repr.version === 4 ? Ipv4Repr.bufferLen(repr) : Ipv6Repr.bufferLen(repr);
}

/** Writes the IP header for `repr` at the start of `buf` and returns its length; the payload follows. */
export function emitIpHeader(repr: IpRepr, buf: Buffer): number {
  if (repr.version === 4) {
    Ipv4Repr.emit(repr, buf);
    return IPV4_MIN_HEADER_LEN;
  }
  Ipv6Repr.emit(repr, buf);
  return IPV6_HEADER_LEN;
}
