// The schedulers' decisions (src/mptcp/scheduler.ts): a fast and a slow subflow in given states,
// and which one is picked, or none (the scheduler waits for the fast one).
import test from 'ava';
import {
  blest, createScheduler, ecf, kernel, lowestRtt, redundant, roundRobin, schedulerNames, SCHEDULER_NAMES, UnknownSchedulerError,
  BLEST_LAMBDA_INIT, KERNEL_SEND_BURST, type SchedulerContext, type SchedulerSubflow,
} from '../../src/mptcp/scheduler.js';

const MSS = 1400;

function sf(id: number, o: Partial<SchedulerSubflow> & { rtt: number; cwndSegs: number; unackSegs?: number }): SchedulerSubflow {
  const cwnd = o.cwndSegs * MSS;
  const unacknowledged = (o.unackSegs ?? 0) * MSS;
  return {
    id, backup: false, rttvar: o.rtt / 8, mss: MSS, cwnd, unacknowledged, inFlight: unacknowledged, queued: 0,
    pacingRate: (1.2 * cwnd) / o.rtt, ...o,
  };
}

function ctx(subflows: SchedulerSubflow[], o: Partial<SchedulerContext<SchedulerSubflow>> = {}): SchedulerContext<SchedulerSubflow> {
  return { subflows, backlog: 0, sendWindow: 4 << 20, sendWindowFree: 2 << 20, unsent: 1 << 20, now: 0, ...o };
}

// WiFi-like: 10 ms; LTE-like: 50 ms
const fastFull = sf(0, { rtt: 10, cwndSegs: 40, unackSegs: 40 });
const fastRoom = sf(0, { rtt: 10, cwndSegs: 40, unackSegs: 10 });
const slowRoom = sf(1, { rtt: 50, cwndSegs: 40, unackSegs: 0 });
const slowFull = sf(1, { rtt: 50, cwndSegs: 40, unackSegs: 40 });

test('the registry names every scheduler, unknown names are refused with the known ones', (t) => {
  t.deepEqual(schedulerNames(), [...SCHEDULER_NAMES]);
  for (const n of SCHEDULER_NAMES) t.is(createScheduler(n).name, n);
  const e = t.throws(() => createScheduler('minrtt'), { instanceOf: UnknownSchedulerError });
  t.regex(e!.message, /known are lowest-rtt, round-robin, blest, ecf, redundant, kernel/);
});

test('every scheduler but the kernel\'s (it looks at drain time): the fast subflow when it has room; none when no subflow has room', (t) => {
  for (const n of SCHEDULER_NAMES.filter((x) => x !== 'round-robin' && x !== 'kernel')) {
    t.is(createScheduler(n).pick(ctx([fastRoom, slowRoom]), { reinject: false })?.id, 0, n);
    t.is(createScheduler(n).pick(ctx([fastFull, slowFull]), { reinject: false }), null, n);
  }
  t.is(kernel().pick(ctx([fastFull, slowFull]), { reinject: false }), null);
});

test('backup subflows only when no regular one is usable', (t) => {
  const backupFast = { ...fastRoom, backup: true };
  t.is(lowestRtt.pick(ctx([backupFast, slowRoom]), { reinject: false })?.id, 1);
  t.is(lowestRtt.pick(ctx([backupFast]), { reinject: false })?.id, 0);
});

test('lowest-rtt: the fast subflow full, the slow one with room is taken', (t) => {
  t.is(lowestRtt.pick(ctx([fastFull, slowRoom]), { reinject: false })?.id, 1);
});

test('round-robin: alternates between subflows with room', (t) => {
  const rr = roundRobin();
  const picks = [0, 1, 2, 3].map(() => rr.pick(ctx([fastRoom, slowRoom]), { reinject: false })?.id);
  t.deepEqual(picks, [0, 1, 0, 1]);
});

test('blest: a large window: the slow subflow does not block the fast one, it is used', (t) => {
  // X = MSS·(40 + (5−1)/2)·5 = 210 MSS ≈ 294 kB; ×1.2 < 4 MiB − 1 MSS
  t.is(blest().pick(ctx([fastFull, slowRoom]), { reinject: false })?.id, 1);
});

test('blest: a small window: a segment on the slow subflow would block the fast one: wait', (t) => {
  const b = blest();
  // X·λ ≈ 353 kB > 256 kB − (0 + 1)·MSS
  t.is(b.pick(ctx([fastFull, slowRoom], { sendWindow: 256 << 10 }), { reinject: false }), null);
  t.is(b.waits, 1);
  // the slow subflow already holds 100 segments: its next one blocks even in a 400 kB window
  const slowBusy = sf(1, { rtt: 50, cwndSegs: 200, unackSegs: 100 });
  t.is(blest().pick(ctx([fastFull, slowBusy], { sendWindow: 400_000 }), { reinject: false }), null);
  t.is(blest().pick(ctx([fastFull, slowRoom], { sendWindow: 400_000 }), { reinject: false })?.id, 1);
});

test('blest: a reinjection never waits', (t) => {
  t.is(blest().pick(ctx([fastFull, slowRoom], { sendWindow: 64 << 10 }), { reinject: true })?.id, 1);
});

test('blest: λ grows when the window blocks (full, data unsent) and shrinks an RTT later without it', (t) => {
  const b = blest();
  t.is(b.lambda, BLEST_LAMBDA_INIT);
  b.pick(ctx([fastFull, slowRoom], { sendWindowFree: 0, now: 100 }), { reinject: false });
  t.true(b.lambda > BLEST_LAMBDA_INIT);
  const up = b.lambda;
  b.pick(ctx([fastFull, slowRoom], { sendWindowFree: 1 << 20, now: 200 }), { reinject: false });
  t.true(b.lambda < up);
  for (let i = 0; i < 100; i++) b.pick(ctx([fastFull, slowRoom], { sendWindowFree: 0, now: 300 + i * 20 }), { reinject: false });
  t.true(b.lambda <= 1.3 + 1e-9, 'λ is capped');
});

test('ecf: little data left: the fast subflow finishes it sooner than the slow one would: wait', (t) => {
  // k = 40 segments, n = 1 + 40/40 = 2: 20 ms < 50 + δ; (40/40)·50 = 50 ms ≥ 2·10 + δ: wait
  const e = ecf();
  t.is(e.pick(ctx([fastFull, slowRoom], { unsent: 40 * MSS }), { reinject: false }), null);
  t.is(e.waits, 1);
});

test('ecf: much data waiting: the slow subflow helps', (t) => {
  // k = 1000 segments: n = 26, 260 ms ≥ 50 + δ: use the slow one
  t.is(ecf().pick(ctx([fastFull, slowRoom], { unsent: 1000 * MSS }), { reinject: false })?.id, 1);
});

test('ecf: a slow subflow barely slower: k/cwnd_s·RTT_s < 2·RTT_f + δ: use it', (t) => {
  const near = sf(1, { rtt: 12, cwndSegs: 40 });
  t.is(ecf().pick(ctx([fastFull, near], { unsent: 4 * MSS }), { reinject: false })?.id, 1);
});

test('ecf: hysteresis: once waiting, the threshold is (1 + β)·(RTT_s + δ)', (t) => {
  const e = ecf();
  const slow = sf(1, { rtt: 50, cwndSegs: 2 });
  // k = 160 segments: n = 5, 50 ms: not < 50 + 6.25 ... wait is 5·10 = 50 < 56.25: wait ((160/2)·50 ≥ 26.25)
  t.is(e.pick(ctx([fastFull, slow], { unsent: 160 * MSS }), { reinject: false }), null);
  // k = 240: n = 7, 70 ms: above 56.25 but below 1.25·56.25 = 70.3 while waiting: still wait
  t.is(e.pick(ctx([fastFull, slow], { unsent: 240 * MSS }), { reinject: false }), null);
  t.is(ecf().pick(ctx([fastFull, slow], { unsent: 240 * MSS }), { reinject: false })?.id, 1, 'a fresh ECF sends on the slow one');
});

test('redundant: new data when the lowest-RTT subflow has room (copies asked for), else wait; a reinjection anywhere', (t) => {
  t.true(redundant.redundant);
  t.is(redundant.pick(ctx([slowRoom, fastRoom]), { reinject: false })?.id, 0);
  t.is(redundant.pick(ctx([fastFull, slowRoom]), { reinject: false }), null);
  t.is(redundant.pick(ctx([fastFull, slowRoom]), { reinject: true })?.id, 1);
});

test('kernel: the subflow whose queue drains soonest (bytes held / pacing rate), then a burst on it', (t) => {
  const k = kernel();
  // fast: 10 segments held at 40·1400·1.2/10 B/ms: 2.1 ms; slow empty: 0 ms → slow
  t.is(k.pick(ctx([fastRoom, slowRoom]), { reinject: false })?.id, 1);
  // within the burst the slow one is kept, even if the fast one now drains sooner
  k.sent!(slowRoom, 30_000);
  const slowHeld = sf(1, { rtt: 50, cwndSegs: 40, unackSegs: 20 });
  t.is(k.pick(ctx([sf(0, { rtt: 10, cwndSegs: 40 }), slowHeld]), { reinject: false })?.id, 1);
  // after the burst (64 KiB less headers), the choice again: the fast one is empty
  k.sent!(slowHeld, 40_000);
  t.is(k.pick(ctx([sf(0, { rtt: 10, cwndSegs: 40 }), slowHeld]), { reinject: false })?.id, 0);
});

test('kernel: the burst is no more than the free connection-level window', (t) => {
  const k = kernel();
  t.is(k.pick(ctx([fastRoom, slowRoom], { sendWindowFree: 1000 }), { reinject: false })?.id, 1);
  k.sent!(slowRoom, 1000);
  // burst spent: choose again: both measured, fast holds 10 segments (2.1 ms), slow holds 1 (0.2 ms)
  t.is(k.pick(ctx([fastRoom, sf(1, { rtt: 50, cwndSegs: 40, unackSegs: 1 })]), { reinject: false })?.id, 1);
  k.sent!(slowRoom, KERNEL_SEND_BURST);
  t.is(k.pick(ctx([fastRoom, sf(1, { rtt: 50, cwndSegs: 40, unackSegs: 30 })]), { reinject: false })?.id, 0);
});
