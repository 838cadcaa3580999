// The MPTCP stack: MPTCP connections over a TCP stack whose connections are their subflows,
// and the path manager (fullmesh over the local paths: one subflow per local path to the
// peer's address, like the kernel's `subflow` endpoints). Sans-IO; the engine drives it.
import type { DeviceOutput, Instant } from '../ip/sansio.js';
import { CounterSet, CounterTotals, type CounterGroupValues } from '../ip/counters.js';
import { TcpStack, type TcpStackOptions, type ListenRequest } from '../tcp/stack.js';
import { DeadlineHeap } from '../tcp/deadlines.js';
import { parseMptcpOption, type MpJoinSyn } from './options.js';
import type { Endpoint, TcpConnection } from '../tcp/connection.js';
import {
  MptcpConnection, subflowCongestionControl, newMptcpCounterGroups, DEFAULT_MPTCP_CONFIG, type MptcpConfig, type MptcpCounterGroups, type MptcpEvent,
  type Subflow,
} from './connection.js';

export const MPTCP_STACK_COUNTER_NAMES = [
  'connectionsOpened', 'joinsOpened', 'portCollisions', 'connectionsAccepted', 'plainTcpAccepted', 'joinsAccepted', 'MPJoinNoTokenFound', 'subflowLimit',
  'addressIdsRenumbered', 'addressIdsExhausted',
  // an address the peer announced (ADD_ADDR) of a family no local path has: no subflow to it
  'addAddrOtherFamily',
  // an MP_JOIN for a connection whose MP_CAPABLE handshake has not brought the initiator's key
  'MPJoinNotEstablished',
  // a join that failed (refused, timed out, reset before it carried data) opened again after a back-off
  'joinRetries',
  // a failed join not tried again: the connection's retries are spent
  'joinRetriesExhausted',
  // connections run by process() (only those with something new: input, a timer, the user)
  'connectionTicks',
] as const;

/** The back-off of a failed join: 1 s, doubling, at most 60 s; at most this many retries per connection. */
export const JOIN_RETRY_FIRST_MS = 1000;
export const JOIN_RETRY_MAX_MS = 60_000;
export const JOIN_RETRIES_PER_CONNECTION = 16;

/** True when two addresses are of one family (a subflow joins two addresses of one family). */
function sameFamily(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length;
}

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

export interface MptcpStackEvent {
  conn: MptcpConnection;
  event: MptcpEvent;
}

interface PathState {
  localAddrs: Buffer[];
  /**
   * The address ID of each local path (RFC 8684 §3.2: "an identifier for the source IP address
   * of this packet"): its index at first; a path that went down gets a fresh one (renumber()).
   */
  ids: number[];
  remote: Endpoint;
  /** Pairs opened: `${local index}` for the peer's primary address, `${local}/${remote id}` for announced ones. */
  opened: Set<number | string>;
  /** Announced address ids ignored (and counted once) for want of a local path of their family. */
  otherFamily: Set<number>;
  /** The join subflows opened, by pair, until they carry data or fail. */
  joins: Map<number | string, { sf: Subflow; local: number }>;
  /** Failed pairs waiting for their retry: when. */
  retryAt: Map<number | string, Instant>;
  /** Failures of each pair so far (the back-off's exponent). */
  failures: Map<number | string, number>;
  /** Retries this connection made. */
  retries: number;
  backup: Set<number>;
  removed: Set<number>;
  fullmesh: boolean;
  maxSubflows: number;
}

export interface ConnectOptions {
  /** Indexes of the local paths that are backups (MP_JOIN B flag / MP_PRIO): used only when the others are gone. */
  backup?: number[];
  /**
   * Fullmesh: a subflow from every local path to every address of the peer (its own and those it
   * announces with ADD_ADDR). Off: one subflow per local path, to the peer's address.
   */
  fullmesh?: boolean;
  /** Subflows per connection at most (the initial one included). Default 8. */
  maxSubflows?: number;
  /** Indexes of local paths that are down now: no subflow until pathUp() (never the first). */
  down?: number[];
  /** This connection's scheduler (the config's schedulerPolicy); default the stack's MPTCP config's. */
  scheduler?: string;
}

export class MptcpStack {
  readonly tcp: TcpStack;
  readonly counters = new CounterSet(MPTCP_STACK_COUNTER_NAMES);
  /** The counters of the connections that closed, folded in as each leaves `connections` (see `connectionCounters`). */
  readonly closedTotals = new CounterTotals<MptcpCounterGroups>(newMptcpCounterGroups);
  private readonly bySubflow = new Map<TcpConnection, Subflow>();
  readonly connections = new Set<MptcpConnection>();
  private readonly paths = new Map<MptcpConnection, PathState>();
  /** Connections by our token, for MP_JOIN (RFC 8684 §3.2). */
  private readonly byToken = new Map<number, MptcpConnection>();
  private events: MptcpStackEvent[] = [];
  private eventsHead = 0;
  private readonly options: MptcpStackOptions;
  private readonly host: { random32(): number; touch(tcp: TcpConnection): void; wake(conn: MptcpConnection): void };
  /**
   * The connections to run at the next process(): a subflow had input, a timer or sent
   * something, the user acted, or the connection's own deadline came. The others are not
   * looked at: a held idle connection costs nothing per tick.
   */
  private readonly dirty = new Set<MptcpConnection>();
  /** Each connection's own earliest deadline (DATA_FIN and data retransmission, stale checks, join retries). */
  private readonly deadlines = new DeadlineHeap<MptcpConnection>();
  /** The last address ID given by freshId(). */
  private lastId = 0;

  constructor(options: MptcpStackOptions) {
    this.options = options;
    this.tcp = new TcpStack(options);
    this.host = {
      random32: () => options.random(4).readUInt32BE(0),
      touch: (tcp) => this.tcp.touch(tcp),
      wake: (conn) => this.dirty.add(conn),
    };
    this.tcp.onWake = (tcp) => {
      const sf = this.bySubflow.get(tcp);
      if (sf) this.dirty.add(sf.conn);
    };
  }

  /** The user acted on a connection: it runs at the next process(). */
  touch(conn: MptcpConnection): void {
    this.dirty.add(conn);
  }

  /** The connection's earliest deadline (its own, and its joins' retries) into the heap. */
  private rearm(conn: MptcpConnection): void {
    let t = conn.pollTimeout();
    const p = this.paths.get(conn);
    if (p) for (const at of p.retryAt.values()) if (t === null || at < t) t = at;
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

  private openSubflow(now: Instant, local: Buffer, remote: Endpoint): TcpConnection {
    for (let i = 0; ; i++) {
      try {
        return this.tcp.connect(now, { addr: local, port: this.ephemeralPort() }, remote, { congestionControl: this.subflowCc() });
      } catch (e) {
        this.counters.increment('portCollisions');
        if (i > 16) throw e;
      }
    }
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
    const tcp = this.openSubflow(now, localAddrs[0]!, remote);
    const sf = conn.attach(tcp, true, 0);
    this.bySubflow.set(tcp, sf);
    this.connections.add(conn);
    this.dirty.add(conn);
    const backup = new Set(options.backup ?? []);
    this.paths.set(conn, {
      localAddrs, ids: localAddrs.map((_, i) => i), remote, opened: new Set([0]), otherFamily: new Set(), joins: new Map(), retryAt: new Map(), failures: new Map(), retries: 0, backup, removed: new Set((options.down ?? []).filter((i) => i !== 0)), fullmesh: options.fullmesh ?? false, maxSubflows: options.maxSubflows ?? 8,
    });
    // the first path as a backup: said with MP_PRIO once the connection is up
    if (backup.has(0)) conn.setBackup(0, true);
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
        return {
          config: { congestionControl: this.subflowCc() },
          setup: (tcp: TcpConnection) => {
            const sf = conn.attach(tcp, false, 0);
            this.bySubflow.set(tcp, sf);
          },
        };
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
        setup: (tcp: TcpConnection) => {
          const sf = conn.attach(tcp, true, 0);
          this.bySubflow.set(tcp, sf);
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
    // the connections' own timers run in process(now), which the caller runs next
    for (let conn = this.deadlines.popDue(now); conn; conn = this.deadlines.popDue(now)) this.dirty.add(conn);
  }

  /** Runs the connections: subflow events, data movement, the path manager. Call after input and timers. */
  process(now: Instant): void {
    for (let e = this.tcp.pollEvent(); e; e = this.tcp.pollEvent()) {
      const sf = this.bySubflow.get(e.conn);
      if (!sf) continue;
      if (e.event.type === 'reset') sf.tcpResetReason = e.event.reason;
      sf.conn.onSubflowEvent(sf, e.event.type);
      this.dirty.add(sf.conn);
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
      this.pathManager(now, conn);
      for (let ev = conn.pollEvent(); ev; ev = conn.pollEvent()) {
        this.events.push({ conn, event: ev });
        if (ev.type === 'closed' && this.connections.has(conn)) {
          this.connections.delete(conn);
          this.closedTotals.fold(conn.counterGroups());
          this.paths.delete(conn);
          this.byToken.delete(conn.localToken);
          this.deadlines.delete(conn);
        }
      }
      if (this.connections.has(conn)) this.rearm(conn);
    }
  }

  /** Fullmesh over the local paths: one subflow per local path, once the peer has our key. */
  private pathManager(now: Instant, conn: MptcpConnection): void {
    const p = this.paths.get(conn);
    if (!p) return;
    // plain TCP now: no join, and no retry deadline left behind
    if (conn.fallback) p.retryAt.clear();
    if (conn.fallback || !conn.fullyEstablished || conn.remoteKey === null) return;
    const live = () => conn.subflows.filter((s) => !s.closed).length;
    this.joinRetries(now, p);
    if (p.fullmesh) {
      for (const [id, a] of conn.remoteAddresses) {
        if (p.otherFamily.has(id) || p.localAddrs.some((l) => sameFamily(l, a.addr))) continue;
        p.otherFamily.add(id);
        this.counters.increment('addAddrOtherFamily');
      }
    }
    for (let i = 0; i < p.localAddrs.length; i++) {
      if (p.removed.has(i)) continue;
      const targets: Array<{ key: number | string; remote: Endpoint }> = [{ key: i, remote: p.remote }];
      if (p.fullmesh) {
        for (const [id, a] of conn.remoteAddresses) {
          if (a.addr.equals(p.remote.addr)) continue;
          // a subflow's two ends are of one IP version: a peer announcing its IPv4 address on
          // an IPv6 connection (or the reverse) is reached from the paths of that version only
          // by a connection of that version (counted once above: addAddrOtherFamily)
          if (a.addr.length !== p.localAddrs[i]!.length) continue;
          targets.push({ key: `${i}/${id}`, remote: { addr: a.addr, port: a.port || p.remote.port } });
        }
      }
      for (const target of targets) {
        // a subflow joins two addresses of one family: the others are no pair
        if (p.opened.has(target.key) || !sameFamily(p.localAddrs[i]!, target.remote.addr)) continue;
        if (live() >= p.maxSubflows) {
          this.counters.increment('subflowLimit');
          return;
        }
        p.opened.add(target.key);
        const tcp = this.openSubflow(now, p.localAddrs[i]!, target.remote);
        const sf = conn.attach(tcp, false, p.ids[i]!);
        sf.localBackup = p.backup.has(i);
        this.bySubflow.set(tcp, sf);
        p.joins.set(target.key, { sf, local: i });
        this.counters.increment('joinsOpened');
      }
    }
  }

  /**
   * A join that failed — refused (a RST to its SYN), timed out, or reset before it carried a
   * byte (a busy server, a middlebox, a route not there yet) — is tried again while the
   * connection lives, after a back-off that doubles from 1 s to 60 s, at most
   * JOIN_RETRIES_PER_CONNECTION times per connection. A subflow that carried data and then
   * went is the business of pathDown/pathUp, not of this.
   */
  private joinRetries(now: Instant, p: PathState): void {
    for (const [key, j] of p.joins) {
      const sf = j.sf;
      if (sf.usable && !sf.closed && sf.tcp.counters.get('bytesIn') + sf.tcp.counters.get('bytesOut') > 0) {
        // it works: forget it, and its failures
        p.joins.delete(key);
        p.failures.delete(key);
        continue;
      }
      if (!sf.closed) continue;
      p.joins.delete(key);
      // a failure: reset (by the peer, a refused SYN, a timeout, or by us for want of an
      // MP_JOIN answer) before a byte went either way; a FIN close is the connection ending
      const failed = sf.tcpResetReason !== null || sf.resetReason !== null;
      if (!failed || sf.tcp.counters.get('bytesIn') + sf.tcp.counters.get('bytesOut') > 0 || p.removed.has(j.local)) continue;
      if (p.retries >= JOIN_RETRIES_PER_CONNECTION) {
        this.counters.increment('joinRetriesExhausted');
        continue;
      }
      const n = p.failures.get(key) ?? 0;
      p.failures.set(key, n + 1);
      p.retryAt.set(key, now + Math.min(JOIN_RETRY_FIRST_MS * 2 ** n, JOIN_RETRY_MAX_MS));
    }
    for (const [key, at] of p.retryAt) {
      if (now < at) continue;
      p.retryAt.delete(key);
      p.retries++;
      this.counters.increment('joinRetries');
      // the path manager opens the pair again (below), unless its path is down by now
      p.opened.delete(key);
    }
  }

  /**
   * A local path went away (link down, or its address changed): every connection resets its
   * subflows on that path at once, reinjects their data on the others, and sends REMOVE_ADDR.
   * The path gets a fresh address ID for the subflows it opens when it comes back: the peer may
   * read the REMOVE_ADDR after a new MP_JOIN has arrived (it is sent on another, possibly slower,
   * path), and RFC 8684 §3.4.2 has it close every subflow of the removed ID ("the receiver MUST
   * close any existing subflows that are using the removed address").
   */
  pathDown(now: Instant, addr: Buffer): void {
    for (const [conn, p] of this.paths) {
      const i = p.localAddrs.findIndex((a) => a.equals(addr));
      if (i < 0 || p.removed.has(i)) continue;
      p.removed.add(i);
      this.dirty.add(conn);
      conn.removeLocalAddress(p.ids[i]!, now);
      p.ids[i] = this.freshId(conn, p);
      this.counters.increment('addressIdsRenumbered');
    }
  }

  /** A local path came back: the path manager opens its subflows again for the open connections. */
  pathUp(addr: Buffer): void {
    for (const [conn, p] of this.paths) {
      const i = p.localAddrs.findIndex((a) => a.equals(addr));
      if (i < 0 || !p.removed.has(i)) continue;
      p.removed.delete(i);
      this.dirty.add(conn);
      for (const key of [...p.opened]) {
        if (key === i || (typeof key === 'string' && key.startsWith(`${i}/`))) {
          p.opened.delete(key);
          p.retryAt.delete(key);
          p.failures.delete(key);
        }
      }
    }
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

  /**
   * A local path added at run time (an interface that appeared): the open connections get a
   * subflow on it (unless it is down), with an address ID of its own.
   */
  addPath(addr: Buffer, options: { backup?: boolean; up?: boolean } = {}): void {
    for (const [conn, p] of this.paths) {
      // a connection's subflows leave from addresses of its own IP version (a dual-stack path
      // adds its two addresses: each to the connections of its version)
      if (!sameFamily(addr, p.remote.addr) || p.localAddrs.some((a) => a.equals(addr))) continue;
      const i = p.localAddrs.length;
      this.dirty.add(conn);
      p.localAddrs.push(addr);
      p.ids.push(this.freshId(conn, p));
      if (options.backup) p.backup.add(i);
      if (options.up === false) p.removed.add(i);
    }
  }

  /**
   * An address ID (1..255; 0 is the initial subflow's, RFC 8684 §3.2) that neither a local path
   * of the connection nor one of its open subflows holds; the next after the last given, so IDs
   * are not reused soon.
   */
  private freshId(conn: MptcpConnection, p: PathState): number {
    const held = new Set(p.ids);
    for (const sf of conn.subflows) if (!sf.closed) held.add(sf.localId);
    for (let k = 0; k < 255; k++) {
      const id = ((this.lastId + k) % 255) + 1;
      if (!held.has(id)) {
        this.lastId = id;
        return id;
      }
    }
    this.counters.increment('addressIdsExhausted');
    return p.ids[0]!;
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
    return this.events.length > this.eventsHead || this.tcp.hasEvents;
  }

  pollEvent(): MptcpStackEvent | null {
    if (this.eventsHead >= this.events.length) return null;
    const e = this.events[this.eventsHead++]!;
    if (this.eventsHead === this.events.length) {
      this.events = [];
      this.eventsHead = 0;
    }
    return e;
  }
}
