// Helpers for tests that run real commands, as root, in network namespaces: run a command
// (optionally inside a namespace), spawn a long-running one that can be stopped, wait until
// something listens on a port, and the rule for root-only tests (they skip outside CI, they
// fail in CI).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * The system's directories, searched first for commands by default. Under `npm test`/`npx`,
 * node_modules/.bin leads PATH, and it holds an `nft` (@vercel/nft, a dependency of ava)
 * that is not nftables; `ip netns exec` looks commands up in the same PATH.
 */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** This process's environment with the system's directories first in PATH. */
export function systemEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const path = process.env.PATH;
  return { ...process.env, PATH: path ? `${SYSTEM_PATH}:${path}` : SYSTEM_PATH, ...extra };
}

export interface RunOptions {
  /** Milliseconds before the command is killed (SIGKILL) and the run fails. Default 30 s. */
  timeout?: number;
  /** Environment of the command (default: systemEnv(), this process's with system tools first). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Text written to the command's stdin (then closed). */
  input?: string;
  /** Reject when the command exits with a non-zero status. Default true. */
  check?: boolean;
}

export interface RunResult {
  /** Exit status, or null when a signal ended the command. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A command that failed: its argv, what it printed, and whether the timeout killed it. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
    readonly timedOut: boolean,
  ) {
    const how = timedOut ? 'timed out' : result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    // what it said: stderr, else the end of stdout (a peer that reports its error as a JSON line)
    const err = result.stderr.trim() || result.stdout.trim().slice(-1000);
    super(`\`${argv.join(' ')}\` ${how}${err ? `: ${err.slice(-2000)}` : ''}`);
    this.name = 'CommandError';
  }
}

const DEFAULT_TIMEOUT = 30_000;

/** Runs a command (no shell) and resolves with what it printed. */
export function run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const { timeout = DEFAULT_TIMEOUT, env = systemEnv(), cwd, input, check = true } = opts;
  const argv = [cmd, ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, {
      timeout, killSignal: 'SIGKILL', env, cwd, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8',
    }, (error, stdout, stderr) => {
      if (error && typeof error.code === 'string') {
        // the command could not be started at all (ENOENT, EACCES ...)
        reject(Object.assign(new Error(`cannot run \`${cmd}\`: ${error.message}`), { code: error.code }));
        return;
      }
      const result: RunResult = {
        code: typeof error?.code === 'number' ? error.code : error ? null : 0,
        signal: (error?.signal as NodeJS.Signals | undefined) ?? null,
        stdout,
        stderr,
      };
      const timedOut = Boolean(error?.killed) && result.code === null;
      if (timedOut || (check && error)) reject(new CommandError(argv, result, timedOut));
      else resolve(result);
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

/** The argv that runs `cmd args` inside network namespace `ns` (`ip netns exec`). */
export function netnsArgv(ns: string, cmd: string, args: readonly string[] = []): [string, string[]] {
  return ['ip', ['netns', 'exec', ns, cmd, ...args]];
}

/** Runs a command inside network namespace `ns`. */
export function inNetns(ns: string, cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const [c, a] = netnsArgv(ns, cmd, args);
  return run(c, a, opts);
}

export interface SpawnOptions {
  /** Default: systemEnv(). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** A long-running command: its output so far, its end, and a way to stop it. */
export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the command has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM), then SIGKILL after `graceMs` (default 3 s); resolves on exit. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns a command (no shell), collecting its output. */
export function spawnCommand(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): Spawned {
  const child = spawn(cmd, args, { env: opts.env ?? systemEnv(), cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'error' (could not start) is followed by no 'close'; report it as an exit
    child.once('error', (e) => { err += `\n${String(e)}`; resolve({ code: null, signal: null }); });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let ended = false;
  void exited.then(() => { ended = true; });
  return {
    child,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000) {
      if (!ended) {
        child.kill(signal);
        const timer = setTimeout(() => { if (!ended) child.kill('SIGKILL'); }, graceMs);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      }
      return exited;
    },
  };
}

/**
 * Spawns a command inside network namespace `ns`. `ip netns exec` replaces itself with the
 * command, so the child's pid is the command's and stop() signals the command itself.
 */
export function spawnInNetns(ns: string, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): Spawned {
  const [c, a] = netnsArgv(ns, cmd, args);
  return spawnCommand(c, a, opts);
}

export interface WaitOptions {
  /** Milliseconds before giving up. Default 10 s. */
  timeout?: number;
  /** Milliseconds between two checks. Default 50. */
  interval?: number;
}

/** Checks `probe` until it returns true; rejects after the timeout, saying what was awaited. */
export async function waitFor(what: string, probe: () => Promise<boolean> | boolean, opts: WaitOptions = {}): Promise<void> {
  const { timeout = 10_000, interval = 50 } = opts;
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await probe()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export interface PortOptions extends WaitOptions {
  /** Default 'tcp' (which also covers MPTCP listeners, whose subflow listener is TCP). */
  proto?: 'tcp' | 'udp';
}

/** Is something listening on `port` (in namespace `ns`, or in this one when ns is null)? */
export async function isListening(ns: string | null, port: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<boolean> {
  const args = ['-Hln', proto === 'tcp' ? '-t' : '-u', `sport = :${port}`];
  const r = ns === null ? await run('ss', args) : await inNetns(ns, 'ss', args);
  return r.stdout.trim() !== '';
}

/** Waits until something listens on `port` (in namespace `ns`, or in this one when ns is null). */
export function waitForPort(ns: string | null, port: number, opts: PortOptions = {}): Promise<void> {
  const { proto = 'tcp', ...wait } = opts;
  return waitFor(`${proto} port ${port} to listen${ns === null ? '' : ` in ${ns}`}`, () => isListening(ns, port, proto), wait);
}

/** `KEY=value` lines (as printed by `scripts/testbed.sh env`) as an object. */
export function parseEnvLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2];
    if (v.length >= 2 && v.startsWith("'") && v.endsWith("'")) v = v.slice(1, -1);
    out[m[1]] = v;
  }
  return out;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Are we in CI? (CI set to anything but '', '0' or 'false'.) */
export function inCI(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/**
 * The rule for tests that need root (namespaces, TUN, the kernel's MPTCP): true when root.
 * Otherwise the test ends here: in CI it FAILS (a root-only test never skips silently in CI);
 * elsewhere it passes with a logged "skipped" message. Use: `if (!requireRootOrSkip(t)) return;`
 */
export function requireRootOrSkip<C>(t: ExecutionContext<C>, why = 'needs root (network namespaces, TUN, kernel MPTCP)'): boolean {
  if (isRoot()) return true;
  if (inCI()) {
    t.fail(`${t.title}: ${why}, and CI is set: in CI this test must run, as root`);
  } else {
    t.log(`SKIPPED (not root): ${why}. Run as root to test this.`);
    t.pass();
  }
  return false;
}

/**
 * Copies files of the clone into a fresh folder that every user can read, for a test that runs
 * a command as an unprivileged user (uid 65534): the clone may live where that user cannot
 * enter (`/root`, mode 700, or a `mktemp -d` folder). `files` maps a path relative to the copy
 * to the source path. The caller removes the folder (`rmSync(dir, { recursive: true })`).
 */
export function readableCopy(files: Readonly<Record<string, string>>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mptun-readable-'));
  chmodSync(dir, 0o755);
  for (const [rel, src] of Object.entries(files)) {
    const dst = join(dir, rel);
    mkdirSync(dirname(dst), { recursive: true, mode: 0o755 });
    for (let d = dirname(dst); d.length > dir.length; d = dirname(d)) chmodSync(d, 0o755);
    copyFileSync(src, dst);
    chmodSync(dst, 0o644);
  }
  return dir;
}
