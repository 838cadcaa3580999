// Schedulers (CONVENTIONS.md 6): a registry of `{ name, pick(connection, { reinject }) }`. A
// scheduler sees the subflows that may carry data now, through a narrow read-only view
// (SchedulerSubflow, SchedulerContext), and picks one for the next mapping, or none (wait).
//
// In the registry: lowest-rtt (the default), round-robin, blest (Ferlin et al. 2016), ecf (Lim
// et al. 2017), redundant, and kernel (Linux's mptcp_subflow_get_send: lowest time to drain).

/** What a scheduler may know of a subflow (read-only; sizes in bytes, times in ms). */
export interface SchedulerSubflow {
  readonly id: number;
  readonly backup: boolean;
  /** Smoothed RTT in ms (a large value before any sample). */
  readonly rtt: number;
  /** RTTVAR in ms (rtt / 2 before any sample, as RFC 6298 §2.2 starts it). */
  readonly rttvar: number;
  /** Maximum segment size of the subflow (payload bytes). */
  readonly mss: number;
  /** Congestion window (bytes). */
  readonly cwnd: number;
  /** Bytes handed to the subflow and not yet acknowledged by it: inFlight + queued. */
  readonly unacknowledged: number;
  /** Bytes sent and not yet acknowledged (the flight). */
  readonly inFlight: number;
  /** Bytes handed to the subflow and not yet sent. */
  readonly queued: number;
  /** The rate the subflow sends at, bytes per ms: as Linux's sk_pacing_rate, cwnd / SRTT × (2 in slow start, 1.2 after). */
  readonly pacingRate: number;
}

export interface SchedulerContext<S extends SchedulerSubflow> {
  /** Usable subflows (MPTCP handshake done, TCP established, not stale). */
  readonly subflows: readonly S[];
  /** Bytes a subflow may hold unacknowledged beyond its congestion window. */
  readonly backlog: number;
  /**
   * The connection-level send window (RFC 8684 §3.3.4): the peer's last DATA_ACK plus its
   * receive window, less the oldest unacknowledged DSN (bytes; Infinity before the first DATA_ACK).
   */
  readonly sendWindow: number;
  /** What of sendWindow new data may still use (the window's right edge less the next new DSN). */
  readonly sendWindowFree: number;
  /** Bytes written by the application and not yet handed to any subflow. */
  readonly unsent: number;
  /** The time of the decision (ms). */
  readonly now: number;
}

export interface Scheduler {
  readonly name: string;
  /** The subflow for the next mapping, or null when none has room or the scheduler waits. `reinject`: the data was sent on another subflow before. */
  pick<S extends SchedulerSubflow>(ctx: SchedulerContext<S>, opts: { reinject: boolean }): S | null;
  /** Each new mapping also goes on every other subflow with room (the connection sends the copies). */
  readonly redundant?: boolean;
  /** Told what the connection handed the picked subflow (bytes), for schedulers that send in bursts. */
  sent?(subflow: SchedulerSubflow, bytes: number): void;
  /** Decisions counted by the scheduler (waits, bursts ...), for the connection's counters. */
  readonly waits?: number;
}

export const room = (s: SchedulerSubflow, backlog: number): number => s.cwnd + backlog - s.unacknowledged;

/** Backup subflows (MP_PRIO / MP_JOIN B flag) only when no regular one is usable (RFC 8684 §3.3.8). */
function pool<S extends SchedulerSubflow>(subflows: readonly S[]): readonly S[] {
  const regular = subflows.filter((s) => !s.backup);
  return regular.length > 0 ? regular : subflows;
}

/** The subflow of lowest RTT in a pool (with room or not). */
function fastest<S extends SchedulerSubflow>(subflows: readonly S[]): S | null {
  let best: S | null = null;
  for (const s of subflows) if (!best || s.rtt < best.rtt) best = s;
  return best;
}

/** The lowest-RTT subflow among those with room, or null. */
function lowestRttWithRoom<S extends SchedulerSubflow>(subflows: readonly S[], backlog: number): S | null {
  let best: S | null = null;
  for (const s of subflows) {
    if (room(s, backlog) <= 0) continue;
    if (!best || s.rtt < best.rtt) best = s;
  }
  return best;
}

/** The default: lowest RTT first among the subflows with room in their congestion window. */
export const lowestRtt: Scheduler = {
  name: 'lowest-rtt',
  pick(ctx) {
    return lowestRttWithRoom(pool(ctx.subflows), ctx.backlog);
  },
};

/** Round robin over the subflows with room: for tests and for comparison. */
export function roundRobin(): Scheduler {
  let next = 0;
  return {
    name: 'round-robin',
    pick(ctx) {
      const p = pool(ctx.subflows);
      for (let i = 0; i < p.length; i++) {
        const s = p[(next + i) % p.length]!;
        if (room(s, ctx.backlog) > 0) {
          next = (next + i + 1) % p.length;
          return s;
        }
      }
      return null;
    },
  };
}

/**
 * The slow-path decision shared by BLEST and ECF: the fast subflow (lowest RTT) first when it
 * has room; otherwise the lowest-RTT subflow with room is a slower one and `useSlow` decides
 * whether to send on it or to wait for the fast one. Reinjections never wait.
 */
function fastOrSlow(
  name: string,
  useSlow: <S extends SchedulerSubflow>(ctx: SchedulerContext<S>, fast: S, slow: S) => boolean,
): Scheduler & { waits: number } {
  const sched = {
    name,
    waits: 0,
    pick<S extends SchedulerSubflow>(ctx: SchedulerContext<S>, opts: { reinject: boolean }): S | null {
      const p = pool(ctx.subflows);
      const fast = fastest(p);
      if (!fast) return null;
      if (room(fast, ctx.backlog) > 0) return fast;
      const slow = lowestRttWithRoom(p, ctx.backlog);
      if (!slow) return null;
      if (opts.reinject || useSlow(ctx, fast, slow)) return slow;
      sched.waits++;
      return null;
    },
  };
  return sched;
}

/** BLEST's λ (Ferlin et al. 2016 §IV): starts at 1.2, kept in [1.0, 1.3]. */
export const BLEST_LAMBDA_INIT = 1.2;
export const BLEST_LAMBDA_MIN = 1.0;
export const BLEST_LAMBDA_MAX = 1.3;
/** λ grows by this on a blocking event (the connection-level window full while data waits) ... */
export const BLEST_LAMBDA_BAD = 0.04;
/** ... and shrinks by this after a fast-subflow RTT without one. */
export const BLEST_LAMBDA_GOOD = 0.01;

/**
 * BLEST (Ferlin, Alay, Mehani, Boreli, "BLEST: Blocking Estimation-based MPTCP Scheduler for
 * Heterogeneous Networks", IFIP Networking 2016). With x_f the fast subflow (no room) and x_s
 * the slow one, rtts = RTT_s / RTT_f; during one RTT of x_s the fast subflow could send
 *     X = MSS_f · (CWND_f + (rtts − 1) / 2) · rtts        (CWND_f in segments, growing by one per RTT)
 * and a segment put on x_s holds the connection-level window until it is acknowledged. x_s is
 * used only if that does not block x_f:
 *     X · λ ≤ |W| − (inflight_s + 1) · MSS_s               (|W| the connection-level send window)
 * otherwise the scheduler waits for x_f. λ corrects the estimate: it grows by
 * BLEST_LAMBDA_BAD when the window was found blocking (full, with data unsent), and shrinks by
 * BLEST_LAMBDA_GOOD after each RTT_f without such an event.
 */
export function blest(): Scheduler & { waits: number; readonly lambda: number } {
  let lambda = BLEST_LAMBDA_INIT;
  let lastAdjust = -Infinity;
  const base = fastOrSlow('blest', (ctx, fast, slow) => {
    const rtts = slow.rtt / Math.max(fast.rtt, 0.001);
    const cwndF = fast.cwnd / fast.mss;
    const x = fast.mss * (cwndF + (rtts - 1) / 2) * rtts;
    const inflightS = slow.unacknowledged / slow.mss;
    return x * lambda <= ctx.sendWindow - (inflightS + 1) * slow.mss;
  });
  const sched = {
    name: 'blest',
    get waits() {
      return base.waits;
    },
    get lambda() {
      return lambda;
    },
    pick<S extends SchedulerSubflow>(ctx: SchedulerContext<S>, opts: { reinject: boolean }): S | null {
      const fast = fastest(pool(ctx.subflows));
      const blocked = ctx.unsent > 0 && ctx.sendWindowFree < (fast?.mss ?? 1);
      if (blocked && ctx.now - lastAdjust > 0) {
        lambda = Math.min(BLEST_LAMBDA_MAX, lambda + BLEST_LAMBDA_BAD);
        lastAdjust = ctx.now + (fast?.rtt ?? 0);
      } else if (fast && ctx.now - lastAdjust >= fast.rtt) {
        lambda = Math.max(BLEST_LAMBDA_MIN, lambda - BLEST_LAMBDA_GOOD);
        lastAdjust = ctx.now;
      }
      return base.pick(ctx, opts);
    },
  };
  return sched;
}

/** ECF's hysteresis (Lim et al. 2017 §3): β = 0.25. */
export const ECF_BETA = 0.25;

/**
 * ECF (Lim, Nahum, Towsley, Gibbens, Sirer ... "ECF: An MPTCP Path Scheduler to Manage
 * Heterogeneous Paths", CoNEXT 2017, Algorithm 1). With x_f the fast subflow (no room), x_s the
 * slow one, k the bytes waiting at the connection level in segments, δ = max(RTTVAR_f, RTTVAR_s):
 *     n = 1 + k / CWND_f                                   (RTTs x_f needs for all of it)
 *     if n · RTT_f < (1 + waiting · β) · (RTT_s + δ):      (x_f would finish before x_s delivers)
 *         if (k / CWND_s) · RTT_s ≥ 2 · RTT_f + δ:         (and x_s is not worth it)
 *             waiting = 1; wait for x_f
 *         else use x_s
 *     else waiting = 0; use x_s
 */
export function ecf(): Scheduler & { waits: number } {
  let waiting = 0;
  return fastOrSlow('ecf', (ctx, fast, slow) => {
    const k = Math.max(ctx.unsent, fast.mss) / fast.mss;
    const cwndF = Math.max(fast.cwnd / fast.mss, 1);
    const cwndS = Math.max(slow.cwnd / slow.mss, 1);
    const delta = Math.max(fast.rttvar, slow.rttvar);
    const n = 1 + k / cwndF;
    if (n * fast.rtt < (1 + waiting * ECF_BETA) * (slow.rtt + delta)) {
      if ((k / cwndS) * slow.rtt >= 2 * fast.rtt + delta) {
        waiting = 1;
        return false;
      }
      return true;
    }
    waiting = 0;
    return true;
  });
}

/**
 * Redundant: each new mapping on every subflow with room, for latency-critical use. New data
 * goes when the lowest-RTT subflow has room (it waits for it otherwise, so that the others
 * never carry data it does not), and the connection copies the mapping on every other subflow
 * with room: the first copy to arrive wins, the receiver drops the others at the connection
 * level (RFC 8684 §3.3.1: DSS mappings of the same DSN on several subflows; mptun's receiver
 * counts them DuplicateData, Linux's MPTcpExtDuplicateData). Throughput: the fastest path's.
 * A reinjection takes any subflow with room.
 */
export const redundant: Scheduler = {
  name: 'redundant',
  redundant: true,
  pick(ctx, opts) {
    const p = pool(ctx.subflows);
    if (opts.reinject) return lowestRttWithRoom(p, ctx.backlog);
    const fast = fastest(p);
    return fast && room(fast, ctx.backlog) > 0 ? fast : null;
  },
};

/**
 * Linux's MPTCP_SEND_BURST_SIZE: a burst is 64 KiB less the headers (net/mptcp/protocol.c),
 * here one mapping's worth.
 */
export const KERNEL_SEND_BURST = 65535 - 20 - 40 - 40 - 8;

/**
 * The kernel's own rule (Linux net/mptcp/protocol.c mptcp_subflow_get_send, read, not copied):
 * among the subflows with room (Linux: sk_stream_memory_free and an open window), the one whose
 * queue drains soonest,
 *     linger = bytes held by the subflow (wmem_queued) / pacing rate,
 * then that subflow keeps being used for a burst of min(KERNEL_SEND_BURST, free connection-level
 * window) bytes before the choice is made again. The pacing rate here is the one Linux
 * computes (cwnd / SRTT, × 2 in slow start, × 1.2 after), as SchedulerSubflow.pacingRate.
 */
export function kernel(): Scheduler {
  let last: SchedulerSubflow | null = null;
  let burst = 0;
  return {
    name: 'kernel',
    pick<S extends SchedulerSubflow>(ctx: SchedulerContext<S>): S | null {
      const p = pool(ctx.subflows);
      if (last && burst > 0) {
        const again = p.find((s) => s.id === last!.id);
        if (again && room(again, ctx.backlog) > 0) return again;
      }
      let best: S | null = null;
      let bestLinger = Infinity;
      for (const s of p) {
        if (room(s, ctx.backlog) <= 0) continue;
        const linger = s.unacknowledged / Math.max(s.pacingRate, 1e-9);
        if (best === null || linger < bestLinger) {
          best = s;
          bestLinger = linger;
        }
      }
      last = best;
      burst = best ? Math.min(KERNEL_SEND_BURST, ctx.sendWindowFree) : 0;
      return best;
    },
    sent(s, bytes) {
      if (last && s.id === last.id) burst -= bytes;
    },
  };
}

const registry = new Map<string, () => Scheduler>([
  ['lowest-rtt', () => lowestRtt],
  ['round-robin', () => roundRobin()],
  ['blest', () => blest()],
  ['ecf', () => ecf()],
  ['redundant', () => redundant],
  ['kernel', () => kernel()],
]);

/** The scheduler names the registry starts with (the config's enum). */
export const SCHEDULER_NAMES = ['lowest-rtt', 'round-robin', 'blest', 'ecf', 'redundant', 'kernel'] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

export class UnknownSchedulerError extends Error {
  constructor(readonly scheduler: string) {
    super(`unknown MPTCP scheduler '${scheduler}': known are ${[...registry.keys()].join(', ')}`);
    this.name = 'UnknownSchedulerError';
  }
}

export function registerScheduler(name: string, factory: () => Scheduler): void {
  registry.set(name, factory);
}

export function schedulerNames(): string[] {
  return [...registry.keys()];
}

export function createScheduler(name: string): Scheduler {
  const f = registry.get(name);
  if (!f) throw new UnknownSchedulerError(name);
  return f();
}
