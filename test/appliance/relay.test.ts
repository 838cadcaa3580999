// The relay, driven by hand-made packets and virtual time (no device, no kernel): what the app
// and the destination see in the cases the end-to-end tests cannot make cheaply or exactly.
// The app is 198.18.0.1 (the device's address), the destination 192.0.2.10:80, the paths'
// private sources 198.18.1.2 and 198.18.2.2.
import test from 'ava';
import { Relay } from '../../src/appliance/relay.js';
import { parseIpAddress } from '../../src/ip/address.js';
import { TCP_FLAG_ACK, TCP_FLAG_FIN, TCP_FLAG_PSH, TCP_FLAG_RST, TCP_FLAG_SYN, type TcpRepr } from '../../src/tcp/segment.js';
import { craftSegment, parseSegment, type WireSegment } from '../mptcp/simhost.js';
import { Rng } from '../sim/rng.js';
import type { TcpConfig } from '../../src/tcp/connection.js';

const APP = parseIpAddress('198.18.0.1').bytes;
const DST = parseIpAddress('192.0.2.10').bytes;
const PATHS = ['198.18.1.2', '198.18.2.2'];
const APP_PORT = 40000;
const APP_ISN = 1000;

function relay(schedulerFor?: (d: { addr: Uint8Array; port: number }) => string | undefined, maxPending?: number, tcp?: Partial<TcpConfig>): Relay {
  const rng = new Rng(7);
  return new Relay({
    ...(schedulerFor ? { schedulerFor } : {}),
    ...(maxPending !== undefined ? { maxPending } : {}),
    stack: {
      ...(tcp ? { tcp } : {}),
      random: (n) => {
        const b = Buffer.allocUnsafe(n);
        for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff;
        return b;
      },
      isnSecret: Buffer.from('relay test secret'),
      mtu: 1500,
    },
    paths: PATHS.map((a) => ({ address: parseIpAddress(a).bytes, backup: false, up: true })),
  });
}

/** Feeds a packet, runs the relay, and returns every segment it sends. */
function feed(r: Relay, now: number, packet: Buffer | null): WireSegment[] {
  if (packet) r.handleInput(now, 0, packet, false);
  r.process(now);
  return drain(r, now);
}

function drain(r: Relay, now: number): WireSegment[] {
  const out: WireSegment[] = [];
  for (let o = r.pollOutput(now); o; o = r.pollOutput(now)) {
    const seg = parseSegment(o.buffer);
    if (seg) out.push(seg);
  }
  return out;
}

const fromApp = (seg: Partial<TcpRepr>) => craftSegment(APP, DST, { srcPort: APP_PORT, dstPort: 80, ...seg });
const appSyn = () => fromApp({ seq: APP_ISN, flags: TCP_FLAG_SYN, options: { mss: 1460 } as TcpRepr['options'] });
const toApp = (segs: WireSegment[]) => segs.filter((s) => s.dst === '198.18.0.1');
const upstream = (segs: WireSegment[]) => segs.filter((s) => PATHS.includes(s.src));

/** The destination's answer to an upstream segment `to` (addresses and ports swapped). */
function fromDst(to: WireSegment, seg: Partial<TcpRepr>): Buffer {
  return craftSegment(DST, parseIpAddress(to.src).bytes, { srcPort: 80, dstPort: to.tcp.srcPort, window: 65535, ...seg });
}

test('the app\'s SYN is not answered until the upstream answers; a retransmitted SYN does not open a second upstream connection', (t) => {
  const r = relay();
  const out = feed(r, 0, appSyn());
  t.is(toApp(out).length, 0, 'no SYN/ACK to the app yet');
  const up = upstream(out);
  t.is(up.length, 1);
  t.is(up[0]!.src, '198.18.1.2', 'the first subflow leaves by the first path');
  t.is(up[0]!.dst, '192.0.2.10');
  t.is(up[0]!.tcp.flags, TCP_FLAG_SYN);
  t.true(up[0]!.mptcp.some((o) => o.type === 'mp_capable'), 'an MPTCP SYN');
  const again = feed(r, 1000, appSyn());
  t.is(upstream(again).filter((s) => s.tcp.srcPort !== up[0]!.tcp.srcPort).length, 0, 'no second upstream connection');
  t.is(r.counters.get('flowsRequested'), 1);
  t.is(r.counters.get('synRetransmitsWhilePending'), 1);
});

test('an upstream that never answers: the app gets no RST (it times out, as it would have), the flow is forgotten', (t) => {
  const r = relay();
  const first = feed(r, 0, appSyn());
  const port = upstream(first)[0]!.tcp.srcPort;
  let synRetries = 0;
  let now = 0;
  for (let i = 0; i < 100; i++) {
    const at = r.pollTimeout();
    if (at === null) break;
    now = at;
    r.handleTimeout(now);
    const out = feed(r, now, null);
    t.is(toApp(out).length, 0, `nothing to the app at ${now} ms`);
    synRetries += upstream(out).filter((s) => s.tcp.srcPort === port && s.tcp.flags === TCP_FLAG_SYN).length;
  }
  t.true(synRetries >= 3, `the upstream SYN was sent again (${synRetries} times)`);
  t.is(r.counters.get('flowsTimedOut'), 1);
  t.is(r.flowCount, 0);
  t.is(r.pollTimeout(), null, 'nothing left to time');
});

test('an upstream RST (refused): the app\'s SYN gets a RST that acknowledges it', (t) => {
  const r = relay();
  const syn = upstream(feed(r, 0, appSyn()))[0]!;
  const out = feed(r, 5, fromDst(syn, { seq: 0, ack: (syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_RST | TCP_FLAG_ACK }));
  const rst = toApp(out);
  t.is(rst.length, 1);
  t.is(rst[0]!.src, '192.0.2.10', 'from the destination, as the app expects');
  t.is(rst[0]!.tcp.flags, TCP_FLAG_RST | TCP_FLAG_ACK);
  t.is(rst[0]!.tcp.ack, APP_ISN + 1);
  t.is(r.counters.get('flowsRefused'), 1);
  t.is(r.flowCount, 0);
});

test('no path up: the app\'s SYN gets a RST at once and nothing goes upstream', (t) => {
  const r = relay();
  r.pathDown(0, 0);
  r.pathDown(0, 1);
  const out = feed(r, 0, appSyn());
  t.is(upstream(out).length, 0);
  t.is(toApp(out).length, 1);
  t.true((toApp(out)[0]!.tcp.flags & TCP_FLAG_RST) !== 0);
  t.is(r.counters.get('flowsNoPath'), 1);
});

test('a destination without MPTCP: plain TCP upstream; bytes both ways, half-close carried across', (t) => {
  const r = relay();
  const syn = upstream(feed(r, 0, appSyn()))[0]!;
  const DST_ISN = 5000;
  // a SYN/ACK without MP_CAPABLE: fallback (RFC 8684 §3.7)
  const out1 = feed(r, 10, fromDst(syn, { seq: DST_ISN, ack: (syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, options: { mss: 1460 } as TcpRepr['options'] }));
  const synAck = toApp(out1);
  t.is(synAck.length, 1, 'the app\'s SYN is answered now');
  t.is(synAck[0]!.tcp.flags, TCP_FLAG_SYN | TCP_FLAG_ACK);
  t.is(synAck[0]!.tcp.ack, APP_ISN + 1);
  t.is(r.counters.get('flowsFallback'), 1);
  const hostIsn = synAck[0]!.tcp.seq;
  // the app: ACK, data, FIN
  feed(r, 11, fromApp({ seq: APP_ISN + 1, ack: (hostIsn + 1) >>> 0, flags: TCP_FLAG_ACK, window: 65535 }));
  const hello = Buffer.from('hello, destination');
  const out2 = feed(r, 12, fromApp({ seq: APP_ISN + 1, ack: (hostIsn + 1) >>> 0, flags: TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_FIN, window: 65535, payload: hello }));
  const up = upstream(out2).filter((s) => s.tcp.payload.length > 0 || (s.tcp.flags & TCP_FLAG_FIN) !== 0);
  t.deepEqual(Buffer.concat(up.map((s) => s.tcp.payload)).toString(), hello.toString(), 'the app\'s bytes went upstream');
  t.true(up.some((s) => (s.tcp.flags & TCP_FLAG_FIN) !== 0), 'and its FIN after them');
  // the destination answers and closes too
  const world = Buffer.from('hello, app');
  const upSeq = (syn.tcp.seq + 1 + hello.length + 1) >>> 0;
  const out3 = feed(r, 20, fromDst(syn, { seq: DST_ISN + 1, ack: upSeq, flags: TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_FIN, payload: world }));
  const down = toApp(out3);
  t.deepEqual(Buffer.concat(down.map((s) => s.tcp.payload)).toString(), world.toString(), 'the destination\'s bytes reached the app');
  t.true(down.some((s) => (s.tcp.flags & TCP_FLAG_FIN) !== 0), 'and its FIN');
  t.is(r.counters.get('bytesToUpstream'), hello.length);
  t.is(r.counters.get('bytesToHost'), world.length);
});

test('the app closes while its last bytes still wait for room upstream: they and the FIN go on, no reset', (t) => {
  // bench/simult (an upload over a slow path): the destination had sent its few bytes and its
  // FIN, the app then wrote the rest and closed; both FINs were exchanged on the app's side and
  // its connection reached CLOSED (TIME-WAIT over) while some of its bytes were still in mptun,
  // held back by the upstream. The upstream was reset then: the destination never got the end.
  const r = relay(undefined, undefined, { sendBufferSize: 8000, timeWaitMs: 100 });
  const syn = upstream(feed(r, 0, appSyn()))[0]!;
  const DST_ISN = 5000;
  const synAck = toApp(feed(r, 10, fromDst(syn, { seq: DST_ISN, ack: (syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, window: 4000, options: { mss: 1000 } as TcpRepr['options'] })))[0]!;
  const hostIsn = synAck.tcp.seq;
  feed(r, 11, fromApp({ seq: APP_ISN + 1, ack: (hostIsn + 1) >>> 0, flags: TCP_FLAG_ACK, window: 65535 }));
  // the destination's bytes and FIN first: the app gets them and mptun's FIN
  const bye = Buffer.from('bye');
  let sent = feed(r, 12, fromDst(syn, { seq: DST_ISN + 1, ack: (syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_FIN, window: 4000, payload: bye }));
  t.true(toApp(sent).some((s) => (s.tcp.flags & TCP_FLAG_FIN) !== 0), 'the destination\'s FIN reached the app');
  // the app: 40 000 bytes (more than the upstream takes: 8000 in its buffer) and its FIN,
  // acknowledging mptun's FIN, so its side goes to TIME-WAIT and, 100 ms on, CLOSED
  const data = Buffer.alloc(40_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const appAck = (hostIsn + 1 + bye.length + 1) >>> 0;
  for (let off = 0; off < data.length; off += 1000) {
    const fin = off + 1000 >= data.length ? TCP_FLAG_FIN : 0;
    sent.push(...feed(r, 13, fromApp({ seq: APP_ISN + 1 + off, ack: appAck, flags: TCP_FLAG_ACK | TCP_FLAG_PSH | fin, window: 65535, payload: data.subarray(off, off + 1000) })));
  }
  // the destination takes 4000 bytes a round trip of 100 ms
  const got: Buffer[] = [];
  let upFin = false;
  let rst = false;
  let next = (syn.tcp.seq + 1) >>> 0;
  for (let now = 20; now < 60_000 && !upFin; now += 100) {
    r.handleTimeout(now);
    sent.push(...feed(r, now, null));
    for (const s of upstream(sent)) {
      if ((s.tcp.flags & TCP_FLAG_RST) !== 0) rst = true;
      if (s.tcp.seq === next && s.tcp.payload.length > 0) {
        got.push(Buffer.from(s.tcp.payload));
        next = (next + s.tcp.payload.length) >>> 0;
      }
      if ((s.tcp.flags & TCP_FLAG_FIN) !== 0 && s.tcp.seq === next) {
        upFin = true;
        next = (next + 1) >>> 0;
      }
    }
    sent = feed(r, now + 1, fromDst(syn, { seq: DST_ISN + 1 + bye.length + 1, ack: next, flags: TCP_FLAG_ACK, window: 4000 }));
  }
  t.false(rst, 'no reset upstream');
  t.true(Buffer.concat(got).equals(data), 'every byte of the app reached the destination, in order');
  t.true(upFin, 'and the app\'s FIN after them');
  t.is(r.counters.get('flowsDrainAfterHostClose'), 1, 'the app\'s side closed before its bytes had left');
});

test('the app resets: the upstream connection is reset too', (t) => {
  const r = relay();
  const syn = upstream(feed(r, 0, appSyn()))[0]!;
  const synAck = toApp(feed(r, 10, fromDst(syn, { seq: 5000, ack: (syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK })))[0]!;
  feed(r, 11, fromApp({ seq: APP_ISN + 1, ack: (synAck.tcp.seq + 1) >>> 0, flags: TCP_FLAG_ACK, window: 65535 }));
  const out = feed(r, 12, fromApp({ seq: APP_ISN + 1, ack: 0, flags: TCP_FLAG_RST }));
  t.true(upstream(out).some((s) => (s.tcp.flags & TCP_FLAG_RST) !== 0), 'a RST upstream');
  t.is(r.counters.get('flowsResetByApp'), 1);
});

test('a SYN from or to a path\'s private address is nobody\'s app: refused with a RST, no flow', (t) => {
  const r = relay();
  // to a path's address: the MPTCP side has no listener
  const a = feed(r, 0, craftSegment(DST, parseIpAddress('198.18.1.2').bytes, { srcPort: 80, dstPort: 33333, seq: 1, flags: TCP_FLAG_SYN }));
  t.deepEqual(a.map((s) => [s.src, s.tcp.flags]), [['198.18.1.2', TCP_FLAG_RST | TCP_FLAG_ACK]]);
  // from a path's address: the host side refuses it
  const b = feed(r, 1, craftSegment(parseIpAddress('198.18.2.2').bytes, DST, { srcPort: 33333, dstPort: 80, seq: 1, flags: TCP_FLAG_SYN }));
  t.deepEqual(b.map((s) => [s.dst, s.tcp.flags]), [['198.18.2.2', TCP_FLAG_RST | TCP_FLAG_ACK]]);
  t.is(r.counters.get('synFromPathAddress'), 1);
  t.is(r.counters.get('flowsRequested'), 0);
  t.is(r.flowCount, 0);
});

test('an MPTCP destination: the MP_CAPABLE SYN/ACK completes the upstream handshake, then the app\'s SYN is answered', (t) => {
  const r = relay();
  const syn = upstream(feed(r, 0, appSyn()))[0]!;
  // RFC 8684 §3.1: the SYN/ACK carries the listener's key; flag H: HMAC-SHA256
  const out = feed(r, 10, craftSegment(DST, parseIpAddress(syn.src).bytes, {
    srcPort: 80, dstPort: syn.tcp.srcPort, seq: 9000, ack: (syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, window: 65535,
  }, [{ type: 'mp_capable', version: 1, flags: { checksumRequired: false, extensibility: false, noMoreSubflowAddr: false, hmacSha256: true }, senderKey: 0x0123456789abcdefn }]));
  const third = upstream(out).find((s) => s.tcp.flags === TCP_FLAG_ACK);
  t.truthy(third, 'the third ACK went upstream');
  const mpc = third!.mptcp.find((o) => o.type === 'mp_capable');
  t.is(mpc?.type === 'mp_capable' ? mpc.receiverKey : undefined, 0x0123456789abcdefn, 'with the listener\'s key echoed');
  const synAck = toApp(out);
  t.is(synAck.length, 1);
  t.is(synAck[0]!.tcp.flags, TCP_FLAG_SYN | TCP_FLAG_ACK);
  t.is(r.counters.get('flowsEstablished'), 1);
  t.is(r.counters.get('flowsFallback'), 0);
});

// Dual stack: each path has an IPv4 and (but the second) an IPv6 private source; a connection's
// subflows leave from the sources of its own IP version only.
const APP6 = parseIpAddress('fd6d:7074:756e::1').bytes;
const DST6 = parseIpAddress('2001:db8::10').bytes;

function dualStackRelay(): Relay {
  const rng = new Rng(11);
  return new Relay({
    stack: {
      random: (n) => {
        const b = Buffer.allocUnsafe(n);
        for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff;
        return b;
      },
      isnSecret: Buffer.from('relay test secret'),
      mtu: 1500,
    },
    paths: [
      { address: parseIpAddress('198.18.1.2').bytes, backup: false, up: true, address6: parseIpAddress('fd6d:7074:756e:1::2').bytes, up6: true },
      { address: parseIpAddress('198.18.2.2').bytes, backup: false, up: true },
      { address: parseIpAddress('198.18.3.2').bytes, backup: false, up: true, address6: parseIpAddress('fd6d:7074:756e:3::2').bytes, up6: true },
    ],
  });
}

/** The upstream handshake of an MPTCP destination, answered from `dst`; what the relay sends then. */
function mptcpHandshake(r: Relay, syn: WireSegment, dst: Buffer): WireSegment[] {
  const mpc = { type: 'mp_capable' as const, version: 1, flags: { checksumRequired: false, extensibility: false, noMoreSubflowAddr: false, hmacSha256: true } };
  const out = feed(r, 10, craftSegment(dst, parseIpAddress(syn.src).bytes, {
    srcPort: 80, dstPort: syn.tcp.srcPort, seq: 9000, ack: (syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, window: 65535,
  }, [{ ...mpc, senderKey: 0x0123456789abcdefn }]));
  const third = out.find((s) => s.src === syn.src && s.tcp.flags === TCP_FLAG_ACK)!;
  // the listener answers with a DATA_ACK (any value: the connection is then fully established)
  return [...out, ...feed(r, 20, craftSegment(dst, parseIpAddress(syn.src).bytes, {
    srcPort: 80, dstPort: syn.tcp.srcPort, seq: 9001, ack: third.tcp.seq, flags: TCP_FLAG_ACK, window: 65535,
  }, [{ type: 'dss', dataFin: false, dataAck: 0n }]))];
}

test('dual stack: an IPv6 connection opens subflows from the paths\' IPv6 sources only, an IPv4 one from their IPv4 sources', (t) => {
  const r = dualStackRelay();
  const syn6 = feed(r, 0, craftSegment(APP6, DST6, { srcPort: APP_PORT, dstPort: 80, seq: APP_ISN, flags: TCP_FLAG_SYN, options: { mss: 1440 } as TcpRepr['options'] }));
  t.deepEqual(syn6.map((s) => [s.src, s.dst]), [['fd6d:7074:756e:1::2', '2001:db8::10']], 'the first subflow from the first path\'s IPv6 source');
  t.true(syn6[0]!.tcp.options.mss! <= 1500 - 40 - 20, `an MSS that fits IPv6 in the MTU: ${syn6[0]!.tcp.options.mss}`);
  const after = mptcpHandshake(r, syn6[0]!, DST6);
  const joins = after.filter((s) => s.tcp.flags === TCP_FLAG_SYN && s.mptcp.some((o) => o.type === 'mp_join_syn'));
  t.deepEqual(joins.map((s) => s.src), ['fd6d:7074:756e:3::2'], 'a join from the other path with IPv6, none from the IPv4-only path');

  const syn4 = feed(r, 30, craftSegment(APP, DST, { srcPort: APP_PORT + 1, dstPort: 80, seq: APP_ISN, flags: TCP_FLAG_SYN, options: { mss: 1460 } as TcpRepr['options'] }));
  t.deepEqual(syn4.filter((s) => s.tcp.flags === TCP_FLAG_SYN).map((s) => s.src), ['198.18.1.2']);
  t.true(syn4[0]!.tcp.options.mss! <= 1500 - 20 - 20);
});

test('dual stack: a path\'s IPv6 half down is not used by IPv6 connections; its IPv4 half still is; no IPv6 path up: RST', (t) => {
  const r = dualStackRelay();
  r.pathDown(0, 0, 6);
  const syn6 = feed(r, 0, craftSegment(APP6, DST6, { srcPort: APP_PORT, dstPort: 80, seq: APP_ISN, flags: TCP_FLAG_SYN }));
  t.deepEqual(syn6.map((s) => s.src), ['fd6d:7074:756e:3::2'], 'the first live IPv6 path');
  const syn4 = feed(r, 1, appSyn());
  t.deepEqual(syn4.map((s) => s.src), ['198.18.1.2'], 'IPv4 still leaves by path 0');
  r.pathDown(2, 2, 6);
  const refused = feed(r, 3, craftSegment(APP6, DST6, { srcPort: APP_PORT + 2, dstPort: 80, seq: APP_ISN, flags: TCP_FLAG_SYN }));
  t.deepEqual(refused.map((s) => [s.dst, s.tcp.flags & TCP_FLAG_RST]), [['fd6d:7074:756e::1', TCP_FLAG_RST]], 'no IPv6 path up: a RST to the app');
  t.is(r.counters.get('flowsNoPath'), 1);
});

// Fuzz finding: an IPv6 SYN from the host with IPv4 paths only opened an upstream subflow from
// an IPv4 path to the IPv6 destination, whose every segment threw when emitted, at every later
// poll. Now the relay opens upstream only from a path of the destination's family; with none,
// the app's SYN is refused with a RST at once and counted.
test('an IPv6 SYN with IPv4 paths only: a RST at once, counted, nothing upstream, and the relay goes on', (t) => {
  const r = relay();
  const app6 = parseIpAddress('fd00:1::1').bytes;
  const dst6 = parseIpAddress('2001:db8::10').bytes;
  const syn6 = craftSegment(app6, dst6, { srcPort: APP_PORT, dstPort: 80, seq: APP_ISN, flags: TCP_FLAG_SYN, options: { mss: 1440 } as TcpRepr['options'] });
  const out = feed(r, 0, syn6);
  t.is(upstream(out).length, 0, 'nothing upstream');
  const rst = out.filter((s) => s.dst === 'fd00:1::1');
  t.is(rst.length, 1);
  t.true((rst[0]!.tcp.flags & TCP_FLAG_RST) !== 0);
  t.is(r.counters.get('flowsNoPathOfFamily'), 1);
  t.is(r.flowCount, 0);
  for (let now = 1; now < 5000; now += 500) t.notThrows(() => feed(r, now, null));
  // an IPv4 flow still opens
  t.is(upstream(feed(r, 6000, appSyn())).length, 1);
});

test('the scheduler policy: the upstream connection gets the scheduler the destination\'s rule names, others the default', (t) => {
  const seen: string[] = [];
  const r = relay((d) => {
    seen.push(`${d.addr.join('.')}:${d.port}`);
    return d.port === 80 ? 'redundant' : undefined;
  });
  feed(r, 0, appSyn());
  feed(r, 0, craftSegment(APP, DST, { srcPort: APP_PORT + 1, dstPort: 443, seq: APP_ISN, flags: TCP_FLAG_SYN, options: { mss: 1460 } as TcpRepr['options'] }));
  t.deepEqual(seen, ['192.0.2.10:80', '192.0.2.10:443'], 'asked once per upstream connection, with the destination');
  t.deepEqual([...r.upstream.connections].map((c) => c.info().scheduler), ['redundant', 'lowest-rtt']);
});

test('a SYN flood toward a destination that never answers: the pending upstream opens stop at maxPending, the rest is dropped and counted, nothing grows', (t) => {
  const r = relay(undefined, 64);
  let upstreamSyns = 0;
  for (let i = 0; i < 1000; i++) {
    const syn = craftSegment(APP, DST, { srcPort: 1024 + i, dstPort: 80, seq: i * 7919, flags: TCP_FLAG_SYN });
    const out = feed(r, i * 0.01, syn);
    upstreamSyns += upstream(out).filter((s) => s.tcp.flags === TCP_FLAG_SYN).length;
    t.is(toApp(out).length, 0);
  }
  t.is(upstreamSyns, 64, 'one upstream SYN per pending open, no more');
  t.is(r.flowCount, 64);
  t.is(r.counters.get('flowsRequested'), 64);
  t.is(r.counters.get('flowsPendingFull'), 1000 - 64);
  // the flood goes on: still bounded; once the pending opens time out, new SYNs are served again
  let now = 10;
  for (let k = 0; k < 5000 && r.pollTimeout() !== null; k++) {
    now = r.pollTimeout()!;
    r.handleTimeout(now);
    feed(r, now, null);
  }
  t.is(r.flowCount, 0);
  t.is(r.counters.get('flowsTimedOut'), 64);
  const out = feed(r, now + 1, craftSegment(APP, DST, { srcPort: 60000, dstPort: 80, seq: 1, flags: TCP_FLAG_SYN }));
  t.is(upstream(out).length, 1, 'a new SYN opens upstream again');
});
