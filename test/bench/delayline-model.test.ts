// The delay line's pipe (bench/delayline-model.ts) does to each packet what a path does:
// holds it for the delay, never reorders under jitter, serializes it at the rate behind the
// packets ahead, drops at the tail of a full queue, loses at random or in Gilbert-Elliott
// bursts, and hands back the bytes it was given. Time is a parameter here: no clock, no sleep.
import test from 'ava';
import { geMeanLoss, NO_IMPAIRMENT, Pipe, type PipeParams } from '../../bench/delayline-model.js';

const MS = 1e6; // ns

function params(p: Partial<PipeParams>): PipeParams {
  return { ...NO_IMPAIRMENT, ...p };
}

/** A packet of `len` bytes, every byte `fill`. */
function packet(len: number, fill: number): Buffer {
  return Buffer.alloc(len, fill);
}

/** The packets a release handed out, as buffers (copied). */
function released(pipe: Pipe, until: number, now = until): Buffer[] {
  const n = pipe.release(until, now);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    out.push(Buffer.from(pipe.ring.subarray(pipe.outOffsets[i], pipe.outOffsets[i] + pipe.outLengths[i])));
  }
  return out;
}

/** A seeded generator of uniform numbers in [0, 1) (xorshift32), so the loss tests are fixed. */
function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

test('a packet is held for the one-way delay, not a nanosecond less, and comes out unchanged', (t) => {
  const pipe = new Pipe(params({ delayNs: 10 * MS }));
  const p = packet(100, 7);
  t.true(pipe.push(p, 0, p.length, 5 * MS));
  t.is(pipe.nextDue(), 15 * MS);
  t.deepEqual(released(pipe, 15 * MS - 1), []);
  t.deepEqual(released(pipe, 15 * MS), [p]);
  t.is(pipe.held, 0);
  t.like(pipe.counters, { packetsIn: 1, packetsOut: 1, bytesOut: 100 });
});

test('the caller\'s read buffer is free at once: the pipe keeps a copy', (t) => {
  const pipe = new Pipe(params({ delayNs: 1 * MS }));
  const arena = Buffer.alloc(300, 1);
  pipe.push(arena, 100, 100, 0);
  arena.fill(9);
  t.deepEqual(released(pipe, 1 * MS), [Buffer.alloc(100, 1)]);
});

test('under jitter each delay varies within ± jitter, and packets never overtake each other', (t) => {
  const pipe = new Pipe(params({ delayNs: 10 * MS, jitterNs: 4 * MS }), { random: seeded(42) });
  const order: number[] = [];
  let lastDue = 0;
  let spread = 0;
  for (let i = 0; i < 1000; i++) {
    const now = i * 0.1 * MS;
    pipe.push(packet(60, i % 256), 0, 60, now);
    for (const b of released(pipe, now)) order.push(b[0]);
  }
  for (const b of released(pipe, Infinity)) order.push(b[0]);
  t.deepEqual(order, Array.from({ length: 1000 }, (_, i) => i % 256), 'the FIFO keeps the order');
  // a fresh pipe: the due times (before the no-overtaking rule) spread over the jitter
  const fresh = new Pipe(params({ delayNs: 10 * MS, jitterNs: 4 * MS }), { random: seeded(7) });
  for (let i = 0; i < 200; i++) {
    const now = i * 20 * MS; // far apart: nothing to overtake
    fresh.push(packet(60, 0), 0, 60, now);
    const due = fresh.nextDue() - now;
    t.true(due >= 6 * MS && due <= 14 * MS, `delay ${due / MS} ms within 10 ± 4`);
    spread = Math.max(spread, Math.abs(due - 10 * MS));
    t.true(fresh.nextDue() >= lastDue);
    lastDue = fresh.nextDue();
    released(fresh, Infinity);
  }
  t.true(spread > 3 * MS, 'the jitter is used, not ignored');
});

test('at the rate, packets are serialized one after another, with the framing overhead counted', (t) => {
  // 1 Mbit/s, 1236 + 14 bytes = 10 ms each on the wire; 5 ms of propagation after that
  const pipe = new Pipe(params({ rateBps: 1e6, overheadBytes: 14, delayNs: 5 * MS }));
  for (let i = 0; i < 5; i++) pipe.push(packet(1236, i), 0, 1236, 0);
  const dues: number[] = [];
  while (pipe.held > 0) {
    dues.push(pipe.nextDue() / MS);
    released(pipe, pipe.nextDue());
  }
  t.deepEqual(dues.map((d) => Math.round(d * 1e6) / 1e6), [15, 25, 35, 45, 55]);
});

test('a link that was idle starts serializing at the arrival, not where the last packet ended', (t) => {
  const pipe = new Pipe(params({ rateBps: 8e6 })); // 1 byte per µs
  pipe.push(packet(1000, 0), 0, 1000, 0);
  pipe.push(packet(1000, 0), 0, 1000, 50 * MS);
  t.is(pipe.nextDue(), 1000 * 1000); // 1000 bytes at 1 byte per µs
  released(pipe, pipe.nextDue());
  t.is(pipe.nextDue(), 50 * MS + 1000 * 1000);
});

test('the queue at the rate holds queueBytes and drops at the tail', (t) => {
  const pipe = new Pipe(params({ rateBps: 1e6, queueBytes: 3000 }));
  const accepted = [0, 1, 2, 3].map((i) => pipe.push(packet(1000, i), 0, 1000, 0));
  t.deepEqual(accepted, [true, true, true, false]);
  t.is(pipe.counters.dropQueue, 1);
  t.is(pipe.queued(0), 3000);
  // once one packet has gone out on the wire (8 ms at 1 Mbit/s) there is room for one more
  t.true(pipe.push(packet(1000, 4), 0, 1000, 8 * MS));
  t.false(pipe.push(packet(1000, 5), 0, 1000, 8 * MS));
});

test('random loss drops the asked fraction', (t) => {
  const pipe = new Pipe(params({ loss: 0.1 }), { random: seeded(1) });
  for (let i = 0; i < 20000; i++) pipe.push(packet(40, 0), 0, 40, i);
  const fraction = pipe.counters.dropRandom / 20000;
  t.true(fraction > 0.09 && fraction < 0.11, `lost ${fraction}`);
  t.is(pipe.counters.dropRandom + pipe.held, 20000);
});

test('Gilbert-Elliott loss: the mean of the chain, in bursts of about 1/r packets', (t) => {
  // Good->Bad 2 %, Bad->Good 25 %, everything lost in Bad: mean 2/27 = 7.4 %, bursts of 4
  const ge = { p: 0.02, r: 0.25, lossBad: 1, lossGood: 0 };
  const pipe = new Pipe(params({ ge }), { random: seeded(3) });
  const n = 200000;
  let bursts = 0;
  let prevLost = false;
  for (let i = 0; i < n; i++) {
    const before = pipe.counters.dropBurst;
    pipe.push(packet(40, 0), 0, 40, i);
    const lost = pipe.counters.dropBurst > before;
    if (lost && !prevLost) bursts++;
    prevLost = lost;
    if (i % 1000 === 0) released(pipe, Infinity);
  }
  const mean = pipe.counters.dropBurst / n;
  t.true(Math.abs(mean - geMeanLoss(ge)) < 0.01, `mean loss ${mean}, chain ${geMeanLoss(ge)}`);
  const burst = pipe.counters.dropBurst / bursts;
  t.true(burst > 3.5 && burst < 4.5, `mean burst ${burst} packets (1/r = 4)`);
  t.is(pipe.counters.dropRandom, 0);
});

test('the ring wraps: a packet never straddles its end, and bytes survive the wrap', (t) => {
  const pipe = new Pipe(params({ delayNs: 1 }), { ringBytes: 4000 });
  const seen: Buffer[] = [];
  const sent: Buffer[] = [];
  for (let i = 0; i < 20; i++) {
    const p = packet(1100 + i * 13, i);
    sent.push(p);
    t.true(pipe.push(p, 0, p.length, i * 10));
    if (i % 2 === 1) seen.push(...released(pipe, i * 10 + 1));
  }
  seen.push(...released(pipe, Infinity));
  t.deepEqual(seen, sent);
  t.is(pipe.counters.dropRing, 0);
});

test('a full ring drops (and counts) rather than overwrite what it holds', (t) => {
  const pipe = new Pipe(params({ delayNs: 10 * MS }), { ringBytes: 4000, slots: 8 });
  const ok = [0, 1, 2, 3].map((i) => pipe.push(packet(1500, i), 0, 1500, 0));
  t.deepEqual(ok, [true, true, false, false]);
  t.is(pipe.counters.dropRing, 2);
  t.deepEqual(released(pipe, Infinity), [packet(1500, 0), packet(1500, 1)]);
  const slotsFull = new Pipe(params({ delayNs: 10 * MS }), { slots: 2 });
  t.deepEqual([0, 1, 2].map(() => slotsFull.push(packet(10, 0), 0, 10, 0)), [true, true, false]);
});

test('lateness counters: how far after its due time each packet was released', (t) => {
  const pipe = new Pipe(params({ delayNs: 10 * MS }));
  pipe.push(packet(10, 0), 0, 10, 0);
  pipe.push(packet(10, 0), 0, 10, 0);
  pipe.release(10 * MS, 11 * MS);
  t.is(pipe.counters.lateSumNs, 2 * MS);
  t.is(pipe.counters.lateMaxNs, 1 * MS);
});

test('a jitter larger than the delay never makes a packet leave before it arrived', (t) => {
  const pipe = new Pipe(params({ delayNs: 1 * MS, jitterNs: 4 * MS }), { random: seeded(9) });
  for (let i = 0; i < 500; i++) {
    const now = i * 10 * MS;
    pipe.push(packet(60, 0), 0, 60, now);
    t.true(pipe.nextDue() >= now, `due ${(pipe.nextDue() - now) / MS} ms after arrival`);
    released(pipe, Infinity);
  }
});
