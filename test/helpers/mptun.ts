// `mptun up` started in a namespace for the e2e tests: it is up when it logs so, and a start
// that fails or hangs is an error that says why (the process is killed, not left behind).
import { fileURLToPath } from 'node:url';
import { spawnInNetns, waitFor, type Spawned } from './netns.js';

/** The project's entry point (dist/test/helpers → bin/). */
export const MPTUN_BIN = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));

/** Runs `mptun up ARGS...` in `ns` and waits (15 s at most) until it says it is up. */
export async function startMptunUp(ns: string, args: readonly string[]): Promise<Spawned> {
  const p = spawnInNetns(ns, process.execPath, [MPTUN_BIN, 'up', ...args]);
  try {
    await waitFor('mptun up', () => p.stderr().includes('mptun info: up:') || p.child.exitCode !== null, { timeout: 15_000 });
  } catch (e) {
    await p.stop('SIGKILL');
    throw e;
  }
  if (p.child.exitCode !== null) throw new Error(`mptun up exited: ${p.stderr()}`);
  return p;
}
