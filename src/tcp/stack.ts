// The TCP stack: many connections behind one interface (sans-IO, a SansIoNode).
//
// Demultiplexes segments by 4-tuple (a hash table, no string per packet: demux.ts); a listener
// may accept a SYN to ANY destination (mptun impersonates every destination routed into its
// device); a SYN backlog with a limit; RST for segments that belong to no connection (RFC 9293
// §3.10.7.1); ISNs per RFC 6528. The connections' deadlines are in one heap (deadlines.ts), and
// only the connections that had input, a timer or a user's action are polled: an idle
// connection, or one in TIME-WAIT, costs nothing per packet or tick.
import { createHash } from 'node:crypto';
import { Fifo } from '../ip/fifo.js';
import type { DeviceOutput, Instant, SansIoNode, Transmit } from '../ip/sansio.js';
import { IpCounters, CounterSet, CounterTotals, type CounterGroupValues } from '../ip/counters.js';
import { IpPacketInfo, parseIpPacket } from '../ip/packet.js';
import { IPPROTO_TCP } from '../ip/ipv4.js';
import { internAddress, isUnicastAddress } from '../ip/address.js';
import {
  TcpConnection, TcpState, newTcpCounterGroups, sharedTcpConfig, type Endpoint, type OutSegment, type TcpConfig, type TcpCounterGroups, type TcpEvent, type TcpUpperLayerInit,
} from './connection.js';
import {
  TCP_FLAG_ACK, TCP_FLAG_RST, TCP_FLAG_SYN, TCP_FLAG_FIN, TcpCodecCounters, emitIpTcp, parseTcp, tcpPacketLen,
  type TcpRepr,
} from './segment.js';
import { seqAdd } from './seq.js';
import { DeadlineHeap } from './deadlines.js';
import { TupleTable } from './demux.js';

export const STACK_COUNTER_NAMES = [
  'packetsIn', 'packetsOut', 'notTcp', 'noConnection', 'resetsSentNoConnection', 'synAccepted', 'synRefused',
  'synBacklogFull', 'synDeferred', 'connectionsOpened', 'connectionsClosed', 'badAddress',
] as const;
export type StackCounterName = (typeof STACK_COUNTER_NAMES)[number];

export interface ListenAccept {
  config?: Partial<TcpConfig>;
  /** Makes the protocol over the new connection (an MPTCP subflow's), as the connection is made. */
  upperLayer?: TcpUpperLayerInit;
  /** Runs on the new connection before it handles the SYN. */
  setup?: (conn: TcpConnection) => void;
}

/** Address pairs whose timestamp offset a stack keeps (tsOffset). */
const TS_OFFSETS_MAX = 1024;

/**
 * What a listener says of a SYN: accept (true, a config, or a ListenAccept), refuse with a RST
 * (false), or `null`: drop it silently for now (the relay answers a host's SYN only once the
 * upstream connection is up, and feeds the SYN in again then).
 */
export type ListenVerdict = Partial<TcpConfig> | boolean | ListenAccept | null;

export interface ListenRequest {
  local: Endpoint;
  remote: Endpoint;
  syn: TcpRepr;
}

export interface TcpStackOptions {
  tcp?: Partial<TcpConfig>;
  /** Connections in SYN-RECEIVED at most; more SYNs are dropped and counted. */
  synBacklog?: number;
  /** RFC 6528 secret; give a random one in production, a fixed one in the simulator. */
  isnSecret?: Buffer;
  /**
   * Tests only: the initial sequence number of each connection instead of RFC 6528's (e.g. near
   * 2^32, so that the sequence numbers wrap early in a run). Null: RFC 6528.
   */
  initialSequence?: ((local: Endpoint, remote: Endpoint) => number) | null;
  ttl?: number;
  /** Whether segments are checksummed in full or left partial for the device (vnet_hdr offload). */
  checksumOffload?: boolean;
  /** Skip verification of incoming checksums (the device has verified them). */
  trustChecksums?: boolean;
  /** Bytes left free at the front of every output buffer (the device's virtio-net header). */
  headroom?: number;
  /**
   * The path MTU: the MSS of a connection is clamped to it less the IP and TCP headers
   * (RFC 9293 §3.7.1: "the MSS value ... SHOULD be the MTU less the fixed IP and TCP headers").
   */
  mtu?: number;
  /**
   * The caller is done with each packet of pollOutput/pollSegment before it polls the next (the
   * engine writes it to the device at once): every packet is built in one buffer of the stack,
   * not a new one (no allocation, no garbage per packet). Off by default: tests and the
   * simulator keep the packets they poll.
   */
  reuseOutput?: boolean;
}

export interface StackEvent {
  conn: TcpConnection;
  event: TcpEvent;
}

export class TcpStack implements SansIoNode {
  readonly counters = new CounterSet(STACK_COUNTER_NAMES);
  readonly ipCounters = new IpCounters();
  readonly codecCounters = new TcpCodecCounters();
  /** The counters of the connections that closed, folded in as each is forgotten (see `connectionCounters`). */
  readonly closedTotals = new CounterTotals<TcpCounterGroups>(newTcpCounterGroups);
  /** Called as a closed connection is forgotten, after its counters were folded into `closedTotals`. */
  onConnectionClosed: ((conn: TcpConnection) => void) | null = null;
  /**
   * Called for a connection that had input or a timer, or sent a segment (the MPTCP stack runs
   * the connection-level protocol of the subflows so woken, and no other).
   */
  onWake: ((conn: TcpConnection) => void) | null = null;
  private readonly connections: TupleTable<TcpConnection>;
  /** Each connection's earliest deadline. */
  private readonly deadlines = new DeadlineHeap<TcpConnection>();
  /** Connections to poll for output. */
  private readonly active = new Set<TcpConnection>();
  /** Connections whose events have not been drained into `events`. */
  private readonly eventful = new Set<TcpConnection>();
  private readonly events = new Fifo<StackEvent>();
  private readonly synReceived = new Set<TcpConnection>();
  private readonly rstQueue: Buffer[] = [];
  private listener: ((req: ListenRequest) => ListenVerdict) | null = null;
  private readonly info = new IpPacketInfo();
  private readonly opts: Required<Omit<TcpStackOptions, 'tcp'>> & { tcp: Partial<TcpConfig> };
  private rr: TcpConnection[] = [];

  constructor(options: TcpStackOptions = {}) {
    this.opts = {
      tcp: options.tcp ?? {},
      synBacklog: options.synBacklog ?? 1024,
      isnSecret: options.isnSecret ?? Buffer.alloc(16),
      initialSequence: options.initialSequence ?? null,
      ttl: options.ttl ?? 64,
      checksumOffload: options.checksumOffload ?? false,
      trustChecksums: options.trustChecksums ?? false,
      headroom: options.headroom ?? 0,
      mtu: options.mtu ?? 1500,
      reuseOutput: options.reuseOutput ?? false,
    };
    this.connections = new TupleTable(this.opts.isnSecret.length >= 4 ? this.opts.isnSecret.readInt32LE(0) : 0);
  }

  /**
   * Accepts SYNs: the callback says yes (true, a config for the connection, or a ListenAccept
   * whose `upperLayer` is made with the new connection and whose `setup` runs on it before it sees the SYN) or no (false: RST).
   */
  listen(accept: (req: ListenRequest) => ListenVerdict): void {
    this.listener = accept;
  }

  /** Whether a connection (TIME-WAIT included) holds the pair: connect() would refuse it. */
  holds(local: Endpoint, remote: Endpoint): boolean {
    return this.connections.get(remote, local) !== undefined;
  }

  /** Opens a connection (active open); `upperLayer`: the protocol over it (an MPTCP subflow's). */
  connect(now: Instant, local: Endpoint, remote: Endpoint, config: Partial<TcpConfig> = {}, upperLayer: TcpUpperLayerInit | null = null): TcpConnection {
    if (this.connections.get(remote, local)) throw new TupleInUseError(local, remote);
    const conn = new TcpConnection(local, remote, this.connectionConfig(local, config), this.isn(now, local, remote), upperLayer, this.tsOffset(local, remote));
    this.connections.add(conn);
    conn.connect(now);
    this.counters.increment('connectionsOpened');
    this.touch(conn);
    this.rearm(conn);
    return conn;
  }

  /** Tells the stack that the user acted on a connection (wrote, read, closed): poll it. */
  touch(conn: TcpConnection): void {
    this.active.add(conn);
    this.eventful.add(conn);
  }

  /** The connection's earliest deadline into the heap. */
  private rearm(conn: TcpConnection): void {
    this.deadlines.set(conn, conn.pollTimeout());
  }

  get size(): number {
    return this.connections.size;
  }

  *all(): IterableIterator<TcpConnection> {
    yield* this.connections.values();
  }

  /** Connections in SYN-RECEIVED now (the SYN backlog). */
  get synBacklogLength(): number {
    return this.synReceived.size;
  }

  /** The stack's defaults, the caller's config, and the MSS clamped to the path MTU. */
  private connectionConfig(local: Endpoint, config: Partial<TcpConfig>): TcpConfig {
    // one shared configuration per IP version and per-call settings (a subflow's congestion
    // control): connections keep a reference to it, not a copy each
    const key = `${local.addr.length}|${JSON.stringify(config)}`;
    let shared = this.configs.get(key);
    if (!shared) {
      const merged = { ...this.opts.tcp, ...config };
      const ipHeader = local.addr.length === 4 ? 20 : 40;
      const limit = this.opts.mtu - ipHeader - 20;
      merged.mss = Math.min(merged.mss ?? limit, limit);
      shared = sharedTcpConfig(merged);
      this.configs.set(key, shared);
    }
    return shared;
  }

  /** connectionConfig's shared configurations, by IP version and per-call settings. */
  private readonly configs = new Map<string, TcpConfig>();

  /** RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 µs clock. */
  private isn(now: Instant, local: Endpoint, remote: Endpoint): number {
    if (this.opts.initialSequence) return this.opts.initialSequence(local, remote) >>> 0;
    const h = createHash('sha256').update(this.opts.isnSecret).update(local.addr).update(remote.addr);
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(local.port, 0);
    ports.writeUInt16BE(remote.port, 2);
    const f = h.update(ports).digest().readUInt32BE(0);
    return (f + Math.floor(now * 250)) >>> 0;
  }

  /**
   * The timestamp clock's offset of a connection: secret, and one per pair of addresses (as
   * Linux's secure_tcp_ts_off), not per connection. A peer that holds the 4-tuple in TIME-WAIT
   * takes a new SYN for it only if its TSval is newer than the old connection's (RFC 7323 §5.3
   * PAWS, which Linux applies in TIME-WAIT): with an offset per connection, half the ports
   * reused within the peer's TIME-WAIT (60 s on Linux) met an ACK of the old connection, a RST
   * and a SYN again a second later.
   */
  private tsOffset(local: Endpoint, remote: Endpoint): number {
    // one per pair: computed once for the few pairs a host talks over (a SHA-256 per connection
    // was a visible part of a short connection's cost), TS_OFFSETS_MAX of them at most
    const key = local.addr.toString('latin1') + remote.addr.toString('latin1');
    let off = this.tsOffsets.get(key);
    if (off === undefined) {
      off = createHash('sha256').update(this.opts.isnSecret).update('ts').update(local.addr).update(remote.addr).digest().readUInt32BE(0);
      if (this.tsOffsets.size < TS_OFFSETS_MAX) this.tsOffsets.set(key, off);
    }
    return off;
  }

  /** tsOffset's values, by address pair. */
  private readonly tsOffsets = new Map<string, number>();

  handleInput(now: Instant, _iface: number, packet: Buffer, checksumValid = false): void {
    this.counters.increment('packetsIn');
    const ip = parseIpPacket(packet, this.ipCounters, this.info);
    if (!ip) return;
    if (ip.protocol !== IPPROTO_TCP) {
      this.counters.increment('notTcp');
      this.ipCounters.increment('unsupportedProtocol');
      return;
    }
    const seg = parseTcp(ip, this.codecCounters, { checksum: this.opts.trustChecksums || checksumValid ? 'skip' : 'verify' });
    if (!seg) return;
    this.handleSegment(now, ip, seg);
  }

  /** A TCP segment already parsed (the engine's path with GSO super-segments). */
  handleSegment(now: Instant, ip: IpPacketInfo, seg: TcpRepr): void {
    const conn = this.connections.lookup(ip.buffer, ip.srcOffset, ip.dstOffset, ip.addressLen, seg.srcPort, seg.dstPort);
    if (conn) {
      conn.handleSegment(now, seg);
      this.touch(conn);
      this.rearm(conn);
      if (conn.state !== TcpState.SynReceived) this.synReceived.delete(conn);
      this.onWake?.(conn);
      return;
    }
    this.counters.increment('noConnection');
    const src = ip.src;
    const dst = ip.dst;
    // RFC 9293 §3.9.2.3: "A TCP implementation MUST silently discard an incoming SYN segment that
    // is addressed to a broadcast or multicast address (MUST-57)"; "An incoming SYN with an
    // invalid source address MUST be ignored (MUST-63)" — and nothing else for no connection
    // from or to such an address is answered either
    if (!isUnicastAddress(src) || !isUnicastAddress(dst)) {
      this.counters.increment('badAddress');
      return;
    }
    if ((seg.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) === TCP_FLAG_SYN && this.listener) {
      if (this.synReceived.size >= this.opts.synBacklog) {
        this.counters.increment('synBacklogFull');
        return;
      }
      const local = { addr: internAddress(dst), port: seg.dstPort };
      const remote = { addr: internAddress(src), port: seg.srcPort };
      const verdict = this.listener({ local, remote, syn: seg });
      if (verdict === null) {
        this.counters.increment('synDeferred');
        return;
      }
      if (verdict !== false) {
        const accept = typeof verdict === 'object' && ('setup' in verdict || 'upperLayer' in verdict) ? (verdict as ListenAccept) : null;
        const config = accept ? accept.config ?? {} : typeof verdict === 'object' ? (verdict as Partial<TcpConfig>) : {};
        const c = new TcpConnection(local, remote, this.connectionConfig(local, config), this.isn(now, local, remote), accept?.upperLayer ?? null, this.tsOffset(local, remote));
        accept?.setup?.(c);
        this.connections.add(c);
        c.acceptSyn(now, seg);
        this.synReceived.add(c);
        this.touch(c);
        this.rearm(c);
        this.onWake?.(c);
        this.counters.increment('synAccepted');
        this.counters.increment('connectionsOpened');
        return;
      }
      this.counters.increment('synRefused');
    }
    this.resetFor(ip, seg);
  }

  /** RFC 9293 §3.10.7.1: a segment for no connection gets a RST (unless it is one). */
  private resetFor(ip: IpPacketInfo, seg: TcpRepr): void {
    if (seg.flags & TCP_FLAG_RST) return;
    let rst: TcpRepr;
    if (seg.flags & TCP_FLAG_ACK) {
      // "<SEQ=SEG.ACK><CTL=RST>"
      rst = { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack, ack: 0, flags: TCP_FLAG_RST, window: 0, urgent: 0, options: {}, payload: EMPTY };
    } else {
      // "<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>"
      const len = seg.payload.length + ((seg.flags & TCP_FLAG_SYN) ? 1 : 0) + ((seg.flags & TCP_FLAG_FIN) ? 1 : 0);
      rst = { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: 0, ack: seqAdd(seg.seq, len), flags: TCP_FLAG_RST | TCP_FLAG_ACK, window: 0, urgent: 0, options: {}, payload: EMPTY };
    }
    this.counters.increment('resetsSentNoConnection');
    this.rstQueue.push(this.build(ip.version, Buffer.from(ip.dst), Buffer.from(ip.src), rst, false));
  }

  /** The packet of `seg` with the stack's headroom; in the stack's one output buffer when `reuse` (reuseOutput). */
  private build(version: 4 | 6, src: Buffer, dst: Buffer, seg: TcpRepr, reuse = this.opts.reuseOutput): Buffer {
    const len = tcpPacketLen(seg, version);
    const head = this.opts.headroom;
    let buf: Buffer;
    if (reuse) {
      if (this.outBuf.length < head + len) this.outBuf = Buffer.allocUnsafe(Math.max(head + len, 2 * this.outBuf.length, 2048));
      buf = this.outBuf.subarray(0, head + len);
    } else {
      buf = Buffer.allocUnsafe(head + len);
    }
    emitIpTcp(buf, head, { ipVersion: version, src, dst, ttl: this.opts.ttl }, seg, { checksum: this.opts.checksumOffload ? 'partial' : 'full' });
    return buf;
  }

  /** The output buffer of reuseOutput, grown to the largest packet built. */
  private outBuf: Buffer = Buffer.alloc(0);

  handleTimeout(now: Instant): void {
    for (let conn = this.deadlines.popDue(now); conn; conn = this.deadlines.popDue(now)) {
      const t = conn.pollTimeout();
      if (t !== null && t <= now) {
        conn.handleTimeout(now);
        this.touch(conn);
        this.onWake?.(conn);
      }
      this.rearm(conn);
    }
  }

  pollTransmit(now: Instant): Transmit | null {
    const seg = this.pollSegment(now);
    if (!seg) return null;
    return { iface: 0, packet: this.opts.headroom > 0 ? seg.packet.subarray(this.opts.headroom) : seg.packet };
  }

  /** For the engine: the packet with its headroom, and how the device should offload it. */
  pollOutput(now: Instant): DeviceOutput | null {
    const out = this.pollSegment(now);
    if (!out) return null;
    const version = (out.packet[this.opts.headroom]! >>> 4) as 4 | 6;
    const l4Offset = version === 4 ? 20 : 40;
    const tcpHeaderLen = (out.packet[this.opts.headroom + l4Offset + 12]! >>> 4) * 4;
    return {
      buffer: out.packet,
      l4Offset,
      headerLen: l4Offset + tcpHeaderLen,
      gsoSize: out.segment?.gsoSize ?? 0,
      ipVersion: version,
      checksumPartial: this.opts.checksumOffload,
    };
  }

  /** The next packet to send, with its segment (for GSO: `segment.gsoSize`). */
  pollSegment(now: Instant): { packet: Buffer; segment: OutSegment | null } | null {
    const rst = this.rstQueue.shift();
    if (rst) {
      this.counters.increment('packetsOut');
      return { packet: rst, segment: null };
    }
    // round robin over the connections with something to do
    for (;;) {
      if (this.rr.length === 0) {
        if (this.active.size === 0) return null;
        this.rr = [...this.active];
        this.active.clear();
      }
      const conn = this.rr[this.rr.length - 1]!;
      const seg = conn.pollTransmit(now);
      this.drainEvents(conn);
      this.rearm(conn);
      if (seg) {
        this.onWake?.(conn);
        this.counters.increment('packetsOut');
        const version = conn.local.addr.length === 4 ? 4 : 6;
        return { packet: this.build(version, conn.local.addr, conn.remote.addr, seg), segment: seg };
      }
      this.rr.pop();
      if (conn.state === TcpState.Closed) this.forget(conn);
    }
  }

  private drainEvents(conn: TcpConnection): void {
    for (let e = conn.pollEvent(); e; e = conn.pollEvent()) this.events.push({ conn, event: e });
  }

  private forget(conn: TcpConnection): void {
    if (this.connections.delete(conn)) {
      this.deadlines.delete(conn);
      this.synReceived.delete(conn);
      this.eventful.delete(conn);
      this.counters.increment('connectionsClosed');
      this.closedTotals.fold(conn.counterGroups());
      this.onConnectionClosed?.(conn);
    }
  }

  /**
   * The connections' counters summed over every connection since the stack started: the closed
   * ones (folded in as they were forgotten) and the open ones. Built when asked (a status, a
   * scrape); nothing is added on the packet path.
   */
  connectionCounters(): CounterGroupValues<TcpCounterGroups> {
    const open: TcpCounterGroups[] = [];
    for (const conn of this.connections.values()) open.push(conn.counterGroups());
    return this.closedTotals.total(open);
  }

  pollTimeout(): Instant | null {
    return this.deadlines.peek();
  }

  /** Events are waiting for pollEvent() (some surface while output is polled). */
  get hasEvents(): boolean {
    return this.events.size > 0;
  }

  pollEvent(): StackEvent | null {
    if (this.eventful.size > 0) {
      for (const conn of this.eventful) this.drainEvents(conn);
      this.eventful.clear();
    }
    return this.events.shift();
  }
}

/** connect() to a 4-tuple the stack has a connection of (the caller picks another port). */
export class TupleInUseError extends Error {
  constructor(readonly local: Endpoint, readonly remote: Endpoint) {
    super(`a connection from port ${local.port} to port ${remote.port} between these addresses exists`);
    this.name = 'TupleInUseError';
  }
}

const EMPTY = Buffer.alloc(0);
