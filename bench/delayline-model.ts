// The delay line's model: one direction of one emulated link (a "pipe"), sans-IO.
//
// A packet that enters a pipe at time `now` (ns) meets, in this order, what a real path does
// to it:
//   1. loss: random (a fixed probability) or bursty (the Gilbert-Elliott two-state chain, as
//      netem's `loss gemodel p r 1-h 1-k`: in state Good a packet is lost with `lossGood`, in
//      Bad with `lossBad`; after each packet Good turns Bad with `p` and Bad turns Good with
//      `r`; the mean loss is (r·lossGood + p·lossBad) / (p + r));
//   2. the bottleneck: at `rateBps` the packet is serialized after those before it
//      (txEnd = max(now, previous txEnd) + bits / rate); the bytes still waiting to be
//      serialized form the queue, limited to `queueBytes` (tail drop);
//   3. propagation: it leaves at txEnd + delay + jitter, jitter uniform in [-jitter, +jitter],
//      never before the packet ahead of it (no reordering: a FIFO, like a wire).
// Held packets are copied into a ring buffer that the pipe owns, so the caller's read arena
// is free again at once, and what is due is handed out as offsets/lengths into that ring,
// ready for Tun.writeBatch. Time is a parameter; randomness is an injected function.

export interface GilbertElliott {
  /** Probability (0..1) that Good turns Bad after a packet. */
  p: number;
  /** Probability (0..1) that Bad turns Good after a packet. */
  r: number;
  /** Loss probability (0..1) in Bad (netem's 1-h; default 1). */
  lossBad: number;
  /** Loss probability (0..1) in Good (netem's 1-k; default 0). */
  lossGood: number;
}

export interface PipeParams {
  /** One-way delay, ns. */
  delayNs: number;
  /** Jitter, ns: each packet's delay is delay ± up to this much (uniform), without reordering. */
  jitterNs: number;
  /** Random loss probability, 0..1 (applied before the Gilbert-Elliott chain, independent of it). */
  loss: number;
  /** Bursty loss, or null. */
  ge: GilbertElliott | null;
  /** Bottleneck rate in bit/s; 0 = no rate limit (and then no queue). */
  rateBps: number;
  /** Queue limit in bytes (packets waiting to be serialized at the rate); 0 = no limit. */
  queueBytes: number;
  /**
   * Bytes the link adds to each packet at the rate (framing), e.g. 14 for the Ethernet header
   * that a tbf on a veth counts, so that the same --rate passes the same goodput either way.
   */
  overheadBytes: number;
}

export const NO_IMPAIRMENT: PipeParams = { delayNs: 0, jitterNs: 0, loss: 0, ge: null, rateBps: 0, queueBytes: 0, overheadBytes: 0 };

/** What a pipe did: a counter for every decision. */
export interface PipeCounters {
  /** Packets that entered the pipe. */
  packetsIn: number;
  bytesIn: number;
  /** Packets handed out (due). */
  packetsOut: number;
  bytesOut: number;
  /** Dropped by the random loss. */
  dropRandom: number;
  /** Dropped by the Gilbert-Elliott chain. */
  dropBurst: number;
  /** Dropped because the queue at the rate was full (tail drop). */
  dropQueue: number;
  /** Dropped because the pipe's own ring (or its packet slots) was full. */
  dropRing: number;
  /** Sum over released packets of (release time - due time), ns (negative: released early). */
  lateSumNs: number;
  /** The latest release, ns after due. */
  lateMaxNs: number;
}

export interface PipeOptions {
  /** Bytes of the ring that holds packets in flight (default 8 MiB: 670 ms at 100 Mbit/s). */
  ringBytes?: number;
  /** Packet slots (default 32768). */
  slots?: number;
  /** Uniform random numbers in [0, 1) (default Math.random). */
  random?: () => number;
}

export class Pipe {
  params: PipeParams;
  readonly counters: PipeCounters = {
    packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0,
    dropRandom: 0, dropBurst: 0, dropQueue: 0, dropRing: 0, lateSumNs: 0, lateMaxNs: 0,
  };
  /** Gilbert-Elliott state: true = Bad. */
  bad = false;

  readonly ring: Buffer;
  private readonly random: () => number;
  // FIFO of packets: slot i holds ring offset, length and due time
  private readonly offs: Uint32Array;
  private readonly lens: Uint32Array;
  private readonly due: Float64Array;
  private head = 0; // oldest slot
  private count = 0;
  // ring bytes: packets live in [ringHead, ringTail) modulo wrap; a packet never straddles the end
  private ringTail = 0;
  private ringUsed = 0; // bytes in use, padding at a wrap included
  private readonly pad: Uint32Array; // padding skipped before slot i's packet (at a wrap)
  private lastTxEnd = 0;
  private lastDue = 0;
  /** Output arrays for writeBatch (offsets/lengths into `ring`). */
  readonly outOffsets: Uint32Array;
  readonly outLengths: Uint32Array;

  constructor(params: PipeParams, options: PipeOptions = {}) {
    this.params = params;
    this.ring = Buffer.allocUnsafe(options.ringBytes ?? 8 * 1024 * 1024);
    const slots = options.slots ?? 32768;
    this.offs = new Uint32Array(slots);
    this.lens = new Uint32Array(slots);
    this.due = new Float64Array(slots);
    this.pad = new Uint32Array(slots);
    this.outOffsets = new Uint32Array(slots);
    this.outLengths = new Uint32Array(slots);
    this.random = options.random ?? Math.random;
  }

  /** Packets held. */
  get held(): number {
    return this.count;
  }

  /** Due time (ns) of the oldest held packet, or Infinity. */
  nextDue(): number {
    return this.count > 0 ? this.due[this.head] : Infinity;
  }

  /** Bytes waiting to be serialized at the rate at `now` (the queue). */
  queued(now: number): number {
    const { rateBps } = this.params;
    if (rateBps <= 0 || this.lastTxEnd <= now) return 0;
    return ((this.lastTxEnd - now) * rateBps) / 8e9;
  }

  /**
   * A packet arrives at `now` (ns): src[off, off+len). Returns true when it is held, false when
   * it was dropped (and which counter says why).
   */
  push(src: Buffer, off: number, len: number, now: number): boolean {
    const c = this.counters;
    const p = this.params;
    c.packetsIn++;
    c.bytesIn += len;
    if (p.loss > 0 && this.random() < p.loss) {
      c.dropRandom++;
      return false;
    }
    const ge = p.ge;
    if (ge) {
      const lost = this.random() < (this.bad ? ge.lossBad : ge.lossGood);
      // the chain moves after each packet
      if (this.bad ? this.random() < ge.r : this.random() < ge.p) this.bad = !this.bad;
      if (lost) {
        c.dropBurst++;
        return false;
      }
    }
    let txEnd = now;
    if (p.rateBps > 0) {
      const wire = len + p.overheadBytes;
      if (p.queueBytes > 0 && this.queued(now) + wire > p.queueBytes) {
        c.dropQueue++;
        return false;
      }
      txEnd = Math.max(now, this.lastTxEnd) + (wire * 8e9) / p.rateBps;
    }
    let due = txEnd + p.delayNs;
    // (a delay shorter than the jitter never goes below zero)
    if (p.jitterNs > 0) due = Math.max(txEnd, due + (this.random() * 2 - 1) * p.jitterNs);
    // a FIFO: never before the packet ahead
    if (due < this.lastDue) due = this.lastDue;
    if (!this.store(src, off, len, due)) {
      c.dropRing++;
      return false;
    }
    if (p.rateBps > 0) this.lastTxEnd = txEnd;
    this.lastDue = due;
    return true;
  }

  private store(src: Buffer, off: number, len: number, due: number): boolean {
    const size = this.ring.length;
    if (this.count === this.offs.length) return false;
    let at = this.ringTail;
    let padding = 0;
    if (at + len > size) {
      padding = size - at;
      at = 0;
    }
    if (this.ringUsed + padding + len > size) return false;
    src.copy(this.ring, at, off, off + len);
    const slot = (this.head + this.count) % this.offs.length;
    this.offs[slot] = at;
    this.lens[slot] = len;
    this.due[slot] = due;
    this.pad[slot] = padding;
    this.count++;
    this.ringTail = at + len;
    this.ringUsed += padding + len;
    return true;
  }

  /**
   * Takes every packet due at or before `until` (ns) out of the FIFO, into outOffsets/
   * outLengths (views into `ring`, valid until the next push); `now` is the time of release,
   * for the lateness counters. Returns the count.
   */
  release(until: number, now: number): number {
    const c = this.counters;
    const slots = this.offs.length;
    let n = 0;
    while (this.count > 0 && this.due[this.head] <= until) {
      const h = this.head;
      this.outOffsets[n] = this.offs[h];
      this.outLengths[n] = this.lens[h];
      n++;
      const late = now - this.due[h];
      c.lateSumNs += late;
      if (late > c.lateMaxNs) c.lateMaxNs = late;
      c.packetsOut++;
      c.bytesOut += this.lens[h];
      this.ringUsed -= this.pad[h] + this.lens[h];
      this.head = (h + 1) % slots;
      this.count--;
    }
    if (this.count === 0) {
      this.ringTail = 0;
      this.ringUsed = 0;
    }
    return n;
  }
}

/** Mean loss of a Gilbert-Elliott chain in its stationary state (0..1). */
export function geMeanLoss(ge: GilbertElliott): number {
  if (ge.p + ge.r === 0) return ge.lossGood;
  return (ge.r * ge.lossGood + ge.p * ge.lossBad) / (ge.p + ge.r);
}
