// The test bed's delay line (scripts/testbed.sh --delay ..., bench/delayline.ts) adds what it
// is asked for, measured from outside with the kernel's own tools: the RTT of ping (asked
// 2 × one-way delay more than the bed's base RTT, within 10 %), the rate iperf3 passes at
// 100 Mbit/s with a 20 ms RTT (at least 95 % of what the same bed passes without delay),
// each link its own delay, loss in the asked fraction, the kernel's MPTCP over two delayed
// links, and a `down` that leaves nothing, even after the delay line was killed.
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inNetns, isRoot, parseEnvLines, requireRootOrSkip, run, systemEnv, type RunOptions } from '../helpers/netns.js';

const PREFIX = 'mptdl';
const RATE = 100; // Mbit/s
const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed.sh', import.meta.url));
const ENV = systemEnv({ TESTBED_PREFIX: PREFIX });
const RUN_DIR = `/run/mptun-testbed/${PREFIX}`;
const PLAIN_PORT = 5201;
const MPTCP_PORT = 5202;

function bed(args: string[], opts: RunOptions = {}) {
  return run('bash', [SCRIPT, ...args], { env: ENV, timeout: 30_000, ...opts });
}

let topo: Record<string, string> = {};
const cli = () => topo.TESTBED_NS_CLIENT;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** How many of `count` pings to addr came back. */
async function ping(addr: string, count: number, interval: string): Promise<{ sent: number; received: number }> {
  const r = await inNetns(cli(), 'ping', ['-n', '-q', '-c', String(count), '-i', interval, '-W', '2', addr], { check: false, timeout: 60_000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0 };
}
/** Round-trip times (ms) of `count` pings to addr. */
async function pingRtts(addr: string, count: number, interval: string): Promise<number[]> {
  const r = await inNetns(cli(), 'ping', ['-n', '-c', String(count), '-i', interval, '-W', '2', addr], { check: false, timeout: 60_000 });
  return [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}
async function medianRtt(addr: string): Promise<number> {
  const rtts = await pingRtts(addr, 30, '0.05');
  if (rtts.length < 20) throw new Error(`only ${rtts.length} of 30 pings to ${addr} came back`);
  return median(rtts);
}

interface IperfReport { end: { sum_received: { bits_per_second: number } } }
async function iperf(addr: string, port: number, seconds: number, mptcp = false): Promise<number> {
  const cmd = mptcp ? ['mptcpize', 'run', 'iperf3'] : ['iperf3'];
  const { stdout } = await inNetns(cli(), cmd[0], [...cmd.slice(1), '-c', addr, '-p', String(port), '-t', String(seconds), '-J'], { timeout: 60_000 });
  return (JSON.parse(stdout) as IperfReport).end.sum_received.bits_per_second / 1e6;
}

async function txBytes(dev: string): Promise<number> {
  const { stdout } = await run('ip', ['-j', '-s', '-n', cli(), 'link', 'show', 'dev', dev]);
  return (JSON.parse(stdout) as [{ stats64: { tx: { bytes: number } } }])[0].stats64.tx.bytes;
}

function delaylinePid(): number | undefined {
  try {
    return Number(readFileSync(`${RUN_DIR}/delayline.pid`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The process runs (a zombie, killed but not yet reaped, does not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function leftovers(): Promise<string[]> {
  const out: string[] = [];
  const ns = (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]);
  out.push(...ns.filter((n) => n.startsWith(`${PREFIX}-`)).map((n) => `namespace ${n}`));
  const links = (await run('ip', ['-o', 'link', 'show'])).stdout;
  out.push(...[...links.matchAll(new RegExp(`\\d+: (${PREFIX}[cdsi][0-9a-z]*)`, 'g'))].map((m) => `device ${m[1]}`));
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.includes('delayline.js') && cmdline.includes(`${RUN_DIR}/`)) out.push(`process ${pid} ${cmdline}`);
  }
  if (existsSync(RUN_DIR)) out.push(`run dir ${RUN_DIR}`);
  return out;
}

let baseRtt = 0; // the bed's own RTT (ms), on the link without delay

test.before(async () => {
  if (!isRoot()) return;
  await bed(['up', '--rate', String(RATE), '--delay1', '10']);
  topo = parseEnvLines((await bed(['env'])).stdout);
  await bed(['server-start', '--plain', '--port', String(PLAIN_PORT)]);
  await bed(['server-start', '--port', String(MPTCP_PORT)]);
});

test.after.always(async () => {
  if (!isRoot()) return;
  await bed(['down']);
});

test.serial('--delay1 10 adds 20 ms to the RTT of link 1 (within 10 %), and nothing to link 2', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.like(topo, { TESTBED_DELAY1: '10', TESTBED_DELAY2: '0', TESTBED_RATE1: String(RATE) });
  baseRtt = await medianRtt(topo.TESTBED_SRV_ADDR2);
  const rtt1 = await medianRtt(topo.TESTBED_SRV_ADDR1);
  const want = 20 + baseRtt;
  t.log(`base RTT ${baseRtt} ms; link 1: asked ${want.toFixed(2)} ms, measured median ${rtt1} ms`);
  t.true(baseRtt < 2, `the bed's own RTT is ${baseRtt} ms`);
  t.true(Math.abs(rtt1 - want) <= 0.1 * want, `median RTT ${rtt1} ms, asked ${want} ms ± 10 %`);
  // IPv6 takes the same path
  const rtt6 = await medianRtt(topo.TESTBED_SRV_ADDR6_1);
  t.true(Math.abs(rtt6 - want) <= 0.1 * want, `IPv6: median RTT ${rtt6} ms, asked ${want} ms ± 10 %`);
});

test.serial('at 100 Mbit/s with 20 ms RTT, TCP passes at least 95 % of what the link passes without delay', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // the best of up to four runs each (stopping at the first that passes): the machine is shared,
  // noise only ever lowers a rate, and the delay line is a user process that a busy host slows
  // (a CI run measured 82.8 and 85.4 against 93.8 and 90.5 without delay, 0.91; 0.96-0.98 in
  // every other run): a delay line that cannot pass the rate fails all four
  const plain: number[] = [];
  const delayed: number[] = [];
  for (let i = 0; i < 4; i++) {
    plain.push(await iperf(topo.TESTBED_SRV_ADDR2, PLAIN_PORT, 5));
    delayed.push(await iperf(topo.TESTBED_SRV_ADDR1, PLAIN_PORT, 5));
    if (Math.max(...delayed) >= 0.95 * Math.max(...plain)) break;
  }
  const [p, d] = [Math.max(...plain), Math.max(...delayed)];
  t.log(`without delay (tbf): ${plain.map((x) => x.toFixed(1)).join(', ')} Mbit/s; 10 ms each way (delay line): ${delayed.map((x) => x.toFixed(1)).join(', ')} Mbit/s; ratio ${(d / p).toFixed(3)}`);
  t.true(d >= 0.95 * p, `delayed ${d.toFixed(1)} Mbit/s against ${p.toFixed(1)} without delay`);
  // and not more than the link: 100 Mbit/s of Ethernet frames is 95.7 Mbit/s of TCP payload
  t.true(d <= 95.7 * 1.05, `delayed ${d.toFixed(1)} Mbit/s: more than the link can carry`);
});

test.serial('--delay1 1 --delay2 25: each link its own RTT', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await bed(['set', '--delay1', '1', '--delay2', '25']);
  const rtt1 = await medianRtt(topo.TESTBED_SRV_ADDR1);
  const rtt2 = await medianRtt(topo.TESTBED_SRV_ADDR2);
  t.log(`link 1: asked ${(2 + baseRtt).toFixed(2)} ms, measured ${rtt1} ms; link 2: asked ${(50 + baseRtt).toFixed(2)} ms, measured ${rtt2} ms`);
  // a millisecond is at the edge of what the process's timers hold: ± 0.5 ms there
  t.true(Math.abs(rtt1 - (2 + baseRtt)) <= 0.5, `link 1: ${rtt1} ms`);
  t.true(Math.abs(rtt2 - (50 + baseRtt)) <= 0.1 * (50 + baseRtt), `link 2: ${rtt2} ms`);
});

test.serial('--loss through the delay line drops about the asked fraction, and so does --burst-loss', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // 10 % each way: a ping comes back with probability 0.9 × 0.9 = 81 %
  await bed(['set', '--loss1', '10']);
  const random = await ping(topo.TESTBED_SRV_ADDR1, 400, '0.01');
  const got = random.received / random.sent;
  t.log(`--loss1 10: ${random.received} of ${random.sent} pings came back (${(100 * got).toFixed(1)} %, expected 81 %)`);
  t.true(got > 0.7 && got < 0.9, `${random.received} of ${random.sent}`);
  // Gilbert-Elliott, Good->Bad 3 %, Bad->Good 30 %: 9.1 % each way, in bursts; back 82.6 %
  await bed(['set', '--loss1', '0', '--burst-loss1', '3,30']);
  const burst = await ping(topo.TESTBED_SRV_ADDR1, 400, '0.01');
  const gotB = burst.received / burst.sent;
  t.log(`--burst-loss1 3,30: ${burst.received} of ${burst.sent} pings came back (${(100 * gotB).toFixed(1)} %, expected 82.6 %)`);
  t.true(gotB > 0.65 && gotB < 0.95, `${burst.received} of ${burst.sent}`);
  const status = (await bed(['status'])).stdout;
  t.regex(status, /"dropBurst":[1-9]/, 'the delay line counted its bursty drops');
  await bed(['set', '--burst-loss1', '0']);
});

test.serial('the kernel\'s MPTCP client over two delayed links: both links carry', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await bed(['set', '--delay', '10']);
  const before = [await txBytes(topo.TESTBED_CLI_IF1), await txBytes(topo.TESTBED_CLI_IF2)];
  const mbps = await iperf(topo.TESTBED_SRV_ADDR1, MPTCP_PORT, 5, true);
  const sent = [(await txBytes(topo.TESTBED_CLI_IF1)) - before[0], (await txBytes(topo.TESTBED_CLI_IF2)) - before[1]];
  t.log(`MPTCP over 2 × (100 Mbit/s, 20 ms RTT): ${mbps.toFixed(1)} Mbit/s; link 1 ${(sent[0] / 1e6).toFixed(1)} MB, link 2 ${(sent[1] / 1e6).toFixed(1)} MB`);
  const total = sent[0] + sent[1];
  t.true(sent[0] > 0.2 * total && sent[1] > 0.2 * total, `both links carry: ${sent.join(' / ')} bytes`);
  t.true(mbps > RATE, `${mbps.toFixed(1)} Mbit/s: more than one link`);
});

test.serial('down leaves nothing (namespaces, devices, processes, run dir), even after the delay line was killed', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const pid = delaylinePid();
  t.truthy(pid && alive(pid), 'the delay line runs');
  process.kill(pid!, 'SIGKILL');
  await bed(['down']);
  t.false(alive(pid!), 'the delay line is gone');
  t.deepEqual(await leftovers(), []);
  // down is idempotent
  await bed(['down']);
  t.deepEqual(await leftovers(), []);
});
