// The relay (DESIGN.md "The packet path of the client"): the host's captured TCP connections
// end in a TCP stack that impersonates their destinations; each is carried upstream by an MPTCP
// connection whose subflows leave through the paths' private source addresses. Both stacks
// share the one TUN device: a packet for a path's private address (a subflow's reply, after
// conntrack undid the masquerade) goes to the MPTCP stack, anything else to the host side.
//
// - The host's SYN is answered only once the upstream connection is established (or has fallen
//   back to TCP): the SYN is dropped silently meanwhile (the listener's `null`) and fed in again
//   then. A refused upstream becomes a RST to the app; an upstream timeout a silent drop, so the
//   app times out as it would have; no path up is a RST at once.
// - Back-pressure both ways with bounded buffers: bytes move from one side to the other only as
//   far as the other side's send buffer takes them; what stays unread closes the receive window
//   of the side it came from (TCP window to the app, the MPTCP connection-level window upstream).
// - Half-close and reset carried across: end of data one way is a FIN (DATA_FIN) the other way;
//   a reset on one side aborts the other (MP_FASTCLOSE upstream, RST to the app).
// - Through the concentrator, a few upstream connections wait open ahead of the apps (the
//   pool): an app's SYN takes one, its Convert message goes at once, and the app's connect()
//   completes one round trip to the concentrator (plus the concentrator's own connect) later.
//   Without one, the Convert message rides in the SYN; Linux's MPTCP listener then answers
//   only after the third ACK, two round trips.
import { earliest, type DeviceOutput, type Instant } from '../ip/sansio.js';
import { CounterSet } from '../ip/counters.js';
import { formatIpAddress } from '../ip/address.js';
import { TcpStack, type ListenVerdict, type ListenRequest } from '../tcp/stack.js';
import { TcpCounters, TcpState, type Endpoint, type TcpConnection, type TcpCounterName } from '../tcp/connection.js';
import { MptcpStack, type MptcpStackOptions } from '../mptcp/stack.js';
import type { MptcpConnection } from '../mptcp/protocol.js';
import { ConvertClient, PendingReply, SYN_DATA_MAX, icmpUnreachableForSyn, type ReplyOutcome } from './convert-client.js';
import { CONVERT_POOL_MAX_AGE_MS } from '../convert/message.js';

export const RELAY_COUNTER_NAMES = [
  'flowsRequested', 'flowsEstablished', 'flowsFallback', 'flowsRefused', 'flowsTimedOut', 'flowsNoPath', 'flowsNoPathOfFamily', 'flowsPendingFull',
  'flowsClosed', 'flowsResetByApp', 'flowsDrainAfterHostClose', 'flowsResetUpstream', 'bytesToUpstream', 'bytesToHost', 'synRetransmitsWhilePending',
  'packetsToUpstream', 'packetsToHost', 'synFromPathAddress', 'pathsAdded',
] as const;

/**
 * A path: one private source address, or two (dual stack: `address` of one IP version,
 * `address6` of IPv6). A connection's subflows leave from the addresses of its own version only:
 * an IPv6 connection gets one per path that has IPv6, an IPv4 connection one per path with IPv4.
 */
export interface RelayPath {
  /** The path's private source address (a subflow's local address). */
  address: Buffer;
  backup: boolean;
  /** `address` is usable. */
  up: boolean;
  /** Dual stack: the path's private IPv6 source address, and whether it is usable. */
  address6?: Buffer;
  up6?: boolean;
}

/** The path's address of IP version `v` and whether it is up; null when the path has none of that version. */
function addressOf(p: RelayPath, v: 4 | 6): { addr: Buffer; up: boolean } | null {
  if ((p.address.length === 4 ? 4 : 6) === v) return { addr: p.address, up: p.up };
  if (p.address6 && v === 6) return { addr: p.address6, up: p.up6 ?? false };
  return null;
}

export interface RelayOptions {
  /** The stacks' options (randomness, ISN secret, headroom, offloads, MTU, MPTCP config). */
  stack: MptcpStackOptions;
  paths: RelayPath[];
  fullmesh?: boolean;
  maxSubflows?: number;
  /** Host SYNs waiting for their upstream connection at most (default 1024). */
  maxPending?: number;
  /**
   * Bytes an upstream connection may hold unsent (not yet on a subflow) before the relay stops
   * taking the app's bytes (like TCP_NOTSENT_LOWAT; default 1 MiB). What is in flight is not
   * counted. Less buffered in mptun is less delay for the app, and an app that measures what
   * it wrote (iperf3's sender) sees what the paths carry.
   */
  upstreamLowat?: number;
  /** `mptun up --server`: the concentrator client (src/appliance/convert-client.ts). */
  convert?: ConvertClient;
  /** The scheduler of an upstream connection by its destination (the config's schedulerPolicy); undefined: the default. */
  schedulerFor?: (destination: Endpoint) => string | undefined;
}

/** A path's subflows, closed ones included (`Relay.pathCounters`). */
export interface PathCounters {
  /** Subflows made on the path since start (each subflow's TCP connection, from its SYN). */
  subflowsOpened: number;
  /** Subflows synchronized and not closed. */
  subflowsOpen: number;
  /** The mean smoothed RTT of the open subflows that have a sample (ms), or null. */
  srttMs: number | null;
  /** The subflows' TCP counters summed (bytes, retransmissions, timeouts ...). */
  tcp: Record<TcpCounterName, number>;
}

type FlowState = 'connecting' | 'ready' | 'refused' | 'bound';

/** One app connection and the MPTCP connection that carries it. */
export interface Flow {
  readonly id: number;
  readonly app: Endpoint;
  readonly destination: Endpoint;
  /** Replaced once at most: a pooled connection found gone before its reply (Relay.reopen). */
  upstream: MptcpConnection;
  /** The upstream came from the pool. */
  pooled: boolean;
  state: FlowState;
  host: TcpConnection | null;
  /** The app's SYN, fed in again once the upstream answered. */
  syn: Buffer | null;
  toUpstream: Buffer | null;
  toHost: Buffer | null;
  upstreamShut: boolean;
  hostShut: boolean;
  upstreamClosed: boolean;
  hostClosed: boolean;
  fallback: boolean;
  openedAt: Instant;
  bytesToUpstream: number;
  bytesToHost: number;
  /** Through the concentrator: its reply header, still being read (null once judged, or direct). */
  convert: PendingReply | null;
  /** The Convert message sent first. */
  convertMsg: Buffer | null;
}

/** A connection to the concentrator waiting for an app (Relay.pool). */
interface PoolEntry {
  openedAt: Instant;
  /** Established (MPTCP, or fallen back to TCP on a path that strips its options). */
  ready: boolean;
}

/** The pool's back-off after a connection that did not establish: 1 s, doubling, at most 60 s. */
const POOL_RETRY_FIRST_MS = 1000;
const POOL_RETRY_MAX_MS = 60_000;

/** States of a subflow that is open: its handshake done, not closed (TIME-WAIT is closed). */
const SYNCHRONIZED: ReadonlySet<TcpState> = new Set([
  TcpState.Established, TcpState.FinWait1, TcpState.FinWait2, TcpState.CloseWait, TcpState.Closing, TcpState.LastAck,
]);

/** Bytes moved per read: a mapping's worth, so DSS mappings stay long. */
const CHUNK = 64 * 1024;
const DEFAULT_LOWAT = 1 << 20;

export class Relay {
  readonly host: TcpStack;
  readonly upstream: MptcpStack;
  readonly counters = new CounterSet(RELAY_COUNTER_NAMES);
  readonly paths: RelayPath[];
  private readonly flows = new Map<string, Flow>();
  private readonly byHost = new Map<TcpConnection, Flow>();
  private readonly byUpstream = new Map<MptcpConnection, Flow>();
  /** Flows whose upstream connection is being opened (the app's SYN waits): bounded by `maxPending`. */
  private readonly connecting = new Set<Flow>();
  /**
   * Flows to pump: an event on either side, or bytes still on their way (held for a full side,
   * unsent upstream). An idle flow is not looked at by the tick.
   */
  private readonly busy = new Set<Flow>();
  /** Path index by private address. */
  private readonly pathV4 = new Map<number, number>();
  /** IPv6 private addresses and their path (a few: compared byte by byte, no string per packet). */
  private readonly pathV6: Array<{ addr: Buffer; path: number }> = [];
  /** Packets and bytes (IP, super-segments whole) per path, both ways. */
  readonly pathStats: Array<{ packetsOut: number; bytesOut: number; packetsIn: number; bytesIn: number }>;
  /** Per path: the subflows that closed, and their TCP counters (folded in as the stack forgets them). */
  private readonly pathClosed: Array<{ subflows: number; tcp: TcpCounters }> = [];
  private readonly headroom: number;
  private readonly options: RelayOptions;
  private nextId = 1;
  /** The host-bound packet being handled (the listener copies it when it defers a SYN). */
  private current: Buffer | null = null;
  private now: Instant = 0;
  /** ICMP errors for the apps (a destination the concentrator found unreachable). */
  private readonly icmpOut: DeviceOutput[] = [];
  /** Connections to the concentrator opened ahead of the apps, by connection (insertion order: oldest first). */
  private readonly pool = new Map<MptcpConnection, PoolEntry>();
  /** After a pooled connection failed to establish: none opened before this (doubling back-off). */
  private poolRetryAt: Instant = 0;
  private poolFailures = 0;

  constructor(options: RelayOptions) {
    this.options = options;
    this.paths = options.paths;
    this.paths.forEach((p, i) => {
      for (const a of p.address6 ? [p.address, p.address6] : [p.address]) {
        if (a.length === 4) this.pathV4.set(a.readUInt32BE(0), i);
        else this.pathV6.push({ addr: a, path: i });
      }
    });
    this.pathStats = this.paths.map(() => ({ packetsOut: 0, bytesOut: 0, packetsIn: 0, bytesIn: 0 }));
    this.headroom = options.stack.headroom ?? 0;
    this.upstream = new MptcpStack(options.stack);
    this.upstream.tcp.onConnectionClosed = (tcp) => this.foldSubflow(tcp);
    // the host side: plain TCP, the stack's defaults (no MPTCP hooks)
    this.host = new TcpStack(options.stack);
    this.host.listen((req) => this.onHostSyn(req));
  }

  /** The path whose private address `a` is, or -1. */
  private pathOf(a: Buffer): number {
    return this.pathAt(a, 0, a.length === 4 ? 4 : 6);
  }

  /** The path whose private address is at `off` (IPv4: 4 bytes, IPv6: 16), or -1. */
  private pathAt(p: Buffer, off: number, v: number): number {
    if (v === 4) return p.length >= off + 4 ? this.pathV4.get(p.readUInt32BE(off)) ?? -1 : -1;
    if (v === 6 && this.pathV6.length > 0 && p.length >= off + 16) {
      for (const { addr, path } of this.pathV6) if (addr.compare(p, off, off + 16) === 0) return path;
    }
    return -1;
  }

  handleInput(now: Instant, iface: number, packet: Buffer, checksumValid = false): void {
    this.now = now;
    const v = packet[0]! >>> 4;
    // for the MPTCP side: the destination is a path's private address
    const path = this.pathAt(packet, v === 4 ? 16 : 24, v);
    if (path >= 0) {
      const s = this.pathStats[path]!;
      s.packetsIn++;
      s.bytesIn += packet.length;
      this.counters.increment('packetsToUpstream');
      this.upstream.handleInput(now, iface, packet, checksumValid);
      return;
    }
    this.counters.increment('packetsToHost');
    this.current = packet;
    this.host.handleInput(now, iface, packet, checksumValid);
    this.current = null;
  }

  handleTimeout(now: Instant): void {
    this.now = now;
    this.host.handleTimeout(now);
    this.upstream.handleTimeout(now);
  }

  pollOutput(now: Instant): DeviceOutput | null {
    const icmp = this.icmpOut.shift();
    if (icmp) return icmp;
    const h = this.host.pollOutput(now);
    if (h) return h;
    const out = this.upstream.pollOutput(now);
    if (out) {
      const b = out.buffer;
      const path = this.pathAt(b, this.headroom + (out.ipVersion === 4 ? 12 : 8), out.ipVersion);
      if (path >= 0) {
        const s = this.pathStats[path]!;
        s.packetsOut++;
        s.bytesOut += b.length - this.headroom;
      }
    }
    return out;
  }

  pollTimeout(): Instant | null {
    // called on every tick: no array of the three
    return earliest(earliest(this.host.pollTimeout(), this.upstream.pollTimeout()), this.poolDeadline());
  }

  get hasEvents(): boolean {
    return this.host.hasEvents || this.upstream.hasEvents;
  }

  // ------------------------------------------------------------ host SYNs

  private onHostSyn(req: ListenRequest): ListenVerdict {
    // a SYN from or to a path's private address is nobody's app: refuse it
    if (this.pathOf(req.local.addr) >= 0 || this.pathOf(req.remote.addr) >= 0) {
      this.counters.increment('synFromPathAddress');
      return false;
    }
    const key = flowKey(req.remote, req.local);
    const f = this.flows.get(key);
    if (f) {
      switch (f.state) {
        case 'connecting':
          this.counters.increment('synRetransmitsWhilePending');
          return null;
        case 'ready':
          this.setState(f, 'bound');
          f.syn = null;
          return { setup: (tcp) => this.bind(f, tcp) };
        case 'refused':
          this.forgetFlow(f);
          return false;
        case 'bound':
          // a new SYN for a tuple whose old connection is still with us (the app's port was
          // reused after a RST we have not seen through): the stack has no connection for it,
          // so the old one is gone; start over
          this.forgetFlow(f);
          break;
      }
    }
    if (this.connecting.size >= (this.options.maxPending ?? 1024)) {
      this.counters.increment('flowsPendingFull');
      return null;
    }
    this.counters.increment('flowsRequested');
    // through the concentrator: the upstream goes there, its first bytes the Convert message
    const convert = this.options.convert?.viaConcentrator(req.local) ? this.options.convert : null;
    const target = convert ? { addr: convert.server.addr, port: convert.server.port } : { addr: Buffer.from(req.local.addr), port: req.local.port };
    // the paths that have an address of the upstream connection's IP version (the
    // destination's, or the concentrator's)
    const usable = this.pathsOf(target.addr.length === 4 ? 4 : 6);
    // a subflow joins two addresses of one family: only the paths with an address of that
    // family can carry this flow; with none, the app's SYN is refused
    if (usable.length === 0) {
      this.counters.increment('flowsNoPathOfFamily');
      return false;
    }
    const live = usable.filter((x) => x.up);
    if (live.length === 0) {
      this.counters.increment('flowsNoPath');
      return false;
    }
    const scheduler = this.options.schedulerFor?.(req.local);
    // through the concentrator, a connection from the pool when one is ready (the default scheduler's)
    const pooled = convert && scheduler === undefined ? this.takeFromPool() : null;
    if (convert && !pooled) convert.counters.increment('poolEmpty');
    const upstream = pooled ?? this.openUpstream(target, usable, scheduler);
    const flow: Flow = {
      id: this.nextId++, app: req.remote, destination: req.local, upstream, pooled: pooled !== null, state: 'connecting', host: null,
      syn: this.current ? Buffer.from(this.current) : null,
      toUpstream: null, toHost: null, upstreamShut: false, hostShut: false, upstreamClosed: false, hostClosed: false,
      fallback: false, openedAt: this.now, bytesToUpstream: 0, bytesToHost: 0, convert: null, convertMsg: null,
    };
    if (convert) {
      const destination = { addr: Buffer.from(req.local.addr), port: req.local.port };
      flow.convert = new PendingReply(destination);
      const msg = convert.request(destination);
      if (pooled) {
        // established already: the message goes now, the reply is read as it comes (process)
        this.counters.increment('flowsEstablished');
        flow.fallback = pooled.fallback;
        if (flow.fallback) this.counters.increment('flowsFallback');
        pooled.write(msg);
        this.busy.add(flow);
      } else {
        flow.convertMsg = msg;
        // RFC 8803 §4.1: the Convert message in the payload of the SYN (0-RTT)
        if (msg.length <= SYN_DATA_MAX) {
          upstream.subflows[0]!.tcp.setSynData(msg);
          convert.counters.increment('convertInSyn');
        }
      }
    }
    this.flows.set(key, flow);
    this.byUpstream.set(upstream, flow);
    this.connecting.add(flow);
    return null;
  }

  /**
   * An upstream connection to `target` over the paths that have an address of its IP version
   * (`usable`, one of them up): the first subflow from a live path, a non-backup one when
   * there is one.
   */
  private openUpstream(target: Endpoint, usable: Array<{ addr: Buffer; up: boolean; backup: boolean }>, scheduler?: string): MptcpConnection {
    const live = usable.filter((x) => x.up);
    const first = live.find((x) => !x.backup) ?? live[0]!;
    const order = [first, ...usable.filter((x) => x !== first)];
    return this.upstream.connect(
      this.now,
      order.map((x) => x.addr),
      target,
      {
        backup: order.flatMap((x, k) => (x.backup ? [k] : [])),
        down: order.flatMap((x, k) => (x.up ? [] : [k])),
        fullmesh: this.options.fullmesh ?? false,
        maxSubflows: this.options.maxSubflows ?? 8,
        scheduler,
      },
    );
  }

  /** The paths that have an address of IP version `v`, with their state. */
  private pathsOf(v: 4 | 6): Array<{ i: number; addr: Buffer; up: boolean; backup: boolean }> {
    const out: Array<{ i: number; addr: Buffer; up: boolean; backup: boolean }> = [];
    for (let i = 0; i < this.paths.length; i++) {
      const p = this.paths[i]!;
      const a = addressOf(p, v);
      if (a) out.push({ i, addr: a.addr, up: a.up, backup: p.backup });
    }
    return out;
  }

  /** A flow leaves 'connecting'. */
  private setState(f: Flow, state: FlowState): void {
    f.state = state;
    if (state !== 'connecting') this.connecting.delete(f);
  }

  private bind(f: Flow, tcp: TcpConnection): void {
    f.host = tcp;
    this.byHost.set(tcp, f);
  }

  /** Feeds the app's SYN in again: the listener now accepts it (or refuses it with a RST). */
  private replaySyn(f: Flow, now: Instant): void {
    const syn = f.syn;
    if (!syn) return;
    this.current = syn;
    this.host.handleInput(now, 0, syn, true);
    this.current = null;
  }

  private forgetFlow(f: Flow): void {
    const key = flowKey(f.app, f.destination);
    if (this.flows.get(key) === f) this.flows.delete(key);
    this.byUpstream.delete(f.upstream);
    if (f.host) this.byHost.delete(f.host);
    this.connecting.delete(f);
    this.busy.delete(f);
  }

  // ------------------------------------------------------------ the tick

  /** Runs after input and timers (the engine's onTick): events, then bytes across. */
  process(now: Instant): void {
    this.now = now;
    if (this.options.convert && this.options.convert.pool > 0) this.tendPool(now);
    this.upstream.process(now);
    // events, bytes across, then the MPTCP side maps what was written; again while that made
    // new events (a SYN fed in again, a reset carried across)
    for (let round = 0; round < 4; round++) {
      let any = false;
      for (let e = this.upstream.pollEvent(); e; e = this.upstream.pollEvent()) {
        any = true;
        const f = this.byUpstream.get(e.conn);
        if (f) {
          this.busy.add(f);
          this.onUpstreamEvent(f, e.event.type, now);
        } else {
          const p = this.pool.get(e.conn);
          if (p) this.onPoolEvent(e.conn, p, e.event.type, now);
        }
      }
      for (let e = this.host.pollEvent(); e; e = this.host.pollEvent()) {
        any = true;
        const f = this.byHost.get(e.conn);
        if (f) {
          this.busy.add(f);
          this.onHostEvent(f, e.event.type, now);
        }
      }
      if (round > 0 && !any) break;
      if (this.options.convert) {
        for (const f of [...this.connecting]) if (f.convert && f.convertMsg === null && this.readReply(f, now)) any = true;
      }
      for (const f of [...this.busy]) if (!this.pump(f)) this.busy.delete(f);
      this.upstream.process(now);
    }
  }

  private onUpstreamEvent(f: Flow, type: string, now: Instant): void {
    switch (type) {
      case 'connected':
        if (f.state !== 'connecting') return;
        f.fallback = f.upstream.fallback;
        this.counters.increment('flowsEstablished');
        if (f.fallback) this.counters.increment('flowsFallback');
        if (f.convert) {
          this.convertConnected(f);
          return;
        }
        this.setState(f, 'ready');
        this.replaySyn(f, now);
        return;
      case 'reset':
      case 'closed':
        if (type === 'closed') f.upstreamClosed = true;
        if (f.state === 'connecting' && f.convert && this.readReply(f, now)) {
          this.maybeForget(f);
          return;
        }
        if (f.state === 'connecting' && f.convert && f.pooled && f.convert.received === 0 && this.reopen(f)) return;
        if (f.state === 'connecting' && f.convert && f.convertMsg === null) {
          // the concentrator went away before its reply: the app is refused, not left to hang
          this.options.convert!.closedBeforeReply();
          if (type === 'reset') f.upstreamClosed = true;
          this.convertOutcome(f, { kind: 'refused', code: null }, now);
          return;
        }
        if (f.state === 'connecting') {
          const reason = f.upstream.subflows[0]?.tcpResetReason ?? null;
          if (reason === 'timeout' || reason === null) {
            // the app times out on its own, as it would have without us
            this.counters.increment('flowsTimedOut');
            this.forgetFlow(f);
          } else {
            this.counters.increment('flowsRefused');
            this.setState(f, 'refused');
            this.replaySyn(f, now);
          }
          return;
        }
        if (type === 'reset' && f.host && !f.hostClosed) {
          this.counters.increment('flowsResetUpstream');
          f.host.abort(now);
          this.host.touch(f.host);
        }
        this.maybeForget(f);
        return;
    }
  }

  private onHostEvent(f: Flow, type: string, now: Instant): void {
    if (type === 'reset') {
      this.counters.increment('flowsResetByApp');
      if (!f.upstreamClosed) f.upstream.abort(now);
      f.hostClosed = true;
    } else if ((type === 'closed' || type === 'timeWait') && !f.hostClosed) {
      // TIME-WAIT (mptun closed first toward the app) ends the app's connection as 'closed' does;
      // the stack keeps the TIME-WAIT on its own and answers a FIN sent again
      f.hostClosed = true;
      // Both FINs exchanged while the app's last bytes still wait here for room upstream (a slow
      // path): a graceful close, its bytes and FIN go on upstream (pump), as the kernel delivers
      // what a closed socket had sent. Without that, the upstream was aborted and the server
      // got a reset instead of the end of the upload (bench/simult, 10/3 Mbit/s, 1/25 ms).
      const draining = f.hostShut && f.host!.finReceived && !f.upstreamShut;
      if (draining) this.counters.increment('flowsDrainAfterHostClose');
      // closed without both directions finished (a timeout, say): the upstream goes too
      else if (!(f.hostShut && f.upstreamShut) && !f.upstreamClosed) f.upstream.abort(now);
    }
    this.maybeForget(f);
  }

  // ------------------------------------------------------------ the concentrator

  /**
   * The pool: up to `convert.pool` connections to the concentrator open ahead of the apps. One
   * unused for CONVERT_POOL_MAX_AGE_MS is closed for a fresh one (the concentrator waits for a
   * first byte CONVERT_IDLE_TIMEOUT_MS only); none is opened while no path of the concentrator's
   * IP version is up, nor during the back-off after one that did not establish.
   */
  private tendPool(now: Instant): void {
    const c = this.options.convert!;
    for (const [conn, p] of this.pool) {
      if (!p.ready || now - p.openedAt < CONVERT_POOL_MAX_AGE_MS) continue;
      this.pool.delete(conn);
      conn.shutdown();
      c.counters.increment('poolRetired');
    }
    if (this.pool.size >= c.pool || now < this.poolRetryAt) return;
    const usable = this.pathsOf(c.server.addr.length === 4 ? 4 : 6);
    if (!usable.some((x) => x.up)) return;
    while (this.pool.size < c.pool) {
      const conn = this.openUpstream({ addr: c.server.addr, port: c.server.port }, usable);
      this.pool.set(conn, { openedAt: now, ready: false });
      c.counters.increment('poolOpened');
    }
  }

  /** The pool's next deadline: its oldest ready connection's age limit, or the end of its back-off. */
  private poolDeadline(): Instant | null {
    const c = this.options.convert;
    if (!c || c.pool === 0) return null;
    let at = Infinity;
    for (const p of this.pool.values()) if (p.ready) at = Math.min(at, p.openedAt + CONVERT_POOL_MAX_AGE_MS);
    if (this.pool.size < c.pool && this.poolRetryAt > this.now) at = Math.min(at, this.poolRetryAt);
    return at === Infinity ? null : at;
  }

  private onPoolEvent(conn: MptcpConnection, p: PoolEntry, type: string, now: Instant): void {
    const c = this.options.convert!;
    if (type === 'connected') {
      p.ready = true;
      this.poolFailures = 0;
      c.counters.increment('poolReady');
    } else if (type === 'reset' || type === 'closed') {
      this.pool.delete(conn);
      if (p.ready) {
        c.counters.increment('poolLost');
      } else {
        // never established (the concentrator down, a path that drops it): wait before the next
        c.counters.increment('poolFailed');
        this.poolRetryAt = now + Math.min(POOL_RETRY_FIRST_MS * 2 ** this.poolFailures, POOL_RETRY_MAX_MS);
        this.poolFailures++;
      }
    }
  }

  /**
   * The pooled connection a flow took was gone before a byte of its reply (the concentrator
   * restarted, a NAT on the way forgot it): the flow opens its own, the Convert message in its
   * SYN, as without a pool. False when no path of the concentrator's IP version is up.
   */
  private reopen(f: Flow): boolean {
    const c = this.options.convert!;
    const usable = this.pathsOf(c.server.addr.length === 4 ? 4 : 6);
    if (!usable.some((x) => x.up)) return false;
    c.counters.increment('poolStale');
    this.byUpstream.delete(f.upstream);
    f.upstream = this.openUpstream({ addr: c.server.addr, port: c.server.port }, usable);
    f.pooled = false;
    f.fallback = false;
    f.upstreamClosed = false;
    f.convertMsg = c.request(f.convert!.destination);
    if (f.convertMsg.length <= SYN_DATA_MAX) {
      f.upstream.subflows[0]!.tcp.setSynData(f.convertMsg);
      c.counters.increment('convertInSyn');
    }
    this.byUpstream.set(f.upstream, f);
    return true;
  }

  /** A ready pooled connection, the oldest, out of the pool; null when there is none. */
  private takeFromPool(): MptcpConnection | null {
    for (const [conn, p] of this.pool) {
      if (!p.ready) continue;
      this.pool.delete(conn);
      this.options.convert!.counters.increment('poolUsed');
      return conn;
    }
    return null;
  }

  /**
   * The upstream to the concentrator is up: what the SYN/ACK did not acknowledge of the SYN's
   * data (all of it when the concentrator did not take SYN data, or the message did not ride in
   * the SYN) goes again as the first data (RFC 7413 §4.2.2, RFC 8803 §4.1); then its reply is read.
   */
  private convertConnected(f: Flow): void {
    const msg = f.convertMsg!;
    const c = this.options.convert!;
    const taken = f.upstream.subflows[0]?.tcp.synDataAcked ?? 0;
    if (taken >= msg.length) c.counters.increment('convertSynDataAcked');
    else {
      if (c.counters.get('convertInSyn') > 0 && taken < msg.length) c.counters.increment('convertSynDataResent');
      f.upstream.write(msg.subarray(taken));
    }
    f.convertMsg = null;
  }

  /** Reads the concentrator's reply for a flow; true once it is judged (and acted on). */
  private readReply(f: Flow, now: Instant): boolean {
    const c = this.options.convert!;
    for (let b = f.upstream.read(CHUNK); b && f.convert; b = f.convert ? f.upstream.read(CHUNK) : null) {
      const outcome = f.convert.push(c, b);
      if (outcome.kind !== 'incomplete') {
        this.convertOutcome(f, outcome, now);
        return true;
      }
    }
    return false;
  }

  /**
   * The app's SYN answered as the destination answered the concentrator: SYN/ACK (the bytes
   * after the reply header are the server's, for the app), RST, or an ICMP unreachable.
   */
  private convertOutcome(f: Flow, outcome: ReplyOutcome, now: Instant): void {
    f.convert = null;
    if (outcome.kind === 'accepted') {
      if (outcome.rest.length > 0) f.toHost = outcome.rest;
      this.setState(f, 'ready');
      this.replaySyn(f, now);
      return;
    }
    if (!f.upstreamClosed) f.upstream.abort(now);
    this.counters.increment('flowsRefused');
    const icmp = outcome.kind === 'unreachable' && f.syn ? icmpUnreachableForSyn(f.syn, outcome.icmpCode, this.headroom) : null;
    if (icmp) {
      const v6 = icmp[this.headroom]! >>> 4 === 6;
      this.icmpOut.push({ buffer: icmp, l4Offset: v6 ? 40 : 20, headerLen: icmp.length - this.headroom, gsoSize: 0, ipVersion: v6 ? 6 : 4, checksumPartial: false });
      this.forgetFlow(f);
      return;
    }
    this.setState(f, 'refused');
    this.replaySyn(f, now);
  }

  private maybeForget(f: Flow): void {
    if (f.upstreamClosed && (f.hostClosed || !f.host)) {
      this.counters.increment('flowsClosed');
      this.forgetFlow(f);
    }
  }

  /**
   * Bytes across, as far as the other side takes them; FINs across once a side has ended.
   * True when the flow has more to do (bytes moved, held, or unsent upstream): pump it again.
   */
  private pump(f: Flow): boolean {
    const host = f.host;
    if (!host || (f.hostClosed && (f.upstreamShut || f.upstreamClosed))) return false;
    const up = f.upstream;
    const moved = f.bytesToUpstream + f.bytesToHost;
    if (!f.upstreamClosed) {
      const lowat = this.options.upstreamLowat ?? DEFAULT_LOWAT;
      f.toUpstream = move(f.toUpstream, () => (up.unsent < lowat ? host.read(CHUNK) : null), (b) => up.write(b), (n) => {
        f.bytesToUpstream += n;
        this.counters.increment('bytesToUpstream', n);
      });
      if (!f.toUpstream && !f.upstreamShut && host.readEnded) {
        f.upstreamShut = true;
        up.shutdown();
      }
    }
    // draining the closed app's last bytes upstream (onHostEvent): again while any are left
    if (f.hostClosed) return f.toUpstream !== null || f.bytesToUpstream + f.bytesToHost !== moved;
    f.toHost = move(f.toHost, () => up.read(CHUNK), (b) => host.write(b), (n) => {
      f.bytesToHost += n;
      this.counters.increment('bytesToHost', n);
    });
    if (!f.toHost && !f.hostShut && up.readEnded) {
      f.hostShut = true;
      host.shutdown();
    }
    this.host.touch(host);
    return f.toUpstream !== null || f.toHost !== null || f.bytesToUpstream + f.bytesToHost !== moved || (!f.upstreamClosed && up.unsent > 0);
  }

  // ------------------------------------------------------------ paths

  /**
   * A path went down (IP version `v` of it; both without), or its address changed (call pathUp
   * next): its subflows are reset and their data reinjected at once, REMOVE_ADDR sent.
   */
  pathDown(now: Instant, index: number, v?: 4 | 6): void {
    const p = this.paths[index];
    if (!p) return;
    for (const version of v ? [v] : [4, 6] as const) {
      const a = addressOf(p, version);
      if (!a || !a.up) continue;
      this.setUp(p, a.addr, false);
      this.upstream.pathDown(now, a.addr);
    }
  }

  /** A path came back (IP version `v` of it; both without): the open connections get their subflows on it again. */
  pathUp(now: Instant, index: number, v?: 4 | 6): void {
    const p = this.paths[index];
    if (!p) return;
    for (const version of v ? [v] : [4, 6] as const) {
      const a = addressOf(p, version);
      if (!a || a.up) continue;
      this.setUp(p, a.addr, true);
      this.upstream.pathUp(now, a.addr);
    }
  }

  private setUp(p: RelayPath, addr: Buffer, up: boolean): void {
    if (addr === p.address) p.up = up;
    else p.up6 = up;
  }

  /**
   * A path added at run time (an interface that appeared); returns its index. New connections
   * may use it at once; the open ones get a subflow on it (as after pathUp) when it is up.
   */
  addPath(path: RelayPath): number {
    const index = this.paths.length;
    this.paths.push({ ...path });
    for (const a of path.address6 ? [path.address, path.address6] : [path.address]) {
      if (a.length === 4) this.pathV4.set(a.readUInt32BE(0), index);
      else this.pathV6.push({ addr: a, path: index });
    }
    this.pathStats.push({ packetsOut: 0, bytesOut: 0, packetsIn: 0, bytesIn: 0 });
    this.upstream.addPath(path.address, { backup: path.backup, up: path.up });
    if (path.address6) this.upstream.addPath(path.address6, { backup: path.backup, up: path.up6 ?? false });
    this.counters.increment('pathsAdded');
    return index;
  }

  /** Every flow reset both ways (mptun is going down): RST to the apps, MP_FASTCLOSE upstream. */
  abortAll(now: Instant): void {
    for (const f of [...this.flows.values()]) {
      if (f.host && !f.hostClosed) {
        f.host.abort(now);
        this.host.touch(f.host);
      }
      if (!f.upstreamClosed) f.upstream.abort(now);
      this.forgetFlow(f);
    }
    for (const conn of this.pool.keys()) conn.abort(now);
    this.pool.clear();
    this.upstream.process(now);
  }

  private closedOn(path: number): { subflows: number; tcp: TcpCounters } {
    return (this.pathClosed[path] ??= { subflows: 0, tcp: new TcpCounters() });
  }

  private foldSubflow(tcp: TcpConnection): void {
    const path = this.pathOf(tcp.local.addr);
    if (path < 0) return;
    const c = this.closedOn(path);
    c.subflows++;
    c.tcp.addAll(tcp.counters);
  }

  /** Per path: its subflows, open and closed, and their TCP counters. Built when asked (status, a scrape). */
  pathCounters(): PathCounters[] {
    const out: PathCounters[] = this.paths.map((_, i) => {
      const c = this.closedOn(i);
      return { subflowsOpened: c.subflows, subflowsOpen: 0, srttMs: null, tcp: c.tcp.snapshot() };
    });
    const rtt = this.paths.map(() => ({ sum: 0, n: 0 }));
    for (const conn of this.upstream.tcp.all()) {
      const path = this.pathOf(conn.local.addr);
      const o = out[path];
      if (!o) continue;
      o.subflowsOpened++;
      for (const name of conn.counters.names) o.tcp[name] += conn.counters.get(name);
      if (!SYNCHRONIZED.has(conn.state)) continue;
      o.subflowsOpen++;
      const srtt = conn.rtt.srtt;
      if (srtt !== null) {
        rtt[path]!.sum += srtt;
        rtt[path]!.n++;
      }
    }
    out.forEach((o, i) => {
      if (rtt[i]!.n > 0) o.srttMs = rtt[i]!.sum / rtt[i]!.n;
    });
    return out;
  }

  get flowCount(): number {
    return this.flows.size;
  }

  /** The flows, for `mptun status`. */
  flowInfo(now: Instant) {
    return [...this.flows.values()].map((f) => {
      const info = f.upstream.info();
      return {
        id: f.id,
        app: `${formatIpAddress(f.app.addr)}:${f.app.port}`,
        destination: `${formatIpAddress(f.destination.addr)}:${f.destination.port}`,
        state: f.state, fallback: f.upstream.fallback, ageMs: Math.round(now - f.openedAt),
        bytesToUpstream: f.bytesToUpstream, bytesToHost: f.bytesToHost,
        hostState: f.host ? f.host.info().state : null,
        subflows: info.subflows.map((s, i) => ({
          path: this.pathOf(f.upstream.subflows[i]!.tcp.local.addr),
          local: s.local, remote: s.remote, backup: s.backup, usable: s.usable, closed: s.closed,
          bytesOut: s.bytesOut, bytesIn: s.bytesIn, state: s.state, srttMs: s.srtt, cwnd: s.cwnd,
        })),
      };
    });
  }
}

/**
 * Moves bytes from `read` into `write` as far as `write` takes them (`pending` first: what it
 * did not take last time); returns what is left of the last piece, or null.
 */
function move(pending: Buffer | null, read: () => Buffer | null, write: (b: Buffer) => number, moved: (n: number) => void): Buffer | null {
  for (let b = pending ?? read(); b; b = read()) {
    const n = write(b);
    moved(n);
    if (n < b.length) return n === 0 ? b : b.subarray(n);
  }
  return null;
}

function flowKey(app: Endpoint, destination: Endpoint): string {
  return `${app.addr.toString('hex')}:${app.port}>${destination.addr.toString('hex')}:${destination.port}`;
}
