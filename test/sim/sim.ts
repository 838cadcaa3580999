// A deterministic network simulator in virtual time that runs sans-IO nodes (src/ip/sansio.ts)
// over simulated links (./link.ts).
//
// Determinism: one event queue ordered by (time, insertion sequence); nodes are polled in the
// order they were added; every random draw comes from generators forked from the simulator's
// seed in a fixed order (one fork per `connect`). Same seed, same topology, same calls: the
// same trace, bit for bit.
//
// The driver, after every event (a packet landing, a node's timer, a scheduled callback) and
// at the start of every run: for each node in order, drain `pollTransmit(now)` onto the link
// attached to the interface (a packet to an unconnected interface is counted and dropped),
// then re-read `pollTimeout()` and (re-)arm that node's timer. A deadline in the past fires
// at `now`.
import type { Instant, SansIoNode } from '../../src/ip/sansio.js';
import { duplex, type Duplex, type Flight, type Link, type LinkOptions, type TraceHook } from './link.js';
import { Rng } from './rng.js';
import { deadlineViolation } from '../helpers/invariants.js';

export interface SimulatorOptions {
  /** Seed of every random draw of the run. */
  seed: number;
  /** Called for every link event and every packet dropped for want of a link. */
  trace?: TraceHook;
  /**
   * Livelock guard: a run throws when this many events happen at one instant (a node whose
   * deadline never moves past `now`, two nodes bouncing packets over zero-delay links ...).
   */
  maxEventsPerInstant?: number;
  /** Livelock guard: a node that returns more packets than this from one poll round throws. */
  maxTransmitsPerPoll?: number;
  /**
   * Throw when a node's deadline is at or before `now` after its timer fired and its output was
   * drained (test/helpers/invariants.ts deadlineViolation): a deadline that neither fires work
   * nor is cleared.
   */
  checkDeadlines?: boolean;
}

export interface RunOptions {
  /** Stop at this virtual time even if events remain (a node re-arming its timer forever). */
  maxTime?: Instant;
  /** Stop after this many events. */
  maxEvents?: number;
}

export interface RunResult {
  /** Why the run stopped: nothing left to do, the time limit, or the event limit. */
  reason: 'idle' | 'deadline' | 'maxEvents';
  now: Instant;
  /** Events processed by this run. */
  events: number;
}

export interface SimCounters {
  /** Events processed (stale timer entries excluded). */
  events: number;
  /** Packets a node sent out of an interface with no link. */
  droppedUnconnected: number;
}

/** A node's place in the simulation. */
interface NodeEntry {
  readonly node: SansIoNode;
  readonly name: string;
  readonly index: number;
  /** Outgoing link of each connected interface. */
  readonly links: Map<number, Attachment>;
  /** The deadline a timer event is queued for, or null. */
  armed: Instant | null;
  /** Sequence number of the live timer event; older ones are stale. */
  timerSeq: number;
}

/** A link, and the node and interface at its far end. */
interface Attachment {
  readonly link: Link;
  readonly to: NodeEntry;
  readonly toIface: number;
}

type Event =
  | { time: Instant; seq: number; kind: 'land'; via: Attachment; flight: Flight }
  | { time: Instant; seq: number; kind: 'timer'; entry: NodeEntry }
  | { time: Instant; seq: number; kind: 'call'; fn: (now: Instant) => void };

/** A binary min-heap of events on (time, seq). */
class EventQueue {
  private readonly heap: Event[] = [];

  get size(): number {
    return this.heap.length;
  }

  peek(): Event | undefined {
    return this.heap[0];
  }

  push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Event, b: Event): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

export class Simulator {
  readonly seed: number;
  readonly counters: SimCounters = { events: 0, droppedUnconnected: 0 };
  private clock: Instant = 0;
  private seq = 0;
  private readonly queue = new EventQueue();
  private readonly entries: NodeEntry[] = [];
  private readonly byNode = new Map<SansIoNode, NodeEntry>();
  private readonly byName = new Map<string, NodeEntry>();
  private readonly allLinks: Link[] = [];
  private readonly rng: Rng;
  private readonly trace: TraceHook | null;
  private readonly maxEventsPerInstant: number;
  private readonly maxTransmitsPerPoll: number;
  private readonly checkDeadlines: boolean;
  private eventsThisInstant = 0;
  private lastEventTime: Instant = -Infinity;

  constructor(options: SimulatorOptions) {
    this.seed = options.seed >>> 0;
    this.rng = new Rng(this.seed);
    this.trace = options.trace ?? null;
    this.maxEventsPerInstant = options.maxEventsPerInstant ?? 1_000_000;
    this.maxTransmitsPerPoll = options.maxTransmitsPerPoll ?? 1_000_000;
    this.checkDeadlines = options.checkDeadlines ?? false;
  }

  /** Current virtual time, ms. Starts at 0. */
  get now(): Instant {
    return this.clock;
  }

  /** Every link, in the order they were made (a->b then b->a for each `connect`). */
  get links(): readonly Link[] {
    return this.allLinks;
  }

  /** Adds a node; `name` (unique) names its links in traces. Returns the node. */
  addNode<T extends SansIoNode>(node: T, name: string): T {
    if (this.byNode.has(node)) throw new Error(`node already added as ${this.byNode.get(node)?.name}`);
    if (this.byName.has(name)) throw new Error(`a node is already named ${name}`);
    const entry: NodeEntry = { node, name, index: this.entries.length, links: new Map(), armed: null, timerSeq: -1 };
    this.entries.push(entry);
    this.byNode.set(node, entry);
    this.byName.set(name, entry);
    return node;
  }

  /**
   * Connects `a`'s interface `aIface` to `b`'s interface `bIface` with a link each way:
   * `ab` from a to b, `ba` from b to a (by default the same options as `ab`).
   * Links are named `name:iface->name:iface`.
   */
  connect(a: SansIoNode, aIface: number, b: SansIoNode, bIface: number, ab: LinkOptions = {}, ba: LinkOptions = ab): Duplex {
    const ea = this.entry(a);
    const eb = this.entry(b);
    for (const [e, i] of [[ea, aIface], [eb, bIface]] as const) {
      if (!Number.isInteger(i) || i < 0) throw new RangeError(`bad interface ${i} on ${e.name}`);
      if (e.links.has(i)) throw new Error(`${e.name}:${i} is already connected`);
    }
    if (ea === eb && aIface === bIface) throw new Error(`cannot connect ${ea.name}:${aIface} to itself`);
    const d = duplex(`${ea.name}:${aIface}`, `${eb.name}:${bIface}`, this.rng, ab, ba);
    for (const link of [d.ab, d.ba]) {
      link.trace = this.trace;
      this.allLinks.push(link);
    }
    ea.links.set(aIface, { link: d.ab, to: eb, toIface: bIface });
    eb.links.set(bIface, { link: d.ba, to: ea, toIface: aIface });
    return d;
  }

  /** The outgoing link of `node`'s interface `iface`, if connected. */
  linkFrom(node: SansIoNode, iface: number): Link | undefined {
    return this.entry(node).links.get(iface)?.link;
  }

  /** A link by name, e.g. `client:0->server:0`. */
  link(name: string): Link | undefined {
    return this.allLinks.find((l) => l.name === name);
  }

  /**
   * Runs `fn(now)` at virtual time `at` (not before `now`), then polls every node: the way a
   * test acts on the world mid-run (an application write, a link going down).
   */
  at(at: Instant, fn: (now: Instant) => void): void {
    this.queue.push({ time: Math.max(at, this.clock), seq: this.seq++, kind: 'call', fn });
  }

  /** Processes every event up to and including `deadline`, then sets the clock to `deadline`. */
  runUntil(deadline: Instant, options: { maxEvents?: number } = {}): RunResult {
    const r = this.run(deadline, options.maxEvents ?? Infinity);
    if (r.reason !== 'maxEvents' && deadline > this.clock) this.clock = deadline;
    return { ...r, now: this.clock };
  }

  /** Advances the clock by `ms` (runUntil(now + ms)). */
  runFor(ms: number, options: { maxEvents?: number } = {}): RunResult {
    return this.runUntil(this.clock + ms, options);
  }

  /**
   * Runs until no event is queued and no node has a deadline ('idle', the clock stays at the
   * last event), or until `maxTime` ('deadline', the clock is set to `maxTime`), or until
   * `maxEvents` events ('maxEvents').
   */
  runUntilIdle(options: RunOptions = {}): RunResult {
    const maxTime = options.maxTime ?? Infinity;
    const r = this.run(maxTime, options.maxEvents ?? Infinity);
    if (r.reason === 'deadline' && maxTime !== Infinity) this.clock = Math.max(this.clock, maxTime);
    return { ...r, now: this.clock };
  }

  /** True when no event is pending and no node has a deadline (polls every node first). */
  isIdle(): boolean {
    this.pollAll();
    return this.peekLive() === undefined;
  }

  private run(limit: Instant, maxEvents: number): RunResult {
    let events = 0;
    this.pollAll();
    for (;;) {
      const next = this.peekLive();
      if (next === undefined) return { reason: 'idle', now: this.clock, events };
      if (next.time > limit) return { reason: 'deadline', now: this.clock, events };
      if (events >= maxEvents) return { reason: 'maxEvents', now: this.clock, events };
      this.queue.pop();
      this.dispatch(next);
      events++;
      this.pollAll();
      if (this.checkDeadlines && next.kind === 'timer') {
        const v = deadlineViolation(next.entry.node, this.clock);
        if (v) throw new Error(`${next.entry.name}: ${v} (seed ${this.seed})`);
      }
    }
  }

  /** The next event that is not a stale timer entry, left in the queue. */
  private peekLive(): Event | undefined {
    for (;;) {
      const e = this.queue.peek();
      if (e === undefined) return undefined;
      if (e.kind === 'timer' && e.seq !== e.entry.timerSeq) {
        this.queue.pop();
        continue;
      }
      return e;
    }
  }

  private dispatch(e: Event): void {
    if (e.time > this.clock) this.clock = e.time;
    if (this.clock === this.lastEventTime) {
      if (++this.eventsThisInstant > this.maxEventsPerInstant) {
        throw new Error(`livelock: more than ${this.maxEventsPerInstant} events at t=${this.clock} ms (seed ${this.seed})`);
      }
    } else {
      this.lastEventTime = this.clock;
      this.eventsThisInstant = 1;
    }
    this.counters.events++;
    switch (e.kind) {
      case 'land':
        if (e.via.link.land(e.flight, this.clock)) e.via.to.node.handleInput(this.clock, e.via.toIface, e.flight.packet);
        break;
      case 'timer':
        e.entry.armed = null;
        e.entry.timerSeq = -1;
        e.entry.node.handleTimeout(this.clock);
        break;
      case 'call':
        e.fn(this.clock);
        break;
    }
  }

  /** Drains every node's transmissions onto the links and re-arms every node's timer. */
  private pollAll(): void {
    for (const entry of this.entries) {
      this.drain(entry);
      this.arm(entry);
    }
  }

  private drain(entry: NodeEntry): void {
    const now = this.clock;
    for (let n = 0; ; n++) {
      const tx = entry.node.pollTransmit(now);
      if (tx === null) return;
      if (n >= this.maxTransmitsPerPoll) {
        throw new Error(`livelock: ${entry.name} returned more than ${this.maxTransmitsPerPoll} packets at t=${now} ms (seed ${this.seed})`);
      }
      const via = entry.links.get(tx.iface);
      // The node may reuse its buffer after the next poll (sansio.ts): the link keeps a copy.
      const packet = Buffer.from(tx.packet);
      if (via === undefined) {
        this.counters.droppedUnconnected++;
        if (this.trace) this.trace({ time: now, link: `${entry.name}:${tx.iface}`, event: 'drop-unconnected', bytes: packet.length, packet });
        continue;
      }
      for (const flight of via.link.send(now, packet)) {
        this.queue.push({ time: flight.at, seq: this.seq++, kind: 'land', via, flight });
      }
    }
  }

  private arm(entry: NodeEntry): void {
    const deadline = entry.node.pollTimeout();
    if (deadline === entry.armed) return;
    entry.armed = deadline;
    if (deadline === null) {
      entry.timerSeq = -1;
      return;
    }
    entry.timerSeq = this.seq++;
    this.queue.push({ time: Math.max(deadline, this.clock), seq: entry.timerSeq, kind: 'timer', entry });
  }

  private entry(node: SansIoNode): NodeEntry {
    const e = this.byNode.get(node);
    if (e === undefined) throw new Error('node not added to this simulator');
    return e;
  }
}
