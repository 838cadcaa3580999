// Small sans-IO nodes for simulator tests: a paced or bursty packet source, a sink that
// records what arrived, an echo, and a forwarder (a middlebox hook).
import type { Instant, SansIoNode, Transmit } from '../../src/ip/sansio.js';

/** Offset of the sequence number (uint32 BE) in a `PacketSource` packet. */
export const SEQ_OFFSET = 0;
/** Offset of the send time (float64 BE, ms) in a `PacketSource` packet of 12 bytes or more. */
export const SENT_AT_OFFSET = 4;
export const SOURCE_HEADER_LEN = 12;

/** The sequence number a `PacketSource` wrote in `packet`. */
export function seqOf(packet: Buffer): number {
  return packet.readUInt32BE(SEQ_OFFSET);
}

/** The send time a `PacketSource` wrote in `packet`. */
export function sentAtOf(packet: Buffer): Instant {
  return packet.readDoubleBE(SENT_AT_OFFSET);
}

export interface PacketSourceOptions {
  /** Packets to send. */
  count: number;
  /** Bytes per packet, >= 12: sequence number, send time, then filler. */
  size: number;
  /** First packet at this time. Default 0. */
  startAt?: Instant;
  /**
   * Spacing between packets, ms; 0 (default) sends them all at `startAt` in one burst.
   * Or give `rateBps` to pace at a bit rate (spacing size*8/rate).
   */
  intervalMs?: number;
  rateBps?: number;
  /** Interfaces, used round robin. Default [0]. */
  ifaces?: number[];
}

/** Emits `count` numbered packets of `size` bytes, paced or as a burst; records what comes back. */
export class PacketSource implements SansIoNode {
  /** Packets emitted so far, and when. */
  readonly sentTimes: Instant[] = [];
  /** Packets received (an echo, a reply), and when. */
  readonly received: Received[] = [];
  private readonly count: number;
  private readonly size: number;
  private readonly interval: number;
  private readonly ifaces: number[];
  private nextAt: Instant;
  private sent = 0;

  constructor(options: PacketSourceOptions) {
    if (!(options.size >= SOURCE_HEADER_LEN)) throw new RangeError(`size must be >= ${SOURCE_HEADER_LEN}`);
    this.count = options.count;
    this.size = options.size;
    this.interval = options.rateBps !== undefined ? (options.size * 8 * 1000) / options.rateBps : options.intervalMs ?? 0;
    this.ifaces = options.ifaces ?? [0];
    this.nextAt = options.startAt ?? 0;
  }

  get done(): boolean {
    return this.sent >= this.count;
  }

  handleInput(now: Instant, iface: number, packet: Buffer): void {
    this.received.push({ time: now, iface, packet });
  }

  handleTimeout(): void {}

  pollTransmit(now: Instant): Transmit | null {
    if (this.sent >= this.count || this.nextAt > now) return null;
    const packet = Buffer.alloc(this.size, 0xa5);
    packet.writeUInt32BE(this.sent, SEQ_OFFSET);
    packet.writeDoubleBE(now, SENT_AT_OFFSET);
    const iface = this.ifaces[this.sent % this.ifaces.length]!;
    this.sent++;
    this.sentTimes.push(now);
    // Pace from the schedule, not from `now`, so that spacing does not drift.
    this.nextAt += this.interval;
    return { iface, packet };
  }

  pollTimeout(): Instant | null {
    return this.sent < this.count ? this.nextAt : null;
  }
}

export interface Received {
  time: Instant;
  iface: number;
  packet: Buffer;
}

/** Records every packet it receives. Sends nothing. */
export class PacketSink implements SansIoNode {
  readonly received: Received[] = [];
  bytes = 0;

  handleInput(now: Instant, iface: number, packet: Buffer): void {
    this.received.push({ time: now, iface, packet });
    this.bytes += packet.length;
  }

  handleTimeout(): void {}

  pollTransmit(): Transmit | null {
    return null;
  }

  pollTimeout(): Instant | null {
    return null;
  }

  /** Arrival times, in arrival order. */
  get times(): Instant[] {
    return this.received.map((r) => r.time);
  }

  /** `PacketSource` sequence numbers, in arrival order. */
  get seqs(): number[] {
    return this.received.map((r) => seqOf(r.packet));
  }

  /** Received packets that came in on `iface`. */
  on(iface: number): Received[] {
    return this.received.filter((r) => r.iface === iface);
  }
}

/** Sends every packet back out of the interface it came in by, at once. Counts what it echoed. */
export class EchoNode implements SansIoNode {
  echoed = 0;
  private readonly pending: Transmit[] = [];
  private head = 0;

  handleInput(_now: Instant, iface: number, packet: Buffer): void {
    this.pending.push({ iface, packet });
  }

  handleTimeout(): void {}

  pollTransmit(): Transmit | null {
    if (this.head >= this.pending.length) return null;
    const tx = this.pending[this.head++]!;
    if (this.head === this.pending.length) {
      this.pending.length = 0;
      this.head = 0;
    }
    this.echoed++;
    return tx;
  }

  pollTimeout(): Instant | null {
    return null;
  }
}

/**
 * What a `Forwarder` does with a packet: return it (changed in place or not) or another
 * buffer to forward, or null to drop it.
 */
export type ForwardHook = (now: Instant, fromIface: number, packet: Buffer) => Buffer | null;

/**
 * A two-or-more-port box: a packet entering on interface i leaves on `routes[i]`, through
 * `hook` if given (a NAT, a middlebox that strips options, a selective dropper).
 * Counts what it forwarded, what the hook dropped and what had no route.
 */
export class Forwarder implements SansIoNode {
  readonly counters = { forwarded: 0, droppedByHook: 0, noRoute: 0 };
  private readonly pending: Transmit[] = [];
  private head = 0;

  private readonly routes: ReadonlyMap<number, number>;
  private readonly hook: ForwardHook | null;

  /** `routes`: out interface by in interface; default 0 <-> 1. */
  constructor(routes: Record<number, number> = { 0: 1, 1: 0 }, hook: ForwardHook | null = null) {
    this.routes = new Map(Object.entries(routes).map(([k, v]) => [Number(k), v]));
    this.hook = hook;
  }

  handleInput(now: Instant, iface: number, packet: Buffer): void {
    const out = this.routes.get(iface);
    if (out === undefined) {
      this.counters.noRoute++;
      return;
    }
    const p = this.hook ? this.hook(now, iface, packet) : packet;
    if (p === null) {
      this.counters.droppedByHook++;
      return;
    }
    this.pending.push({ iface: out, packet: p });
  }

  handleTimeout(): void {}

  pollTransmit(): Transmit | null {
    if (this.head >= this.pending.length) return null;
    const tx = this.pending[this.head++]!;
    if (this.head === this.pending.length) {
      this.pending.length = 0;
      this.head = 0;
    }
    this.counters.forwarded++;
    return tx;
  }

  pollTimeout(): Instant | null {
    return null;
  }
}
