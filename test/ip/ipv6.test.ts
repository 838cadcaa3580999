import test from 'ava';
import { parseIpv6Address } from '../../src/ip/address.js';
import { pseudoHeaderSumV6, verifyChecksum } from '../../src/ip/checksum.js';
import { IpCounters } from '../../src/ip/counters.js';
import {
  IPPROTO_AH,
  IPPROTO_DSTOPTS,
  IPPROTO_FRAGMENT,
  IPPROTO_HOPOPTS,
  IPPROTO_ICMPV6,
  IPPROTO_NONE,
  IPPROTO_ROUTING,
  IPV6_HEADER_LEN,
  Ipv6Packet,
  Ipv6Repr,
} from '../../src/ip/ipv6.js';
import { parseIpPacket } from '../../src/ip/packet.js';
import {
  bytes,
  KERNEL_FRAG6_LAST,
  KERNEL_MLD_REPORT_HBH,
  KERNEL_PING6_REPLY,
  KERNEL_PING6_REQUEST,
  KERNEL_SYNACK6,
} from './fixtures.js';

function view(buf: Buffer): Ipv6Packet {
  const v = Ipv6Packet.check(buf);
  if (typeof v === 'string') throw new Error(`fixture rejected: ${v}`);
  return v;
}

function drop(buf: Buffer): IpCounters {
  const counters = new IpCounters();
  if (parseIpPacket(buf, counters) !== null) throw new Error('expected a drop');
  return counters;
}

/**
 * The kernel's echo request with extension headers inserted after the fixed header. Each
 * header is given as [its Next Header value in the chain, its bytes]; the Next Header octets
 * are chained automatically and Payload Length adjusted. The ICMPv6 checksum stays valid: the
 * pseudo-header carries the upper-layer length, which does not change.
 */
function pingWith(...exts: [number, string][]): Buffer {
  const base = bytes(KERNEL_PING6_REQUEST);
  const headers = exts.map(([, hex]) => bytes(hex));
  headers.forEach((h, i) => (h[0] = i + 1 < exts.length ? exts[i + 1][0] : IPPROTO_ICMPV6));
  const out = Buffer.concat([base.subarray(0, 40), ...headers, base.subarray(40)]);
  out.writeUInt16BE(out.length - 40, 4);
  out[6] = exts.length > 0 ? exts[0][0] : IPPROTO_ICMPV6;
  return out;
}

test('parses the kernel\'s echo request field by field (RFC 8200 §3)', (t) => {
  const p = view(bytes(KERNEL_PING6_REQUEST));
  t.is(p.version, 6);
  t.is(p.trafficClass, 0);
  t.is(p.flowLabel, 0xcd9b9);
  t.is(p.payloadLength, 64);
  t.is(p.nextHeader, IPPROTO_ICMPV6);
  t.is(p.hopLimit, 64);
  t.deepEqual(p.srcAddress, parseIpv6Address('2001:db8::1'));
  t.deepEqual(p.dstAddress, parseIpv6Address('2001:db8::2'));
  t.is(p.protocol, IPPROTO_ICMPV6);
  t.is(p.headerLen, 40);
  t.is(p.extensionHeaders.length, 0);
  t.is(p.payload.length, 64);
  t.is(p.upperLayerPayload[0], 128);
});

test('Ipv6Repr.parse of the kernel\'s reply, and emit reproduces it byte for byte', (t) => {
  const captured = bytes(KERNEL_PING6_REPLY);
  const repr = Ipv6Repr.parse(view(captured));
  t.like(repr, { version: 6, nextHeader: 58, hopLimit: 64, payloadLen: 64, dscp: 0, ecn: 0, flowLabel: 0xde5eb });
  t.deepEqual(repr.src, parseIpv6Address('2001:db8::2'));
  t.deepEqual(repr.dst, parseIpv6Address('2001:db8::1'));
  for (const hex of [KERNEL_PING6_REPLY, KERNEL_PING6_REQUEST, KERNEL_SYNACK6]) {
    const pkt = bytes(hex);
    const r = Ipv6Repr.parse(view(pkt));
    const out = Buffer.alloc(Ipv6Repr.bufferLen(r));
    Ipv6Repr.emit(r, out);
    pkt.copy(out, IPV6_HEADER_LEN, IPV6_HEADER_LEN);
    t.deepEqual(out, pkt);
  }
});

test('traffic class and flow label straddle byte boundaries: round trip of extreme values', (t) => {
  const repr: Ipv6Repr = {
    version: 6,
    src: parseIpv6Address('fd00::1'),
    dst: parseIpv6Address('2001:db8:ffff::abcd'),
    nextHeader: 6,
    hopLimit: 1,
    payloadLen: 0,
    dscp: 46,
    ecn: 1,
    flowLabel: 0xfffff,
  };
  const buf = Buffer.alloc(Ipv6Repr.bufferLen(repr));
  Ipv6Repr.emit(repr, new Ipv6Packet(buf));
  t.is(buf.readUInt32BE(0), (6 << 28) | ((46 << 2 | 1) << 20) | 0xfffff);
  const p = view(buf);
  t.is(p.trafficClass, (46 << 2) | 1);
  t.deepEqual(Ipv6Repr.parse(p), repr);
  p.flowLabel = 0;
  t.is(p.trafficClass, (46 << 2) | 1);
  p.dscp = 0;
  t.is(p.ecn, 1);
  p.ecn = 2;
  t.is(p.trafficClass, 2);
  p.trafficClass = 0xff;
  t.is(p.version, 6);
  t.is(p.flowLabel, 0);
  p.hopLimit = 9;
  p.payloadLength = 0;
  p.nextHeader = 17;
  p.srcAddress = parseIpv6Address('::1');
  p.version = 6;
  t.like(Ipv6Repr.parse(p), { hopLimit: 9, nextHeader: 17, dscp: 63, ecn: 3 });
  t.deepEqual(p.srcAddress, parseIpv6Address('::1'));
});

test('the kernel\'s MLD report: Hop-by-Hop header walked, ICMPv6 found at offset 48', (t) => {
  const p = view(bytes(KERNEL_MLD_REPORT_HBH));
  t.is(p.nextHeader, IPPROTO_HOPOPTS);
  t.is(p.protocol, IPPROTO_ICMPV6);
  t.is(p.headerLen, 48);
  // Router Alert (type 5, length 2, value 0: MLD) and a PadN of length 0.
  t.deepEqual(p.extensionHeaders, bytes('3a00050200000100'));
  t.is(p.upperLayerPayload[0], 143); // MLDv2 report
  const b = p.buffer;
  t.true(verifyChecksum(b, p.headerLen, b.length, pseudoHeaderSumV6(b, b, p.protocol, b.length - p.headerLen, 8, 24)));
});

test('walks a chain of Hop-by-Hop, Destination Options, Routing, AH and Destination Options', (t) => {
  const pkt = pingWith(
    [IPPROTO_HOPOPTS, '00 00 01 04 00000000'], // PadN(4): 8 bytes
    [IPPROTO_DSTOPTS, '00 01 01 0c 000000000000000000000000'], // 16 bytes
    [IPPROTO_ROUTING, '00 00 00 00 00000000'], // type 0 remnants, segments left 0: 8 bytes
    [IPPROTO_AH, '00 02 0000 00000001 00000002 00000000'], // (2 + 2) * 4 = 16 bytes
    [IPPROTO_DSTOPTS, '00 00 01 04 00000000'],
  );
  const p = view(pkt);
  t.is(p.protocol, IPPROTO_ICMPV6);
  t.is(p.headerLen, 40 + 8 + 16 + 8 + 16 + 8);
  t.is(p.upperLayerPayload.length, 64);
  t.is(p.upperLayerPayload[0], 128);
});

test('an atomic fragment (offset 0, M clear; RFC 6946) is a whole packet', (t) => {
  const p = view(pingWith([IPPROTO_FRAGMENT, '00 00 0000 12345678']));
  t.is(p.protocol, IPPROTO_ICMPV6);
  t.is(p.headerLen, 48);
});

test('No Next Header and ESP end the walk as upper layers', (t) => {
  const none = bytes(KERNEL_PING6_REQUEST);
  none[6] = IPPROTO_NONE;
  t.like(view(none), { protocol: IPPROTO_NONE, headerLen: 40 });
  const esp = pingWith([IPPROTO_DSTOPTS, '00 00 01 04 00000000']);
  esp[40] = 50;
  t.like(view(esp), { protocol: 50, headerLen: 48 });
});

test('trailing bytes beyond Payload Length are ignored', (t) => {
  const buf = Buffer.concat([bytes(KERNEL_PING6_REQUEST), Buffer.alloc(10, 0xee)]);
  const p = view(buf);
  t.is(p.payload.length, 64);
  t.is(p.upperLayerPayload.length, 64);
});

test('drops: shorter than 40 bytes is badLength', (t) => {
  t.is(drop(bytes(KERNEL_PING6_REQUEST).subarray(0, 39)).get('badLength'), 1);
  t.is(Ipv6Packet.check(Buffer.alloc(39)), 'badLength');
  t.throws(() => new Ipv6Packet(Buffer.alloc(39)), { instanceOf: RangeError });
});

test('drops: a version other than 6 is badVersion', (t) => {
  const buf = bytes(KERNEL_PING6_REQUEST);
  buf[0] = 0x70 | (buf[0] & 0x0f);
  t.is(drop(buf).get('badVersion'), 1);
  buf[0] = 0x40 | (buf[0] & 0x0f);
  t.is(Ipv6Packet.check(buf), 'badVersion');
});

test('drops: Payload Length beyond the bytes that arrived is badLength', (t) => {
  t.is(drop(bytes(KERNEL_PING6_REQUEST).subarray(0, 100)).get('badLength'), 1);
});

test('drops: the kernel\'s last fragment (offset 1448) and a first fragment (M set) are fragments', (t) => {
  t.is(drop(bytes(KERNEL_FRAG6_LAST)).get('fragment'), 1);
  t.is(drop(pingWith([IPPROTO_FRAGMENT, '00 00 0001 12345678'])).get('fragment'), 1);
  t.is(Ipv6Packet.check(pingWith([IPPROTO_FRAGMENT, '00 00 0008 12345678'])), 'fragment');
});

test('drops: extension headers that run past the payload are truncatedExtensionHeader', (t) => {
  // The MLD report with Payload Length cut to 4: the Hop-by-Hop header needs 8.
  const cut = bytes(KERNEL_MLD_REPORT_HBH).subarray(0, 44);
  cut.writeUInt16BE(4, 4);
  t.is(drop(cut).get('truncatedExtensionHeader'), 1);
  // Only one byte of an extension header: not even its length octet.
  const one = bytes(KERNEL_MLD_REPORT_HBH).subarray(0, 41);
  one.writeUInt16BE(1, 4);
  t.is(Ipv6Packet.check(one), 'truncatedExtensionHeader');
  // No payload at all but a Next Header that promises an extension header.
  const empty = bytes(KERNEL_MLD_REPORT_HBH).subarray(0, 40);
  empty.writeUInt16BE(0, 4);
  t.is(Ipv6Packet.check(empty), 'truncatedExtensionHeader');
  // Hdr Ext Len claims 256 bytes.
  const long = bytes(KERNEL_MLD_REPORT_HBH);
  long[41] = 31;
  t.is(Ipv6Packet.check(long), 'truncatedExtensionHeader');
  // Truncated Fragment and AH headers.
  const frag = pingWith([IPPROTO_FRAGMENT, '00 00 0000 12345678']).subarray(0, 46);
  frag.writeUInt16BE(6, 4);
  t.is(Ipv6Packet.check(frag), 'truncatedExtensionHeader');
  const ah = pingWith([IPPROTO_AH, '00 02 0000 00000001 00000002 00000000']);
  ah[41] = 200;
  t.is(Ipv6Packet.check(ah), 'truncatedExtensionHeader');
});

test('drops: a Hop-by-Hop header anywhere but first is badExtensionHeader (RFC 8200 §4.1)', (t) => {
  const pkt = pingWith([IPPROTO_DSTOPTS, '00 00 01 04 00000000'], [IPPROTO_HOPOPTS, '00 00 01 04 00000000']);
  t.is(drop(pkt).get('badExtensionHeader'), 1);
});

test('findUpperLayer re-walks after a builder changed the headers', (t) => {
  const p = view(pingWith([IPPROTO_DSTOPTS, '00 00 01 04 00000000']));
  t.is(p.headerLen, 48);
  p.buffer[41] = 200;
  t.is(p.findUpperLayer(), 'truncatedExtensionHeader');
});

test('every truncation of a valid packet is dropped and counted, never thrown', (t) => {
  for (const full of [bytes(KERNEL_PING6_REQUEST), bytes(KERNEL_MLD_REPORT_HBH)]) {
    const counters = new IpCounters();
    for (let len = 0; len < full.length; len++) t.is(parseIpPacket(full.subarray(0, len), counters), null);
    t.is(Object.values(counters.snapshot()).reduce((a, b) => a + b, 0), full.length);
  }
});

test('random extension-header chains never throw', (t) => {
  let seed = 8200;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const kinds = [IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS, IPPROTO_AH, 6, 58];
  const counters = new IpCounters();
  for (let n = 0; n < 2000; n++) {
    const buf = Buffer.alloc(40 + Math.floor(rand() * 64));
    for (let i = 40; i < buf.length; i++) buf[i] = rand() < 0.5 ? kinds[Math.floor(rand() * kinds.length)] : Math.floor(rand() * 4);
    buf[0] = 0x60;
    buf[6] = kinds[Math.floor(rand() * kinds.length)];
    buf.writeUInt16BE(Math.floor(rand() * (buf.length - 40 + 8)), 4);
    t.notThrows(() => parseIpPacket(buf, counters));
  }
});
