import test from 'ava';
import { parseIpv6Address } from '../../src/ip/address.js';
import { incrementalUpdate, pseudoHeaderSumV6, verifyChecksum } from '../../src/ip/checksum.js';
import { IpCounters } from '../../src/ip/counters.js';
import {
  EchoResponder,
  ICMPV4_ECHO_REPLY,
  ICMPV6_ECHO_REPLY,
  IcmpEchoPacket,
  IcmpEchoRepr,
} from '../../src/ip/icmp.js';
import { Ipv4Packet } from '../../src/ip/ipv4.js';
import { Ipv6Packet } from '../../src/ip/ipv6.js';
import { ipPseudoHeaderSum, parseIpPacket } from '../../src/ip/packet.js';
import {
  bytes,
  KERNEL_MLD_REPORT_HBH,
  KERNEL_PING4_REPLY,
  KERNEL_PING4_REQUEST,
  KERNEL_PING4_RR_REPLY,
  KERNEL_PING4_RR_REQUEST,
  KERNEL_PING6_REPLY,
  KERNEL_PING6_REQUEST,
  KERNEL_SYN4,
  KERNEL_SYN6,
} from './fixtures.js';

const NOW = 1_000;

/** Feeds one packet and returns what the responder said and sent. */
function answer(packet: Buffer, responder = new EchoResponder()): { handled: boolean; reply: Buffer | null; responder: EchoResponder } {
  const handled = responder.handlePacket(NOW, packet);
  return { handled, reply: responder.pollTransmit(), responder };
}

function icmpv6Verifies(pkt: Buffer): boolean {
  return verifyChecksum(pkt, 40, pkt.length, pseudoHeaderSumV6(pkt, pkt, 58, pkt.length - 40, 8, 24));
}

test('answers the kernel\'s IPv4 ping exactly as the kernel did, but for the IP Identification', (t) => {
  const { handled, reply, responder } = answer(bytes(KERNEL_PING4_REQUEST));
  t.true(handled);
  if (reply === null) return t.fail('no reply');
  t.is(responder.pollTransmit(), null);
  t.deepEqual(responder.counters.nonZero(), { icmpEchoReplied: 1 });

  const ours = new Ipv4Packet(reply);
  t.true(ours.verifyChecksum());
  t.true(verifyChecksum(reply, 20, reply.length)); // ICMP checksum
  // The kernel chose ident 0x5491; give ours the same (RFC 1624 update of the header checksum)
  // and the two replies are identical, byte for byte.
  const kernel = bytes(KERNEL_PING4_REPLY);
  ours.checksum = incrementalUpdate(ours.checksum, ours.ident, 0x5491);
  ours.ident = 0x5491;
  t.deepEqual(reply, kernel);
});

test('answers the kernel\'s IPv6 ping exactly as the kernel did, but for the flow label', (t) => {
  const { handled, reply } = answer(bytes(KERNEL_PING6_REQUEST));
  t.true(handled);
  if (reply === null) return t.fail('no reply');
  t.true(icmpv6Verifies(reply));
  const ours = new Ipv6Packet(reply);
  t.is(ours.flowLabel, 0);
  ours.flowLabel = 0xde5eb; // the kernel's automatic flow label (RFC 6437)
  t.deepEqual(reply, bytes(KERNEL_PING6_REPLY));
});

test('a Record Route request is answered without options; the ICMP message matches the kernel\'s', (t) => {
  const { reply } = answer(bytes(KERNEL_PING4_RR_REQUEST));
  if (reply === null) return t.fail('no reply');
  const ours = new Ipv4Packet(reply);
  t.is(ours.headerLen, 20);
  t.is(ours.totalLength, 20 + 64);
  t.true(ours.verifyChecksum());
  const kernel = new Ipv4Packet(bytes(KERNEL_PING4_RR_REPLY));
  t.deepEqual(ours.payload, kernel.payload);
  t.is(ours.src, kernel.src);
  t.is(ours.dst, kernel.dst);
});

test('an IPv6 request behind extension headers is answered, without them', (t) => {
  const base = bytes(KERNEL_PING6_REQUEST);
  const req = Buffer.concat([base.subarray(0, 40), bytes('3a00010400000000'), base.subarray(40)]);
  req.writeUInt16BE(72, 4);
  req[6] = 60; // Destination Options
  const { reply } = answer(req);
  if (reply === null) return t.fail('no reply');
  const p = new Ipv6Packet(reply);
  t.is(p.nextHeader, 58);
  t.is(p.payloadLength, 64);
  t.true(icmpv6Verifies(reply));
});

test('the reply carries the request\'s DSCP, with ECN cleared, and the configured TTL / hop limit', (t) => {
  const req4 = bytes(KERNEL_PING4_REQUEST);
  const v4 = new Ipv4Packet(req4);
  v4.dscp = 46;
  v4.ecn = 1;
  v4.fillChecksum();
  const responder = new EchoResponder({ ttl: 32, hopLimit: 200, identSeed: 0xfffe });
  const r4 = answer(req4, responder).reply;
  if (r4 === null) return t.fail('no reply');
  t.like(new Ipv4Packet(r4), { dscp: 46, ecn: 0, ttl: 32, ident: 0xfffe, dontFragment: false });
  const again = answer(bytes(KERNEL_PING4_REQUEST), responder).reply;
  t.is(again && new Ipv4Packet(again).ident, 0xffff);
  const third = answer(bytes(KERNEL_PING4_REQUEST), responder).reply;
  t.is(third && new Ipv4Packet(third).ident, 0);

  const req6 = bytes(KERNEL_PING6_REQUEST);
  new Ipv6Packet(req6).trafficClass = (10 << 2) | 3;
  const r6 = answer(req6, responder).reply;
  if (r6 === null) return t.fail('no reply');
  t.like(new Ipv6Packet(r6), { dscp: 10, ecn: 0, hopLimit: 200 });
});

test('packets that are not echo requests are passed on (false) and not counted', (t) => {
  const responder = new EchoResponder();
  for (const hex of [KERNEL_SYN4, KERNEL_SYN6, KERNEL_PING4_REPLY, KERNEL_PING6_REPLY, KERNEL_MLD_REPORT_HBH]) {
    t.false(responder.handlePacket(NOW, bytes(hex)), hex.slice(0, 8));
  }
  // An ICMPv4 echo-request type number inside ICMPv6 is not an ICMPv6 echo request.
  const odd = bytes(KERNEL_PING6_REQUEST);
  odd[40] = 8;
  t.false(responder.handlePacket(NOW, odd));
  // An empty ICMP payload has no type at all.
  const empty = bytes(KERNEL_PING4_REQUEST).subarray(0, 20);
  const e = new Ipv4Packet(empty);
  e.totalLength = 20;
  e.fillChecksum();
  t.false(responder.handlePacket(NOW, empty));
  t.is(responder.queued, 0);
  t.deepEqual(responder.counters.nonZero(), {});
});

test('an echo request with a bad ICMP checksum is counted and dropped', (t) => {
  const req = bytes(KERNEL_PING4_REQUEST);
  req[req.length - 1] ^= 0x01; // one bit of the data flipped in transit
  const { handled, reply, responder } = answer(req);
  t.true(handled);
  t.is(reply, null);
  t.deepEqual(responder.counters.nonZero(), { icmpBadChecksum: 1 });
});

test('the ICMPv6 checksum covers the pseudo-header: a changed address fails it (RFC 4443 §2.3)', (t) => {
  // IPv6 has no header checksum; only the ICMPv6 pseudo-header sum notices the rewrite.
  const req = bytes(KERNEL_PING6_REQUEST);
  parseIpv6Address('2001:db8::3').copy(req, 24);
  const { handled, reply, responder } = answer(req);
  t.true(handled);
  t.is(reply, null);
  t.is(responder.counters.get('icmpBadChecksum'), 1);
});

test('an echo request shorter than the 8-byte echo header is icmpTruncated', (t) => {
  const req = bytes(KERNEL_PING4_REQUEST).subarray(0, 24);
  const p = new Ipv4Packet(req);
  p.totalLength = 24;
  p.fillChecksum();
  const { handled, reply, responder } = answer(req);
  t.true(handled);
  t.is(reply, null);
  t.deepEqual(responder.counters.nonZero(), { icmpTruncated: 1 });
});

test('requests to multicast or broadcast, or from addresses nobody can answer, are not answered', (t) => {
  const cases: [number, string, number][] = [
    [4, '224.0.0.1', 16],
    [4, '255.255.255.255', 16],
    [4, '0.0.0.0', 12],
    [6, 'ff02::1', 24],
    [6, '::', 8],
  ];
  for (const [version, text, offset] of cases) {
    const req = bytes(version === 4 ? KERNEL_PING4_REQUEST : KERNEL_PING6_REQUEST);
    if (version === 4) {
      const p = new Ipv4Packet(req);
      Buffer.from(text.split('.').map(Number)).copy(req, offset);
      p.fillChecksum();
    } else {
      // Rewrite the address and fix the ICMPv6 checksum, so that only the address is wrong.
      const icmp = new IcmpEchoPacket(req.subarray(40));
      parseIpv6Address(text).copy(req, offset);
      icmp.fillChecksum(ipPseudoHeaderSum(6, req, 58, 64));
    }
    const { handled, reply, responder } = answer(req);
    t.true(handled, text);
    t.is(reply, null, text);
    t.deepEqual(responder.counters.nonZero(), { icmpEchoNotUnicast: 1 }, text);
  }
});

test('malformed IP packets are consumed and counted by reason', (t) => {
  const responder = new EchoResponder();
  const badHeader = bytes(KERNEL_PING4_REQUEST);
  badHeader[8] = 1; // TTL changed, header checksum not
  t.true(responder.handlePacket(NOW, badHeader));
  t.true(responder.handlePacket(NOW, bytes(KERNEL_PING6_REQUEST).subarray(0, 50)));
  t.true(responder.handlePacket(NOW, Buffer.alloc(0)));
  t.deepEqual(responder.counters.nonZero(), { badChecksum: 1, badLength: 2 });
  t.is(responder.pollTransmit(), null);
});

test('the reply queue is bounded: overflow is counted and dropped, order is kept', (t) => {
  const responder = new EchoResponder({ queueLimit: 2 });
  for (let seq = 1; seq <= 3; seq++) {
    const req = bytes(KERNEL_PING4_REQUEST);
    const icmp = new IcmpEchoPacket(req.subarray(20));
    icmp.sequence = seq;
    icmp.fillChecksum();
    t.true(responder.handlePacket(NOW, req));
  }
  t.is(responder.queued, 2);
  t.like(responder.counters.snapshot(), { icmpEchoReplied: 2, icmpReplyQueueFull: 1 });
  const first = responder.pollTransmit();
  const second = responder.pollTransmit();
  t.is(responder.pollTransmit(), null);
  t.is(first && new IcmpEchoPacket(first.subarray(20)).sequence, 1);
  t.is(second && new IcmpEchoPacket(second.subarray(20)).sequence, 2);
  // Room again after polling; the ring wraps around.
  t.true(responder.handlePacket(NOW, bytes(KERNEL_PING4_REQUEST)));
  t.true(responder.handlePacket(NOW, bytes(KERNEL_PING6_REQUEST)));
  t.is(responder.queued, 2);
  t.is(responder.pollTransmit()?.[0], 0x45);
  t.is(responder.pollTransmit()?.[0], 0x60);
  t.throws(() => new EchoResponder({ queueLimit: 0 }), { instanceOf: RangeError });
});

test('handleParsed answers a packet the engine already parsed, sharing its counters', (t) => {
  const counters = new IpCounters();
  const responder = new EchoResponder({ counters });
  const info = parseIpPacket(bytes(KERNEL_PING6_REQUEST), counters);
  if (info === null) return t.fail();
  t.true(responder.handleParsed(NOW, info));
  t.is(counters.get('icmpEchoReplied'), 1);
  t.truthy(responder.pollTransmit());
});

test('IcmpEchoPacket view and IcmpEchoRepr: parse the kernel\'s request, emit its reply', (t) => {
  const req = bytes(KERNEL_PING4_REQUEST);
  const view = IcmpEchoPacket.check(req.subarray(20));
  if (typeof view === 'string') return t.fail(view);
  t.like(view, { type: 8, code: 0, checksum: 0x4bd6, identifier: 4400, sequence: 1 });
  t.is(view.data.length, 56);
  t.true(view.verifyChecksum());
  const repr = IcmpEchoRepr.parse(view, 4);
  t.like(repr, { family: 4, kind: 'request', identifier: 4400, sequence: 1 });
  if (repr === null) return;
  t.is(IcmpEchoRepr.parse(view, 6), null);

  const out = Buffer.alloc(IcmpEchoRepr.bufferLen(repr));
  IcmpEchoRepr.emit({ ...repr, kind: 'reply' }, out);
  t.is(out[0], ICMPV4_ECHO_REPLY);
  t.deepEqual(out, bytes(KERNEL_PING4_REPLY).subarray(20));

  // ICMPv6: the checksum needs the pseudo-header of the packet it travels in.
  const kernel6 = bytes(KERNEL_PING6_REPLY);
  const req6 = new IcmpEchoPacket(bytes(KERNEL_PING6_REQUEST).subarray(40));
  const repr6 = IcmpEchoRepr.parse(req6, 6);
  if (repr6 === null) return t.fail();
  const out6 = Buffer.alloc(IcmpEchoRepr.bufferLen(repr6));
  IcmpEchoRepr.emit({ ...repr6, kind: 'reply' }, out6, ipPseudoHeaderSum(6, kernel6, 58, out6.length));
  t.is(out6[0], ICMPV6_ECHO_REPLY);
  t.deepEqual(out6, kernel6.subarray(40));

  t.is(IcmpEchoPacket.check(Buffer.alloc(7)), 'icmpTruncated');
  t.throws(() => new IcmpEchoPacket(Buffer.alloc(7)), { instanceOf: RangeError });
  t.throws(() => IcmpEchoRepr.emit(repr, Buffer.alloc(8)), { instanceOf: RangeError });
  const v = new IcmpEchoPacket(Buffer.alloc(8));
  v.type = 128;
  v.code = 0;
  v.identifier = 7;
  v.sequence = 9;
  v.checksum = 0;
  t.like(IcmpEchoRepr.parse(v, 6), { kind: 'request', identifier: 7, sequence: 9 });
  const nonEcho = new IcmpEchoPacket(Buffer.alloc(8));
  nonEcho.type = 3;
  t.is(IcmpEchoRepr.parse(nonEcho, 4), null);
});

test('random bytes with ICMP and ICMPv6 headers never throw', (t) => {
  let seed = 792;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const responder = new EchoResponder({ queueLimit: 4 });
  for (let n = 0; n < 1000; n++) {
    const v6 = rand() < 0.5;
    const req = bytes(v6 ? KERNEL_PING6_REQUEST : KERNEL_PING4_REQUEST);
    const at = Math.floor(rand() * req.length);
    req[at] = Math.floor(rand() * 256);
    const cut = req.subarray(0, req.length - Math.floor(rand() * 10));
    t.notThrows(() => responder.handlePacket(NOW, cut));
    while (responder.pollTransmit() !== null);
  }
});
