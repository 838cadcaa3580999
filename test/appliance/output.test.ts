// Output that can fail without consequence (issue 12): a process whose stdout and stderr are
// pipes whose reader has gone (`mptun up | head -1`) logs on, into its log file, and lives.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const APPLIANCE = new URL('../../src/appliance/appliance.js', import.meta.url).href;
const OUTPUT = new URL('../../src/appliance/output.js', import.meta.url).href;

// what `mptun up` does: guards installed, a log file in the state directory, the appliance's
// logger; then log lines while the pipes are closed, and a last line on stdout
const CHILD = `
const { makeLogger } = await import(${JSON.stringify(APPLIANCE)});
const { output } = await import(${JSON.stringify(OUTPUT)});
output.install();
output.setLogFile(process.argv[1]);
const log = makeLogger('debug');
for (let i = 0; i < 100; i++) {
  log.info('line ' + i);
  await new Promise((r) => setTimeout(r, 2));
}
process.stdout.write('to a closed stdout\\n');
log.info('done');
`;

test('the logger survives a closed stderr and stdout: noticed once, the lines go on to the log file (mode 600), the process lives', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mptrb-out-'));
  try {
    const file = join(dir, 'state', 'mptun.log');
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    // the reader goes away at once, as `| head -0` would
    child.stdout.destroy();
    child.stderr.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    t.is(code, 0, 'the process ran to its end');
    const text = await readFile(file, 'utf8');
    t.is(text.match(/is closed \(EPIPE\)/g)?.length ?? 0, 1, 'the broken pipe was noticed once');
    t.regex(text, /mptun info: done\n$/, 'the last line went to the file');
    t.is((await stat(file)).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('with no log file, the lines are dropped and the process lives', async (t) => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD.replace('output.setLogFile(process.argv[1]);', ''), 'unused'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  child.stderr.destroy();
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  t.is(code, 0);
  t.truthy(fileURLToPath(OUTPUT));
});
