// Mobility of `mptun up` on the two-link test bed (links shaped to 100 Mbit/s) against the
// Linux kernel's MPTCP, with one mptun started without --path, under 200 MB uploads checked by
// sha256 at both ends:
// (a) link 2's gateway changes (a second address of the server on link 2 becomes the client's
//     gateway): mptun moves its route, the subflows stay, link 2 keeps carrying data;
// (b) link 2's address changes as a DHCP client would change it (old address deleted, one in a
//     new subnet added with a new default route): the path's subflows are reset, their data
//     goes on link 1, and new subflows carry data on the new address within 2 s; (b2) the same
//     with the new address first and the old one gone after (the path's address changes while up);
// (c) a third link appears (a USB modem plugged in): it becomes a path and carries data for the
//     open connection and for new ones; it disappears again: the path goes down;
// (d) after all of it and SIGTERM, rules, routes, nftables and sysctls are what they were.
import test, { type ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';
import {
  inNetns, parseEnvLines, requireRootOrSkip, run, spawnInNetns, systemEnv, waitFor, waitForPort, type RunOptions, type Spawned,
} from '../helpers/netns.js';
import { startMptunUp } from '../helpers/mptun.js';
import { queryStatus } from '../../src/appliance/appliance.js';

const PREFIX = 'mptmv';
const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed.sh', import.meta.url));
const MPTUN = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));
const PEER = fileURLToPath(new URL('../tcp/kernel-peer.js', import.meta.url));
const ENV = systemEnv({ TESTBED_PREFIX: PREFIX });
const STATE_DIR = `/run/mptun-${PREFIX}`;
const SOCKET = `${STATE_DIR}/control.sock`;
const BYTES = 200_000_000;
// link 2 moved to another network (b), and the third link (c)
const NEW_NET = { cli: '10.202.2.1', srv: '10.202.2.2', plen: '24' };
const LINK3 = { cli: `${PREFIX}c3`, srv: `${PREFIX}s3`, cliAddr: '10.201.3.1', srvAddr: '10.201.3.2', plen: '24' };

function bed(args: string[], opts: RunOptions = {}) {
  return run('bash', [SCRIPT, ...args], { env: ENV, timeout: 60_000, ...opts });
}

let topo: Record<string, string> = {};
const cli = () => topo.TESTBED_NS_CLIENT!;
const srv = () => topo.TESTBED_NS_SERVER!;
const ipc = (...args: string[]) => inNetns(cli(), 'ip', args);
const ips = (...args: string[]) => inNetns(srv(), 'ip', args);

/** Everything mptun may touch in the client namespace, as text (as test/e2e/appliance.test.ts). */
async function routingSnapshot(): Promise<string> {
  const parts: string[] = [];
  for (const args of [['rule'], ['-6', 'rule'], ['route', 'show', 'table', 'all'], ['-6', 'route', 'show', 'table', 'all'], ['link', 'show']]) {
    parts.push((await inNetns(cli(), 'ip', args)).stdout.replace(/^\d+: mptun0.*\n(\s+link.*\n)?/gm, ''));
  }
  parts.push((await inNetns(cli(), '/usr/sbin/nft', ['list', 'ruleset'])).stdout);
  const sysctl = await inNetns(cli(), 'sysctl', ['-a'], { check: false });
  parts.push(sysctl.stdout.split('\n').filter((l) => /\.(forwarding|rp_filter) =/.test(l) && !l.includes('mptun0')).join('\n'));
  return parts.map((p) => p.split('\n').filter((l) => !l.includes('fe80::')).sort().join('\n')).join('\n----\n');
}

interface StatusSubflow { path: number; local: string; closed: boolean; bytesOut: number }
interface StatusPath { index: number; iface: string; up: boolean; gateway?: string; ifaceAddress?: string; table: number; bytesOut: number; subflows: number }
interface Status { paths: StatusPath[]; flows: Array<{ id: number; subflows: StatusSubflow[] }>; counters: { upstream: Record<string, number>; paths: Record<string, number> } }

/** The status, straight from the control socket (a unix socket: reachable from this namespace). */
const status = async () => (await queryStatus(SOCKET)) as Status;

let mptun: Spawned | null = null;
let before = '';

async function startMptun(): Promise<Spawned> {
  return startMptunUp(cli(), ['--state-dir', STATE_DIR, '--control-socket', SOCKET, '--log-level', 'debug']);
}

/** A 200 MB upload to the kernel's MPTCP server; settles with both ends' sha256. */
function upload(port: number) {
  const server = spawnInNetns(srv(), 'mptcpize', ['run', process.execPath, PEER, '--mode', 'serve', '--listen', `0.0.0.0:${port}`]);
  const state = { done: false };
  const result = (async () => {
    try {
      await waitForPort(srv(), port);
      const r = await inNetns(cli(), process.execPath, [PEER, '--mode', 'send', '--connect', `${topo.TESTBED_SRV_ADDR1}:${port}`, '--bytes', String(BYTES)], { timeout: 120_000 });
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { sha256: string; peerSha256: string; bytes: number };
    } finally {
      state.done = true;
      await server.stop();
    }
  })();
  return { state, result };
}

/** A USB modem plugged in: link 3 with an address and a default route (main table, a higher metric). */
async function plugLink3(): Promise<{ addedAt: number; routedAt: number }> {
  await run('ip', ['link', 'add', LINK3.cli, 'netns', cli(), 'type', 'veth', 'peer', 'name', LINK3.srv, 'netns', srv()]);
  await ips('addr', 'add', `${LINK3.srvAddr}/${LINK3.plen}`, 'dev', LINK3.srv);
  await ips('link', 'set', LINK3.srv, 'up');
  for (const [ns, dev] of [[cli(), LINK3.cli], [srv(), LINK3.srv]] as const) {
    await run('tc', ['-n', ns, 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', '100mbit', 'burst', '25000', 'latency', '20ms']);
  }
  const addedAt = Date.now();
  await inNetns(cli(), 'ip', ['-batch', '-'], { input: `addr add ${LINK3.cliAddr}/${LINK3.plen} dev ${LINK3.cli}\nlink set ${LINK3.cli} up\n` });
  await waitFor('the link to be up', async () => (await ipc('-o', 'link', 'show', 'dev', LINK3.cli)).stdout.includes('state UP'), { timeout: 5_000 });
  const routedAt = Date.now();
  await ipc('route', 'add', 'default', 'via', LINK3.srvAddr, 'dev', LINK3.cli, 'metric', '300');
  return { addedAt, routedAt };
}

/** The open subflows of path `i`. */
const subflowsOn = (st: Status, i: number) => st.flows.reduce((n, f) => n + f.subflows.filter((s) => s.path === i && !s.closed).length, 0);
/** A counter of the MPTCP stack: joins opened, paths renumbered after going down. */
const upstream = (st: Status, name: string) => st.counters.upstream[name] ?? 0;
/** A counter of what the appliance did with its paths: settles, gatewayMoves, addressChanges ... */
const pathCounter = (st: Status, name: string) => st.counters.paths[name] ?? 0;

test.before(async (t) => {
  if (!requireRootOrSkip(t)) return;
  await bed(['up', '--rate', '100', '--no-client-mptcp']);
  topo = parseEnvLines((await bed(['env'])).stdout);
  await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  before = await routingSnapshot();
  mptun = await startMptun();
});

test.after.always(async () => {
  if (mptun) await mptun.stop('SIGKILL', 10_000);
  mptun = null;
  if (topo.TESTBED_NS_CLIENT) await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  // the bed's namespaces take its links (the third one too) with them
  await bed(['down'], { check: false });
});

test.serial('(a) link 2\'s gateway changes under a 200 MB upload: the route follows, the subflows stay, sha256 equal', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const newGw = '10.201.2.3';
  const st0 = await status();
  t.is(st0.paths.length, 2);
  t.is(st0.paths[1]!.gateway, topo.TESTBED_SRV_ADDR2);
  const { state, result } = upload(5011);
  await waitFor('the upload to use both paths', async () => (await status()).paths.every((p) => p.subflows > 0), { timeout: 10_000 });
  await waitFor('path 1 to carry 5 MB', async () => (await status()).paths[1]!.bytesOut - st0.paths[1]!.bytesOut > 5e6, { timeout: 10_000 });
  const st1 = await status();
  t.is(pathCounter(st1, 'settles'), pathCounter(st0, 'settles'), 'no path was read again while nothing changed (traffic makes no netlink event)');
  // the server's second address on link 2 becomes the client's gateway (as a DHCP renewal would say)
  await ips('addr', 'add', `${newGw}/${topo.TESTBED_PLEN4}`, 'dev', topo.TESTBED_SRV_IF2!);
  await ipc('route', 'replace', 'default', 'via', newGw, 'dev', topo.TESTBED_CLI_IF2!, 'table', topo.TESTBED_CLI_TABLE2!);
  const changedAt = Date.now();
  await waitFor('mptun to take the new gateway', async () => (await status()).paths[1]!.gateway === newGw, { timeout: 5_000, interval: 20 });
  const seen = Date.now() - changedAt;
  const table = (await ipc('route', 'show', 'table', String(st1.paths[1]!.table))).stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  // (and, at its end, the blackhole that holds a down path's packets)
  t.deepEqual(table, [`default via ${newGw} dev ${topo.TESTBED_CLI_IF2} proto 250`, 'blackhole default proto 250 metric 4294967280'], 'the path\'s table routes by the new gateway, and only by it');
  const st2 = await status();
  await waitFor('path 1 to carry 5 MB more after the change', async () => state.done || (await status()).paths[1]!.bytesOut - st2.paths[1]!.bytesOut > 5e6, { timeout: 10_000 });
  t.false(state.done, 'link 2 carried data again before the upload ended');
  const st3 = await status();
  t.is(upstream(st3, 'joinsOpened'), upstream(st1, 'joinsOpened'), 'no new subflow: those of path 1 survived the new gateway (same source address, same NAT mapping)');
  t.is(upstream(st3, 'addressIdsRenumbered'), upstream(st1, 'addressIdsRenumbered'), 'no path was taken down');
  t.is(subflowsOn(st3, 1), subflowsOn(st1, 1));
  t.is(pathCounter(st3, 'gatewayMoves') - pathCounter(st1, 'gatewayMoves'), 1, 'one move for the route event');
  // the packets go by the new gateway: the client resolved its address
  t.regex((await ipc('neigh', 'show', newGw, 'dev', topo.TESTBED_CLI_IF2!)).stdout, /lladdr/);
  const sent = await result;
  t.is(sent.peerSha256, sent.sha256, 'the server received exactly what was sent');
  t.log(`new gateway seen by mptun in ${seen} ms; the ${subflowsOn(st3, 1)} subflow(s) of path 1 kept`);
  // back to the bed's gateway (mptun follows again)
  await ipc('route', 'replace', 'default', 'via', topo.TESTBED_SRV_ADDR2!, 'dev', topo.TESTBED_CLI_IF2!, 'table', topo.TESTBED_CLI_TABLE2!);
  await ips('addr', 'del', `${newGw}/${topo.TESTBED_PLEN4}`, 'dev', topo.TESTBED_SRV_IF2!);
  await waitFor('mptun to take the old gateway back', async () => (await status()).paths[1]!.gateway === topo.TESTBED_SRV_ADDR2, { timeout: 5_000 });
});

/**
 * Link 2's address moves to `net` under a 200 MB upload, as a DHCP client moves it: `break`,
 * the old lease's address goes first (the kernel flushes its routes with it: the path is down
 * until the new address and its default route come); `make`, the new address and default route
 * come first and the old address goes after (the path's address changes while it is up).
 */
async function addressChange(t: ExecutionContext, order: 'break' | 'make', port: number, net: { cli: string; srv: string; plen: string }): Promise<void> {
  const st0 = await status();
  t.true(st0.paths[1]!.up);
  const { state, result } = upload(port);
  const old = `${topo.TESTBED_CLI_ADDR2}/${topo.TESTBED_PLEN4}`;
  let moved = false;
  try {
    await waitFor('the upload to use both paths', async () => (await status()).paths.every((p) => p.subflows > 0), { timeout: 10_000 });
    await waitFor('path 1 to carry 5 MB', async () => (await status()).paths[1]!.bytesOut - st0.paths[1]!.bytesOut > 5e6, { timeout: 10_000 });
    const stOld = await status();
    await ips('addr', 'add', `${net.srv}/${net.plen}`, 'dev', topo.TESTBED_SRV_IF2!);
    moved = true;
    if (order === 'break') await ipc('addr', 'del', old, 'dev', topo.TESTBED_CLI_IF2!);
    const logFrom = mptun!.stderr().length;
    const newAt = Date.now();
    await inNetns(cli(), 'ip', ['-batch', '-'], {
      input: `addr add ${net.cli}/${net.plen} dev ${topo.TESTBED_CLI_IF2}\nroute replace default via ${net.srv} dev ${topo.TESTBED_CLI_IF2} table ${topo.TESTBED_CLI_TABLE2}\n`,
    });
    // data on path 1's new subflows: its old ones reset (then closed), the open ones carried 100 kB
    const onNew = (st: Status) => upstream(st, 'addressIdsRenumbered') > upstream(stOld, 'addressIdsRenumbered')
      && st.flows.reduce((n, f) => n + f.subflows.filter((x) => x.path === 1 && !x.closed).reduce((m, x) => m + x.bytesOut, 0), 0) > 100_000;
    await waitFor('path 1 to carry data from its new address', async () => state.done || onNew(await status()), { timeout: 10_000, interval: 10 });
    const after = Date.now() - newAt;
    t.false(state.done, 'the new subflow carried data before the upload ended');
    if (order === 'make') await ipc('addr', 'del', old, 'dev', topo.TESTBED_CLI_IF2!);
    const st1 = await status();
    t.true(st1.paths[1]!.up);
    t.is(st1.paths[1]!.ifaceAddress, net.cli);
    t.is(st1.paths[1]!.gateway, net.srv);
    t.true(upstream(st1, 'addressIdsRenumbered') > upstream(stOld, 'addressIdsRenumbered'), 'the old subflows of path 1 were reset (their NAT mapping is gone)');
    t.true(upstream(st1, 'joinsOpened') > upstream(stOld, 'joinsOpened'), 'a new subflow was opened on path 1');
    t.true(subflowsOn(st1, 1) > 0);
    t.true(after < 2000, `path 1 carried data again ${after} ms after the new address`);
    // the NAT mappings of path 1's source prefix: a SNAT rule (nft.ts Masquerade.to) now rewrites
    // to the new address; the mappings of the old one end with the resets of the old subflows
    // (conntrack's CLOSE state, 10 s); the new subflows have new ones
    const mappings = async () => (await inNetns(cli(), 'cat', ['/proc/net/nf_conntrack'])).stdout.split('\n').filter((l) => /\bsrc=198\.18\.2\./.test(l));
    const nft = (await inNetns(cli(), '/usr/sbin/nft', ['list', 'table', 'inet', 'mptun'])).stdout;
    t.regex(nft, new RegExp(`saddr 198\\.18\\.2\\.0/24 snat ip to ${net.cli.replace(/\./g, '\\.')}\\b`), nft);
    const live = (l: string) => /\bESTABLISHED\b|\bSYN_SENT\b|\bSYN_RECV\b/.test(l);
    await waitFor('no live NAT mapping to the old address', async () => !(await mappings()).some((l) => l.includes(`dst=${topo.TESTBED_CLI_ADDR2} `) && live(l)), { timeout: 5_000 });
    t.true((await mappings()).some((l) => l.includes(`dst=${net.cli} `)), 'a mapping to the new address');
    const sent = await result;
    t.is(sent.peerSha256, sent.sha256, 'the server received exactly what was sent');
    // the burst (address, connected route, default route; the old address) ended in one rebuild
    const lines = mptun!.stderr().slice(logFrom).split('\n').filter((l) => l.includes('path 1 ('));
    t.is(lines.filter((l) => / is up/.test(l)).length, 1, lines.join('\n'));
    const upLine = lines.find((l) => / is up/.test(l))!;
    t.log(lines.map((l) => l.replace(/^\S+ mptun /, '')).join('\n'));
    t.log(`path 1 up again ${Date.parse(upLine.split(' ')[0]!) - newAt} ms after the new address and route were added (mptun's log), carrying data (100 kB) after ${after} ms`);
  } finally {
    await result.catch(() => undefined);
    if (moved) {
      // back to the bed's address; `link-up 2` puts the bed's routes of link 2 back
      await ipc('addr', 'del', `${net.cli}/${net.plen}`, 'dev', topo.TESTBED_CLI_IF2!).catch(() => undefined);
      await ipc('addr', 'replace', old, 'dev', topo.TESTBED_CLI_IF2!);
      await bed(['link-up', '2']);
    }
    await ips('addr', 'del', `${net.srv}/${net.plen}`, 'dev', topo.TESTBED_SRV_IF2!).catch(() => undefined);
  }
  await waitFor('path 1 back on the bed\'s address', async () => {
    const p = (await status()).paths[1]!;
    return p.up && p.ifaceAddress === topo.TESTBED_CLI_ADDR2 && p.gateway === topo.TESTBED_SRV_ADDR2;
  }, { timeout: 5_000 });
}

test.serial('(b) link 2\'s address changes under a 200 MB upload (a new DHCP lease, the old address first gone): new subflows carry data within 2 s, sha256 equal', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await addressChange(t, 'break', 5012, NEW_NET);
});

test.serial('(b2) the same with the new address and route first, the old address gone after (the path moves while up)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await addressChange(t, 'make', 5016, { cli: '10.203.2.1', srv: '10.203.2.2', plen: '24' });
});

test.serial('(c) a third link appears under an open upload: it becomes a path, the open and new connections use it; gone, it is down', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const { state, result } = upload(5013);
  try {
    await waitFor('the upload to use both paths', async () => (await status()).paths.every((p) => p.subflows > 0), { timeout: 10_000 });
    const { addedAt, routedAt } = await plugLink3();
    await waitFor('a third path', async () => (await status()).paths[2]?.up === true, { timeout: 5_000, interval: 20 });
    const joined = Date.now();
    const st0 = await status();
    t.is(st0.paths[2]!.iface, LINK3.cli);
    t.is(st0.paths[2]!.gateway, LINK3.srvAddr);
    await waitFor('the open upload to carry 5 MB on path 2', async () => state.done || (await status()).paths[2]!.bytesOut > 5e6, { timeout: 10_000 });
    t.false(state.done, 'the open connection used the new path');
    const sent = await result;
    t.is(sent.peerSha256, sent.sha256, 'the server received exactly what was sent');
    t.log(`path 2 up ${joined - routedAt} ms after its default route came (${joined - addedAt} ms after its address)`);
  } finally {
    await result.catch(() => undefined);
  }
  // a new connection: iperf3 through mptun uses the three paths
  await bed(['server-start', '--port', '5014']);
  try {
    const st1 = await status();
    await inNetns(cli(), 'iperf3', ['-c', topo.TESTBED_SRV_ADDR1!, '-p', '5014', '-t', '3', '-J'], { timeout: 30_000 });
    const st2 = await status();
    const out = st2.paths.map((p, i) => p.bytesOut - (st1.paths[i]?.bytesOut ?? 0));
    t.log(`a new connection: per path ${out.map((b) => (b / 1e6).toFixed(1)).join(' / ')} MB`);
    for (const b of out) t.true(b > 5e6, `each path carries a share: ${out.join(', ')}`);
  } finally {
    await bed(['server-stop', '--port', '5014']);
  }
  // unplugged: the path goes down (and its routing goes with the device)
  await ipc('link', 'del', LINK3.cli);
  await waitFor('path 2 down', async () => (await status()).paths[2]!.up === false, { timeout: 5_000 });
  // plugged in again: a new device of the same name is the same path, its sysctls set again
  await plugLink3();
  await waitFor('path 2 up again', async () => (await status()).paths[2]!.up, { timeout: 5_000 });
  t.is((await status()).paths.length, 3, 'the same path, not a fourth');
  t.is((await inNetns(cli(), 'cat', [`/proc/sys/net/ipv4/conf/${LINK3.cli}/forwarding`])).stdout.trim(), '1', 'forwarding on the new device');
  await bed(['server-start', '--port', '5015']);
  try {
    const st1 = await status();
    await inNetns(cli(), 'iperf3', ['-c', topo.TESTBED_SRV_ADDR1!, '-p', '5015', '-t', '2', '-J'], { timeout: 30_000 });
    const out = (await status()).paths[2]!.bytesOut - st1.paths[2]!.bytesOut;
    t.true(out > 3e6, `path 2 carries data again: ${out} bytes`);
  } finally {
    await bed(['server-stop', '--port', '5015']);
  }
  await ipc('link', 'del', LINK3.cli);
  await waitFor('path 2 down', async () => (await status()).paths[2]!.up === false, { timeout: 5_000 });
});

test.serial('(d) after all these changes, SIGTERM leaves the routing as it was before mptun', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.not(await routingSnapshot(), before, 'mptun changed the routing while up');
  const state = JSON.parse((await inNetns(cli(), 'cat', [`${STATE_DIR}/state.json`])).stdout) as { record: { steps: Array<{ kind: string; route?: { table: number; gateway?: string } }> } };
  t.true(state.record.steps.some((s) => s.kind === 'route' && s.route?.table !== undefined && s.route.gateway === LINK3.srvAddr), 'the state file recorded the added path');
  await mptun!.stop('SIGTERM', 10_000);
  mptun = null;
  t.is(await routingSnapshot(), before);
});
