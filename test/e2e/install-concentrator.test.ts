// scripts/install.sh installs the concentrator's unit too (mptun-server.service, for a VPS), into a
// scratch root: what it runs (its arguments from MPTUN_SERVER_ARGS, which /etc/mptun/server.env
// may replace), what it may do, that systemd accepts it (`systemd-analyze verify`), that install
// does not enable it, and that uninstall removes it with the rest. (test/e2e/install.test.ts
// checks the install as a whole and mptun.service for real.)
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireRootOrSkip, run } from '../helpers/netns.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const INSTALL = join(REPO, 'scripts/install.sh');
const BIN = '/usr/local/bin/mptun';
const UNIT = '/etc/systemd/system/mptun-server.service';
const MANIFEST = '/usr/local/lib/mptun/install-manifest';

const scratch: string[] = [];
test.after.always(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/** The unit's `Key=value` lines (the last of each key). */
function unitKeys(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) keys.set(m[1]!, m[2]!);
  }
  return keys;
}

test.serial('install.sh puts mptun-server.service in place (not enabled), systemd accepts it, uninstall removes it', async (t) => {
  if (!requireRootOrSkip(t, 'needs root (install.sh makes root-owned files)')) return;
  const root = mkdtempSync(join(tmpdir(), 'mptc2-root-'));
  scratch.push(root);
  const r = await run('bash', [INSTALL, '--root', root], { timeout: 300_000, cwd: '/' });
  t.regex(r.stdout, /units mptun\.service mptun-server\.service in \/etc\/systemd\/system/);
  const st = statSync(join(root, UNIT));
  t.is(st.mode & 0o777, 0o644);
  t.true(readFileSync(join(root, MANIFEST), 'utf8').split('\n').includes(`f\t${UNIT}`), 'in the manifest');
  t.false(existsSync(join(root, '/etc/systemd/system/multi-user.target.wants/mptun-server.service')), 'not enabled by install');

  const unit = readFileSync(join(root, UNIT), 'utf8');
  const keys = unitKeys(unit);
  t.is(keys.get('ExecStart'), `${BIN} server $MPTUN_SERVER_ARGS`, 'the arguments, split into words by systemd');
  t.is(keys.get('Environment'), '"MPTUN_SERVER_ARGS=--listen 7443 --key /etc/mptun/key"');
  t.is(keys.get('EnvironmentFile'), '-/etc/mptun/server.env', 'an optional file replaces them');
  t.is(keys.get('Restart'), 'on-failure');
  t.is(keys.get('CapabilityBoundingSet'), 'CAP_NET_ADMIN CAP_NET_BIND_SERVICE');
  t.is(keys.get('RuntimeDirectory'), 'mptun', '/run/mptun, for the control socket of `mptun server status`');
  t.is(keys.get('WantedBy'), 'multi-user.target');
  t.regex(unit, /mptun server --genkey \/etc\/mptun\/key/, 'the unit says how to make the key');

  // systemd-analyze verify, with the command at a path that exists here (the copy's node entry)
  const dir = mkdtempSync(join(tmpdir(), 'mptc2-verify-'));
  scratch.push(dir);
  writeFileSync(join(dir, 'mptun-server.service'), unit.replaceAll(BIN, join(root, BIN)));
  const v = await run('systemd-analyze', ['verify', '--man=no', join(dir, 'mptun-server.service')], { check: false });
  t.deepEqual({ code: v.code, out: (v.stdout + v.stderr).trim() }, { code: 0, out: '' }, 'systemd-analyze verify: no complaint');

  // the default arguments are ones `mptun server` takes (its usage names each)
  const help = await run(process.execPath, [join(REPO, 'bin/mptun.js'), 'server', '--help']);
  for (const opt of ['--listen', '--key']) t.true(help.stdout.includes(opt), opt);

  await run('bash', [INSTALL, '--uninstall', '--purge', '--root', root], { timeout: 120_000, cwd: '/' });
  t.false(existsSync(join(root, UNIT)), 'uninstall removes it');
});
