import test from 'ava';
import { ipv4ToNumber } from '../../src/ip/address.js';
import { IpCounters } from '../../src/ip/counters.js';
import { checkIpv4, IPV4_MIN_HEADER_LEN, Ipv4Packet, Ipv4Repr } from '../../src/ip/ipv4.js';
import { parseIpPacket } from '../../src/ip/packet.js';
import {
  bytes,
  KERNEL_FRAG4_LAST,
  KERNEL_PING4_REPLY,
  KERNEL_PING4_REQUEST,
  KERNEL_PING4_RR_REQUEST,
  KERNEL_SYNACK4,
} from './fixtures.js';

function view(buf: Buffer): Ipv4Packet {
  const v = Ipv4Packet.check(buf);
  if (typeof v === 'string') throw new Error(`fixture rejected: ${v}`);
  return v;
}

/** Runs a packet through the packet path and returns the counters (nothing may throw). */
function drop(buf: Buffer): IpCounters {
  const counters = new IpCounters();
  const info = parseIpPacket(buf, counters);
  if (info !== null) throw new Error('expected a drop');
  return counters;
}

test('parses the kernel\'s echo request field by field (RFC 791 §3.1)', (t) => {
  const p = view(bytes(KERNEL_PING4_REQUEST));
  t.is(p.version, 4);
  t.is(p.headerLen, 20);
  t.is(p.dscp, 0);
  t.is(p.ecn, 0);
  t.is(p.totalLength, 84);
  t.is(p.ident, 0xec6a);
  t.true(p.dontFragment);
  t.false(p.moreFragments);
  t.is(p.fragmentOffset, 0);
  t.false(p.isFragment);
  t.is(p.ttl, 64);
  t.is(p.protocol, 1);
  t.is(p.checksum, 0xca3a);
  t.true(p.verifyChecksum());
  t.is(p.src, ipv4ToNumber('192.0.2.1'));
  t.is(p.dst, ipv4ToNumber('192.0.2.2'));
  t.deepEqual(p.srcAddress, bytes('c0000201'));
  t.deepEqual(p.dstAddress, bytes('c0000202'));
  t.is(p.options.length, 0);
  t.is(p.payload.length, 64);
  t.is(p.payload[0], 8); // ICMP echo request
});

test('the payload is a view into the packet, not a copy', (t) => {
  const buf = bytes(KERNEL_PING4_REQUEST);
  const p = view(buf);
  p.payload[0] = 0x42;
  t.is(buf[20], 0x42);
  t.is(p.payload.buffer, buf.buffer);
});

test('Ipv4Repr.parse of the kernel\'s reply (DF clear, ident 0x5491)', (t) => {
  t.deepEqual(Ipv4Repr.parse(view(bytes(KERNEL_PING4_REPLY))), {
    version: 4,
    src: ipv4ToNumber('192.0.2.2'),
    dst: ipv4ToNumber('192.0.2.1'),
    protocol: 1,
    ttl: 64,
    payloadLen: 64,
    dscp: 0,
    ecn: 0,
    ident: 0x5491,
    dontFragment: false,
  });
});

test('emit reproduces the kernel\'s headers byte for byte, checksum included', (t) => {
  for (const hex of [KERNEL_PING4_REQUEST, KERNEL_PING4_REPLY, KERNEL_SYNACK4]) {
    const captured = bytes(hex);
    const repr = Ipv4Repr.parse(view(captured));
    t.is(Ipv4Repr.bufferLen(repr), captured.length);
    t.is(Ipv4Repr.headerLen(repr), 20);
    const out = Buffer.alloc(Ipv4Repr.bufferLen(repr));
    Ipv4Repr.emit(repr, out);
    captured.copy(out, IPV4_MIN_HEADER_LEN, IPV4_MIN_HEADER_LEN);
    t.deepEqual(out, captured);
  }
});

test('emit -> check -> parse round-trips every field', (t) => {
  const repr: Ipv4Repr = {
    version: 4,
    src: ipv4ToNumber('198.18.1.2'),
    dst: ipv4ToNumber('203.0.113.250'),
    protocol: 6,
    ttl: 255,
    payloadLen: 7,
    dscp: 46,
    ecn: 3,
    ident: 0xbeef,
    dontFragment: true,
  };
  const buf = Buffer.alloc(Ipv4Repr.bufferLen(repr));
  Ipv4Repr.emit(repr, new Ipv4Packet(buf));
  t.is(checkIpv4(buf), null);
  t.deepEqual(Ipv4Repr.parse(view(buf)), repr);
});

test('emit refuses impossible packets loudly (programming errors, not input)', (t) => {
  const repr: Ipv4Repr = {
    version: 4, src: 1, dst: 2, protocol: 6, ttl: 64, payloadLen: 65516, dscp: 0, ecn: 0, ident: 0, dontFragment: false,
  };
  t.throws(() => Ipv4Repr.emit(repr, Buffer.alloc(100)), { instanceOf: RangeError });
  t.throws(() => Ipv4Repr.emit({ ...repr, payloadLen: 0 }, Buffer.alloc(19)), { instanceOf: RangeError });
  t.throws(() => new Ipv4Packet(Buffer.alloc(19)), { instanceOf: RangeError });
});

test('setters write the fields in place and fillChecksum makes the header verify', (t) => {
  const p = new Ipv4Packet(Buffer.alloc(28));
  p.version = 4;
  p.headerLen = 20;
  p.dscp = 10;
  p.ecn = 2;
  p.totalLength = 28;
  p.ident = 0x1234;
  p.dontFragment = true;
  p.moreFragments = true;
  p.fragmentOffset = 8 * 0x1abc;
  p.ttl = 3;
  p.protocol = 17;
  p.src = 0xc0000201;
  p.dstAddress = bytes('c6120102');
  t.is(p.tos, (10 << 2) | 2);
  t.true(p.dontFragment);
  t.true(p.moreFragments);
  t.is(p.fragmentOffset, 8 * 0x1abc);
  p.moreFragments = false;
  p.dontFragment = false;
  t.is(p.fragmentOffset, 8 * 0x1abc);
  t.false(p.moreFragments);
  p.fragmentOffset = 0;
  t.is(p.buffer.readUInt16BE(6), 0);
  p.tos = 0xff;
  t.is(p.dscp, 63);
  t.is(p.ecn, 3);
  p.ecn = 0;
  t.is(p.tos, 0xfc);
  t.is(p.dst, 0xc6120102);
  t.deepEqual(p.srcAddress, bytes('c0000201'));
  p.fillChecksum();
  t.true(p.verifyChecksum());
  t.is(checkIpv4(p.buffer), null);
  p.checksum = p.checksum ^ 1;
  t.false(p.verifyChecksum());
});

test('options: the kernel\'s Record Route request has a 60-byte header and 40 bytes of options', (t) => {
  const p = view(bytes(KERNEL_PING4_RR_REQUEST));
  t.is(p.headerLen, 60);
  t.is(p.options.length, 40);
  // A NOP, then RFC 791 "Record Route": type 7, length 39, pointer 8, one address (the
  // sender's) recorded; 1 + 39 bytes fill the options exactly.
  t.deepEqual(p.options.subarray(0, 8), bytes('01072708c0000201'));
  t.is(p.payload.length, 64);
  t.is(p.payload[0], 8);
  t.is(Ipv4Repr.parse(p).payloadLen, 64);
});

test('trailing bytes beyond Total Length are accepted and left out of the payload', (t) => {
  // An Ethernet minimum frame pads a 40-byte packet to 46 bytes; the kernel trims the pad.
  const buf = Buffer.concat([bytes(KERNEL_PING4_REQUEST), Buffer.alloc(6, 0xee)]);
  const p = view(buf);
  t.is(p.payload.length, 64);
  t.is(p.payload.at(-1), 0x37);
});

test('drops: buffer shorter than 20 bytes is badLength', (t) => {
  const c = drop(bytes(KERNEL_PING4_REQUEST).subarray(0, 19));
  t.is(c.get('badLength'), 1);
  t.is(Ipv4Packet.check(Buffer.alloc(0)), 'badLength');
});

test('drops: version other than 4 is badVersion', (t) => {
  const buf = bytes(KERNEL_PING4_REQUEST);
  buf[0] = 0x55;
  t.is(drop(buf).get('badVersion'), 1);
  buf[0] = 0x65;
  t.is(Ipv4Packet.check(buf), 'badVersion');
});

test('drops: IHL below 5 is badHeaderLength', (t) => {
  const buf = bytes(KERNEL_PING4_REQUEST);
  buf[0] = 0x44;
  t.is(drop(buf).get('badHeaderLength'), 1);
});

test('drops: IHL beyond the buffer is truncatedOptions', (t) => {
  // The Record Route request cut inside its options.
  const c = drop(bytes(KERNEL_PING4_RR_REQUEST).subarray(0, 40));
  t.is(c.get('truncatedOptions'), 1);
  t.is(c.get('badLength'), 0);
});

test('drops: an option whose length runs past IHL, or below 2, is truncatedOptions', (t) => {
  const tooLong = bytes(KERNEL_PING4_RR_REQUEST);
  tooLong[22] = 40; // after the NOP, Record Route length 40 > the 39 bytes left
  new Ipv4Packet(tooLong).fillChecksum();
  t.is(drop(tooLong).get('truncatedOptions'), 1);

  const tooShort = bytes(KERNEL_PING4_RR_REQUEST);
  tooShort[22] = 1;
  new Ipv4Packet(tooShort).fillChecksum();
  t.is(Ipv4Packet.check(tooShort), 'truncatedOptions');

  // NOPs to the last byte, then a type with no room for its length octet.
  const noLen = bytes(KERNEL_PING4_RR_REQUEST);
  noLen.fill(1, 20, 59);
  noLen[59] = 7;
  new Ipv4Packet(noLen).fillChecksum();
  t.is(Ipv4Packet.check(noLen), 'truncatedOptions');

  // All NOPs, or EOL followed by anything, are fine.
  const nops = bytes(KERNEL_PING4_RR_REQUEST);
  nops.fill(1, 20, 60);
  new Ipv4Packet(nops).fillChecksum();
  t.true(Ipv4Packet.check(nops) instanceof Ipv4Packet);
  const eol = bytes(KERNEL_PING4_RR_REQUEST);
  eol[20] = 0;
  new Ipv4Packet(eol).fillChecksum();
  t.true(Ipv4Packet.check(eol) instanceof Ipv4Packet);
});

test('drops: Total Length below the header length is badHeaderLength, above the buffer badLength', (t) => {
  const small = bytes(KERNEL_PING4_REQUEST);
  small.writeUInt16BE(16, 2);
  new Ipv4Packet(small).fillChecksum();
  t.is(drop(small).get('badHeaderLength'), 1);

  // A packet cut short: the header says 84 bytes, 60 arrived.
  const cut = bytes(KERNEL_PING4_REQUEST).subarray(0, 60);
  t.is(drop(cut).get('badLength'), 1);
});

test('drops: a header checksum that does not verify is badChecksum', (t) => {
  const buf = bytes(KERNEL_PING4_REQUEST);
  buf[8] -= 1; // a router decremented the TTL and forgot the checksum
  const c = drop(buf);
  t.is(c.get('badChecksum'), 1);
  t.deepEqual(c.nonZero(), { badChecksum: 1 });
});

test('drops: fragments are counted and dropped (no reassembly)', (t) => {
  // The kernel's last fragment of `ping -s 1600`: offset 1480, MF clear.
  const last = bytes(KERNEL_FRAG4_LAST);
  t.is(new Ipv4Packet(last).fragmentOffset, 1480);
  t.true(new Ipv4Packet(last).verifyChecksum());
  t.is(drop(last).get('fragment'), 1);
  // A first fragment: MF set, offset 0.
  const first = bytes(KERNEL_PING4_REQUEST);
  const p = new Ipv4Packet(first);
  p.moreFragments = true;
  p.fillChecksum();
  t.is(drop(first).get('fragment'), 1);
});

test('every truncation of a valid packet is dropped and counted, never thrown', (t) => {
  for (const hex of [KERNEL_PING4_REQUEST, KERNEL_PING4_RR_REQUEST]) {
    const full = bytes(hex);
    const counters = new IpCounters();
    for (let len = 0; len < full.length; len++) {
      t.is(parseIpPacket(full.subarray(0, len), counters), null);
    }
    const total = Object.values(counters.snapshot()).reduce((a, b) => a + b, 0);
    t.is(total, full.length);
    t.not(parseIpPacket(full, counters), null);
  }
});

test('random garbage with an IPv4 version nibble never throws', (t) => {
  let seed = 42;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const counters = new IpCounters();
  for (let n = 0; n < 2000; n++) {
    const buf = Buffer.alloc(Math.floor(rand() * 80));
    for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
    if (buf.length > 0) buf[0] = 0x40 | (buf[0] & 0x0f);
    t.notThrows(() => parseIpPacket(buf, counters));
  }
});
