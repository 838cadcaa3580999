// Every external command the project runs is installed by scripts/setup.sh. A fresh machine
// has only what Debian marks "required" (and Node.js with npm, which this kind of machine
// comes with); everything else the scripts, tests and benchmarks run must be in setup.sh's
// command → package map, or the tests fail on a fresh machine and pass on one that had the
// package by chance (as `mptcpize` did once: on Debian 12 it is a package of its own).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SYSTEM_PATH } from '../helpers/netns.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The commands every machine of this kind has without setup.sh. */
const MACHINE = new Set(['node', 'npm', 'npx', 'git']);

function files(dir: string, ext: RegExp, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'build' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, ext, out);
    else if (ext.test(name)) out.push(p);
  }
  return out;
}

const WORD = /^[a-z][a-z0-9_.+-]*$/;

/**
 * Command names in TypeScript: a string literal that starts an argv, i.e. the first argument of
 * a call (`run('ip', ...)`), the one after a namespace (`inNetns(ns, 'nstat', ...)`), or the
 * first element of an argv array (`cmd = ['mptcpize', 'run', ...]`).
 */
function commandsInTs(text: string): Set<string> {
  const out = new Set<string>();
  const re = /\b(run|sh|exec|execFile|execFileSync|spawn|spawnSync|inNetns|spawnInNetns|netnsArgv|execIn)\(\s*(?:[A-Za-z_.()]+\s*,\s*)?'([^']+)'|(?:[=?:(]|return)\s*\[\s*'([^']+)'\s*[,\]]/g;
  for (const m of text.matchAll(re)) {
    const w = m[2] ?? m[3];
    if (w !== undefined && WORD.test(w)) out.add(w);
  }
  return out;
}

/** Command names in shell: the first word of a command (at a line's start, after | && || ; $( or exec/sudo/timeout/netns exec). */
function commandsInShell(text: string): Set<string> {
  const out = new Set<string>();
  const functions = new Set([...text.matchAll(/^\s*([a-z_][a-z0-9_]*)\s*\(\)\s*\{/gm)].map((m) => m[1]!));
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '');
    if (/^\s*[A-Z_]+=\S*\s*$/.test(line) || /<<-?'?EOF/.test(line)) continue;
    const re = /(?:^\s*|[|;&]\s*|\$\(\s*|\b(?:exec|sudo|timeout \d+|netns exec \S+|then|do|else)\s+)([a-z][a-z0-9_.+-]*)(?=\s|$|\))/g;
    for (const m of line.matchAll(re)) if (!functions.has(m[1]!)) out.add(m[1]!);
  }
  return out;
}

const BUILTINS = new Set(('if then else elif fi for while until do done case esac in function return local export readonly declare set unset shift ' +
  'echo printf read cd pwd exit trap eval source test true false wait kill command type break continue let shopt getopts hash exec mapfile ulimit umask').split(' '));

function packageOf(cmd: string): string | null {
  let path: string;
  try {
    path = execFileSync('bash', ['-c', `PATH=${SYSTEM_PATH} command -v -- "$1"`, '_', cmd], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
  if (!path.startsWith('/')) return null; // a builtin
  // with merged /usr, dpkg knows /bin/bash as installed, not /usr/bin/bash
  const name = path.slice(path.lastIndexOf('/') + 1);
  for (const p of new Set([path, realpathSync(path), `/bin/${name}`, `/sbin/${name}`, `/usr/bin/${name}`, `/usr/sbin/${name}`])) {
    try {
      // `dpkg-query -S /bin/sh` says "diversion by dash from: ..." before "dash: /bin/sh"
      const owner = execFileSync('dpkg-query', ['-S', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n').find((l) => l.includes(':') && !l.startsWith('diversion'));
      if (owner !== undefined) return owner.split(':')[0]!.split(',')[0]!.trim();
    } catch { /* try the next */ }
  }
  return '(not from a Debian package)';
}

function priority(pkg: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Priority}', pkg], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

test('every external command the scripts, tests and benchmarks run is installed by scripts/setup.sh', (t) => {
  const map = new Map(execFileSync('bash', [join(ROOT, 'scripts/setup.sh'), '--commands'], { encoding: 'utf8' })
    .split('\n').filter(Boolean).map((l) => l.split(/\s+/) as [string, string]));
  t.true(map.has('mptcpize') && map.get('mptcpize') === 'mptcpize', 'mptcpize comes from the package of that name');

  const seen = new Map<string, string>(); // command → first file that runs it
  for (const f of files(ROOT, /\.ts$/)) for (const c of commandsInTs(readFileSync(f, 'utf8'))) if (!seen.has(c)) seen.set(c, f);
  for (const f of [...files(join(ROOT, 'scripts'), /\.sh$/), ...files(join(ROOT, 'test'), /\.sh$/)]) {
    for (const c of commandsInShell(readFileSync(f, 'utf8'))) if (!BUILTINS.has(c) && !seen.has(c)) seen.set(c, f);
  }
  // the scan finds what it must: the commands every e2e test leans on
  for (const c of ['ip', 'nft', 'tc', 'iperf3', 'mptcpize', 'tshark', 'nstat']) t.true(seen.has(c), `the scan finds ${c}`);

  const uncovered: string[] = [];
  for (const [cmd, where] of seen) {
    if (MACHINE.has(cmd) || map.has(cmd)) continue;
    const pkg = packageOf(cmd);
    if (pkg === null) continue; // not a command on this machine: a word, a subcommand, a builtin
    if (priority(pkg) === 'required') continue; // on every Debian root
    uncovered.push(`${cmd} (package ${pkg}, priority ${priority(pkg)}; run in ${where.slice(ROOT.length)})`);
  }
  t.deepEqual(uncovered, [], 'add these to the command map of scripts/setup.sh');
  // and every package of the map is a real Debian package name that apt knows
  for (const pkg of new Set(map.values())) t.not(priority(pkg), 'unknown', `${pkg} is installed by setup.sh`);
});
