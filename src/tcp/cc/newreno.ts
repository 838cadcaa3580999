// NewReno congestion control: RFC 5681 slow start and congestion avoidance with byte counting
// (RFC 3465), the fast recovery reduction, and the one-reduction-per-recovery rule of NewReno
// (RFC 6582). The partial-ACK retransmissions of RFC 6582 are the endpoint's; the window during
// recovery is PRR's (RFC 6937, see base.ts).

import type { RttEstimator } from '../rtt.js';
import { LossBasedController, type LossBasedOptions } from './base.js';

/** RFC 5681 §3.1 equation (4), "ssthresh = max (FlightSize / 2, 2*SMSS)": the divisor of FlightSize. */
export const RENO_REDUCTION_DIVISOR = 2;

export class NewReno extends LossBasedController {
  readonly name = 'newreno';
  /** Bytes acknowledged in congestion avoidance since cwnd last grew (RFC 5681 §3.1 byte counting). */
  private bytesAcked = 0;

  constructor(mss: number, options: LossBasedOptions = {}) {
    super(mss, options);
  }

  protected ssthreshAfterLoss(_now: number, flightSize: number): number {
    // RFC 5681 §3.2 step 2: "When the third duplicate ACK is received, a TCP MUST set ssthresh to
    // no more than the value given in equation (4)": ssthresh = max (FlightSize / 2, 2*SMSS); the
    // 2*SMSS floor is applied by the base class.
    this.bytesAcked = 0;
    return Math.floor(flightSize / RENO_REDUCTION_DIVISOR);
  }

  protected ssthreshAfterTimeout(_now: number, flightSize: number): number {
    // RFC 5681 §3.1: "When a TCP sender detects segment loss using the retransmission timer and
    // the given segment has not yet been resent by way of the retransmission timer, the value of
    // ssthresh MUST be set to no more than the value given in equation (4)".
    this.bytesAcked = 0;
    return Math.floor(flightSize / RENO_REDUCTION_DIVISOR);
  }

  protected congestionAvoidance(_now: number, ackedBytes: number, _rtt: RttEstimator): void {
    // RFC 5681 §3.1: "During congestion avoidance, cwnd is incremented by roughly 1 full-sized
    // segment per round-trip time (RTT)", and "the RECOMMENDED way to increase cwnd during
    // congestion avoidance is to count the number of bytes that have been acknowledged by ACKs for
    // new data. [...] When the number of bytes acknowledged reaches cwnd, then cwnd can be
    // incremented by up to SMSS bytes."
    this.bytesAcked += ackedBytes;
    if (this.bytesAcked >= this._cwnd) {
      this.bytesAcked -= this._cwnd;
      this._cwnd += this._mss;
    }
  }

  protected override onTimeoutReset(): void {
    this.bytesAcked = 0;
  }

  protected override onIdleReset(): void {
    this.bytesAcked = 0;
  }
}
