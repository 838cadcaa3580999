// The round-trip time estimator and the retransmission timer value (RFC 6298), with the
// timestamp-based sampling of RFC 7323 and a windowed minimum RTT for CUBIC, HyStart++ and the
// MPTCP scheduler.
//
// Sans-IO (CONVENTIONS.md 3): every time is a parameter `now` in milliseconds on the driver's
// clock (fractional allowed). This object only computes the RTO; arming the one timer of the
// connection at `now + rto` is the endpoint's, and so is Karn's rule (RFC 6298 §3: "RTT samples
// MUST NOT be made using segments that were retransmitted (and thus for which it is ambiguous
// whether the reply was for the first instance of the packet or a later instance)"): the
// endpoint calls `onSample` only with valid samples.

import { CounterSet } from '../ip/counters.js';

/** RFC 6298 §2.3: "The above SHOULD be computed using alpha=1/8 and beta=1/4 (as suggested in [JK88])." */
export const RTT_ALPHA = 1 / 8;
/** RFC 6298 §2.3 (see RTT_ALPHA). */
export const RTT_BETA = 1 / 4;
/** RFC 6298 §2.2: "RTO <- SRTT + max (G, K*RTTVAR) where K = 4." */
export const RTT_K = 4;

/**
 * RFC 6298 §2.1: "Until a round-trip time (RTT) measurement has been made for a segment sent
 * between the sender and receiver, the sender SHOULD set RTO <- 1 second".
 */
export const INITIAL_RTO_MS = 1000;

/**
 * RFC 6298 §5.7: "If the timer expires awaiting the ACK of a SYN segment and the TCP
 * implementation is using an RTO less than 3 seconds, the RTO MUST be re-initialized to 3
 * seconds when data transmission begins (i.e., after the three-way handshake completes)."
 */
export const SYN_FALLBACK_RTO_MS = 3000;

/**
 * The default lower bound on the RTO: 200 ms, Linux's TCP_RTO_MIN (HZ/5).
 *
 * A deliberate deviation from RFC 6298 §2.4: "Whenever RTO is computed, if it is less than 1
 * second, then the RTO SHOULD be rounded up to 1 second." That is a SHOULD, and the same
 * paragraph grants that "at some future point, research may show that a smaller minimum RTO is
 * acceptable or superior"; Linux, whose behaviour peers and middleboxes are used to, has used
 * 200 ms for decades. Pass `minRto: 1000` for the RFC's value.
 */
export const DEFAULT_MIN_RTO_MS = 200;

/**
 * The default upper bound on the RTO: 120 s, Linux's TCP_RTO_MAX. RFC 6298 §2.5: "A maximum
 * value MAY be placed on RTO provided it is at least 60 seconds."
 */
export const DEFAULT_MAX_RTO_MS = 120_000;

/**
 * G, the clock granularity of RFC 6298 §2 ("we assume a clock granularity of G seconds"), in
 * ms. Our time is fractional milliseconds and the engine's timer fires with about that
 * precision.
 */
export const DEFAULT_CLOCK_GRANULARITY_MS = 1;

/**
 * The window of the minimum-RTT filter: 300 s, Linux's default `tcp_min_rtt_wlen`. The minimum
 * RTT estimates the path's propagation delay, the floor that queueing only adds to.
 */
export const DEFAULT_MIN_RTT_WINDOW_MS = 300_000;

/** RFC 7323 §2.2: the timestamp clock is a 32-bit counter; "TSval ... TSecr" are compared modulo 2**32. */
const TS_MODULUS = 2 ** 32;
const TS_HALF = 2 ** 31;

/** Decisions and drops of the estimator (CONVENTIONS.md 9). */
export const RTT_COUNTER_NAMES = [
  /** A valid RTT sample was folded into SRTT/RTTVAR. */
  'rttSamples',
  /** A sample that is negative, not finite, or a timestamp echo from the future: dropped. */
  'rttInvalidSamples',
  /** The RTO was doubled by `backoff()` (RFC 6298 §5.5). */
  'rtoBackoffs',
  /** A `backoff()` that hit the maximum RTO. */
  'rtoBackoffsCapped',
] as const;
export type RttCounterName = (typeof RTT_COUNTER_NAMES)[number];

export interface RttEstimatorOptions {
  /** RTO before the first sample, ms. Default 1000 (RFC 6298 §2.1). */
  initialRto?: number;
  /** Lower bound on the RTO, ms. Default 200 (Linux); RFC 6298 §2.4 says 1000. */
  minRto?: number;
  /** Upper bound on the RTO, also of the backed-off RTO, ms. Default 120 000 (Linux). */
  maxRto?: number;
  /** G, the clock granularity, ms. Default 1. */
  granularity?: number;
  /** Length of the window over which `minRtt` is the minimum, ms. Default 300 000 (Linux). */
  minRttWindow?: number;
}

/**
 * A running minimum over a sliding time window, in constant space: Kathleen Nichols' windowed
 * min filter, as Linux's `lib/win_minmax.c` and BBR use it. It keeps the best, second best and
 * third best values from successively later parts of the window, so that when the best one
 * ages out the next one is ready.
 */
class WindowedMin {
  // the best, second and third choices as (time, value) pairs in one array of doubles:
  // [t0, v0, t1, v1, t2, v2] (unboxed: 72 bytes, where three objects of two boxed numbers took
  // some 250; three estimators per flow, and thousands of flows are held)
  private readonly s: number[] = [0, Infinity, 0, Infinity, 0, Infinity];

  constructor(private readonly window: number) {}

  get value(): number {
    return this.s[1]!;
  }

  private reset(t: number, v: number): void {
    const s = this.s;
    s[0] = s[2] = s[4] = t;
    s[1] = s[3] = s[5] = v;
  }

  update(t: number, v: number): void {
    const s = this.s;
    // A new minimum, or nothing left in the window: start over from this sample.
    if (v <= s[1]! || t - s[4]! > this.window) {
      this.reset(t, v);
      return;
    }
    if (v <= s[3]!) {
      s[2] = s[4] = t;
      s[3] = s[5] = v;
    } else if (v <= s[5]!) {
      s[4] = t;
      s[5] = v;
    }
    const age = t - s[0]!;
    if (age > this.window) {
      // The best has aged out: promote the others, maybe twice (the second may be old too).
      this.shift(t, v);
      if (t - s[0]! > this.window) this.shift(t, v);
    } else if (s[2] === s[0] && age > this.window / 4) {
      // A quarter of the window without a new second choice: take one from the second quarter.
      s[2] = s[4] = t;
      s[3] = s[5] = v;
    } else if (s[4] === s[2] && age > this.window / 2) {
      // Half the window without a new third choice: take one from the second half.
      s[4] = t;
      s[5] = v;
    }
  }

  private shift(t: number, v: number): void {
    const s = this.s;
    s[0] = s[2];
    s[1] = s[3];
    s[2] = s[4];
    s[3] = s[5];
    s[4] = t;
    s[5] = v;
  }
}

/**
 * RFC 7323 §4.1 (RTTM): the RTT measured from a Timestamps option, "the difference between the
 * current time and the TSecr value", on a 32-bit TS clock of `msPerTick` ms. Both values are the
 * TS clock's (the endpoint computes `nowTsval` from `now` the way it computes the TSval it
 * sends). Returns null when the echo is ahead of the clock (distance 2**31 or more), which no
 * valid echo can be.
 */
export function timestampRtt(nowTsval: number, tsEcr: number, msPerTick = 1): number | null {
  const ticks = (((nowTsval - tsEcr) % TS_MODULUS) + TS_MODULUS) % TS_MODULUS;
  if (ticks >= TS_HALF) return null;
  return ticks * msPerTick;
}

/**
 * RFC 7323 Appendix G: with timestamps a window yields many samples, so the gains are scaled
 * down: "ExpectedSamples = ceiling(FlightSize / (SMSS * 2))", "alpha' = alpha / ExpectedSamples",
 * "beta' = beta / ExpectedSamples". Returns ExpectedSamples (at least 1).
 */
export function expectedSamples(flightSize: number, smss: number): number {
  if (!(smss > 0) || !(flightSize > 0)) return 1;
  return Math.max(1, Math.ceil(flightSize / (smss * 2)));
}

/**
 * SRTT, RTTVAR and RTO per RFC 6298, plus the minimum and latest RTT.
 *
 * ```ts
 * const rtt = new RttEstimator();
 * rtt.onSample(now, now - sentAt);          // on an ACK of a segment sent once (Karn)
 * timers.rto = now + rtt.rto;               // (re)arm the retransmission timer (RFC 6298 §5.3)
 * // on expiry: retransmit, then
 * rtt.backoff();                            // RFC 6298 §5.5
 * ```
 */
export class RttEstimator {
  readonly counters = new CounterSet<RttCounterName>(RTT_COUNTER_NAMES);

  readonly initialRto: number;
  readonly minRto: number;
  readonly maxRto: number;
  readonly granularity: number;

  private _srtt: number | null = null;
  private _rttvar: number | null = null;
  private _latest: number | null = null;
  private _sampleCount = 0;
  private _lastSampleAt: number | null = null;
  private _backoffs = 0;
  private synFallback = false;
  private readonly min: WindowedMin;

  constructor(options: RttEstimatorOptions = {}) {
    this.initialRto = options.initialRto ?? INITIAL_RTO_MS;
    this.minRto = options.minRto ?? DEFAULT_MIN_RTO_MS;
    this.maxRto = options.maxRto ?? DEFAULT_MAX_RTO_MS;
    this.granularity = options.granularity ?? DEFAULT_CLOCK_GRANULARITY_MS;
    const window = options.minRttWindow ?? DEFAULT_MIN_RTT_WINDOW_MS;
    if (!(this.minRto > 0) || !(this.maxRto >= this.minRto) || !(this.initialRto > 0) || !(this.granularity >= 0) || !(window > 0)) {
      throw new RangeError('RttEstimator: need 0 < minRto <= maxRto, initialRto > 0, granularity >= 0, minRttWindow > 0');
    }
    this.min = new WindowedMin(window);
  }

  /** SRTT in ms, or null before the first sample. */
  get srtt(): number | null {
    return this._srtt;
  }

  /** RTTVAR in ms, or null before the first sample. */
  get rttvar(): number | null {
    return this._rttvar;
  }

  /** The last valid sample, ms, or null. */
  get latest(): number | null {
    return this._latest;
  }

  /** The minimum sample of the last `minRttWindow` ms (as of the last sample), or null. */
  get minRtt(): number | null {
    const v = this.min.value;
    return Number.isFinite(v) ? v : null;
  }

  /** How many valid samples were taken: a consumer can tell whether an ACK brought a new one. */
  get sampleCount(): number {
    return this._sampleCount;
  }

  /** When the last valid sample was taken, or null. */
  get lastSampleAt(): number | null {
    return this._lastSampleAt;
  }

  /** How many times the RTO is doubled now (reset by a new sample). */
  get backoffs(): number {
    return this._backoffs;
  }

  /** The RTO before backoff: RFC 6298 §2, clamped to [minRto, maxRto]. */
  get baseRto(): number {
    let rto: number;
    if (this._srtt === null || this._rttvar === null) {
      rto = this.synFallback ? Math.max(this.initialRto, SYN_FALLBACK_RTO_MS) : this.initialRto;
    } else {
      // RFC 6298 §2.3: "After the computation, a host MUST update RTO <- SRTT + max (G, K*RTTVAR)".
      rto = this._srtt + Math.max(this.granularity, RTT_K * this._rttvar);
    }
    // RFC 6298 §2.4 (with the documented lower bound, see DEFAULT_MIN_RTO_MS) and §2.5.
    return Math.min(Math.max(rto, this.minRto), this.maxRto);
  }

  /** The current RTO, ms: the base RTO doubled once per `backoff()`, at most `maxRto`. */
  get rto(): number {
    // RFC 6298 §5.5: "The maximum value discussed in (2.5) above may be used to provide an upper
    // bound to this doubling operation."
    return Math.min(this.baseRto * 2 ** this._backoffs, this.maxRto);
  }

  /**
   * A valid RTT measurement `rttMs` taken at `now`. The endpoint applies Karn's rule before
   * calling. `samplesPerRtt` > 1 scales the gains down as RFC 7323 Appendix G says for
   * timestamp-based sampling (see `expectedSamples`). Returns false (and counts) when the sample
   * is not a finite non-negative number.
   */
  onSample(now: number, rttMs: number, samplesPerRtt = 1): boolean {
    if (!Number.isFinite(rttMs) || rttMs < 0 || !Number.isFinite(now)) {
      this.counters.increment('rttInvalidSamples');
      return false;
    }
    const n = Number.isFinite(samplesPerRtt) && samplesPerRtt > 1 ? samplesPerRtt : 1;
    if (this._srtt === null || this._rttvar === null) {
      // RFC 6298 §2.2: "When the first RTT measurement R is made, the host MUST set
      // SRTT <- R, RTTVAR <- R/2".
      this._srtt = rttMs;
      this._rttvar = rttMs / 2;
    } else {
      // RFC 6298 §2.3: "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|,
      // SRTT <- (1 - alpha) * SRTT + alpha * R'. The value of SRTT used in the update to RTTVAR
      // is its value before updating SRTT itself using the second assignment."
      const alpha = RTT_ALPHA / n;
      const beta = RTT_BETA / n;
      this._rttvar = (1 - beta) * this._rttvar + beta * Math.abs(this._srtt - rttMs);
      this._srtt = (1 - alpha) * this._srtt + alpha * rttMs;
    }
    this._latest = rttMs;
    this._sampleCount += 1;
    this._lastSampleAt = now;
    this.min.update(now, rttMs);
    // RFC 6298 §5: "once a new RTT measurement is obtained (which can only happen when new data
    // has been sent and acknowledged), the computations outlined in Section 2 are performed,
    // including the computation of RTO, which may result in "collapsing" RTO back down after it
    // has been doubled in step 5.5."
    this._backoffs = 0;
    this.counters.increment('rttSamples');
    return true;
  }

  /**
   * A sample from the Timestamps option (RFC 7323 §4.1): `nowTsval` is the TS clock now, `tsEcr`
   * the echoed value, `msPerTick` the TS clock's period. `flightSize` and `smss`, when given,
   * scale the gains per RFC 7323 Appendix G. The endpoint must only pass echoes of segments that
   * advance the left edge of the window (RFC 7323 §4.1's rules for which TSecr to use).
   */
  onTimestampSample(now: number, nowTsval: number, tsEcr: number, msPerTick = 1, flightSize?: number, smss?: number): boolean {
    const rtt = timestampRtt(nowTsval, tsEcr, msPerTick);
    if (rtt === null) {
      this.counters.increment('rttInvalidSamples');
      return false;
    }
    const n = flightSize !== undefined && smss !== undefined ? expectedSamples(flightSize, smss) : 1;
    return this.onSample(now, rtt, n);
  }

  /**
   * The retransmission timer expired. RFC 6298 §5.5: "The host MUST set RTO <- RTO * 2 ("back off
   * the timer")." Returns the new RTO, with which the timer is restarted (§5.6).
   */
  backoff(): number {
    // The doubling stops once the cap is reached, so the exponent stays small.
    if (this.baseRto * 2 ** this._backoffs < this.maxRto) this._backoffs += 1;
    if (this.baseRto * 2 ** this._backoffs >= this.maxRto) this.counters.increment('rtoBackoffsCapped');
    this.counters.increment('rtoBackoffs');
    return this.rto;
  }

  /**
   * The SYN (or SYN-ACK) was retransmitted by timeout: until a sample arrives, the RTO is at least
   * 3 s (RFC 6298 §5.7, see SYN_FALLBACK_RTO_MS).
   */
  onSynTimeout(): void {
    this.synFallback = true;
  }

  /**
   * Data transmission begins after a handshake with a SYN timeout and no RTT sample: RFC 6298
   * §5.7 "the RTO MUST be re-initialized to 3 seconds" — the 3 s without the handshake's backoff.
   */
  reinitializeAfterSynTimeout(): void {
    this.synFallback = true;
    if (this._srtt === null) this._backoffs = 0;
  }
}
