// The netlink monitor and path discovery. First the decoding of rtnetlink notifications, on
// bytes captured from the Linux kernel (6.x, `ip` of iproute2 6.1) and hand-built link
// messages; then, as root, against the kernel in a network namespace of our own: the worker
// runs inside it (rtnetlink acts on the caller's namespace) and prints JSON lines.
import test, { type ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';
import { formatIpAddress } from '../../src/ip/address.js';
import {
  decodeMonitorMessage, parseMultipath,
  type DiscoveredPath, type InterfaceState, type MonitorCounters, type MonitorEvent,
} from '../../src/routing/monitor.js';
import { inNetns, isRoot, requireRootOrSkip, run, spawnInNetns, waitFor, type Spawned } from '../helpers/netns.js';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_NEWNEIGH = 28;
const RTPROT_KERNEL = 2;
const RTPROT_BOOT = 3;
const RTPROT_MPTUN = 250;
const RTN_UNICAST = 1;
const RTN_LOCAL = 2;

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// ---------------------------------------------------------------------------------------------
// Decoding (no root needed)

// struct ifinfomsg { u8 family, u8 pad, u16 type (ARPHRD_ETHER), s32 index 3, u32 flags, u32 change }
// then IFLA_IFNAME (len 7, type 3) "va\0" padded to 8
const IFF_UP_BROADCAST_RUNNING_MULTICAST_LOWERUP = '43100100';
const IFF_UP_BROADCAST_MULTICAST = '03100000'; // carrier lost: IFF_LOWER_UP (0x10000) cleared
const IFF_BROADCAST_MULTICAST = '02100000'; // administratively down
const linkMsg = (flags: string, change = '00000000', name = true) =>
  hex(`0000 0100 03000000 ${flags} ${change}${name ? ' 0700 0300 76610000' : ''}`);

test('link: up means IFF_UP and IFF_LOWER_UP', (t) => {
  t.deepEqual(decodeMonitorMessage(RTM_NEWLINK, linkMsg(IFF_UP_BROADCAST_RUNNING_MULTICAST_LOWERUP)),
    { kind: 'link', iface: 'va', index: 3, up: true, deleted: false });
});

test('link: carrier lost (IFF_LOWER_UP cleared, IFF_UP set) is down', (t) => {
  t.deepEqual(decodeMonitorMessage(RTM_NEWLINK, linkMsg(IFF_UP_BROADCAST_MULTICAST)),
    { kind: 'link', iface: 'va', index: 3, up: false, deleted: false });
});

test('link: administratively down (IFF_UP cleared, in the change mask) is down', (t) => {
  t.deepEqual(decodeMonitorMessage(RTM_NEWLINK, linkMsg(IFF_BROADCAST_MULTICAST, '01000000')),
    { kind: 'link', iface: 'va', index: 3, up: false, deleted: false });
});

test('link: RTM_DELLINK is deleted and down; without IFLA_IFNAME the name comes from the index map', (t) => {
  t.deepEqual(decodeMonitorMessage(RTM_DELLINK, linkMsg(IFF_UP_BROADCAST_RUNNING_MULTICAST_LOWERUP, '00000000', false), new Map([[3, 'va']])),
    { kind: 'link', iface: 'va', index: 3, up: false, deleted: true });
});

// captured: `ip addr add 10.201.1.1/24 dev va` (index 3)
const NEWADDR_V4 = hex('0218800003000000080001000ac90101080002000ac901010700030076610000080008008000000014000600ffffffffffffffff03e00c0003e00c00');
// captured: `ip addr add fd00:77::1/64 dev va nodad` (IPv6 addresses carry no IFA_LABEL)
const NEWADDR_V6 = hex('0a4082000300000014000100fd00007700000000000000000000000114000600ffffffffffffffff05e00c0005e00c000800080082000000');

test('address: RTM_NEWADDR and RTM_DELADDR of an IPv4 address (captured)', (t) => {
  const want = { kind: 'address', iface: 'va', index: 3, address: '10.201.1.1', prefixLength: 24, scope: 0 };
  t.deepEqual(decodeMonitorMessage(RTM_NEWADDR, NEWADDR_V4), { ...want, added: true });
  t.deepEqual(decodeMonitorMessage(RTM_DELADDR, NEWADDR_V4), { ...want, added: false });
});

test('address: an IPv6 address takes its interface name from the index map', (t) => {
  const want = { kind: 'address', index: 3, address: 'fd00:77::1', prefixLength: 64, added: true, scope: 0 };
  t.deepEqual(decodeMonitorMessage(RTM_NEWADDR, NEWADDR_V6, new Map([[3, 'va']])), { ...want, iface: 'va' });
  t.deepEqual(decodeMonitorMessage(RTM_NEWADDR, NEWADDR_V6), { ...want, iface: '' });
});

test('route: a default route with a gateway in table 100 (captured), added then deleted', (t) => {
  // `ip route add default via 10.201.1.254 dev va table 100`: rtm_protocol RTPROT_BOOT
  const msg = hex('02000000640300010000000008000f0064000000080005000ac901fe0800040003000000');
  const want = { kind: 'route', table: 100, dst: 'default', oif: 3, gateway: '10.201.1.254', protocol: RTPROT_BOOT, type: RTN_UNICAST };
  t.deepEqual(decodeMonitorMessage(RTM_NEWROUTE, msg), { ...want, added: true });
  t.deepEqual(decodeMonitorMessage(RTM_DELROUTE, msg), { ...want, added: false });
});

test('route: mptun\'s protocol number (250) is kept as a number', (t) => {
  // `ip route add 192.0.2.0/24 via 10.201.1.254 dev va proto 250 table 201`
  const msg = hex('02180000c9fa00010000000008000f00c900000008000100c0000200080005000ac901fe0800040003000000');
  t.deepEqual(decodeMonitorMessage(RTM_NEWROUTE, msg),
    { kind: 'route', table: 201, dst: '192.0.2.0/24', oif: 3, gateway: '10.201.1.254', protocol: RTPROT_MPTUN, added: true, type: RTN_UNICAST });
});

test('route: the kernel\'s local route and an IPv6 connected route (captured)', (t) => {
  const local = hex('02200000ff02fe020000000008000f00ff000000080001000ac90101080007000ac901010800040003000000');
  t.deepEqual(decodeMonitorMessage(RTM_NEWROUTE, local),
    { kind: 'route', table: 255, dst: '10.201.1.1/32', oif: 3, protocol: RTPROT_KERNEL, added: true, type: RTN_LOCAL });
  const v6 = hex('0a400000fe0200010000000008000f00fe00000014000100fd0000770000000000000000000000000800060000010000080004000300000024000c0000000000000000000000000000000000000000000000000000000000000000000500140000000000');
  t.deepEqual(decodeMonitorMessage(RTM_NEWROUTE, v6),
    { kind: 'route', table: 254, dst: 'fd00:77::/64', oif: 3, protocol: RTPROT_KERNEL, added: true, type: RTN_UNICAST });
});

test('messages that are not reported decode to null, truncated ones too', (t) => {
  t.is(decodeMonitorMessage(RTM_NEWNEIGH, hex('0200000003000000')), null);
  t.is(decodeMonitorMessage(RTM_NEWADDR, NEWADDR_V4.subarray(0, 5)), null);
  t.is(decodeMonitorMessage(RTM_NEWROUTE, hex('0200')), null);
});

// captured: `ip route add default table 102 nexthop via 10.9.0.254 dev va nexthop via 10.8.0.254 dev vc`
const MULTIPATH = hex('1000 00 00 03000000 0800 0500 0a0900fe  1000 00 00 05000000 0800 0500 0a0800fe');

test('RTA_MULTIPATH: each next hop with its interface and gateway', (t) => {
  const hops = parseMultipath(MULTIPATH).map((h) => ({ index: h.index, gateway: h.gateway && formatIpAddress(h.gateway) }));
  t.deepEqual(hops, [{ index: 3, gateway: '10.9.0.254' }, { index: 5, gateway: '10.8.0.254' }]);
});

test('RTA_MULTIPATH: a dead next hop (RTNH_F_DEAD) is skipped, a truncated entry ends the list', (t) => {
  const dead = Buffer.from(MULTIPATH);
  dead[2] = 1; // rtnh_flags of the first
  t.deepEqual(parseMultipath(dead).map((h) => h.index), [5]);
  t.deepEqual(parseMultipath(MULTIPATH.subarray(0, 24)).map((h) => h.index), [3]);
  t.deepEqual(parseMultipath(MULTIPATH.subarray(0, 12)), []);
});

// ---------------------------------------------------------------------------------------------
// Against the kernel, in namespace NS

const NS = `mptmon-${process.pid}`;
const WORKER = fileURLToPath(new URL('./monitor-worker.js', import.meta.url));
let ready = false;

const ip = (...args: string[]) => inNetns(NS, 'ip', args);

interface LinkJson { ifindex: number; ifname: string; flags: string[] }
async function link(name: string): Promise<LinkJson> {
  const [l] = JSON.parse((await ip('-j', 'link', 'show', 'dev', name)).stdout) as LinkJson[];
  return l;
}

async function vethPair(dev: string, peer: string): Promise<void> {
  await ip('link', 'add', dev, 'type', 'veth', 'peer', 'name', peer);
  await ip('link', 'set', dev, 'up');
  await ip('link', 'set', peer, 'up');
}

test.before(async () => {
  if (!isRoot()) return;
  await run('ip', ['netns', 'add', NS]);
  await ip('link', 'set', 'lo', 'up');
  // up2 is made before up1: its ifindex is lower, but up1 holds the main table's default route
  await vethPair('up2', 'up2p');
  await ip('addr', 'add', '10.201.2.1/24', 'dev', 'up2');
  await ip('route', 'add', 'default', 'via', '10.201.2.254', 'dev', 'up2', 'table', '100');
  await vethPair('up1', 'up1p');
  await ip('addr', 'add', '10.201.1.1/24', 'dev', 'up1');
  await ip('addr', 'add', '10.201.1.9/24', 'dev', 'up1'); // a secondary: not the path's address
  await ip('route', 'add', 'default', 'via', '10.201.1.254', 'dev', 'up1');
  // a default route but no global IPv4 address (only a link-scope one)
  await vethPair('noglob', 'noglobp');
  await ip('addr', 'add', '169.254.9.1/16', 'dev', 'noglob', 'scope', 'link');
  await ip('route', 'add', 'default', 'dev', 'noglob', 'table', '101');
  // global addresses (one with a peer, one /32) but no default route
  await vethPair('norte', 'nortep');
  await ip('addr', 'add', '10.201.3.1/24', 'dev', 'norte');
  await ip('addr', 'add', '10.201.9.1', 'peer', '10.201.9.2/32', 'dev', 'norte');
  await ip('addr', 'add', '10.201.8.1/32', 'dev', 'norte');
  // only mptun's own default route (rtm_protocol 250)
  await vethPair('own', 'ownp');
  await ip('addr', 'add', '10.201.4.1/24', 'dev', 'own');
  await ip('route', 'add', 'default', 'via', '10.201.4.254', 'dev', 'own', 'table', '104', 'proto', '250');
  // administratively up, but no carrier (its peer is down)
  await vethPair('nocarr', 'nocarrp');
  await ip('addr', 'add', '10.201.5.1/24', 'dev', 'nocarr');
  await ip('route', 'add', 'default', 'via', '10.201.5.254', 'dev', 'nocarr', 'table', '105');
  await ip('link', 'set', 'nocarrp', 'down');
  // the TUN device's stand-in: an on-link default route in mptun's capture table
  await vethPair('tunx', 'tunxp');
  await ip('addr', 'add', '198.18.0.1/30', 'dev', 'tunx');
  await ip('route', 'add', 'default', 'dev', 'tunx', 'table', '102');
  ready = true;
});

test.after.always(async () => {
  if (isRoot()) await run('ip', ['netns', 'del', NS], { check: false });
});

async function worker<T>(...args: string[]): Promise<T> {
  const r = await inNetns(NS, process.execPath, [WORKER, ...args]);
  return JSON.parse(r.stdout) as T;
}

test.serial('discoverPaths: the two paths, main table first, skipping what has no global address, no default route, no carrier, only mptun\'s route, or is in skip', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const up1 = await link('up1');
  const up2 = await link('up2');
  t.true(up2.ifindex < up1.ifindex);
  t.deepEqual(await worker<DiscoveredPath[]>('discover', 'tunx'), [
    { iface: 'up1', index: up1.ifindex, gateway: '10.201.1.254', address: '10.201.1.1', prefixLength: 24, table: 254 },
    { iface: 'up2', index: up2.ifindex, gateway: '10.201.2.254', address: '10.201.2.1', prefixLength: 24, table: 100 },
  ]);
  // without skip, the TUN stand-in is a path too (on-link: no gateway), after the others by ifindex
  const tunx = await link('tunx');
  const all = await worker<DiscoveredPath[]>('discover');
  t.deepEqual(all.map((p) => p.iface), ['up1', 'up2', 'tunx']);
  t.deepEqual(all[2], { iface: 'tunx', index: tunx.ifindex, address: '198.18.0.1', prefixLength: 30, table: 102 });
  // the carrier comes back: nocarr is a path again
  await ip('link', 'set', 'nocarrp', 'up');
  try {
    await waitFor('nocarr to have carrier', async () => (await link('nocarr')).flags.includes('LOWER_UP'));
    const nocarr = await link('nocarr');
    const found = await worker<DiscoveredPath[]>('discover', 'tunx');
    t.deepEqual(found.map((p) => p.iface), ['up1', 'up2', 'nocarr']);
    t.deepEqual(found[2], { iface: 'nocarr', index: nocarr.ifindex, gateway: '10.201.5.254', address: '10.201.5.1', prefixLength: 24, table: 105 });
  } finally {
    await ip('link', 'set', 'nocarrp', 'down');
  }
});

test.serial('discoverPaths for IPv6: a global address and an IPv6 default route (a link-local gateway as router advertisements give it); ULA counts, link-local only does not', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const added: string[][] = [
    ['-6', 'addr', 'add', 'fd00:201:1::1/64', 'dev', 'up1', 'nodad'],
    ['-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'up1'],
    ['-6', 'addr', 'add', 'fd00:201:2::1/64', 'dev', 'up2', 'nodad'],
    ['-6', 'route', 'add', 'default', 'via', 'fd00:201:2::fe', 'dev', 'up2', 'table', '100'],
    // a default route, but only a link-local address: no path
    ['-6', 'route', 'add', 'default', 'via', 'fe80::2', 'dev', 'noglob', 'table', '101'],
    // a global address, no IPv6 default route: no path
    ['-6', 'addr', 'add', 'fd00:201:3::1/64', 'dev', 'norte', 'nodad'],
  ];
  try {
    for (const a of added) await ip(...a);
    const up1 = await link('up1');
    const up2 = await link('up2');
    t.deepEqual(await worker<DiscoveredPath[]>('discover6', 'tunx'), [
      { iface: 'up1', index: up1.ifindex, gateway: 'fe80::1', address: 'fd00:201:1::1', prefixLength: 64, table: 254 },
      { iface: 'up2', index: up2.ifindex, gateway: 'fd00:201:2::fe', address: 'fd00:201:2::1', prefixLength: 64, table: 100 },
    ]);
    // IPv4 discovery is not changed by them
    t.deepEqual((await worker<DiscoveredPath[]>('discover', 'tunx')).map((p) => p.iface), ['up1', 'up2']);
  } finally {
    for (const a of [...added].reverse()) await ip(...a.map((w) => (w === 'add' ? 'del' : w))).catch(() => undefined);
  }
});

test.serial('discoverPaths: next hops of a multipath route and of nexthop objects', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const compat = (await inNetns(NS, 'cat', ['/proc/sys/net/ipv4/nexthop_compat_mode'])).stdout.trim();
  try {
    await vethPair('mp1', 'mp1p');
    await vethPair('mp2', 'mp2p');
    await ip('addr', 'add', '10.201.6.1/24', 'dev', 'mp1');
    await ip('addr', 'add', '10.201.7.1/24', 'dev', 'mp2');
    const mp1 = (await link('mp1')).ifindex;
    const mp2 = (await link('mp2')).ifindex;
    const expected = (table: number) => [
      { iface: 'mp1', index: mp1, gateway: '10.201.6.254', address: '10.201.6.1', prefixLength: 24, table },
      { iface: 'mp2', index: mp2, gateway: '10.201.7.254', address: '10.201.7.1', prefixLength: 24, table },
    ];
    await ip('route', 'add', 'default', 'table', '110', 'nexthop', 'via', '10.201.6.254', 'dev', 'mp1', 'nexthop', 'via', '10.201.7.254', 'dev', 'mp2');
    let found = await worker<DiscoveredPath[]>('discover', 'tunx');
    t.deepEqual(found.filter((p) => p.iface.startsWith('mp')), expected(110));
    await ip('route', 'del', 'default', 'table', '110');
    // nexthop objects, with the kernel told not to expand them in route dumps
    await inNetns(NS, 'sh', ['-c', 'echo 0 > /proc/sys/net/ipv4/nexthop_compat_mode']);
    await ip('nexthop', 'add', 'id', '61', 'via', '10.201.6.254', 'dev', 'mp1');
    await ip('nexthop', 'add', 'id', '62', 'via', '10.201.7.254', 'dev', 'mp2');
    await ip('nexthop', 'add', 'id', '63', 'group', '61/62');
    await ip('route', 'add', 'default', 'nhid', '63', 'table', '111');
    const dump = (await ip('route', 'show', 'table', '111')).stdout;
    t.false(dump.includes('mp1'), dump); // not expanded: discoverPaths has to resolve the group
    found = await worker<DiscoveredPath[]>('discover', 'tunx');
    t.deepEqual(found.filter((p) => p.iface.startsWith('mp')), expected(111));
    t.deepEqual(found.slice(0, 2).map((p) => p.iface), ['up1', 'up2']);
  } finally {
    await ip('link', 'del', 'mp1').catch(() => undefined);
    await ip('link', 'del', 'mp2').catch(() => undefined);
    await ip('nexthop', 'flush').catch(() => undefined);
    await inNetns(NS, 'sh', ['-c', `echo ${compat || 1} > /proc/sys/net/ipv4/nexthop_compat_mode`]);
  }
});

test.serial('interfaceState: addresses, connected prefixes and up (IFF_UP and carrier); null for no such interface', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const norte = await worker<InterfaceState>('state', 'norte');
  const v4 = (s: InterfaceState) => s.addresses.filter((a) => !a.address.includes(':'));
  t.is(norte.iface, 'norte');
  t.is(norte.index, (await link('norte')).ifindex);
  t.true(norte.up);
  t.deepEqual(v4(norte).sort((a, b) => a.address.localeCompare(b.address)), [
    { address: '10.201.3.1', prefixLength: 24, scope: 0 },
    { address: '10.201.8.1', prefixLength: 32, scope: 0 },
    { address: '10.201.9.1', prefixLength: 32, scope: 0 },
  ]);
  // IPv6 link-local addresses are listed (scope link) but are no connected prefix
  for (const a of norte.addresses.filter((x) => x.address.includes(':'))) t.is(a.scope, 253, a.address);
  // the /32 without a peer has no prefix route; the point-to-point one's prefix is the peer's
  t.deepEqual([...norte.connected].sort(), ['10.201.3.0/24', '10.201.9.2/32']);

  const noglob = await worker<InterfaceState>('state', 'noglob');
  t.deepEqual(v4(noglob), [{ address: '169.254.9.1', prefixLength: 16, scope: 253 }]);
  t.deepEqual(noglob.connected, ['169.254.0.0/16']);

  // carrier lost: administratively up (IFF_UP), not up for mptun
  const nocarr = await worker<InterfaceState>('state', 'nocarr');
  const flags = (await link('nocarr')).flags;
  t.true(flags.includes('UP'), flags.join(','));
  t.false(flags.includes('LOWER_UP'), flags.join(','));
  t.false(nocarr.up);
  t.deepEqual(v4(nocarr), [{ address: '10.201.5.1', prefixLength: 24, scope: 0 }]);
  t.deepEqual(nocarr.connected, ['10.201.5.0/24']);

  t.is(await worker<InterfaceState | null>('state', 'nosuch0'), null);
});

/** The worker's JSON lines, read in order: each `next` waits for the first match after the last one. */
class Lines {
  private cursor = 0;
  constructor(private readonly w: Spawned) {}

  all(): Array<Record<string, unknown>> {
    const text = this.w.stdout();
    return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async next(what: string, match: (o: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    try {
      await waitFor(what, () => {
        const lines = this.all();
        for (let i = this.cursor; i < lines.length; i++) {
          if (match(lines[i])) {
            this.cursor = i + 1;
            found = lines[i];
            return true;
          }
        }
        return false;
      });
    } catch (e) {
      throw new Error(`${String(e)}\nworker stdout:\n${this.w.stdout().slice(-4000)}\nstderr:\n${this.w.stderr()}`);
    }
    return found as Record<string, unknown>;
  }

  async event(what: string, match: (e: MonitorEvent) => boolean): Promise<MonitorEvent> {
    const line = await this.next(what, (o) => o.event !== undefined && match(o.event as MonitorEvent));
    return line.event as MonitorEvent;
  }

  /** Events the kernel may send in either order: the first match of each after the last one read. */
  async eventsInAnyOrder(what: string, ...matches: Array<(e: MonitorEvent) => boolean>): Promise<MonitorEvent[]> {
    const start = this.cursor;
    let last = start;
    const found: MonitorEvent[] = [];
    for (const [i, match] of matches.entries()) {
      this.cursor = start;
      found.push(await this.event(`${what} (${i})`, match));
      last = Math.max(last, this.cursor);
    }
    this.cursor = last;
    return found;
  }
}

async function exitWithin(t: ExecutionContext, w: Spawned, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), ms); });
  const end = await Promise.race([w.exited, late]);
  clearTimeout(timer);
  if (end === null) {
    await w.stop('SIGKILL');
    t.fail(`the worker did not exit within ${ms} ms`);
  }
  return end;
}

test.serial('NetlinkMonitor: link down and up (admin and carrier), addresses, routes, deletion; close() lets the process exit', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const w = spawnInNetns(NS, process.execPath, [WORKER, 'monitor']);
  const lines = new Lines(w);
  try {
    await lines.next('the monitor to be ready', (o) => o.ready === true);
    const isLink = (up: boolean) => (e: MonitorEvent) => e.kind === 'link' && e.iface === 'mon1' && e.up === up && !e.deleted;

    await ip('link', 'add', 'mon1', 'type', 'veth', 'peer', 'name', 'mon1p');
    const index = (await link('mon1')).ifindex;
    t.deepEqual(await lines.event('mon1 created (down)', isLink(false)), { kind: 'link', iface: 'mon1', index, up: false, deleted: false });
    await ip('link', 'set', 'mon1p', 'up');
    await ip('link', 'set', 'mon1', 'up');
    t.deepEqual(await lines.event('mon1 up', isLink(true)), { kind: 'link', iface: 'mon1', index, up: true, deleted: false });

    // carrier lost: the peer goes down, mon1 keeps IFF_UP
    await ip('link', 'set', 'mon1p', 'down');
    t.deepEqual(await lines.event('mon1 down (carrier)', isLink(false)), { kind: 'link', iface: 'mon1', index, up: false, deleted: false });
    t.true((await link('mon1')).flags.includes('UP'));
    await ip('link', 'set', 'mon1p', 'up');
    t.deepEqual(await lines.event('mon1 up (carrier back)', isLink(true)), { kind: 'link', iface: 'mon1', index, up: true, deleted: false });

    // administratively down: IFF_UP cleared
    await ip('link', 'set', 'mon1', 'down');
    t.deepEqual(await lines.event('mon1 down (admin)', isLink(false)), { kind: 'link', iface: 'mon1', index, up: false, deleted: false });
    t.false((await link('mon1')).flags.includes('UP'));
    await ip('link', 'set', 'mon1', 'up');
    t.deepEqual(await lines.event('mon1 up (admin)', isLink(true)), { kind: 'link', iface: 'mon1', index, up: true, deleted: false });

    // an IPv4 address, and the connected route the kernel adds with it
    await ip('addr', 'add', '10.202.0.1/24', 'dev', 'mon1');
    const [addr4, route4] = await lines.eventsInAnyOrder('10.202.0.1 and its prefix route',
      (e) => e.kind === 'address' && e.address === '10.202.0.1',
      (e) => e.kind === 'route' && e.dst === '10.202.0.0/24' && e.table === 254);
    t.deepEqual(addr4, { kind: 'address', iface: 'mon1', index, address: '10.202.0.1', prefixLength: 24, added: true, scope: 0 });
    t.deepEqual(route4, { kind: 'route', table: 254, dst: '10.202.0.0/24', oif: index, protocol: RTPROT_KERNEL, added: true, type: RTN_UNICAST });

    // routes: a default route in a table of its own, and one with mptun's protocol
    await ip('route', 'add', 'default', 'via', '10.202.0.254', 'dev', 'mon1', 'table', '200');
    const dflt = { kind: 'route', table: 200, dst: 'default', oif: index, gateway: '10.202.0.254', protocol: RTPROT_BOOT, type: RTN_UNICAST };
    t.deepEqual(await lines.event('default route added', (e) => e.kind === 'route' && e.table === 200), { ...dflt, added: true });
    await ip('route', 'add', '192.0.2.0/24', 'via', '10.202.0.254', 'dev', 'mon1', 'table', '201', 'proto', '250');
    const own = { kind: 'route', table: 201, dst: '192.0.2.0/24', oif: index, gateway: '10.202.0.254', protocol: RTPROT_MPTUN, type: RTN_UNICAST };
    t.deepEqual(await lines.event('mptun route added', (e) => e.kind === 'route' && e.table === 201), { ...own, added: true });
    await ip('route', 'del', 'default', 'table', '200');
    t.deepEqual(await lines.event('default route deleted', (e) => e.kind === 'route' && e.table === 200 && !e.added), { ...dflt, added: false });
    await ip('route', 'del', '192.0.2.0/24', 'table', '201');
    t.deepEqual(await lines.event('mptun route deleted', (e) => e.kind === 'route' && e.table === 201 && !e.added), { ...own, added: false });

    // IPv6: no label in the message, the name comes from the monitor's index map
    await ip('-6', 'addr', 'add', 'fd00:77::1/64', 'dev', 'mon1', 'nodad');
    const [addr6, route6] = await lines.eventsInAnyOrder('fd00:77::1 and its prefix route',
      (e) => e.kind === 'address' && e.address === 'fd00:77::1',
      (e) => e.kind === 'route' && e.dst === 'fd00:77::/64');
    t.deepEqual(addr6, { kind: 'address', iface: 'mon1', index, address: 'fd00:77::1', prefixLength: 64, added: true, scope: 0 });
    t.deepEqual(route6, { kind: 'route', table: 254, dst: 'fd00:77::/64', oif: index, protocol: RTPROT_KERNEL, added: true, type: RTN_UNICAST });

    await ip('addr', 'del', '10.202.0.1/24', 'dev', 'mon1');
    t.deepEqual(await lines.event('10.202.0.1 removed', (e) => e.kind === 'address' && e.address === '10.202.0.1' && !e.added),
      { kind: 'address', iface: 'mon1', index, address: '10.202.0.1', prefixLength: 24, added: false, scope: 0 });

    await ip('link', 'del', 'mon1');
    t.deepEqual(await lines.event('mon1 deleted', (e) => e.kind === 'link' && e.index === index && e.deleted),
      { kind: 'link', iface: 'mon1', index, up: false, deleted: true });

    t.true(w.child.kill('SIGUSR2'));
    const closed = await lines.next('the monitor to close', (o) => o.closed === true);
    const counters = closed.counters as MonitorCounters;
    t.is(counters.socketErrors, 0);
    t.is(counters.listenerErrors, 0);
    t.true(counters.events >= 20, JSON.stringify(counters));
    t.is(counters.messages, counters.events + counters.ignored);
    const end = await exitWithin(t, w, 5000);
    t.deepEqual(end, { code: 0, signal: null }, w.stderr());
    t.false(lines.all().some((o) => o.error !== undefined));
  } finally {
    await w.stop('SIGKILL');
    await ip('link', 'del', 'mon1').catch(() => undefined);
  }
});

test.serial('NetlinkMonitor: a listener that throws ends the process with an uncaught exception, not an abort', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const w = spawnInNetns(NS, process.execPath, [WORKER, 'throw']);
  const lines = new Lines(w);
  try {
    await lines.next('the monitor to be ready', (o) => o.ready === true);
    await ip('link', 'add', 'thr0', 'type', 'veth', 'peer', 'name', 'thr0p');
    const end = await exitWithin(t, w, 5000);
    // Node's exit status for an uncaught exception; an exception thrown inside the package's
    // native callback would instead abort (SIGABRT, "terminate called ...")
    t.deepEqual(end, { code: 1, signal: null });
    t.true(w.stderr().includes('listener boom'), w.stderr());
    t.false(w.stderr().includes('terminate called'), w.stderr());
  } finally {
    await w.stop('SIGKILL');
    await ip('link', 'del', 'thr0').catch(() => undefined);
  }
});
