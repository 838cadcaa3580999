// The routing set-up layer against a real kernel, in a network namespace of its own: two
// veth uplinks and a veth standing in for the TUN device. The worker runs inside the
// namespace (rtnetlink and /proc/sys/net act on the caller's namespace).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { inNetns, isRoot, requireRootOrSkip, run, spawnInNetns, waitFor } from '../helpers/netns.js';
import type { PathAddition, SetupPlan, SetupRecord } from '../../src/routing/setup.js';
import type { RouteSpec } from '../../src/routing/route.js';

const NS = `mptrt-${process.pid}`;
const WORKER = fileURLToPath(new URL('./setup-worker.js', import.meta.url));
const NFT = '/usr/sbin/nft';

const plan: SetupPlan = {
  tun: 'tunx',
  capture: { table: 300, priority: 20_000 },
  paths: [
    { iface: 'up1', gateway: '10.1.0.254', sourcePrefix: '198.18.1.0/24', table: 301, rulePriority: 10_001 },
    { iface: 'up2', gateway: '10.2.0.254', sourcePrefix: '198.18.2.0/24', table: 302, rulePriority: 10_002 },
  ],
  exclude: [{ prefix: '192.0.2.0/24', priority: 10_050 }],
};

let ready = false;

test.before(async () => {
  if (!isRoot()) return;
  await run('ip', ['netns', 'add', NS]);
  const sh = async (...args: string[]) => { await inNetns(NS, 'ip', args); };
  await sh('link', 'set', 'lo', 'up');
  // no IPv6 link-local addresses: they appear asynchronously (DAD) and would make the
  // before/after snapshots race
  for (const k of ['all', 'default']) await inNetns(NS, 'sh', ['-c', `echo 1 > /proc/sys/net/ipv6/conf/${k}/disable_ipv6`]);
  for (const [dev, peer, addr] of [['up1', 'up1p', '10.1.0.1/24'], ['up2', 'up2p', '10.2.0.1/24'], ['tunx', 'tunxp', '198.18.0.1/30'], ['up3', 'up3p', '10.3.0.1/24']]) {
    await sh('link', 'add', dev, 'type', 'veth', 'peer', 'name', peer);
    await sh('addr', 'add', addr, 'dev', dev);
    await sh('link', 'set', dev, 'up');
    await sh('link', 'set', peer, 'up');
  }
  // a strict rp_filter on an uplink: the plan loosens it, undo puts it back
  await inNetns(NS, 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/conf/up1/rp_filter']);
  ready = true;
});

test.after.always(async () => {
  if (isRoot()) await run('ip', ['netns', 'del', NS], { check: false });
});

function worker(...args: string[]) {
  return inNetns(NS, process.execPath, [WORKER, ...args]);
}

async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const cmds: [string, string, string[]][] = [
    ['rule4', 'ip', ['rule']],
    ['rule6', 'ip', ['-6', 'rule']],
    ['route4', 'ip', ['route', 'show', 'table', 'all']],
    ['route6', 'ip', ['-6', 'route', 'show', 'table', 'all']],
    ['nft', NFT, ['list', 'ruleset']],
  ];
  for (const [k, cmd, args] of cmds) out[k] = (await inNetns(NS, cmd, args)).stdout;
  for (const key of ['all/rp_filter', 'tunx/rp_filter', 'tunx/forwarding', 'up1/forwarding', 'up2/forwarding', 'up1/rp_filter', 'up2/rp_filter', 'up3/rp_filter', 'up3/forwarding']) {
    out[key] = (await inNetns(NS, 'cat', [`/proc/sys/net/ipv4/conf/${key}`])).stdout.trim();
  }
  return out;
}

const lines = (s: string) => s.split('\n').map((l) => l.trim().replace(/\s+/g, ' ')).filter((l) => l !== '');

async function assertApplied(t: import('ava').ExecutionContext, before: Record<string, string>) {
  const rules = lines((await inNetns(NS, 'ip', ['rule'])).stdout);
  const beforeRules = lines(before.rule4);
  const added = rules.filter((r) => !beforeRules.includes(r));
  t.deepEqual(added.sort(), [
    '10001: from 198.18.1.0/24 lookup 301 proto 250',
    '10002: from 198.18.2.0/24 lookup 302 proto 250',
    '10050: from all to 192.0.2.0/24 lookup main proto 250',
    '19999: from all fwmark 0x800000/0x800000 lookup main proto 250',
    '20000: from all ipproto tcp lookup 300 proto 250',
  ]);
  t.deepEqual(lines((await inNetns(NS, 'ip', ['route', 'show', 'table', '300'])).stdout), ['default dev tunx proto 250 scope link']);
  t.deepEqual(lines((await inNetns(NS, 'ip', ['route', 'show', 'table', '301'])).stdout), ['default via 10.1.0.254 dev up1 proto 250', 'blackhole default proto 250 metric 4294967280']);
  t.deepEqual(lines((await inNetns(NS, 'ip', ['route', 'show', 'table', '302'])).stdout), ['default via 10.2.0.254 dev up2 proto 250', 'blackhole default proto 250 metric 4294967280']);
  const nft = lines((await inNetns(NS, NFT, ['list', 'table', 'inet', 'mptun'])).stdout);
  t.true(nft.includes('oifname "up1" ip saddr 198.18.1.0/24 masquerade'), nft.join('\n'));
  t.true(nft.includes('oifname "up2" ip saddr 198.18.2.0/24 masquerade'), nft.join('\n'));
  // the host's answers on inbound TCP keep the main table; uplinks that did not forward are fenced
  t.true(nft.includes('meta l4proto tcp ct direction reply meta mark set meta mark | 0x00800000'), nft.join('\n'));
  t.true(nft.includes('meta nfproto ipv4 iifname "up1" oifname != "tunx" counter packets 0 bytes 0 drop'), nft.join('\n'));
  t.true(nft.includes('meta nfproto ipv4 iifname "up2" oifname != "tunx" counter packets 0 bytes 0 drop'), nft.join('\n'));
  // rp_filter: the kernel takes the larger of `all` and the device's: loose (2) or off (0), never strict
  const all = Number((await inNetns(NS, 'cat', ['/proc/sys/net/ipv4/conf/all/rp_filter'])).stdout.trim());
  for (const dev of ['tunx', 'up1', 'up2']) {
    const v = Number((await inNetns(NS, 'cat', [`/proc/sys/net/ipv4/conf/${dev}/rp_filter`])).stdout.trim());
    t.not(Math.max(all, v), 1, `${dev}: rp_filter ${v} with all=${all} is strict`);
  }
  t.is((await inNetns(NS, 'cat', ['/proc/sys/net/ipv4/conf/up1/rp_filter'])).stdout.trim(), '2', 'the strict uplink was loosened');
  t.is((await inNetns(NS, 'cat', ['/proc/sys/net/ipv4/conf/up1/forwarding'])).stdout.trim(), '1');
}

test.serial('applyPlan sets up exactly the plan (proto 250) and undo restores the state', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const before = await snapshot();
  t.is(before['tunx/forwarding'], '0');
  const applied = await worker('apply', JSON.stringify(plan));
  const record = JSON.parse(applied.stdout) as SetupRecord;
  t.is(record.steps.filter((s) => s.kind === 'rule').length, 5);
  // each path's table: its default route and the blackhole at its end (route.ts PATH_BLACKHOLE_METRIC)
  t.is(record.steps.filter((s) => s.kind === 'route').length, 5);
  await assertApplied(t, before);
  // the record survives JSON: a different process undoes it
  await worker('undo', JSON.stringify(record));
  t.deepEqual(await snapshot(), before);
});

test.serial('after a SIGKILL, cleanupLeftovers removes every tagged rule, route and the nft table', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const before = await snapshot();
  const held = spawnInNetns(NS, process.execPath, [WORKER, 'hold', JSON.stringify(plan)]);
  try {
    await waitFor('the worker to apply the plan', () => held.stdout().includes('\n'), { timeout: 15_000 });
  } catch (e) {
    await held.stop('SIGKILL');
    throw new Error(`${String(e)}: ${held.stderr()}`);
  }
  const record = JSON.parse(held.stdout()) as SetupRecord;
  const end = await held.stop('SIGKILL');
  t.is(end.signal, 'SIGKILL');
  await assertApplied(t, before);
  const report = JSON.parse((await worker('cleanup')).stdout) as { rules: number; routes: number; nftTable: boolean };
  t.deepEqual(report, { rules: 5, routes: 5, nftTable: true }); // each path's default route and blackhole, the capture route
  // sysctls need the record (cleanup cannot know their previous values): restore them by hand
  for (const s of record.steps) {
    if (s.kind === 'sysctl') await inNetns(NS, 'sh', ['-c', `echo ${s.previous} > /proc/sys/${s.key}`]);
  }
  t.deepEqual(await snapshot(), before);
  // a second cleanup finds nothing
  t.deepEqual(JSON.parse((await worker('cleanup')).stdout), { rules: 0, routes: 0, nftTable: false });
});

test.serial('a failing step names its operation and leaves nothing behind', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const before = await snapshot();
  const bad: SetupPlan = { ...plan, paths: [...plan.paths, { iface: 'nosuch0', sourcePrefix: '198.18.3.0/24', table: 303, rulePriority: 10_003 }] };
  const r = await inNetns(NS, process.execPath, [WORKER, 'apply', JSON.stringify(bad)], { check: false });
  t.is(r.code, 1);
  t.regex(r.stderr, /RoutingError: find link nosuch0: no such device/);
  t.deepEqual(await snapshot(), before);
});

// ---------------------------------------------------------------------------------------------
// Dual stack: the IPv6 half of a plan, in a namespace of its own with IPv6 on (no link-local
// addresses: addr_gen_mode 1, so that nothing appears asynchronously between snapshots).

const NS6 = `mptrt6-${process.pid}`;

const plan6: SetupPlan = {
  tun: 'tun6x',
  ipv6: true,
  capture: { table: 300, priority: 20_000 },
  paths: [
    { iface: 'v6up1', gateway: '10.1.0.254', sourcePrefix: '198.18.1.0/24', table: 301, rulePriority: 10_001, sourcePrefix6: 'fd6d:7074:756e:1::/64', gateway6: 'fd00:1::fe' },
    // IPv4 only: no IPv6 route, rule, masquerade nor sysctl
    { iface: 'v6up2', gateway: '10.2.0.254', sourcePrefix: '198.18.2.0/24', table: 302, rulePriority: 10_002 },
  ],
  exclude: [{ prefix: '192.0.2.0/24', priority: 10_050 }, { prefix: '2001:db8::/32', priority: 10_050 }],
};

let ready6 = false;

test.before(async () => {
  if (!isRoot()) return;
  await run('ip', ['netns', 'add', NS6]);
  const sh = async (...args: string[]) => { await inNetns(NS6, 'ip', args); };
  await sh('link', 'set', 'lo', 'up');
  for (const k of ['all', 'default']) await inNetns(NS6, 'sh', ['-c', `echo 1 > /proc/sys/net/ipv6/conf/${k}/addr_gen_mode`]);
  for (const [dev, peer, addr, addr6] of [['v6up1', 'v6up1p', '10.1.0.1/24', 'fd00:1::1/64'], ['v6up2', 'v6up2p', '10.2.0.1/24', 'fd00:2::1/64'], ['tun6x', 'tun6xp', '198.18.0.1/30', 'fd6d:7074:756e::1/128']]) {
    await sh('link', 'add', dev, 'type', 'veth', 'peer', 'name', peer);
    await sh('addr', 'add', addr, 'dev', dev);
    await sh('-6', 'addr', 'add', addr6, 'dev', dev, 'nodad');
    await sh('link', 'set', dev, 'up');
    await sh('link', 'set', peer, 'up');
  }
  ready6 = true;
});

test.after.always(async () => {
  if (isRoot()) await run('ip', ['netns', 'del', NS6], { check: false });
});

const SYSCTLS6 = ['all/forwarding', ...['tun6x', 'v6up1', 'v6up2'].flatMap((d) => [`${d}/forwarding`, `${d}/force_forwarding`, `${d}/accept_ra`])];

async function snapshot6(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const cmds: [string, string, string[]][] = [
    ['rule4', 'ip', ['rule']],
    ['rule6', 'ip', ['-6', 'rule']],
    ['route4', 'ip', ['route', 'show', 'table', 'all']],
    ['route6', 'ip', ['-6', 'route', 'show', 'table', 'all']],
    ['nft', NFT, ['list', 'ruleset']],
  ];
  for (const [k, cmd, args] of cmds) out[k] = (await inNetns(NS6, cmd, args)).stdout;
  for (const key of SYSCTLS6) out[key] = (await inNetns(NS6, 'cat', [`/proc/sys/net/ipv6/conf/${key}`])).stdout.trim();
  return out;
}

test('defaultSysctls of a dual-stack plan: accept_ra 2 (where 1) before any IPv6 forwarding, only on the IPv6 paths', async (t) => {
  const { defaultSysctls } = await import('../../src/routing/setup.js');
  const s = defaultSysctls(plan6).filter((x) => x.key.startsWith('net/ipv6/'));
  t.deepEqual(s, [
    { key: 'net/ipv6/conf/v6up1/accept_ra', value: '2', onlyFrom: '1' },
    { key: 'net/ipv6/conf/tun6x/forwarding', value: '1' },
    { key: 'net/ipv6/conf/v6up1/forwarding', value: '1' },
    { key: 'net/ipv6/conf/tun6x/force_forwarding', value: '1', fallback: { key: 'net/ipv6/conf/all/forwarding', value: '1' } },
    { key: 'net/ipv6/conf/v6up1/force_forwarding', value: '1', fallback: { key: 'net/ipv6/conf/all/forwarding', value: '1' } },
  ]);
  t.deepEqual(defaultSysctls({ ...plan6, ipv6: false }).filter((x) => x.key.startsWith('net/ipv6/')), [], 'an IPv4 plan touches no IPv6 sysctl');
});

test.serial('a dual-stack plan: IPv6 rules, routes, NAT66, fence and sysctls for the IPv6 paths; undo restores everything', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready6);
  const before = await snapshot6();
  t.is(before['v6up1/accept_ra'], '1');
  const record = JSON.parse((await inNetns(NS6, process.execPath, [WORKER, 'apply', JSON.stringify(plan6)])).stdout) as SetupRecord;

  const rules6 = lines((await inNetns(NS6, 'ip', ['-6', 'rule'])).stdout).filter((l) => !lines(before.rule6).includes(l));
  t.deepEqual(rules6.sort(), [
    '10001: from fd6d:7074:756e:1::/64 lookup 301 proto 250',
    '10050: from all to 2001:db8::/32 lookup main proto 250',
    '19999: from all fwmark 0x800000/0x800000 lookup main proto 250',
    '20000: from all ipproto tcp lookup 300 proto 250',
  ]);
  const rules4 = lines((await inNetns(NS6, 'ip', ['rule'])).stdout).filter((l) => !lines(before.rule4).includes(l));
  t.deepEqual(rules4.sort(), [
    '10001: from 198.18.1.0/24 lookup 301 proto 250',
    '10002: from 198.18.2.0/24 lookup 302 proto 250',
    '10050: from all to 192.0.2.0/24 lookup main proto 250',
    '19999: from all fwmark 0x800000/0x800000 lookup main proto 250',
    '20000: from all ipproto tcp lookup 300 proto 250',
  ], 'each exclusion goes to the rules of its IP version');
  // (a table with no route at all is "FIB table does not exist": no output)
  const route6 = async (table: string) => lines((await inNetns(NS6, 'ip', ['-6', 'route', 'show', 'table', table], { check: false })).stdout);
  t.deepEqual(await route6('300'), ['default dev tun6x proto 250 metric 1024 pref medium']);
  t.deepEqual(await route6('301'), ['default via fd00:1::fe dev v6up1 proto 250 metric 1024 pref medium', 'blackhole default dev lo proto 250 metric 4294967280 pref medium']);
  t.deepEqual(await route6('302'), [], 'the IPv4-only path has no IPv6 table');
  const nft = lines((await inNetns(NS6, NFT, ['list', 'table', 'inet', 'mptun'])).stdout);
  t.true(nft.includes('oifname "v6up1" ip6 saddr fd6d:7074:756e:1::/64 masquerade'), nft.join('\n'));
  t.false(nft.some((l) => l.includes('oifname "v6up2" ip6')), nft.join('\n'));
  t.true(nft.includes('meta nfproto ipv6 iifname "v6up1" oifname != "tun6x" counter packets 0 bytes 0 drop'), nft.join('\n'));
  t.true(nft.includes('meta nfproto ipv4 iifname "v6up2" oifname != "tun6x" counter packets 0 bytes 0 drop'), nft.join('\n'));
  const now = await snapshot6();
  t.is(now['v6up1/accept_ra'], '2');
  t.is(now['v6up1/forwarding'], '1');
  t.is(now['tun6x/forwarding'], '1');
  t.is(now['v6up2/accept_ra'], '1', 'an IPv4-only path keeps its IPv6 settings');
  t.is(now['v6up2/forwarding'], '0');
  t.is(now['v6up1/force_forwarding'] === '1' || now['all/forwarding'] === '1', true, 'IPv6 forwards from the path');
  // accept_ra is written before any IPv6 forwarding (which would purge the RA-learned routes)
  const keys = record.steps.flatMap((s) => (s.kind === 'sysctl' && s.key.startsWith('net/ipv6/') ? [s.key] : []));
  t.is(keys[0], 'net/ipv6/conf/v6up1/accept_ra', keys.join(', '));
  await inNetns(NS6, process.execPath, [WORKER, 'undo', JSON.stringify(record)]);
  t.deepEqual(await snapshot6(), before);
});

test.serial('after a SIGKILL, cleanupLeftovers removes the IPv6 rules and routes too', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready6);
  const before = await snapshot6();
  const held = spawnInNetns(NS6, process.execPath, [WORKER, 'hold', JSON.stringify(plan6)]);
  try {
    await waitFor('the worker to apply the plan', () => held.stdout().includes('\n'), { timeout: 15_000 });
  } catch (e) {
    await held.stop('SIGKILL');
    throw new Error(`${String(e)}: ${held.stderr()}`);
  }
  const record = JSON.parse(held.stdout()) as SetupRecord;
  await held.stop('SIGKILL');
  const report = JSON.parse((await inNetns(NS6, process.execPath, [WORKER, 'cleanup'])).stdout) as { rules: number; routes: number; nftTable: boolean };
  t.deepEqual(report, { rules: 9, routes: 8, nftTable: true });
  for (const s of [...record.steps].reverse()) {
    if (s.kind === 'sysctl') await inNetns(NS6, 'sh', ['-c', `echo ${s.previous} > /proc/sys/${s.key}`]);
  }
  t.deepEqual(await snapshot6(), before);
});

test.serial('a path added at run time and a gateway moved are in the record: undo restores the state', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready);
  const before = await snapshot();
  const addition: PathAddition = {
    tun: 'tunx', capturePriority: 20_000,
    path: { iface: 'up3', gateway: '10.3.0.254', sourcePrefix: '198.18.3.0/24', table: 303, rulePriority: 10_003 },
    exclude: [{ prefix: '10.3.0.0/24', priority: 10_051 }],
  };
  const moved: RouteSpec = { dst: 'default', dev: 'up1', gateway: '10.1.0.253', table: 301, version: 4 };
  const r = await worker('grow', JSON.stringify(plan), JSON.stringify(addition), JSON.stringify(moved));
  const record = JSON.parse(r.stdout) as SetupRecord;
  const rules = lines((await inNetns(NS, 'ip', ['rule'])).stdout);
  t.true(rules.includes('10003: from 198.18.3.0/24 lookup 303 proto 250'), rules.join('\n'));
  t.true(rules.includes('10051: from all to 10.3.0.0/24 lookup main proto 250'), rules.join('\n'));
  t.deepEqual(lines((await inNetns(NS, 'ip', ['route', 'show', 'table', '303'])).stdout), ['default via 10.3.0.254 dev up3 proto 250', 'blackhole default proto 250 metric 4294967280']);
  t.deepEqual(lines((await inNetns(NS, 'ip', ['route', 'show', 'table', '301'])).stdout), ['default via 10.1.0.253 dev up1 proto 250', 'blackhole default proto 250 metric 4294967280'], 'the gateway replaced, not added');
  const nft = lines((await inNetns(NS, NFT, ['list', 'table', 'inet', 'mptun'])).stdout);
  t.true(nft.includes('oifname "up3" ip saddr 198.18.3.0/24 masquerade'), nft.join('\n'));
  t.true(nft.includes('oifname "up1" ip saddr 198.18.1.0/24 masquerade'), 'the other paths keep theirs');
  t.true(nft.includes('meta nfproto ipv4 iifname "up3" oifname != "tunx" counter packets 0 bytes 0 drop'), 'the new uplink did not forward: fenced');
  t.is((await inNetns(NS, 'cat', ['/proc/sys/net/ipv4/conf/up3/forwarding'])).stdout.trim(), '1');
  t.is(record.steps.filter((s) => s.kind === 'nft').length, 1, 'one nft step, updated in place');
  t.deepEqual(record.steps.filter((s) => s.kind === 'route' && s.route.table === 301 && s.route.type !== 'blackhole').map((s) => s.kind === 'route' && s.route.gateway), ['10.1.0.253']);
  await worker('undo', JSON.stringify(record));
  t.deepEqual(await snapshot(), before);
});

test.serial('an IPv6 half added at run time (addPathSteps family 6) and an IPv6 gateway moved are in the record: undo restores the state', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.true(ready6);
  const before = await snapshot6();
  // v6up2 carried IPv4 only: it gains its IPv6 half, with its LAN excluded
  const addition: PathAddition = {
    family: 6, tun: 'tun6x', capturePriority: 20_000,
    path: { iface: 'v6up2', gateway: 'fd00:2::fe', sourcePrefix: 'fd6d:7074:756e:2::/64', table: 302, rulePriority: 10_002 },
    exclude: [{ prefix: 'fd00:2::/64', priority: 10_051 }],
  };
  const moved: RouteSpec = { dst: 'default', dev: 'v6up1', gateway: 'fd00:1::fd', table: 301, version: 6 };
  const record = JSON.parse((await inNetns(NS6, process.execPath, [WORKER, 'grow', JSON.stringify(plan6), JSON.stringify(addition), JSON.stringify(moved)])).stdout) as SetupRecord;
  const rules6 = lines((await inNetns(NS6, 'ip', ['-6', 'rule'])).stdout);
  t.true(rules6.includes('10002: from fd6d:7074:756e:2::/64 lookup 302 proto 250'), rules6.join('\n'));
  t.true(rules6.includes('10051: from all to fd00:2::/64 lookup main proto 250'), rules6.join('\n'));
  const route6 = async (table: string) => lines((await inNetns(NS6, 'ip', ['-6', 'route', 'show', 'table', table], { check: false })).stdout);
  t.deepEqual(await route6('302'), ['default via fd00:2::fe dev v6up2 proto 250 metric 1024 pref medium', 'blackhole default dev lo proto 250 metric 4294967280 pref medium']);
  t.deepEqual(await route6('301'), ['default via fd00:1::fd dev v6up1 proto 250 metric 1024 pref medium', 'blackhole default dev lo proto 250 metric 4294967280 pref medium'], 'the IPv6 gateway replaced, not added');
  t.deepEqual(lines((await inNetns(NS6, 'ip', ['route', 'show', 'table', '302'])).stdout), ['default via 10.2.0.254 dev v6up2 proto 250', 'blackhole default proto 250 metric 4294967280'], 'its IPv4 route untouched');
  const nft = lines((await inNetns(NS6, NFT, ['list', 'table', 'inet', 'mptun'])).stdout);
  t.true(nft.includes('oifname "v6up2" ip6 saddr fd6d:7074:756e:2::/64 masquerade'), nft.join('\n'));
  t.true(nft.includes('oifname "v6up1" ip6 saddr fd6d:7074:756e:1::/64 masquerade'), 'the other paths keep theirs');
  const forceForwarding = (await inNetns(NS6, 'test', ['-e', '/proc/sys/net/ipv6/conf/v6up2/force_forwarding'], { check: false })).code === 0;
  // with force_forwarding (Linux >= 6.17) the uplink did not forward IPv6 before: fenced; without
  // it all/forwarding is already 1 (the plan's fallback), so it forwarded
  if (forceForwarding) t.true(nft.includes('meta nfproto ipv6 iifname "v6up2" oifname != "tun6x" counter packets 0 bytes 0 drop'), nft.join('\n'));
  const sysctl = async (k: string) => (await inNetns(NS6, 'cat', [`/proc/sys/net/ipv6/conf/${k}`])).stdout.trim();
  t.is(await sysctl('v6up2/accept_ra'), '2');
  t.is(await sysctl('v6up2/forwarding'), '1');
  t.is(record.steps.filter((s) => s.kind === 'nft').length, 1, 'one nft step, updated in place');
  await inNetns(NS6, process.execPath, [WORKER, 'undo', JSON.stringify(record)]);
  t.deepEqual(await snapshot6(), before);
});
