// The fuzzer's own findings, kept as cases (issue 12). Each seed below found one of the four
// findings on main before the `robust` branch fixed them (the fixes and their minimal
// regression tests are there: test/mptcp/sim.test.ts, test/appliance/relay.test.ts,
// test/tcp/*); here the whole fuzz case runs again and must find nothing. A change to the
// stacks changes a case's course, so these seeds stop pointing at the same place over time:
// they are a cheap second net, not the regression test of record.
import test from 'ava';
import { runCase } from './world.js';

const FOUND = [
  { seed: 13, what: 'a data segment with SACK blocks 12 bytes over the MTU 1500 (relay)' },
  { seed: 16, what: 'a TSO super-segment with SACK blocks whose cut segments are 12 bytes over the MTU (relay with offloads)' },
  { seed: 7, what: 'a segment with SACK blocks 20 bytes over an MTU of 576' },
  { seed: 14, what: 'a subflow between address families: every later pollOutput threw "IPv6 addresses are 16 bytes"' },
  { seed: 18, what: 'an IPv6 SYN from the host with IPv4 paths: every later pollOutput threw "IPv4 addresses are 4 bytes"' },
  { seed: 27, what: 'a connection-level deadline left at now after handleTimeout (the engine would spin)' },
  { seed: 49, what: 'an MP_JOIN before the MP_CAPABLE third ACK: "Cannot mix BigInt and other types" at every poll' },
  { seed: 440957, what: 'a path back up moved a kept SYN-SENT subflow\'s RTO to now behind the stack\'s back: a deadline left at now after handleTimeout' },
];

for (const { seed, what } of FOUND) {
  test(`fuzz regression, seed ${seed}: ${what}`, (t) => {
    t.timeout(60_000);
    const r = runCase({ seed });
    t.is(r.finding, null, r.finding ? `${r.finding.kind} at step ${r.finding.step}: ${r.finding.message}` : '');
  });
}
