// The MPTCP stack: MPTCP connections over a TCP stack whose connections are their subflows,
// the listener (MP_CAPABLE, MP_JOIN by token), and the path manager that opens the joins
// (pm-paths.ts: one subflow per local path to the peer's address, like the kernel's `subflow`
// endpoints). Sans-IO; the engine drives it.
import type { DeviceOutput, Instant } from '../ip/sansio.js';
import { Fifo } from '../ip/fifo.js';
import { CounterSet, CounterTotals, type CounterGroupValues } from '../ip/counters.js';
import { TcpStack, type TcpStackOptions, type ListenRequest } from '../tcp/stack.js';
import { DeadlineHeap } from '../tcp/deadlines.js';
import { parseMptcpOption, type MpJoinSyn } from './options.js';
import type { Endpoint, TcpConnection, TcpUpperLayerInit } from '../tcp/connection.js';
import {
  MptcpConnection, subflowCongestionControl, newMptcpCounterGroups, DEFAULT_MPTCP_CONFIG, type MptcpConfig, type MptcpCounterGroups,
} from './protocol.js';
import type { Subflow } from './subflow.js';
import type { MptcpEvent } from './events.js';
import { MPTCP_STACK_COUNTER_NAMES } from './mib.js';
import { PathManager, sameFamily, type PathOptions } from './pm-paths.js';

/** connect() asked for a first subflow between two address families: a caller's error. */
export class AddressFamilyError extends Error {
  constructor(readonly local: Uint8Array, readonly remote: Uint8Array) {
    super(`no subflow from an IPv${local.length === 4 ? 4 : 6} address to an IPv${remote.length === 4 ? 4 : 6} one`);
    this.name = 'AddressFamilyError';
  }
}

export interface MptcpStackOptions extends TcpStackOptions {
  mptcp?: Partial<MptcpConfig>;
  /** Randomness for keys and nonces (the engine passes crypto.randomBytes; tests a seeded one). */
  random: (n: number) => Buffer;
}

export interface ConnectOptions extends PathOptions {
  /** This connection's scheduler (the config's schedulerPolicy); default the stack's MPTCP config's. */
  scheduler?: string;
}

export interface MptcpStackEvent {
  conn: MptcpConnection;
  event: MptcpEvent;
}

export class MptcpStack {
  readonly tcp: TcpStack;
  readonly counters = new CounterSet(MPTCP_STACK_COUNTER_NAMES);
  /** The counters of the connections that closed, folded in as each leaves `connections` (see `connectionCounters`). */
  readonly closedTotals = new CounterTotals<MptcpCounterGroups>(newMptcpCounterGroups);
  /** Each subflow's TCP connection: the subflow and its MPTCP connection. */
  private readonly bySubflow = new Map<TcpConnection, { conn: MptcpConnection; sf: Subflow }>();
  readonly connections = new Set<MptcpConnection>();
  /** Which joins each connection opens (pm-paths.ts). */
  private readonly pm: PathManager;
  /** Connections by our token, for MP_JOIN (RFC 8684 §3.2). */
  private readonly byToken = new Map<number, MptcpConnection>();
  private readonly events = new Fifo<MptcpStackEvent>();
  private readonly options: MptcpStackOptions;
  private readonly host: { random32(): number; touch(tcp: TcpConnection): void; wake(conn: MptcpConnection): void };
  /**
   * The connections to run at the next process(): a subflow had input, a timer or sent
   * something, the user acted, the path manager changed its paths, or the connection's own
   * deadline came. The others are not looked at: a held idle connection costs nothing per tick.
   */
  private readonly dirty = new Set<MptcpConnection>();
  /** Each connection's own earliest deadline (DATA_FIN and data retransmission, stale checks, join retries). */
  private readonly deadlines = new DeadlineHeap<MptcpConnection>();

  constructor(options: MptcpStackOptions) {
    this.options = options;
    this.tcp = new TcpStack(options);
    this.host = {
      random32: () => options.random(4).readUInt32BE(0),
      touch: (tcp) => this.tcp.touch(tcp),
      wake: (conn) => this.dirty.add(conn),
    };
    this.tcp.onWake = (tcp) => {
      const sub = this.bySubflow.get(tcp);
      if (sub) this.dirty.add(sub.conn);
    };
    this.pm = new PathManager({
      openJoin: (now, conn, local, remote, localId) => this.openJoin(now, conn, local, remote, localId),
      wake: (conn) => this.dirty.add(conn),
    }, this.counters);
  }

  /** The user acted on a connection: it runs at the next process(). */
  touch(conn: MptcpConnection): void {
    this.dirty.add(conn);
  }

  /** The connection's earliest deadline (its own, and its joins' retries) into the heap. */
  private rearm(conn: MptcpConnection): void {
    let t = conn.pollTimeout();
    const retry = this.pm.retryDeadline(conn);
    if (retry !== null && (t === null || retry < t)) t = retry;
    this.deadlines.set(conn, t);
  }

  private subflowCc(): string {
    return subflowCongestionControl(this.options.mptcp?.congestionControl ?? DEFAULT_MPTCP_CONFIG.congestionControl);
  }

  private randomKey(): bigint {
    return this.options.random(8).readBigUInt64BE(0);
  }

  private ephemeralPort(): number {
    return 32768 + (this.options.random(2).readUInt16BE(0) % 28000);
  }

  /**
   * The MPTCP upper layer of a new TCP connection: a subflow of `conn`, known to the stack from
   * the moment its TCP connection is made.
   */
  private subflowLayer(conn: MptcpConnection, initial: boolean, localId: number): TcpUpperLayerInit {
    return (tcp) => {
      const layer = conn.attach(tcp, initial, localId);
      this.bySubflow.set(tcp, { conn, sf: layer.subflow });
      return layer;
    };
  }

  /** Opens a subflow of `conn` from `local` to `remote` (its SYN goes at the next poll). */
  private openSubflow(now: Instant, conn: MptcpConnection, local: Buffer, remote: Endpoint, initial: boolean, localId: number): Subflow {
    const layer = this.subflowLayer(conn, initial, localId);
    // a port whose pair a connection (or its TIME-WAIT) holds is drawn again, told before the
    // connect (an exception per collision cost more than the connection's own work)
    for (let i = 0; ; i++) {
      const from = { addr: local, port: this.ephemeralPort() };
      if (i <= 16 && this.tcp.holds(from, remote)) {
        this.counters.increment('portCollisions');
        continue;
      }
      const tcp = this.tcp.connect(now, from, remote, { congestionControl: this.subflowCc() }, layer);
      return this.bySubflow.get(tcp)!.sf;
    }
  }

  /** A join subflow (MP_JOIN) of `conn`, for the path manager. */
  private openJoin(now: Instant, conn: MptcpConnection, local: Buffer, remote: Endpoint, localId: number): Subflow {
    return this.openSubflow(now, conn, local, remote, false, localId);
  }

  /**
   * Opens an MPTCP connection from the first local path; once it is established, the path
   * manager adds one subflow from each other local path (MP_JOIN).
   */
  connect(now: Instant, localAddrs: Buffer[], remote: Endpoint, options: ConnectOptions = {}): MptcpConnection {
    if (!sameFamily(localAddrs[0]!, remote.addr)) throw new AddressFamilyError(localAddrs[0]!, remote.addr);
    const mptcp = options.scheduler === undefined ? this.options.mptcp ?? {} : { ...this.options.mptcp, scheduler: options.scheduler };
    const conn = new MptcpConnection(this.host, this.randomKey(), mptcp);
    conn.markInitiator();
    this.openSubflow(now, conn, localAddrs[0]!, remote, true, 0);
    this.connections.add(conn);
    this.pm.add(conn, localAddrs, remote, options);
    this.dirty.add(conn);
    this.counters.increment('connectionsOpened');
    return conn;
  }

  /**
   * Accepts connections to any destination: a SYN with MP_CAPABLE opens an MPTCP connection; a
   * SYN with MP_JOIN joins the connection whose token it names (refused and counted when none
   * has it: RFC 8684 §3.2 "If the token is unknown ... the receiver MUST respond with a TCP RST");
   * a SYN without either is plain TCP, served as an MPTCP connection in fallback.
   */
  listen(accept: (req: ListenRequest) => boolean): void {
    this.tcp.listen((req) => {
      if (!accept(req)) return false;
      let capable = false;
      let join: MpJoinSyn | null = null;
      for (const raw of req.syn.options.mptcp ?? []) {
        const opt = parseMptcpOption(raw, { syn: true, ack: false });
        if (opt?.type === 'mp_capable') capable = true;
        else if (opt?.type === 'mp_join_syn') join = opt;
      }
      if (join) {
        const conn = this.byToken.get(join.receiverToken);
        if (!conn || conn.fallback) {
          this.counters.increment('MPJoinNoTokenFound');
          return false;
        }
        // RFC 8684 §3.2: "If the token is unknown or the host wants to refuse subflow
        // establishment ..., the receiver will send back a reset (RST) signal". Until the third
        // ACK of the MP_CAPABLE handshake the listener has no key of the initiator and can
        // compute no HMAC for the join: refused (the initiator joins only once it saw a DSS
        // from us, which we send only with its key, so only a stray or crafted SYN comes here)
        if (conn.remoteKey === null) {
          this.counters.increment('MPJoinNotEstablished');
          return false;
        }
        this.counters.increment('joinsAccepted');
        return { config: { congestionControl: this.subflowCc() }, upperLayer: this.subflowLayer(conn, false, 0) };
      }
      const conn = new MptcpConnection(this.host, this.randomKey(), this.options.mptcp ?? {});
      if (capable) {
        this.byToken.set(conn.localToken, conn);
        this.counters.increment('connectionsAccepted');
      } else {
        conn.fallback = true;
        this.counters.increment('plainTcpAccepted');
      }
      return {
        config: { congestionControl: conn.fallback ? 'cubic' : this.subflowCc() },
        upperLayer: this.subflowLayer(conn, true, 0),
        setup: () => {
          this.connections.add(conn);
          this.dirty.add(conn);
        },
      };
    });
  }

  handleInput(now: Instant, iface: number, packet: Buffer, checksumValid = false): void {
    this.tcp.handleInput(now, iface, packet, checksumValid);
  }

  handleTimeout(now: Instant): void {
    this.tcp.handleTimeout(now);
    for (let conn = this.deadlines.popDue(now); conn; conn = this.deadlines.popDue(now)) this.dirty.add(conn);
    // the connections' own timers run in process(now), which the caller runs next
  }

  /** Runs the connections: subflow events, data movement, the path manager. Call after input and timers. */
  process(now: Instant): void {
    for (let e = this.tcp.pollEvent(); e; e = this.tcp.pollEvent()) {
      const sub = this.bySubflow.get(e.conn);
      if (!sub) continue;
      sub.conn.onSubflowEvent(sub.sf, e.event);
      this.dirty.add(sub.conn);
      if (e.event.type === 'closed') this.bySubflow.delete(e.conn);
    }
    if (this.dirty.size === 0) return;
    const run = [...this.dirty];
    this.dirty.clear();
    for (const conn of run) {
      if (!this.connections.has(conn)) {
        // closed before: only its last events (if any) to hand over
        for (let ev = conn.pollEvent(); ev; ev = conn.pollEvent()) this.events.push({ conn, event: ev });
        continue;
      }
      this.counters.increment('connectionTicks');
      conn.tick(now);
      this.pm.run(now, conn);
      for (let ev = conn.pollEvent(); ev; ev = conn.pollEvent()) {
        this.events.push({ conn, event: ev });
        if (ev.type === 'closed' && this.connections.has(conn)) {
          this.connections.delete(conn);
          this.closedTotals.fold(conn.counterGroups());
          this.pm.forget(conn);
          this.byToken.delete(conn.localToken);
          this.deadlines.delete(conn);
        }
      }
      if (this.connections.has(conn)) this.rearm(conn);
    }
  }

  /** A local path went away (link down, or its address changed): see PathManager.pathDown. */
  pathDown(now: Instant, addr: Buffer): void {
    this.pm.pathDown(now, addr);
  }

  /** A local path came back: the path manager opens its subflows again for the open connections. */
  pathUp(now: Instant, addr: Buffer): void {
    this.pm.pathUp(now, addr);
  }

  /** A local path added at run time (an interface that appeared): see PathManager.addPath. */
  addPath(addr: Buffer, options: { backup?: boolean; up?: boolean } = {}): void {
    this.pm.addPath(addr, options);
  }

  /**
   * The connections' counters (the MPTcpExt-like MIB and the rest) summed over every connection
   * since the stack started: the closed ones, folded in as they left, and the open ones. Built
   * when asked; nothing is added on the packet path.
   */
  connectionCounters(): CounterGroupValues<MptcpCounterGroups> {
    const open: MptcpCounterGroups[] = [];
    for (const conn of this.connections) open.push(conn.counterGroups());
    return this.closedTotals.total(open);
  }

  pollOutput(now: Instant): DeviceOutput | null {
    return this.tcp.pollOutput(now);
  }

  pollTimeout(): Instant | null {
    // the connections to run next may have new deadlines already (a subflow sent data)
    for (const conn of this.dirty) if (this.connections.has(conn)) this.rearm(conn);
    const t = this.tcp.pollTimeout();
    const c = this.deadlines.peek();
    if (t === null) return c;
    return c === null ? t : Math.min(t, c);
  }

  /** Something for process() or pollEvent() to do (subflow events surface while output is polled). */
  get hasEvents(): boolean {
    return this.events.size > 0 || this.tcp.hasEvents;
  }

  pollEvent(): MptcpStackEvent | null {
    return this.events.shift();
  }
}
