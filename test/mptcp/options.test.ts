// The MPTCP option codec against the options the Linux kernel put on the wire (fixtures.ts),
// round trips of every form, truncated and malformed input, and Wireshark's dissector as a
// second opinion on what we emit.
import test from 'ava';
import { pcap, PI_WARN } from '../helpers/pcap.js';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  emitIpTcp,
  emitOptions,
  newTcpOptions,
  optionsLen,
  parseOptions,
  TCP_FLAG_ACK,
  TCP_FLAG_RST,
  TCP_FLAG_SYN,
  tcpPacketLen,
  type IpTcpHeader,
  type TcpRepr,
} from '../../src/tcp/segment.js';
import {
  emitMptcpOption,
  emitMptcpOptionBuffer,
  isMptcpOptionDropReason,
  MPTCP_OPTION_COUNTER_NAMES,
  MPTCP_OPTION_DROP_REASONS,
  MptcpRstReason,
  MPTCP_SUB_ADD_ADDR,
  MPTCP_SUB_CAPABLE,
  MPTCP_SUB_DSS,
  MPTCP_SUB_FAIL,
  MPTCP_SUB_FASTCLOSE,
  MPTCP_SUB_JOIN,
  MPTCP_SUB_PRIO,
  MPTCP_SUB_REMOVE_ADDR,
  MPTCP_SUB_TCPRST,
  MptcpOptionCounters,
  MptcpOptionRepr,
  MptcpOptionView,
  mptcpOptionLen,
  parseMptcpOption,
  type Dss,
  type MpCapableFlags,
  type MptcpOption,
  type MptcpParseContext,
} from '../../src/mptcp/index.js';
import * as F from './fixtures.js';
import { bytes } from './fixtures.js';
import { tcpOf } from '../helpers/segments.js';

const SYN: MptcpParseContext = { syn: true, ack: false };
const SYNACK: MptcpParseContext = { syn: true, ack: true };
const ACK: MptcpParseContext = { syn: false, ack: true };
const RST: MptcpParseContext = { syn: false, ack: true, rst: true };

const H: MpCapableFlags = { checksumRequired: false, extensibility: false, noMoreSubflowAddr: false, hmacSha256: true, unassigned: 0 };
const AH: MpCapableFlags = { ...H, checksumRequired: true };

/** Parses a fixture that must parse, counting in a fresh set. */
function parse(hex: string, ctx: MptcpParseContext): MptcpOption {
  const c = new MptcpOptionCounters();
  const opt = parseMptcpOption(bytes(hex), ctx, c);
  if (opt === null) throw new Error(`${hex} dropped: ${JSON.stringify(c.nonZero())}`);
  return opt;
}

/** What parsing `raw` counted when it returned null. */
function dropOf(raw: Buffer, ctx: MptcpParseContext): Partial<Record<string, number>> {
  const c = new MptcpOptionCounters();
  const opt = parseMptcpOption(raw, ctx, c);
  return opt === null ? c.nonZero() : { parsed: 1 };
}

function ctxOf(repr: TcpRepr): MptcpParseContext {
  return { syn: (repr.flags & TCP_FLAG_SYN) !== 0, ack: (repr.flags & TCP_FLAG_ACK) !== 0, rst: (repr.flags & TCP_FLAG_RST) !== 0 };
}

// Every option the kernel sent, with what it says.

interface KernelCase {
  name: string;
  hex: string;
  ctx: MptcpParseContext;
  want: MptcpOption;
}

const V6_ADDR2 = bytes('fd000091000200000000000000000002');

const KERNEL: KernelCase[] = [
  { name: 'MP_CAPABLE SYN', hex: F.MPC_SYN_OPT, ctx: SYN, want: { type: 'mp_capable', version: 1, flags: H } },
  { name: 'MP_CAPABLE SYN, checksum required', hex: F.MPC_SYN_CSUM_OPT, ctx: SYN, want: { type: 'mp_capable', version: 1, flags: AH } },
  { name: 'MP_CAPABLE SYN/ACK', hex: F.MPC_SYNACK_OPT, ctx: SYNACK, want: { type: 'mp_capable', version: 1, flags: H, senderKey: F.CTRL_SERVER_KEY } },
  {
    name: 'MP_CAPABLE third ACK',
    hex: F.MPC_ACK_OPT,
    ctx: ACK,
    want: { type: 'mp_capable', version: 1, flags: H, senderKey: F.CTRL_CLIENT_KEY, receiverKey: F.CTRL_SERVER_KEY },
  },
  {
    name: 'MP_CAPABLE third ACK, checksums',
    hex: F.MPC_ACK_CSUM_OPT,
    ctx: ACK,
    want: { type: 'mp_capable', version: 1, flags: AH, senderKey: F.CSUM_CLIENT_KEY, receiverKey: F.CSUM_SERVER_KEY },
  },
  {
    name: 'MP_CAPABLE with data',
    hex: F.MPC_DATA_OPT,
    ctx: ACK,
    want: { type: 'mp_capable', version: 1, flags: H, senderKey: 0xb89311d24bc672bfn, receiverKey: 0x2f502fe0ad0fa910n, dataLen: 11 },
  },
  {
    name: 'MP_CAPABLE with data and checksum',
    hex: F.MPC_DATA_CSUM_OPT,
    ctx: ACK,
    want: { type: 'mp_capable', version: 1, flags: AH, senderKey: 0xfa0e414135bd3982n, receiverKey: 0x44af786aa2986891n, dataLen: 11, checksum: 0x4991 },
  },
  {
    name: 'MP_JOIN SYN',
    hex: F.JOIN_SYN_OPT,
    ctx: SYN,
    want: { type: 'mp_join_syn', backup: false, addressId: 1, receiverToken: F.JOIN_TOKEN, senderNonce: F.JOIN_NONCE_A },
  },
  {
    name: 'MP_JOIN SYN, backup',
    hex: F.JOIN_SYN_BACKUP_OPT,
    ctx: SYN,
    want: { type: 'mp_join_syn', backup: true, addressId: 2, receiverToken: 0x01c24e7e, senderNonce: 0xbd0620dc },
  },
  {
    name: 'MP_JOIN SYN/ACK',
    hex: F.JOIN_SYNACK_OPT,
    ctx: SYNACK,
    want: { type: 'mp_join_synack', backup: false, addressId: 1, truncatedHmac: F.JOIN_SYNACK_HMAC, senderNonce: F.JOIN_NONCE_B },
  },
  { name: 'MP_JOIN ACK', hex: F.JOIN_ACK_OPT, ctx: ACK, want: { type: 'mp_join_ack', hmac: bytes(F.JOIN_ACK_HMAC) } },
  {
    name: 'DSS first data (ack32, dsn64)',
    hex: F.DSS_FIRST_DATA_OPT,
    ctx: ACK,
    want: {
      type: 'dss', dataFin: false, dataAck: 0xba207f31n, dataAck8: false,
      mapping: { dsn: 0x01baa1e90a5b2c34n, dsn8: true, subflowSeq: 1, dataLen: 37 },
    },
  },
  {
    name: 'DSS server first data (ack64, dsn64)',
    hex: F.DSS_SERVER_FIRST_DATA_OPT,
    ctx: ACK,
    want: {
      type: 'dss', dataFin: false, dataAck: 0x01baa1e90a5b2c59n, dataAck8: true,
      mapping: { dsn: 0x93506d79ba207f31n, dsn8: true, subflowSeq: 1, dataLen: 1 },
    },
  },
  { name: 'DSS DATA_ACK 64 only', hex: F.DSS_DATA_ACK64_OPT, ctx: ACK, want: { type: 'dss', dataFin: false, dataAck: 0x01baa1e90a5b2c59n, dataAck8: true } },
  { name: 'DSS DATA_ACK 32 only', hex: F.DSS_DATA_ACK32_OPT, ctx: ACK, want: { type: 'dss', dataFin: false, dataAck: 0x0a5b2c34n, dataAck8: false } },
  {
    name: 'DSS DATA_FIN',
    hex: F.DSS_DATA_FIN_OPT,
    ctx: ACK,
    want: {
      type: 'dss', dataFin: true, dataAck: 0xa4506216n, dataAck8: false,
      mapping: { dsn: 0x2a05cf8724e09551n, dsn8: true, subflowSeq: 0, dataLen: 1 },
    },
  },
  {
    name: 'DSS DATA_FIN, ack64',
    hex: F.DSS_DATA_FIN_ACK64_OPT,
    ctx: ACK,
    want: {
      type: 'dss', dataFin: true, dataAck: 0x2a05cf8724e09551n, dataAck8: true,
      mapping: { dsn: 0x5effb04aa4506215n, dsn8: true, subflowSeq: 0, dataLen: 1 },
    },
  },
  {
    name: 'DSS with checksum',
    hex: F.CSUM_DATA_OPT,
    ctx: ACK,
    want: {
      type: 'dss', dataFin: false, dataAck: 0x8b78c353n, dataAck8: false,
      mapping: { dsn: 0x23c454758879f4c8n, dsn8: true, subflowSeq: 1, dataLen: 35, checksum: 0xb15b },
    },
  },
  {
    name: 'ADD_ADDR',
    hex: F.ADD_ADDR_OPT,
    ctx: ACK,
    want: { type: 'add_addr', echo: false, addressId: 1, address: bytes('0a5b0202'), hmac: F.ADD_ADDR_HMAC },
  },
  { name: 'ADD_ADDR echo', hex: F.ADD_ADDR_ECHO_OPT, ctx: ACK, want: { type: 'add_addr', echo: true, addressId: 1, address: bytes('0a5b0202') } },
  {
    name: 'ADD_ADDR IPv6 with port',
    hex: F.ADD_ADDR6_PORT_OPT,
    ctx: ACK,
    want: { type: 'add_addr', echo: false, addressId: 1, address: V6_ADDR2, port: 5299, hmac: F.ADD_ADDR6_PORT_HMAC },
  },
  {
    name: 'ADD_ADDR IPv6 with port, echo',
    hex: F.ADD_ADDR6_PORT_ECHO_OPT,
    ctx: ACK,
    want: { type: 'add_addr', echo: true, addressId: 1, address: V6_ADDR2, port: 5299 },
  },
  { name: 'REMOVE_ADDR', hex: F.REMOVE_ADDR_OPT, ctx: ACK, want: { type: 'remove_addr', addressIds: [1] } },
  { name: 'MP_PRIO', hex: F.MP_PRIO_OPT, ctx: ACK, want: { type: 'mp_prio', backup: true } },
  { name: 'MP_FASTCLOSE', hex: F.MP_FASTCLOSE_OPT, ctx: RST, want: { type: 'mp_fastclose', receiverKey: F.FASTCLOSE_SERVER_KEY } },
  { name: 'MP_TCPRST', hex: F.MP_TCPRST_OPT, ctx: RST, want: { type: 'mp_tcprst', reason: 0, transient: false, flags: 0 } },
];

for (const k of KERNEL) {
  test(`kernel ${k.name}: parses, and emits the same bytes`, (t) => {
    const opt = parse(k.hex, k.ctx);
    t.deepEqual(opt, k.want);
    t.is(mptcpOptionLen(opt), bytes(k.hex).length);
    t.is(emitMptcpOptionBuffer(opt).toString('hex'), k.hex);
    t.is(emitMptcpOptionBuffer(k.want).toString('hex'), k.hex);
  });
}

test('the kernel data-ACKs the first data at DSN + data-level length', (t) => {
  const data = parse(F.DSS_FIRST_DATA_OPT, ACK) as Dss;
  const ack = parse(F.DSS_DATA_ACK64_OPT, ACK) as Dss;
  t.is(ack.dataAck, (data.mapping?.dsn ?? 0n) + BigInt(data.mapping?.dataLen ?? 0));
  // the 32-bit Data ACK on the joined subflow is the low half of the same DSN
  t.is((parse(F.DSS_DATA_ACK32_OPT, ACK) as Dss).dataAck, (data.mapping?.dsn ?? 0n) & 0xffffffffn);
});

// Whole packets: through the TCP codec, then the MPTCP codec, with the segment's own flags.

test('kernel packets: the TCP codec hands each MPTCP option over, and each parses with the segment flags', (t) => {
  const cases: Array<{ pkt: string; want: MptcpOption['type'][] }> = [
    { pkt: F.MPC_SYN_PKT, want: ['mp_capable'] },
    { pkt: F.MPC_SYNACK_PKT, want: ['mp_capable'] },
    { pkt: F.MPC_ACK_PKT, want: ['mp_capable'] },
    { pkt: F.MPC_DATA_PKT, want: ['mp_capable'] },
    { pkt: F.ADD_ADDR_PKT, want: ['add_addr'] },
    { pkt: F.DSS_FIRST_DATA_PKT, want: ['dss'] },
    { pkt: F.JOIN_SYN_PKT, want: ['mp_join_syn'] },
    { pkt: F.JOIN_SYNACK_PKT, want: ['mp_join_synack'] },
    { pkt: F.JOIN_ACK_PKT, want: ['mp_join_ack'] },
    { pkt: F.DSS_DATA_FIN_PKT, want: ['dss'] },
    { pkt: F.MP_PRIO_PKT, want: ['dss', 'mp_prio'] },
    { pkt: F.REMOVE_ADDR_PKT, want: ['dss', 'remove_addr'] },
    { pkt: F.FASTCLOSE_RST_PKT, want: ['mp_fastclose', 'mp_tcprst'] },
    { pkt: F.ADD_ADDR6_PORT_PKT, want: ['add_addr'] },
  ];
  for (const { pkt, want } of cases) {
    const repr = tcpOf(pkt);
    const c = new MptcpOptionCounters();
    const got = (repr.options.mptcp ?? []).map((raw) => parseMptcpOption(raw, ctxOf(repr), c));
    t.deepEqual(got.map((o) => o?.type), want, pkt);
    t.deepEqual(c.nonZero(), { mptcpOptionsParsed: want.length });
  }
  // the first data's MP_CAPABLE says how many bytes it maps: all of the payload
  const mpc = tcpOf(F.MPC_DATA_PKT);
  const opt = parseMptcpOption((mpc.options.mptcp ?? [])[0], ctxOf(mpc));
  t.is(opt?.type === 'mp_capable' ? opt.dataLen : -1, mpc.payload.length);
});

// Round trips of every form, beyond what the kernel sent.

const FORMS: Array<{ name: string; opt: MptcpOption; ctx: MptcpParseContext; len: number }> = [
  { name: 'MP_CAPABLE SYN', opt: { type: 'mp_capable', version: 1, flags: H }, ctx: SYN, len: 4 },
  {
    name: 'MP_CAPABLE SYN, every flag',
    opt: { type: 'mp_capable', version: 1, flags: { checksumRequired: true, extensibility: true, noMoreSubflowAddr: true, hmacSha256: true, unassigned: 0x1e } },
    ctx: SYN,
    len: 4,
  },
  { name: 'MP_CAPABLE SYN/ACK, C flag', opt: { type: 'mp_capable', version: 1, flags: { ...H, noMoreSubflowAddr: true }, senderKey: 0xfedcba9876543210n }, ctx: SYNACK, len: 12 },
  { name: 'MP_CAPABLE ACK', opt: { type: 'mp_capable', version: 1, flags: H, senderKey: 0x1111111111111111n, receiverKey: 0xffffffffffffffffn }, ctx: ACK, len: 20 },
  { name: 'MP_CAPABLE data', opt: { type: 'mp_capable', version: 1, flags: H, senderKey: 0x3333333333333333n, receiverKey: 0x4444444444444444n, dataLen: 1400 }, ctx: ACK, len: 22 },
  { name: 'MP_CAPABLE data + checksum', opt: { type: 'mp_capable', version: 1, flags: AH, senderKey: 0x5555555555555555n, receiverKey: 0x6666666666666666n, dataLen: 1000, checksum: 0xffff }, ctx: ACK, len: 24 },
  { name: 'MP_JOIN SYN', opt: { type: 'mp_join_syn', backup: true, addressId: 255, receiverToken: 0xffffffff, senderNonce: 0 }, ctx: SYN, len: 12 },
  { name: 'MP_JOIN SYN/ACK', opt: { type: 'mp_join_synack', backup: true, addressId: 7, truncatedHmac: 0x8000000000000001n, senderNonce: 0x80000000 }, ctx: SYNACK, len: 16 },
  { name: 'MP_JOIN ACK', opt: { type: 'mp_join_ack', hmac: Buffer.from(Array.from({ length: 20 }, (_, i) => 0xec - i)) }, ctx: ACK, len: 24 },
  { name: 'ADD_ADDR IPv4 + port', opt: { type: 'add_addr', echo: false, addressId: 3, address: bytes('c0000201'), port: 443, hmac: 0x0123456789abcdefn }, ctx: ACK, len: 18 },
  { name: 'ADD_ADDR IPv4 echo + port', opt: { type: 'add_addr', echo: true, addressId: 3, address: bytes('c0000201'), port: 443 }, ctx: ACK, len: 10 },
  { name: 'ADD_ADDR IPv6', opt: { type: 'add_addr', echo: false, addressId: 4, address: V6_ADDR2, hmac: 5n }, ctx: ACK, len: 28 },
  { name: 'ADD_ADDR IPv6 echo', opt: { type: 'add_addr', echo: true, addressId: 4, address: V6_ADDR2 }, ctx: ACK, len: 20 },
  { name: 'REMOVE_ADDR, several', opt: { type: 'remove_addr', addressIds: [1, 2, 3, 250, 0] }, ctx: ACK, len: 8 },
  { name: 'MP_PRIO, regular', opt: { type: 'mp_prio', backup: false }, ctx: ACK, len: 3 },
  { name: 'MP_PRIO with Address ID (RFC 6824)', opt: { type: 'mp_prio', backup: true, addressId: 9 }, ctx: ACK, len: 4 },
  { name: 'MP_FAIL', opt: { type: 'mp_fail', dsn: 0x0123456789abcdefn }, ctx: ACK, len: 12 },
  { name: 'MP_FASTCLOSE', opt: { type: 'mp_fastclose', receiverKey: 0xdeadbeefcafef00dn }, ctx: ACK, len: 12 },
  { name: 'MP_TCPRST transient', opt: { type: 'mp_tcprst', reason: MptcpRstReason.AdministrativelyProhibited, transient: true, flags: 0 }, ctx: RST, len: 4 },
  { name: 'MP_TCPRST unassigned flags', opt: { type: 'mp_tcprst', reason: 0xff, transient: false, flags: 0x0e }, ctx: RST, len: 4 },
];

/** Every DSS the flags allow: Data ACK none/32/64 × mapping none/32/64 (with or without checksum) × DATA_FIN. */
function everyDss(): Dss[] {
  const out: Dss[] = [];
  for (const ack of ['none', '32', '64'] as const) {
    for (const map of ['none', '32', '32c', '64', '64c'] as const) {
      for (const dataFin of [false, true]) {
        const d: Dss = { type: 'dss', dataFin };
        if (ack !== 'none') {
          d.dataAck = ack === '64' ? 0xf123456789abcdefn : 0x89abcdefn;
          d.dataAck8 = ack === '64';
        }
        if (map !== 'none') {
          const dsn8 = map.startsWith('64');
          d.mapping = { dsn: dsn8 ? 0xa0b0c0d0e0f00102n : 0xe0f00102n, dsn8, subflowSeq: 0x01020304, dataLen: 1448 };
          if (map.endsWith('c')) d.mapping.checksum = 0xbeef;
        }
        out.push(d);
      }
    }
  }
  return out;
}

test('every form round-trips: emit, then parse, gives the same representation; the length is the option length', (t) => {
  const all = [...FORMS, ...everyDss().map((opt) => ({ name: JSON.stringify(opt, (_, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v)), opt, ctx: ACK, len: -1 }))];
  t.is(everyDss().length, 30);
  for (const { name, opt, ctx, len } of all) {
    const raw = emitMptcpOptionBuffer(opt);
    if (len >= 0) t.is(raw.length, len, name);
    t.is(raw[0], 30, name);
    t.is(raw[1], raw.length, name);
    t.is(mptcpOptionLen(opt), raw.length, name);
    t.deepEqual(parseMptcpOption(raw, ctx), opt, name);
    // the view says the same subtype as the representation
    const view = MptcpOptionView.check(raw);
    if (typeof view === 'string') t.fail(view);
    else t.is(view.subtype, subtypeOf(opt), name);
  }
});

function subtypeOf(opt: MptcpOption): number {
  switch (opt.type) {
    case 'mp_capable': return MPTCP_SUB_CAPABLE;
    case 'mp_join_syn': case 'mp_join_synack': case 'mp_join_ack': return MPTCP_SUB_JOIN;
    case 'dss': return MPTCP_SUB_DSS;
    case 'add_addr': return MPTCP_SUB_ADD_ADDR;
    case 'remove_addr': return MPTCP_SUB_REMOVE_ADDR;
    case 'mp_prio': return MPTCP_SUB_PRIO;
    case 'mp_fail': return MPTCP_SUB_FAIL;
    case 'mp_fastclose': return MPTCP_SUB_FASTCLOSE;
    case 'mp_tcprst': return MPTCP_SUB_TCPRST;
  }
}

test('DSS flags on the wire: A a M m F as RFC 8684 §3.3 lays them out, the length from the flags', (t) => {
  const flagsOf = (d: Dss): number => emitMptcpOptionBuffer(d)[3];
  t.is(flagsOf({ type: 'dss', dataFin: false, dataAck: 1n, dataAck8: false }), 0x01);
  t.is(flagsOf({ type: 'dss', dataFin: false, dataAck: 1n, dataAck8: true }), 0x03);
  t.is(flagsOf({ type: 'dss', dataFin: false, mapping: { dsn: 1n, dsn8: false, subflowSeq: 1, dataLen: 1 } }), 0x04);
  t.is(flagsOf({ type: 'dss', dataFin: false, mapping: { dsn: 1n, dsn8: true, subflowSeq: 1, dataLen: 1 } }), 0x0c);
  t.is(flagsOf({ type: 'dss', dataFin: true }), 0x10);
  t.is(emitMptcpOptionBuffer({ type: 'dss', dataFin: false }).toString('hex'), '1e042000');
  // a 32-bit Data ACK or DSN is written as its low 32 bits
  t.is(emitMptcpOptionBuffer({ type: 'dss', dataFin: false, dataAck: 0x1122334455667788n, dataAck8: false }).toString('hex'), '1e08200155667788');
  // "a" without "A": Linux ignores the size flag of an absent field; so do we
  t.deepEqual(parse('1e042002', ACK), { type: 'dss', dataFin: false });
  // the reserved bits above F are ignored
  t.deepEqual(parse('1e0820e1aabbccdd', ACK), { type: 'dss', dataFin: false, dataAck: 0xaabbccddn, dataAck8: false });
});

test('the view reads the kernel option as laid out; check refuses what is not an MPTCP option', (t) => {
  const v = MptcpOptionView.check(bytes(F.MPC_ACK_OPT));
  if (typeof v === 'string') return t.fail(v);
  t.is(v.length, 20);
  t.is(v.subtype, MPTCP_SUB_CAPABLE);
  t.is(v.nibble, 1);
  t.is(v.u64(4), F.CTRL_CLIENT_KEY);
  t.is(v.u64(12), F.CTRL_SERVER_KEY);
  t.is(MptcpOptionView.check(bytes('1e0c0101')), 'mptcpNotMptcp'); // length octet says more than there is
  t.is(MptcpOptionView.check(bytes('1d040101')), 'mptcpNotMptcp'); // not kind 30
  t.is(MptcpOptionView.check(bytes('1e')), 'mptcpNotMptcp');
  t.is(MptcpOptionView.check(Buffer.alloc(0)), 'mptcpNotMptcp');
  t.is(MptcpOptionView.check(bytes('1e02')), 'mptcpBadLength'); // no subtype octet
  t.true(isMptcpOptionDropReason('mptcpBadLength'));
  t.false(isMptcpOptionDropReason(v));
  for (const r of MPTCP_OPTION_DROP_REASONS) t.true(MPTCP_OPTION_COUNTER_NAMES.includes(r));
});

// Malformed and out-of-place options: counted, dropped, never thrown.

test('MP_CAPABLE: the form must fit the segment, version 1 (a SYN may offer more)', (t) => {
  t.deepEqual(dropOf(bytes(F.MPC_SYNACK_OPT), ACK), { mptcpBadContext: 1 }); // a SYN/ACK form on a segment without SYN
  t.deepEqual(dropOf(bytes(F.MPC_SYNACK_OPT), SYN), { mptcpBadContext: 1 });
  t.deepEqual(dropOf(bytes(F.MPC_SYN_OPT), SYNACK), { mptcpBadContext: 1 });
  t.deepEqual(dropOf(bytes(F.MPC_ACK_OPT), SYN), { mptcpBadContext: 1 });
  t.deepEqual(dropOf(bytes('1e050101aa'), SYN), { mptcpBadLength: 1 });
  t.deepEqual(dropOf(bytes('1e15010100000000000000000000000000000000aa'), ACK), { mptcpBadLength: 1 });
  // RFC 6824's version 0 SYN (12 bytes, with a key): not ours
  t.deepEqual(dropOf(bytes('1e0c0081a1b2c3d4e5f60718'), SYN), { mptcpBadVersion: 1 });
  // a future version offered on the SYN is read (the SYN/ACK will say 1); any other MP_CAPABLE must say 1
  t.like(parse('1e040201', SYN), { type: 'mp_capable', version: 2 });
  t.deepEqual(dropOf(bytes('1e0c020101cb28f001b21b21'), SYNACK), { mptcpBadVersion: 1 });
  t.deepEqual(dropOf(bytes('1e1400012b39cb629192213501cb28f001b21b21'), ACK), { mptcpBadVersion: 1 });
  t.deepEqual(dropOf(bytes('1e0300'), SYN), { mptcpBadLength: 1 });
});

test('MP_JOIN: the form must fit the segment', (t) => {
  t.deepEqual(dropOf(bytes(F.JOIN_SYN_OPT), SYNACK), { mptcpBadContext: 1 });
  t.deepEqual(dropOf(bytes(F.JOIN_SYNACK_OPT), SYN), { mptcpBadContext: 1 });
  t.deepEqual(dropOf(bytes(F.JOIN_ACK_OPT), SYN), { mptcpBadContext: 1 });
  t.deepEqual(dropOf(bytes(F.JOIN_SYN_OPT), ACK), { mptcpBadContext: 1 });
  t.deepEqual(dropOf(bytes('1e0d10011880071a6adea0d300'), SYN), { mptcpBadLength: 1 });
});

test('DSS, ADD_ADDR, REMOVE_ADDR, MP_PRIO, MP_FAIL, MP_FASTCLOSE, MP_TCPRST: bad lengths; unknown subtypes', (t) => {
  // DSS one byte short or long of what its flags say (two long is the checksum, and only with a mapping)
  t.deepEqual(dropOf(bytes('1e0720010a5b2c'), ACK), { mptcpBadLength: 1 });
  t.deepEqual(dropOf(bytes('1e0920010a5b2c3400'), ACK), { mptcpBadLength: 1 });
  t.deepEqual(dropOf(bytes('1e0a20010a5b2c340000'), ACK), { mptcpBadLength: 1 });
  t.deepEqual(dropOf(bytes('1e0320'), ACK), { mptcpBadLength: 1 });
  // ADD_ADDR lengths that fit no address family (or an echo with an HMAC's length)
  t.deepEqual(dropOf(bytes('1e0c30010a5b020200000000'), ACK), { mptcpBadLength: 1 });
  t.deepEqual(dropOf(bytes('1e1031010a5b02029caaf4e8b105c5ce'), ACK), { mptcpBadLength: 1 });
  t.deepEqual(dropOf(bytes('1e043001'), ACK), { mptcpBadLength: 1 });
  t.deepEqual(dropOf(bytes('1e0340'), ACK), { mptcpBadLength: 1 }); // REMOVE_ADDR without an ID
  t.deepEqual(dropOf(bytes('1e05510000'), ACK), { mptcpBadLength: 1 }); // MP_PRIO of 5
  t.deepEqual(dropOf(bytes('1e0b60', '00'.repeat(8)), ACK), { mptcpBadLength: 1 }); // MP_FAIL of 11
  t.deepEqual(dropOf(bytes('1e0d70', '00'.repeat(10)), ACK), { mptcpBadLength: 1 }); // MP_FASTCLOSE of 13
  t.deepEqual(dropOf(bytes('1e05800000'), RST), { mptcpBadLength: 1 }); // MP_TCPRST of 5
  // MP_TCPRST belongs on a RST (when the caller says whether the segment is one)
  t.deepEqual(dropOf(bytes(F.MP_TCPRST_OPT), ACK), { parsed: 1 });
  t.deepEqual(dropOf(bytes(F.MP_TCPRST_OPT), { ...ACK, rst: false }), { mptcpBadContext: 1 });
  // subtypes 9 to 14 are not assigned; 15 is MP_EXPERIMENTAL
  for (const sub of [0x9, 0xa, 0xe, 0xf]) t.deepEqual(dropOf(bytes(`1e04${sub.toString(16)}000`), ACK), { mptcpUnknownSubtype: 1 });
});

test('truncated options: every prefix of every kernel option is dropped or read as a shorter form, never thrown', (t) => {
  for (const k of KERNEL) {
    const full = bytes(k.hex);
    for (let n = 0; n < full.length; n++) {
      const prefix = Buffer.from(full.subarray(0, n));
      // as cut, the length octet no longer matches
      if (n >= 2) t.deepEqual(dropOf(prefix, k.ctx), { mptcpNotMptcp: 1 }, `${k.name} cut at ${n}`);
      // with the length octet fixed up: either a drop, or a shorter form that emits back to the same bytes
      if (n >= 2) prefix[1] = n;
      const c = new MptcpOptionCounters();
      const opt = parseMptcpOption(prefix, k.ctx, c);
      if (opt === null) t.is(Object.values(c.nonZero()).reduce((a, b) => a + b, 0), 1, `${k.name} at ${n}`);
      else t.deepEqual(emitMptcpOptionBuffer(opt), prefix, `${k.name} at ${n} read as ${opt.type}`);
    }
  }
});

test('fuzz: random bytes never throw, and every call counts exactly once', (t) => {
  let seed = 0x9e3779b9;
  const rand = (): number => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) >>> 0;
    let x = seed;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const c = new MptcpOptionCounters();
  const ctxs = [SYN, SYNACK, ACK, RST, { syn: false, ack: false, rst: false }];
  const N = 20000;
  let parsed = 0;
  for (let i = 0; i < N; i++) {
    const len = Math.floor(rand() * 41);
    const raw = Buffer.alloc(len);
    for (let j = 0; j < len; j++) raw[j] = Math.floor(rand() * 256);
    if (len >= 1 && rand() < 0.9) raw[0] = 30;
    if (len >= 2 && rand() < 0.9) raw[1] = len;
    if (len >= 3 && rand() < 0.5) raw[2] = (raw[2] & 0x8f) | (rand() < 0.5 ? 0x00 : 0x10); // bias towards subtypes with several forms
    const opt = parseMptcpOption(raw, ctxs[i % ctxs.length], c);
    if (opt !== null) {
      parsed++;
      // whatever parses emits back to a valid option of the same length that parses the same
      const again = emitMptcpOptionBuffer(opt);
      t.is(again.length, len);
      t.deepEqual(parseMptcpOption(again, ctxs[i % ctxs.length]), opt);
    }
  }
  const counts = c.snapshot();
  t.is(Object.values(counts).reduce((a, b) => a + b, 0), N);
  t.is(counts.mptcpOptionsParsed, parsed);
  t.true(parsed > 100, `only ${parsed} of ${N} parsed: the fuzz does not reach the parsers`);
});

// Emitting.

test('emit writes at an offset and returns the length; bad representations and small buffers are programming errors', (t) => {
  const buf = Buffer.alloc(30, 0xaa);
  const n = emitMptcpOption({ type: 'mp_prio', backup: true }, buf, 5);
  t.is(n, 3);
  t.is(buf.subarray(4, 9).toString('hex'), 'aa1e0351aa');
  t.is(MptcpOptionRepr.bufferLen({ type: 'mp_fail', dsn: 0n }), 12);
  t.throws(() => emitMptcpOption({ type: 'mp_fail', dsn: 0n }, Buffer.alloc(11), 0), { instanceOf: RangeError });
  t.throws(() => emitMptcpOption({ type: 'mp_fail', dsn: 0n }, Buffer.alloc(20), 9), { instanceOf: RangeError });
  const bad: MptcpOption[] = [
    { type: 'add_addr', echo: false, addressId: 1, address: bytes('0a5b0202') }, // an announcement needs its HMAC
    { type: 'add_addr', echo: true, addressId: 1, address: bytes('0a5b0202'), hmac: 1n }, // an echo has none
    { type: 'add_addr', echo: true, addressId: 1, address: bytes('0a5b02') },
    { type: 'remove_addr', addressIds: [] },
    { type: 'mp_capable', version: 1, flags: H, receiverKey: 1n },
    { type: 'mp_capable', version: 1, flags: H, senderKey: 1n, dataLen: 1 },
    { type: 'mp_capable', version: 1, flags: H, senderKey: 1n, receiverKey: 1n, checksum: 1 },
    { type: 'mp_join_ack', hmac: Buffer.alloc(19) },
    { type: 'dss', dataFin: false, dataAck8: true },
  ];
  for (const opt of bad) t.throws(() => emitMptcpOptionBuffer(opt), { instanceOf: RangeError }, JSON.stringify(opt, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)));
});

test('the TCP layer carries what we emit: TcpOptions.mptcp in, the same options out, NOP-padded like the kernel', (t) => {
  const dss: Dss = { type: 'dss', dataFin: false, dataAck: 0xba207f31n, dataAck8: false, mapping: { dsn: 0x01baa1e90a5b2c34n, dsn8: true, subflowSeq: 1, dataLen: 37 } };
  const o = { ...newTcpOptions(), timestamps: { tsVal: 0x24c5fe78, tsEcr: 0xb2c9082a }, mptcp: [emitMptcpOptionBuffer(dss), emitMptcpOptionBuffer({ type: 'mp_prio', backup: true })] };
  const area = Buffer.alloc(optionsLen(o));
  t.is(emitOptions(o, area, 0), 12 + 24 + 4);
  // the kernel's first data segment has the same option area: timestamps, then the DSS and two NOPs
  const kernelArea = `0101080a24c5fe78b2c9082a${F.DSS_FIRST_DATA_OPT}0101`;
  t.true(F.DSS_FIRST_DATA_PKT.includes(kernelArea));
  t.is(area.subarray(0, 36).toString('hex'), kernelArea);
  t.is(area.subarray(36).toString('hex'), '1e035101'); // MP_PRIO and one NOP, as in the kernel's MP_PRIO_PKT
  const back = newTcpOptions();
  t.is(parseOptions(area, back), null);
  t.deepEqual(back.mptcp?.map((raw) => parseMptcpOption(raw, ACK)), [dss, { type: 'mp_prio', backup: true }]);
});

// Wireshark as a second opinion: every form we emit, in a TCP segment of the right kind.

const execFileP = promisify(execFile);
const haveTshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;
const inCI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== '0' && process.env.CI.toLowerCase() !== 'false';


/** Warnings Wireshark gives on sound packets: every RST is one; a 3-byte MP_PRIO's NOP after NOP NOP before timestamps looks like "NOP in a row". */
const BENIGN_WARNING = /^(Connection reset \(RST\)|\d+ NOP in a row - a router may have removed some options)$/;
/**
 * An MP_CAPABLE with flag C or the unassigned crypto bits D-G set: Wireshark 4.0 says
 * "Unsupported algorithm" (it reads its C-H as RFC 6824's crypto bits, though it dissects C,
 * 0x20, as "Do not attempt to establish new subflows to this address and port").
 */
const UNKNOWN_ALGORITHM = /^Unsupported algorithm$/;

const V4: IpTcpHeader = { ipVersion: 4, src: bytes('0a5b0101'), dst: bytes('0a5b0102'), ttl: 64 };
const V6: IpTcpHeader = { ipVersion: 6, src: bytes('fd000091000100000000000000000001'), dst: bytes('fd000091000100000000000000000002'), ttl: 64 };

/** A segment of a connection of its own (`port`), so that Wireshark's per-connection analysis compares nothing across frames. */
function segment(port: number, flags: number, mptcp: Buffer[], payload: Buffer = Buffer.alloc(0)): TcpRepr {
  const syn = (flags & TCP_FLAG_SYN) !== 0;
  // timestamps where they fit beside the MPTCP options (as the kernel, which leaves a 30-byte ADD_ADDR out otherwise)
  const room = 40 - (syn ? 4 : 0) - mptcp.reduce((n, m) => n + ((m.length + 3) & ~3), 0);
  return {
    srcPort: port, dstPort: 5201, seq: 1000, ack: (flags & TCP_FLAG_ACK) !== 0 ? 2000 : 0, flags, window: 512, urgent: 0,
    options: {
      ...newTcpOptions(),
      mss: syn ? 1460 : undefined,
      timestamps: room >= 12 ? { tsVal: 1, tsEcr: syn && (flags & TCP_FLAG_ACK) === 0 ? 0 : 2 } : undefined,
      mptcp,
    },
    payload,
  };
}

function packet(ip: IpTcpHeader, repr: TcpRepr): Buffer {
  const buf = Buffer.alloc(tcpPacketLen(repr, ip.ipVersion));
  emitIpTcp(buf, 0, ip, repr, { checksum: 'full' });
  return buf;
}

(haveTshark || inCI ? test : test.skip)('tshark dissects every form we emit as the subtype we meant, nothing malformed', async (t) => {
  if (!haveTshark) return t.fail('tshark is not installed, and CI is set: this test must run in CI');
  const A = TCP_FLAG_ACK;
  interface Frame { what: string; ip: IpTcpHeader; port: number; reply: boolean; flags: number; opts: MptcpOption[]; payload?: Buffer }
  const frames: Frame[] = [];
  let port = 40000;
  const flagsFor = (ctx: MptcpParseContext): number =>
    ctx.syn ? (ctx.ack ? TCP_FLAG_SYN | A : TCP_FLAG_SYN) : ctx.rst === true ? TCP_FLAG_RST | A : A;
  /**
   * One frame on a connection of its own; an MP_CAPABLE with keys comes after the SYN and
   * SYN/ACK whose keys it echoes (Wireshark follows MPTCP connections by their keys: every
   * form has keys of its own).
   */
  const add = (what: string, ctx: MptcpParseContext, opt: MptcpOption, payload?: Buffer): void => {
    const ip = opt.type === 'add_addr' && opt.address.length === 16 ? V6 : V4;
    port++;
    if (opt.type === 'mp_capable' && opt.receiverKey !== undefined) {
      const flags = { ...opt.flags };
      frames.push({ what: `${what} (its SYN)`, ip, port, reply: false, flags: TCP_FLAG_SYN, opts: [{ type: 'mp_capable', version: 1, flags }] });
      frames.push({ what: `${what} (its SYN/ACK)`, ip, port, reply: true, flags: TCP_FLAG_SYN | A, opts: [{ type: 'mp_capable', version: 1, flags, senderKey: opt.receiverKey }] });
    }
    frames.push({ what, ip, port, reply: false, flags: flagsFor(ctx), opts: [opt], payload });
  };
  for (const f of FORMS) {
    const payload = f.opt.type === 'mp_capable' && f.opt.dataLen !== undefined ? Buffer.alloc(f.opt.dataLen, 0x61) : undefined;
    // (Wireshark reads an MP_PRIO of 4 bytes as RFC 6824's, with an Address ID: still subtype 5)
    add(f.name, f.ctx, f.opt, payload);
  }
  for (const d of everyDss()) add(`DSS ${emitMptcpOptionBuffer(d).toString('hex')}`, ACK, d, d.mapping ? Buffer.alloc(d.mapping.dataLen, 0x62) : undefined);
  // the kernel's forms, re-emitted from their representations
  for (const k of KERNEL) {
    const opt = parse(k.hex, k.ctx);
    add(`kernel ${k.name}`, k.ctx, opt, opt.type === 'mp_capable' && opt.dataLen !== undefined ? Buffer.alloc(opt.dataLen, 0x63) : undefined);
  }
  // one segment with two options, as the kernel's RST: MP_FASTCLOSE then MP_TCPRST (transient here)
  frames.push({
    what: 'MP_FASTCLOSE + MP_TCPRST', ip: V4, port: ++port, reply: false, flags: TCP_FLAG_RST | A,
    opts: [{ type: 'mp_fastclose', receiverKey: F.FASTCLOSE_SERVER_KEY }, { type: 'mp_tcprst', reason: 0, transient: true, flags: 0 }],
  });
  const packets = frames.map((f) => {
    const repr = segment(f.port, f.flags, f.opts.map(emitMptcpOptionBuffer), f.payload);
    if (!f.reply) return packet(f.ip, repr);
    return packet({ ...f.ip, src: f.ip.dst, dst: f.ip.src }, { ...repr, srcPort: repr.dstPort, dstPort: repr.srcPort, seq: 2000 - 1, ack: 1000 + 1 });
  });

  const dir = await mkdtemp(join(tmpdir(), 'mptopt-'));
  try {
    const file = join(dir, 'mptcp-options.pcap');
    await writeFile(file, pcap(packets));
    const fields = ['frame.number', 'tcp.checksum.status', '_ws.malformed', '_ws.expert.severity', '_ws.expert.message',
      'tcp.options.mptcp.subtype', 'tcp.options.mptcp.flag_T.flag', 'tcp.options.mptcp.nomoresubflows.flag', 'tcp.options.mptcp.checksumreq.flags',
      'tcp.options.mptcp.sha256.flag'];
    const { stdout } = await execFileP('tshark', [
      '-r', file, '-o', 'tcp.check_checksum:TRUE', '-o', 'tcp.analyze_sequence_numbers:FALSE',
      '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=|', ...fields.flatMap((f) => ['-e', f]),
    ], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    const got = stdout.trimEnd().split('\n').map((line) => {
      const cols = line.split('\t');
      return Object.fromEntries(fields.map((f, i) => [f, cols[i] ?? '']));
    });
    t.is(got.length, packets.length);
    // every frame's verdict, compared at once so that a failure lists every frame that failed
    const wrong: Array<{ what: string; row: Record<string, string>; warnings: Array<{ sev: number; msg: string }> }> = [];
    got.forEach((row, i) => {
      const what = frames[i].what;
      const severities = row['_ws.expert.severity'].split('|').filter((x) => x !== '').map(Number);
      const messages = row['_ws.expert.message'].split('|');
      const o = frames[i].opts[0];
      const unassigned = o.type === 'mp_capable' && (o.flags.noMoreSubflowAddr || (o.flags.unassigned ?? 0) !== 0);
      const bad = severities.map((sev, j) => ({ sev, msg: messages[j] ?? '' }))
        .filter((e) => e.sev >= PI_WARN && !BENIGN_WARNING.test(e.msg) && !(unassigned && UNKNOWN_ALGORITHM.test(e.msg)));
      const subtypesOk = row['tcp.options.mptcp.subtype'] === frames[i].opts.map(subtypeOf).join('|');
      if (row['tcp.checksum.status'] !== '1' || row['_ws.malformed'] !== '' || !subtypesOk || bad.length > 0) wrong.push({ what, row, warnings: bad });
    });
    t.deepEqual(wrong, []);
    // Wireshark reads the flags where we put them: T of the transient MP_TCPRST (the last frame),
    // MP_CAPABLE's A, C and H
    t.is(got[got.length - 1]['tcp.options.mptcp.flag_T.flag'], '1');
    const frameOf = (name: string): Record<string, string> => got[frames.findIndex((f) => f.what === name)];
    t.like(frameOf('MP_CAPABLE SYN/ACK, C flag'), { 'tcp.options.mptcp.nomoresubflows.flag': '1', 'tcp.options.mptcp.checksumreq.flags': '0', 'tcp.options.mptcp.sha256.flag': '1' });
    t.like(frameOf('MP_CAPABLE data + checksum'), { 'tcp.options.mptcp.nomoresubflows.flag': '0', 'tcp.options.mptcp.checksumreq.flags': '1' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
