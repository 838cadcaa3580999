// CUBIC congestion control (RFC 9438), with HyStart++ (RFC 9406) for the initial slow start.
//
// The RFC counts windows in segments and time in seconds; this controller keeps its windows in
// bytes (RFC 9438 §4.1: "Implementations can use bytes to express window sizes, which would
// require factoring in the maximum segment size wherever necessary and replacing segments_acked
// with the number of bytes acknowledged in Figure 4") and converts at the two formulas, which are
// exported in the RFC's units for the tests. `now` is ms.

import type { RttEstimator } from '../rtt.js';
import { LossBasedController, type LossBasedOptions } from './base.js';
import { HYSTART_L_NON_PACED, HyStartPlusPlus } from './hystart.js';

/**
 * RFC 9438 §5.1: "C=0.4 seems to give a good balance between Reno-friendliness and
 * aggressiveness of window increase. Therefore, C SHOULD be set to 0.4." Unit: segment/second³.
 */
export const CUBIC_C = 0.4;

/** RFC 9438 §4.6: "The parameter β_cubic SHOULD be set to 0.7". */
export const CUBIC_BETA = 0.7;

/**
 * RFC 9438 §4.3: "α_cubic = 3 * (1 - β_cubic) / (1 + β_cubic)", the additive increase (segments
 * per RTT) of the AIMD flow that CUBIC's Reno-friendly region emulates: 0.529... for β = 0.7.
 */
export const CUBIC_ALPHA = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);

/**
 * RFC 9438 §4.2: the target is "1.5 * cwnd if W_cubic(t + RTT) > 1.5 * cwnd": "The lower and
 * upper bounds below ensure that CUBIC's congestion window increase rate is non-decreasing and is
 * less than the increase rate of slow start".
 */
export const CUBIC_TARGET_MAX_GROWTH = 1.5;

const MS_PER_S = 1000;

/**
 * RFC 9438 §4.2, Figure 2: "K = cubic_root((W_max - cwnd_epoch) / C)", in seconds, windows in
 * segments. Negative when cwnd_epoch is above W_max, which keeps W_cubic(0) = cwnd_epoch.
 */
export function cubicK(wMax: number, cwndEpoch: number, c: number = CUBIC_C): number {
  return Math.cbrt((wMax - cwndEpoch) / c);
}

/** RFC 9438 §4.2, Figure 1: "W_cubic(t) = C * (t - K)^3 + W_max", segments, t and K in seconds. */
export function wCubic(t: number, k: number, wMax: number, c: number = CUBIC_C): number {
  const d = t - k;
  return c * d * d * d + wMax;
}

export interface CubicOptions extends LossBasedOptions {
  /**
   * RFC 9438 §4.7: "the following "Fast Convergence" mechanism SHOULD be implemented", and "In
   * network environments with only a single CUBIC flow and without any other traffic, Fast
   * Convergence SHOULD be disabled." Default true, as Linux.
   */
  fastConvergence?: boolean;
  /** HyStart++ (RFC 9406) in the initial slow start. Default true (RFC 9438 §4.10 SHOULD). */
  hystart?: boolean;
  /**
   * The RTT in W_cubic(t + RTT): 'srtt', the smoothed RTT RFC 9438 §4.2 names (the default), or
   * 'minRtt', the path's minimum RTT, which is what Linux's CUBIC adds (`delay_min`).
   */
  targetRtt?: 'srtt' | 'minRtt';
}

export class Cubic extends LossBasedController {
  readonly name = 'cubic';
  readonly fastConvergence: boolean;
  readonly targetRtt: 'srtt' | 'minRtt';

  /** RFC 9438 §4.1.2 W_max, bytes; 0 until the first congestion event. */
  private wMax = 0;
  /** RFC 9438 §4.1.2 cwnd_prior, bytes: cwnd when ssthresh was last set. */
  private cwndPrior = 0;
  /** RFC 9438 §4.1.2 K, seconds. */
  private k = 0;
  /** RFC 9438 §4.1.2 t_epoch, ms; null outside a congestion-avoidance stage. */
  private epochStart: number | null = null;
  /** RFC 9438 §4.1.2 cwnd_epoch, bytes. */
  private cwndEpoch = 0;
  /** RFC 9438 §4.1.2 W_est, bytes. */
  private wEst = 0;
  /** The next stage starts with K = 0 and W_max = cwnd_epoch (RFC 9438 §4.8, §4.10). */
  private kZeroNextEpoch = false;
  /** Since when ACKs have found the sender application-limited, ms. */
  private appLimitedSince: number | null = null;
  private lastAckAt: number | null = null;
  private totalSent = 0;
  private totalAcked = 0;
  private seenSamples = 0;
  private readonly hystart: HyStartPlusPlus | null;

  constructor(mss: number, options: CubicOptions = {}) {
    super(mss, options);
    this.fastConvergence = options.fastConvergence ?? true;
    this.targetRtt = options.targetRtt ?? 'srtt';
    this.hystart = options.hystart === false ? null : new HyStartPlusPlus(HYSTART_L_NON_PACED);
  }

  /** The W_max of the current stage, bytes (0 before the first congestion event). For status and tests. */
  get windowMax(): number {
    return this.wMax;
  }

  /** K of the current congestion-avoidance stage, seconds (0 outside one). */
  get kSeconds(): number {
    return this.epochStart === null ? 0 : this.k;
  }

  /** W_est of the current stage, bytes. */
  get renoEstimate(): number {
    return this.wEst;
  }

  /** Where HyStart++ is: 'slowStart', 'css', or 'done' (also when disabled). */
  get hystartPhase(): 'slowStart' | 'css' | 'done' {
    return this.hystart?.phase ?? 'done';
  }

  protected override notePacketSent(now: number, bytes: number, inFlight: number): void {
    this.totalSent += bytes;
    // RFC 9438 §4.2: "The elapsed time t in Figure 1 MUST NOT include periods during which cwnd
    // has not been updated due to application-limited behavior". A send into an empty pipe ends
    // an idle period; move the epoch forward by it (as Linux's CUBIC does on CA_EVENT_TX_START).
    if (inFlight - bytes <= 0 && this.epochStart !== null && this.appLimitedSince === null && this.lastAckAt !== null) {
      const idle = now - this.lastAckAt;
      if (idle > 0) this.epochStart = Math.min(this.epochStart + idle, now);
    }
  }

  protected override noteAck(now: number, ackedBytes: number): void {
    this.lastAckAt = now;
    this.totalAcked += ackedBytes;
  }

  protected override onAppLimitedAck(now: number): void {
    if (this.epochStart !== null && this.appLimitedSince === null) this.appLimitedSince = now;
  }

  protected override slowStartIncrease(now: number, ackedBytes: number, rtt: RttEstimator): number {
    const sample = rtt.sampleCount !== this.seenSamples ? rtt.latest : null;
    this.seenSamples = rtt.sampleCount;
    // RFC 9406 §4.2: "An implementation SHOULD use HyStart++ only for the initial slow start (when
    // the ssthresh is at its initial value of arbitrarily high per [RFC5681])".
    if (!this.hystart || this.hystart.phase === 'done' || this._ssthresh !== Infinity) {
      return super.slowStartIncrease(now, ackedBytes, rtt);
    }
    const step = this.hystart.onAck(ackedBytes, this._mss, this.totalAcked, this.totalSent, sample);
    if (step.event === 'cssEntered') this.counters.increment('hystartCssEntries');
    else if (step.event === 'slowStartResumed') this.counters.increment('hystartCssResumes');
    else if (step.event === 'exit') {
      this.counters.increment('hystartExits');
      // RFC 9406 §4.2: "enter congestion avoidance by setting the ssthresh to the current cwnd",
      // and RFC 9438 §4.10: "In this special case, CUBIC sets cwnd_prior = cwnd and switches to
      // congestion avoidance. It then increases its congestion window size using Figure 1, where
      // t is the elapsed time since the beginning of the current congestion avoidance, K is set
      // to 0, and W_max is set to the congestion window size at the beginning of the current
      // congestion avoidance stage."
      const cwnd = this._cwnd + step.increase;
      this._ssthresh = cwnd;
      this.cwndPrior = cwnd;
      this.kZeroNextEpoch = true;
      this.epochStart = null;
    }
    return step.increase;
  }

  protected ssthreshAfterLoss(_now: number, flightSize: number): number {
    const cwnd = this._cwnd;
    // RFC 9438 §4.7: "W_max = cwnd * (1 + β_cubic) / 2 if cwnd < W_max and fast convergence
    // enabled, further reduce W_max; W_max = cwnd otherwise, remember cwnd before reduction".
    if (this.fastConvergence && cwnd < this.wMax) {
      this.wMax = (cwnd * (1 + CUBIC_BETA)) / 2;
    } else {
      this.wMax = cwnd;
    }
    // RFC 9438 §4.6, Figure 5: "ssthresh = flight_size * β_cubic // new ssthresh",
    // "cwnd_prior = cwnd // save cwnd"; the floors of 2 MSS are the base class's.
    this.cwndPrior = cwnd;
    this.endEpoch();
    this.kZeroNextEpoch = false;
    // RFC 9406 §4.2 (paraphrased): a loss or an ECN mark in slow start or CSS ends HyStart++; the
    // connection goes through loss recovery to congestion avoidance.
    this.hystart?.stop();
    return flightSize * CUBIC_BETA;
  }

  protected ssthreshAfterTimeout(_now: number, flightSize: number): number {
    // RFC 9438 §4.8: "In case of a timeout, CUBIC follows Reno to reduce cwnd [RFC5681], but sets
    // ssthresh using β_cubic (same as in Section 4.6) in a way that is different from Reno TCP".
    this.cwndPrior = this._cwnd;
    this.endEpoch();
    // RFC 9438 §4.8: "During the first congestion avoidance stage after a timeout, CUBIC increases
    // its congestion window size using Figure 1, where t is the elapsed time since the beginning
    // of the current congestion avoidance, K is set to 0, and W_max is set to the congestion window
    // size at the beginning of the current congestion avoidance stage."
    this.kZeroNextEpoch = true;
    this.hystart?.stop();
    return flightSize * CUBIC_BETA;
  }

  protected congestionAvoidance(now: number, ackedBytes: number, rtt: RttEstimator): void {
    const mss = this._mss;
    if (this.epochStart === null) {
      this.beginEpoch(now);
    } else if (this.appLimitedSince !== null) {
      // The application-limited period is over: leave it out of t (RFC 9438 §4.2, §5.8).
      this.epochStart = Math.min(this.epochStart + (now - this.appLimitedSince), now);
    }
    this.appLimitedSince = null;
    const epochStart = this.epochStart ?? now;
    const t = (now - epochStart) / MS_PER_S;
    const wMaxSegments = this.wMax / mss;

    // RFC 9438 §4.3, Figure 4: "W_est = W_est + α_cubic * segments_acked / cwnd", in bytes
    // α * (acked / mss) / (cwnd / mss) segments = α * acked * mss / cwnd bytes. "Once W_est has
    // grown to reach the cwnd at the time of most recently setting ssthresh -- that is, W_est >=
    // cwnd_prior -- the sender SHOULD set α_cubic to 1".
    const alpha = this.wEst >= this.cwndPrior ? 1 : CUBIC_ALPHA;
    this.wEst += (alpha * ackedBytes * mss) / this._cwnd;

    // RFC 9438 §4.3: "When receiving a new ACK in congestion avoidance (where cwnd could be greater
    // than or less than W_max), CUBIC checks whether W_cubic(t) is less than W_est. If so, CUBIC is
    // in the Reno-friendly region and cwnd SHOULD be set to W_est at each reception of a new ACK."
    const cubicNow = wCubic(t, this.k, wMaxSegments) * mss;
    if (cubicNow < this.wEst) {
      if (this.wEst > this._cwnd) this._cwnd = this.wEst;
      return;
    }

    // RFC 9438 §4.2: "Upon receiving a new ACK during congestion avoidance, CUBIC computes the
    // target congestion window size after the next RTT using Figure 1 as follows, where RTT is the
    // smoothed round-trip time": target = cwnd if W_cubic(t + RTT) < cwnd, 1.5 * cwnd if
    // W_cubic(t + RTT) > 1.5 * cwnd, W_cubic(t + RTT) otherwise.
    const rttMs = this.targetRtt === 'minRtt' ? (rtt.minRtt ?? rtt.srtt) : rtt.srtt;
    const rttSeconds = (rttMs ?? 0) / MS_PER_S;
    const next = wCubic(t + rttSeconds, this.k, wMaxSegments) * mss;
    const target = Math.min(Math.max(next, this._cwnd), CUBIC_TARGET_MAX_GROWTH * this._cwnd);
    // RFC 9438 §4.4 (concave region) and §4.5 (convex region): "cwnd MUST be incremented by
    // (target - cwnd) / cwnd for each received new ACK", per segment acknowledged; in bytes,
    // (target - cwnd) * acked / cwnd.
    this._cwnd += ((target - this._cwnd) * ackedBytes) / this._cwnd;
  }

  /** RFC 9438 §4.1.2: t_epoch, cwnd_epoch, K and W_est of a new congestion-avoidance stage. */
  private beginEpoch(now: number): void {
    const mss = this._mss;
    this.epochStart = now;
    this.cwndEpoch = this._cwnd;
    // RFC 9438 §4.3: "W_est is set equal to cwnd_epoch at the start of the congestion avoidance
    // stage." (§4.8: "for the Reno-friendly region, W_est SHOULD be set to the congestion window
    // size at the beginning of the current congestion avoidance.")
    this.wEst = this._cwnd;
    if (this.kZeroNextEpoch || this.wMax <= 0) {
      // RFC 9438 §4.8 (after a timeout) and §4.10 (slow start left without a loss).
      this.k = 0;
      this.wMax = this._cwnd;
      this.kZeroNextEpoch = false;
      if (this.cwndPrior <= 0) this.cwndPrior = this._cwnd;
    } else {
      this.k = cubicK(this.wMax / mss, this.cwndEpoch / mss);
    }
  }

  private endEpoch(): void {
    this.epochStart = null;
    this.appLimitedSince = null;
  }

  protected override onTimeoutReset(): void {
    this.endEpoch();
  }

  protected override onCoupledAck(): void {
    // The coupled controller grows the window (RFC 6356): no CUBIC stage runs meanwhile, and if
    // the coupling is removed a new one starts from the window then.
    this.endEpoch();
  }

  protected override onIdleReset(): void {
    // cwnd is back at the restart window: the next congestion-avoidance stage starts afresh from
    // the W_max of the last congestion event.
    this.endEpoch();
  }
}
