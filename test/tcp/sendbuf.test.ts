import { createHash } from 'node:crypto';
import test from 'ava';
import { ChunkQueue, SendBuffer, SMALL_WRITE_MAX, STAGE_MIN, STAGE_SIZE } from '../../src/tcp/sendbuf.js';
import { Rng } from '../sim/rng.js';
import { test as seededTest, useSeed } from '../sim/helpers.js';

/** `n` bytes counting up from `from` (mod 256), so that any slice says where it came from. */
function pattern(n: number, from = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (from + i) & 0xff;
  return b;
}

/** Shares memory with `of`: a view, not a copy. */
function isViewOf(view: Buffer, of: Buffer): boolean {
  return view.buffer === of.buffer && view.byteOffset >= of.byteOffset && view.byteOffset + view.length <= of.byteOffset + of.length;
}

test('write takes up to the free space and says how much (back-pressure)', (t) => {
  const sb = new SendBuffer(3000);
  t.is(sb.capacity, 3000);
  t.is(sb.free, 3000);
  t.is(sb.write(pattern(2000)), 2000);
  t.is(sb.length, 2000);
  t.is(sb.free, 1000);
  // only what fits is taken; the caller offers the rest later
  t.is(sb.write(pattern(2000, 2000)), 1000);
  t.is(sb.length, 3000);
  t.is(sb.free, 0);
  t.is(sb.write(pattern(10)), 0);
  t.deepEqual(sb.peek(0, 3000), pattern(3000));
});

test('a large write is kept by reference: peek within it is a view, not a copy', (t) => {
  const sb = new SendBuffer(1 << 20);
  const data = pattern(64 * 1024);
  sb.write(data);
  const seg = sb.peek(1000, 1460);
  t.true(isViewOf(seg, data));
  t.deepEqual(seg, pattern(1460, 1000));
  t.is(sb.counters.get('peekCopies'), 0);
});

test('a partial write keeps a view of the part taken', (t) => {
  const sb = new SendBuffer(1000);
  const data = pattern(4000);
  t.is(sb.write(data), 1000);
  t.true(isViewOf(sb.peek(0, 1000), data));
  t.is(sb.peek(0, 5000).length, 1000);
});

test('peek across chunks is one copy, and it is counted', (t) => {
  const sb = new SendBuffer(1 << 20);
  const a = pattern(1000, 0);
  const b = pattern(1000, 1000);
  const c = pattern(1000, 2000);
  sb.write(a);
  sb.write(b);
  sb.write(c);
  const seg = sb.peek(500, 2000);
  t.deepEqual(seg, pattern(2000, 500));
  t.false(isViewOf(seg, a) || isViewOf(seg, b) || isViewOf(seg, c));
  t.is(sb.counters.get('peekCopies'), 1);
  t.is(sb.counters.get('peekCopiedBytes'), 2000);
  // within one chunk again: a view, no new copy
  t.true(isViewOf(sb.peek(1000, 1000), b));
  t.is(sb.counters.get('peekCopies'), 1);
});

test('peekInto copies across chunks straight into the packet at an offset', (t) => {
  const sb = new SendBuffer(1 << 20);
  sb.write(pattern(700, 0));
  sb.write(pattern(700, 700));
  sb.write(pattern(700, 1400));
  const packet = Buffer.alloc(54 + 1460, 0xee);
  t.is(sb.peekInto(100, 1460, packet, 54), 1460);
  t.deepEqual(packet.subarray(54), pattern(1460, 100));
  t.true(packet.subarray(0, 54).every((x) => x === 0xee));
  t.is(sb.counters.get('copiedIntoBytes'), 1460);
  t.is(sb.counters.get('peekCopies'), 0);
  // clipped to what is held and to the room in the packet
  t.is(sb.peekInto(2000, 1460, packet, 54), 100);
  t.is(sb.peekInto(0, 1460, Buffer.alloc(10), 4), 6);
});

test('small writes are coalesced into a staging buffer: one chunk, peek stays a view', (t) => {
  const sb = new SendBuffer(1 << 20);
  const ones: Buffer[] = [];
  for (let i = 0; i < 1000; i++) {
    const b = Buffer.from([i & 0xff]);
    ones.push(b);
    sb.write(b);
  }
  t.is(sb.length, 1000);
  t.is(sb.chunkCount, 1);
  t.is(sb.counters.get('coalescedBytes'), 1000);
  const all = sb.peek(0, 1000);
  t.deepEqual(all, pattern(1000));
  t.is(sb.counters.get('peekCopies'), 0);
  // they were copied: the caller's buffers are not referenced
  ones[0][0] = 0xff;
  t.is(sb.peek(0, 1)[0], 0);
  // a write above the threshold is kept by reference again
  const big = pattern(SMALL_WRITE_MAX + 1, 1000);
  sb.write(big);
  t.is(sb.chunkCount, 2);
  t.true(isViewOf(sb.peek(1000, 10), big));
});

test('small writes fill one staging buffer, then another twice its size, up to STAGE_SIZE', (t) => {
  const sb = new SendBuffer(1 << 20);
  const piece = SMALL_WRITE_MAX;
  // stages of 1, 2, 4, 8, 16 and 16 KiB: 47 KiB in six chunks
  let stages = 0;
  let room = 0;
  for (let size = STAGE_MIN; room < 40 * 1024; size = Math.min(STAGE_SIZE, 2 * size)) {
    room += size;
    stages++;
  }
  const n = (40 * 1024) / piece;
  for (let i = 0; i < n; i++) sb.write(pattern(piece, i * piece));
  t.is(stages, 6);
  t.is(sb.chunkCount, stages);
  t.deepEqual(sb.peek(0, n * piece), pattern(n * piece));
});

test('an emptied queue lets go of its staging buffer; the bytes handed out stay as they were', (t) => {
  const q = new ChunkQueue();
  q.append(Buffer.from('first'));
  const out = q.shift()!;
  t.is(q.length, 0);
  // a new stage for the next small write: what was handed out is not overwritten
  q.append(Buffer.from('again'));
  t.is(out.toString(), 'first');
  t.is(q.shift()!.toString(), 'again');
});

test('ack drops whole chunks and trims the first; offsets stay relative to SND.UNA', (t) => {
  const sb = new SendBuffer(1 << 20);
  const a = pattern(1000, 0);
  const b = pattern(1000, 1000);
  const c = pattern(1000, 2000);
  sb.write(a);
  sb.write(b);
  sb.write(c);
  sb.ack(1500); // all of a, half of b
  t.is(sb.length, 1500);
  t.is(sb.chunkCount, 2);
  t.is(sb.free, (1 << 20) - 1500);
  const head = sb.peek(0, 500);
  t.deepEqual(head, pattern(500, 1500));
  t.true(isViewOf(head, b));
  sb.ack(1500);
  t.is(sb.length, 0);
  t.is(sb.chunkCount, 0);
  t.deepEqual(sb.peek(0, 100), Buffer.alloc(0));
});

test('acking or peeking past the end is a programming error (RangeError)', (t) => {
  const sb = new SendBuffer(100);
  sb.write(pattern(50));
  t.throws(() => sb.ack(51), { instanceOf: RangeError });
  t.throws(() => sb.peek(51, 1), { instanceOf: RangeError });
  t.throws(() => sb.peekInto(-1, 1, Buffer.alloc(1)), { instanceOf: RangeError });
  // at the end: nothing, not an error
  t.is(sb.peek(50, 10).length, 0);
  t.is(sb.peekInto(50, 10, Buffer.alloc(10)), 0);
  t.throws(() => new SendBuffer(-1), { instanceOf: RangeError });
});

test('capacity is settable: shrinking below what is held drops nothing, it stops writes', (t) => {
  const sb = new SendBuffer(1000);
  sb.write(pattern(800));
  sb.capacity = 500;
  t.is(sb.length, 800);
  t.is(sb.free, 0);
  t.is(sb.write(pattern(1)), 0);
  sb.ack(400);
  t.is(sb.free, 100);
  sb.capacity = 10_000;
  t.is(sb.free, 9600);
  t.deepEqual(sb.peek(0, 400), pattern(400, 144)); // 400 mod 256 = 144
});

test('tens of megabytes in 64 KB chunks: peeks and acks stay cheap', (t) => {
  const chunk = pattern(64 * 1024);
  const sb = new SendBuffer(64 << 20);
  for (let i = 0; i < 1024; i++) t.is(sb.write(chunk), chunk.length);
  t.is(sb.length, 64 << 20);
  t.is(sb.chunkCount, 1024);
  const mss = 1448;
  let copies = 0;
  // walk the whole buffer segment by segment, acking as we go
  for (let off = 0; sb.length > 0;) {
    const seg = sb.peek(off, mss);
    if (!isViewOf(seg, chunk)) copies++;
    off += seg.length;
    if (off >= 16 * mss) {
      sb.ack(off);
      off = 0;
    }
    if (sb.length - off === 0) {
      sb.ack(off);
      off = 0;
    }
  }
  // one segment in 45 straddles a chunk boundary, and only those are copies
  t.is(copies, sb.counters.get('peekCopies'));
  t.true(copies > 0 && copies <= 1024);
  t.is(sb.chunkCount, 0);
});

test('a stream longer than 2**32 bytes: offsets are not sequence numbers, they do not wrap', (t) => {
  const chunk = pattern(1 << 20);
  const q = new ChunkQueue();
  let written = 0;
  // 4 GiB + 3 MiB by reference (no copy), acked as it goes
  while (written < 2 ** 32 + 3 * 2 ** 20) {
    q.append(chunk);
    written += chunk.length;
    if (q.length > 2 * chunk.length) q.consume(chunk.length + 7);
  }
  const held = q.length;
  // the front is 7 bytes into a chunk per consume: check the bytes are still right
  const front = q.peek(0, 16);
  const consumed = written - held;
  t.true(consumed > 2 ** 32);
  t.deepEqual(front, pattern(16, consumed % (1 << 20)));
  q.consume(held);
  t.is(q.length, 0);
});

test('receive-queue reads: shift hands out views of the front chunk', (t) => {
  const q = new ChunkQueue();
  const a = pattern(300, 0);
  q.append(a);
  q.append(pattern(300, 300));
  const r = q.shift(100);
  t.true(r !== undefined && isViewOf(r, a));
  t.deepEqual(q.shift(), pattern(200, 100));
  t.deepEqual(q.shift(1000), pattern(300, 300));
  t.is(q.shift(), undefined);
});

seededTest('randomized: writes, acks of random prefixes and peeks agree with a flat copy', (t) => {
  const rng = new Rng(useSeed(t, 2018));
  const sb = new SendBuffer(256 * 1024);
  // the model: the stream, how much of it was written and how much acked
  const stream = pattern(4 << 20, 0);
  for (let i = 0; i < stream.length; i += 4) stream.writeUInt32LE(rng.nextU32(), i);
  const ackedHash = createHash('sha256');
  let written = 0;
  let acked = 0;
  for (let ops = 0; acked < stream.length; ops++) {
    const op = rng.int(4);
    if (op === 0 || (written < stream.length && sb.length === 0)) {
      // the caller hands its buffer over: a fresh view of the stream
      const size = rng.chance(0.3) ? 1 + rng.int(SMALL_WRITE_MAX) : 1 + rng.int(40_000);
      const piece = stream.subarray(written, Math.min(stream.length, written + size));
      const free = sb.free;
      const took = sb.write(piece);
      t.is(took, Math.min(piece.length, free));
      written += took;
    } else if (op === 1) {
      const off = rng.int(sb.length + 1);
      const len = rng.int(3000);
      const got = sb.peek(off, len);
      if (!got.equals(stream.subarray(acked + off, Math.min(acked + off + len, written)))) {
        t.fail(`peek(${off}, ${len}) wrong after ${ops} operations`);
        return;
      }
    } else if (op === 2) {
      const off = rng.int(sb.length + 1);
      const len = rng.int(2000);
      const at = rng.int(100);
      const target = Buffer.alloc(2100);
      const n = sb.peekInto(off, len, target, at);
      t.is(n, Math.min(len, sb.length - off));
      if (!target.subarray(at, at + n).equals(stream.subarray(acked + off, acked + off + n))) {
        t.fail(`peekInto(${off}, ${len}) wrong after ${ops} operations`);
        return;
      }
    } else {
      // the peer acknowledges a random prefix of what is outstanding
      const n = rng.int(sb.length + 1);
      ackedHash.update(sb.peek(0, n));
      sb.ack(n);
      acked += n;
      t.is(sb.length, written - acked);
    }
  }
  t.is(ackedHash.digest('hex'), createHash('sha256').update(stream).digest('hex'));
  t.is(sb.length, 0);
  t.is(sb.chunkCount, 0);
});
