// The house rule "a declared counter is counted, and shown by `mptun status`" (CONVENTIONS.md 9),
// checked on the source: every name of every counter set in src/ is counted somewhere
// (test/helpers/counter-scan.ts says how it looks), and the scan itself finds what it must.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { counterDeclarations, readSources, stripComments, uncountedCounters, uncountedStats, type SourceFile } from './helpers/counter-scan.js';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));
const files = readSources(SRC);

test('every declared counter in src/ is counted somewhere', (t) => {
  t.deepEqual(uncountedCounters(files), []);
});

test('every field of the engine\'s stats is counted', (t) => {
  t.deepEqual(uncountedStats(files), []);
});

test('the scan finds the counter sets of every layer', (t) => {
  const constants = counterDeclarations(files).map((d) => d.constant);
  for (const c of ['IP_DROP_REASONS', 'ICMP_COUNTER_NAMES', 'TCP_COUNTER_NAMES', 'STACK_COUNTER_NAMES', 'TCP_DROP_REASONS', 'RTT_COUNTER_NAMES',
    'CC_COUNTER_NAMES', 'SCOREBOARD_COUNTER_NAMES', 'REASSEMBLY_COUNTER_NAMES', 'CHUNK_QUEUE_COUNTER_NAMES', 'MPTCP_COUNTER_NAMES',
    'MPTCP_OPTION_DROP_REASONS', 'MAPPING_VERDICTS', 'LIA_COUNTER_NAMES', 'MPTCP_STACK_COUNTER_NAMES', 'RELAY_COUNTER_NAMES']) {
    t.true(constants.includes(c), c);
  }
  const reasons = counterDeclarations(files).find((d) => d.constant === 'IP_DROP_REASONS')!;
  t.true(reasons.returned);
  t.true(reasons.names.includes('badChecksum'));
});

test('the scan sees a name that is only declared, in a comment, or only read; and one counted by a ternary or a returned reason', (t) => {
  const src = (text: string): SourceFile[] => [{ path: 'x.ts', text: stripComments(text) }];
  const base = `
    export const X_COUNTER_NAMES = ['counted', 'onlyRead', 'inComment', 'byTernary', 'other'] as const;
    export const X_DROP_REASONS = ['returned', 'neverReturned'] as const;
    class S { c = new CounterSet(X_COUNTER_NAMES); r = new CounterSet<R>(X_DROP_REASONS);
      f(a: boolean) {
        this.c.increment('counted');
        this.c.increment(a ? 'byTernary' : 'other', 2);
        if (this.c.get('onlyRead') > 0) return;
        // this.c.increment('inComment');
      }
      check(): R | null { if (Math.random() > 0.5) return 'returned'; return null; }
    }`;
  t.deepEqual(uncountedCounters(src(base)), ['X_COUNTER_NAMES.inComment', 'X_COUNTER_NAMES.onlyRead', 'X_DROP_REASONS.neverReturned']);
  t.deepEqual(uncountedStats(src('interface EngineStats { a: number; b: number }\n this.stats.a++;')), ['b']);
});
