// The driver: virtual clock, event order, timers, idle detection, replay, topologies.
import type { Instant, SansIoNode, Transmit } from '../../src/ip/sansio.js';
import { near, test, useSeed } from './helpers.js';
import type { TraceRecord } from './link.js';
import { EchoNode, Forwarder, PacketSink, PacketSource, seqOf } from './nodes.js';
import { Simulator } from './sim.js';

/** A node that re-arms its timer forever, every `period` ms. */
class Ticker implements SansIoNode {
  ticks: Instant[] = [];
  private next: Instant;
  constructor(private readonly period: number) {
    this.next = period;
  }
  handleInput(): void {}
  handleTimeout(now: Instant): void {
    if (now < this.next) return;
    this.ticks.push(now);
    this.next = now + this.period;
  }
  pollTransmit(): Transmit | null {
    return null;
  }
  pollTimeout(): Instant | null {
    return this.next;
  }
}

/** Runs a lossy, jittery, reordering, duplicating two-path topology and returns its trace. */
function impairedRun(seed: number): string[] {
  const trace: TraceRecord[] = [];
  const sim = new Simulator({ seed, trace: (r) => trace.push(r) });
  const src = sim.addNode(new PacketSource({ count: 400, size: 600, intervalMs: 0.5, ifaces: [0, 1] }), 'src');
  const echo = sim.addNode(new EchoNode(), 'echo');
  const impaired = { rateBps: 10e6, delayMs: 5, jitterMs: 2, loss: 0.05, duplicate: 0.05, reorder: 0.1, reorderDelayMs: 3, queueLimitPackets: 50 };
  sim.connect(src, 0, echo, 0, impaired);
  sim.connect(src, 1, echo, 1, { ...impaired, rateBps: 2e6, delayMs: 30 });
  sim.runUntilIdle();
  return trace.map((r) => `${r.time} ${r.link} ${r.event} ${r.bytes} ${seqOf(r.packet)}`);
}

test('the same seed replays the exact same trace; another seed gives another', (t) => {
  const seed = useSeed(t, 21);
  const a = impairedRun(seed);
  const b = impairedRun(seed);
  t.true(a.length > 1000);
  t.deepEqual(a, b);
  t.notDeepEqual(impairedRun(seed + 1), a);
});

test('runUntilIdle stops at maxTime with a node that re-arms its timer forever', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const ticker = sim.addNode(new Ticker(10), 'ticker');
  const r = sim.runUntilIdle({ maxTime: 1000 });
  t.is(r.reason, 'deadline');
  t.is(sim.now, 1000);
  t.is(ticker.ticks.length, 100);
  t.is(ticker.ticks.at(-1), 1000);
  // And it picks up where it stopped.
  sim.runUntilIdle({ maxTime: 1500 });
  t.is(ticker.ticks.length, 150);
});

test('runUntilIdle with maxEvents stops a run that would not end', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  sim.addNode(new Ticker(1), 'ticker');
  const r = sim.runUntilIdle({ maxEvents: 500 });
  t.is(r.reason, 'maxEvents');
  t.is(r.events, 500);
  t.is(sim.now, 500);
});

test('runUntilIdle goes idle when nothing is left; the clock stays at the last event', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const src = sim.addNode(new PacketSource({ count: 10, size: 100, intervalMs: 2 }), 'src');
  sim.connect(src, 0, sim.addNode(new PacketSink(), 'dst'), 0, { delayMs: 30 });
  const r = sim.runUntilIdle({ maxTime: 10_000 });
  t.is(r.reason, 'idle');
  t.is(sim.now, 18 + 30);
  t.true(sim.isIdle());
});

test('runUntil processes events up to the deadline and sets the clock to it', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const src = sim.addNode(new PacketSource({ count: 10, size: 100, intervalMs: 10 }), 'src');
  const sink = sim.addNode(new PacketSink(), 'dst');
  sim.connect(src, 0, sink, 0, { delayMs: 5 });
  sim.runUntil(45);
  t.is(sim.now, 45);
  t.deepEqual(sink.times, [5, 15, 25, 35, 45], 'an event at the deadline is processed');
  sim.runFor(20);
  t.is(sim.now, 65);
  t.is(sink.received.length, 7);
  t.is(sim.runUntilIdle().reason, 'idle');
  t.is(sink.received.length, 10);
});

test('two paths with different rate and delay both deliver, each on its own schedule', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const client = sim.addNode(new PacketSource({ count: 200, size: 1500, ifaces: [0, 1] }), 'client');
  const server = sim.addNode(new PacketSink(), 'server');
  const fast = sim.connect(client, 0, server, 0, { rateBps: 100e6, delayMs: 10 });
  const slow = sim.connect(client, 1, server, 1, { rateBps: 10e6, delayMs: 40 });
  sim.runUntilIdle();
  const onFast = server.on(0), onSlow = server.on(1);
  t.is(onFast.length, 100);
  t.is(onSlow.length, 100);
  t.true(onFast.every((r) => seqOf(r.packet) % 2 === 0) && onSlow.every((r) => seqOf(r.packet) % 2 === 1));
  onFast.forEach((r, i) => near(t, r.time, ((i + 1) * 1500 * 8 * 1000) / 100e6 + 10, 1e-9, `fast ${i}`));
  onSlow.forEach((r, i) => near(t, r.time, ((i + 1) * 1500 * 8 * 1000) / 10e6 + 40, 1e-9, `slow ${i}`));
  t.like(fast.ab.counters, { delivered: 100, bytesDelivered: 150_000 });
  t.like(slow.ab.counters, { delivered: 100, bytesDelivered: 150_000 });
  t.is(sim.link('client:1->server:1'), slow.ab);
  t.is(sim.linkFrom(server, 0), fast.ba);
});

test('an echo over a duplex link: the reverse direction has its own settings', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const src = sim.addNode(new PacketSource({ count: 3, size: 100, intervalMs: 1 }), 'src');
  const echo = sim.addNode(new EchoNode(), 'echo');
  sim.connect(src, 0, echo, 0, { delayMs: 5 }, { delayMs: 20 });
  sim.runUntilIdle();
  t.deepEqual(src.received.map((r) => r.time), [25, 26, 27]);
  t.deepEqual(src.received.map((r) => seqOf(r.packet)), [0, 1, 2]);
  t.is(echo.echoed, 3);
});

test('a packet sent out of an unconnected interface is counted and dropped', (t) => {
  const trace: TraceRecord[] = [];
  const sim = new Simulator({ seed: useSeed(t, 1), trace: (r) => trace.push(r) });
  const src = sim.addNode(new PacketSource({ count: 4, size: 100, ifaces: [0, 7] }), 'src');
  const sink = sim.addNode(new PacketSink(), 'dst');
  sim.connect(src, 0, sink, 0);
  sim.runUntilIdle();
  t.is(sink.received.length, 2);
  t.is(sim.counters.droppedUnconnected, 2);
  t.deepEqual(trace.filter((r) => r.event === 'drop-unconnected').map((r) => r.link), ['src:7', 'src:7']);
});

test('the trace shows each packet sent and delivered, with time, link and bytes', (t) => {
  const trace: TraceRecord[] = [];
  const sim = new Simulator({ seed: useSeed(t, 1), trace: (r) => trace.push(r) });
  const src = sim.addNode(new PacketSource({ count: 2, size: 1250 }), 'a');
  sim.connect(src, 0, sim.addNode(new PacketSink(), 'b'), 3, { rateBps: 10e6, delayMs: 1 });
  sim.runUntilIdle();
  t.deepEqual(trace.map(({ time, link, event, bytes }) => ({ time, link, event, bytes })), [
    { time: 0, link: 'a:0->b:3', event: 'send', bytes: 1250 },
    { time: 0, link: 'a:0->b:3', event: 'send', bytes: 1250 },
    { time: 2, link: 'a:0->b:3', event: 'deliver', bytes: 1250 },
    { time: 3, link: 'a:0->b:3', event: 'deliver', bytes: 1250 },
  ]);
});

test('a deadline in the past fires at now', (t) => {
  class Late implements SansIoNode {
    fired: Instant[] = [];
    handleInput(): void {}
    handleTimeout(now: Instant): void {
      this.fired.push(now);
    }
    pollTransmit(): Transmit | null {
      return null;
    }
    pollTimeout(): Instant | null {
      return this.fired.length === 0 ? -5 : null;
    }
  }
  const sim = new Simulator({ seed: useSeed(t, 1) });
  sim.runUntil(10);
  const late = sim.addNode(new Late(), 'late');
  t.is(sim.runUntilIdle().reason, 'idle');
  t.deepEqual(late.fired, [10]);
});

test('a deadline that never moves past now is reported as a livelock', (t) => {
  class Stuck implements SansIoNode {
    calls = 0;
    handleInput(): void {}
    handleTimeout(): void {
      this.calls++;
    }
    pollTransmit(): Transmit | null {
      return null;
    }
    pollTimeout(): Instant | null {
      return 3;
    }
  }
  const sim = new Simulator({ seed: useSeed(t, 1), maxEventsPerInstant: 1000 });
  const stuck = sim.addNode(new Stuck(), 'stuck');
  const e = t.throws(() => sim.runUntilIdle({ maxTime: 100 }));
  t.regex(e?.message ?? '', /livelock: more than 1000 events at t=3 ms/);
  t.is(stuck.calls, 1000);
});

test('events at the same instant run in the order they were scheduled', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const order: string[] = [];
  sim.at(5, () => order.push('a'));
  sim.at(3, () => order.push('first'));
  sim.at(5, () => order.push('b'));
  sim.at(5, (now) => sim.at(now, () => order.push('d')));
  sim.at(5, () => order.push('c'));
  sim.runUntilIdle();
  t.deepEqual(order, ['first', 'a', 'b', 'c', 'd']);
  t.is(sim.now, 5);
});

test('an application action mid-run (sim.at) is followed by a poll of every node', (t) => {
  // A node that sends one packet each time it is told to, from outside the simulator.
  class Manual implements SansIoNode {
    private pending = 0;
    send(): void {
      this.pending++;
    }
    handleInput(): void {}
    handleTimeout(): void {}
    pollTransmit(): Transmit | null {
      if (this.pending === 0) return null;
      this.pending--;
      return { iface: 0, packet: Buffer.alloc(20) };
    }
    pollTimeout(): Instant | null {
      return null;
    }
  }
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const app = sim.addNode(new Manual(), 'app');
  const sink = sim.addNode(new PacketSink(), 'sink');
  sim.connect(app, 0, sink, 0, { delayMs: 1 });
  sim.at(10, () => app.send());
  sim.at(20, () => app.send());
  sim.runUntilIdle();
  t.deepEqual(sink.times, [11, 21]);
  // Outside a run, the next run picks the action up at the current time.
  app.send();
  sim.runUntilIdle();
  t.deepEqual(sink.times, [11, 21, 22]);
});

test('a forwarder in the middle: a middlebox hook may drop or rewrite', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const src = sim.addNode(new PacketSource({ count: 10, size: 100, intervalMs: 1 }), 'src');
  const box = sim.addNode(
    new Forwarder({ 0: 1, 1: 0 }, (_now, _iface, p) => {
      if (seqOf(p) % 2 === 1) return null;
      p[99] = 0x42;
      return p;
    }),
    'box',
  );
  const sink = sim.addNode(new PacketSink(), 'dst');
  sim.connect(src, 0, box, 0, { delayMs: 2 });
  sim.connect(box, 1, sink, 0, { delayMs: 3 });
  sim.runUntilIdle();
  t.deepEqual(sink.seqs, [0, 2, 4, 6, 8]);
  t.deepEqual(sink.times, [5, 7, 9, 11, 13]);
  t.true(sink.received.every((r) => r.packet[99] === 0x42));
  t.like(box.counters, { forwarded: 5, droppedByHook: 5, noRoute: 0 });
});

test('topology errors are refused', (t) => {
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const a = sim.addNode(new PacketSink(), 'a');
  const b = sim.addNode(new PacketSink(), 'b');
  t.throws(() => sim.addNode(new PacketSink(), 'a'));
  t.throws(() => sim.addNode(a, 'c'));
  sim.connect(a, 0, b, 0);
  t.throws(() => sim.connect(a, 0, b, 1), { message: /already connected/ });
  t.throws(() => sim.connect(a, 1, new PacketSink(), 0), { message: /not added/ });
});

test('node buffers are copied onto the link: a node may reuse its output buffer', (t) => {
  class Reuser implements SansIoNode {
    private readonly out = Buffer.alloc(4);
    private n = 0;
    handleInput(): void {}
    handleTimeout(): void {}
    pollTransmit(): Transmit | null {
      if (this.n >= 3) return null;
      this.out.writeUInt32BE(this.n++);
      return { iface: 0, packet: this.out };
    }
    pollTimeout(): Instant | null {
      return null;
    }
  }
  const sim = new Simulator({ seed: useSeed(t, 1) });
  const r = sim.addNode(new Reuser(), 'r');
  const sink = sim.addNode(new PacketSink(), 'sink');
  sim.connect(r, 0, sink, 0, { delayMs: 1 });
  sim.runUntilIdle();
  t.deepEqual(sink.seqs, [0, 1, 2]);
});
