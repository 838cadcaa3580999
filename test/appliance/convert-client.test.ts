// The relay with a concentrator (`mptun up --server`), driven by hand-made packets and virtual
// time: the concentrator is played by hand (plain TCP, as when a path strips MPTCP options, or
// an MP_CAPABLE SYN/ACK). The app is 198.18.0.1, its destination 192.0.2.10:80, the
// concentrator 203.0.113.5:7443.
import test from 'ava';
import { Relay } from '../../src/appliance/relay.js';
import { ConvertClient, ICMPV4_DEST_UNREACHABLE, ICMPV6_DEST_UNREACHABLE, icmpUnreachableForSyn } from '../../src/appliance/convert-client.js';
import { pseudoHeaderSumV6, verifyChecksum } from '../../src/ip/checksum.js';
import { IpPrefix, parseIpAddress } from '../../src/ip/address.js';
import { CookieVerifier } from '../../src/convert/cookie.js';
import {
  CONVERT_ERR_CONNECTION_RESET, CONVERT_ERR_DESTINATION_UNREACHABLE, CONVERT_ERR_NOT_AUTHORIZED, CONVERT_POOL_MAX_AGE_MS, CONVERT_TLV_CONNECT, connectRequest, encodeReply, parseConvert,
} from '../../src/convert/message.js';
import { TCP_FLAG_ACK, TCP_FLAG_FIN, TCP_FLAG_PSH, TCP_FLAG_RST, TCP_FLAG_SYN, type TcpRepr } from '../../src/tcp/segment.js';
import { craftSegment, parseSegment, type WireSegment } from '../mptcp/simhost.js';
import { Rng } from '../sim/rng.js';

const APP = parseIpAddress('198.18.0.1').bytes;
const DST = parseIpAddress('192.0.2.10').bytes;
const CON = parseIpAddress('203.0.113.5').bytes;
const CON_PORT = 7443;
const PATHS = ['198.18.1.2', '198.18.2.2'];
const APP_PORT = 40000;
const APP_ISN = 1000;
const CON_ISN = 9000;
const KEY = Buffer.alloc(32, 7);
const NOW_S = 1_800_000_000;

function relay(direct: string[] = [], pool = 0): { r: Relay; convert: ConvertClient; logs: string[] } {
  const rng = new Rng(7);
  const random = (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff;
    return b;
  };
  const logs: string[] = [];
  const convert = new ConvertClient({
    server: { addr: CON, port: CON_PORT }, key: KEY, direct: direct.map((d) => IpPrefix.parse(d)), random, nowS: () => NOW_S,
    log: (_level, line) => logs.push(line), pool,
  });
  const r = new Relay({
    stack: { random, isnSecret: Buffer.from('relay test secret'), mtu: 1500 },
    paths: PATHS.map((a) => ({ address: parseIpAddress(a).bytes, backup: false, up: true })),
    convert,
  });
  return { r, convert, logs };
}

function feed(r: Relay, now: number, packet: Buffer | null): { segs: WireSegment[]; raw: Buffer[] } {
  if (packet) r.handleInput(now, 0, packet, false);
  r.process(now);
  const segs: WireSegment[] = [];
  const raw: Buffer[] = [];
  for (let o = r.pollOutput(now); o; o = r.pollOutput(now)) {
    raw.push(Buffer.from(o.buffer));
    const seg = parseSegment(o.buffer);
    if (seg) segs.push(seg);
  }
  return { segs, raw };
}

const fromApp = (seg: Partial<TcpRepr>) => craftSegment(APP, DST, { srcPort: APP_PORT, dstPort: 80, ...seg });
const appSyn = (dst = DST) => craftSegment(APP, dst, { srcPort: APP_PORT, dstPort: 80, seq: APP_ISN, flags: TCP_FLAG_SYN, options: { mss: 1460 } as TcpRepr['options'] });
const toApp = (segs: WireSegment[]) => segs.filter((s) => s.dst === '198.18.0.1');
const upstream = (segs: WireSegment[]) => segs.filter((s) => PATHS.includes(s.src));
/** The concentrator's segment to the upstream subflow `to` (plain TCP: no MPTCP options). */
const fromCon = (to: WireSegment, seg: Partial<TcpRepr>) =>
  craftSegment(CON, parseIpAddress(to.src).bytes, { srcPort: CON_PORT, dstPort: to.tcp.srcPort, window: 65535, ...seg });

/** The app's SYN, the upstream SYN to the concentrator, and the concentrator's SYN/ACK acknowledging `acked` bytes of its data. */
function handshake(acked: 'all' | 'none') {
  const { r, convert, logs } = relay();
  const syn = upstream(feed(r, 0, appSyn()).segs)[0]!;
  const len = syn.tcp.payload.length;
  const ack = (syn.tcp.seq + 1 + (acked === 'all' ? len : 0)) >>> 0;
  const out = feed(r, 10, fromCon(syn, { seq: CON_ISN, ack, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, options: { mss: 1460 } as TcpRepr['options'] }));
  return { r, convert, logs, syn, out, dataSeq: ack };
}

test('the upstream goes to the concentrator, and its SYN carries the Convert message: Connect with the app\'s destination, a Cookie the server\'s key accepts', (t) => {
  const { r, convert } = relay();
  const out = feed(r, 0, appSyn()).segs;
  t.is(toApp(out).length, 0, 'the app waits for the concentrator\'s reply');
  const syn = upstream(out)[0]!;
  t.is(syn.dst, '203.0.113.5');
  t.is(syn.tcp.dstPort, CON_PORT);
  t.is(syn.tcp.flags, TCP_FLAG_SYN);
  t.true(syn.mptcp.some((o) => o.type === 'mp_capable'), 'an MP_CAPABLE SYN');
  const p = parseConvert(syn.tcp.payload);
  if (p.kind !== 'message') return t.fail(p.kind);
  t.is(p.length, syn.tcp.payload.length, 'the SYN\'s payload is the Convert message, whole');
  t.is(p.message.tlvs[0]!.type, CONVERT_TLV_CONNECT);
  const req = connectRequest(p.message);
  if ('error' in req) return t.fail(String(req.error));
  t.is(req.text, '192.0.2.10');
  t.is(req.port, 80);
  t.is(new CookieVerifier(KEY).verify(NOW_S, req.cookie, req.address, req.port), null, 'the concentrator takes the cookie');
  t.is(new CookieVerifier(Buffer.alloc(32, 8)).verify(NOW_S, req.cookie, req.address, req.port), 'cookieBadMac', 'another key does not');
  t.like(convert.counters.snapshot(), { convertFlows: 1, convertInSyn: 1 });
});

test('SYN data acknowledged: nothing is sent again; the reply header is stripped, the app\'s SYN answered, the server\'s bytes after it reach the app', (t) => {
  const { r, convert, out, syn, dataSeq } = handshake('all');
  t.is(upstream(out.segs).filter((s) => s.tcp.payload.length > 0).length, 0, 'the message is not sent again');
  t.is(toApp(out.segs).length, 0, 'no SYN/ACK to the app before the reply');
  t.is(convert.counters.get('convertSynDataAcked'), 1);
  // the concentrator's reply: the header alone (the destination accepted), then the server's bytes
  const reply = Buffer.concat([encodeReply(), Buffer.from('220 hello\r\n')]);
  const out2 = feed(r, 20, fromCon(syn, { seq: CON_ISN + 1, ack: dataSeq, flags: TCP_FLAG_ACK | TCP_FLAG_PSH, payload: reply })).segs;
  const synAck = toApp(out2);
  t.is(synAck.length, 1);
  t.is(synAck[0]!.tcp.flags, TCP_FLAG_SYN | TCP_FLAG_ACK);
  t.is(synAck[0]!.src, '192.0.2.10', 'from the destination, as the app expects');
  const out3 = feed(r, 21, fromApp({ seq: APP_ISN + 1, ack: (synAck[0]!.tcp.seq + 1) >>> 0, flags: TCP_FLAG_ACK, window: 65535 })).segs;
  t.is(Buffer.concat(toApp(out3).map((s) => s.tcp.payload)).toString(), '220 hello\r\n', 'the app sees the server\'s bytes, not the header');
  t.is(convert.counters.get('convertAccepted'), 1);
});

test('SYN data not acknowledged: the same bytes go again as the first data after the handshake', (t) => {
  const { convert, out, syn } = handshake('none');
  const data = upstream(out.segs).filter((s) => s.tcp.payload.length > 0);
  t.is(data.length, 1);
  t.is(data[0]!.tcp.seq, (syn.tcp.seq + 1) >>> 0, 'right after the SYN');
  t.deepEqual(data[0]!.tcp.payload, syn.tcp.payload, 'the Convert message again');
  t.is(convert.counters.get('convertSynDataResent'), 1);
});

test('Error 96 (the destination refused): a RST to the app, counted', (t) => {
  const { r, convert, syn, dataSeq } = handshake('all');
  const out = feed(r, 20, fromCon(syn, { seq: CON_ISN + 1, ack: dataSeq, flags: TCP_FLAG_ACK | TCP_FLAG_PSH, payload: encodeReply({ code: CONVERT_ERR_CONNECTION_RESET }) })).segs;
  const rst = toApp(out);
  t.is(rst.length, 1);
  t.is(rst[0]!.tcp.flags, TCP_FLAG_RST | TCP_FLAG_ACK);
  t.is(rst[0]!.tcp.ack, APP_ISN + 1);
  t.is(convert.counters.get('convertRefused'), 1);
  t.is(r.counters.get('flowsRefused'), 1);
});

test('Error 32 (our key refused): a RST to the app, counted and logged', (t) => {
  const { r, convert, logs, syn, dataSeq } = handshake('all');
  const out = feed(r, 20, fromCon(syn, { seq: CON_ISN + 1, ack: dataSeq, flags: TCP_FLAG_ACK | TCP_FLAG_PSH, payload: encodeReply({ code: CONVERT_ERR_NOT_AUTHORIZED }) })).segs;
  t.true((toApp(out)[0]!.tcp.flags & TCP_FLAG_RST) !== 0);
  t.is(convert.counters.get('convertNotAuthorized'), 1);
  t.regex(logs.join('\n'), /refused our key \(Not Authorized\) for 192\.0\.2\.10:80/);
});

test('Error 97 (unreachable, ICMP code 1): an ICMP host unreachable to the app that quotes its SYN, no RST', (t) => {
  const { r, convert, syn, dataSeq } = handshake('all');
  const out = feed(r, 20, fromCon(syn, { seq: CON_ISN + 1, ack: dataSeq, flags: TCP_FLAG_ACK | TCP_FLAG_PSH, payload: encodeReply({ code: CONVERT_ERR_DESTINATION_UNREACHABLE, value: 1 }) }));
  t.is(toApp(out.segs).length, 0, 'no TCP segment to the app');
  const icmp = out.raw.filter((p) => p[9] === 1);
  t.is(icmp.length, 1);
  const ip = icmp[0]!;
  t.is(ip.subarray(12, 16).join('.'), '192.0.2.10', 'from the destination');
  t.is(ip.subarray(16, 20).join('.'), '198.18.0.1', 'to the app');
  t.is(ip[20], ICMPV4_DEST_UNREACHABLE);
  t.is(ip[21], 1, 'host unreachable');
  const quoted = ip.subarray(28);
  const original = appSyn();
  t.deepEqual(quoted, original.subarray(0, 28), 'the SYN\'s IP header and first 8 bytes of TCP (ports, sequence number)');
  t.is(convert.counters.get('convertUnreachable'), 1);
  t.is(r.flowCount, 0);
});

test('--direct destinations and the concentrator itself are not sent to the concentrator', (t) => {
  const { r, convert } = relay(['192.0.2.0/24']);
  const direct = upstream(feed(r, 0, appSyn()).segs)[0]!;
  t.is(direct.dst, '192.0.2.10');
  t.is(direct.tcp.payload.length, 0, 'no Convert message');
  const self = upstream(feed(r, 1, appSyn(CON)).segs)[0]!;
  t.is(self.dst, '203.0.113.5');
  t.is(self.tcp.dstPort, 80, 'to the app\'s own port, not the concentrator\'s service');
  t.like(convert.counters.snapshot(), { convertDirect: 1, convertSelf: 1, convertFlows: 0 });
});

test('Error 97 for an IPv6 app: an ICMPv6 Destination Unreachable (RFC 4443 §3.1) from the destination, quoting the whole SYN, checksum over the pseudo-header', (t) => {
  const app6 = parseIpAddress('fd6d:7074:756e:1::2').bytes;
  const dst6 = parseIpAddress('2001:db8::10').bytes;
  const syn = craftSegment(Buffer.from(app6), Buffer.from(dst6), { srcPort: APP_PORT, dstPort: 80, seq: APP_ISN, flags: TCP_FLAG_SYN, options: { mss: 1440 } as TcpRepr['options'] });
  const headroom = 10;
  const out = icmpUnreachableForSyn(syn, 3, headroom)!;
  t.truthy(out);
  t.deepEqual([...out.subarray(0, headroom)], new Array<number>(headroom).fill(0), 'the headroom is left zero');
  const ip = out.subarray(headroom);
  t.is(ip[0]! >>> 4, 6);
  t.is(ip[6], 58, 'Next Header: ICMPv6');
  t.is(ip[7], 64, 'Hop Limit');
  t.deepEqual(ip.subarray(8, 24), Buffer.from(dst6), 'from the destination');
  t.deepEqual(ip.subarray(24, 40), Buffer.from(app6), 'to the app');
  const icmp = ip.subarray(40);
  t.is(ip.readUInt16BE(4), icmp.length, 'Payload Length');
  t.is(icmp[0], ICMPV6_DEST_UNREACHABLE);
  t.is(icmp[1], 3, 'address unreachable');
  t.is(icmp.readUInt32BE(4), 0, 'Unused');
  t.deepEqual(icmp.subarray(8), syn, 'the whole SYN (it is far below the minimum MTU)');
  t.true(verifyChecksum(icmp, 0, icmp.length, pseudoHeaderSumV6(ip, ip, 58, icmp.length, 8, 24)), 'the checksum covers the pseudo-header');
  t.is(icmpUnreachableForSyn(Buffer.from([0x50, 0, 0, 0]), 1, 0), null, 'not an IP packet: nothing');
});

test('an MPTCP concentrator: the third ACK carries both keys and a DATA_ACK, a 4-octet one beside timestamps (Linux pushes its reply to the SYN data on a DATA_ACK only)', (t) => {
  const { r } = relay();
  const syn = upstream(feed(r, 0, appSyn()).segs)[0]!;
  const ts = syn.tcp.options.timestamps;
  t.truthy(ts, 'the SYN offers timestamps');
  const synAck = craftSegment(CON, parseIpAddress(syn.src).bytes, {
    srcPort: CON_PORT, dstPort: syn.tcp.srcPort, seq: CON_ISN, ack: (syn.tcp.seq + 1 + syn.tcp.payload.length) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, window: 65535,
    options: { mss: 1460, timestamps: { tsVal: 77, tsEcr: ts!.tsVal } } as TcpRepr['options'],
  }, [{ type: 'mp_capable', version: 1, flags: { checksumRequired: false, extensibility: false, noMoreSubflowAddr: false, hmacSha256: true, unassigned: 0 }, senderKey: 0x1122334455667788n }]);
  const third = upstream(feed(r, 40, synAck).segs);
  t.is(third.length, 1);
  t.is(third[0]!.tcp.flags, TCP_FLAG_ACK);
  t.truthy(third[0]!.tcp.options.timestamps, 'with timestamps');
  const mpc = third[0]!.mptcp.find((o) => o.type === 'mp_capable');
  t.like(mpc, { receiverKey: 0x1122334455667788n }, 'MP_CAPABLE with the concentrator\'s key');
  t.true(mpc?.type === 'mp_capable' && mpc.senderKey !== undefined, 'and ours');
  const dss = third[0]!.mptcp.find((o) => o.type === 'dss');
  t.truthy(dss, 'and a DSS');
  t.like(dss, { dataAck8: false }, 'whose DATA_ACK is 4 octets: 12 (timestamps) + 20 (MP_CAPABLE) + 8 = 40');
});

// The pool (`mptun up --server-pool N`, default 2): connections to the concentrator opened ahead
// of the apps, so that an app's connection costs one round trip to the concentrator, not two.

/** The concentrator's SYN/ACK to the pooled SYN `syn` (plain TCP: the connection falls back). */
const poolSynAck = (syn: WireSegment) => fromCon(syn, { seq: CON_ISN, ack: (syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, options: { mss: 1460 } as TcpRepr['options'] });
const syns = (segs: WireSegment[]) => upstream(segs).filter((s) => s.tcp.flags === TCP_FLAG_SYN);

/** A relay whose pool of `n` is open and established; the pooled SYNs. */
function pooled(n = 2) {
  const { r, convert, logs } = relay([], n);
  const opened = syns(feed(r, 0, null).segs);
  for (const syn of opened) feed(r, 5, poolSynAck(syn));
  return { r, convert, logs, opened };
}

test('the pool: connections to the concentrator open ahead of any app, their SYNs without data; an app\'s SYN takes an established one: the Convert message goes at once as data, and a new one refills the pool', (t) => {
  const { r, convert, opened } = pooled(2);
  t.is(opened.length, 2, 'two SYNs before any app');
  for (const syn of opened) {
    t.is(syn.dst, '203.0.113.5');
    t.is(syn.tcp.dstPort, CON_PORT);
    t.is(syn.tcp.payload.length, 0, 'nothing to say yet: no SYN data');
  }
  t.like(convert.counters.snapshot(), { poolOpened: 2, poolReady: 2 });
  const out = feed(r, 10, appSyn()).segs;
  t.is(toApp(out).length, 0, 'the app waits for the concentrator\'s reply');
  const data = upstream(out).filter((s) => s.tcp.payload.length > 0);
  t.is(data.length, 1, 'the Convert message, at once');
  const taken = opened.find((s) => s.tcp.srcPort === data[0]!.tcp.srcPort && s.src === data[0]!.src);
  t.truthy(taken, 'on the oldest pooled connection');
  const p = parseConvert(data[0]!.tcp.payload);
  if (p.kind !== 'message') return t.fail(p.kind);
  const req = connectRequest(p.message);
  if ('error' in req) return t.fail(String(req.error));
  t.is(req.text, '192.0.2.10');
  t.is(new CookieVerifier(KEY).verify(NOW_S, req.cookie, req.address, req.port), null, 'a cookie made now, for this destination');
  t.is(syns(out).length, 1, 'one SYN: the pool\'s new connection');
  t.is(syns(out)[0]!.tcp.payload.length, 0);
  t.like(convert.counters.snapshot(), { poolUsed: 1, poolOpened: 3, poolEmpty: 0, convertInSyn: 0 });
  // the reply answers the app's SYN, one round trip after it
  const reply = fromCon(taken!, { seq: CON_ISN + 1, ack: (data[0]!.tcp.seq + data[0]!.tcp.payload.length) >>> 0, flags: TCP_FLAG_ACK | TCP_FLAG_PSH, payload: encodeReply() });
  const synAck = toApp(feed(r, 30, reply).segs);
  t.is(synAck.length, 1);
  t.is(synAck[0]!.tcp.flags, TCP_FLAG_SYN | TCP_FLAG_ACK);
  t.is(convert.counters.get('convertAccepted'), 1);
});

test('the pool: with none ready, the app\'s connection opens its own, the Convert message in its SYN (counted)', (t) => {
  const { r, convert } = relay([], 2);
  feed(r, 0, null); // the pool's SYNs, not answered yet
  const out = feed(r, 1, appSyn()).segs;
  const own = syns(out).filter((s) => s.tcp.payload.length > 0);
  t.is(own.length, 1, 'a SYN with the Convert message');
  t.like(convert.counters.snapshot(), { poolEmpty: 1, poolUsed: 0, convertInSyn: 1 });
});

test(`the pool: a connection unused for ${CONVERT_POOL_MAX_AGE_MS / 1000} s is closed with a FIN and replaced (the concentrator waits for a first byte a while only)`, (t) => {
  const { r, convert, opened } = pooled(1);
  // opened at 0
  t.is(r.pollTimeout(), CONVERT_POOL_MAX_AGE_MS, 'the timer is its age limit');
  t.is(upstream(feed(r, CONVERT_POOL_MAX_AGE_MS - 1, null).segs).length, 0, 'not before');
  r.handleTimeout(CONVERT_POOL_MAX_AGE_MS);
  const out = feed(r, CONVERT_POOL_MAX_AGE_MS, null).segs;
  const fin = upstream(out).filter((s) => (s.tcp.flags & TCP_FLAG_FIN) !== 0);
  t.is(fin.length, 1, 'a FIN on the old one');
  t.is(fin[0]!.tcp.srcPort, opened[0]!.tcp.srcPort);
  t.is(syns(out).length, 1, 'a SYN for its replacement');
  t.like(convert.counters.snapshot(), { poolRetired: 1, poolOpened: 2 });
});

test('the pool: a connection refused by the concentrator is counted, and the next waits a back-off that doubles (1 s, 2 s)', (t) => {
  const { r, convert } = relay([], 1);
  let syn = syns(feed(r, 0, null).segs)[0]!;
  const refuse = (s: WireSegment, now: number) => feed(r, now, fromCon(s, { seq: 0, ack: (s.tcp.seq + 1) >>> 0, flags: TCP_FLAG_RST | TCP_FLAG_ACK }));
  t.is(syns(refuse(syn, 10).segs).length, 0, 'not again at once');
  t.like(convert.counters.snapshot(), { poolFailed: 1, poolOpened: 1 });
  t.is(r.pollTimeout(), 1010, 'after 1 s');
  r.handleTimeout(1010);
  syn = syns(feed(r, 1010, null).segs)[0]!;
  t.truthy(syn, 'opened again after 1 s');
  refuse(syn, 1020);
  t.is(r.pollTimeout(), 3020, 'then after 2 s');
  t.like(convert.counters.snapshot(), { poolFailed: 2, poolOpened: 2 });
  // an app meanwhile opens its own connection: it is not refused for the pool's troubles
  t.is(syns(feed(r, 1500, appSyn()).segs).filter((s) => s.tcp.payload.length > 0).length, 1);
});

test('the pool: the pooled connection an app took is reset before any reply (the concentrator restarted): the app\'s connection opens its own, the Convert message in its SYN, and is not refused', (t) => {
  const { r, convert } = pooled(1);
  const out = feed(r, 10, appSyn()).segs;
  const data = upstream(out).find((s) => s.tcp.payload.length > 0)!;
  const rst = fromCon(data, { seq: CON_ISN + 1, ack: 0, flags: TCP_FLAG_RST });
  const out2 = feed(r, 20, rst).segs;
  t.is(toApp(out2).length, 0, 'no RST to the app');
  const own = syns(out2).filter((s) => s.tcp.payload.length > 0);
  t.is(own.length, 1, 'its own SYN, the Convert message in it');
  t.like(convert.counters.snapshot(), { poolUsed: 1, poolStale: 1, convertInSyn: 1, convertClosedBeforeReply: 0 });
  // and it completes as without a pool
  const synAck = fromCon(own[0]!, { seq: CON_ISN, ack: (own[0]!.tcp.seq + 1 + own[0]!.tcp.payload.length) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, options: { mss: 1460 } as TcpRepr['options'] });
  feed(r, 30, synAck);
  const reply = fromCon(own[0]!, { seq: CON_ISN + 1, ack: (own[0]!.tcp.seq + 1 + own[0]!.tcp.payload.length) >>> 0, flags: TCP_FLAG_ACK | TCP_FLAG_PSH, payload: encodeReply() });
  const toTheApp = toApp(feed(r, 40, reply).segs);
  t.is(toTheApp.length, 1);
  t.is(toTheApp[0]!.tcp.flags, TCP_FLAG_SYN | TCP_FLAG_ACK, 'the app\'s SYN answered');
});
