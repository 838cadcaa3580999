// Routes through rtnetlink. Every route mptun makes carries mptun's own routing-protocol id
// (rtm_protocol), so that leftovers of a dead instance are easy to find and remove.
import { AF_INET, AF_INET6, parseInterfaceAddress, RoutingError, routingError, withRtnl } from './netlink.js';
import type { RtNetlinkSocket } from 'netlink';
import { getLink } from './link.js';

/** mptun's rtm_protocol: not used by any routing daemon in /etc/iproute2/rt_protos. */
export const RTPROT_MPTUN = 0xfa;
export const RT_TABLE_MAIN = 254;

const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;
const RTN_BLACKHOLE = 6;

/**
 * The metric of the blackhole route at the end of each path's table: above any real route's, so
 * it is used only when the path's default route is gone (its link down: the kernel flushes the
 * routes of a device that goes down). A subflow whose path is down then has its packets dropped
 * (they wait for the link in its retransmissions, as a kernel socket's do) instead of falling
 * through to the main table or the capture rule, to leave by another link or come back into mptun.
 */
export const PATH_BLACKHOLE_METRIC = 0xfffffff0;

export interface RouteSpec {
  /** Destination prefix, e.g. `192.0.2.0/24` or `default`. */
  dst: string;
  /** Output device (none for a blackhole route). */
  dev?: string;
  /**
   * `blackhole`: packets that reach it are dropped, and the rule lookup ends there (it does not
   * go on to the next rule, as it does when a table has no route). Default: a unicast route.
   */
  type?: 'unicast' | 'blackhole';
  /** The route's metric (RTA_PRIORITY); a lower one wins. Default 0. */
  metric?: number;
  /** Next hop; without it the route is on-link (scope link). */
  gateway?: string;
  table?: number;
  /** IP version for `default` (4 unless said). */
  version?: 4 | 6;
}

function routeMessage(spec: RouteSpec, oif: number | null) {
  const dst = spec.dst === 'default' ? null : parseInterfaceAddress(spec.dst);
  const version = dst ? dst.family : spec.version ?? 4;
  const gw = spec.gateway ? parseInterfaceAddress(spec.gateway) : null;
  const table = spec.table ?? RT_TABLE_MAIN;
  const data = {
    family: version === 4 ? AF_INET : AF_INET6,
    dstLen: dst ? dst.prefixLength : 0,
    table: table < 256 ? table : 0,
    protocol: RTPROT_MPTUN,
    scope: gw || oif === null ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
    type: spec.type === 'blackhole' ? RTN_BLACKHOLE : RTN_UNICAST,
  };
  const attrs: { dst?: Buffer; oif?: number; gateway?: Buffer; table: number; priority?: number } = { table };
  if (oif !== null) attrs.oif = oif;
  if (dst) attrs.dst = dst.network;
  if (gw) attrs.gateway = gw.bytes;
  if (spec.metric !== undefined) attrs.priority = spec.metric;
  return { data, attrs };
}

/** The output device's index; null for a blackhole route (it has none). */
async function outputIndex(rt: RtNetlinkSocket, spec: RouteSpec): Promise<number | null> {
  if (spec.type === 'blackhole') return null;
  if (spec.dev === undefined) throw new RoutingError(`route ${spec.dst}`, 'EINVAL', 'a unicast route needs a device');
  return (await getLink(rt, spec.dev)).index;
}

/** `blackhole default table 100 metric 4294967280`, `default dev eth0 table 100`: as `ip route` says it. */
export function describeRoute(spec: RouteSpec): string {
  const head = spec.type === 'blackhole' ? `blackhole ${spec.dst}` : `${spec.dst} dev ${spec.dev}`;
  return `${head}${spec.table !== undefined ? ` table ${spec.table}` : ''}${spec.metric !== undefined ? ` metric ${spec.metric}` : ''}`;
}

export async function addRoute(spec: RouteSpec): Promise<void> {
  await withRtnl(async (rt) => {
    const { data, attrs } = routeMessage(spec, await outputIndex(rt, spec));
    try {
      await rt.newRoute(data, attrs, { flags: NLM_F_CREATE | NLM_F_EXCL });
    } catch (e) {
      throw routingError(`add route ${describeRoute(spec)}`, e);
    }
  });
}

/**
 * Adds the route, or replaces the one of the same destination (and metric) in its table
 * (`ip route replace`): a path's default route moved to a new gateway without a moment
 * without one.
 */
export async function replaceRoute(spec: RouteSpec): Promise<void> {
  await withRtnl(async (rt) => {
    const { data, attrs } = routeMessage(spec, await outputIndex(rt, spec));
    try {
      await rt.newRoute(data, attrs, { flags: NLM_F_CREATE | NLM_F_REPLACE });
    } catch (e) {
      throw routingError(`replace route ${describeRoute(spec)}`, e);
    }
  });
}

export async function deleteRoute(spec: RouteSpec): Promise<void> {
  await withRtnl(async (rt) => {
    const { data, attrs } = routeMessage(spec, await outputIndex(rt, spec));
    try {
      await rt.delRoute(data, attrs);
    } catch (e) {
      throw routingError(`delete route ${describeRoute(spec)}`, e);
    }
  });
}
