// Every deadline of the MPTCP stack either fires work or is cleared (fuzz findings): a client
// stack driven by hand-made server segments into the states where a connection's own deadline
// stayed in the past for good — the engine's timer would then fire every millisecond.
import test from 'ava';
import { MptcpStack } from '../../src/mptcp/stack.js';
import type { MptcpConnection } from '../../src/mptcp/protocol.js';
import type { MptcpOption } from '../../src/mptcp/options.js';
import { keyToIdsn } from '../../src/mptcp/crypto.js';
import { TCP_FLAG_ACK, TCP_FLAG_SYN } from '../../src/tcp/segment.js';
import { addr, craftSegment, parseSegment, type WireSegment } from './simhost.js';
import { deadlineViolation } from '../helpers/invariants.js';
import { Rng } from '../sim/rng.js';

const A0 = addr('10.1.0.2');
const A1 = addr('10.2.0.2');
const S = addr('10.9.0.1');
const SERVER_KEY = 0x0123456789abcdefn;
const SERVER_ISN = 50_000;
const FLAGS = { checksumRequired: false, extensibility: false, noMoreSubflowAddr: false, hmacSha256: true };

/** A client stack, its connection, and a server played by hand. */
class Bed {
  readonly stack: MptcpStack;
  readonly conn: MptcpConnection;
  now = 0;
  syn: WireSegment;
  constructor(locals: Buffer[]) {
    const rng = new Rng(3);
    this.stack = new MptcpStack({
      random: (n) => {
        const b = Buffer.allocUnsafe(n);
        for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff;
        return b;
      },
      isnSecret: Buffer.from('deadline test'),
      mtu: 1500,
    });
    this.conn = this.stack.connect(0, locals, { addr: S, port: 443 });
    this.syn = this.step(0).find((s) => s.tcp.flags === TCP_FLAG_SYN)!;
  }

  /** What the engine does at `now` after input or a timeout: process, then drain the output. */
  step(now: number): WireSegment[] {
    this.now = now;
    this.stack.process(now);
    const out: WireSegment[] = [];
    for (let o = this.stack.pollOutput(now); o; o = this.stack.pollOutput(now)) {
      const s = parseSegment(o.buffer);
      if (s) out.push(s);
    }
    return out;
  }

  /** A segment from the server to the initial subflow, then a step. */
  fromServer(now: number, seg: { seq: number; ack: number; flags: number }, mptcp: MptcpOption[]): WireSegment[] {
    const p = craftSegment(S, A0, { srcPort: 443, dstPort: this.syn.tcp.srcPort, window: 65535, ...seg }, mptcp);
    this.stack.handleInput(now, 0, p);
    return this.step(now);
  }

  /** The engine's timer fired at `now`. */
  timeout(now: number): WireSegment[] {
    this.stack.handleTimeout(now);
    return this.step(now);
  }

  /** SYN/ACK with the server's key: the client sends its third ACK. */
  handshake(now: number): WireSegment[] {
    return this.fromServer(now, { seq: SERVER_ISN, ack: (this.syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK }, [
      { type: 'mp_capable', version: 1, flags: FLAGS, senderKey: SERVER_KEY },
    ]);
  }

  /** The server's ACK of `bytes` at TCP level, with a DATA_ACK of `dataAcked` bytes. */
  ack(now: number, bytes: number, dataAcked: number, extra: MptcpOption[] = []): WireSegment[] {
    const dataAck = keyToIdsn(this.conn.localKey) + 1n + BigInt(dataAcked);
    return this.fromServer(now, { seq: SERVER_ISN + 1, ack: (this.syn.tcp.seq + 1 + bytes) >>> 0, flags: TCP_FLAG_ACK }, [
      { type: 'dss', dataAck, dataAck8: true, dataFin: false }, ...extra,
    ]);
  }
}

// Fuzz finding: after a late fallback (RFC 8684 §3.7, here an MP_FAIL on the only subflow) the
// connection-level retransmission deadline armed before it was never cleared, and the
// connection's pollTimeout() stayed in the past for good.
test('after a late fallback no deadline of the connection stays in the past', (t) => {
  const bed = new Bed([A0]);
  bed.handshake(10);
  t.is(bed.conn.write(Buffer.alloc(1000, 1)), 1000);
  bed.step(11);
  // every byte acknowledged by TCP, none by the DATA_ACK: the connection-level retransmission is armed
  bed.ack(20, 1000, 0);
  t.true(bed.conn.fullyEstablished);
  t.not(bed.conn.pollTimeout(), null, 'the DATA_ACK timer is armed');
  bed.ack(21, 1000, 0, [{ type: 'mp_fail', dsn: keyToIdsn(bed.conn.localKey) + 1n }]);
  t.true(bed.conn.fallback, 'the MP_FAIL made the connection fall back');
  for (let now = 100; now <= 5000; now += 100) {
    bed.timeout(now);
    const v = deadlineViolation(bed.stack, now);
    if (v) return t.fail(v);
  }
  t.is(bed.conn.pollTimeout(), null);
});

// Fuzz finding: a DATA_FIN waiting to be sent again when no subflow is usable (the one that
// carried it went with its path, the other is still in its handshake) kept its deadline in the
// past until a subflow came: the timer fired at every poll.
test('a DATA_FIN pending with no usable subflow: its deadline is cleared, not left in the past', (t) => {
  const bed = new Bed([A0, A1]);
  bed.handshake(10);
  t.is(bed.conn.write(Buffer.alloc(1000, 2)), 1000);
  bed.conn.shutdown();
  bed.step(11);
  // all acknowledged at both levels: the DATA_FIN is due, the path manager opens the join
  const out = bed.ack(20, 1000, 1000);
  t.true(out.some((s) => s.src === '10.2.0.2' && s.tcp.flags === TCP_FLAG_SYN), 'the join SYN went out');
  t.not(bed.conn.pollTimeout(), null, 'the DATA_FIN retransmission is armed');
  // the initial path goes: no usable subflow is left, the join is not answered
  bed.stack.pathDown(30, A0);
  bed.step(30);
  for (let now = 100; now <= 3000; now += 50) {
    bed.timeout(now);
    const v = deadlineViolation(bed.stack, now);
    if (v) return t.fail(v);
  }
  t.pass();
});
