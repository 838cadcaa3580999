// MPTCP over the simulator: multi-homed hosts that run the real MptcpStack (src/mptcp/stack.ts)
// with a small application on top (a bulk sender, a sink that hashes what it reads), middlebox
// hooks (one strips MPTCP options from SYNs, one drops chosen packets), and helpers to craft and
// parse segments, for scenario tests (test/mptcp/sim.test.ts).
//
// A host has one interface per address (interface i holds `addrs[i]`). What leaves it is
// routed as the appliance's kernel routes it (DESIGN.md, "The packet path of the client"):
//   - `route: 'source'` (the client): policy routing, a packet leaves by the interface of its
//     SOURCE address (`ip rule from <prefix> lookup <table>`);
//   - `route: Map<peer address, iface>` (the server): by destination, each peer address is
//     reachable by one interface.
// A packet that no rule routes is counted (`counters.unrouted`) and dropped.
//
// The driver contract is the engine's (src/appliance/engine.ts): after every input and every
// timeout, `stack.process(now)`, the stack's events, the applications, `stack.process(now)`
// again; then the simulator drains `pollTransmit` and re-arms the timer.
import { createHash, type Hash } from 'node:crypto';
import type { Instant, SansIoNode, Transmit } from '../../src/ip/sansio.js';
import { IpCounters } from '../../src/ip/counters.js';
import { IpPacketInfo, parseIpPacket, pseudoHeaderSum } from '../../src/ip/packet.js';
import { IPPROTO_TCP } from '../../src/ip/ipv4.js';
import { formatIpAddress, parseIpAddress } from '../../src/ip/address.js';
import { internetChecksum } from '../../src/ip/checksum.js';
import {
  TCP_FLAG_ACK, TCP_FLAG_SYN, TCP_OFF_CHECKSUM, TCP_OFF_DATA_OFFSET, TCP_OFF_FLAGS, TCP_OFF_OPTIONS,
  TCP_OPT_EOL, TCP_OPT_MPTCP, TCP_OPT_NOP, TcpCodecCounters, emitIpTcp, newTcpRepr, parseTcp, tcpPacketLen,
  type TcpRepr,
} from '../../src/tcp/segment.js';
import { emitMptcpOptionBuffer, parseMptcpOption, type MptcpOption } from '../../src/mptcp/options.js';
import type { TcpConfig } from '../../src/tcp/connection.js';
import type { Endpoint } from '../../src/tcp/connection.js';
import { MptcpStack, type ConnectOptions, type MptcpStackEvent } from '../../src/mptcp/stack.js';
import type { MptcpConfig, MptcpConnection } from '../../src/mptcp/protocol.js';
import { Rng } from '../sim/rng.js';
import type { ForwardHook } from '../sim/nodes.js';

export const addr = (text: string): Buffer => parseIpAddress(text).bytes;

/** Seeded data and its digest, as the TCP scenario tests make them. */
export { randomBytes, sha256 } from '../tcp/harness.js';

export type App = (now: Instant, host: MptcpHost) => void;

export interface MptcpHostOptions {
  /** Seed of the stack's randomness (keys, nonces, ports): a run replays. */
  seed: number;
  /** The host's addresses; interface i holds addrs[i]. */
  addrs: Buffer[];
  /** 'source': leave by the interface of the source address; a map: by destination address (dotted text). */
  route: 'source' | ReadonlyMap<string, number>;
  tcp?: Partial<TcpConfig>;
  mptcp?: Partial<MptcpConfig>;
  mtu?: number;
  /** Initial sequence numbers instead of RFC 6528's (TcpStackOptions.initialSequence). */
  initialSequence?: (local: Endpoint, remote: Endpoint) => number;
}

export interface LoggedEvent extends MptcpStackEvent {
  time: Instant;
}

/** A multi-homed host: an MptcpStack, policy routing, applications run after every input and timeout. */
export class MptcpHost implements SansIoNode {
  readonly stack: MptcpStack;
  readonly addrs: Buffer[];
  readonly log: LoggedEvent[] = [];
  readonly counters = { unrouted: 0, packetsOut: [] as number[], packetsIn: [] as number[] };
  private readonly apps: App[] = [];
  private readonly route: 'source' | ReadonlyMap<string, number>;
  private readonly ipCounters = new IpCounters();
  private readonly info = new IpPacketInfo();
  private readonly bySource = new Map<string, number>();

  constructor(options: MptcpHostOptions) {
    const rng = new Rng(options.seed);
    this.addrs = options.addrs;
    this.route = options.route;
    options.addrs.forEach((a, i) => this.bySource.set(formatIpAddress(a), i));
    this.stack = new MptcpStack({
      random: (n) => {
        const b = Buffer.allocUnsafe(n);
        for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff;
        return b;
      },
      isnSecret: Buffer.from('simulated secret'),
      tcp: options.tcp ?? {},
      mptcp: options.mptcp ?? {},
      mtu: options.mtu ?? 1500,
      initialSequence: options.initialSequence ?? null,
    });
  }

  addApp(app: App): void {
    this.apps.push(app);
  }

  /** Opens an MPTCP connection from `local` (the first is the initial subflow's) to `remote`, at `now`. */
  connect(now: Instant, local: Buffer[], remote: Endpoint, options: ConnectOptions = {}): MptcpConnection {
    const conn = this.stack.connect(now, local, remote, options);
    this.tick(now);
    return conn;
  }

  /** What the engine's onTick does: process, events, applications, process. */
  tick(now: Instant): void {
    this.stack.process(now);
    this.drainEvents(now);
    for (const app of this.apps) app(now, this);
    this.stack.process(now);
    this.drainEvents(now);
  }

  private drainEvents(now: Instant): void {
    for (let e = this.stack.pollEvent(); e; e = this.stack.pollEvent()) this.log.push({ time: now, ...e });
  }

  /** The first time `conn` had an event of `type`, or null. */
  eventTime(conn: MptcpConnection, type: MptcpStackEvent['event']['type']): Instant | null {
    return this.log.find((e) => e.conn === conn && e.event.type === type)?.time ?? null;
  }

  handleInput(now: Instant, iface: number, packet: Buffer): void {
    this.counters.packetsIn[iface] = (this.counters.packetsIn[iface] ?? 0) + 1;
    this.stack.handleInput(now, iface, packet);
    this.tick(now);
  }

  handleTimeout(now: Instant): void {
    this.stack.handleTimeout(now);
    this.tick(now);
  }

  pollTransmit(now: Instant): Transmit | null {
    for (;;) {
      const out = this.stack.pollOutput(now);
      if (out === null) return null;
      // headroom 0: the buffer is the IP packet
      const iface = this.routeOf(out.buffer);
      if (iface === null) {
        this.counters.unrouted++;
        continue;
      }
      this.counters.packetsOut[iface] = (this.counters.packetsOut[iface] ?? 0) + 1;
      return { iface, packet: out.buffer };
    }
  }

  pollTimeout(): Instant | null {
    return this.stack.pollTimeout();
  }

  private routeOf(packet: Buffer): number | null {
    const ip = parseIpPacket(packet, this.ipCounters, this.info);
    if (!ip) return null;
    if (this.route === 'source') return this.bySource.get(formatIpAddress(ip.src)) ?? null;
    return this.route.get(formatIpAddress(ip.dst)) ?? null;
  }
}

/** Writes `data` on an MPTCP connection as its buffer allows, then shuts it down (DATA_FIN). */
export class MptcpSender {
  private offset = 0;
  finished = false;
  constructor(readonly conn: MptcpConnection, readonly data: Buffer, readonly chunk = 64 * 1024) {}
  pump(): void {
    while (this.offset < this.data.length) {
      const n = this.conn.write(this.data.subarray(this.offset, Math.min(this.offset + this.chunk, this.data.length)));
      if (n === 0) break;
      this.offset += n;
    }
    if (this.offset === this.data.length && !this.finished) {
      this.finished = true;
      this.conn.shutdown();
    }
  }
  get written(): number {
    return this.offset;
  }
}

/** Reads everything from an MPTCP connection, hashing it; shuts its own side down when the peer's ends. */
export class MptcpSink {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  /** When the end of the peer's stream was read, or null. */
  endedAt: Instant | null = null;
  constructor(readonly conn: MptcpConnection, readonly closeOnEnd = true) {}
  pump(now: Instant): void {
    for (let b = this.conn.read(); b; b = this.conn.read()) {
      this.hash.update(b);
      this.bytes += b.length;
    }
    if (this.conn.readEnded && this.endedAt === null) {
      this.endedAt = now;
      if (this.closeOnEnd) this.conn.shutdown();
    }
  }
  digest(): string {
    return this.hash.copy().digest('hex');
  }
}

/** Calls `fn(kind, at, len)` for each TCP option of the header at `tcp` (ending at `end`). */
function forEachTcpOption(packet: Buffer, tcp: number, end: number, fn: (kind: number, at: number, len: number) => void): void {
  for (let i = tcp + TCP_OFF_OPTIONS; i < end; ) {
    const kind = packet[i]!;
    if (kind === TCP_OPT_EOL) break;
    if (kind === TCP_OPT_NOP) {
      i++;
      continue;
    }
    const len = packet[i + 1]!;
    if (len < 2 || i + len > end) break;
    fn(kind, i, len);
    i += len;
  }
}

/**
 * A middlebox hook (for a `Forwarder`) that removes every MPTCP option (kind 30) from the SYNs
 * (not SYN/ACKs) entering on `fromIface`: the option bytes become NOPs and the TCP checksum is
 * computed again, as `nft ... reset tcp option mptcp` does. `stripped` counts the SYNs it changed.
 */
export function stripMptcpFromSyns(fromIface: number): ForwardHook & { stripped: number } {
  const counters = new IpCounters();
  const info = new IpPacketInfo();
  const hook = (_now: Instant, from: number, packet: Buffer): Buffer => {
    if (from !== fromIface) return packet;
    const ip = parseIpPacket(packet, counters, info);
    if (!ip || ip.protocol !== IPPROTO_TCP) return packet;
    const tcp = ip.headerLen;
    if ((packet[tcp + TCP_OFF_FLAGS]! & (TCP_FLAG_SYN | TCP_FLAG_ACK)) !== TCP_FLAG_SYN) return packet;
    const end = tcp + (packet[tcp + TCP_OFF_DATA_OFFSET]! >>> 4) * 4;
    let changed = false;
    forEachTcpOption(packet, tcp, end, (kind, at, len) => {
      if (kind === TCP_OPT_MPTCP) {
        packet.fill(TCP_OPT_NOP, at, at + len);
        changed = true;
      }
    });
    if (changed) {
      packet.writeUInt16BE(0, tcp + TCP_OFF_CHECKSUM);
      packet.writeUInt16BE(internetChecksum(packet, tcp, ip.end, pseudoHeaderSum(ip)), tcp + TCP_OFF_CHECKSUM);
      hook.stripped++;
    }
    return packet;
  };
  hook.stripped = 0;
  return hook;
}

/** An IPv4 (or IPv6, by the addresses) + TCP packet from `src` to `dst` for `seg` (a template with overrides), checksummed: a segment crafted by hand. */
export function craftSegment(src: Buffer, dst: Buffer, seg: Partial<TcpRepr>, mptcp: MptcpOption[] = []): Buffer {
  const repr: TcpRepr = { ...newTcpRepr(), window: 65535, ...seg };
  repr.options = { ...repr.options, mptcp: mptcp.map((o) => emitMptcpOptionBuffer(o)) };
  const ipVersion = src.length === 16 ? 6 : 4;
  const buf = Buffer.alloc(tcpPacketLen(repr, ipVersion));
  emitIpTcp(buf, 0, { ipVersion, src, dst, ttl: 64 }, repr, { checksum: 'full' });
  return buf;
}

/** A TCP segment seen on the wire: its addresses, its representation and its MPTCP options, parsed. */
export interface WireSegment {
  src: string;
  dst: string;
  tcp: TcpRepr;
  mptcp: MptcpOption[];
}

/** Parses an IP packet carrying TCP (checksum verified), or null. */
export function parseSegment(packet: Buffer): WireSegment | null {
  const ip = parseIpPacket(packet, new IpCounters());
  if (!ip || ip.protocol !== IPPROTO_TCP) return null;
  const tcp = parseTcp(ip, new TcpCodecCounters(), { checksum: 'verify' });
  if (!tcp) return null;
  const ctx = { syn: (tcp.flags & TCP_FLAG_SYN) !== 0, ack: (tcp.flags & TCP_FLAG_ACK) !== 0 };
  const mptcp: MptcpOption[] = [];
  for (const raw of tcp.options.mptcp ?? []) {
    const o = parseMptcpOption(raw, ctx);
    if (o) mptcp.push(o);
  }
  return { src: formatIpAddress(ip.src), dst: formatIpAddress(ip.dst), tcp, mptcp };
}

/**
 * A middlebox hook (for a `Forwarder`) that drops the first `count` packets entering on
 * `fromIface` for which `match` is true: a loss aimed at one packet. `dropped` counts them.
 */
export function dropMatching(fromIface: number, match: (seg: WireSegment) => boolean, count = 1): ForwardHook & { dropped: number } {
  const hook = (_now: Instant, from: number, packet: Buffer): Buffer | null => {
    if (from !== fromIface || hook.dropped >= count) return packet;
    const seg = parseSegment(packet);
    if (seg && match(seg)) {
      hook.dropped++;
      return null;
    }
    return packet;
  };
  hook.dropped = 0;
  return hook;
}

/** True for a segment whose DSS carries the DATA_FIN flag. */
export const carriesDataFin = (seg: WireSegment): boolean => seg.mptcp.some((o) => o.type === 'dss' && o.dataFin);

/**
 * A middlebox hook (for a `Forwarder`) that makes the DATA_ACK lag the way Linux's may: a
 * receiver TCP-acks the last segment before its connection level has taken the data, and the
 * ACK's DATA_ACK does not cover it. On one subflow: once the sender (entering on the other
 * interface) has sent `holdFrom` bytes, the first `count` ACKs from the receiver (entering on
 * `fromIface`) that acknowledge all it sent get the previous 8-octet DATA_ACK written over
 * theirs (the TCP ACK untouched, the checksum computed again). `held` counts them.
 */
export function lagDataAck(fromIface: number, holdFrom: number, count = 1): ForwardHook & { held: number } {
  const counters = new IpCounters();
  const info = new IpPacketInfo();
  let isn: number | null = null;
  let sentEnd: number | null = null;
  let lastAck: bigint | null = null;
  const hook = (_now: Instant, from: number, packet: Buffer): Buffer => {
    const ip = parseIpPacket(packet, counters, info);
    if (!ip || ip.protocol !== IPPROTO_TCP) return packet;
    const tcp = ip.headerLen;
    const end = tcp + (packet[tcp + TCP_OFF_DATA_OFFSET]! >>> 4) * 4;
    const seq = packet.readUInt32BE(tcp + 4);
    if (from !== fromIface) {
      if ((packet[tcp + TCP_OFF_FLAGS]! & (TCP_FLAG_SYN | TCP_FLAG_ACK)) === TCP_FLAG_SYN) isn = seq;
      const segEnd = (seq + (ip.end - end)) >>> 0;
      if (isn !== null && (sentEnd === null || ((segEnd - sentEnd) | 0) > 0)) sentEnd = segEnd;
      return packet;
    }
    let at = -1;
    forEachTcpOption(packet, tcp, end, (kind, i, len) => {
      // RFC 8684 §3.3: DSS is subtype 2; flag A (0x01) a Data ACK, a (0x02) 8 octets of it
      if (kind === TCP_OPT_MPTCP && packet[i + 2]! >>> 4 === 2 && (packet[i + 3]! & 0x03) === 0x03 && len >= 12) at = i + 4;
    });
    if (at < 0) return packet;
    const dataAck = packet.readBigUInt64BE(at);
    const ackAll = sentEnd !== null && packet.readUInt32BE(tcp + 8) === sentEnd;
    const sent = isn !== null && sentEnd !== null ? ((sentEnd - isn - 1) >>> 0) : 0;
    if (hook.held < count && ackAll && sent >= holdFrom && lastAck !== null && dataAck !== lastAck) {
      packet.writeBigUInt64BE(lastAck, at);
      packet.writeUInt16BE(0, tcp + TCP_OFF_CHECKSUM);
      packet.writeUInt16BE(internetChecksum(packet, tcp, ip.end, pseudoHeaderSum(ip)), tcp + TCP_OFF_CHECKSUM);
      hook.held++;
      return packet;
    }
    lastAck = dataAck;
    return packet;
  };
  hook.held = 0;
  return hook;
}
