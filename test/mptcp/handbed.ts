// A client MPTCP stack driven by a server played by hand (segments crafted in the test), for
// the states a simulated server does not reach on its own: deadlines left behind, fallbacks.
import { MptcpStack } from '../../src/mptcp/stack.js';
import type { MptcpConnection } from '../../src/mptcp/protocol.js';
import type { MptcpOption } from '../../src/mptcp/options.js';
import { keyToIdsn } from '../../src/mptcp/crypto.js';
import { TCP_FLAG_ACK, TCP_FLAG_SYN } from '../../src/tcp/segment.js';
import { addr, craftSegment, parseSegment, type WireSegment } from './simhost.js';
import { Rng } from '../sim/rng.js';

export const A0 = addr('10.1.0.2');
export const A1 = addr('10.2.0.2');
export const S = addr('10.9.0.1');
export const SERVER_KEY = 0x0123456789abcdefn;
export const SERVER_ISN = 50_000;
export const FLAGS = { checksumRequired: false, extensibility: false, noMoreSubflowAddr: false, hmacSha256: true };

/** A client stack, its connection, and a server played by hand. */
export class Bed {
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
  fromServer(now: number, seg: { seq: number; ack: number; flags: number; payload?: Buffer }, mptcp: MptcpOption[]): WireSegment[] {
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
