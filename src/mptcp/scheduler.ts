// Schedulers (CONVENTIONS.md 6): a registry of `{ name, pick(connection, { reinject }) }`. A
// scheduler sees the subflows that may carry data now and picks one for the next mapping.

/** What a scheduler may know of a subflow. */
export interface SchedulerSubflow {
  readonly id: number;
  readonly backup: boolean;
  /** Smoothed RTT in ms (a large value before any sample). */
  readonly rtt: number;
  /** Congestion window and bytes not yet acknowledged on the subflow. */
  readonly cwnd: number;
  readonly unacknowledged: number;
}

export interface SchedulerContext<S extends SchedulerSubflow> {
  /** Usable subflows (MPTCP handshake done, TCP established). */
  readonly subflows: readonly S[];
  /** Bytes a subflow may hold unacknowledged beyond its congestion window. */
  readonly backlog: number;
}

export interface Scheduler {
  readonly name: string;
  /** The subflow for the next mapping, or null when none has room. `reinject`: the data was sent on another subflow before. */
  pick<S extends SchedulerSubflow>(ctx: SchedulerContext<S>, opts: { reinject: boolean }): S | null;
}

const room = (s: SchedulerSubflow, backlog: number) => s.cwnd + backlog - s.unacknowledged;

/** Backup subflows (MP_PRIO / MP_JOIN B flag) only when no regular one is usable (RFC 8684 §3.3.8). */
function pool<S extends SchedulerSubflow>(subflows: readonly S[]): readonly S[] {
  const regular = subflows.filter((s) => !s.backup);
  return regular.length > 0 ? regular : subflows;
}

/** The default: lowest RTT first among the subflows with room in their congestion window. */
export const lowestRtt: Scheduler = {
  name: 'lowest-rtt',
  pick(ctx, opts) {
    let best = null;
    for (const s of pool(ctx.subflows)) {
      if (room(s, ctx.backlog) <= 0) continue;
      // a reinjection avoids the subflow that is slowest to answer (it may be the failing one)
      if (!best || s.rtt < best.rtt) best = s;
    }
    if (opts.reinject && best === null) return null;
    return best;
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

const registry = new Map<string, () => Scheduler>([
  ['lowest-rtt', () => lowestRtt],
  ['round-robin', () => roundRobin()],
]);

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
