// A static scan of src/ for the house rule "a declared counter is counted" (CONVENTIONS.md 9):
// every counter set (`new CounterSet(NAMES)`, `class X extends CounterSet` with `super(NAMES)`)
// has its names read from the `const NAMES = [...] as const` that declares them, and each name
// is looked for where it is counted:
// - in the arguments of an `.increment(...)` call (`increment('x')`, `increment(c ? 'x' : 'y')`);
// - for the sets of reasons, verdicts and refusals (`*_REASONS`, `*_VERDICTS`, `*_REFUSALS`, counted by the caller
//   with `counters.increment(reason)`), also in a `return` statement of the check that gives it.
// The engine's stats (plain fields, `stats.x++`) are scanned the same way.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface SourceFile {
  path: string;
  text: string;
}

/** Every .ts file under `dir`, comments blanked out (so that a name in a doc comment counts for nothing). */
export function readSources(dir: string, root = dir): SourceFile[] {
  const out: SourceFile[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) out.push(...readSources(p, root));
    else if (entry.endsWith('.ts')) out.push({ path: relative(root, p), text: stripComments(readFileSync(p, 'utf8')) });
  }
  return out;
}

/** Replaces // and /* *\/ comments with spaces (strings and template literals kept). */
export function stripComments(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    const n = src[i + 1];
    if (c === '/' && n === '/') {
      while (i < src.length && src[i] !== '\n') { out += ' '; i++; }
    } else if (c === '/' && n === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

export interface CounterDeclaration {
  /** The const that lists the names ("TCP_COUNTER_NAMES"). */
  constant: string;
  file: string;
  names: string[];
  /** Counted through a value that a check returns (reasons, verdicts). */
  returned: boolean;
}

/** The string literals of `const NAME = [ ... ]`, with `...OTHER` spreads resolved. */
function arrayNames(files: SourceFile[], constant: string, seen = new Set<string>()): { file: string; names: string[] } | null {
  if (seen.has(constant)) return null;
  seen.add(constant);
  const re = new RegExp(`const\\s+${constant}\\s*(?::[^=]+)?=\\s*\\[([^\\]]*)\\]`);
  for (const f of files) {
    const m = re.exec(f.text);
    if (!m) continue;
    const names: string[] = [];
    for (const part of m[1]!.matchAll(/'([^']+)'|"([^"]+)"|\.\.\.\s*([A-Z0-9_]+)/g)) {
      if (part[3] !== undefined) names.push(...(arrayNames(files, part[3], seen)?.names ?? []));
      else names.push(part[1] ?? part[2]!);
    }
    return { file: f.path, names };
  }
  return null;
}

/** The spread parts of a composed list, recursively (a list of lists of lists), or the list itself. */
function leafLists(files: SourceFile[], constant: string, seen = new Set<string>()): string[] {
  if (seen.has(constant)) return [];
  seen.add(constant);
  const body = files.map((f) => new RegExp(`const\\s+${constant}\\s*=\\s*\\[([^\\]]*)\\]`).exec(f.text)).find((m) => m)?.[1];
  const parts = [...(body?.matchAll(/\.\.\.\s*([A-Z0-9_]+)/g) ?? [])].map((m) => m[1]!);
  return parts.length > 0 ? parts.flatMap((p) => leafLists(files, p, seen)) : [constant];
}

/** The constants whose names make counter sets, found where the sets are made. */
export function counterDeclarations(files: SourceFile[]): CounterDeclaration[] {
  const constants = new Set<string>();
  for (const f of files) {
    for (const m of f.text.matchAll(/new\s+CounterSet\s*(?:<[^>(]*>)?\s*\(\s*([A-Z][A-Z0-9_]*)\s*\)/g)) constants.add(m[1]!);
    for (const m of f.text.matchAll(/extends\s+CounterSet\s*<[^>]*>\s*\{[\s\S]*?super\(\s*([A-Z][A-Z0-9_]*)\s*\)/g)) constants.add(m[1]!);
  }
  const out: CounterDeclaration[] = [];
  for (const constant of [...constants].sort()) {
    // the parts of a composed list are checked by their own rules
    const lists = leafLists(files, constant);
    for (const list of lists) {
      const a = arrayNames(files, list);
      if (!a) throw new Error(`counter names ${list} (of ${constant}): no \`const ${list} = [...]\` in src/`);
      out.push({ constant: list, file: a.file, names: a.names, returned: /_(REASONS|VERDICTS|REFUSALS)$/.test(list) });
    }
  }
  return out;
}

/** The text of the arguments of every `.increment(` call (parentheses balanced). */
export function incrementArguments(files: SourceFile[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    for (const m of f.text.matchAll(/\.increment\(/g)) {
      let depth = 1;
      let j = m.index + m[0].length;
      const start = j;
      while (j < f.text.length && depth > 0) {
        const c = f.text[j]!;
        if (c === '(') depth++;
        else if (c === ')') depth--;
        j++;
      }
      out.push(f.text.slice(start, j - 1));
    }
  }
  return out;
}

/** The text of every `return ...;` statement. */
export function returnStatements(files: SourceFile[]): string[] {
  return files.flatMap((f) => [...f.text.matchAll(/\breturn\b[^;{}]*;/g)].map((m) => m[0]));
}

const quoted = (name: string) => new RegExp(`['"]${name.replace(/[$]/g, '\\$&')}['"]`);

/** True when `re` (a quoted name) stands in src/ outside the declaration of `d`'s list. */
function tableUse(files: SourceFile[], d: CounterDeclaration, re: RegExp): boolean {
  const decl = new RegExp(`const\\s+${d.constant}\\s*(?::[^=]+)?=\\s*\\[[^\\]]*\\]`);
  return files.some((f) => re.test(f.text.replace(decl, '')));
}

/** Each declared counter name that nothing counts: `${constant}.${name}` (sorted). */
export function uncountedCounters(files: SourceFile[]): string[] {
  const args = incrementArguments(files);
  const returns = returnStatements(files);
  const missing: string[] = [];
  for (const d of counterDeclarations(files)) {
    for (const name of d.names) {
      const re = quoted(name);
      if (args.some((a) => re.test(a))) continue;
      if (d.returned && returns.some((r) => re.test(r))) continue;
      // a reason returned through a table (`{ reason: 'dstLoopback', ... }` looked up, then returned)
      if (d.returned && tableUse(files, d, re)) continue;
      missing.push(`${d.constant}.${name}`);
    }
  }
  return missing.sort();
}

/** Fields of `interface EngineStats` never incremented (`stats.x++`, `stats.x += n`). */
export function uncountedStats(files: SourceFile[], iface = 'EngineStats'): string[] {
  const decl = files.map((f) => new RegExp(`interface\\s+${iface}\\s*\\{([^}]*)\\}`).exec(f.text)).find((m) => m);
  if (!decl) throw new Error(`no interface ${iface} in src/`);
  const fields = [...decl[1]!.matchAll(/(\w+)\s*:/g)].map((m) => m[1]!);
  return fields.filter((name) => !files.some((f) => new RegExp(`stats\\.${name}\\s*(\\+\\+|\\+=)`).test(f.text)));
}
