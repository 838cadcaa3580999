// The TUN device, for real: errors, batched reads and writes, the virtio-net header.
// Scenarios that route packets run in a namespace of their own (test/tun/worker.ts).
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Tun, TunError } from '../../src/tun/index.js';
import { readableCopy, requireRootOrSkip } from '../helpers/netns.js';

const exec = promisify(execFile);
const NS = `mpttun-${process.pid}`;
const worker = fileURLToPath(new URL('./worker.js', import.meta.url));

async function scenario<T>(name: string): Promise<T> {
  const { stdout } = await exec('ip', ['netns', 'exec', NS, process.execPath, worker, name], { timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

test.before(async () => {
  await exec('ip', ['netns', 'del', NS]).catch(() => undefined);
  if (process.getuid?.() === 0) {
    await exec('ip', ['netns', 'add', NS]);
    await exec('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  }
});
test.after.always(async () => {
  await exec('ip', ['netns', 'del', NS]).catch(() => undefined);
});

test.serial('a name already taken is refused with a clear error', (t) => {
  if (!requireRootOrSkip(t)) return;
  const a = Tun.open({ name: 'mpttaken0' });
  try {
    const err = t.throws(() => Tun.open({ name: 'mpttaken0' }), { instanceOf: TunError });
    t.is(err?.code, 'EBUSY');
    t.regex(err?.message ?? '', /name is taken/);
  } finally {
    a.close();
  }
  // closed: the name is free again
  const b = Tun.open({ name: 'mpttaken0' });
  t.is(b.name, 'mpttaken0');
  b.close();
});

test.serial('a name too long is refused', (t) => {
  if (!requireRootOrSkip(t)) return;
  const err = t.throws(() => Tun.open({ name: 'mptun-name-far-too-long' }), { instanceOf: TunError });
  t.is(err?.code, 'EINVAL');
});

test.serial('without CAP_NET_ADMIN the error says to run with sudo', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // the unprivileged user runs a copy of the module and the addon, since the clone may be where
  // it cannot enter (/root, a mktemp -d folder)
  const src = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
  const dir = readableCopy({
    'package.json': src('../../../package.json'),
    'dist/src/tun/index.js': src('../../src/tun/index.js'),
    'dist/src/ip/vnet.js': src('../../src/ip/vnet.js'),
    'build/Release/mptun_tun.node': src('../../../build/Release/mptun_tun.node'),
  });
  const script = `import('${pathToFileURL(join(dir, 'dist/src/tun/index.js')).href}').then(m => { try { m.Tun.open({ name: 'mptnoroot0' }); console.log('opened'); } catch (e) { console.log(e.code + ': ' + e.message); } })`;
  let stdout: string;
  try {
    ({ stdout } = await exec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, '-e', script], { cwd: '/' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.regex(stdout, /^EPERM: .*run with sudo/);
});

test.serial('reads come in batches and start() calls back once per batch', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const r = await scenario<{ batches: number[]; payloads: string[]; cbCounts: number[]; stats: { rxPackets: number; rxBatches: number } }>('batchedRead');
  const udp = r.payloads.filter((p) => p.startsWith('datagram '));
  t.is(udp.length, 200, 'every datagram read');
  t.deepEqual(udp, Array.from({ length: 200 }, (_, i) => `datagram ${i}`), 'in order and intact');
  t.true(r.batches.length < 200 / 8, `batched reads (${r.batches.join(',')})`);
  t.true(Math.max(...r.batches) > 1);
  const cbTotal = r.cbCounts.reduce((a, b) => a + b, 0);
  t.true(cbTotal >= 100, 'start() delivered the second burst');
  t.true(r.cbCounts.length < cbTotal, 'fewer callbacks than packets');
});

test.serial('writeBatch hands every packet to the kernel', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const r = await scenario<{ written: number; got: string[]; stats: { txPackets: number; txErrors: number } }>('batchedWrite');
  t.is(r.written, 50);
  t.is(r.stats.txErrors, 0);
  t.deepEqual([...r.got].sort(), Array.from({ length: 50 }, (_, i) => `written ${i}`).sort());
});

test.serial('with vnet_hdr and offloads a kernel TCP SYN arrives with a partial checksum', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const r = await scenario<{ seen: Array<{ needsCsum: boolean; protocol: number; csumStart: number; csumOffset: number; headerLen: number; gsoType: number }> }>('vnetHeader');
  const syn = r.seen.find((s) => s.protocol === 6);
  t.truthy(syn, `a TCP packet was read: ${JSON.stringify(r.seen)}`);
  t.is(syn!.gsoType, 0);
  t.true(syn!.needsCsum);
  t.is(syn!.csumStart, syn!.headerLen, 'checksum starts at the TCP header');
  t.is(syn!.csumOffset, 16, 'TCP checksum field');
});
