// scripts/install.sh: mptun installed as a system tool, and removed again.
//  - into a scratch root (--root): the files, their modes, the manifest that lists exactly what
//    install made; a second install changes nothing; a config the user had, or changed, is kept;
//    uninstall leaves the root exactly as it was; the unit file passes `systemd-analyze verify`;
//  - for real, into /: `mptun` on the PATH works from / (not the clone); the unit's ExecStart runs
//    in the client namespace of the two-link bed with what the unit allows (CAP_NET_ADMIN only,
//    no new privileges, systemd's PATH, cwd /), carries a TCP transfer to the kernel's MPTCP, is
//    stopped as systemd stops it (SIGTERM to the main pid, then ExecStopPost; and after a
//    SIGKILL), and the namespace's routing is then what it was; uninstall leaves nothing.
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  inNetns, parseEnvLines, requireRootOrSkip, run, spawnCommand, spawnInNetns, systemEnv, waitFor, waitForPort, type Spawned,
} from '../helpers/netns.js';

const PREFIX = 'mptin';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const INSTALL = join(REPO, 'scripts/install.sh');
const TESTBED = join(REPO, 'scripts/testbed.sh');
const CLONE_MPTUN = join(REPO, 'bin/mptun.js');
const PEER = fileURLToPath(new URL('../tcp/kernel-peer.js', import.meta.url));
const STATE_DIR = `/run/mptun-${PREFIX}`;
const SOCKET = `${STATE_DIR}/control.sock`;
const LIB = '/usr/local/lib/mptun';
const BIN = '/usr/local/bin/mptun';
const UNIT = '/etc/systemd/system/mptun.service';
const ETC = '/etc/mptun';
const CONFIG = `${ETC}/mptun.yaml`;
const MANIFEST = `${LIB}/install-manifest`;
/** The first line of the config this test writes into /etc/mptun: how a leftover of it is known. */
const MARK = `# written by mptun's test/e2e/install.test.ts (${PREFIX})`;
/** The environment systemd gives a system service: its PATH, nothing of this process. */
const SYSTEMD_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };

function install(args: string[], opts: { check?: boolean } = {}) {
  return run('bash', [INSTALL, ...args], { timeout: 300_000, cwd: '/', ...opts });
}

/** Everything under `dir`: path -> type, mode, owner and content hash (not times). */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    const abs = join(dir, rel);
    const st = lstatSync(abs);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isDirectory()) {
      out.set(rel || '/', `d ${mode} ${st.uid}:${st.gid}`);
      for (const e of readdirSync(abs).sort()) walk(`${rel}/${e}`);
    } else if (st.isSymbolicLink()) {
      out.set(rel, `l -> ${readlinkSync(abs)}`);
    } else {
      out.set(rel, `f ${mode} ${st.uid}:${st.gid} ${createHash('sha256').update(readFileSync(abs)).digest('hex')}`);
    }
  };
  walk('');
  return out;
}

function diff(a: Map<string, string>, b: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) lines.push(`- ${k} ${v}`);
  for (const [k, v] of b) if (a.get(k) !== v) lines.push(`+ ${k} ${v}`);
  return lines;
}

interface Manifest { dirs: string[]; files: string[]; config: { path: string; sha256: string } | null }

function readManifest(root: string): Manifest {
  const m: Manifest = { dirs: [], files: [], config: null };
  for (const line of readFileSync(join(root, MANIFEST), 'utf8').split('\n')) {
    const [kind, path, sha] = line.split('\t');
    if (kind === 'd') m.dirs.push(path!);
    else if (kind === 'f') m.files.push(path!);
    else if (kind === 'c') m.config = { path: path!, sha256: sha! };
  }
  return m;
}

/** The unit's `Key=value` lines (the last of each key). */
function unitKeys(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) keys.set(m[1]!, m[2]!);
  }
  return keys;
}

/** `systemd-analyze verify` of the unit text, with its commands at `binPath`: its complaints. */
async function verifyUnit(text: string, binPath: string): Promise<{ code: number | null; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}-verify-`));
  try {
    writeFileSync(join(dir, 'mptun.service'), text.replaceAll(BIN, binPath));
    const r = await run('systemd-analyze', ['verify', '--man=no', join(dir, 'mptun.service')], { check: false });
    return { code: r.code, out: (r.stdout + r.stderr).trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const scratch: string[] = [];
function scratchRoot(): string {
  const d = mkdtempSync(join(tmpdir(), `${PREFIX}-root-`));
  scratch.push(d);
  return d;
}

test.after.always(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

test.serial('install into a scratch root: what it puts where, a manifest of exactly that, and uninstall leaves the root as it was', async (t) => {
  if (!requireRootOrSkip(t, 'needs root (install.sh makes root-owned files)')) return;
  const root = scratchRoot();
  // a root with something of its own in the directories install writes to, and an /etc (as
  // every root has: a later --purge removes /etc/mptun, not the directories above it)
  mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'usr/local/bin/other-tool'), '#!/bin/sh\n', { mode: 0o755 });
  const before = snapshot(root);

  const r = await install(['--root', root]);
  t.regex(r.stdout, /wrote \/etc\/mptun\/mptun.yaml/);
  const after = snapshot(root);
  const m = readManifest(root);
  const listed = new Set([...m.dirs, ...m.files, ...(m.config ? [m.config.path] : [])]);
  const made = [...after.keys()].filter((p) => !before.has(p));
  t.deepEqual(made.filter((p) => !listed.has(p)), [], 'everything install made is in the manifest');
  t.deepEqual([...listed].filter((p) => !after.has(p)), [], 'everything in the manifest is there');
  t.deepEqual([...before.keys()].filter((p) => after.get(p) !== before.get(p)), [], 'nothing of the root\'s own was changed');

  for (const p of [...after.keys()].filter((k) => k.startsWith(LIB))) {
    const [kind, mode, owner] = after.get(p)!.split(' ');
    t.is(owner, '0:0', `${p} is root's`);
    t.is(Number.parseInt(mode!, 8) & 0o022, 0, `${p} is written by root only (${mode})`);
    if (kind === 'l') t.fail(`${p} is a symlink: the copy must not point outside itself`);
  }
  t.regex(after.get(BIN)!, /^f 755 0:0/);
  t.regex(after.get(UNIT)!, /^f 644 0:0/);
  t.regex(after.get(CONFIG)!, /^f 644 0:0/);
  t.regex(after.get(`${LIB}/build/Release/mptun_tun.node`)!, /^f 755/);
  t.true(after.has(`${LIB}/node_modules/yaml/package.json`) && after.has(`${LIB}/node_modules/netlink/package.json`), 'the production dependencies');
  t.false(after.has(`${LIB}/node_modules/ava`) || after.has(`${LIB}/node_modules/typescript`), 'no dev tools');
  t.false([...after.keys()].some((p) => p.startsWith(`${LIB}/dist/test`)), 'no tests');

  // the wrapper runs the copy with an absolute node; the copy runs from / without the clone
  const wrapper = readFileSync(join(root, BIN), 'utf8');
  t.regex(wrapper, new RegExp(`^exec /\\S+ ${LIB}/bin/mptun.js "\\$@"$`, 'm'));
  const v = await run(process.execPath, [join(root, LIB, 'bin/mptun.js'), '--version'], { cwd: '/', env: SYSTEMD_ENV });
  t.regex(v.stdout, /^mptun \d+\.\d+\.\d+/);
  // the installed config is the full example, all commented out: the defaults
  const { loadConfig, DEFAULT_CONFIG } = await import(join(root, LIB, 'dist/src/cli/config.js')) as typeof import('../../src/cli/config.js');
  t.deepEqual(await loadConfig({ config: join(root, CONFIG) }), await loadConfig({}));
  t.is(DEFAULT_CONFIG.stateDir, '/run/mptun');
  t.regex(readFileSync(join(root, CONFIG), 'utf8'), /^# paths:$/m);

  // the unit: what it runs, how it stops, and that systemd accepts it
  const unit = readFileSync(join(root, UNIT), 'utf8');
  const keys = unitKeys(unit);
  t.is(keys.get('ExecStart'), `${BIN} up --config ${CONFIG}`);
  t.is(keys.get('ExecStopPost'), `${BIN} down --config ${CONFIG}`);
  t.is(keys.get('Restart'), 'on-failure');
  t.is(keys.get('CapabilityBoundingSet'), 'CAP_NET_ADMIN');
  t.is(keys.get('DeviceAllow'), '/dev/net/tun rw');
  t.is(keys.get('WantedBy'), 'multi-user.target');
  const verified = await verifyUnit(unit, join(root, BIN));
  t.deepEqual(verified, { code: 0, out: '' }, 'systemd-analyze verify: no complaint');
  const bad = await verifyUnit(unit.replace('Restart=on-failure', 'Restart=sometimes'), join(root, BIN));
  t.regex(bad.out, /restart specifier.*sometimes/, 'and verify does complain about a bad unit');

  // install again: the same files, the same manifest
  await install(['--root', root]);
  t.deepEqual(diff(after, snapshot(root)), [], 'a second install changes nothing');

  // a changed config is kept by uninstall, which says so; --purge removes it
  writeFileSync(join(root, CONFIG), 'logLevel: debug\n');
  const u = await install(['--uninstall', '--root', root]);
  t.regex(u.stdout, /kept \/etc\/mptun\/mptun.yaml: changed since install/);
  const kept = diff(before, snapshot(root));
  t.deepEqual(kept.map((l) => l.split(' ').slice(0, 2).join(' ')), ['+ /etc/mptun', '+ /etc/mptun/mptun.yaml'], 'only the changed config and its directories are left');
  const p = await install(['--uninstall', '--purge', '--root', root]);
  t.regex(p.stdout, /--purge: removed \/etc\/mptun/);
  t.deepEqual(diff(before, snapshot(root)), [], 'after --purge the root is exactly as before');
  const again = await install(['--uninstall', '--root', root]);
  t.regex(again.stdout, /not installed/);
  t.deepEqual(diff(before, snapshot(root)), [], 'uninstall again: nothing to do');

  // an unchanged config goes with the rest, without --purge
  await install(['--root', root]);
  await install(['--uninstall', '--root', root]);
  t.deepEqual(diff(before, snapshot(root)), [], 'install + uninstall: exactly as before');
});

test.serial('a config the user already had is never overwritten, and stays after uninstall', async (t) => {
  if (!requireRootOrSkip(t, 'needs root (install.sh makes root-owned files)')) return;
  const root = scratchRoot();
  mkdirSync(join(root, 'etc/mptun'), { recursive: true });
  writeFileSync(join(root, 'etc/mptun/mptun.yaml'), 'paths: [eth0]\n');
  const before = snapshot(root);
  const r = await install(['--root', root]);
  t.regex(r.stdout, /kept \/etc\/mptun\/mptun.yaml \(yours: there before install\)/);
  t.is(readFileSync(join(root, CONFIG), 'utf8'), 'paths: [eth0]\n');
  t.is(readManifest(root).config, null, 'the manifest does not claim it');
  const u = await install(['--uninstall', '--root', root]);
  t.regex(u.stdout, /kept \/etc\/mptun\/mptun.yaml: it was there before install/);
  t.deepEqual(diff(before, snapshot(root)), []);
});

test.serial('install.sh refuses an mptun it did not install, rather than clobbering it', async (t) => {
  if (!requireRootOrSkip(t, 'needs root (install.sh makes root-owned files)')) return;
  const root = scratchRoot();
  mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
  writeFileSync(join(root, 'usr/local/bin/mptun'), '#!/bin/sh\necho mine\n', { mode: 0o755 });
  const before = snapshot(root);
  const r = await install(['--root', root], { check: false });
  t.is(r.code, 1);
  t.regex(r.stderr, /without an install manifest: not made by this script/);
  const u = await install(['--uninstall', '--root', root], { check: false });
  t.is(u.code, 1);
  t.deepEqual(diff(before, snapshot(root)), [], 'neither touched it');
});

// --- for real, into / --------------------------------------------------------------------------

let topo: Record<string, string> = {};
let installedHere = false;
let mptun: Spawned | null = null;
const bedEnv = systemEnv({ TESTBED_PREFIX: PREFIX });
const bed = (args: string[], check = true) => run('bash', [TESTBED, ...args], { env: bedEnv, timeout: 60_000, check });
const cli = () => topo.TESTBED_NS_CLIENT!;
const srv = () => topo.TESTBED_NS_SERVER!;

/** The client namespace's rules, routes and nftables, lines sorted within each part. */
async function routingSnapshot(): Promise<string> {
  const parts: string[] = [];
  for (const args of [['rule'], ['-6', 'rule'], ['route', 'show', 'table', 'all'], ['-6', 'route', 'show', 'table', 'all']]) {
    parts.push((await inNetns(cli(), 'ip', args)).stdout);
  }
  parts.push((await inNetns(cli(), '/usr/sbin/nft', ['list', 'ruleset'])).stdout);
  // IPv6 link-local routes come and go with the kernel's autoconfiguration, not with mptun
  return parts.map((p) => p.split('\n').filter((l) => !l.includes('fe80::')).sort().join('\n')).join('\n----\n');
}

/** Names under the directories install writes to, to see that uninstall leaves none behind. */
function systemListing(): string[] {
  const out: string[] = [];
  for (const d of ['/usr/local/bin', '/usr/local/lib', '/etc/systemd/system', '/etc']) {
    if (existsSync(d)) for (const e of readdirSync(d)) out.push(`${d}/${e}`);
  }
  return out.sort();
}

/** An earlier run of this test that died half-way left its install: known by its config. */
function leftoverOfThisTest(): boolean {
  return existsSync(CONFIG) && readFileSync(CONFIG, 'utf8').startsWith(MARK);
}

test.after.always(async () => {
  if (mptun) await mptun.stop('SIGKILL');
  if (topo.TESTBED_NS_CLIENT) {
    await inNetns(cli(), process.execPath, [CLONE_MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
    await bed(['down'], false);
  }
  if (installedHere || leftoverOfThisTest()) await install(['--uninstall', '--purge'], { check: false });
  rmSync(STATE_DIR, { recursive: true, force: true });
});

test.serial('installed for real: `mptun` from any directory, the unit\'s commands run and stop mptun on the bed as systemd would, and uninstall leaves nothing', async (t) => {
  if (!requireRootOrSkip(t)) return;
  if (leftoverOfThisTest()) await install(['--uninstall', '--purge']);
  const ours = [BIN, LIB, UNIT, ETC].filter((p) => existsSync(p));
  if (ours.length > 0) {
    t.fail(`${ours.join(', ')} already exist${ours.length === 1 ? 's' : ''} and this test did not make ${ours.length === 1 ? 'it' : 'them'}: `
      + 'an mptun is installed on this machine. This test installs to / and would replace it: uninstall it first (sudo bash scripts/install.sh --uninstall).');
    return;
  }
  const listingBefore = systemListing();

  installedHere = true;
  await install([]);
  // as `sudo mptun` finds it: sudo's secure_path, from /
  const which = await run('sh', ['-c', 'command -v mptun'], { env: SYSTEMD_ENV, cwd: '/' });
  t.is(which.stdout.trim(), BIN);
  const help = await run('mptun', ['--help'], { env: SYSTEMD_ENV, cwd: '/' });
  t.regex(help.stdout, /mptun up \[--config FILE\]/);
  const verified = await run('systemd-analyze', ['verify', '--man=no', UNIT], { check: false });
  t.deepEqual({ code: verified.code, out: (verified.stdout + verified.stderr).trim() }, { code: 0, out: '' }, 'the installed unit verifies, its commands where it says');

  // the unit's own commands, with the test's state dir in the config they read
  const keys = unitKeys(readFileSync(UNIT, 'utf8'));
  const execStart = keys.get('ExecStart')!.split(/\s+/);
  const execStopPost = keys.get('ExecStopPost')!.split(/\s+/);
  t.deepEqual(execStart.slice(-2), ['--config', CONFIG]);
  writeFileSync(CONFIG, `${MARK}\n${readFileSync(CONFIG, 'utf8')}\nstateDir: ${STATE_DIR}\ncontrolSocket: ${SOCKET}\n`);

  await bed(['up', '--rate', '100', '--no-client-mptcp']);
  topo = parseEnvLines((await bed(['env'])).stdout);
  await inNetns(cli(), process.execPath, [CLONE_MPTUN, 'down', '--state-dir', STATE_DIR], { check: false });
  const before = await routingSnapshot();

  // what the unit allows: CapabilityBoundingSet=CAP_NET_ADMIN, NoNewPrivileges=yes; systemd's
  // environment; WorkingDirectory /. `testbed.sh exec-client` and setpriv exec, so the pid is
  // mptun's own: the unit's main pid.
  const start = () => {
    const p = spawnCommand('bash', [TESTBED, 'exec-client', 'setpriv', '--bounding-set=-all,+net_admin', '--inh-caps=-all', '--no-new-privs', '--', ...execStart],
      { env: { ...SYSTEMD_ENV, TESTBED_PREFIX: PREFIX }, cwd: '/' });
    return p;
  };
  const waitUp = async (p: Spawned) => {
    await waitFor('mptun up', () => p.stderr().includes('mptun info: up:') || p.child.exitCode !== null, { timeout: 15_000 });
    if (p.child.exitCode !== null) throw new Error(`mptun up exited: ${p.stderr()}`);
  };
  const stopPost = () => inNetns(cli(), execStopPost[0]!, execStopPost.slice(1), { env: SYSTEMD_ENV, cwd: '/' });

  mptun = start();
  await waitUp(mptun);
  t.not(await routingSnapshot(), before, 'mptun set up its routing');
  const server = spawnInNetns(srv(), 'mptcpize', ['run', process.execPath, PEER, '--mode', 'serve', '--listen', '0.0.0.0:5011']);
  try {
    await waitForPort(srv(), 5011);
    const r = await inNetns(cli(), process.execPath, [PEER, '--mode', 'send', '--connect', `${topo.TESTBED_SRV_ADDR1}:5011`, '--bytes', '20000000'], { timeout: 60_000 });
    const sent = JSON.parse(r.stdout.trim().split('\n').pop()!) as { sha256: string; peerSha256: string; gbps: number };
    t.is(sent.peerSha256, sent.sha256, '20 MB through the installed mptun, sha256 equal on both ends');
    t.log(`20 MB through the installed mptun at ${(sent.gbps * 1000).toFixed(0)} Mbit/s`);
  } finally {
    await server.stop();
  }
  const st = await inNetns(cli(), 'mptun', ['status', '--json', '--control-socket', SOCKET], { env: SYSTEMD_ENV, cwd: '/' });
  const status = JSON.parse(st.stdout) as { paths: Array<{ bytesOut: number }>; counters: { relay: Record<string, number> } };
  t.true(status.paths.reduce((s, p) => s + p.bytesOut, 0) > 20e6, 'the transfer went through mptun\'s paths');
  t.true(status.paths.every((p) => p.bytesOut > 0), 'both links carried it');

  // systemctl stop: SIGTERM to the main pid, then ExecStopPost
  const exit = await mptun.stop('SIGTERM', 15_000);
  mptun = null;
  t.deepEqual(exit, { code: 0, signal: null }, 'mptun exits cleanly on SIGTERM');
  const post = await stopPost();
  t.regex(post.stdout, /nothing of mptun was set up/, 'after a clean stop, ExecStopPost finds nothing to undo');
  t.is(await routingSnapshot(), before, 'the routing is as before');

  // a crash (SIGKILL): ExecStopPost puts the routing back
  mptun = start();
  await waitUp(mptun);
  await mptun.stop('SIGKILL');
  mptun = null;
  t.not(await routingSnapshot(), before, 'a killed mptun leaves its set-up behind');
  const post2 = await stopPost();
  t.regex(post2.stdout, /undid the record of dead pid/);
  t.is(await routingSnapshot(), before, 'ExecStopPost put the routing back after SIGKILL');

  // uninstall: the changed config is kept, and said so; --purge takes it too
  const u = await install(['--uninstall']);
  t.regex(u.stdout, /kept \/etc\/mptun\/mptun.yaml: changed since install/);
  t.false(existsSync(BIN) || existsSync(LIB) || existsSync(UNIT), 'the command, the copy and the unit are gone');
  t.deepEqual(readdirSync(ETC), ['mptun.yaml']);
  const which2 = await run('sh', ['-c', 'command -v mptun'], { env: SYSTEMD_ENV, cwd: '/', check: false });
  t.true(which2.code !== 0 && which2.stdout.trim() === '', 'mptun is no longer on the PATH');
  await install(['--uninstall', '--purge']);
  installedHere = false;
  t.deepEqual(systemListing(), listingBefore, 'nothing of the install is left');
});
