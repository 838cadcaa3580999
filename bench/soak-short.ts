// The short connections of bench/soak: a steady stream of connect / echo / close against an
// echo server (bench/conn-load.ts `server`, on the kernel's MPTCP listener), plain node:net, so
// that `mptun up` captures it. About RATE connections a second, started on a fixed clock
// whatever the ones before are doing (at most MAX_IN_FLIGHT open at once: the others are
// counted as skipped). Each writes a seeded random size in [MIN, MAX] bytes of a seeded
// keystream (AES-256-CTR, key sha256("mptun soak short SEED N"), so a run replays), checks the
// echo byte for byte as it comes, half-closes once it has all of it, and waits for the
// server's FIN. A connection that errs, is refused, gets a wrong byte, closes early, or has not
// echoed and closed within TIMEOUT ms has failed (with that reason).
//
// One JSON line every 10 s ({phase: 'progress'}); on a line `stop` on stdin (or SIGTERM) it
// starts no more, waits for the open ones, and prints {phase: 'final'}: ok, failed, skipped,
// failures by reason, the first failures, and the latency (connect to the last echoed byte)
// median / p99 / max, with how many took over a second (and when the first of them started).
//
//   node dist/bench/soak-short.js --connect HOST:PORT [--rate 20] [--seed 1] [--min 1024] [--max 65536]
import { createCipheriv, createHash } from 'node:crypto';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Rng } from '../test/sim/rng.js';

const { values } = parseArgs({
  options: {
    connect: { type: 'string' },
    rate: { type: 'string', default: '20' },
    seed: { type: 'string', default: '1' },
    min: { type: 'string', default: '1024' },
    max: { type: 'string', default: '65536' },
    timeout: { type: 'string', default: '30000' },
    'max-in-flight': { type: 'string', default: '1000' },
  },
});
if (!values.connect) {
  process.stderr.write('soak-short: --connect HOST:PORT\n');
  process.exit(2);
}
const i = values.connect.lastIndexOf(':');
const host = values.connect.slice(0, i);
const port = Number(values.connect.slice(i + 1));
const RATE = Number(values.rate);
const SEED = Number(values.seed);
const MIN = Number(values.min);
const MAX = Number(values.max);
const TIMEOUT_MS = Number(values.timeout);
const MAX_IN_FLIGHT = Number(values['max-in-flight']);
const rng = new Rng(SEED);
const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

let started = 0;
let ok = 0;
let failed = 0;
let skipped = 0;
let inFlight = 0;
let stopping = false;
const errors: Record<string, number> = {};
const failures: Array<{ atS: number; n: number; size: number; reason: string; echoed: number; port?: number; chunk?: number; firstDiff?: number; wrongFrom?: number | null }> = [];
const latencies: number[] = [];
/** Connections slower than SLOW_MS (connect to the last echoed byte): how many, the first ones and when they started. */
const SLOW_MS = 1000;
let slowCount = 0;
const slow: Array<{ startS: number; ms: number; size: number }> = [];
const t0 = performance.now();
const atS = () => +((performance.now() - t0) / 1000).toFixed(1);

/** Connection number `n`: `size` bytes out, the same bytes back, then both FINs. */
function one(n: number, size: number): void {
  const key = createHash('sha256').update(`mptun soak short ${SEED} ${n}`).digest();
  const data = createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
  inFlight++;
  const start = performance.now();
  let got = 0;
  let echoedAt: number | null = null;
  let done = false;
  const s = connect({ host, port });
  const finish = (reason?: string, detail: { chunk?: number; firstDiff?: number; wrongFrom?: number | null } = {}) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    inFlight--;
    if (reason !== undefined) {
      failed++;
      errors[reason] = (errors[reason] ?? 0) + 1;
      if (failures.length < 20) failures.push({ atS: atS(), n, size, reason, echoed: got, ...(s.localPort !== undefined ? { port: s.localPort } : {}), ...detail });
      s.destroy();
    } else {
      ok++;
      const ms = echoedAt! - start;
      latencies.push(ms);
      if (ms > SLOW_MS) {
        slowCount++;
        if (slow.length < 20) slow.push({ startS: +((start - t0) / 1000).toFixed(1), ms: Math.round(ms), size });
      }
    }
    if (stopping && inFlight === 0) final();
  };
  const timer = setTimeout(() => finish(echoedAt === null ? 'timeout (echo)' : 'timeout (close)'), TIMEOUT_MS);
  s.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  s.once('connect', () => s.write(data));
  s.on('data', (d: Buffer) => {
    // byte for byte: what comes back is the next part of what was sent, and no more
    if (got + d.length > size || !d.equals(data.subarray(got, got + d.length))) {
      // where it went wrong: the chunk's length, and the offset of its first wrong byte
      let i = 0;
      while (i < d.length && got + i < size && d[i] === data[got + i]) i++;
      // and where the wrong bytes come from: the offset in what was sent of the 16 bytes from
      // the first wrong one (a stream shifted or replayed), or null (bytes never sent here)
      const wrong = d.subarray(i, i + 16);
      const from = wrong.length === 16 ? data.indexOf(wrong) : -1;
      finish('echo differs', { chunk: d.length, firstDiff: got + i, wrongFrom: from >= 0 ? from : null });
      return;
    }
    got += d.length;
    if (got === size) {
      echoedAt = performance.now();
      s.end();
    }
  });
  s.once('close', () => finish(echoedAt === null ? 'closed before the echo' : undefined));
}

const interval = 1000 / RATE;
let next = performance.now();
let timer: NodeJS.Timeout | null = null;
const tick = () => {
  const now = performance.now();
  while (!stopping && next <= now) {
    // the size is drawn for every slot, skipped or not: the sequence is the seed's
    const size = MIN + rng.int(MAX - MIN + 1);
    const n = started++;
    if (inFlight >= MAX_IN_FLIGHT) skipped++;
    else one(n, size);
    next += interval;
  }
  if (!stopping) timer = setTimeout(tick, Math.max(0, next - performance.now()));
};
tick();

const quantile = (sorted: number[], p: number) =>
  (sorted.length ? +sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(2) : null);
const progress = setInterval(() => out({ phase: 'progress', atS: atS(), started, ok, failed, skipped, inFlight }), 10_000);

let finalized = false;
function final(): void {
  if (finalized) return;
  finalized = true;
  clearInterval(progress);
  const sorted = [...latencies].sort((a, b) => a - b);
  out({
    phase: 'final', seconds: atS(), started, ok, failed, skipped, inFlightLeft: inFlight, errors, failures,
    medianMs: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), maxMs: quantile(sorted, 1), slowOver1s: slowCount, slow,
  });
  process.exit(0);
}

function stop(): void {
  if (stopping) return;
  stopping = true;
  if (timer) clearTimeout(timer);
  if (inFlight === 0) final();
  // the open ones have TIMEOUT_MS at most; then whatever is left is reported as left
  setTimeout(final, TIMEOUT_MS + 2000).unref();
}
createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'stop') stop();
});
process.on('SIGTERM', stop);
