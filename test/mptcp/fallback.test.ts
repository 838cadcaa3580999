// RFC 8684 §3.7 late fallback, against a server played by hand: a fallback turns the subflow's
// byte stream into the data stream, so it is sound only while that stream has no hole. Unmapped
// bytes dropped earlier (here: they came while out-of-order data waited at the connection level)
// are such a hole; a later fallback would hand the app the bytes after it as if nothing were
// missing (the 30-minute soak saw two echoes differ in a run with one late fallback).
import test from 'ava';
import { keyToIdsn } from '../../src/mptcp/crypto.js';
import { TCP_FLAG_ACK } from '../../src/tcp/segment.js';
import { A0, Bed, SERVER_ISN, SERVER_KEY } from './handbed.js';

/** The server's data at subflow offset `ssn` (0: the first byte after the SYN), mapped at data offset `dataOff`, or unmapped (null). */
function data(bed: Bed, now: number, ssn: number, bytes: Buffer, dataOff: number | null) {
  const mapping = dataOff === null ? [] : [{
    type: 'dss' as const, dataFin: false,
    mapping: { dsn: keyToIdsn(SERVER_KEY) + 1n + BigInt(dataOff), dsn8: true, subflowSeq: ssn + 1, dataLen: bytes.length },
  }];
  return bed.fromServer(now, { seq: (SERVER_ISN + 1 + ssn) >>> 0, ack: (bed.syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_ACK, payload: bytes }, mapping);
}

test('unmapped bytes dropped while out-of-order data waited leave a hole: a later fallback is refused (FallbackUnsafe), nothing after the hole reaches the app', (t) => {
  const bed = new Bed([A0]);
  bed.handshake(10);
  // data offsets 100..199 first: out of order, they wait at the connection level
  data(bed, 20, 0, Buffer.alloc(100, 2), 100);
  // 50 bytes without a mapping while that data waits: dropped
  data(bed, 21, 100, Buffer.alloc(50, 9), null);
  t.is(bed.conn.counters.get('UnmappedData'), 1);
  t.false(bed.conn.fallback, 'not with out-of-order data waiting');
  // data offsets 0..99: the connection's stream is whole to 200
  data(bed, 22, 150, Buffer.alloc(100, 1), 0);
  const got = bed.conn.read();
  t.is(got?.length, 200, 'the mapped bytes, in data order');
  // unmapped again, now with nothing waiting: a fallback would deliver these as if the 50 dropped
  // bytes had never been sent
  data(bed, 23, 250, Buffer.alloc(30, 7), null);
  t.false(bed.conn.fallback, 'no fallback over the hole');
  t.like(bed.conn.counters.snapshot(), { FallbackUnsafe: 1, FallbackLate: 0 });
  t.is(bed.conn.read(), null, 'the bytes after the hole are not delivered');
  bed.step(24);
  t.true(bed.conn.subflows[0]!.closed, 'the subflow is reset instead');
});

test('unmapped bytes on the only subflow with no hole before them: the fallback happens and they continue the stream in order', (t) => {
  const bed = new Bed([A0]);
  bed.handshake(10);
  data(bed, 20, 0, Buffer.alloc(100, 1), 0);
  t.is(bed.conn.read()?.length, 100);
  data(bed, 21, 100, Buffer.from('after'), null);
  t.true(bed.conn.fallback, 'fell back (RFC 8684 §3.7)');
  t.like(bed.conn.counters.snapshot(), { FallbackLate: 1, FallbackUnsafe: 0 });
  t.is(bed.conn.read()?.toString(), 'after');
});

test('a mapping that grows (the same start and DSN, a longer length) maps the bytes past the one in force: they are data, not unmapped bytes and no fallback', (t) => {
  const bed = new Bed([A0]);
  bed.handshake(10);
  const idsn = keyToIdsn(SERVER_KEY);
  const seg = (now: number, ssn: number, bytes: Buffer, mapLen: number) => bed.fromServer(now,
    { seq: (SERVER_ISN + 1 + ssn) >>> 0, ack: (bed.syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_ACK, payload: bytes },
    [{ type: 'dss' as const, dataFin: false, mapping: { dsn: idsn + 1n, dsn8: true, subflowSeq: 1, dataLen: mapLen } }]);
  // the first 50 bytes of a 100-byte mapping; then 100 bytes more under the same mapping grown to 150
  seg(20, 0, Buffer.alloc(50, 1), 100);
  seg(21, 50, Buffer.alloc(100, 2), 150);
  t.is(bed.conn.mappingVerdicts.get('extends'), 1);
  t.is(bed.conn.counters.get('UnmappedData'), 0, 'no byte without a mapping');
  t.false(bed.conn.fallback, 'no fallback');
  const got = bed.conn.read();
  t.deepEqual(got, Buffer.concat([Buffer.alloc(50, 1), Buffer.alloc(100, 2)]), 'all 150 bytes, in order');
});
