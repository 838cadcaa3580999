// The fuzzer's worlds: the real node under test (the relay, or an MPTCP listener) between
// scripted peers that run the project's own stacks (an app's TCP, a destination's or a client's
// MPTCP), in virtual time. The peers bring the node through handshakes into deep states
// (MP_CAPABLE, joins, data both ways, DATA_FIN, fastclose, fallback); on its way to the node
// every peer packet may be mutated (mutate.ts), dropped, duplicated or delayed (reordered), and
// crafted packets are injected. After every input and every timeout the invariants are checked
// (invariants.ts); the first violation ends the case with its seed and step.
//
// One case is one seed: `runCase({ seed })` replays exactly.
import type { DeviceOutput, Instant } from '../../src/ip/sansio.js';
import { parseIpAddress, formatIpAddress } from '../../src/ip/address.js';
import { TcpStack, TupleInUseError } from '../../src/tcp/stack.js';
import type { TcpConnection } from '../../src/tcp/connection.js';
import { TCP_FLAG_ACK, TCP_FLAG_SYN } from '../../src/tcp/segment.js';
import { MptcpStack, type MptcpStackOptions } from '../../src/mptcp/stack.js';
import type { MptcpConnection } from '../../src/mptcp/protocol.js';
import { Relay } from '../../src/appliance/relay.js';
import { Rng } from '../sim/rng.js';
import { craftSegment } from '../mptcp/simhost.js';
import { Knowledge, mutate, pick, randomMptcpOption } from './mutate.js';
import { OutputChecker, checkDeadline } from './invariants.js';

const addr = (s: string): Buffer => parseIpAddress(s).bytes;

/** The node under test, as the engine drives it. */
export interface FuzzTarget {
  readonly mtu: number;
  readonly headroom: number;
  handleInput(now: Instant, packet: Buffer): void;
  handleTimeout(now: Instant): void;
  /** The engine's onTick: process, events, the applications. */
  tick(now: Instant): void;
  pollOutput(now: Instant): DeviceOutput | null;
  pollTimeout(): Instant | null;
  /** What exceeds its bound (connections, subflows, buffered bytes, mapping tables), or null. */
  bounds(): string | null;
  /** Counters of the states reached. */
  states(): Record<string, number>;
}

/** A scripted peer: a stack of the project with a small application. */
interface Peer {
  owns(dst: Buffer): boolean;
  handleInput(now: Instant, packet: Buffer): void;
  handleTimeout(now: Instant): void;
  tick(now: Instant): void;
  pollOutput(now: Instant): Buffer | null;
  pollTimeout(): Instant | null;
}

export interface Finding {
  seed: number;
  step: number;
  kind: 'exception' | 'output' | 'deadline' | 'bounds' | 'peer-exception';
  message: string;
}

export interface CaseResult {
  seed: number;
  world: string;
  /** Inputs fed to the node (packets, mutated or not). */
  packets: number;
  mutated: number;
  steps: number;
  states: Record<string, number>;
  finding: Finding | null;
}

export interface CaseOptions {
  seed: number;
  /** Inputs to the node at most (default 1500). */
  packets?: number;
  /** Per peer packet: the chance it is mutated (default 0.25). */
  mutateRate?: number;
  /** 'relay', 'listener', or chosen by the seed (default). */
  world?: 'relay' | 'listener';
  /** A line per step, for a replay. */
  trace?: (line: string) => void;
  /** Tests of the fuzzer itself: wraps the node (a broken one must be caught). */
  wrapTarget?: (t: FuzzTarget) => FuzzTarget;
}

const MTU = 1500;
const MAX_CONNS = 200;
const MAX_TCP = 400;
const MAX_SUBFLOWS = 32;
const MAX_MAPPINGS = 4096;
const MAX_BUFFERED = 64 << 20;

function stackOptions(rng: Rng, mtu: number, extra: Partial<MptcpStackOptions> = {}): MptcpStackOptions {
  return {
    random: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff;
      return b;
    },
    isnSecret: Buffer.from('fuzz secret'),
    mtu,
    ...extra,
  };
}

function mptcpBounds(stack: MptcpStack): string | null {
  if (stack.connections.size > MAX_CONNS) return `${stack.connections.size} MPTCP connections`;
  if (stack.tcp.size > MAX_TCP) return `${stack.tcp.size} TCP connections under MPTCP`;
  let buffered = 0;
  for (const c of stack.connections) {
    if (c.subflows.length > MAX_SUBFLOWS) return `a connection holds ${c.subflows.length} subflows`;
    buffered += c.unsent;
    for (const sf of c.subflows) {
      if (sf.tx.size > MAX_MAPPINGS || sf.rx.size > MAX_MAPPINGS) return `a subflow holds ${sf.tx.size}/${sf.rx.size} mappings`;
    }
  }
  for (const t of stack.tcp.all()) buffered += t.unacknowledged + t.readable;
  if (buffered > MAX_BUFFERED) return `${buffered} bytes buffered`;
  return null;
}

function addStates(into: Record<string, number>, from: Record<string, number>, names: Record<string, string>): void {
  for (const [state, counter] of Object.entries(names)) into[state] = (into[state] ?? 0) + (from[counter] ?? 0);
}

const MPTCP_STATES = {
  joined: 'MPJoinAckRx', joinedOut: 'MPJoinSynAckRx', dataFinRx: 'DataFinRx', dataFinTx: 'DataFinTx', fastcloseRx: 'MPFastcloseRx',
  fallbackLate: 'FallbackLate', addAddr: 'AddAddr', rmAddr: 'RmAddr', prio: 'MPPrioRx', mpFail: 'MPFailRx', mpRst: 'MPRstRx',
  infiniteMap: 'InfiniteMapRx', reinjections: 'Reinjections', dataCsumErr: 'DataCsumErr', dssNotMatching: 'DSSNotMatching',
};

// ------------------------------------------------------------------ the relay's world

const APP4 = addr('198.18.0.1');
const APP6 = addr('fd00:99::1');
const DST4 = [addr('192.0.2.10'), addr('192.0.2.11')];
const DST6 = [addr('2001:db8::10'), addr('2001:db8::11')];

class RelayTarget implements FuzzTarget {
  readonly headroom: number;
  readonly relay: Relay;
  /**
   * `offload`: as `mptun up` runs with the device's offloads (appliance.ts): a virtio-net
   * header's headroom, checksums left partial, TSO super-segments of up to 64000 bytes.
   */
  constructor(rng: Rng, fullmesh: boolean, v6: boolean, offload: boolean, readonly mtu: number) {
    this.headroom = offload ? 10 : 0;
    const paths = [{ address: addr('198.18.1.2'), backup: false, up: true }, { address: addr('198.18.2.2'), backup: rng.chance(0.3), up: true }];
    if (v6) paths.push({ address: addr('fd00:1::2'), backup: false, up: true });
    this.relay = new Relay({
      stack: stackOptions(rng, mtu, {
        mptcp: { checksum: rng.chance(0.3) },
        ...(offload ? { headroom: 10, checksumOffload: true, tcp: { tsoMaxPayload: 64000 } } : {}),
      }),
      paths, fullmesh, maxSubflows: 4, maxPending: 16,
    });
  }
  handleInput(now: Instant, packet: Buffer): void {
    this.relay.handleInput(now, 0, packet, false);
  }
  handleTimeout(now: Instant): void {
    this.relay.handleTimeout(now);
  }
  tick(now: Instant): void {
    this.relay.process(now);
  }
  pollOutput(now: Instant): DeviceOutput | null {
    return this.relay.pollOutput(now);
  }
  pollTimeout(): Instant | null {
    return this.relay.pollTimeout();
  }
  bounds(): string | null {
    if (this.relay.flowCount > MAX_CONNS) return `${this.relay.flowCount} flows`;
    if (this.relay.host.size > MAX_TCP) return `${this.relay.host.size} host connections`;
    let buffered = 0;
    for (const t of this.relay.host.all()) buffered += t.unacknowledged + t.readable;
    if (buffered > MAX_BUFFERED) return `${buffered} bytes buffered on the host side`;
    return mptcpBounds(this.relay.upstream);
  }
  states(): Record<string, number> {
    const c = this.relay.counters.snapshot();
    const s: Record<string, number> = {
      flows: c['flowsRequested'] ?? 0, established: c['flowsEstablished'] ?? 0, fallback: c['flowsFallback'] ?? 0,
      refused: c['flowsRefused'] ?? 0, closed: c['flowsClosed'] ?? 0, resetByApp: c['flowsResetByApp'] ?? 0, resetUpstream: c['flowsResetUpstream'] ?? 0,
    };
    addStates(s, this.relay.upstream.connectionCounters().mptcp, MPTCP_STATES);
    return s;
  }
}

/** The apps behind the relay: a TCP stack that connects to destinations, writes, reads, closes or resets. */
class AppPeer implements Peer {
  readonly stack: TcpStack;
  readonly conns: Array<{ tcp: TcpConnection; left: number; abortAt: number | null; done: boolean }> = [];
  constructor(private readonly rng: Rng, trustChecksums = false) {
    this.stack = new TcpStack(stackOptions(rng, MTU, { trustChecksums }));
  }
  owns(dst: Buffer): boolean {
    return dst.equals(APP4) || dst.equals(APP6);
  }
  open(now: Instant, v6: boolean): void {
    const dst = v6 ? pick(this.rng, DST6) : DST4[0]!;
    // an app's kernel never picks a port its own connection to the same place still holds: the
    // stack refuses it (TupleInUseError), so draw again (a collision is rare: the draws of every
    // case without one are unchanged, and its replay with them)
    let tcp: TcpConnection | undefined;
    for (let tries = 0; tcp === undefined; tries++) {
      try {
        tcp = this.stack.connect(now, { addr: v6 ? APP6 : APP4, port: 20000 + this.rng.int(40000) }, { addr: dst, port: 80 });
      } catch (e) {
        if (!(e instanceof TupleInUseError) || tries >= 100) throw e;
      }
    }
    const left = pick(this.rng, [0, 100, 5000, 70000, 300000]);
    this.conns.push({ tcp, left, abortAt: this.rng.chance(0.15) ? now + this.rng.int(3000) : null, done: false });
  }
  handleInput(now: Instant, packet: Buffer): void {
    this.stack.handleInput(now, 0, packet, false);
  }
  handleTimeout(now: Instant): void {
    this.stack.handleTimeout(now);
  }
  tick(now: Instant): void {
    while (this.stack.pollEvent());
    for (const c of this.conns) {
      if (c.done) continue;
      if (c.abortAt !== null && now >= c.abortAt) {
        c.tcp.abort(now);
        c.done = true;
      } else {
        while (c.tcp.read());
        while (c.left > 0) {
          const n = c.tcp.write(Buffer.alloc(Math.min(c.left, 16384), 0x61));
          if (n === 0) break;
          c.left -= n;
        }
        if (c.left === 0) {
          c.tcp.shutdown();
          c.done = true;
        }
      }
      this.stack.touch(c.tcp);
    }
    for (let i = this.conns.length - 1; i >= 0; i--) if (this.conns[i]!.done && this.conns[i]!.tcp.readEnded) this.conns.splice(i, 1);
  }
  pollOutput(now: Instant): Buffer | null {
    return this.stack.pollOutput(now)?.buffer ?? null;
  }
  pollTimeout(): Instant | null {
    return this.stack.pollTimeout();
  }
}

/** An MPTCP peer with an echo-and-talk application: the relay's destinations, or the listener's client. */
class MptcpPeer implements Peer {
  readonly stack: MptcpStack;
  private readonly apps = new Map<MptcpConnection, { extra: number; pending: Buffer[]; abortAt: number | null; shut: boolean }>();
  constructor(private readonly rng: Rng, private readonly addrs: Buffer[], listen: boolean, trustChecksums = false, mtu = MTU) {
    this.stack = new MptcpStack(stackOptions(rng, mtu, { mptcp: { checksum: rng.chance(0.3) }, trustChecksums }));
    if (listen) this.stack.listen(() => true);
  }
  owns(dst: Buffer): boolean {
    return this.addrs.some((a) => a.equals(dst));
  }
  adopt(conn: MptcpConnection, now: Instant): void {
    this.apps.set(conn, { extra: pick(this.rng, [0, 1000, 50000, 200000]), pending: [], abortAt: this.rng.chance(0.1) ? now + this.rng.int(4000) : null, shut: false });
  }
  handleInput(now: Instant, packet: Buffer): void {
    this.stack.handleInput(now, 0, packet, false);
  }
  handleTimeout(now: Instant): void {
    this.stack.handleTimeout(now);
  }
  tick(now: Instant): void {
    this.stack.process(now);
    for (let e = this.stack.pollEvent(); e; e = this.stack.pollEvent()) {
      if (!this.apps.has(e.conn) && e.event.type !== 'closed') this.adopt(e.conn, now);
      if (e.event.type === 'closed') this.apps.delete(e.conn);
    }
    for (const [conn, a] of this.apps) {
      if (a.abortAt !== null && now >= a.abortAt) {
        conn.abort(now);
        this.apps.delete(conn);
        continue;
      }
      for (let b = conn.read(); b; b = conn.read()) a.pending.push(b);
      if (a.extra > 0) {
        a.pending.push(Buffer.alloc(a.extra, 0x62));
        a.extra = 0;
      }
      while (a.pending.length > 0) {
        const b = a.pending[0]!;
        const n = conn.write(b);
        if (n < b.length) {
          a.pending[0] = b.subarray(n);
          break;
        }
        a.pending.shift();
      }
      if (conn.readEnded && a.pending.length === 0 && !a.shut) {
        a.shut = true;
        conn.shutdown();
      }
    }
    this.stack.process(now);
  }
  pollOutput(now: Instant): Buffer | null {
    return this.stack.pollOutput(now)?.buffer ?? null;
  }
  pollTimeout(): Instant | null {
    return this.stack.pollTimeout();
  }
}

// ------------------------------------------------------------------ the listener's world

const SRV = [addr('10.0.0.1'), addr('10.0.1.1')];
const CLI = [addr('10.1.0.2'), addr('10.1.1.2')];
const SRV6 = [addr('fd00:10::1'), addr('fd00:11::1')];
const CLI6 = [addr('fd00:20::2'), addr('fd00:21::2')];

class ListenerTarget implements FuzzTarget {
  readonly headroom = 0;
  readonly node: MptcpPeer;
  constructor(rng: Rng, readonly mtu: number) {
    this.node = new MptcpPeer(rng, [...SRV, ...SRV6], true, false, mtu);
  }
  handleInput(now: Instant, packet: Buffer): void {
    this.node.handleInput(now, packet);
  }
  handleTimeout(now: Instant): void {
    this.node.handleTimeout(now);
  }
  tick(now: Instant): void {
    this.node.tick(now);
  }
  pollOutput(now: Instant): DeviceOutput | null {
    return this.node.stack.pollOutput(now);
  }
  pollTimeout(): Instant | null {
    return this.node.pollTimeout();
  }
  bounds(): string | null {
    return mptcpBounds(this.node.stack);
  }
  states(): Record<string, number> {
    const c = this.node.stack.counters.snapshot();
    const s: Record<string, number> = {
      established: c['connectionsAccepted'] ?? 0, fallback: c['plainTcpAccepted'] ?? 0, joinsAccepted: c['joinsAccepted'] ?? 0,
      joinNoToken: c['MPJoinNoTokenFound'] ?? 0, joinNotEstablished: c['MPJoinNotEstablished'] ?? 0,
    };
    addStates(s, this.node.stack.connectionCounters().mptcp, MPTCP_STATES);
    return s;
  }
}

// ------------------------------------------------------------------ the driver

interface InFlight {
  at: Instant;
  order: number;
  /** -1: the node; else the peer's index. */
  to: number;
  packet: Buffer;
}

/** Runs one case: one seed, one world, up to `packets` inputs to the node. */
export function runCase(opts: CaseOptions): CaseResult {
  const seed = opts.seed >>> 0;
  const rng = new Rng(seed);
  const world = opts.world ?? (rng.chance(0.6) ? 'relay' : 'listener');
  const maxPackets = opts.packets ?? 1500;
  const mutateRate = opts.mutateRate ?? 0.25;
  const trace = opts.trace ?? null;
  const knowledge = new Knowledge();
  const peers: Peer[] = [];
  let target: FuzzTarget;
  let app: AppPeer | null = null;
  let client: MptcpPeer | null = null;
  let relayTarget: RelayTarget | null = null;
  const v6 = rng.chance(0.3);
  // the node's MTU: its output must fit it whatever the peers' MSS says
  const mtu = pick(rng, [MTU, MTU, MTU, 1400, 1280, 576]);
  const srv = world === 'listener' && v6 ? SRV6 : SRV;
  const cli = world === 'listener' && v6 ? CLI6 : CLI;
  if (world === 'relay') {
    const offload = rng.chance(0.3);
    relayTarget = new RelayTarget(rng.fork(), rng.chance(0.5), v6, offload, mtu);
    target = relayTarget;
    // the node's checksums are partial with offloads: its peers take them as the device would
    app = new AppPeer(rng.fork(), offload);
    peers.push(app, new MptcpPeer(rng.fork(), [...DST4, ...DST6], true, offload));
    knowledge.addresses = [...DST4, ...(v6 ? DST6 : [])];
  } else {
    target = new ListenerTarget(rng.fork(), mtu);
    client = new MptcpPeer(rng.fork(), [...CLI, ...CLI6], false);
    peers.push(client);
    knowledge.addresses = [...cli, ...srv];
  }
  if (opts.wrapTarget) target = opts.wrapTarget(target);
  const checker = new OutputChecker(target.mtu, target.headroom);
  const mrng = rng.fork();
  const inflight: InFlight[] = [];
  let order = 0;
  let now = 0;
  let step = 0;
  let packets = 0;
  let mutated = 0;
  let opened = 0;
  const maxOpen = 2 + rng.int(6);
  let nextOpen = 0;
  let nextInject = 50 + rng.int(500);
  const endAt = 60_000 + rng.int(60_000);
  let finding: Finding | null = null;
  const fail = (kind: Finding['kind'], message: string) => {
    finding = { seed, step, kind, message };
    trace?.(`step ${step} t=${now}: FINDING ${kind}: ${message}`);
  };
  const log = (line: string) => trace?.(`step ${step} t=${now.toFixed(3)}: ${line}`);
  const delay = () => 1 + mrng.int(8) + (mrng.chance(0.05) ? mrng.int(200) : 0);

  const toNode = (packet: Buffer, at: Instant) => inflight.push({ at, order: order++, to: -1, packet });
  const fromPeer = (packet: Buffer) => {
    knowledge.learn(packet);
    if (mrng.chance(0.01)) return;
    if (mrng.chance(mutateRate)) {
      const m = mutate(mrng, knowledge, packet);
      mutated++;
      for (const p of m.packets) toNode(p, now + delay());
      if (trace) log(`mutate ${describe(packet)}: ${m.what}`);
      return;
    }
    toNode(packet, now + delay());
  };
  const drainPeers = (): boolean => {
    try {
      for (const p of peers) for (let b = p.pollOutput(now); b; b = p.pollOutput(now)) fromPeer(Buffer.from(b));
      return true;
    } catch (e) {
      fail('peer-exception', `a peer's pollOutput threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return false;
    }
  };
  const pollNode = (): DeviceOutput | null | false => {
    try {
      return target.pollOutput(now);
    } catch (e) {
      fail('exception', `pollOutput threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return false;
    }
  };
  /** Drains the node's output, checking every packet. */
  const drainNode = (): boolean => {
    for (let o = pollNode(); ; o = pollNode()) {
      if (o === false) return false;
      if (o === null) return true;
      const bad = checker.check(o);
      if (bad) {
        fail('output', bad);
        return false;
      }
      const pkt = Buffer.from(o.buffer.subarray(target.headroom));
      knowledge.learn(pkt);
      const v = pkt[0]! >>> 4;
      const dst = v === 4 ? pkt.subarray(16, 20) : pkt.subarray(24, 40);
      const to = peers.findIndex((p) => p.owns(dst));
      if (to < 0 || mrng.chance(0.01)) continue;
      inflight.push({ at: now + delay(), order: order++, to, packet: pkt });
    }
  };
  const guard = (what: string, fn: () => void, kind: Finding['kind'] = 'exception'): boolean => {
    try {
      fn();
      return true;
    } catch (e) {
      fail(kind, `${what} threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return false;
    }
  };
  /** Crafted packets at the node: SYNs of every kind, segments with random MPTCP options to live ports. */
  const inject = () => {
    const syn = mrng.chance(0.5);
    let src: Buffer;
    let dst: Buffer;
    if (world === 'relay') {
      if (mrng.chance(0.5)) {
        src = mrng.chance(0.8) ? APP4 : APP6;
        dst = src.length === 4 ? pick(mrng, DST4) : pick(mrng, DST6);
      } else {
        const paths = relayTarget!.relay.paths;
        const p = pick(mrng, paths).address;
        src = p.length === 4 ? pick(mrng, DST4) : pick(mrng, DST6);
        dst = p;
      }
    } else {
      src = pick(mrng, cli);
      dst = pick(mrng, srv);
    }
    const ports = knowledge.seqs.length > 0 && mrng.chance(0.5);
    const opt = [randomMptcpOption(mrng, knowledge, { syn })];
    if (mrng.chance(0.3)) opt.push(randomMptcpOption(mrng, knowledge, { syn }));
    const seg = {
      srcPort: ports ? 32768 + mrng.int(28000) : pick(mrng, [80, 20000 + mrng.int(40000)]),
      dstPort: pick(mrng, [80, 32768 + mrng.int(28000), 20000 + mrng.int(40000)]),
      seq: ports ? pick(mrng, knowledge.seqs) : mrng.nextU32(),
      ack: ports ? pick(mrng, knowledge.seqs) : mrng.nextU32(),
      flags: syn ? (mrng.chance(0.8) ? TCP_FLAG_SYN : TCP_FLAG_SYN | TCP_FLAG_ACK) : pick(mrng, [TCP_FLAG_ACK, TCP_FLAG_ACK | 0x04, 0x04, 0x01 | TCP_FLAG_ACK, mrng.int(256)]),
      options: { mss: mrng.chance(0.5) ? 1460 : undefined },
    };
    try {
      const p = craftSegment(src, dst, seg, opt);
      log(`inject ${describe(p)} ${opt.map((o) => o.type).join('+')}`);
      toNode(p, now);
    } catch {
      // options too long for one header: nothing sent
    }
  };

  const nextTime = (): Instant | null => {
    let t: Instant | null = null;
    const min = (x: Instant | null) => {
      if (x !== null && (t === null || x < t)) t = x;
    };
    for (const f of inflight) min(f.at);
    min(target.pollTimeout());
    for (const p of peers) min(p.pollTimeout());
    if (opened < maxOpen) min(nextOpen);
    min(nextInject);
    return t;
  };

  // peers are ticked after the node, so the node sees their packets on the next steps
  const maxSteps = maxPackets * 50 + 10_000;
  while (finding === null && packets < maxPackets && now < endAt) {
    if (step >= maxSteps) {
      fail('deadline', `${step} steps for ${packets} inputs: the world does not advance at t=${now}`);
      break;
    }
    const t = nextTime();
    if (t === null) break;
    now = Math.max(now, t);
    step++;
    // scripted actions
    if (opened < maxOpen && now >= nextOpen) {
      opened++;
      nextOpen = now + 20 + mrng.int(2000);
      if (app) {
        app.open(now, v6 && mrng.chance(0.4));
        log('app opens a connection');
      } else if (client) {
        const remote = { addr: srv[0]!, port: 80 };
        const conn = client.stack.connect(now, mrng.chance(0.5) ? cli : [cli[0]!], remote, { fullmesh: mrng.chance(0.5), maxSubflows: 4 });
        client.adopt(conn, now);
        log('client opens a connection');
      }
      if (!guard('a peer', () => peers.forEach((p) => p.tick(now)), 'peer-exception')) break;
      if (!drainPeers()) break;
      continue;
    }
    if (now >= nextInject) {
      nextInject = now + 20 + mrng.int(1500);
      inject();
      continue;
    }
    if (relayTarget && mrng.chance(0.002)) {
      const i = mrng.int(relayTarget.relay.paths.length);
      if (!guard('pathDown/pathUp', () => (relayTarget!.relay.paths[i]!.up ? relayTarget!.relay.pathDown(now, i) : relayTarget!.relay.pathUp(now, i)))) break;
      log(`path ${i} toggled`);
    }
    // one packet in flight, due now (the earliest, in order)
    let best = -1;
    for (let i = 0; i < inflight.length; i++) {
      const f = inflight[i]!;
      if (f.at <= now && (best < 0 || f.at < inflight[best]!.at || (f.at === inflight[best]!.at && f.order < inflight[best]!.order))) best = i;
    }
    if (best >= 0) {
      const f = inflight.splice(best, 1)[0]!;
      if (f.to === -1) {
        packets++;
        if (trace) log(`node <- ${describe(f.packet)}`);
        if (!guard('handleInput', () => target.handleInput(now, f.packet))) break;
        if (!guard('tick', () => target.tick(now))) break;
        if (!drainNode()) break;
      } else {
        const p = peers[f.to]!;
        if (!guard('a peer', () => {
          p.handleInput(now, f.packet);
          p.tick(now);
        }, 'peer-exception')) break;
        if (!drainPeers()) break;
      }
      const b = target.bounds();
      if (b) {
        fail('bounds', b);
        break;
      }
      continue;
    }
    // timers
    const nt = target.pollTimeout();
    if (nt !== null && nt <= now) {
      if (!guard('handleTimeout', () => target.handleTimeout(now))) break;
      if (!guard('tick', () => target.tick(now))) break;
      if (!drainNode()) break;
      const d = checkDeadline(target, now);
      if (d) {
        fail('deadline', d);
        break;
      }
    }
    for (const p of peers) {
      const pt = p.pollTimeout();
      if (pt !== null && pt <= now) {
        if (!guard('a peer', () => {
          p.handleTimeout(now);
          p.tick(now);
        }, 'peer-exception')) break;
        const d = checkDeadline(p, now);
        if (d) {
          fail('deadline', `a peer (the project's stack too): ${d}`);
          break;
        }
      }
    }
    if (finding) break;
    if (!drainPeers()) break;
  }
  return { seed, world, packets, mutated, steps: step, states: target.states(), finding };
}

/** A packet in a line: addresses, ports, flags, length. */
export function describe(p: Buffer): string {
  const v = p[0]! >>> 4;
  if (v !== 4 && v !== 6) return `(${p.length} bytes, version ${v})`;
  const l4 = v === 4 ? (p[0]! & 0x0f) * 4 : 40;
  if (p.length < l4 + 14) return `(${p.length} bytes, truncated)`;
  const src = formatIpAddress(v === 4 ? p.subarray(12, 16) : p.subarray(8, 24));
  const dst = formatIpAddress(v === 4 ? p.subarray(16, 20) : p.subarray(24, 40));
  return `${src}:${p.readUInt16BE(l4)} > ${dst}:${p.readUInt16BE(l4 + 2)} flags=0x${p[l4 + 13]!.toString(16)} seq=${p.readUInt32BE(l4 + 4)} ack=${p.readUInt32BE(l4 + 8)} len=${p.length}`;
}

/** Runs seeds `first`, `first+1`, ... until `packets` inputs in all (or `until` ms of wall time). */
export function runMany(opts: { first: number; packets: number; perCase?: number; until?: number; onCase?: (r: CaseResult) => void }): {
  cases: number; packets: number; mutated: number; states: Record<string, number>; findings: Finding[]; worlds: Record<string, number>;
} {
  const states: Record<string, number> = {};
  const worlds: Record<string, number> = {};
  const findings: Finding[] = [];
  let packets = 0;
  let mutated = 0;
  let cases = 0;
  for (let seed = opts.first; packets < opts.packets; seed = (seed + 1) >>> 0) {
    if (opts.until !== undefined && performance.now() >= opts.until) break;
    const r = runCase({ seed, packets: opts.perCase ?? 1500 });
    cases++;
    packets += r.packets;
    mutated += r.mutated;
    worlds[r.world] = (worlds[r.world] ?? 0) + 1;
    for (const [k, v] of Object.entries(r.states)) states[k] = (states[k] ?? 0) + v;
    if (r.finding) findings.push(r.finding);
    opts.onCase?.(r);
  }
  return { cases, packets, mutated, states, findings, worlds };
}
