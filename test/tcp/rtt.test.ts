// RFC 6298 retransmission timer arithmetic, backoff, bounds; the windowed minimum RTT; RFC 7323
// timestamp samples.
import test from 'ava';
import {
  DEFAULT_MAX_RTO_MS,
  DEFAULT_MIN_RTO_MS,
  expectedSamples,
  INITIAL_RTO_MS,
  RttEstimator,
  SYN_FALLBACK_RTO_MS,
  timestampRtt,
} from '../../src/tcp/rtt.js';

const near = (a: number | null, b: number, eps = 1e-9): boolean => a !== null && Math.abs(a - b) <= eps;

test('RFC 6298 §2.1: before any sample the RTO is 1 s and SRTT/RTTVAR are undefined', (t) => {
  const rtt = new RttEstimator();
  t.is(INITIAL_RTO_MS, 1000);
  t.is(rtt.rto, 1000);
  t.is(rtt.srtt, null);
  t.is(rtt.rttvar, null);
  t.is(rtt.latest, null);
  t.is(rtt.minRtt, null);
  t.is(rtt.sampleCount, 0);
});

test('RFC 6298 §2.2: the first sample R sets SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR)', (t) => {
  const rtt = new RttEstimator();
  t.true(rtt.onSample(0, 100));
  t.is(rtt.srtt, 100);
  t.is(rtt.rttvar, 50);
  t.is(rtt.rto, 300); // 100 + 4 * 50
  t.is(rtt.latest, 100);
  t.is(rtt.minRtt, 100);
});

test('RFC 6298 §2.3: a known sample sequence, RTTVAR updated with the SRTT from before the sample', (t) => {
  const rtt = new RttEstimator();
  rtt.onSample(0, 100);
  rtt.onSample(100, 120);
  // RTTVAR = 3/4 * 50 + 1/4 * |100 - 120| = 42.5; SRTT = 7/8 * 100 + 1/8 * 120 = 102.5
  t.true(near(rtt.rttvar, 42.5));
  t.true(near(rtt.srtt, 102.5));
  t.true(near(rtt.rto, 102.5 + 4 * 42.5));
  rtt.onSample(200, 80);
  // RTTVAR = 3/4 * 42.5 + 1/4 * |102.5 - 80| = 37.5 (with the new SRTT it would be 35.078125)
  t.true(near(rtt.rttvar, 37.5));
  t.true(near(rtt.srtt, 99.6875));
  t.true(near(rtt.rto, 99.6875 + 150));
  t.is(rtt.latest, 80);
  t.is(rtt.minRtt, 80);
  t.is(rtt.sampleCount, 3);
  t.is(rtt.counters.get('rttSamples'), 3);
});

test('RFC 6298 §2.3: a steady RTT converges SRTT to it and RTTVAR towards 0; G then bounds the variance term', (t) => {
  const rtt = new RttEstimator({ minRto: 1, granularity: 10 });
  for (let i = 0; i < 200; i++) rtt.onSample(i * 50, 50);
  t.true(near(rtt.srtt, 50, 1e-6));
  t.true((rtt.rttvar ?? 1) < 1e-6);
  t.true(near(rtt.rto, 60, 1e-5)); // SRTT + max(G, 4*RTTVAR) = 50 + 10
});

test('the minimum RTO is 200 ms by default (Linux TCP_RTO_MIN) and configurable (RFC 6298 §2.4 says 1 s)', (t) => {
  t.is(DEFAULT_MIN_RTO_MS, 200);
  const linux = new RttEstimator();
  linux.onSample(0, 10); // 10 + 4 * 5 = 30 ms
  t.is(linux.baseRto, 200);
  t.is(linux.rto, 200);
  const rfc = new RttEstimator({ minRto: 1000 });
  rfc.onSample(0, 10);
  t.is(rfc.rto, 1000);
  const high = new RttEstimator();
  high.onSample(0, 400); // 400 + 800 is above any floor
  t.is(high.rto, 1200);
});

test('RFC 6298 §5.5: backoff() doubles the RTO, capped at the maximum (120 s, Linux TCP_RTO_MAX)', (t) => {
  const rtt = new RttEstimator();
  t.is(DEFAULT_MAX_RTO_MS, 120_000);
  const seen: number[] = [];
  for (let i = 0; i < 9; i++) seen.push(rtt.backoff());
  t.deepEqual(seen, [2000, 4000, 8000, 16000, 32000, 64000, 120000, 120000, 120000]);
  t.is(rtt.rto, 120_000);
  t.is(rtt.counters.get('rtoBackoffs'), 9);
  t.is(rtt.counters.get('rtoBackoffsCapped'), 3);
  // the cap is configurable
  const short = new RttEstimator({ maxRto: 60_000 });
  for (let i = 0; i < 10; i++) short.backoff();
  t.is(short.rto, 60_000);
});

test('RFC 6298 §5: a new valid sample collapses the backed-off RTO', (t) => {
  const rtt = new RttEstimator();
  rtt.onSample(0, 100);
  rtt.backoff();
  rtt.backoff();
  t.is(rtt.backoffs, 2);
  t.is(rtt.rto, 1200);
  rtt.onSample(1000, 100);
  t.is(rtt.backoffs, 0);
  t.true(near(rtt.rto, rtt.baseRto));
  t.true(rtt.rto < 400);
});

test('RFC 6298 §2.5: a huge sample is capped at the maximum RTO', (t) => {
  const rtt = new RttEstimator();
  rtt.onSample(0, 200_000);
  t.is(rtt.rto, DEFAULT_MAX_RTO_MS);
});

test('invalid samples are counted and dropped, the estimate is untouched', (t) => {
  const rtt = new RttEstimator();
  rtt.onSample(0, 100);
  t.false(rtt.onSample(1, -1));
  t.false(rtt.onSample(2, Number.NaN));
  t.false(rtt.onSample(3, Infinity));
  t.is(rtt.srtt, 100);
  t.is(rtt.sampleCount, 1);
  t.is(rtt.counters.get('rttInvalidSamples'), 3);
});

test('RFC 6298 §5.7: after a SYN timeout the RTO is at least 3 s until a sample arrives', (t) => {
  const rtt = new RttEstimator();
  rtt.onSynTimeout();
  t.is(rtt.rto, SYN_FALLBACK_RTO_MS);
  rtt.onSample(0, 100);
  t.is(rtt.rto, 300);
});

test('the constructor rejects inconsistent bounds', (t) => {
  t.throws(() => new RttEstimator({ minRto: 0 }), { instanceOf: RangeError });
  t.throws(() => new RttEstimator({ minRto: 500, maxRto: 100 }), { instanceOf: RangeError });
  t.throws(() => new RttEstimator({ minRttWindow: 0 }), { instanceOf: RangeError });
});

test('minRtt is the minimum over the window and forgets samples older than it', (t) => {
  const rtt = new RttEstimator({ minRttWindow: 10_000 });
  rtt.onSample(0, 50);
  for (let now = 1000; now <= 9000; now += 1000) rtt.onSample(now, 80 + (now % 3000) / 1000);
  t.is(rtt.minRtt, 50);
  t.is(rtt.latest, 80);
  // 50 ms was seen at 0; after 10 s without anything as low, the minimum moves up
  for (let now = 10_000; now <= 25_000; now += 1000) rtt.onSample(now, 80 + (now % 3000) / 1000);
  t.is(rtt.minRtt, 80);
  // a new low is taken at once
  rtt.onSample(26_000, 40);
  t.is(rtt.minRtt, 40);
});

test('minRtt follows a path whose delay rises for good (a route change), within the window', (t) => {
  const rtt = new RttEstimator({ minRttWindow: 4000 });
  for (let now = 0; now < 4000; now += 100) rtt.onSample(now, 20 + (now % 500) / 100);
  t.is(rtt.minRtt, 20);
  for (let now = 4000; now < 20_000; now += 100) rtt.onSample(now, 100 + (now % 700) / 100);
  t.is(rtt.minRtt, 100);
});

test('RFC 7323 §4.1: timestampRtt is the TS clock difference, modulo 2**32, and rejects echoes from the future', (t) => {
  t.is(timestampRtt(1000, 900), 100);
  t.is(timestampRtt(5, 2 ** 32 - 5), 10); // across the wrap
  t.is(timestampRtt(1000, 990, 4), 40); // 4 ms ticks
  t.is(timestampRtt(900, 1000), null);
  const rtt = new RttEstimator();
  t.true(rtt.onTimestampSample(0, 1000, 930));
  t.is(rtt.srtt, 70);
  t.false(rtt.onTimestampSample(1, 1000, 1001));
  t.is(rtt.counters.get('rttInvalidSamples'), 1);
});

test('RFC 7323 Appendix G: with many samples per window the gains are divided by ExpectedSamples', (t) => {
  const mss = 1000;
  t.is(expectedSamples(20 * mss, mss), 10);
  t.is(expectedSamples(1, mss), 1);
  t.is(expectedSamples(0, mss), 1);
  const rtt = new RttEstimator();
  rtt.onSample(0, 100);
  rtt.onTimestampSample(10, 300, 100, 1, 20 * mss, mss); // R' = 200, alpha' = 1/80, beta' = 1/40
  t.true(near(rtt.rttvar, (1 - 1 / 40) * 50 + (1 / 40) * 100));
  t.true(near(rtt.srtt, (1 - 1 / 80) * 100 + (1 / 80) * 200));
});
