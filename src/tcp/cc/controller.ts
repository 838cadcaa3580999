// The congestion controller interface of src/tcp, and what every controller shares: the initial
// and loss windows, the counters, the MPTCP coupling hook.
//
// A controller is a sans-IO object (CONVENTIONS.md 3): the endpoint tells it what happened
// (segments sent, new data acknowledged, a loss detected, a retransmission timeout) with the
// current time `now` in ms, and reads `cwnd` and `ssthresh` back. Windows are in bytes. Loss
// detection (dupacks, SACK, RACK), the recovery point of NewReno (RFC 6582 `recover`), Karn's
// rule and the retransmission timer are the endpoint's; the controller only sizes the window.
//
// What `inFlight` means in each call, so that every controller reads it the same way:
// - `onPacketSent`: bytes in flight after this transmission, its bytes included;
// - `onAck`, `onRecoveryAck`: bytes still in flight after the ACK was processed (RFC 6675
//   `pipe` with SACK, FlightSize = SND.NXT - SND.UNA without). A sender that was limited by
//   cwnd thus reports `inFlight + ackedBytes` close to `cwnd`;
// - `onCongestionEvent`, `onRetransmissionTimeout`: FlightSize (RFC 5681 §2, "The amount of
//   data that has been sent but not yet cumulatively acknowledged") when the event is detected.

import type { CounterSet } from '../../ip/counters.js';
import type { RttEstimator } from '../rtt.js';

/**
 * RFC 6928 §2: "the upper bound for the initial window will be
 * min (10*MSS, max (2*MSS, 14600))". That is IW10 for the usual MSS of 1460 bytes or less, as in
 * Linux; with jumbo frames the 14600-byte cap makes it fewer segments.
 */
export const IW_SEGMENTS = 10;
/** RFC 6928 §2, the byte cap of the initial window (see IW_SEGMENTS). */
export const IW_CAP_BYTES = 14600;
/** RFC 6928 §2, the floor of the initial window in segments (see IW_SEGMENTS). */
export const IW_MIN_SEGMENTS = 2;

/**
 * RFC 5681 §3.1: "upon a timeout cwnd MUST be set to no more than the loss window, LW, which
 * equals 1 full-sized segment (regardless of the value of IW)."
 */
export const LOSS_WINDOW_SEGMENTS = 1;

/** RFC 5681 §3.1, equation (4): "ssthresh = max (FlightSize / 2, 2*SMSS)": the floor, in segments. */
export const MIN_SSTHRESH_SEGMENTS = 2;

/** The initial window in bytes for a sender MSS `mss` (RFC 6928 §2, see IW_SEGMENTS). */
export function initialWindow(mss: number): number {
  return Math.min(IW_SEGMENTS * mss, Math.max(IW_MIN_SEGMENTS * mss, IW_CAP_BYTES));
}

/**
 * The MPTCP coupling hook (RFC 6356). When the connection sets it, the controller asks it for
 * its congestion-avoidance increase instead of computing its own; slow start, the reduction on
 * loss and the timeout stay the controller's. RFC 6356 §3: "The algorithm only applies to the
 * increase phase of the congestion avoidance state specifying how the window inflates upon
 * receiving an ack. The slow start, fast retransmit, and fast recovery algorithms, as well as the
 * multiplicative decrease of the congestion avoidance state are the same as in standard TCP."
 * For LIA the hook returns min(alpha * bytes_acked * MSS_i / cwnd_total,
 * bytes_acked * MSS_i / cwnd_i) (RFC 6356 §3, equation (1)).
 */
export interface CongestionCoupling {
  /** Bytes (fractional allowed) to add to this subflow's cwnd for an ACK of `ackedBytes` new bytes in congestion avoidance. */
  increase(subflowCwnd: number, ackedBytes: number, mss: number): number;
}

/** Decisions of a controller (CONVENTIONS.md 9). Names shared by all controllers. */
export const CC_COUNTER_NAMES = [
  /** A loss (dupacks/SACK/RACK) began a recovery and reduced the window. */
  'congestionEvents',
  /** A loss reported while already in recovery: not a second reduction (one per window). */
  'congestionEventsInRecovery',
  /** A recovery ended (the recovery point was cumulatively acknowledged). */
  'recoveryEnds',
  /** A retransmission timeout collapsed cwnd to the loss window. */
  'retransmissionTimeouts',
  /** A further timeout of the same loss: cwnd stays at the loss window, ssthresh is not lowered again. */
  'repeatedTimeouts',
  /** An ACK while the sender was not using its window (application- or receiver-limited): cwnd not grown. */
  'appLimitedAcks',
  /** A restart after idle shrank cwnd to the restart window (RFC 5681 §4.1). */
  'idleRestarts',
  /** An ACK in congestion avoidance whose increase the MPTCP coupling decided. */
  'coupledIncreases',
  /** HyStart++ (RFC 9406) saw the RTT rise and left slow start for Conservative Slow Start. */
  'hystartCssEntries',
  /** HyStart++ found the slow start exit spurious (the RTT fell back) and resumed slow start. */
  'hystartCssResumes',
  /** HyStart++ ended Conservative Slow Start after CSS_ROUNDS rounds and set ssthresh = cwnd. */
  'hystartExits',
  /** A congestion response found spurious (D-SACK, Eifel, F-RTO) was undone: cwnd and ssthresh restored. */
  'undoCwnd',
] as const;
export type CcCounterName = (typeof CC_COUNTER_NAMES)[number];

/** The interface every congestion controller implements; byte-based, small, sans-IO. */
export interface CongestionController {
  /** The registry name ('cubic', 'newreno', ...). */
  readonly name: string;
  /** The congestion window, bytes. */
  readonly cwnd: number;
  /** The slow start threshold, bytes (Infinity until the first congestion event). */
  readonly ssthresh: number;
  /** RFC 5681 §3.1: "The slow start algorithm is used when cwnd < ssthresh". False during recovery. */
  readonly inSlowStart: boolean;
  /**
   * Between `onCongestionEvent` and `onRecoveryEnd`. For the coupled controller's cwnd_total,
   * RFC 6356 §4: "The correct behavior is to use the ssthresh (slow start threshold) value for
   * flows in fast retransmit when computing cwnd_total."
   */
  readonly inRecovery: boolean;
  /** The sender MSS (SMSS) the windows are counted in. */
  readonly mss: number;
  readonly counters: CounterSet<CcCounterName>;

  /** `bytes` were sent (new data or a retransmission); `inFlight` includes them. */
  onPacketSent(now: number, bytes: number, inFlight: number): void;
  /**
   * `ackedBytes` of new data were cumulatively or selectively acknowledged, outside recovery. `rtt`
   * is the path's estimator (already updated with this ACK's sample, if any). `inFlight` is what
   * remains in flight after the ACK.
   */
  onAck(now: number, ackedBytes: number, rtt: RttEstimator, inFlight: number): void;
  /**
   * Loss detected by dupacks/SACK/RACK: enter recovery and reduce the window, once per window of
   * data: further calls before `onRecoveryEnd` are counted and ignored. `inFlight` is FlightSize.
   * After this call `cwnd` is the reduced window (RFC 9438 §4.6: "the sender MUST reduce cwnd and
   * ssthresh immediately upon entering loss recovery"); the fast retransmit itself is the
   * endpoint's (RFC 5681 §3.2: "The lost segment starting at SND.UNA MUST be retransmitted").
   */
  onCongestionEvent(now: number, inFlight: number): void;
  /**
   * An ACK during recovery that delivered `ackedBytes` (RFC 6937 DeliveredData: cumulatively plus
   * newly selectively acknowledged bytes); `inFlight` is `pipe` after the ACK. With PRR (RFC 6937)
   * the controller then sets `cwnd = pipe + sndcnt`: the endpoint may send `cwnd - inFlight` bytes.
   */
  onRecoveryAck?(now: number, ackedBytes: number, inFlight: number): void;
  /**
   * The loss that caused the last reduction (a congestion event or a timeout) was not one: the
   * retransmissions were spurious (RFC 3708 D-SACK, RFC 3522 Eifel, RFC 5682 F-RTO). Restores
   * the window and threshold saved before it (`priorCwnd`, `priorSsthresh`), as Linux's
   * tcp_undo_cwnd_reduction, and leaves recovery.
   */
  undo?(now: number, priorCwnd: number, priorSsthresh: number): void;
  /**
   * The recovery point was cumulatively acknowledged (RFC 6582 §3.2 step 3, "full
   * acknowledgment"). With `inFlight`, cwnd is deflated to min(ssthresh, max(FlightSize, SMSS) +
   * SMSS) (RFC 6582 option (1)), otherwise to ssthresh (option (2)).
   */
  onRecoveryEnd(now: number, inFlight?: number): void;
  /**
   * The retransmission timer expired (RFC 5681 §3.1: ssthresh = max(FlightSize/2, 2*SMSS) for Reno,
   * FlightSize * beta_cubic for CUBIC; cwnd = LW = 1 SMSS). Ends any recovery. Call it on every
   * expiry; only the first one of a loss lowers ssthresh.
   */
  onRetransmissionTimeout(now: number, inFlight: number): void;
  /**
   * The sender is about to send after an idle period longer than the RTO (the endpoint decides).
   * RFC 5681 §4.1: "a TCP SHOULD set cwnd to no more than RW before beginning transmission if the
   * TCP has not sent data in an interval exceeding the retransmission timeout", RW = min(IW, cwnd).
   */
  onIdleRestart?(now: number): void;
  /** The sender MSS changed (negotiated MSS, PMTU). Before anything was sent, cwnd becomes the IW for it. */
  setMss(mss: number): void;
  /** MPTCP coupling (RFC 6356): set by the connection, null for a plain TCP connection. */
  coupling?: CongestionCoupling | null;
}

/** Builds a controller for a sender MSS. */
export type CongestionControllerFactory = (mss: number) => CongestionController;
