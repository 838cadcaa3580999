// The send side's byte store: what the user wrote and the peer has not yet acknowledged.
//
// RFC 9293 §3.8.6.2 / RFC 2018 §8 fix what may leave it: only the cumulative acknowledgment.
// RFC 2018 §8: "Since the data receiver may later discard data reported in a SACK option, the
// sender MUST NOT discard data before it is acknowledged by the Acknowledgment Number field in
// the TCP header." So `ack()` is driven by SND.UNA alone; SACKed bytes stay here until then.
//
// Layout (CONVENTIONS.md 10: no per-byte copying on the data path). The buffer is a queue of
// the user's own Buffers ("chunks"), kept by reference. A chunk array with a start index and the
// absolute stream offset at which each chunk ends lets `peek` find a chunk by binary search
// (O(log n)), and `ack` drop whole chunks from the front and trim the first one with `subarray`
// (amortised O(1): the array is compacted once half of it is dead). Absolute offsets are plain
// numbers that count every byte ever written (exact up to 2**53 bytes): stream offsets never wrap,
// sequence numbers do, and mapping one to the other is the endpoint's business
// (offset 0 = SND.UNA).
//
// Ownership: `write(data)` takes `data` by reference — the caller must not modify it afterwards.
// Tiny writes (at most SMALL_WRITE_MAX bytes) are the exception: they are copied into a shared
// staging buffer so that a stream of 1-byte writes costs neither one array slot per byte nor a
// spanning copy on every `peek`. Either way the rule for the caller is the same: hand the Buffer
// over and do not touch it again. A staging buffer is small at first (STAGE_MIN) and doubles up to
// STAGE_SIZE while small writes keep coming; the queue lets go of it once it is empty, so that an
// idle connection (thousands may be held) keeps no staging memory.

import { CounterSet } from '../ip/counters.js';
import { NO_ITEMS } from '../ip/fifo.js';

/** Writes of at most this many bytes are copied into a staging buffer instead of kept by reference. */
export const SMALL_WRITE_MAX = 256;

/** The largest staging buffer for small writes. */
export const STAGE_SIZE = 16 * 1024;
/** The first staging buffer of a queue that was empty. */
export const STAGE_MIN = 1024;

/** Dead slots at the front of the chunk array before it is compacted (and at least half of it). */
const COMPACT_MIN = 64;

export const CHUNK_QUEUE_COUNTER_NAMES = [
  /** `peek` calls whose range spanned chunks and so were answered with one copy. */
  'peekCopies',
  /** Bytes copied by those `peek` calls. */
  'peekCopiedBytes',
  /** Bytes of small writes copied into a staging buffer (SMALL_WRITE_MAX). */
  'coalescedBytes',
  /** Bytes copied by `peekInto`/`readInto` (the one copy the data path allows: user buffer → packet). */
  'copiedIntoBytes',
] as const;

export type ChunkQueueCounter = (typeof CHUNK_QUEUE_COUNTER_NAMES)[number];

const EMPTY = Buffer.alloc(0);


/**
 * A FIFO of bytes held as a queue of Buffers by reference, addressed by offset from the front.
 * The core of `SendBuffer`, and the in-order receive queue of the TCP and MPTCP connections; unbounded itself.
 */
export class ChunkQueue {
  readonly counters = new CounterSet<ChunkQueueCounter>(CHUNK_QUEUE_COUNTER_NAMES);
  /** chunks[head..] are live; chunks[head] may be a trimmed view of what was written. */
  // (NO_ITEMS while empty: an idle connection's queues hold nothing)
  private chunks: Buffer[] = NO_ITEMS;
  /** ends[i]: the absolute offset one past the last byte of chunks[i]. */
  private ends: number[] = NO_ITEMS;
  private head = 0;
  /** Absolute offset of the first live byte and one past the last. */
  private frontAbs = 0;
  private backAbs = 0;
  /** The chunk index the last lookup found: sequential peeks hit it in O(1). */
  private hint = 0;
  private stage: Buffer = EMPTY;
  private stageUsed = 0;

  /** Bytes held. */
  get length(): number {
    return this.backAbs - this.frontAbs;
  }

  /** Live chunks (for tests and statistics). */
  get chunkCount(): number {
    return this.chunks.length - this.head;
  }

  /** Appends `data` (kept by reference, or copied into the staging buffer when small). */
  append(data: Buffer): void {
    const len = data.length;
    if (len === 0) return;
    if (len <= SMALL_WRITE_MAX) {
      this.appendSmall(data);
      return;
    }
    this.own();
    this.chunks.push(data);
    this.backAbs += len;
    this.ends.push(this.backAbs);
  }

  /** Arrays of its own in place of the shared empty ones, before a push. */
  private own(): void {
    if (this.ends === NO_ITEMS) {
      this.chunks = [];
      this.ends = [];
    }
  }

  private appendSmall(data: Buffer): void {
    const len = data.length;
    const n = this.chunks.length;
    const last = n > this.head ? this.chunks[n - 1] : undefined;
    // Extend the last chunk when it is the tail of the current staging buffer.
    if (last !== undefined && last.buffer === this.stage.buffer &&
      last.byteOffset + last.length === this.stage.byteOffset + this.stageUsed &&
      this.stageUsed + len <= this.stage.length) {
      data.copy(this.stage, this.stageUsed);
      const from = last.byteOffset - this.stage.byteOffset;
      this.stageUsed += len;
      this.chunks[n - 1] = this.stage.subarray(from, this.stageUsed);
      this.backAbs += len;
      this.ends[n - 1] = this.backAbs;
    } else {
      if (this.stageUsed + len > this.stage.length) {
        // The old staging buffer stays alive as long as chunks still view it; the next is twice
        // its size (small writes keep coming), up to STAGE_SIZE
        this.stage = Buffer.allocUnsafeSlow(Math.min(STAGE_SIZE, Math.max(STAGE_MIN, 2 * this.stage.length)));
        this.stageUsed = 0;
      }
      data.copy(this.stage, this.stageUsed);
      this.own();
      this.chunks.push(this.stage.subarray(this.stageUsed, this.stageUsed + len));
      this.stageUsed += len;
      this.backAbs += len;
      this.ends.push(this.backAbs);
    }
    this.counters.increment('coalescedBytes', len);
  }

  /** Index of the chunk holding absolute offset `abs` (frontAbs <= abs < backAbs). */
  private find(abs: number): number {
    const ends = this.ends;
    const h = this.hint;
    if (h >= this.head && h < ends.length && ends[h] > abs && ends[h] - this.chunks[h].length <= abs) return h;
    let lo = this.head;
    let hi = ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid] > abs) hi = mid;
      else lo = mid + 1;
    }
    this.hint = lo;
    return lo;
  }

  private checkRange(offset: number, what: string): void {
    if (!Number.isInteger(offset) || offset < 0 || offset > this.length) {
      throw new RangeError(`${what}: offset ${offset} is outside the ${this.length} bytes held`);
    }
  }

  /**
   * The bytes at [offset, offset + maxLen) (clipped to what is held): a view when they lie in
   * one chunk, else one new Buffer (counted in `peekCopies`).
   */
  peek(offset: number, maxLen: number): Buffer {
    this.checkRange(offset, 'peek');
    const len = Math.min(Math.max(0, maxLen), this.length - offset);
    if (len === 0) return EMPTY;
    const abs = this.frontAbs + offset;
    const i = this.find(abs);
    const chunk = this.chunks[i];
    const start = abs - (this.ends[i] - chunk.length);
    if (start + len <= chunk.length) return chunk.subarray(start, start + len);
    const out = Buffer.allocUnsafe(len);
    this.copyOut(i, start, len, out, 0);
    this.counters.increment('peekCopies');
    this.counters.increment('peekCopiedBytes', len);
    return out;
  }

  /**
   * Copies the bytes at [offset, offset + len) (clipped to what is held and to the room in
   * `target`) to `target` at `targetOffset`. Returns the number of bytes copied.
   */
  peekInto(offset: number, len: number, target: Buffer, targetOffset = 0): number {
    this.checkRange(offset, 'peekInto');
    const n = Math.min(Math.max(0, len), this.length - offset, Math.max(0, target.length - targetOffset));
    if (n === 0) return 0;
    const abs = this.frontAbs + offset;
    const i = this.find(abs);
    this.copyOut(i, abs - (this.ends[i] - this.chunks[i].length), n, target, targetOffset);
    this.counters.increment('copiedIntoBytes', n);
    return n;
  }

  private copyOut(i: number, start: number, len: number, target: Buffer, at: number): void {
    let left = len;
    let from = start;
    while (left > 0) {
      const chunk = this.chunks[i];
      const n = Math.min(left, chunk.length - from);
      chunk.copy(target, at, from, from + n);
      at += n;
      left -= n;
      from = 0;
      i++;
    }
  }

  /** Releases `n` bytes from the front: drops whole chunks, trims the first. */
  consume(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.length) {
      throw new RangeError(`consume: ${n} bytes is more than the ${this.length} bytes held`);
    }
    if (n === 0) return;
    this.frontAbs += n;
    const chunks = this.chunks;
    const ends = this.ends;
    let h = this.head;
    while (h < chunks.length && ends[h] <= this.frontAbs) {
      chunks[h] = EMPTY; // let the GC have it
      h++;
    }
    if (h < chunks.length) {
      const chunk = chunks[h];
      const skip = this.frontAbs - (ends[h] - chunk.length);
      if (skip > 0) chunks[h] = chunk.subarray(skip);
    }
    this.head = h;
    if (h === chunks.length) {
      this.chunks = NO_ITEMS;
      this.ends = NO_ITEMS;
      this.head = 0;
      // empty: the staging buffer goes (views handed out keep what they view)
      this.stage = EMPTY;
      this.stageUsed = 0;
    } else if (h >= COMPACT_MIN && h * 2 >= chunks.length) {
      this.chunks = chunks.slice(h);
      this.ends = ends.slice(h);
      this.head = 0;
    }
    this.hint = this.head;
  }

  /**
   * Removes and returns up to `maxLen` bytes from the front, as a view of the first chunk (no
   * copy; it may be shorter than `maxLen` even when more is held). Undefined when empty.
   */
  shift(maxLen = Infinity): Buffer | undefined {
    if (this.length === 0 || maxLen <= 0) return undefined;
    const chunk = this.chunks[this.head];
    const out = maxLen < chunk.length ? chunk.subarray(0, maxLen) : chunk;
    this.consume(out.length);
    return out;
  }
}

/**
 * The bytes written by the user and not yet acknowledged by the peer, bounded by `capacity`
 * bytes. Offsets are relative to the first unacknowledged byte (SND.UNA).
 */
export class SendBuffer {
  private readonly q = new ChunkQueue();
  private cap: number;

  constructor(capacity: number) {
    this.cap = SendBuffer.checkCapacity(capacity);
  }

  private static checkCapacity(capacity: number): number {
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`capacity must be a non-negative integer, got ${capacity}`);
    return capacity;
  }

  /** `peekCopies`, `peekCopiedBytes`, `coalescedBytes`, `copiedIntoBytes`. */
  get counters(): CounterSet<ChunkQueueCounter> {
    return this.q.counters;
  }

  /** The bound, in bytes. Settable (auto-tuning); lowering it below `length` drops nothing, it only stops `write`. */
  get capacity(): number {
    return this.cap;
  }

  set capacity(capacity: number) {
    this.cap = SendBuffer.checkCapacity(capacity);
  }

  /** Bytes held: written and not yet acknowledged. */
  get length(): number {
    return this.q.length;
  }

  /** Bytes `write` would accept now. */
  get free(): number {
    return Math.max(0, this.cap - this.q.length);
  }

  /** Live chunks (for statistics). */
  get chunkCount(): number {
    return this.q.chunkCount;
  }

  /**
   * Takes up to `free` bytes of `data` and returns how many it took (back-pressure: the caller
   * offers the rest later). `data` is kept by reference (small writes are copied): the caller
   * must not modify it afterwards.
   */
  write(data: Buffer): number {
    const take = Math.min(data.length, this.free);
    if (take === 0) return 0;
    this.q.append(take === data.length ? data : data.subarray(0, take));
    return take;
  }

  /**
   * The bytes at stream offset `offset` (0 = SND.UNA), at most `maxLen` of them: a view when they
   * lie in one chunk, else one copy (counted). RangeError when `offset` is past the end.
   */
  peek(offset: number, maxLen: number): Buffer {
    return this.q.peek(offset, maxLen);
  }

  /**
   * Copies the bytes at `offset` (at most `len`, and what fits) straight into an output packet
   * at `targetOffset`: the one copy the data path allows. Returns the bytes copied.
   */
  peekInto(offset: number, len: number, target: Buffer, targetOffset = 0): number {
    return this.q.peekInto(offset, len, target, targetOffset);
  }

  /** The peer acknowledged `bytes` more (SND.UNA advanced): releases them from the front. */
  ack(bytes: number): void {
    this.q.consume(bytes);
  }
}
