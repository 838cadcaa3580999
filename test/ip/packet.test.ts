import test from 'ava';
import { ipv4ToNumber, parseIpv6Address } from '../../src/ip/address.js';
import { internetChecksum, verifyChecksum } from '../../src/ip/checksum.js';
import { CounterSet, IP_COUNTER_NAMES, IP_DROP_REASONS, IpCounters, isDropReason } from '../../src/ip/counters.js';
import { Ipv4Packet } from '../../src/ip/ipv4.js';
import {
  emitIpHeader,
  ipBufferLen,
  ipHeaderLen,
  IpPacketInfo,
  ipPseudoHeaderSum,
  type IpRepr,
  parseIpPacket,
  pseudoHeaderSum,
} from '../../src/ip/packet.js';
import * as ip from '../../src/ip/index.js';
import {
  bytes,
  KERNEL_MLD_REPORT_HBH,
  KERNEL_PING4_RR_REQUEST,
  KERNEL_SYN4,
  KERNEL_SYN6,
  KERNEL_SYNACK4,
  KERNEL_SYNACK6,
} from './fixtures.js';

test('counters: increment, get, snapshot (a copy), nonZero, reset', (t) => {
  const c = new CounterSet(['a', 'b'] as const);
  c.increment('a');
  c.increment('a');
  c.increment('b', 5);
  t.is(c.get('a'), 2);
  const snap = c.snapshot();
  t.deepEqual(snap, { a: 2, b: 5 });
  c.increment('a');
  t.is(snap.a, 2);
  c.reset();
  t.deepEqual(c.nonZero(), {});
  const ipc = new IpCounters();
  t.deepEqual(Object.keys(ipc.snapshot()), [...IP_COUNTER_NAMES]);
  t.true(Object.values(ipc.snapshot()).every((v) => v === 0));
  for (const r of IP_DROP_REASONS) t.true(isDropReason(r));
  t.false(isDropReason('icmpEchoReplied'));
  t.false(isDropReason(3));
});

test('parseIpPacket: a kernel IPv4 SYN', (t) => {
  const counters = new IpCounters();
  const buf = bytes(KERNEL_SYN4);
  const info = parseIpPacket(buf, counters);
  t.truthy(info);
  if (info === null) return;
  t.is(info.version, 4);
  t.is(info.protocol, 6);
  t.is(info.headerLen, 20);
  t.is(info.end, 60);
  t.is(info.ttl, 64);
  t.is(info.payloadLength, 40);
  t.deepEqual(info.src, bytes('c0000201'));
  t.deepEqual(info.dst, bytes('c0000202'));
  t.is(info.srcOffset, 12);
  t.is(info.dstOffset, 16);
  t.is(info.addressLen, 4);
  t.deepEqual(info.payload, buf.subarray(20));
  t.is(info.buffer, buf);
  t.deepEqual(counters.nonZero(), {});
  // The TCP checksum verifies with the pseudo-header taken from the parsed packet.
  t.true(verifyChecksum(buf, info.headerLen, info.end, pseudoHeaderSum(info)));
});

test('parseIpPacket: a kernel IPv6 SYN, and the MLD report behind a Hop-by-Hop header', (t) => {
  const counters = new IpCounters();
  const syn = bytes(KERNEL_SYN6);
  const info = parseIpPacket(syn, counters);
  t.like(info, { version: 6, protocol: 6, headerLen: 40, end: 80, ttl: 64, payloadLength: 40 });
  if (info === null) return;
  t.deepEqual(info.src, parseIpv6Address('2001:db8::1'));
  t.deepEqual(info.dst, parseIpv6Address('2001:db8::2'));
  t.is(info.addressLen, 16);
  t.true(verifyChecksum(syn, info.headerLen, info.end, pseudoHeaderSum(info)));

  const mld = bytes(KERNEL_MLD_REPORT_HBH);
  const m = parseIpPacket(mld, counters);
  t.like(m, { version: 6, protocol: 58, headerLen: 48, end: 96, ttl: 1, payloadLength: 48 });
  if (m === null) return;
  t.true(verifyChecksum(mld, m.headerLen, m.end, pseudoHeaderSum(m)));
});

test('parseIpPacket: the upper layer starts after IPv4 options', (t) => {
  const info = parseIpPacket(bytes(KERNEL_PING4_RR_REQUEST), new IpCounters());
  t.like(info, { version: 4, protocol: 1, headerLen: 60, end: 124, payloadLength: 64 });
  t.is(info?.payload[0], 8);
});

test('parseIpPacket: reuses the object it is given', (t) => {
  const counters = new IpCounters();
  const into = new IpPacketInfo();
  t.is(parseIpPacket(bytes(KERNEL_SYN4), counters, into), into);
  t.is(into.version, 4);
  t.is(parseIpPacket(bytes(KERNEL_SYN6), counters, into), into);
  t.is(into.version, 6);
  t.is(into.headerLen, 40);
  t.is(parseIpPacket(bytes(KERNEL_SYN4).subarray(0, 10), counters, into), null);
});

test('parseIpPacket: empty input is badLength, a version nibble other than 4 or 6 badVersion', (t) => {
  const counters = new IpCounters();
  t.is(parseIpPacket(Buffer.alloc(0), counters), null);
  t.is(parseIpPacket(bytes('50'), counters), null);
  t.is(parseIpPacket(bytes('00000000'), counters), null);
  t.deepEqual(counters.nonZero(), { badLength: 1, badVersion: 2 });
});

test('building: emitIpHeader + ipPseudoHeaderSum reproduce the kernel\'s SYN-ACKs exactly', (t) => {
  const v4: IpRepr = {
    version: 4,
    src: ipv4ToNumber('192.0.2.2'),
    dst: ipv4ToNumber('192.0.2.1'),
    protocol: 6,
    ttl: 64,
    payloadLen: 40,
    dscp: 0,
    ecn: 0,
    ident: 0,
    dontFragment: true,
  };
  const v6: IpRepr = {
    version: 6,
    src: parseIpv6Address('2001:db8::2'),
    dst: parseIpv6Address('2001:db8::1'),
    nextHeader: 6,
    hopLimit: 64,
    payloadLen: 40,
    dscp: 0,
    ecn: 0,
    flowLabel: 0xebd80,
  };
  for (const [repr, hex] of [[v4, KERNEL_SYNACK4], [v6, KERNEL_SYNACK6]] as const) {
    const kernel = bytes(hex);
    const out = Buffer.alloc(ipBufferLen(repr));
    const hl = emitIpHeader(repr, out);
    t.is(hl, ipHeaderLen(repr));
    // The TCP segment as the TCP layer would write it, checksum field zero.
    kernel.copy(out, hl, hl);
    out.writeUInt16BE(0, hl + 16);
    const csum = internetChecksum(out, hl, out.length, ipPseudoHeaderSum(repr.version, out, 6, out.length - hl));
    out.writeUInt16BE(csum, hl + 16);
    t.deepEqual(out, kernel);
  }
});

test('pseudoHeaderSum takes an explicit length and protocol', (t) => {
  const buf = bytes(KERNEL_SYN4);
  const info = parseIpPacket(buf, new IpCounters());
  if (info === null) return t.fail();
  const explicit = pseudoHeaderSum(info, 40, 6);
  t.is(explicit, pseudoHeaderSum(info));
  t.not(pseudoHeaderSum(info, 41), explicit);
  t.true(verifyChecksum(buf, 20, 60, explicit));
});

test('the index re-exports the public API', (t) => {
  t.is(ip.parseIpPacket, parseIpPacket);
  t.is(ip.Ipv4Packet, Ipv4Packet);
  t.is(typeof ip.EchoResponder, 'function');
  t.is(typeof ip.Ipv6Packet, 'function');
  t.is(typeof ip.IpPrefix, 'function');
  t.is(typeof ip.incrementalUpdate, 'function');
  t.is(typeof ip.pseudoHeaderSumV6, 'function');
});
