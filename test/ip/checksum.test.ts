import test from 'ava';
import {
  finish,
  fold,
  incrementalUpdate,
  incrementalUpdate32,
  incrementalUpdateBytes,
  internetChecksum,
  onesSum,
  pseudoHeaderSumV4,
  pseudoHeaderSumV6,
  verifyChecksum,
} from '../../src/ip/checksum.js';
import {
  bytes,
  KERNEL_MLD_REPORT_HBH,
  KERNEL_PING4_REQUEST,
  KERNEL_PING6_REQUEST,
  KERNEL_SYN4,
  KERNEL_SYN4_PARTIAL_CSUM,
  KERNEL_SYN6,
  KERNEL_SYNACK4,
  KERNEL_SYNACK6,
} from './fixtures.js';

/** A small seeded PRNG (mulberry32) so that randomized tests replay. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('RFC 1071 §3 numerical example: 00 01 f2 03 f4 f5 f6 f7 sums to 2ddf0, folds to ddf2', (t) => {
  // "Consider the eight-byte sequence 00 01 f2 03 f4 f5 f6 f7 ... 2ddf0 ... ddf2"
  const data = bytes('0001f203f4f5f6f7');
  t.is(onesSum(data), 0x2ddf0);
  t.is(fold(onesSum(data)), 0xddf2);
  t.is(finish(onesSum(data)), 0x220d);
  t.is(internetChecksum(data), 0x220d);
  // With the checksum appended the sum is all ones: the check succeeds.
  t.true(verifyChecksum(Buffer.concat([data, bytes('220d')])));
});

test('an odd final byte is padded on the right with zero: the high byte of a word (RFC 9293 §3.1)', (t) => {
  t.is(onesSum(bytes('0001f2')), 0x0001 + 0xf200);
  t.is(onesSum(bytes('ff')), 0xff00);
  t.is(onesSum(bytes('')), 0);
});

test('sums over a range, and chunked sums add up (every chunk but the last even)', (t) => {
  const data = bytes('deadbeef0001f203f4f5f6f7cafe');
  t.is(onesSum(data, 4, 12), 0x2ddf0);
  t.is(onesSum(data, 0, 5), onesSum(data, 0, 4) + onesSum(data, 4, 5));
  const rand = prng(1);
  const big = Buffer.alloc(1501);
  for (let i = 0; i < big.length; i++) big[i] = Math.floor(rand() * 256);
  const whole = fold(onesSum(big));
  t.is(fold(onesSum(big, 0, 600) + onesSum(big, 600, 1400) + onesSum(big, 1400)), whole);
  t.is(fold(onesSum(big, 800, 1501, onesSum(big, 0, 800))), whole);
  // The naive word loop agrees with the two-accumulator one, for every length 0..64.
  for (let len = 0; len <= 64; len++) {
    let naive = 0;
    for (let i = 0; i < len; i += 2) naive += (big[i] << 8) | (i + 1 < len ? big[i + 1] : 0);
    t.is(onesSum(big, 0, len), naive, `length ${len}`);
  }
});

test('fold handles accumulators beyond 32 bits (64 KiB of 0xff)', (t) => {
  const ff = Buffer.alloc(65536, 0xff);
  t.is(onesSum(ff), 32768 * 0xffff);
  t.is(fold(onesSum(ff)), 0xffff);
  t.is(fold(2 ** 40 + 5), fold(((2 ** 40) % 0xffff) + 5));
});

test('IPv4 header checksums captured from the kernel verify and recompute to the same value', (t) => {
  for (const hex of [KERNEL_PING4_REQUEST, KERNEL_SYN4, KERNEL_SYNACK4]) {
    const pkt = bytes(hex);
    t.true(verifyChecksum(pkt, 0, 20));
    const captured = pkt.readUInt16BE(10);
    pkt.writeUInt16BE(0, 10);
    t.is(internetChecksum(pkt, 0, 20), captured);
  }
});

test('TCP checksums of kernel SYN and SYN-ACK verify with the IPv4 pseudo-header (RFC 9293 §3.1)', (t) => {
  for (const hex of [KERNEL_SYN4, KERNEL_SYNACK4]) {
    const pkt = bytes(hex);
    const tcpLen = pkt.length - 20;
    const pseudo = pseudoHeaderSumV4(pkt.subarray(12, 16), pkt.subarray(16, 20), 6, tcpLen);
    t.true(verifyChecksum(pkt, 20, pkt.length, pseudo));
    // Same sum when the addresses are read in place at their offsets.
    t.is(pseudoHeaderSumV4(pkt, pkt, 6, tcpLen, 12, 16), pseudo);
    const captured = pkt.readUInt16BE(36);
    pkt.writeUInt16BE(0, 36);
    t.is(internetChecksum(pkt, 20, pkt.length, pseudo), captured);
  }
});

test('the kernel\'s CHECKSUM_PARTIAL seed is exactly our folded IPv4 pseudo-header sum', (t) => {
  // With veth TX offload on, the kernel leaves ~csum_tcpudp_magic(src, dst, len, TCP, 0) in the
  // TCP checksum field for the device to finish: the folded, uncomplemented pseudo-header sum.
  const pkt = bytes(KERNEL_SYN4_PARTIAL_CSUM);
  t.is(pkt.readUInt16BE(36), 0x8432);
  t.is(fold(pseudoHeaderSumV4(pkt, pkt, 6, pkt.length - 20, 12, 16)), 0x8432);
});

test('TCP and ICMPv6 checksums of kernel IPv6 packets verify with the IPv6 pseudo-header (RFC 8200 §8.1)', (t) => {
  for (const [hex, nextHeader] of [[KERNEL_SYN6, 6], [KERNEL_SYNACK6, 6], [KERNEL_PING6_REQUEST, 58]] as const) {
    const pkt = bytes(hex);
    const len = pkt.length - 40;
    const pseudo = pseudoHeaderSumV6(pkt.subarray(8, 24), pkt.subarray(24, 40), nextHeader, len);
    t.true(verifyChecksum(pkt, 40, pkt.length, pseudo));
    t.is(pseudoHeaderSumV6(pkt, pkt, nextHeader, len, 8, 24), pseudo);
  }
  // The MLD report sits behind an 8-byte Hop-by-Hop header: the pseudo-header carries the
  // upper-layer length (48) and next header 58, not the IPv6 header's 56 and 0.
  const mld = bytes(KERNEL_MLD_REPORT_HBH);
  t.true(verifyChecksum(mld, 48, mld.length, pseudoHeaderSumV6(mld, mld, 58, 48, 8, 24)));
  t.false(verifyChecksum(mld, 48, mld.length, pseudoHeaderSumV6(mld, mld, 0, 56, 8, 24)));
});

test('the IPv6 pseudo-header sum equals the sum of the pseudo-header laid out in bytes', (t) => {
  const rand = prng(6);
  for (let n = 0; n < 50; n++) {
    const src = Buffer.alloc(16);
    const dst = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) {
      src[i] = Math.floor(rand() * 256);
      dst[i] = Math.floor(rand() * 256);
    }
    const length = Math.floor(rand() * 0x1_0000_0000);
    const nh = Math.floor(rand() * 256);
    const laid = Buffer.alloc(40);
    src.copy(laid, 0);
    dst.copy(laid, 16);
    laid.writeUInt32BE(length, 32);
    laid[39] = nh;
    t.is(fold(pseudoHeaderSumV6(src, dst, nh, length)), fold(onesSum(laid)));
  }
});

test('RFC 1624 §4 example: eqn. 3 gives 0x0000 where eqn. 2 gave 0xFFFF', (t) => {
  // "the one's complement sum of all other header octets is 0xCD7A", m = 0x5555 -> m' = 0x3285.
  const hc = ~fold(0xcd7a + 0x5555) & 0xffff;
  t.is(hc, 0xdd2f);
  t.is(incrementalUpdate(hc, 0x5555, 0x3285), 0x0000);
  t.is(incrementalUpdate(hc, 0x5555, 0x3285), finish(0xcd7a + 0x3285));
});

test('incremental update equals full recomputation (randomized, seed 1624)', (t) => {
  const rand = prng(1624);
  const word = () => Math.floor(rand() * 0x10000);
  for (let n = 0; n < 2000; n++) {
    const len = 2 * (4 + Math.floor(rand() * 40));
    const msg = Buffer.alloc(len);
    for (let i = 0; i < len; i++) msg[i] = Math.floor(rand() * 256);
    msg.writeUInt16BE(0x1234, 0); // never all zero: no ones-complement zero ambiguity
    const csumAt = 2;
    msg.writeUInt16BE(0, csumAt);
    const before = internetChecksum(msg);
    msg.writeUInt16BE(before, csumAt);

    // One 16-bit field.
    const at = 2 * (2 + Math.floor(rand() * (len / 2 - 2)));
    const oldWord = msg.readUInt16BE(at);
    const newWord = word();
    msg.writeUInt16BE(newWord, at);
    const incremental = incrementalUpdate(before, oldWord, newWord);
    msg.writeUInt16BE(0, csumAt);
    t.is(incremental, internetChecksum(msg));
    msg.writeUInt16BE(incremental, csumAt);
    t.true(verifyChecksum(msg));

    // One 32-bit field (an address, a sequence number), when there is room.
    if (len >= 12) {
      const at32 = 4 + 2 * Math.floor(rand() * ((len - 8) / 2));
      const old32 = msg.readUInt32BE(at32);
      const new32 = Math.floor(rand() * 0x1_0000_0000);
      msg.writeUInt32BE(new32, at32);
      const inc32 = incrementalUpdate32(incremental, old32, new32);
      msg.writeUInt16BE(0, csumAt);
      t.is(inc32, internetChecksum(msg));
      msg.writeUInt16BE(inc32, csumAt);
    }
  }
});

test('incremental update of a 16-byte field (an IPv6 address under a pseudo-header)', (t) => {
  const pkt = bytes(KERNEL_SYN6);
  const oldCsum = pkt.readUInt16BE(56);
  const oldSrc = Buffer.from(pkt.subarray(8, 24));
  const newSrc = bytes('fd00000000000000000000000000abcd');
  newSrc.copy(pkt, 8);
  const updated = incrementalUpdateBytes(oldCsum, oldSrc, newSrc);
  pkt.writeUInt16BE(updated, 56);
  t.true(verifyChecksum(pkt, 40, pkt.length, pseudoHeaderSumV6(pkt, pkt, 6, pkt.length - 40, 8, 24)));
  // Offsets into larger buffers give the same answer.
  const old = Buffer.concat([bytes('ffff'), oldSrc]);
  t.is(incrementalUpdateBytes(oldCsum, old, newSrc, 16, 2, 0), updated);
});
