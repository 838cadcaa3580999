// The TCP segment codec against the Linux kernel's own segments (RFC 9293 §3.1 header, RFC 7323
// window scale and timestamps, RFC 2018 SACK, RFC 8684 option kind 30), and against Wireshark's
// dissector as a second opinion on what we emit.
import test from 'ava';
import { pcap, PI_WARN } from '../helpers/pcap.js';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fold, internetChecksum, onesSum } from '../../src/ip/checksum.js';
import { IpCounters } from '../../src/ip/counters.js';
import { Ipv4Packet } from '../../src/ip/ipv4.js';
import { Ipv6Packet } from '../../src/ip/ipv6.js';
import { ipPseudoHeaderSum, type IpPacketInfo, parseIpPacket } from '../../src/ip/packet.js';
import {
  checkTcp,
  emitIpTcp,
  emitOptions,
  emitTcp,
  type IpTcpHeader,
  isTcpDropReason,
  newTcpOptions,
  newTcpRepr,
  optionSpaceLeft,
  optionsLen,
  parseOptions,
  parseTcp,
  parseTcpSegment,
  sackBlocksThatFit,
  TCP_CODEC_COUNTER_NAMES,
  TCP_DROP_REASONS,
  TCP_FLAG_ACK,
  TCP_FLAG_CWR,
  TCP_FLAG_ECE,
  TCP_FLAG_FIN,
  TCP_FLAG_PSH,
  TCP_FLAG_RST,
  TCP_FLAG_SYN,
  TCP_FLAG_URG,
  TCP_HEADER_LEN,
  TCP_MAX_OPTIONS_LEN,
  TCP_OFF_CHECKSUM,
  TCP_OPT_MPTCP,
  TcpCodecCounters,
  TcpOptions,
  TcpPacket,
  TcpRepr,
  tcpHeaderLen,
  tcpOffloadVnetHdr,
  tcpPacketLen,
} from '../../src/tcp/segment.js';
import { seqAdd, seqDiff } from '../../src/tcp/seq.js';
import {
  emitVnetHdr,
  parseVnetHdr,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VNET_HDR_LEN,
} from '../../src/ip/vnet.js';
import * as K from './fixtures/kernel.js';
import { bytes } from './fixtures/kernel.js';
import { ipOf } from '../helpers/segments.js';

// Helpers.

/** Parses a captured packet down to its TCP representation (checksum verified). */
function parse(hex: string, checksum: 'verify' | 'skip' = 'verify'): { repr: TcpRepr; counters: TcpCodecCounters } {
  const counters = new TcpCodecCounters();
  const repr = parseTcp(ipOf(hex), counters, { checksum });
  if (repr === null) throw new Error(`fixture dropped: ${JSON.stringify(counters.nonZero())}`);
  return { repr, counters };
}

/** The view over the TCP segment of a captured packet. */
function tcpView(hex: string): TcpPacket {
  const v = TcpPacket.check(ipOf(hex).payload);
  if (typeof v === 'string') throw new Error(`fixture rejected: ${v}`);
  return v;
}

/** The IP header fields of a captured packet, as `emitIpTcp` takes them. */
function ipHeaderOf(info: IpPacketInfo): IpTcpHeader {
  if (info.version === 4) {
    const v = new Ipv4Packet(info.buffer);
    return { ipVersion: 4, src: info.src, dst: info.dst, ttl: v.ttl, tos: (v.dscp << 2) | v.ecn, ident: v.ident, dontFragment: v.dontFragment };
  }
  const v = new Ipv6Packet(info.buffer);
  return { ipVersion: 6, src: info.src, dst: info.dst, ttl: v.hopLimit, tos: v.trafficClass, flowLabel: v.flowLabel };
}

/** The options that are present, for comparing with a literal (absent = undefined or an empty list). */
function present(o: TcpOptions): Partial<TcpOptions> {
  const out: Partial<TcpOptions> = {};
  if (o.mss !== undefined) out.mss = o.mss;
  if (o.windowScale !== undefined) out.windowScale = o.windowScale;
  if (o.sackPermitted !== undefined) out.sackPermitted = o.sackPermitted;
  if (o.sackBlocks !== undefined && o.sackBlocks.length > 0) out.sackBlocks = o.sackBlocks.map((b) => ({ ...b }));
  if (o.timestamps !== undefined) out.timestamps = { ...o.timestamps };
  if (o.mptcp !== undefined && o.mptcp.length > 0) out.mptcp = o.mptcp.map((b) => Buffer.from(b));
  if (o.unknown !== undefined && o.unknown.length > 0) out.unknown = o.unknown.map((u) => ({ kind: u.kind, data: Buffer.from(u.data) }));
  return out;
}

/** Emits `repr` as a whole IP packet, in a buffer of exactly `tcpPacketLen` bytes. */
function emit(ip: IpTcpHeader, repr: TcpRepr, checksum: 'full' | 'partial' = 'full', counters?: TcpCodecCounters): Buffer {
  const buf = Buffer.alloc(tcpPacketLen(repr, ip.ipVersion));
  const n = emitIpTcp(buf, 0, ip, repr, { checksum, counters });
  if (n !== buf.length) throw new Error(`emitIpTcp wrote ${n} bytes of ${buf.length}`);
  return buf;
}

/** A representation from a template with overrides (CONVENTIONS.md 11). */
function segment(over: Partial<TcpRepr> = {}): TcpRepr {
  return {
    srcPort: 40000, dstPort: 443, seq: 0x01020304, ack: 0xa0b0c0d0, flags: TCP_FLAG_ACK, window: 502, urgent: 0,
    options: {}, payload: Buffer.alloc(0), ...over,
  };
}

/** An MPTCP option of `len` bytes: kind 30, its length, a DSS subtype, filler. */
function mptcpOption(len: number): Buffer {
  const b = Buffer.alloc(len, 0x42);
  b[0] = TCP_OPT_MPTCP;
  b[1] = len;
  b[2] = 0x20;
  return b;
}

const V4: IpTcpHeader = { ipVersion: 4, src: bytes('c6120102'), dst: bytes('cb007105'), ttl: 64, ident: 0x1234 };
const V6: IpTcpHeader = { ipVersion: 6, src: bytes('20010db8000100000000000000000002'), dst: bytes('20010db800020000000000000000000a'), ttl: 64, flowLabel: 0x12345 };

/** Deterministic pseudo-random numbers (mulberry32), so that a failing case replays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Sum of every counter: each parse attempt either counts one drop or one parsed segment. */
function outcomes(c: TcpCodecCounters): number {
  let n = c.get('tcpSegmentsParsed');
  for (const r of TCP_DROP_REASONS) n += c.get(r);
  return n;
}

// Parsing the kernel's segments, field by field.

test('the kernel\'s IPv4 SYN: ports, ISN, window, and MSS, SACK-Permitted, Timestamps, Window Scale', (t) => {
  const { repr, counters } = parse(K.SYN4);
  t.is(repr.srcPort, 48600);
  t.is(repr.dstPort, 5002);
  t.is(repr.seq, 3492433063);
  t.is(repr.ack, 0);
  t.is(repr.flags, TCP_FLAG_SYN);
  t.is(repr.window, 64240);
  t.is(repr.urgent, 0);
  t.is(repr.payload.length, 0);
  t.deepEqual(present(repr.options), {
    mss: 1460,
    sackPermitted: true,
    timestamps: { tsVal: 407170918, tsEcr: 0 },
    windowScale: 10,
  });
  t.deepEqual(counters.nonZero(), { tcpSegmentsParsed: 1 });
});

test('the kernel\'s IPv4 SYN-ACK acknowledges the ISN + 1 and echoes the timestamp (RFC 7323 §3.2)', (t) => {
  const syn = parse(K.SYN4).repr;
  const { repr } = parse(K.SYNACK4);
  t.is(repr.srcPort, 5002);
  t.is(repr.dstPort, 48600);
  t.is(repr.seq, 2896815207);
  t.is(repr.ack, seqAdd(syn.seq, 1));
  t.is(repr.flags, TCP_FLAG_SYN | TCP_FLAG_ACK);
  t.is(repr.window, 65160);
  t.deepEqual(present(repr.options), {
    mss: 1460,
    sackPermitted: true,
    timestamps: { tsVal: 3917192607, tsEcr: syn.options.timestamps?.tsVal ?? -1 },
    windowScale: 10,
  });
});

test('the kernel\'s IPv4 data segment: PSH|ACK, NOP NOP TS, and the payload as a view', (t) => {
  const info = ipOf(K.DATA4);
  const repr = parseTcp(info, new TcpCodecCounters(), { checksum: 'verify' });
  if (repr === null) return t.fail();
  t.is(repr.flags, TCP_FLAG_PSH | TCP_FLAG_ACK);
  t.is(repr.seq, 0xd02a4ca8);
  t.is(repr.ack, 0xaca9e468);
  t.is(repr.window, 63);
  t.deepEqual(present(repr.options), { timestamps: { tsVal: 407170919, tsEcr: 3917192607 } });
  t.is(repr.payload.toString(), 'hello\n');
  t.is(repr.payload.buffer, info.buffer.buffer, 'a view into the packet, not a copy');
});

test('the kernel\'s duplicate ACK carries one SACK block over the segment after the hole (RFC 2018 §4)', (t) => {
  const { repr } = parse(K.SACK4);
  t.is(repr.flags, TCP_FLAG_ACK);
  t.is(repr.ack, 0xd02a4cae); // relative 7: "DROPdrop" (7..15) was dropped
  t.deepEqual(present(repr.options), {
    timestamps: { tsVal: 3917192808, tsEcr: 407170919 },
    sackBlocks: [{ start: 0xd02a4cb6, end: 0xd02a4cbe }], // relative 15..23: "KEEPkeep"
  });
  const block = repr.options.sackBlocks?.[0];
  t.is(block && seqDiff(block.start, repr.ack), 8, 'the block starts one 8-byte segment past the hole');
});

test('the kernel\'s FIN: FIN|ACK after the 22 data bytes', (t) => {
  const syn = parse(K.SYN4).repr;
  const { repr } = parse(K.FIN4);
  t.is(repr.flags, TCP_FLAG_FIN | TCP_FLAG_ACK);
  t.is(seqDiff(repr.seq, syn.seq), 23); // SYN + "hello\n" + "DROPdrop" + "KEEPkeep"
  t.is(repr.payload.length, 0);
  t.deepEqual(present(repr.options), { timestamps: { tsVal: 407172622, tsEcr: 3917192808 } });
});

test('the kernel\'s IPv6 conversation parses alike: SYN, SYN-ACK, data, SACK, FIN (MSS 1440)', (t) => {
  const syn = parse(K.SYN6).repr;
  t.is(syn.srcPort, 35822);
  t.is(syn.seq, 4022440264);
  t.is(syn.window, 64800);
  t.deepEqual(present(syn.options), { mss: 1440, sackPermitted: true, timestamps: { tsVal: 1693116568, tsEcr: 0 }, windowScale: 10 });
  const synack = parse(K.SYNACK6).repr;
  t.is(synack.flags, TCP_FLAG_SYN | TCP_FLAG_ACK);
  t.is(synack.ack, seqAdd(syn.seq, 1));
  t.is(synack.options.mss, 1440);
  const data = parse(K.DATA6).repr;
  t.is(data.payload.toString(), 'hello\n');
  t.is(data.flags, TCP_FLAG_PSH | TCP_FLAG_ACK);
  const sack = parse(K.SACK6).repr;
  t.deepEqual(present(sack.options).sackBlocks, [{ start: seqAdd(syn.seq, 15), end: seqAdd(syn.seq, 23) }]);
  t.is(sack.ack, seqAdd(syn.seq, 7));
  const fin = parse(K.FIN6).repr;
  t.is(fin.flags, TCP_FLAG_FIN | TCP_FLAG_ACK);
  t.is(fin.seq, seqAdd(syn.seq, 23));
});

test('parseTcp takes the IP layer\'s views as well as its packet info; TcpRepr works on a bare segment', (t) => {
  const counters = new TcpCodecCounters();
  const v4 = Ipv4Packet.check(bytes(K.SYN4));
  const v6 = Ipv6Packet.check(bytes(K.SYN6));
  if (typeof v4 === 'string' || typeof v6 === 'string') return t.fail();
  t.is(parseTcp(v4, counters, { checksum: 'verify' })?.seq, 3492433063);
  t.is(parseTcp(v6, counters, { checksum: 'verify' })?.seq, 4022440264);
  const info = ipOf(K.DATA4);
  const pseudo = ipPseudoHeaderSum(4, info.buffer, 6, info.payloadLength);
  const repr = TcpRepr.parse(new TcpPacket(info.payload), counters, pseudo);
  if (repr === null) return t.fail();
  t.is(repr.payload.toString(), 'hello\n');
  const out = Buffer.alloc(TcpRepr.bufferLen(repr));
  t.is(TcpRepr.emit(repr, out, 0, pseudo, 'full'), out.length);
  t.deepEqual(out, info.payload);
  t.is(TcpOptions.bufferLen(repr.options), 12);
  t.deepEqual(counters.nonZero(), { tcpSegmentsParsed: 3 });
});

test('the kernel\'s MPTCP SYN: MP_CAPABLE (kind 30) is passed through raw, after the usual SYN options (RFC 8684 §3.1)', (t) => {
  for (const hex of [K.MPTCP_SYN4, K.MPTCP_SYN6]) {
    const { repr, counters } = parse(hex);
    t.is(repr.flags, TCP_FLAG_SYN);
    t.true(repr.options.mss === 1460 || repr.options.mss === 1440);
    t.true(repr.options.sackPermitted);
    t.is(repr.options.windowScale, 10);
    // kind 30, length 4, subtype MP_CAPABLE (0) | version 1, flags 0x01 (H: HMAC-SHA256)
    t.deepEqual(repr.options.mptcp, [bytes('1e040101')]);
    t.is(counters.get('tcpUnknownOption'), 0);
  }
});

test('the kernel\'s MPTCP SYN-ACK and first data: the key-bearing MP_CAPABLE options, raw', (t) => {
  const synack = parse(K.MPTCP_SYNACK4).repr;
  t.deepEqual(synack.options.mptcp, [bytes('1e0c0101', 'e5ac078b25c93dd3')]);
  const data = parse(K.MPTCP_DATA4).repr;
  t.is(data.payload.toString(), 'hello\n');
  // 22 bytes: both keys and the data-level length 6; the kernel pads it with two NOPs.
  t.deepEqual(data.options.mptcp, [bytes('1e160101', '622860099b56d986', 'e5ac078b25c93dd3', '0006')]);
  t.deepEqual(tcpView(K.MPTCP_DATA4).options.subarray(-2), bytes('0101'));
  const fin = parse(K.MPTCP_DATAFIN4).repr;
  t.is(fin.options.mptcp?.[0][0], TCP_OPT_MPTCP);
  t.is(fin.options.mptcp?.[0][2], 0x20, 'subtype DSS (2) in the high nibble');
  t.is(fin.options.mptcp?.[0].length, 22);
});

// Re-emitting the kernel's segments.

test('the kernel\'s segments re-emitted from their representation are byte for byte the kernel\'s, checksums included', (t) => {
  for (const [name, hex] of Object.entries(K.FULL_CHECKSUM_CAPTURES)) {
    const info = ipOf(hex);
    const repr = parseTcp(info, new TcpCodecCounters(), { checksum: 'verify' });
    if (repr === null) {
      t.fail(`${name} dropped`);
      continue;
    }
    t.is(tcpHeaderLen(repr), tcpView(hex).headerLen, `${name}: header length`);
    t.is(emit(ipHeaderOf(info), repr).toString('hex'), hex, name);
  }
});

test('emitOptions writes the options in the kernel\'s order, so our SYNs look like Linux\'s', (t) => {
  const syn = tcpView(K.SYN4);
  const opts: TcpOptions = { mss: 1460, sackPermitted: true, timestamps: { tsVal: 407170918, tsEcr: 0 }, windowScale: 10 };
  const buf = Buffer.alloc(optionsLen(opts));
  t.is(emitOptions(opts, buf, 0), 20);
  t.deepEqual(buf, syn.options, 'MSS, SACK-Permitted, TS, NOP, WS');
  const cases: Array<[TcpOptions, string]> = [
    [{ timestamps: { tsVal: 1, tsEcr: 2 } }, '0101080a0000000100000002'],
    [{ sackPermitted: true }, '01010402'],
    [{ windowScale: 7 }, '01030307'],
    [{ mss: 536, windowScale: 0 }, '0204021801030300'],
    [{ timestamps: { tsVal: 1, tsEcr: 2 }, sackBlocks: [{ start: 10, end: 20 }] }, '0101080a00000001000000020101050a0000000a00000014'],
    [{ sackBlocks: [{ start: 10, end: 20 }, { start: 30, end: 40 }] }, '010105120000000a000000140000001e00000028'],
    [{ mptcp: [bytes('1e082001afcd986b')] }, '1e082001afcd986b'],
    [{ mptcp: [bytes('1e0620010001')] }, '1e06200100010101'],
    [{ unknown: [{ kind: 253, data: bytes('1234ab') }] }, 'fd051234ab010101'],
    [{}, ''],
  ];
  for (const [o, hex] of cases) {
    const b = Buffer.alloc(optionsLen(o));
    emitOptions(o, b, 0);
    t.is(b.toString('hex'), hex, JSON.stringify(o));
  }
});

// Checksums over the pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1).

test('checksums over IPv4 and IPv6 verify as the kernel computed them, and one flipped bit anywhere is caught', (t) => {
  for (const hex of [K.DATA4, K.DATA6, K.SACK4, K.SACK6, K.MPTCP_DATA4]) {
    const clean = ipOf(hex);
    const view = new TcpPacket(clean.payload);
    t.true(view.verifyChecksum(ipPseudoHeaderSum(clean.version, clean.buffer, 6, clean.payloadLength)));
    // a bit in the source address (pseudo-header), the header, the options, the data
    const positions = [clean.srcOffset + 1, clean.headerLen + 5, clean.headerLen + 24, clean.end - 1];
    for (const pos of positions) {
      const info = ipOf(hex);
      info.buffer[pos] ^= 0x10;
      const counters = new TcpCodecCounters();
      t.is(parseTcp(info, counters, { checksum: 'verify' }), null, `flip at ${pos}`);
      t.deepEqual(counters.nonZero(), { tcpBadChecksum: 1 });
    }
  }
});

test('a checksum field holding only the pseudo-header sum (offload) fails verification, passes when skipped', (t) => {
  for (const hex of [K.SYN4_PARTIAL, K.SYN6_PARTIAL]) {
    const verify = new TcpCodecCounters();
    t.is(parseTcp(ipOf(hex), verify, { checksum: 'verify' }), null);
    t.deepEqual(verify.nonZero(), { tcpBadChecksum: 1 });
    const { repr, counters } = parse(hex, 'skip');
    t.is(repr.flags, TCP_FLAG_SYN);
    t.deepEqual(counters.nonZero(), { tcpChecksumSkipped: 1, tcpSegmentsParsed: 1 });
  }
});

test('a partial checksum is the kernel\'s: the folded pseudo-header sum, not complemented (CHECKSUM_PARTIAL)', (t) => {
  for (const hex of [K.SYN4_PARTIAL, K.SYN6_PARTIAL]) {
    const info = ipOf(hex);
    const { repr } = parse(hex, 'skip');
    t.is(emit(ipHeaderOf(info), repr, 'partial').toString('hex'), hex);
    // and the device's part: summing the segment from csum_start with that field in place gives the full checksum
    const full = emit(ipHeaderOf(info), repr, 'full');
    const ipLen = info.headerLen;
    const deviceChecksum = internetChecksum(info.buffer, ipLen, info.end);
    t.is(deviceChecksum, full.readUInt16BE(ipLen + TCP_OFF_CHECKSUM));
  }
});

// The view.

test('TcpPacket reads every field of the kernel\'s SYN-ACK and writes them in place', (t) => {
  const info = ipOf(K.SYNACK4);
  const p = new TcpPacket(info.payload);
  t.is(p.srcPort, 5002);
  t.is(p.dstPort, 48600);
  t.is(p.seq, 2896815207);
  t.is(p.ack, 3492433064);
  t.is(p.dataOffset, 10);
  t.is(p.headerLen, 40);
  t.is(p.reserved, 0);
  t.is(p.flags, TCP_FLAG_SYN | TCP_FLAG_ACK);
  t.true(p.has(TCP_FLAG_SYN));
  t.true(p.has(TCP_FLAG_SYN | TCP_FLAG_ACK));
  t.false(p.has(TCP_FLAG_FIN));
  t.is(p.window, 65160);
  t.is(p.checksum, 0xb752);
  t.is(p.urgent, 0);
  t.is(p.options.length, 20);
  t.is(p.payload.length, 0);
  const pseudo = ipPseudoHeaderSum(4, info.buffer, 6, p.buffer.length);
  t.true(p.verifyChecksum(pseudo));

  p.srcPort = 1;
  p.dstPort = 0xffff;
  p.seq = 0xfffffffe;
  p.ack = 7;
  p.window = 0;
  p.urgent = 9;
  p.reserved = 0x0f;
  p.setFlag(TCP_FLAG_SYN, false);
  p.setFlag(TCP_FLAG_CWR | TCP_FLAG_ECE, true);
  t.is(info.payload.subarray(0, 20).toString('hex'), '0001ffff' + 'fffffffe' + '00000007' + 'af' + 'd0' + '0000' + 'b752' + '0009');
  t.is(p.dataOffset, 10, 'the reserved bits leave Data Offset alone');
  t.false(p.verifyChecksum(pseudo));
  p.fillChecksum(pseudo);
  t.true(p.verifyChecksum(pseudo));
  p.fillPartialChecksum(pseudo);
  t.is(p.checksum, fold(pseudo));
  p.headerLen = 24;
  t.is(p.dataOffset, 6);
});

test('TcpPacket.fillChecksum reproduces the kernel\'s checksum, and the options and payload are views', (t) => {
  const info = ipOf(K.DATA6);
  const p = new TcpPacket(info.payload);
  const kernel = p.checksum;
  p.checksum = 0;
  p.fillChecksum(ipPseudoHeaderSum(6, info.buffer, 6, p.buffer.length));
  t.is(p.checksum, kernel);
  p.payload[0] = 0x48; // 'H'
  t.is(info.buffer.subarray(info.end - 6, info.end).toString(), 'Hello\n');
  p.options[0] = 0;
  t.is(info.buffer[info.headerLen + 20], 0);
  t.deepEqual(p.parseOptions(), { ...newTcpOptions() }, 'an EOL first: no options');
});

// Malformed input: counted, never thrown.

test('TcpPacket.check: shorter than 20 bytes is tcpTruncated', (t) => {
  const seg = ipOf(K.SYN4).payload;
  for (let n = 0; n < TCP_HEADER_LEN; n++) t.is(TcpPacket.check(seg.subarray(0, n)), 'tcpTruncated', `${n} bytes`);
  t.throws(() => new TcpPacket(Buffer.alloc(19)), { instanceOf: RangeError }, 'the constructor is for builders');
});

test('TcpPacket.check: Data Offset below 5 or past the end is tcpBadDataOffset', (t) => {
  for (let words = 0; words < 5; words++) {
    const seg = Buffer.from(ipOf(K.SYN4).payload);
    seg[12] = (words << 4) | (seg[12] & 0x0f);
    t.is(TcpPacket.check(seg), 'tcpBadDataOffset', `${words} words`);
  }
  const seg = ipOf(K.SYN4).payload; // 40 bytes, Data Offset 10
  t.is(TcpPacket.check(seg.subarray(0, 39)), 'tcpBadDataOffset');
  const big = Buffer.from(seg);
  big[12] = 0xf0; // 60 bytes of header in 40
  t.is(TcpPacket.check(big), 'tcpBadDataOffset');
  t.true(TcpPacket.check(seg) instanceof TcpPacket);
});

test('TcpPacket.check and parseOptions: an option with a length below 2 or past the options area is tcpBadOptions (RFC 9293 MUST-7)', (t) => {
  const bad: Array<[string, string]> = [
    ['02000000', 'length 0'],
    ['02010000', 'length 1'],
    ['01010205', 'MSS running past the area'],
    ['01010102', 'a kind octet with no room for its length'],
    ['0101081e', 'timestamps longer than the area'],
    ['1e2a0101', 'MPTCP option longer than the area'],
  ];
  for (const [optHex, why] of bad) {
    const seg = bytes('bdd8138a d02a4ca7 00000000 6002faf0 00000000', optHex);
    t.is(TcpPacket.check(seg), 'tcpBadOptions', why);
    t.is(checkTcp(seg), 'tcpBadOptions', why);
    t.is(parseOptions(bytes(optHex), newTcpOptions()), 'tcpBadOptions', why);
    const counters = new TcpCodecCounters();
    t.is(parseTcpSegment(seg, 0, seg.length, null, counters), null, why);
    t.is(counters.get('tcpBadOptions'), 1, why);
  }
  // RFC 9293 §3.1: "The content of the header beyond the End of Option List Option MUST be header padding of zeros"; not walked.
  t.true(TcpPacket.check(bytes('bdd8138a d02a4ca7 00000000 6002faf0 00000000', '00020000')) instanceof TcpPacket);
});

test('every prefix of every kernel segment parses or is counted, and never throws', (t) => {
  for (const [name, hex] of Object.entries(K.FULL_CHECKSUM_CAPTURES)) {
    const seg = ipOf(hex).payload;
    const headerLen = (seg[12] >>> 4) * 4;
    const counters = new TcpCodecCounters();
    for (let n = 0; n <= seg.length; n++) {
      const r = parseTcpSegment(seg, 0, n, null, counters);
      if (n < TCP_HEADER_LEN) t.is(r, null);
      else if (n < headerLen) t.is(r, null);
      else t.is(r?.payload.length, n - headerLen, `${name}: ${n} bytes`);
    }
    t.is(outcomes(counters), seg.length + 1, name);
    t.is(counters.get('tcpTruncated'), TCP_HEADER_LEN, name);
    t.is(counters.get('tcpBadDataOffset'), headerLen - TCP_HEADER_LEN, name);
  }
});

test('an IP packet whose payload is cut short by its own length fields is counted, not thrown', (t) => {
  // Total Length says 30: the IP layer accepts the packet (its checksum is fixed up), TCP sees 10 bytes.
  const buf = bytes(K.SYN4);
  const v = new Ipv4Packet(buf);
  v.totalLength = 30;
  v.fillChecksum();
  const counters = new TcpCodecCounters();
  const info = parseIpPacket(buf, new IpCounters());
  t.not(info, null);
  if (info !== null) t.is(parseTcp(info, counters, { checksum: 'verify' }), null);
  t.deepEqual(counters.nonZero(), { tcpTruncated: 1 });
  // A view whose Payload Length claims more than the buffer.
  const six = new Ipv6Packet(bytes(K.SYN6).subarray(0, 60));
  t.is(parseTcp(six, counters, { checksum: 'verify' }), null);
  t.is(counters.get('tcpTruncated'), 2);
  // Not TCP at all.
  const icmp = new Ipv4Packet(bytes(K.SYN4));
  icmp.protocol = 1;
  t.is(parseTcp(icmp, counters, { checksum: 'skip' }), null);
  t.is(counters.get('tcpNotTcp'), 1);
});

test('random bytes and every single-byte corruption of the kernel\'s segments never throw (seeded)', (t) => {
  const counters = new TcpCodecCounters();
  const random = rng(9293);
  let attempts = 0;
  for (let i = 0; i < 20000; i++) {
    const len = Math.floor(random() * 80);
    const seg = Buffer.alloc(len);
    for (let j = 0; j < len; j++) seg[j] = Math.floor(random() * 256);
    // make a plausible Data Offset most of the time, so that the options walk gets exercised
    if (len > 12 && random() < 0.8) seg[12] = (Math.min(15, 5 + Math.floor(random() * ((len - 20) / 4 + 1))) << 4) | (seg[12] & 0x0f);
    t.notThrows(() => {
      TcpPacket.check(seg);
      parseTcpSegment(seg, 0, seg.length, random() < 0.5 ? null : 0, counters);
      parseOptions(seg, newTcpOptions(), counters);
    });
    attempts++;
  }
  for (const hex of [K.SYN4, K.SACK6, K.MPTCP_DATA4]) {
    const clean = ipOf(hex).payload;
    for (let pos = 0; pos < clean.length; pos++) {
      for (let v = 0; v < 256; v += 3) {
        const seg = Buffer.from(clean);
        seg[pos] = v;
        parseTcpSegment(seg, 0, seg.length, null, counters);
        attempts++;
      }
    }
  }
  t.is(outcomes(counters), attempts);
});

// Options: clamping, lengths, unknown kinds.

test('a window scale above 14 is taken as 14 and counted (RFC 7323 §2.3)', (t) => {
  const counters = new TcpCodecCounters();
  for (const shift of [14, 15, 255]) {
    const o = newTcpOptions();
    t.is(parseOptions(bytes('010303', shift.toString(16).padStart(2, '0')), o, counters), null);
    t.is(o.windowScale, 14);
  }
  t.is(counters.get('tcpWindowScaleClamped'), 2);
});

test('a known option with the wrong length is ignored and counted, as Linux ignores it', (t) => {
  const counters = new TcpCodecCounters();
  const o = newTcpOptions();
  // MSS of length 3, WS of length 4, SACK-Permitted of length 3, TS of length 8, SACK of length 9 and 6, then a good MSS
  const area = bytes(
    '020305', // MSS, length 3
    '03040a00', // Window Scale, length 4
    '040300', // SACK-Permitted, length 3
    '0808000000000000', // Timestamps, length 8
    '050900000000000000', // SACK, length 9: not 2 + 8n
    '050600000000', // SACK, length 6: no whole block
    '02040218', // MSS 536, well formed
  );
  t.is(parseOptions(area, o, counters), null);
  t.deepEqual(present(o), { mss: 536 });
  t.is(counters.get('tcpOptionBadLength'), 6);
});

test('options of unknown kinds are kept with their data and counted (RFC 9293 MUST-6); EOL ends the list', (t) => {
  const counters = new TcpCodecCounters();
  const o = newTcpOptions();
  // RFC 6994 experimental option (kind 253, ExID 0x4e44), TCP Fast Open cookie (34), then EOL and padding
  const area = bytes('fd064e440102', '2206aabbccdd', '00', '0204ffff');
  t.is(parseOptions(area, o, counters), null);
  t.deepEqual(present(o), {
    unknown: [
      { kind: 253, data: bytes('4e440102') },
      { kind: 34, data: bytes('aabbccdd') },
    ],
  });
  t.is(counters.get('tcpUnknownOption'), 2);
});

test('parse reuses its output object, and every field reflects only the last segment', (t) => {
  const counters = new TcpCodecCounters();
  const out = newTcpRepr();
  const a = parseTcp(ipOf(K.SACK4), counters, { checksum: 'verify' }, out);
  t.is(a, out);
  const blocks = out.options.sackBlocks;
  const ts = out.options.timestamps;
  t.is(blocks?.length, 1);
  const b = parseTcp(ipOf(K.SYN4), counters, { checksum: 'verify' }, out);
  t.is(b, out);
  t.is(out.options.sackBlocks, blocks, 'the list is kept for the next time');
  t.is(out.options.sackBlocks?.length, 0, 'but emptied');
  t.is(out.options.timestamps, ts, 'the timestamps object is reused');
  t.deepEqual(present(out.options), present(parse(K.SYN4).repr.options));
  parseTcp(ipOf(K.MPTCP_SYNACK4), counters, { checksum: 'verify' }, out);
  const mptcp = out.options.mptcp;
  parseTcp(ipOf(K.SACK6), counters, { checksum: 'verify' }, out);
  t.is(out.options.mptcp, mptcp);
  t.is(out.options.mptcp?.length, 0);
  t.is(out.options.mss, undefined);
  t.is(out.options.windowScale, undefined);
  t.is(out.options.sackPermitted, undefined);
  t.deepEqual(present(out.options).sackBlocks, present(parse(K.SACK6).repr.options).sackBlocks);
  const noOpts = bytes('bdd8138a d02a4ca7 00000000 5010faf0 00000000');
  parseTcpSegment(noOpts, 0, noOpts.length, null, counters, out);
  t.is(out.options.timestamps, undefined);
  t.deepEqual(present(out.options), {});
});

// The 40-byte option space (RFC 9293 §3.1) and the bytes left for MPTCP.

test('SACK blocks fill what the other options leave: 3 with timestamps, 4 without (RFC 2018 §3)', (t) => {
  const blocks = (n: number) => Array.from({ length: n }, (_, i) => ({ start: 1000 * i, end: 1000 * i + 500 }));
  const ts = { tsVal: 1, tsEcr: 2 };
  t.is(optionsLen({ timestamps: ts, sackBlocks: blocks(3) }), 40);
  t.is(optionsLen({ sackBlocks: blocks(4) }), 36);
  const cases: Array<[TcpOptions, number]> = [
    [{ timestamps: ts, sackBlocks: blocks(4) }, 3],
    [{ sackBlocks: blocks(5) }, 4],
    // a DSS of 20 bytes beside the timestamps leaves 8 bytes: not enough for one block (4 + 8)
    [{ timestamps: ts, sackBlocks: blocks(2), mptcp: [mptcpOption(20)] }, 0],
    [{ timestamps: ts, sackBlocks: blocks(2), mptcp: [bytes('1e082001afcd986b')] }, 2],
  ];
  for (const [o, fit] of cases) {
    t.is(sackBlocksThatFit(o), fit);
    const counters = new TcpCodecCounters();
    const buf = Buffer.alloc(optionsLen(o));
    t.true(buf.length <= TCP_MAX_OPTIONS_LEN);
    t.is(emitOptions(o, buf, 0, counters), buf.length);
    t.is(counters.get('tcpSackBlocksTrimmed'), fit < (o.sackBlocks?.length ?? 0) ? 1 : 0);
    const back = newTcpOptions();
    t.is(parseOptions(buf, back), null);
    t.deepEqual(back.sackBlocks ?? [], (o.sackBlocks ?? []).slice(0, fit), 'the first blocks are kept');
    t.deepEqual(back.mptcp ?? [], o.mptcp ?? []);
  }
});

test('optionSpaceLeft: what the MPTCP layer may still use, each of its options padded to 4', (t) => {
  const ts = { tsVal: 1, tsEcr: 2 };
  t.is(optionSpaceLeft({}), 40);
  t.is(optionSpaceLeft({ timestamps: ts }), 28);
  t.is(optionSpaceLeft({ mss: 1460, sackPermitted: true, timestamps: ts, windowScale: 7 }), 20, 'a Linux SYN leaves 20 bytes');
  t.is(optionSpaceLeft(parse(K.MPTCP_SYN4).repr.options), 16, 'of which MP_CAPABLE took 4 in the kernel\'s MPTCP SYN');
  t.is(optionSpaceLeft({ timestamps: ts, sackBlocks: [{ start: 1, end: 2 }] }), 28, 'SACK blocks yield to MPTCP, as in Linux');
  t.is(optionSpaceLeft({ timestamps: ts, mptcp: [mptcpOption(22)] }), 4, 'a 22-byte DSS takes 24');
  t.is(optionSpaceLeft(parse(K.MPTCP_DATA4).repr.options), 4);
  t.throws(() => emitOptions({ timestamps: ts, mptcp: [mptcpOption(30)] }, Buffer.alloc(60), 0), { instanceOf: RangeError },
    'more than 40 bytes of options is a programming error of the caller, which optionSpaceLeft prevents');
  t.throws(() => emitOptions({ mptcp: [bytes('1e0450')] }, Buffer.alloc(60), 0), { instanceOf: RangeError },
    'an MPTCP option whose length octet disagrees with its size would corrupt the header');
});

// Round trips.

test('emit → parse round trips: SACK blocks, unknown options, MPTCP raw options, URG, odd payloads, both families', (t) => {
  const dss = parse(K.MPTCP_DATAFIN4).repr.options.mptcp?.[0] ?? Buffer.alloc(0);
  const cases: TcpRepr[] = [
    segment(),
    segment({ flags: TCP_FLAG_SYN, ack: 0, options: { mss: 1460, sackPermitted: true, timestamps: { tsVal: 0xffffffff, tsEcr: 0 }, windowScale: 14 } }),
    segment({ flags: TCP_FLAG_SYN, ack: 0, options: { mss: 1220, sackPermitted: true, windowScale: 0 } }),
    segment({ options: { timestamps: { tsVal: 5, tsEcr: 6 }, sackBlocks: [{ start: 0xfffffff0, end: 0x10 }, { start: 100, end: 200 }, { start: 300, end: 400 }] } }),
    segment({ options: { sackBlocks: [{ start: 1, end: 2 }, { start: 3, end: 4 }, { start: 5, end: 6 }, { start: 7, end: 8 }] } }),
    segment({ options: { unknown: [{ kind: 253, data: bytes('4e44') }, { kind: 99, data: bytes('01') }, { kind: 200, data: Buffer.alloc(0) }] } }),
    segment({ flags: TCP_FLAG_ACK, options: { timestamps: { tsVal: 7, tsEcr: 8 }, mptcp: [dss] } }),
    segment({ flags: TCP_FLAG_ACK | TCP_FLAG_PSH, options: { timestamps: { tsVal: 7, tsEcr: 8 }, mptcp: [bytes('1e082001afcd986b'), bytes('1e0350')] } }),
    segment({ flags: TCP_FLAG_ACK | TCP_FLAG_URG, urgent: 3, payload: Buffer.from('urgent!') }),
    segment({ flags: TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_ECE | TCP_FLAG_CWR, payload: Buffer.alloc(1461, 0xa5) }),
    segment({ flags: TCP_FLAG_RST, window: 0 }),
    segment({ flags: TCP_FLAG_FIN | TCP_FLAG_ACK, window: 0xffff, srcPort: 0xffff, dstPort: 1 }),
  ];
  for (const ip of [V4, V6]) {
    for (const repr of cases) {
      const pkt = emit(ip, repr);
      const counters = new TcpCodecCounters();
      const info = parseIpPacket(pkt, new IpCounters());
      if (info === null) {
        t.fail('the IP layer rejected our packet');
        continue;
      }
      const back = parseTcp(info, counters, { checksum: 'verify' });
      if (back === null) {
        t.fail(`dropped: ${JSON.stringify(counters.nonZero())}`);
        continue;
      }
      const { options, payload, ...fields } = back;
      const { options: o2, payload: p2, ...fields2 } = repr;
      t.deepEqual(fields, fields2);
      t.deepEqual(present(options), present(o2));
      t.deepEqual(payload, p2);
      t.is(back.options.mptcp?.length ?? 0, repr.options.mptcp?.length ?? 0);
    }
  }
});

test('random representations round trip through emit and parse (seeded)', (t) => {
  const random = rng(7323);
  const u32 = () => Math.floor(random() * 0x100000000) >>> 0;
  const u16 = () => Math.floor(random() * 0x10000);
  for (let i = 0; i < 2000; i++) {
    const o: TcpOptions = {};
    if (random() < 0.5) o.mss = u16();
    if (random() < 0.5) o.windowScale = Math.floor(random() * 15);
    if (random() < 0.5) o.sackPermitted = true;
    if (random() < 0.6) o.timestamps = { tsVal: u32(), tsEcr: u32() };
    if (random() < 0.3) o.mptcp = [Buffer.from([TCP_OPT_MPTCP, 4, 0x01, 0x01])];
    if (random() < 0.2) o.unknown = [{ kind: 100 + Math.floor(random() * 100), data: Buffer.alloc(Math.floor(random() * 3), 7) }];
    if (random() < 0.5) o.sackBlocks = Array.from({ length: 1 + Math.floor(random() * 4) }, () => ({ start: u32(), end: u32() }));
    const repr = segment({
      srcPort: u16(), dstPort: u16(), seq: u32(), ack: u32(), flags: Math.floor(random() * 256), window: u16(), urgent: u16(),
      options: o, payload: Buffer.alloc(Math.floor(random() * 40), i & 0xff),
    });
    const ip = random() < 0.5 ? V4 : V6;
    const pkt = emit(ip, repr);
    const counters = new TcpCodecCounters();
    const info = parseIpPacket(pkt, new IpCounters());
    const back = info && parseTcp(info, counters, { checksum: 'verify' });
    if (back === null) {
      t.fail(`case ${i} dropped: ${JSON.stringify(counters.nonZero())}`);
      return;
    }
    const expected = present(o);
    if (expected.sackBlocks) expected.sackBlocks = expected.sackBlocks.slice(0, sackBlocksThatFit(o));
    if (expected.sackBlocks?.length === 0) delete expected.sackBlocks;
    t.deepEqual(present(back.options), expected, `case ${i}`);
    t.is(back.seq, repr.seq);
    t.is(back.flags, repr.flags);
  }
});

// Builders: one buffer, sized exactly, nothing outside it touched.

test('emitIpTcp writes exactly tcpPacketLen bytes at its offset and nothing around them', (t) => {
  const repr = segment({ options: { timestamps: { tsVal: 1, tsEcr: 2 } }, payload: Buffer.from('abc') });
  for (const ip of [V4, V6]) {
    const len = tcpPacketLen(repr, ip.ipVersion);
    t.is(len, (ip.ipVersion === 4 ? 20 : 40) + 32 + 3);
    const buf = Buffer.alloc(VNET_HDR_LEN + len + 7, 0xee);
    t.is(emitIpTcp(buf, VNET_HDR_LEN, ip, repr, { checksum: 'full' }), len);
    t.true(buf.subarray(0, VNET_HDR_LEN).every((b) => b === 0xee));
    t.true(buf.subarray(VNET_HDR_LEN + len).every((b) => b === 0xee));
    t.deepEqual(buf.subarray(VNET_HDR_LEN, VNET_HDR_LEN + len), emit(ip, repr));
    t.throws(() => emitIpTcp(Buffer.alloc(len - 1), 0, ip, repr, { checksum: 'full' }), { instanceOf: RangeError });
  }
  const counters = new TcpCodecCounters();
  emit(V4, repr, 'full', counters);
  t.deepEqual(counters.nonZero(), { tcpSegmentsEmitted: 1 });
});

test('emitTcp writes a bare segment whose checksum verifies against the pseudo-header it was given', (t) => {
  const repr = segment({ payload: Buffer.from('odd') });
  const pseudo = 0x1234 + 0xabcd;
  const buf = Buffer.alloc(tcpHeaderLen(repr) + 3);
  t.is(emitTcp(buf, 0, repr, pseudo, 'full'), buf.length);
  t.true(new TcpPacket(buf).verifyChecksum(pseudo));
  t.is(fold(onesSum(buf, 0, buf.length, pseudo)), 0xffff);
});

test('a TSO super-segment: partial checksum over the whole length, and the virtio-net header the kernel expects', (t) => {
  const mss = 1448;
  const payload = Buffer.alloc(3 * mss + 100);
  for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
  const repr = segment({ flags: TCP_FLAG_ACK | TCP_FLAG_PSH, options: { timestamps: { tsVal: 1, tsEcr: 2 } }, payload });
  for (const ip of [V4, V6]) {
    const ipLen = ip.ipVersion === 4 ? 20 : 40;
    const len = tcpPacketLen(repr, ip.ipVersion);
    const buf = Buffer.alloc(VNET_HDR_LEN + len);
    emitIpTcp(buf, VNET_HDR_LEN, ip, repr, { checksum: 'partial' });
    const hdr = tcpOffloadVnetHdr(ip.ipVersion, repr, mss);
    t.deepEqual(hdr, {
      flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
      gsoType: ip.ipVersion === 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6,
      hdrLen: ipLen + 32,
      gsoSize: mss,
      csumStart: ipLen,
      csumOffset: 16,
    });
    emitVnetHdr(hdr, buf, 0);
    t.deepEqual(parseVnetHdr(buf, 0), hdr);
    const pkt = buf.subarray(VNET_HDR_LEN);
    // the field holds the pseudo-header sum for the whole super-segment's TCP length
    t.is(pkt.readUInt16BE(ipLen + 16), fold(ipPseudoHeaderSum(ip.ipVersion, pkt, 6, len - ipLen)));
    // what the device does with NEEDS_CSUM: checksum from csum_start, the field included, stored at csum_start + csum_offset
    pkt.writeUInt16BE(internetChecksum(pkt, hdr.csumStart, pkt.length), hdr.csumStart + hdr.csumOffset);
    t.deepEqual(pkt, emit(ip, repr, 'full'));
  }
  // a segment no longer than the MSS needs no segmentation, only the checksum
  const small = segment({ payload: Buffer.alloc(100) });
  t.like(tcpOffloadVnetHdr(4, small, mss), { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_NONE, gsoSize: 0, csumStart: 20 });
  // CWR on a super-segment asks for the ECN flavour of TSO (virtio_net_hdr_from_skb: SKB_GSO_TCP_ECN)
  const cwr = segment({ flags: TCP_FLAG_ACK | TCP_FLAG_CWR, payload });
  t.is(tcpOffloadVnetHdr(6, cwr, mss).gsoType, VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN);
});

test('the counters name every drop reason, and drop reasons are told from views', (t) => {
  const c = new TcpCodecCounters();
  for (const r of TCP_DROP_REASONS) {
    t.true(TCP_CODEC_COUNTER_NAMES.includes(r));
    t.true(isTcpDropReason(r));
    t.is(c.get(r), 0);
  }
  t.false(isTcpDropReason(tcpView(K.SYN4)));
  t.false(isTcpDropReason('badChecksum'));
});

// Wireshark as a second opinion on what we emit.

const execFileP = promisify(execFile);
const haveTshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;
const inCI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';



/**
 * Warnings that Wireshark gives on sound packets, expected on the frames named below and only
 * there. Wireshark 4.0 warns "4 NOP in a row - a router may have removed some options" on a
 * segment with NOP NOP before its timestamps and the NOP NOP that pads a 22-byte MPTCP option:
 * the MPTCP dissector does not reset its NOP count. The kernel's own segments get the same
 * warning (the control packet, the last frame, proves it). And every RST is a warning.
 */
const NOP_QUIRK = /^4 NOP in a row/;
const RST_WARNING = /^Connection reset \(RST\)$/;

(haveTshark || inCI ? test : test.skip)('tshark dissects every packet we emit with good checksums and nothing malformed', async (t) => {
  const ts = { tsVal: 0x01020304, tsEcr: 0x05060708 };
  const dss = parse(K.MPTCP_DATAFIN4).repr.options.mptcp?.[0] ?? Buffer.alloc(0);
  const packets = [
    emit(V4, segment({ flags: TCP_FLAG_SYN, ack: 0, options: { mss: 1460, sackPermitted: true, timestamps: { tsVal: 1, tsEcr: 0 }, windowScale: 7, mptcp: [bytes('1e040101')] } })),
    emit(V4, segment({ flags: TCP_FLAG_SYN | TCP_FLAG_ACK, options: { mss: 1400, sackPermitted: true, timestamps: ts, windowScale: 9, mptcp: [bytes('1e0c0101e5ac078b25c93dd3')] } })),
    emit(V4, segment({ flags: TCP_FLAG_ACK | TCP_FLAG_PSH, options: { timestamps: ts, mptcp: [dss] }, payload: Buffer.alloc(1001, 0x5a) })),
    emit(V4, segment({ options: { timestamps: ts, sackBlocks: [{ start: 0x01020404, end: 0x01020504 }, { start: 0x01020604, end: 0x01020704 }, { start: 0x01020804, end: 0x01020904 }] } })),
    emit(V4, segment({ options: { sackBlocks: [{ start: 10, end: 20 }, { start: 30, end: 40 }, { start: 50, end: 60 }, { start: 70, end: 80 }] } })),
    emit(V6, segment({ flags: TCP_FLAG_SYN, ack: 0, options: { mss: 1440, sackPermitted: true, timestamps: { tsVal: 1, tsEcr: 0 }, windowScale: 7 } })),
    emit(V6, segment({ flags: TCP_FLAG_ACK | TCP_FLAG_PSH, options: { timestamps: ts, mptcp: [bytes('1e082001afcd986b')] }, payload: Buffer.from('hello over IPv6\n') })),
    emit(V4, segment({ flags: TCP_FLAG_RST, ack: 0, window: 0 })),
    emit(V4, segment({ options: { unknown: [{ kind: 253, data: bytes('4e440102') }] } })),
    emit(V6, segment({ flags: TCP_FLAG_FIN | TCP_FLAG_ACK | TCP_FLAG_URG, urgent: 1, payload: Buffer.from('!') })),
    bytes(K.MPTCP_DATAFIN4), // control: the kernel's own segment, same option layout as frame 3
  ];
  const expectedWarnings = new Map([[3, NOP_QUIRK], [8, RST_WARNING], [11, NOP_QUIRK]]);
  const dir = await mkdtemp(join(tmpdir(), 'mptseg-'));
  try {
    const file = join(dir, 'emitted.pcap');
    await writeFile(file, pcap(packets));
    const fields = ['frame.number', 'ip.checksum.status', 'tcp.checksum.status', '_ws.malformed', '_ws.expert.severity', '_ws.expert.message',
      'tcp.options.mss_val', 'tcp.options.wscale.shift', 'tcp.options.sack_le', 'tcp.options.mptcp.subtype', 'tcp.len'];
    const { stdout } = await execFileP('tshark', [
      '-r', file, '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE',
      '-o', 'tcp.analyze_sequence_numbers:FALSE', '-o', 'tcp.relative_sequence_numbers:FALSE',
      '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=|', ...fields.flatMap((f) => ['-e', f]),
    ], { encoding: 'utf8' });
    const rows = stdout.trim().split('\n').map((line) => {
      const cols = line.split('\t');
      return Object.fromEntries(fields.map((f, i) => [f, cols[i] ?? '']));
    });
    t.is(rows.length, packets.length);
    rows.forEach((row, i) => {
      const frame = i + 1;
      const what = `frame ${frame}: ${JSON.stringify(row)}`;
      t.is(row['tcp.checksum.status'], '1', what); // 1 = good
      if (packets[i][0] >>> 4 === 4) t.is(row['ip.checksum.status'], '1', what);
      t.is(row['_ws.malformed'], '', what);
      const severities = row['_ws.expert.severity'].split('|').filter((x) => x !== '').map(Number);
      const messages = row['_ws.expert.message'].split('|');
      const warnings = severities.map((sev, j) => ({ sev, msg: messages[j] ?? '' })).filter((e) => e.sev >= PI_WARN);
      const unexpected = warnings.filter((e) => !(expectedWarnings.get(frame)?.test(e.msg) ?? false));
      t.deepEqual(unexpected, [], what);
    });
    // the control: Wireshark says the same about the kernel's segment as about ours
    t.deepEqual(rows[10]['_ws.expert.message'], rows[2]['_ws.expert.message']);
    t.is(rows[0]['tcp.options.mss_val'], '1460');
    t.is(rows[0]['tcp.options.wscale.shift'], '7');
    t.is(rows[0]['tcp.options.mptcp.subtype'], '0'); // MP_CAPABLE
    t.is(rows[2]['tcp.options.mptcp.subtype'], '2'); // DSS
    t.is(rows[2]['tcp.len'], '1001');
    t.is(rows[3]['tcp.options.sack_le'], `${0x01020404}|${0x01020604}|${0x01020804}`);
    t.is(rows[4]['tcp.options.sack_le'].split('|').length, 4);
    t.is(rows[5]['tcp.options.mss_val'], '1440');
    t.is(rows[6]['tcp.options.mptcp.subtype'], '2');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
