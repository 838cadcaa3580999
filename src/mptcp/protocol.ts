// An MPTCP connection (RFC 8684 v1), sans-IO: the data sequence space over several subflows.
//
// The split follows Linux's net/mptcp (CONVENTIONS.md 6). This file is protocol.c: the
// connection level, which owns the connection-level send buffer (DSN space, freed by
// DATA_ACK), the connection-level reassembly (DSN space, shared receive window), DATA_FIN, the
// keys, the scheduler's decisions, reinjection and the fallback. Its parts: the subflows,
// ordinary TCP connections (src/tcp) with MPTCP hooks (subflow.ts: their state, join HMACs,
// mappings and their validation); the options of each segment, written and dispatched
// (segment-options.ts); the path manager's part of the connection (pm.ts); the counter names
// (mib.ts). The stack's path manager decides which subflows to open (pm-paths.ts).
import { earliest, type Instant } from '../ip/sansio.js';
import { CounterSet } from '../ip/counters.js';
import { Fifo } from '../ip/fifo.js';
import { formatIpAddress } from '../ip/address.js';
import type { OutSegment, TcpConnection, TcpEvent, TcpUpperLayer } from '../tcp/connection.js';
import { TcpState } from '../tcp/connection.js';
import { align4 } from '../tcp/options.js';
import type { TcpRepr } from '../tcp/segment.js';
import { ChunkQueue, SendBuffer, CHUNK_QUEUE_COUNTER_NAMES, type ChunkQueueCounter } from '../tcp/sendbuf.js';
import { Reassembler, REASSEMBLY_COUNTER_NAMES, type ReassemblyCounter } from '../tcp/reassembly.js';
import { dsnAdd, dsnDiff, expandDsn, expandOffset, type Mapping } from './mapping.js';
import { createScheduler, room as schedulerRoom, type Scheduler } from './scheduler.js';
import { LiaGroup, LIA_COUNTER_NAMES, type LiaCounterName } from './lia.js';
import {
  MptcpOptionCounters, type MptcpOptionCounterName, MptcpRstReason, type Dss, DSS_LEN_BASE, DSS_LEN_ACK64, DSS_LEN_MAP64,
} from './options.js';
import { dssChecksum, keyToIdsn, keyToToken } from './crypto.js';
import { Subflow, MAPPING_VERDICTS, type MappingVerdict } from './subflow.js';
import { MPTCP_COUNTER_NAMES, type MptcpCounterName } from './mib.js';
import { ConnectionPm } from './pm.js';
import { MptcpResetCause, type MptcpEvent } from './events.js';
import { readSubflowOptions, writeSubflowOptions } from './segment-options.js';

/**
 * RFC 8684 §3.3: a DSS with an 8-octet DATA_ACK and an 8-octet mapping (and its checksum) is
 * 26 octets, 28 with the checksum or the padding: segments stay within the path MTU with it.
 */
const DSS_RESERVE = align4(DSS_LEN_BASE + DSS_LEN_ACK64 + DSS_LEN_MAP64);

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

/**
 * How long the subflows may take to close once the data stream is over both ways, before they
 * are reset: Linux's TCP_TIMEWAIT_LEN, its msk's close timeout.
 */
export const MPTCP_CLOSE_TIMEOUT_MS = 60_000;

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

/** A subflow's MPTCP upper layer (the hooks its TCP connection calls), and the subflow. */
export interface SubflowLayer extends TcpUpperLayer {
  readonly subflow: Subflow;
}

/**
 * The MPTCP upper layer one subflow's TCP connection runs (TcpUpperLayer): one object per
 * subflow, where five closures and their context took some 400 bytes.
 */
class MptcpSubflowLayer implements SubflowLayer {
  readonly optionReserve = DSS_RESERVE;

  constructor(private readonly conn: MptcpConnection, readonly subflow: Subflow, private readonly initial: boolean) {}

  writeOptions(seg: OutSegment, space: number): void {
    writeSubflowOptions(this.conn, this.subflow, seg, space);
  }

  readOptions(seg: TcpRepr): void {
    readSubflowOptions(this.conn, this.subflow, seg);
  }

  segmentLimit(offset: number): number {
    const c = this.conn;
    if (c.fallback) return Infinity;
    // the initiator's first data segment carries MP_CAPABLE with the data-level length: one
    // segment, never a TSO super-segment whose copies would each repeat it
    if (this.initial && c.initiator && !c.fullyEstablished && offset === 0) return this.subflow.tcp.mss;
    // the TCP's offset counts from its SYN; ours from the (test) base
    const base = c.config.subflowOffsetBase;
    const m = this.subflow.tx.find(base + offset);
    return m ? m.ssn + m.len - (base + offset) : Infinity;
  }

  // RFC 8684 §3.3.4: the subflows offer the connection-level window, shared
  receiveBuffer(): number {
    return this.conn.connectionWindow();
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
  /** The path manager's part of the connection: addresses announced, signals due (pm.ts). */
  readonly pm = new ConnectionPm(this.counters);

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

  /** Events for the user, oldest first. */
  private readonly events = new Fifo<MptcpEvent>();
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

  setRemoteKey(key: bigint): void {
    this.remoteKey = key;
    this.remoteToken = keyToToken(key);
    this.rcvNxt = dsnAdd(keyToIdsn(key), 1);
  }

  // ------------------------------------------------------------ subflows

  /**
   * Makes a TCP connection a subflow of this connection: its Subflow, and the MPTCP upper layer
   * the TCP connection runs (src/tcp/connection.ts TcpUpperLayer). Called by the TCP
   * connection's TcpUpperLayerInit as it is made.
   */
  attach(tcp: TcpConnection, initial: boolean, localId: number, remoteKeyFromSyn?: bigint): SubflowLayer {
    const base = this.config.subflowOffsetBase;
    const sf = new Subflow(tcp, this.nextSubflowId++, initial, localId, base);
    this.subflows.push(sf);
    this.counters.increment('SubflowsOpened');
    if (!initial) sf.localNonce = this.host.random32();
    if (remoteKeyFromSyn !== undefined) this.setRemoteKey(remoteKeyFromSyn);
    // RFC 6356: the subflows' increases are coupled
    if (this.config.congestionControl === 'lia') tcp.cc.coupling = this.lia.add(tcp.cc, tcp.rtt);
    return new MptcpSubflowLayer(this, sf, initial);
  }

  /** RFC 8684 §3.3.5: the receive window is shared: it is what the connection-level buffer has free (the subflows offer it). */
  connectionWindow(): number {
    return Math.max(0, this.config.recvBufferSize - this.recvQueue.length - this.reasm.bytesQueued);
  }

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
      this.pm.localAddressRemoved(localId);
      // REMOVE_ADDR goes on no data segment: a pure ACK of its own carries it at once (Linux's
      // mptcp_pm_send_ack), or under upload it would wait for whatever pure ACK came next
      for (const o of this.usableSubflows()) {
        o.tcp.requestPureAck();
        this.host.touch(o.tcp);
      }
    }
  }

  /**
   * Its subflows from `local` retransmit now rather than at their backed-off timers: their path
   * came back after an outage they were kept through (PathManager.pathUp).
   */
  resumeSubflowsFrom(now: Instant, local: Buffer): void {
    for (const sf of this.subflows) {
      if (sf.closed || !sf.tcp.local.addr.equals(local)) continue;
      sf.tcp.retransmitSoon(now);
      // the stack re-reads its deadline
      this.host.touch(sf.tcp);
    }
  }

  readonly optionCounters = new MptcpOptionCounters();

  private isInitiator = false;

  /** Marks this side as the initiator (the one that sent the first SYN). */
  markInitiator(): void {
    this.isInitiator = true;
  }

  /** This side sent the first SYN. */
  get initiator(): boolean {
    return this.isInitiator;
  }

  /** The DATA_ACK we send: the next DSN we expect. */
  get dataAck(): bigint {
    return this.rcvNxt;
  }

  /** The DSN of our DATA_FIN when it is due on the next segment (all data handed out), else null. */
  dataFinDue(): bigint | null {
    return this.dataFinSeq !== null && !this.dataFinAcked && dsnDiff(this.sndNxt, this.dataFinSeq) === 0 && this.allMappedDataOut() ? this.dataFinSeq : null;
  }

  private allMappedDataOut(): boolean {
    return this.sendBuf.length === dsnDiff(this.sndNxt, this.sndUna) && this.reinject.length === 0;
  }

  handleDss(sf: Subflow, opt: Dss, seg: TcpRepr): void {
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
      const verdict = sf.checkMapping(ssn, dsn, m.dataLen);
      this.mappingVerdicts.increment(verdict);
      switch (verdict) {
        case 'ok':
          if (len > 0) sf.rx.add({ ssn, dsn, len, ...(m.checksum !== undefined && !opt.dataFin ? { csum: m.checksum } : {}) });
          return;
        case 'extends': {
          // the bytes past the mapping in force get the rest of this one (without DSS checksums:
          // a checksum covers its whole mapping, which the part cannot be checked against)
          const past = this.checksum ? null : sf.mappingPast(ssn, dsn, len);
          if (past) sf.rx.add(past);
          return;
        }
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
          sf.resetReason = MptcpRstReason.MptcpError;
          sf.tcp.abort(0);
          return;
      }
    } else if (opt.dataFin) {
      this.counters.increment('DataFinRx');
    }
  }

  /** Why a received mapping is taken or not (counted per reason). */
  readonly mappingVerdicts = new CounterSet(MAPPING_VERDICTS);

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
    const tcp = this.subflows[0]?.tcp;
    if (this.fallback && this.sendBuf.length === 0 && tcp) {
      tcp.shutdown();
      // the FIN is the subflow's output now: the stack polls it
      this.host.touch(tcp);
    }
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
    if (this.sendBuf.length === 0 && this.userShutdown) {
      tcp.shutdown();
      this.host.touch(tcp);
    }
  }

  pollEvent(): MptcpEvent | null {
    return this.events.shift();
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
      this.closeTimeout(now);
    }
  }

  /**
   * Once the data stream is over both ways (both DATA_FINs done), the subflows still open have
   * MPTCP_CLOSE_TIMEOUT_MS to close; then they are reset. A subflow whose FIN goes unanswered (its
   * path blackholed, the peer's subflow gone with its RST lost) would otherwise hold the
   * connection for its whole retransmission budget, many minutes. Linux's msk does the same
   * (mptcp_close_tout_expired: TCP_TIMEWAIT_LEN, then a fast close).
   */
  private closeTimeout(now: Instant): void {
    if (this.closedEmitted || !(this.peerFinDone && this.dataFinAcked)) return;
    if (this.closeTimeoutAt === null) {
      this.closeTimeoutAt = now + MPTCP_CLOSE_TIMEOUT_MS;
      return;
    }
    if (now < this.closeTimeoutAt) return;
    this.closeTimeoutAt = null;
    for (const sf of this.subflows) {
      if (sf.closed || sf.tcp.state === TcpState.TimeWait) continue;
      this.counters.increment('CloseTimeouts');
      sf.tcp.abort(now);
      this.host.touch(sf.tcp);
    }
  }

  /** When the subflows still open are reset (closeTimeout), or null. */
  private closeTimeoutAt: Instant | null = null;

  private dataFinDeadline: Instant | null = null;
  private dataFinTries = 0;

  /** The connection's own deadline (the DATA_FIN retransmission), or null. */
  pollTimeout(): Instant | null {
    if (this.fallback) return null;
    if (this.closedEmitted) return null;
    const fin = this.dataFinSeq !== null && !this.dataFinAcked ? this.dataFinDeadline : null;
    return earliest(earliest(fin, this.dataRtxAt), earliest(this.staleCheckAt, this.closeTimeoutAt));
  }

  /** An event of a subflow's TCP connection. */
  onSubflowEvent(sf: Subflow, event: TcpEvent): void {
    const type = event.type;
    if (type === 'reset') sf.tcpResetReason = event.reason;
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
    } else if (type === 'reset' || type === 'closed' || (type === 'timeWait' && (this.fallback || (this.peerFinDone && this.dataFinAcked)))) {
      // a subflow in TIME-WAIT has exchanged both FINs: once the data stream is over both ways
      // (every byte read, in order, up to the peer's DATA_FIN) it carries nothing more, and the
      // connection is over once every subflow is (the kernel's msk closes while its subflows'
      // TIME-WAIT sockets remain). Before that, bytes it received may still be unread, with
      // the mappings that place them: it stays until its TIME-WAIT ends.
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
        if (type === 'reset' && !(this.dataFinAcked && this.peerFinDone) && !this.fallback) this.events.push({ type: 'reset', reason: MptcpResetCause.AllSubflowsReset });
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
            if (this.subflows.filter((o) => !o.closed).length === 1 && this.reasm.bytesQueued === 0) this.fallBackLate(sf, null);
            if (this.fallback) this.deliverInOrder(data);
            // dropped: a hole in the stream, which no later fallback may paper over
            else this.unmappedDropped = true;
            break;
          }
          const take = Math.min(data.length, m.ssn + m.len - off);
          const piece = data.subarray(0, take);
          if (this.checksum && m.csum !== undefined) {
            // RFC 8684 §3.3.1: the data of a mapping is held until the whole mapping is there
            // and its checksum verifies; only then does it reach the connection
            const held = sf.holdForChecksum(m, off, piece);
            if (held?.valid === false) {
              // RFC 8684 §3.7: "a checksum failure ... the receiver MUST ... send an MP_FAIL": the subflow
              // is reset with MP_FAIL naming the mapping's DSN, its data dropped (the sender reinjects it)
              this.counters.increment('DataCsumErr');
              sf.failDsn = m.dsn;
              sf.resetReason = MptcpRstReason.MiddleboxInterference;
              sf.tcp.abort(0);
            } else if (held) {
              this.insert(held.dsn, held.data);
            }
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
  fallBackLate(sf: Subflow, _seg: TcpRepr | null): void {
    if (this.fallback) return;
    const open = this.subflows.filter((o) => !o.closed);
    // Only while the data stream is in sequence on this one subflow: no other subflow ever
    // carried a byte, nothing waits to be sent again (as Linux's allow_infinite_fallback, cleared
    // once a join is made). Otherwise bytes sent elsewhere would be lost to the plain TCP stream
    // that follows: the subflow is reset instead (and with it the connection), not corrupted.
    const elsewhere = this.subflows.some((o) => o !== sf && o.tcp.counters.get('bytesOut') + o.tcp.counters.get('bytesIn') > 0);
    const unsafe = elsewhere || this.reinject.length > 0 || this.unmappedDropped;
    if (unsafe) this.counters.increment('FallbackUnsafe');
    if (open.length !== 1 || open[0] !== sf || unsafe) {
      sf.resetReason = MptcpRstReason.MiddleboxInterference;
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

  /** Unmapped bytes were dropped (not the only subflow, or a hole before them): the stream has a hole. */
  private unmappedDropped = false;

  /** After a late fallback: the infinite mapping still to send, once (segment-options.ts). */
  infiniteMapping: { dsn: bigint; ssn: number } | null = null;

  private deliverInOrder(data: Buffer): void {
    const wasEmpty = this.recvQueue.length === 0;
    this.recvQueue.append(data);
    this.rcvNxt = dsnAdd(this.rcvNxt, data.length);
    if (wasEmpty) this.events.push({ type: 'readable' });
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
    this.resetAll(MptcpResetCause.LocalAbort, now);
  }

  /** The connection is being aborted: its resets carry MP_FASTCLOSE. */
  fastClosing = false;

  resetAll(reason: MptcpResetCause, now: Instant = 0): void {
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
