// `mptun status` (human): the counters, a titled block per group in a fixed order, zeros left
// out, long groups wrapped.
import test from 'ava';
import { formatCounters } from '../../src/cli/up.js';

test('titled groups in order, zeros left out, empty groups and unknown ones handled, lines wrapped', (t) => {
  const lines = formatCounters({
    engine: { batches: 3, writeErrors: 0 },
    relay: { flowsRequested: 2, flowsRefused: 0 },
    mptcp: { MPCapableSYNTX: 2, MPJoinSynTx: 2, DSSNotMatching: 0 },
    lia: { coupledIncreases: 0 },
    futureGroup: { something: 1 },
  }, 40);
  t.deepEqual(lines, [
    '  relay (app connections and the MPTCP connections that carry them):',
    '    flowsRequested 2',
    '  MPTCP connections (the kernel\'s MPTcpExt names where one matches):',
    '    MPCapableSYNTX 2, MPJoinSynTx 2',
    '  engine (TUN device I/O, timers):',
    '    batches 3',
    '  futureGroup:',
    '    something 1',
  ]);
  const wrapped = formatCounters({ relay: Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`counter${i}`, 1000 + i])) }, 50);
  t.true(wrapped.length > 3);
  for (const l of wrapped.slice(1)) t.true(l.length <= 50, l);
  t.is(wrapped.slice(1).join(',').replace(/\s+/g, ' ').trim().split(', ').length, 12);
});
