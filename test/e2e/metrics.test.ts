// `mptun up --metrics` end to end on the two-link test bed (scripts/testbed.sh, prefix mptmx,
// links shaped to 100 Mbit/s) against the Linux kernel's MPTCP server: `curl` scrapes the
// Prometheus text during an iperf3 transfer through mptun; every line is well-formed, every
// metric has HELP and TYPE; both paths' byte counters grow; the MPTCP counters (the kernel's
// MIB names) count the handshakes and joins; after the connections close a second scrape
// keeps every counter (none lower). `mptun status` shows the same process-wide counters.
import test from 'ava';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  inNetns, parseEnvLines, requireRootOrSkip, run, spawnInNetns, systemEnv, waitFor, type RunOptions, type Spawned,
} from '../helpers/netns.js';
import { mptcpMib } from '../mptcp/bed.js';
import { parseExposition, sampleValue, type ParsedExposition } from '../helpers/exposition-check.js';

const PREFIX = 'mptmx';
const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed.sh', import.meta.url));
const MPTUN = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));
const ENV = systemEnv({ TESTBED_PREFIX: PREFIX });
const STATE_DIR = `/run/mptun-${PREFIX}`;
const SOCKET = `${STATE_DIR}/control.sock`;
const METRICS = '127.0.0.1:9464';
const URL_METRICS = `http://${METRICS}/metrics`;

function bed(args: string[], opts: RunOptions = {}) {
  return run('bash', [SCRIPT, ...args], { env: ENV, timeout: 60_000, ...opts });
}

let topo: Record<string, string> = {};
const cli = () => topo.TESTBED_NS_CLIENT!;
const srv = () => topo.TESTBED_NS_SERVER!;
let mptun: Spawned | null = null;
let iperf: Spawned | null = null;

async function scrape(): Promise<{ text: string; p: ParsedExposition }> {
  const r = await inNetns(cli(), 'curl', ['-sS', '--fail', '--max-time', '5', URL_METRICS]);
  return { text: r.stdout, p: parseExposition(r.stdout) };
}

const path = (p: ParsedExposition, name: string, i: number) => sampleValue(p, name, { path: String(i) }) ?? NaN;

test.before(async (t) => {
  if (!requireRootOrSkip(t)) return;
  await bed(['up', '--rate', '100', '--no-client-mptcp']);
  topo = parseEnvLines((await bed(['env'])).stdout);
  await bed(['server-start']);
  await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
});

test.after.always(async () => {
  if (iperf) await iperf.stop('SIGKILL');
  if (mptun) await mptun.stop('SIGKILL', 10_000);
  if (topo.TESTBED_NS_CLIENT) await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  await bed(['down'], { check: false });
  await rm(STATE_DIR, { recursive: true, force: true });
});

test.serial('a bad --metrics is refused naming it; an address in use is refused before anything is touched', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const rules = async () => (await inNetns(cli(), 'ip', ['rule'])).stdout;
  const before = await rules();
  const bad = await inNetns(cli(), process.execPath, [MPTUN, 'up', '--state-dir', STATE_DIR, '--metrics', 'localhost:9464'], { check: false });
  t.is(bad.code, 1);
  t.regex(bad.stderr, /command line: --metrics: "localhost:9464": "localhost" is not an IP address/);
  const holder = spawnInNetns(cli(), process.execPath, ['-e', "require('node:net').createServer().listen(9464, '127.0.0.1', () => console.log('listening'))"]);
  try {
    await waitFor('the port to be taken', () => holder.stdout().includes('listening'), { timeout: 5_000 });
    const r = await inNetns(cli(), process.execPath, [MPTUN, 'up', '--state-dir', STATE_DIR, '--control-socket', SOCKET, '--metrics', '9464'], { check: false, timeout: 20_000 });
    t.is(r.code, 1);
    t.regex(r.stderr, /metrics 127\.0\.0\.1:9464: cannot listen: EADDRINUSE/);
    t.notRegex(r.stderr, /routing:/, 'no routing was set up');
    t.is(await rules(), before);
    t.is((await inNetns(cli(), 'ip', ['link', 'show', 'mptun0'], { check: false })).code, 1, 'no device was made');
  } finally {
    await holder.stop();
  }
});

test.serial('curl scrapes /metrics during a transfer through mptun; the counters keep their values after the connections close', async (t) => {
  if (!requireRootOrSkip(t)) return;
  mptun = spawnInNetns(cli(), process.execPath, [
    MPTUN, 'up', '--state-dir', STATE_DIR, '--control-socket', SOCKET, '--log-level', 'debug', '--metrics', METRICS,
  ]);
  await waitFor('mptun up', () => mptun!.stderr().includes('mptun info: up:') || mptun!.child.exitCode !== null, { timeout: 15_000 });
  t.is(mptun.child.exitCode, null, mptun.stderr());
  t.regex(mptun.stderr(), /metrics: http:\/\/127\.0\.0\.1:9464\/metrics/);
  // loopback only, as asked
  t.regex((await inNetns(cli(), 'ss', ['-Hltn', 'sport = :9464'])).stdout, /127\.0\.0\.1:9464/);
  t.is((await inNetns(cli(), 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${METRICS}/`])).stdout, '404');

  const s0 = await scrape();
  t.deepEqual(s0.p.errors, [], 'the first scrape is well-formed');
  t.is(sampleValue(s0.p, 'mptun_path_up', { path: '0' }), 1);
  t.is(sampleValue(s0.p, 'mptun_path_up', { path: '1' }), 1);
  const kernel0 = await mptcpMib(srv());

  // a download (-R): an upload's end races iperf3's own close (the server closes its data socket
  // on TEST_END while the app's last bytes are still on their way; the kernel then holds the
  // connection with a zero window until its 60 s close timeout), which has nothing to do with
  // the counters under test
  iperf = spawnInNetns(cli(), 'iperf3', ['-c', topo.TESTBED_SRV_ADDR1!, '-t', '4', '-R', '-J']);
  // during the transfer: both paths carry bytes, their subflows are open and have an RTT
  let s1 = s0;
  await waitFor('both paths to carry 2 MB of the transfer', async () => {
    s1 = await scrape();
    return [0, 1].every((i) => path(s1.p, 'mptun_path_bytes_in_total', i) - path(s0.p, 'mptun_path_bytes_in_total', i) > 2e6);
  }, { timeout: 10_000, interval: 200 });
  t.is(iperf.child.exitCode, null, 'scraped while the transfer ran');
  t.deepEqual(s1.p.errors, [], 'the scrape during the transfer is well-formed');
  t.true(sampleValue(s1.p, 'mptun_connections')! >= 1, 'connections open');
  for (const i of [0, 1]) {
    t.true(path(s1.p, 'mptun_path_subflows', i) >= 1, `path ${i} has an open subflow`);
    const srtt = path(s1.p, 'mptun_path_srtt_seconds', i);
    t.true(srtt > 0 && srtt < 1, `path ${i} SRTT ${srtt} s`);
  }
  t.true(sampleValue(s1.p, 'mptun_mptcp_MPCapableSYNTX_total')! > 0, 'MP_CAPABLE SYNs counted');
  t.true(sampleValue(s1.p, 'mptun_mptcp_MPCapableSYNACKRX_total')! > 0);
  t.true(sampleValue(s1.p, 'mptun_mptcp_MPJoinSynTx_total')! > 0, 'MP_JOIN SYNs counted');
  t.true(sampleValue(s1.p, 'mptun_mptcp_MPJoinSynAckRx_total')! > 0);

  const done = await iperf.exited;
  t.is(done.code, 0, iperf.stderr());
  const mbit = (JSON.parse(iperf.stdout()) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e6;
  iperf = null;
  // the connections close (iperf3's control and data connections, their subflows)
  let open = '';
  const closeStart = Date.now();
  await waitFor('every connection to close', async () => {
    const s = await scrape();
    const left = {
      connections: sampleValue(s.p, 'mptun_connections'), mptcp: sampleValue(s.p, 'mptun_mptcp_connections'),
      subflows0: path(s.p, 'mptun_path_subflows', 0), subflows1: path(s.p, 'mptun_path_subflows', 1),
    };
    const closed = Object.values(left).every((v) => v === 0);
    if (!closed) open = JSON.stringify(left);
    return closed;
  }, { timeout: 15_000, interval: 200 }).catch(async (e: Error) => {
    const status = await inNetns(cli(), process.execPath, [MPTUN, 'status', '--json', '--control-socket', SOCKET], { check: false });
    throw new Error(`${e.message}: still open ${open}; mptun status: ${status.stdout.slice(0, 6000)}`);
  });
  t.log(`every connection closed ${Date.now() - closeStart} ms after iperf3 ended${open ? `; open before: ${open}` : ''}`);
  const s2 = await scrape();
  t.deepEqual(s2.p.errors, [], 'the scrape after the close is well-formed');
  // no counter went down: the closed connections' counters stayed in the totals
  let counters = 0;
  for (const [series, before] of s1.p.samples) {
    if (s1.p.types.get(series.split('{')[0]!) !== 'counter') continue;
    counters++;
    const after = s2.p.samples.get(series);
    t.true(after !== undefined && after >= before, `${series}: ${before} during, ${after} after the close`);
  }
  t.true(counters > 300, `${counters} counter series compared`);
  t.true(sampleValue(s2.p, 'mptun_connections_total')! >= 2);
  for (const name of ['MPCapableSYNTX', 'MPCapableSYNACKRX', 'MPCapableACKTX', 'MPJoinSynTx', 'MPJoinSynAckRx', 'MPJoinAckTx', 'DataFinTx', 'SubflowsClosed']) {
    t.true(sampleValue(s2.p, `mptun_mptcp_${name}_total`)! > 0, `${name} after the close`);
  }
  for (const i of [0, 1]) {
    t.true(path(s2.p, 'mptun_path_subflows_opened_total', i) >= 2, `path ${i}: a subflow for each connection`);
    t.true(path(s2.p, 'mptun_path_tcp_bytes_in_total', i) > 2e6, `path ${i}: the subflows' TCP bytes stay after they closed`);
  }
  // the kernel's view of the same handshakes, for the log
  const kernel2 = await mptcpMib(srv());
  const d = (k: string) => (kernel2[k] ?? 0) - (kernel0[k] ?? 0);
  t.true(d('MPJoinAckRx') > 0, 'the kernel server took joins');
  t.log(`iperf3 ${mbit.toFixed(1)} Mbit/s; mptun MPCapableSYNTX ${sampleValue(s2.p, 'mptun_mptcp_MPCapableSYNTX_total')} MPJoinAckTx ${sampleValue(s2.p, 'mptun_mptcp_MPJoinAckTx_total')}; ` +
    `kernel MPCapableSYNRX +${d('MPCapableSYNRX')} MPJoinAckRx +${d('MPJoinAckRx')}; path bytes in ${[0, 1].map((i) => (path(s2.p, 'mptun_path_bytes_in_total', i) / 1e6).toFixed(1)).join(' / ')} MB`);

  // `mptun status`: the same process-wide counters, grouped and titled
  const st = JSON.parse((await inNetns(cli(), process.execPath, [MPTUN, 'status', '--json', '--control-socket', SOCKET])).stdout) as {
    counters: Record<string, Record<string, number>>; paths: Array<{ subflowsOpened: number }>;
  };
  t.is(st.counters.mptcp!.MPCapableSYNTX, sampleValue(s2.p, 'mptun_mptcp_MPCapableSYNTX_total') ?? NaN);
  t.is(st.counters.mptcp!.DSSNotMatching, 0, '--json has the zeros too');
  t.is(st.paths[1]!.subflowsOpened, path(s2.p, 'mptun_path_subflows_opened_total', 1));
  const human = (await inNetns(cli(), process.execPath, [MPTUN, 'status', '--control-socket', SOCKET])).stdout;
  t.regex(human, /counters since start, closed connections included/);
  t.regex(human, /MPTCP connections \(the kernel's MPTcpExt names where one matches\):\n\s+MPCapableSYNTX [1-9]/);
  t.regex(human, /TCP connections, subflows:\n.*segmentsOut [1-9]/);
  t.regex(human, /subflows opened [1-9]\d*\s+rtt/);
  t.log(human.split('\n').filter((l) => /MPCapableSYNTX|subflows opened/.test(l)).join('\n'));

  await mptun.stop('SIGTERM', 10_000);
  mptun = null;
  const after = await inNetns(cli(), 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', URL_METRICS], { check: false });
  t.is(after.stdout, '000', 'nothing listens once mptun stopped');
});
