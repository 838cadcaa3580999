// A one-direction link in virtual time: a FIFO transmit queue drained at a rate, then a wire
// with propagation delay, jitter, random loss, reordering, duplication and outages. This is
// the netem this kernel does not have.
//
// The life of a packet offered at `now` (`send`):
//   1. outage:   entering while the link is down           -> droppedOutage
//   2. queue:    backlog + this packet over a limit        -> droppedQueue (tail drop)
//   3. serialization: it waits for the packets ahead of it, then takes size*8/rate
//   4. loss:     with probability `loss` it dies on the wire (it used the transmitter) -> droppedLoss
//   5. wire:     arrives at  end of serialization + delayMs + U[0, jitterMs)
//                jitter never reorders: a packet never overtakes the one sent before it;
//                with probability `reorder` it gets `reorderDelayMs` more and may be
//                overtaken by later packets (counted `reordered`)
//   6. duplicate: with probability `duplicate` a copy arrives with it, right after it
//   7. landing (`land`): a packet whose time on the link [entry, arrival) overlaps an outage
//                is dropped when it would have arrived -> droppedOutage
//
// The backlog is every admitted packet whose serialization has not finished at `now`,
// the one on the transmitter included. When an outage starts, the queue is flushed: those
// packets are lost (7) and the transmitter is idle when the link comes back.
//
// Each impairment draws from a stream of its own, so turning on loss does not change which
// packets get reordered.
import type { Instant } from '../../src/ip/sansio.js';
import { Rng } from './rng.js';

export interface Outage {
  /** The link goes down at `start` (inclusive) ... */
  start: Instant;
  /** ... and is up again at `end` (exclusive). Infinity: down until `up()`. */
  end: Instant;
}

export interface LinkConfig {
  /** Transmit rate in bits per second; Infinity for no serialization delay. */
  rateBps: number;
  /** Propagation delay, ms. */
  delayMs: number;
  /** Extra delay uniform in [0, jitterMs), ms. Jitter preserves order. */
  jitterMs: number;
  /** Tail drop when the backlog would exceed this many bytes. */
  queueLimitBytes: number;
  /** Tail drop when the backlog would exceed this many packets. */
  queueLimitPackets: number;
  /** Probability that a packet is lost on the wire, 0..1. */
  loss: number;
  /** Probability that a packet gets `reorderDelayMs` of extra delay, 0..1. */
  reorder: number;
  reorderDelayMs: number;
  /** Probability that a packet is delivered twice, 0..1. */
  duplicate: number;
  /** Scheduled outages; `down()`/`up()` add more at run time. */
  outages: Outage[];
}

/** Every field optional: a default link is an infinitely fast, zero-delay, perfect wire. */
export type LinkOptions = Partial<LinkConfig>;

export const DEFAULT_LINK: Readonly<LinkConfig> = Object.freeze({
  rateBps: Infinity,
  delayMs: 0,
  jitterMs: 0,
  queueLimitBytes: Infinity,
  queueLimitPackets: Infinity,
  loss: 0,
  reorder: 0,
  reorderDelayMs: 0,
  duplicate: 0,
  outages: [],
});

export function linkConfig(options: LinkOptions = {}): LinkConfig {
  const c: LinkConfig = { ...DEFAULT_LINK, ...options, outages: (options.outages ?? []).map((o) => ({ ...o })) };
  if (!(c.rateBps > 0)) throw new RangeError(`rateBps must be > 0, got ${c.rateBps}`);
  for (const k of ['delayMs', 'jitterMs', 'reorderDelayMs', 'queueLimitBytes', 'queueLimitPackets'] as const) {
    if (!(c[k] >= 0)) throw new RangeError(`${k} must be >= 0, got ${c[k]}`);
  }
  for (const k of ['loss', 'reorder', 'duplicate'] as const) {
    if (!(c[k] >= 0 && c[k] <= 1)) throw new RangeError(`${k} must be in [0, 1], got ${c[k]}`);
  }
  for (const o of c.outages) if (!(o.end >= o.start)) throw new RangeError(`outage ends before it starts: ${JSON.stringify(o)}`);
  return c;
}

export interface LinkCounters {
  /** Packets offered to the link. */
  sent: number;
  bytesSent: number;
  /** Packets that arrived at the far end, duplicates included. */
  delivered: number;
  bytesDelivered: number;
  droppedQueue: number;
  droppedLoss: number;
  droppedOutage: number;
  /** Extra copies made. */
  duplicated: number;
  /** Packets given the reorder delay. */
  reordered: number;
}

export type LinkEvent = 'send' | 'drop-queue' | 'drop-loss' | 'drop-outage' | 'duplicate' | 'reorder' | 'deliver';

export interface TraceRecord {
  time: Instant;
  /** The link's name; for packets sent out of an unconnected interface, `node:iface`. */
  link: string;
  event: LinkEvent | 'drop-unconnected';
  bytes: number;
  packet: Buffer;
}

export type TraceHook = (record: TraceRecord) => void;

/** A packet on the link, to be handed to `land` at `at`. */
export interface Flight {
  at: Instant;
  enteredAt: Instant;
  packet: Buffer;
}

export class Link {
  readonly name: string;
  readonly config: LinkConfig;
  readonly counters: LinkCounters = {
    sent: 0,
    bytesSent: 0,
    delivered: 0,
    bytesDelivered: 0,
    droppedQueue: 0,
    droppedLoss: 0,
    droppedOutage: 0,
    duplicated: 0,
    reordered: 0,
  };
  /** Set by the simulator; called for every event on this link. */
  trace: TraceHook | null = null;

  private readonly lossRng: Rng;
  private readonly dupRng: Rng;
  private readonly reorderRng: Rng;
  private readonly jitterRng: Rng;

  // The transmit queue, as the finish times and sizes of the admitted packets not yet serialized.
  private qFinish: number[] = [];
  private qSize: number[] = [];
  private qHead = 0;
  private backlogBytes = 0;
  // The current busy period: it started at `periodStart`, and `periodBits` have been admitted
  // since. Finish times are computed from its start (not by summing), so they do not drift.
  private periodStart: Instant = -Infinity;
  private periodBits = 0;
  private busyUntil: Instant = -Infinity;
  // The arrival time of the last in-order packet: jitter never lets a packet overtake it.
  private lastArrival: Instant = -Infinity;
  private inFlightCount = 0;

  constructor(name: string, options: LinkOptions, rng: Rng) {
    this.name = name;
    this.config = linkConfig(options);
    this.lossRng = rng.fork();
    this.dupRng = rng.fork();
    this.reorderRng = rng.fork();
    this.jitterRng = rng.fork();
  }

  /** Packets admitted and not yet landed or dropped. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Packets in the transmit queue at `now` (the one being serialized included). */
  queuedPackets(now: Instant): number {
    this.drainQueue(now);
    return this.qFinish.length - this.qHead;
  }

  /**
   * Changes the link's configuration from `now` on (a rate change, a new loss rate ...).
   * Packets already admitted keep their schedule; the next ones are serialized at the new rate
   * after them.
   */
  configure(now: Instant, options: LinkOptions): void {
    const next = linkConfig({ ...this.config, ...options });
    Object.assign(this.config, next);
    if (this.busyUntil > now) {
      this.periodStart = this.busyUntil;
      this.periodBits = 0;
    }
  }

  /** True when `t` falls in an outage. */
  isDown(t: Instant): boolean {
    return this.config.outages.some((o) => o.start <= t && t < o.end);
  }

  /** Takes the link down from `now` until `up()`. */
  down(now: Instant): void {
    if (!this.isDown(now)) this.config.outages.push({ start: now, end: Infinity });
  }

  /** Ends every outage open at `now`. */
  up(now: Instant): void {
    for (const o of this.config.outages) if (o.start <= now && now < o.end) o.end = now;
  }

  /**
   * Offers `packet` to the link at `now`. Returns what will arrive and when (0, 1 or 2 flights,
   * in arrival order for a duplicate), each to be handed to `land` at its time. The link keeps
   * `packet`: pass a copy if the sender reuses its buffer.
   */
  send(now: Instant, packet: Buffer): Flight[] {
    const c = this.config;
    const size = packet.length;
    this.counters.sent++;
    this.counters.bytesSent += size;
    this.emit(now, 'send', packet);

    if (this.isDown(now)) {
      this.counters.droppedOutage++;
      this.emit(now, 'drop-outage', packet);
      return [];
    }

    this.flushOnOutage(now);
    this.drainQueue(now);
    const queued = this.qFinish.length - this.qHead;
    if (queued + 1 > c.queueLimitPackets || this.backlogBytes + size > c.queueLimitBytes) {
      this.counters.droppedQueue++;
      this.emit(now, 'drop-queue', packet);
      return [];
    }

    // Serialization: a FIFO drained at rateBps.
    if (now >= this.busyUntil) {
      this.periodStart = now;
      this.periodBits = 0;
    }
    this.periodBits += size * 8;
    const finish = c.rateBps === Infinity ? now : this.periodStart + (this.periodBits * 1000) / c.rateBps;
    this.busyUntil = finish;
    if (finish > now) {
      this.qFinish.push(finish);
      this.qSize.push(size);
      this.backlogBytes += size;
    }

    if (this.lossRng.chance(c.loss)) {
      this.counters.droppedLoss++;
      this.emit(now, 'drop-loss', packet);
      return [];
    }

    let at = finish + c.delayMs + (c.jitterMs > 0 ? this.jitterRng.uniform(0, c.jitterMs) : 0);
    at = Math.max(at, this.lastArrival);
    if (this.reorderRng.chance(c.reorder)) {
      at += c.reorderDelayMs;
      this.counters.reordered++;
      this.emit(now, 'reorder', packet);
    } else {
      this.lastArrival = at;
    }

    const flights: Flight[] = [{ at, enteredAt: now, packet }];
    if (this.dupRng.chance(c.duplicate)) {
      this.counters.duplicated++;
      this.emit(now, 'duplicate', packet);
      flights.push({ at, enteredAt: now, packet: Buffer.from(packet) });
    }
    this.inFlightCount += flights.length;
    return flights;
  }

  /**
   * The flight reaches the far end at `now` (= flight.at). True when it is delivered; false
   * when an outage overlapped its time on the link.
   */
  land(flight: Flight, now: Instant): boolean {
    this.inFlightCount--;
    const overlaps = this.config.outages.some((o) => o.end > o.start && o.start < now && o.end > flight.enteredAt);
    if (overlaps) {
      this.counters.droppedOutage++;
      this.emit(now, 'drop-outage', flight.packet);
      return false;
    }
    this.counters.delivered++;
    this.counters.bytesDelivered += flight.packet.length;
    this.emit(now, 'deliver', flight.packet);
    return true;
  }

  private emit(time: Instant, event: LinkEvent, packet: Buffer): void {
    if (this.trace) this.trace({ time, link: this.name, event, bytes: packet.length, packet });
  }

  /** Forgets the packets whose serialization has finished by `now`. */
  private drainQueue(now: Instant): void {
    while (this.qHead < this.qFinish.length && this.qFinish[this.qHead]! <= now) {
      this.backlogBytes -= this.qSize[this.qHead]!;
      this.qHead++;
    }
    if (this.qHead > 1024 && this.qHead * 2 > this.qFinish.length) {
      this.qFinish = this.qFinish.slice(this.qHead);
      this.qSize = this.qSize.slice(this.qHead);
      this.qHead = 0;
    }
  }

  /**
   * An outage that started while the transmitter was busy flushed the queue, and everything
   * due to land after its start dies in `land`: forget them.
   */
  private flushOnOutage(now: Instant): void {
    let latest = -Infinity;
    for (const o of this.config.outages) if (o.end > o.start && o.start <= now && o.start > latest) latest = o.start;
    if (latest === -Infinity) return;
    if (this.busyUntil > latest) {
      this.qFinish = [];
      this.qSize = [];
      this.qHead = 0;
      this.backlogBytes = 0;
      this.busyUntil = latest;
    }
    // What was due after the outage started is lost: it no longer holds back later packets.
    if (this.lastArrival > latest) this.lastArrival = latest;
  }
}

/** The two directions of a link between two endpoints. */
export interface Duplex {
  /** From the first endpoint to the second. */
  ab: Link;
  /** From the second endpoint to the first. */
  ba: Link;
}

/** Two links named `a->b` and `b->a`; the reverse takes `ab`'s options unless given its own. */
export function duplex(a: string, b: string, rng: Rng, ab: LinkOptions, ba: LinkOptions = ab): Duplex {
  return {
    ab: new Link(`${a}->${b}`, ab, rng.fork()),
    ba: new Link(`${b}->${a}`, ba, rng.fork()),
  };
}
