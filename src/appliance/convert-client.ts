// The client side of the concentrator (`mptun up --server`): which captured connections go to
// the concentrator, the RFC 8803 Convert message each one starts with, and what the
// concentrator's reply means for the app. The relay asks this module three things (a narrow
// hook): where to open the upstream connection, which bytes to send first, and what to do with
// the first bytes that come back. Sans-IO: time (unix seconds) and randomness are given.
//
// RFC 8803 (paraphrased here, not quoted: the session's tools could not re-read the RFC's text;
// the section numbers follow src/convert/message.ts): the client puts the Convert message —
// the fixed header (§4.1), a Connect TLV with the server's address and port (§4.2.5), and the
// Converter's Cookie (§4.2.7) — at the start of its bytestream, in the payload of its SYN when
// it can (TCP Fast Open, 0-RTT). The Converter answers with a Convert header of its own at the
// start of its bytestream, once the server answered; the bytes after it are the server's. An
// Error TLV (§4.2.8) instead says why not: Connection Reset (96: the server refused),
// Destination Unreachable (97, the Value is the ICMP code), Not Authorized (32) or Missing
// Cookie (3) for our key, Resource Exceeded (64, the Value a delay in seconds), Network
// Failure (65).
import { CounterSet } from '../ip/counters.js';
import { formatIpAddress, type IpPrefix } from '../ip/address.js';
import {
  CONVERT_ERR_CONNECTION_RESET,
  CONVERT_ERR_DESTINATION_UNREACHABLE,
  CONVERT_ERR_MISSING_COOKIE,
  CONVERT_ERR_NETWORK_FAILURE,
  CONVERT_ERR_NOT_AUTHORIZED,
  CONVERT_ERR_RESOURCE_EXCEEDED,
  convertErrorName,
  encodeConnect,
  parseReply,
} from '../convert/message.js';
import { COOKIE_NONCE_LEN, makeCookie } from '../convert/cookie.js';
import type { Endpoint } from '../tcp/connection.js';
import { internetChecksum, pseudoHeaderSumV6 } from '../ip/checksum.js';
import {
  IPPROTO_ICMP, IPV4_DEFAULT_TTL, IPV4_MIN_HEADER_LEN, IPV4_OFF_CHECKSUM, IPV4_OFF_DST, IPV4_OFF_PROTOCOL, IPV4_OFF_SRC,
  IPV4_OFF_TOTAL_LEN, IPV4_OFF_TTL, IPV4_OFF_VER_IHL,
} from '../ip/ipv4.js';
import {
  IPPROTO_ICMPV6, IPV6_ADDRESS_LEN, IPV6_DEFAULT_HOP_LIMIT, IPV6_HEADER_LEN, IPV6_OFF_DST, IPV6_OFF_HOP_LIMIT, IPV6_OFF_NEXT_HEADER,
  IPV6_OFF_PAYLOAD_LEN, IPV6_OFF_SRC, IPV6_OFF_VER_TC_FLOW, IPV6_VERSION,
} from '../ip/ipv6.js';

/** The concentrator's port when `--server HOST` names none (mptun's choice, not an IANA port). */
export const DEFAULT_CONCENTRATOR_PORT = 7443;

/** The Convert message, and the first bytes of the app with it, fit in one SYN at most this long. */
export const SYN_DATA_MAX = 512;

export const CONVERT_CLIENT_COUNTER_NAMES = [
  /** Captured connections sent to the concentrator. */
  'convertFlows',
  /** Captured connections kept direct: a --direct prefix. */
  'convertDirect',
  /** Captured connections to the concentrator itself, kept direct (never into itself). */
  'convertSelf',
  /** The Convert message rode in the MP_CAPABLE (or plain) SYN. */
  'convertInSyn',
  /** The SYN/ACK acknowledged the SYN's data (the concentrator took it at accept). */
  'convertSynDataAcked',
  /** The SYN's data was not acknowledged: sent again as the first data. */
  'convertSynDataResent',
  /** The reply header said the destination accepted. */
  'convertAccepted',
  /** Error 96: the destination refused (RST). */
  'convertRefused',
  /** Error 97: the destination is unreachable. */
  'convertUnreachable',
  /** Error 32 (or 3): the concentrator refused our key. */
  'convertNotAuthorized',
  /** Error 64: the concentrator's limits. */
  'convertResourceExceeded',
  /** Error 65: the concentrator's network failed. */
  'convertNetworkFailure',
  /** Any other Error TLV. */
  'convertOtherError',
  /** A reply that is no Convert message. */
  'convertMalformedReply',
  /** The concentrator's connection ended before its reply. */
  'convertClosedBeforeReply',
  /** Connections to the concentrator opened ahead of the apps (the pool), and established. */
  'poolOpened', 'poolReady',
  /** An app's connection took one from the pool (one round trip saved). */
  'poolUsed',
  /** An app's connection found none ready: it opened its own (the Convert message in its SYN). */
  'poolEmpty',
  /** The pooled connection an app's connection took was gone before any reply (the concentrator restarted, say): it opened its own. */
  'poolStale',
  /** Closed unused after CONVERT_POOL_MAX_AGE_MS, for a fresh one (the concentrator waits for a first byte a while only). */
  'poolRetired',
  /** Lost while waiting (reset, closed by the concentrator, or never established: then retried after a back-off). */
  'poolLost', 'poolFailed',
] as const;
export type ConvertClientCounterName = (typeof CONVERT_CLIENT_COUNTER_NAMES)[number];

export interface ConvertClientOptions {
  /** The concentrator (an IPv4 or IPv6 address and port). */
  server: Endpoint;
  /** The key shared with the concentrator (32 bytes). */
  key: Uint8Array;
  /** Destinations that are not sent to the concentrator. */
  direct: readonly IpPrefix[];
  /** Randomness for the cookie's nonce. */
  random: (n: number) => Buffer;
  /** The wall clock, unix seconds (the cookie's time window). */
  nowS: () => number;
  /** A refusal worth a line in the log (the appliance's logger). */
  log?: (level: 'info' | 'warn', line: string) => void;
  /**
   * Connections to the concentrator kept open ahead of the apps (default 2; 0: none). An app's
   * connection that takes one costs one round trip to the concentrator plus the concentrator's
   * own connect; one that opens its own, two with the kernel's MPTCP listener (the reply can
   * only leave once the third ACK arrived).
   */
  pool?: number;
}


/** What the app gets for a reply. */
export type ReplyOutcome =
  | { kind: 'incomplete' }
  /** Answer the app's SYN; `rest` is the server's first bytes, for the app. */
  | { kind: 'accepted'; rest: Buffer }
  /** A RST to the app (ECONNREFUSED). */
  | { kind: 'refused'; code: number | null }
  /** The destination is unreachable: the app's connect fails at once (ICMP unreachable, `icmpCode`). */
  | { kind: 'unreachable'; icmpCode: number };

/** The reply header being read for one connection. */
export class PendingReply {
  private buf: Buffer = Buffer.alloc(0);
  constructor(readonly destination: Endpoint) {}

  /** Bytes of the reply read so far. */
  get received(): number {
    return this.buf.length;
  }

  /** Bytes read from the concentrator; the outcome once the reply header is whole. */
  push(client: ConvertClient, bytes: Buffer): ReplyOutcome {
    this.buf = this.buf.length === 0 ? bytes : Buffer.concat([this.buf, bytes]);
    return client.judge(this.destination, this.buf);
  }
}

export class ConvertClient {
  readonly counters = new CounterSet(CONVERT_CLIENT_COUNTER_NAMES);
  readonly server: Endpoint;
  private readonly options: ConvertClientOptions;

  /** Connections kept open ahead of the apps (ConvertClientOptions.pool). */
  readonly pool: number;

  constructor(options: ConvertClientOptions) {
    this.options = options;
    this.server = options.server;
    this.pool = options.pool ?? 2;
  }

  /**
   * Whether a captured connection to `destination` goes to the concentrator (counted): not for
   * a --direct prefix, and never for the concentrator's own address.
   */
  viaConcentrator(destination: Endpoint): boolean {
    const a = destination.addr;
    if (a.equals(this.server.addr)) {
      this.counters.increment('convertSelf');
      return false;
    }
    const family = a.length === 4 ? 4 : 6;
    if (this.options.direct.some((p) => p.contains(family, a))) {
      this.counters.increment('convertDirect');
      return false;
    }
    this.counters.increment('convertFlows');
    return true;
  }

  /** The Convert message for `destination`: the Connect TLV and a fresh Cookie TLV. */
  request(destination: Endpoint): Buffer {
    const nonce = this.options.random(COOKIE_NONCE_LEN);
    const cookie = makeCookie(this.options.key, this.options.nowS(), nonce, destination.addr, destination.port);
    return encodeConnect(destination.addr, destination.port, cookie);
  }

  /** The outcome of a (possibly partial) reply from the concentrator; counted once whole. */
  judge(destination: Endpoint, buf: Buffer): ReplyOutcome {
    const r = parseReply(buf);
    if (r.kind === 'incomplete') return { kind: 'incomplete' };
    const dst = `${formatIpAddress(destination.addr)}:${destination.port}`;
    if (r.kind === 'drop') {
      this.counters.increment('convertMalformedReply');
      this.options.log?.('warn', `concentrator: a malformed reply (${r.reason}) for ${dst}: reset to the app`);
      return { kind: 'refused', code: null };
    }
    if (r.kind === 'ok') {
      this.counters.increment('convertAccepted');
      return { kind: 'accepted', rest: Buffer.from(buf.subarray(r.length)) };
    }
    switch (r.code) {
      case CONVERT_ERR_CONNECTION_RESET:
        this.counters.increment('convertRefused');
        return { kind: 'refused', code: r.code };
      case CONVERT_ERR_DESTINATION_UNREACHABLE:
        this.counters.increment('convertUnreachable');
        return { kind: 'unreachable', icmpCode: r.value };
      case CONVERT_ERR_NOT_AUTHORIZED:
      case CONVERT_ERR_MISSING_COOKIE:
        this.counters.increment('convertNotAuthorized');
        // Not Authorized is also the concentrator's answer for a destination it does not serve
        // (a private range not --allow'ed, its own address): its log says which
        this.options.log?.('warn', `concentrator ${formatIpAddress(this.server.addr)}:${this.server.port} refused our key (${convertErrorName(r.code)}) for ${dst}: is --key the server's key, and are the clocks within 30 s?`
          + (r.code === CONVERT_ERR_NOT_AUTHORIZED ? ' (or the concentrator does not serve this destination: a private range it does not --allow, its own address; its log says which)' : ''));
        return { kind: 'refused', code: r.code };
      case CONVERT_ERR_RESOURCE_EXCEEDED:
        this.counters.increment('convertResourceExceeded');
        this.options.log?.('warn', `concentrator: resource exceeded for ${dst} (retry in ${r.value} s): reset to the app`);
        return { kind: 'refused', code: r.code };
      case CONVERT_ERR_NETWORK_FAILURE:
        this.counters.increment('convertNetworkFailure');
        this.options.log?.('info', `concentrator: network failure towards ${dst}`);
        return { kind: 'unreachable', icmpCode: 0 };
      default:
        this.counters.increment('convertOtherError');
        this.options.log?.('warn', `concentrator: error ${convertErrorName(r.code)} for ${dst}: reset to the app`);
        return { kind: 'refused', code: r.code };
    }
  }

  /** The concentrator's connection ended before its reply was whole. */
  closedBeforeReply(): void {
    this.counters.increment('convertClosedBeforeReply');
  }
}

// RFC 792, Destination Unreachable Message:
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |     Type      |     Code      |          Checksum             |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                             unused                            |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |      Internet Header + 64 bits of Original Data Datagram      |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// "Type 3"; "Codes 0 = net unreachable; 1 = host unreachable; ..."; "The internet header plus
// the first 64 bits of the original datagram's data. This data is used by the host to match
// the message to the appropriate process." Linux fails a connect() in SYN-SENT at once on it
// (tcp_v4_err: EHOSTUNREACH, ENETUNREACH), where a RST would say ECONNREFUSED.
export const ICMPV4_DEST_UNREACHABLE = 3;
const ICMP_UNREACH_HEADER_LEN = 8;
const ORIGINAL_DATA_LEN = 8;

// RFC 4443 §3.1, Destination Unreachable Message (ICMPv6):
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |     Type      |     Code      |          Checksum             |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                             Unused                            |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                    As much of invoking packet                 |
//   +                as possible without the ICMPv6 packet          +
//   |                exceeding the minimum IPv6 MTU [IPv6]          |
//
// "Type 1"; "Code 0 - No route to destination, 1 - Communication with destination
// administratively prohibited, ... 3 - Address unreachable, 4 - Port unreachable". Its checksum
// covers the IPv6 pseudo-header (§2.3, Next Header 58). Linux fails a connect() in SYN-SENT at
// once on it (tcp_v6_err: ENETUNREACH for 0, EACCES for 1, EHOSTUNREACH for 3). The concentrator
// sends the ICMPv6 code for an IPv6 destination (src/server/concentrator.ts `unreachableCode`).
export const ICMPV6_DEST_UNREACHABLE = 1;
/** RFC 8200 §5: "IPv6 requires that every link in the Internet have an MTU of 1280 octets or greater." */
const IPV6_MIN_MTU = 1280;

/**
 * A Destination Unreachable for the app's SYN `syn` (an IPv4 or IPv6 packet, answered in its
 * own version: ICMPv4 type 3 or ICMPv6 type 1), from the address the SYN went to, after
 * `headroom` zero bytes; null for anything else.
 */
export function icmpUnreachableForSyn(syn: Buffer, code: number, headroom: number): Buffer | null {
  if (syn.length >= IPV6_HEADER_LEN && syn[IPV6_OFF_VER_TC_FLOW]! >>> 4 === 6) return icmp6UnreachableForSyn(syn, code, headroom);
  if (syn.length < IPV4_MIN_HEADER_LEN || syn[IPV4_OFF_VER_IHL]! >>> 4 !== 4) return null;
  const ihl = (syn[IPV4_OFF_VER_IHL]! & 0xf) * 4;
  const quoted = syn.subarray(0, Math.min(syn.length, ihl + ORIGINAL_DATA_LEN));
  const total = IPV4_MIN_HEADER_LEN + ICMP_UNREACH_HEADER_LEN + quoted.length;
  const out = Buffer.alloc(headroom + total);
  const ip = out.subarray(headroom);
  ip[IPV4_OFF_VER_IHL] = 0x45;
  ip.writeUInt16BE(total, IPV4_OFF_TOTAL_LEN);
  ip[IPV4_OFF_TTL] = IPV4_DEFAULT_TTL;
  ip[IPV4_OFF_PROTOCOL] = IPPROTO_ICMP;
  syn.copy(ip, IPV4_OFF_SRC, IPV4_OFF_DST, IPV4_OFF_DST + 4);
  syn.copy(ip, IPV4_OFF_DST, IPV4_OFF_SRC, IPV4_OFF_SRC + 4);
  ip.writeUInt16BE(internetChecksum(ip, 0, IPV4_MIN_HEADER_LEN), IPV4_OFF_CHECKSUM);
  const icmp = ip.subarray(IPV4_MIN_HEADER_LEN);
  icmp[0] = ICMPV4_DEST_UNREACHABLE;
  icmp[1] = code;
  quoted.copy(icmp, ICMP_UNREACH_HEADER_LEN);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  return out;
}

function icmp6UnreachableForSyn(syn: Buffer, code: number, headroom: number): Buffer {
  const quoted = syn.subarray(0, Math.min(syn.length, IPV6_MIN_MTU - IPV6_HEADER_LEN - ICMP_UNREACH_HEADER_LEN));
  const icmpLen = ICMP_UNREACH_HEADER_LEN + quoted.length;
  const out = Buffer.alloc(headroom + IPV6_HEADER_LEN + icmpLen);
  const ip = out.subarray(headroom);
  ip[IPV6_OFF_VER_TC_FLOW] = IPV6_VERSION << 4;
  ip.writeUInt16BE(icmpLen, IPV6_OFF_PAYLOAD_LEN);
  ip[IPV6_OFF_NEXT_HEADER] = IPPROTO_ICMPV6;
  ip[IPV6_OFF_HOP_LIMIT] = IPV6_DEFAULT_HOP_LIMIT;
  syn.copy(ip, IPV6_OFF_SRC, IPV6_OFF_DST, IPV6_OFF_DST + IPV6_ADDRESS_LEN);
  syn.copy(ip, IPV6_OFF_DST, IPV6_OFF_SRC, IPV6_OFF_SRC + IPV6_ADDRESS_LEN);
  const icmp = ip.subarray(IPV6_HEADER_LEN);
  icmp[0] = ICMPV6_DEST_UNREACHABLE;
  icmp[1] = code;
  quoted.copy(icmp, ICMP_UNREACH_HEADER_LEN);
  const pseudo = pseudoHeaderSumV6(ip, ip, IPPROTO_ICMPV6, icmpLen, IPV6_OFF_SRC, IPV6_OFF_DST);
  icmp.writeUInt16BE(internetChecksum(icmp, 0, icmp.length, pseudo), 2);
  return out;
}
