// MPTCP's keys, tokens, IDSNs, HMACs and DSS checksum, against what the Linux kernel put on the
// wire (fixtures.ts): every expected value below was computed by the kernel, not by us.
import test from 'ava';
import { TCP_FLAG_SYN, TCP_FLAG_ACK, type TcpRepr } from '../../src/tcp/segment.js';
import { onesSum, finish } from '../../src/ip/checksum.js';
import {
  addAddrHmac,
  dssChecksum,
  dssPseudoHeaderSum,
  joinAckHmac,
  joinHmac,
  joinSynAckHmac,
  keyHash,
  keyToBytes,
  keyToIdsn,
  keyToToken,
  mptcpHmac,
  parseMptcpOption,
  randomKey,
  verifyDssChecksum,
  type AddAddr,
  type Dss,
  type MpCapable,
  type MpJoinAck,
  type MpJoinSyn,
  type MpJoinSynAck,
  type MptcpOption,
  type MptcpParseContext,
} from '../../src/mptcp/index.js';
import * as F from './fixtures.js';
import { bytes } from './fixtures.js';
import { tcpOf } from '../helpers/segments.js';

const SYN: MptcpParseContext = { syn: true, ack: false };
const SYNACK: MptcpParseContext = { syn: true, ack: true };
const ACK: MptcpParseContext = { syn: false, ack: true };

function opt<T extends MptcpOption>(hex: string, ctx: MptcpParseContext, type: T['type']): T {
  const o = parseMptcpOption(bytes(hex), ctx);
  if (o === null || o.type !== type) throw new Error(`${hex} is not a ${type}`);
  return o as T;
}

/** The keys of a connection, as the kernel sent them in its MP_CAPABLE third ACK (sender = client). */
function keysOf(mpcAckHex: string): { client: bigint; server: bigint } {
  const o = opt<MpCapable>(mpcAckHex, ACK, 'mp_capable');
  if (o.senderKey === undefined || o.receiverKey === undefined) throw new Error('no keys');
  return { client: o.senderKey, server: o.receiverKey };
}

/** The first MPTCP option of a captured packet, parsed with the packet's flags. */
function firstOptionOf(repr: TcpRepr): MptcpOption {
  const raw = (repr.options.mptcp ?? [])[0];
  const o = raw === undefined ? null : parseMptcpOption(raw, { syn: (repr.flags & TCP_FLAG_SYN) !== 0, ack: (repr.flags & TCP_FLAG_ACK) !== 0 });
  if (o === null) throw new Error('no MPTCP option');
  return o;
}

test('keys as 8 octets in network order; their SHA-256', (t) => {
  t.is(keyToBytes(F.CTRL_CLIENT_KEY).toString('hex'), '2b39cb6291922135');
  const out = Buffer.alloc(10, 0xff);
  keyToBytes(0x0102030405060708n, out, 1);
  t.is(out.toString('hex'), 'ff0102030405060708ff');
  // SHA-256 of the 8 octets 2b 39 cb 62 91 92 21 35 (computed independently with Python's hashlib)
  t.is(keyHash(F.CTRL_CLIENT_KEY).toString('hex'), '21922b981eaf3ec0c0c5dafb81f45cd1c5ee43c09b80b83601baa1e90a5b2c33');
});

test('token: the kernel joins with token(server key) — the MP_JOIN SYNs of four connections', (t) => {
  // iperf3's control connection: keys from its MP_CAPABLE third ACK, token from its MP_JOIN SYN
  const ctrl = keysOf(F.MPC_ACK_OPT);
  t.is(ctrl.client, F.CTRL_CLIENT_KEY);
  t.is(ctrl.server, F.CTRL_SERVER_KEY);
  t.is(keyToToken(ctrl.server), opt<MpJoinSyn>(F.JOIN_SYN_OPT, SYN, 'mp_join_syn').receiverToken);
  t.is(keyToToken(ctrl.server), 0x1880071a);
  // iperf3's data connection
  t.is(keyToToken(F.DATA_SERVER_KEY), opt<MpJoinSyn>(F.JOIN_DATA_SYN_OPT, SYN, 'mp_join_syn').receiverToken);
  // the IPv6 connection's backup join
  t.is(keyToToken(F.V6_SERVER_KEY), opt<MpJoinSyn>(F.JOIN_SYN_BACKUP_OPT, SYN, 'mp_join_syn').receiverToken);
  // the token is the most significant 32 bits: not the client's, not the least significant
  t.not(keyToToken(ctrl.client), 0x1880071a);
  t.not(keyHash(ctrl.server).readUInt32BE(28), 0x1880071a);
  // an unsigned 32-bit number
  t.true(Number.isInteger(keyToToken(0xffffffffffffffffn)) && keyToToken(0xffffffffffffffffn) >= 0);
});

test('IDSN: the first DSN of each direction is IDSN(sender key) + 1 (four directions of two connections)', (t) => {
  const ctrl = keysOf(F.MPC_ACK_OPT);
  const clientData = opt<Dss>(F.DSS_FIRST_DATA_OPT, ACK, 'dss');
  const serverData = opt<Dss>(F.DSS_SERVER_FIRST_DATA_OPT, ACK, 'dss');
  t.true(clientData.mapping?.dsn8);
  t.is(clientData.mapping?.dsn, keyToIdsn(ctrl.client) + 1n);
  t.is(clientData.mapping?.subflowSeq, 1);
  t.is(serverData.mapping?.dsn, keyToIdsn(ctrl.server) + 1n);
  // and each side's Data ACK of nothing received yet: the peer's IDSN + 1 (here its low 32 bits)
  t.false(clientData.dataAck8);
  t.is(clientData.dataAck, (keyToIdsn(ctrl.server) + 1n) & 0xffffffffn);
  // the connection with checksums
  const csum = keysOf(F.MPC_ACK_CSUM_OPT);
  t.is((firstOptionOf(tcpOf(F.CSUM_DATA_PKT)) as Dss).mapping?.dsn, keyToIdsn(csum.client) + 1n);
  t.is((firstOptionOf(tcpOf(F.CSUM_REPLY_PKT)) as Dss).mapping?.dsn, keyToIdsn(csum.server) + 1n);
  // the least significant 64 bits of SHA-256(key)
  t.is(keyToIdsn(ctrl.client), keyHash(ctrl.client).readBigUInt64BE(24));
  t.is(keyToIdsn(ctrl.client), 0x01baa1e90a5b2c33n);
});

test('MP_JOIN HMACs: the kernel SYN/ACK truncated HMAC and third-ACK HMAC, from the keys and nonces', (t) => {
  for (const c of [
    { keys: keysOf(F.MPC_ACK_OPT), syn: F.JOIN_SYN_OPT, synack: F.JOIN_SYNACK_OPT, ack: F.JOIN_ACK_OPT },
    { keys: { client: F.DATA_CLIENT_KEY, server: F.DATA_SERVER_KEY }, syn: F.JOIN_DATA_SYN_OPT, synack: F.JOIN_DATA_SYNACK_OPT, ack: F.JOIN_DATA_ACK_OPT },
  ]) {
    const keyA = c.keys.client; // the joining host (A) is the client
    const keyB = c.keys.server;
    const nonceA = opt<MpJoinSyn>(c.syn, SYN, 'mp_join_syn').senderNonce;
    const synack = opt<MpJoinSynAck>(c.synack, SYNACK, 'mp_join_synack');
    const nonceB = synack.senderNonce;
    const ack = opt<MpJoinAck>(c.ack, ACK, 'mp_join_ack');
    // B's SYN/ACK: the leftmost 64 bits of HMAC(Key-B+Key-A, R-B+R-A)
    t.is(joinSynAckHmac(keyB, keyA, nonceB, nonceA), synack.truncatedHmac);
    t.is(joinHmac(keyB, keyA, nonceB, nonceA).readBigUInt64BE(0), synack.truncatedHmac);
    // A's third ACK: the leftmost 160 bits of HMAC(Key-A+Key-B, R-A+R-B)
    t.deepEqual(joinAckHmac(keyA, keyB, nonceA, nonceB), ack.hmac);
    t.deepEqual(joinHmac(keyA, keyB, nonceA, nonceB).subarray(0, 20), ack.hmac);
    // the order matters: the other host's HMAC, or swapped nonces, do not verify
    t.not(joinSynAckHmac(keyA, keyB, nonceA, nonceB), synack.truncatedHmac);
    t.not(joinSynAckHmac(keyB, keyA, nonceA, nonceB), synack.truncatedHmac);
    t.notDeepEqual(joinAckHmac(keyB, keyA, nonceB, nonceA), ack.hmac);
  }
  t.is(F.JOIN_SYNACK_HMAC, joinSynAckHmac(F.CTRL_SERVER_KEY, F.CTRL_CLIENT_KEY, F.JOIN_NONCE_B, F.JOIN_NONCE_A));
  t.is(joinAckHmac(F.CTRL_CLIENT_KEY, F.CTRL_SERVER_KEY, F.JOIN_NONCE_A, F.JOIN_NONCE_B).toString('hex'), F.JOIN_ACK_HMAC);
  t.is(joinHmac(1n, 2n, 3, 4).length, 32);
});

test('ADD_ADDR HMAC: the rightmost 64 bits of HMAC(Key-sender+Key-receiver, ID+address+port), IPv4 and IPv6 with a port', (t) => {
  const ctrl = keysOf(F.MPC_ACK_OPT);
  const v4 = opt<AddAddr>(F.ADD_ADDR_OPT, ACK, 'add_addr');
  // the server announces: its key first
  t.is<bigint | undefined, bigint | undefined>(addAddrHmac(ctrl.server, ctrl.client, v4.addressId, v4.address, v4.port), v4.hmac);
  t.is(addAddrHmac(ctrl.server, ctrl.client, 1, bytes('0a5b0202')), F.ADD_ADDR_HMAC);
  // "If the port is not present ... the HMAC message will nevertheless include two octets of value zero"
  t.is(addAddrHmac(ctrl.server, ctrl.client, 1, bytes('0a5b0202'), 0), F.ADD_ADDR_HMAC);
  // not the leftmost 64 bits (as for MP_JOIN's SYN/ACK), not with the keys the other way round
  const msg = bytes('01', '0a5b0202', '0000');
  const full = mptcpHmac(ctrl.server, ctrl.client, msg);
  t.is(full.readBigUInt64BE(24), F.ADD_ADDR_HMAC);
  t.not(full.readBigUInt64BE(0), F.ADD_ADDR_HMAC);
  t.not(addAddrHmac(ctrl.client, ctrl.server, 1, bytes('0a5b0202')), F.ADD_ADDR_HMAC);

  const v6 = opt<AddAddr>(F.ADD_ADDR6_PORT_OPT, ACK, 'add_addr');
  t.is(v6.port, 5299);
  t.is(addAddrHmac(F.V6_SERVER_KEY, F.V6_CLIENT_KEY, v6.addressId, v6.address, v6.port), F.ADD_ADDR6_PORT_HMAC);
  t.not(addAddrHmac(F.V6_SERVER_KEY, F.V6_CLIENT_KEY, v6.addressId, v6.address), F.ADD_ADDR6_PORT_HMAC);
  t.throws(() => addAddrHmac(1n, 2n, 1, bytes('0a5b02')), { instanceOf: RangeError });
});

test('DSS checksum: the kernel checksums over the 64-bit DSN, relative subflow sequence, length, and the data', (t) => {
  // "hello, kernel MPTCP with checksums\n"
  const first = tcpOf(F.CSUM_DATA_PKT);
  const d1 = firstOptionOf(first) as Dss;
  const m1 = d1.mapping;
  if (m1?.checksum === undefined) return t.fail('no checksum');
  t.is(first.payload.toString(), 'hello, kernel MPTCP with checksums\n');
  t.is(m1.dataLen, first.payload.length);
  t.is(dssChecksum(m1.dsn, m1.subflowSeq, m1.dataLen, first.payload), m1.checksum);
  t.is(m1.checksum, 0xb15b);
  t.true(verifyDssChecksum(m1.dsn, m1.subflowSeq, m1.dataLen, m1.checksum, first.payload));
  // one bit of the data, the DSN, the subflow sequence or the length changed: it fails
  const flipped = Buffer.from(first.payload);
  flipped[7] ^= 0x01;
  t.false(verifyDssChecksum(m1.dsn, m1.subflowSeq, m1.dataLen, m1.checksum, flipped));
  t.false(verifyDssChecksum(m1.dsn + (1n << 40n), m1.subflowSeq, m1.dataLen, m1.checksum, first.payload));
  t.false(verifyDssChecksum(m1.dsn, m1.subflowSeq + 1, m1.dataLen, m1.checksum, first.payload));
  t.false(verifyDssChecksum(m1.dsn, m1.subflowSeq, m1.dataLen + 1, m1.checksum, first.payload));

  // the second write: 4096 bytes, bytes(range(256)) * 16, in one mapping
  const d2 = opt<Dss>(F.CSUM_DATA2_OPT, ACK, 'dss').mapping;
  if (d2?.checksum === undefined) return t.fail('no checksum');
  const data2 = Buffer.alloc(4096);
  for (let i = 0; i < data2.length; i++) data2[i] = i & 0xff;
  t.is(d2.dsn, m1.dsn + 35n);
  t.is(d2.subflowSeq, 36);
  t.is(dssChecksum(d2.dsn, d2.subflowSeq, d2.dataLen, data2), d2.checksum);
  t.is(d2.checksum, 0xf640);
  // a mapping that spans segments is summed chunk by chunk (every chunk but the last of even length)
  let acc = dssPseudoHeaderSum(d2.dsn, d2.subflowSeq, d2.dataLen);
  for (let off = 0; off < data2.length; off += 1448) acc = onesSum(data2, off, Math.min(off + 1448, data2.length), acc);
  t.is(finish(acc), d2.checksum);
  // the checksum covers the data of the mapping only: a window into a larger buffer
  const framed = Buffer.concat([Buffer.from('xyz'), data2, Buffer.from('!')]);
  t.is(dssChecksum(d2.dsn, d2.subflowSeq, d2.dataLen, framed, 3, 3 + 4096), d2.checksum);

  // the DATA_FIN without data: data-level length 1, nothing summed but the pseudo-header
  const fin = firstOptionOf(tcpOf(F.CSUM_DATA_FIN_PKT)) as Dss;
  t.true(fin.dataFin);
  if (fin.mapping?.checksum === undefined) return t.fail('no checksum');
  t.is(fin.mapping.dataLen, 1);
  t.is(fin.mapping.subflowSeq, 0);
  t.is(dssChecksum(fin.mapping.dsn, 0, 1, Buffer.alloc(0)), fin.mapping.checksum);
  t.is(fin.mapping.checksum, 0xfa5f);

  // the server's answer, "got 4131\n": an odd length
  const reply = tcpOf(F.CSUM_REPLY_PKT);
  const r = (firstOptionOf(reply) as Dss).mapping;
  if (r?.checksum === undefined) return t.fail('no checksum');
  t.is(reply.payload.toString(), 'got 4131\n');
  t.is(dssChecksum(r.dsn, r.subflowSeq, r.dataLen, reply.payload), r.checksum);
  t.true(verifyDssChecksum(r.dsn, r.subflowSeq, r.dataLen, r.checksum, reply.payload));
});

test('MP_CAPABLE with data: the checksum is over DSN = IDSN(sender key) + 1, subflow sequence 1', (t) => {
  const pkt = tcpOf(F.MPC_DATA_CSUM_PKT);
  const mpc = firstOptionOf(pkt) as MpCapable;
  if (mpc.senderKey === undefined || mpc.dataLen === undefined || mpc.checksum === undefined) return t.fail('not the data form');
  t.is(pkt.payload.toString(), 'first data\n');
  t.is(mpc.dataLen, pkt.payload.length);
  // RFC 8684 §3.1: "the data parameters in an MP_CAPABLE are semantically equivalent to those in a DSS option"
  t.is(dssChecksum(keyToIdsn(mpc.senderKey) + 1n, 1, mpc.dataLen, pkt.payload), mpc.checksum);
  t.is(mpc.checksum, 0x4991);
  t.false(verifyDssChecksum(keyToIdsn(mpc.senderKey), 1, mpc.dataLen, mpc.checksum, pkt.payload));
});

test('DSS pseudo-header sum: the 64-bit DSN, the 32-bit subflow sequence and the length as 16-bit words', (t) => {
  const ph = bytes('0102030405060708', '090a0b0c', '0d0e', '0000');
  t.is(dssPseudoHeaderSum(0x0102030405060708n, 0x090a0b0c, 0x0d0e), onesSum(ph));
  t.is(dssPseudoHeaderSum(0xffffffffffffffffn, 0xffffffff, 0xffff), 7 * 0xffff);
  // the DSN is taken modulo 2^64
  t.is(dssPseudoHeaderSum((1n << 64n) + 5n, 0, 0), dssPseudoHeaderSum(5n, 0, 0));
});

test('randomKey: the caller\'s first 8 bytes, network order; fewer is a programming error', (t) => {
  t.is(randomKey(bytes('0123456789abcdef')), 0x0123456789abcdefn);
  t.is(randomKey(bytes('ffffffffffffffff00')), 0xffffffffffffffffn);
  const big = bytes('aa', '0011223344556677', 'bb');
  t.is(randomKey(big.subarray(1, 9)), 0x0011223344556677n);
  t.is(randomKey(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), 0x0102030405060708n);
  t.throws(() => randomKey(bytes('01020304050607')), { instanceOf: RangeError });
  // a key and its token and IDSN, end to end
  const key = randomKey(bytes('2b39cb6291922135'));
  t.is(key, F.CTRL_CLIENT_KEY);
  t.is<bigint | undefined, bigint | undefined>(keyToIdsn(key) + 1n, opt<Dss>(F.DSS_FIRST_DATA_OPT, ACK, 'dss').mapping?.dsn);
});
