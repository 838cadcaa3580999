// Proportional Rate Reduction (RFC 6937): how much to send on each ACK during loss recovery, so
// that the window comes down to ssthresh smoothly, in proportion to what the network delivers,
// instead of in one step (a silence of half an RTT) or by the inflation and deflation of RFC
// 5681's fast recovery. Linux has used PRR for every controller since 3.2.
//
// The controller owns it: `start` on the congestion event, `onSent` for every byte sent during
// recovery, `onAck` for every ACK, which returns sndcnt; the controller sets cwnd = pipe + sndcnt.

/** Which reduction bound applies once pipe has fallen to ssthresh or below (RFC 6937 §3). */
export type PrrReductionBound = 'ssrb' | 'crb';

export class Prr {
  /** RFC 6937 §3: "RecoverFS = snd.nxt-snd.una // FlightSize at the start of recovery". */
  private recoverFs = 0;
  /** RFC 6937 §3: "prr_delivered = 0 // Total bytes delivered during recovery". */
  private prrDelivered = 0;
  /** RFC 6937 §3: "prr_out = 0 // Total bytes sent during recovery". */
  private prrOut = 0;

  constructor(readonly bound: PrrReductionBound = 'ssrb') {}

  /** Recovery begins with `flightSize` bytes outstanding. */
  start(flightSize: number): void {
    this.recoverFs = Math.max(flightSize, 0);
    this.prrDelivered = 0;
    this.prrOut = 0;
  }

  /** RFC 6937 §3, "On any data transmission or retransmission: prr_out += (data sent)". */
  onSent(bytes: number): void {
    this.prrOut += bytes;
  }

  /** Bytes delivered so far in this recovery (for tests and status). */
  get delivered(): number {
    return this.prrDelivered;
  }

  /** Bytes sent so far in this recovery. */
  get sent(): number {
    return this.prrOut;
  }

  /**
   * An ACK delivered `deliveredData` bytes and left `pipe` in flight; returns sndcnt, the bytes
   * the sender may send in response (never negative).
   */
  onAck(deliveredData: number, pipe: number, ssthresh: number, mss: number): number {
    // RFC 6937 §3: "prr_delivered += DeliveredData".
    this.prrDelivered += Math.max(deliveredData, 0);
    let sndcnt: number;
    if (pipe > ssthresh) {
      // RFC 6937 §3: "// Proportional Rate Reduction
      // sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out".
      const fs = this.recoverFs > 0 ? this.recoverFs : 1;
      sndcnt = Math.ceil((this.prrDelivered * ssthresh) / fs) - this.prrOut;
    } else {
      // RFC 6937 §3: "// Two versions of the Reduction Bound
      // if (conservative) { // PRR-CRB limit = prr_delivered - prr_out }
      // else { // PRR-SSRB limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS }
      // // Attempt to catch up, as permitted by limit
      // sndcnt = MIN(ssthresh - pipe, limit)".
      const limit =
        this.bound === 'crb'
          ? this.prrDelivered - this.prrOut
          : Math.max(this.prrDelivered - this.prrOut, deliveredData) + mss;
      sndcnt = Math.min(ssthresh - pipe, limit);
    }
    // Linux tcp_cwnd_reduction: "Force a fast retransmit upon entering fast recovery": while
    // nothing has been sent in this recovery, allow at least one segment, so that the
    // retransmission of the lost segment is never held back by the proportional reduction.
    if (this.prrOut === 0) sndcnt = Math.max(sndcnt, mss);
    return Math.max(sndcnt, 0);
  }
}
