// The MPTCP options of each segment of a subflow (Linux's net/mptcp/options.c; the codec that
// turns them into bytes is options.ts), sans-IO: on the way out, the MP_CAPABLE and MP_JOIN
// handshakes, the DSS (DATA_ACK, the mapping of the segment's data, DATA_FIN), MP_FASTCLOSE,
// MP_TCPRST and MP_FAIL on resets, and what the path manager marked (pm.ts); on the way in,
// each option parsed and dispatched to the subflow, the connection or the path manager.
import type { Instant } from '../ip/sansio.js';
import type { CounterSet } from '../ip/counters.js';
import type { OutSegment, TcpConnection } from '../tcp/connection.js';
import type { TcpRepr } from '../tcp/segment.js';
import { align4 } from '../tcp/options.js';
import { TCP_FLAG_SYN, TCP_FLAG_ACK, TCP_FLAG_RST } from '../tcp/segment.js';
import { dsnAdd, offsetLow32 } from './mapping.js';
import {
  emitMptcpOptionBuffer, parseMptcpOption, MPTCP_VERSION, MptcpRstReason,
  type MptcpOption, type MptcpOptionCounters, type MpCapableFlags, type Dss,
} from './options.js';
import { dssChecksum, joinAckHmac, joinSynAckHmac } from './crypto.js';
import type { MptcpCounterName } from './mib.js';
import type { ConnectionPm } from './pm.js';
import type { Subflow } from './subflow.js';
import { MptcpResetCause } from './events.js';

const EMPTY = Buffer.alloc(0);

/** What the option writer and reader use of their MPTCP connection (protocol.ts MptcpConnection). */
export interface OptionsConnection {
  readonly counters: CounterSet<MptcpCounterName>;
  readonly optionCounters: MptcpOptionCounters;
  readonly config: { readonly subflowOffsetBase: number };
  readonly host: { touch(tcp: TcpConnection): void };
  readonly pm: ConnectionPm;
  readonly subflows: readonly Subflow[];
  readonly localKey: bigint;
  readonly remoteKey: bigint | null;
  readonly remoteToken: number;
  /** This side sent the first SYN. */
  readonly initiator: boolean;
  readonly established: boolean;
  fallback: boolean;
  fullyEstablished: boolean;
  checksum: boolean;
  /** The connection is being aborted: its resets carry MP_FASTCLOSE. */
  readonly fastClosing: boolean;
  /** The DATA_ACK we send: the next DSN we expect. */
  readonly dataAck: bigint;
  /** After a late fallback: the infinite mapping still to send, once. */
  infiniteMapping: { dsn: bigint; ssn: number } | null;
  /** The DSN of our DATA_FIN when it is due on the next segment (all data handed out), else null. */
  dataFinDue(): bigint | null;
  setRemoteKey(key: bigint): void;
  /** The connection-level part of a DSS: DATA_ACK, the mapping, DATA_FIN. */
  handleDss(sf: Subflow, opt: Dss, seg: TcpRepr): void;
  fallBackLate(sf: Subflow, seg: TcpRepr | null): void;
  resetAll(reason: MptcpResetCause, now?: Instant): void;
}

/**
 * The MPTCP options of an outgoing segment of `sf` (Linux's mptcp_established_options and its
 * SYN variants), written within the `space` bytes the TCP options leave.
 */
export function writeSubflowOptions(c: OptionsConnection, sf: Subflow, seg: OutSegment, space: number): void {
  const syn = (seg.flags & TCP_FLAG_SYN) !== 0;
  const ack = (seg.flags & TCP_FLAG_ACK) !== 0;
  const put = (opt: MptcpOption) => {
    const raw = emitMptcpOptionBuffer(opt);
    if (raw.length > space) return false;
    (seg.options.mptcp ??= []).push(raw);
    space -= align4(raw.length);
    return true;
  };
  if (seg.flags & TCP_FLAG_RST) {
    // RFC 8684 §3.5: MP_FASTCLOSE with the peer's key when the whole connection is aborted;
    // §3.6: MP_TCPRST with the reason when one subflow is reset
    if (c.fastClosing && c.remoteKey !== null) put({ type: 'mp_fastclose', receiverKey: c.remoteKey });
    else if (sf.resetReason !== null) put({ type: 'mp_tcprst', reason: sf.resetReason, transient: false, flags: 0 });
    if (sf.failDsn !== null) put({ type: 'mp_fail', dsn: sf.failDsn });
    return;
  }
  if (sf.initial) {
    if (syn && !ack) {
      // RFC 8684 §3.1: "The SYN ... MP_CAPABLE ... with no key" (v1)
      c.counters.increment('MPCapableSYNTX');
      put({ type: 'mp_capable', version: MPTCP_VERSION, flags: capableFlags(c) });
      return;
    }
    if (syn && ack) {
      // the listener's SYN/ACK carries its own key — unless the SYN had no MP_CAPABLE (§3.7)
      if (c.fallback) return;
      put({ type: 'mp_capable', version: MPTCP_VERSION, flags: capableFlags(c), senderKey: c.localKey });
      return;
    }
    if (c.fallback) {
      // RFC 8684 §3.7: "an infinite mapping ... data-level length 0" says where the plain TCP
      // stream starts in the data sequence space; sent once
      if (c.infiniteMapping && !syn) {
        const im = c.infiniteMapping;
        if (put({ type: 'dss', dataFin: false, mapping: { dsn: im.dsn, dsn8: true, subflowSeq: offsetLow32(im.ssn), dataLen: 0 } })) {
          c.infiniteMapping = null;
          c.counters.increment('InfiniteMapTx');
        }
      }
      return;
    }
    // RFC 8684 §3.1: the third ACK carries both keys; and the initiator's first data packet
    // carries MP_CAPABLE with the data-level length, until the listener has shown (with a
    // DSS) that it got the keys
    if (sf.tcp.initialSendSeq !== undefined && !c.fullyEstablished && c.initiator && c.remoteKey !== null) {
      const firstData = seg.payload.length > 0 && seg.seq === ((sf.tcp.initialSendSeq + 1) >>> 0);
      if (!sf.mpcAckSent || firstData) {
        sf.mpcAckSent = true;
        c.counters.increment('MPCapableACKTX');
        const m = firstData ? sf.tx.find(c.config.subflowOffsetBase) : undefined;
        const opt: MptcpOption = { type: 'mp_capable', version: MPTCP_VERSION, flags: capableFlags(c), senderKey: c.localKey, receiverKey: c.remoteKey };
        if (m) opt.dataLen = m.len;
        if (m && c.checksum) opt.checksum = m.csum ?? 0;
        put(opt);
        if (firstData) return;
      }
    }
  } else {
    if (syn && !ack) {
      c.counters.increment('MPJoinSynTx');
      put({ type: 'mp_join_syn', backup: sf.localBackup, addressId: sf.localId, receiverToken: c.remoteToken, senderNonce: sf.localNonce });
      return;
    }
    if (syn && ack) {
      // listener side of a join: truncated HMAC-B
      const mac = joinSynAckHmac(c.localKey, c.remoteKey!, sf.localNonce, sf.remoteNonce);
      put({ type: 'mp_join_synack', backup: sf.localBackup, addressId: sf.localId, truncatedHmac: mac, senderNonce: sf.localNonce });
      return;
    }
    if (!sf.joinAckSent && c.initiator) {
      // RFC 8684 §3.2: the third ACK carries the full HMAC-A (160 bits)
      sf.joinAckSent = true;
      c.counters.increment('MPJoinAckTx');
      put({ type: 'mp_join_ack', hmac: joinAckHmac(c.localKey, c.remoteKey!, sf.localNonce, sf.remoteNonce) });
      return;
    }
  }
  if (c.fallback || c.remoteKey === null) return;
  // DSS: DATA_ACK always; a mapping when the segment carries data; DATA_FIN when due
  let mapping: { dsn: bigint; ssn: number; len: number; csum?: number } | null = null;
  if (seg.payload.length > 0) {
    const offset = sf.streamOffset(seg.seq);
    const m = sf.tx.find(offset);
    if (m) mapping = { dsn: m.dsn, ssn: m.ssn + 1, len: m.len, ...(m.csum !== undefined ? { csum: m.csum } : {}) };
  }
  let dataFin = false;
  const dataFinSeq = c.dataFinDue();
  if (dataFinSeq !== null) {
    dataFin = true;
    if (!mapping) {
      mapping = { dsn: dataFinSeq, ssn: 0, len: 1 };
      if (c.checksum) mapping.csum = dssChecksum(dataFinSeq, 0, 1, EMPTY);
    } else if (!c.checksum && dsnAdd(mapping.dsn, mapping.len) === dataFinSeq) {
      mapping = { ...mapping, len: mapping.len + 1 };
    } else {
      // with checksums the DATA_FIN goes alone (its length would change the data's checksum)
      dataFin = false;
    }
    if (dataFin) c.counters.increment('DataFinTx');
  }
  const dss: Dss = { type: 'dss', dataAck: c.dataAck, dataAck8: true, dataFin };
  if (mapping) {
    // RFC 8684 §3.3: the relative subflow sequence number is 32 bits: it wraps as the TCP one does
    dss.mapping = { dsn: mapping.dsn, dsn8: true, subflowSeq: offsetLow32(mapping.ssn), dataLen: mapping.len };
    if (c.checksum) dss.mapping.checksum = mapping.csum ?? 0;
  }
  // An ADD_ADDR echo owed goes on a pure ACK before the DSS, as Linux's
  // mptcp_established_options_add_addr "drops other suboptions" of a pure ACK for it: an IPv6
  // echo (20 bytes) does not fit beside timestamps (12) and an 8-byte DATA_ACK (12), and an
  // idle connection sends no other pure ACK to carry it (the announcer retransmits meanwhile).
  // The DATA_ACK goes in what is left, or on the next ACK.
  const signalsFirst = !mapping && c.pm.echoesOwed > 0;
  if (signalsFirst) c.pm.writeSignals(sf, seg.payload.length, put);
  // RFC 8684 §3.3: "a = Data ACK is 8 octets (if not set, Data ACK is 4 octets)": the 4-octet
  // one when the 8-octet one does not fit, as on the third ACK after timestamps and MP_CAPABLE
  // (8 bytes left): Linux pushes a listener's pending data (a concentrator's reply to SYN data)
  // on a DATA_ACK, not on the MP_CAPABLE ACK alone (a round trip later without it)
  if (!put(dss) && !mapping) put({ ...dss, dataAck8: false });
  // what the path manager marked: MP_PRIO, ADD_ADDR echoes, REMOVE_ADDR
  if (!signalsFirst) c.pm.writeSignals(sf, seg.payload.length, put);
}

/** Our MP_CAPABLE flags. */
function capableFlags(c: OptionsConnection): MpCapableFlags {
  // RFC 8684 §3.1: "H: ... HMAC-SHA256 ... MUST be set"; A: checksums (off, as Linux's default)
  return { checksumRequired: c.checksum, extensibility: false, noMoreSubflowAddr: false, hmacSha256: true };
}

/**
 * The MPTCP options of a segment received on `sf` (Linux's mptcp_incoming_options), each parsed
 * and dispatched; then what their absence says (a fallback, a join refused).
 */
export function readSubflowOptions(c: OptionsConnection, sf: Subflow, seg: TcpRepr): void {
  const syn = (seg.flags & TCP_FLAG_SYN) !== 0;
  const ack = (seg.flags & TCP_FLAG_ACK) !== 0;
  const raws = seg.options.mptcp;
  let sawCapable = false;
  if (raws) {
    for (const raw of raws) {
      const opt = parseMptcpOption(raw, { syn, ack, rst: (seg.flags & TCP_FLAG_RST) !== 0 }, c.optionCounters);
      if (!opt) continue;
      if (opt.type === 'mp_capable') sawCapable = true;
      handleOption(c, sf, opt, seg);
    }
  }
  // a join whose SYN/ACK has no MP_JOIN (stripped on the way, or a peer that took it for a new
  // TCP connection) is no subflow of ours: reset it (Linux: MP_TCPRST "MPTCP-specific error")
  if (!sf.initial && c.initiator && syn && ack && !sf.sawJoinSynAck) {
    c.counters.increment('MPJoinSynAckMissing');
    sf.resetReason = MptcpRstReason.MptcpError;
    sf.tcp.reset(0);
    c.host.touch(sf.tcp);
    return;
  }
  // RFC 8684 §3.2: "the initiator ... MUST wait for the ACK of its third ACK (the fourth
  // packet of the handshake) before it can use the subflow"
  if (!sf.initial && c.initiator && sf.joinAckSent && !sf.usable && !syn && ack && !sf.closed) {
    sf.usable = true;
    c.counters.increment('MPJoinAckAcked');
  }
  // RFC 8684 §3.7: the listener took our third ACK without its MP_CAPABLE (a middlebox
  // stripped it) and answers as plain TCP: an ACK of our data with no MPTCP option at all
  // before any DSS has come back means the connection fell back
  if (sf.initial && c.initiator && !c.fullyEstablished && !c.fallback && !syn && ack && (!raws || raws.length === 0) &&
    ((seg.ack - sf.tcp.initialSendSeq) >>> 0) > 1) {
    c.fallBackLate(sf, seg);
    return;
  }
  if (sf.initial && syn && ack && c.initiator && !sawCapable && !c.established) {
    // RFC 8684 §3.7: "If the SYN/ACK ... does not contain an MP_CAPABLE option, the initiator
    // MUST fall back to regular TCP"
    c.counters.increment('MPCapableFallbackSYNACK');
    c.fallback = true;
  }
}

function handleOption(c: OptionsConnection, sf: Subflow, opt: MptcpOption, seg: TcpRepr): void {
  switch (opt.type) {
    case 'mp_capable':
      // RFC 8684 §3.1: "if the checksum flag is set by either host, checksums MUST be used"
      if (sf.initial && opt.flags.checksumRequired) c.checksum = true;
      if (sf.initial && opt.senderKey !== undefined) {
        if (c.initiator && c.remoteKey === null) {
          c.counters.increment('MPCapableSYNACKRX');
          c.setRemoteKey(opt.senderKey);
        } else if (!c.initiator && opt.receiverKey !== undefined) {
          // third ACK at the listener: the initiator's key
          if (c.remoteKey === null) c.setRemoteKey(opt.senderKey);
          c.fullyEstablished = true;
          if (opt.dataLen !== undefined && seg.payload.length > 0) {
            sf.rx.add({ ssn: sf.recvOffset(seg.seq), dsn: c.dataAck, len: opt.dataLen, ...(opt.checksum !== undefined ? { csum: opt.checksum } : {}) });
          }
        }
      }
      return;
    case 'mp_join_synack': {
      if (sf.initial || c.remoteKey === null || !c.initiator) {
        c.counters.increment('MPJoinUnexpected');
        return;
      }
      // RFC 8684 §3.2: check HMAC-B (truncated) before the third ACK
      if (!sf.joinSynAckValid(c.localKey, c.remoteKey, opt)) {
        c.counters.increment('MPJoinSynAckHMacFailure');
        sf.tcp.abort(0);
        return;
      }
      c.counters.increment('MPJoinSynAckRx');
      sf.remoteBackup = opt.backup;
      return;
    }
    case 'mp_join_ack': {
      if (sf.initial || c.remoteKey === null || c.initiator || sf.usable) {
        c.counters.increment('MPJoinUnexpected');
        return;
      }
      if (!sf.joinAckValid(c.localKey, c.remoteKey, opt)) {
        c.counters.increment('MPJoinAckHMacFailure');
        sf.tcp.abort(0);
        return;
      }
      c.counters.increment('MPJoinAckRx');
      sf.usable = true;
      // RFC 8684 §3.2: the initiator waits for the ACK of its third ACK: send it at once
      sf.tcp.requestAck();
      c.host.touch(sf.tcp);
      return;
    }
    case 'mp_join_syn':
      c.counters.increment('MPJoinSynRx');
      sf.remoteNonce = opt.senderNonce;
      sf.remoteBackup = opt.backup;
      return;
    case 'dss':
      c.handleDss(sf, opt, seg);
      return;
    case 'add_addr':
      // the echo is due: a pure ACK carries it, at once (it goes on no data segment)
      if (c.pm.addAddrReceived(opt, c.localKey, c.remoteKey)) {
        sf.tcp.requestPureAck();
        c.host.touch(sf.tcp);
      }
      return;
    case 'remove_addr':
      c.pm.removeAddrReceived(opt);
      return;
    case 'mp_prio':
      c.pm.prioReceived(sf, opt);
      return;
    case 'mp_fastclose':
      // RFC 8684 §3.5: the option carries the receiver's key: ours, or it is not for us
      if (opt.receiverKey !== c.localKey) {
        c.counters.increment('MPFastcloseBadKey');
        return;
      }
      c.counters.increment('MPFastcloseRx');
      c.resetAll(MptcpResetCause.PeerFastclose);
      return;
    case 'mp_tcprst':
      c.counters.increment('MPRstRx');
      return;
    case 'mp_fail':
      // RFC 8684 §3.7: the peer saw a checksum failure. With one subflow, fall back to TCP
      // on it (the infinite mapping follows); with several, the peer resets that subflow
      // and its data is reinjected when it closes
      c.counters.increment('MPFailRx');
      if (c.subflows.filter((o) => !o.closed).length === 1) c.fallBackLate(sf, seg);
      return;
    default:
      return;
  }
}
