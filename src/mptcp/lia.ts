// The Linked Increases Algorithm (LIA, RFC 6356): the coupled congestion control of the subflows
// of one MPTCP connection.
//
// RFC 6356 §3: "The algorithm only applies to the increase phase of the congestion avoidance
// state specifying how the window inflates upon receiving an ack. The slow start, fast
// retransmit, and fast recovery algorithms, as well as the multiplicative decrease of the
// congestion avoidance state are the same as in standard TCP". So each subflow keeps its own
// controller (src/tcp/cc) and only its congestion-avoidance increase is replaced, through the
// `coupling` hook of CongestionController that a `LiaGroup` hands out:
//
// ```ts
// const group = new LiaGroup();                          // one per MPTCP connection
// subflow.cc.coupling = group.add(subflow.cc, subflow.rtt);
// // ... when the subflow is closed:
// group.remove(subflow.cc);                              // also sets cc.coupling = null
// ```
//
// or `createLiaController(group, rtt, mss)` for a new NewReno (or CUBIC) controller already
// coupled. Sans-IO (CONVENTIONS.md 3): nothing here reads a clock; the RTTs are the subflows'
// RttEstimators' SRTTs, read when an ACK asks for an increase.
//
// Cost: alpha (formula (2)) is recomputed lazily, once per congestion-avoidance ACK of any
// subflow, when that ACK asks for its increase: two passes over the group's subflows (three when
// a subflow has no RTT sample yet), O(n) for n subflows (a handful: Linux caps an MPTCP connection
// at 8), no allocation. Nothing is computed on slow-start or recovery ACKs. RFC 6356 §4 worries
// about floating point in kernels; in JavaScript every number is a double already.

import { CounterSet } from '../ip/counters.js';
import type { CongestionController, CongestionCoupling } from '../tcp/cc/controller.js';
import { Cubic, CUBIC_ALPHA } from '../tcp/cc/cubic.js';
import { NewReno } from '../tcp/cc/newreno.js';
import type { LossBasedOptions } from '../tcp/cc/base.js';
import { INITIAL_RTO_MS, type RttEstimator } from '../tcp/rtt.js';

/**
 * The RTT (ms) assumed for a subflow without an RTT sample when no subflow of the group has one.
 * Its value does not matter: alpha (formula (2)) is unchanged when every rtt_i is multiplied by
 * the same factor, so with all RTTs equal to it alpha depends on the windows only. RFC 6298
 * §2.1's initial RTO (1 s) is the conventional "RTT not known yet". When some subflows have
 * samples, a subflow without one is taken to have their mean SRTT instead.
 */
export const LIA_FALLBACK_RTT_MS = INITIAL_RTO_MS;

/**
 * The floor of rtt_i (ms) in formula (2): 1 µs, the resolution of Linux's `srtt_us`. A virtual-time
 * path can report an SRTT of 0, and formula (2) divides by rtt_i.
 */
export const LIA_MIN_RTT_MS = 0.001;

/** Decisions of a LIA group (CONVENTIONS.md 9). */
export const LIA_COUNTER_NAMES = [
  /** A subflow's controller joined the group (`add`). */
  'subflowsAdded',
  /** A subflow's controller left the group (`remove`). */
  'subflowsRemoved',
  /** A congestion-avoidance ACK asked for its increase and alpha was computed for it. */
  'coupledIncreases',
  /** The increase was the uncoupled TCP's (the second argument of RFC 6356 formula (1) was the smaller). */
  'renoCappedIncreases',
  /** Byte counting reached the threshold and cwnd grew by one MSS (mode 'byteCounting'). */
  'windowSteps',
  /** A subflow without an RTT sample was given the fallback RTT in formula (2). */
  'rttFallbacks',
  /** The coupling of a removed subflow was still called: it answered as a lone TCP (alpha = 1). */
  'staleCouplingCalls',
] as const;
export type LiaCounterName = (typeof LIA_COUNTER_NAMES)[number];

/**
 * How the increase of formula (1) is applied.
 * - 'byteCounting' (the default): the per-byte increase of formula (1),
 *   min(alpha * MSS_i / cwnd_total, MSS_i / cwnd_i), is applied as one MSS each time
 *   max(cwnd_total / alpha, cwnd_i) bytes have been acknowledged, the way NewReno counts bytes
 *   (RFC 5681 §3.1: "When the number of bytes acknowledged reaches cwnd, then cwnd can be
 *   incremented by up to SMSS bytes") and Linux's LIA counts packets (`snd_cwnd_cnt`). With one
 *   subflow this is NewReno's congestion avoidance exactly.
 * - 'perAck': formula (1) literally, a fractional number of bytes on every ACK (the controller
 *   keeps fractional windows). With one subflow this is RFC 5681's per-ACK increase
 *   SMSS * bytes_acked / cwnd.
 */
export type LiaIncreaseMode = 'byteCounting' | 'perAck';

export interface LiaGroupOptions {
  /** Default 'byteCounting'. */
  mode?: LiaIncreaseMode;
}

export interface LiaSubflowOptions {
  /**
   * A factor on this subflow's increase. Default 1, except for a CUBIC controller, whose default
   * is CUBIC_ALPHA: see `defaultIncreaseScale`.
   */
  increaseScale?: number;
}

/**
 * The default `increaseScale` of a subflow controller. RFC 6356 §3 keeps "the multiplicative
 * decrease of the congestion avoidance state" of the subflow's TCP, and its derivation of alpha
 * assumes the standard TCP halving. A CUBIC controller reduces by β_cubic = 0.7 instead (RFC 9438
 * §4.6), which alone would make the coupled flow more aggressive than one Reno flow. RFC 9438 §4.3
 * gives the additive increase that makes an AIMD flow with β_cubic as aggressive as Reno:
 * "α_cubic = 3 * (1 - β_cubic) / (1 + β_cubic)". A coupled CUBIC subflow therefore grows by
 * α_cubic times LIA's increase: AIMD(α_cubic, β_cubic) is the Reno-friendly region of CUBIC, and
 * RFC 6356's fairness argument carries over. (The cubic function itself is not used while
 * coupled: cubic.ts ends its epoch on every coupled ACK.)
 */
export function defaultIncreaseScale(cc: CongestionController): number {
  return cc.name === 'cubic' ? CUBIC_ALPHA : 1;
}

interface LiaSubflow {
  readonly cc: CongestionController;
  readonly rtt: RttEstimator;
  readonly scale: number;
  readonly coupling: CongestionCoupling;
  /** Bytes acknowledged in congestion avoidance since cwnd last grew ('byteCounting'). */
  credit: number;
  /** The window reductions of `cc` seen so far (see `reductionsOf`): a change resets `credit`. */
  reductions: number;
  removed: boolean;
}

/** Alpha and cwnd_total of one computation of formula (2). */
interface AlphaResult {
  alpha: number;
  cwndTotal: number;
}

/**
 * How many times the controller's window was reduced (loss, timeout, restart after idle): NewReno
 * zeroes its byte counter on each, and so does byte counting here. One difference remains: NewReno
 * also zeroes it on a restart after idle that did not shrink the window, which no counter shows;
 * the coupled subflow then keeps its credit (less than one step).
 */
function reductionsOf(cc: CongestionController): number {
  const c = cc.counters;
  return c.get('congestionEvents') + c.get('retransmissionTimeouts') + c.get('idleRestarts');
}

/**
 * cwnd_i as RFC 6356 counts it. §4: "The correct behavior is to use the ssthresh (slow start
 * threshold) value for flows in fast retransmit when computing cwnd_total."
 */
function windowOf(cc: CongestionController): number {
  return cc.inRecovery ? cc.ssthresh : cc.cwnd;
}

/**
 * The subflows of one MPTCP connection whose congestion-avoidance increases are linked (RFC 6356).
 * Windows are in bytes; RFC 6356 §3: "We assume throughout this document that the congestion
 * window is maintained in bytes, unless otherwise specified."
 */
export class LiaGroup {
  readonly counters = new CounterSet<LiaCounterName>(LIA_COUNTER_NAMES);
  readonly mode: LiaIncreaseMode;
  private readonly subflows: LiaSubflow[] = [];
  private readonly byController = new Map<CongestionController, LiaSubflow>();
  private readonly scratch: AlphaResult = { alpha: 1, cwndTotal: 0 };

  constructor(options: LiaGroupOptions = {}) {
    this.mode = options.mode ?? 'byteCounting';
  }

  /** How many subflows are coupled. */
  get size(): number {
    return this.subflows.length;
  }

  /** Is `cc` one of the group's subflows? */
  has(cc: CongestionController): boolean {
    return this.byController.has(cc);
  }

  /**
   * Registers a subflow's controller and its RTT estimator; returns the coupling to set as
   * `cc.coupling`. Adding a controller that is already in the group returns its coupling again.
   */
  add(cc: CongestionController, rtt: RttEstimator, options: LiaSubflowOptions = {}): CongestionCoupling {
    const existing = this.byController.get(cc);
    if (existing) return existing.coupling;
    const requested = options.increaseScale;
    const scale = requested !== undefined && Number.isFinite(requested) && requested > 0 ? requested : defaultIncreaseScale(cc);
    const coupling: CongestionCoupling = {
      increase: (subflowCwnd, ackedBytes, mss) => this.increase(subflow, subflowCwnd, ackedBytes, mss),
    };
    const subflow: LiaSubflow = { cc, rtt, scale, coupling, credit: 0, reductions: reductionsOf(cc), removed: false };
    this.subflows.push(subflow);
    this.byController.set(cc, subflow);
    this.counters.increment('subflowsAdded');
    return coupling;
  }

  /**
   * Takes a subflow out of the group (it was closed, or it falls back to plain TCP). If `cc` still
   * holds the group's coupling, it is set to null: the controller grows by its own congestion
   * avoidance again. Returns false when `cc` was not in the group.
   */
  remove(cc: CongestionController): boolean {
    const subflow = this.byController.get(cc);
    if (!subflow) return false;
    this.byController.delete(cc);
    const i = this.subflows.indexOf(subflow);
    if (i >= 0) this.subflows.splice(i, 1);
    subflow.removed = true;
    if (cc.coupling === subflow.coupling) cc.coupling = null;
    this.counters.increment('subflowsRemoved');
    return true;
  }

  /** cwnd_total now: the sum of the subflows' windows (ssthresh for one in fast recovery), bytes. */
  cwndTotal(): number {
    let total = 0;
    for (const s of this.subflows) total += windowOf(s.cc);
    return total;
  }

  /** Alpha now (RFC 6356 §3, formula (2)) from every subflow's window and SRTT; 1 for an empty group. */
  alpha(): number {
    return this.compute(null, 0).alpha;
  }

  /**
   * RFC 6356 §3: "The formula to compute alpha is:
   *
   *                          MAX (cwnd_i/rtt_i^2)
   *     alpha = cwnd_total * -------------------------           (2)
   *                          (SUM (cwnd_i/rtt_i))^2"
   *
   * "The formula (2) is derived by equalizing the rate of the multipath flow with the rate of a
   * TCP running on the best path, and solving for alpha." rtt_i is, §3, "(i.e., smoothed
   * round-trip time estimate used by TCP)": the subflow's SRTT. §4: "Note that the calculation of
   * alpha does not take into account path MSS and is the same for stacks that keep cwnd in bytes
   * or packets."
   *
   * Computed as cwnd_total * cwnd_k / (SUM (cwnd_i * rtt_k / rtt_i))^2, where k is the subflow
   * that maximises cwnd_i/rtt_i^2 (multiply formula (2) above and below by rtt_k^2, as Linux's
   * mptcp_coupled does): with one subflow, or equal RTTs, no RTT ratio is rounded, and one subflow
   * gives alpha = 1 exactly.
   *
   * `self`, when given, is the subflow asking for its increase, with its current (fractional)
   * window `selfCwnd`.
   */
  private compute(self: LiaSubflow | null, selfCwnd: number): AlphaResult {
    const out = this.scratch;
    const subflows = this.subflows;
    if (subflows.length === 0) {
      out.alpha = 1;
      out.cwndTotal = 0;
      return out;
    }
    // The RTT of a subflow without a sample: the mean of the others' (see LIA_FALLBACK_RTT_MS).
    let fallback = LIA_FALLBACK_RTT_MS;
    let known = 0;
    let knownSum = 0;
    for (const s of subflows) {
      const srtt = s.rtt.srtt;
      if (srtt !== null) {
        known += 1;
        knownSum += srtt;
      }
    }
    if (known > 0 && known < subflows.length) fallback = knownSum / known;
    let total = 0;
    let bestCwnd = 0;
    let bestRtt = 1;
    let bestRate = -1;
    for (const s of subflows) {
      const cwnd = s === self ? selfCwnd : windowOf(s.cc);
      const rtt = this.rttOf(s, fallback, self !== null);
      total += cwnd;
      const rate = cwnd / (rtt * rtt);
      if (rate > bestRate) {
        bestRate = rate;
        bestCwnd = cwnd;
        bestRtt = rtt;
      }
    }
    let sum = 0;
    for (const s of subflows) {
      const cwnd = s === self ? selfCwnd : windowOf(s.cc);
      const rtt = this.rttOf(s, fallback, false);
      sum += rtt === bestRtt ? cwnd : (cwnd * bestRtt) / rtt;
    }
    const alpha = (total * bestCwnd) / (sum * sum);
    out.alpha = Number.isFinite(alpha) && alpha > 0 ? alpha : 1;
    out.cwndTotal = total;
    return out;
  }

  private rttOf(s: LiaSubflow, fallback: number, count: boolean): number {
    const srtt = s.rtt.srtt;
    if (srtt === null && count) this.counters.increment('rttFallbacks');
    return Math.max(srtt ?? fallback, LIA_MIN_RTT_MS);
  }

  /**
   * RFC 6356 §3: "For each ACK received on subflow i, increase cwnd_i by
   *
   *                alpha * bytes_acked * MSS_i   bytes_acked * MSS_i
   *          min ( --------------------------- , ------------------- )  (1)
   *                         cwnd_total                   cwnd_i"
   *
   * "The increase formula (1) takes the minimum between the computed increase for the multipath
   * subflow (first argument to min), and the increase TCP would get in the same scenario (the
   * second argument). In this way, we ensure that any multipath subflow cannot be more aggressive
   * than a TCP flow in the same circumstances, hence achieving Goal 2 (do no harm)."
   *
   * Returns bytes to add to cwnd_i, as LossBasedController.onAck applies it (`_cwnd += increase`):
   * a whole MSS or 0 with byte counting, a fraction of a byte or more with 'perAck'.
   */
  private increase(subflow: LiaSubflow, subflowCwnd: number, ackedBytes: number, mss: number): number {
    if (!(ackedBytes > 0) || !(subflowCwnd > 0) || !(mss > 0)) return 0;
    let alpha = 1;
    let cwndTotal = subflowCwnd;
    if (subflow.removed) {
      // A coupling kept past `remove`: the subflow is alone, formula (2) gives alpha = 1.
      this.counters.increment('staleCouplingCalls');
    } else {
      const r = this.compute(subflow, subflowCwnd);
      alpha = r.alpha;
      cwndTotal = r.cwndTotal;
    }
    this.counters.increment('coupledIncreases');
    // Per byte acknowledged: alpha * MSS_i / cwnd_total against MSS_i / cwnd_i; compared as the
    // bytes each needs per MSS of increase, cwnd_total / alpha against cwnd_i: the smaller increase
    // is the one that needs more bytes. A tie is Reno's (one subflow: alpha = 1, cwnd_total = cwnd_i).
    const coupledBytesPerMss = cwndTotal / alpha;
    const renoCapped = coupledBytesPerMss <= subflowCwnd;
    if (renoCapped) this.counters.increment('renoCappedIncreases');
    if (this.mode === 'perAck') {
      const increase = renoCapped ? (ackedBytes * mss) / subflowCwnd : (alpha * ackedBytes * mss) / cwndTotal;
      return subflow.scale * increase;
    }
    // Byte counting: NewReno's counter, reset whenever the window was reduced.
    const reductions = reductionsOf(subflow.cc);
    if (reductions !== subflow.reductions) {
      subflow.reductions = reductions;
      subflow.credit = 0;
    }
    const bytesPerMss = (renoCapped ? subflowCwnd : coupledBytesPerMss) / subflow.scale;
    subflow.credit += ackedBytes;
    if (subflow.credit < bytesPerMss) return 0;
    // One MSS per ACK at most, the rest carried over, as NewReno does.
    subflow.credit -= bytesPerMss;
    this.counters.increment('windowSteps');
    return mss;
  }
}

/** The standard-TCP controller a LIA subflow is built on. */
export type LiaBase = 'newreno' | 'cubic';

export interface LiaControllerOptions extends LossBasedOptions, LiaSubflowOptions {
  /**
   * 'newreno' (the default): RFC 6356's own setting, standard TCP with the linked increase.
   * 'cubic': CUBIC's slow start (HyStart++), reduction (β_cubic) and timeout with the linked
   * increase scaled by α_cubic (see `defaultIncreaseScale`). The CongestionCoupling hook
   * supports it (cubic.ts suspends its cubic function on coupled ACKs), but RFC 6356 does not
   * define it: it is our extension, Reno-friendly by RFC 9438 §4.3's argument, not by RFC 6356's.
   */
  base?: LiaBase;
}

/**
 * A new subflow controller, coupled in `group`: NewReno (or CUBIC) whose congestion-avoidance
 * increase is LIA's. `rtt` is the subflow's RTT estimator. The controller's `name` stays its
 * base's ('newreno', 'cubic'); `group.has(cc)` tells that it is coupled.
 */
export function createLiaController(
  group: LiaGroup,
  rtt: RttEstimator,
  mss: number,
  options: LiaControllerOptions = {},
): CongestionController {
  const lossOptions: LossBasedOptions = options.prr === undefined ? {} : { prr: options.prr };
  const cc: CongestionController = options.base === 'cubic' ? new Cubic(mss, lossOptions) : new NewReno(mss, lossOptions);
  const subflowOptions: LiaSubflowOptions = options.increaseScale === undefined ? {} : { increaseScale: options.increaseScale };
  cc.coupling = group.add(cc, rtt, subflowOptions);
  return cc;
}
