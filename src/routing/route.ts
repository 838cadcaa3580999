// Routes through rtnetlink. Every route mptun makes carries mptun's own routing-protocol id
// (rtm_protocol), so that leftovers of a dead instance are easy to find and remove.
import { AF_INET, AF_INET6, parseInterfaceAddress, routingError, withRtnl } from './netlink.js';
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

export interface RouteSpec {
  /** Destination prefix, e.g. `192.0.2.0/24` or `default`. */
  dst: string;
  /** Output device. */
  dev: string;
  /** Next hop; without it the route is on-link (scope link). */
  gateway?: string;
  table?: number;
  /** IP version for `default` (4 unless said). */
  version?: 4 | 6;
}

function routeMessage(spec: RouteSpec, oif: number) {
  const dst = spec.dst === 'default' ? null : parseInterfaceAddress(spec.dst);
  const version = dst ? dst.family : spec.version ?? 4;
  const gw = spec.gateway ? parseInterfaceAddress(spec.gateway) : null;
  const table = spec.table ?? RT_TABLE_MAIN;
  const data = {
    family: version === 4 ? AF_INET : AF_INET6,
    dstLen: dst ? dst.prefixLength : 0,
    table: table < 256 ? table : 0,
    protocol: RTPROT_MPTUN,
    scope: gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
    type: RTN_UNICAST,
  };
  const attrs: { dst?: Buffer; oif: number; gateway?: Buffer; table: number } = { oif, table };
  if (dst) attrs.dst = dst.network;
  if (gw) attrs.gateway = gw.bytes;
  return { data, attrs };
}

export async function addRoute(spec: RouteSpec): Promise<void> {
  await withRtnl(async (rt) => {
    const link = await getLink(rt, spec.dev);
    const { data, attrs } = routeMessage(spec, link.index);
    try {
      await rt.newRoute(data, attrs, { flags: NLM_F_CREATE | NLM_F_EXCL });
    } catch (e) {
      throw routingError(`add route ${spec.dst} dev ${spec.dev}`, e);
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
    const link = await getLink(rt, spec.dev);
    const { data, attrs } = routeMessage(spec, link.index);
    try {
      await rt.newRoute(data, attrs, { flags: NLM_F_CREATE | NLM_F_REPLACE });
    } catch (e) {
      throw routingError(`replace route ${spec.dst} dev ${spec.dev}`, e);
    }
  });
}

export async function deleteRoute(spec: RouteSpec): Promise<void> {
  await withRtnl(async (rt) => {
    const link = await getLink(rt, spec.dev);
    const { data, attrs } = routeMessage(spec, link.index);
    try {
      await rt.delRoute(data, attrs);
    } catch (e) {
      throw routingError(`delete route ${spec.dst} dev ${spec.dev}`, e);
    }
  });
}
