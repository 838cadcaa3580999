// The delay line of the test bed (scripts/testbed.sh): test-bed tooling, not part of mptun's
// packet path. It opens one TUN device per pipe (one direction of one link), and the bed's
// policy routing sends that direction's packets into it; each packet read is held, dropped or
// paced by its pipe (bench/delayline-model.ts: loss, Gilbert-Elliott, rate with a byte-limited
// queue, delay, jitter without reordering) and written back into the same device when due,
// so the kernel takes it as received on that device and forwards or delivers it.
//
//   node dist/bench/delayline.js --config FILE [--stats FILE] [--slack-us N]
//
// FILE (JSON) is {"pipes": [{"dev": NAME, "delayMs", "jitterMs", "lossPct", "rateMbit",
// "queueBytes", "overheadBytes", "ge": null | {"p", "r", "lossBad", "lossGood"} (percentages)}, ...]}.
// SIGHUP reads it again and changes the parameters of the open pipes (devices stay as they
// are); SIGUSR1 writes the counters (JSON) to the stats file; SIGTERM/SIGINT write them and
// exit (the devices go with the process). Prints "ready <dev>..." once the devices are open.
//
// Timing: one timer, for the earliest due packet of all pipes (never one per packet); times
// come from process.hrtime.bigint(). Node's timers have millisecond granularity and fire up to
// a millisecond early or late: the timer is asked early by a learned advance (so that it
// fires at the due time on average), a wake-up releases every packet due within `slack`
// (default 0.5 ms) of now, and a wake-up that came too early for the next packet turns the
// event loop (setImmediate) for the rest of that millisecond rather than wait for another
// timer. The release error is then about ±0.5 ms, centred, instead of 0..2 ms late.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Tun } from '../src/tun/index.js';
import { Pipe, type PipeParams } from './delayline-model.js';

interface PipeConfig {
  dev: string;
  delayMs?: number;
  jitterMs?: number;
  lossPct?: number;
  rateMbit?: number;
  queueBytes?: number;
  overheadBytes?: number;
  ge?: { p: number; r: number; lossBad?: number; lossGood?: number } | null;
}

function toParams(c: PipeConfig): PipeParams {
  const ge = c.ge
    ? { p: c.ge.p / 100, r: c.ge.r / 100, lossBad: (c.ge.lossBad ?? 100) / 100, lossGood: (c.ge.lossGood ?? 0) / 100 }
    : null;
  return {
    delayNs: (c.delayMs ?? 0) * 1e6,
    jitterNs: (c.jitterMs ?? 0) * 1e6,
    loss: (c.lossPct ?? 0) / 100,
    ge,
    rateBps: (c.rateMbit ?? 0) * 1e6,
    queueBytes: c.queueBytes ?? 0,
    overheadBytes: c.overheadBytes ?? 0,
  };
}

function readConfig(file: string): PipeConfig[] {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { pipes?: PipeConfig[] };
  if (!Array.isArray(parsed.pipes) || parsed.pipes.some((p) => typeof p.dev !== 'string')) {
    throw new Error(`${file}: expected {"pipes": [{"dev": ...}, ...]}`);
  }
  return parsed.pipes;
}

const { values } = parseArgs({
  options: {
    config: { type: 'string' },
    stats: { type: 'string' },
    'slack-us': { type: 'string', default: '500' },
  },
});
if (!values.config) {
  console.error('usage: delayline --config FILE [--stats FILE] [--slack-us N]');
  process.exit(2);
}
const configFile = values.config;
const SLACK_NS = Number(values['slack-us']) * 1000;

interface Line {
  dev: string;
  tun: Tun;
  pipe: Pipe;
  shortWrites: number;
}

const lines: Line[] = readConfig(configFile).map((c) => ({
  dev: c.dev,
  tun: Tun.open({ name: c.dev, maxBatch: 256 }),
  pipe: new Pipe(toParams(c)),
  shortWrites: 0,
}));

const hrnow = () => Number(process.hrtime.bigint());

let timer: NodeJS.Timeout | undefined;
let timerDue = Infinity; // the due time the timer is for (ns)
let timerAt = 0; // when it was asked to fire (ns)
let spin: NodeJS.Immediate | undefined;
let wakeups = 0;
let spins = 0;
// How late Node's timers fire after the asked time, ns (a moving average, a sixteenth per
// wake-up): the timer is asked that much early. Node's timers have millisecond granularity
// and libuv's clock is in whole milliseconds, so this is about a millisecond, more when the
// machine is loaded.
let advanceNs = 1e6;
const MAX_ADVANCE_NS = 3e6;

// Sparse traffic (pings, requests and responses: at most SPIN_HELD packets held) gets a
// precise release: when the next packet is due within SPIN_WITHIN, the event loop turns
// (setImmediate, reads still served) until it is due, rather than wait for a timer that may
// fire a millisecond off. Bulk traffic never spins: its wake-ups release
// what is due within the slack, and the next timer takes the rest.
const SPIN_HELD = 8;
const SPIN_WITHIN_NS = 1.5e6;
// Spinning may take at most a fifth of the time (a token bucket of 5 ms): request/response
// traffic over a short delay would otherwise spin all the time, at real-time priority.
const SPIN_SHARE = 0.2;
const SPIN_BUCKET_NS = 5e6;
let spinTokens = SPIN_BUCKET_NS;
let spinClock = 0;

/** May the loop spin now? Charges the time since the last look to the bucket. */
function spinAllowed(now: number, spinning: boolean): boolean {
  const dt = spinClock ? now - spinClock : 0;
  spinClock = now;
  spinTokens = Math.min(SPIN_BUCKET_NS, spinTokens + dt * SPIN_SHARE - (spinning ? dt : 0));
  return spinTokens > 0;
}

function held(): number {
  let n = 0;
  for (const l of lines) n += l.pipe.held;
  return n;
}

/** Writes back every packet due by now + slack (no slack for sparse traffic: it spins). */
function flush(now: number): void {
  const slack = held() <= SPIN_HELD ? 0 : SLACK_NS;
  for (const l of lines) {
    const n = l.pipe.release(now + slack, now);
    if (n === 0) continue;
    const done = l.tun.writeBatch(l.pipe.ring, l.pipe.outOffsets, l.pipe.outLengths, n);
    if (done < n) l.shortWrites += n - done;
  }
}

function nextDue(): number {
  let next = Infinity;
  for (const l of lines) next = Math.min(next, l.pipe.nextDue());
  return next;
}

/** Keeps the one timer on the earliest due packet. */
function schedule(now: number, spinning = false): void {
  if (spin) return; // a spin is on; it schedules when it ends
  const next = nextDue();
  if (next === Infinity) {
    if (timer) clearTimeout(timer);
    timer = undefined;
    timerDue = Infinity;
    return;
  }
  if (next - now < SPIN_WITHIN_NS && held() <= SPIN_HELD && spinAllowed(now, spinning)) {
    if (timer) clearTimeout(timer);
    timer = undefined;
    timerDue = Infinity;
    spins++;
    spin = setImmediate(onSpin);
    return;
  }
  if (timer && timerDue <= next) return;
  if (timer) clearTimeout(timer);
  timerDue = next;
  // sparse traffic: aim half a spin early, the spin does the rest
  const early = held() <= SPIN_HELD ? SPIN_WITHIN_NS / 2 : 0;
  timerAt = Math.max(now, next - advanceNs - early);
  timer = setTimeout(onTimer, (timerAt - now) / 1e6);
}

function onTimer(): void {
  timer = undefined;
  timerDue = Infinity;
  wakeups++;
  const now = hrnow();
  advanceNs = Math.min(MAX_ADVANCE_NS, Math.max(0, advanceNs + (now - timerAt - advanceNs) / 16));
  flush(now);
  schedule(now);
}

function onSpin(): void {
  spin = undefined;
  const now = hrnow();
  flush(now);
  schedule(now, true);
}

for (const l of lines) {
  l.tun.start((batch) => {
    const now = hrnow();
    for (let i = 0; i < batch.count; i++) l.pipe.push(batch.arena, batch.offsets[i], batch.lengths[i], now);
    flush(now);
    schedule(now);
  });
}

function stats(): string {
  return JSON.stringify({
    pid: process.pid,
    wakeups,
    spins,
    advanceUs: Math.round(advanceNs / 1e3),
    cpu: process.cpuUsage(),
    pipes: Object.fromEntries(lines.map((l) => [l.dev, {
      params: l.pipe.params, held: l.pipe.held, shortWrites: l.shortWrites, ...l.pipe.counters, tun: l.tun.stats(),
    }])),
  });
}

function writeStats(): void {
  if (values.stats) writeFileSync(values.stats, stats() + '\n');
}

process.on('SIGHUP', () => {
  try {
    const byDev = new Map(readConfig(configFile).map((c) => [c.dev, c]));
    for (const l of lines) {
      const c = byDev.get(l.dev);
      if (c) l.pipe.params = toParams(c);
    }
  } catch (e) {
    console.error(`delayline: SIGHUP: ${e instanceof Error ? e.message : String(e)} (parameters unchanged)`);
  }
});
process.on('SIGUSR1', writeStats);
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    writeStats();
    for (const l of lines) l.tun.close();
    process.exit(0);
  });
}
process.stdout.write(`ready ${lines.map((l) => l.dev).join(' ')}\n`);
