// A link of rate R and delay D delivers what it should: serialization, queueing, throughput,
// tail drop, loss, duplication, reordering, jitter and outages, all in virtual time.
import type { Instant, SansIoNode, Transmit } from '../../src/ip/sansio.js';
import { binomial, near, test, useSeed } from './helpers.js';
import type { LinkOptions } from './link.js';
import { PacketSink, PacketSource, type PacketSourceOptions, sentAtOf, seqOf } from './nodes.js';
import { Simulator } from './sim.js';

/** Serialization time of `bytes` at `rateBps`, ms, as the issue states it. */
const ser = (bytes: number, rateBps: number): number => ((bytes * 8) / rateBps) * 1000;

function pipe(seed: number, link: LinkOptions, source: PacketSourceOptions) {
  const sim = new Simulator({ seed });
  const src = sim.addNode(new PacketSource(source), 'src');
  const sink = sim.addNode(new PacketSink(), 'dst');
  const { ab } = sim.connect(src, 0, sink, 0, link);
  return { sim, src, sink, link: ab };
}

/** Sends `count` packets of `size` at each listed time. */
class Bursts implements SansIoNode {
  private readonly due: Instant[] = [];
  private seq = 0;
  constructor(bursts: Array<[at: Instant, count: number]>, private readonly size: number) {
    for (const [at, count] of bursts) for (let i = 0; i < count; i++) this.due.push(at);
  }
  handleInput(): void {}
  handleTimeout(): void {}
  pollTransmit(now: Instant): Transmit | null {
    if (this.seq >= this.due.length || this.due[this.seq]! > now) return null;
    const packet = Buffer.alloc(this.size);
    packet.writeUInt32BE(this.seq++, 0);
    return { iface: 0, packet };
  }
  pollTimeout(): Instant | null {
    return this.seq < this.due.length ? this.due[this.seq]! : null;
  }
}

/** Every packet offered is accounted for once the link is empty. */
function balanced(c: { sent: number; duplicated: number; delivered: number; droppedQueue: number; droppedLoss: number; droppedOutage: number }): boolean {
  return c.sent + c.duplicated === c.delivered + c.droppedQueue + c.droppedLoss + c.droppedOutage;
}

for (const [size, rate, delay] of [[1250, 10e6, 20], [1000, 7e6, 3.3], [1500, 1e9, 0], [64, 56e3, 250]] as const) {
  test(`one packet of ${size} B at ${rate} bit/s and ${delay} ms arrives at S*8/R*1000 + D`, (t) => {
    const { sim, sink, link } = pipe(useSeed(t, 1), { rateBps: rate, delayMs: delay }, { count: 1, size });
    t.is(sim.runUntilIdle().reason, 'idle');
    t.is(sink.received.length, 1);
    near(t, sink.times[0]!, ser(size, rate) + delay, 1e-9, 'arrival');
    t.like(link.counters, { sent: 1, delivered: 1, bytesDelivered: size, droppedQueue: 0 });
  });
}

test('exact arithmetic: 1250 B at 10 Mbit/s and 20 ms arrives at 21 ms', (t) => {
  const { sim, sink } = pipe(useSeed(t, 1), { rateBps: 10e6, delayMs: 20 }, { count: 1, size: 1250 });
  sim.runUntilIdle();
  t.deepEqual(sink.times, [21]);
});

test('an infinitely fast link only delays', (t) => {
  const { sim, sink } = pipe(useSeed(t, 1), { delayMs: 7 }, { count: 3, size: 9000, startAt: 5 });
  sim.runUntilIdle();
  t.deepEqual(sink.times, [12, 12, 12]);
  t.deepEqual(sink.seqs, [0, 1, 2]);
});

test('a burst of N packets arrives spaced S*8/R, the first after one serialization', (t) => {
  const N = 100, S = 1500, R = 5e6, D = 10;
  const { sim, sink } = pipe(useSeed(t, 1), { rateBps: R, delayMs: D }, { count: N, size: S });
  sim.runUntilIdle();
  t.is(sink.received.length, N);
  t.deepEqual(sink.seqs, [...Array(N).keys()]);
  sink.times.forEach((at, i) => near(t, at, (i + 1) * ser(S, R) + D, 1e-9, `arrival of packet ${i}`));
  for (let i = 1; i < N; i++) near(t, sink.times[i]! - sink.times[i - 1]!, ser(S, R), 1e-9, `spacing ${i}`);
});

test('a packet that finds the link idle is not delayed by an earlier burst', (t) => {
  // 10 packets of 1 ms each from t=0; the 11th at t=50 finds an idle transmitter.
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const src = sim.addNode(new Bursts([[0, 10], [50, 1]], 1250), 'src');
  const sink = sim.addNode(new PacketSink(), 'dst');
  sim.connect(src, 0, sink, 0, { rateBps: 10e6, delayMs: 2 });
  sim.runUntilIdle();
  t.deepEqual(sink.times, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 53]);
});

test('throughput over a long run equals the rate, within one packet', (t) => {
  // Offered at 1.5 R into an unlimited queue: the link is busy from the first packet to the last.
  const R = 20e6, S = 1500, D = 15, N = 4000;
  const { sim, sink, link } = pipe(useSeed(t, 1), { rateBps: R, delayMs: D }, { count: N, size: S, rateBps: 1.5 * R });
  sim.runUntilIdle();
  t.is(link.counters.delivered, N);
  near(t, sink.times[N - 1]!, N * ser(S, R) + D, 1e-6, 'last arrival');
  // Bytes that arrived in a 2-second window in the middle of the run.
  const from = D + 100, to = D + 2100;
  const bytes = sink.received.filter((r) => r.time > from && r.time <= to).reduce((a, r) => a + r.packet.length, 0);
  const expected = (R * (to - from)) / 1000 / 8;
  t.true(Math.abs(bytes - expected) <= S, `${bytes} B in ${to - from} ms, expected ${expected} B (rate ${R})`);
});

test('a packet-limited queue tail-drops a burst beyond the limit', (t) => {
  const { sim, sink, link } = pipe(useSeed(t, 1), { rateBps: 10e6, delayMs: 1, queueLimitPackets: 10 }, { count: 100, size: 1250 });
  sim.runUntilIdle();
  t.like(link.counters, { sent: 100, delivered: 10, droppedQueue: 90 });
  t.deepEqual(sink.seqs, [...Array(10).keys()], 'the first ten, the tail dropped');
});

test('a byte-limited queue counts the packet on the transmitter', (t) => {
  const S = 1250;
  const { sim, link } = pipe(useSeed(t, 1), { rateBps: 10e6, queueLimitBytes: 10 * S + S / 2 }, { count: 100, size: S });
  sim.runUntilIdle();
  t.like(link.counters, { delivered: 10, droppedQueue: 90 });
});

test('the queue drains at the rate: a second burst finds room for what has left', (t) => {
  // 1 ms per packet; limit 10. At t=5 five packets have left, five remain: five of the
  // second burst are admitted, fifteen dropped.
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const src = sim.addNode(new Bursts([[0, 20], [5, 20]], 1250), 'src');
  const sink = sim.addNode(new PacketSink(), 'dst');
  const { ab } = sim.connect(src, 0, sink, 0, { rateBps: 10e6, queueLimitPackets: 10 });
  sim.runUntilIdle();
  t.like(ab.counters, { sent: 40, delivered: 15, droppedQueue: 25 });
  t.deepEqual(sink.seqs, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 22, 23, 24]);
  t.deepEqual(sink.times, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
});

test('loss rate p over many packets lands in a binomial bound', (t) => {
  const N = 20000, p = 0.1;
  const { sim, sink, link } = pipe(useSeed(t, 11), { delayMs: 5, loss: p }, { count: N, size: 100, intervalMs: 0.1 });
  sim.runUntilIdle();
  binomial(t, link.counters.droppedLoss, N, p, 'lost');
  t.is(sink.received.length, N - link.counters.droppedLoss);
  t.true(sink.seqs.every((s, i, a) => i === 0 || s > a[i - 1]!), 'loss does not reorder');
  t.true(balanced(link.counters));
});

test('duplication is observed with the expected frequency, copies right behind originals', (t) => {
  const N = 20000, p = 0.05;
  const { sim, sink, link } = pipe(useSeed(t, 12), { delayMs: 5, duplicate: p }, { count: N, size: 100, intervalMs: 0.1 });
  sim.runUntilIdle();
  binomial(t, link.counters.duplicated, N, p, 'duplicated');
  t.is(sink.received.length, N + link.counters.duplicated);
  let pairs = 0;
  for (let i = 1; i < sink.received.length; i++) {
    const a = sink.received[i - 1]!, b = sink.received[i]!;
    if (seqOf(a.packet) !== seqOf(b.packet)) continue;
    pairs++;
    t.true(a.packet.equals(b.packet) && a.packet !== b.packet, 'a copy has the same bytes in a buffer of its own');
    t.is(a.time, b.time);
  }
  t.is(pairs, link.counters.duplicated);
  t.true(balanced(link.counters));
});

test('reordering is observed with the expected frequency and changes arrival order', (t) => {
  const N = 5000, p = 0.1, D = 10, extra = 5;
  const { sim, sink, link } = pipe(useSeed(t, 13), { delayMs: D, reorder: p, reorderDelayMs: extra }, { count: N, size: 100, intervalMs: 1 });
  sim.runUntilIdle();
  binomial(t, link.counters.reordered, N, p, 'reordered');
  t.deepEqual([...sink.seqs].sort((a, b) => a - b), [...Array(N).keys()], 'every packet arrives once');
  const late = sink.received.filter((r) => r.time - sentAtOf(r.packet) === D + extra).length;
  t.is(late, link.counters.reordered, 'the reordered packets are the ones with the extra delay');
  let overtaken = 0;
  for (let i = 1; i < N; i++) if (sink.seqs[i]! < sink.seqs[i - 1]!) overtaken++;
  // A packet delayed 5 ms behind packets 1 ms apart is overtaken unless the next ones are delayed too.
  t.true(overtaken > 0.5 * link.counters.reordered, `${overtaken} inversions for ${link.counters.reordered} reordered packets`);
});

test('jitter spreads delay over [D, D + jitter) and never reorders', (t) => {
  const N = 2000, D = 10, J = 5;
  const { sim, sink } = pipe(useSeed(t, 14), { delayMs: D, jitterMs: J }, { count: N, size: 100, intervalMs: 1 });
  sim.runUntilIdle();
  t.deepEqual(sink.seqs, [...Array(N).keys()]);
  const delays = sink.received.map((r) => r.time - sentAtOf(r.packet));
  t.true(delays.every((d) => d >= D && d < D + J), 'every delay within [D, D + J)');
  t.true(Math.max(...delays) - Math.min(...delays) > J / 2, 'the delays really vary');
});

test('an outage drops exactly what enters during it, and the link recovers after', (t) => {
  // One packet per ms, from t=0; down during [100, 200). No delay: nothing is on the wire.
  const { sim, sink, link } = pipe(useSeed(t, 1), { outages: [{ start: 100, end: 200 }] }, { count: 300, size: 100, intervalMs: 1 });
  sim.runUntilIdle();
  t.is(link.counters.droppedOutage, 100);
  const expected = [...Array(300).keys()].filter((s) => s < 100 || s >= 200);
  t.deepEqual(sink.seqs, expected);
  t.is(sink.received.find((r) => seqOf(r.packet) === 200)?.time, 200, 'delivered again from the end of the outage');
});

test('an outage also drops what is on the wire when it starts', (t) => {
  // Delay 10: the packets sent at 91..99 are still on the wire at 100; the one sent at 90 lands at 100.
  const { sim, sink, link } = pipe(useSeed(t, 1), { delayMs: 10, outages: [{ start: 100, end: 200 }] }, { count: 300, size: 100, intervalMs: 1 });
  sim.runUntilIdle();
  t.is(link.counters.droppedOutage, 100 + 9);
  t.deepEqual(sink.seqs, [...Array(300).keys()].filter((s) => s <= 90 || s >= 200));
  t.true(balanced(link.counters));
});

test('an outage flushes the queue: after it the transmitter is idle', (t) => {
  // 50 packets of 1 ms queued at t=0 (packet i leaves the transmitter at i+1, lands at i+3);
  // down during [10, 20): 0..7 have landed by 10, 8 and 9 are on the wire, 10..49 queued.
  // A packet at t=30 goes at once.
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const src = sim.addNode(new Bursts([[0, 50], [30, 1]], 1250), 'src');
  const sink = sim.addNode(new PacketSink(), 'dst');
  const { ab } = sim.connect(src, 0, sink, 0, { rateBps: 10e6, delayMs: 2, outages: [{ start: 10, end: 20 }] });
  sim.runUntilIdle();
  t.deepEqual(sink.seqs, [0, 1, 2, 3, 4, 5, 6, 7, 50]);
  t.is(sink.times.at(-1), 30 + 1 + 2);
  t.like(ab.counters, { delivered: 9, droppedOutage: 42 });
});

test('down() and up() at run time', (t) => {
  const { sim, sink, link } = pipe(useSeed(t, 1), { delayMs: 1 }, { count: 100, size: 100, intervalMs: 1 });
  sim.at(20.5, (now) => link.down(now));
  sim.at(40.5, (now) => link.up(now));
  sim.runUntilIdle();
  // Sent at 20 lands at 21 after the link went down at 20.5: lost on the wire; 21..40 enter a down link.
  t.deepEqual(sink.seqs, [...Array(100).keys()].filter((s) => s < 20 || s > 40));
  t.is(link.counters.droppedOutage, 21);
  t.false(link.isDown(sim.now));
});

test('configure() changes the rate for the packets that follow', (t) => {
  // 1 ms per packet at 10 Mbit/s, then 2 ms per packet at 5 Mbit/s for those sent after t=2.5.
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const src = sim.addNode(new Bursts([[0, 4], [3, 2]], 1250), 'src');
  const sink = sim.addNode(new PacketSink(), 'dst');
  const { ab } = sim.connect(src, 0, sink, 0, { rateBps: 10e6 });
  sim.at(2.5, (now) => ab.configure(now, { rateBps: 5e6 }));
  sim.runUntilIdle();
  t.deepEqual(sink.times, [1, 2, 3, 4, 6, 8]);
});

test('all impairments together: every packet is accounted for', (t) => {
  const { sim, link } = pipe(
    useSeed(t, 15),
    { rateBps: 8e6, delayMs: 20, jitterMs: 3, queueLimitPackets: 20, loss: 0.02, duplicate: 0.02, reorder: 0.05, reorderDelayMs: 4, outages: [{ start: 300, end: 320 }] },
    { count: 3000, size: 1000, rateBps: 9e6 },
  );
  sim.runUntilIdle();
  const c = link.counters;
  t.true(balanced(c), JSON.stringify(c));
  t.is(link.inFlight, 0);
  t.true(c.droppedQueue > 0 && c.droppedLoss > 0 && c.droppedOutage > 0 && c.duplicated > 0 && c.reordered > 0, JSON.stringify(c));
});

test('bad link options are refused', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const a = sim.addNode(new PacketSink(), 'a');
  const b = sim.addNode(new PacketSink(), 'b');
  t.throws(() => sim.connect(a, 0, b, 0, { rateBps: 0 }), { instanceOf: RangeError });
  t.throws(() => sim.connect(a, 0, b, 0, { loss: 1.5 }), { instanceOf: RangeError });
  t.throws(() => sim.connect(a, 0, b, 0, { outages: [{ start: 5, end: 1 }] }), { instanceOf: RangeError });
});
