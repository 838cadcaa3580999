// ICMP (RFC 792) and ICMPv6 (RFC 4443) echo messages, and the responder that answers `ping`
// for every destination routed into the device (mptun impersonates them all).
//
// The echo message is the same in both protocols (RFC 792 "Echo or Echo Reply Message",
// RFC 4443 §4.1 and §4.2):
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |     Type      |     Code      |          Checksum             |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |           Identifier          |        Sequence Number        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |     Data ...
//   +-+-+-+-+-
//
// Only the checksum differs: ICMPv4's covers the ICMP message alone (RFC 792: "the 16-bit
// one's complement of the one's complement sum of the ICMP message starting with the ICMP
// Type"), ICMPv6's also covers the IPv6 pseudo-header (RFC 4443 §2.3: "The checksum is the
// 16-bit one's complement of the one's complement sum of the entire ICMPv6 message, starting
// with the ICMPv6 message type field, and prepended with a 'pseudo-header' of IPv6 header
// fields, as specified in [IPv6, Section 8.1]. The Next Header value used in the pseudo-header
// is 58.").

import {
  isIpv4MulticastOrBroadcast,
  isIpv4Unspecified,
  isIpv6Multicast,
  isIpv6Unspecified,
} from './address.js';
import { readU16, readU32, writeU16 } from './bytes.js';
import { incrementalUpdate, internetChecksum, verifyChecksum } from './checksum.js';
import { IpCounters } from './counters.js';
import { IPPROTO_ICMP, IPV4_DEFAULT_TTL, IPV4_MIN_HEADER_LEN, IPV4_OFF_DST, IPV4_OFF_SRC, IPV4_OFF_TOS, Ipv4Repr } from './ipv4.js';
import {
  IPPROTO_ICMPV6,
  IPV6_ADDRESS_LEN,
  IPV6_DEFAULT_HOP_LIMIT,
  IPV6_HEADER_LEN,
  IPV6_OFF_DST,
  IPV6_OFF_SRC,
  Ipv6Repr,
} from './ipv6.js';
import { ipPseudoHeaderSum, IpPacketInfo, parseIpPacket } from './packet.js';

/** RFC 792: "8 for echo message; 0 for echo reply message." */
export const ICMPV4_ECHO_REQUEST = 8;
export const ICMPV4_ECHO_REPLY = 0;
/** RFC 4443 §4.1 and §4.2: "Type 128" (Echo Request), "Type 129" (Echo Reply). */
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;

export const ICMP_OFF_TYPE = 0;
export const ICMP_OFF_CODE = 1;
export const ICMP_OFF_CHECKSUM = 2;
export const ICMP_OFF_IDENT = 4;
export const ICMP_OFF_SEQ = 6;
export const ICMP_OFF_DATA = 8;
/** Type, code, checksum, identifier, sequence number. */
export const ICMP_ECHO_HEADER_LEN = 8;

/**
 * A view over an ICMP or ICMPv6 echo message (the IP payload, from the Type octet to the end).
 * `check` guarantees the 8-byte echo header is there; it does not look at the type.
 */
export class IcmpEchoPacket {
  readonly buffer: Buffer;

  constructor(buffer: Buffer) {
    if (buffer.length < ICMP_ECHO_HEADER_LEN) {
      throw new RangeError(`an ICMP echo header needs ${ICMP_ECHO_HEADER_LEN} bytes, the buffer has ${buffer.length}`);
    }
    this.buffer = buffer;
  }

  static check(buffer: Buffer): IcmpEchoPacket | 'icmpTruncated' {
    return buffer.length < ICMP_ECHO_HEADER_LEN ? 'icmpTruncated' : new IcmpEchoPacket(buffer);
  }

  get type(): number {
    return this.buffer[ICMP_OFF_TYPE];
  }
  set type(v: number) {
    this.buffer[ICMP_OFF_TYPE] = v & 0xff;
  }
  get code(): number {
    return this.buffer[ICMP_OFF_CODE];
  }
  set code(v: number) {
    this.buffer[ICMP_OFF_CODE] = v & 0xff;
  }
  get checksum(): number {
    return readU16(this.buffer, ICMP_OFF_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buffer, ICMP_OFF_CHECKSUM, v);
  }
  /** RFC 792: "If code = 0, an identifier to aid in matching echos and replies, may be zero." */
  get identifier(): number {
    return readU16(this.buffer, ICMP_OFF_IDENT);
  }
  set identifier(v: number) {
    writeU16(this.buffer, ICMP_OFF_IDENT, v);
  }
  /** RFC 792: "If code = 0, a sequence number to aid in matching echos and replies, may be zero." */
  get sequence(): number {
    return readU16(this.buffer, ICMP_OFF_SEQ);
  }
  set sequence(v: number) {
    writeU16(this.buffer, ICMP_OFF_SEQ, v);
  }
  /** The echo data: a view. */
  get data(): Buffer {
    return this.buffer.subarray(ICMP_OFF_DATA);
  }

  /** `pseudoHeader` is 0 for ICMPv4 and the IPv6 pseudo-header sum (Next Header 58) for ICMPv6. */
  verifyChecksum(pseudoHeader = 0): boolean {
    return verifyChecksum(this.buffer, 0, this.buffer.length, pseudoHeader);
  }

  fillChecksum(pseudoHeader = 0): void {
    this.buffer[ICMP_OFF_CHECKSUM] = 0;
    this.buffer[ICMP_OFF_CHECKSUM + 1] = 0;
    writeU16(this.buffer, ICMP_OFF_CHECKSUM, internetChecksum(this.buffer, 0, this.buffer.length, pseudoHeader));
  }
}

export interface IcmpEchoRepr {
  /** ICMP (4) or ICMPv6 (6): decides the type numbers. */
  family: 4 | 6;
  kind: 'request' | 'reply';
  identifier: number;
  sequence: number;
  /** The echo data; `parse` returns a view into the packet. */
  data: Buffer;
}

function echoType(family: 4 | 6, kind: 'request' | 'reply'): number {
  if (family === 4) return kind === 'request' ? ICMPV4_ECHO_REQUEST : ICMPV4_ECHO_REPLY;
  return kind === 'request' ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY;
}

export const IcmpEchoRepr = {
  /** The echo message in the view, or `null` when its type is not an echo of `family`. */
  parse(packet: IcmpEchoPacket, family: 4 | 6): IcmpEchoRepr | null {
    const type = packet.type;
    let kind: 'request' | 'reply';
    if (type === echoType(family, 'request')) kind = 'request';
    else if (type === echoType(family, 'reply')) kind = 'reply';
    else return null;
    return { family, kind, identifier: packet.identifier, sequence: packet.sequence, data: packet.data };
  },

  bufferLen(repr: IcmpEchoRepr): number {
    return ICMP_ECHO_HEADER_LEN + repr.data.length;
  },

  /**
   * Writes the message and its checksum into `buf` (sized by `bufferLen`). For ICMPv6 pass the
   * pseudo-header sum (`ipPseudoHeaderSum(6, ipPacket, 58, bufferLen)`), for ICMPv4 nothing.
   */
  emit(repr: IcmpEchoRepr, buf: Buffer, pseudoHeader = 0): void {
    const len = ICMP_ECHO_HEADER_LEN + repr.data.length;
    if (buf.length < len) throw new RangeError(`the ICMP echo message needs ${len} bytes, the buffer has ${buf.length}`);
    buf[ICMP_OFF_TYPE] = echoType(repr.family, repr.kind);
    buf[ICMP_OFF_CODE] = 0;
    buf[ICMP_OFF_CHECKSUM] = 0;
    buf[ICMP_OFF_CHECKSUM + 1] = 0;
    writeU16(buf, ICMP_OFF_IDENT, repr.identifier);
    writeU16(buf, ICMP_OFF_SEQ, repr.sequence);
    buf.set(repr.data, ICMP_OFF_DATA);
    writeU16(buf, ICMP_OFF_CHECKSUM, internetChecksum(buf, 0, len, pseudoHeader));
  },
};

export interface EchoResponderOptions {
  /** Where drops and replies are counted; a fresh set by default. */
  counters?: IpCounters;
  /** Replies waiting for `pollTransmit` at most; beyond, replies are dropped and counted. */
  queueLimit?: number;
  /** TTL of IPv4 replies. */
  ttl?: number;
  /** Hop Limit of IPv6 replies. */
  hopLimit?: number;
  /** First IPv4 Identification value; each reply takes the next one. */
  identSeed?: number;
}

export const ECHO_RESPONDER_DEFAULT_QUEUE_LIMIT = 64;

/**
 * Answers ICMP and ICMPv6 Echo Requests for any destination (sans-IO, CONVENTIONS.md 3): feed
 * it packets with `handlePacket` (or `handleParsed` when the packet was already parsed), take
 * the replies with `pollTransmit`.
 *
 * RFC 1122 §3.2.2.6: "Every host MUST implement an ICMP Echo server function that receives
 * Echo Requests and sends corresponding Echo Replies." RFC 4443 §4.1: "Every node MUST
 * implement an ICMPv6 Echo responder function that receives Echo Requests and originates
 * corresponding Echo Replies."
 *
 * Like Linux: the reply carries the request's DSCP (`icmp_reply` copies the TOS), has DF
 * clear and no IPv4 options, and changes only the Type of the ICMP message (code, identifier,
 * sequence and data are returned as received), so its checksum is updated incrementally.
 * Not done: RFC 1122's SHOULD to return Record Route / Timestamp options in the reply.
 */
export class EchoResponder {
  readonly counters: IpCounters;
  private readonly queue: (Buffer | undefined)[];
  private head = 0;
  private count = 0;
  private readonly ttl: number;
  private readonly hopLimit: number;
  private ident: number;
  // Reused on every packet: nothing is allocated per packet but the reply itself.
  private readonly info = new IpPacketInfo();
  private readonly v4: Ipv4Repr = {
    version: 4, src: 0, dst: 0, protocol: IPPROTO_ICMP, ttl: IPV4_DEFAULT_TTL,
    payloadLen: 0, dscp: 0, ecn: 0, ident: 0, dontFragment: false,
  };
  private readonly v6: Ipv6Repr = {
    version: 6, src: Buffer.alloc(IPV6_ADDRESS_LEN), dst: Buffer.alloc(IPV6_ADDRESS_LEN), nextHeader: IPPROTO_ICMPV6,
    hopLimit: IPV6_DEFAULT_HOP_LIMIT, payloadLen: 0, dscp: 0, ecn: 0, flowLabel: 0,
  };

  constructor(options: EchoResponderOptions = {}) {
    this.counters = options.counters ?? new IpCounters();
    const limit = options.queueLimit ?? ECHO_RESPONDER_DEFAULT_QUEUE_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`queueLimit must be a positive integer, got ${limit}`);
    this.queue = new Array<Buffer | undefined>(limit).fill(undefined);
    this.ttl = options.ttl ?? IPV4_DEFAULT_TTL;
    this.hopLimit = options.hopLimit ?? IPV6_DEFAULT_HOP_LIMIT;
    this.ident = (options.identSeed ?? 0) & 0xffff;
  }

  /** Replies waiting to be sent. */
  get queued(): number {
    return this.count;
  }

  /**
   * Takes an IP packet of either version. Returns true when the packet was consumed: answered,
   * or dropped and counted (a malformed IP header, a malformed echo request, a full queue).
   * Returns false for a well-formed packet that is not an echo request, for the caller to pass
   * on. Never throws.
   */
  handlePacket(now: number, packet: Buffer): boolean {
    const info = parseIpPacket(packet, this.counters, this.info);
    if (info === null) return true;
    return this.handleParsed(now, info);
  }

  /** `handlePacket` for a packet that `parseIpPacket` already checked (no second parse). */
  handleParsed(_now: number, info: IpPacketInfo): boolean {
    const b = info.buffer;
    const off = info.headerLen;
    const end = info.end;
    const v4 = info.version === 4;
    if (info.protocol !== (v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6)) return false;
    if (off >= end || b[off] !== (v4 ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST)) return false;
    if (end - off < ICMP_ECHO_HEADER_LEN) {
      this.counters.increment('icmpTruncated');
      return true;
    }
    const pseudo = v4 ? 0 : ipPseudoHeaderSum(6, b, IPPROTO_ICMPV6, end - off);
    if (!verifyChecksum(b, off, end, pseudo)) {
      this.counters.increment('icmpBadChecksum');
      return true;
    }
    // RFC 1122 §3.2.2.6: "An ICMP Echo Request destined to an IP broadcast or IP multicast
    // address MAY be silently discarded." RFC 4443 §4.2 wants the reply to a multicast request
    // to come from "a unicast address belonging to the interface", and we own none; a request
    // from an unspecified or multicast source has nobody to answer to.
    const notUnicast = v4
      ? isIpv4MulticastOrBroadcast(b, IPV4_OFF_DST) || isIpv4MulticastOrBroadcast(b, IPV4_OFF_SRC) || isIpv4Unspecified(b, IPV4_OFF_SRC)
      : isIpv6Multicast(b, IPV6_OFF_DST) || isIpv6Multicast(b, IPV6_OFF_SRC) || isIpv6Unspecified(b, IPV6_OFF_SRC);
    if (notUnicast) {
      this.counters.increment('icmpEchoNotUnicast');
      return true;
    }
    if (this.count === this.queue.length) {
      this.counters.increment('icmpReplyQueueFull');
      return true;
    }
    const reply = v4 ? this.replyV4(b, off, end) : this.replyV6(b, off, end);
    this.queue[(this.head + this.count) % this.queue.length] = reply;
    this.count++;
    this.counters.increment('icmpEchoReplied');
    return true;
  }

  /** The next reply to write to the device, or null. */
  pollTransmit(): Buffer | null {
    if (this.count === 0) return null;
    const reply = this.queue[this.head] as Buffer;
    this.queue[this.head] = undefined;
    this.head = (this.head + 1) % this.queue.length;
    this.count--;
    return reply;
  }

  private replyV4(b: Buffer, off: number, end: number): Buffer {
    const icmpLen = end - off;
    const r = this.v4;
    // RFC 1122 §3.2.2.6: "The IP source address in an ICMP Echo Reply MUST be the same as the
    // specific-destination address ... of the corresponding ICMP Echo Request message."
    r.src = readU32(b, IPV4_OFF_DST);
    r.dst = readU32(b, IPV4_OFF_SRC);
    r.ttl = this.ttl;
    r.payloadLen = icmpLen;
    r.dscp = b[IPV4_OFF_TOS] >>> 2;
    r.ecn = 0;
    r.ident = this.ident;
    this.ident = (this.ident + 1) & 0xffff;
    const reply = Buffer.allocUnsafe(IPV4_MIN_HEADER_LEN + icmpLen);
    Ipv4Repr.emit(r, reply);
    this.copyEcho(b, off, end, reply, IPV4_MIN_HEADER_LEN, ICMPV4_ECHO_REPLY);
    return reply;
  }

  private replyV6(b: Buffer, off: number, end: number): Buffer {
    const icmpLen = end - off;
    const r = this.v6;
    b.copy(r.src, 0, IPV6_OFF_DST, IPV6_OFF_DST + IPV6_ADDRESS_LEN);
    b.copy(r.dst, 0, IPV6_OFF_SRC, IPV6_OFF_SRC + IPV6_ADDRESS_LEN);
    r.hopLimit = this.hopLimit;
    r.payloadLen = icmpLen;
    r.dscp = (((b[0] & 0x0f) << 4) | (b[1] >>> 4)) >>> 2;
    r.ecn = 0;
    const reply = Buffer.allocUnsafe(IPV6_HEADER_LEN + icmpLen);
    Ipv6Repr.emit(r, reply);
    this.copyEcho(b, off, end, reply, IPV6_HEADER_LEN, ICMPV6_ECHO_REPLY);
    return reply;
  }

  /**
   * Copies the request's ICMP message into the reply and turns it into a reply. RFC 792: "The
   * data received in the echo message must be returned in the echo reply message"; "To form an
   * echo reply message, the source and destination addresses are simply reversed, the type code
   * changed to 0, and the checksum recomputed." Only the Type changes, and swapping the
   * addresses leaves the IPv6 pseudo-header sum as it was, so RFC 1624 [Eqn. 3] on the
   * Type/Code word gives the new checksum from the verified old one.
   */
  private copyEcho(b: Buffer, off: number, end: number, reply: Buffer, at: number, replyType: number): void {
    b.copy(reply, at, off, end);
    const code = b[off + ICMP_OFF_CODE];
    const oldWord = (b[off + ICMP_OFF_TYPE] << 8) | code;
    const newWord = (replyType << 8) | code;
    reply[at + ICMP_OFF_TYPE] = replyType;
    writeU16(reply, at + ICMP_OFF_CHECKSUM, incrementalUpdate(readU16(b, off + ICMP_OFF_CHECKSUM), oldWord, newWord));
  }
}
