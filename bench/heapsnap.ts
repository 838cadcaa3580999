// bench/heapsnap: what a V8 heap snapshot holds, by kind of object: the count and the self size
// (bytes) of the nodes of each constructor name (V8's `node.name` for objects; `(string)`,
// `(array)`, `(code)` ... for the rest), largest first. With --per N: each also per held
// connection (the snapshot taken while N connections are held, bench/connections
// --heap-snapshot DIR). Prints JSON.
//
//   node dist/bench/heapsnap.js FILE.heapsnapshot [--per 2000] [--top 40]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { per: { type: 'string' }, top: { type: 'string', default: '40' } },
});
const file = positionals[0];
if (!file) throw new Error('usage: heapsnap FILE.heapsnapshot [--per N] [--top K]');

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}
const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const fields = snap.snapshot.meta.node_fields;
const types = snap.snapshot.meta.node_types[0];
const F = fields.length;
const iType = fields.indexOf('type');
const iName = fields.indexOf('name');
const iSize = fields.indexOf('self_size');
const kinds = new Map<string, { count: number; bytes: number }>();
let total = 0;
for (let i = 0; i < snap.nodes.length; i += F) {
  const type = types[snap.nodes[i + iType]!]!;
  // objects by their constructor; closures, strings, arrays, code ... by their type
  const key = type === 'object' || type === 'closure' ? `${snap.strings[snap.nodes[i + iName]!]}${type === 'closure' ? ' (closure)' : ''}` : `(${type})`;
  const size = snap.nodes[i + iSize]!;
  total += size;
  const k = kinds.get(key) ?? { count: 0, bytes: 0 };
  k.count++;
  k.bytes += size;
  kinds.set(key, k);
}
const per = values.per ? Number(values.per) : null;
const top = [...kinds.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(values.top)).map(([kind, k]) => ({
  kind, count: k.count, bytes: k.bytes,
  ...(per ? { countPer: +(k.count / per).toFixed(2), bytesPer: Math.round(k.bytes / per) } : {}),
}));
console.log(JSON.stringify({ file, totalBytes: total, ...(per ? { totalBytesPer: Math.round(total / per) } : {}), top }, null, 1));
