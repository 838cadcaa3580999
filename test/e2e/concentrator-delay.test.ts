// `mptun up --server` on the two-link test bed with path delay (scripts/testbed.sh --delay: the
// delay line), and a third namespace behind the concentrator (--dest: the bed's destination):
//
//   mptc2-cli ══ link 1: 20 ms each way ══ mptc2-srv ── link 3 (no delay) ── mptc2-dst
//   (mptun up ══ link 2: 20 ms each way ══ (mptun server,                    (plain TCP: an echo
//    --server)  10.201.{1,2}.0/24,          kernel MPTCP)   10.201.3.0/24     server, the sha256
//               fd00:201:{1,2}::/64                         fd00:201:3::/64   server of mptcv-dst)
//
// What a connection through the concentrator costs in round trips, measured by an unmodified
// app (bench/cc-echo.js: connect, one byte each way, close) against the RTT of the paths (ping,
// and the kernel's own TCP connect to the concentrator's host): the app's connect() completes
// when the concentrator's reply says the destination accepted: after one round trip with a
// pooled connection (mptun up's default), after two over MPTCP without one (the Convert message
// in the SYN, but the kernel's MPTCP listener sends nothing before the third ACK; see the second
// test), one over plain TCP; its first byte comes one round trip later. And IPv6: the client reaches the concentrator over the paths' IPv6
// (--server [fd00:201:1::2]:7443), IPv6 destinations are reached through an IPv4 or an IPv6
// concentrator, and an unreachable IPv6 destination fails the app's connect() at once (the
// concentrator's Error 97 becomes an ICMPv6 Destination Unreachable).
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  inNetns, parseEnvLines, requireRootOrSkip, run, spawnInNetns, systemEnv, waitFor, waitForPort, type RunOptions, type Spawned,
} from '../helpers/netns.js';
import { startMptunUp } from '../helpers/mptun.js';

const P = 'mptc2';
const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed.sh', import.meta.url));
const MPTUN = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));
const APP = fileURLToPath(new URL('./mptcc-app.js', import.meta.url));
const DST_SERVER = fileURLToPath(new URL('./mptcv-dst.js', import.meta.url));
const ECHO = fileURLToPath(new URL('../../bench/cc-echo.js', import.meta.url));
const ENV = systemEnv({ TESTBED_PREFIX: P });
const DELAY_MS = 20;
const CON_PORT = 7443;
/** The bed's destination (testbed.sh up --dest: TESTBED_DST_ADDR, TESTBED_DST_ADDR6), set by the before hook. */
let DST4 = '';
let DST6 = '';
const SHA_PORT = 9000;
const ECHO_PORT = 7007;
const SERVER_SOCKET = `/run/${P}/server.sock`;
const STATE_DIR = `/run/mptun-${P}`;
const CLIENT_SOCKET = `${STATE_DIR}/control.sock`;
/** Sequential connections per measurement (medians). */
const N = 15;

function bed(args: string[], opts: RunOptions = {}) {
  return run('bash', [SCRIPT, ...args], { env: ENV, timeout: 60_000, ...opts });
}

let topo: Record<string, string> = {};
const cli = () => topo.TESTBED_NS_CLIENT!;
const srv = () => topo.TESTBED_NS_SERVER!;
const dst = () => topo.TESTBED_NS_DEST!;
let dir = '';
let keyFile = '';
let server: Spawned | null = null;
let mptun: Spawned | null = null;
const dstProcs: Spawned[] = [];

async function teardown(): Promise<void> {
  await bed(['down'], { check: false });   // the destination's namespace too
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function pingRtt(addr: string): Promise<number> {
  const r = await inNetns(cli(), 'ping', ['-n', '-c', '20', '-i', '0.05', '-W', '2', addr], { check: false, timeout: 30_000 });
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (rtts.length < 15) throw new Error(`only ${rtts.length} of 20 pings to ${addr} came back`);
  return median(rtts);
}

interface AppResult { ok: boolean; code?: string; ms: number; connectMs?: number; sha256?: string; answer?: string }
async function app(args: string[], timeout = 60_000): Promise<AppResult> {
  const r = await inNetns(cli(), process.execPath, [APP, ...args], { timeout });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as AppResult;
}

interface EchoResult { n: number; connectMsMedian: number; ttfbMsMedian: number; perSecond: number }
async function echo(host: string): Promise<EchoResult> {
  const r = await inNetns(cli(), process.execPath, [ECHO, 'client', host, String(ECHO_PORT), String(N)], { timeout: 60_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as EchoResult;
}

interface ClientStatus { counters: Record<string, Record<string, number>> }
async function clientCounters(group: string): Promise<Record<string, number>> {
  const r = await inNetns(cli(), process.execPath, [MPTUN, 'status', '--json', '--control-socket', CLIENT_SOCKET]);
  return (JSON.parse(r.stdout) as ClientStatus).counters[group] ?? {};
}

async function startMptun(serverArg: string, more: string[] = []): Promise<Spawned> {
  const m = await startMptunUp(cli(), ['--server', serverArg, '--key', keyFile, '--state-dir', STATE_DIR, '--control-socket', CLIENT_SOCKET, '--log-level', 'debug', ...more]);
  // the pool (--server-pool, default 2) established before the apps come
  const pool = more.includes('--server-pool') ? Number(more[more.indexOf('--server-pool') + 1]) : 2;
  await waitFor(`${pool} pooled connections to the concentrator`, async () => ((await clientCounters('concentrator')).poolReady ?? 0) >= pool, { timeout: 10_000 });
  return m;
}

async function stopMptun(): Promise<void> {
  await mptun?.stop('SIGTERM', 10_000);
  mptun = null;
}

/** The kernel's own TCP connect() from the client namespace to `host`:`port` (one round trip), median of N. */
async function kernelConnectMs(host: string, port: number): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < N; i++) {
    const r = await app(['connect', host, String(port)]);
    if (!r.ok) throw new Error(`kernel connect to ${host}:${port}: ${r.code}`);
    ms.push(r.ms);
  }
  return median(ms);
}

let rtt4 = 0;
let rtt6 = 0;
let kernel4 = 0;

test.before(async (t) => {
  if (!requireRootOrSkip(t)) return;
  await teardown();
  dir = await mkdtemp(join(tmpdir(), `${P}-`));
  // the destination's namespace (--dest), one undelayed link from the server's (the concentrator's)
  await bed(['up', '--delay', String(DELAY_MS), '--no-client-mptcp', '--dest']);
  topo = parseEnvLines((await bed(['env'])).stdout);
  DST4 = topo.TESTBED_DST_ADDR!;
  DST6 = topo.TESTBED_DST_ADDR6!;
  dstProcs.push(spawnInNetns(dst(), process.execPath, [DST_SERVER, String(SHA_PORT)]));
  dstProcs.push(spawnInNetns(dst(), process.execPath, [ECHO, 'server', String(ECHO_PORT)]));
  await waitForPort(dst(), SHA_PORT);
  await waitForPort(dst(), ECHO_PORT);
  keyFile = join(dir, 'key');
  await run(process.execPath, [MPTUN, 'server', '--genkey', keyFile]);
  server = spawnInNetns(srv(), process.execPath, [
    MPTUN, 'server', '--listen', String(CON_PORT), '--key', keyFile, '--allow', '10.201.0.0/16', '--allow', 'fd00:201::/32',
    '--control-socket', SERVER_SOCKET, '--log-level', 'debug',
  ]);
  await waitFor('mptun server to listen', () => server!.stderr().includes('listening on') || server!.child.exitCode !== null, { timeout: 15_000 });
  if (server.child.exitCode !== null) throw new Error(`mptun server exited: ${server.stderr()}`);
  // the paths' round trip, before mptun (which answers pings itself): ping, and the kernel's own
  // TCP handshake with the concentrator's host (the concentrator's port: a connection it drops
  // when no Convert message comes)
  rtt4 = await pingRtt(topo.TESTBED_SRV_ADDR1!);
  rtt6 = await pingRtt(topo.TESTBED_SRV_ADDR6_1!);
  kernel4 = await kernelConnectMs(topo.TESTBED_SRV_ADDR1!, CON_PORT);
  t.log(`RTT of link 1 (ping, median): IPv4 ${rtt4} ms, IPv6 ${rtt6} ms; the kernel's TCP connect to the concentrator's host: ${kernel4.toFixed(1)} ms`);
  mptun = await startMptun(`${topo.TESTBED_SRV_ADDR1}:${CON_PORT}`);
});

test.after.always(async () => {
  await stopMptun();
  if (topo.TESTBED_NS_CLIENT) await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false }).catch(() => undefined);
  await server?.stop('SIGTERM', 10_000);
  for (const p of dstProcs) await p.stop();
  await teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
  // the server's control socket's directory, and the client's state directory
  for (const d of [dirname(SERVER_SOCKET), STATE_DIR]) await rm(d, { recursive: true, force: true });
});

test.serial(`mptc2: with ${DELAY_MS} ms each way, connect() through the concentrator takes one round trip (a pooled connection: the Convert message at once) plus the concentrator's connect, and the first byte one more`, async (t) => {
  if (!requireRootOrSkip(t)) return;
  const before = await clientCounters('concentrator');
  const via = await echo(DST4);
  const after = await clientCounters('concentrator');
  const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  t.log(`through the concentrator (MPTCP, a pooled connection): connect ${via.connectMsMedian} ms = ${(via.connectMsMedian / rtt4).toFixed(2)} RTT, `
    + `first byte ${via.ttfbMsMedian} ms = ${(via.ttfbMsMedian / rtt4).toFixed(2)} RTT (medians of ${N}; RTT ${rtt4} ms, the kernel's own connect ${kernel4.toFixed(1)} ms)`);
  t.log(`client counters over the ${N} connections: ${JSON.stringify(Object.fromEntries(Object.keys(after).map((k) => [k, d(k)]).filter(([, v]) => v !== 0)))}`);
  // each app connection takes a pooled one, and its replacement is ready before the next
  // (sequential connections two round trips apart); the first may find the pool being refilled
  t.true(d('poolUsed') >= N - 1, `${d('poolUsed')} of ${N} took a pooled connection`);
  t.is(d('convertAccepted'), N);
  // the Convert message leaves with the app's SYN's arrival, the concentrator connects (no
  // delay on its leg), its reply comes back: one round trip. 1.5 RTT + 10 ms: mptun's own
  // per-packet latency on a loaded machine; the two round trips without a pool stay out
  t.true(via.connectMsMedian < 1.5 * rtt4 + 10, `connect ${via.connectMsMedian} ms: more than 1.5 round trips of ${rtt4} ms (+ 10 ms)`);
  t.true(via.ttfbMsMedian - via.connectMsMedian < 1.5 * rtt4, `the first byte one round trip after connect: ${via.ttfbMsMedian} - ${via.connectMsMedian} ms`);
});

test.serial(`mptc2: without a pool (--server-pool 0), the Convert message rides in the MP_CAPABLE SYN: two round trips with the kernel's MPTCP listener`, async (t) => {
  if (!requireRootOrSkip(t)) return;
  await stopMptun();
  mptun = await startMptun(`${topo.TESTBED_SRV_ADDR1}:${CON_PORT}`, ['--server-pool', '0']);
  const before = await clientCounters('concentrator');
  const via = await echo(DST4);
  const after = await clientCounters('concentrator');
  const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  await stopMptun();
  mptun = await startMptun(`${topo.TESTBED_SRV_ADDR1}:${CON_PORT}`);
  t.log(`through the concentrator (MPTCP, Convert in the SYN): connect ${via.connectMsMedian} ms = ${(via.connectMsMedian / rtt4).toFixed(2)} RTT, `
    + `first byte ${via.ttfbMsMedian} ms = ${(via.ttfbMsMedian / rtt4).toFixed(2)} RTT (medians of ${N}; RTT ${rtt4} ms)`);
  t.log(`client counters over the ${N} connections: ${JSON.stringify(Object.fromEntries(Object.keys(after).map((k) => [k, d(k)]).filter(([, v]) => v !== 0)))}`);
  t.is(d('convertInSyn'), N, 'every Convert message rode in the SYN');
  t.is(d('convertSynDataAcked'), N, 'and the concentrator took it with the SYN');
  t.is(d('convertAccepted'), N);
  // The floor with the kernel's MPTCP listener is two round trips, not one: the Convert message
  // rides in the SYN and the concentrator connects to the destination within the first round
  // trip, but Linux sends nothing on a subflow before it is established (net/mptcp/protocol.h
  // `__mptcp_subflow_active` → `__tcp_can_send`: ESTABLISHED or CLOSE_WAIT only; a TCP Fast Open
  // child is in SYN_RECV until the third ACK), so the reply leaves when the third ACK arrives
  // (1.5 RTT) and reaches the client at 2 RTT. (Without SYN data it would be 2 RTT plus the
  // concentrator's connect, serial.) It was 3 RTT until the third ACK carried a DATA_ACK: Linux
  // pushes the pending reply on a DATA_ACK, not on the MP_CAPABLE ACK alone.
  // (2.5 RTT and 10 ms: mptun's own per-packet latency on a loaded machine; the 3 RTT of before stay out)
  t.true(via.connectMsMedian < 2.5 * rtt4 + 10, `connect ${via.connectMsMedian} ms: more than 2.5 round trips of ${rtt4} ms (+ 10 ms)`);
  t.is(d('poolUsed'), 0);
  t.true(via.ttfbMsMedian - via.connectMsMedian < 1.5 * rtt4, `the first byte one round trip after connect: ${via.ttfbMsMedian} - ${via.connectMsMedian} ms`);
});

test.serial('mptc2: on a path that strips MPTCP options (plain TCP to the concentrator, TCP Fast Open), the same through the concentrator', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const strip = `table inet ${P}strip {\n chain post {\n  type filter hook postrouting priority 0;\n  tcp dport ${CON_PORT} reset tcp option mptcp\n }\n}\n`;
  await run('ip', ['netns', 'exec', cli(), 'nft', '-f', '-'], { input: strip });
  try {
    // the pool made anew on the stripping path: its connections fall back to plain TCP
    await stopMptun();
    mptun = await startMptun(`${topo.TESTBED_SRV_ADDR1}:${CON_PORT}`);
    const fb = (await clientCounters('relay')).flowsFallback ?? 0;
    const via = await echo(DST4);
    t.log(`through the concentrator over plain TCP (fallback): connect ${via.connectMsMedian} ms = ${(via.connectMsMedian / rtt4).toFixed(2)} RTT, `
      + `first byte ${via.ttfbMsMedian} ms = ${(via.ttfbMsMedian / rtt4).toFixed(2)} RTT (RTT ${rtt4} ms, the kernel's own connect ${kernel4.toFixed(1)} ms)`);
    t.is(((await clientCounters('relay')).flowsFallback ?? 0) - fb, N, 'every upstream fell back to plain TCP');
    // pooled plain-TCP connections: one round trip plus the concentrator's own connect, not two
    // (without the pool it is one too: the kernel's TCP Fast Open child may send in SYN_RECV)
    t.true(via.connectMsMedian < 1.5 * rtt4, `connect ${via.connectMsMedian} ms: more than 1.5 round trips of ${rtt4} ms`);
    t.true(via.ttfbMsMedian - via.connectMsMedian < 1.5 * rtt4, `the first byte one round trip after connect: ${via.ttfbMsMedian} - ${via.connectMsMedian} ms`);
  } finally {
    await inNetns(cli(), 'nft', ['delete', 'table', 'inet', `${P}strip`]);
    // an MPTCP pool again for the tests after
    await stopMptun();
    mptun = await startMptun(`${topo.TESTBED_SRV_ADDR1}:${CON_PORT}`);
  }
});

test.serial('mptc2: an IPv6 destination through the IPv4 concentrator (the Connect TLV carries the IPv6 address)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const r = await app(['send', DST6, String(SHA_PORT), '300000']);
  t.true(r.ok, JSON.stringify(r));
  t.is(r.answer, `${r.sha256} 300000`);
  // the client as the concentrator saw it: a link's IPv4 address (mptun's source, masqueraded)
  t.regex(server!.stderr(), new RegExp(`(${esc(topo.TESTBED_CLI_ADDR1!)}|${esc(topo.TESTBED_CLI_ADDR2!)}) -> \\[${DST6}\\]:${SHA_PORT}: connected`));
});

test.serial('mptc2: --server [IPv6]:PORT: the client reaches the concentrator over the paths\' IPv6, for IPv4 and IPv6 destinations', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await stopMptun();
  mptun = await startMptun(`[${topo.TESTBED_SRV_ADDR6_1}]:${CON_PORT}`);
  const cliAddr6 = `(${esc(topo.TESTBED_CLI_ADDR6_1!)}|${esc(topo.TESTBED_CLI_ADDR6_2!)})`;
  for (const dst of [DST4, DST6]) {
    const r = await app(['send', dst, String(SHA_PORT), '300000']);
    t.true(r.ok, `${dst}: ${JSON.stringify(r)}`);
    t.is(r.answer, `${r.sha256} 300000`, `${dst}: the bytes arrived whole`);
    const shown = dst === DST6 ? `\\[${dst}\\]` : esc(dst);
    t.regex(server!.stderr(), new RegExp(`${cliAddr6} -> ${shown}:${SHA_PORT}: connected`), `${dst}: the concentrator saw the client's IPv6 address`);
  }
  const via = await echo(DST6);
  t.log(`IPv6 all the way (client -> [${topo.TESTBED_SRV_ADDR6_1}]:${CON_PORT} -> [${DST6}]:${ECHO_PORT}): connect ${via.connectMsMedian} ms, `
    + `first byte ${via.ttfbMsMedian} ms (IPv6 RTT ${rtt6} ms)`);
  t.true(via.ttfbMsMedian - via.connectMsMedian < 1.5 * rtt6, `the first byte one round trip after connect: ${via.ttfbMsMedian} - ${via.connectMsMedian} ms`);
});

test.serial('mptc2: an unreachable IPv6 destination → the app\'s connect() fails at once with ENETUNREACH (Error 97 → ICMPv6 Destination Unreachable, code 0)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // fd00:201:9::1: the concentrator has no route to it (its connect fails with ENETUNREACH)
  const before = (await clientCounters('concentrator')).convertUnreachable ?? 0;
  const r = await app(['connect', 'fd00:201:9::1', '80'], 30_000);
  t.false(r.ok);
  t.is(r.code, 'ENETUNREACH');
  t.log(`unreachable IPv6 destination: the app's connect failed after ${r.ms.toFixed(1)} ms (RTT ${rtt6} ms)`);
  t.true(r.ms < 3 * rtt6 + 500, `${r.ms} ms`);
  t.is(((await clientCounters('concentrator')).convertUnreachable ?? 0) - before, 1);
  t.regex(server!.stderr(), /-> \[fd00:201:9::1\]:80: Error 97 Destination Unreachable \(ICMP code 0\) \(ENETUNREACH\)/);
});
