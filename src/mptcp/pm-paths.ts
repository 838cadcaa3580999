// The stack's path manager (Linux's in-kernel one, net/mptcp/pm_kernel.c, with `subflow`
// endpoints; read, not copied), sans-IO: which joins each connection opens (one subflow per
// local path to the peer's address, or fullmesh to the addresses it announces, of the same
// address family), the retry of a failed join with a back-off, local paths that go down, come
// back or appear, and their address IDs. What the peer announced and what we must signal is
// each connection's own (pm.ts).
import type { Instant } from '../ip/sansio.js';
import type { CounterSet } from '../ip/counters.js';
import { TcpState, type Endpoint } from '../tcp/connection.js';
import type { MptcpConnection } from './protocol.js';
import type { Subflow } from './subflow.js';
import type { MptcpStackCounterName } from './mib.js';

/** The back-off of a failed join: 1 s, doubling, at most 60 s; at most this many retries per connection. */
export const JOIN_RETRY_FIRST_MS = 1000;
export const JOIN_RETRY_MAX_MS = 60_000;
export const JOIN_RETRIES_PER_CONNECTION = 16;

/** True when two addresses are of one family (a subflow joins two addresses of one family). */
export function sameFamily(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length;
}

/** How a connection's subflows are laid over the local paths (the stack's ConnectOptions). */
export interface PathOptions {
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
  /**
   * Local paths that went down while the connection had no other subflow to carry its data: their
   * subflows are kept (their packets wait for the link in their retransmissions, as a kernel
   * socket's do) until another subflow is usable, or the path comes back. Index → the address ID
   * those subflows hold.
   */
  held: Map<number, number>;
  fullmesh: boolean;
  maxSubflows: number;
}

/**
 * The empty set and map of every connection's path state: most of a connection's sets and maps
 * (announced addresses of the other family, failures, retries, held paths, removed and backup
 * paths) hold nothing for its whole life, an empty Set or Map costs some 200 bytes, and
 * thousands of connections are held. Shared, so never written: a write goes through owned(),
 * which gives the connection its own first (a write to the shared one throws).
 */
class NoneSet<T> extends Set<T> {
  override add(): this {
    throw new Error('the shared empty set is never written (owned() first)');
  }
}
class NoneMap<K, V> extends Map<K, V> {
  override set(): this {
    throw new Error('the shared empty map is never written (ownedMap() first)');
  }
}
const NONE_SET: Set<unknown> = new NoneSet();
const NONE_MAP: Map<unknown, unknown> = new NoneMap();
const noneSet = <T>(): Set<T> => NONE_SET as Set<T>;
const noneMap = <K, V>(): Map<K, V> => NONE_MAP as Map<K, V>;
/** `s`, or a set of the connection's own in place of the shared empty one. */
const owned = <T>(s: Set<T>): Set<T> => (s === NONE_SET ? new Set<T>() : s);
/** `m`, or a map of the connection's own in place of the shared empty one. */
const ownedMap = <K, V>(m: Map<K, V>): Map<K, V> => (m === NONE_MAP ? new Map<K, V>() : m);

/** What the path manager needs of its stack. */
export interface PathManagerHost {
  /** Opens a join subflow (MP_JOIN) of `conn` from `local` (address ID `localId`) to `remote`. */
  openJoin(now: Instant, conn: MptcpConnection, local: Buffer, remote: Endpoint, localId: number): Subflow;
  /** `conn`'s paths changed: the stack runs it at its next process(). */
  wake(conn: MptcpConnection): void;
}

export class PathManager {
  private readonly paths = new Map<MptcpConnection, PathState>();
  /** The last address ID given by freshId(). */
  private lastId = 0;

  constructor(private readonly host: PathManagerHost, private readonly counters: CounterSet<MptcpStackCounterName>) {}

  /** A connection we opened from the first of `localAddrs`: the others join it once it is established. */
  add(conn: MptcpConnection, localAddrs: Buffer[], remote: Endpoint, options: PathOptions): void {
    const backup = options.backup?.length ? new Set(options.backup) : noneSet<number>();
    const down = (options.down ?? []).filter((i) => i !== 0);
    this.paths.set(conn, {
      localAddrs, ids: localAddrs.map((_, i) => i), remote, opened: new Set([0]), otherFamily: noneSet(), joins: noneMap(), retryAt: noneMap(), failures: noneMap(),
      retries: 0, backup, held: noneMap(), removed: down.length > 0 ? new Set(down) : noneSet(), fullmesh: options.fullmesh ?? false, maxSubflows: options.maxSubflows ?? 8,
    });
    // the first path as a backup: said with MP_PRIO once the connection is up
    if (backup.has(0)) conn.setBackup(0, true);
  }

  /** The connection closed. */
  forget(conn: MptcpConnection): void {
    this.paths.delete(conn);
  }

  /** Opens what is missing for `conn` (after its input and timers): fullmesh over the local paths, once the peer has our key. */
  run(now: Instant, conn: MptcpConnection): void {
    const p = this.paths.get(conn);
    if (!p) return;
    if (p.held.size > 0) this.releaseHeld(now, conn, p);
    // plain TCP now: no join, and no retry deadline left behind
    if (conn.fallback) p.retryAt.clear();
    if (conn.fallback || !conn.fullyEstablished || conn.remoteKey === null) return;
    const live = () => conn.subflows.filter((s) => !s.closed).length;
    this.joinRetries(now, p);
    if (p.fullmesh) {
      for (const [id, a] of conn.pm.remoteAddresses) {
        if (p.otherFamily.has(id) || p.localAddrs.some((l) => sameFamily(l, a.addr))) continue;
        (p.otherFamily = owned(p.otherFamily)).add(id);
        this.counters.increment('addAddrOtherFamily');
      }
    }
    for (let i = 0; i < p.localAddrs.length; i++) {
      if (p.removed.has(i)) continue;
      const targets: Array<{ key: number | string; remote: Endpoint }> = [{ key: i, remote: p.remote }];
      if (p.fullmesh) {
        for (const [id, a] of conn.pm.remoteAddresses) {
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
        (p.opened = owned(p.opened)).add(target.key);
        const sf = this.host.openJoin(now, conn, p.localAddrs[i]!, target.remote, p.ids[i]!);
        sf.localBackup = p.backup.has(i);
        (p.joins = ownedMap(p.joins)).set(target.key, { sf, local: i });
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
      (p.failures = ownedMap(p.failures)).set(key, n + 1);
      (p.retryAt = ownedMap(p.retryAt)).set(key, now + Math.min(JOIN_RETRY_FIRST_MS * 2 ** n, JOIN_RETRY_MAX_MS));
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
   *
   * A connection with no other usable subflow (a young one whose joins are not up yet, or one
   * whose other paths are down too) keeps its subflows on the path instead: resetting them would
   * reset the connection, where a kernel socket rides out a flap in its retransmissions. They are
   * let go as above once another subflow is usable (releaseHeld), or resume when the path comes
   * back (pathUp).
   */
  pathDown(now: Instant, addr: Buffer): void {
    for (const [conn, p] of this.paths) {
      const i = p.localAddrs.findIndex((a) => a.equals(addr));
      if (i < 0 || p.removed.has(i)) continue;
      (p.removed = owned(p.removed)).add(i);
      this.host.wake(conn);
      if (!this.othersCarry(conn, p)) {
        (p.held = ownedMap(p.held)).set(i, p.ids[i]!);
        this.counters.increment('subflowsHeldOnDownPath');
        continue;
      }
      this.removePath(now, conn, p, i, p.ids[i]!);
    }
  }

  /** Resets `conn`'s subflows of address ID `id` (path `i`, down), with REMOVE_ADDR; the path gets a fresh ID. */
  private removePath(now: Instant, conn: MptcpConnection, p: PathState, i: number, id: number): void {
    conn.removeLocalAddress(id, now);
    p.ids[i] = this.freshId(conn, p);
    this.counters.increment('addressIdsRenumbered');
  }

  /** True when a subflow of `conn` on a path that is up can carry its data. */
  private othersCarry(conn: MptcpConnection, p: PathState): boolean {
    return conn.subflows.some((s) => {
      if (s.closed || !s.usable || !(s.tcp.state === TcpState.Established || s.tcp.state === TcpState.CloseWait)) return false;
      const i = p.localAddrs.findIndex((a) => a.equals(s.tcp.local.addr));
      return i >= 0 && !p.removed.has(i);
    });
  }

  /** Held subflows (see pathDown) let go once another subflow can carry the data. */
  private releaseHeld(now: Instant, conn: MptcpConnection, p: PathState): void {
    if (!this.othersCarry(conn, p)) return;
    for (const [i, id] of p.held) {
      p.held.delete(i);
      this.counters.increment('heldSubflowsReleased');
      this.removePath(now, conn, p, i, id);
    }
  }

  /** A local path came back: the path manager opens its subflows again for the open connections. */
  pathUp(now: Instant, addr: Buffer): void {
    for (const [conn, p] of this.paths) {
      const i = p.localAddrs.findIndex((a) => a.equals(addr));
      if (i < 0 || !p.removed.has(i)) continue;
      p.removed.delete(i);
      this.host.wake(conn);
      if (p.held.delete(i)) {
        // its subflows lived through it: they retransmit now rather than at their backed-off
        // timer, and the pairs they hold stay opened
        conn.resumeSubflowsFrom(now, addr);
        this.counters.increment('heldSubflowsResumed');
        continue;
      }
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
   * A local path added at run time (an interface that appeared): the open connections get a
   * subflow on it (unless it is down), with an address ID of its own.
   */
  addPath(addr: Buffer, options: { backup?: boolean; up?: boolean } = {}): void {
    for (const [conn, p] of this.paths) {
      // a connection's subflows leave from addresses of its own IP version (a dual-stack path
      // adds its two addresses: each to the connections of its version)
      if (!sameFamily(addr, p.remote.addr) || p.localAddrs.some((a) => a.equals(addr))) continue;
      const i = p.localAddrs.length;
      this.host.wake(conn);
      p.localAddrs.push(addr);
      p.ids.push(this.freshId(conn, p));
      if (options.backup) (p.backup = owned(p.backup)).add(i);
      if (options.up === false) (p.removed = owned(p.removed)).add(i);
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

  /** `conn`'s earliest join retry, or null. */
  retryDeadline(conn: MptcpConnection): Instant | null {
    let t: Instant | null = null;
    for (const at of this.paths.get(conn)?.retryAt.values() ?? []) if (t === null || at < t) t = at;
    return t;
  }
}
