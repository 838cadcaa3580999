// bench/soak: mptun for a long time under a mixed load while its links flap (issue 12): no
// crash, no leak, every byte right. The two-link bed (scripts/testbed.sh, each link shaped to
// RATE Mbit/s, tbf), the kernel's MPTCP on the server side, `mptun up --log-level info` in the
// client namespace (its stderr kept in a file). For MINUTES, all of it seeded (SEED: the same
// sizes, sequence of links and durations on a replay; the timing is the machine's):
//   - long transfers: three slots always busy, two uploads and one download (test/e2e/long-peer:
//     the app a plain node:net socket through mptun, the server a listening IPPROTO_MPTCP socket
//     through mptun's addon, a seeded AES-256-CTR stream, sha256 at both ends), each of a random
//     size in 100..800 MB, the next started when one ends; each must end with the same sha256
//     and byte count at both ends and a clean close. A transfer that moves nothing through
//     mptun for STALL_MS (its flow in `mptun status`) has failed (stalled). At the end of the
//     run the transfers still going are cut short (SIGUSR2 to the sender: it stops at the end of
//     its chunk and closes) and checked the same way;
//   - short connections (bench/soak-short.ts against bench/conn-load.ts's echo server on the
//     kernel's MPTCP): about SHORT_RATE a second, connect / echo 1..64 KB checked byte for byte /
//     close; ok, failed (by reason), latency median and p99;
//   - link flaps: every 20..60 s one link (1 or 2, at random) goes down for 2..10 s
//     (`testbed.sh link-down N`, one time in three `--blackhole`: the link stays up and drops
//     everything), then up again; never both at once, so MPTCP always has a path and no
//     transfer may fail because of a flap;
//   - every 10 s: mptun's resident memory (VmRSS of its pid, from `mptun status`), its flows
//     and open subflows.
// Memory verdict: the warm-up is the first 5 minutes (the first sixth of a shorter run); after
// it, a least-squares slope of RSS in MB per 10 minutes, and the median of the last 5 minutes
// (last sixth) against the median of all of the post-warm-up samples. "flat" when the slope is
// below FLAT_SLOPE (5 %) of the warm-up's RSS per 10 minutes and the end is within FLAT_END
// (20 %) of the post-warm-up median. Why 5 %: the load is the same all along, so the memory it
// needs is too; V8's heap saws up and down by some MB between collections, which a fit over
// 150 samples (25 minutes) averages out; and a leak of the size that matters shows above it: 10
// minutes carry about 12 000 short connections, 30 long transfers and 15 GB, so a leak of one
// 1 KB record per connection (12 MB per 10 minutes), or of a buffer per transfer, is well over
// 5 % of an RSS around 100-200 MB. After the workload mptun must also forget every flow (none
// left within 60 s).
// Also a failure: mptun exiting before the end (its last stderr lines are reported).
//
// Prints JSON on stdout (progress on stderr); exit code 0 when ok, 1 otherwise. The bed is
// removed at the end, also on failure and on SIGINT.
//
//   sudo node dist/bench/soak.js [--minutes 30] [--rate 100] [--seed 1] [--prefix mptsk]
//        [--short-rate 20] [--log /tmp/mptun-soak-PREFIX.log] [--capture DIR [--snaplen 200]]
// --capture DIR: tcpdump of the short connections' packets (port 7070, SNAPLEN bytes of each, files
// of 100 MB in DIR) in the server namespace (server.pcap*) and on mptun's device (app.pcap*): a
// failed short connection names its app port.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { queryStatus } from '../src/appliance/appliance.js';
import { median, TestBed } from '../src/cli/bedrun.js';
import { Rng } from '../test/sim/rng.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    prefix: { type: 'string', default: 'mptsk' },
    'short-rate': { type: 'string', default: '20' },
    log: { type: 'string' },
    capture: { type: 'string' },
    snaplen: { type: 'string', default: '200' },
  },
});
const MINUTES = Number(values.minutes);
const RATE = Number(values.rate);
const SEED = Number(values.seed);
const SHORT_RATE = Number(values['short-rate']);
const LOG_PATH = values.log ?? `/tmp/mptun-soak-${values.prefix!}.log`;
const MB = 1e6;
const LONG_MIN = 100 * MB;
const LONG_MAX = 800 * MB;
const SLOTS: Array<'upload' | 'download'> = ['upload', 'upload', 'download'];
const FLAP_EVERY_S: [number, number] = [20, 60];
const FLAP_DOWN_S: [number, number] = [2, 10];
const BLACKHOLE_CHANCE = 1 / 3;
const SAMPLE_MS = 10_000;
/** Nothing moved through mptun for a long transfer in this long: it has stalled. */
const STALL_MS = 60_000;
/** A transfer is cut at the end only this long after its processes started (their SIGUSR2 handler is set). */
const CUT_AFTER_MS = 5000;
const FLAT_SLOPE = 0.05;
const FLAT_END = 0.2;
const ECHO_PORT = 7070;
const FIRST_LONG_PORT = 20000;

const PEER = fileURLToPath(new URL('../test/e2e/long-peer.js', import.meta.url));
const LOAD = fileURLToPath(new URL('./conn-load.js', import.meta.url));
const SHORT = fileURLToPath(new URL('./soak-short.js', import.meta.url));
const MPTUN = fileURLToPath(new URL('../../bin/mptun.js', import.meta.url));
const ENV = { ...process.env, PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}` };
const bed = new TestBed(values.prefix!);
/** When the workload started (until then, when this started): every time reported is from there. */
let workStart = Date.now();
const atS = () => +((Date.now() - workStart) / 1000).toFixed(1);
const log = (s: string) => process.stderr.write(`bench/soak [${atS().toFixed(0)} s]: ${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Set once the run ends (its time is up, mptun died, or SIGINT). */
let ending = false;
let endNow: () => void = () => undefined;
const ended = new Promise<void>((r) => { endNow = r; });
const end = () => {
  ending = true;
  endNow();
};
/** Sleeps `ms`, or less if the run ends meanwhile. */
const sleepOrEnd = (ms: number) => Promise.race([sleep(ms), ended]);

/** A process in a namespace: its stdout's JSON lines, the end of its stderr. */
class Proc {
  readonly child: ChildProcess;
  readonly lines: Array<Record<string, unknown>> = [];
  private errTail = '';
  readonly exited: Promise<void>;

  constructor(ns: string, argv: string[]) {
    this.child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env: ENV });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      if (!l.startsWith('{')) return;
      try {
        this.lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // not one of ours
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.errTail = (this.errTail + d).slice(-2000); });
    this.child.stdin!.on('error', () => undefined);
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get err(): string {
    return this.errTail.trim();
  }

  /** The first line whose `key` is `value`. */
  line<T = Record<string, unknown>>(key: string, value: string): T | undefined {
    return this.lines.find((l) => l[key] === value) as T | undefined;
  }

  kill(sig: NodeJS.Signals = 'SIGTERM'): void {
    if (this.alive) this.child.kill(sig);
  }

  /** Waits for the exit, `ms` at most; SIGKILL after that. */
  async stop(ms: number): Promise<void> {
    await Promise.race([this.exited, sleep(ms)]);
    if (this.alive) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

const procs = new Set<Proc>();
const proc = (ns: string, argv: string[]) => {
  const p = new Proc(ns, argv);
  procs.add(p);
  void p.exited.then(() => procs.delete(p));
  return p;
};

// ---- mptun, its log, its crash ----------------------------------------------------------------

let mptun: ChildProcess | null = null;
let mptunStopping = false;
let mptunTail = '';
let mptunExit: { atS: number; code: number | null; signal: string | null; lastLines: string[] } | null = null;

async function startMptun(): Promise<void> {
  const file = createWriteStream(LOG_PATH);
  const child = spawn('ip', ['netns', 'exec', bed.topo.TESTBED_NS_CLIENT, process.execPath, MPTUN, 'up',
    '--state-dir', bed.stateDir, '--control-socket', bed.controlSocket, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'], env: ENV });
  mptun = child;
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    file.write(d);
    mptunTail = (mptunTail + d).slice(-8000);
  });
  child.once('exit', (code, signal) => {
    file.end();
    if (mptunStopping) return;
    mptunExit = { atS: atS(), code, signal, lastLines: mptunTail.trim().split('\n').slice(-20) };
    log(`mptun exited (${code ?? signal}): ${mptunExit.lastLines.slice(-3).join(' | ')}`);
    end();
  });
  const deadline = Date.now() + 20_000;
  while (!mptunTail.includes('mptun info: up:')) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`mptun up exited: ${mptunTail.trim()}`);
    if (Date.now() > deadline) throw new Error(`mptun up did not come up: ${mptunTail.trim()}`);
    await sleep(50);
  }
}

const mptunAlive = () => mptun !== null && mptun.exitCode === null && mptun.signalCode === null;

async function stopMptun(): Promise<void> {
  const child = mptun;
  if (!child || !mptunAlive()) return;
  mptunStopping = true;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

// ---- sampling: memory, flows ------------------------------------------------------------------

interface StatusFlow { destination: string; bytesToUpstream: number; bytesToHost: number; subflows: Array<{ closed: boolean }> }
interface Status { pid: number; flows: StatusFlow[]; counters: Record<string, Record<string, number>> }
interface Sample { t: number; rssMB: number | null; flows: number | null; subflows: number | null }

let status: Status | null = null;
let statusErrors = 0;
let pid: number | null = null;
const samples: Sample[] = [];

async function rssMB(): Promise<number | null> {
  if (pid === null) return null;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? +(Number(m[1]) / 1024).toFixed(1) : null;
  } catch {
    return null;
  }
}

async function sample(): Promise<Sample> {
  const t = atS();
  try {
    status = (await queryStatus(bed.controlSocket, 5000)) as Status;
    pid = status.pid;
  } catch (e) {
    statusErrors++;
    log(`mptun status: ${(e as Error).message}`);
  }
  const s: Sample = {
    t,
    rssMB: await rssMB(),
    flows: status ? status.flows.length : null,
    subflows: status ? status.flows.reduce((n, f) => n + f.subflows.filter((x) => !x.closed).length, 0) : null,
  };
  return s;
}

async function sampler(): Promise<void> {
  while (!ending) {
    const started = Date.now();
    const s = await sample();
    samples.push(s);
    if (samples.length % 6 === 1) log(`RSS ${s.rssMB} MB, ${s.flows} flows, ${s.subflows} subflows; long ${longDone} done / ${longFailed.length} failed; flaps ${flaps.length}`);
    await sleepOrEnd(Math.max(0, SAMPLE_MS - (Date.now() - started)));
  }
}

/** Least-squares slope of y over x, and its standard error. */
function slope(xs: number[], ys: number[]): { b: number; se: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  if (den === 0) return { b: 0, se: 0 };
  const b = num / den;
  let rss = 0;
  for (let i = 0; i < n; i++) rss += (ys[i]! - my - b * (xs[i]! - mx)) ** 2;
  return { b, se: n > 2 ? Math.sqrt(rss / (n - 2) / den) : 0 };
}

function memorySummary(totalS: number) {
  const ok = samples.filter((s) => s.rssMB !== null) as Array<Sample & { rssMB: number }>;
  const warmupS = Math.min(300, totalS / 6);
  const lastS = Math.min(300, totalS / 6);
  const warm = ok.filter((s) => s.t < warmupS);
  const post = ok.filter((s) => s.t >= warmupS);
  const last = post.filter((s) => s.t >= totalS - lastS);
  // the warm-up's RSS: the median of its second half (mptun has its buffers by then)
  const warmTail = warm.filter((s) => s.t >= warmupS / 2);
  const warmupRssMB = warmTail.length ? median(warmTail.map((s) => s.rssMB)) : warm.length ? warm[warm.length - 1]!.rssMB : null;
  const postMedian = post.length ? median(post.map((s) => s.rssMB)) : null;
  const lastMedian = last.length ? median(last.map((s) => s.rssMB)) : null;
  const fit = post.length >= 3 ? slope(post.map((s) => s.t), post.map((s) => s.rssMB)) : null;
  const slopePer10Min = fit ? fit.b * 600 : null;
  const threshold = warmupRssMB === null ? null : FLAT_SLOPE * warmupRssMB;
  const endOff = postMedian !== null && lastMedian !== null ? (lastMedian - postMedian) / postMedian : null;
  const flat = slopePer10Min !== null && threshold !== null && endOff !== null && slopePer10Min < threshold && Math.abs(endOff) <= FLAT_END;
  const r1 = (x: number | null) => (x === null ? null : +x.toFixed(1));
  return {
    samples: ok.length,
    everyS: SAMPLE_MS / 1000,
    warmupS: r1(warmupS),
    warmupRssMB: r1(warmupRssMB),
    postWarmup: post.length ? { minMB: r1(Math.min(...post.map((s) => s.rssMB))), maxMB: r1(Math.max(...post.map((s) => s.rssMB))), medianMB: r1(postMedian) } : null,
    lastWindowS: r1(lastS),
    lastMedianMB: r1(lastMedian),
    endVsPostMedian: endOff === null ? null : +endOff.toFixed(3),
    slopeMBPer10Min: slopePer10Min === null ? null : +slopePer10Min.toFixed(2),
    // the fit's standard error: a short run's slope is mostly the garbage collector's saw
    slopeStdErrMBPer10Min: fit ? +(fit.se * 600).toFixed(2) : null,
    flatBelowMBPer10Min: r1(threshold),
    flat,
    seriesMB: samples.map((s) => s.rssMB),
  };
}

// ---- long transfers ---------------------------------------------------------------------------

interface LongFailure { atS: number; dir: string; port: number; planned: number; reason: string }
let longDone = 0;
let longBytes = 0;
let longCut = 0;
let shaMismatch = 0;
const longFailed: LongFailure[] = [];
const longSeconds: number[] = [];
const cutters = new Set<() => void>();
let nextPort = FIRST_LONG_PORT;

interface PeerLine { event: string; bytes: number; sha256: string; seconds: number; message?: string }

/** One transfer of `planned` bytes each way `dir`; counted in the totals above. */
async function longTransfer(dir: 'upload' | 'download', planned: number, streamSeed: number): Promise<void> {
  const port = nextPort++;
  const destination = `${bed.topo.TESTBED_SRV_ADDR1}:${port}`;
  const send = ['--send', String(planned), '--seed', String(streamSeed)];
  const startedS = atS();
  const fail = (reason: string) => {
    longFailed.push({ atS: atS(), dir, port, planned, reason });
    log(`long ${dir} :${port} FAILED: ${reason}`);
  };
  const server = proc(bed.topo.TESTBED_NS_SERVER, [process.execPath, PEER, '--listen', `0.0.0.0:${port}`, ...(dir === 'download' ? send : [])]);
  let client: Proc | null = null;
  let cut: (() => void) | null = null;
  try {
    const listenBy = Date.now() + 15_000;
    while (!server.line('event', 'listening') && server.alive && Date.now() < listenBy) await sleep(50);
    if (!server.line('event', 'listening')) return fail(`the server did not listen: ${server.err}`);
    client = proc(bed.topo.TESTBED_NS_CLIENT, [process.execPath, PEER, '--connect', destination, ...(dir === 'upload' ? send : [])]);
    const spawnedAt = Date.now();
    const [sender, receiver] = dir === 'upload' ? [client, server] : [server, client];
    let wasCut = false;
    cut = () => {
      void sleep(Math.max(0, CUT_AFTER_MS - (Date.now() - spawnedAt))).then(() => {
        if (sender.alive && !sender.line('event', 'sent')) {
          wasCut = true;
          sender.kill('SIGUSR2');
        }
      });
    };
    cutters.add(cut);
    if (ending) cut();
    let moved = -1;
    let progressAt = Date.now();
    let seenStatus: Status | null = null;
    for (;;) {
      const sent = sender.line<PeerLine>('event', 'sent');
      const got = receiver.line<PeerLine>('event', 'received');
      if (sent && got) break;
      const senderErr = sender.line<PeerLine>('event', 'error');
      const err = senderErr ?? receiver.line<PeerLine>('event', 'error');
      if (err) return fail(`${err === senderErr ? 'sender' : 'receiver'}: ${err.message} after ${err.bytes} bytes`);
      if (!sender.alive && !sent) return fail(`the sender exited (${sender.child.exitCode ?? sender.child.signalCode}) before it had sent: ${sender.err}`);
      if (!receiver.alive && !got) return fail(`the receiver exited (${receiver.child.exitCode ?? receiver.child.signalCode}) before the end: ${receiver.err}`);
      if (mptunExit) return fail('mptun exited');
      if (status !== seenStatus) {
        seenStatus = status;
        const flow = status?.flows.find((f) => f.destination === destination);
        const now = flow ? (dir === 'upload' ? flow.bytesToUpstream : flow.bytesToHost) : -1;
        if (now > moved) {
          moved = now;
          progressAt = Date.now();
        }
      }
      if (Date.now() - progressAt > STALL_MS) {
        const flow = status?.flows.find((f) => f.destination === destination);
        return fail(`stalled: nothing moved through mptun for ${STALL_MS / 1000} s, at ${moved} bytes; flow ${JSON.stringify(flow ?? null)}`);
      }
      await sleep(200);
    }
    const sent = sender.line<PeerLine>('event', 'sent')!;
    const got = receiver.line<PeerLine>('event', 'received')!;
    // both halves done: the receiver closes its half, each end exits 0 once its socket closed
    receiver.kill('SIGUSR1');
    await Promise.all([sender.stop(15_000), receiver.stop(15_000)]);
    if (got.sha256 !== sent.sha256 || got.bytes !== sent.bytes) {
      shaMismatch++;
      return fail(`sha256 mismatch: sent ${sent.bytes} bytes ${sent.sha256}, received ${got.bytes} bytes ${got.sha256}`);
    }
    const codes = [sender.child.exitCode, receiver.child.exitCode];
    if (codes.some((c) => c !== 0)) {
      return fail(`closing: sender exit ${sender.child.exitCode ?? sender.child.signalCode}, receiver exit ${receiver.child.exitCode ?? receiver.child.signalCode}: ${sender.err} ${receiver.err}`);
    }
    longDone++;
    longBytes += got.bytes;
    if (wasCut) longCut++;
    longSeconds.push(atS() - startedS);
  } finally {
    if (cut) cutters.delete(cut);
    server.kill('SIGKILL');
    client?.kill('SIGKILL');
  }
}

async function longSlot(dir: 'upload' | 'download', rng: Rng): Promise<void> {
  while (!ending) {
    const planned = Math.round(rng.uniform(LONG_MIN, LONG_MAX));
    await longTransfer(dir, planned, rng.nextU32());
  }
}

// ---- link flaps -------------------------------------------------------------------------------

interface Flap { atS: number; link: number; blackhole: boolean; downS: number; error?: string }
const flaps: Flap[] = [];

async function flapper(rng: Rng): Promise<void> {
  for (;;) {
    const wait = rng.uniform(...FLAP_EVERY_S);
    const link = 1 + rng.int(2);
    const blackhole = rng.chance(BLACKHOLE_CHANCE);
    const downS = rng.uniform(...FLAP_DOWN_S);
    await sleepOrEnd(wait * 1000);
    if (ending) return;
    const flap: Flap = { atS: atS(), link, blackhole, downS: +downS.toFixed(1) };
    flaps.push(flap);
    log(`link ${link} down${blackhole ? ' (blackhole)' : ''} for ${flap.downS} s`);
    try {
      await bed.run('link-down', String(link), ...(blackhole ? ['--blackhole'] : []));
      await sleep(downS * 1000);
    } catch (e) {
      flap.error = (e as Error).message;
    } finally {
      // up again whatever happened (also when the run ends meanwhile): never both down
      await bed.run('link-up', String(link)).catch((e: Error) => { flap.error = `${flap.error ?? ''} link-up: ${e.message}`; });
    }
  }
}

// ---- the run ----------------------------------------------------------------------------------

async function cleanup(): Promise<void> {
  for (const p of procs) p.kill('SIGKILL');
  await stopMptun().catch(() => undefined);
  await bed.down();
  await rm(bed.stateDir, { recursive: true, force: true });
}

let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  log('SIGINT: removing the bed');
  end();
  void cleanup().finally(() => process.exit(130));
});

let code = 1;
try {
  const root = new Rng(SEED);
  const flapRng = root.fork();
  const shortSeed = root.nextU32();
  const slotRngs = SLOTS.map(() => root.fork());
  log(`bed: 2 links at ${RATE} Mbit/s, seed ${SEED}, ${MINUTES} min`);
  await bed.up(RATE);
  const echo = proc(bed.topo.TESTBED_NS_SERVER, [process.execPath, LOAD, 'server', String(ECHO_PORT)]);
  const echoBy = Date.now() + 20_000;
  while (!echo.lines.some((l) => l.listening !== undefined)) {
    if (!echo.alive || Date.now() > echoBy) throw new Error(`the echo server did not start: ${echo.err}`);
    await sleep(50);
  }
  if (values.capture) {
    // the short connections as the kernel's server saw them: enough to follow one that failed
    proc(bed.topo.TESTBED_NS_SERVER, ['tcpdump', '-Z', 'root', '-i', 'any', '-n', '-s', values.snaplen!, '-C', '100', '-w', `${values.capture}/server.pcap`, 'tcp', 'port', String(ECHO_PORT)]);
  }
  await startMptun();
  log(`mptun up (log: ${LOG_PATH})`);
  if (values.capture) {
    // and as the app saw them, on mptun's device (the app's port is the failure's `port`)
    proc(bed.topo.TESTBED_NS_CLIENT, ['tcpdump', '-Z', 'root', '-i', 'mptun0', '-n', '-s', values.snaplen!, '-C', '100', '-w', `${values.capture}/app.pcap`, 'tcp', 'port', String(ECHO_PORT)]);
  }
  workStart = Date.now();
  samples.push(await sample());
  const short = proc(bed.topo.TESTBED_NS_CLIENT, [process.execPath, SHORT, '--connect', `${bed.topo.TESTBED_SRV_ADDR1}:${ECHO_PORT}`,
    '--rate', String(SHORT_RATE), '--seed', String(shortSeed)]);
  const work = [
    sampler(),
    flapper(flapRng),
    ...SLOTS.map((dir, i) => longSlot(dir, slotRngs[i]!)),
  ];
  await Promise.race([sleep(MINUTES * 60_000), ended]);
  const totalS = (Date.now() - workStart) / 1000;
  end();
  log(`${interrupted ? 'interrupted' : mptunExit ? 'mptun died' : 'time is up'}: cutting the transfers still going, stopping the short connections`);
  for (const c of cutters) c();
  short.child.stdin!.write('stop\n');
  await Promise.all(work);
  const shortBy = Date.now() + 60_000;
  while (!short.line('phase', 'final') && short.alive && Date.now() < shortBy) await sleep(100);
  const shortFinal = short.line<
    { ok: number; failed: number; skipped: number; started: number; inFlightLeft: number; errors: Record<string, number>; failures: unknown[]; medianMs: number | null; p99Ms: number | null; maxMs: number | null; slowOver1s: number; slow: unknown[] }>('phase', 'final');
  // after the load: mptun forgets every connection (60 s at most), its memory then
  let flowsLeft: number | null = null;
  let afterDrain: Sample | null = null;
  if (mptunAlive()) {
    const by = Date.now() + 60_000;
    for (;;) {
      afterDrain = await sample();
      flowsLeft = afterDrain.flows;
      if (flowsLeft === 0 || Date.now() > by || !mptunAlive()) break;
      await sleep(1000);
    }
  }
  const alive = mptunAlive();
  const finalStatus = status as Status | null;
  await stopMptun();
  const logText = await readFile(LOG_PATH, 'utf8').catch(() => '');
  const logLines = logText.split('\n').filter((l) => l.length > 0);
  const notable = logLines.filter((l) => / (warn|error): /.test(l));
  const memory = memorySummary(totalS);
  const shortOk = shortFinal !== undefined && shortFinal.failed === 0 && shortFinal.inFlightLeft === 0;
  const ok = longFailed.length === 0 && shaMismatch === 0 && shortOk && alive && mptunExit === null && memory.flat && flowsLeft === 0;
  const nonZero = (g: string) => Object.fromEntries(Object.entries(finalStatus?.counters[g] ?? {}).filter(([, v]) => v !== 0));
  const result = {
    bench: 'soak',
    minutes: MINUTES,
    seconds: +totalS.toFixed(0),
    seed: SEED,
    rateMbitPerLink: RATE,
    flaps: {
      count: flaps.length,
      down: flaps.filter((f) => !f.blackhole).length,
      blackhole: flaps.filter((f) => f.blackhole).length,
      errors: flaps.filter((f) => f.error).length,
      list: flaps,
    },
    long: {
      done: longDone,
      bytes: longBytes,
      gb: +(longBytes / 1e9).toFixed(2),
      cutAtEnd: longCut,
      failed: longFailed.length,
      shaMismatch,
      medianSeconds: longSeconds.length ? +median(longSeconds).toFixed(1) : null,
      failures: longFailed,
    },
    short: shortFinal
      ? {
        ok: shortFinal.ok, failed: shortFinal.failed, skipped: shortFinal.skipped, leftOpen: shortFinal.inFlightLeft,
        medianMs: shortFinal.medianMs, p99Ms: shortFinal.p99Ms, maxMs: shortFinal.maxMs, slowOver1s: shortFinal.slowOver1s,
        errors: shortFinal.errors, failures: shortFinal.failures, slow: shortFinal.slow,
      }
      : { ok: 0, failed: null, error: `no final report: ${short.err}` },
    memory: { ...memory, afterDrainMB: afterDrain?.rssMB ?? null },
    flows: {
      series: samples.map((s) => s.flows), subflowSeries: samples.map((s) => s.subflows), leftAfterEnd: flowsLeft,
      // what mptun still holds after the load (a leak, or a slow close): as `mptun status` shows it
      left: flowsLeft ? (finalStatus?.flows ?? []).slice(0, 5) : [],
    },
    mptunAlive: alive && mptunExit === null,
    mptunExit,
    mptunLog: { path: LOG_PATH, lines: logLines.length, warnOrError: notable.length, first: notable.slice(0, 10) },
    statusErrors,
    counters: finalStatus ? { relay: nonZero('relay'), mptcp: nonZero('mptcp') } : null,
    ok,
  };
  // indented, with the series (arrays of numbers) each on one line
  const text = JSON.stringify(result, null, 2).replace(/\[\s*((?:-?[\d.e+]+|null)(?:,\s*(?:-?[\d.e+]+|null))*)\s*\]/g,
    (_m, inner: string) => `[${inner.split(/,\s*/).join(', ')}]`);
  process.stdout.write(`${text}\n`);
  code = ok ? 0 : 1;
} catch (e) {
  log(`error: ${(e as Error).stack ?? (e as Error).message}`);
  code = 1;
} finally {
  end();
  await cleanup();
}
process.exit(code);
