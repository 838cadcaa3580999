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
//        [--rate 0] [--synflood] [--flood-seconds 10] [--no-kernel]
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
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
    'no-kernel': { type: 'boolean', default: false },
    'no-connections': { type: 'boolean', default: false },
    prefix: { type: 'string', default: 'mptsc' },
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

async function iperfMbit(seconds: number, port = 5201): Promise<{ mbit: number; intervals: number[] }> {
  const out = await inNs('c', 'iperf3', ['-c', bed.topo.TESTBED_SRV_ADDR1, '-p', String(port), '-t', String(seconds), '-J'], (seconds + 60) * 1000);
  const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } }; intervals: Array<{ sum: { bits_per_second: number } }> };
  return { mbit: +(j.end.sum_received.bits_per_second / 1e6).toFixed(1), intervals: j.intervals.map((i) => +(i.sum.bits_per_second / 1e6).toFixed(1)) };
}

/** The counters of these groups that are not zero. */
function nonZero(s: MptunStatus, groups: string[]): Record<string, Record<string, number>> {
  return Object.fromEntries(groups.map((g) => [g, Object.fromEntries(Object.entries(s.counters[g] ?? {}).filter(([, v]) => v !== 0))]));
}

function counters(s: MptunStatus, group: string, names: string[]): Record<string, number> {
  const g = s.counters[group] ?? {};
  return Object.fromEntries(names.map((n) => [n, g[n] ?? 0]));
}

/**
 * The SYN flood: hping3 from the client namespace to a server address and port (random source
 * ports: every SYN a new flow that mptun captures), while iperf3 runs through mptun.
 */
async function synflood(): Promise<object> {
  const before = await iperfMbit(FLOOD_SECONDS);
  const rss0 = await rssKb();
  log(`SYN flood: iperf3 alone ${before.mbit} Mbit/s; now with the flood`);
  // a port with nobody behind it on the server: the kernel answers RST, mptun's upstream
  // connections are refused (a port with a listener would fill the server's SYN queue instead)
  const flood = spawn('ip', ['netns', 'exec', ns('c'), 'hping3', '-S', '--flood', '--rand-source', '-p', '9', bed.topo.TESTBED_SRV_ADDR1],
    { stdio: 'ignore', env: ENV });
  let rssMax = rss0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rssMax = Math.max(rssMax, await rssKb());
      await sleep(250);
    }
  })();
  let during: { mbit: number; intervals: number[] };
  let status: MptunStatus;
  try {
    await sleep(2000);
    during = await iperfMbit(FLOOD_SECONDS);
    status = await bed.mptunStatus();
  } finally {
    flood.kill('SIGTERM');
    sampling = false;
    await sampler;
  }
  const rssEnd = await rssKb();
  return {
    iperfMbitBefore: before.mbit,
    iperfMbitDuring: during.mbit,
    rateKept: +(during.mbit / before.mbit).toFixed(3),
    intervalsDuring: during.intervals,
    rssMB: { before: +(rss0 / 1024).toFixed(1), max: +(rssMax / 1024).toFixed(1), end: +(rssEnd / 1024).toFixed(1) },
    relay: counters(status, 'relay', ['flowsRequested', 'flowsPendingFull', 'flowsRefused', 'flowsTimedOut', 'flowsSynFlood']),
    host: counters(status, 'host', ['synAccepted', 'synBacklogFull', 'synDeferred', 'noConnection']),
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
  await bed.startMptun();
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
      const h = await hold(false, async () => {
        await sleep(1000);
        rssHeld = await rssKb();
      });
      const flowsLeft = await drained(60_000);
      const rssAfter = await rssKb();
      log('mptun: sequential, after');
      const seqAfter = await seq(false);
      const status = await bed.mptunStatus();
      const perConnKb = h.opened > 0 ? (rssHeld - rssBeforeHold) / h.opened : null;
      const mptun = {
        seqBefore, hold: h, seqAfter, flowsLeftAfterClose: flowsLeft,
        rssMB: { baseline: +(rssBase / 1024).toFixed(1), beforeHold: +(rssBeforeHold / 1024).toFixed(1), held: +(rssHeld / 1024).toFixed(1), afterClose: +(rssAfter / 1024).toFixed(1) },
        rssKBPerHeldConnection: perConnKb === null ? null : +perConnKb.toFixed(1),
        counters: nonZero(status, ['relay', 'host', 'subflow', 'upstream', 'hostTcp', 'subflowTcp', 'engine']),
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
  await sleep(500);
  await bed.down();
}
