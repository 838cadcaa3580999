// `mptun up` end to end on the two-link test bed (scripts/testbed.sh, links shaped to
// 100 Mbit/s) against the Linux kernel's MPTCP: unmodified programs in the client namespace
// (iperf3, a node:net client) use both links through mptun; a 200 MB transfer survives a link
// pulled in the middle (sha256 on both ends); a server without MPTCP is still reachable (plain
// TCP); UDP keeps its route; a refused port is refused; the routing, rules, nftables and
// sysctls are what they were after `mptun down`, after SIGTERM, and after SIGKILL + `mptun down`.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import {
  inNetns, parseEnvLines, requireRootOrSkip, run, spawnInNetns, systemEnv, waitFor, waitForPort, type RunOptions, type Spawned,
} from '../helpers/netns.js';
import { startMptunUp } from '../helpers/mptun.js';
import { mptcpMib } from '../mptcp/bed.js';

const PREFIX = 'mptap';
const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed.sh', import.meta.url));
const MPTUN = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));
const PEER = fileURLToPath(new URL('../tcp/kernel-peer.js', import.meta.url));
const UDP = fileURLToPath(new URL('./udp-echo.js', import.meta.url));
const ENV = systemEnv({ TESTBED_PREFIX: PREFIX });
const STATE_DIR = `/run/mptun-${PREFIX}`;
const SOCKET = `${STATE_DIR}/control.sock`;

function bed(args: string[], opts: RunOptions = {}) {
  return run('bash', [SCRIPT, ...args], { env: ENV, timeout: 60_000, ...opts });
}

let topo: Record<string, string> = {};
const cli = () => topo.TESTBED_NS_CLIENT!;
const srv = () => topo.TESTBED_NS_SERVER!;

/**
 * Everything mptun may touch in the client namespace, as text; lines sorted within each part
 * (a link taken down and up again lists its IPv6 routes in another order).
 */
async function routingSnapshot(): Promise<string> {
  const parts: string[] = [];
  for (const args of [['rule'], ['-6', 'rule'], ['route', 'show', 'table', 'all'], ['-6', 'route', 'show', 'table', 'all'], ['link', 'show']]) {
    parts.push((await inNetns(cli(), 'ip', args)).stdout.replace(/^\d+: mptun0.*\n(\s+link.*\n)?/gm, ''));
  }
  parts.push((await inNetns(cli(), '/usr/sbin/nft', ['list', 'ruleset'])).stdout);
  const sysctl = await inNetns(cli(), 'sysctl', ['-a'], { check: false });
  parts.push(sysctl.stdout.split('\n').filter((l) => /\.(forwarding|rp_filter) =/.test(l) && !l.includes('mptun0')).join('\n'));
  // IPv6 link-local routes come and go with the kernel's autoconfiguration, not with mptun
  return parts.map((p) => p.split('\n').filter((l) => !l.includes('fe80::')).sort().join('\n')).join('\n----\n');
}

interface StatusPath { index: number; iface: string; up: boolean; bytesOut: number; bytesIn: number; subflows: number }
interface Status2 { host: Record<string, number> }
interface Status { pid: number; paths: StatusPath[]; flows: unknown[]; counters: { relay: Record<string, number> } }

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

/** Mbit/s received by iperf3 (client in the client namespace, through mptun). */
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
  await bed(['server-start', '--port', '5202', '--plain']);
  // leftovers of an earlier run of this test would spoil the snapshot
  await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  before = await routingSnapshot();
});

test.after.always(async () => {
  await stopMptun('SIGKILL');
  if (topo.TESTBED_NS_CLIENT) await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  await bed(['down'], { check: false });
});

test.serial('a bad config is refused, naming the field, and nothing is touched', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const r = await inNetns(cli(), process.execPath, [MPTUN, 'up', '--state-dir', STATE_DIR, '--mtu', '99999'], { check: false });
  t.is(r.code, 1);
  t.regex(r.stderr, /--mtu/);
  const r2 = await inNetns(cli(), process.execPath, [MPTUN, 'up', '--state-dir', STATE_DIR, '--path', 'nosuchif0'], { check: false });
  t.is(r2.code, 1);
  t.regex(r2.stderr, /nosuchif0: no such interface/);
  t.is(await routingSnapshot(), before);
});

test.serial('iperf3 through mptun: both links carry data, both ways, against the kernel MPTCP server', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun = await startMptun();
  const joinsBefore = (await mptcpMib(srv())).MPJoinAckRx ?? 0;
  const st0 = await status();
  t.is(st0.paths.length, 2, 'both links found as paths');
  const up = await iperf(['-c', topo.TESTBED_SRV_ADDR1!, '-t', '4']);
  const st1 = await status();
  const out = st1.paths.map((p, i) => p.bytesOut - st0.paths[i]!.bytesOut);
  const total = out[0]! + out[1]!;
  t.log(`upload ${up.toFixed(1)} Mbit/s; per path ${out.map((b) => (b / 1e6).toFixed(1)).join(' / ')} MB`);
  t.true(total > 20e6, `${total} bytes went out`);
  for (const b of out) t.true(b > 0.25 * total, `each path carries a real share: ${out.join(', ')}`);
  t.true(((await mptcpMib(srv())).MPJoinAckRx ?? 0) > joinsBefore, 'the kernel server accepted a join');
  const down = await iperf(['-c', topo.TESTBED_SRV_ADDR1!, '-t', '4', '-R']);
  const st2 = await status();
  const inn = st2.paths.map((p, i) => p.bytesIn - st1.paths[i]!.bytesIn);
  t.log(`download ${down.toFixed(1)} Mbit/s; per path ${inn.map((b) => (b / 1e6).toFixed(1)).join(' / ')} MB`);
  for (const b of inn) t.true(b > 0.25 * (inn[0]! + inn[1]!), `each path carries a real share of the download: ${inn.join(', ')}`);
  // one link's worth is the most a single path could give: more shows the two added up
  t.true(up > 100 && down > 100, `above one link's rate: ${up.toFixed(1)} / ${down.toFixed(1)} Mbit/s`);
});

test.serial('200 MB with sha256 while link 1 is pulled in the middle; it comes back and the same connection uses it again', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  const server = spawnInNetns(srv(), 'mptcpize', ['run', process.execPath, PEER, '--mode', 'serve', '--listen', '0.0.0.0:5003']);
  let linkDown = false;
  try {
    await waitForPort(srv(), 5003);
    const bytes = 200_000_000;
    let done = false;
    const client = inNetns(cli(), process.execPath, [PEER, '--mode', 'send', '--connect', `${topo.TESTBED_SRV_ADDR1}:5003`, '--bytes', String(bytes)], { timeout: 120_000 })
      .finally(() => { done = true; })
      .catch(async (e: Error) => {
        // what mptun held when the app failed: its flows, subflows and counters
        const st = await inNetns(cli(), process.execPath, [MPTUN, 'status', '--json', '--control-socket', SOCKET], { check: false }).catch(() => null);
        throw new Error(`${e.message}\nmptun status: ${st?.stdout.slice(0, 20_000)}\nmptun log: ${mptun?.stderr().slice(-4000)}`);
      });
    client.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    await waitFor('the transfer to be under way', async () => (await status()).paths.every((p) => p.subflows > 0), { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 2500));
    const rmAddrBefore = (await mptcpMib(srv())).RmAddr ?? 0;
    await bed(['link-down', '1']);
    linkDown = true;
    const pulledAt = Date.now();
    await waitFor('mptun to see path 0 down', async () => !(await status()).paths[0]!.up, { timeout: 5_000 });
    const seen = Date.now() - pulledAt;
    await waitFor('the kernel to take a REMOVE_ADDR for the lost path', async () => ((await mptcpMib(srv())).RmAddr ?? 0) > rmAddrBefore, { timeout: 3_000 });
    await new Promise((r) => setTimeout(r, 2000));
    t.false(done, 'the transfer is still running with one link');
    const outAtDown = (await status()).paths[0]!.bytesOut;
    await bed(['link-up', '1']);
    linkDown = false;
    await waitFor('mptun to see path 0 up', async () => (await status()).paths[0]!.up, { timeout: 5_000 });
    // the connection still open gets a subflow on the path again and sends on it
    await waitFor('path 0 to carry the same transfer again', async () => done || (await status()).paths[0]!.bytesOut - outAtDown > 2e6, { timeout: 10_000 });
    t.false(done, 'path 0 carried data again before the transfer ended');
    const r = await client;
    const sent = JSON.parse(r.stdout.trim().split('\n').pop()!) as { sha256: string; peerSha256: string; bytes: number };
    t.is(sent.peerSha256, sent.sha256, 'the server received exactly what was sent');
    t.log(`path down seen after ${seen} ms; transfer done ${Date.now() - pulledAt} ms after the pull`);
  } finally {
    await server.stop();
    if (linkDown) await bed(['link-up', '1']);
  }
});

// Regression (found by bench/soak, fixed): a connection whose only subflow was on a link that went
// down was reset at once (the app got ECONNRESET): a server without MPTCP, or a connection younger
// than its first join. Now its subflow is kept through the outage, as a kernel socket would be,
// and the blackhole route at the end of the path's table keeps its packets from leaving by the
// other link or coming back into mptun meanwhile (src/routing/route.ts PATH_BLACKHOLE_METRIC).
test.serial('a connection on one link only (a server without MPTCP) rides out that link\'s outage: 3 s down, then the transfer finishes, sha256 equal', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  const server = spawnInNetns(srv(), process.execPath, [PEER, '--mode', 'serve', '--listen', '0.0.0.0:5004']);
  let linkDown = false;
  try {
    await waitForPort(srv(), 5004);
    const held0 = (await status()).counters as unknown as { upstream: Record<string, number> };
    let done = false;
    const client = inNetns(cli(), process.execPath, [PEER, '--mode', 'send', '--connect', `${topo.TESTBED_SRV_ADDR1}:5004`, '--bytes', '80000000'], { timeout: 120_000 })
      .finally(() => { done = true; });
    client.catch(() => undefined);
    await waitFor('the transfer to be under way', async () => (await status()).paths[0]!.bytesOut > 5e6, { timeout: 10_000 });
    // the NAT of each path is a SNAT to its interface's address: its mapping outlives the outage
    // (a masquerade's conntrack entry is flushed with the device, and the next packet may get another port)
    const nft = (await inNetns(cli(), '/usr/sbin/nft', ['list', 'table', 'inet', 'mptun'])).stdout;
    t.regex(nft, new RegExp(`snat ip to ${topo.TESTBED_CLI_ADDR1!.replace(/\./g, '\\.')}\\b`), nft);
    // the route each path's subflows take when its link is down: the blackhole, not another link
    const table = (await inNetns(cli(), 'ip', ['rule'])).stdout.match(/from \S+ lookup (\d+) proto 250/)?.[1];
    t.truthy(table, 'a path rule of mptun');
    await bed(['link-down', '1']);
    linkDown = true;
    await waitFor('mptun to see path 0 down', async () => !(await status()).paths[0]!.up, { timeout: 5_000 });
    const routes = (await inNetns(cli(), 'ip', ['route', 'show', 'table', table!])).stdout;
    t.regex(routes, /^blackhole default proto 250 metric \d+/m, `table ${table} while link 1 is down: ${routes}`);
    await new Promise((r) => setTimeout(r, 3000));
    t.false(done, 'the transfer waits for the link (not reset, not finished)');
    await bed(['link-up', '1']);
    linkDown = false;
    const r = await client.catch(async (e: Error) => {
      const st = await inNetns(cli(), process.execPath, [MPTUN, 'status', '--json', '--control-socket', SOCKET], { check: false }).catch(() => null);
      throw new Error(`${e.message}\nmptun status: ${st?.stdout.slice(0, 20_000)}\nmptun log: ${mptun?.stderr().slice(-4000)}`);
    });
    const sent = JSON.parse(r.stdout.trim().split('\n').pop()!) as { sha256: string; peerSha256: string };
    t.is(sent.peerSha256, sent.sha256, 'the server received exactly what was sent');
    const held1 = (await status()).counters as unknown as { upstream: Record<string, number> };
    t.true((held1.upstream.subflowsHeldOnDownPath ?? 0) > (held0.upstream.subflowsHeldOnDownPath ?? 0), 'counted as held');
    t.true((held1.upstream.heldSubflowsResumed ?? 0) > (held0.upstream.heldSubflowsResumed ?? 0), 'counted as resumed');
  } finally {
    await server.stop();
    if (linkDown) await bed(['link-up', '1']);
  }
});

test.serial('--backup: the backup link carries nothing while the other is up, and takes over when it goes', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await stopMptun();
  mptun = await startMptun(['--path', `${topo.TESTBED_CLI_IF1}:${topo.TESTBED_SRV_ADDR1}`, '--path', `${topo.TESTBED_CLI_IF2}:${topo.TESTBED_SRV_ADDR2}`, '--backup', topo.TESTBED_CLI_IF2!]);
  try {
    const st0 = await status();
    t.deepEqual(st0.paths.map((p) => (p as unknown as { backup: boolean }).backup), [false, true]);
    // by bytes, not seconds: a loaded machine moves less in a fixed time
    const mbit = await iperf(['-c', topo.TESTBED_SRV_ADDR1!, '-n', '30M']);
    const st1 = await status();
    const out = st1.paths.map((p, i) => p.bytesOut - st0.paths[i]!.bytesOut);
    t.log(`with both links up: ${mbit.toFixed(1)} Mbit/s; per path ${out.map((b) => (b / 1e6).toFixed(2)).join(' / ')} MB`);
    t.true(out[0]! > 20e6, 'the primary path carried the transfer');
    t.true(out[1]! < 0.02 * out[0]!, 'the backup path carried (almost) nothing');
    await bed(['link-down', '1']);
    try {
      await waitFor('mptun to see path 0 down', async () => !(await status()).paths[0]!.up, { timeout: 5_000 });
      const mbit2 = await iperf(['-c', topo.TESTBED_SRV_ADDR1!, '-n', '30M']);
      const st2 = await status();
      t.true(st2.paths[1]!.bytesOut - st1.paths[1]!.bytesOut > 20e6, 'the backup path carried the transfer');
      t.log(`with the primary link down: ${mbit2.toFixed(1)} Mbit/s over the backup`);
    } finally {
      await bed(['link-up', '1']);
    }
  } finally {
    await stopMptun();
  }
});

test.serial('a path whose interface loses its address goes down, and comes back with it (its route put back)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  const cidr = `${topo.TESTBED_CLI_ADDR2}/${topo.TESTBED_PLEN4}`;
  // the test bed's own routes of link 2 go with the address: kept to be put back
  const bedRoutes = (await inNetns(cli(), 'ip', ['route', 'show', 'table', topo.TESTBED_CLI_TABLE2!])).stdout.split('\n').filter((l) => l.trim() !== '');
  await inNetns(cli(), 'ip', ['addr', 'del', cidr, 'dev', topo.TESTBED_CLI_IF2!]);
  try {
    await waitFor('mptun to take path 1 down', async () => !(await status()).paths[1]!.up, { timeout: 5_000 });
  } finally {
    await inNetns(cli(), 'ip', ['addr', 'add', cidr, 'dev', topo.TESTBED_CLI_IF2!]);
    for (const r of bedRoutes) await inNetns(cli(), 'ip', ['route', 'replace', ...r.trim().split(/\s+/), 'table', topo.TESTBED_CLI_TABLE2!]);
  }
  await waitFor('mptun to take path 1 up', async () => (await status()).paths[1]!.up, { timeout: 5_000 });
  const st0 = await status();
  await iperf(['-c', topo.TESTBED_SRV_ADDR1!, '-t', '2']);
  const st1 = await status();
  t.true(st1.paths[1]!.bytesOut - st0.paths[1]!.bytesOut > 5e6, 'path 1 carries data again');
});

test.serial('a server without MPTCP is reached over plain TCP; a closed port is refused', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  const c0 = (await status()).counters.relay;
  const mbit = await iperf(['-c', topo.TESTBED_SRV_ADDR1!, '-p', '5202', '-t', '2']);
  const c1 = (await status()).counters.relay;
  t.true(mbit > 10, `plain TCP through mptun: ${mbit.toFixed(1)} Mbit/s`);
  t.true((c1.flowsFallback ?? 0) > (c0.flowsFallback ?? 0), 'the flows fell back to TCP');
  const r = await inNetns(cli(), 'bash', ['-c', `exec 3<>/dev/tcp/${topo.TESTBED_SRV_ADDR1}/5999`], { check: false, timeout: 10_000 });
  t.not(r.code, 0);
  t.regex(r.stderr, /refused/i);
  t.true(((await status()).counters.relay.flowsRefused ?? 0) > (c1.flowsRefused ?? 0));
});

test.serial('UDP (DNS) keeps its route and never enters mptun; TCP does', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  const dst = topo.TESTBED_SRV_ADDR1!;
  t.regex((await inNetns(cli(), 'ip', ['route', 'get', dst, 'ipproto', 'udp'])).stdout, new RegExp(`dev ${topo.TESTBED_CLI_IF1}`));
  t.regex((await inNetns(cli(), 'ip', ['route', 'get', dst, 'ipproto', 'tcp'])).stdout, /dev mptun0/);
  const server = spawnInNetns(srv(), process.execPath, [UDP, '--mode', 'serve', '--port', '53']);
  try {
    await waitForPort(srv(), 53, { proto: 'udp' });
    const before = (await status()).counters;
    const r = await inNetns(cli(), process.execPath, [UDP, '--mode', 'query', '--server', dst, '--port', '53']);
    t.regex(r.stdout, /"answered":true/);
    const after = (await status()).counters;
    t.is((after as unknown as Status2).host.notTcp ?? 0, (before as unknown as Status2).host.notTcp ?? 0, 'no packet of the query reached mptun');
  } finally {
    await server.stop();
  }
});

test.serial('inbound TCP to the host keeps working (its answers are not captured); --exclude keeps a prefix off mptun', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await stopMptun();
  mptun = await startMptun(['--exclude', `${topo.TESTBED_SRV_ADDR2}/32`]);
  // a server on the host (the client namespace), reached from outside while mptun runs
  const server = spawnInNetns(cli(), process.execPath, [PEER, '--mode', 'serve', '--listen', '0.0.0.0:5004']);
  try {
    await waitForPort(cli(), 5004);
    const before = (await status()).counters.relay;
    const r = await inNetns(srv(), process.execPath, [PEER, '--mode', 'send', '--connect', `${topo.TESTBED_CLI_ADDR1}:5004`, '--bytes', '5000000'], { timeout: 30_000 });
    const sent = JSON.parse(r.stdout.trim().split('\n').pop()!) as { sha256: string; peerSha256: string };
    t.is(sent.peerSha256, sent.sha256, 'the host answered an inbound connection');
    t.is((await status()).counters.relay.flowsRequested ?? 0, before.flowsRequested ?? 0, 'mptun saw no SYN of it');
  } finally {
    await server.stop();
  }
  // the excluded destination: TCP takes the main table, not the device
  t.regex((await inNetns(cli(), 'ip', ['route', 'get', topo.TESTBED_SRV_ADDR2!, 'ipproto', 'tcp'])).stdout, new RegExp(`dev ${topo.TESTBED_CLI_IF2}`));
  t.regex((await inNetns(cli(), 'ip', ['route', 'get', topo.TESTBED_SRV_ADDR1!, 'ipproto', 'tcp'])).stdout, /dev mptun0/);
  const c0 = (await status()).counters.relay;
  const mbit = await iperf(['-c', topo.TESTBED_SRV_ADDR2!, '-t', '1']);
  t.true(mbit > 10);
  t.is((await status()).counters.relay.flowsRequested ?? 0, c0.flowsRequested ?? 0, 'the excluded destination never reached mptun');
  await stopMptun();
});

test.serial('when mptun stops, the apps it carried get a RST at once (not a hang)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  const server = spawnInNetns(srv(), 'mptcpize', ['run', process.execPath, PEER, '--mode', 'serve', '--listen', '0.0.0.0:5005']);
  try {
    await waitForPort(srv(), 5005);
    const client = spawnInNetns(cli(), process.execPath, [PEER, '--mode', 'send', '--connect', `${topo.TESTBED_SRV_ADDR1}:5005`, '--bytes', String(2e9)]);
    await waitFor('the transfer to be under way', async () => (await status()).paths.every((p) => p.subflows > 0), { timeout: 10_000 });
    const stoppedAt = Date.now();
    await stopMptun('SIGTERM');
    const exit = await Promise.race([client.exited, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    if (exit === null) await client.stop('SIGKILL');
    t.not(exit, null, 'the app learnt within 5 s');
    t.regex(client.stdout(), /"event":"error".*(ECONNRESET|EPIPE)/, 'by a reset');
    t.log(`the app saw the reset ${Date.now() - stoppedAt} ms after SIGTERM`);
  } finally {
    await server.stop();
  }
});

test.serial('an app that resets its connection: mptun closes the upstream MPTCP connection with MP_FASTCLOSE', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  const server = spawnInNetns(srv(), 'mptcpize', ['run', process.execPath, PEER, '--mode', 'serve', '--listen', '0.0.0.0:5006']);
  try {
    await waitForPort(srv(), 5006);
    const before = (await mptcpMib(srv())).MPFastcloseRx ?? 0;
    const c0 = (await status()).counters.relay;
    // connect, send a little, then reset (SO_LINGER 0: a RST, not a FIN)
    const script = `const s = require('node:net').connect(5006, '${topo.TESTBED_SRV_ADDR1}', () => { s.write(Buffer.alloc(100000)); setTimeout(() => s.resetAndDestroy(), 300); }); s.on('close', () => process.exit(0));`;
    await inNetns(cli(), process.execPath, ['-e', script], { timeout: 10_000 });
    await waitFor('the kernel to count an MP_FASTCLOSE', async () => ((await mptcpMib(srv())).MPFastcloseRx ?? 0) > before, { timeout: 5_000 });
    t.true(((await status()).counters.relay.flowsResetByApp ?? 0) > (c0.flowsResetByApp ?? 0));
  } finally {
    await server.stop();
  }
});

test.serial('routing is what it was: after SIGTERM, after `mptun down`, after SIGKILL + `mptun down`', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun ??= await startMptun();
  t.not(await routingSnapshot(), before, 'mptun changed the routing while up');
  await stopMptun('SIGTERM');
  t.is(await routingSnapshot(), before, 'after SIGTERM');

  mptun = await startMptun();
  const d = await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR]);
  t.regex(d.stdout, /stopped pid/);
  await mptun.exited;
  mptun = null;
  t.is(await routingSnapshot(), before, 'after mptun down (of a running instance)');

  mptun = await startMptun();
  await stopMptun('SIGKILL');
  t.not(await routingSnapshot(), before, 'a killed instance leaves its set-up behind');
  t.true(existsSync(SOCKET), 'and its control socket');
  const d2 = await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR]);
  t.regex(d2.stdout, /undid the record of dead pid/);
  t.is(await routingSnapshot(), before, 'after SIGKILL + mptun down');
  t.false(existsSync(SOCKET), 'the dead control socket removed');

  // a killed instance is also cleaned up by the next `mptun up`
  mptun = await startMptun();
  await stopMptun('SIGKILL');
  mptun = await startMptun();
  t.regex(mptun.stderr(), /died without tearing down/);
  await stopMptun('SIGTERM');
  t.is(await routingSnapshot(), before, 'after SIGKILL + mptun up + SIGTERM');
});

test.serial('a second mptun up is refused while one runs', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun = await startMptun();
  const r = await inNetns(cli(), process.execPath, [MPTUN, 'up', '--state-dir', STATE_DIR, '--tun', 'mptun1'], { check: false });
  t.is(r.code, 1);
  t.regex(r.stderr, /mptun is running \(pid \d+/);
  await stopMptun('SIGTERM');
  t.is(await routingSnapshot(), before);
});
