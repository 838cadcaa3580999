// The engine: the packet loop between the TUN device and the sans-IO stack, and the one real
// timer of the whole stack (CONVENTIONS.md 4). Everything protocol happens in the node; the
// engine reads batches, hands packets over with the time, writes what the node wants sent
// (with the virtio-net header when the device has offloads), and arms one timer for the
// node's earliest deadline.
import { performance } from 'node:perf_hooks';
import type { DeviceOutput, Instant } from '../ip/sansio.js';
import {
  emitVnetHdr, parseVnetHdr, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VNET_HDR_LEN, type Tun, type VnetHdr,
} from '../tun/index.js';

/** What the engine drives: a sans-IO node whose output says how the device should offload it. */
export interface EngineNode {
  /** `checksumValid`: the device (kernel) vouches for the checksums, or left them partial. */
  handleInput(now: Instant, iface: number, packet: Buffer, checksumValid?: boolean): void;
  handleTimeout(now: Instant): void;
  /** The next packet: `headroom` bytes free at its front for the device header. */
  pollOutput(now: Instant): DeviceOutput | null;
  pollTimeout(): Instant | null;
  /** Events surfaced while output was polled: the engine runs another tick soon. */
  readonly hasEvents?: boolean;
}

/** Output is flushed after this many input packets within a batch (a power of two). */
const FLUSH_EVERY = 8;

export interface EngineStats {
  batches: number;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  superSegmentsIn: number;
  superSegmentsOut: number;
  writeErrors: number;
  timerFires: number;
}

export class Engine {
  readonly stats: EngineStats = {
    batches: 0, packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, superSegmentsIn: 0, superSegmentsOut: 0, writeErrors: 0, timerFires: 0,
  };
  /** Called after every batch and timer, before output is flushed: where applications act. */
  onTick: ((now: Instant) => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private kickScheduled = false;
  private readonly vnet: VnetHdr = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };
  private running = false;

  constructor(readonly tun: Tun, readonly node: EngineNode) {}

  /** Bytes the node must leave free at the front of each output buffer. */
  get headroom(): number {
    return this.tun.headerLen;
  }

  now(): Instant {
    return performance.now();
  }

  start(): void {
    this.running = true;
    const hdr = this.tun.headerLen;
    this.tun.start((batch) => {
      const now = this.now();
      this.stats.batches++;
      const { arena, offsets, lengths, count } = batch;
      for (let i = 0; i < count; i++) {
        const off = offsets[i]!;
        const len = lengths[i]!;
        let valid = false;
        if (hdr > 0) {
          const v = parseVnetHdr(arena, off, this.vnet);
          valid = (v.flags & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) !== 0;
          if (v.gsoType !== VIRTIO_NET_HDR_GSO_NONE) this.stats.superSegmentsIn++;
        }
        this.stats.packetsIn++;
        this.stats.bytesIn += len - hdr;
        this.node.handleInput(now, 0, arena.subarray(off + hdr, off + len), valid);
        // send what the input asked for (ACKs) every few packets, not once per batch: a
        // batch can hold hundreds of segments, and a sender wants an ACK for every second one
        if ((i & (FLUSH_EVERY - 1)) === FLUSH_EVERY - 1) this.flush(now);
      }
      this.tick(now);
    });
    this.tick(this.now());
  }

  /** Runs the applications, flushes output and re-arms the timer soon (coalesced). */
  kick(): void {
    if (this.kickScheduled || !this.running) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      if (this.running) this.tick(this.now());
    });
  }

  private tick(now: Instant): void {
    this.onTick?.(now);
    this.flush(now);
    this.arm();
    if (this.node.hasEvents) this.kick();
  }

  private flush(batchNow: Instant): void {
    // the time a segment is handed to the device, not the batch's: TCP stamps its send log (RACK,
    // RTT samples) with it, so the time spent on the batch does not count in the RTT
    const now = Math.max(batchNow, this.now());
    const hdr = this.tun.headerLen;
    for (let out = this.node.pollOutput(now); out; out = this.node.pollOutput(now)) {
      const buf = out.buffer;
      if (hdr > 0) {
        const v = this.vnet;
        v.flags = out.checksumPartial ? VIRTIO_NET_HDR_F_NEEDS_CSUM : 0;
        v.gsoType = out.gsoSize > 0 ? (out.ipVersion === 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6) : VIRTIO_NET_HDR_GSO_NONE;
        v.hdrLen = out.headerLen;
        v.gsoSize = out.gsoSize;
        v.csumStart = out.checksumPartial ? out.l4Offset : 0;
        v.csumOffset = out.checksumPartial ? 16 : 0;
        emitVnetHdr(v, buf, 0);
        if (out.gsoSize > 0) this.stats.superSegmentsOut++;
      }
      if (this.tun.write(buf)) {
        this.stats.packetsOut++;
        this.stats.bytesOut += buf.length - hdr;
      } else {
        this.stats.writeErrors++;
      }
    }
  }

  private arm(): void {
    const at = this.node.pollTimeout();
    if (at === null) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.timerAt = Infinity;
      return;
    }
    if (this.timer && at === this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    const delay = Math.max(0, Math.ceil(at - this.now()));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      if (!this.running) return;
      const now = this.now();
      this.stats.timerFires++;
      this.node.handleTimeout(now);
      this.tick(now);
    }, delay);
  }

  /** Runs the applications and sends what is due now (before a stop: the last RSTs). */
  drain(): void {
    const now = this.now();
    this.onTick?.(now);
    this.flush(now);
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.tun.stop();
  }
}

export { VNET_HDR_LEN };
