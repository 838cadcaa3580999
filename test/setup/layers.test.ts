// The modules of src/ form no import cycle, type-only imports included (a cycle such as
// tcp/options ↔ tcp/segment makes two codecs one). The layers themselves (which folder may
// import which) are a lint rule: eslint.config.js, LAYERS.
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The relative imports and re-exports of a module (`import ... from './x.js'`, `export * from`), type-only ones too. */
export function importsOf(text: string, file: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+'(\.[^']+)'/gms)) {
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
  }
  return out;
}

/** Every cycle's modules (strongly connected components of more than one module, or a self-import), Tarjan's algorithm. */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

test('the cycle finder finds a two-module cycle, a longer one, and none in a chain', (t) => {
  t.deepEqual(cycles(new Map([['a', ['b']], ['b', ['a']], ['c', ['a']]])), [['a', 'b']]);
  t.deepEqual(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), [['a', 'b', 'c']]);
  t.deepEqual(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), []);
  t.deepEqual(importsOf("import type { X } from './segment.js';\nexport * from '../ip/vnet.js';\nimport {\n  a,\n} from './b.js';", '/s/tcp/options.ts'),
    ['/s/tcp/segment.ts', '/s/ip/vnet.ts', '/s/tcp/b.ts']);
});

test('src/ has no import cycle, type-only imports included', (t) => {
  const graph = new Map<string, string[]>();
  for (const f of sources(SRC)) graph.set(f, importsOf(readFileSync(f, 'utf8'), f));
  t.true(graph.size > 50, 'the scan sees the sources');
  t.true([...graph.values()].some((deps) => deps.length > 3), 'and their imports');
  t.deepEqual(cycles(graph).map((c) => c.map((f) => relative(SRC, f)).join(' → ')), []);
});
