// RACK (RFC 8985 §6): loss detection by time. A segment is deemed lost when a segment sent
// sufficiently later (by the reordering window) has been delivered and one round trip has gone
// by; the reordering window adapts to the D-SACKs the peer sends.
//
// Sans-IO (CONVENTIONS.md 3): every time is a parameter `now` in ms on the driver's clock,
// fractional (the engine passes performance.now(), with µs resolution), so RACK.rtt and the RTT
// samples it gives the estimator are sub-millisecond. The connection keeps the scoreboard, the
// recovery state and the timers; this object keeps the send log (one record per transmitted
// segment: its sequence range, when it was last sent, whether it was retransmitted, SACKed or
// deemed lost) and the RACK variables of RFC 8985 §5.2, and answers which segments are lost and
// when to look again (the RACK reordering timer).
//
// Sequence numbers are compared only through src/tcp/seq.ts (CONVENTIONS.md 7).

import { CounterSet } from '../ip/counters.js';
import type { SackBlock } from './options.js';
import { type Seq, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.js';
import { NO_ITEMS } from '../ip/fifo.js';

/** RFC 6675 DupThresh, used by RACK §6.2 step 4 before reordering is seen. */
export const RACK_DUP_THRESH = 3;

/**
 * RFC 8985 §6.2 step 4: "RACK.reo_wnd_persist = 16" — "RACK persists using the inflated
 * RACK.reo_wnd for up to 16 loss recoveries".
 */
export const RACK_REO_WND_PERSIST = 16;

export const RACK_COUNTER_NAMES = [
  /** Segments RACK deemed lost (RFC 8985 §6.2 step 5). */
  'rackLost',
  /** Of them, segments that had been retransmitted already: a lost retransmission. */
  'rackLostRetransmits',
  /** The RACK reordering timer was armed (a segment not yet late enough, §6.2 step 5). */
  'rackTimerArmed',
  /** The reordering timer fired (RFC 8985 §6.3). */
  'rackTimerFired',
  /** Reordering seen (§6.2 step 3: a never-retransmitted segment delivered below RACK.fack, or a D-SACK). */
  'rackReorderingSeen',
  /** RACK.reo_wnd_mult was raised by a round with a D-SACK (§6.2 step 4). */
  'rackReoWndGrown',
  /** RACK.reo_wnd_mult went back to 1 after 16 recoveries without D-SACK (§6.2 step 4). */
  'rackReoWndReset',
  /** A delivery that was ambiguous (a retransmitted segment, §6.2 step 2) and not used. */
  'rackAmbiguousDelivery',
] as const;
export type RackCounterName = (typeof RACK_COUNTER_NAMES)[number];

const F_RTX = 1;
const F_SACKED = 2;
const F_LOST = 4;

/** A segment newly delivered by an ACK. */
interface Delivered {
  xmitTs: number;
  endSeq: Seq;
  rtx: boolean;
  /** Cumulatively acknowledged (not SACKed). */
  cum: boolean;
}

/** What one ACK told RACK. */
export interface RackAckResult {
  /** Ranges newly deemed lost (ascending). */
  lost: SackBlock[];
  /** When to run detection again (the RACK reordering timer), ms from now; 0 = disarm. */
  timeout: number;
  /**
   * An RTT sample (ms, sub-ms resolution) from the oldest segment this ACK acknowledged
   * cumulatively that was never retransmitted (RFC 6298 §3 Karn), or null.
   */
  rttSample: number | null;
}

/** Inputs of RFC 8985 §6.2 that belong to the connection. */
export interface RackAckInput {
  /** SND.UNA after this ACK (cumulative acknowledgement). */
  sndUna: Seq;
  /** SND.NXT (one past the highest octet sent: our SND.MAX). */
  sndNxt: Seq;
  /** The SACK blocks of this ACK, without its D-SACK block. */
  sacks: readonly SackBlock[];
  /** The ACK carried a D-SACK. */
  dsack: boolean;
  /** The ACK's TSecr converted to our clock (`now` units), or null without timestamps. */
  tsEcrTime: number | null;
  /** In fast or RTO recovery (before this ACK's own exit). */
  inRecovery: boolean;
  /** SRTT, ms. */
  srtt: number;
  /** The sender MSS: SACKed bytes / MSS is RACK.segs_sacked. */
  mss: number;
  /** SACKed bytes above SND.UNA (after this ACK). */
  sackedBytes: number;
  /** Only segments starting below this may be marked lost (after an RTO, what the go-back-N has resent). Default: all. */
  lossLimit?: Seq;
}

export class Rack {
  readonly counters = new CounterSet<RackCounterName>(RACK_COUNTER_NAMES);
  // the send log, ascending by sequence, [starts[i], ends[i]) disjoint and contiguous from SND.UNA;
  // NO_ITEMS while empty (an idle connection's log holds nothing)
  private starts: Seq[] = NO_ITEMS;
  private ends: Seq[] = NO_ITEMS;
  private xmit: number[] = NO_ITEMS;
  private flags: number[] = NO_ITEMS;

  // RFC 8985 §5.2 "Per-connection state"
  /** RACK.xmit_ts: the latest transmission time among the segments delivered, or -Infinity. */
  xmitTs = -Infinity;
  /** RACK.end_seq: the end of that segment. */
  endSeq: Seq = 0;
  /** RACK.segs_sacked is derived from SACKed bytes; RACK.fack: the highest SACKed end. */
  fack: Seq | null = null;
  /** RACK.min_RTT, from never-retransmitted segments (ms). */
  minRtt = Infinity;
  /** RACK.rtt: the RTT of the latest segment delivered (ms). */
  rtt = 0;
  /** RACK.reordering_seen. */
  reorderingSeen = false;
  /** RACK.reo_wnd_mult. */
  reoWndMult = 1;
  /** RACK.reo_wnd_persist. */
  reoWndPersist = 0;
  /** RACK.dsack_round (null: None). */
  dsackRound: Seq | null = null;

  /** When the oldest segment of the log (the one at SND.UNA) was sent last; -Infinity with none. */
  oldestSentAt(): number {
    return this.xmit.length > 0 ? this.xmit[0]! : -Infinity;
  }

  /** Records held (for tests and status). */
  get size(): number {
    return this.starts.length;
  }

  /**
   * RFC 8985 §6.1: "Upon transmitting a new segment or retransmitting an old segment, record the
   * time in Segment.xmit_ts and set Segment.lost to FALSE. Upon retransmitting a segment, set
   * Segment.retransmitted to TRUE."
   */
  onSent(start: Seq, end: Seq, now: number, retransmit: boolean): void {
    if (!seqLt(start, end)) return;
    const n = this.starts.length;
    if (n === 0 || seqGe(start, this.ends[n - 1]!)) {
      if (n === 0) {
        this.starts = [];
        this.ends = [];
        this.xmit = [];
        this.flags = [];
      }
      this.starts.push(start);
      this.ends.push(end);
      this.xmit.push(now);
      this.flags.push(retransmit ? F_RTX : 0);
      return;
    }
    // a retransmission of logged segments: split at its edges, then stamp what it covers
    this.split(start);
    this.split(end);
    for (let i = this.indexAtOrAfter(start); i < this.starts.length && seqLt(this.starts[i]!, end); i++) {
      this.xmit[i] = now;
      this.flags[i] = (this.flags[i]! | F_RTX) & ~F_LOST;
    }
    // bytes beyond the log (the log was cleared): a new record
    const last = this.ends[this.ends.length - 1]!;
    if (seqGt(end, last)) {
      this.starts.push(last);
      this.ends.push(end);
      this.xmit.push(now);
      this.flags.push(retransmit ? F_RTX : 0);
    }
  }

  /** Whether the segment holding `seq` was ever retransmitted (for tests). */
  isRetransmitted(seq: Seq): boolean {
    const i = this.indexHolding(seq);
    return i >= 0 && (this.flags[i]! & F_RTX) !== 0;
  }

  /** Whether the segment holding `seq` is deemed lost. */
  isLost(seq: Seq): boolean {
    const i = this.indexHolding(seq);
    return i >= 0 && (this.flags[i]! & F_LOST) !== 0;
  }

  /**
   * RFC 8985 §6.2 "Upon receiving an ACK", steps 1 to 5, for one ACK. `now` is when it arrived.
   */
  onAck(now: number, a: RackAckInput): RackAckResult {
    let rttSample: number | null = null;
    // Step 1 "Update RACK.min_RTT", step 2 "Update the state for the most recently sent segment
    // that has been delivered", step 3 "Detect data segment reordering" — "For each Segment
    // newly acknowledged, cumulatively or selectively, in ascending order of Segment.xmit_ts".
    const delivered: Delivered[] = [];
    let k = 0;
    while (k < this.starts.length && seqLe(this.ends[k]!, a.sndUna)) {
      if ((this.flags[k]! & F_SACKED) === 0) delivered.push({ xmitTs: this.xmit[k]!, endSeq: this.ends[k]!, rtx: (this.flags[k]! & F_RTX) !== 0, cum: true });
      k++;
    }
    if (k > 0) this.drop(k);
    // a partly acknowledged head: cut at SND.UNA
    if (this.starts.length > 0 && seqLt(this.starts[0]!, a.sndUna)) this.starts[0] = a.sndUna;
    for (const b of a.sacks) {
      if (!seqLt(b.start, b.end)) continue;
      // a block that covers part of a record (a TSO burst, a partial retransmission) splits it
      this.split(b.start);
      this.split(b.end);
      for (let i = this.indexAtOrAfter(b.start); i < this.starts.length && seqLe(this.ends[i]!, b.end); i++) {
        if (seqLt(this.starts[i]!, b.start)) continue;
        if ((this.flags[i]! & F_SACKED) !== 0) continue;
        delivered.push({ xmitTs: this.xmit[i]!, endSeq: this.ends[i]!, rtx: (this.flags[i]! & F_RTX) !== 0, cum: false });
        this.flags[i] = (this.flags[i]! | F_SACKED) & ~F_LOST;
      }
    }
    if (delivered.length > 1) delivered.sort((x, y) => (x.xmitTs !== y.xmitTs ? x.xmitTs - y.xmitTs : seqDiff(x.endSeq, y.endSeq)));
    for (const d of delivered) {
      const s = this.deliver(now, d, a);
      // the RTT sample of the estimator: the oldest cumulatively acknowledged (Karn: never retransmitted)
      if (s !== null && d.cum && rttSample === null) rttSample = s;
    }
    // Step 4: "Update the RACK reordering window".
    const reoWnd = this.updateReoWnd(a);
    // Step 5: "Detect losses".
    const { lost, timeout } = this.detectLoss(now, reoWnd, a.lossLimit);
    if (timeout > 0) this.counters.increment('rackTimerArmed');
    return { lost, timeout, rttSample };
  }

  /**
   * RFC 8985 §6.3: "Upon RACK reordering timer expiration: RACK_detect_loss_and_arm_timer()".
   * The connection passes the reordering window it would use now.
   */
  onTimer(now: number, a: Pick<RackAckInput, 'inRecovery' | 'srtt' | 'mss' | 'sackedBytes' | 'lossLimit'>): { lost: SackBlock[]; timeout: number } {
    this.counters.increment('rackTimerFired');
    const r = this.detectLoss(now, this.reoWnd(a), a.lossLimit);
    if (r.timeout > 0) this.counters.increment('rackTimerArmed');
    return r;
  }

  /**
   * RFC 8985 §6.2 step 4, the part that runs when recovery ends: "Else if exiting Fast or RTO
   * recovery: RACK.reo_wnd_persist -= 1; If RACK.reo_wnd_persist <= 0: RACK.reo_wnd_mult = 1".
   */
  onRecoveryExit(): void {
    this.reoWndPersist -= 1;
    if (this.reoWndPersist <= 0 && this.reoWndMult !== 1) {
      this.reoWndMult = 1;
      this.counters.increment('rackReoWndReset');
    }
  }

  /**
   * A D-SACK showed a retransmission was spurious: the original arrived, late. That is reordering
   * (or duplication) that step 3 cannot see, since the segment had been retransmitted: we count it
   * as reordering seen, as Linux does for a D-SACK below the highest SACK.
   */
  onSpuriousRetransmit(): void {
    if (!this.reorderingSeen) this.counters.increment('rackReorderingSeen');
    this.reorderingSeen = true;
  }

  /** After an RTO the log stays (the go-back-N resends stamp it again); nothing is deemed lost by RACK. */
  onRto(): void {
    for (let i = 0; i < this.flags.length; i++) this.flags[i] = this.flags[i]! & ~F_LOST;
  }

  /** The SACK information was dropped (reneging): nothing is SACKed any more. */
  onReneging(): void {
    for (let i = 0; i < this.flags.length; i++) this.flags[i] = this.flags[i]! & ~F_SACKED;
    this.fack = null;
  }

  /** The reordering window RACK would use now (RFC 8985 §6.2 step 4, without the D-SACK update). */
  reoWnd(a: Pick<RackAckInput, 'inRecovery' | 'srtt' | 'mss' | 'sackedBytes'>): number {
    // "If RACK.reordering_seen is FALSE: If in Fast or RTO recovery: Return 0; Else if
    // RACK.segs_sacked >= DupThresh: Return 0"
    if (!this.reorderingSeen) {
      if (a.inRecovery) return 0;
      if (Math.ceil(a.sackedBytes / Math.max(a.mss, 1)) >= RACK_DUP_THRESH) return 0;
    }
    // "Return min(RACK.reo_wnd_mult * RACK.min_RTT / 4, SRTT)"
    const minRtt = Number.isFinite(this.minRtt) ? this.minRtt : a.srtt;
    return Math.min((this.reoWndMult * minRtt) / 4, a.srtt);
  }

  private updateReoWnd(a: RackAckInput): number {
    // "If RACK.dsack_round is not None AND SND.UNA >= RACK.dsack_round: RACK.dsack_round = None"
    if (this.dsackRound !== null && seqGe(a.sndUna, this.dsackRound)) this.dsackRound = null;
    // "If RACK.dsack_round is None AND any DSACK option is present on latest received ACK:
    // RACK.dsack_round = SND.NXT; RACK.reo_wnd_mult += 1; RACK.reo_wnd_persist = 16"
    if (this.dsackRound === null && a.dsack) {
      this.dsackRound = a.sndNxt;
      this.reoWndMult += 1;
      this.reoWndPersist = RACK_REO_WND_PERSIST;
      this.counters.increment('rackReoWndGrown');
    }
    return this.reoWnd(a);
  }

  /** Steps 1-3 for one delivered segment. Returns its RTT when it is a valid sample (never retransmitted). */
  private deliver(now: number, d: Delivered, a: RackAckInput): number | null {
    const { xmitTs, endSeq, rtx } = d;
    const rtt = now - xmitTs;
    // Step 2: "If Segment.retransmitted is TRUE: If ACK.ts_option.echo_reply < Segment.xmit_ts:
    // Return; If rtt < RACK.min_RTT: Return" — the ACK may be for the original transmission.
    // The echo test only for a cumulative ACK: an ACK that SACKs data above a hole echoes an old
    // TSval (RFC 7323 §4.3: TS.Recent moves only with in-order data), so it would call every
    // SACKed retransmission ambiguous — a tail loss probe that repaired the tail among them, and
    // the losses below it then wait for the RTO. Linux (tcp_rack_advance) uses the min_RTT test alone.
    const staleEcho = d.cum && a.tsEcrTime !== null && a.tsEcrTime < Math.floor(xmitTs);
    if (rtx && (staleEcho || rtt < this.minRtt)) {
      this.counters.increment('rackAmbiguousDelivery');
    } else {
      // Step 1: "Use the RTT measurements obtained via [RFC6298] or [RFC7323] to update the
      // estimated minimum RTT in RACK.min_RTT." (ours: from segments never retransmitted)
      if (!rtx && rtt < this.minRtt) this.minRtt = rtt;
      // "RACK.rtt = rtt; If RACK_sent_after(Segment.xmit_ts, Segment.end_seq, RACK.xmit_ts,
      // RACK.end_seq): RACK.xmit_ts = Segment.xmit_ts; RACK.end_seq = Segment.end_seq"
      this.rtt = rtt;
      if (sentAfter(xmitTs, endSeq, this.xmitTs, this.endSeq)) {
        this.xmitTs = xmitTs;
        this.endSeq = endSeq;
      }
    }
    // Step 3: "If Segment.end_seq > RACK.fack: RACK.fack = Segment.end_seq; Else if
    // Segment.end_seq < RACK.fack AND Segment.retransmitted is FALSE: RACK.reordering_seen = TRUE"
    if (this.fack === null || seqGt(endSeq, this.fack)) {
      this.fack = endSeq;
    } else if (seqLt(endSeq, this.fack) && !rtx) {
      if (!this.reorderingSeen) this.counters.increment('rackReorderingSeen');
      this.reorderingSeen = true;
    }
    return rtx ? null : rtt;
  }

  /**
   * RFC 8985 §6.2 step 5, RACK_detect_loss(): "For each segment, Segment, not acknowledged yet:
   * If RACK_sent_after(RACK.xmit_ts, RACK.end_seq, Segment.xmit_ts, Segment.end_seq):
   * remaining = Segment.xmit_ts + RACK.rtt + RACK.reo_wnd - Now(); If remaining <= 0:
   * Segment.lost = TRUE; Segment.xmit_ts = INFINITE_TS; Else: timeout = max(remaining, timeout)".
   * The log is in sequence order: a segment sent after RACK's lies above RACK.end_seq unless it
   * is a retransmission, so the walk stops at RACK.end_seq.
   */
  private detectLoss(now: number, reoWnd: number, limit?: Seq): { lost: SackBlock[]; timeout: number } {
    const lost: SackBlock[] = [];
    let timeout = 0;
    if (this.xmitTs === -Infinity) return { lost, timeout };
    for (let i = 0; i < this.starts.length; i++) {
      const s = this.starts[i]!;
      if (seqGe(s, this.endSeq)) break;
      if (limit !== undefined && seqGe(s, limit)) break;
      const f = this.flags[i]!;
      if ((f & (F_SACKED | F_LOST)) !== 0) continue;
      if (!sentAfter(this.xmitTs, this.endSeq, this.xmit[i]!, this.ends[i]!)) continue;
      const remaining = this.xmit[i]! + this.rtt + reoWnd - now;
      if (remaining <= 0) {
        this.flags[i] = f | F_LOST;
        this.counters.increment('rackLost');
        if ((f & F_RTX) !== 0) this.counters.increment('rackLostRetransmits');
        const prev = lost[lost.length - 1];
        if (prev !== undefined && prev.end === s) prev.end = this.ends[i]!;
        else lost.push({ start: s, end: this.ends[i]! });
      } else {
        timeout = Math.max(remaining, timeout);
      }
    }
    return { lost, timeout };
  }

  private indexAtOrAfter(seq: Seq): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqGt(this.ends[mid]!, seq)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private indexHolding(seq: Seq): number {
    const i = this.indexAtOrAfter(seq);
    return i < this.starts.length && seqLe(this.starts[i]!, seq) ? i : -1;
  }

  /** Splits the record holding `seq` so that a record starts at `seq`. */
  private split(seq: Seq): void {
    const i = this.indexHolding(seq);
    if (i < 0 || this.starts[i] === seq) return;
    this.starts.splice(i + 1, 0, seq);
    this.ends.splice(i + 1, 0, this.ends[i]!);
    this.xmit.splice(i + 1, 0, this.xmit[i]!);
    this.flags.splice(i + 1, 0, this.flags[i]!);
    this.ends[i] = seq;
  }

  private drop(k: number): void {
    if (k >= this.starts.length) {
      this.starts = this.ends = this.xmit = this.flags = NO_ITEMS;
      return;
    }
    this.starts.splice(0, k);
    this.ends.splice(0, k);
    this.xmit.splice(0, k);
    this.flags.splice(0, k);
  }

  /** Forgets the log (a new connection). */
  reset(): void {
    this.drop(this.starts.length);
    this.xmitTs = -Infinity;
    this.fack = null;
  }
}

/**
 * RFC 8985 §6.2: "RACK_sent_after(t1, seq1, t2, seq2): If t1 > t2: Return true; Else if t1 == t2
 * AND seq1 > seq2: Return true; Else: Return false".
 */
export function sentAfter(t1: number, seq1: Seq, t2: number, seq2: Seq): boolean {
  return t1 > t2 || (t1 === t2 && seqGt(seq1, seq2));
}

/** For `seqDiff` users: bytes of a record list (tests). */
export function blockBytes(blocks: readonly SackBlock[]): number {
  let n = 0;
  for (const b of blocks) n += seqDiff(b.end, b.start);
  return n;
}
