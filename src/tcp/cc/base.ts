// What NewReno and CUBIC share: slow start with byte counting, the cwnd-limited test, one
// reduction per recovery, PRR during recovery, the deflation at the end of recovery, the timeout
// and the restart after idle (RFC 5681, RFC 6582, RFC 6937). A subclass supplies the reduction
// on loss and the congestion-avoidance increase.

import { CounterSet } from '../../ip/counters.js';
import type { RttEstimator } from '../rtt.js';
import {
  CC_COUNTER_NAMES,
  type CcCounterName,
  type CongestionController,
  type CongestionCoupling,
  initialWindow,
  LOSS_WINDOW_SEGMENTS,
  MIN_SSTHRESH_SEGMENTS,
} from './controller.js';
import { Prr, type PrrReductionBound } from './prr.js';

/**
 * L of Appropriate Byte Counting, in segments: in slow start cwnd grows by the bytes an ACK
 * acknowledges, but by at most L*SMSS per ACK (RFC 3465 §2.2; §2.3 allows L = 2*SMSS and no
 * more), which makes a delayed-ACK receiver's slow start double the window per RTT again.
 */
export const ABC_L_SEGMENTS = 2;

export interface LossBasedOptions {
  /**
   * Proportional Rate Reduction during recovery (RFC 6937): true or 'ssrb' (the default, as
   * Linux), 'crb' for the conservative bound, false to hold cwnd at ssthresh through recovery.
   */
  prr?: boolean | PrrReductionBound;
}

export abstract class LossBasedController implements CongestionController {
  abstract readonly name: string;
  readonly counters = new CounterSet<CcCounterName>(CC_COUNTER_NAMES);
  coupling: CongestionCoupling | null = null;

  protected _mss: number;
  /** The window, bytes; fractional internally, `cwnd` reports whole bytes. */
  protected _cwnd: number;
  protected _ssthresh = Infinity;
  protected _inRecovery = false;
  protected readonly prr: Prr | null;
  /** A timeout happened and no new data has been acknowledged since: the same loss. */
  private sinceTimeout = false;
  /** Something was sent or acknowledged: setMss no longer resets the initial window. */
  private started = false;

  constructor(mss: number, options: LossBasedOptions = {}) {
    if (!(mss > 0) || !Number.isFinite(mss)) throw new RangeError('congestion controller: mss must be a positive number');
    this._mss = mss;
    this._cwnd = initialWindow(mss);
    const prr = options.prr ?? true;
    this.prr = prr === false ? null : new Prr(prr === true ? 'ssrb' : prr);
  }

  get mss(): number {
    return this._mss;
  }

  get cwnd(): number {
    return Math.floor(this._cwnd);
  }

  get ssthresh(): number {
    return Number.isFinite(this._ssthresh) ? Math.floor(this._ssthresh) : this._ssthresh;
  }

  get inSlowStart(): boolean {
    // RFC 5681 §3.1: "The slow start algorithm is used when cwnd < ssthresh, while the congestion
    // avoidance algorithm is used when cwnd > ssthresh. When cwnd and ssthresh are equal, the
    // sender may use either slow start or congestion avoidance." We use congestion avoidance.
    return !this._inRecovery && this._cwnd < this._ssthresh;
  }

  get inRecovery(): boolean {
    return this._inRecovery;
  }

  onPacketSent(now: number, bytes: number, inFlight: number): void {
    if (!(bytes > 0)) return;
    this.started = true;
    if (this._inRecovery) this.prr?.onSent(bytes);
    this.notePacketSent(now, bytes, inFlight);
  }

  onAck(now: number, ackedBytes: number, rtt: RttEstimator, inFlight: number): void {
    if (!(ackedBytes > 0)) return;
    this.started = true;
    this.sinceTimeout = false;
    this.noteAck(now, ackedBytes, rtt);
    if (this._inRecovery) {
      // The endpoint should have called onRecoveryAck; treat it as one rather than grow the window.
      this.onRecoveryAck(now, ackedBytes, inFlight);
      return;
    }
    if (!this.isCwndLimited(ackedBytes, inFlight)) {
      // RFC 9438 §5.8: "CUBIC does not increase its congestion window if a flow is
      // application-limited." Reno is held the same way: a window that grew while unused was never
      // validated by the network (the concern of RFC 7661, congestion window validation).
      this.counters.increment('appLimitedAcks');
      this.onAppLimitedAck(now);
      return;
    }
    let remaining = ackedBytes;
    if (this._cwnd < this._ssthresh) {
      const increase = this.slowStartIncrease(now, ackedBytes, rtt);
      const room = this._ssthresh - this._cwnd;
      if (increase <= room) {
        this._cwnd += increase;
        return;
      }
      // Slow start ends inside this ACK: cap at ssthresh and give what is left of the ACK to
      // congestion avoidance, as Linux's tcp_slow_start does.
      this._cwnd = this._ssthresh;
      remaining = ackedBytes - room;
      if (!(remaining > 0)) return;
    }
    if (this.coupling) {
      const increase = this.coupling.increase(this._cwnd, remaining, this._mss);
      if (Number.isFinite(increase) && increase > 0) this._cwnd += increase;
      this.counters.increment('coupledIncreases');
      this.onCoupledAck(now);
      return;
    }
    this.congestionAvoidance(now, remaining, rtt);
  }

  onCongestionEvent(now: number, inFlight: number): void {
    if (this._inRecovery) {
      // RFC 6582 §3.2 step 1: a TCP that is already in recovery "does not enter fast retransmit
      // and does not reset ssthresh": one reduction per window of data.
      this.counters.increment('congestionEventsInRecovery');
      return;
    }
    this.started = true;
    const flight = Math.max(inFlight, 0);
    const ssthresh = Math.max(this.ssthreshAfterLoss(now, flight), MIN_SSTHRESH_SEGMENTS * this._mss);
    this._ssthresh = ssthresh;
    // RFC 9438 §4.6: "cwnd = max(ssthresh, 2) // reduction on loss, cwnd is at least 2 MSS";
    // the PRR then paces the way down from FlightSize to it (RFC 6937).
    this._cwnd = ssthresh;
    this._inRecovery = true;
    this.prr?.start(flight);
    this.counters.increment('congestionEvents');
  }

  onRecoveryAck(_now: number, ackedBytes: number, inFlight: number): void {
    if (!this._inRecovery) return;
    if (ackedBytes > 0) this.sinceTimeout = false;
    if (this.prr) {
      const pipe = Math.max(inFlight, 0);
      const sndcnt = this.prr.onAck(Math.max(ackedBytes, 0), pipe, this._ssthresh, this._mss);
      // RFC 6937 §3: the sender sends sndcnt in response to this ACK, i.e. cwnd = pipe + sndcnt.
      this._cwnd = Math.max(pipe + sndcnt, LOSS_WINDOW_SEGMENTS * this._mss);
    }
  }

  onRecoveryEnd(now: number, inFlight?: number): void {
    if (!this._inRecovery) return;
    this._inRecovery = false;
    // RFC 6582 §3.2 step 3 (full acknowledgment): "Set cwnd to either (1) min (ssthresh,
    // max(FlightSize, SMSS) + SMSS) or (2) ssthresh, where ssthresh is the value set when fast
    // retransmit was entered, and where FlightSize in (1) is the amount of data presently
    // outstanding."
    if (inFlight !== undefined && Number.isFinite(inFlight)) {
      this._cwnd = Math.min(this._ssthresh, Math.max(inFlight, this._mss) + this._mss);
    } else {
      this._cwnd = this._ssthresh;
    }
    this.counters.increment('recoveryEnds');
    this.onRecoveryExit(now);
  }

  undo(now: number, priorCwnd: number, priorSsthresh: number): void {
    // RFC 4015 §3.2 (the Eifel response, which RFC 3708 and RFC 5682 refer to for the response):
    // the sender "restores" the congestion state it had before the spurious retransmission. As
    // Linux's tcp_undo_cwnd_reduction: cwnd = max(cwnd, prior_cwnd) (tcp_reno_undo_cwnd), and
    // "if (tp->prior_ssthresh > tp->snd_ssthresh) tp->snd_ssthresh = tp->prior_ssthresh".
    this._cwnd = Math.max(this._cwnd, priorCwnd);
    if (priorSsthresh > this._ssthresh) this._ssthresh = priorSsthresh;
    const wasInRecovery = this._inRecovery;
    this._inRecovery = false;
    this.sinceTimeout = false;
    this.counters.increment('undoCwnd');
    if (wasInRecovery) this.onRecoveryExit(now);
  }

  onRetransmissionTimeout(now: number, inFlight: number): void {
    this.started = true;
    this.counters.increment('retransmissionTimeouts');
    if (this.sinceTimeout) {
      // RFC 5681 §3.1: ssthresh is set "When a TCP sender detects segment loss using the
      // retransmission timer and the given segment has not yet been resent by way of the
      // retransmission timer": a repeated timeout of the same loss leaves it alone.
      this.counters.increment('repeatedTimeouts');
    } else {
      const ssthresh = this.ssthreshAfterTimeout(now, Math.max(inFlight, 0));
      this._ssthresh = Math.max(ssthresh, MIN_SSTHRESH_SEGMENTS * this._mss);
      this.sinceTimeout = true;
    }
    // RFC 5681 §3.1: "upon a timeout cwnd MUST be set to no more than the loss window, LW, which
    // equals 1 full-sized segment (regardless of the value of IW)."
    this._cwnd = LOSS_WINDOW_SEGMENTS * this._mss;
    // RFC 6582 §3.2 step 4: "After a retransmit timeout, record the highest sequence number
    // transmitted in the variable recover, and exit the fast recovery procedure if applicable."
    this._inRecovery = false;
    this.onTimeoutReset(now);
  }

  onIdleRestart(now: number): void {
    // RFC 5681 §4.1: "a TCP SHOULD set cwnd to no more than RW before beginning transmission if
    // the TCP has not sent data in an interval exceeding the retransmission timeout", and "For the
    // purposes of this standard, we define RW = min(IW,cwnd)."
    const rw = Math.min(initialWindow(this._mss), this._cwnd);
    if (this._cwnd > rw) {
      this._cwnd = rw;
      this.counters.increment('idleRestarts');
    }
    this.onIdleReset(now);
  }

  setMss(mss: number): void {
    if (!(mss > 0) || !Number.isFinite(mss)) return;
    this._mss = mss;
    if (!this.started) {
      // The MSS was negotiated before any data moved: the initial window is the new MSS's.
      this._cwnd = initialWindow(mss);
      return;
    }
    // Later (PMTU changes): the window is a number of bytes the path carried and stays so; only
    // the floors of RFC 5681 are re-applied in units of the new MSS.
    this._cwnd = Math.max(this._cwnd, LOSS_WINDOW_SEGMENTS * mss);
    this._ssthresh = Math.max(this._ssthresh, MIN_SSTHRESH_SEGMENTS * mss);
  }

  /**
   * Was the sender using its window when this ACK arrived? `inFlight + ackedBytes` is the flight
   * just before it. In congestion avoidance: not even one more full segment would have fitted. In
   * slow start, the flight was more than half the window, as in Linux's tcp_is_cwnd_limited
   * (slow start doubles the window, so a half-used window still needs to grow).
   */
  protected isCwndLimited(ackedBytes: number, inFlight: number): boolean {
    const prior = Math.max(inFlight, 0) + ackedBytes;
    if (this._cwnd < this._ssthresh) return 2 * prior > this._cwnd;
    return prior + this._mss > this._cwnd;
  }

  /**
   * The slow-start increase for an ACK of `ackedBytes`. RFC 5681 §3.1: "During slow start, a TCP
   * increments cwnd by at most SMSS bytes for each ACK received that cumulatively acknowledges new
   * data"; with Appropriate Byte Counting (RFC 3465) by the bytes acknowledged, up to L*SMSS.
   */
  protected slowStartIncrease(_now: number, ackedBytes: number, _rtt: RttEstimator): number {
    return Math.min(ackedBytes, ABC_L_SEGMENTS * this._mss);
  }

  /** ssthresh after a loss detected by ACKs; may update the subclass's state. */
  protected abstract ssthreshAfterLoss(now: number, flightSize: number): number;
  /** ssthresh after a retransmission timeout (the first of a loss). */
  protected abstract ssthreshAfterTimeout(now: number, flightSize: number): number;
  /** Congestion avoidance for `ackedBytes` newly acknowledged, the sender being cwnd-limited. */
  protected abstract congestionAvoidance(now: number, ackedBytes: number, rtt: RttEstimator): void;

  /** Every transmission (hook). */
  protected notePacketSent(_now: number, _bytes: number, _inFlight: number): void {}
  /** Every ACK of new data, before any window change (hook). */
  protected noteAck(_now: number, _ackedBytes: number, _rtt: RttEstimator): void {}
  /** An ACK that found the sender application-limited (hook). */
  protected onAppLimitedAck(_now: number): void {}
  /** A congestion-avoidance ACK whose increase the MPTCP coupling decided (hook). */
  protected onCoupledAck(_now: number): void {}
  /** Recovery ended (hook). */
  protected onRecoveryExit(_now: number): void {}
  /** A retransmission timeout collapsed the window (hook). */
  protected onTimeoutReset(_now: number): void {}
  /** A restart after idle (hook). */
  protected onIdleReset(_now: number): void {}
}
