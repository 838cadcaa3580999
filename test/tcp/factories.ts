// Factories for the state-machine tests of the TCP connection (CONVENTIONS.md 11): a scripted
// peer that builds segments from a template with overrides, a fixture that drives one
// TcpConnection in virtual time and records what it puts on the wire, factories per state
// (`connectionIn('FIN-WAIT-2')`, `established()`), and a pair of real connections that talk to
// each other (`establishedPair()`, simultaneous open and close).
//
// Everything asserted goes through the public surface: segments from `pollTransmit`, events
// from `pollEvent`, counters, `state`, `pollTimeout` and `info()`.
import {
  TcpConnection,
  TcpState,
  type Endpoint,
  type OutSegment,
  type TcpConfig,
  type TcpEvent,
} from '../../src/tcp/connection.js';
import {
  TCP_FLAG_ACK,
  TCP_FLAG_FIN,
  TCP_FLAG_PSH,
  TCP_FLAG_RST,
  TCP_FLAG_SYN,
  TCP_FLAG_URG,
  type SackBlock,
  type TcpOptions,
  type TcpRepr,
} from '../../src/tcp/segment.js';
import { seqAdd, seqGt } from '../../src/tcp/seq.js';

export { TcpState };

/** The connection under test: 10.0.0.1:40000. */
export const LOCAL: Endpoint = { addr: Buffer.from([10, 0, 0, 1]), port: 40000 };
/** Its peer: 10.0.0.2:80. */
export const REMOTE: Endpoint = { addr: Buffer.from([10, 0, 0, 2]), port: 80 };
/** Our ISS, 1 KiB below 2**32: the first kilobytes of data wrap the sequence space. */
export const LOCAL_ISS = 0xffff_fc00;
/** The peer's ISS. */
export const PEER_ISS = 3_000_000_000;
/** The peer's timestamp clock at time 0 (RFC 7323: any origin). */
export const PEER_TS_BASE = 500_000;
/** The round-trip time the factories give the handshake: SRTT = 50 ms, so RTO = minRto = 200 ms. */
export const RTT = 50;
export const EMPTY = Buffer.alloc(0);

/** A segment as it went on the wire, copied (the payload of an OutSegment is a view), and when. */
export interface Sent extends TcpRepr {
  at: number;
  gsoSize: number;
}

const FLAG_NAMES: Array<[number, string]> = [
  [TCP_FLAG_SYN, 'SYN'], [TCP_FLAG_RST, 'RST'], [TCP_FLAG_FIN, 'FIN'], [TCP_FLAG_PSH, 'PSH'], [TCP_FLAG_ACK, 'ACK'], [TCP_FLAG_URG, 'URG'],
];

/** The control bits of a segment, readable: 'SYN,ACK', 'RST', 'FIN,ACK', 'PSH,ACK'. */
export function flags(seg: { flags: number }): string {
  return FLAG_NAMES.filter(([bit]) => (seg.flags & bit) !== 0).map(([, name]) => name).join(',');
}

/** The same without PSH, which the tests do not care about. */
export function ctl(seg: { flags: number }): string {
  return flags({ flags: seg.flags & ~TCP_FLAG_PSH });
}

function copyOptions(o: TcpOptions): TcpOptions {
  const out: TcpOptions = {};
  if (o.mss !== undefined) out.mss = o.mss;
  if (o.windowScale !== undefined) out.windowScale = o.windowScale;
  if (o.sackPermitted !== undefined) out.sackPermitted = o.sackPermitted;
  if (o.sackBlocks !== undefined && o.sackBlocks.length > 0) out.sackBlocks = o.sackBlocks.map((b) => ({ start: b.start, end: b.end }));
  if (o.timestamps !== undefined) out.timestamps = { tsVal: o.timestamps.tsVal, tsEcr: o.timestamps.tsEcr };
  return out;
}

function copySent(seg: OutSegment, at: number): Sent {
  return { ...seg, options: copyOptions(seg.options), payload: Buffer.from(seg.payload), at };
}

/** Deterministic bytes: byte i is (seed + i) & 0xff. */
export function bytes(n: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i) & 0xff;
  return b;
}

/** What a test may override in the template segment. */
export interface SegOverrides {
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  urgent?: number;
  /** Replaces the template's options entirely. */
  options?: TcpOptions;
  /** The TSval of the template's Timestamps option. */
  tsVal?: number;
  /** SACK blocks added to the template's options. */
  sack?: SackBlock[];
  payload?: Buffer;
}

export interface PeerOptions {
  iss?: number;
  /** The MSS the peer announces; null: no MSS option. */
  mss?: number | null;
  /** The window shift the peer announces; null: no Window Scale option (no scaling either way). */
  windowScale?: number | null;
  sackPermitted?: boolean;
  timestamps?: boolean;
  /** The window field of the peer's segments (after the SYN, in units of 2**windowScale). */
  window?: number;
}

/**
 * The remote end, scripted by the test. It remembers its own SND.NXT (`seq`), what it has
 * received from us in order (`ack`, its RCV.NXT) and our last TSval (echoed as TSecr), so that
 * `peer.seg()` is the segment a well-behaved peer would send next; overrides make it anything else.
 */
export class Peer {
  readonly iss: number;
  seq: number;
  /** The next sequence number the peer expects from us: the default SEG.ACK. */
  ack = 0;
  window: number;
  readonly mss: number | null;
  readonly windowScale: number | null;
  readonly sackPermitted: boolean;
  readonly timestamps: boolean;
  /** Our last TSval seen on the wire. */
  tsEcr = 0;
  /** Our ISS, once our SYN was seen. */
  irs: number | null = null;

  constructor(private readonly clock: () => number, opts: PeerOptions = {}) {
    this.iss = (opts.iss ?? PEER_ISS) >>> 0;
    this.seq = this.iss;
    this.window = opts.window ?? 65535;
    this.mss = opts.mss === undefined ? 1460 : opts.mss;
    this.windowScale = opts.windowScale === undefined ? 0 : opts.windowScale;
    this.sackPermitted = opts.sackPermitted ?? true;
    this.timestamps = opts.timestamps ?? true;
  }

  tsVal(): number {
    return (PEER_TS_BASE + Math.floor(this.clock())) >>> 0;
  }

  /** The template segment: <SEQ=peer.seq><ACK=peer.ack><CTL=ACK>, the peer's window and timestamps. */
  seg(o: SegOverrides = {}): TcpRepr {
    let options: TcpOptions;
    if (o.options) {
      options = o.options;
    } else {
      options = {};
      if (this.timestamps && this.irs !== null) options.timestamps = { tsVal: o.tsVal ?? this.tsVal(), tsEcr: this.tsEcr };
    }
    if (o.sack) options = { ...options, sackBlocks: o.sack };
    return {
      srcPort: REMOTE.port,
      dstPort: LOCAL.port,
      seq: (o.seq ?? this.seq) >>> 0,
      ack: (o.ack ?? this.ack) >>> 0,
      flags: o.flags ?? TCP_FLAG_ACK,
      window: o.window ?? this.window,
      urgent: o.urgent ?? 0,
      options,
      payload: o.payload ?? EMPTY,
    };
  }

  private synOptions(): TcpOptions {
    const options: TcpOptions = {};
    if (this.mss !== null) options.mss = this.mss;
    if (this.windowScale !== null) options.windowScale = this.windowScale;
    if (this.sackPermitted) options.sackPermitted = true;
    if (this.timestamps) options.timestamps = { tsVal: this.tsVal(), tsEcr: this.tsEcr };
    return options;
  }

  /** The peer's SYN (a passive open on our side, or a simultaneous open). Sets seq to ISS+1. */
  syn(o: SegOverrides = {}): TcpRepr {
    this.seq = seqAdd(this.iss, 1);
    return this.seg({ seq: this.iss, ack: 0, flags: TCP_FLAG_SYN, window: Math.min(this.window, 65535), options: this.synOptions(), ...o });
  }

  /** The peer's SYN/ACK to our SYN. Sets seq to ISS+1. */
  synAck(o: SegOverrides = {}): TcpRepr {
    this.seq = seqAdd(this.iss, 1);
    return this.seg({ seq: this.iss, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, window: Math.min(this.window, 65535), options: this.synOptions(), ...o });
  }

  /** A data segment at peer.seq; advances peer.seq. */
  data(payload: Buffer, o: SegOverrides = {}): TcpRepr {
    const s = this.seg({ flags: TCP_FLAG_ACK | TCP_FLAG_PSH, payload, ...o });
    if (o.seq === undefined) this.seq = seqAdd(this.seq, payload.length);
    return s;
  }

  /** A FIN (with ACK) at peer.seq; advances peer.seq past it. */
  fin(o: SegOverrides = {}): TcpRepr {
    const s = this.seg({ flags: TCP_FLAG_FIN | TCP_FLAG_ACK, ...o });
    if (o.seq === undefined) this.seq = seqAdd(this.seq, 1 + (o.payload?.length ?? 0));
    return s;
  }

  /** A RST at RCV.NXT of our side (what an honest peer sends). */
  rst(o: SegOverrides = {}): TcpRepr {
    return this.seg({ flags: TCP_FLAG_RST, ack: 0, options: {}, window: 0, ...o });
  }

  /** Sees a segment we sent: advances the peer's RCV.NXT over in-order data, SYN and FIN. */
  observe(s: Sent): void {
    if (s.flags & TCP_FLAG_RST) return;
    if (s.options.timestamps) this.tsEcr = s.options.timestamps.tsVal;
    if (s.flags & TCP_FLAG_SYN) {
      this.irs = s.seq;
      this.ack = seqAdd(s.seq, 1);
      return;
    }
    const len = s.payload.length + ((s.flags & TCP_FLAG_FIN) ? 1 : 0);
    const end = seqAdd(s.seq, len);
    // in order, or overlapping what the peer has
    if (len > 0 && !seqGt(s.seq, this.ack) && seqGt(end, this.ack)) this.ack = end;
  }
}

/** One TcpConnection driven in virtual time, with a scripted peer. */
export class Fixture {
  now = 0;
  readonly conn: TcpConnection;
  readonly peer: Peer;
  /** Everything the connection sent, in order. */
  readonly wire: Sent[] = [];

  constructor(config: Partial<TcpConfig> = {}, peer: PeerOptions = {}, iss = LOCAL_ISS) {
    this.conn = new TcpConnection(LOCAL, REMOTE, config, iss);
    this.peer = new Peer(() => this.now, peer);
  }

  get state(): TcpState {
    return this.conn.state;
  }

  /** What the connection sends now: pollTransmit until null. The peer observes each segment. */
  flush(): Sent[] {
    const out: Sent[] = [];
    for (let i = 0; i < 100_000; i++) {
      const seg = this.conn.pollTransmit(this.now);
      if (!seg) return out;
      const s = copySent(seg, this.now);
      out.push(s);
      this.wire.push(s);
      this.peer.observe(s);
    }
    throw new Error('pollTransmit never returned null');
  }

  /** A segment arrives from the peer; returns what the connection sends in reply. */
  input(seg: TcpRepr): Sent[] {
    this.conn.handleSegment(this.now, seg);
    return this.flush();
  }

  /** Virtual time passes: every deadline reached fires in order; returns what was sent meanwhile. */
  advance(ms: number): Sent[] {
    return this.advanceTo(this.now + ms);
  }

  advanceTo(until: number): Sent[] {
    const out: Sent[] = [];
    for (let i = 0; i < 100_000; i++) {
      const t = this.conn.pollTimeout();
      if (t === null || t > until) {
        this.now = Math.max(this.now, until);
        return out;
      }
      this.now = Math.max(this.now, t);
      this.conn.handleTimeout(this.now);
      out.push(...this.flush());
    }
    throw new Error('a timer keeps firing at the same instant');
  }

  /** Writes bytes and sends what may be sent. */
  write(data: Buffer): Sent[] {
    this.conn.write(data);
    return this.flush();
  }

  /** Every event since the last call. */
  events(): TcpEvent[] {
    const out: TcpEvent[] = [];
    for (let e = this.conn.pollEvent(); e; e = this.conn.pollEvent()) out.push(e);
    return out;
  }

  /** Every byte readable now. */
  readAll(): Buffer {
    const parts: Buffer[] = [];
    for (let b = this.conn.read(); b; b = this.conn.read()) parts.push(Buffer.from(b));
    return Buffer.concat(parts);
  }

  /** The sequence number of our n-th data byte (offset 0 = ISS+1). */
  ourSeq(offset: number): number {
    return seqAdd(LOCAL_ISS, 1 + offset);
  }

  /** The peer's sequence number of its n-th data byte. */
  peerSeq(offset: number): number {
    return seqAdd(this.peer.iss, 1 + offset);
  }
}

/** Active open: the SYN is on the wire (returned as `syn`), nothing answered yet. */
export function synSent(config: Partial<TcpConfig> = {}, peer: PeerOptions = {}): Fixture & { syn: Sent } {
  const f = new Fixture(config, peer);
  f.conn.connect(f.now);
  const [syn] = f.flush();
  return Object.assign(f, { syn: syn! });
}

/** Passive open: the peer's SYN was accepted and our SYN/ACK is on the wire (`synAck`). */
export function synReceived(config: Partial<TcpConfig> = {}, peer: PeerOptions = {}): Fixture & { synAck: Sent } {
  const f = new Fixture(config, peer);
  f.conn.acceptSyn(f.now, f.peer.syn());
  const [synAck] = f.flush();
  return Object.assign(f, { synAck: synAck! });
}

/**
 * ESTABLISHED by an active open whose SYN/ACK came back after RTT ms (so SRTT = RTT and the
 * RTO is at its 200 ms floor). The handshake's events are consumed.
 */
export function established(config: Partial<TcpConfig> = {}, peer: PeerOptions = {}): Fixture {
  const f = synSent(config, peer);
  f.advance(RTT);
  f.input(f.peer.synAck());
  f.events();
  return f;
}

/** ESTABLISHED by a passive open (acceptSyn, SYN/ACK, the peer's ACK). */
export function acceptedSocket(config: Partial<TcpConfig> = {}, peer: PeerOptions = {}): Fixture {
  const f = synReceived(config, peer);
  f.advance(RTT);
  f.input(f.peer.seg());
  f.events();
  return f;
}

export type StateName =
  | 'SYN-SENT' | 'SYN-RECEIVED' | 'ESTABLISHED' | 'FIN-WAIT-1' | 'FIN-WAIT-2' | 'CLOSE-WAIT'
  | 'CLOSING' | 'LAST-ACK' | 'TIME-WAIT';

/**
 * A connection in `state`, reached the way RFC 9293 §3.5/§3.6 reach it, with the events of the
 * way there consumed:
 * - FIN-WAIT-1: shutdown, our FIN sent, not acknowledged;
 * - FIN-WAIT-2: and the peer acknowledged our FIN;
 * - CLOSE-WAIT: the peer's FIN received;
 * - LAST-ACK: and our FIN sent;
 * - CLOSING: our FIN sent, then the peer's FIN that does not acknowledge ours;
 * - TIME-WAIT: FIN-WAIT-2, then the peer's FIN.
 */
export function connectionIn(state: StateName, config: Partial<TcpConfig> = {}, peer: PeerOptions = {}): Fixture {
  let f: Fixture;
  switch (state) {
    case 'SYN-SENT':
      f = synSent(config, peer);
      break;
    case 'SYN-RECEIVED':
      f = synReceived(config, peer);
      break;
    case 'ESTABLISHED':
      f = established(config, peer);
      break;
    case 'FIN-WAIT-1':
      f = established(config, peer);
      f.conn.shutdown();
      f.flush();
      break;
    case 'FIN-WAIT-2':
      f = connectionIn('FIN-WAIT-1', config, peer);
      f.advance(1);
      f.input(f.peer.seg());
      break;
    case 'CLOSE-WAIT':
      f = established(config, peer);
      f.advance(1);
      f.input(f.peer.fin());
      break;
    case 'LAST-ACK':
      f = connectionIn('CLOSE-WAIT', config, peer);
      f.conn.shutdown();
      f.flush();
      break;
    case 'CLOSING': {
      f = connectionIn('FIN-WAIT-1', config, peer);
      f.advance(1);
      // the peer's FIN crossed ours: it acknowledges everything before our FIN, not the FIN
      f.input(f.peer.fin({ ack: seqAdd(f.peer.ack, -1) }));
      break;
    }
    case 'TIME-WAIT':
      f = connectionIn('FIN-WAIT-2', config, peer);
      f.advance(1);
      f.input(f.peer.fin());
      break;
  }
  f.events();
  if (f.state !== state) throw new Error(`connectionIn(${state}) reached ${f.state}`);
  return f;
}

/** Two real connections on a virtual wire: `a` at LOCAL, `b` at REMOTE. */
export class Pair {
  now = 0;
  readonly a: TcpConnection;
  readonly b: TcpConnection;
  /** Every segment that went on the wire, with its direction. */
  readonly log: Array<{ from: 'a' | 'b'; seg: Sent }> = [];
  /** Return false to lose a segment. */
  deliver: (from: 'a' | 'b', seg: Sent) => boolean = () => true;

  constructor(configA: Partial<TcpConfig> = {}, configB: Partial<TcpConfig> = configA, issA = LOCAL_ISS, issB = PEER_ISS) {
    this.a = new TcpConnection(LOCAL, REMOTE, configA, issA);
    this.b = new TcpConnection(REMOTE, LOCAL, configB, issB);
  }

  /** Collects what `from` sends now, without delivering it. */
  take(from: 'a' | 'b'): Sent[] {
    const conn = from === 'a' ? this.a : this.b;
    const out: Sent[] = [];
    for (let seg = conn.pollTransmit(this.now); seg; seg = conn.pollTransmit(this.now)) {
      const s = copySent(seg, this.now);
      out.push(s);
      this.log.push({ from, seg: s });
    }
    return out;
  }

  /** Hands segments sent by `from` to the other end (subject to `deliver`). */
  give(from: 'a' | 'b', segs: Sent[]): void {
    const to = from === 'a' ? this.b : this.a;
    for (const s of segs) if (this.deliver(from, s)) to.handleSegment(this.now, s);
  }

  /** Exchanges segments (zero delay) until neither side has anything to send. */
  settle(): void {
    for (let i = 0; i < 10_000; i++) {
      const fromA = this.take('a');
      const fromB = this.take('b');
      if (fromA.length === 0 && fromB.length === 0) return;
      this.give('a', fromA);
      this.give('b', fromB);
    }
    throw new Error('the pair never settles');
  }

  /** Virtual time passes: timers fire in order, segments are exchanged after each. */
  run(ms: number): void {
    const until = this.now + ms;
    this.settle();
    for (let i = 0; i < 100_000; i++) {
      const ta = this.a.pollTimeout();
      const tb = this.b.pollTimeout();
      const t = Math.min(ta ?? Infinity, tb ?? Infinity);
      if (t > until) {
        this.now = until;
        return;
      }
      this.now = Math.max(this.now, t);
      if (ta !== null && ta <= this.now) this.a.handleTimeout(this.now);
      if (tb !== null && tb <= this.now) this.b.handleTimeout(this.now);
      this.settle();
    }
    throw new Error('a timer keeps firing at the same instant');
  }

  events(which: 'a' | 'b'): TcpEvent[] {
    const conn = which === 'a' ? this.a : this.b;
    const out: TcpEvent[] = [];
    for (let e = conn.pollEvent(); e; e = conn.pollEvent()) out.push(e);
    return out;
  }
}

/** Two connections after a three-way handshake between them (a opened actively), events consumed. */
export function establishedPair(configA: Partial<TcpConfig> = {}, configB: Partial<TcpConfig> = configA): Pair {
  const p = new Pair(configA, configB);
  p.a.connect(p.now);
  const [syn] = p.take('a');
  p.b.acceptSyn(p.now, syn!);
  p.settle();
  p.events('a');
  p.events('b');
  if (p.a.state !== TcpState.Established || p.b.state !== TcpState.Established) {
    throw new Error(`establishedPair reached ${p.a.state} / ${p.b.state}`);
  }
  return p;
}

