// `mptun up` with its output piped into a process that exits at once (`mptun up 2>&1 | true`,
// as `| head -1` or a dead log pipeline leaves it): it notices the closed pipe once, logs on in
// its state directory, does not spin, and SIGTERM still undoes all its routing. On a bed of its
// own (TESTBED_PREFIX=mptrb: scripts/testbed.sh), its names apart from the other e2e tests'.
import test from 'ava';
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { inNetns, parseEnvLines, requireRootOrSkip, run, spawnInNetns, systemEnv, waitFor, type RunOptions } from '../helpers/netns.js';

const PREFIX = 'mptrb';
const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed.sh', import.meta.url));
const MPTUN = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));
const ENV = systemEnv({ TESTBED_PREFIX: PREFIX });
const STATE_DIR = `/run/mptun-${PREFIX}`;
const SOCKET = `${STATE_DIR}/control.sock`;
const LOG = `${STATE_DIR}/mptun.log`;

function bed(args: string[], opts: RunOptions = {}) {
  return run('bash', [SCRIPT, ...args], { env: ENV, timeout: 60_000, ...opts });
}

let topo: Record<string, string> = {};
const cli = () => topo.TESTBED_NS_CLIENT!;

/** Rules, routes and nftables of the client namespace, as sorted text. */
async function routingSnapshot(): Promise<string> {
  const parts: string[] = [];
  for (const args of [['rule'], ['-6', 'rule'], ['route', 'show', 'table', 'all'], ['-6', 'route', 'show', 'table', 'all']]) {
    parts.push((await inNetns(cli(), 'ip', args)).stdout);
  }
  parts.push((await inNetns(cli(), '/usr/sbin/nft', ['list', 'ruleset'])).stdout);
  return parts.map((p) => p.split('\n').filter((l) => !l.includes('fe80::') && !l.includes('mptun0')).sort().join('\n')).join('\n----\n');
}

/** User + system CPU time of a process, in seconds (/proc/<pid>/stat, clock ticks of 1/100 s). */
async function cpuSeconds(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

let before = '';

test.before(async (t) => {
  if (!requireRootOrSkip(t)) return;
  await bed(['up']);
  topo = parseEnvLines((await bed(['env'])).stdout);
  await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  await run('rm', ['-f', LOG]);
  before = await routingSnapshot();
});

test.after.always(async () => {
  if (topo.TESTBED_NS_CLIENT) await inNetns(cli(), process.execPath, [MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  await run('rm', ['-rf', STATE_DIR], { check: false });
  await bed(['down'], { check: false });
});

test.serial('mptun up | true: the closed pipe is noticed once, logging goes on in the state directory, no spin, SIGTERM restores the routing', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // the reader of mptun's stdout and stderr exits at once; pipefail: the pipeline's status is mptun's
  const shell = spawnInNetns(cli(), 'bash', ['-c', `set -o pipefail; exec 0</dev/null; ${process.execPath} ${MPTUN} up --state-dir ${STATE_DIR} --control-socket ${SOCKET} --log-level debug 2>&1 | true`]);
  let pid = 0;
  try {
    await waitFor('mptun up (its state file and control socket)', async () => {
      if (shell.child.exitCode !== null) return true;
      try {
        pid = (JSON.parse(await readFile(`${STATE_DIR}/state.json`, 'utf8')) as { pid: number }).pid;
        return (await inNetns(cli(), process.execPath, [MPTUN, 'status', '--json', '--control-socket', SOCKET], { check: false })).code === 0;
      } catch {
        return false;
      }
    }, { timeout: 20_000, interval: 200 });
    t.is(shell.child.exitCode, null, 'mptun is still running with its output closed');
    // some traffic through it, for more log lines (debug: one per flow)
    for (let i = 0; i < 3; i++) {
      await inNetns(cli(), 'bash', ['-c', `exec 3<>/dev/tcp/${topo.TESTBED_SRV_ADDR1}/5999`], { check: false, timeout: 10_000 });
    }
    const cpu0 = await cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 2000));
    const cpu1 = await cpuSeconds(pid);
    t.true(cpu1 - cpu0 < 0.5, `idle with a closed output it used ${(cpu1 - cpu0).toFixed(2)} s of CPU in 2 s`);
    t.true(await routingSnapshot() !== before, 'mptun had changed the routing');
    process.kill(pid, 'SIGTERM');
    const code = await new Promise<number | null>((resolve) => {
      if (shell.child.exitCode !== null) resolve(shell.child.exitCode);
      else shell.child.on('exit', (c) => resolve(c));
    });
    t.is(code, 0, 'mptun exited 0 after SIGTERM');
  } finally {
    if (shell.child.exitCode === null) await shell.stop('SIGKILL');
  }
  t.is(await routingSnapshot(), before, 'rules, routes and nftables are what they were');
  const log = await readFile(LOG, 'utf8');
  t.is(log.match(/is closed \(EPIPE\)/g)?.length ?? 0, 1, 'the closed pipe noticed once');
  t.regex(log, /mptun info: stopping \(SIGTERM\)/);
  t.regex(log, /mptun info: down: routing restored/);
  t.is((await stat(LOG)).mode & 0o777, 0o600);
});
