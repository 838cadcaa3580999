import test from 'ava';
import { Scoreboard, SeqRangeSet } from '../../src/tcp/scoreboard.js';
import type { SackBlock } from '../../src/tcp/options.js';
import { seqAdd, seqDiff } from '../../src/tcp/seq.js';
import { Rng } from '../sim/rng.js';
import { test as seededTest, useSeed } from '../sim/helpers.js';

const SMSS = 1000;

/**
 * The worked scenario: a sender with SND.UNA = `base` sends 10 segments of SMSS bytes. Segment k
 * (1-based) is [base + (k-1)*SMSS, base + k*SMSS). Segments 2 and 5 are lost.
 */
class Flight {
  readonly sb = new Scoreboard({ smss: SMSS });
  sndUna: number;
  readonly highData: number;
  /** The receiver's view: segments it holds. */
  private readonly got = new Set<number>();
  constructor(readonly base: number) {
    this.sndUna = base;
    this.highData = this.seg(11);
  }
  /** The first sequence number of segment k. */
  seg(k: number): number {
    return seqAdd(this.base, (k - 1) * SMSS);
  }
  range(from: number, to: number): SackBlock {
    return { start: this.seg(from), end: this.seg(to + 1) };
  }
  /** Segment k arrives at the receiver; its ACK (as an RFC 2018 receiver builds it) is processed. */
  arrive(k: number) {
    this.got.add(k);
    let cum = 1;
    while (this.got.has(cum)) cum++;
    // blocks: the one holding k first, then the others highest first
    const runs: [number, number][] = [];
    for (let i = cum; i <= 10; i++) {
      if (!this.got.has(i)) continue;
      let j = i;
      while (this.got.has(j + 1)) j++;
      runs.push([i, j]);
      i = j;
    }
    runs.sort((a, b) => (a[0] <= k && k <= a[1] ? -1 : b[0] <= k && k <= b[1] ? 1 : b[0] - a[0]));
    const blocks = runs.slice(0, 3).map(([i, j]) => this.range(i, j));
    const ack = this.seg(cum);
    const r = this.sb.onAck(ack, blocks, this.sndUna, this.highData);
    this.sndUna = ack;
    return r;
  }
}

/** RFC 6675 §4 IsLost, literally, per octet, from a list of SACKed octets. */
function literalIsLost(sacked: (s: number) => boolean, seq: number, highData: number, smss: number, dupThresh = 3): boolean {
  let runs = 0;
  let bytes = 0;
  let inRun = false;
  for (let s = seqAdd(seq, 1); s !== highData; s = seqAdd(s, 1)) {
    if (sacked(s)) {
      bytes++;
      if (!inRun) runs++;
      inRun = true;
    } else {
      inRun = false;
    }
  }
  return runs >= dupThresh || bytes > (dupThresh - 1) * smss;
}

/** RFC 6675 §4 SetPipe, literally, per octet; (b) by HighRxt ("If S1 <= HighRxt"). */
function literalPipe(sacked: (s: number) => boolean, sndUna: number, highData: number, highRxt: number, smss: number): number {
  let pipe = 0;
  for (let s1 = sndUna; s1 !== highData; s1 = seqAdd(s1, 1)) {
    if (sacked(s1)) continue;
    if (!literalIsLost(sacked, s1, highData, smss)) pipe++;
    if (seqDiff(s1, highRxt) < 0) pipe++; // S1 <= HighRxt, with highRxt one past
  }
  return pipe;
}

for (const base of [1000, 0xffff_f254]) {
  const where = base > 0x8000_0000 ? ' (across 2**32)' : '';

  test(`RFC 6675 §2: an ACK is a duplicate when it SACKs octets not SACKed before${where}`, (t) => {
    const f = new Flight(base);
    t.like(f.arrive(1), { dupAck: false, newlySacked: 0 });
    t.like(f.arrive(3), { dupAck: true, newlySacked: SMSS });
    // the same information again is not
    t.like(f.sb.onAck(f.seg(2), [f.range(3, 3)], f.sndUna, f.highData), { dupAck: false, newlySacked: 0 });
    // "an ACK which carries new SACK data is counted as a duplicate acknowledgment under this
    // definition even if it carries new data, changes the advertised window, or moves the
    // cumulative acknowledgment point"
    t.like(f.arrive(4), { dupAck: true, newlySacked: SMSS });
    t.deepEqual(f.sb.sackedRanges(), [f.range(3, 4)]);
    t.is(f.sb.highSacked, f.seg(5));
  });

  test(`RFC 6675 §4 IsLost: more than (DupThresh-1)*SMSS bytes SACKed above${where}`, (t) => {
    const f = new Flight(base);
    f.arrive(1);
    f.arrive(3);
    t.false(f.sb.isLost(f.seg(2)));
    f.arrive(4);
    // exactly 2 * SMSS above: not "more than"
    t.false(f.sb.isLost(f.seg(2)));
    f.arrive(6);
    t.true(f.sb.isLost(f.seg(2)));
    // RFC 6675 §5 step (2): "IsLost (HighACK + 1)" is isLost(SND.UNA) here
    t.true(f.sb.isLost(f.sndUna));
    t.false(f.sb.isLost(f.seg(5)));
    f.arrive(7);
    t.false(f.sb.isLost(f.seg(5)));
    f.arrive(8);
    t.true(f.sb.isLost(f.seg(5)));
    // a SACKed octet is not lost; octets above the highest SACK never are
    t.false(f.sb.isLost(f.seg(3)));
    t.false(f.sb.isLost(f.seg(9)));
  });

  test(`RFC 6675 §4 IsLost: DupThresh discontiguous SACKed sequences above, however small${where}`, (t) => {
    const sb = new Scoreboard({ smss: SMSS });
    const s = (o: number) => seqAdd(base, o);
    sb.onAck(base, [{ start: s(100), end: s(101) }, { start: s(200), end: s(201) }], base, s(10_000));
    t.false(sb.isLost(base));
    sb.onAck(base, [{ start: s(300), end: s(301) }], base, s(10_000));
    t.true(sb.isLost(base));
    t.true(sb.isLost(s(99)));
    t.false(sb.isLost(s(101))); // only two above
  });

  test(`RFC 6675 §4 SetPipe: lost holes leave the pipe, retransmissions re-enter it${where}`, (t) => {
    const f = new Flight(base);
    for (const k of [1, 3, 4, 6, 7, 8]) f.arrive(k);
    // holes: 2 (lost), 5 (lost), 9-10 (above every SACK: in flight)
    t.is(f.sb.pipe(f.sndUna, f.highData), 2 * SMSS);
    const sacked = (x: number) => f.sb.isSacked(x);
    t.is(literalPipe(sacked, f.sndUna, f.highData, f.sndUna, SMSS), 2 * SMSS);
    // retransmit segment 2, then 5 (HighRxt follows)
    f.sb.markRetransmitted(f.seg(2), f.seg(3));
    t.is(f.sb.pipe(f.sndUna, f.highData), 3 * SMSS);
    t.is(literalPipe(sacked, f.sndUna, f.highData, f.seg(3), SMSS), 3 * SMSS);
    f.sb.markRetransmitted(f.seg(5), f.seg(6));
    t.is(f.sb.pipe(f.sndUna, f.highData), 4 * SMSS);
    t.is(literalPipe(sacked, f.sndUna, f.highData, f.seg(6), SMSS), 4 * SMSS);
    // the retransmission of 2 is acknowledged
    f.arrive(2);
    t.is(f.sndUna, f.seg(5));
    t.is(f.sb.pipe(f.sndUna, f.highData), 3 * SMSS);
    t.deepEqual(f.sb.retransmittedRanges(), [f.range(5, 5)]);
  });

  test(`RFC 6675 §4 NextSeg rules (1), (2) and (4) through a recovery${where}`, (t) => {
    const f = new Flight(base);
    for (const k of [1, 3, 4, 6, 7, 8]) f.arrive(k);
    // entering recovery: "HighRxt = HighACK", RecoveryPoint = HighData
    let highRxt = f.sndUna;
    const recoveryPoint = f.highData;
    // (1): the lost holes, lowest first
    t.deepEqual(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS), { start: f.seg(2), length: SMSS, retransmit: true, rule: 1 });
    f.sb.markRetransmitted(f.seg(2), f.seg(3));
    highRxt = f.seg(3);
    t.deepEqual(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS), { start: f.seg(5), length: SMSS, retransmit: true, rule: 1 });
    f.sb.markRetransmitted(f.seg(5), f.seg(6));
    highRxt = f.seg(6);
    // (2): no lost octet left above HighRxt: new data, from HighData + 1, when there is some
    t.deepEqual(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS, { newData: 600 }), { start: f.highData, length: 600, retransmit: false, rule: 2 });
    t.deepEqual(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS, { newData: 5000 })?.length, SMSS);
    // no new data, (3) has nothing below the highest SACK: (4) only in recovery
    t.is(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS), null);
    // (4) the rescue: one segment that includes the highest outstanding unSACKed octet
    t.deepEqual(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS, { recoveryPoint }), { start: f.seg(10), length: SMSS, retransmit: true, rule: 4 });
    // "RescueRxt set to RecoveryPoint": once per recovery, until HighACK passes it
    t.is(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS, { recoveryPoint, rescueRxt: recoveryPoint }), null);
  });

  test(`RFC 6675 §4 NextSeg rule (3): an unSACKed hole below the highest SACK, not yet lost${where}`, (t) => {
    const f = new Flight(base);
    f.arrive(1);
    f.arrive(3);
    t.false(f.sb.isLost(f.seg(2)));
    const highRxt = f.sndUna;
    t.deepEqual(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS), { start: f.seg(2), length: SMSS, retransmit: true, rule: 3 });
    // it is a SHOULD; turned off, and new data allowed, rule (2) answers
    t.is(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS, { rule3: false }), null);
    t.like(f.sb.nextSeg(f.sndUna, f.highData, highRxt, SMSS, { newData: 1 }), { rule: 2 });
  });

  test(`NextSeg never resends SACKed bytes: a hole shorter than SMSS gives a short segment${where}`, (t) => {
    const sb = new Scoreboard({ smss: 1460 });
    const s = (o: number) => seqAdd(base, o);
    // SACKed above holes of 300 and 100 bytes, with three ranges above each: both lost
    const blocks = [[300, 2000], [2100, 3000], [3100, 4000], [4100, 4200]].map(([a, b]) => ({ start: s(a), end: s(b) }));
    sb.onAck(base, blocks, base, s(5000));
    t.deepEqual(sb.nextSeg(base, s(5000), base), { start: base, length: 300, retransmit: true, rule: 1 });
    t.deepEqual(sb.nextSeg(base, s(5000), s(300)), { start: s(2000), length: 100, retransmit: true, rule: 1 });
    // rule (3) is bounded the same way
    t.deepEqual(sb.nextSeg(base, s(5000), s(3000)), { start: s(3000), length: 100, retransmit: true, rule: 3 });
  });

  test(`RFC 2883: a first block below the cumulative ACK is a D-SACK, counted, not an error${where}`, (t) => {
    const f = new Flight(base);
    for (const k of [1, 3]) f.arrive(k);
    f.sb.markRetransmitted(f.seg(2), f.seg(3));
    // the original and the retransmission of 2 both arrive; the second is reported as a D-SACK
    const r = f.sb.onAck(f.seg(4), [f.range(2, 2)], f.sndUna, f.highData);
    t.deepEqual(r.dsack, f.range(2, 2));
    t.true(r.spuriousRetransmit);
    t.false(r.dupAck);
    t.is(r.newlySacked, 0);
    t.like(f.sb.counters.snapshot(), { dsackReceived: 1, dsackSpuriousRetransmit: 1, sackInvalidBlock: 0 });
  });

  test(`RFC 2883: a first block inside the second is a D-SACK above the cumulative ACK${where}`, (t) => {
    const f = new Flight(base);
    for (const k of [1, 3, 4]) f.arrive(k);
    const r = f.sb.onAck(f.seg(2), [f.range(4, 4), f.range(3, 4)], f.sndUna, f.highData);
    t.deepEqual(r.dsack, f.range(4, 4));
    t.false(r.spuriousRetransmit);
    t.false(r.dupAck);
    // a repeated block that is not first is plain old SACK information
    const r2 = f.sb.onAck(f.seg(2), [f.range(6, 6), f.range(3, 4)], f.sndUna, f.highData);
    t.is(r2.dsack, null);
    t.true(r2.dupAck);
    t.is(f.sb.counters.get('dsackReceived'), 1);
  });

  test(`blocks beyond HighData or inverted are ignored and counted; stale ones below the ACK too${where}`, (t) => {
    const f = new Flight(base);
    f.arrive(1);
    const r = f.sb.onAck(f.seg(2), [
      f.range(3, 3),
      { start: f.seg(9), end: seqAdd(f.highData, 1) },
      { start: f.seg(6), end: f.seg(5) },
      { start: f.seg(1), end: f.seg(2) },
    ], f.sndUna, f.highData);
    t.is(r.newlySacked, SMSS);
    t.like(f.sb.counters.snapshot(), { sackInvalidBlock: 2, sackBelowAck: 1 });
    t.deepEqual(f.sb.sackedRanges(), [f.range(3, 3)]);
  });

  test(`cumulative ACKs trim the SACKed ranges; a block straddling SND.UNA is clipped${where}`, (t) => {
    const f = new Flight(base);
    for (const k of [1, 3, 4, 6]) f.arrive(k);
    t.is(f.sb.sackedBytes, 3 * SMSS);
    // the retransmission of 2 arrives: the receiver ACKs past 3-4
    f.sb.onAck(f.seg(5), [f.range(6, 6)], f.sndUna, f.highData);
    t.deepEqual(f.sb.sackedRanges(), [f.range(6, 6)]);
    t.is(f.sb.sackedBytes, SMSS);
    // a (second) block reaching below SND.UNA counts only from SND.UNA
    const r = f.sb.onAck(f.seg(5), [f.range(9, 9), { start: f.seg(3), end: f.seg(8) }], f.seg(5), f.highData);
    t.is(r.newlySacked, 3 * SMSS);
    t.deepEqual(f.sb.sackedRanges(), [f.range(5, 7), f.range(9, 9)]);
    t.false(r.reneged);
    // as the first block it would be a D-SACK (RFC 2883: it starts below the ACK)
    t.deepEqual(f.sb.onAck(f.seg(5), [{ start: f.seg(3), end: f.seg(8) }], f.seg(5), f.highData).dsack, { start: f.seg(3), end: f.seg(8) });
  });

  test(`reneging: an ACK that stops at SACKed data clears the scoreboard (RFC 2018 §8)${where}`, (t) => {
    const f = new Flight(base);
    for (const k of [1, 3, 4, 6]) f.arrive(k);
    // the receiver got 2 but discarded 3-4: it ACKs up to 3 only
    const r = f.sb.onAck(f.seg(3), [], f.sndUna, f.highData);
    t.true(r.reneged);
    t.false(f.sb.hasSackInfo);
    t.is(f.sb.counters.get('sackReneging'), 1);
  });

  test(`RFC 6675 §5.1: after an RTO the SACK information is kept, retransmissions forgotten; Update goes on${where}`, (t) => {
    const f = new Flight(base);
    for (const k of [1, 3, 4, 6, 7, 8]) f.arrive(k);
    f.sb.markRetransmitted(f.seg(2), f.seg(3));
    f.sb.onRto();
    t.deepEqual(f.sb.sackedRanges(), [f.range(3, 4), f.range(6, 8)]);
    t.deepEqual(f.sb.retransmittedRanges(), []);
    // the go-back-N that follows skips what the peer holds
    t.deepEqual(f.sb.nextHole(f.seg(2), f.highData), f.range(2, 2));
    t.deepEqual(f.sb.nextHole(f.seg(3), f.highData), f.range(5, 5));
    t.is(f.sb.sackedEnd(f.seg(6)), f.seg(9));
    t.deepEqual(f.sb.nextHole(f.seg(9), f.highData), f.range(9, 10));
    t.is(f.sb.nextHole(f.highData, f.highData), null);
    // "Update () SHOULD continue to be used appropriately upon receipt of ACKs"
    t.like(f.arrive(9), { dupAck: true, newlySacked: SMSS });
    // RFC 2018's reading: expunge
    f.sb.onRto({ keepSack: false });
    t.false(f.sb.hasSackInfo);
    t.is(f.sb.counters.get('rto'), 2);
  });
}

test('SeqRangeSet: add merges overlapping and adjacent ranges and reports new bytes, across 2**32', (t) => {
  const set = new SeqRangeSet();
  const w = 0xffff_ff00;
  const s = (o: number) => seqAdd(w, o);
  t.is(set.add(s(100), s(200)), 100);
  t.is(set.add(s(300), s(400)), 100);
  t.is(set.add(s(200), s(300)), 100); // adjacent on both sides: one range
  t.deepEqual(set.toArray(), [{ start: s(100), end: s(400) }]);
  t.is(set.add(s(50), s(450)), 100);
  t.is(set.add(s(60), s(70)), 0);
  t.is(set.bytes, 400);
  t.true(set.covers(s(60), s(440)));
  t.false(set.covers(s(40), s(60)));
  t.is(set.overlap(s(0), s(100)), 50);
  t.is(set.remove(s(100), s(200)), 100);
  t.deepEqual(set.toArray(), [{ start: s(50), end: s(100) }, { start: s(200), end: s(450) }]);
  t.is(set.trimFront(s(300)), 150);
  t.deepEqual(set.toArray(), [{ start: s(300), end: s(450) }]);
  t.is(set.bytes, 150);
});

seededTest('randomized: pipe and IsLost agree with RFC 6675 §4 read literally, octet by octet', (t) => {
  const rng = new Rng(useSeed(t, 6675));
  const smss = 10;
  for (let round = 0; round < 150; round++) {
    const sndUna = rng.chance(0.5) ? (0x1_0000_0000 - rng.int(300)) >>> 0 : rng.nextU32();
    const highData = seqAdd(sndUna, 50 + rng.int(250));
    const span = seqDiff(highData, sndUna);
    const sb = new Scoreboard({ smss });
    const blocks: SackBlock[] = [];
    for (let i = rng.int(8); i > 0; i--) {
      const a = rng.int(span);
      blocks.push({ start: seqAdd(sndUna, a), end: seqAdd(sndUna, Math.min(span, a + 1 + rng.int(25))) });
    }
    sb.onAck(sndUna, blocks, sndUna, highData);
    // retransmit as NextSeg says, a few times: then (b) by ranges equals (b) by HighRxt
    let highRxt = sndUna;
    for (let i = rng.int(4); i > 0; i--) {
      const next = sb.nextSeg(sndUna, highData, highRxt, smss);
      if (next === null || next.rule !== 1) break;
      sb.markRetransmitted(next.start, seqAdd(next.start, next.length));
      highRxt = seqAdd(next.start, next.length);
    }
    const sacked = (x: number) => sb.isSacked(x);
    for (let o = 0; o < span; o++) {
      const x = seqAdd(sndUna, o);
      if (sacked(x)) continue;
      if (sb.isLost(x) !== literalIsLost(sacked, x, highData, smss)) {
        t.fail(`IsLost(${x}) in round ${round}`);
        return;
      }
    }
    const want = literalPipe(sacked, sndUna, highData, highRxt, smss);
    if (sb.pipe(sndUna, highData) !== want) {
      t.fail(`pipe ${sb.pipe(sndUna, highData)} != ${want} in round ${round}`);
      return;
    }
  }
  t.pass();
});

// RACK (RFC 8985) marks on the scoreboard: what it deems lost leaves `pipe` and is offered first
// by NextSeg, below HighRxt too (a lost retransmission); a retransmission or a SACK clears it.

test('markLost: a range RACK deems lost is out of pipe and offered first by NextSeg, even below HighRxt', (t) => {
  const base = 0x7000_0000;
  const sb = new Scoreboard({ smss: SMSS, dupThresh: Infinity });
  const high = seqAdd(base, 10 * SMSS);
  sb.onAck(base, [{ start: seqAdd(base, SMSS), end: seqAdd(base, 2 * SMSS) }], base, high);
  t.is(sb.pipe(base, high), 9 * SMSS, 'nothing lost by DupThresh (turned off)');
  sb.markRetransmitted(base, seqAdd(base, SMSS));
  sb.markLost(base, seqAdd(base, SMSS));
  t.is(sb.pipe(base, high), 8 * SMSS, 'the lost retransmission is not in flight');
  const next = sb.nextSeg(base, high, seqAdd(base, SMSS), SMSS, { rule3: false });
  t.deepEqual(next && { start: next.start, length: next.length, rule: next.rule }, { start: base, length: SMSS, rule: 1 });
  sb.markRetransmitted(base, seqAdd(base, SMSS));
  t.is(sb.lostBytes, 0, 'retransmitted again: no longer awaiting retransmission');
});

test('markLost never covers what the peer SACKed', (t) => {
  const base = 1000;
  const sb = new Scoreboard({ smss: SMSS, dupThresh: Infinity });
  const high = base + 10 * SMSS;
  sb.onAck(base, [{ start: base + 2 * SMSS, end: base + 3 * SMSS }], base, high);
  sb.markLost(base, base + 4 * SMSS);
  t.deepEqual(sb.lostRanges(), [{ start: base, end: base + 2 * SMSS }, { start: base + 3 * SMSS, end: base + 4 * SMSS }]);
});
