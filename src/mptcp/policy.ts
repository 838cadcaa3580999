// Per-connection scheduler policy: rules by destination port and/or prefix → scheduler name,
// first match wins (the config's `schedulerPolicy`, applied by the relay when it opens the
// upstream connection). Pure: no I/O.
import { IpPrefix } from '../ip/address.js';

export interface SchedulerRule {
  /** A destination port, or a range "LOW-HIGH" as [low, high]; absent: any port. */
  port?: number | [number, number];
  /** A destination prefix ("10.0.0.0/8", "2001:db8::/32"); absent: any address. */
  cidr?: string;
  /** The scheduler's name (src/mptcp/scheduler.ts registry). */
  scheduler: string;
}

/** The scheduler for a destination, or undefined (the connection's default). */
export type SchedulerPolicy = (destination: { addr: Uint8Array; port: number }) => string | undefined;

export function compileSchedulerPolicy(rules: readonly SchedulerRule[]): SchedulerPolicy {
  const compiled = rules.map((r) => ({
    lo: r.port === undefined ? 0 : typeof r.port === 'number' ? r.port : r.port[0],
    hi: r.port === undefined ? 65535 : typeof r.port === 'number' ? r.port : r.port[1],
    prefix: r.cidr === undefined ? null : IpPrefix.parse(r.cidr, { strict: false }),
    scheduler: r.scheduler,
  }));
  return (dst) => {
    const family = dst.addr.length === 4 ? 4 : 6;
    for (const r of compiled) {
      if (dst.port < r.lo || dst.port > r.hi) continue;
      if (r.prefix && !r.prefix.contains(family, dst.addr)) continue;
      return r.scheduler;
    }
    return undefined;
  };
}
