// What an MPTCP connection tells its user (pollEvent), as typed codes.
import type { Subflow } from './subflow.js';

/** Why an MPTCP connection was reset: its 'reset' event (not on the wire: that is MptcpRstReason). */
export const enum MptcpResetCause {
  /** The peer aborted it: MP_FASTCLOSE with our key (RFC 8684 §3.5). */
  PeerFastclose = 1,
  /** We aborted it (abort(): MP_FASTCLOSE on every subflow). */
  LocalAbort = 2,
  /** Every subflow was reset before both DATA_FINs were acknowledged. */
  AllSubflowsReset = 3,
}

export type MptcpEvent =
  | { type: 'connected'; fallback: boolean }
  | { type: 'readable' }
  | { type: 'writable' }
  | { type: 'peerClosed' }
  | { type: 'reset'; reason: MptcpResetCause }
  | { type: 'closed' }
  | { type: 'subflow'; subflow: Subflow; change: 'established' | 'closed' };
