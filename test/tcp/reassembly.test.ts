import { createHash } from 'node:crypto';
import test from 'ava';
import { Reassembler } from '../../src/tcp/reassembly.js';
import type { SackBlock } from '../../src/tcp/options.js';
import { ChunkQueue } from '../../src/tcp/sendbuf.js';
import { seqAdd, seqDiff } from '../../src/tcp/seq.js';
import { Rng } from '../sim/rng.js';
import { test as seededTest, useSeed } from '../sim/helpers.js';

/** `n` bytes of one value: which copy of an overlap won is then visible. */
const fill = (n: number, v: number): Buffer => Buffer.alloc(n, v);

function isViewOf(view: Buffer, of: Buffer): boolean {
  return view.buffer === of.buffer && view.byteOffset >= of.byteOffset && view.byteOffset + view.length <= of.byteOffset + of.length;
}

const block = (start: number, end: number): SackBlock => ({ start: start >>> 0, end: end >>> 0 });

/** Pops everything contiguous at rcvNxt; returns the bytes and the new RCV.NXT. */
function drain(r: Reassembler, rcvNxt: number): { data: Buffer; rcvNxt: number } {
  const parts: Buffer[] = [];
  for (let c = r.pop(rcvNxt); c !== undefined; c = r.pop(rcvNxt)) {
    parts.push(c);
    rcvNxt = seqAdd(rcvNxt, c.length);
  }
  return { data: Buffer.concat(parts), rcvNxt };
}

/**
 * The receiver of RFC 2018's examples: acknowledges each segment at once with up to `max`
 * blocks, popping what is in order. Returns [ACK, blocks].
 */
class Receiver {
  readonly r = new Reassembler(1 << 20);
  constructor(public rcvNxt: number, private readonly max = 3) {}
  receive(seq: number, len: number): [number, SackBlock[]] {
    this.r.insert(seq >>> 0, Buffer.alloc(len), this.rcvNxt);
    this.rcvNxt = drain(this.r, this.rcvNxt).rcvNxt;
    return [this.rcvNxt, this.r.sackBlocks(this.max)];
  }
}

test('an in-order segment advances at once and pops as the very same memory', (t) => {
  const r = new Reassembler(1 << 16);
  const data = fill(1000, 1);
  const res = r.insert(5000, data, 5000);
  t.is(res.advanced, 1000);
  t.is(res.newBytes, 1000);
  const c = r.pop(5000);
  t.true(c !== undefined && isViewOf(c, data) && c.length === 1000);
  t.is(r.pop(6000), undefined);
  t.is(r.bytesQueued, 0);
  t.is(r.segmentsQueued, 0);
});

test('RFC 9293 SHLD-31: a segment beyond RCV.NXT is held, and delivered once the gap fills', (t) => {
  const r = new Reassembler(1 << 16);
  t.is(r.insert(6000, fill(1000, 2), 5000).advanced, 0);
  t.is(r.insert(7000, fill(500, 3), 5000).advanced, 0);
  t.is(r.bytesQueued, 1500);
  t.is(r.segmentsQueued, 2);
  t.is(r.counters.get('outOfOrderSegments'), 2);
  t.is(r.pop(5000), undefined);
  t.is(r.insert(5000, fill(1000, 1), 5000).advanced, 2500);
  const { data, rcvNxt } = drain(r, 5000);
  t.is(rcvNxt, 7500);
  t.deepEqual(data, Buffer.concat([fill(1000, 1), fill(1000, 2), fill(500, 3)]));
  t.is(r.bytesQueued, 0);
});

test('RFC 9293 §3.10.7.4: of a segment straddling RCV.NXT only the new part is processed', (t) => {
  const r = new Reassembler(1 << 16);
  const seg = Buffer.concat([fill(300, 9), fill(700, 1)]);
  const res = r.insert(4700, seg, 5000);
  t.is(res.advanced, 700);
  t.is(res.duplicateBytes, 300);
  t.deepEqual(res.dsack, block(4700, 5000));
  const c = r.pop(5000);
  t.deepEqual(c, fill(700, 1));
  t.true(c !== undefined && isViewOf(c, seg));
});

test('old data (all below RCV.NXT) is counted and reported as a D-SACK, not stored', (t) => {
  const r = new Reassembler(1 << 16);
  const res = r.insert(4000, fill(1000, 1), 5000);
  t.is(res.advanced, 0);
  t.is(res.newBytes, 0);
  t.is(res.duplicateBytes, 1000);
  t.deepEqual(res.dsack, block(4000, 5000));
  t.is(r.bytesQueued, 0);
  t.like(r.counters.snapshot(), { duplicateSegments: 1, duplicateBytes: 1000 });
  // RFC 2883 §4.1: the D-SACK block is first (and here alone)
  t.deepEqual(r.sackBlocks(4), [block(4000, 5000)]);
});

test('overlap: a segment wholly covered by held data is dropped — the first copy wins', (t) => {
  const r = new Reassembler(1 << 16);
  r.insert(6000, fill(1000, 0xaa), 5000);
  const res = r.insert(6200, fill(300, 0xbb), 5000);
  t.is(res.newBytes, 0);
  t.is(res.duplicateBytes, 300);
  t.deepEqual(res.dsack, block(6200, 6500));
  t.is(r.bytesQueued, 1000);
  // RFC 2883 §4.2: the D-SACK first, then the block holding it
  t.deepEqual(r.sackBlocks(4), [block(6200, 6500), block(6000, 7000)]);
  r.insert(5000, fill(1000, 0), 5000);
  t.deepEqual(drain(r, 5000).data.subarray(1000), fill(1000, 0xaa));
});

test('overlap: a segment covering held ones replaces them (as Linux tcp_data_queue_ofo)', (t) => {
  const r = new Reassembler(1 << 16);
  r.insert(6000, fill(100, 0xaa), 5000);
  r.insert(6300, fill(100, 0xaa), 5000);
  t.is(r.segmentsQueued, 2);
  const res = r.insert(6000, fill(1000, 0xbb), 5000);
  t.is(res.newBytes, 800);
  t.is(res.duplicateBytes, 200);
  t.deepEqual(res.dsack, block(6000, 6100));
  t.is(r.segmentsQueued, 1);
  t.is(r.bytesQueued, 1000);
  t.is(r.counters.get('replacedSegments'), 2);
  r.insert(5000, fill(1000, 0), 5000);
  t.deepEqual(drain(r, 5000).data.subarray(1000), fill(1000, 0xbb));
});

test('overlap: on a partial overlap the bytes come from the segment that starts lower', (t) => {
  const r = new Reassembler(1 << 16);
  r.insert(6000, fill(500, 0xaa), 5000); // [6000, 6500)
  r.insert(6300, fill(500, 0xbb), 5000); // [6300, 6800): the held one starts lower and wins 6300..6500
  r.insert(7500, fill(500, 0xcc), 5000); // [7500, 8000)
  r.insert(7200, fill(500, 0xdd), 5000); // [7200, 7700): the new one starts lower and wins 7500..7700
  t.is(r.bytesQueued, 800 + 800);
  t.deepEqual(r.ranges(), [block(6000, 6800), block(7200, 8000)]);
  r.insert(5000, fill(1000, 0), 5000);
  r.insert(6800, fill(400, 0xee), 5000);
  const { data, rcvNxt } = drain(r, 5000);
  t.is(rcvNxt, 8000);
  t.deepEqual(data, Buffer.concat([fill(1000, 0), fill(500, 0xaa), fill(300, 0xbb), fill(400, 0xee), fill(500, 0xdd), fill(300, 0xcc)]));
});

test('duplicates and overlaps never grow memory past the bytes covered', (t) => {
  const r = new Reassembler(1 << 16);
  for (let i = 0; i < 50; i++) r.insert(6000 + (i % 7) * 100, fill(700, i), 5000);
  t.is(r.bytesQueued, 1300);
  t.deepEqual(r.ranges(), [block(6000, 7300)]);
});

test('memory bound: out-of-order segments beyond the limit are dropped and counted, never the in-order one', (t) => {
  const r = new Reassembler(3000);
  t.false(r.insert(6000, fill(1000, 1), 5000).dropped);
  t.false(r.insert(7000, fill(1000, 2), 5000).dropped);
  const over = r.insert(9000, fill(1500, 3), 5000);
  t.true(over.dropped);
  t.is(r.bytesQueued, 2000);
  t.like(r.counters.snapshot(), { droppedOverLimit: 1, droppedOverLimitBytes: 1500 });
  // a dropped segment is not SACKed: the sender must resend it
  t.deepEqual(r.sackBlocks(4), [block(6000, 8000)]);
  // one that fits still goes in
  t.false(r.insert(8000, fill(1000, 4), 5000).dropped);
  t.is(r.bytesQueued, 3000);
  // the in-order segment is taken although the limit is reached
  const inOrder = r.insert(5000, fill(1000, 0), 5000);
  t.false(inOrder.dropped);
  t.is(inOrder.advanced, 4000);
  t.is(drain(r, 5000).rcvNxt, 9000);
  t.is(r.bytesQueued, 0);
});

test('pop hands out at most maxLen bytes, a view, and keeps the rest', (t) => {
  const r = new Reassembler(1 << 16);
  const data = fill(1000, 7);
  r.insert(100, data, 100);
  const a = r.pop(100, 400);
  t.true(a !== undefined && a.length === 400 && isViewOf(a, data));
  t.is(r.bytesQueued, 600);
  t.is(r.contiguous(500), 600);
  t.is(r.pop(500, 0), undefined);
  t.is(r.pop(500)?.length, 600);
});

test('held data that RCV.NXT passed by another way is discarded and counted', (t) => {
  const r = new Reassembler(1 << 16);
  r.insert(6000, fill(1000, 1), 5000);
  // the connection delivered [5000, 6500) itself
  t.is(r.pop(6500)?.length, 500);
  t.is(r.counters.get('overtakenBytes'), 500);
  t.is(r.bytesQueued, 0);
});

test('RFC 2883 (1): a D-SACK is reported for the most recent packet only', (t) => {
  const r = new Reassembler(1 << 16);
  r.insert(7000, fill(500, 1), 5000);
  r.insert(7000, fill(500, 1), 5000); // a duplicate
  t.deepEqual(r.sackBlocks(4), [block(7000, 7500), block(7000, 7500)]);
  // the next segment is in order and the connection delivers it itself: no D-SACK any more
  t.is(r.pop(6000), undefined);
  t.deepEqual(r.sackBlocks(4), [block(7000, 7500)]);
  // likewise after any new insert
  r.insert(8000, fill(10, 1), 6000);
  t.deepEqual(r.sackBlocks(4), [block(8000, 8010), block(7000, 7500)]);
});

test('an out-of-order FIN is remembered', (t) => {
  const r = new Reassembler(1 << 16);
  t.is(r.finAt, undefined);
  r.insert(6000, fill(10, 1), 5000);
  r.markFin(6010);
  t.is(r.finAt, 6010);
});

// RFC 2018 §7 (SACK option examples): "Assume the left window edge is 5000 and that the data
// transmitter sends a burst of 8 segments, each containing 500 data bytes."

test('RFC 2018 example, case 2: the first segment is dropped but the remaining 7 are received', (t) => {
  // "Upon receiving each of the last seven packets, the data receiver will return a TCP ACK
  // segment that acknowledges sequence number 5000 and contains a SACK option specifying one
  // block of queued data"
  const rx = new Receiver(5000);
  const expected: [number, number][] = [[5500, 6000], [5500, 6500], [5500, 7000], [5500, 7500], [5500, 8000], [5500, 8500], [5500, 9000]];
  for (let k = 1; k < 8; k++) {
    const [ack, blocks] = rx.receive(5000 + 500 * k, 500);
    t.is(ack, 5000);
    t.deepEqual(blocks, [block(...expected[k - 1])]);
  }
});

test('RFC 2018 example, case 3: the 2nd, 4th, 6th and 8th segments are dropped', (t) => {
  // "The data receiver ACKs the first packet normally. The third, fifth, and seventh packets
  // trigger SACK options as follows:"
  const rx = new Receiver(5000);
  t.deepEqual(rx.receive(5000, 500), [5500, []]);
  t.deepEqual(rx.receive(6000, 500), [5500, [block(6000, 6500)]]);
  t.deepEqual(rx.receive(7000, 500), [5500, [block(7000, 7500), block(6000, 6500)]]);
  t.deepEqual(rx.receive(8000, 500), [5500, [block(8000, 8500), block(7000, 7500), block(6000, 6500)]]);
  // "Suppose at this point, the 4th packet is received out of order. ... At this point the data
  // receiver has only two SACK blocks to report."
  t.deepEqual(rx.receive(6500, 500), [5500, [block(6000, 7500), block(8000, 8500)]]);
  // "Suppose at this point, the 2nd segment is received. The data receiver ACKs the first four
  // packets:"
  t.deepEqual(rx.receive(5500, 500), [7500, [block(8000, 8500)]]);
});

test('RFC 2018 §4: the first block holds the triggering segment even when it is neither newest-highest nor lowest', (t) => {
  const rx = new Receiver(1000, 4);
  rx.receive(3000, 100);
  rx.receive(5000, 100);
  rx.receive(7000, 100);
  // a segment in the middle extends the block at 5000
  const [, blocks] = rx.receive(5100, 100);
  t.deepEqual(blocks[0], block(5000, 5200));
  // then the most recently reported, newest first
  t.deepEqual(blocks, [block(5000, 5200), block(7000, 7100), block(3000, 3100)]);
  // an explicit trigger wins over the last insert
  t.deepEqual(rx.r.sackBlocks(1, 3050), [block(3000, 3100)]);
});

test('RFC 2018 §4: no more blocks than the option has room for, the most recently reported first', (t) => {
  const rx = new Receiver(0, 3);
  for (let k = 1; k <= 6; k++) rx.receive(k * 1000, 100);
  t.deepEqual(rx.r.sackBlocks(3), [block(6000, 6100), block(5000, 5100), block(4000, 4100)]);
  t.deepEqual(rx.r.sackBlocks(0), []);
  // "as many distinct SACK blocks as possible": all six when there is room
  t.deepEqual(rx.r.sackBlocks(10).map((b) => b.start), [6000, 5000, 4000, 3000, 2000, 1000]);
});

test('RFC 2018 §4: blocks beyond the remembered history still get reported, highest first', (t) => {
  const rx = new Receiver(0, 4);
  // 40 blocks, received lowest first: only the last 16 are remembered
  for (let k = 1; k <= 40; k++) rx.receive(k * 1000, 100);
  const all = rx.r.sackBlocks(40).map((b) => b.start / 1000);
  t.deepEqual(all.slice(0, 16), Array.from({ length: 16 }, (_, i) => 40 - i));
  t.deepEqual(all.slice(16), Array.from({ length: 24 }, (_, i) => 24 - i));
});

test('RFC 2018 §4: a segment that advanced the ACK is not a first block; recent blocks follow', (t) => {
  const rx = new Receiver(1000, 4);
  rx.receive(2000, 100);
  rx.receive(3000, 100);
  const [ack, blocks] = rx.receive(1000, 1000); // fills up to 2100
  t.is(ack, 2100);
  t.deepEqual(blocks, [block(3000, 3100)]);
});

test('sequence numbers wrap across 2**32: holding, merging, popping and SACK blocks', (t) => {
  const base = 0xffff_fc00; // 1024 bytes below the wrap
  const rx = new Receiver(base, 4);
  const [ack1, b1] = rx.receive(base + 1500, 500); // [0x1dc, 0x3d0) after the wrap
  t.is(ack1, base);
  t.deepEqual(b1, [block(base + 1500, base + 2000)]);
  t.true(b1[0].start < base); // it did wrap
  const [, b2] = rx.receive(base + 500, 1000); // [base+500, base+1500) straddles 2**32
  t.deepEqual(b2, [block(base + 500, base + 2000)]);
  t.true(b2[0].end < b2[0].start); // the block itself spans 2**32
  t.is(seqDiff(b2[0].end, b2[0].start), 1500);
  const [ack3, b3] = rx.receive(base, 500);
  t.is(ack3, (base + 2000) >>> 0);
  t.deepEqual(b3, []);
  t.is(rx.r.bytesQueued, 0);
});

seededTest('randomized: a stream chopped into segments, reordered and duplicated, comes out whole (sha256)', (t) => {
  const rng = new Rng(useSeed(t, 9293));
  const size = 1 << 20;
  const stream = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) stream.writeUInt32LE(rng.nextU32(), i);
  const isn = (0xffff_ffff - rng.int(size)) >>> 0; // the stream crosses 2**32
  // chop; now and then a retransmission of nearby data cut differently (duplicates, overlaps)
  const segs: { off: number; len: number }[] = [];
  for (let off = 0; off < size;) {
    const len = Math.min(size - off, 1 + rng.int(3000));
    segs.push({ off, len });
    if (rng.chance(0.25)) {
      const o = Math.min(size - 1, Math.max(0, off + rng.int(12_000) - 6000));
      segs.push({ off: o, len: Math.min(size - o, 1 + rng.int(4000)) });
    }
    off += len;
  }
  // reorder within a window, as a network does, so the queue stays bounded
  for (let i = segs.length - 1; i > 0; i--) {
    const j = Math.max(0, i - rng.int(64));
    [segs[i], segs[j]] = [segs[j], segs[i]];
  }
  const r = new Reassembler(1 << 20);
  // the application's receive buffer, 64 KiB: what it has not read closes the window
  const rb = new ChunkQueue();
  const free = (): number => (1 << 16) - rb.length;
  const out = createHash('sha256');
  let rcvNxt = isn;
  let delivered = 0;
  let maxQueued = 0;
  const readAll = (): void => {
    for (let c = rb.shift(); c !== undefined; c = rb.shift()) {
      out.update(c);
      delivered += c.length;
    }
  };
  const deliver = (): void => {
    for (let c = r.pop(rcvNxt, free()); c !== undefined; c = r.pop(rcvNxt, free())) {
      rb.append(c);
      rcvNxt = seqAdd(rcvNxt, c.length);
      if (free() === 0) readAll();
    }
  };
  // each arrival is a Buffer the receiver owns (a copy out of the device arena)
  for (const s of segs) {
    r.insert(seqAdd(isn, s.off), Buffer.from(stream.subarray(s.off, s.off + s.len)), rcvNxt);
    maxQueued = Math.max(maxQueued, r.bytesQueued);
    deliver();
    if (rng.chance(0.3)) readAll();
  }
  // whatever the shuffle left missing is retransmitted in order at the end
  while (seqDiff(rcvNxt, isn) < size) {
    const off = seqDiff(rcvNxt, isn);
    r.insert(rcvNxt, Buffer.from(stream.subarray(off, Math.min(size, off + 1448))), rcvNxt);
    deliver();
    readAll();
  }
  readAll();
  t.is(delivered, size);
  t.is(out.digest('hex'), createHash('sha256').update(stream).digest('hex'));
  t.is(r.bytesQueued, 0);
  // the run did exercise what it is about
  t.true(r.counters.get('duplicateBytes') > 0);
  t.true(r.counters.get('replacedSegments') > 0);
  t.true(r.counters.get('outOfOrderSegments') > 100);
  t.true(maxQueued > 0 && maxQueued < 1 << 20);
});

seededTest('randomized: SACK blocks always describe held data above RCV.NXT, disjoint, the trigger first', (t) => {
  const rng = new Rng(useSeed(t, 2883));
  const base = (0x1_0000_0000 - 20_000) >>> 0;
  const r = new Reassembler({ limit: 1 << 20, dsack: false });
  let rcvNxt = base;
  for (let i = 0; i < 3000; i++) {
    const seq = seqAdd(rcvNxt, rng.int(40_000));
    const len = 1 + rng.int(1500);
    const res = r.insert(seq, Buffer.alloc(len), rcvNxt);
    if (res.advanced > 0) rcvNxt = drain(r, rcvNxt).rcvNxt;
    const blocks = r.sackBlocks(4);
    const held = r.ranges();
    t.true(blocks.length <= 4 && blocks.length <= held.length);
    for (const b of blocks) {
      t.true(held.some((h) => h.start === b.start && h.end === b.end), 'a block is a whole held range');
      t.true(seqDiff(b.start, rcvNxt) > 0, 'above RCV.NXT');
    }
    t.is(new Set(blocks.map((b) => b.start)).size, blocks.length, 'distinct');
    if (res.advanced === 0 && res.newBytes > 0) {
      const first = blocks[0];
      t.true(seqDiff(seq, first.start) >= 0 && seqDiff(first.end, seq) > 0, 'the first block holds the trigger');
    }
  }
});
