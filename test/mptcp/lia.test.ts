// The Linked Increases Algorithm (RFC 6356): alpha (formula (2)) for the RFC's cases, the increase
// (formula (1)) against uncoupled Reno, one subflow being NewReno exactly, the aggregate of
// subflows on one bottleneck against one TCP, an ACK-clock simulation of a coupled pair and a Reno
// flow sharing a bottleneck, removing subflows, and the CUBIC variant.
import test from 'ava';
import { CounterSet } from '../../src/ip/counters.js';
import {
  createLiaController,
  LIA_FALLBACK_RTT_MS,
  LiaGroup,
  type LiaIncreaseMode,
} from '../../src/mptcp/lia.js';
import {
  CC_COUNTER_NAMES,
  type CongestionController,
  type CongestionCoupling,
  CUBIC_ALPHA,
  CUBIC_BETA,
  NewReno,
} from '../../src/tcp/cc/index.js';
import { RttEstimator } from '../../src/tcp/rtt.js';

const MSS = 1460;

/** An estimator that has seen one sample of `ms` (so srtt = ms). */
function rttOf(ms: number): RttEstimator {
  const rtt = new RttEstimator();
  rtt.onSample(0, ms);
  return rtt;
}

/** A controller whose window and state the test sets: for alpha, which only reads them. */
interface StubController extends CongestionController {
  cwnd: number;
  ssthresh: number;
  inRecovery: boolean;
}

function stub(cwnd: number, state: { ssthresh?: number; inRecovery?: boolean } = {}): StubController {
  return {
    name: 'stub',
    cwnd,
    ssthresh: state.ssthresh ?? Infinity,
    inRecovery: state.inRecovery ?? false,
    get inSlowStart() {
      return !this.inRecovery && this.cwnd < this.ssthresh;
    },
    mss: MSS,
    counters: new CounterSet(CC_COUNTER_NAMES),
    onPacketSent() {},
    onAck() {},
    onCongestionEvent() {},
    onRecoveryEnd() {},
    onRetransmissionTimeout() {},
    setMss() {},
    coupling: null,
  };
}

/** RFC 6356 formula (2) written out as the RFC prints it, windows and RTTs as given. */
function alphaFormula(cwnds: readonly number[], rtts: readonly number[]): number {
  const total = cwnds.reduce((a, c) => a + c, 0);
  const best = Math.max(...cwnds.map((c, i) => c / (rtts[i] * rtts[i])));
  const sum = cwnds.reduce((a, c, i) => a + c / rtts[i], 0);
  return (total * best) / (sum * sum);
}

function near(actual: number, expected: number, relative = 1e-12): boolean {
  return Math.abs(actual - expected) <= relative * Math.abs(expected);
}

/** A NewReno (or any RFC 5681 controller) put in congestion avoidance at a window of `bytes`. */
function renoInAvoidance(bytes: number, cc: CongestionController = new NewReno(MSS)): CongestionController {
  // ssthresh = FlightSize / 2 (RFC 5681 (4)), and the end of recovery deflates cwnd to it.
  cc.onCongestionEvent(0, 2 * bytes);
  cc.onRecoveryEnd(0);
  return cc;
}

/** The coupling a controller holds now (read through a call: the test assigned it earlier). */
function couplingOf(cc: CongestionController): CongestionCoupling | null | undefined {
  return cc.coupling;
}

/** Wraps a coupling to record what it returns. */
function recording(inner: CongestionCoupling, log: { subflowCwnd: number; ackedBytes: number; increase: number }[]): CongestionCoupling {
  return {
    increase(subflowCwnd, ackedBytes, mss) {
      const increase = inner.increase(subflowCwnd, ackedBytes, mss);
      log.push({ subflowCwnd, ackedBytes, increase });
      return increase;
    },
  };
}

/**
 * One RTT of a sender that keeps its window full: the window at the start comes back as ACKs of
 * `chunk` bytes; after each, what is in flight is the window less what the ACK acknowledged.
 */
function ackRound(cc: CongestionController, rtt: RttEstimator, now: number, chunk = MSS): void {
  let left = cc.cwnd;
  while (left > 0) {
    const bytes = Math.min(chunk, left);
    left -= bytes;
    cc.onAck(now, bytes, rtt, Math.max(0, cc.cwnd - bytes));
  }
}

// ---------------------------------------------------------------- alpha, formula (2)

test('formula (2): n subflows with equal RTTs and equal windows give alpha = 1/n', (t) => {
  for (let n = 1; n <= 4; n++) {
    const group = new LiaGroup();
    for (let i = 0; i < n; i++) group.add(stub(20 * MSS), rttOf(50));
    // cwnd_total * (c/r^2) / (n*c/r)^2 = n*c * c / (n^2 * c^2) = 1/n.
    t.is(group.alpha(), 1 / n, `n = ${n}`);
    t.is(group.cwndTotal(), n * 20 * MSS);
  }
  t.is(new LiaGroup().alpha(), 1, 'an empty group');
});

test('formula (2): equal RTTs give max(cwnd_i)/cwnd_total; different RTTs give the formula value, above 1 when the short path is small', (t) => {
  const equal = new LiaGroup();
  equal.add(stub(30 * MSS), rttOf(40));
  equal.add(stub(10 * MSS), rttOf(40));
  t.true(near(equal.alpha(), 30 / 40));
  t.true(near(equal.alpha(), alphaFormula([30 * MSS, 10 * MSS], [40, 40])));

  // 10 segments over 10 ms and 20 over 100 ms: cwnd_total = 30, max(cwnd_i/rtt_i^2) = 10/100,
  // SUM(cwnd_i/rtt_i) = 1 + 0.2, alpha = 30 * 0.1 / 1.44 = 2.083...
  const mixed = new LiaGroup();
  mixed.add(stub(10 * MSS), rttOf(10));
  mixed.add(stub(20 * MSS), rttOf(100));
  t.true(near(mixed.alpha(), (30 * 0.1) / 1.44));
  t.true(mixed.alpha() > 1);
  for (const [cwnds, rtts] of [
    [[7, 13, 40], [12, 80, 300]],
    [[50, 2], [5, 250]],
    [[3, 3, 3, 90], [20, 20, 20, 400]],
  ] as const) {
    const group = new LiaGroup();
    cwnds.forEach((c, i) => group.add(stub(c * MSS), rttOf(rtts[i])));
    t.true(near(group.alpha(), alphaFormula(cwnds.map((c) => c * MSS), rtts)), `${cwnds} over ${rtts}`);
  }
});

test('RFC 6356 §4: alpha ignores the MSS and the units (bytes or packets, ms or s): it only depends on ratios', (t) => {
  const cwndsSegments = [12, 31];
  const rttsMs = [15, 95];
  const inBytes = new LiaGroup();
  const inSegmentsAndSeconds = new LiaGroup();
  cwndsSegments.forEach((c, i) => {
    inBytes.add(stub(c * MSS), rttOf(rttsMs[i]));
    inSegmentsAndSeconds.add(stub(c), rttOf(rttsMs[i] / 1000));
  });
  t.true(near(inBytes.alpha(), inSegmentsAndSeconds.alpha()));
  t.true(near(inBytes.alpha(), alphaFormula(cwndsSegments, rttsMs)));
});

test('RFC 6356 §4: a subflow in fast retransmit counts with its ssthresh, not its inflated cwnd', (t) => {
  const group = new LiaGroup();
  group.add(stub(20 * MSS), rttOf(30));
  const recovering = stub(60 * MSS, { ssthresh: 15 * MSS, inRecovery: true });
  group.add(recovering, rttOf(60));
  t.is(group.cwndTotal(), 35 * MSS);
  t.true(near(group.alpha(), alphaFormula([20 * MSS, 15 * MSS], [30, 60])));
  recovering.inRecovery = false;
  t.is(group.cwndTotal(), 80 * MSS);
  t.true(near(group.alpha(), alphaFormula([20 * MSS, 60 * MSS], [30, 60])));
});

test('a subflow without an RTT sample takes the mean SRTT of the others; with no sample anywhere alpha depends on the windows only', (t) => {
  const group = new LiaGroup();
  const coupling = group.add(stub(10 * MSS), rttOf(20));
  group.add(stub(10 * MSS), rttOf(60));
  group.add(stub(25 * MSS), new RttEstimator());
  t.true(near(group.alpha(), alphaFormula([10 * MSS, 10 * MSS, 25 * MSS], [20, 60, 40])));
  coupling.increase(10 * MSS, MSS, MSS);
  t.is(group.counters.get('rttFallbacks'), 1);

  const unknown = new LiaGroup();
  unknown.add(stub(10 * MSS), new RttEstimator());
  unknown.add(stub(30 * MSS), new RttEstimator());
  // All RTTs equal (LIA_FALLBACK_RTT_MS): alpha = max(cwnd_i)/cwnd_total, whatever that RTT is.
  t.true(near(unknown.alpha(), 30 / 40));
  t.true(near(unknown.alpha(), alphaFormula([10, 30], [LIA_FALLBACK_RTT_MS, LIA_FALLBACK_RTT_MS])));
});

// ---------------------------------------------------------------- the increase, formula (1)

test('one subflow: alpha = 1 and the coupled NewReno is NewReno exactly, through slow start, avoidance, a loss with PRR, and a timeout', (t) => {
  const group = new LiaGroup();
  const rtt = rttOf(40);
  const lia = createLiaController(group, rtt, MSS);
  const reno = new NewReno(MSS);
  t.is(lia.name, 'newreno');
  t.true(group.has(lia));
  t.not(lia.coupling, null);
  let steps = 0;
  const same = (where: string): void => {
    steps += 1;
    if (lia.cwnd !== reno.cwnd || lia.ssthresh !== reno.ssthresh) t.fail(`${where}: lia ${lia.cwnd}/${lia.ssthresh}, newreno ${reno.cwnd}/${reno.ssthresh}`);
  };
  const both = (f: (cc: CongestionController) => void, where: string): void => {
    f(lia);
    f(reno);
    same(where);
  };
  let now = 0;
  const round = (chunk: number, where: string): void => {
    let left = lia.cwnd;
    while (left > 0) {
      const bytes = Math.min(chunk, left);
      left -= bytes;
      const inFlight = Math.max(0, lia.cwnd - bytes);
      both((cc) => cc.onAck(now, bytes, rtt, inFlight), where);
    }
    now += 40;
  };
  while (lia.cwnd < 60 * MSS) round(MSS, 'slow start');
  t.is(group.alpha(), 1);
  // A loss: the reduction, PRR through recovery, the deflation at its end.
  const flight = lia.cwnd;
  both((cc) => cc.onCongestionEvent(now, flight), 'loss');
  for (let pipe = flight - MSS; pipe > flight / 2; pipe -= MSS) both((cc) => cc.onRecoveryAck?.(now, MSS, pipe), 'recovery');
  both((cc) => cc.onRecoveryEnd(now, flight / 2), 'recovery end');
  now += 40;
  // Congestion avoidance with ACKs of every size: one segment, two, stretch ACKs, odd bytes.
  for (const chunk of [MSS, 2 * MSS, 5 * MSS, 700, MSS, 3 * MSS + 11]) for (let r = 0; r < 8; r++) round(chunk, `avoidance, ACKs of ${chunk}`);
  // A timeout: loss window, slow start back to ssthresh, avoidance again.
  const flightAtTimeout = lia.cwnd;
  both((cc) => cc.onRetransmissionTimeout(now, flightAtTimeout), 'timeout');
  for (let r = 0; r < 40; r++) round(MSS, 'after the timeout');
  t.true(steps > 1000);
  t.is(lia.cwnd, reno.cwnd);
  t.true(group.counters.get('windowSteps') > 30);
  t.is(group.counters.get('coupledIncreases'), lia.counters.get('coupledIncreases'));
  t.is(group.counters.get('renoCappedIncreases'), group.counters.get('coupledIncreases'), 'alone, the second argument of min() decides');
});

test("one subflow, 'perAck': every increase is RFC 5681's bytes_acked * SMSS / cwnd", (t) => {
  const group = new LiaGroup({ mode: 'perAck' });
  const rtt = rttOf(25);
  const cc = renoInAvoidance(30 * MSS);
  const log: { subflowCwnd: number; ackedBytes: number; increase: number }[] = [];
  cc.coupling = recording(group.add(cc, rtt), log);
  for (let r = 0; r < 5; r++) ackRound(cc, rtt, r * 25, r % 2 === 0 ? MSS : 2 * MSS);
  t.true(log.length > 100);
  for (const { subflowCwnd, ackedBytes, increase } of log) {
    if (increase !== (ackedBytes * MSS) / subflowCwnd) t.fail(`${increase} for ${ackedBytes} at ${subflowCwnd}`);
  }
  // Per-ACK increments add up to about one MSS per RTT: 5 rounds, a little less as cwnd grows.
  t.true(cc.cwnd >= 30 * MSS + 4 * MSS && cc.cwnd <= 35 * MSS);
});

test('equal RTTs, frozen windows: one RTT of ACKs on every subflow grows the aggregate by alpha * MSS = MSS * max(cwnd_i)/cwnd_total, never more than one TCP', (t) => {
  for (const windows of [[20, 20], [30, 10], [10, 10, 10], [5, 40, 15]]) {
    const group = new LiaGroup({ mode: 'perAck' });
    const couplings = windows.map((w) => group.add(stub(w * MSS), rttOf(50)));
    let aggregate = 0;
    windows.forEach((w, i) => {
      // The window of subflow i comes back as ACKs of one segment.
      for (let k = 0; k < w; k++) aggregate += couplings[i].increase(w * MSS, MSS, MSS);
    });
    const total = windows.reduce((a, w) => a + w, 0);
    const expected = (MSS * Math.max(...windows)) / total;
    t.true(near(aggregate, expected, 1e-9), `${windows}: ${aggregate} vs ${expected}`);
    t.true(aggregate <= MSS);
  }
});

for (const mode of ['byteCounting', 'perAck'] as const satisfies readonly LiaIncreaseMode[]) {
  test(`${mode}: two subflows with equal RTTs and windows grow together by half an MSS per RTT, one NewReno at their total window by one`, (t) => {
    const rounds = 40;
    const group = new LiaGroup({ mode });
    const rtt = rttOf(50);
    const a = renoInAvoidance(20 * MSS);
    const b = renoInAvoidance(20 * MSS);
    a.coupling = group.add(a, rtt);
    b.coupling = group.add(b, rtt);
    const single = renoInAvoidance(40 * MSS);
    for (let r = 0; r < rounds; r++) {
      ackRound(a, rtt, r * 50);
      ackRound(b, rtt, r * 50);
      ackRound(single, rtt, r * 50);
    }
    const coupledGain = (a.cwnd + b.cwnd - 40 * MSS) / MSS;
    const renoGain = (single.cwnd - 40 * MSS) / MSS;
    // alpha = 1/2 while the windows stay about equal, so the pair gains alpha * MSS per RTT; byte
    // counting leaves less than one step of credit per subflow, flooring cwnd less than a byte each.
    t.true(coupledGain <= rounds / 2, `coupled +${coupledGain} MSS`);
    t.true(coupledGain >= rounds / 2 - 2, `coupled +${coupledGain} MSS`);
    t.true(renoGain >= rounds - 1 && renoGain <= rounds, `newreno +${renoGain} MSS`);
    t.true(Math.abs(a.cwnd - b.cwnd) <= MSS);
  });
}

test('different RTTs: no subflow ever grows faster than uncoupled Reno on its path (formula (1), goal 2), in either mode', (t) => {
  for (const [mine, myRtt, other, otherRtt] of [
    [20, 100, 10, 10], // the long path of the alpha > 1 example: capped at Reno
    [10, 10, 20, 100], // the short path of it: the coupled term
    [30, 40, 30, 40],
    [8, 300, 60, 20],
    [60, 20, 8, 300],
  ]) {
    const label = `${mine} segments over ${myRtt} ms, beside ${other} over ${otherRtt} ms`;
    const rtt = rttOf(myRtt);
    // 'perAck': each increase at most bytes_acked * MSS / cwnd_i.
    const perAck = new LiaGroup({ mode: 'perAck' });
    const cc = renoInAvoidance(mine * MSS);
    const log: { subflowCwnd: number; ackedBytes: number; increase: number }[] = [];
    cc.coupling = recording(perAck.add(cc, rtt), log);
    perAck.add(stub(other * MSS), rttOf(otherRtt));
    for (let r = 0; r < 10; r++) ackRound(cc, rtt, r * myRtt);
    t.true(log.length > 0);
    for (const { subflowCwnd, ackedBytes, increase } of log) {
      if (!(increase > 0 && increase <= (ackedBytes * MSS) / subflowCwnd)) t.fail(`${label}: ${increase}`);
    }
    // Byte counting: at least cwnd_i bytes acknowledged for every MSS of increase.
    const counting = new LiaGroup();
    const cc2 = renoInAvoidance(mine * MSS);
    cc2.coupling = counting.add(cc2, rtt);
    counting.add(stub(other * MSS), rttOf(otherRtt));
    let since = 0;
    let steps = 0;
    for (let k = 0; k < 4000; k++) {
      const before = cc2.cwnd;
      cc2.onAck(k, MSS, rtt, before - MSS);
      since += MSS;
      if (cc2.cwnd > before) {
        steps += 1;
        if (since < before) t.fail(`${label}: +1 MSS after ${since} bytes at cwnd ${before}`);
        since = 0;
      }
    }
    t.true(steps > 0, label);
  }
  // In the alpha > 1 example the long path is held at Reno's increase by the cap.
  const group = new LiaGroup();
  const long = group.add(stub(20 * MSS), rttOf(100));
  group.add(stub(10 * MSS), rttOf(10));
  long.increase(20 * MSS, MSS, MSS);
  t.is(group.counters.get('renoCappedIncreases'), 1);
});

// ---------------------------------------------------------------- a shared bottleneck

/** A seeded PRNG (mulberry32): the simulation is deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * A RED-like bottleneck: every packet through it is dropped with the same probability, rising
 * linearly with the packets sent in the round from RED_MIN_PACKETS to RED_MAX_PACKETS. The same
 * per-packet loss rate for every flow through the bottleneck is the model under RFC 6356's
 * derivation of alpha.
 */
const RED_MIN_PACKETS = 40;
const RED_MAX_PACKETS = 160;
const RED_MAX_P = 0.1;
const SIM_RTT_MS = 50;

function dropProbability(packets: number): number {
  const x = (packets - RED_MIN_PACKETS) / (RED_MAX_PACKETS - RED_MIN_PACKETS);
  return RED_MAX_P * Math.min(Math.max(x, 0), 1);
}

interface SimFlow {
  cc: CongestionController;
  rtt: RttEstimator;
  delivered: number;
}

/**
 * One RTT per round, every flow on the same RTT: each sends its window, packets are lost
 * independently with the bottleneck's probability, the ACKs before the first loss grow the window,
 * the loss (detected by the ACKs after it) reduces it once (NewReno: one reduction per window), and
 * recovery ends with the round. Only packets delivered in the second half count (the first is
 * warm-up). Returns each flow's delivered packets.
 */
function runBottleneck(flows: SimFlow[], rounds: number, seed: number): number[] {
  const random = prng(seed);
  for (let round = 0; round < rounds; round++) {
    const now = round * SIM_RTT_MS;
    const windows = flows.map((f) => Math.floor(f.cc.cwnd / MSS));
    const p = dropProbability(windows.reduce((a, w) => a + w, 0));
    flows.forEach((flow, i) => {
      const n = windows[i];
      let firstLoss = -1;
      let lost = 0;
      for (let k = 0; k < n; k++) {
        if (random() < p) {
          lost += 1;
          if (firstLoss < 0) firstLoss = k;
        }
      }
      const clean = firstLoss < 0 ? n : firstLoss;
      for (let k = 0; k < clean; k++) flow.cc.onAck(now, MSS, flow.rtt, Math.max(0, flow.cc.cwnd - MSS));
      if (firstLoss >= 0) {
        flow.cc.onCongestionEvent(now, n * MSS);
        flow.cc.onRecoveryEnd(now + SIM_RTT_MS);
      }
      if (round >= rounds / 2) flow.delivered += n - lost;
    });
  }
  return flows.map((f) => f.delivered);
}

test('ACK clock through one bottleneck: a coupled pair beside a Reno flow takes about one flow\'s share, an uncoupled pair about two', (t) => {
  const rounds = 20_000;
  const newFlow = (cc: CongestionController, rtt: RttEstimator): SimFlow => ({ cc, rtt, delivered: 0 });

  const group = new LiaGroup();
  const rttA = rttOf(SIM_RTT_MS);
  const rttB = rttOf(SIM_RTT_MS);
  const coupled = [newFlow(createLiaController(group, rttA, MSS), rttA), newFlow(createLiaController(group, rttB, MSS), rttB)];
  const reno1 = newFlow(new NewReno(MSS), rttOf(SIM_RTT_MS));
  const [ca, cb, r1] = runBottleneck([...coupled, reno1], rounds, 6356);
  const coupledShare = (ca + cb) / (ca + cb + r1);

  const uncoupled = [newFlow(new NewReno(MSS), rttOf(SIM_RTT_MS)), newFlow(new NewReno(MSS), rttOf(SIM_RTT_MS))];
  const reno2 = newFlow(new NewReno(MSS), rttOf(SIM_RTT_MS));
  const [ua, ub, r2] = runBottleneck([...uncoupled, reno2], rounds, 6356);
  const uncoupledShare = (ua + ub) / (ua + ub + r2);

  // Goal: the coupled pair takes what one TCP would (1/2 of the bottleneck beside one Reno flow);
  // two independent TCPs take 2/3. The bounds: closer to 1/2 than to 2/3, and the other way round.
  const oneFlow = 1 / 2;
  const twoFlows = 2 / 3;
  const midpoint = (oneFlow + twoFlows) / 2;
  t.log(`coupled pair ${coupledShare.toFixed(3)}, uncoupled pair ${uncoupledShare.toFixed(3)}`);
  t.true(coupledShare < midpoint, `coupled pair share ${coupledShare}`);
  t.true(coupledShare > oneFlow - (midpoint - oneFlow), `coupled pair share ${coupledShare}`);
  t.true(uncoupledShare > midpoint, `uncoupled pair share ${uncoupledShare}`);
  // Both subflows carried traffic (equal paths: about equally), and the group decided increases.
  t.true(Math.min(ca, cb) > Math.max(ca, cb) / 2);
  t.true(group.counters.get('coupledIncreases') > 0);
});

// ---------------------------------------------------------------- membership

test('removing a subflow: the rest of the group computes without it, the removed controller is uncoupled, a kept coupling answers as a lone TCP', (t) => {
  const group = new LiaGroup();
  const a = stub(20 * MSS);
  const b = stub(20 * MSS);
  const c = stub(40 * MSS);
  a.coupling = group.add(a, rttOf(30));
  b.coupling = group.add(b, rttOf(30));
  const kept = group.add(c, rttOf(30));
  c.coupling = kept;
  t.is(group.add(c, rttOf(99)), kept, 'adding twice returns the same coupling');
  t.is(group.size, 3);
  t.is(group.alpha(), 40 / 80);

  t.true(group.remove(c));
  t.false(group.remove(c));
  t.false(group.has(c));
  t.is(couplingOf(c), null);
  t.is(group.size, 2);
  t.is(group.alpha(), 1 / 2);
  t.is(group.cwndTotal(), 40 * MSS);
  // The coupling of a removed subflow, if something still calls it: alpha = 1, Reno's increase.
  const perAck = new LiaGroup({ mode: 'perAck' });
  const d = stub(10 * MSS);
  const dc = perAck.add(d, rttOf(30));
  perAck.add(stub(10 * MSS), rttOf(30));
  perAck.remove(d);
  t.is(dc.increase(10 * MSS, MSS, MSS), MSS / 10);
  t.is(perAck.counters.get('staleCouplingCalls'), 1);

  t.true(group.remove(b));
  t.is(group.alpha(), 1, 'one subflow left: alpha = 1');
  t.like(group.counters.snapshot(), { subflowsAdded: 3, subflowsRemoved: 2 });

  // A real subflow removed goes back to its own NewReno congestion avoidance.
  const g = new LiaGroup();
  const rtt = rttOf(40);
  const x = createLiaController(g, rtt, MSS);
  createLiaController(g, rttOf(40), MSS);
  renoInAvoidance(20 * MSS, x);
  g.remove(x);
  t.is(couplingOf(x), null);
  const twin = renoInAvoidance(20 * MSS);
  for (let r = 0; r < 10; r++) {
    ackRound(x, rtt, r * 40);
    ackRound(twin, rtt, r * 40);
  }
  t.is(x.cwnd, twin.cwnd);
  t.is(x.counters.get('coupledIncreases'), 0);
});

// ---------------------------------------------------------------- CUBIC as the base

test('CUBIC + coupling: alone it grows alpha_cubic MSS per RTT (RFC 9438 §4.3 Reno-friendly AIMD) and keeps beta_cubic on loss', (t) => {
  const group = new LiaGroup();
  const rtt = rttOf(40);
  const cc = createLiaController(group, rtt, MSS, { base: 'cubic' });
  t.is(cc.name, 'cubic');
  // Into congestion avoidance at 30 segments: ssthresh = FlightSize * beta_cubic.
  cc.onCongestionEvent(0, (30 * MSS) / CUBIC_BETA);
  cc.onRecoveryEnd(0);
  const start = cc.cwnd;
  t.true(Math.abs(start - 30 * MSS) <= 1);
  const rounds = 40;
  for (let r = 0; r < rounds; r++) ackRound(cc, rtt, 1000 + r * 40);
  const gain = (cc.cwnd - start) / MSS;
  // One MSS per cwnd/alpha_cubic bytes: alpha_cubic MSS per RTT, less than one step of credit left.
  t.true(gain <= Math.ceil(CUBIC_ALPHA * rounds) && gain >= Math.floor(CUBIC_ALPHA * rounds) - 1, `+${gain} MSS`);
  t.is(cc.counters.get('coupledIncreases'), group.counters.get('coupledIncreases'));
  const flight = cc.cwnd;
  cc.onCongestionEvent(2000, flight);
  t.true(Math.abs(cc.ssthresh - flight * CUBIC_BETA) <= 1);

  // An explicit scale overrides the default; the RFC's NewReno base has none.
  const plain = new LiaGroup({ mode: 'perAck' });
  const cubic1 = createLiaController(plain, rttOf(40), MSS, { base: 'cubic', increaseScale: 1 });
  const reno = createLiaController(plain, rttOf(40), MSS);
  t.is(cubic1.coupling?.increase(10 * MSS, MSS, MSS), reno.coupling?.increase(10 * MSS, MSS, MSS));
});
