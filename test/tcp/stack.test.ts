// The TCP stack: demultiplexing by 4-tuple, the listener that impersonates ANY destination, the
// replies to segments that belong to no connection (RFC 9293 §3.10.7.1), the SYN backlog,
// checksums, IPv4 and IPv6, and forgetting connections once CLOSED.
//
// Packets go in as IP packets built with the codec (`emitIpTcp`) and come out as IP packets
// parsed with it, checksum verified: what is asserted is what would be on the wire.
import test from 'ava';
import { TcpStack, type TcpStackOptions } from '../../src/tcp/stack.js';
import { TcpState, type TcpConnection } from '../../src/tcp/connection.js';
import { formatIpAddress, parseIpAddress } from '../../src/ip/address.js';
import { internetChecksum } from '../../src/ip/checksum.js';
import { IpCounters } from '../../src/ip/counters.js';
import { parseIpPacket } from '../../src/ip/packet.js';
import {
  TCP_FLAG_ACK, TCP_FLAG_FIN, TCP_FLAG_PSH, TCP_FLAG_RST, TCP_FLAG_SYN, TcpCodecCounters, emitIpTcp, parseTcp, tcpPacketLen,
  type TcpRepr,
} from '../../src/tcp/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { ctl } from './factories.js';

const ip = (text: string): Buffer => parseIpAddress(text).bytes;

interface Host {
  addr: string;
  port: number;
}

/** A packet as it left the stack: addresses as text, the TCP segment parsed (checksum verified). */
interface Out {
  version: 4 | 6;
  src: string;
  dst: string;
  seg: TcpRepr;
}

const EMPTY = Buffer.alloc(0);

/** An IP packet from `from` to `to` carrying a segment built from a template with overrides. */
function packet(from: Host, to: Host, o: Partial<TcpRepr>): Buffer {
  const seg: TcpRepr = {
    srcPort: from.port, dstPort: to.port, seq: 1000, ack: 0, flags: TCP_FLAG_ACK, window: 65535, urgent: 0, options: {}, payload: EMPTY, ...o,
  };
  const src = ip(from.addr);
  const dst = ip(to.addr);
  const version = src.length === 4 ? 4 : 6;
  const buf = Buffer.alloc(tcpPacketLen(seg, version));
  emitIpTcp(buf, 0, { ipVersion: version, src, dst, ttl: 64 }, seg, { checksum: 'full' });
  return buf;
}

/** Everything the stack sends now, parsed; a packet that does not parse (or checksum) fails the test. */
function drain(stack: TcpStack, now: number): Out[] {
  const out: Out[] = [];
  for (let tx = stack.pollTransmit(now); tx; tx = stack.pollTransmit(now)) {
    const buf = Buffer.from(tx.packet);
    const info = parseIpPacket(buf, new IpCounters());
    if (!info) throw new Error('the stack sent a packet that is not IP');
    const seg = parseTcp(info, new TcpCodecCounters(), { checksum: 'verify' });
    if (!seg) throw new Error('the stack sent a TCP segment that does not parse or checksum');
    out.push({ version: info.version, src: formatIpAddress(info.src), dst: formatIpAddress(info.dst), seg: { ...seg, payload: Buffer.from(seg.payload) } });
  }
  return out;
}

function newStack(opts: TcpStackOptions = {}): TcpStack {
  return new TcpStack({ isnSecret: Buffer.from('stack tests'), ...opts });
}

/** The connection of the stack whose remote end is `remote`. */
function connOf(stack: TcpStack, remote: Host, local?: Host): TcpConnection {
  for (const c of stack.all()) {
    if (formatIpAddress(c.remote.addr) === remote.addr && c.remote.port === remote.port &&
      (!local || (formatIpAddress(c.local.addr) === local.addr && c.local.port === local.port))) return c;
  }
  throw new Error('no such connection');
}

/** A client completes a three-way handshake with a listening stack; returns the server's connection. */
function handshake(stack: TcpStack, now: number, client: Host, server: Host, isn = 1000): TcpConnection {
  stack.handleInput(now, 0, packet(client, server, { seq: isn, flags: TCP_FLAG_SYN, options: { mss: 1460 } }));
  const synAck = drain(stack, now).find((p) => p.dst === client.addr && p.seg.dstPort === client.port);
  if (!synAck || ctl(synAck.seg) !== 'SYN,ACK') throw new Error('no SYN,ACK');
  stack.handleInput(now, 0, packet(client, server, { seq: isn + 1, ack: seqAdd(synAck.seg.seq, 1) }));
  drain(stack, now);
  return connOf(stack, client, server);
}

const CLIENT: Host = { addr: '192.0.2.10', port: 50000 };
const SERVER: Host = { addr: '203.0.113.7', port: 443 };

test('a listener accepts a SYN to ANY destination and answers from that destination: mptun impersonates it', (t) => {
  const stack = newStack();
  const seen: string[] = [];
  stack.listen((req) => {
    seen.push(`${formatIpAddress(req.local.addr)}:${req.local.port}`);
    return true;
  });
  const other: Host = { addr: '198.51.100.1', port: 80 };
  stack.handleInput(0, 0, packet(CLIENT, SERVER, { seq: 1000, flags: TCP_FLAG_SYN }));
  stack.handleInput(0, 0, packet(CLIENT, other, { seq: 5000, flags: TCP_FLAG_SYN }));
  t.deepEqual(seen, ['203.0.113.7:443', '198.51.100.1:80']);
  const out = drain(stack, 0);
  t.is(out.length, 2);
  const toServer = out.find((p) => p.src === SERVER.addr)!;
  t.is(toServer.dst, CLIENT.addr);
  t.is(toServer.seg.srcPort, 443);
  t.is(toServer.seg.dstPort, 50000);
  t.is(ctl(toServer.seg), 'SYN,ACK');
  t.is(toServer.seg.ack, 1001);
  const toOther = out.find((p) => p.src === other.addr)!;
  t.is(ctl(toOther.seg), 'SYN,ACK');
  t.is(toOther.seg.ack, 5001);
  t.is(stack.size, 2);
  t.is(stack.counters.get('synAccepted'), 2);
});

test('demultiplexing by the 4-tuple: same ports, different addresses, two connections', (t) => {
  const stack = newStack();
  stack.listen(() => true);
  const s1: Host = { addr: '203.0.113.7', port: 443 };
  const s2: Host = { addr: '203.0.113.8', port: 443 };
  const c1 = handshake(stack, 0, CLIENT, s1, 1000);
  const c2 = handshake(stack, 0, CLIENT, s2, 9000);
  t.not(c1, c2);
  t.is(c1.state, TcpState.Established);
  t.is(c2.state, TcpState.Established);
  stack.handleInput(1, 0, packet(CLIENT, s2, { seq: 9001, ack: seqAdd(c2.info().sndNxt, 0), flags: TCP_FLAG_ACK | TCP_FLAG_PSH, payload: Buffer.from('for s2') }));
  t.is(c1.readable, 0);
  t.is(c2.read()?.toString(), 'for s2');
  // and the other way: each answers from its own address
  c1.write(Buffer.from('from s1'));
  stack.touch(c1);
  const out = drain(stack, 1).filter((p) => p.seg.payload.length > 0);
  t.deepEqual(out.map((p) => [p.src, p.seg.payload.toString()]), [['203.0.113.7', 'from s1']]);
});

test('a refused SYN: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (RFC 9293 §3.10.7.1)', (t) => {
  const stack = newStack();
  stack.listen(() => false);
  stack.handleInput(0, 0, packet(CLIENT, SERVER, { seq: 1000, flags: TCP_FLAG_SYN }));
  const out = drain(stack, 0);
  t.is(out.length, 1);
  t.is(ctl(out[0]!.seg), 'RST,ACK');
  t.is(out[0]!.seg.seq, 0);
  t.is(out[0]!.seg.ack, 1001);
  t.is(out[0]!.src, SERVER.addr);
  t.is(out[0]!.dst, CLIENT.addr);
  t.is(out[0]!.seg.srcPort, SERVER.port);
  t.is(out[0]!.seg.dstPort, CLIENT.port);
  t.is(stack.size, 0);
  t.is(stack.counters.get('synRefused'), 1);
});

test('a SYN with no listener: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (RFC 9293 §3.10.7.1)', (t) => {
  const stack = newStack();
  stack.handleInput(0, 0, packet(CLIENT, SERVER, { seq: 0xffff_ffff, flags: TCP_FLAG_SYN }));
  const out = drain(stack, 0);
  t.deepEqual(out.map((p) => ctl(p.seg)), ['RST,ACK']);
  t.is(out[0]!.seg.ack, 0, 'SEG.SEQ + 1, modulo 2**32');
});

test('no connection, ACK off: SEG.LEN counts the data and the FIN (RFC 9293 §3.10.7.1: "<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>")', (t) => {
  const stack = newStack();
  stack.listen(() => true);
  stack.handleInput(0, 0, packet(CLIENT, SERVER, { seq: 7000, flags: TCP_FLAG_FIN, payload: Buffer.alloc(10) }));
  const out = drain(stack, 0);
  t.deepEqual(out.map((p) => ctl(p.seg)), ['RST,ACK']);
  t.is(out[0]!.seg.ack, 7011);
  t.is(stack.size, 0, 'the listener is not asked about a segment that is not a SYN');
});

test('no connection, ACK on: <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.1; §3.10.7.2 "Any acknowledgment is bad if it arrives on a connection still in the LISTEN state")', (t) => {
  const stack = newStack();
  stack.listen(() => true);
  stack.handleInput(0, 0, packet(CLIENT, SERVER, { seq: 500, ack: 7777, flags: TCP_FLAG_ACK, payload: Buffer.from('stale') }));
  stack.handleInput(0, 0, packet(CLIENT, SERVER, { seq: 500, ack: 8888, flags: TCP_FLAG_SYN | TCP_FLAG_ACK }));
  const out = drain(stack, 0);
  t.deepEqual(out.map((p) => ctl(p.seg)), ['RST', 'RST']);
  t.deepEqual(out.map((p) => p.seg.seq), [7777, 8888]);
  t.is(stack.size, 0);
  t.is(stack.counters.get('resetsSentNoConnection'), 2);
});

test('no RST in reply to a RST (RFC 9293 §3.10.7.1: "An incoming segment containing a RST is discarded")', (t) => {
  const stack = newStack();
  stack.listen(() => true);
  stack.handleInput(0, 0, packet(CLIENT, SERVER, { seq: 500, flags: TCP_FLAG_RST }));
  stack.handleInput(0, 0, packet(CLIENT, SERVER, { seq: 500, ack: 9, flags: TCP_FLAG_RST | TCP_FLAG_ACK }));
  t.deepEqual(drain(stack, 0), []);
  t.is(stack.counters.get('noConnection'), 2);
  t.is(stack.counters.get('resetsSentNoConnection'), 0);
});

test('the SYN backlog: SYNs beyond it are dropped and counted, and a completed handshake frees a place', (t) => {
  const stack = newStack({ synBacklog: 2 });
  let asked = 0;
  stack.listen(() => {
    asked++;
    return true;
  });
  const client = (port: number): Host => ({ addr: CLIENT.addr, port });
  for (const port of [1001, 1002, 1003]) stack.handleInput(0, 0, packet(client(port), SERVER, { seq: 100, flags: TCP_FLAG_SYN }));
  const out = drain(stack, 0);
  t.deepEqual(out.map((p) => [p.seg.dstPort, ctl(p.seg)]).sort(), [[1001, 'SYN,ACK'], [1002, 'SYN,ACK']], 'no answer at all to the third');
  t.is(asked, 2);
  t.is(stack.counters.get('synBacklogFull'), 1);
  t.is(stack.size, 2);
  // the first handshake completes: its place in the backlog is free
  const first = out.find((p) => p.seg.dstPort === 1001)!;
  stack.handleInput(1, 0, packet(client(1001), SERVER, { seq: 101, ack: seqAdd(first.seg.seq, 1) }));
  t.is(connOf(stack, client(1001)).state, TcpState.Established);
  stack.handleInput(1, 0, packet(client(1004), SERVER, { seq: 100, flags: TCP_FLAG_SYN }));
  t.deepEqual(drain(stack, 1).map((p) => [p.seg.dstPort, ctl(p.seg)]), [[1004, 'SYN,ACK']]);
  t.is(stack.counters.get('synBacklogFull'), 1);
});

// Regression (found by this test, fixed): the stack asks the listener about, and answers, a SYN whatever its addresses: the SYN,ACK
// even leaves with a multicast or broadcast source. RFC 9293 §3.9.2.3 (from RFC 1122): "A TCP
// implementation MUST silently discard an incoming SYN segment that is addressed to a broadcast
// or multicast address (MUST-57)" and "An incoming SYN with an invalid source address MUST be
// ignored either by TCP or by the IP layer (MUST-63)". Neither src/ip nor src/tcp checks.
for (const [what, from, to] of [
  ['to an IPv4 multicast address (MUST-57)', CLIENT.addr, '224.0.0.1'],
  ['to the IPv4 broadcast address (MUST-57)', CLIENT.addr, '255.255.255.255'],
  ['to an IPv6 multicast address (MUST-57)', '2001:db8::1', 'ff02::1'],
  ['from a multicast source (MUST-63)', '224.0.0.5', SERVER.addr],
  ['from the unspecified address (MUST-63)', '0.0.0.0', SERVER.addr],
] as const) {
  test(`a SYN ${what} is silently discarded (RFC 9293 §3.9.2.3)`, (t) => {
    const stack = newStack();
    let asked = 0;
    stack.listen(() => {
      asked++;
      return true;
    });
    stack.handleInput(0, 0, packet({ addr: from, port: 1234 }, { addr: to, port: 80 }, { seq: 1, flags: TCP_FLAG_SYN }));
    t.is(asked, 0);
    t.deepEqual(drain(stack, 0), []);
    t.is(stack.size, 0);
  });
}

test('a bad checksum: dropped and counted, no answer (RFC 9293 §3.1: "the receiver MUST check it (MUST-3)")', (t) => {
  const stack = newStack();
  let asked = 0;
  stack.listen(() => {
    asked++;
    return true;
  });
  const buf = packet(CLIENT, SERVER, { seq: 1000, flags: TCP_FLAG_SYN });
  buf[20 + 16] ^= 0x01; // the TCP checksum
  stack.handleInput(0, 0, buf);
  t.deepEqual(drain(stack, 0), []);
  t.is(asked, 0);
  t.is(stack.size, 0);
  t.is(stack.codecCounters.get('tcpBadChecksum'), 1);
});

test('a packet that is not TCP is counted and ignored', (t) => {
  const stack = newStack();
  const buf = packet(CLIENT, SERVER, { seq: 1000, flags: TCP_FLAG_SYN });
  buf[9] = 17; // UDP
  buf.writeUInt16BE(0, 10);
  buf.writeUInt16BE(internetChecksum(buf, 0, 20), 10);
  stack.handleInput(0, 0, buf);
  t.deepEqual(drain(stack, 0), []);
  t.is(stack.counters.get('notTcp'), 1);
});

test('IPv6: a listener\'s handshake, data, and the RST for no connection', (t) => {
  const stack = newStack();
  stack.listen(() => true);
  const client: Host = { addr: '2001:db8::1', port: 40000 };
  const server: Host = { addr: '2001:db8:ffff::2', port: 8080 };
  stack.handleInput(0, 0, packet(client, server, { seq: 1000, flags: TCP_FLAG_SYN, options: { mss: 1440 } }));
  const [synAck] = drain(stack, 0);
  t.is(synAck!.version, 6);
  t.is(synAck!.src, '2001:db8:ffff::2');
  t.is(synAck!.dst, '2001:db8::1');
  t.is(ctl(synAck!.seg), 'SYN,ACK');
  t.is(synAck!.seg.ack, 1001);
  stack.handleInput(1, 0, packet(client, server, { seq: 1001, ack: seqAdd(synAck!.seg.seq, 1), flags: TCP_FLAG_ACK | TCP_FLAG_PSH, payload: Buffer.from('hello v6') }));
  const conn = connOf(stack, client);
  t.is(conn.state, TcpState.Established);
  t.is(conn.read()?.toString(), 'hello v6');
  stack.handleInput(2, 0, packet(client, { addr: server.addr, port: 9999 }, { seq: 1, ack: 4242 }));
  const rst = drain(stack, 2).filter((p) => p.seg.flags & TCP_FLAG_RST);
  t.is(rst.length, 1);
  t.is(rst[0]!.version, 6);
  t.is(rst[0]!.seg.seq, 4242);
});

test('active open through the stack: the SYN leaves from the local address; "connected" when the SYN,ACK comes back', (t) => {
  const stack = newStack();
  const local = { addr: ip('198.18.1.2'), port: 33333 };
  const remote = { addr: ip('192.0.2.80'), port: 80 };
  const conn = stack.connect(0, local, remote);
  const [syn] = drain(stack, 0);
  t.is(syn!.src, '198.18.1.2');
  t.is(syn!.dst, '192.0.2.80');
  t.is(ctl(syn!.seg), 'SYN');
  stack.handleInput(10, 0, packet({ addr: '192.0.2.80', port: 80 }, { addr: '198.18.1.2', port: 33333 }, {
    seq: 777, ack: seqAdd(syn!.seg.seq, 1), flags: TCP_FLAG_SYN | TCP_FLAG_ACK, options: { mss: 1460 },
  }));
  const out = drain(stack, 10);
  t.deepEqual(out.map((p) => ctl(p.seg)), ['ACK']);
  t.is(out[0]!.seg.ack, 778);
  t.is(conn.state, TcpState.Established);
  const events: string[] = [];
  for (let e = stack.pollEvent(); e; e = stack.pollEvent()) if (e.conn === conn) events.push(e.event.type);
  t.true(events.includes('connected'));
});

test('two active opens to the same 4-tuple are refused', (t) => {
  const stack = newStack();
  const local = { addr: ip('198.18.1.2'), port: 33333 };
  const remote = { addr: ip('192.0.2.80'), port: 80 };
  stack.connect(0, local, remote);
  t.throws(() => stack.connect(0, local, remote));
});

test('a connection reset by the peer is forgotten once CLOSED', (t) => {
  const stack = newStack();
  stack.listen(() => true);
  const conn = handshake(stack, 0, CLIENT, SERVER, 1000);
  t.is(stack.size, 1);
  stack.handleInput(1, 0, packet(CLIENT, SERVER, { seq: 1001, flags: TCP_FLAG_RST }));
  t.is(conn.state, TcpState.Closed);
  t.deepEqual(drain(stack, 1), [], 'no RST in reply to a RST');
  t.is(stack.size, 0);
  t.is(stack.counters.get('connectionsClosed'), 1);
  const events: string[] = [];
  for (let e = stack.pollEvent(); e; e = stack.pollEvent()) events.push(e.event.type);
  t.deepEqual(events.filter((e) => e === 'reset' || e === 'closed'), ['reset', 'closed']);
  // a segment for it now gets the no-connection answer
  stack.handleInput(2, 0, packet(CLIENT, SERVER, { seq: 1001, ack: 55 }));
  t.deepEqual(drain(stack, 2).map((p) => [ctl(p.seg), p.seg.seq]), [['RST', 55]]);
});

test('a connection is forgotten when TIME-WAIT ends, and the 4-tuple may be used again', (t) => {
  const stack = newStack({ tcp: { timeWaitMs: 1000 } });
  stack.listen(() => true);
  const conn = handshake(stack, 0, CLIENT, SERVER, 1000);
  // we close first, the client acknowledges and closes: TIME-WAIT on our side
  conn.shutdown();
  stack.touch(conn);
  const [fin] = drain(stack, 1);
  t.is(ctl(fin!.seg), 'FIN,ACK');
  stack.handleInput(2, 0, packet(CLIENT, SERVER, { seq: 1001, ack: seqAdd(fin!.seg.seq, 1), flags: TCP_FLAG_FIN | TCP_FLAG_ACK }));
  drain(stack, 2);
  t.is(conn.state, TcpState.TimeWait);
  t.is(stack.size, 1);
  t.is(stack.pollTimeout(), 1002);
  stack.handleTimeout(1002);
  drain(stack, 1002);
  t.is(conn.state, TcpState.Closed);
  t.is(stack.size, 0);
  t.is(stack.pollTimeout(), null);
  const again = handshake(stack, 2000, CLIENT, SERVER, 50_000);
  t.not(again, conn);
  t.is(again.state, TcpState.Established);
});

test('an aborted connection: the RST goes out, then the connection is forgotten', (t) => {
  const stack = newStack();
  stack.listen(() => true);
  const conn = handshake(stack, 0, CLIENT, SERVER, 1000);
  conn.abort(1);
  stack.touch(conn);
  const out = drain(stack, 1);
  t.is(out.length, 1);
  t.true((out[0]!.seg.flags & TCP_FLAG_RST) !== 0);
  t.is(out[0]!.seg.seq, conn.info().sndNxt);
  t.is(stack.size, 0);
});

test('the ISN differs per 4-tuple (RFC 9293 §3.4.1: "ISN = M + F(localip, localport, remoteip, remoteport, secretkey)")', (t) => {
  const stack = newStack();
  stack.listen(() => true);
  stack.handleInput(0, 0, packet({ addr: CLIENT.addr, port: 1 }, SERVER, { seq: 1, flags: TCP_FLAG_SYN }));
  stack.handleInput(0, 0, packet({ addr: CLIENT.addr, port: 2 }, SERVER, { seq: 1, flags: TCP_FLAG_SYN }));
  const [a, b] = drain(stack, 0);
  t.not(a!.seg.seq, b!.seg.seq);
});

test('reuseOutput: every packet is built in the stack\'s one buffer, each whole when polled; a RST for no connection keeps its own', (t) => {
  const stack = newStack({ reuseOutput: true, headroom: 10 });
  stack.listen(() => true);
  const conn = handshake(stack, 0, CLIENT, SERVER);
  conn.write(Buffer.alloc(3000, 7));
  stack.touch(conn);
  const seen: Array<{ ab: ArrayBufferLike; at: number }> = [];
  let payload = 0;
  for (let out = stack.pollOutput(1); out; out = stack.pollOutput(1)) {
    seen.push({ ab: out.buffer.buffer, at: out.buffer.byteOffset });
    // parsed before the next poll, as the engine writes it before the next
    const info = parseIpPacket(out.buffer.subarray(10), new IpCounters());
    const seg = info && parseTcp(info, new TcpCodecCounters(), { checksum: 'verify' });
    t.truthy(seg, 'a whole packet with a good checksum');
    payload += seg?.payload.length ?? 0;
  }
  t.is(payload, 3000);
  t.true(seen.length >= 2);
  t.true(seen.every((b) => b.ab === seen[0]!.ab && b.at === seen[0]!.at), 'one buffer for all of them');
  // a segment for no connection: its RST is queued at input, so it is not in that buffer
  stack.handleInput(2, 0, packet({ addr: '192.0.2.99', port: 1 }, SERVER, { flags: TCP_FLAG_ACK, ack: 5 }));
  const rst = stack.pollOutput(2);
  t.truthy(rst);
  t.false(rst!.buffer.buffer === seen[0]!.ab && rst!.buffer.byteOffset === seen[0]!.at, 'the RST was built apart');
});
