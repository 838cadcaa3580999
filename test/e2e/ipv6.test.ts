// `mptun up` over IPv6 (dual stack) on the two-link test bed (scripts/testbed.sh, links shaped
// to 100 Mbit/s, IPv6 fd00:201:{1,2}::/64) against the Linux kernel's MPTCP: iperf3 -6 through
// mptun uses both links (each one's share, the kernel's MPJoinSynRx); a sha256-checked transfer
// over IPv6 while IPv4 traffic runs at the same time; --exclude and --exclude-lan with IPv6
// prefixes; the routing (ip -6 rule, ip -6 route show table all, nft, the IPv6 sysctls
// forwarding, force_forwarding and accept_ra) is what it was after SIGTERM and after SIGKILL +
// `mptun down`.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import {
  inNetns, parseEnvLines, requireRootOrSkip, run, spawnInNetns, systemEnv, waitFor, waitForPort, type RunOptions, type Spawned,
} from '../helpers/netns.js';
import { startMptunUp } from '../helpers/mptun.js';
import { mptcpMib } from '../mptcp/bed.js';

const PREFIX = 'mpt6';
const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed.sh', import.meta.url));
const MPTUN = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));
const PEER = fileURLToPath(new URL('../tcp/kernel-peer.js', import.meta.url));
const ENV = systemEnv({ TESTBED_PREFIX: PREFIX });
const STATE_DIR = `/run/mptun-${PREFIX}`;
const SOCKET = `${STATE_DIR}/control.sock`;

function bed(args: string[], opts: RunOptions = {}) {
  return run('bash', [SCRIPT, ...args], { env: ENV, timeout: 60_000, ...opts });
}

let topo: Record<string, string> = {};
const cli = () => topo.TESTBED_NS_CLIENT!;
const srv = () => topo.TESTBED_NS_SERVER!;
const srv6 = () => topo.TESTBED_SRV_ADDR6_1!;

/**
 * Everything mptun may touch in the client namespace, as text, lines sorted within each part:
 * rules and routes of both versions, the nft ruleset, and the sysctls of forwarding (IPv4 and
 * IPv6), force_forwarding, accept_ra and rp_filter of the uplinks and `all`.
 */
async function routingSnapshot(): Promise<string> {
  const parts: string[] = [];
  for (const args of [['rule'], ['-6', 'rule'], ['route', 'show', 'table', 'all'], ['-6', 'route', 'show', 'table', 'all'], ['link', 'show']]) {
    parts.push((await inNetns(cli(), 'ip', args)).stdout.replace(/^\d+: mptun0.*\n(\s+link.*\n)?/gm, ''));
  }
  parts.push((await inNetns(cli(), '/usr/sbin/nft', ['list', 'ruleset'])).stdout);
  const sysctl = await inNetns(cli(), 'sysctl', ['-a'], { check: false });
  parts.push(sysctl.stdout.split('\n').filter((l) => /\.(forwarding|force_forwarding|accept_ra|rp_filter) =/.test(l) && !l.includes('mptun0')).join('\n'));
  // IPv6 link-local routes come and go with the kernel's autoconfiguration, not with mptun
  return parts.map((p) => p.split('\n').filter((l) => !l.includes('fe80::')).sort().join('\n')).join('\n----\n');
}

const sysctl6 = async (key: string) => (await inNetns(cli(), 'cat', [`/proc/sys/net/ipv6/conf/${key}`])).stdout.trim();

interface StatusPath { index: number; iface: string; up: boolean; up6?: boolean; source6?: string; bytesOut: number; bytesIn: number; subflows: number }
interface StatusFlow { destination: string; subflows: Array<{ path: number; local: string; closed: boolean }> }
interface Status { pid: number; paths: StatusPath[]; flows: StatusFlow[] }

async function status(): Promise<Status> {
  const r = await inNetns(cli(), process.execPath, [MPTUN, 'status', '--json', '--control-socket', SOCKET]);
  return JSON.parse(r.stdout) as Status;
}

let mptun: Spawned | null = null;

async function startMptun(extra: string[] = []): Promise<Spawned> {
  return startMptunUp(cli(), ['--state-dir', STATE_DIR, '--control-socket', SOCKET, '--log-level', 'debug', ...extra]);
}

async function stopMptun(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (mptun) await mptun.stop(signal, 10_000);
  mptun = null;
}

/** Mbit/s received by iperf3 (client in the client namespace). */
async function iperf(args: string[]): Promise<number> {
  const { stdout } = await inNetns(cli(), 'iperf3', [...args, '-J'], { timeout: 30_000 });
  return (JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e6;
}

let before = '';

test.before(async (t) => {
  if (!requireRootOrSkip(t)) return;
  await bed(['up', '--rate', '100', '--no-client-mptcp']);
  topo = parseEnvLines((await bed(['env'])).stdout);
  await bed(['server-start']);
  await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  before = await routingSnapshot();
});

test.after.always(async () => {
  await stopMptun('SIGKILL');
  if (topo.TESTBED_NS_CLIENT) await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  await bed(['down'], { check: false });
});

test.serial('both links are dual-stack paths: an IPv6 source per path, IPv6 capture, NAT66, the IPv6 sysctls', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.is(await sysctl6(`${topo.TESTBED_CLI_IF1}/accept_ra`), '1', 'the bed\'s uplinks accept router advertisements');
  mptun = await startMptun();
  const st = await status();
  t.deepEqual(st.paths.map((p) => [p.iface, p.up, p.up6, p.source6]), [
    [topo.TESTBED_CLI_IF1, true, true, 'fd6d:7074:756e:1::2'],
    [topo.TESTBED_CLI_IF2, true, true, 'fd6d:7074:756e:2::2'],
  ]);
  const rules = (await inNetns(cli(), 'ip', ['-6', 'rule'])).stdout;
  t.regex(rules, /9000:\s+from fd6d:7074:756e:1::\/64 lookup 7101 proto 250/);
  t.regex(rules, /9001:\s+from fd6d:7074:756e:2::\/64 lookup 7102 proto 250/);
  t.regex(rules, /9050:\s+from all to fe80::\/10 lookup main proto 250/);
  t.regex(rules, /9099:\s+from all fwmark 0x800000\/0x800000 lookup main proto 250/);
  t.regex(rules, /9100:\s+from all ipproto tcp lookup 7100 proto 250/);
  const routes = (await inNetns(cli(), 'ip', ['-6', 'route', 'show', 'table', '7101'])).stdout;
  t.regex(routes, new RegExp(`default via ${topo.TESTBED_SRV_ADDR6_1} dev ${topo.TESTBED_CLI_IF1} proto 250`));
  const nft = (await inNetns(cli(), '/usr/sbin/nft', ['list', 'table', 'inet', 'mptun'])).stdout;
  // NAT66 to the interface's own address (a SNAT mapping outlives a link flap; nft.ts Masquerade.to)
  t.regex(nft, new RegExp(`oifname "${topo.TESTBED_CLI_IF2}" ip6 saddr fd6d:7074:756e:2::/64 snat ip6 to ${topo.TESTBED_CLI_ADDR6_2}\\b`));
  t.regex(nft, new RegExp(`meta nfproto ipv6 iifname "${topo.TESTBED_CLI_IF1}" oifname != "mptun0"`));
  // forwarding for IPv6 on the uplinks, and accept_ra 2 so that default routes learned from
  // router advertisements are kept
  for (const dev of [topo.TESTBED_CLI_IF1!, topo.TESTBED_CLI_IF2!]) {
    t.is(await sysctl6(`${dev}/accept_ra`), '2', `${dev} accept_ra`);
    t.is(await sysctl6(`${dev}/forwarding`), '1', `${dev} forwarding`);
  }
  t.is(await sysctl6('all/forwarding'), '0', 'the host as a whole does not become an IPv6 router');
});

test.serial('iperf3 -6 through mptun uses both links against the kernel MPTCP server (MP_JOIN over IPv6)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  const joinsBefore = (await mptcpMib(srv())).MPJoinSynRx ?? 0;
  const st0 = await status();
  const up = await iperf(['-6', '-c', srv6(), '-t', '5']);
  const st1 = await status();
  const out = st1.paths.map((p, i) => p.bytesOut - st0.paths[i]!.bytesOut);
  const total = out[0]! + out[1]!;
  t.log(`upload over IPv6 ${up.toFixed(1)} Mbit/s; per path ${out.map((b) => (b / 1e6).toFixed(1)).join(' / ')} MB`);
  t.true(total > 20e6, `${total} bytes went out`);
  for (const b of out) t.true(b > 0.25 * total, `each link carries more than a quarter: ${out.join(', ')}`);
  t.true(((await mptcpMib(srv())).MPJoinSynRx ?? 0) > joinsBefore, 'the kernel server received an MP_JOIN SYN');
  const down = await iperf(['-6', '-c', srv6(), '-t', '4', '-R']);
  const st2 = await status();
  const inn = st2.paths.map((p, i) => p.bytesIn - st1.paths[i]!.bytesIn);
  t.log(`download over IPv6 ${down.toFixed(1)} Mbit/s; per path ${inn.map((b) => (b / 1e6).toFixed(1)).join(' / ')} MB`);
  for (const b of inn) t.true(b > 0.25 * (inn[0]! + inn[1]!), `each link carries more than a quarter of the download: ${inn.join(', ')}`);
  // above one link's rate at least one way shows the two added up (the shares above say both
  // carry data; a shared, loaded machine takes mptun's CPU, so no tighter figure here: the
  // benchmark, bench/aggregate.js --ipv6, measures it)
  t.true(Math.max(up, down) > 100, `above one link's rate: ${up.toFixed(1)} / ${down.toFixed(1)} Mbit/s`);
});

test.serial('dual stack: a sha256-checked transfer over IPv6 while one over IPv4 runs; each uses its own family\'s sources', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  const server6 = spawnInNetns(srv(), 'mptcpize', ['run', process.execPath, PEER, '--mode', 'serve', '--listen', '[::]:5006']);
  const server4 = spawnInNetns(srv(), 'mptcpize', ['run', process.execPath, PEER, '--mode', 'serve', '--listen', '0.0.0.0:5004']);
  try {
    await waitForPort(srv(), 5006);
    await waitForPort(srv(), 5004);
    const send = (to: string, bytes: number) => inNetns(cli(), process.execPath, [PEER, '--mode', 'send', '--connect', to, '--bytes', String(bytes)], { timeout: 120_000 });
    const v6 = send(`[${srv6()}]:5006`, 100_000_000);
    const v4 = send(`${topo.TESTBED_SRV_ADDR1}:5004`, 50_000_000);
    // both connections at once, each with a subflow per path from its own family's source
    await waitFor('both transfers to have their subflows', async () => {
      const flows = (await status()).flows;
      return flows.length >= 2 && flows.every((f) => f.subflows.filter((s) => !s.closed).length === 2);
    }, { timeout: 15_000 });
    const flows = (await status()).flows;
    for (const f of flows) {
      const v6flow = f.destination.includes(':') && f.destination.split(':').length > 2;
      for (const s of f.subflows) t.is(s.local.includes('fd6d:7074:756e:'), v6flow, `${f.destination}: subflow from ${s.local}`);
      t.deepEqual(f.subflows.map((s) => s.path).sort(), [0, 1], `${f.destination}: one subflow per path`);
    }
    for (const [name, r] of [['IPv6', await v6], ['IPv4', await v4]] as const) {
      const sent = JSON.parse(r.stdout.trim().split('\n').pop()!) as { sha256: string; peerSha256: string; bytes: number };
      t.is(sent.peerSha256, sent.sha256, `${name}: the server received exactly what was sent`);
    }
  } finally {
    await server6.stop();
    await server4.stop();
  }
});

test.serial('--fullmesh over IPv6: subflows to the server\'s announced IPv6 address too, never to its IPv4 one', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await stopMptun();
  mptun = await startMptun(['--fullmesh']);
  const server = spawnInNetns(srv(), 'mptcpize', ['run', process.execPath, PEER, '--mode', 'serve', '--listen', '[::]:5007']);
  try {
    await waitForPort(srv(), 5007);
    const transfer = inNetns(cli(), process.execPath, [PEER, '--mode', 'send', '--connect', `[${srv6()}]:5007`, '--bytes', '60000000'], { timeout: 120_000 });
    // the kernel announces its second address of each version (ADD_ADDR, endpoints "signal")
    let seen: StatusFlow[] = [];
    await waitFor('subflows to the announced IPv6 address', async () => {
      seen = (await status()).flows;
      return seen.some((f) => f.subflows.filter((s) => !s.closed).length >= 3);
    }, { timeout: 15_000 });
    for (const f of seen) for (const s of f.subflows) t.regex(s.local, /fd6d:7074:756e:/, `${f.destination}: subflow from ${s.local}`);
    const sent = JSON.parse((await transfer).stdout.trim().split('\n').pop()!) as { sha256: string; peerSha256: string };
    t.is(sent.peerSha256, sent.sha256);
    const counters = (await status() as unknown as { counters: { upstream: Record<string, number> } }).counters.upstream;
    t.log(`ADD_ADDR of the other IP version, not joined: ${counters.addAddrOtherFamily ?? 0}`);
  } finally {
    await server.stop();
    await stopMptun();
  }
});

test.serial('--exclude with an IPv6 prefix and --exclude-lan with the IPv6 connected prefixes keep them off mptun', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await stopMptun();
  mptun = await startMptun(['--exclude', '2001:db8::/32', '--exclude-lan']);
  try {
    const rules = (await inNetns(cli(), 'ip', ['-6', 'rule'])).stdout;
    t.regex(rules, /from all to 2001:db8::\/32 lookup main proto 250/);
    t.regex(rules, /from all to fd00:201:1::\/64 lookup main proto 250/);
    t.regex(rules, /from all to fd00:201:2::\/64 lookup main proto 250/);
    // the server is on a connected prefix: plain TCP from the kernel, not through mptun
    const st0 = await status();
    const mbit = await iperf(['-6', '-c', srv6(), '-t', '2']);
    const st1 = await status();
    t.true(mbit > 10, `${mbit} Mbit/s`);
    t.is(st1.paths.reduce((n, p, i) => n + p.bytesOut - st0.paths[i]!.bytesOut, 0), 0, 'nothing went through mptun');
  } finally {
    await stopMptun();
  }
  t.is(await routingSnapshot(), before, 'after SIGTERM');
});

test.serial('routing is what it was (IPv6 rules, routes, nft, sysctls): after SIGTERM, after SIGKILL + `mptun down`', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  t.not(await routingSnapshot(), before, 'mptun changed the routing while up');
  await stopMptun('SIGTERM');
  t.is(await routingSnapshot(), before, 'after SIGTERM');

  mptun = await startMptun();
  await stopMptun('SIGKILL');
  const left = await routingSnapshot();
  t.not(left, before, 'a killed instance leaves its set-up behind');
  t.regex(left, /ipproto tcp lookup 7100/);
  const d = await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR]);
  t.regex(d.stdout, /undid the record of dead pid/);
  t.is(await routingSnapshot(), before, 'after SIGKILL + mptun down');
  for (const dev of [topo.TESTBED_CLI_IF1!, topo.TESTBED_CLI_IF2!]) t.is(await sysctl6(`${dev}/accept_ra`), '1', `${dev}: accept_ra restored`);
});

/**
 * Sends one router advertisement (RFC 4861 §4.2: type 134, hop limit 255, from the link-local
 * address) out of `dev` in the server namespace, with this router lifetime; the kernel fills in
 * the ICMPv6 checksum of a raw ICMPv6 socket.
 */
async function sendRouterAdvertisement(dev: string, lifetime: number): Promise<void> {
  const py = [
    'import socket, struct, sys',
    'idx = socket.if_nametoindex(sys.argv[1])',
    's = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)',
    's.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)',
    's.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)',
    's.sendto(struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, int(sys.argv[2]), 0, 0), ("ff02::1", 0, 0, idx))',
  ].join('\n');
  await inNetns(srv(), '/usr/bin/python3', ['-c', py, dev, String(lifetime)]);
}

/** The client's default routes learned from router advertisements on link 2, with their lifetime left (s). */
async function raRoutes(): Promise<number[]> {
  const out = (await inNetns(cli(), 'ip', ['-6', 'route', 'show', 'default', 'dev', topo.TESTBED_CLI_IF2!, 'proto', 'ra'])).stdout;
  return out.split('\n').filter((l) => l.trim() !== '').map((l) => Number(/expires (\d+)sec/.exec(l)?.[1] ?? -1));
}

test.serial('a default route learned from a router advertisement survives mptun turning IPv6 forwarding on (accept_ra 2), and advertisements are still heard', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await stopMptun();
  await sendRouterAdvertisement(topo.TESTBED_SRV_IF2!, 1800);
  try {
    await waitFor('the client to learn the default route from the advertisement', async () => (await raRoutes()).length === 1, { timeout: 5_000 });
    const withRa = async () => (await routingSnapshot()).replace(/expires \d+sec/g, 'expires');
    const beforeRa = await withRa();
    mptun = await startMptun();
    t.is(await sysctl6(`${topo.TESTBED_CLI_IF2}/forwarding`), '1');
    t.is((await raRoutes()).length, 1, 'the learned default route is still there with forwarding on');
    // a new advertisement (a shorter lifetime) is still taken in while forwarding is on
    await sendRouterAdvertisement(topo.TESTBED_SRV_IF2!, 600);
    await waitFor('the advertisement to be heard with forwarding on', async () => (await raRoutes()).every((s) => s >= 0 && s <= 600), { timeout: 5_000 });
    // its gateway (link-local) is path 1's IPv6 gateway; the path carries IPv6
    const st = await status();
    t.regex((st.paths[1] as unknown as { gateway6?: string }).gateway6 ?? '', /^fe80::/);
    const st0 = await status();
    await iperf(['-6', '-c', srv6(), '-t', '3']);
    const st1 = await status();
    t.true(st1.paths[1]!.bytesOut - st0.paths[1]!.bytesOut > 5e6, 'IPv6 leaves by the path whose gateway came from the advertisement');
    await stopMptun('SIGTERM');
    t.is(await withRa(), beforeRa, 'after SIGTERM: routing and sysctls as they were (the learned route included)');
  } finally {
    await stopMptun('SIGKILL');
    // a router lifetime of 0 withdraws the route (RFC 4861 §6.3.4)
    await sendRouterAdvertisement(topo.TESTBED_SRV_IF2!, 0);
    await waitFor('the learned route to be withdrawn', async () => (await raRoutes()).length === 0, { timeout: 5_000 }).catch(() => undefined);
  }
  t.is(await routingSnapshot(), before);
});
