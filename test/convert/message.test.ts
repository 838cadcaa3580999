// The RFC 8803 Convert codec: hex fixtures written from the RFC's figures, parsed, emitted and
// round-tripped; truncated input asks for more bytes; malformed input is a drop reason with the
// Error code the RFC gives, never a throw.
import test from 'ava';
import {
  CONVERT_COUNTER_NAMES,
  CONVERT_DROP_REASONS,
  CONVERT_ERR_CONNECTION_RESET,
  CONVERT_ERR_DESTINATION_UNREACHABLE,
  CONVERT_ERR_MALFORMED_MESSAGE,
  CONVERT_ERR_MISSING_COOKIE,
  CONVERT_ERR_NETWORK_FAILURE,
  CONVERT_ERR_NOT_AUTHORIZED,
  CONVERT_ERR_RESOURCE_EXCEEDED,
  CONVERT_ERR_UNSUPPORTED_MESSAGE,
  CONVERT_ERR_UNSUPPORTED_TCP_OPTION,
  CONVERT_ERR_UNSUPPORTED_VERSION,
  CONVERT_TLV_CONNECT,
  CONVERT_TLV_COOKIE,
  CONVERT_TLV_ERROR,
  CONVERT_TLV_EXTENDED_TCP_HEADER,
  CONVERT_TLV_INFO,
  CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS,
  ConvertCounters,
  type ConvertMessage,
  ConvertView,
  connectRequest,
  connectTcpOptions,
  convertBufferLen,
  encodeConnect,
  encodeConvert,
  encodeReply,
  ERROR_ECHO_MAX,
  errorEcho,
  parseConvert,
  parseReply,
} from '../../src/convert/message.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const V4_MAPPED_192_0_2_1 = '00000000 00000000 0000ffff c0000201';

/** Fixtures: the message bytes and what they mean. */
const FIXTURES: Array<{ name: string; bytes: string; msg: ConvertMessage }> = [
  {
    name: 'Connect to 192.0.2.1:80 (IPv4-mapped), no options',
    bytes: `01 06 0000  0a 05 0050 ${V4_MAPPED_192_0_2_1}`,
    msg: { version: 1, tlvs: [{ type: CONVERT_TLV_CONNECT, port: 80, address: hex(V4_MAPPED_192_0_2_1), tcpOptions: hex('') }] },
  },
  {
    name: 'Connect to [2001:db8::1]:443 with an MSS option, and a Cookie',
    bytes: '01 09 0000  0a 06 01bb 20010db8 00000000 00000000 00000001 020405b4  16 02 0000 deadbeef',
    msg: {
      version: 1,
      tlvs: [
        { type: CONVERT_TLV_CONNECT, port: 443, address: hex('20010db8000000000000000000000001'), tcpOptions: hex('020405b4') },
        { type: CONVERT_TLV_COOKIE, value: hex('deadbeef') },
      ],
    },
  },
  { name: 'Info', bytes: '01 02 0000  01 01 0000', msg: { version: 1, tlvs: [{ type: CONVERT_TLV_INFO }] } },
  {
    name: 'Supported TCP Extensions: MPTCP (30) and SACK-Permitted (4), zero padded',
    bytes: '01 03 0000  15 02 0000 1e040000',
    msg: { version: 1, tlvs: [{ type: CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS, kinds: [30, 4] }] },
  },
  {
    name: 'Extended TCP Header: a 20-byte SYN+ACK header',
    bytes: '01 07 0000  14 06 0000 0050c350 00000001 00000002 5012ffff 00000000',
    msg: { version: 1, tlvs: [{ type: CONVERT_TLV_EXTENDED_TCP_HEADER, tcpHeader: hex('0050c350 00000001 00000002 5012ffff 00000000') }] },
  },
  {
    name: 'Error 97 Destination Unreachable, ICMP code 3 (port unreachable)',
    bytes: '01 02 0000  1e 01 61 03',
    msg: { version: 1, tlvs: [{ type: CONVERT_TLV_ERROR, code: CONVERT_ERR_DESTINATION_UNREACHABLE, value: hex('03') }] },
  },
  {
    name: 'Error 64 Resource Exceeded, retry after 5 s',
    bytes: '01 02 0000  1e 01 40 05',
    msg: { version: 1, tlvs: [{ type: CONVERT_TLV_ERROR, code: CONVERT_ERR_RESOURCE_EXCEEDED, value: hex('05') }] },
  },
  { name: 'the bare header: a successful reply', bytes: '01 01 0000', msg: { version: 1, tlvs: [] } },
];

/** Compares with Uint8Array fields as plain arrays. */
function plain(x: unknown): unknown {
  return JSON.parse(JSON.stringify(x, (_k, v: unknown) => (v instanceof Uint8Array ? [...v] : v)));
}

for (const f of FIXTURES) {
  test(`parse: ${f.name}`, (t) => {
    const counters = new ConvertCounters();
    const p = parseConvert(hex(f.bytes), counters);
    if (p.kind !== 'message') return t.fail(JSON.stringify(p));
    t.is(p.length, hex(f.bytes).length);
    t.deepEqual(plain(p.message), plain(f.msg));
    t.is(counters.get('convertParsed'), 1);
  });
  test(`emit: ${f.name}`, (t) => {
    t.is(convertBufferLen(f.msg), hex(f.bytes).length);
    t.is(encodeConvert(f.msg).toString('hex'), hex(f.bytes).toString('hex'));
  });
  test(`round trip, and every shorter prefix is incomplete, never a drop: ${f.name}`, (t) => {
    const bytes = encodeConvert(f.msg);
    const again = parseConvert(bytes);
    t.is(again.kind, 'message');
    if (again.kind === 'message') t.deepEqual(encodeConvert(again.message), bytes);
    for (let n = 0; n < bytes.length; n++) {
      const p = parseConvert(bytes.subarray(0, n));
      t.is(p.kind, 'incomplete', `prefix of ${n} bytes`);
      if (p.kind === 'incomplete') t.true(p.need > n && p.need <= bytes.length);
    }
  });
}

test('the application data after Total Length is not part of the message', (t) => {
  const bytes = Buffer.concat([encodeConnect('192.0.2.1', 80), Buffer.from('GET / HTTP/1.0\r\n\r\n')]);
  const p = parseConvert(bytes);
  if (p.kind !== 'message') return t.fail();
  t.is(p.length, 24);
  t.is(bytes.subarray(p.length).toString(), 'GET / HTTP/1.0\r\n\r\n');
});

test('incomplete input says how many bytes it needs', (t) => {
  t.deepEqual(parseConvert(hex('')), { kind: 'incomplete', need: 4 });
  t.deepEqual(parseConvert(hex('0106')), { kind: 'incomplete', need: 4 });
  t.deepEqual(parseConvert(hex('01060000 0a050050')), { kind: 'incomplete', need: 24 });
});

const MALFORMED: Array<{ name: string; bytes: string; reason: string; error: number | null }> = [
  { name: 'version 0 (reserved, MUST NOT be used)', bytes: '00 01 0000', reason: 'convertBadVersion', error: CONVERT_ERR_UNSUPPORTED_VERSION },
  { name: 'version 2', bytes: '02 01 0000', reason: 'convertBadVersion', error: CONVERT_ERR_UNSUPPORTED_VERSION },
  // RFC 8803 §4.1: "the connection MUST be reset": no Error code to answer with (null).
  { name: 'Total Length 0', bytes: '01 00 0000', reason: 'convertZeroTotalLength', error: null },
  { name: 'a TLV of Length 0', bytes: '01 02 0000  0a 00 0050', reason: 'convertBadTlvLength', error: CONVERT_ERR_MALFORMED_MESSAGE },
  { name: 'a TLV running past Total Length', bytes: `01 02 0000  0a 05 0050 ${V4_MAPPED_192_0_2_1}`, reason: 'convertBadTlvLength', error: CONVERT_ERR_MALFORMED_MESSAGE },
  { name: 'a Connect TLV of 1 word', bytes: '01 02 0000  0a 01 0050', reason: 'convertTlvTooShort', error: CONVERT_ERR_MALFORMED_MESSAGE },
  { name: 'a Connect TLV of 4 words (no room for the address)', bytes: '01 05 0000  0a 04 0050 00000000 0000ffff c0000201', reason: 'convertTlvTooShort', error: CONVERT_ERR_MALFORMED_MESSAGE },
  { name: 'an unknown TLV type (99)', bytes: '01 02 0000  63 01 0000', reason: 'convertUnknownTlv', error: CONVERT_ERR_UNSUPPORTED_MESSAGE },
  { name: 'a private-use TLV type (200)', bytes: '01 02 0000  c8 01 0000', reason: 'convertUnknownTlv', error: CONVERT_ERR_UNSUPPORTED_MESSAGE },
  { name: 'HTTP instead of Convert', bytes: Buffer.from('GET / HTTP/1.1\r\n').toString('hex'), reason: 'convertBadVersion', error: CONVERT_ERR_UNSUPPORTED_VERSION },
];

for (const m of MALFORMED) {
  test(`malformed: ${m.name} → ${m.reason}, ${m.error === null ? 'reset' : `Error ${m.error}`}, counted`, (t) => {
    const counters = new ConvertCounters();
    const p = parseConvert(hex(m.bytes), counters);
    t.deepEqual(p, { kind: 'drop', reason: m.reason, error: m.error } as typeof p);
    t.is(counters.get(m.reason as (typeof CONVERT_DROP_REASONS)[number]), 1);
    t.is(counters.get('convertParsed'), 0);
  });
}

test('every drop reason is a counter name', (t) => {
  for (const r of CONVERT_DROP_REASONS) t.true((CONVERT_COUNTER_NAMES as readonly string[]).includes(r));
});

test('the view reads the fixed header', (t) => {
  const v = ConvertView.check(hex('01 02 abcd  01 01 0000'));
  if (!(v instanceof ConvertView)) return t.fail();
  t.is(v.version, 1);
  t.is(v.totalLength, 2);
  t.is(v.byteLength, 8);
  t.is(v.unassigned, 0xabcd);
  t.deepEqual([...v.tlvs()].map((x) => x.type), [CONVERT_TLV_INFO]);
});

test('the Error codes are the IANA registry\'s', (t) => {
  t.deepEqual(
    [CONVERT_ERR_UNSUPPORTED_VERSION, CONVERT_ERR_MALFORMED_MESSAGE, CONVERT_ERR_UNSUPPORTED_MESSAGE, CONVERT_ERR_MISSING_COOKIE, CONVERT_ERR_NOT_AUTHORIZED, CONVERT_ERR_UNSUPPORTED_TCP_OPTION, CONVERT_ERR_RESOURCE_EXCEEDED, CONVERT_ERR_NETWORK_FAILURE, CONVERT_ERR_CONNECTION_RESET, CONVERT_ERR_DESTINATION_UNREACHABLE],
    [0, 1, 2, 3, 32, 33, 64, 65, 96, 97],
  );
});

test('client helpers: encodeConnect with a cookie, connectRequest on the server side', (t) => {
  const cookie = hex('0102030405060708');
  const bytes = encodeConnect('198.51.100.7', 5201, cookie);
  t.is(bytes.toString('hex'), hex(`01 09 0000  0a 05 1451 00000000 00000000 0000ffff c6336407  16 03 0000 0102030405060708`).toString('hex'));
  const p = parseConvert(bytes);
  if (p.kind !== 'message') return t.fail();
  const req = connectRequest(p.message);
  if ('error' in req) return t.fail();
  t.is(req.family, 4);
  t.is(req.text, '198.51.100.7');
  t.is(req.port, 5201);
  t.deepEqual([...req.cookie!], [...cookie]);
  const v6 = connectRequest((parseConvert(encodeConnect('2001:db8::7', 22)) as { message: ConvertMessage }).message);
  t.like(v6, { family: 6, text: '2001:db8::7', port: 22, cookie: null });
});

test('the Connect TLV\'s TCP Options field (RFC 8803 §4.2.5): Kind and Length each, zero padding; EOL or NOP inside, a Length under 2 or past the end → malformed', (t) => {
  t.deepEqual(connectTcpOptions(hex('')), []);
  t.deepEqual(connectTcpOptions(hex('0202 0000')), [{ kind: 2, length: 2 }]);
  t.deepEqual(connectTcpOptions(hex('020405b4')), [{ kind: 2, length: 4 }]);
  t.deepEqual(connectTcpOptions(hex('2202 0402')), [{ kind: 34, length: 2 }, { kind: 4, length: 2 }]);
  t.is(connectTcpOptions(hex('01 0202 00')), null, 'NOP MUST NOT be placed inside');
  t.is(connectTcpOptions(hex('00 0202 00')), null, 'EOL followed by an option');
  t.is(connectTcpOptions(hex('0201 0000')), null, 'Length 1');
  t.is(connectTcpOptions(hex('0208 0000')), null, 'runs past the field');
  t.is(connectTcpOptions(hex('02')), null, 'no Length');
  const c = (tcpOptions: Buffer) => connectRequest({ version: 1, tlvs: [{ type: CONVERT_TLV_CONNECT, port: 80, address: new Uint8Array(16), tcpOptions }] });
  t.deepEqual(c(hex('01010101')), { error: CONVERT_ERR_MALFORMED_MESSAGE });
  t.like(c(hex('22020000')), { port: 80, tcpOptionList: [{ kind: 34, length: 2 }] });
});

test('connectRequest: no Connect, two Connects → Malformed; an Error TLV from a client → Unsupported Message', (t) => {
  t.deepEqual(connectRequest({ version: 1, tlvs: [] }), { error: CONVERT_ERR_MALFORMED_MESSAGE });
  const c = { type: CONVERT_TLV_CONNECT, port: 1, address: new Uint8Array(16), tcpOptions: new Uint8Array(0) } as const;
  t.deepEqual(connectRequest({ version: 1, tlvs: [c, c] }), { error: CONVERT_ERR_MALFORMED_MESSAGE });
  t.deepEqual(connectRequest({ version: 1, tlvs: [c, { type: CONVERT_TLV_ERROR, code: 1, value: Uint8Array.of(0) }] }), { error: CONVERT_ERR_UNSUPPORTED_MESSAGE });
});

test('parseReply: success, an Error with its value, data after the reply, malformed', (t) => {
  const ok = Buffer.concat([encodeReply(), Buffer.from('hello')]);
  t.like(parseReply(ok), { kind: 'ok', length: 4 });
  t.like(parseReply(encodeReply({ code: CONVERT_ERR_DESTINATION_UNREACHABLE, value: 1 })), { kind: 'error', length: 8, code: 97, value: 1 });
  t.like(parseReply(encodeReply({ code: CONVERT_ERR_CONNECTION_RESET })), { kind: 'error', length: 8, code: 96, value: 0 });
  t.deepEqual(parseReply(hex('0102')), { kind: 'incomplete', need: 4 });
  t.deepEqual(parseReply(hex('01 00 0000')), { kind: 'drop', reason: 'convertZeroTotalLength' });
});

test('Errors 1 and 2 echo the received message shifted by one byte (RFC 8803 §4.2.8), so it keeps its alignment', (t) => {
  const received = hex('01 02 0000  63 01 0000'); // an unknown TLV type: Unsupported Message
  const reply = encodeReply({ code: CONVERT_ERR_UNSUPPORTED_MESSAGE, value: errorEcho(received) });
  // header; Error TLV: Type 0x1E, 3 words, Error Code 2, a zero octet; then the message, on a word boundary
  t.is(reply.toString('hex'), hex('01 04 0000  1e 03 02 00  01020000 63010000').toString('hex'));
  const r = parseReply(reply);
  if (r.kind !== 'error') return t.fail();
  t.is(r.code, CONVERT_ERR_UNSUPPORTED_MESSAGE);
  t.deepEqual([...r.valueBytes], [0, ...received]);
  // a message that needs padding: 5 bytes echoed → 3 + 1 + 5 = 9, padded to 12
  t.is(encodeReply({ code: CONVERT_ERR_MALFORMED_MESSAGE, value: errorEcho(hex('0102000001')) }).toString('hex'), hex('01 04 0000  1e 03 01 00  01020000 01000000').toString('hex'));
  // the longest message (255 words) is cut so that the reply still fits in 255 words
  const long = Buffer.alloc(1020, 0xab);
  long[0] = 1;
  long[1] = 255;
  const big = encodeReply({ code: CONVERT_ERR_MALFORMED_MESSAGE, value: errorEcho(long) });
  t.is(big.length, 1020);
  t.is(big[1], 255);
  t.is(errorEcho(long).length, 1 + ERROR_ECHO_MAX);
});

test('emit refuses what cannot go on the wire, with a typed error', (t) => {
  t.throws(() => encodeConnect('192.0.2.1', 70000), { name: 'ConvertEmitError' });
  t.throws(() => encodeConvert({ version: 1, tlvs: [{ type: CONVERT_TLV_COOKIE, value: new Uint8Array(1100) }] }), { name: 'ConvertEmitError' });
  // RFC 8803 §4.2.4: Kinds 0, 1 and 2 MUST NOT appear in a Supported TCP Extensions TLV
  for (const k of [0, 1, 2]) t.throws(() => encodeConvert({ version: 1, tlvs: [{ type: CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS, kinds: [30, k] }] }), { name: 'ConvertEmitError' });
});
