// An MPTCP subflow (RFC 8684), sans-IO: a TCP connection (src/tcp) that carries a part of an
// MPTCP connection's data, as Linux's net/mptcp/subflow.c has it: the subflow's state, its join
// handshake (the MP_JOIN HMACs it checks), its mapping tables (subflow bytes → data sequence
// space, one each way) and the validation of the mappings it receives, with a verdict that
// says why a mapping is not taken (CONVENTIONS.md 6).
import type { TcpConnection } from '../tcp/connection.js';
import { dsnAdd, dsnDiff, expandOffset, MappingTable, type Mapping } from './mapping.js';
import type { SchedulerSubflow } from './scheduler.js';
import type { MpJoinAck, MpJoinSynAck, MptcpRstReason } from './options.js';
import { joinAckHmac, joinSynAckHmac, verifyDssChecksum } from './crypto.js';

/** The verdict on a received DSS mapping (CONVENTIONS.md 6: a reason, not a boolean). */
export const MAPPING_VERDICTS = ['ok', 'duplicate', 'extends', 'old', 'infinite', 'conflict'] as const;
export type MappingVerdict = (typeof MAPPING_VERDICTS)[number];

/**
 * Linux's stale subflows (net/mptcp/pm.c mptcp_pm_subflows_chk_stale, protocol.c
 * mptcp_subflow_set_active; read, not copied): a subflow with data outstanding that hears
 * nothing from its peer for several retransmission intervals is stale: the scheduler leaves it
 * and its data is reinjected at once elsewhere; it is used again as soon as a segment arrives on
 * it. Linux counts RTOs (net.mptcp.stale_loss_cnt = 4); here the interval is the RFC 6298 one
 * without its floor, SRTT + 4·RTTVAR, so that a path of a few ms is given up in tens of ms, not
 * in 4 × 200 ms.
 */
export const STALE_INTERVALS = 4;
/** Never stale sooner than this (ms): above a loaded event loop's jitter. */
export const STALE_MIN_MS = 50;

export class Subflow implements SchedulerSubflow {
  readonly tx = new MappingTable();
  readonly rx = new MappingTable();
  /** Stream offset (bytes since the SYN) of the next byte written into the subflow. */
  writeOffset = 0;
  /** Stream offset of the next byte read from the subflow. */
  readOffset = 0;
  /** MPTCP handshake done (MP_CAPABLE or MP_JOIN), the subflow may carry data. */
  usable = false;
  /** Our wish (MP_JOIN's B flag, MP_PRIO we send): we send on it only when no other subflow is usable. */
  localBackup = false;
  /** The peer's wish (its B flag or MP_PRIO): "the sender would prefer the receiver not send on it". */
  remoteBackup = false;
  closed = false;
  /** MP_JOIN state */
  localNonce = 0;
  remoteNonce = 0;
  joinAckSent = false;
  mpcAckSent = false;
  lastRtos = 0;
  /** MP_TCPRST reason to put on this subflow's reset (RFC 8684 §3.6), if we reset it. */
  resetReason: MptcpRstReason | null = null;
  /** An MP_PRIO is due on this subflow (its backup flag changed). */
  prioPending = false;
  /** With DSS checksums: the part of the current mapping received so far. */
  held: { mapping: Mapping; chunks: Buffer[]; got: number; start: number } | null = null;
  /** MP_FAIL's DSN for this subflow's reset, after a checksum failure. */
  failDsn: bigint | null = null;
  sawJoinSynAck = false;
  /** Why the subflow's TCP connection was reset (peer's RST, refused SYN, retransmission timeout). */
  tcpResetReason: 'peerReset' | 'timeout' | 'refused' | null = null;
  /** Stale (see STALE_INTERVALS): left by the scheduler until a segment arrives on it. */
  stale = false;
  /** Since when the subflow has had data outstanding and heard nothing (ms), and what it had heard then. */
  silentSince = 0;
  heardMark = -1;
  /**
   * `offsetBase`: where the stream offsets start (MptcpConfig.subflowOffsetBase, 0 but in
   * tests): the relative subflow sequence number on the wire is (bytes since the SYN + it) mod 2^32.
   */
  constructor(
    readonly tcp: TcpConnection,
    readonly id: number,
    readonly initial: boolean,
    readonly localId: number,
    readonly offsetBase: number,
  ) {
    this.writeOffset = offsetBase;
    this.readOffset = offsetBase;
  }

  /** Backup for the scheduler (RFC 8684 §3.3.8): by our wish or the peer's. */
  get backup(): boolean {
    return this.localBackup || this.remoteBackup;
  }

  get rtt(): number {
    return this.tcp.rtt.srtt ?? 1000;
  }

  get cwnd(): number {
    return this.tcp.cc.cwnd;
  }

  get unacknowledged(): number {
    return this.tcp.unacknowledged;
  }

  get rttvar(): number {
    return this.tcp.rtt.rttvar ?? this.rtt / 2;
  }

  get mss(): number {
    return this.tcp.mss;
  }

  get inFlight(): number {
    return Math.min(this.tcp.bytesInFlight, this.tcp.unacknowledged);
  }

  get queued(): number {
    return Math.max(0, this.tcp.unacknowledged - this.inFlight);
  }

  get pacingRate(): number {
    // Linux tcp_update_pacing_rate: cwnd·mss / srtt, × 200 % in slow start, × 120 % after
    const cc = this.tcp.cc;
    return ((cc.cwnd < cc.ssthresh ? 2 : 1.2) * cc.cwnd) / Math.max(this.rtt, 0.01);
  }

  /** How long (ms) the subflow may stay silent with data outstanding before it is stale. */
  staleAfter(): number {
    const t = Math.max(STALE_MIN_MS, STALE_INTERVALS * (this.rtt + 4 * this.rttvar));
    // with less than two segments out the peer may be delaying its ACK (RFC 9293 §3.8.6.3): the RTO decides
    return this.inFlight < 2 * this.mss ? Math.max(t, this.tcp.rtt.rto) : t;
  }

  // ------------------------------------------------------------ stream offsets

  /**
   * The stream offset of sequence number `seq` on our side: 32 bits from the TCP, expanded
   * against what was written (a segment sent is at most a window behind it).
   */
  streamOffset(seq: number): number {
    return expandOffset((seq - this.tcp.initialSendSeq - 1 + this.offsetBase) >>> 0, this.writeOffset);
  }

  /** The stream offset of received sequence number `seq`, expanded against what was read. */
  recvOffset(seq: number): number {
    return expandOffset((seq - this.tcp.initialRecvSeq - 1 + this.offsetBase) >>> 0, this.readOffset);
  }

  // ------------------------------------------------------------ the join handshake

  /**
   * RFC 8684 §3.2: the listener's SYN/ACK: its nonce, and its truncated HMAC-B, checked before
   * the third ACK. True when the HMAC is right.
   */
  joinSynAckValid(localKey: bigint, remoteKey: bigint, opt: MpJoinSynAck): boolean {
    this.sawJoinSynAck = true;
    this.remoteNonce = opt.senderNonce;
    return joinSynAckHmac(remoteKey, localKey, opt.senderNonce, this.localNonce) === opt.truncatedHmac;
  }

  /** RFC 8684 §3.2: the initiator's third ACK: its full HMAC-A. True when it is right. */
  joinAckValid(localKey: bigint, remoteKey: bigint, opt: MpJoinAck): boolean {
    return joinAckHmac(remoteKey, localKey, this.remoteNonce, this.localNonce).equals(opt.hmac);
  }

  // ------------------------------------------------------------ mappings in

  /** `ssn`: the mapping's first byte as a stream offset (expanded). */
  checkMapping(ssn: number, dsn: bigint, dataLen: number): MappingVerdict {
    if (dataLen === 0) return 'infinite';
    // wholly below what the subflow has delivered: a retransmitted DSS
    if (ssn + dataLen <= this.readOffset) return 'old';
    const existing = this.rx.find(ssn);
    if (existing) {
      // the same bytes mapped elsewhere in the data sequence space (the common case, the DSS
      // every segment of a mapping repeats, without 64-bit arithmetic)
      const same = existing.ssn === ssn ? existing.dsn === dsn : dsnDiff(dsnAdd(existing.dsn, ssn - existing.ssn), dsn) === 0;
      if (!same) return 'conflict';
      // in agreement, and reaching past the mapping in force: the same mapping grown (a sender
      // may add to a mapping whose first bytes have left); Linux's receiver takes it once the
      // mapping in force is consumed, as the next one. Within it: a retransmitted DSS
      return ssn + dataLen > existing.ssn + existing.len ? 'extends' : 'duplicate';
    }
    return 'ok';
  }

  /**
   * The part of an agreeing mapping (`ssn`, `dsn`, `len` bytes of data) past the one in force
   * at `ssn` (checkMapping said 'extends'), as a mapping of its own; null when nothing is past it.
   */
  mappingPast(ssn: number, dsn: bigint, len: number): Mapping | null {
    const existing = this.rx.find(ssn);
    if (!existing) return null;
    const end = existing.ssn + existing.len;
    if (ssn + len <= end) return null;
    return { ssn: end, dsn: dsnAdd(dsn, end - ssn), len: ssn + len - end };
  }

  /**
   * RFC 8684 §3.3.1: with checksums, the data of a mapping is held until the whole mapping is
   * there and its checksum verifies. `piece` is the mapping's data at stream offset `off`. Null
   * while the mapping is incomplete; then its data, where it starts in the data sequence space,
   * and whether the checksum verified (a mapping received only in part, from its middle, is
   * not checked).
   */
  holdForChecksum(m: Mapping, off: number, piece: Buffer): { dsn: bigint; data: Buffer; valid: boolean } | null {
    let h = this.held;
    if (!h || h.mapping !== m) {
      h = this.held = { mapping: m, chunks: [], got: 0, start: off };
    }
    h.chunks.push(piece);
    h.got += piece.length;
    if (h.start + h.got < m.ssn + m.len) return null;
    this.held = null;
    const data = h.chunks.length === 1 ? h.chunks[0]! : Buffer.concat(h.chunks);
    const whole = h.start === m.ssn;
    const valid = !whole || verifyDssChecksum(m.dsn, m.ssn + 1, m.len, m.csum!, data);
    return { dsn: dsnAdd(m.dsn, h.start - m.ssn), data, valid };
  }
}
