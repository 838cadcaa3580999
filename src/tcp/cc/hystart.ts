// HyStart++ (RFC 9406): leave the initial slow start when the RTT starts to rise, before the
// queue overflows, through a Conservative Slow Start (CSS) that can still return to slow start
// if the rise was jitter. RFC 9438 §4.10: "In general, CUBIC SHOULD use the HyStart++ slow
// start algorithm [RFC9406]".
//
// Rounds are counted in bytes rather than sequence numbers: RFC 9406 §4.2 "Define windowEnd as a
// sequence number initialized to SND.NXT" and "When windowEnd is ACKed, the current round ends
// and windowEnd is set to SND.NXT" become "bytes sent so far" and "bytes acknowledged so far",
// which is the same thing while nothing is retransmitted, and HyStart++ only runs before the
// first loss. Times are ms.

/** RFC 9406 §4.3: "It is RECOMMENDED that a HyStart++ implementation use the following constants": MIN_RTT_THRESH = 4 msec. */
export const HYSTART_MIN_RTT_THRESH_MS = 4;
/** RFC 9406 §4.3: MAX_RTT_THRESH = 16 msec. */
export const HYSTART_MAX_RTT_THRESH_MS = 16;
/** RFC 9406 §4.3: MIN_RTT_DIVISOR = 8. */
export const HYSTART_MIN_RTT_DIVISOR = 8;
/** RFC 9406 §4.3: N_RTT_SAMPLE = 8. */
export const HYSTART_N_RTT_SAMPLE = 8;
/** RFC 9406 §4.3: CSS_GROWTH_DIVISOR = 4. */
export const HYSTART_CSS_GROWTH_DIVISOR = 4;
/** RFC 9406 §4.3: CSS_ROUNDS = 5. */
export const HYSTART_CSS_ROUNDS = 5;
/** RFC 9406 §4.3: "L = infinity if paced, L = 8 if non-paced". mptun does not pace. */
export const HYSTART_L_NON_PACED = 8;

export type HyStartPhase = 'slowStart' | 'css' | 'done';

/** What one ACK did. */
export interface HyStartStep {
  /** Bytes to add to cwnd for this ACK. */
  increase: number;
  /** The phase change this ACK caused, if any. */
  event: 'cssEntered' | 'slowStartResumed' | 'exit' | null;
}

export class HyStartPlusPlus {
  private _phase: HyStartPhase = 'slowStart';
  /** Bytes sent when the current round began: the round ends when that much is acknowledged. */
  private windowEnd = 0;
  private lastRoundMinRtt = Infinity;
  private currentRoundMinRtt = Infinity;
  private rttSampleCount = 0;
  private cssBaselineMinRtt = Infinity;
  private cssRounds = 0;

  constructor(private readonly limitSegments: number = HYSTART_L_NON_PACED) {}

  get phase(): HyStartPhase {
    return this._phase;
  }

  /** Loss, a timeout, or an ECN mark: HyStart++ is over for this connection (RFC 9406 §4.2). */
  stop(): void {
    this._phase = 'done';
  }

  /**
   * One ACK in slow start: `ackedBytes` newly acknowledged (N), the running totals of bytes
   * acknowledged and sent, and the RTT sample this ACK produced (null if none, e.g. Karn).
   */
  onAck(ackedBytes: number, mss: number, totalAcked: number, totalSent: number, rttSample: number | null): HyStartStep {
    const step: HyStartStep = { increase: 0, event: null };
    if (this._phase === 'done') {
      step.increase = Math.min(ackedBytes, this.limitSegments * mss);
      return step;
    }
    const n = Math.min(ackedBytes, this.limitSegments * mss);
    if (this._phase === 'slowStart') {
      // RFC 9406 §4.2: "For each arriving ACK in slow start, where N is the number of previously
      // unacknowledged bytes acknowledged in the arriving ACK: Update the cwnd: cwnd = cwnd +
      // min(N, L * SMSS)".
      step.increase = n;
    } else {
      // RFC 9406 §4.2: "For each arriving ACK in CSS [...]: cwnd = cwnd + (min(N, L * SMSS) /
      // CSS_GROWTH_DIVISOR)".
      step.increase = n / HYSTART_CSS_GROWTH_DIVISOR;
    }
    if (rttSample !== null && Number.isFinite(rttSample) && rttSample >= 0) {
      // RFC 9406 §4.2: "Keep track of the minimum observed RTT: currentRoundMinRTT =
      // min(currentRoundMinRTT, currRTT) rttSampleCount += 1".
      this.currentRoundMinRtt = Math.min(this.currentRoundMinRtt, rttSample);
      this.rttSampleCount += 1;
    }
    if (this._phase === 'slowStart') {
      // RFC 9406 §4.2: "if ((rttSampleCount >= N_RTT_SAMPLE) AND (currentRoundMinRTT != infinity)
      // AND (lastRoundMinRTT != infinity)) RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT /
      // MIN_RTT_DIVISOR, MAX_RTT_THRESH)) if (currentRoundMinRTT >= (lastRoundMinRTT + RttThresh))
      // cssBaselineMinRtt = currentRoundMinRTT exit slow start and enter CSS".
      if (
        this.rttSampleCount >= HYSTART_N_RTT_SAMPLE &&
        Number.isFinite(this.currentRoundMinRtt) &&
        Number.isFinite(this.lastRoundMinRtt)
      ) {
        const rttThresh = Math.max(
          HYSTART_MIN_RTT_THRESH_MS,
          Math.min(this.lastRoundMinRtt / HYSTART_MIN_RTT_DIVISOR, HYSTART_MAX_RTT_THRESH_MS),
        );
        if (this.currentRoundMinRtt >= this.lastRoundMinRtt + rttThresh) {
          this.cssBaselineMinRtt = this.currentRoundMinRtt;
          this.cssRounds = 0;
          this._phase = 'css';
          step.event = 'cssEntered';
        }
      }
    } else if (this.rttSampleCount >= HYSTART_N_RTT_SAMPLE && this.currentRoundMinRtt < this.cssBaselineMinRtt) {
      // RFC 9406 §4.2: "For CSS rounds where at least N_RTT_SAMPLE RTT samples have been obtained,
      // check to see if the current round's minRTT drops below baseline (cssBaselineMinRtt)
      // indicating that slow start exit was spurious: if (currentRoundMinRTT < cssBaselineMinRtt)
      // cssBaselineMinRtt = infinity resume slow start including HyStart++".
      this.cssBaselineMinRtt = Infinity;
      this._phase = 'slowStart';
      step.event = 'slowStartResumed';
    }
    // RFC 9406 §4.2: "When windowEnd is ACKed, the current round ends and windowEnd is set to
    // SND.NXT."
    if (totalAcked >= this.windowEnd) {
      if (this._phase === 'css') {
        this.cssRounds += 1;
        // RFC 9406 §4.2: "If CSS_ROUNDS rounds are complete, enter congestion avoidance by setting
        // the ssthresh to the current cwnd." (The controller sets ssthresh.)
        if (this.cssRounds >= HYSTART_CSS_ROUNDS) {
          this._phase = 'done';
          step.event = 'exit';
          return step;
        }
      }
      // RFC 9406 §4.2: "At the start of each round during standard slow start [RFC5681] and CSS,
      // initialize the variables used to compute the last round's and current round's minimum
      // RTT: lastRoundMinRTT = currentRoundMinRTT currentRoundMinRTT = infinity rttSampleCount = 0".
      this.lastRoundMinRtt = this.currentRoundMinRtt;
      this.currentRoundMinRtt = Infinity;
      this.rttSampleCount = 0;
      this.windowEnd = totalSent;
    }
    return step;
  }
}
