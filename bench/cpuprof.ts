// bench/cpuprof: where a V8 CPU profile's time went (`node --cpu-prof` writes one when the
// process exits). Self time by function and by source file of mptun (src/...), the rest grouped
// as node's internals, GC, the native addon and idle. Prints JSON.
//
//   node dist/bench/cpuprof.js FILE.cpuprofile [--top 25]
//
// To profile `mptun up` on the bed during bench/aggregate's mptun run:
//   sudo node dist/bench/aggregate.js --runs 1 --profile /tmp/prof    (writes /tmp/prof/*.cpuprofile)
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; hitCount?: number; children?: number[] }
interface Profile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true });
if (positionals.length !== 1) {
  process.stderr.write('usage: node dist/bench/cpuprof.js FILE.cpuprofile [--top N]\n');
  process.exit(2);
}
const top = Number(values.top);
const p = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));

/** Microseconds of self time per node: each sample's delta goes to the node sampled. */
const selfUs = new Map<number, number>();
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i + 1] ?? 0;
  selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dt);
}
const totalUs = p.endTime - p.startTime;

/** What a frame is: mptun's file (src/..., relative), node's internals, or V8's own entries. */
function place(f: CallFrame): string {
  if (f.functionName === '(idle)') return '(idle)';
  if (f.functionName === '(garbage collector)') return '(garbage collector)';
  if (f.functionName === '(program)') return '(program: native, not attributed)';
  const m = /\/(dist\/)?(src|bench|test)\/(.*)\.js$/.exec(f.url);
  if (m) return `${m[2]}/${m[3]}.ts`;
  if (f.url.startsWith('node:')) return 'node: internals';
  if (f.url === '') return '(native / builtins)';
  return f.url.replace(/^file:\/\//, '');
}

const fn = new Map<string, number>();
const file = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id)!;
  const where = place(n.callFrame);
  const key = where.startsWith('(') ? where : `${n.callFrame.functionName || '(anonymous)'} ${where}:${n.callFrame.lineNumber + 1}`;
  fn.set(key, (fn.get(key) ?? 0) + us);
  file.set(where, (file.get(where) ?? 0) + us);
}
const idle = file.get('(idle)') ?? 0;
const busy = totalUs - idle;
const rows = (m: Map<string, number>, n: number) => [...m.entries()]
  .filter(([k]) => k !== '(idle)')
  .sort((a, b) => b[1] - a[1])
  .slice(0, n)
  .map(([k, us]) => ({ where: k, ms: +(us / 1000).toFixed(1), ofBusy: +(us / busy).toFixed(3) }));

console.log(JSON.stringify({
  profile: positionals[0],
  wallMs: +(totalUs / 1000).toFixed(0),
  busyMs: +(busy / 1000).toFixed(0),
  busyOfWall: +(busy / totalUs).toFixed(3),
  byFile: rows(file, top),
  byFunction: rows(fn, top),
}, null, 2));
