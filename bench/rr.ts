// bench/rr: interactive use, on the two-link test bed (scripts/testbed.sh, links shaped to --rate
// Mbit/s each, no delay): 64-byte request/response on one connection (TCP_NODELAY at both
// ends), --count round trips after a warm-up, against an echo server under the kernel's MPTCP
// (`mptcpize run`) in the server namespace. The same node:net client (bench/rr-peer) runs
// under `mptcpize run` for the kernel's own MPTCP client, and plain through `mptun up` for mptun,
// alternating in the same run. Prints JSON: median, p90, p99, p99.9 of the round trip in µs for
// each (the median over --runs of each figure) and mptun's difference to the kernel. The
// client and server are node programs, so both figures include two event-loop wake-ups per
// round trip; the difference is what mptun adds.
//
//   sudo node dist/bench/rr.js [--count 20000] [--runs 3] [--rate 100] [--size 64] [--mptun-args='--scheduler redundant']
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { median, TestBed } from '../src/cli/bedrun.js';

const exec = promisify(execFile);
const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    size: { type: 'string', default: '64' },
    runs: { type: 'string', default: '3' },
    rate: { type: 'string', default: '100' },
    'mptun-args': { type: 'string', default: '' },
    prefix: { type: 'string', default: 'mpts1rr' },
  },
});
const runs = Number(values.runs);
const PEER = fileURLToPath(new URL('./rr-peer.js', import.meta.url));
const PORT = 5401;
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const ENV = { ...process.env, PATH: `${SYSTEM_PATH}:${process.env.PATH ?? ''}` };
const bed = new TestBed(values.prefix!);
const log = (s: string) => process.stderr.write(`bench/rr: ${s}\n`);
const mptunArgs = values['mptun-args']!.split(' ').filter((s) => s !== '');

interface Rr { medianUs: number; p90Us: number; p99Us: number; p999Us: number; maxUs: number; meanUs: number }
const FIGURES = ['medianUs', 'p90Us', 'p99Us', 'p999Us', 'maxUs', 'meanUs'] as const;

async function client(mptcp: boolean): Promise<Rr> {
  const { stdout } = await exec('ip', ['netns', 'exec', bed.topo.TESTBED_NS_CLIENT, ...(mptcp ? ['mptcpize', 'run'] : []), process.execPath, PEER,
    '--connect', `${bed.topo.TESTBED_SRV_ADDR1}:${PORT}`, '--count', values.count!, '--size', values.size!], { env: ENV, timeout: 300_000 });
  return JSON.parse(stdout) as Rr;
}

let server: ChildProcess | null = null;
process.once('SIGINT', () => { server?.kill(); void bed.down().finally(() => process.exit(130)); });
const started = new Date().toISOString();
try {
  await bed.up(Number(values.rate));
  server = spawn('ip', ['netns', 'exec', bed.topo.TESTBED_NS_SERVER, 'mptcpize', 'run', process.execPath, PEER, '--listen', String(PORT)], { stdio: ['ignore', 'ignore', 'pipe'], env: ENV });
  let err = '';
  server.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  while (!err.includes('listening')) {
    if (server.exitCode !== null) throw new Error(`rr server: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const kernel: Rr[] = [];
  const mptun: Rr[] = [];
  for (let i = 0; i < runs; i++) {
    log(`run ${i + 1}/${runs}: kernel MPTCP`);
    kernel.push(await client(true));
    log(`run ${i + 1}/${runs}: mptun ${mptunArgs.join(' ')}`);
    await bed.startMptun(mptunArgs);
    try {
      mptun.push(await client(false));
    } finally {
      await bed.stopMptun();
    }
  }
  const med = (xs: Rr[]) => Object.fromEntries(FIGURES.map((f) => [f, +median(xs.map((x) => x[f])).toFixed(1)])) as unknown as Rr;
  const k = med(kernel);
  const m = med(mptun);
  console.log(JSON.stringify({
    bench: 'rr',
    started,
    rateMbitPerLink: Number(values.rate),
    size: Number(values.size),
    roundTrips: Number(values.count),
    runs,
    mptunArgs: mptunArgs.join(' '),
    medianOfRuns: { kernelMptcp: k, mptun: m },
    mptunMinusKernelUs: Object.fromEntries(FIGURES.map((f) => [f, +(m[f] - k[f]).toFixed(1)])),
    target: { medianWithin100Us: m.medianUs - k.medianUs <= 100, p99Within500Us: m.p99Us - k.p99Us <= 500 },
    all: { kernelMptcp: kernel, mptun },
  }, null, 2));
} finally {
  server?.kill();
  await bed.down();
}
