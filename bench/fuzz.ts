// The fuzzer's long run (issue 12): seeds `--seed`, `--seed`+1, ... each a case of the fuzzer's
// worlds (test/fuzz/world.ts: the relay and an MPTCP listener driven by the project's own stacks
// with mutated packets), until `--packets` inputs in all. Prints JSON: packets, packets/s, the
// states reached, the findings (each with its seed and step).
//
//   node dist/bench/fuzz.js --packets 10000000 --seed 1
//   node dist/bench/fuzz.js --seed S --replay        # replays case S, a line per step
import { runCase, runMany } from '../test/fuzz/world.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seed = Number(arg('seed') ?? 1) >>> 0;
const perCase = Number(arg('per-case') ?? 1500);
const world = arg('world') as 'relay' | 'listener' | undefined;

if (process.argv.includes('--replay')) {
  const r = runCase({ seed, packets: perCase, ...(world ? { world } : {}), trace: (line) => console.log(line) });
  console.log(JSON.stringify({ seed, world: r.world, packets: r.packets, steps: r.steps, states: r.states, finding: r.finding }, null, 2));
  process.exitCode = r.finding ? 1 : 0;
} else {
  const packets = Number(arg('packets') ?? 100_000);
  const start = performance.now();
  let lastReport = start;
  const r = runMany({
    first: seed, packets, perCase,
    onCase: (c) => {
      if (c.finding) console.error(`FINDING seed=${c.finding.seed} step=${c.finding.step} ${c.finding.kind}: ${c.finding.message.split('\n')[0]} (replay: node dist/bench/fuzz.js --seed ${c.seed} --replay)`);
      const t = performance.now();
      if (t - lastReport > 60_000) {
        lastReport = t;
        console.error(`progress: seed ${c.seed}, ${((t - start) / 1000).toFixed(0)} s`);
      }
    },
  });
  const seconds = (performance.now() - start) / 1000;
  console.log(JSON.stringify({
    firstSeed: seed, lastSeed: (seed + r.cases - 1) >>> 0, cases: r.cases, worlds: r.worlds, packets: r.packets, mutated: r.mutated,
    seconds: Math.round(seconds), packetsPerSecond: Math.round(r.packets / seconds), states: r.states,
    findings: r.findings.map((f) => ({ ...f, message: f.message.split('\n').slice(0, 3).join(' | ') })),
  }, null, 2));
  process.exitCode = r.findings.length > 0 ? 1 : 0;
}
