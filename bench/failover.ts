// bench/failover: how fast a transfer recovers when a link is pulled, mptun against the
// kernel's own MPTCP client, in the same run. The two-link bed (scripts/testbed.sh) shaped to
// RATE Mbit/s per link, a kernel MPTCP sink in the server namespace that counts the bytes it
// receives every 50 ms; a sender in the client namespace (the same node:net program, under
// `mptcpize run` for the kernel, plain through `mptun up` for mptun) uploads BYTES; two
// seconds in, link 1 (the first subflow's) is taken down (both veth ends: a pulled cable).
// Prints JSON: per run, the receive rate before the pull; the stall (the longest stretch after
// the pull in which the sink got less than 10 % of one link's rate: the bytes in flight on the
// dead link hold everything behind them until they are sent again); the rate in the first
// second after the pull; the recovery time (from the pull to the first 200 ms with at least
// 80 % of one link's rate); and the transfer time.
//
// --blackhole: the link stays up and drops everything (`testbed.sh link-down 1 --blackhole`): a
// silent failure that only timeouts (or mptun's stale-subflow rule) tell.
//
// --concentrator: a third sender in each run, `mptun up --server` through the concentrator
// (`mptun server` in the server namespace) to a plain-TCP sink on an address of that
// namespace's own (on lo, so the concentrator's own leg is unshaped): does a pulled link stall
// the app through the concentrator longer than mptun to an MPTCP server (issue 9)?
//
//   sudo node dist/bench/failover.js [--rate 100] [--bytes 120000000] [--runs 2] [--blackhole] [--concentrator]
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, TestBed } from '../src/cli/bedrun.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '100' },
    bytes: { type: 'string', default: '120000000' },
    runs: { type: 'string', default: '2' },
    prefix: { type: 'string', default: 'mptbfo' },
    blackhole: { type: 'boolean', default: false },
    concentrator: { type: 'boolean', default: false },
  },
});
const rate = Number(values.rate);
const bytes = Number(values.bytes);
const runs = Number(values.runs);
const SINK = fileURLToPath(new URL('./rate-sink.js', import.meta.url));
const PEER = fileURLToPath(new URL('../test/tcp/kernel-peer.js', import.meta.url));
const PULL_AFTER_MS = 2000;
const MPTUN = fileURLToPath(new URL('../../bin/mptun.js', import.meta.url));
/** The plain-TCP destination behind the concentrator (an address on the server namespace's lo). */
const DEST = '10.219.9.1';
const CON_PORT = 7443;
const bed = new TestBed(values.prefix!);
const log = (s: string) => process.stderr.write(`bench/failover: ${s}\n`);

interface SinkReport { start: number; bucketMs: number; buckets: number[]; bytes: number }

function inNs(ns: string, argv: string[]) {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, exited, out: () => out, err: () => err };
}

type Who = 'kernel' | 'mptun' | 'concentrator';
let keyFile = '';

async function one(who: Who, port: number) {
  // through the concentrator the sink is plain TCP (no MPTCP: the concentrator's destination)
  const sink = inNs(bed.topo.TESTBED_NS_SERVER, [...(who === 'concentrator' ? [] : ['mptcpize', 'run']), process.execPath, SINK, '--port', String(port)]);
  while (!sink.err().includes('listening')) {
    if (sink.child.exitCode !== null) throw new Error(`sink: ${sink.err()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  if (who === 'mptun') await bed.startMptun();
  if (who === 'concentrator') await bed.startMptun(['--server', `${bed.topo.TESTBED_SRV_ADDR1}:${CON_PORT}`, '--key', keyFile]);
  const target = who === 'concentrator' ? DEST : bed.topo.TESTBED_SRV_ADDR1;
  const sender = inNs(bed.topo.TESTBED_NS_CLIENT, [...(who === 'kernel' ? ['mptcpize', 'run'] : []), process.execPath, PEER, '--mode', 'send', '--connect', `${target}:${port}`, '--bytes', String(bytes)]);
  const started = Date.now();
  await new Promise((r) => setTimeout(r, PULL_AFTER_MS));
  const pulledAt = Date.now();
  await bed.run('link-down', '1', ...(values.blackhole ? ['--blackhole'] : []));
  const code = await Promise.race([sender.exited, new Promise<null>((r) => setTimeout(() => r(null), 90_000))]);
  const done = Date.now();
  await bed.run('link-up', '1');
  if (who !== 'kernel') await bed.stopMptun();
  if (code === null) sender.child.kill('SIGKILL');
  await Promise.race([sink.exited, new Promise((r) => setTimeout(r, 3000))]);
  sink.child.kill();
  const rep = JSON.parse(sink.out().trim().split('\n').pop() ?? 'null') as SinkReport | null;
  if (code !== 0 || !rep) throw new Error(`${who}: the transfer did not finish (${code}): ${sender.out()} ${sender.err()}`);
  const mbit = (b: number, ms: number) => (b * 8) / ms / 1000;
  const pullBucket = Math.floor((pulledAt - rep.start) / rep.bucketMs);
  const before = rep.buckets.slice(Math.max(0, pullBucket - 20), pullBucket);
  const win = Math.round(200 / rep.bucketMs);
  let recoveryMs: number | null = null;
  for (let i = pullBucket; i + win <= rep.buckets.length; i++) {
    const sum = rep.buckets.slice(i, i + win).reduce((a, b) => a + b, 0);
    if (mbit(sum, win * rep.bucketMs) >= 0.8 * rate) {
      recoveryMs = Math.max(0, (i * rep.bucketMs + rep.start) - pulledAt);
      break;
    }
  }
  // the longest stretch with (almost) nothing delivered in order, within 2 s of the pull
  const quiet = (b: number) => mbit(b, rep.bucketMs) < 0.1 * rate;
  let stallMs = 0;
  for (let i = pullBucket, run = 0; i < Math.min(rep.buckets.length, pullBucket + 2000 / rep.bucketMs); i++) {
    run = quiet(rep.buckets[i]!) ? run + 1 : 0;
    stallMs = Math.max(stallMs, run * rep.bucketMs);
  }
  const firstSecond = rep.buckets.slice(pullBucket, pullBucket + 1000 / rep.bucketMs);
  return {
    who,
    beforePullMbit: +mbit(before.reduce((a, b) => a + b, 0), before.length * rep.bucketMs).toFixed(1),
    stallMs,
    firstSecondAfterPullMbit: +mbit(firstSecond.reduce((a, b) => a + b, 0), 1000).toFixed(1),
    recoveryMs,
    transferS: +((done - started) / 1000).toFixed(2),
    bytes: rep.bytes,
  };
}

let concentrator: ReturnType<typeof inNs> | null = null;
let keyDir = '';
const stopConcentrator = async () => {
  if (concentrator && concentrator.child.exitCode === null) {
    concentrator.child.kill('SIGTERM');
    await Promise.race([concentrator.exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
  if (keyDir) await rm(keyDir, { recursive: true, force: true });
};
process.once('SIGINT', () => void stopConcentrator().then(() => bed.down()).finally(() => process.exit(130)));
const whos: Who[] = values.concentrator ? ['kernel', 'mptun', 'concentrator'] : ['kernel', 'mptun'];
try {
  await bed.up(rate);
  if (values.concentrator) {
    keyDir = await mkdtemp(join(tmpdir(), 'mptbfo-'));
    keyFile = join(keyDir, 'key');
    await new Promise<void>((resolve, reject) => execFile(process.execPath, [MPTUN, 'server', '--genkey', keyFile], (e) => (e ? reject(e) : resolve())));
    const ns = bed.topo.TESTBED_NS_SERVER;
    await new Promise<void>((resolve, reject) => execFile('ip', ['-n', ns, 'addr', 'add', `${DEST}/32`, 'dev', 'lo'], (e) => (e ? reject(e) : resolve())));
    concentrator = inNs(ns, [process.execPath, MPTUN, 'server', '--listen', String(CON_PORT), '--key', keyFile, '--allow', `${DEST}/32`,
      '--control-socket', `/run/${values.prefix!}-server.sock`]);
    const c = concentrator;
    while (!c.err().includes('listening on')) {
      if (c.child.exitCode !== null) throw new Error(`mptun server: ${c.err()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const all: Array<Awaited<ReturnType<typeof one>>> = [];
  let port = 5010;
  for (let i = 0; i < runs; i++) {
    for (const who of whos) {
      log(`run ${i + 1}/${runs}: ${who}`);
      all.push(await one(who, port++));
    }
  }
  const med = (who: string, k: 'recoveryMs' | 'transferS' | 'beforePullMbit' | 'stallMs' | 'firstSecondAfterPullMbit') =>
    median(all.filter((r) => r.who === who).map((r) => r[k] ?? Infinity));
  const result = {
    bench: 'failover',
    failure: values.blackhole ? 'blackhole' : 'link down',
    links: 2,
    rateMbitPerLink: rate,
    bytes,
    pullAfterMs: PULL_AFTER_MS,
    median: Object.fromEntries(whos.map((who) => [who,
      Object.fromEntries((['beforePullMbit', 'stallMs', 'firstSecondAfterPullMbit', 'recoveryMs', 'transferS'] as const).map((k) => [k, med(who, k)]))])),
    runs: all,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await stopConcentrator();
  await bed.down();
}
