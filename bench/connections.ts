// bench/connections: many connections, and short ones, on the two-link test bed
// (scripts/testbed.sh, links unshaped unless --rate), against an echo server on the kernel's
// MPTCP listener in the server namespace (bench/conn-load.ts). In the same run, the same load
// (plain node:net) from the client namespace as the kernel's own MPTCP client (`mptcpize run`)
// and through `mptun up`:
//   - sequential connect / echo 64 bytes / close for SECONDS (the rate, and its median and p99);
//   - N connections opened at once (at most CONCURRENCY opening at a time), each echoing 64
//     bytes, held, then closed: the time to open them all, the failures, and (mptun) its RSS
//     per held connection beyond its baseline;
//   - the sequential rate again, after the N connections came and went.
// With --synflood (mptun only): a SYN flood (hping3 --flood, random source ports) from the
// client namespace to a server address, which mptun captures, while iperf3 runs through mptun:
// the transfer's rate before and during, mptun's RSS, and its SYN counters.
// Prints JSON (the machine is shared and noisy: compare within a run).
//
//   sudo node dist/bench/connections.js [--n 10000] [--concurrency 256] [--seconds 5]
//        [--rate 0] [--synflood] [--flood-seconds 10] [--no-kernel] [--profile DIR]
// --profile DIR: mptun runs under `node --cpu-prof` (a profile in DIR when it stops; bench/cpuprof reads it).
// --heap-snapshot DIR: a V8 heap snapshot of mptun (in DIR) while the N connections are held
// (bench/heapsnap tells what the objects of each kind weigh per held connection).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { TestBed, type MptunStatus } from '../src/cli/bedrun.js';

const exec = promisify(execFile);
const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '256' },
    seconds: { type: 'string', default: '5' },
    rate: { type: 'string', default: '0' },
    synflood: { type: 'boolean', default: false },
    'flood-seconds': { type: 'string', default: '10' },
    'flood-rate': { type: 'string', default: '100' },
    'flood-port': { type: 'string', default: '9' },
    'no-kernel': { type: 'boolean', default: false },
    'no-connections': { type: 'boolean', default: false },
    prefix: { type: 'string', default: 'mptsc' },
    profile: { type: 'string' },
    'heap-snapshot': { type: 'string' },
  },
});
const N = Number(values.n);
const CONC = Number(values.concurrency);
const SECONDS = Number(values.seconds);
const FLOOD_SECONDS = Number(values['flood-seconds']);
const bed = new TestBed(values.prefix!);
const log = (s: string) => process.stderr.write(`bench/connections: ${s}\n`);
const LOAD = fileURLToPath(new URL('./conn-load.js', import.meta.url));
const ECHO_PORT = 7070;
const ENV = { ...process.env, PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}` };
const ns = (which: 'c' | 's') => (which === 'c' ? bed.topo.TESTBED_NS_CLIENT : bed.topo.TESTBED_NS_SERVER);
const inNs = async (which: 'c' | 's', cmd: string, args: string[], timeout = 300_000) =>
  (await exec('ip', ['netns', 'exec', ns(which), cmd, ...args], { env: ENV, timeout, maxBuffer: 64 << 20 })).stdout;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A process in a namespace whose stdout is read line by line (one JSON object a line). */
class Proc {
  readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  err = '';

  constructor(which: 'c' | 's', argv: string[]) {
    // as many descriptors as the hard limit allows (N sockets in one process)
    this.child = spawn('ip', ['netns', 'exec', ns(which), 'bash', '-c', 'ulimit -n "$(ulimit -Hn)" && exec "$@"', 'load', ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env: ENV });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.waiter?.();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.err += d; });
    this.child.once('exit', () => this.waiter?.());
  }

  async next<T>(timeoutMs = 600_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`exited: ${this.err.trim()}`);
      if (Date.now() > deadline) throw new Error(`no output: ${this.err.trim()}`);
      await Promise.race([new Promise<void>((r) => { this.waiter = r; }), sleep(1000)]);
      this.waiter = null;
    }
    return JSON.parse(this.lines.shift()!) as T;
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
  }
}

interface Seq { n: number; failed: number; errors: Record<string, number>; perSecond: number; msMedian: number | null; msP99: number | null }
interface Open { opened: number; failed: number; errors: Record<string, number>; openMs: number; perSecond: number }

const mptcpize = (kernel: boolean) => (kernel ? ['mptcpize', 'run'] : []);

async function seq(kernel: boolean): Promise<Seq> {
  const p = new Proc('c', [...mptcpize(kernel), process.execPath, LOAD, 'seq', bed.topo.TESTBED_SRV_ADDR1, String(ECHO_PORT), String(SECONDS)]);
  try {
    return await p.next<Seq>((SECONDS + 120) * 1000);
  } finally {
    p.kill();
  }
}

/** N connections opened, held (`whileHeld` runs then), closed. */
async function hold(kernel: boolean, whileHeld: () => Promise<void>): Promise<Open & { closeMs: number }> {
  const p = new Proc('c', [...mptcpize(kernel), process.execPath, LOAD, 'hold', bed.topo.TESTBED_SRV_ADDR1, String(ECHO_PORT), String(N), String(CONC)]);
  try {
    const open = await p.next<Open>();
    await whileHeld();
    p.send('close');
    const closed = await p.next<{ closeMs: number }>(300_000);
    return { ...open, closeMs: closed.closeMs };
  } finally {
    p.kill();
  }
}

/** mptun's pid (its status says it). */
let mptunPid: number | null = null;

/** mptun's resident memory (kB), from /proc. */
async function rssKb(): Promise<number> {
  const pid = mptunPid ?? (mptunPid = ((await bed.mptunStatus()) as MptunStatus & { pid: number }).pid);
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Makes mptun write a heap snapshot into `dir` (--heapsnapshot-signal) and waits until it is written. */
async function heapSnapshot(dir: string): Promise<void> {
  const pid = mptunPid ?? (mptunPid = ((await bed.mptunStatus()) as MptunStatus & { pid: number }).pid);
  const before = new Set(await readdir(dir));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 600; i++) {
    await sleep(1000);
    // written when mptun answers its status again (the snapshot blocks its event loop)
    const fresh = (await readdir(dir)).filter((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    if (fresh.length > 0 && (await bed.mptunStatus().then(() => true, () => false))) {
      log(`heap snapshot: ${dir}/${fresh[0]}`);
      return;
    }
  }
  throw new Error('no heap snapshot written');
}

/** Waits until mptun holds no flow (the closed connections forgotten), at most `ms`. */
async function drained(ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let flows = -1;
  while (Date.now() < deadline) {
    flows = (await bed.mptunStatus()).flows.length;
    if (flows === 0) break;
    await sleep(500);
  }
  return flows;
}

/** The counters of these groups that are not zero. */
function nonZero(s: MptunStatus, groups: string[]): Record<string, Record<string, number>> {
  return Object.fromEntries(groups.map((g) => [g, Object.fromEntries(Object.entries(s.counters[g] ?? {}).filter(([, v]) => v !== 0))]));
}

function counters(s: MptunStatus, group: string, names: string[]): Record<string, number> {
  const g = s.counters[group] ?? {};
  return Object.fromEntries(names.map((n) => [n, g[n] ?? 0]));
}

/** The flood's namespace, behind the client namespace, which forwards its packets. */
const FLOOD_NS = `${values.prefix!}-fl`;

/**
 * A namespace of the flooder behind the client namespace: hping3's raw packets are not routed
 * by the capture rule (`ipproto tcp`) where they are made, but they are where they are
 * forwarded, so the flood comes from a host behind the client, as a router's LAN would.
 */
async function floodNamespace(): Promise<void> {
  const dev = `${values.prefix!}f`;
  await exec('ip', ['netns', 'add', FLOOD_NS], { env: ENV });
  await exec('ip', ['link', 'add', `${dev}0`, 'netns', ns('c'), 'type', 'veth', 'peer', 'name', `${dev}1`, 'netns', FLOOD_NS], { env: ENV });
  await inNs('c', 'ip', ['addr', 'add', '10.209.9.1/24', 'dev', `${dev}0`]);
  await inNs('c', 'ip', ['link', 'set', `${dev}0`, 'up']);
  await inNs('c', 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', `net.ipv4.conf.${dev}0.rp_filter=0`]);
  // `ip ARGS` in the flood's namespace
  const fl = (args: string) => exec('ip', ['netns', 'exec', FLOOD_NS, 'ip', ...args.split(' ')], { env: ENV });
  await fl(`addr add 10.209.9.2/24 dev ${dev}1`);
  await fl(`link set ${dev}1 up`);
  await fl('link set lo up');
  await fl('route add default via 10.209.9.1');
}

/**
 * The SYN flood: an iperf3 upload through mptun runs; after 3 s hping3 floods from the client
 * namespace toward a server address and port (source port incremented: every SYN a new flow
 * that mptun captures) for FLOOD_SECONDS; the transfer's rate in its seconds before the flood
 * and in those of the flood, mptun's RSS, and its SYN counters.
 */
async function synflood(): Promise<object> {
  await floodNamespace();
  const before = 3;
  const seconds = before + FLOOD_SECONDS + 2;
  const iperf = inNs('c', 'iperf3', ['-c', bed.topo.TESTBED_SRV_ADDR1, '-t', String(seconds), '-i', '1', '-J'], (seconds + 60) * 1000);
  await sleep(before * 1000);
  const rss0 = await rssKb();
  log('SYN flood: on');
  // a port with nobody behind it on the server by default: mptun's upstream opens are refused
  // (a port with a listener fills the server's accept queue instead)
  const flood = spawn('ip', ['netns', 'exec', FLOOD_NS, 'hping3', '-S', '--flood', '-p', values['flood-port']!, bed.topo.TESTBED_SRV_ADDR1],
    { stdio: 'ignore', env: ENV });
  let rssMax = rss0;
  const t0 = Date.now();
  while (Date.now() - t0 < FLOOD_SECONDS * 1000) {
    rssMax = Math.max(rssMax, await rssKb());
    await sleep(250);
  }
  const status = await bed.mptunStatus();
  flood.kill('SIGINT');
  log('SYN flood: off');
  const j = JSON.parse(await iperf) as { end: { sum_received: { bits_per_second: number } }; intervals: Array<{ sum: { bits_per_second: number } }> };
  const mbit = j.intervals.map((i) => +(i.sum.bits_per_second / 1e6).toFixed(1));
  const avg = (xs: number[]) => +(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)).toFixed(1);
  // the first second is slow start; the flood's first second is its start
  const alone = avg(mbit.slice(1, before));
  const during = avg(mbit.slice(before + 1, before + FLOOD_SECONDS));
  const rssEnd = await rssKb();
  return {
    floodPort: Number(values['flood-port']),
    iperfMbitBefore: alone,
    iperfMbitDuring: during,
    rateKept: +(during / alone).toFixed(3),
    intervalsMbit: mbit,
    rssMB: { before: +(rss0 / 1024).toFixed(1), max: +(rssMax / 1024).toFixed(1), end: +(rssEnd / 1024).toFixed(1) },
    relay: counters(status, 'relay', ['flowsRequested', 'flowsPendingFull', 'flowsRefused', 'flowsTimedOut', 'flowsClosed']),
    host: counters(status, 'host', ['packetsIn', 'synAccepted', 'synBacklogFull', 'synDeferred', 'resetsSentNoConnection']),
    target: { rateKept80: during / alone >= 0.8 },
  };
}

const procs: Proc[] = [];
process.once('SIGINT', () => void bed.down().finally(() => process.exit(130)));
try {
  await bed.up(Number(values.rate));
  // ports and queues for tens of thousands of connections: every ephemeral port, TIME-WAIT
  // ports reused for new connections (as a busy client would), a deep accept queue
  await inNs('c', 'sysctl', ['-q', '-w', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1']);
  await inNs('s', 'sysctl', ['-q', '-w', 'net.core.somaxconn=65535', 'net.ipv4.tcp_max_syn_backlog=65535']);
  const server = new Proc('s', [process.execPath, LOAD, 'server', String(ECHO_PORT)]);
  procs.push(server);
  await server.next(20_000);

  const result: Record<string, unknown> = { bench: 'connections', n: N, concurrency: CONC, seconds: SECONDS, rateMbitPerLink: Number(values.rate) || null };
  let kernel: { seqBefore: Seq; hold: Open & { closeMs: number }; seqAfter: Seq } | null = null;
  if (!values['no-kernel'] && !values['no-connections']) {
    log('kernel MPTCP: sequential');
    const seqBefore = await seq(true);
    log(`kernel MPTCP: ${N} at once`);
    const h = await hold(true, async () => undefined);
    log('kernel MPTCP: sequential, after');
    const seqAfter = await seq(true);
    kernel = { seqBefore, hold: h, seqAfter };
    result.kernel = kernel;
  }
  const nodeArgs = values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [];
  if (values['heap-snapshot']) nodeArgs.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${values['heap-snapshot']}`);
  await bed.startMptun([], nodeArgs);
  try {
    if (!values['no-connections']) {
      await sleep(1000);
      const rssBase = await rssKb();
      log('mptun: sequential');
      const seqBefore = await seq(false);
      await drained(30_000);
      const rssBeforeHold = await rssKb();
      log(`mptun: ${N} at once`);
      let rssHeld = 0;
      const heldSeries: Array<{ s: number; mb: number }> = [];
      const h = await hold(false, async () => {
        // RSS while the connections idle: at 1 s, and every 2 s up to 15 s (V8's memory reducer
        // collects what the opening left behind once the process idles, some seconds later)
        for (let s = 1; s <= 15; s += s === 1 ? 1 : 2) {
          await sleep(s === 1 ? 1000 : 2000);
          heldSeries.push({ s, mb: +((await rssKb()) / 1024).toFixed(1) });
        }
        rssHeld = await rssKb();
        if (values['heap-snapshot']) await heapSnapshot(values['heap-snapshot']);
      });
      const flowsLeft = await drained(60_000);
      const rssAfter = await rssKb();
      log('mptun: sequential, after');
      const seqAfter = await seq(false);
      const status = await bed.mptunStatus();
      const perConnKb = h.opened > 0 ? (rssHeld - rssBeforeHold) / h.opened : null;
      const mptun = {
        seqBefore, hold: h, seqAfter, flowsLeftAfterClose: flowsLeft,
        rssMB: { baseline: +(rssBase / 1024).toFixed(1), beforeHold: +(rssBeforeHold / 1024).toFixed(1), held: +(rssHeld / 1024).toFixed(1), heldSeries, afterClose: +(rssAfter / 1024).toFixed(1) },
        rssKBPerHeldConnection: perConnKb === null ? null : +perConnKb.toFixed(1),
        counters: nonZero(status, ['relay', 'host', 'subflow', 'upstream', 'mptcp', 'hostTcp', 'subflowTcp', 'engine']),
      };
      result.mptun = mptun;
      if (kernel) {
        const r = {
          openTimeMptunVsKernel: +(h.openMs / kernel.hold.openMs).toFixed(2),
          seqRateMptunOfKernel: +(seqBefore.perSecond / kernel.seqBefore.perSecond).toFixed(3),
          seqRateAfterMptunOfKernel: +(seqAfter.perSecond / kernel.seqAfter.perSecond).toFixed(3),
        };
        result.ratios = r;
        const met = {
          noFailures: h.failed === 0,
          openWithin2xKernel: r.openTimeMptunVsKernel <= 2,
          memoryPerIdleConnection16KB: perConnKb !== null && perConnKb <= 16,
          seqRateHalfKernel: r.seqRateMptunOfKernel >= 0.5,
          seqRateAfterHalfKernel: r.seqRateAfterMptunOfKernel >= 0.5,
        };
        result.target = { ...met, met: Object.values(met).every(Boolean) };
      }
    }
    if (values.synflood) {
      if (Number(values.rate) === 0) await bed.run('set', '--rate', values['flood-rate']!);
      result.synflood = await synflood();
    }
  } finally {
    await bed.stopMptun();
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  for (const p of procs) p.kill();
  if (values.synflood) await exec('ip', ['netns', 'del', FLOOD_NS], { env: ENV }).catch(() => undefined);
  await sleep(500);
  await bed.down();
}
