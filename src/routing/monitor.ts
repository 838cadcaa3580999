// What the appliance needs to know about the host's network, and to hear when it changes:
// the paths (interfaces with a default route and a global address, per IP version), the state of one
// interface, and a stream of link, address and route events from rtnetlink's multicast groups.
//
// Kernel behaviour a consumer of the events must know (seen on Linux 6.x, iproute2 6.1):
// - `ip link set DEV down` deletes the IPv4 routes through DEV *without* an RTM_DELROUTE
//   (IPv6 does send them); the IPv4 addresses stay. After `up` again the connected routes come
//   back (RTM_NEWROUTE) but a default route added by hand does not. Treat a link going down
//   as "its routes are gone" and rediscover paths when it comes back.
// - Carrier loss (the veth peer down, a cable pulled) clears IFF_LOWER_UP only: routes and
//   addresses stay (flagged linkdown), no route event.
// - The kernel sends several RTM_NEWLINK for one change (flags, then operstate ...): each
//   event reports the state at that time; de-duplicating is the consumer's.
// - Notifications carry the sequence number and port of the request that caused them.
import { endianness } from 'node:os';
import { createNetlink, Protocol, rt, type NetlinkMessage, type NetlinkSocket, type RtNetlinkSocket } from 'netlink';
import { formatIpAddress, IpPrefix } from '../ip/address.js';
import { AF_INET, AF_INET6, routingError, withRtnl, type RoutingError } from './netlink.js';
import { RT_TABLE_MAIN, RTPROT_MPTUN } from './route.js';

// rtnetlink multicast groups (enum rtnetlink_groups, include/uapi/linux/rtnetlink.h)
const RTNLGRP_LINK = 1;
const RTNLGRP_IPV4_IFADDR = 5;
const RTNLGRP_IPV4_ROUTE = 7;
const RTNLGRP_IPV6_IFADDR = 9;
const RTNLGRP_IPV6_ROUTE = 11;
const MONITOR_GROUPS = [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE];

// message types (include/uapi/linux/rtnetlink.h)
const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;

// rtm_type, rtm_scope / ifa_scope
const RTN_UNICAST = 1;
const RT_TABLE_LOCAL = 255;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_HOST = 254;

// struct rtnexthop (RTA_MULTIPATH): u16 rtnh_len, u8 rtnh_flags, u8 rtnh_hops, s32 rtnh_ifindex,
// then attributes (struct rtattr: u16 rta_len, u16 rta_type), everything aligned to 4 bytes.
const RTNH_HDR_LEN = 8;
const RTA_HDR_LEN = 4;
const RTA_GATEWAY = 5;
const RTNH_F_DEAD = 1;
// struct nexthop_grp (NHA_GROUP): u32 id, u8 weight, u8 resvd1, u16 resvd2
const NEXTHOP_GRP_LEN = 8;

/** A large receive buffer makes ENOBUFS (events lost) less likely; capped by net.core.rmem_max. */
const MONITOR_RECV_BUFFER = 1 << 20;

const align4 = (n: number) => (n + 3) & ~3;
// netlink structures are in the host's byte order
const HOST_LE = endianness() === 'LE';
const readU16 = (b: Buffer, off: number) => (HOST_LE ? b.readUInt16LE(off) : b.readUInt16BE(off));
const readU32 = (b: Buffer, off: number) => (HOST_LE ? b.readUInt32LE(off) : b.readUInt32BE(off));
const readI32 = (b: Buffer, off: number) => (HOST_LE ? b.readInt32LE(off) : b.readInt32BE(off));

/** The numeric value of a field the package turns into an enum name when it knows the number. */
function enumNumber(names: object, v: string | number | undefined): number {
  if (v === undefined) return 0;
  if (typeof v === 'number') return v;
  const n = (names as Record<string, unknown>)[v];
  return typeof n === 'number' ? n : 0;
}

/** IFF_UP (administratively up) and IFF_LOWER_UP (carrier). */
function linkIsUp(flags: rt.DeviceFlags | undefined): boolean {
  return flags?.up === true && flags.lowerUp === true;
}

function cidr(bytes: Buffer, length: number): string {
  return IpPrefix.parse(`${formatIpAddress(bytes)}/${length}`, { strict: false }).toString();
}

function familyOk(family: number | undefined, bytes: Buffer | undefined): bytes is Buffer {
  if (!bytes) return false;
  return (family === AF_INET && bytes.length === 4) || (family === AF_INET6 && bytes.length === 16);
}

// ---------------------------------------------------------------------------------------------
// Paths

export interface DiscoveredPath {
  iface: string;
  index: number;
  /** The next hop of the default route; absent for an on-link default route. */
  gateway?: string;
  /** The interface's global address of the family (the route's preferred source when it names one). */
  address: string;
  prefixLength: number;
  /** The table in which its default route was found (254 = main). */
  table: number;
}

/** One next hop of a route: the output interface and the gateway (none when on-link). */
export interface RouteNextHop {
  index: number;
  gateway?: Buffer;
}

interface DefaultRoute {
  table: number;
  /** RTA_PRIORITY, the metric: lower wins */
  metric: number;
  prefsrc?: Buffer;
  hops: RouteNextHop[];
}

/** The next hops of an RTA_MULTIPATH attribute, skipping dead ones; stops at a truncated entry. */
export function parseMultipath(buf: Buffer): RouteNextHop[] {
  const hops: RouteNextHop[] = [];
  let off = 0;
  while (off + RTNH_HDR_LEN <= buf.length) {
    const len = readU16(buf, off);
    if (len < RTNH_HDR_LEN || off + len > buf.length) break;
    const flags = buf[off + 2];
    const index = readI32(buf, off + 4);
    const hop: RouteNextHop = { index };
    let a = off + RTNH_HDR_LEN;
    while (a + RTA_HDR_LEN <= off + len) {
      const alen = readU16(buf, a);
      const atype = readU16(buf, a + 2);
      if (alen < RTA_HDR_LEN || a + alen > off + len) break;
      if (atype === RTA_GATEWAY) hop.gateway = buf.subarray(a + RTA_HDR_LEN, a + alen);
      a += align4(alen);
    }
    if ((flags & RTNH_F_DEAD) === 0) hops.push(hop);
    off += align4(len);
  }
  return hops;
}

/** The ids of a nexthop group (NHA_GROUP). */
function parseNexthopGroup(buf: Buffer): number[] {
  const ids: number[] = [];
  for (let off = 0; off + NEXTHOP_GRP_LEN <= buf.length; off += NEXTHOP_GRP_LEN) ids.push(readU32(buf, off));
  return ids;
}

/** Resolves nexthop objects (`ip route add default nhid N`, seen when nexthop_compat_mode=0). */
async function nexthopResolver(rtnl: RtNetlinkSocket): Promise<(id: number) => RouteNextHop[]> {
  let msgs: rt.NextHopMessage[];
  try {
    msgs = await rtnl.getNextHops({});
  } catch {
    return () => []; // a kernel without nexthop objects (< 5.3) has no route that names one
  }
  const byId = new Map(msgs.filter((m) => m.attrs.id !== undefined).map((m) => [m.attrs.id as number, m.attrs]));
  const resolve = (id: number, depth: number): RouteNextHop[] => {
    const nh = byId.get(id);
    if (!nh || depth > 2) return [];
    if (nh.group) return parseNexthopGroup(nh.group).flatMap((sub) => resolve(sub, depth + 1));
    if (nh.blackhole || nh.oif === undefined) return [];
    return [nh.gateway ? { index: nh.oif, gateway: nh.gateway } : { index: nh.oif }];
  };
  return (id) => resolve(id, 0);
}

async function defaultRoutes(rtnl: RtNetlinkSocket, af: number): Promise<DefaultRoute[]> {
  let msgs: rt.RouteMessage[];
  try {
    msgs = await rtnl.getRoutes({ family: af });
  } catch (e) {
    throw routingError(`list IPv${af === AF_INET ? 4 : 6} routes`, e);
  }
  let resolveNexthop: ((id: number) => RouteNextHop[]) | null = null;
  const out: DefaultRoute[] = [];
  for (const m of msgs) {
    const { data, attrs } = m;
    if (data.family !== af || data.dstLen !== 0) continue;
    if (enumNumber(rt.RouteType, data.type) !== RTN_UNICAST) continue;
    if (enumNumber(rt.RouteProtocol, data.protocol) === RTPROT_MPTUN) continue;
    const table = attrs.table ?? data.table ?? 0;
    if (table === RT_TABLE_LOCAL) continue;
    let hops: RouteNextHop[];
    if (attrs.oif !== undefined) hops = [attrs.gateway ? { index: attrs.oif, gateway: attrs.gateway } : { index: attrs.oif }];
    else if (attrs.multipath) hops = parseMultipath(attrs.multipath);
    else if (attrs.nhId && attrs.nhId.length >= 4) {
      resolveNexthop ??= await nexthopResolver(rtnl);
      hops = resolveNexthop(readU32(attrs.nhId, 0));
    } else hops = [];
    const route: DefaultRoute = { table, metric: attrs.priority ?? 0, hops };
    if (attrs.prefsrc) route.prefsrc = attrs.prefsrc;
    out.push(route);
  }
  return out;
}

interface GlobalAddress {
  local: Buffer;
  prefixLength: number;
  /** the prefix address (IFA_ADDRESS): the peer's on a point-to-point link */
  prefix: Buffer;
  /** IFA_F_SECONDARY: used only when a route names it as its source */
  secondary: boolean;
}

/**
 * Every interface with a default route of the IP version `family` (IPv4 unless said; IPv6 for
 * the IPv6 half of a dual-stack path), in any table but those of mptun's own routes:
 * rtm_protocol RTPROT_MPTUN, and a global-scope address of that version (IPv6: not tentative nor
 * failed DAD; a ULA counts, as the kernel gives it global scope), up (IFF_UP and carrier), not
 * named in `skip`. One entry per interface: its default route in the main table if it has
 * one, else the one of lowest metric, then lowest table id. Ordered: the main table's default
 * routes first (by metric, as the kernel prefers them), then the others by ifindex.
 *
 * The address is the route's preferred source (`src`) when that is one of the interface's
 * global addresses, else the first primary global address whose prefix holds the gateway,
 * else the first primary global address.
 */
export async function discoverPaths(skip: string[] = [], family: 4 | 6 = 4): Promise<DiscoveredPath[]> {
  const af = family === 4 ? AF_INET : AF_INET6;
  return withRtnl(async (rtnl) => {
    let links: rt.LinkMessage[];
    let addrs: rt.AddressMessage[];
    try {
      links = await rtnl.getLinks();
      addrs = await rtnl.getAddresses({ family: af });
    } catch (e) {
      throw routingError('list links and addresses', e);
    }
    const routes = await defaultRoutes(rtnl, af);

    const usable = new Map<number, string>();
    for (const l of links) {
      const index = l.data.index;
      const name = l.attrs.ifname;
      if (index === undefined || name === undefined || skip.includes(name) || !linkIsUp(l.data.flags)) continue;
      usable.set(index, name);
    }
    const globals = new Map<number, GlobalAddress[]>();
    for (const a of addrs) {
      const index = a.data.index;
      const local = a.attrs.local ?? a.attrs.address;
      if (index === undefined || a.data.family !== af || !familyOk(af, local)) continue;
      if ((a.data.scope ?? RT_SCOPE_UNIVERSE) !== RT_SCOPE_UNIVERSE) continue;
      const flags = a.attrs.flags ?? a.data.flags;
      if (flags?.tentative === true || flags?.dadfailed === true) continue;
      const list = globals.get(index) ?? [];
      list.push({ local, prefixLength: a.data.prefixlen ?? local.length * 8, prefix: a.attrs.address ?? local, secondary: flags?.secondary === true });
      globals.set(index, list);
    }

    interface Candidate { path: DiscoveredPath; main: boolean; metric: number }
    const best = new Map<number, Candidate>();
    const better = (a: Candidate, b: Candidate) =>
      a.main !== b.main ? a.main : a.metric !== b.metric ? a.metric < b.metric : a.path.table < b.path.table;
    for (const r of routes) {
      for (const hop of r.hops) {
        const iface = usable.get(hop.index);
        const mine = globals.get(hop.index);
        if (iface === undefined || !mine || mine.length === 0) continue;
        const pick = pickAddress(mine, r.prefsrc, hop.gateway);
        const path: DiscoveredPath = { iface, index: hop.index, address: formatIpAddress(pick.local), prefixLength: pick.prefixLength, table: r.table };
        if (hop.gateway) path.gateway = formatIpAddress(hop.gateway);
        const c: Candidate = { path, main: r.table === RT_TABLE_MAIN, metric: r.metric };
        const held = best.get(hop.index);
        if (!held || better(c, held)) best.set(hop.index, c);
      }
    }
    return [...best.values()]
      .sort((a, b) => (a.main !== b.main ? (a.main ? -1 : 1) : a.main && a.metric !== b.metric ? a.metric - b.metric : a.path.index - b.path.index))
      .map((c) => c.path);
  });
}

function pickAddress(mine: GlobalAddress[], prefsrc: Buffer | undefined, gateway: Buffer | undefined): GlobalAddress {
  if (prefsrc) {
    const src = mine.find((a) => a.local.equals(prefsrc));
    if (src) return src;
  }
  const primaries = mine.filter((a) => !a.secondary);
  const pool = primaries.length > 0 ? primaries : mine;
  if (gateway) {
    const onLink = pool.find((a) => IpPrefix.parse(cidr(a.prefix, a.prefixLength)).contains(gateway.length === 4 ? 4 : 6, gateway));
    if (onLink) return onLink;
  }
  return pool[0];
}

// ---------------------------------------------------------------------------------------------
// One interface

export interface InterfaceState {
  iface: string;
  index: number;
  /** IFF_UP (administratively up) and IFF_LOWER_UP (carrier) */
  up: boolean;
  /** Every IPv4 and IPv6 address, IPv4 first; `scope` is ifa_scope (0 global, 253 link, 254 host). */
  addresses: Array<{ address: string; prefixLength: number; scope: number }>;
  /**
   * The connected prefixes in CIDR network form (`10.201.1.0/24`): the prefix of each address
   * that has a prefix route, i.e. not scope host, not IPv6 link-local, not `noprefixroute`,
   * not a full-length prefix (/32, /128) unless it has a peer. For a point-to-point address
   * (`peer`) it is the peer's prefix, as the kernel's route is.
   */
  connected: string[];
}

/** The state of interface `iface` (in this process's network namespace); null when there is none. */
export async function interfaceState(iface: string): Promise<InterfaceState | null> {
  return withRtnl(async (rtnl) => {
    let links: rt.LinkMessage[];
    let addrs: rt.AddressMessage[];
    try {
      links = await rtnl.getLinks();
    } catch (e) {
      throw routingError(`find link ${iface}`, e);
    }
    const link = links.find((l) => l.attrs.ifname === iface);
    const index = link?.data.index;
    if (!link || index === undefined) return null;
    try {
      addrs = await rtnl.getAddresses();
    } catch (e) {
      throw routingError(`list addresses of ${iface}`, e);
    }
    const mine = addrs
      .filter((a) => a.data.index === index && (a.data.family === AF_INET || a.data.family === AF_INET6))
      .sort((a, b) => (a.data.family ?? 0) - (b.data.family ?? 0));
    const state: InterfaceState = { iface, index, up: linkIsUp(link.data.flags), addresses: [], connected: [] };
    for (const a of mine) {
      const family = a.data.family;
      const local = a.attrs.local ?? a.attrs.address;
      if (!familyOk(family, local)) continue;
      const prefixLength = a.data.prefixlen ?? (family === AF_INET ? 32 : 128);
      const scope = a.data.scope ?? RT_SCOPE_UNIVERSE;
      state.addresses.push({ address: formatIpAddress(local), prefixLength, scope });
      const flags = a.attrs.flags ?? a.data.flags;
      const prefix = a.attrs.address ?? local;
      const hasPeer = !prefix.equals(local);
      if (scope >= RT_SCOPE_HOST || (family === AF_INET6 && scope === RT_SCOPE_LINK) || flags?.noprefixroute) continue;
      if (!hasPeer && prefixLength === local.length * 8) continue;
      const net = cidr(prefix, prefixLength);
      if (!state.connected.includes(net)) state.connected.push(net);
    }
    return state;
  });
}

// ---------------------------------------------------------------------------------------------
// Events

export type MonitorEvent =
  | { kind: 'link'; iface: string; index: number; up: boolean; deleted: boolean }
  | {
    kind: 'address'; iface: string; index: number; address: string; prefixLength: number; added: boolean;
    /** ifa_scope (0 global, 253 link, 254 host); always set by the monitor */
    scope?: number;
  }
  | {
    kind: 'route'; table: number; dst: string /* 'default' or CIDR */; oif?: number; gateway?: string; protocol: number; added: boolean;
    /** rtm_type (1 unicast, 2 local, 3 broadcast, 6 blackhole, 7 unreachable ...); always set by the monitor */
    type?: number;
  };

/**
 * One rtnetlink notification as an event, or null for what the monitor does not report
 * (other message types, other families, a message the package cannot parse). `names` maps
 * ifindex to name for address events (IPv6 ones carry no label). Throws nothing.
 */
export function decodeMonitorMessage(type: number, data: Buffer, names: ReadonlyMap<number, string> = new Map()): MonitorEvent | null {
  let msg: rt.Message;
  try {
    msg = rt.parseMessage(type, data);
  } catch {
    return null;
  }
  switch (msg.kind) {
    case 'link': {
      if (type !== RTM_NEWLINK && type !== RTM_DELLINK) return null;
      const index = msg.data.index;
      if (index === undefined) return null;
      const deleted = type === RTM_DELLINK;
      return { kind: 'link', iface: msg.attrs.ifname ?? names.get(index) ?? '', index, up: !deleted && linkIsUp(msg.data.flags), deleted };
    }
    case 'address': {
      if (type !== RTM_NEWADDR && type !== RTM_DELADDR) return null;
      const { index, family } = msg.data;
      const local = msg.attrs.local ?? msg.attrs.address;
      if (index === undefined || !familyOk(family, local)) return null;
      return {
        kind: 'address',
        iface: names.get(index) ?? msg.attrs.label ?? '',
        index,
        address: formatIpAddress(local),
        prefixLength: msg.data.prefixlen ?? local.length * 8,
        added: type === RTM_NEWADDR,
        scope: msg.data.scope ?? RT_SCOPE_UNIVERSE,
      };
    }
    case 'route': {
      if (type !== RTM_NEWROUTE && type !== RTM_DELROUTE) return null;
      const { data, attrs } = msg;
      if (data.family !== AF_INET && data.family !== AF_INET6) return null;
      const dstLen = data.dstLen ?? 0;
      let dst = 'default';
      if (dstLen > 0) {
        if (!familyOk(data.family, attrs.dst)) return null;
        dst = cidr(attrs.dst, dstLen);
      }
      const event: MonitorEvent = {
        kind: 'route',
        table: attrs.table ?? data.table ?? 0,
        dst,
        protocol: enumNumber(rt.RouteProtocol, data.protocol),
        added: type === RTM_NEWROUTE,
        type: enumNumber(rt.RouteType, data.type),
      };
      if (attrs.oif !== undefined) event.oif = attrs.oif;
      if (familyOk(data.family, attrs.gateway)) event.gateway = formatIpAddress(attrs.gateway);
      return event;
    }
    default:
      return null;
  }
}

export interface MonitorCounters {
  /** netlink messages received */
  messages: number;
  /** events delivered */
  events: number;
  /** messages not reported (other types or families, unparsable) */
  ignored: number;
  /** socket errors (each also given to the onError listeners) */
  socketErrors: number;
  /** ENOBUFS: the receive buffer overflowed and events were lost; resynchronise */
  overruns: number;
  /** exceptions thrown by listeners (rethrown outside the socket's callback) */
  listenerErrors: number;
}

/**
 * An rtnetlink socket subscribed to RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR,
 * RTNLGRP_IPV4_ROUTE and RTNLGRP_IPV6_ROUTE, in this process's network namespace.
 *
 * Listeners are plain callbacks (`on`, `onError`), called synchronously in the order the kernel
 * sent the messages. Events that arrive before the first `on` are dropped: call `on` right
 * after `await NetlinkMonitor.open()` (no event can run in between), then take a snapshot
 * (`discoverPaths`, `interfaceState`) so that no change falls between the two.
 *
 * The open socket keeps the process alive; `close()` releases it (idempotent).
 * Socket errors never throw: they are counted and given to the `onError` listeners as a
 * RoutingError; ENOBUFS (errno 'ENOBUFS', operation 'netlink monitor') means events were lost.
 * A listener that throws does not break the monitor: the exception is rethrown on the next
 * turn of the event loop (an ordinary uncaught exception), since one thrown inside the
 * package's native callback would abort the process.
 */
export class NetlinkMonitor {
  readonly counters: MonitorCounters = { messages: 0, events: 0, ignored: 0, socketErrors: 0, overruns: 0, listenerErrors: 0 };
  private readonly listeners: Array<(e: MonitorEvent) => void> = [];
  private readonly errorListeners: Array<(e: RoutingError) => void> = [];
  /** ifindex → name, from the links dumped at open and every link event since */
  private readonly names = new Map<number, string>();
  private closed = false;

  private constructor(private readonly socket: NetlinkSocket) {}

  static async open(): Promise<NetlinkMonitor> {
    let socket: NetlinkSocket;
    try {
      socket = createNetlink(Protocol.ROUTE);
    } catch (e) {
      throw routingError('open rtnetlink monitor socket', e);
    }
    const monitor = new NetlinkMonitor(socket);
    // The package's 'message' event of the rtnetlink socket drops the message type (a NEW and a
    // DEL parse alike), so listen on the netlink socket below it and parse here.
    socket.on('message', (msgs) => monitor.receive(msgs));
    socket.on('error', (e) => monitor.fail(e));
    socket.on('invalid', () => { monitor.counters.ignored++; });
    const gone = new Set<number>();
    const noteGone = (e: MonitorEvent) => { if (e.kind === 'link' && e.deleted) gone.add(e.index); };
    monitor.listeners.push(noteGone);
    try {
      socket.setRecvBufferSize(MONITOR_RECV_BUFFER);
      for (const group of MONITOR_GROUPS) socket.addMembership(group);
      socket.ref(true);
    } catch (e) {
      monitor.close();
      throw routingError('subscribe to rtnetlink groups', e);
    }
    // Names of the links that exist already (subscribed first, so none is missed; what the
    // socket has heard meanwhile is newer than the dump and wins).
    try {
      const links = await withRtnl((rtnl) => rtnl.getLinks());
      for (const l of links) {
        const { index } = l.data;
        if (index !== undefined && l.attrs.ifname !== undefined && !monitor.names.has(index) && !gone.has(index)) monitor.names.set(index, l.attrs.ifname);
      }
    } catch (e) {
      monitor.close();
      throw routingError('list links', e);
    } finally {
      monitor.listeners.splice(monitor.listeners.indexOf(noteGone), 1);
    }
    return monitor;
  }

  /** Adds a listener of every event. */
  on(listener: (e: MonitorEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Removes a listener added with `on`. */
  off(listener: (e: MonitorEvent) => void): void {
    const i = this.listeners.indexOf(listener);
    if (i >= 0) this.listeners.splice(i, 1);
  }

  /** Adds a listener of socket errors (ENOBUFS: events were lost). */
  onError(listener: (e: RoutingError) => void): void {
    this.errorListeners.push(listener);
  }

  /** Closes the socket; no event after this. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }

  private receive(msgs: NetlinkMessage[]): void {
    for (const m of msgs) {
      if (this.closed) return;
      this.counters.messages++;
      const event = decodeMonitorMessage(m.type, m.data, this.names);
      if (!event) {
        this.counters.ignored++;
        continue;
      }
      if (event.kind === 'link') {
        if (event.deleted) this.names.delete(event.index);
        else if (event.iface !== '') this.names.set(event.index, event.iface);
      }
      this.counters.events++;
      for (const l of [...this.listeners]) this.call(l, event);
    }
  }

  private fail(e: unknown): void {
    this.counters.socketErrors++;
    const err = routingError('netlink monitor', e);
    if (err.errno === 'ENOBUFS') this.counters.overruns++;
    for (const l of [...this.errorListeners]) this.call(l, err);
  }

  private call<T>(listener: (v: T) => void, value: T): void {
    try {
      listener(value);
    } catch (e) {
      this.counters.listenerErrors++;
      setImmediate(() => { throw e; });
    }
  }
}
