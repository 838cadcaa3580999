// An MPTCP connection (RFC 8684 v1), sans-IO: the data sequence space over several subflows.
//
// The split follows Linux's net/mptcp (CONVENTIONS.md 6): subflows are ordinary TCP
// connections (src/tcp) with MPTCP hooks; this object owns the connection-level send buffer
// (DSN space, freed by DATA_ACK), the connection-level reassembly (DSN space, shared receive
// window), the keys, the scheduler's decisions and reinjection. The path manager decides which
// subflows to open (src/mptcp/stack.ts).
import type { Instant } from '../ip/sansio.js';
import { CounterSet } from '../ip/counters.js';
import { formatIpAddress } from '../ip/address.js';
import type { TcpConnection, OutSegment } from '../tcp/connection.js';
import { TcpState } from '../tcp/connection.js';
import type { TcpRepr } from '../tcp/segment.js';
import { TCP_FLAG_SYN, TCP_FLAG_ACK, TCP_FLAG_RST } from '../tcp/segment.js';
import { ChunkQueue, SendBuffer, CHUNK_QUEUE_COUNTER_NAMES, type ChunkQueueCounter } from '../tcp/sendbuf.js';
import { Reassembler, REASSEMBLY_COUNTER_NAMES, type ReassemblyCounter } from '../tcp/reassembly.js';
import { dsnAdd, dsnDiff, expandDsn, expandOffset, offsetLow32, MappingTable, type Mapping } from './mapping.js';
import { createScheduler, room as schedulerRoom, type Scheduler, type SchedulerSubflow } from './scheduler.js';
import { LiaGroup, LIA_COUNTER_NAMES, type LiaCounterName } from './lia.js';
import {
  emitMptcpOptionBuffer, parseMptcpOption, MptcpOptionCounters, type MptcpOptionCounterName, MPTCP_VERSION, MPTCP_RST_MPTCP_ERROR, MPTCP_RST_MIDDLEBOX_INTERFERENCE,
  type MptcpOption, type Dss,
} from './options.js';
import { addAddrHmac, dssChecksum, joinAckHmac, joinSynAckHmac, keyToIdsn, keyToToken, verifyDssChecksum } from './crypto.js';

const DSS_RESERVE = 28;
const EMPTY = Buffer.alloc(0);

/** The verdict on a received DSS mapping (CONVENTIONS.md 6: a reason, not a boolean). */
export const MAPPING_VERDICTS = ['ok', 'duplicate', 'old', 'infinite', 'conflict'] as const;
export type MappingVerdict = (typeof MAPPING_VERDICTS)[number];

export const MPTCP_COUNTER_NAMES = [
  // named after the kernel's MIB (MPTcpExt...) where one matches
  'MPCapableSYNTX', 'MPCapableSYNACKRX', 'MPCapableACKTX', 'MPCapableFallbackSYNACK', 'MPJoinSynTx', 'MPJoinSynAckRx',
  'MPJoinSynAckHMacFailure', 'MPJoinAckTx', 'MPJoinSynRx', 'MPJoinAckRx', 'MPJoinAckHMacFailure',
  'DSSNotMatching', 'DataCsumErr', 'OFOQueue', 'DuplicateData', 'AddAddr', 'EchoAdd', 'RmAddr',
  'MPPrioRx', 'MPFastcloseRx', 'MPRstRx', 'Reinjections', 'ReinjectedBytes', 'DataFinRx', 'DataFinTx', 'InfiniteMapRx',
  'UnmappedData', 'SubflowsOpened', 'SubflowsClosed', 'MPJoinAckAcked', 'MPFastcloseBadKey', 'MPPrioTx', 'RmAddrTx', 'AddAddrDrop', 'EchoAddTx', 'MPJoinUnexpected', 'MPJoinSynAckMissing', 'FallbackLate', 'InfiniteMapTx', 'MPFailRx',
  'DataAckTimeouts',
  // the scheduler (src/mptcp/scheduler.ts): stale subflows as Linux's MPTcpExtSubflowStale /
  // SubflowRecover, reinjections when a slow path holds the window, redundant copies, waits
  'SubflowStale', 'SubflowRecover', 'ReinjectOpportunistic', 'RedundantMappings', 'RedundantBytes', 'SchedulerWaits',
] as const;
export type MptcpCounterName = (typeof MPTCP_COUNTER_NAMES)[number];

/**
 * The counters of an MPTCP connection and of its parts, by group: what the stack folds into
 * its process-wide totals when the connection closes (src/ip/counters.ts CounterTotals).
 */
export interface MptcpCounterGroups {
  [group: string]: CounterSet<string>;
  /** MPTcpExt-like MIB counters. */
  mptcp: CounterSet<MptcpCounterName>;
  options: CounterSet<MptcpOptionCounterName>;
  mappings: CounterSet<MappingVerdict>;
  lia: CounterSet<LiaCounterName>;
  sendBuffer: CounterSet<ChunkQueueCounter>;
  recvQueue: CounterSet<ChunkQueueCounter>;
  reassembly: CounterSet<ReassemblyCounter>;
}

/** Empty counter groups of a connection (the totals' start). */
export function newMptcpCounterGroups(): MptcpCounterGroups {
  return {
    mptcp: new CounterSet(MPTCP_COUNTER_NAMES),
    options: new MptcpOptionCounters(),
    mappings: new CounterSet(MAPPING_VERDICTS),
    lia: new CounterSet(LIA_COUNTER_NAMES),
    sendBuffer: new CounterSet(CHUNK_QUEUE_COUNTER_NAMES),
    recvQueue: new CounterSet(CHUNK_QUEUE_COUNTER_NAMES),
    reassembly: new CounterSet(REASSEMBLY_COUNTER_NAMES),
  };
}

export type MptcpEvent =
  | { type: 'connected'; fallback: boolean }
  | { type: 'readable' }
  | { type: 'writable' }
  | { type: 'peerClosed' }
  | { type: 'reset'; reason: string }
  | { type: 'closed' }
  | { type: 'subflow'; subflow: Subflow; change: 'established' | 'closed' };

export interface MptcpConfig {
  sendBufferSize: number;
  recvBufferSize: number;
  /** Largest mapping the scheduler hands a subflow at once (bytes). */
  mappingSize: number;
  /** Bytes a subflow may hold unacknowledged beyond its congestion window. */
  subflowBacklog: number;
  /** The scheduler, by name (src/mptcp/scheduler.ts registry). */
  scheduler: string;
  /**
   * The subflows' congestion control: 'lia' (RFC 6356 coupled increases over NewReno, the
   * default) or 'cubic' (uncoupled CUBIC on each subflow).
   */
  congestionControl: 'lia' | 'cubic';
  /** Ask for DSS checksums (RFC 8684 §3.3.1; the A flag). Used anyway when the peer asks. */
  checksum: boolean;
  /**
   * Tests only (both ends must agree, 0 otherwise): every subflow starts as if it had already
   * carried this many bytes each way, so that a simulated transfer crosses the 2^32 wrap of the
   * relative subflow sequence number (RFC 8684 §3.3) without moving 4 GB. The relative subflow
   * sequence number on the wire is then (bytes since the SYN + this) mod 2^32.
   */
  subflowOffsetBase: number;
}

export const DEFAULT_MPTCP_CONFIG: MptcpConfig = {
  sendBufferSize: 8 << 20,
  recvBufferSize: 8 << 20,
  // RFC 8684 §3.3: "Data-Level Length" is 16 bits: a mapping is at most 65535 octets
  mappingSize: 60 * 1024,
  subflowBacklog: 0,
  scheduler: 'lowest-rtt',
  congestionControl: 'lia',
  checksum: false,
  subflowOffsetBase: 0,
};

/** The TCP congestion controller a subflow is created with, for an MPTCP congestion control. */
export function subflowCongestionControl(cc: MptcpConfig['congestionControl']): string {
  return cc === 'lia' ? 'newreno' : 'cubic';
}

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
  resetReason: number | null = null;
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
  constructor(
    readonly conn: MptcpConnection,
    readonly tcp: TcpConnection,
    readonly id: number,
    readonly initial: boolean,
    readonly localId: number,
  ) {}

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
}

/** The pieces a connection needs from its stack. */
export interface MptcpHost {
  random32(): number;
  touch(tcp: TcpConnection): void;
  /** The user acted on the connection (write, read, shutdown, abort): the stack runs it at its next tick. */
  wake?(conn: MptcpConnection): void;
}

export class MptcpConnection {
  readonly counters = new CounterSet(MPTCP_COUNTER_NAMES);
  readonly config: MptcpConfig;
  readonly subflows: Subflow[] = [];
  readonly localKey: bigint;
  readonly localToken: number;
  remoteKey: bigint | null = null;
  remoteToken = 0;
  /** The handshake decided plain TCP (RFC 8684 §3.7). */
  fallback = false;
  established = false;
  /** The peer sent a DSS with a DATA_ACK: it has our key (RFC 8684 §3.1 "fully established"). */
  fullyEstablished = false;
  checksum = false;
  /** Peer addresses announced with ADD_ADDR: id → address. */
  readonly remoteAddresses = new Map<number, { addr: Buffer; port: number }>();

  // send side: DSN space
  private readonly sendBuf: SendBuffer;
  /** DATA_ACK received: the first DSN not yet acknowledged at connection level. */
  private sndUna: bigint;
  /** The next DSN to hand a subflow. */
  private sndNxt: bigint;
  /** Ranges to send again; `avoid`: not on this subflow (it holds them already). */
  private readonly reinject: Array<{ dsn: bigint; len: number; avoid?: Subflow }> = [];
  /** The right edge of the peer's connection-level receive window (null until its first DATA_ACK). */
  private sndWndEnd: bigint | null = null;
  private userShutdown = false;
  private dataFinSeq: bigint | null = null;
  private dataFinAcked = false;

  // receive side
  private readonly reasm: Reassembler;
  private rcvNxt = 0n;
  /** In-order data waiting for the user (the connection-level receive buffer). */
  private readonly recvQueue = new ChunkQueue();
  private peerDataFin: bigint | null = null;
  private peerFinDone = false;

  private readonly events: MptcpEvent[] = [];
  private nextSubflowId = 0;
  private writableWanted = false;
  private closedEmitted = false;

  private readonly scheduler: Scheduler;
  private readonly lia = new LiaGroup();

  constructor(readonly host: MptcpHost, key: bigint, config: Partial<MptcpConfig> = {}) {
    this.config = { ...DEFAULT_MPTCP_CONFIG, ...config };
    this.scheduler = createScheduler(this.config.scheduler);
    this.checksum = this.config.checksum;
    this.localKey = key;
    this.localToken = keyToToken(key);
    // RFC 8684 §3.3.1: the data sequence starts at IDSN + 1 (the SYN takes IDSN)
    this.sndUna = dsnAdd(keyToIdsn(key), 1);
    this.sndNxt = this.sndUna;
    this.sendBuf = new SendBuffer(this.config.sendBufferSize);
    this.reasm = new Reassembler({ limit: this.config.recvBufferSize, dsack: false });
  }

  private setRemoteKey(key: bigint): void {
    this.remoteKey = key;
    this.remoteToken = keyToToken(key);
    this.rcvNxt = dsnAdd(keyToIdsn(key), 1);
  }

  // ------------------------------------------------------------ subflows

  /** Attaches a TCP connection as a subflow and installs the MPTCP hooks on it. */
  attach(tcp: TcpConnection, initial: boolean, localId: number, remoteKeyFromSyn?: bigint): Subflow {
    const sf = new Subflow(this, tcp, this.nextSubflowId++, initial, localId);
    const base = this.config.subflowOffsetBase;
    sf.writeOffset = base;
    sf.readOffset = base;
    this.subflows.push(sf);
    this.counters.increment('SubflowsOpened');
    if (!initial) sf.localNonce = this.host.random32();
    if (remoteKeyFromSyn !== undefined) this.setRemoteKey(remoteKeyFromSyn);
    tcp.optionWriter = (seg, space) => this.writeOptions(sf, seg, space);
    tcp.optionReader = (seg) => this.readOptions(sf, seg);
    tcp.segmentLimit = (offset) => {
      if (this.fallback) return Infinity;
      // the initiator's first data segment carries MP_CAPABLE with the data-level length: one
      // segment, never a TSO super-segment whose copies would each repeat it
      if (initial && this.isInitiator && !this.fullyEstablished && offset === 0) return tcp.mss;
      // the TCP's offset counts from its SYN; ours from the (test) base
      const m = sf.tx.find(base + offset);
      return m ? m.ssn + m.len - (base + offset) : Infinity;
    };
    tcp.windowLimit = () => this.connectionWindow();
    // RFC 8684 §3.3: a DSS with an 8-octet DATA_ACK and an 8-octet mapping is 26 octets (28 with
    // padding); segments must stay within the path MTU with it
    tcp.optionReserve = DSS_RESERVE;
    // RFC 6356: the subflows' increases are coupled
    if (this.config.congestionControl === 'lia') tcp.cc.coupling = this.lia.add(tcp.cc, tcp.rtt);
    return sf;
  }

  /** RFC 8684 §3.3.5: the receive window is shared: it is what the connection-level buffer has free. */
  private connectionWindow(): number {
    return Math.max(0, this.config.recvBufferSize - this.recvQueue.length - this.reasm.bytesQueued);
  }

  // ------------------------------------------------------------ options out

  private writeOptions(sf: Subflow, seg: OutSegment, space: number): void {
    const syn = (seg.flags & TCP_FLAG_SYN) !== 0;
    const ack = (seg.flags & TCP_FLAG_ACK) !== 0;
    const put = (opt: MptcpOption) => {
      const raw = emitMptcpOptionBuffer(opt);
      if (raw.length > space) return false;
      (seg.options.mptcp ??= []).push(raw);
      space -= raw.length + ((4 - (raw.length % 4)) % 4);
      return true;
    };
    if (seg.flags & TCP_FLAG_RST) {
      // RFC 8684 §3.5: MP_FASTCLOSE with the peer's key when the whole connection is aborted;
      // §3.6: MP_TCPRST with the reason when one subflow is reset
      if (this.fastClosing && this.remoteKey !== null) put({ type: 'mp_fastclose', receiverKey: this.remoteKey });
      else if (sf.resetReason !== null) put({ type: 'mp_tcprst', reason: sf.resetReason, transient: false, flags: 0 });
      if (sf.failDsn !== null) put({ type: 'mp_fail', dsn: sf.failDsn });
      return;
    }
    if (sf.initial) {
      if (syn && !ack) {
        // RFC 8684 §3.1: "The SYN ... MP_CAPABLE ... with no key" (v1)
        this.counters.increment('MPCapableSYNTX');
        put({ type: 'mp_capable', version: MPTCP_VERSION, flags: this.capableFlags() });
        return;
      }
      if (syn && ack) {
        // the listener's SYN/ACK carries its own key — unless the SYN had no MP_CAPABLE (§3.7)
        if (this.fallback) return;
        put({ type: 'mp_capable', version: MPTCP_VERSION, flags: this.capableFlags(), senderKey: this.localKey });
        return;
      }
      if (this.fallback) {
        // RFC 8684 §3.7: "an infinite mapping ... data-level length 0" says where the plain TCP
        // stream starts in the data sequence space; sent once
        if (this.infiniteMapping && !syn) {
          const im = this.infiniteMapping;
          if (put({ type: 'dss', dataFin: false, mapping: { dsn: im.dsn, dsn8: true, subflowSeq: offsetLow32(im.ssn), dataLen: 0 } })) {
            this.infiniteMapping = null;
            this.counters.increment('InfiniteMapTx');
          }
        }
        return;
      }
      // RFC 8684 §3.1: the third ACK carries both keys; and the initiator's first data packet
      // carries MP_CAPABLE with the data-level length, until the listener has shown (with a
      // DSS) that it got the keys
      if (sf.tcp.initialSendSeq !== undefined && !this.fullyEstablished && this.isInitiator && this.remoteKey !== null) {
        const firstData = seg.payload.length > 0 && seg.seq === ((sf.tcp.initialSendSeq + 1) >>> 0);
        if (!sf.mpcAckSent || firstData) {
          sf.mpcAckSent = true;
          this.counters.increment('MPCapableACKTX');
          const m = firstData ? sf.tx.find(this.config.subflowOffsetBase) : undefined;
          const opt: MptcpOption = { type: 'mp_capable', version: MPTCP_VERSION, flags: this.capableFlags(), senderKey: this.localKey, receiverKey: this.remoteKey };
          if (m) opt.dataLen = m.len;
          if (m && this.checksum) opt.checksum = m.csum ?? 0;
          put(opt);
          if (firstData) return;
        }
      }
    } else {
      if (syn && !ack) {
        this.counters.increment('MPJoinSynTx');
        put({ type: 'mp_join_syn', backup: sf.localBackup, addressId: sf.localId, receiverToken: this.remoteToken, senderNonce: sf.localNonce });
        return;
      }
      if (syn && ack) {
        // listener side of a join: truncated HMAC-B
        const mac = joinSynAckHmac(this.localKey, this.remoteKey!, sf.localNonce, sf.remoteNonce);
        put({ type: 'mp_join_synack', backup: sf.localBackup, addressId: sf.localId, truncatedHmac: mac, senderNonce: sf.localNonce });
        return;
      }
      if (!sf.joinAckSent && this.isInitiator) {
        // RFC 8684 §3.2: the third ACK carries the full HMAC-A (160 bits)
        sf.joinAckSent = true;
        this.counters.increment('MPJoinAckTx');
        put({ type: 'mp_join_ack', hmac: joinAckHmac(this.localKey, this.remoteKey!, sf.localNonce, sf.remoteNonce) });
        return;
      }
    }
    if (this.fallback || this.remoteKey === null) return;
    // DSS: DATA_ACK always; a mapping when the segment carries data; DATA_FIN when due
    let mapping: { dsn: bigint; ssn: number; len: number; csum?: number } | null = null;
    if (seg.payload.length > 0) {
      const offset = this.streamOffset(sf, seg.seq);
      const m = sf.tx.find(offset);
      if (m) mapping = { dsn: m.dsn, ssn: m.ssn + 1, len: m.len, ...(m.csum !== undefined ? { csum: m.csum } : {}) };
    }
    let dataFin = false;
    if (this.dataFinSeq !== null && !this.dataFinAcked && dsnDiff(this.sndNxt, this.dataFinSeq) === 0 && this.allMappedDataOut()) {
      dataFin = true;
      if (!mapping) {
        mapping = { dsn: this.dataFinSeq, ssn: 0, len: 1 };
        if (this.checksum) mapping.csum = dssChecksum(this.dataFinSeq, 0, 1, EMPTY);
      } else if (!this.checksum && dsnAdd(mapping.dsn, mapping.len) === this.dataFinSeq) {
        mapping = { ...mapping, len: mapping.len + 1 };
      } else {
        // with checksums the DATA_FIN goes alone (its length would change the data's checksum)
        dataFin = false;
      }
      if (dataFin) this.counters.increment('DataFinTx');
    }
    const dss: Dss = { type: 'dss', dataAck: this.rcvNxt, dataAck8: true, dataFin };
    if (mapping) {
      // RFC 8684 §3.3: the relative subflow sequence number is 32 bits: it wraps as the TCP one does
      dss.mapping = { dsn: mapping.dsn, dsn8: true, subflowSeq: offsetLow32(mapping.ssn), dataLen: mapping.len };
      if (this.checksum) dss.mapping.checksum = mapping.csum ?? 0;
    }
    put(dss);
    // RFC 8684 §3.3.8: "MP_PRIO ... to change the priority of the subflow on which it is sent"
    if (sf.prioPending && put({ type: 'mp_prio', backup: sf.localBackup })) {
      sf.prioPending = false;
      this.counters.increment('MPPrioTx');
    }
    // ADD_ADDR echoes (RFC 8684 §3.4.1), on segments without data: they are large
    while (this.echoPending.length > 0 && seg.payload.length === 0) {
      const e = this.echoPending[0]!;
      const echo: MptcpOption = { type: 'add_addr', echo: true, addressId: e.addressId, address: e.address };
      if (e.port !== undefined) echo.port = e.port;
      if (!put(echo)) break;
      this.echoPending.shift();
      this.counters.increment('EchoAddTx');
    }
    // RFC 8684 §3.4.2: REMOVE_ADDR names the address IDs that are gone
    if (this.removeAddrPending.length > 0 && seg.payload.length === 0 && put({ type: 'remove_addr', addressIds: this.removeAddrPending.slice(0, 8) })) {
      this.counters.increment('RmAddrTx');
      this.removeAddrPending.splice(0, 8);
    }
  }

  private readonly removeAddrPending: number[] = [];
  private readonly echoPending: Array<{ addressId: number; address: Buffer; port: number | undefined }> = [];

  /** Marks the subflows of local address `localId` as backup (or not) and signals it with MP_PRIO. */
  setBackup(localId: number, backup: boolean): void {
    for (const sf of this.subflows) {
      if (sf.localId !== localId || sf.closed || sf.localBackup === backup) continue;
      sf.localBackup = backup;
      sf.prioPending = true;
      sf.tcp.requestAck();
      this.host.touch(sf.tcp);
    }
  }

  /**
   * A local address is gone (its interface went down): its subflows are reset at once, their
   * data reinjected on the others (not after an RTO), and REMOVE_ADDR tells the peer.
   */
  removeLocalAddress(localId: number, now: Instant): void {
    let removed = false;
    for (const sf of this.subflows) {
      if (sf.localId !== localId || sf.closed) continue;
      removed = true;
      sf.usable = false;
      this.reinjectFrom(sf);
      sf.tcp.abort(now);
      this.host.touch(sf.tcp);
    }
    if (removed) {
      this.removeAddrPending.push(localId);
      for (const o of this.usableSubflows()) {
        o.tcp.requestAck();
        this.host.touch(o.tcp);
      }
    }
  }

  private capableFlags() {
    // RFC 8684 §3.1: "H: ... HMAC-SHA256 ... MUST be set"; A: checksums (off, as Linux's default)
    return { checksumRequired: this.checksum, extensibility: false, noMoreSubflowAddr: false, hmacSha256: true };
  }

  readonly optionCounters = new MptcpOptionCounters();

  private isInitiator = false;

  /** Marks this side as the initiator (the one that sent the first SYN). */
  markInitiator(): void {
    this.isInitiator = true;
  }

  /**
   * The stream offset of sequence number `seq` on our side of `sf`: 32 bits from the TCP, expanded
   * against what was written (a segment sent is at most a window behind it).
   */
  private streamOffset(sf: Subflow, seq: number): number {
    return expandOffset((seq - sf.tcp.initialSendSeq - 1 + this.config.subflowOffsetBase) >>> 0, sf.writeOffset);
  }

  private allMappedDataOut(): boolean {
    return this.sendBuf.length === dsnDiff(this.sndNxt, this.sndUna) && this.reinject.length === 0;
  }

  // ------------------------------------------------------------ options in

  private readOptions(sf: Subflow, seg: TcpRepr): void {
    const syn = (seg.flags & TCP_FLAG_SYN) !== 0;
    const ack = (seg.flags & TCP_FLAG_ACK) !== 0;
    const raws = seg.options.mptcp;
    let sawCapable = false;
    if (raws) {
      for (const raw of raws) {
        const opt = parseMptcpOption(raw, { syn, ack, rst: (seg.flags & TCP_FLAG_RST) !== 0 }, this.optionCounters);
        if (!opt) continue;
        if (opt.type === 'mp_capable') sawCapable = true;
        this.handleOption(sf, opt, seg);
      }
    }
    // a join whose SYN/ACK has no MP_JOIN (stripped on the way, or a peer that took it for a new
    // TCP connection) is no subflow of ours: reset it (Linux: MP_TCPRST "MPTCP-specific error")
    if (!sf.initial && this.isInitiator && syn && ack && !sf.sawJoinSynAck) {
      this.counters.increment('MPJoinSynAckMissing');
      sf.resetReason = MPTCP_RST_MPTCP_ERROR;
      sf.tcp.reset(0);
      this.host.touch(sf.tcp);
      return;
    }
    // RFC 8684 §3.2: "the initiator ... MUST wait for the ACK of its third ACK (the fourth
    // packet of the handshake) before it can use the subflow"
    if (!sf.initial && this.isInitiator && sf.joinAckSent && !sf.usable && !syn && ack && !sf.closed) {
      sf.usable = true;
      this.counters.increment('MPJoinAckAcked');
    }
    // RFC 8684 §3.7: the listener took our third ACK without its MP_CAPABLE (a middlebox
    // stripped it) and answers as plain TCP: an ACK of our data with no MPTCP option at all
    // before any DSS has come back means the connection fell back
    if (sf.initial && this.isInitiator && !this.fullyEstablished && !this.fallback && !syn && ack && (!raws || raws.length === 0) &&
      ((seg.ack - sf.tcp.initialSendSeq) >>> 0) > 1) {
      this.fallBackLate(sf, seg);
      return;
    }
    if (sf.initial && syn && ack && this.isInitiator && !sawCapable && !this.established) {
      // RFC 8684 §3.7: "If the SYN/ACK ... does not contain an MP_CAPABLE option, the initiator
      // MUST fall back to regular TCP"
      this.counters.increment('MPCapableFallbackSYNACK');
      this.fallback = true;
    }
  }

  private handleOption(sf: Subflow, opt: MptcpOption, seg: TcpRepr): void {
    switch (opt.type) {
      case 'mp_capable':
        // RFC 8684 §3.1: "if the checksum flag is set by either host, checksums MUST be used"
        if (sf.initial && opt.flags.checksumRequired) this.checksum = true;
        if (sf.initial && opt.senderKey !== undefined) {
          if (this.isInitiator && this.remoteKey === null) {
            this.counters.increment('MPCapableSYNACKRX');
            this.setRemoteKey(opt.senderKey);
          } else if (!this.isInitiator && opt.receiverKey !== undefined) {
            // third ACK at the listener: the initiator's key
            if (this.remoteKey === null) this.setRemoteKey(opt.senderKey);
            this.fullyEstablished = true;
            if (opt.dataLen !== undefined && seg.payload.length > 0) {
              sf.rx.add({ ssn: this.recvOffset(sf, seg.seq), dsn: this.rcvNxt, len: opt.dataLen, ...(opt.checksum !== undefined ? { csum: opt.checksum } : {}) });
            }
          }
        }
        return;
      case 'mp_join_synack': {
        if (sf.initial || this.remoteKey === null || !this.isInitiator) {
          this.counters.increment('MPJoinUnexpected');
          return;
        }
        sf.sawJoinSynAck = true;
        // RFC 8684 §3.2: check HMAC-B (truncated) before the third ACK
        sf.remoteNonce = opt.senderNonce;
        const expect = joinSynAckHmac(this.remoteKey!, this.localKey, opt.senderNonce, sf.localNonce);
        if (expect !== opt.truncatedHmac) {
          this.counters.increment('MPJoinSynAckHMacFailure');
          sf.tcp.abort(0);
          return;
        }
        this.counters.increment('MPJoinSynAckRx');
        sf.remoteBackup = opt.backup;
        return;
      }
      case 'mp_join_ack': {
        if (sf.initial || this.remoteKey === null || this.isInitiator || sf.usable) {
          this.counters.increment('MPJoinUnexpected');
          return;
        }
        const expect = joinAckHmac(this.remoteKey!, this.localKey, sf.remoteNonce, sf.localNonce);
        if (!expect.equals(opt.hmac)) {
          this.counters.increment('MPJoinAckHMacFailure');
          sf.tcp.abort(0);
          return;
        }
        this.counters.increment('MPJoinAckRx');
        sf.usable = true;
        // RFC 8684 §3.2: the initiator waits for the ACK of its third ACK: send it at once
        sf.tcp.requestAck();
        this.host.touch(sf.tcp);
        return;
      }
      case 'mp_join_syn':
        this.counters.increment('MPJoinSynRx');
        sf.remoteNonce = opt.senderNonce;
        sf.remoteBackup = opt.backup;
        return;
      case 'dss':
        this.handleDss(sf, opt, seg);
        return;
      case 'add_addr': {
        if (opt.echo) {
          this.counters.increment('EchoAdd');
          return;
        }
        // RFC 8684 §3.4.1: the HMAC (Key-A + Key-B, A the announcer) proves the announcer knows
        // both keys; a wrong one is dropped and counted
        if (this.remoteKey === null || opt.hmac === undefined || opt.hmac !== addAddrHmac(this.remoteKey, this.localKey, opt.addressId, opt.address, opt.port)) {
          this.counters.increment('AddAddrDrop');
          return;
        }
        this.counters.increment('AddAddr');
        this.remoteAddresses.set(opt.addressId, { addr: opt.address, port: opt.port ?? 0 });
        this.addrAnnounced = true;
        // "the receiver ... MUST respond with the same option, with the E (echo) flag set": the
        // announcer retransmits until it sees the echo
        this.echoPending.push({ addressId: opt.addressId, address: opt.address, port: opt.port });
        sf.tcp.requestAck();
        this.host.touch(sf.tcp);
        return;
      }
      case 'remove_addr':
        this.counters.increment('RmAddr');
        for (const id of opt.addressIds) this.remoteAddresses.delete(id);
        return;
      case 'mp_prio':
        this.counters.increment('MPPrioRx');
        sf.remoteBackup = opt.backup;
        return;
      case 'mp_fastclose':
        // RFC 8684 §3.5: the option carries the receiver's key: ours, or it is not for us
        if (opt.receiverKey !== this.localKey) {
          this.counters.increment('MPFastcloseBadKey');
          return;
        }
        this.counters.increment('MPFastcloseRx');
        this.resetAll('fastclose');
        return;
      case 'mp_tcprst':
        this.counters.increment('MPRstRx');
        return;
      case 'mp_fail':
        // RFC 8684 §3.7: the peer saw a checksum failure. With one subflow, fall back to TCP
        // on it (the infinite mapping follows); with several, the peer resets that subflow
        // and its data is reinjected when it closes
        this.counters.increment('MPFailRx');
        if (this.subflows.filter((o) => !o.closed).length === 1) this.fallBackLate(sf, seg);
        return;
      default:
        return;
    }
  }

  /** Set when the peer announced an address: the path manager looks. */
  addrAnnounced = false;

  /** The stream offset of received sequence number `seq` on `sf`, expanded against what was read. */
  private recvOffset(sf: Subflow, seq: number): number {
    return expandOffset((seq - sf.tcp.initialRecvSeq - 1 + this.config.subflowOffsetBase) >>> 0, sf.readOffset);
  }

  private handleDss(sf: Subflow, opt: Dss, seg: TcpRepr): void {
    if (opt.dataAck !== undefined) {
      const ack = opt.dataAck8 ? opt.dataAck : expandDsn(Number(opt.dataAck & 0xffffffffn), this.sndUna);
      // RFC 8684 §3.3.4: "the receive window is relative to the DATA_ACK": the right edge of the
      // connection-level window, never moved left
      const edge = dsnAdd(ack, (seg.window << sf.tcp.sendWindowScale) >>> 0);
      if (this.sndWndEnd === null || dsnDiff(edge, this.sndWndEnd) > 0) this.sndWndEnd = edge;
      if (!this.fullyEstablished && this.isInitiator) this.fullyEstablished = true;
      if (sf.initial && !sf.usable) sf.usable = true;
      this.onDataAck(ack);
    }
    if (opt.mapping) {
      const m = opt.mapping;
      const dsn = m.dsn8 ? m.dsn : expandDsn(Number(m.dsn & 0xffffffffn), this.rcvNxt);
      let len = m.dataLen;
      if (opt.dataFin) {
        // RFC 8684 §3.3.3: the DATA_FIN takes the last DSN of the mapping
        this.peerDataFin = dsnAdd(dsn, len - 1);
        this.counters.increment('DataFinRx');
        len -= 1;
      }
      if (m.subflowSeq === 0 && m.dataLen === 1 && opt.dataFin) return;
      // the 32-bit relative subflow sequence number, expanded against what the subflow has
      // delivered: a mapping is never more than a window away from it
      const ssn = expandOffset((m.subflowSeq - 1) >>> 0, sf.readOffset);
      const verdict = this.checkMapping(sf, ssn, dsn, m.dataLen);
      this.mappingVerdicts.increment(verdict);
      switch (verdict) {
        case 'ok':
          if (len > 0) sf.rx.add({ ssn, dsn, len, ...(m.checksum !== undefined && !opt.dataFin ? { csum: m.checksum } : {}) });
          return;
        case 'duplicate':
        case 'old':
          return;
        case 'infinite':
          // RFC 8684 §3.7: an infinite mapping (data-level length 0): from here on the subflow's
          // bytes map one to one onto the data sequence space, with no further DSS
          this.counters.increment('InfiniteMapRx');
          sf.rx.add({ ssn, dsn, len: Number.MAX_SAFE_INTEGER - ssn - 1 });
          return;
        case 'conflict':
          // RFC 8684 §3.3.1: a mapping that disagrees with one already in force for the same
          // subflow bytes is a protocol error: the subflow is reset (MP_TCPRST "MPTCP-specific error")
          this.counters.increment('DSSNotMatching');
          sf.resetReason = MPTCP_RST_MPTCP_ERROR;
          sf.tcp.abort(0);
          return;
      }
    } else if (opt.dataFin) {
      this.counters.increment('DataFinRx');
    }
  }

  /** Why a received mapping is taken or not (counted per reason). */
  readonly mappingVerdicts = new CounterSet(MAPPING_VERDICTS);

  /** `ssn`: the mapping's first byte as a stream offset (expanded). */
  private checkMapping(sf: Subflow, ssn: number, dsn: bigint, dataLen: number): MappingVerdict {
    if (dataLen === 0) return 'infinite';
    // wholly below what the subflow has delivered: a retransmitted DSS
    if (ssn + dataLen <= sf.readOffset) return 'old';
    const existing = sf.rx.find(ssn);
    if (existing) {
      if (existing.ssn === ssn && existing.dsn === dsn && existing.len >= dataLen) return 'duplicate';
      // the same bytes mapped elsewhere in the data sequence space
      if (dsnDiff(dsnAdd(existing.dsn, ssn - existing.ssn), dsn) !== 0) return 'conflict';
      return 'duplicate';
    }
    return 'ok';
  }

  private onDataAck(ack: bigint): void {
    const acked = dsnDiff(ack, this.sndUna);
    if (acked <= 0) return;
    const inBuf = Math.min(acked, this.sendBuf.length);
    this.sendBuf.ack(inBuf);
    this.sndUna = dsnAdd(this.sndUna, inBuf);
    if (dsnDiff(this.sndNxt, this.sndUna) < 0) this.sndNxt = this.sndUna;
    while (this.reinject.length > 0 && dsnDiff(dsnAdd(this.reinject[0]!.dsn, this.reinject[0]!.len), this.sndUna) <= 0) this.reinject.shift();
    if (this.dataFinSeq !== null && dsnDiff(ack, this.dataFinSeq) > 0) {
      this.dataFinAcked = true;
      this.maybeCloseSubflows();
    }
    if (this.writableWanted && this.sendBuf.free > 0) {
      this.writableWanted = false;
      this.events.push({ type: 'writable' });
    }
  }

  // ------------------------------------------------------------ user API

  write(data: Buffer): number {
    this.host.wake?.(this);
    if (this.userShutdown) return 0;
    if (this.fallback && this.sendBuf.length === 0) {
      const tcp = this.subflows[0]?.tcp;
      if (!tcp) return 0;
      const n = tcp.write(data);
      if (n < data.length) this.writableWanted = true;
      this.host.touch(tcp);
      return n;
    }
    const n = this.sendBuf.write(data);
    if (n < data.length) this.writableWanted = true;
    return n;
  }

  read(max = Infinity): Buffer | null {
    this.host.wake?.(this);
    if (this.fallback && this.recvQueue.length === 0) {
      const tcp = this.subflows[0]?.tcp;
      const b = tcp?.read(max) ?? null;
      if (b && tcp) this.host.touch(tcp);
      return b;
    }
    const out = this.recvQueue.shift(max);
    if (!out) return null;
    for (const sf of this.subflows) if (!sf.closed) this.host.touch(sf.tcp);
    return out;
  }

  /** Bytes written and not yet handed to a subflow (connection level; 0 after a fallback). */
  get unsent(): number {
    return this.fallback ? 0 : Math.max(0, this.sendBuf.length - dsnDiff(this.sndNxt, this.sndUna));
  }

  get readEnded(): boolean {
    if (this.fallback) return this.recvQueue.length === 0 && (this.subflows[0]?.tcp.readEnded ?? true);
    return this.peerFinDone && this.recvQueue.length === 0;
  }

  shutdown(): void {
    this.host.wake?.(this);
    this.userShutdown = true;
    if (this.fallback && this.sendBuf.length === 0) this.subflows[0]?.tcp.shutdown();
  }

  /**
   * After a fallback (RFC 8684 §3.7) the bytes written before the handshake said so are still
   * in the connection-level buffer: they go to the one subflow, in order, before anything else.
   */
  private drainAfterFallback(): void {
    const tcp = this.subflows[0]?.tcp;
    if (!tcp) return;
    while (this.sendBuf.length > 0) {
      const chunk = this.sendBuf.peek(0, Math.min(this.sendBuf.length, 64 * 1024));
      const n = tcp.write(chunk);
      if (n === 0) break;
      this.sendBuf.ack(n);
      this.host.touch(tcp);
    }
    if (this.sendBuf.length === 0 && this.userShutdown) tcp.shutdown();
  }

  pollEvent(): MptcpEvent | null {
    return this.events.shift() ?? null;
  }

  // ------------------------------------------------------------ the tick

  /** After input or timers: move data between subflows and the connection. */
  tick(now: Instant): void {
    this.receive();
    if (this.fallback && this.sendBuf.length > 0) this.drainAfterFallback();
    if (!this.fallback) {
      this.pruneSent();
      this.detectFailures(now);
      this.checkStale(now);
      this.dataAckTimer(now);
      this.schedule(now);
      if (this.userShutdown && this.dataFinSeq === null && this.allMappedDataOut() && this.sendBuf.length === 0) {
        // RFC 8684 §3.3.3: the DATA_FIN takes one DSN after the last byte
        this.dataFinSeq = this.sndNxt;
        for (const sf of this.usableSubflows()) this.host.touch(sf.tcp);
      }
      if (this.dataFinSeq !== null && !this.dataFinAcked) {
        // RFC 8684 §3.3.3: the DATA_FIN is retransmitted like a FIN until it is acknowledged:
        // a pure ACK (only it can carry the DATA_FIN's own mapping) on a usable subflow, at
        // once and then on a timer that backs off
        if (this.dataFinDeadline === null || now >= this.dataFinDeadline) {
          const sf = this.usableSubflows()[0];
          if (sf) {
            sf.tcp.requestAck();
            this.host.touch(sf.tcp);
            const rto = Math.max(sf.tcp.rtt.rto, 200);
            this.dataFinDeadline = now + rto * 2 ** Math.min(this.dataFinTries++, 6);
          } else {
            // no subflow to carry it: no deadline (a past one would fire at every poll); the
            // DATA_FIN goes at the first tick that finds a usable subflow
            this.dataFinDeadline = null;
          }
        }
      }
    }
  }

  private dataFinDeadline: Instant | null = null;
  private dataFinTries = 0;

  /** The connection's own deadline (the DATA_FIN retransmission), or null. */
  pollTimeout(): Instant | null {
    if (this.fallback) return null;
    const fin = this.dataFinSeq !== null && !this.dataFinAcked && !this.closedEmitted ? this.dataFinDeadline : null;
    const rtx = this.closedEmitted ? null : this.dataRtxAt;
    const stale = this.closedEmitted ? null : this.staleCheckAt;
    const at = [fin, rtx, stale].filter((x): x is number => x !== null);
    return at.length === 0 ? null : Math.min(...at);
  }

  onSubflowEvent(sf: Subflow, type: string): void {
    if (type === 'connected') {
      if (sf.initial) {
        this.established = true;
        if (this.fallback) {
          sf.usable = true;
          this.events.push({ type: 'connected', fallback: true });
          return;
        }
        // the listener's first subflow is usable once established: the third ACK (or the first
        // data with MP_CAPABLE) brought the initiator's key
        sf.usable = true;
        this.events.push({ type: 'connected', fallback: false });
        this.events.push({ type: 'writable' });
      } else if (!this.isInitiator) {
        // listener side: usable once the join ACK's HMAC checked (readOptions)
      }
      // initiator of a join: usable only once the listener acknowledged the third ACK
      // (RFC 8684 §3.2), see readOptions
      this.events.push({ type: 'subflow', subflow: sf, change: 'established' });
    } else if (type === 'readable') {
      if (this.fallback) this.events.push({ type: 'readable' });
    } else if (type === 'writable') {
      if (this.fallback) this.events.push({ type: 'writable' });
    } else if (type === 'peerClosed') {
      if (this.fallback) this.events.push({ type: 'peerClosed' });
    } else if (type === 'reset' || type === 'closed') {
      if (!sf.closed) {
        sf.closed = true;
        sf.usable = false;
        this.lia.remove(sf.tcp.cc);
        this.counters.increment('SubflowsClosed');
        this.events.push({ type: 'subflow', subflow: sf, change: 'closed' });
        this.reinjectFrom(sf);
        // its mappings served the reinjection: nothing reads them now
        sf.tx.clear();
        sf.rx.clear();
        sf.held = null;
      }
      if (this.subflows.every((s) => s.closed) && !this.closedEmitted) {
        this.closedEmitted = true;
        if (type === 'reset' && !(this.dataFinAcked && this.peerFinDone) && !this.fallback) this.events.push({ type: 'reset', reason: 'all subflows reset' });
        this.events.push({ type: 'closed' });
      }
    }
  }

  private usableSubflows(): Subflow[] {
    const open = this.subflows.filter((s) => s.usable && !s.closed && (s.tcp.state === TcpState.Established || s.tcp.state === TcpState.CloseWait));
    // a subflow whose retransmission timer fired is stale (its path may be gone): the others
    // carry the data while it recovers (Linux's "stale" subflows), unless it is all there is
    const fresh = open.filter((s) => s.tcp.consecutiveTimeouts === 0 && !s.stale);
    return fresh.length > 0 ? fresh : open;
  }

  /** Bytes from the subflows into the connection-level reassembly, in DSN order. */
  private receive(): void {
    if (this.fallback) return;
    let delivered = false;
    for (const sf of this.subflows) {
      for (let chunk = sf.tcp.read(); chunk; chunk = sf.tcp.read()) {
        let off = sf.readOffset;
        let data = chunk;
        sf.readOffset += chunk.length;
        while (data.length > 0) {
          const m = sf.rx.find(off);
          if (!m) {
            this.counters.increment('UnmappedData');
            // RFC 8684 §3.7: data without a mapping on the only subflow: the DSS options are
            // being stripped; fall back, the bytes continuing the data stream in order
            if (this.subflows.filter((o) => !o.closed).length === 1 && this.reasm.bytesQueued === 0) {
              this.fallBackLate(sf, null);
              this.deliverInOrder(data);
            }
            break;
          }
          const take = Math.min(data.length, m.ssn + m.len - off);
          const piece = data.subarray(0, take);
          if (this.checksum && m.csum !== undefined) {
            // RFC 8684 §3.3.1: the data of a mapping is held until the whole mapping is there
            // and its checksum verifies; only then does it reach the connection
            this.holdForChecksum(sf, m, off, piece);
          } else {
            this.insert(dsnAdd(m.dsn, off - m.ssn), piece);
          }
          data = data.subarray(take);
          off += take;
          delivered = true;
        }
        sf.rx.prune(sf.readOffset);
      }
      this.host.touch(sf.tcp);
    }
    if (delivered || this.peerDataFin !== null) this.popInOrder();
  }

  /**
   * Fallback after the handshake (RFC 8684 §3.7): only with a single subflow, which becomes
   * the plain TCP connection; what was handed to it stays its own to deliver, the rest of the
   * connection-level buffer follows in order, and an infinite mapping tells the peer.
   */
  private fallBackLate(sf: Subflow, _seg: TcpRepr | null): void {
    if (this.fallback) return;
    const open = this.subflows.filter((o) => !o.closed);
    if (open.length !== 1 || open[0] !== sf) {
      sf.resetReason = MPTCP_RST_MIDDLEBOX_INTERFERENCE;
      sf.tcp.reset(0);
      this.host.touch(sf.tcp);
      return;
    }
    this.fallback = true;
    this.counters.increment('FallbackLate');
    // the connection-level timers are over: the one subflow is plain TCP with its own
    this.dataRtxAt = null;
    this.dataFinDeadline = null;
    // a DATA_FIN that was due becomes the subflow's FIN once the buffer is through (drainAfterFallback)
    if (this.userShutdown && this.sendBuf.length === 0) sf.tcp.shutdown();
    const handed = dsnDiff(this.sndNxt, this.sndUna);
    if (handed > 0) this.sendBuf.ack(Math.min(handed, this.sendBuf.length));
    this.sndUna = this.sndNxt;
    this.reinject.length = 0;
    this.infiniteMapping = { dsn: this.sndNxt, ssn: sf.writeOffset + 1 };
    this.host.touch(sf.tcp);
  }

  private infiniteMapping: { dsn: bigint; ssn: number } | null = null;

  private deliverInOrder(data: Buffer): void {
    const wasEmpty = this.recvQueue.length === 0;
    this.recvQueue.append(data);
    this.rcvNxt = dsnAdd(this.rcvNxt, data.length);
    if (wasEmpty) this.events.push({ type: 'readable' });
  }

  private holdForChecksum(sf: Subflow, m: Mapping, off: number, piece: Buffer): void {
    let h = sf.held;
    if (!h || h.mapping !== m) {
      h = sf.held = { mapping: m, chunks: [], got: 0, start: off };
    }
    h.chunks.push(piece);
    h.got += piece.length;
    if (h.start + h.got < m.ssn + m.len) return;
    sf.held = null;
    const data = h.chunks.length === 1 ? h.chunks[0]! : Buffer.concat(h.chunks);
    const whole = h.start === m.ssn;
    if (whole && !verifyDssChecksum(m.dsn, m.ssn + 1, m.len, m.csum!, data)) {
      // RFC 8684 §3.7: "a checksum failure ... the receiver MUST ... send an MP_FAIL": the subflow
      // is reset with MP_FAIL naming the mapping's DSN, its data dropped (the sender reinjects it)
      this.counters.increment('DataCsumErr');
      sf.failDsn = m.dsn;
      sf.resetReason = MPTCP_RST_MIDDLEBOX_INTERFERENCE;
      sf.tcp.abort(0);
      return;
    }
    this.insert(dsnAdd(m.dsn, h.start - m.ssn), data);
  }

  private insert(dsn: bigint, data: Buffer): void {
    const d = dsnDiff(dsn, this.rcvNxt);
    if (d + data.length <= 0) {
      this.counters.increment('DuplicateData');
      return;
    }
    if (d < 0) {
      data = data.subarray(-d);
      dsn = this.rcvNxt;
    }
    if (d > 0) this.counters.increment('OFOQueue');
    this.reasm.insert(Number(dsn & 0xffffffffn), data, Number(this.rcvNxt & 0xffffffffn));
  }

  private popInOrder(): void {
    for (let chunk = this.reasm.pop(Number(this.rcvNxt & 0xffffffffn)); chunk; chunk = this.reasm.pop(Number(this.rcvNxt & 0xffffffffn))) {
      this.deliverInOrder(chunk);
    }
    if (this.peerDataFin !== null && !this.peerFinDone && this.peerDataFin === this.rcvNxt) {
      this.peerFinDone = true;
      this.rcvNxt = dsnAdd(this.rcvNxt, 1);
      this.events.push({ type: 'peerClosed' });
      for (const sf of this.usableSubflows()) {
        sf.tcp.requestAck();
        this.host.touch(sf.tcp);
      }
      this.maybeCloseSubflows();
    }
  }

  private maybeCloseSubflows(): void {
    // RFC 8684 §3.3.3: once both DATA_FINs are acknowledged, the subflows close
    if (this.dataFinAcked && this.peerFinDone) {
      for (const sf of this.subflows) {
        if (sf.closed) continue;
        // RFC 8684 §3.3.3: "all remaining subflows MUST be closed with standard FIN exchanges";
        // a stale one (its path dead: timeouts in a row) is reset, nothing depends on it now
        if (sf.tcp.consecutiveTimeouts > 0) sf.tcp.reset(0);
        else sf.tcp.shutdown();
        this.host.touch(sf.tcp);
      }
    }
  }

  /** The connection-level view the scheduler gets (src/mptcp/scheduler.ts SchedulerContext). */
  private schedulerContext(now: Instant, subflows: Subflow[]) {
    const sendWindow = this.sndWndEnd === null ? Infinity : Math.max(0, dsnDiff(this.sndWndEnd, this.sndUna));
    const sendWindowFree = this.sndWndEnd === null ? Infinity : Math.max(0, dsnDiff(this.sndWndEnd, this.sndNxt));
    return { subflows, backlog: this.config.subflowBacklog, sendWindow, sendWindowFree, unsent: this.unsent, now };
  }

  /**
   * Hands data to the subflows: reinjections first, then new data within the connection-level
   * window, each mapping on the subflow the scheduler picks (none: it waits); a redundant
   * scheduler's mappings are copied on every other subflow with room.
   */
  private schedule(now: Instant = 0): void {
    for (let guard = 0; guard < 1024; guard++) {
      const avail = this.sendBuf.length - dsnDiff(this.sndNxt, this.sndUna);
      if (avail <= 0 && this.reinject.length === 0) return;
      const r = this.reinject[0];
      if (!r && this.sndWndEnd !== null && dsnDiff(this.sndWndEnd, this.sndNxt) <= 0) {
        // the connection-level window is full: perhaps a slow path holds its left edge
        if (this.opportunisticReinject()) continue;
        return;
      }
      let usable = this.usableSubflows();
      if (r?.avoid) {
        const others = usable.filter((s) => s !== r.avoid);
        if (others.length === 0) {
          this.reinject.shift();
          continue;
        }
        usable = others;
      }
      const sf = this.scheduler.pick(this.schedulerContext(now, usable), { reinject: r !== undefined });
      if (!sf) {
        if (usable.some((s) => schedulerRoom(s, this.config.subflowBacklog) > 0)) this.counters.increment('SchedulerWaits');
        return;
      }
      let dsn: bigint;
      let len: number;
      let isReinject = false;
      if (r) {
        dsn = r.dsn;
        len = Math.min(r.len, this.config.mappingSize);
        isReinject = true;
      } else {
        dsn = this.sndNxt;
        len = Math.min(avail, this.config.mappingSize);
        // the connection-level window (RFC 8684 §3.3.4); before the first DATA_ACK, the subflow's own window rules
        if (this.sndWndEnd !== null) len = Math.min(len, dsnDiff(this.sndWndEnd, this.sndNxt));
      }
      const off = dsnDiff(dsn, this.sndUna);
      if (off < 0) {
        this.reinject.shift();
        continue;
      }
      len = Math.min(len, this.sendBuf.length - off);
      if (len <= 0) {
        if (isReinject) this.reinject.shift();
        continue;
      }
      const n = this.mapOnto(sf, dsn, off, len);
      if (n === 0) return;
      this.scheduler.sent?.(sf, n);
      if (isReinject) {
        this.counters.increment('Reinjections');
        this.counters.increment('ReinjectedBytes', n);
        if (n >= r!.len) this.reinject.shift();
        else {
          r!.dsn = dsnAdd(r!.dsn, n);
          r!.len -= n;
        }
      } else {
        if (this.scheduler.redundant) {
          // the same DSN range on every other subflow with room: the first copy to arrive wins
          for (const o of usable) {
            if (o === sf || o.backup !== sf.backup || schedulerRoom(o, this.config.subflowBacklog) <= 0) continue;
            const c = this.mapOnto(o, dsn, off, n);
            if (c > 0) {
              this.counters.increment('RedundantMappings');
              this.counters.increment('RedundantBytes', c);
            }
          }
        }
        this.sndNxt = dsnAdd(this.sndNxt, n);
      }
    }
  }

  /**
   * Forgets the send mappings no longer needed: acknowledged by the subflow (TCP will not send
   * their bytes again, so no DSS names them) and by the connection (DATA_ACK: nothing to
   * reinject from them). The tables stay as large as the data in flight, not the data sent.
   */
  private pruneSent(): void {
    for (const sf of this.subflows) {
      if (sf.closed || sf.tx.size === 0) continue;
      const acked = sf.writeOffset - sf.tcp.unacknowledged;
      sf.tx.prune(acked, (m) => dsnDiff(dsnAdd(m.dsn, m.len), this.sndUna) > 0);
    }
  }

  /** Writes [dsn, dsn + len) (at `off` in the send buffer) into a subflow as one mapping: the bytes taken. */
  private mapOnto(sf: Subflow, dsn: bigint, off: number, len: number): number {
    // no more than the subflow has room for in its congestion window (at least one segment):
    // data queued behind a full window would wait there while another subflow has room
    const room = sf.cwnd + this.config.subflowBacklog - sf.unacknowledged;
    len = Math.min(len, Math.max(room, sf.tcp.mss));
    const chunk = this.sendBuf.peek(off, len);
    const n = sf.tcp.write(chunk);
    if (n === 0) return 0;
    const mapping: Mapping = { ssn: sf.writeOffset, dsn, len: n };
    // RFC 8684 §3.3.1: the checksum covers the whole mapping, computed once here
    if (this.checksum) mapping.csum = dssChecksum(dsn, sf.writeOffset + 1, n, chunk, 0, n);
    sf.tx.add(mapping);
    sf.writeOffset += n;
    this.host.touch(sf.tcp);
    return n;
  }

  /** The left edge of the window for which an opportunistic reinjection was made (once per edge). */
  private opportunisticUna: bigint | null = null;

  /**
   * Opportunistic reinjection (Raiciu et al., NSDI 2012 §4.2; Linux's out-of-tree
   * mptcp_rcv_buf_optimization): the connection-level window is full and its oldest
   * unacknowledged byte sits on a subflow slower than one that has room: that mapping is sent
   * again on the faster one, once per left edge. True when a reinjection was queued.
   */
  private opportunisticReinject(): boolean {
    if (this.opportunisticUna === this.sndUna) return false;
    let holder: Subflow | null = null;
    let end = this.sndUna;
    for (const sf of this.subflows) {
      if (sf.closed) continue;
      for (const m of sf.tx.all()) {
        const mEnd = dsnAdd(m.dsn, m.len);
        if (dsnDiff(m.dsn, this.sndUna) <= 0 && dsnDiff(mEnd, this.sndUna) > 0) {
          holder = sf;
          end = mEnd;
        }
      }
    }
    if (!holder) return false;
    const faster = this.usableSubflows().some((s) => s !== holder && s.rtt < holder.rtt && schedulerRoom(s, this.config.subflowBacklog) > 0);
    if (!faster) return false;
    this.opportunisticUna = this.sndUna;
    this.counters.increment('ReinjectOpportunistic');
    this.reinject.unshift({ dsn: this.sndUna, len: Math.min(dsnDiff(end, this.sndUna), this.config.mappingSize), avoid: holder });
    return true;
  }

  /** When the next subflow may turn stale (ms), for pollTimeout. */
  private staleCheckAt: Instant | null = null;

  /** Stale subflows (see STALE_INTERVALS): marked, their data reinjected at once; recovered when they hear. */
  private checkStale(now: Instant): void {
    let next: Instant | null = null;
    for (const sf of this.subflows) {
      if (sf.closed || !sf.usable) continue;
      const heard = sf.tcp.counters.get('segmentsIn');
      if (heard !== sf.heardMark || sf.inFlight === 0) {
        if (heard !== sf.heardMark && sf.stale) {
          sf.stale = false;
          this.counters.increment('SubflowRecover');
        }
        sf.heardMark = heard;
        sf.silentSince = now;
      }
      if (sf.stale || sf.inFlight === 0) continue;
      const at = sf.silentSince + sf.staleAfter();
      if (now >= at) {
        sf.stale = true;
        this.counters.increment('SubflowStale');
        if (this.usableSubflows().some((o) => o !== sf)) this.reinjectFrom(sf);
        continue;
      }
      next = next === null ? at : Math.min(next, at);
    }
    this.staleCheckAt = next;
  }

  /** The seed's headline: a subflow that hits an RTO has its unacknowledged data sent again elsewhere. */
  private detectFailures(_now: Instant): void {
    for (const sf of this.subflows) {
      if (sf.closed) continue;
      const rtos = sf.tcp.counters.get('rtoTimeouts');
      if (rtos > sf.lastRtos) {
        sf.lastRtos = rtos;
        if (this.usableSubflows().some((o) => o !== sf)) this.reinjectFrom(sf);
      }
    }
  }

  /** When the connection-level retransmission is due (see dataAckTimer). */
  private dataRtxAt: Instant | null = null;
  private dataRtxUna = 0n;
  private dataRtxTries = 0;

  /**
   * Connection-level retransmission (RFC 8684 §3.3.6: data is kept "until it has been
   * acknowledged at both connection and subflow levels", and may be sent again on any
   * subflow). The subflows have nothing left to send or retransmit, every byte is TCP-acked,
   * and still the DATA_ACK does not cover all: a receiver (Linux) may TCP-ack the last
   * segment before its connection level has taken it, and send no later ACK to say so. After
   * max(200 ms, 2 × the largest SRTT) without progress, the unacknowledged range is reinjected:
   * the peer's answer carries its DATA_ACK. Backs off while nothing moves.
   */
  private dataAckTimer(now: Instant): void {
    const outstanding = dsnDiff(this.sndNxt, this.sndUna);
    const subflowsBusy = this.subflows.some((s) => !s.closed && s.tcp.unacknowledged > 0);
    if (outstanding <= 0 || this.reinject.length > 0 || subflowsBusy || this.usableSubflows().length === 0) {
      this.dataRtxAt = null;
      this.dataRtxTries = 0;
      return;
    }
    if (this.dataRtxAt === null || this.dataRtxUna !== this.sndUna) {
      if (this.dataRtxUna !== this.sndUna) this.dataRtxTries = 0;
      this.dataRtxUna = this.sndUna;
      const srtt = Math.max(0, ...this.usableSubflows().map((s) => s.tcp.rtt.srtt ?? 0));
      this.dataRtxAt = now + Math.max(200, 2 * srtt) * 2 ** Math.min(this.dataRtxTries, 6);
      return;
    }
    if (now < this.dataRtxAt) return;
    this.counters.increment('DataAckTimeouts');
    this.reinject.push({ dsn: this.sndUna, len: outstanding });
    this.dataRtxTries++;
    this.dataRtxAt = null;
    this.schedule(now);
  }

  private reinjectFrom(sf: Subflow): void {
    for (const m of sf.tx.all()) {
      const end = dsnAdd(m.dsn, m.len);
      if (dsnDiff(end, this.sndUna) <= 0) continue;
      const start = dsnDiff(m.dsn, this.sndUna) < 0 ? this.sndUna : m.dsn;
      this.reinject.push({ dsn: start, len: dsnDiff(end, start) });
    }
    this.reinject.sort((a, b) => dsnDiff(a.dsn, b.dsn));
  }

  /**
   * Aborts the connection: RFC 8684 §3.5 "MP_FASTCLOSE ... the sender sends a TCP RST with
   * MP_FASTCLOSE on all subflows"; the peer's key authenticates it.
   */
  abort(now: Instant): void {
    this.host.wake?.(this);
    if (this.fallback) {
      const tcp = this.subflows[0]?.tcp;
      if (tcp) {
        tcp.abort(now);
        this.host.touch(tcp);
      }
      return;
    }
    this.fastClosing = true;
    this.resetAll('aborted', now);
  }

  private fastClosing = false;

  private resetAll(reason: string, now: Instant = 0): void {
    for (const sf of this.subflows) {
      if (!sf.closed) {
        sf.tcp.abort(now);
        this.host.touch(sf.tcp);
      }
    }
    if (!this.closedEmitted) {
      this.closedEmitted = true;
      this.events.push({ type: 'reset', reason });
      this.events.push({ type: 'closed' });
    }
  }

  /** This connection's counters and its parts', by group. */
  counterGroups(): MptcpCounterGroups {
    return {
      mptcp: this.counters, options: this.optionCounters, mappings: this.mappingVerdicts, lia: this.lia.counters,
      sendBuffer: this.sendBuf.counters, recvQueue: this.recvQueue.counters, reassembly: this.reasm.counters,
    };
  }

  info() {
    return {
      token: this.localToken, remoteToken: this.remoteToken, scheduler: this.scheduler.name, fallback: this.fallback, fullyEstablished: this.fullyEstablished, checksum: this.checksum,
      sndUna: this.sndUna.toString(), sndNxt: this.sndNxt.toString(), rcvNxt: this.rcvNxt.toString(),
      sendQueued: this.sendBuf.length, recvQueued: this.recvQueue.length, outOfOrder: this.reasm.bytesQueued,
      subflows: this.subflows.map((s) => ({
        id: s.id, local: formatIpAddress(s.tcp.local.addr), remote: formatIpAddress(s.tcp.remote.addr), usable: s.usable, closed: s.closed, backup: s.localBackup, peerBackup: s.remoteBackup,
        bytesOut: s.tcp.counters.get('bytesOut'), bytesIn: s.tcp.counters.get('bytesIn'), ...s.tcp.info(),
      })),
    };
  }
}
