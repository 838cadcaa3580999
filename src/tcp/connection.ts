// A TCP connection (RFC 9293), sans-IO (CONVENTIONS.md 3): fed segments and the current time,
// asked for segments to send, for its next deadline and for events.
//
//   conn.handleSegment(now, seg)   a segment for this connection (already demultiplexed)
//   conn.handleTimeout(now)        when now >= conn.pollTimeout()
//   conn.pollTransmit(now)         the next segment to send, or null
//   conn.pollEvent()               connected, readable, writable, peer closed, reset, closed
//   conn.write(buf) / read() / shutdown() / close() / abort()
//
// What it does: the state machine of RFC 9293 §3.10 in every state; RFC 7323 window scaling
// and timestamps with PAWS; RFC 2018 SACK and RFC 6675 SACK-based loss recovery; NewReno
// (RFC 6582) for peers without SACK; RFC 6298 RTO with backoff; RFC 5961 challenge ACKs;
// delayed ACKs; zero-window probes; keep-alive; congestion control behind an interface.
import type { Instant } from '../ip/sansio.js';
import { CounterSet } from '../ip/counters.js';
import { Fifo } from '../ip/fifo.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from './seq.js';
import { TcpTimer, TimerTable } from './timers.js';
import type { TcpOptions, TcpRepr } from './segment.js';
import { optionSpaceLeft, TCP_MAX_OPTIONS_LEN, TCP_MAX_WINDOW_SCALE, TCP_OPTLEN_SACK_ALIGNED_BASE, TCP_OPTLEN_TIMESTAMPS_ALIGNED, type SackBlock } from './options.js';
import { TCP_DEFAULT_MSS_V4, TCP_DEFAULT_MSS_V6, TCP_FLAG_ACK, TCP_FLAG_FIN, TCP_FLAG_PSH, TCP_FLAG_RST, TCP_FLAG_SYN, TCP_FLAG_URG } from './segment.js';
import { ChunkQueue, SendBuffer, CHUNK_QUEUE_COUNTER_NAMES, type ChunkQueueCounter } from './sendbuf.js';
import { Reassembler, REASSEMBLY_COUNTER_NAMES, type ReassemblyCounter } from './reassembly.js';
import { Scoreboard, SeqRangeSet, SCOREBOARD_COUNTER_NAMES, type ScoreboardCounter } from './scoreboard.js';
import { Rack, RACK_COUNTER_NAMES, type RackCounterName } from './rack.js';
import { RttEstimator, RTT_COUNTER_NAMES, type RttCounterName } from './rtt.js';
import { createCongestionController, type CongestionController } from './cc/index.js';
import { CC_COUNTER_NAMES, type CcCounterName } from './cc/controller.js';

export const enum TcpState {
  Closed = 'CLOSED',
  SynSent = 'SYN-SENT',
  SynReceived = 'SYN-RECEIVED',
  Established = 'ESTABLISHED',
  FinWait1 = 'FIN-WAIT-1',
  FinWait2 = 'FIN-WAIT-2',
  CloseWait = 'CLOSE-WAIT',
  Closing = 'CLOSING',
  LastAck = 'LAST-ACK',
  TimeWait = 'TIME-WAIT',
}

export type TcpEvent =
  | { type: 'connected' }
  | { type: 'readable' }
  | { type: 'writable' }
  /** The peer sent its FIN: no more data will arrive (half-close). */
  | { type: 'peerClosed' }
  /**
   * Both FINs are exchanged and ours went first: the connection is over for its user. TIME-WAIT
   * keeps the 4-tuple for a while (RFC 9293 §3.6.1) and answers a FIN sent again; 'closed' follows.
   */
  | { type: 'timeWait' }
  /** The connection was reset (by the peer, or given up after retransmissions). */
  | { type: 'reset'; reason: 'peerReset' | 'timeout' | 'refused' }
  /** Fully closed: the connection may be forgotten. */
  | { type: 'closed' };

export const TCP_COUNTER_NAMES = [
  'segmentsIn', 'segmentsOut', 'bytesIn', 'bytesOut',
  'retransmittedSegments', 'retransmittedBytes', 'fastRetransmits', 'sackRecoveries', 'newRenoRecoveries',
  'rtoTimeouts', 'synRetransmits', 'outOfWindow', 'pawsRejected', 'challengeAcks', 'challengeAckRst',
  'challengeAckSyn', 'ackTooNew', 'oldAckIgnored', 'duplicateSegments', 'outOfOrderSegments', 'reassemblyDropped',
  'dupAcks', 'dsack', 'zeroWindowProbes', 'keepAlivesSent', 'delayedAcks', 'immediateAcks', 'resetsReceived',
  'resetsSent', 'rcvWindowFull', 'urgentIgnored', 'userTimeouts', 'lostRetransmits', 'tailLossProbes', 'rcvBufferGrown', 'finWait2Timeouts',
  /** A retransmission found spurious: a D-SACK of it (RFC 3708), an Eifel ACK (RFC 3522) or F-RTO (RFC 5682). */
  'spuriousRetransDetected',
  /** Congestion responses undone, by what showed them spurious. */
  'undoDsack', 'undoEifel', 'undoFrto',
  /** RTOs found spurious (Eifel or F-RTO after a timeout). */
  'spuriousRtos',
  /** F-RTO (RFC 5682) began after a timeout: new data instead of go-back-N. */
  'frtoEntered',
  /** Fast recoveries entered because RACK deemed a segment lost (RFC 8985). */
  'rackRecoveries',
  /** A tail loss probe's retransmission repaired a loss: one window reduction (RFC 8985 §7.4). */
  'tlpRecoveries',
  'synDataSent', 'synDataAcked', 'synDataNotAcked',
  /** With TSO: a window opened by less than a super-segment's goal held for the ACKs due next (tsoDefer). */
  'tsoDeferrals',
] as const;
export type TcpCounterName = (typeof TCP_COUNTER_NAMES)[number];
export class TcpCounters extends CounterSet<TcpCounterName> {
  constructor() {
    super(TCP_COUNTER_NAMES);
  }
}

/**
 * The counters of a connection and of its parts, by group: what the stack folds into its
 * process-wide totals when the connection closes (src/ip/counters.ts CounterTotals).
 */
export interface TcpCounterGroups {
  [group: string]: CounterSet<string>;
  tcp: CounterSet<TcpCounterName>;
  rtt: CounterSet<RttCounterName>;
  cc: CounterSet<CcCounterName>;
  sack: CounterSet<ScoreboardCounter>;
  reassembly: CounterSet<ReassemblyCounter>;
  sendBuffer: CounterSet<ChunkQueueCounter>;
  recvQueue: CounterSet<ChunkQueueCounter>;
  rack: CounterSet<RackCounterName>;
}

/** Empty counter groups of a connection (the totals' start). */
export function newTcpCounterGroups(): TcpCounterGroups {
  return {
    tcp: new TcpCounters(),
    rtt: new CounterSet(RTT_COUNTER_NAMES),
    cc: new CounterSet(CC_COUNTER_NAMES),
    sack: new CounterSet(SCOREBOARD_COUNTER_NAMES),
    reassembly: new CounterSet(REASSEMBLY_COUNTER_NAMES),
    sendBuffer: new CounterSet(CHUNK_QUEUE_COUNTER_NAMES),
    recvQueue: new CounterSet(CHUNK_QUEUE_COUNTER_NAMES),
    rack: new CounterSet(RACK_COUNTER_NAMES),
  };
}

export interface TcpConfig {
  /** The MSS we announce and the largest payload we send: the path MTU less the headers. */
  mss: number;
  /** Largest payload one emitted segment may carry when the device does TSO (a multiple of the MSS is used); 0 = no TSO. */
  tsoMaxPayload: number;
  /**
   * With TSO: hold a window that opened by less than about a millisecond's worth of data while
   * more ACKs are due (Linux's tcp_tso_should_defer), so that it goes as one super-segment
   * instead of a packet or two per ACK.
   */
  tsoDefer: boolean;
  sendBufferSize: number;
  recvBufferSize: number;
  /** Upper bound of the receive buffer under auto-tuning. */
  recvBufferMax: number;
  /** Out-of-order bytes held at most. */
  reassemblyLimit: number;
  congestionControl: string;
  sack: boolean;
  timestamps: boolean;
  windowScaling: boolean;
  /** RFC 9293 §3.8.6.3 delayed ACK, at most 500 ms; Linux uses 40 ms. */
  delayedAckMs: number;
  /** 2 MSL. Linux uses 60 s; a userspace appliance can afford less. */
  timeWaitMs: number;
  /** Keep-alive idle time; 0 = off (RFC 9293 §3.8.4: off by default). */
  keepAliveMs: number;
  keepAliveIntervalMs: number;
  keepAliveProbes: number;
  /** Give up after this many consecutive RTOs (RFC 9293 §3.8.3 R2). */
  maxRetransmits: number;
  maxSynRetransmits: number;
  minRtoMs: number;
  /** Disable Nagle (RFC 9293 §3.7.4); an appliance relaying bytes sends what it has. */
  noDelay: boolean;
  /** FIN-WAIT-2 lasts at most this long (Linux's tcp_fin_timeout, 60 s); 0 = for ever (RFC 9293). */
  finWait2TimeoutMs: number;
  /** RFC 8985 RACK loss detection by time (with SACK) instead of RFC 6675's DupThresh. */
  rack: boolean;
  /** Undo a congestion response found spurious (D-SACK RFC 3708, Eifel RFC 3522, F-RTO RFC 5682). */
  spuriousUndo: boolean;
}

/**
 * Complete configurations shared by many connections (made by sharedTcpConfig): a connection
 * keeps a reference instead of a copy of its own (a few hundred bytes less per connection, and
 * no copy per connection opened). They are frozen.
 */
const SHARED_CONFIGS = new WeakSet<object>();

/** `config` over the defaults, complete and frozen, for connections to share (never changed). */
export function sharedTcpConfig(config: Partial<TcpConfig>): TcpConfig {
  const full = Object.freeze({ ...DEFAULT_TCP_CONFIG, ...config });
  SHARED_CONFIGS.add(full);
  return full;
}

export const DEFAULT_TCP_CONFIG: TcpConfig = {
  mss: 1460,
  tsoMaxPayload: 0,
  tsoDefer: false,
  sendBufferSize: 4 << 20,
  recvBufferSize: 256 << 10,
  recvBufferMax: 16 << 20,
  reassemblyLimit: 8 << 20,
  congestionControl: 'cubic',
  sack: true,
  timestamps: true,
  windowScaling: true,
  delayedAckMs: 40,
  timeWaitMs: 2000,
  keepAliveMs: 0,
  keepAliveIntervalMs: 75_000,
  keepAliveProbes: 9,
  maxRetransmits: 15,
  maxSynRetransmits: 6,
  minRtoMs: 200,
  noDelay: true,
  finWait2TimeoutMs: 60_000,
  rack: true,
  spuriousUndo: true,
};

const MAX_WINDOW_UNSCALED = 0xffff;
/** RFC 7323 §5.5: tsRecent goes stale after 24 days of idleness. */
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;
/** RFC 6675: DupThresh. */
const DUP_THRESH = 3;
/** RFC 5961 §7: challenge ACKs at most this many per second. */
const CHALLENGE_ACK_LIMIT = 1000;
const MAX_SACK_BLOCKS_WITH_TS = 3;
const MAX_SACK_BLOCKS = 4;
/** RFC 2018 §3: each SACK block is two 32-bit sequence numbers. */
const TCP_OPTLEN_SACK_BLOCK = 8;

export interface Endpoint {
  /** 4 or 16 bytes */
  addr: Buffer;
  port: number;
}

/** What `startUndo` saved (Linux: prior_cwnd, prior_ssthresh, undo_retrans, high_seq). */
interface UndoState {
  cwnd: number;
  ssthresh: number;
  /** Retransmitted segments of the episode not yet D-SACKed (Linux's undo_retrans). */
  retrans: number;
  /** SND.MAX when it began. */
  high: number;
  /** RFC 3522 RetransmitTS: the TSval of the first retransmission, until the first ACK that covers it. */
  retransTsval: number | null;
  firstRtxEnd: number | null;
  at: number;
}

/** A segment to send: the header fields and options, and the payload as a view. */
export interface OutSegment extends TcpRepr {
  /** When > 0, the payload is larger than one MSS and the device segments it (TSO) at this size. */
  gsoSize: number;
}

/**
 * What a protocol running over this connection changes in it: Linux's upper layer protocols
 * (`tcp_ulp_ops`), as an MPTCP subflow is one (src/mptcp/protocol.ts). Given when the
 * connection is made (`TcpUpperLayerInit` to the constructor, TcpStack.connect or a listener's
 * ListenAccept), never assigned after; plain TCP has PLAIN_TCP, which changes nothing.
 */
export interface TcpUpperLayer {
  /** Option bytes every data segment carries besides timestamps (MPTCP's DSS): taken off the MSS and the SACK blocks' room. */
  readonly optionReserve: number;
  /** Adds options to an outgoing segment (a reset too) within `spaceLeft` bytes. */
  writeOptions(seg: OutSegment, spaceLeft: number): void;
  /** Reads the options of an incoming segment (the SYN of a passive open too). */
  readOptions(seg: TcpRepr): void;
  /** How many bytes from stream offset `offset` one segment may carry (MPTCP: a DSS mapping covers whole segments); Infinity: any. */
  segmentLimit(offset: number): number;
  /**
   * The buffer the receive window is offered from, given the connection's own (MPTCP: the
   * connection-level one, shared by the subflows: RFC 8684 §3.3.4 "unique receive window").
   */
  receiveBuffer(own: number): number;
}

/** Plain TCP: no upper layer. */
export const PLAIN_TCP: TcpUpperLayer = {
  optionReserve: 0,
  writeOptions: () => undefined,
  readOptions: () => undefined,
  segmentLimit: () => Infinity,
  receiveBuffer: (own) => own,
};

/** Makes the upper layer of a connection (Linux's `tcp_ulp_ops.init`): run once, as the connection is made. */
export type TcpUpperLayerInit = (tcp: TcpConnection) => TcpUpperLayer;

export class TcpConnection {
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly config: TcpConfig;
  readonly counters = new TcpCounters();
  state: TcpState = TcpState.Closed;

  // RFC 9293 §3.3.1 send sequence variables
  private iss = 0;
  private sndUna = 0;
  private sndNxt = 0;
  /** The highest sequence number sent (sndNxt may be rewound for retransmission). */
  private sndMax = 0;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private maxSndWnd = 0;
  private sndWscale = 0;
  // receive sequence variables
  private irs = 0;
  private rcvNxt = 0;
  private rcvWscale = 0;
  /** The right edge of the window we last announced (never shrunk: RFC 9293 §3.8.6.2.2). */
  private rcvAdvertised = 0;
  // options agreed
  private sackOk = false;
  private tsOk = false;
  private tsRecent = 0;
  private tsRecentAge = 0;
  private tsOffset = 0;
  /** Payload bytes per segment we send: min(our MSS, the peer's), less the options we always carry. */
  private sendMss = TCP_DEFAULT_MSS_V4;
  private peerMss = TCP_DEFAULT_MSS_V4;

  private readonly sendBuf: SendBuffer;
  /** Stream offset (bytes since the SYN) of the first byte in the send buffer. */
  private sentOffsetBase = 0;
  private readonly reasm: Reassembler;
  private readonly scoreboard: Scoreboard;
  private readonly rack = new Rack();
  /** The congestion state saved when a reduction began, for undoing it (see `startUndo`). */
  private undoState: UndoState | null = null;
  /** Ranges retransmitted since `undoState` was saved (not trimmed by ACKs: D-SACKs come after). */
  private readonly undoRtx = new SeqRangeSet();
  /** F-RTO (RFC 5682 §2.1): 0 off, 2 waiting for the first ACK after the RTO, 3 for the second. */
  private frto = 0;
  /** New segments F-RTO step 2b may send whatever cwnd says. */
  private frtoBudget = 0;
  /** Send one RACK-lost segment even if cwnd is full (the fast retransmit on entering recovery). */
  private forceRetransmit = false;
  /** The RTT sample RACK's send log gave for this ACK (µs resolution), for `ackAdvance`. */
  private logRttSample: number | null = null;
  readonly rtt: RttEstimator;
  readonly cc: CongestionController;
  private readonly timers = new TimerTable();

  /** In-order bytes received, not yet read by the user. */
  private readonly recvQueue = new ChunkQueue();
  private recvCapacity: number;

  // FIN bookkeeping
  private userShutdown = false;
  private finSent = false;
  private finSeq = 0;
  private peerFin = false;

  // ACK scheduling
  private ackNow = false;
  /** requestPureAck: an ACK of its own is sent before the next data. */
  private pureAckPending = false;
  private segsSinceAck = 0;
  private dsack: { start: number; end: number } | null = null;
  private pendingRst: { seq: number; ack: number; withAck: boolean } | null = null;
  private challengeAckPending = false;
  private challengeAckWindowStart = 0;
  private challengeAcksInWindow = 0;

  // loss recovery
  private dupAcks = 0;
  private inRecovery = false;
  private recoveryPoint = 0;
  /** RFC 6675 HighRxt: the highest sequence number retransmitted in this recovery. */
  private highRxt = 0;
  /** After an RTO: retransmit from here (go back), skipping SACKed bytes. */
  private rtoRecovery = false;
  private consecutiveRtos = 0;
  private synRetransmits = 0;
  /** Data carried by the SYN of an active open (setSynData); kept until the SYN/ACK says how much it took. */
  private synData: Buffer | null = null;
  /**
   * How many bytes of the SYN's data the SYN/ACK acknowledged (null before the SYN/ACK, or when
   * the SYN carried none). What it did not acknowledge is the owner's to send again as data.
   */
  synDataAcked: number | null = null;
  // RTT timing without timestamps (Karn: only segments never retransmitted)
  private timedSeq = 0;
  private timedAt = -1;
  private keepAlivesUnanswered = 0;
  private persistBackoff = 0;
  private probePending = false;

  /** Events for the user, oldest first. */
  private readonly events = new Fifo<TcpEvent>();
  private activeOpen = false;
  private writableWanted = false;

  /** The protocol over this connection (an MPTCP subflow's), or PLAIN_TCP. */
  private readonly upper: TcpUpperLayer;

  /**
   * `upperLayer`: makes the protocol that runs over this connection (MPTCP); none for plain TCP.
   * `tsOffset`: the timestamp clock's offset (the stack gives one per address pair); by default one from the ISN.
   */
  constructor(local: Endpoint, remote: Endpoint, config: Partial<TcpConfig>, isn: number, upperLayer: TcpUpperLayerInit | null = null, tsOffset?: number) {
    this.local = local;
    this.remote = remote;
    this.config = SHARED_CONFIGS.has(config) ? config as TcpConfig : { ...DEFAULT_TCP_CONFIG, ...config };
    this.iss = isn >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.sendBuf = new SendBuffer(this.config.sendBufferSize);
    // with RACK, IsLost is RACK's marks only: RFC 8985 §6.2 step 4 folds DupThresh into the
    // reordering window (0 until reordering is seen once DupThresh segments are SACKed)
    this.scoreboard = new Scoreboard({ dupThresh: this.config.rack ? Infinity : DUP_THRESH });
    this.reasm = new Reassembler({ limit: this.config.reassemblyLimit, dsack: false });
    this.recvCapacity = this.config.recvBufferSize;
    this.rtt = new RttEstimator({ minRto: this.config.minRtoMs });
    this.cc = createCongestionController(this.config.congestionControl, this.config.mss);
    this.tsOffset = tsOffset ?? ((isn * 2654435761) >>> 0);
    // our receive window scale: enough for the largest receive buffer (RFC 7323 §2.2)
    let shift = 0;
    while (shift < TCP_MAX_WINDOW_SCALE && this.config.recvBufferMax >>> shift > MAX_WINDOW_UNSCALED) shift++;
    this.rcvWscale = this.config.windowScaling ? shift : 0;
    // last: the upper layer sees a connection whole
    this.upper = upperLayer ? upperLayer(this) : PLAIN_TCP;
  }

  // ---------------------------------------------------------------- opening

  /** Active open (RFC 9293 §3.10.1): the SYN goes out at the next pollTransmit. */
  connect(now: Instant): void {
    this.activeOpen = true;
    this.state = TcpState.SynSent;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
  }

  /**
   * Data to carry in the SYN of this active open, as TCP Fast Open does (RFC 7413 §4.2; with no
   * cookie: the server must have asked for none, as Linux's TCP_FASTOPEN_NO_COOKIE does). Call
   * after connect() and before the SYN goes out. The SYN/ACK says how much of it was taken
   * (`synDataAcked`): RFC 7413 §4.2.2 "the client ... MUST retransmit the unacknowledged data
   * in the SYN, as regular data" — the bytes taken are then behind the ISS as the SYN is (the
   * stream, its offsets and MPTCP's relative subflow sequence numbers start after them, which
   * is how Linux's MPTCP places SYN data: outside the data sequence space, the subflow's
   * sequence offset moved past it); the rest is handed back to the owner to write as data.
   */
  setSynData(data: Buffer): void {
    if (this.state !== TcpState.SynSent || this.sndNxt !== this.iss || this.synRetransmits > 0 || this.sendBuf.length > 0) {
      throw new Error('SYN data is set before the SYN of an active open goes out, with nothing written yet');
    }
    this.synData = data.length > 0 ? Buffer.from(data) : null;
  }

  /**
   * Passive open from a SYN that a listener accepted (RFC 9293 §3.10.7.2, LISTEN state):
   * "Set RCV.NXT to SEG.SEQ+1, IRS is set to SEG.SEQ ... ISS should be selected and a SYN
   * segment sent of the form <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>".
   */
  acceptSyn(now: Instant, syn: TcpRepr): void {
    this.state = TcpState.SynReceived;
    this.irs = syn.seq;
    this.rcvNxt = seqAdd(syn.seq, 1);
    this.negotiate(syn.options, true);
    this.updateSendWindowRaw(syn.window, syn.seq, syn.ack, false);
    this.rcvAdvertised = this.rcvNxt;
    this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
    this.upper.readOptions(syn);
  }

  private negotiate(opts: TcpOptions, fromSyn: boolean): void {
    if (!fromSyn) return;
    this.peerMss = opts.mss ?? (this.local.addr.length === 4 ? TCP_DEFAULT_MSS_V4 : TCP_DEFAULT_MSS_V6);
    // RFC 7323 §2.2: window scaling only if both sides sent the option
    if (this.config.windowScaling && opts.windowScale !== undefined) {
      this.sndWscale = Math.min(opts.windowScale, TCP_MAX_WINDOW_SCALE);
    } else {
      this.sndWscale = 0;
      this.rcvWscale = 0;
    }
    this.sackOk = this.config.sack && opts.sackPermitted === true;
    this.tsOk = this.config.timestamps && opts.timestamps !== undefined;
    if (this.tsOk) this.tsRecent = opts.timestamps!.tsVal;
    this.updateMss();
  }

  private updateMss(): void {
    const optionBytes = (this.tsOk ? 12 : 0) + this.upper.optionReserve;
    this.sendMss = Math.max(64, Math.min(this.config.mss, this.peerMss) - optionBytes);
    this.cc.setMss(this.sendMss);
  }

  /** The payload bytes per segment this connection sends. */
  get mss(): number {
    return this.sendMss;
  }

  // ---------------------------------------------------------------- user calls

  /** Queues bytes to send; returns how many it took (fewer when the send buffer is full). */
  write(data: Buffer): number {
    if (this.userShutdown || !this.canSend()) return 0;
    const n = this.sendBuf.write(data);
    if (n < data.length) this.writableWanted = true;
    return n;
  }

  private canSend(): boolean {
    return this.state === TcpState.Established || this.state === TcpState.CloseWait ||
      this.state === TcpState.SynSent || this.state === TcpState.SynReceived;
  }

  /** Room in the send buffer. */
  get writable(): number {
    return this.canSend() && !this.userShutdown ? this.sendBuf.free : 0;
  }

  /** Bytes written and not yet acknowledged. */
  get unacknowledged(): number {
    return this.sendBuf.length;
  }

  /** Takes up to `max` in-order received bytes, or null when there are none. */
  read(max = Infinity): Buffer | null {
    if (this.recvQueue.length === 0) return null;
    const wasWindowSmall = this.receiveWindow() < this.sendMss * 2;
    const out = this.recvQueue.shift(max)!;
    // RFC 9293 §3.8.6.2.2 receiver SWS avoidance: announce the opened window once it has
    // grown by min(RCV.BUFF/2, Eff.snd.MSS)
    if (wasWindowSmall && this.receiveWindow() >= Math.min(this.recvCapacity / 2, this.sendMss)) this.ackNow = true;
    return out;
  }

  /** In-order bytes waiting to be read. */
  get readable(): number {
    return this.recvQueue.length;
  }

  /** True once the peer's FIN has arrived (its bytes may still wait to be read). */
  get finReceived(): boolean {
    return this.peerFin;
  }

  /** True when the peer has closed its side and everything it sent has been read. */
  get readEnded(): boolean {
    return this.peerFin && this.recvQueue.length === 0;
  }

  /** Half-close: a FIN follows the data already written (RFC 9293 §3.10.4 CLOSE). */
  shutdown(): void {
    this.userShutdown = true;
  }

  /** Close both ways; data already written is still delivered. */
  close(now: Instant): void {
    if (this.state === TcpState.SynSent || this.state === TcpState.Closed) {
      this.enterClosed(now);
      return;
    }
    this.shutdown();
  }

  /** A reset whatever the state (MPTCP tearing down a subflow it no longer needs), then CLOSED. */
  reset(now: Instant): void {
    if (this.state !== TcpState.Closed && this.state !== TcpState.SynSent && this.state !== TcpState.TimeWait) {
      this.pendingRst = { seq: this.sndMax, ack: this.rcvNxt, withAck: true };
    }
    this.enterClosed(now);
  }

  /** RFC 9293 §3.10.5 ABORT: a RST, and the connection is gone. */
  abort(now: Instant): void {
    // RFC 9293 §3.10.5: a reset for SYN-RECEIVED to CLOSE-WAIT; "CLOSING STATE, LAST-ACK STATE,
    // TIME-WAIT STATE: Respond with "ok" and delete the TCB"
    const s = this.state;
    if (s === TcpState.SynReceived || s === TcpState.Established || s === TcpState.FinWait1 || s === TcpState.FinWait2 || s === TcpState.CloseWait) {
      this.pendingRst = { seq: this.sndNxt, ack: this.rcvNxt, withAck: true };
    }
    this.enterClosed(now);
  }

  /** Sends an ACK at the next poll (MPTCP: to carry a DATA_ACK or DATA_FIN). */
  requestAck(): void {
    if (this.state !== TcpState.Closed && this.state !== TcpState.SynSent) this.ackNow = true;
  }

  /**
   * An ACK without data is due at once, ahead of any data segment: the upper layer has an
   * option that goes on no data segment (MPTCP's ADD_ADDR echo, as Linux's mptcp_pm_send_ack
   * sends a pure ACK for it); requestAck's ACK rides on the next data segment when there is one.
   */
  requestPureAck(): void {
    if (this.state === TcpState.SynReceived || this.state === TcpState.TimeWait) this.requestAck();
    else if (this.state !== TcpState.Closed && this.state !== TcpState.SynSent) this.pureAckPending = true;
  }

  pollEvent(): TcpEvent | null {
    return this.events.shift();
  }

  // ---------------------------------------------------------------- windows

  /** The receive window we can offer: free space in the receive buffer. */
  private receiveWindow(): number {
    // an MPTCP subflow announces the connection's shared window (RFC 8684 §3.3.4: "unique
    // receive window, shared between the subflows"), less what it holds itself
    return Math.max(0, this.upper.receiveBuffer(this.recvCapacity) - this.recvQueue.length - this.reasm.bytesQueued);
  }

  /** Bytes sent and not yet acknowledged (SND.MAX − SND.UNA; read by the MPTCP scheduler). */
  get bytesInFlight(): number {
    return this.flightSize();
  }

  /** RTOs in a row without an ACK of new data: > 0 means the path may be failing (MPTCP: a stale subflow). */
  get consecutiveTimeouts(): number {
    return this.consecutiveRtos;
  }

  /** The peer's window scale shift (RFC 7323), for MPTCP's connection-level window. */
  get sendWindowScale(): number {
    return this.sndWscale;
  }

  /** (A method, so that TypeScript does not narrow `state` across the MPTCP hooks.) */
  private isClosed(): boolean {
    return this.state === TcpState.Closed;
  }

  /** The initial send sequence number (ISS). */
  get initialSendSeq(): number {
    return this.iss;
  }

  /** The initial receive sequence number (IRS), once synchronized. */
  get initialRecvSeq(): number {
    return this.irs;
  }

  private windowToAnnounce(): number {
    let wnd = this.receiveWindow();
    // never shrink the window (RFC 9293 §3.8.6.2.2)
    const promised = seqDiff(this.rcvAdvertised, this.rcvNxt);
    if (wnd < promised) wnd = promised;
    const max = MAX_WINDOW_UNSCALED << this.rcvWscale;
    if (wnd > max) wnd = max;
    return wnd;
  }

  private updateSendWindowRaw(raw: number, seq: number, ack: number, scaled: boolean): void {
    this.sndWnd = scaled ? raw << this.sndWscale : raw;
    this.sndWl1 = seq;
    this.sndWl2 = ack;
    if (this.sndWnd > this.maxSndWnd) this.maxSndWnd = this.sndWnd;
  }

  private flightSize(): number {
    return seqDiff(this.sndMax, this.sndUna);
  }

  /** RFC 6675 pipe when SACK recovery runs, the flight size otherwise. */
  private inFlight(): number {
    // after an RTO everything outstanding is deemed lost and sent again from SND.UNA (go-back):
    // what is in the network is what went out since, less what the peer SACKed of it and what
    // RACK deemed lost again (a lost retransmission must not hold the window shut until the
    // next RTO: RFC 8985 §6.2 step 5 marks it, RFC 6675 §4 SetPipe leaves lost octets out)
    if (this.rtoRecovery) return this.sackOk ? this.scoreboard.inFlightBelow(this.sndUna, this.sndNxt) : seqDiff(this.sndNxt, this.sndUna);
    // RFC 6675 pipe whenever the peer has SACKed something: SACKed segments have left the
    // network, so new data may go out on duplicate ACKs before recovery starts (the effect of
    // RFC 3042 limited transmit), which lets small windows reach three duplicate ACKs
    if (this.sackOk && (this.inRecovery || this.scoreboard.hasSackInfo)) return this.scoreboard.pipe(this.sndUna, this.sndMax, this.sendMss);
    return seqDiff(this.sndNxt, this.sndUna);
  }

  // ---------------------------------------------------------------- input

  handleSegment(now: Instant, seg: TcpRepr): void {
    this.counters.increment('segmentsIn');
    this.keepAlivesUnanswered = 0;
    if (this.timers.isArmed(TcpTimer.KeepAlive)) this.armKeepAlive(now);
    switch (this.state) {
      case TcpState.Closed:
        return;
      case TcpState.SynSent:
        this.handleSynSent(now, seg);
        return;
      default:
        this.handleSynchronized(now, seg);
    }
  }

  /** RFC 9293 §3.10.7.3 SYN-SENT. */
  private handleSynSent(now: Instant, seg: TcpRepr): void {
    const hasAck = (seg.flags & TCP_FLAG_ACK) !== 0;
    // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is set ...)"
    if (hasAck && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax))) {
      if ((seg.flags & TCP_FLAG_RST) === 0) this.pendingRst = { seq: seg.ack, ack: 0, withAck: false };
      this.counters.increment('outOfWindow');
      return;
    }
    if (seg.flags & TCP_FLAG_RST) {
      // "If the ACK was acceptable, then signal to the user 'error: connection reset', drop the segment"
      if (hasAck) {
        this.counters.increment('resetsReceived');
        this.events.push({ type: 'reset', reason: 'refused' });
        this.enterClosed(now);
      }
      return;
    }
    if ((seg.flags & TCP_FLAG_SYN) === 0) return;
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.negotiate(seg.options, true);
    this.upper.readOptions(seg);
    // the MPTCP layer may have reset the connection on what it read
    if (this.isClosed()) return;
    if (hasAck) {
      if (this.synData) this.takeSynDataAck(seg.ack);
      // "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to ESTABLISHED"
      this.ackAdvance(now, seg.ack, seg);
      // RFC 9293 §3.10.7.3: the window of a SYN is never scaled
      this.updateSendWindowRaw(seg.window, seg.seq, seg.ack, false);
      this.establish(now);
      this.ackNow = true;
      this.rcvAdvertised = this.rcvNxt;
    } else {
      // simultaneous open: "enter SYN-RECEIVED, form a SYN,ACK segment"
      this.state = TcpState.SynReceived;
      this.updateSendWindowRaw(seg.window, seg.seq, seg.ack, false);
      this.sndNxt = this.iss; // the SYN/ACK re-sends our SYN
      this.rcvAdvertised = this.rcvNxt;
    }
    if (seg.payload.length > 0) this.receiveData(now, seqAdd(seg.seq, 1), seg.payload);
  }

  /**
   * The SYN/ACK of a SYN that carried data: the bytes it acknowledged move behind the ISS (the
   * stream starts after them); SND.MAX comes back to the end of what is still ours to send.
   */
  private takeSynDataAck(ack: number): void {
    const n = this.synData!.length;
    const taken = Math.max(0, Math.min(n, seqDiff(ack, seqAdd(this.iss, 1))));
    this.synData = null;
    this.synDataAcked = taken;
    this.counters.increment(taken === n ? 'synDataAcked' : 'synDataNotAcked');
    this.iss = seqAdd(this.iss, taken);
    this.sndUna = this.iss;
    this.sndMax = seqAdd(this.iss, 1);
    if (seqLt(this.sndNxt, this.sndMax)) this.sndNxt = this.sndMax;
    if (this.timedAt >= 0) this.timedSeq = this.iss;
  }

  private establish(now: Instant): void {
    // RFC 6298 §5.7: after a lost SYN (or SYN,ACK) and no RTT sample, data starts with a 3 s RTO
    if (this.synRetransmits > 0) this.rtt.reinitializeAfterSynTimeout();
    this.state = TcpState.Established;
    this.consecutiveRtos = 0;
    this.synRetransmits = 0;
    this.timers.stop(TcpTimer.Rto);
    if (this.sendBuf.length > 0) this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
    this.armKeepAlive(now);
    this.events.push({ type: 'connected' });
    if (this.sendBuf.free > 0) this.events.push({ type: 'writable' });
  }

  /** The segment-arrival rules of RFC 9293 §3.10.7.4 for every synchronized state. */
  private handleSynchronized(now: Instant, seg: TcpRepr): void {
    const segLen = seg.payload.length + ((seg.flags & TCP_FLAG_SYN) ? 1 : 0) + ((seg.flags & TCP_FLAG_FIN) ? 1 : 0);
    const rcvWnd = Math.max(this.windowToAnnounce(), 0);

    // RFC 7323 §5.3 PAWS: "If there is a Timestamps option in the arriving segment, SEG.TSval <
    // TS.Recent, and if TS.Recent is valid, then treat the arriving segment as not acceptable:
    // send an acknowledgment in reply ... and drop the segment". RST segments are exempt.
    const ts = seg.options.timestamps;
    if (this.tsOk && ts && (seg.flags & TCP_FLAG_RST) === 0) {
      if (seqLt(ts.tsVal, this.tsRecent) && now - this.tsRecentAge <= PAWS_IDLE_MS) {
        this.counters.increment('pawsRejected');
        this.ackNow = true;
        return;
      }
    }

    // a retransmitted SYN in SYN-RECEIVED: our SYN,ACK was lost; send it again
    // (RFC 9293 §3.10.7.4: "If the connection was initiated with a passive OPEN ... return this
    // connection to LISTEN" is for a SYN in window; a SYN equal to the first one is its retransmission)
    if (this.state === TcpState.SynReceived && (seg.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) === TCP_FLAG_SYN && seg.seq === this.irs) {
      this.sndNxt = this.iss;
      return;
    }
    // TIME-WAIT: "The only thing that can arrive in this state is a retransmission of the remote
    // FIN. Acknowledge it, and restart the 2 MSL timeout."
    if (this.state === TcpState.TimeWait && (seg.flags & TCP_FLAG_FIN) && (seg.flags & TCP_FLAG_RST) === 0 &&
      seqAdd(seg.seq, seg.payload.length) === seqAdd(this.rcvNxt, -1)) {
      this.ackNow = true;
      this.timers.set(TcpTimer.TimeWait, now + this.config.timeWaitMs);
      return;
    }

    // RFC 9293 §3.10.7.4: "If the RCV.WND is zero, no segments will be acceptable, but special
    // allowance should be made to accept valid ACKs, URGs, and RSTs": a segment at RCV.NXT
    // carrying data we cannot take still has its ACK processed (its text is dropped)
    if (rcvWnd === 0 && seg.payload.length > 0 && seg.seq === this.rcvNxt && (seg.flags & TCP_FLAG_ACK)) {
      this.counters.increment('rcvWindowFull');
      this.ackNow = true;
      seg = { ...seg, payload: EMPTY, flags: seg.flags & ~TCP_FLAG_FIN };
      return this.handleSynchronized(now, seg);
    }

    // First: the sequence number (RFC 9293 §3.10.7.4, the four cases)
    if (!this.acceptable(seg.seq, segLen, rcvWnd)) {
      if ((seg.flags & TCP_FLAG_RST) === 0) {
        this.counters.increment(segLen > 0 && seqLt(seg.seq, this.rcvNxt) ? 'duplicateSegments' : 'outOfWindow');
        this.ackNow = true; // "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>"
        // a full duplicate tells the sender of a D-SACK (RFC 2883)
        // RFC 2883 D-SACK: report the duplicate just received
        if (this.sackOk && seg.payload.length > 0 && seqLe(seqAdd(seg.seq, seg.payload.length), this.rcvNxt)) {
          this.dsack = { start: seg.seq, end: seqAdd(seg.seq, seg.payload.length) };
        }
      }
      return;
    }

    // Second: RST (RFC 5961 §3.2)
    if (seg.flags & TCP_FLAG_RST) {
      if (seg.seq === this.rcvNxt) {
        this.counters.increment('resetsReceived');
        // RFC 9293 §3.10.7.4: the user is told in SYN-RECEIVED (active open: "connection
        // refused"), ESTABLISHED, FIN-WAIT-1/2 and CLOSE-WAIT; in CLOSING, LAST-ACK and
        // TIME-WAIT the TCB just goes, and a passively opened SYN-RECEIVED "need not be informed"
        if (this.state === TcpState.SynReceived) {
          if (this.activeOpen) this.events.push({ type: 'reset', reason: 'refused' });
        } else if (this.state === TcpState.Established || this.state === TcpState.FinWait1 || this.state === TcpState.FinWait2 || this.state === TcpState.CloseWait) {
          this.events.push({ type: 'reset', reason: 'peerReset' });
        }
        this.enterClosed(now);
        // an acceptable RST's options go up too, once this connection is closed (so nothing
        // answers the RST): RFC 8684 §3.6 MP_TCPRST says why the subflow was reset, §3.5 "Option
        // B" MP_FASTCLOSE on a RST closes the whole MPTCP connection
        this.upper.readOptions(seg);
      } else {
        // "If the RST bit is set and the sequence number does not exactly match the next
        // expected sequence value, yet is within the current receive window, TCP MUST send an
        // acknowledgment (challenge ACK)"
        this.counters.increment('challengeAckRst');
        this.challengeAck(now);
      }
      return;
    }

    // Fourth (RFC 5961 §4.2): a SYN in a synchronized state gets a challenge ACK
    if (seg.flags & TCP_FLAG_SYN) {
      if (this.state === TcpState.SynReceived && seg.seq === this.irs) {
        // a retransmitted SYN: our SYN/ACK was lost; send it again
        this.sndNxt = this.iss;
        return;
      }
      this.counters.increment('challengeAckSyn');
      this.challengeAck(now);
      return;
    }

    // Fifth: the ACK field. "if the ACK bit is off, drop the segment and return"
    if ((seg.flags & TCP_FLAG_ACK) === 0) return;

    // RFC 5961 §5.2: an ACK is acceptable only in [SND.UNA - MAX.SND.WND, SND.NXT]
    if (seqGt(seg.ack, this.sndMax)) {
      this.counters.increment('ackTooNew');
      this.challengeAck(now);
      return;
    }
    if (seqLt(seg.ack, seqAdd(this.sndUna, -Math.max(this.maxSndWnd, 1)))) {
      this.counters.increment('oldAckIgnored');
      this.challengeAck(now);
      return;
    }

    // timestamps: RFC 7323 §4.3 "If SEG.TSval >= TS.Recent and SEG.SEQ =< Last.ACK.sent then TS.Recent = SEG.TSval"
    if (this.tsOk && ts && seqGe(ts.tsVal, this.tsRecent) && seqLe(seg.seq, this.rcvNxt)) {
      this.tsRecent = ts.tsVal;
      this.tsRecentAge = now;
    }

    this.upper.readOptions(seg);
    // the MPTCP layer may have reset the connection on what it read
    if (this.isClosed()) return;

    if (this.state === TcpState.SynReceived) {
      // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state"
      if (seqGt(seg.ack, this.sndUna)) {
        this.ackAdvance(now, seg.ack, seg);
        this.updateSendWindowRaw(seg.window, seg.seq, seg.ack, true);
        this.establish(now);
      } else {
        this.pendingRst = { seq: seg.ack, ack: 0, withAck: false };
        return;
      }
    } else {
      this.processAck(now, seg);
      if (this.state === TcpState.Closed) return;
    }

    // Sixth: the URG bit. RFC 9293 §3.8.5: "new applications SHOULD NOT employ the TCP urgent
    // mechanism"; the data is delivered inline, in order, as any other (the urgent pointer is
    // nothing an app behind mptun could learn): counted and ignored
    if (seg.flags & TCP_FLAG_URG) this.counters.increment('urgentIgnored');

    // Seventh: the segment text
    if (seg.payload.length > 0) {
      if (this.state === TcpState.Established || this.state === TcpState.FinWait1 || this.state === TcpState.FinWait2) {
        this.receiveData(now, seg.seq, seg.payload);
      }
      // in CLOSE-WAIT and later the peer has sent its FIN: text is ignored
    }

    // Eighth: FIN
    if (seg.flags & TCP_FLAG_FIN) {
      const finAt = seqAdd(seg.seq, seg.payload.length);
      if (finAt === this.rcvNxt && !this.peerFin) this.receiveFin(now);
      else if (seqGt(finAt, this.rcvNxt)) this.reasm.markFin?.(finAt);
      this.ackNow = true;
    }
  }

  /** RFC 9293 §3.10.7.4 "There are four cases for the acceptability test for an incoming segment". */
  private acceptable(seq: number, segLen: number, rcvWnd: number): boolean {
    const rcvEnd = seqAdd(this.rcvNxt, rcvWnd);
    if (segLen === 0) {
      if (rcvWnd === 0) return seq === this.rcvNxt;
      return seqLe(this.rcvNxt, seq) && seqLt(seq, rcvEnd);
    }
    if (rcvWnd === 0) return false;
    const last = seqAdd(seq, segLen - 1);
    return (seqLe(this.rcvNxt, seq) && seqLt(seq, rcvEnd)) || (seqLe(this.rcvNxt, last) && seqLt(last, rcvEnd));
  }

  /** RFC 5961 §7: challenge ACKs, rate-limited. */
  private challengeAck(now: Instant): void {
    if (now - this.challengeAckWindowStart >= 1000) {
      this.challengeAckWindowStart = now;
      this.challengeAcksInWindow = 0;
    }
    if (this.challengeAcksInWindow >= CHALLENGE_ACK_LIMIT) return;
    this.challengeAcksInWindow++;
    this.counters.increment('challengeAcks');
    this.challengeAckPending = true;
  }

  /** The ACK processing of ESTABLISHED and the closing states. */
  private processAck(now: Instant, seg: TcpRepr): void {
    const ack = seg.ack;
    const oldUna = this.sndUna;
    let newlySacked = 0;
    let dsack: SackBlock | null = null;
    const blocks = seg.options.sackBlocks ?? [];
    if (this.sackOk) {
      if (blocks.length > 0) {
        const r = this.scoreboard.onAck(ack, blocks, this.sndUna, this.sndMax);
        newlySacked = r.newlySacked;
        dsack = r.dsack;
        if (r.dsack) this.counters.increment('dsack');
        if (r.spuriousRetransmit) this.rack.onSpuriousRetransmit();
        if (r.reneged) this.rack.onReneging();
      } else if (seqGt(ack, this.sndUna)) {
        this.scoreboard.onAck(ack, [], this.sndUna, this.sndMax);
      }
    }
    const advanced = seqGt(ack, this.sndUna);
    const ts = this.tsOk ? seg.options.timestamps : undefined;

    // Undo (RFC 3522 Eifel, RFC 3708 D-SACK, RFC 5682 F-RTO), before the ACK moves the state
    if (this.config.spuriousUndo) {
      if (dsack) this.onDsack(now, dsack);
      if (advanced) this.checkEifel(now, ack, ts?.tsEcr);
      if (this.frto > 0) this.frtoAck(now, ack, advanced);
    }
    if (this.config.rack && advanced) this.checkTlpRecovery(now, ack, dsack);

    // RFC 8985 §6.2 steps 1-5 on the send log (also the µs RTT sample of `ackAdvance`)
    const rackOn = this.sackOk && this.config.rack;
    let rackOut: ReturnType<Rack['onAck']> | null = null;
    if (advanced || blocks.length > 0) {
      const sacks = dsack ? blocks.slice(1) : blocks;
      rackOut = this.rack.onAck(now, {
        sndUna: advanced ? ack : this.sndUna, sndNxt: this.sndMax, sacks, dsack: dsack !== null,
        tsEcrTime: ts && ts.tsEcr !== 0 ? this.tsToTime(now, ts.tsEcr) : null,
        inRecovery: this.inRecovery || this.rtoRecovery, srtt: this.rtt.srtt ?? 1, mss: this.sendMss,
        sackedBytes: this.scoreboard.sackedBytes, lossLimit: this.rtoRecovery ? this.sndNxt : undefined,
      });
      this.logRttSample = rackOut.rttSample;
    }
    // RFC 8985 §7.2 schedules a probe only while "The connection has no SACKed sequences in the
    // SACK scoreboard": one armed before the first SACK came is cancelled (RACK's reordering
    // timer detects the losses now; as Linux, whose probe needs the Open state)
    if (rackOn && newlySacked > 0 && !advanced) this.timers.stop(TcpTimer.Tlp);

    if (advanced) {
      const acked = this.ackAdvance(now, ack, seg);
      this.dupAcks = 0;
      if (this.inRecovery) {
        if (seqGe(ack, this.recoveryPoint)) {
          this.inRecovery = false;
          this.cc.onRecoveryEnd(now);
          this.rack.onRecoveryExit();
        } else if (!this.sackOk) {
          // RFC 6582 §3.2 step 5 (partial ACK): "retransmit the first unacknowledged segment"
          this.retransmitHead = true;
          this.cc.onRecoveryAck?.(now, acked, this.inFlight());
        } else {
          this.cc.onRecoveryAck?.(now, acked, this.inFlight());
        }
      } else if (!this.rtoRecovery) {
        this.cc.onAck(now, acked, this.rtt, this.inFlight());
      } else {
        this.cc.onAck(now, acked, this.rtt, this.inFlight());
        if (seqGe(this.sndUna, this.recoveryPoint)) {
          this.rtoRecovery = false;
          this.rack.onRecoveryExit();
        }
      }
    } else if (ack === this.sndUna && seqGt(this.sndMax, this.sndUna) && seg.payload.length === 0 &&
      (seg.flags & (TCP_FLAG_SYN | TCP_FLAG_FIN)) === 0 &&
      (seg.window << this.sndWscale) === this.sndWnd) {
      // RFC 5681 §2 "DUPLICATE ACKNOWLEDGMENT" (or RFC 6675's: one carrying new SACK information)
      if (!this.sackOk || newlySacked > 0) {
        this.dupAcks++;
        this.counters.increment('dupAcks');
        // A lost retransmission (after RFC 8985 RACK's idea, at the head only): the head was
        // retransmitted more than a reordering window plus an RTT ago and the peer keeps SACKing
        // data sent after it. Without this, only another RTO would repair it.
        if (!rackOn && this.sackOk && (this.inRecovery || this.rtoRecovery) && this.headRtxAt >= 0 && this.headRtxSeq === this.sndUna &&
          now - this.headRtxAt > (this.rtt.srtt ?? 1) * 1.25 + 1 && this.scoreboard.isLost(this.sndUna, this.sendMss)) {
          this.counters.increment('lostRetransmits');
          this.retransmitHead = true;
          this.headRtxAt = -1;
        }
      }
      // PRR's DeliveredData (RFC 6937): the newly SACKed bytes, or one segment per duplicate ACK without SACK
      if (this.inRecovery) this.cc.onRecoveryAck?.(now, this.sackOk ? newlySacked : this.sendMss, this.inFlight());
    }

    // RACK's verdicts (RFC 8985 §6.2 step 5) and its reordering timer (§6.3)
    if (rackOn && rackOut) this.applyRack(now, rackOut.lost, rackOut.timeout);

    // Loss detection: RFC 8985 RACK, or RFC 6675 §5 (SACK) or RFC 5681/6582 (three duplicate ACKs)
    if (!this.inRecovery && !this.rtoRecovery && seqGt(this.sndMax, this.sndUna)) {
      let lost: boolean;
      if (rackOn) lost = this.scoreboard.lostBytes > 0;
      else lost = this.sackOk ? (this.dupAcks >= DUP_THRESH || this.scoreboard.isLost(this.sndUna, this.sendMss)) : this.dupAcks >= DUP_THRESH;
      if (lost) this.enterRecovery(now);
    }

    // RFC 9293 §3.10.7.4: "If SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK), set SND.WND <- SEG.WND"
    if (seqGe(ack, oldUna) && (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack)))) {
      const before = this.sndWnd;
      this.updateSendWindowRaw(seg.window, seg.seq, ack, true);
      // a peer that answers with a zero window is alive: persist, do not give up
      if (this.sndWnd === 0) this.consecutiveRtos = 0;
      if (this.sndWnd > 0 && before === 0) {
        this.timers.stop(TcpTimer.Persist);
        this.persistBackoff = 0;
        // the window opened with the probe's octet unacknowledged: it goes again with the rest
        if (seqGt(this.sndNxt, this.sndUna) && seqDiff(this.sndMax, this.sndUna) <= 1) this.sndNxt = this.sndUna;
      }
    }

    // closing states
    if (this.finSent && seqGe(this.sndUna, seqAdd(this.finSeq, 1))) {
      switch (this.state) {
        case TcpState.FinWait1:
          this.state = TcpState.FinWait2;
          // like Linux's tcp_fin_timeout: a peer that never closes its side does not keep us forever
          if (this.config.finWait2TimeoutMs > 0) this.timers.set(TcpTimer.UserTimeout, now + this.config.finWait2TimeoutMs);
          break;
        case TcpState.Closing:
          this.enterTimeWait(now);
          break;
        case TcpState.LastAck:
          this.enterClosed(now);
          break;
        default:
          break;
      }
    }
  }

  private enterRecovery(now: Instant): void {
    this.inRecovery = true;
    this.recoveryPoint = this.sndMax;
    this.highRxt = this.sndUna;
    this.counters.increment('fastRetransmits');
    this.counters.increment(this.sackOk ? 'sackRecoveries' : 'newRenoRecoveries');
    this.startUndo(now);
    this.cc.onCongestionEvent(now, this.flightSize());
    this.frto = 0;
    if (this.sackOk && this.config.rack) {
      // RFC 8985 §3.4: RACK only says which segments are lost; the lowest of them goes at once
      // (the fast retransmit of RFC 6675 §5 step 4.1), the rest as PRR lets the window (RFC 6937)
      this.counters.increment('rackRecoveries');
      this.forceRetransmit = true;
      return;
    }
    // retransmit the first unacknowledged segment at once (RFC 5681 §3.2 step 4, RFC 6675 §5 step 4.1)
    this.retransmitHead = true;
  }

  /** Marks RACK's lost ranges on the scoreboard and (re)arms the reordering timer. */
  private applyRack(now: Instant, lost: readonly SackBlock[], timeout: number): void {
    for (const b of lost) this.scoreboard.markLost(b.start, b.end);
    // RFC 8985 §6.2: "If timeout != 0: Arm the RACK timer to call RACK_detect_loss_and_arm_timer() after timeout"
    if (timeout > 0) this.timers.set(TcpTimer.Rack, now + timeout);
    else this.timers.stop(TcpTimer.Rack);
  }

  /** RFC 8985 §6.3: "Upon RACK reordering timer expiration: RACK_detect_loss_and_arm_timer()". */
  private onRackTimer(now: Instant): void {
    if (!this.sackOk || !this.config.rack || seqGe(this.sndUna, this.sndMax)) return;
    const r = this.rack.onTimer(now, {
      inRecovery: this.inRecovery || this.rtoRecovery, srtt: this.rtt.srtt ?? 1, mss: this.sendMss,
      sackedBytes: this.scoreboard.sackedBytes, lossLimit: this.rtoRecovery ? this.sndNxt : undefined,
    });
    this.applyRack(now, r.lost, r.timeout);
    if (r.lost.length > 0 && !this.inRecovery && !this.rtoRecovery) this.enterRecovery(now);
  }

  // ---------------------------------------------------------------- undo

  /**
   * A congestion response begins (fast recovery or a timeout): save cwnd and ssthresh to restore
   * if it proves spurious (Linux's tcp_init_undo: prior_cwnd, prior_ssthresh, undo_marker,
   * undo_retrans). A response while the previous one is unresolved keeps the older state.
   */
  private startUndo(now: Instant): void {
    if (!this.config.spuriousUndo) return;
    if (this.undoState && (this.inRecovery || this.rtoRecovery) && this.undoState.retrans > 0 && seqLt(this.sndUna, this.undoState.high)) return;
    this.undoState = { cwnd: this.cc.cwnd, ssthresh: this.cc.ssthresh, retrans: 0, high: this.sndMax, retransTsval: null, firstRtxEnd: null, at: now };
    this.undoRtx.clear();
  }

  /** A retransmission of [seq, end) went out: the undo state counts it (Linux undo_retrans) and Eifel keeps its TSval. */
  private noteRetransmit(now: Instant, seq: number, end: number): void {
    const u = this.undoState;
    if (!u) return;
    u.retrans += Math.max(1, Math.ceil(seqDiff(end, seq) / this.sendMss));
    this.undoRtx.add(seq, end);
    // RFC 3522 §3.2 step (1): "Set a "RetransmitTS" variable to the value of the Timestamp Value
    // field of the Timestamps option included in the retransmit sent when loss recovery is
    // initiated."
    // Only a first retransmission at SND.UNA can be tested: the ACK that covers a retransmission
    // above a hole echoes whatever filled the hole (an original delayed by reordering would pass
    // for the original of our retransmission).
    if (u.firstRtxEnd === null) {
      u.firstRtxEnd = end;
      u.retransTsval = this.tsOk && seq === this.sndUna ? this.tsNow(now) : null;
    }
  }

  /**
   * RFC 3708 §3: "If the TCP sender receives a D-SACK for each retransmitted segment, then it can
   * infer that the retransmissions were unnecessary" (the basic algorithm: every retransmission
   * of the episode D-SACKed, with no further loss, means the congestion response was spurious).
   */
  private onDsack(now: Instant, b: SackBlock): void {
    const u = this.undoState;
    const overlap = this.undoRtx.overlap(b.start, b.end);
    if (overlap === 0) return;
    // the original arrived after all: reordering (RACK widens its window from here on)
    this.rack.onSpuriousRetransmit();
    this.undoRtx.remove(b.start, b.end);
    if (!u) return; // already undone (Eifel saw it first)
    this.counters.increment('spuriousRetransDetected');
    u.retrans -= Math.max(1, Math.ceil(overlap / this.sendMss));
    if (u.retrans <= 0) if (this.undo(now)) this.counters.increment('undoDsack');
  }

  /**
   * RFC 3522 §3.2 step (3)-(4): on "the first acceptable ACK" that acknowledges the
   * retransmission, "If the value of the Timestamp Echo Reply field of the acceptable ACK's
   * Timestamps option is smaller than the value of RetransmitTS, then proceed to step (5)" — the
   * ACK was for the original: the retransmission was spurious.
   */
  private checkEifel(now: Instant, ack: number, tsEcr: number | undefined): void {
    const u = this.undoState;
    if (!u || u.retransTsval === null || u.firstRtxEnd === null || !this.tsOk || tsEcr === undefined || tsEcr === 0) return;
    if (!seqGe(ack, u.firstRtxEnd)) return;
    const rts = u.retransTsval;
    u.retransTsval = null; // one test per episode: only the first acceptable ACK tells
    if (seqLt(tsEcr, rts)) {
      this.counters.increment('spuriousRetransDetected');
      if (this.rtoRecovery) this.counters.increment('spuriousRtos');
      // the original arrived: in fast recovery that is reordering (after an RTO, a delay spike)
      else this.rack.onSpuriousRetransmit();
      if (this.undo(now)) this.counters.increment('undoEifel');
    }
  }

  /**
   * RFC 5682 §2.1, the F-RTO algorithm after "When the retransmission timer expires, retransmit
   * the first unacknowledged segment" (step 1):
   * "2) When the first acknowledgment after the RTO retransmission arrives at the TCP sender ...
   *    a) If a new duplicate ACK arrives or the Acknowledgment field covers "recover" but not
   *       more than "recover", stop F-RTO and proceed with the normal RTO recovery.
   *    b) Else, if the acknowledgment advances SND.UNA ... transmit up to two new (previously
   *       unsent) segments and enter step 3 of this algorithm."
   * "3) When the second acknowledgment after the RTO retransmission arrives at the TCP sender ...
   *    a) If the ACK is a duplicate ACK, set the congestion window to no more than 3 * MSS, and
   *       continue with the slow start algorithm retransmitting unacknowledged segments.
   *    b) Else, if the ACK advances SND.UNA ... declare the timeout spurious".
   */
  private frtoAck(now: Instant, ack: number, advanced: boolean): void {
    if (!this.rtoRecovery) {
      this.frto = 0;
      return;
    }
    const recover = this.recoveryPoint;
    if (this.frto === 2) {
      if (!advanced || seqGe(ack, recover)) {
        this.frto = 0;
        return;
      }
      const newData = this.sendBuf.length - seqDiff(this.sndMax, this.sndUna === this.iss ? seqAdd(this.iss, 1) : this.sndUna);
      if (newData <= 0 || seqDiff(seqAdd(ack, this.sndWnd), this.sndMax) <= 0) {
        // "If the TCP sender does not have enough unsent data ... [it] SHOULD ... proceed with the conventional RTO recovery"
        this.frto = 0;
        return;
      }
      this.frto = 3;
      this.frtoBudget = 2 * this.sendMss;
      this.sndNxt = this.sndMax;
      return;
    }
    if (this.frto === 3) {
      this.frto = 0;
      this.frtoBudget = 0;
      if (!advanced) {
        // 3a: the timeout was real: go back to SND.UNA
        this.sndNxt = this.sndUna;
        return;
      }
      this.counters.increment('spuriousRetransDetected');
      this.counters.increment('spuriousRtos');
      if (this.undo(now)) this.counters.increment('undoFrto');
    }
  }

  /** The response was spurious: restore the window (Linux tcp_undo_cwnd_reduction) and leave recovery. */
  /** Undoes the congestion response of the episode in course; false when there is none to undo. */
  private undo(now: Instant): boolean {
    const u = this.undoState;
    if (!u) return false;
    this.undoState = null;
    // undoRtx stays until the next episode: a late D-SACK still tells RACK of the reordering
    this.cc.undo?.(now, u.cwnd, u.ssthresh);
    if (this.inRecovery) {
      this.inRecovery = false;
      this.rack.onRecoveryExit();
    }
    if (this.rtoRecovery) {
      this.rtoRecovery = false;
      this.rack.onRecoveryExit();
      // no more go-back-N: what is outstanding was not lost
      this.sndNxt = this.sndMax;
      this.frto = 0;
      this.frtoBudget = 0;
    }
    // what was marked lost was not: RACK marks again what really is
    this.scoreboard.clearLost();
    this.rack.onRto();
    this.forceRetransmit = false;
    this.retransmitHead = false;
    return true;
  }

  /** A TSecr on our TS clock, back to `now` units (ms; 1 ms resolution). */
  private tsToTime(now: Instant, tsEcr: number): number {
    return now - (((this.tsNow(now) - tsEcr) >>> 0) % 2 ** 32);
  }

  private retransmitHead = false;
  /** When the segment at SND.UNA was last retransmitted (for lost-retransmission detection), or -1. */
  private headRtxAt = -1;
  private headRtxSeq = 0;

  /** Advances SND.UNA to `ack`: frees the send buffer, samples the RTT, re-arms the RTO. Returns bytes acked. */
  private ackAdvance(now: Instant, ack: number, seg: TcpRepr): number {
    let acked = seqDiff(ack, this.sndUna);
    // the SYN and FIN occupy sequence space but not the buffer
    let dataAcked = acked;
    if (this.sndUna === this.iss && (this.state === TcpState.SynSent || this.state === TcpState.SynReceived)) dataAcked--;
    if (this.finSent && seqGe(ack, seqAdd(this.finSeq, 1))) dataAcked--;
    if (dataAcked > 0) {
      const n = Math.min(dataAcked, this.sendBuf.length);
      this.sendBuf.ack(n);
      this.sentOffsetBase += n;
    }
    this.sndUna = ack;
    if (seqLt(this.sndNxt, this.sndUna)) this.sndNxt = this.sndUna;
    this.consecutiveRtos = 0;

    // RTT: from the send log, with the resolution of `now` (the engine's µs clock), of the
    // oldest newly acknowledged segment never retransmitted (RFC 6298 §3, Karn); else RFC 7323
    // §4.1 timestamps (the TS clock ticks in ms), else Karn's timing of one segment
    const ts = seg.options.timestamps;
    const logSample = this.logRttSample;
    this.logRttSample = null;
    if (logSample !== null && logSample >= 0) {
      this.rtt.onSample(now, Math.max(logSample, 0.001));
      this.timedAt = -1;
    } else if (this.tsOk && ts && ts.tsEcr !== 0) {
      const sample = this.tsNow(now) - ts.tsEcr;
      if (sample >= 0 && sample < 600_000) this.rtt.onSample(now, Math.max(sample, 0.01));
    } else if (this.timedAt >= 0 && seqGt(ack, this.timedSeq)) {
      this.rtt.onSample(now, now - this.timedAt);
      this.timedAt = -1;
    }

    // RFC 6298 §5.2/5.3: all data acknowledged → stop the timer; else restart it
    if (this.sndUna === this.sndMax) {
      this.timers.stop(TcpTimer.Rto);
      this.armKeepAlive(now);
    } else {
      this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
    }
    this.timers.stop(TcpTimer.Tlp);
    this.tlpEpisode = false;
    if (this.sndUna !== this.sndMax) this.armTlp(now);
    if (this.writableWanted && this.sendBuf.free > 0 && !this.userShutdown) {
      this.writableWanted = false;
      this.events.push({ type: 'writable' });
    }
    if (acked < 0) acked = 0;
    return Math.max(0, dataAcked);
  }

  private receiveData(now: Instant, seq: number, payload: Buffer): void {
    let data = payload;
    // trim what we already have (RFC 9293 §3.10.7.4: "segments with higher beginning sequence numbers may be held")
    if (seqLt(seq, this.rcvNxt)) {
      const skip = seqDiff(this.rcvNxt, seq);
      if (skip >= data.length) return;
      data = data.subarray(skip);
      seq = this.rcvNxt;
    }
    // and what does not fit the window
    const room = this.receiveWindow();
    const wndEnd = Math.max(room, seqDiff(this.rcvAdvertised, seq));
    if (data.length > wndEnd) {
      data = data.subarray(0, Math.max(0, wndEnd));
      this.counters.increment('rcvWindowFull');
    }
    if (data.length === 0) return;
    this.counters.increment('bytesIn', data.length);
    if (seq === this.rcvNxt) {
      // in order: the one copy out of the device's arena
      this.deliver(Buffer.from(data));
      this.autotune(now, data.length);
      // and whatever it made contiguous
      if (this.reasm.bytesQueued > 0) {
        for (let chunk = this.reasm.pop(this.rcvNxt); chunk; chunk = this.reasm.pop(this.rcvNxt)) this.deliver(chunk);
        this.ackAtOnce(); // RFC 5681 §4.2: ACK at once when a gap is filled
        if (this.reasm.finAt !== undefined && this.reasm.finAt === this.rcvNxt && !this.peerFin) this.receiveFin(now);
      }
      this.segsSinceAck++;
      // RFC 9293 §3.8.6.3: "an ACK SHOULD be generated for at least every second full-sized segment"
      if (this.segsSinceAck >= 2 || data.length > this.sendMss) this.ackAtOnce();
      else if (!this.timers.isArmed(TcpTimer.DelayedAck)) this.timers.set(TcpTimer.DelayedAck, now + this.config.delayedAckMs);
    } else {
      // out of order: hold it (bounded) and ACK at once (RFC 5681 §4.2: "an immediate ACK SHOULD be sent when an out-of-order segment arrives")
      this.counters.increment('outOfOrderSegments');
      const r = this.reasm.insert(seq, Buffer.from(data), this.rcvNxt);
      if (r.dropped) this.counters.increment('reassemblyDropped');
      this.ackAtOnce();
    }
  }

  /** Received data is acknowledged at once, not after the delayed-ACK timer: counted (the timer's ACKs are `delayedAcks`). */
  private ackAtOnce(): void {
    if (!this.ackNow) this.counters.increment('immediateAcks');
    this.ackNow = true;
  }

  /**
   * Receive-buffer auto-tuning (after Linux's tcp_rcv_space_adjust, "dynamic right-sizing"):
   * once per RTT, if the peer delivered more than half the buffer in that RTT, the buffer grows
   * to twice what was delivered (so the window stays ahead of the sender), up to recvBufferMax.
   */
  private autotune(now: Instant, bytes: number): void {
    this.rcvSpaceBytes += bytes;
    const rtt = Math.max(this.rtt.srtt ?? 1, 1);
    if (this.rcvSpaceStart < 0) this.rcvSpaceStart = now;
    if (now - this.rcvSpaceStart < rtt) return;
    const want = Math.min(this.config.recvBufferMax, 2 * this.rcvSpaceBytes);
    if (want > this.recvCapacity) {
      this.recvCapacity = want;
      this.counters.increment('rcvBufferGrown');
    }
    this.rcvSpaceBytes = 0;
    this.rcvSpaceStart = now;
  }

  private rcvSpaceBytes = 0;
  private rcvSpaceStart = -1;

  private deliver(chunk: Buffer): void {
    this.rcvNxt = seqAdd(this.rcvNxt, chunk.length);
    const wasEmpty = this.recvQueue.length === 0;
    this.recvQueue.append(chunk);
    if (wasEmpty) this.events.push({ type: 'readable' });
  }

  private receiveFin(now: Instant): void {
    // "advance RCV.NXT over the FIN, and send an acknowledgment for the FIN"
    this.peerFin = true;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.ackNow = true;
    this.events.push({ type: 'peerClosed' });
    switch (this.state) {
      case TcpState.SynReceived:
      case TcpState.Established:
        this.state = TcpState.CloseWait;
        break;
      case TcpState.FinWait1:
        // our FIN not yet acknowledged: simultaneous close
        this.state = seqGe(this.sndUna, seqAdd(this.finSeq, 1)) && this.finSent ? TcpState.TimeWait : TcpState.Closing;
        if (this.state === TcpState.TimeWait) this.enterTimeWait(now);
        break;
      case TcpState.FinWait2:
        this.enterTimeWait(now);
        break;
      case TcpState.TimeWait:
        // "Restart the 2 MSL time-wait timeout"
        this.timers.set(TcpTimer.TimeWait, now + this.config.timeWaitMs);
        break;
      default:
        break;
    }
  }

  private enterTimeWait(now: Instant): void {
    this.state = TcpState.TimeWait;
    this.timers.clear();
    this.timers.set(TcpTimer.TimeWait, now + this.config.timeWaitMs);
    this.events.push({ type: 'timeWait' });
  }

  private enterClosed(_now: Instant): void {
    if (this.state === TcpState.Closed && this.events.some((e) => e.type === 'closed')) return;
    this.state = TcpState.Closed;
    this.timers.clear();
    this.events.push({ type: 'closed' });
  }

  // ---------------------------------------------------------------- timers

  pollTimeout(): Instant | null {
    return this.timers.next();
  }

  /**
   * The path came back after an outage (a link event): a retransmission timer that is armed
   * fires now instead of at its backed-off time, seconds away after a long flap (the caller
   * then polls the connection: its output, and its new deadline).
   */
  retransmitSoon(now: Instant): void {
    if (!this.timers.isArmed(TcpTimer.Rto) || this.timers.get(TcpTimer.Rto) <= now) return;
    this.timers.stop(TcpTimer.Rto);
    this.onRto(now);
  }

  handleTimeout(now: Instant): void {
    if (this.timers.expire(TcpTimer.TimeWait, now)) {
      this.enterClosed(now);
      return;
    }
    if (this.timers.expire(TcpTimer.UserTimeout, now)) {
      if (this.state === TcpState.FinWait2) {
        this.counters.increment('finWait2Timeouts');
        this.enterClosed(now);
        return;
      }
    }
    if (this.timers.expire(TcpTimer.DelayedAck, now)) {
      this.counters.increment('delayedAcks');
      this.ackNow = true;
    }
    if (this.timers.expire(TcpTimer.Rto, now)) this.onRto(now);
    if (this.timers.expire(TcpTimer.Tlp, now)) this.onTlp(now);
    if (this.timers.expire(TcpTimer.Rack, now)) this.onRackTimer(now);
    if (this.timers.expire(TcpTimer.Persist, now)) {
      // RFC 9293 §3.8.6.1: "The transmitting host SHOULD send the first zero-window probe when a
      // zero window has existed for the retransmission timeout period ... and SHOULD increase
      // exponentially the interval between successive probes."
      this.probePending = true;
      this.counters.increment('zeroWindowProbes');
      this.persistBackoff = Math.min(this.persistBackoff + 1, 10);
      this.timers.set(TcpTimer.Persist, now + Math.min(this.rtt.rto * 2 ** this.persistBackoff, 60_000));
    }
    if (this.timers.expire(TcpTimer.KeepAlive, now)) {
      if (this.keepAlivesUnanswered >= this.config.keepAliveProbes) {
        this.counters.increment('userTimeouts');
        this.pendingRst = { seq: this.sndNxt, ack: this.rcvNxt, withAck: true };
        this.events.push({ type: 'reset', reason: 'timeout' });
        this.enterClosed(now);
        return;
      }
      this.keepAlivesUnanswered++;
      this.keepAlivePending = true;
      this.counters.increment('keepAlivesSent');
      this.timers.set(TcpTimer.KeepAlive, now + this.config.keepAliveIntervalMs);
    }
  }

  private keepAlivePending = false;

  private armKeepAlive(now: Instant): void {
    if (this.config.keepAliveMs > 0 && (this.state === TcpState.Established || this.state === TcpState.CloseWait)) {
      this.timers.set(TcpTimer.KeepAlive, now + this.config.keepAliveMs);
    }
  }

  /**
   * RFC 8985 §7.3: "the sender SHOULD send a new, previously unsent segment, if one exists ...
   * Otherwise, the sender SHOULD retransmit the highest-sequence segment sent so far". The probe
   * draws an ACK (with SACK) that lets fast recovery repair a tail loss instead of an RTO.
   */
  private onTlp(now: Instant): void {
    if (seqGe(this.sndUna, this.sndMax) || this.inRecovery || this.rtoRecovery) return;
    this.counters.increment('tailLossProbes');
    this.tlpPending = true;
    // one probe per episode: no other until an ACK advances SND.UNA (RFC 8985 §7.4)
    this.tlpEpisode = true;
    this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
  }

  private tlpPending = false;
  private tlpEpisode = false;

  /**
   * RFC 8985 §7.2: PTO = 2·SRTT, plus the delayed-ACK allowance when one segment is out, at most
   * until the RTO would expire. Scheduled only when "The connection supports SACK", "The
   * connection is not in loss recovery" and "The connection has no SACKed sequences in the SACK
   * scoreboard" (with SACKed data, RACK's reordering timer detects the losses).
   */
  private armTlp(now: Instant): void {
    if (this.rtt.srtt === null || this.inRecovery || this.rtoRecovery || !this.sackOk || this.tlpEpisode || this.sndWnd === 0) return;
    if (this.config.rack && this.scoreboard.hasSackInfo) return;
    let pto = 2 * this.rtt.srtt;
    if (seqDiff(this.sndMax, this.sndUna) <= this.sendMss) pto += this.config.delayedAckMs;
    pto = Math.max(pto, 2);
    if (!this.config.rack) {
      if (pto < this.rtt.rto) this.timers.set(TcpTimer.Tlp, now + pto);
      return;
    }
    // "If Now() + PTO > TCP_RTO_expiration(): PTO = TCP_RTO_expiration() - Now()"
    const rtoAt = this.timers.isArmed(TcpTimer.Rto) ? this.timers.get(TcpTimer.Rto) : now + this.rtt.rto;
    if (now + pto > rtoAt) pto = rtoAt - now;
    if (pto > 0) this.timers.set(TcpTimer.Tlp, now + pto);
  }

  /**
   * RFC 8985 §7.4: a probe that retransmitted the last segment may have repaired a loss, which the
   * congestion controller must hear of ("the sender MUST invoke a congestion control response
   * equivalent to fast recovery" when the loss was repaired by the probe). An ACK that reaches
   * TLP.end_seq without a D-SACK of the probe says the original was lost: the window is reduced
   * once (as Linux's tcp_process_tlp_ack), and saved for undo should the probe's D-SACK follow.
   */
  private checkTlpRecovery(now: Instant, ack: number, dsack: SackBlock | null): void {
    const probe = this.tlpRtx;
    if (!probe || seqLt(ack, probe.end)) return;
    this.tlpRtx = null;
    if (dsack && seqLe(dsack.start, probe.start) && seqGe(dsack.end, probe.end)) return; // both arrived: no loss
    if (this.inRecovery || this.rtoRecovery) return;
    this.counters.increment('tlpRecoveries');
    this.startUndo(now);
    const u = this.undoState;
    if (u) {
      u.retrans = 1;
      this.undoRtx.add(probe.start, probe.end);
    }
    this.cc.onCongestionEvent(now, this.flightSize());
    this.cc.onRecoveryEnd(now);
  }

  /** The last probe, when it was a retransmission: [start, end) (RFC 8985 TLP.end_seq, TLP.is_retrans). */
  private tlpRtx: SackBlock | null = null;

  private onRto(now: Instant): void {
    this.counters.increment('rtoTimeouts');
    if (this.state === TcpState.SynSent || this.state === TcpState.SynReceived) {
      if (++this.synRetransmits > this.config.maxSynRetransmits) {
        this.counters.increment('userTimeouts');
        this.events.push({ type: 'reset', reason: 'timeout' });
        this.enterClosed(now);
        return;
      }
      this.counters.increment('synRetransmits');
      this.rtt.backoff();
      this.sndNxt = this.iss;
      this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
      return;
    }
    if (seqGe(this.sndUna, this.sndMax)) return;
    if (++this.consecutiveRtos > this.config.maxRetransmits) {
      this.counters.increment('userTimeouts');
      this.pendingRst = { seq: this.sndNxt, ack: this.rcvNxt, withAck: true };
      this.events.push({ type: 'reset', reason: 'timeout' });
      this.enterClosed(now);
      return;
    }
    // RFC 6298 §5.5-5.7: back off, retransmit the earliest unacknowledged segment, restart
    this.rtt.backoff();
    // RFC 5682 §2.1 step 1: "If the TCP sender is already in RTO recovery AND "recover" is larger
    // than or equal to SND.UNA, do not enter step 2 of this algorithm" — F-RTO once per episode
    const frtoOk = this.config.spuriousUndo && !this.rtoRecovery && this.consecutiveRtos === 1;
    if (!this.rtoRecovery) this.startUndo(now);
    this.cc.onRetransmissionTimeout(now, this.flightSize());
    if (this.inRecovery) this.rack.onRecoveryExit();
    this.inRecovery = false;
    this.rack.onRto();
    this.timers.stop(TcpTimer.Rack);
    this.frtoBudget = 0;
    this.frto = frtoOk ? 2 : 0;
    if (frtoOk) this.counters.increment('frtoEntered');
    this.dupAcks = 0;
    // RFC 6675 §5.1: after an RTO, retransmit from SND.UNA, skipping what the peer SACKed
    this.rtoRecovery = true;
    this.recoveryPoint = this.sndMax;
    this.scoreboard.onRto();
    this.sndNxt = this.sndUna;
    this.timedAt = -1;
    this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
  }

  // ---------------------------------------------------------------- output

  private tsNow(now: Instant): number {
    // RFC 7323 §5.4: a timestamp clock of 1 ms, with a per-connection random offset
    return (Math.floor(now) + this.tsOffset) >>> 0;
  }

  /**
   * The SACK blocks to report (a D-SACK first), at most `max`: RFC 2018 §4 "the first SACK
   * block ... MUST specify the contiguous block of data containing the segment which triggered
   * this ACK"; the reassembler lists the most recent first.
   */
  private sackBlocksToSend(max: number): SackBlock[] {
    const blocks = this.dsack && max > 0 ? [this.dsack] : [];
    if (this.reasm.bytesQueued > 0 && blocks.length < max) for (const b of this.reasm.sackBlocks(max - blocks.length)) blocks.push(b);
    return blocks;
  }

  /**
   * How many SACK blocks a data segment may carry: RFC 9293 §3.7.1, the payload and all the
   * options fit the MSS the peer announced. Of the 40 bytes of options, the timestamps and what
   * MPTCP reserves for its own (the upper layer's `optionReserve`) come first; SACK blocks take what is left
   * (RFC 2018 §3: 2 + 8 per block, aligned to 4 with two NOPs).
   */
  private dataSackBlocks(): number {
    const left = TCP_MAX_OPTIONS_LEN - (this.tsOk ? TCP_OPTLEN_TIMESTAMPS_ALIGNED : 0) - this.upper.optionReserve - TCP_OPTLEN_SACK_ALIGNED_BASE;
    return Math.max(0, Math.min(this.tsOk ? MAX_SACK_BLOCKS_WITH_TS : MAX_SACK_BLOCKS, Math.floor(left / TCP_OPTLEN_SACK_BLOCK)));
  }

  private baseOptions(now: Instant, syn: boolean, sack?: SackBlock[]): TcpOptions {
    const opts: TcpOptions = {};
    if (syn) {
      opts.mss = this.config.mss;
      if (this.config.windowScaling && (this.state === TcpState.SynSent || this.sndWscale > 0 || this.rcvWscale > 0)) {
        opts.windowScale = this.rcvWscale;
      }
      if (this.config.sack && (this.state === TcpState.SynSent || this.sackOk)) opts.sackPermitted = true;
      if (this.config.timestamps && (this.state === TcpState.SynSent || this.tsOk)) {
        opts.timestamps = { tsVal: this.tsNow(now), tsEcr: this.state === TcpState.SynSent ? 0 : this.tsRecent };
      }
      return opts;
    }
    if (this.tsOk) opts.timestamps = { tsVal: this.tsNow(now), tsEcr: this.tsRecent };
    if (this.sackOk) {
      const blocks = sack ?? this.sackBlocksToSend(this.tsOk ? MAX_SACK_BLOCKS_WITH_TS : MAX_SACK_BLOCKS);
      if (blocks.length > 0) opts.sackBlocks = blocks;
    }
    return opts;
  }

  private segment(now: Instant, seq: number, flags: number, payload: Buffer, syn: boolean, sack?: SackBlock[]): OutSegment {
    const wnd = this.windowToAnnounce();
    // RFC 7323 §2.2: the window in a SYN is never scaled
    const raw = syn ? Math.min(wnd, MAX_WINDOW_UNSCALED) : Math.min(wnd >>> this.rcvWscale, MAX_WINDOW_UNSCALED);
    if (flags & TCP_FLAG_ACK) {
      this.rcvAdvertised = seqMax(this.rcvAdvertised, seqAdd(this.rcvNxt, syn ? raw : raw << this.rcvWscale));
      this.ackNow = false;
      this.segsSinceAck = 0;
      this.timers.stop(TcpTimer.DelayedAck);
    }
    const seg: OutSegment = {
      srcPort: this.local.port,
      dstPort: this.remote.port,
      seq,
      ack: (flags & TCP_FLAG_ACK) ? this.rcvNxt : 0,
      flags,
      window: raw,
      urgent: 0,
      options: this.baseOptions(now, syn, sack),
      payload,
      gsoSize: 0,
    };
    // a D-SACK is reported once (RFC 2883 §4 (2))
    if (flags & TCP_FLAG_ACK) this.dsack = null;
    // SACK blocks give way to MPTCP options (the codec trims them), as in Linux
    this.upper.writeOptions(seg, optionSpaceLeft(seg.options));
    this.counters.increment('segmentsOut');
    return seg;
  }

  /** The next segment to send, or null. Call until null after every input and timeout. */
  pollTransmit(now: Instant): OutSegment | null {
    if (this.pendingRst) {
      const r = this.pendingRst;
      this.pendingRst = null;
      this.counters.increment('resetsSent');
      const seg: OutSegment = {
        srcPort: this.local.port, dstPort: this.remote.port, seq: r.seq, ack: r.withAck ? r.ack : 0,
        flags: TCP_FLAG_RST | (r.withAck ? TCP_FLAG_ACK : 0), window: 0, urgent: 0, options: {}, payload: EMPTY, gsoSize: 0,
      };
      // MPTCP may add MP_TCPRST or MP_FASTCLOSE to a reset (RFC 8684 §3.6, §3.5)
      this.upper.writeOptions(seg, 40);
      return seg;
    }
    switch (this.state) {
      case TcpState.Closed:
        return null;
      case TcpState.SynSent:
        if (this.sndNxt === this.iss) {
          this.sndNxt = seqAdd(this.iss, 1);
          this.sndMax = seqMax(this.sndMax, this.sndNxt);
          if (!this.timers.isArmed(TcpTimer.Rto)) this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
          if (this.synRetransmits === 0) { this.timedSeq = this.iss; this.timedAt = now; } else this.timedAt = -1;
          if (this.synData) {
            // the SYN's data is in flight with it (the SYN/ACK's ACK may cover it)
            this.sndMax = seqMax(this.sndMax, seqAdd(this.iss, 1 + this.synData.length));
            if (this.synRetransmits === 0) this.counters.increment('synDataSent');
          }
          return this.segment(now, this.iss, TCP_FLAG_SYN, this.synData ?? EMPTY, true);
        }
        return null;
      case TcpState.SynReceived:
        if (this.sndNxt === this.iss) {
          this.sndNxt = seqAdd(this.iss, 1);
          this.sndMax = seqMax(this.sndMax, this.sndNxt);
          if (!this.timers.isArmed(TcpTimer.Rto)) this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
          if (this.synRetransmits === 0) { this.timedSeq = this.iss; this.timedAt = now; } else this.timedAt = -1;
          return this.segment(now, this.iss, TCP_FLAG_SYN | TCP_FLAG_ACK, EMPTY, true);
        }
        if (this.challengeAckPending || this.ackNow) {
          this.challengeAckPending = false;
          return this.segment(now, this.sndNxt, TCP_FLAG_ACK, EMPTY, false);
        }
        return null;
      case TcpState.TimeWait:
        if (this.ackNow || this.challengeAckPending) {
          this.challengeAckPending = false;
          return this.segment(now, this.sndMax, TCP_FLAG_ACK, EMPTY, false);
        }
        return null;
      default:
        break;
    }

    if (this.pureAckPending) {
      this.pureAckPending = false;
      return this.segment(now, this.sndMax, TCP_FLAG_ACK, EMPTY, false);
    }
    const data = this.pollData(now);
    if (data) return data;

    if (this.ackNow || this.challengeAckPending || this.keepAlivePending) {
      const keepAlive = this.keepAlivePending;
      this.keepAlivePending = false;
      this.challengeAckPending = false;
      // RFC 9293 §3.8.4: a keep-alive carries SEG.SEQ = SND.NXT-1
      const seq = keepAlive ? seqAdd(this.sndMax, -1) : this.sndMax;
      return this.segment(now, seq, TCP_FLAG_ACK, EMPTY, false);
    }
    return null;
  }

  /** Data, retransmissions, FIN and window probes, within the congestion and send windows. */
  private pollData(now: Instant): OutSegment | null {
    const mss = this.sendMss;
    const dataEnd = seqAdd(this.sndUna, this.sendBuf.length + (this.sndUna === this.iss ? 1 : 0));
    // the stream offset 0 of the send buffer is SND.UNA (after the SYN)
    const bufStart = this.sndUna === this.iss ? seqAdd(this.iss, 1) : this.sndUna;

    // 1. fast retransmit of the head, at once
    if (this.retransmitHead) {
      this.retransmitHead = false;
      const seg = this.buildData(now, this.sndUna, bufStart, Math.min(mss, seqDiff(dataEnd, this.sndUna)), true);
      if (seg) {
        this.highRxt = seqAdd(this.sndUna, seg.payload.length);
        return seg;
      }
    }

    // 2. RFC 6675 NextSeg during SACK recovery: lost segments first
    if (this.sackOk && (this.inRecovery || this.rtoRecovery)) {
      // after an RTO, above SND.NXT nothing is in the network (it is to be sent again)
      const cwndRoom = this.cc.cwnd - (this.rtoRecovery ? this.inFlight() : this.scoreboard.pipe(this.sndUna, this.sndMax, mss));
      const force = this.forceRetransmit;
      this.forceRetransmit = false;
      if (force || cwndRoom >= mss || (cwndRoom > 0 && this.flightSize() < mss)) {
        // RFC 6675 NextSeg rule (2) prefers new data that the window allows over rules (3) and (4)
        const newData = Math.max(0, Math.min(seqDiff(dataEnd, this.sndMax), seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndMax)));
        // with RACK, rule (3) would resend holes not deemed lost (RFC 8985 lets them settle)
        const next = this.scoreboard.nextSeg(this.sndUna, this.sndMax, this.highRxt, mss, { newData: force ? 0 : newData, rule3: !this.config.rack });
        if (next && next.retransmit && (!force || this.scoreboard.isLost(next.start, mss))) {
          const len = Math.min(next.length, seqDiff(dataEnd, next.start));
          const seg = this.buildData(now, next.start, bufStart, len, true);
          if (seg) {
            this.highRxt = seqMax(this.highRxt, seqAdd(next.start, seg.payload.length));
            return seg;
          }
        }
      }
    }

    // 2b. a tail loss probe: one new segment if the peer's window allows, else the last one again
    if (this.tlpPending) {
      this.tlpPending = false;
      const newAvail = seqDiff(dataEnd, this.sndMax);
      const room = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndMax);
      if (newAvail > 0 && room > 0 && seqGe(this.sndNxt, this.sndMax)) {
        const seg = this.buildData(now, this.sndMax, bufStart, Math.min(mss, newAvail, room), false);
        if (seg) return seg;
      }
      const lastEnd = this.finSent ? this.finSeq : this.sndMax;
      const len = Math.min(mss, seqDiff(lastEnd, bufStart));
      if (len > 0) {
        const seg = this.buildData(now, seqAdd(lastEnd, -len), bufStart, len, true);
        if (seg) {
          this.tlpRtx = { start: seg.seq, end: seqAdd(seg.seq, seg.payload.length) };
          return seg;
        }
      }
    }

    // 3. new data (or, after an RTO or a NewReno partial ACK, data from SND.NXT < SND.MAX again)
    const sndWndEnd = seqAdd(this.sndUna, this.sndWnd);
    const available = seqDiff(dataEnd, this.sndNxt);
    const wndRoom = seqDiff(sndWndEnd, this.sndNxt);
    // F-RTO step 2b: up to two new segments whatever the window after the timeout
    const cwndRoom = this.frtoBudget > 0 && seqGe(this.sndNxt, this.sndMax) ? this.frtoBudget : this.cc.cwnd - this.inFlight();
    if (available > 0 && wndRoom > 0 && cwndRoom > 0) {
      let len = Math.min(available, wndRoom, cwndRoom);
      const tsoMax = this.config.tsoMaxPayload >= 2 * mss && seqGe(this.sndNxt, this.sndMax) ? this.config.tsoMaxPayload - (this.config.tsoMaxPayload % mss) : mss;
      len = Math.min(len, tsoMax);
      if (this.config.tsoDefer && len < tsoMax && len === Math.min(wndRoom, cwndRoom) && this.deferSend(now, len, mss, tsoMax)) {
        this.counters.increment('tsoDeferrals');
        len = 0;
      }
      // sender SWS avoidance (RFC 9293 §3.8.6.2.1): a partial segment only when it is all we
      // have (noDelay) or nothing is in flight
      if (len < mss && len < available && this.flightSize() > 0) len = 0;
      if (len < mss && !this.config.noDelay && this.flightSize() > 0) len = 0;
      if (len > 0) {
        // after an RTO, skip bytes the peer already SACKed
        if (this.rtoRecovery && this.sackOk && this.scoreboard.isSacked(this.sndNxt)) {
          const skipTo = this.scoreboard.sackedEnd(this.sndNxt);
          this.sndNxt = seqGe(skipTo, this.sndMax) ? this.sndMax : skipTo;
          return this.pollData(now);
        }
        const retransmit = seqLt(this.sndNxt, this.sndMax);
        if (retransmit) len = Math.min(len, mss, seqDiff(this.sndMax, this.sndNxt));
        const seg = this.buildData(now, this.sndNxt, bufStart, len, retransmit);
        if (seg) {
          if (!retransmit && this.frtoBudget > 0) this.frtoBudget = Math.max(0, this.frtoBudget - seg.payload.length);
          return seg;
        }
      }
    }

    // 4. FIN, once every byte has been sent
    if (this.userShutdown && !this.finSent && this.sendBuf.length === seqDiff(this.sndNxt, bufStart) &&
      (this.state === TcpState.Established || this.state === TcpState.CloseWait)) {
      this.finSent = true;
      this.finSeq = this.sndNxt;
      this.sndNxt = seqAdd(this.sndNxt, 1);
      this.sndMax = seqMax(this.sndMax, this.sndNxt);
      this.state = this.state === TcpState.Established ? TcpState.FinWait1 : TcpState.LastAck;
      if (!this.timers.isArmed(TcpTimer.Rto)) this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
      return this.segment(now, this.finSeq, TCP_FLAG_FIN | TCP_FLAG_ACK, EMPTY, false);
    }
    // a lost FIN, sent again after an RTO rewound SND.NXT
    if (this.finSent && this.sndNxt === this.finSeq && seqLt(this.sndUna, seqAdd(this.finSeq, 1))) {
      this.sndNxt = seqAdd(this.finSeq, 1);
      this.counters.increment('retransmittedSegments');
      return this.segment(now, this.finSeq, TCP_FLAG_FIN | TCP_FLAG_ACK, EMPTY, false);
    }

    // 5. zero window: probe (RFC 9293 §3.8.6.1) with the octet at SND.UNA, on the persist timer
    // (not the RTO: probes go on as long as the peer answers, and say nothing of congestion)
    if (available > 0 && this.sndWnd === 0 && seqDiff(this.sndMax, this.sndUna) <= 1) {
      if (!this.timers.isArmed(TcpTimer.Persist)) {
        this.timers.stop(TcpTimer.Rto);
        this.timers.set(TcpTimer.Persist, now + this.rtt.rto);
      }
      if (this.probePending) {
        this.probePending = false;
        const seg = this.buildData(now, this.sndUna, bufStart, 1, seqLt(this.sndUna, this.sndMax));
        this.timers.stop(TcpTimer.Rto);
        if (seg) return seg;
      }
    }
    return null;
  }

  /**
   * Whether to hold new data that the window (congestion or peer's) lets out now, `len` bytes,
   * for the ACKs due next: after Linux's tcp_tso_should_defer (net/ipv4/tcp_output.c; read, not
   * copied). Not in recovery or after a timeout; not when `len` reaches the goal of a
   * super-segment (about 1 ms at the pacing rate, 1.2 cwnd / SRTT, as tcp_tso_autosize: at
   * least two segments, at most `tsoMax`) or a third of the window (tcp_tso_win_divisor); only
   * right after a send (1 ms: no burst after a pause) and while an ACK is due within half an RTT
   * (the oldest segment in flight left at least SRTT/2 ago). Fewer, larger packets through the
   * device; the same bytes on the wire (the kernel cuts the super-segment).
   */
  private deferSend(now: Instant, len: number, mss: number, tsoMax: number): boolean {
    if (this.inRecovery || this.rtoRecovery || this.frtoBudget > 0 || this.flightSize() === 0) return false;
    const srtt = this.rtt.srtt;
    if (srtt === null || srtt <= 0) return false;
    const goal = Math.min(tsoMax, Math.max(2 * mss, Math.floor((1.2 * this.cc.cwnd) / srtt / mss) * mss));
    if (len >= goal || 3 * len >= Math.min(this.sndWnd, this.cc.cwnd)) return false;
    if (now - this.lastDataSentAt > 1) return false;
    return now - this.rack.oldestSentAt() >= srtt / 2;
  }

  /** When new data last went out (tsoDefer). */
  private lastDataSentAt = -Infinity;

  private buildData(now: Instant, seq: number, bufStart: number, len: number, retransmit: boolean): OutSegment | null {
    if (len <= 0) return null;
    const off = seqDiff(seq, bufStart);
    if (off < 0 || off >= this.sendBuf.length) return null;
    len = Math.min(len, this.sendBuf.length - off);
    // the SACK blocks this segment carries take room from its payload (RFC 9293 §3.7.1: the
    // MSS counts the data, not the options; the MSS here counts the timestamps and MPTCP's
    // reserve already): a segment with them is one segment, never a super-segment
    const sack = this.sackOk ? this.sackBlocksToSend(this.dataSackBlocks()) : undefined;
    const segMss = sack && sack.length > 0 ? this.sendMss - TCP_OPTLEN_SACK_ALIGNED_BASE - TCP_OPTLEN_SACK_BLOCK * sack.length : this.sendMss;
    if (segMss < this.sendMss) len = Math.min(len, segMss);
    len = Math.min(len, Math.max(1, this.upper.segmentLimit(this.sentOffsetBase + off)));
    const payload = this.sendBuf.peek(off, len);
    const end = seqAdd(seq, len);
    if (retransmit) {
      if (seq === this.sndUna) {
        this.headRtxAt = now;
        this.headRtxSeq = seq;
      }
      this.counters.increment('retransmittedSegments');
      this.counters.increment('retransmittedBytes', len);
      if (this.sackOk) this.scoreboard.markRetransmitted(seq, end);
      this.noteRetransmit(now, seq, end);
      // Karn: a retransmitted segment is never timed
      if (this.timedAt >= 0 && seqLe(seq, this.timedSeq) && seqLt(this.timedSeq, end)) this.timedAt = -1;
    } else {
      this.counters.increment('bytesOut', len);
      this.lastDataSentAt = now;
      if (this.timedAt < 0 && !this.tsOk) {
        this.timedSeq = seq;
        this.timedAt = now;
      }
    }
    // RFC 8985 §6.1: the send log (new data past SND.MAX is new even when `retransmit` says otherwise)
    this.rack.onSent(seq, end, now, retransmit && seqLt(seq, this.sndMax));
    if (seqGe(seq, this.sndNxt) || seqGt(end, this.sndNxt)) this.sndNxt = seqMax(this.sndNxt, end);
    this.sndMax = seqMax(this.sndMax, end);
    if (!this.timers.isArmed(TcpTimer.Rto)) this.timers.set(TcpTimer.Rto, now + this.rtt.rto);
    this.cc.onPacketSent(now, len, this.inFlight());
    // RFC 8985 §7.2: the PTO is (re)started whenever new data goes out
    if (!retransmit) this.armTlp(now);
    const pushed = seqDiff(end, bufStart) === this.sendBuf.length;
    const seg = this.segment(now, seq, TCP_FLAG_ACK | (pushed ? TCP_FLAG_PSH : 0), payload, false, sack);
    if (len > this.sendMss) seg.gsoSize = this.sendMss;
    return seg;
  }

  /** This connection's counters and its parts', by group. */
  counterGroups(): TcpCounterGroups {
    return {
      tcp: this.counters, rtt: this.rtt.counters, cc: this.cc.counters, sack: this.scoreboard.counters,
      reassembly: this.reasm.counters, sendBuffer: this.sendBuf.counters, recvQueue: this.recvQueue.counters,
      rack: this.rack.counters,
    };
  }

  /** For `mptun status` and tests. */
  info() {
    return {
      state: this.state,
      sndUna: this.sndUna, sndNxt: this.sndNxt, sndMax: this.sndMax, sndWnd: this.sndWnd,
      rcvNxt: this.rcvNxt, rcvWnd: this.receiveWindow(),
      mss: this.sendMss, sack: this.sackOk, timestamps: this.tsOk, sndWscale: this.sndWscale, rcvWscale: this.rcvWscale,
      cwnd: this.cc.cwnd, ssthresh: this.cc.ssthresh, srtt: this.rtt.srtt, rto: this.rtt.rto,
      inRecovery: this.inRecovery, rtoRecovery: this.rtoRecovery,
      rackReorderingSeen: this.rack.reorderingSeen, rackReoWndMult: this.rack.reoWndMult, rackMinRtt: Number.isFinite(this.rack.minRtt) ? this.rack.minRtt : null,
      sendQueued: this.sendBuf.length, recvQueued: this.recvQueue.length, outOfOrder: this.reasm.bytesQueued,
    };
  }
}

const EMPTY = Buffer.alloc(0);
