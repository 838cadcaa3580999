// The receive side's data structures: the out-of-order queue (`Reassembler`), the SACK blocks it
// reports (RFC 2018 §4, RFC 2883) (the in-order queue the user reads is a ChunkQueue of sendbuf.ts).
//
// RFC 9293 §3.10.7.4: "In the following it is assumed that the segment is the idealized segment
// that begins at RCV.NXT and does not exceed the window. One could tailor actual segments to fit
// this assumption by trimming off any portions that lie outside the window (including SYN and
// FIN) and only processing further if the segment then begins at RCV.NXT. Segments with higher
// beginning sequence numbers SHOULD be held for later processing (SHLD-31)." The Reassembler is
// where they are held. Trimming to the window is the connection's job; trimming what lies below
// RCV.NXT is done here too (same section: "Segments are processed in sequence. Initial tests on
// arrival are used to discard old duplicates, but further processing is done in SEG.SEQ order. If
// a segment's contents straddle the boundary between old and new, only the new parts are
// processed.").
//
// Ownership: `insert` keeps the Buffer it is given by reference (views of it, via `subarray`),
// so the caller must pass a Buffer it owns and will not reuse — never a view into the TUN
// device's read arena, which is recycled. `pop` hands the same memory back: one copy (arena →
// owned Buffer, done by the caller) for the whole receive path.
//
// Overlaps are resolved the way Linux's tcp_data_queue_ofo() ends up delivering them:
//  - a segment wholly covered by held data is dropped (the first-received copy wins) and
//    reported as a D-SACK (Linux: "All the bits are present. Drop.");
//  - a segment that wholly covers held segments replaces them (Linux: rb_replace_node / the
//    merge_right loop, counted as TCPOFOMERGE);
//  - on a partial overlap, the bytes come from the segment that starts lower. Linux queues both
//    segments and skips the overlap when it delivers the second; we trim instead (the new
//    segment's head, or the held segment's head with `subarray`) so memory stays bounded by
//    the bytes covered.
// The bytes are meant to be identical anyway; RFC 9293 does not say which copy wins.

import { CounterSet } from '../ip/counters.js';
import type { SackBlock } from './options.js';
import { SeqRangeSet } from './scoreboard.js';
import { type Seq, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.js';
import { NO_ITEMS } from '../ip/fifo.js';

const EMPTY = Buffer.alloc(0);

/** How many recently reported first blocks are remembered for RFC 2018's "most recently reported" rule. */
const RECENT_MAX = 16;

/** Dead slots at the front of the segment arrays before they are compacted (and at least half). */
const COMPACT_MIN = 64;

export const REASSEMBLY_COUNTER_NAMES = [
  /** Segments held above RCV.NXT (they did not start at it). */
  'outOfOrderSegments',
  /** Segments that brought nothing new: all below RCV.NXT or all already held. */
  'duplicateSegments',
  /** Bytes received again: below RCV.NXT or already held. */
  'duplicateBytes',
  /** Out-of-order segments refused because holding them would pass the byte limit. */
  'droppedOverLimit',
  /** Bytes of those segments. */
  'droppedOverLimitBytes',
  /** Held segments replaced by a new one that covers them (Linux TCPOFOMERGE). */
  'replacedSegments',
  /** Held bytes discarded because RCV.NXT moved past them by another way (delivered directly). */
  'overtakenBytes',
] as const;

export type ReassemblyCounter = (typeof REASSEMBLY_COUNTER_NAMES)[number];

/** What `Reassembler.insert` did with a segment. */
export interface InsertResult {
  /** Bytes now contiguous at RCV.NXT, which `pop` hands out (RCV.NXT may advance by this much). */
  advanced: number;
  /** Bytes of the segment that were neither held nor below RCV.NXT before. */
  newBytes: number;
  /** Bytes of the segment that were (below RCV.NXT or held already). */
  duplicateBytes: number;
  /** Refused for the memory bound (never an in-order segment). */
  dropped: boolean;
  /** The duplicate contiguous sequence to report in a D-SACK block (RFC 2883), if any. */
  dsack: SackBlock | null;
}

export interface ReassemblerOptions {
  /** Bound on the bytes held (in-order data not yet popped included). In-order segments are always taken. */
  limit: number;
  /** Report duplicates as D-SACK blocks (RFC 2883). Default true, as Linux (net.ipv4.tcp_dsack=1). */
  dsack?: boolean;
}

/**
 * The out-of-order queue: segments held above RCV.NXT, sorted and disjoint, and the merged
 * ranges they cover (for SACK). Sequence numbers are 32-bit and wrap.
 */
export class Reassembler {
  readonly counters = new CounterSet<ReassemblyCounter>(REASSEMBLY_COUNTER_NAMES);
  /** Bound on `bytesQueued` for out-of-order segments. Settable. */
  limit: number;
  private readonly dsackEnabled: boolean;
  /** Held segments: segStart[h..], segData[h..], sorted, disjoint. */
  // (NO_ITEMS while nothing is held: an idle connection holds nothing)
  private segStart: Seq[] = NO_ITEMS;
  private segData: Buffer[] = NO_ITEMS;
  private h = 0;
  /** The union of the held segments. */
  private readonly cover = new SeqRangeSet();
  /** RCV.NXT as last seen by `insert` or `pop`. */
  private edge: Seq | undefined;
  /** Start of the last segment held out of order (undefined when the last one advanced RCV.NXT). */
  private lastTrigger: Seq | undefined;
  /** Starts of recently held out-of-order segments, most recent first. */
  private recent: Seq[] = NO_ITEMS;
  private lastDsack: SackBlock | null = null;
  private fin: Seq | undefined;

  constructor(opts: ReassemblerOptions | number) {
    const o = typeof opts === 'number' ? { limit: opts } : opts;
    this.limit = o.limit;
    this.dsackEnabled = o.dsack ?? true;
  }

  /** Bytes held. */
  get bytesQueued(): number {
    return this.cover.bytes;
  }

  /** Segments held. */
  get segmentsQueued(): number {
    return this.segStart.length - this.h;
  }

  /** Where a FIN was seen beyond RCV.NXT (`markFin`), if any: it takes effect when RCV.NXT reaches it. */
  get finAt(): Seq | undefined {
    return this.fin;
  }

  /** Remembers a FIN that arrived out of order, at sequence number `seq` (after the segment's data). */
  markFin(seq: Seq): void {
    this.fin = seq;
  }

  /** The held ranges, lowest first (a copy: for status and tests). */
  ranges(): SackBlock[] {
    return this.cover.toArray();
  }

  private segEnd(i: number): Seq {
    return seqAdd(this.segStart[i], this.segData[i].length);
  }

  /** Index (>= h) of the first held segment ending after `seq`. */
  private firstSegEndingAfter(seq: Seq): number {
    let lo = this.h;
    let hi = this.segStart.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqGt(this.segEnd(mid), seq)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Takes note of RCV.NXT: held bytes below it are discarded (it moved past them without us). */
  private setEdge(rcvNxt: Seq): void {
    this.edge = rcvNxt;
    const n = this.segStart.length;
    let h = this.h;
    let overtaken = 0;
    while (h < n && seqLe(this.segEnd(h), rcvNxt)) {
      overtaken += this.segData[h].length;
      this.segData[h] = EMPTY;
      h++;
    }
    if (h < n && seqLt(this.segStart[h], rcvNxt)) {
      const skip = seqDiff(rcvNxt, this.segStart[h]);
      overtaken += skip;
      this.segData[h] = this.segData[h].subarray(skip);
      this.segStart[h] = rcvNxt;
    }
    if (overtaken > 0) {
      this.counters.increment('overtakenBytes', overtaken);
      this.cover.trimFront(rcvNxt);
    }
    this.setHead(h);
  }

  private setHead(h: number): void {
    this.h = h;
    const n = this.segStart.length;
    if (h === n) {
      if (n > 0) {
        this.segStart = NO_ITEMS;
        this.segData = NO_ITEMS;
        this.h = 0;
      }
    } else if (h >= COMPACT_MIN && h * 2 >= n) {
      this.segStart = this.segStart.slice(h);
      this.segData = this.segData.slice(h);
      this.h = 0;
    }
  }

  /** Bytes contiguous at `rcvNxt` (what `pop` would hand out). */
  contiguous(rcvNxt: Seq): number {
    const first = this.cover.first();
    return first !== undefined && first.start === rcvNxt ? seqDiff(first.end, first.start) : 0;
  }

  /**
   * Holds the segment `data` at sequence number `seq`, given RCV.NXT. Keeps `data` by reference
   * (see the file header). Never throws on what the network sends.
   */
  insert(seq: Seq, data: Buffer, rcvNxt: Seq): InsertResult {
    this.setEdge(rcvNxt);
    const result: InsertResult = { advanced: 0, newBytes: 0, duplicateBytes: 0, dropped: false, dsack: null };
    this.lastDsack = null;
    const len = data.length;
    if (len === 0) {
      result.advanced = this.contiguous(rcvNxt);
      return result;
    }
    let s = seq;
    const e = seqAdd(seq, len);

    // Old data: all of it, or the head of a segment straddling RCV.NXT.
    if (seqLe(e, rcvNxt)) {
      this.counters.increment('duplicateSegments');
      this.counters.increment('duplicateBytes', len);
      result.duplicateBytes = len;
      // RFC 2883 §4.1: the D-SACK block reports the duplicate, below the cumulative ACK.
      this.noteDsack(result, s, e);
      this.lastTrigger = undefined;
      result.advanced = this.contiguous(rcvNxt);
      return result;
    }
    let body = data;
    if (seqLt(s, rcvNxt)) {
      const skip = seqDiff(rcvNxt, s);
      body = data.subarray(skip);
      result.duplicateBytes += skip;
      this.counters.increment('duplicateBytes', skip);
      this.noteDsack(result, s, rcvNxt);
      s = rcvNxt;
    }

    const inOrder = s === rcvNxt;
    const already = this.cover.overlap(s, e);
    const fresh = seqDiff(e, s) - already;
    if (fresh === 0) {
      // RFC 2883 §4.2: a duplicate of data held above the cumulative ACK; the block that holds
      // it follows the D-SACK block (its anchor is this segment).
      this.counters.increment('duplicateSegments');
      this.counters.increment('duplicateBytes', already);
      result.duplicateBytes += already;
      this.noteDsack(result, s, e);
      this.anchor(s, inOrder);
      result.advanced = this.contiguous(rcvNxt);
      return result;
    }
    // The memory bound: never the in-order segment (it is popped at once).
    if (!inOrder && this.cover.bytes + fresh > this.limit) {
      this.counters.increment('droppedOverLimit');
      this.counters.increment('droppedOverLimitBytes', seqDiff(e, s));
      result.dropped = true;
      // Not reported in SACK: RFC 2018 §8 would have the first block reflect even a discarded
      // newest segment, but Linux does not SACK what it refused, and a SACK for bytes we do not
      // hold keeps the sender from resending them until it detects the reneging. As Linux.
      this.lastTrigger = undefined;
      result.advanced = this.contiguous(rcvNxt);
      return result;
    }
    if (already > 0) {
      result.duplicateBytes += already;
      this.counters.increment('duplicateBytes', already);
      if (result.dsack === null) this.noteDsack(result, ...this.firstOverlap(s, e));
    }
    this.place(s, e, body);
    this.cover.add(s, e);
    result.newBytes = fresh;
    if (!inOrder) this.counters.increment('outOfOrderSegments');
    this.anchor(s, inOrder);
    result.advanced = this.contiguous(rcvNxt);
    return result;
  }

  private noteDsack(result: InsertResult, start: Seq, end: Seq): void {
    if (!this.dsackEnabled || result.dsack !== null) return;
    // RFC 2883 §4: "(3) The left edge of the D-SACK block specifies the first sequence number of
    // the duplicate contiguous sequence, and the right edge of the D-SACK block specifies the
    // sequence number immediately following the last sequence in the duplicate contiguous
    // sequence."
    result.dsack = { start, end };
    this.lastDsack = result.dsack;
  }

  /** The first stretch of [s, e) already held. */
  private firstOverlap(s: Seq, e: Seq): [Seq, Seq] {
    const i = this.cover.firstEndingAfter(s);
    const a = this.cover.start(i);
    const b = this.cover.end(i);
    return [seqLt(a, s) ? s : a, seqLt(b, e) ? b : e];
  }

  /** Remembers the segment that triggers the coming ACK (RFC 2018 §4). */
  private anchor(s: Seq, inOrder: boolean): void {
    if (inOrder) {
      // "... unless that segment advanced the Acknowledgment Number field in the header."
      this.lastTrigger = undefined;
      return;
    }
    this.lastTrigger = s;
    if (this.recent === NO_ITEMS) this.recent = [];
    this.recent.unshift(s);
    if (this.recent.length > RECENT_MAX) this.recent.length = RECENT_MAX;
  }

  /** Puts [s, e) (= body) among the held segments, resolving overlaps as the file header says. */
  private place(s: Seq, e: Seq, body: Buffer): void {
    const n = this.segStart.length;
    let i = this.firstSegEndingAfter(s);
    if (i < n && seqLt(this.segStart[i], s)) {
      // A held segment starts lower and reaches into the new one: its bytes win. (It cannot reach
      // past `e`: then nothing would be new.)
      const le = this.segEnd(i);
      body = body.subarray(seqDiff(le, s));
      s = le;
      i++;
    }
    let j = i;
    while (j < n && seqLt(this.segStart[j], e)) {
      if (seqLe(this.segEnd(j), e)) {
        // covered by the new segment, which replaces it
        this.counters.increment('replacedSegments');
        j++;
        continue;
      }
      // reaches past the new segment, which starts lower: the new one wins the overlap
      this.segData[j] = this.segData[j].subarray(seqDiff(e, this.segStart[j]));
      this.segStart[j] = e;
      break;
    }
    if (this.segStart === NO_ITEMS) {
      this.segStart = [];
      this.segData = [];
    }
    this.segStart.splice(i, j - i, s);
    this.segData.splice(i, j - i, body);
  }

  /**
   * The next in-order chunk at `rcvNxt` (at most `maxLen` bytes), removed from the queue; the
   * caller advances RCV.NXT by its length and calls again until undefined. A view of the Buffer
   * given to `insert`: no copy.
   */
  pop(rcvNxt: Seq, maxLen = Infinity): Buffer | undefined {
    if (this.edge !== undefined && rcvNxt !== this.edge) {
      // RCV.NXT moved by a segment the caller delivered itself: that segment is now the most
      // recent one, and it advanced the ACK, so the last insert's trigger and D-SACK are stale
      // (RFC 2883 §4 (1): a D-SACK reports "the most recent packet").
      this.lastTrigger = undefined;
      this.lastDsack = null;
    }
    this.setEdge(rcvNxt);
    if (this.h === this.segStart.length || this.segStart[this.h] !== rcvNxt || maxLen <= 0) return undefined;
    const buf = this.segData[this.h];
    let out: Buffer;
    if (maxLen < buf.length) {
      out = buf.subarray(0, maxLen);
      this.segData[this.h] = buf.subarray(maxLen);
      this.segStart[this.h] = seqAdd(rcvNxt, maxLen);
    } else {
      out = buf;
      this.segData[this.h] = EMPTY;
      this.setHead(this.h + 1);
    }
    const next = seqAdd(rcvNxt, out.length);
    this.cover.trimFront(next);
    this.edge = next;
    return out;
  }

  /**
   * Up to `max` SACK blocks for the next ACK, in the order of RFC 2018 §4:
   * "The first SACK block (i.e., the one immediately following the kind and length fields in
   * the option) MUST specify the contiguous block of data containing the segment which triggered
   * this ACK, unless that segment advanced the Acknowledgment Number field in the header. This
   * assures that the ACK with the SACK option reflects the most recent change in the data
   * receiver's buffer queue."
   * "The data receiver SHOULD include as many distinct SACK blocks as possible in the SACK
   * option."
   * "The SACK option SHOULD be filled out by repeating the most recently reported SACK blocks
   * (based on first SACK blocks in previous SACK options) that are not subsets of a SACK block
   * already included in the SACK option being constructed."
   * With a D-SACK (RFC 2883 §4, "(1) A D-SACK block is only used to report a duplicate contiguous
   * sequence of data received by the receiver in the most recent packet."; "(2) Each duplicate
   * contiguous sequence of data received is reported in at most one D-SACK block."), it comes
   * first, and "(4) If the D-SACK block reports a duplicate contiguous sequence from a (possibly
   * larger) block of data in the receiver's data queue above the cumulative acknowledgement, then
   * the second SACK block in that SACK option should specify that (possibly larger) block of data."
   *
   * `lastReceivedSeq` is a sequence number of the segment that triggered this ACK (default: the
   * last one `insert` held out of order); the "most recently reported" blocks are those of the
   * segments held since, newest first (each out-of-order segment is ACKed at once, RFC 5681 §4.2,
   * so each was the first block of an ACK). Blocks not remembered follow, highest first.
   */
  sackBlocks(max: number, lastReceivedSeq?: Seq): SackBlock[] {
    const out: SackBlock[] = [];
    if (max <= 0) return out;
    if (this.lastDsack !== null) out.push({ start: this.lastDsack.start, end: this.lastDsack.end });
    const taken: number[] = [];
    const takeRange = (i: number): void => {
      if (out.length >= max || taken.includes(i)) return;
      const start = this.cover.start(i);
      // the range that starts at RCV.NXT is acknowledged, not SACKed
      if (this.edge !== undefined && seqLe(start, this.edge)) return;
      taken.push(i);
      out.push({ start, end: this.cover.end(i) });
    };
    const takeAnchor = (seq: Seq | undefined): void => {
      if (seq === undefined) return;
      const i = this.cover.indexOf(seq);
      if (i >= 0) takeRange(i);
    };
    takeAnchor(lastReceivedSeq ?? this.lastTrigger);
    // forget anchors that RCV.NXT passed
    if (this.edge !== undefined && this.recent.length > 0) {
      const edge = this.edge;
      const kept = this.recent.filter((a) => seqGe(a, edge));
      this.recent = kept.length > 0 ? kept : NO_ITEMS;
    }
    for (const a of this.recent) takeAnchor(a);
    for (let i = this.cover.count - 1; i >= 0 && out.length < max; i--) takeRange(i);
    return out;
  }

  /** Drops everything held. */
  clear(): void {
    this.segStart = NO_ITEMS;
    this.segData = NO_ITEMS;
    this.h = 0;
    this.cover.clear();
    this.recent = NO_ITEMS;
    this.lastTrigger = undefined;
    this.lastDsack = null;
    this.fin = undefined;
  }
}
