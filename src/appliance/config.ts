// What an appliance runs with: its settings, as `mptun up` hands them over (src/cli/config.ts
// reads them from flags and the config file, checks them, and fills in the defaults).
import type { SchedulerName } from '../mptcp/scheduler.js';
import type { SchedulerRule } from '../mptcp/policy.js';

/** One path (a subflow's way out): the interface, its gateway if not discovered, and whether it is a backup. */
export interface PathConfig {
  iface: string;
  gateway?: string;
  backup: boolean;
}

export interface ApplianceConfig {
  /** The TUN device's name. */
  tun: string;
  /** The paths; empty means discover them when the appliance starts. */
  paths: PathConfig[];
  /**
   * The interfaces named as backup, from the top-level `backup` list, the paths with
   * `backup: true` and `--backup`. With explicit paths it is exactly the ifaces of the paths
   * marked backup; with discovered paths it says which discovered ones are backups.
   */
  backup: string[];
  /** Prefixes that are not captured, in network form ("10.0.0.0/8"). */
  exclude: string[];
  /** Also exclude the connected prefixes of the path interfaces. */
  excludeLan: boolean;
  /** IPv4 range (prefix length <= 22) the tun address and the per-path private /24s are carved from. */
  sourceRange: string;
  /**
   * IPv6 range (prefix length <= 60; a ULA by default) the tun's IPv6 address (the first /64's
   * ::1) and the per-path private /64s are carved from, for the paths that carry IPv6.
   */
  sourceRange6: string;
  /** First routing table id: the capture table is `table`, path i uses `table + 1 + i`. */
  table: number;
  /** First rule preference: path rules, then exclusions, then the capture rule. */
  rulePriority: number;
  mtu: number;
  /** TUN virtio-net header and TSO. */
  offload: boolean;
  scheduler: SchedulerName;
  /** Per-connection schedulers by destination port and/or prefix, first match wins; else `scheduler`. */
  schedulerPolicy: SchedulerRule[];
  congestionControl: 'lia' | 'cubic';
  fullmesh: boolean;
  maxSubflows: number;
  /** The apps' connections in SYN-RECEIVED at most (mptun's SYN backlog); more SYNs are dropped and counted. */
  synBacklog: number;
  /** The apps' SYNs waiting for their upstream connection at most; more are dropped and counted. */
  maxPendingOpens: number;
  /** New TCP connections let into the device per second at most (the kernel drops the rest, nft). */
  synRate: number;
  controlSocket: string;
  stateDir: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** Where the Prometheus metrics are served ("ADDR:PORT", IPv6 in brackets), or null: not served. */
  metrics: string | null;
  /**
   * The concentrator (`mptun server`), "HOST:PORT" (an IPv6 address in brackets), or null: every
   * captured connection goes there over MPTCP, but for `direct` destinations.
   */
  server: string | null;
  /** The key file shared with the concentrator (absolute path); needed with `server`. */
  key: string | null;
  /** Destinations that are not sent to the concentrator (still captured, MPTCP to them directly). */
  direct: string[];
  /** Connections to the concentrator kept open ahead of the apps (0: none; each app connection then opens its own). */
  serverPool: number;
}

/** The address and port of a `metrics` value (as the config gives it: "ADDR:PORT", IPv6 in brackets). */
export function metricsEndpoint(value: string): { host: string; port: number } {
  const colon = value.lastIndexOf(':');
  const host = value.slice(0, colon);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(value.slice(colon + 1)) };
}
