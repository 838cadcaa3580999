// The sender's SACK scoreboard (RFC 6675 §4, fed by the SACK option of RFC 2018 and the D-SACK
// extension of RFC 2883), and `SeqRangeSet`, the wrap-aware interval set it is built on (the
// receive side's reassembly queue uses it too).
//
// Division of labour. The scoreboard holds what the peer told us (SACKed ranges above SND.UNA)
// and what we retransmitted; it answers IsLost, SetPipe and NextSeg. The recovery state machine
// of RFC 6675 §5 (DupAcks, RecoveryPoint, RescueRxt, cwnd) and the RFC 6675 variables HighACK,
// HighData and HighRxt belong to the connection, which passes them in. As the code below is
// written in exclusive ends, each is "one past" the RFC's octet:
//   sndUna   = HighACK + 1   (RFC 6675 §2: "HighACK is the sequence number of the highest byte of
//                             data that has been cumulatively ACKed at a given point.")
//   highData = HighData + 1  (SND.MAX: "HighData is the highest sequence number transmitted at a
//                             given point.")
//   highRxt  = HighRxt + 1   ("HighRxt is the highest sequence number which has been
//                             retransmitted during the current loss recovery phase.")
// The RFC's "HighRxt = HighACK" is therefore `highRxt = sndUna` here.
//
// Sequence numbers are compared only through src/tcp/seq.ts (CONVENTIONS.md 7). Every range kept
// lies in [SND.UNA, SND.MAX), less than 2**31 wide, so the order of seqLt is a total order on it.

import { CounterSet } from '../ip/counters.js';
import type { SackBlock } from './options.js';
import { type Seq, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin } from './seq.js';
import { NO_ITEMS } from '../ip/fifo.js';

/**
 * A set of disjoint, non-adjacent ranges [start, end) of 32-bit sequence space, kept sorted.
 * All members must lie within a window narrower than 2**31 (they do: the TCP window is).
 * Lookups are O(log n); inserting or removing is O(log n) plus the splice.
 */
export class SeqRangeSet {
  // NO_ITEMS until the first range (six of these sets a connection, most empty all its life)
  private starts: Seq[] = NO_ITEMS;
  private ends: Seq[] = NO_ITEMS;
  private total = 0;

  /** Number of ranges. */
  get count(): number {
    return this.starts.length;
  }

  /** Bytes covered. */
  get bytes(): number {
    return this.total;
  }

  start(i: number): Seq {
    return this.starts[i];
  }

  end(i: number): Seq {
    return this.ends[i];
  }

  /** The lowest range, or undefined. */
  first(): SackBlock | undefined {
    return this.starts.length === 0 ? undefined : { start: this.starts[0], end: this.ends[0] };
  }

  /** The highest range's end (one past the highest octet covered), or undefined. */
  highEnd(): Seq | undefined {
    const n = this.ends.length;
    return n === 0 ? undefined : this.ends[n - 1];
  }

  /** Index of the first range whose end is after `seq` (the range holding `seq`, or the next above). */
  firstEndingAfter(seq: Seq): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqGt(this.ends[mid], seq)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Index of the range holding `seq`, or -1. */
  indexOf(seq: Seq): number {
    const i = this.firstEndingAfter(seq);
    return i < this.starts.length && seqLe(this.starts[i], seq) ? i : -1;
  }

  has(seq: Seq): boolean {
    return this.indexOf(seq) >= 0;
  }

  /** Whether [start, end) is covered entirely (an empty range is). */
  covers(start: Seq, end: Seq): boolean {
    if (seqGe(start, end)) return true;
    const i = this.indexOf(start);
    return i >= 0 && seqGe(this.ends[i], end);
  }

  /** Bytes of [start, end) already covered. */
  overlap(start: Seq, end: Seq): number {
    let n = 0;
    for (let i = this.firstEndingAfter(start); i < this.starts.length && seqLt(this.starts[i], end); i++) {
      n += seqDiff(seqMin(this.ends[i], end), seqMax(this.starts[i], start));
    }
    return n;
  }

  /** Adds [start, end), merging with overlapping and adjacent ranges. Returns the bytes newly covered. */
  add(start: Seq, end: Seq): number {
    if (seqGe(start, end)) return 0;
    // the first range that ends at or after `start` touches or lies above the new one
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqGe(this.ends[mid], start)) hi = mid;
      else lo = mid + 1;
    }
    let j = lo;
    let s = start;
    let e = end;
    let covered = 0;
    while (j < this.starts.length && seqLe(this.starts[j], end)) {
      const a = this.starts[j];
      const b = this.ends[j];
      const o = seqDiff(seqMin(b, end), seqMax(a, start));
      if (o > 0) covered += o;
      s = seqMin(s, a);
      e = seqMax(e, b);
      j++;
    }
    if (j === lo) {
      if (this.starts === NO_ITEMS) {
        this.starts = [];
        this.ends = [];
      }
      this.starts.splice(lo, 0, s);
      this.ends.splice(lo, 0, e);
    } else {
      this.starts[lo] = s;
      this.ends[lo] = e;
      if (j - lo > 1) {
        this.starts.splice(lo + 1, j - lo - 1);
        this.ends.splice(lo + 1, j - lo - 1);
      }
    }
    const added = seqDiff(end, start) - covered;
    this.total += added;
    return added;
  }

  /** Removes [start, end) (splitting a range if need be). Returns the bytes removed. */
  remove(start: Seq, end: Seq): number {
    if (seqGe(start, end)) return 0;
    let removed = 0;
    let i = this.firstEndingAfter(start);
    while (i < this.starts.length && seqLt(this.starts[i], end)) {
      const a = this.starts[i];
      const b = this.ends[i];
      const keepLeft = seqLt(a, start);
      const keepRight = seqGt(b, end);
      removed += seqDiff(seqMin(b, end), seqMax(a, start));
      if (keepLeft && keepRight) {
        this.ends[i] = start;
        this.starts.splice(i + 1, 0, end);
        this.ends.splice(i + 1, 0, b);
        break;
      } else if (keepLeft) {
        this.ends[i] = start;
        i++;
      } else if (keepRight) {
        this.starts[i] = end;
        break;
      } else {
        this.starts.splice(i, 1);
        this.ends.splice(i, 1);
      }
    }
    this.total -= removed;
    return removed;
  }

  /** Removes everything below `seq`. Returns the bytes removed. */
  trimFront(seq: Seq): number {
    let k = 0;
    let removed = 0;
    while (k < this.starts.length && seqLe(this.ends[k], seq)) {
      removed += seqDiff(this.ends[k], this.starts[k]);
      k++;
    }
    if (k > 0) {
      this.starts.splice(0, k);
      this.ends.splice(0, k);
    }
    if (this.starts.length > 0 && seqLt(this.starts[0], seq)) {
      removed += seqDiff(seq, this.starts[0]);
      this.starts[0] = seq;
    }
    this.total -= removed;
    return removed;
  }

  clear(): void {
    this.starts = NO_ITEMS;
    this.ends = NO_ITEMS;
    this.total = 0;
  }

  /** A copy of the ranges, lowest first. */
  toArray(): SackBlock[] {
    return this.starts.map((start, i) => ({ start, end: this.ends[i] }));
  }
}

/** RFC 6675 §2: "DupThresh: The number of duplicate acknowledgments required to trigger a fast retransmission." RFC 5681's 3. */
export const DEFAULT_DUP_THRESH = 3;

export const SCOREBOARD_COUNTER_NAMES = [
  /** ACKs that carried SACK information for octets not known to be SACKed (RFC 6675 §2 duplicate ACKs). */
  'sackNewInfo',
  /** D-SACK blocks received (RFC 2883 §4). */
  'dsackReceived',
  /** D-SACKs reporting data we had retransmitted: the retransmission was spurious (RFC 3708). */
  'dsackSpuriousRetransmit',
  /** SACK blocks ignored: empty, inverted, or reaching beyond HighData. */
  'sackInvalidBlock',
  /** SACK blocks (other than a D-SACK) wholly below the cumulative ACK: stale, ignored. */
  'sackBelowAck',
  /** Times the receiver was found to have discarded SACKed data (a cumulative ACK stopped inside a SACKed range); the scoreboard was cleared. */
  'sackReneging',
  /** Retransmission timeouts seen by the scoreboard. */
  'rto',
] as const;

export type ScoreboardCounter = (typeof SCOREBOARD_COUNTER_NAMES)[number];

/** What `Scoreboard.onAck` learnt from one ACK. */
export interface SackAckResult {
  /** Bytes of [SND.UNA, HighData) newly marked SACKed by this ACK. */
  newlySacked: number;
  /**
   * RFC 6675 §2: "a segment that arrives carrying a SACK block that identifies previously
   * unacknowledged and un-SACKed octets between HighACK and HighData" — a duplicate ACK in the
   * RFC 6675 sense, whether or not it also moved the cumulative ACK or carried data.
   */
  dupAck: boolean;
  /** The D-SACK block (RFC 2883), if the first block was one. */
  dsack: SackBlock | null;
  /** The D-SACK covers data we retransmitted: that retransmission was unnecessary. */
  spuriousRetransmit: boolean;
  /** The receiver reneged: SACK information was dropped (see `onAck`). */
  reneged: boolean;
}

/** What `Scoreboard.nextSeg` says to send. */
export interface NextSegment {
  start: Seq;
  /** At most SMSS bytes. */
  length: number;
  /** True for rules (1), (3) and (4): data below HighData. */
  retransmit: boolean;
  /** The rule of RFC 6675 §4 NextSeg () that chose it. */
  rule: 1 | 2 | 3 | 4;
}

export interface NextSegOptions {
  /**
   * Rule (2): how many bytes of previously unsent data exist and "the receiver's advertised
   * window allows" (min of the two). 0 (the default) skips rule (2) — then the caller must send
   * new data itself before acting on a rule (3) or (4) answer.
   */
  newData?: number;
  /** Rule (3) is a "SHOULD"; false turns it off. Default true. */
  rule3?: boolean;
  /**
   * Rule (4), the rescue retransmission, needs the recovery state: RecoveryPoint + 1 of the current
   * recovery (undefined: not in recovery, no rescue) and RescueRxt + 1 (undefined: not set in this
   * recovery). When rule (4) answers, the caller MUST set RescueRxt to RecoveryPoint and MUST NOT
   * update HighRxt.
   */
  recoveryPoint?: Seq;
  rescueRxt?: Seq;
}

/**
 * The RFC 6675 scoreboard: SACKed ranges above SND.UNA and retransmitted ranges, with IsLost,
 * SetPipe and NextSeg. See the file header for what the connection keeps itself.
 */
export class Scoreboard {
  readonly counters = new CounterSet<ScoreboardCounter>(SCOREBOARD_COUNTER_NAMES);
  readonly dupThresh: number;
  /** SMSS used when a call does not pass one. */
  smss: number;
  private readonly sacked = new SeqRangeSet();
  private readonly rtx = new SeqRangeSet();
  /** Ranges deemed lost by RACK (RFC 8985), not yet retransmitted nor SACKed: `markLost`. */
  private readonly lost = new SeqRangeSet();
  /**
   * Ranges retransmitted after RACK deemed them lost: their originals have left the network, so
   * `pipe` counts only the retransmission (as Linux's packets_out - lost_out + retrans_out),
   * not the original as well as SetPipe's (a) and (b) would for an octet not IsLost.
   */
  private readonly lostResent = new SeqRangeSet();
  private lastNewSack: number | undefined;

  constructor(opts: { smss?: number; dupThresh?: number } = {}) {
    this.smss = opts.smss ?? 1460;
    this.dupThresh = opts.dupThresh ?? DEFAULT_DUP_THRESH;
  }

  /** One past the highest SACKed octet (RFC 6675 "the highest octet covered by any received SACK"), or undefined. */
  get highSacked(): Seq | undefined {
    return this.sacked.highEnd();
  }

  /** Bytes SACKed above SND.UNA. */
  get sackedBytes(): number {
    return this.sacked.bytes;
  }

  /**
   * The octets of [start, end) still in the network after an RTO sent them again from SND.UNA
   * (go-back-N up to SND.NXT): neither SACKed nor deemed lost by RACK since.
   */
  inFlightBelow(start: Seq, end: Seq): number {
    if (!seqLt(start, end)) return 0;
    return seqDiff(end, start) - this.sacked.overlap(start, end) - this.lost.overlap(start, end);
  }

  /** Number of disjoint SACKed ranges. */
  get sackedRangeCount(): number {
    return this.sacked.count;
  }

  /** Whether any SACK information is held. */
  get hasSackInfo(): boolean {
    return this.sacked.count > 0;
  }

  /** The `now` of the last ACK that brought new SACK information (undefined before any). */
  get lastNewSackAt(): number | undefined {
    return this.lastNewSack;
  }

  /** The SACKed ranges, lowest first (a copy: for status and tests). */
  sackedRanges(): SackBlock[] {
    return this.sacked.toArray();
  }

  /** The retransmitted ranges still unacknowledged, lowest first (a copy). */
  retransmittedRanges(): SackBlock[] {
    return this.rtx.toArray();
  }

  isSacked(seq: Seq): boolean {
    return this.sacked.has(seq);
  }

  /** The end of the SACKed range holding `seq`, or `seq` itself when it is not SACKed. */
  sackedEnd(seq: Seq): Seq {
    const i = this.sacked.indexOf(seq);
    return i < 0 ? seq : this.sacked.end(i);
  }

  /** Bytes deemed lost by RACK and not retransmitted since. */
  get lostBytes(): number {
    return this.lost.bytes;
  }

  /** The ranges deemed lost by RACK awaiting retransmission (a copy). */
  lostRanges(): SackBlock[] {
    return this.lost.toArray();
  }

  /**
   * RACK (RFC 8985 §6.2 step 5) deemed [start, end) lost: it leaves `pipe` and `nextSeg` offers
   * it first. A retransmission of it that was in flight is lost too: it no longer counts in
   * `pipe` (RFC 6675 SetPipe (b) counts an octet "for the retransmission" only while that is in
   * the network).
   */
  markLost(start: Seq, end: Seq): void {
    this.rtx.remove(start, end);
    this.lostResent.remove(start, end);
    this.lost.add(start, end);
    // never what the peer holds
    for (const b of this.sacked.toArray()) if (seqLt(b.start, end) && seqGt(b.end, start)) this.lost.remove(b.start, b.end);
  }

  /** Forgets RACK's lost marks (the loss proved spurious: undo). */
  clearLost(): void {
    this.lost.clear();
    this.lostResent.clear();
  }

  isRetransmitted(seq: Seq): boolean {
    return this.rtx.has(seq);
  }

  /**
   * The unSACKed range at or after `from` and below `highData` ("hole"), or null: for the
   * go-back-N after an RTO that skips what the peer holds.
   */
  nextHole(from: Seq, highData: Seq): SackBlock | null {
    let s = from;
    const i = this.sacked.indexOf(s);
    if (i >= 0) s = this.sacked.end(i);
    if (seqGe(s, highData)) return null;
    const j = this.sacked.firstEndingAfter(s);
    const e = j < this.sacked.count ? seqMin(this.sacked.start(j), highData) : highData;
    return { start: s, end: e };
  }

  /**
   * Update () of RFC 6675 §4 for one ACK: `cumAck` is the segment's acknowledgment number,
   * `blocks` its SACK blocks in option order, `sndUna` SND.UNA before this ACK, `highData` SND.MAX.
   */
  onAck(cumAck: Seq, blocks: readonly SackBlock[], sndUna: Seq, highData: Seq, now?: number): SackAckResult {
    const result: SackAckResult = { newlySacked: 0, dupAck: false, dsack: null, spuriousRetransmit: false, reneged: false };
    // A cumulative ACK beyond SND.MAX is the endpoint's to reject; here it only must not make
    // every block look "beyond HighData".
    const una = seqMax(sndUna, seqMin(cumAck, highData));
    const advanced = seqGt(una, sndUna);

    // RFC 2018 §8: "the data receiver is permitted to discard data in its queue that has not been
    // acknowledged to the data sender, even if the data has already been reported in a SACK
    // option." RFC 6675 §5.1 lets the sender keep SACK information across an RTO "as long as
    // robust tests for reneging are present". Ours is Linux's (tcp_check_sack_reneging): a
    // receiver that holds the SACKed octets at the new cumulative ACK point would have
    // acknowledged past them, so an ACK that advances and stops at or inside a SACKed range
    // means they were discarded. Everything SACKed is forgotten then.
    if (advanced && this.sacked.has(una)) {
      this.sacked.clear();
      this.counters.increment('sackReneging');
      result.reneged = true;
    }
    this.sacked.trimFront(una);
    this.lost.trimFront(una);
    this.lostResent.trimFront(una);

    // RFC 2883 §4: only the first block can be a D-SACK. It is not SACK information: skipped by
    // Update (). The retransmitted ranges are looked at before this ACK trims them; a D-SACK of
    // data that an earlier ACK already acknowledged cannot be classified (and is not guessed at).
    const first = blocks.length > 0 ? blocks[0] : undefined;
    const dsack = first !== undefined && this.isDsack(first, blocks, cumAck);
    if (first !== undefined && dsack) {
      result.dsack = { start: first.start, end: first.end };
      this.counters.increment('dsackReceived');
      if (this.rtx.overlap(first.start, first.end) > 0) {
        result.spuriousRetransmit = true;
        this.counters.increment('dsackSpuriousRetransmit');
      }
    }
    this.rtx.trimFront(una);

    for (let i = dsack ? 1 : 0; i < blocks.length; i++) {
      const b = blocks[i];
      if (!seqLt(b.start, b.end) || seqGt(b.end, highData)) {
        this.counters.increment('sackInvalidBlock');
        continue;
      }
      if (seqLe(b.end, una)) {
        this.counters.increment('sackBelowAck');
        continue;
      }
      result.newlySacked += this.sacked.add(seqMax(b.start, una), b.end);
      this.lost.remove(seqMax(b.start, una), b.end);
    }
    if (result.newlySacked > 0) {
      result.dupAck = true;
      this.counters.increment('sackNewInfo');
      if (now !== undefined) this.lastNewSack = now;
    }
    return result;
  }

  /**
   * RFC 2883 §4: "If the SACK sequence space is less than this cumulative ACK, it is an
   * indication that the segment identified by the SACK block has been received more than once
   * by the receiver." and "If the sequence space in the first SACK block is greater than the
   * cumulative ACK, then the sender next compares the sequence space in the first SACK block with
   * the sequence space in the second SACK block, if there is one. This comparison can determine
   * if the first SACK block is reporting duplicate data that lies above the cumulative ACK."
   * "An implementation MUST NOT compare the sequence space in the SACK block to the TCP state
   * variable snd.una" — hence `cumAck` of the same segment. Like Linux (tcp_check_dsack), a
   * first block that starts below the ACK counts.
   */
  private isDsack(first: SackBlock, blocks: readonly SackBlock[], cumAck: Seq): boolean {
    if (!seqLt(first.start, first.end)) return false;
    if (seqLt(first.start, cumAck)) return true;
    if (blocks.length > 1) {
      const second = blocks[1];
      return seqLe(second.start, first.start) && seqGe(second.end, first.end);
    }
    return false;
  }

  /**
   * Records a retransmission of [start, end): it counts again in `pipe` until acknowledged.
   * (The connection keeps HighRxt itself.)
   */
  markRetransmitted(start: Seq, end: Seq): void {
    this.rtx.add(start, end);
    for (const b of this.lost.toArray()) {
      const s = seqMax(b.start, start);
      const e = seqLt(b.end, end) ? b.end : end;
      if (seqLt(s, e)) this.lostResent.add(s, e);
    }
    this.lost.remove(start, end);
  }

  /**
   * RFC 6675 §4 IsLost (SeqNum): "This routine returns whether the given sequence number is
   * considered to be lost. The routine returns true when either DupThresh discontiguous SACKed
   * sequences have arrived above 'SeqNum' or more than (DupThresh - 1) * SMSS bytes with sequence
   * numbers greater than 'SeqNum' have been SACKed. Otherwise, the routine returns false."
   * A SACKed octet is not lost. O(log n + DupThresh): the highest ranges are looked at first.
   */
  isLost(seq: Seq, smss = this.smss): boolean {
    if (this.sacked.has(seq)) return false;
    if (this.lost.has(seq)) return true;
    const n = this.sacked.count;
    const byteLimit = (this.dupThresh - 1) * smss;
    let ranges = 0;
    let bytes = 0;
    for (let i = n - 1; i >= 0; i--) {
      const s = this.sacked.start(i);
      const e = this.sacked.end(i);
      if (seqLe(e, seq)) break;
      ranges++;
      bytes += seqDiff(e, s);
      if (ranges >= this.dupThresh || bytes > byteLimit) return true;
    }
    return false;
  }

  /**
   * RFC 6675 §4 SetPipe (): "This routine traverses the sequence space from HighACK to HighData
   * and MUST set the 'pipe' variable to an estimate of the number of octets that are currently in
   * transit between the TCP sender and the TCP receiver. After initializing pipe to zero, the
   * following steps are taken for each octet 'S1' in the sequence space between HighACK and
   * HighData that has not been SACKed:
   *   (a) If IsLost (S1) returns false: Pipe is incremented by 1 octet.
   *   (b) If S1 <= HighRxt: Pipe is incremented by 1 octet."
   * "The effect of this condition is that pipe is incremented for the retransmission of the
   * octet." We count (b) per octet from the retransmitted ranges (`markRetransmitted`) rather than
   * from HighRxt: the two agree while retransmissions follow NextSeg (which fills holes in
   * ascending order up to HighRxt), and the ranges also see the go-back-N retransmissions after
   * an RTO. Both sides only look at [sndUna, highData).
   *
   * Done per hole, not per octet: IsLost is constant across a hole (the SACKed ranges above it
   * are the same for each of its octets). O(number of SACKed and retransmitted ranges).
   */
  pipe(sndUna: Seq, highData: Seq, smss = this.smss): number {
    if (!seqLt(sndUna, highData)) return 0;
    const n = this.sacked.count;
    const byteLimit = (this.dupThresh - 1) * smss;
    let pipe = 0;
    // walk holes from the top: hole k lies below sacked range k (k = n: the hole above them all)
    let rangesAbove = 0;
    let bytesAbove = 0;
    let holeEnd = highData;
    for (let k = n; k >= 0; k--) {
      let holeStart = k > 0 ? this.sacked.end(k - 1) : sndUna;
      if (seqLt(holeStart, sndUna)) holeStart = sndUna;
      const lost = rangesAbove >= this.dupThresh || bytesAbove > byteLimit;
      if (seqLt(holeStart, holeEnd)) {
        // RACK's lost ranges are out of the network as IsLost's are
        if (!lost) pipe += seqDiff(holeEnd, holeStart) - this.lost.overlap(holeStart, holeEnd) - this.lostResent.overlap(holeStart, holeEnd);
        pipe += this.rtx.overlap(holeStart, holeEnd);
      }
      if (k > 0) {
        const s = this.sacked.start(k - 1);
        const e = this.sacked.end(k - 1);
        rangesAbove++;
        bytesAbove += seqDiff(e, s);
        holeEnd = s;
        if (seqLe(holeEnd, sndUna)) break;
      }
    }
    return pipe;
  }

  /**
   * RFC 6675 §4 NextSeg (): "This routine uses the scoreboard data structure maintained by the
   * Update() function to determine what to transmit based on the SACK information that has
   * arrived from the data receiver (and hence been marked in the scoreboard). NextSeg () MUST
   * return the sequence number range of the next segment that is to be transmitted, per the
   * following rules:" — (1) to (4) below; the fifth, "If the conditions for each of (1), (2), (3),
   * and (4) are not met, then NextSeg () MUST indicate failure, and no segment is returned", is
   * the null answer. Pure: it changes nothing (rule (4)'s RescueRxt is the caller's to set).
   * A retransmission stops at the next SACKed range: it never resends what the peer holds.
   */
  nextSeg(sndUna: Seq, highData: Seq, highRxt: Seq, smss = this.smss, opts: NextSegOptions = {}): NextSegment | null {
    const highSacked = this.sacked.highEnd();
    // The first unSACKed octet above HighRxt, and the hole it is in.
    const from = seqMax(highRxt, sndUna);
    const hole = seqLt(from, highData) ? this.nextHole(from, highData) : null;

    // (1) If there exists a smallest unSACKed sequence number 'S2' that meets the following three
    // criteria for determining loss, the sequence range of one segment of up to SMSS octets
    // starting with S2 MUST be returned.
    //   (1.a) S2 is greater than HighRxt.
    //   (1.b) S2 is less than the highest octet covered by any received SACK.
    //   (1.c) IsLost (S2) returns true.
    // IsLost only grows towards lower octets, so if the smallest candidate is not lost, none is.
    // RACK (RFC 8985 §6.2 step 5) marks segments lost, retransmitted ones included (a lost
    // retransmission lies below HighRxt): the lowest of them goes first, whatever HighRxt is.
    // RFC 8985 §3.4: "RACK-TLP ... is a loss detection algorithm" — what it deems lost is sent
    // by the loss recovery, here RFC 6675's rule (1).
    const rackLost = this.lost.first();
    if (rackLost !== undefined) {
      return { start: rackLost.start, length: Math.min(smss, seqDiff(rackLost.end, rackLost.start)), retransmit: true, rule: 1 };
    }
    const belowHighSacked = hole !== null && highSacked !== undefined && seqLt(hole.start, highSacked);
    if (belowHighSacked && this.isLost(hole.start, smss)) {
      return { start: hole.start, length: Math.min(smss, seqDiff(hole.end, hole.start)), retransmit: true, rule: 1 };
    }

    // (2) If no sequence number 'S2' per rule (1) exists but there exists available unsent data
    // and the receiver's advertised window allows, the sequence range of one segment of up to
    // SMSS octets of previously unsent data starting with sequence number HighData+1 MUST be
    // returned.
    const newData = opts.newData ?? 0;
    if (newData > 0) {
      return { start: highData, length: Math.min(smss, newData), retransmit: false, rule: 2 };
    }

    // (3) If the conditions for rules (1) and (2) fail, but there exists an unSACKed sequence
    // number 'S3' that meets the criteria for detecting loss given in steps (1.a) and (1.b) above
    // (specifically excluding step (1.c)), then one segment of up to SMSS octets starting with S3
    // SHOULD be returned.
    if (belowHighSacked && opts.rule3 !== false) {
      return { start: hole.start, length: Math.min(smss, seqDiff(hole.end, hole.start)), retransmit: true, rule: 3 };
    }

    // (4) If the conditions for (1), (2), and (3) fail, but there exists outstanding unSACKed
    // data, we provide the opportunity for a single "rescue" retransmission per entry into loss
    // recovery. If HighACK is greater than RescueRxt (or RescueRxt is undefined), then one
    // segment of up to SMSS octets that MUST include the highest outstanding unSACKed sequence
    // number SHOULD be returned, and RescueRxt set to RecoveryPoint. HighRxt MUST NOT be updated.
    // (HighACK > RescueRxt, with both one past: sndUna - 1 > rescueRxt - 1.)
    if (opts.recoveryPoint !== undefined && (opts.rescueRxt === undefined || seqGt(sndUna, opts.rescueRxt))) {
      const top = this.highestUnsacked(sndUna, highData);
      if (top !== null) {
        const start = seqMax(top.start, seqAdd(top.end, -smss));
        return { start, length: seqDiff(top.end, start), retransmit: true, rule: 4 };
      }
    }
    return null;
  }

  /** The highest unSACKed hole in [sndUna, highData), or null when nothing there is unSACKed. */
  private highestUnsacked(sndUna: Seq, highData: Seq): SackBlock | null {
    const n = this.sacked.count;
    let end = highData;
    let below = n - 1; // the highest SACKed range below `end`
    // SACKed ranges are disjoint and never adjacent: at most one of them reaches HighData.
    if (n > 0 && seqGe(this.sacked.end(n - 1), highData)) {
      end = this.sacked.start(n - 1);
      below = n - 2;
    }
    const start = below >= 0 ? seqMax(this.sacked.end(below), sndUna) : sndUna;
    return seqLt(start, end) ? { start, end } : null;
  }

  /**
   * After a retransmission timeout. RFC 6675 §5.1: "[RFC2018] suggests that a TCP sender SHOULD
   * expunge the SACK information gathered from a receiver upon a retransmission timeout (RTO)
   * 'since the timeout might indicate that the data receiver has reneged.' ... It has been
   * suggested that, as long as robust tests for reneging are present, an implementation can
   * retain and use SACK information across a timeout event [Errata1610]." ... "Further, a SACK
   * TCP sender SHOULD utilize all SACK information made available during the loss recovery
   * following an RTO." ... "In this case, a TCP sender SHOULD use this SACK information when
   * determining what data should be sent in each segment following an RTO." (`nextHole`,
   * `isSacked`, `sackedEnd` are for that go-back-N.)
   *
   * What we do: by default the SACKed ranges are kept (as Linux does), since `onAck` has the
   * reneging test the RFC asks for; `{ keepSack: false }` expunges them (RFC 2018's reading).
   * The retransmitted ranges are always cleared: everything outstanding is presumed lost and will
   * be sent again. The rest of §5.1 ("RecoveryPoint MUST be set to HighData ... the loss recovery
   * algorithm outlined in this document MUST be terminated ... a new recovery phase ... MUST NOT
   * be initiated until HighACK is greater than or equal to the new value of RecoveryPoint") is
   * the connection's, as is "As described in Sections 4 and 5, Update () SHOULD continue to be
   * used appropriately upon receipt of ACKs" — keep calling `onAck`.
   */
  onRto(opts: { keepSack?: boolean } = {}): void {
    this.counters.increment('rto');
    this.rtx.clear();
    this.lost.clear();
    this.lostResent.clear();
    if (opts.keepSack === false) this.sacked.clear();
  }

  /** Forgets everything (a new connection). */
  reset(): void {
    this.sacked.clear();
    this.rtx.clear();
    this.lost.clear();
    this.lostResent.clear();
    this.lastNewSack = undefined;
  }
}
