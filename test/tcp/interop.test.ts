// mptun's TCP against the Linux kernel's TCP, through a real TUN device, in both roles:
// kernel client → mptun, and mptun → kernel server; gigabyte transfers whose sha256 match;
// loss made in the kernel (nftables numgen); SACK off (NewReno); IPv6; and Wireshark's
// dissector finds every segment mptun wrote well formed with good checksums.
//
// Topology: namespace A holds the kernel's application (node:net); namespace M holds mptun's
// TUN device and forwards between a veth to A and the device, so loss made by nftables in M's
// forward hook is loss on the wire for both directions (a drop in the sender's own output path
// would only be a local congestion signal to the kernel, never a gap at the receiver).
//
//   A: 10.77.0.1, fd77::1 ──veth── M: 10.77.0.2, fd77::2 ── forwarding ── mptio0 (mptun)
//   A routes 192.0.2.0/24 and 2001:db8:77::/64 (the addresses mptun answers for) via M.
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inNetns, requireRootOrSkip, run, spawnInNetns, waitFor, type Spawned } from '../helpers/netns.js';

const worker = fileURLToPath(new URL('./interop-worker.js', import.meta.url));
const peer = fileURLToPath(new URL('./kernel-peer.js', import.meta.url));
const DEV = 'mptio0';
let nsCount = 0;
const namespaces: string[] = [];

interface Report { event: string; bytes?: number; sha256?: string; peerSha256?: string; gbps?: number; counters?: Record<string, number> }

const lines = (s: Spawned): Report[] => s.stdout().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Report);
const find = (s: Spawned, event: string) => lines(s).find((r) => r.event === event);

interface Bed { app: string; mptun: string }

async function namespace(): Promise<Bed> {
  const base = `mptio${process.pid % 100000}-${nsCount++}`;
  const bed = { app: `${base}a`, mptun: `${base}m` };
  for (const ns of [bed.app, bed.mptun]) {
    await run('ip', ['netns', 'del', ns], { check: false });
    await run('ip', ['netns', 'add', ns]);
    namespaces.push(ns);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  await run('ip', ['-n', bed.app, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'm0', 'netns', bed.mptun]);
  await run('ip', ['-n', bed.app, 'addr', 'add', '10.77.0.1/24', 'dev', 'a0']);
  await run('ip', ['-n', bed.app, 'addr', 'add', 'fd77::1/64', 'dev', 'a0', 'nodad']);
  await run('ip', ['-n', bed.mptun, 'addr', 'add', '10.77.0.2/24', 'dev', 'm0']);
  await run('ip', ['-n', bed.mptun, 'addr', 'add', 'fd77::2/64', 'dev', 'm0', 'nodad']);
  await run('ip', ['-n', bed.app, 'link', 'set', 'a0', 'up']);
  await run('ip', ['-n', bed.mptun, 'link', 'set', 'm0', 'up']);
  await run('ip', ['-n', bed.app, 'route', 'add', '192.0.2.0/24', 'via', '10.77.0.2']);
  await run('ip', ['-n', bed.app, 'route', 'add', '2001:db8:77::/64', 'via', 'fd77::2']);
  for (const kv of ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']) {
    await inNetns(bed.mptun, 'sysctl', ['-qw', kv]);
  }
  return bed;
}

test.after.always(async () => {
  for (const ns of namespaces) await run('ip', ['netns', 'del', ns], { check: false });
});

async function startWorker(ns: string, args: string[]): Promise<Spawned> {
  const w = spawnInNetns(ns, process.execPath, [worker, ...args]);
  await waitFor('mptun ready', () => w.stdout().includes('"ready"') || w.child.exitCode !== null, { timeout: 15_000 });
  if (!w.stdout().includes('"ready"')) throw new Error(`mptun worker failed: ${w.stderr()}`);
  return w;
}

/** Drops `pct` % of the TCP packets forwarded in each direction between A and mptun. */
async function kernelLoss(ns: string, pct: number): Promise<void> {
  const rules = `table inet mptioloss {
    chain to_mptun { type filter hook forward priority 0; oifname "${DEV}" meta l4proto tcp numgen random mod 100 < ${pct} counter drop; }
    chain from_mptun { type filter hook forward priority 1; iifname "${DEV}" meta l4proto tcp numgen random mod 100 < ${pct} counter drop; }
  }`;
  await inNetns(ns, '/usr/sbin/nft', ['-f', '-'], { input: rules });
}

async function lossDrops(ns: string): Promise<number> {
  const r = await inNetns(ns, '/usr/sbin/nft', ['list', 'table', 'inet', 'mptioloss']);
  return [...r.stdout.matchAll(/packets (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}

async function kernelToMptun(t: ExecutionContext, opts: { bytes: number; offload: boolean; loss?: number; v6?: boolean; sack?: boolean }) {
  const bed = await namespace();
  if (opts.sack === false) await inNetns(bed.app, 'sysctl', ['-qw', 'net.ipv4.tcp_sack=0']);
  const w = await startWorker(bed.mptun, ['--mode', 'serve', '--tun', DEV, ...(opts.offload ? ['--offload'] : [])]);
  try {
    if (opts.loss) await kernelLoss(bed.mptun, opts.loss);
    const dst = opts.v6 ? '[2001:db8:77::9]:5001' : '192.0.2.9:5001';
    const k = await inNetns(bed.app, process.execPath, [peer, '--mode', 'send', '--connect', dst, '--bytes', String(opts.bytes)], { timeout: 240_000 });
    const sent = JSON.parse(k.stdout.trim().split('\n').pop()!) as Report;
    await waitFor('mptun report', () => find(w, 'received') !== undefined, { timeout: 10_000 });
    const got = find(w, 'received')!;
    t.is(got.bytes, opts.bytes, 'mptun received every byte');
    t.is(got.sha256, sent.sha256, 'sha256 at mptun = sha256 the kernel sent');
    t.is(sent.peerSha256, sent.sha256, 'the kernel read back the same digest over mptun\'s send path');
    t.log(`kernel → mptun: ${(opts.bytes / 1e6).toFixed(0)} MB at ${sent.gbps?.toFixed(2)} Gbit/s; mptun counters ${JSON.stringify(got.counters)}`);
    if (opts.loss) t.true((await lossDrops(bed.mptun)) > 0, 'the kernel dropped packets');
    return { bed, w, got };
  } finally {
    await w.stop();
  }
}

async function mptunToKernel(t: ExecutionContext, opts: { bytes: number; offload: boolean; loss?: number; v6?: boolean }) {
  const bed = await namespace();
  const k = spawnInNetns(bed.app, process.execPath, [peer, '--mode', 'serve', '--listen', opts.v6 ? '[::]:5002' : '0.0.0.0:5002']);
  try {
    await waitFor('kernel server', () => k.stdout().includes('listening'));
    if (opts.loss) await kernelLoss(bed.mptun, opts.loss);
    const args = ['--mode', 'send', '--tun', DEV, '--bytes', String(opts.bytes), '--connect', opts.v6 ? '[fd77::1]:5002' : '10.77.0.1:5002'];
    if (opts.offload) args.push('--offload');
    const w = spawnInNetns(bed.mptun, process.execPath, [worker, ...args]);
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([w.exited, new Promise<null>((r) => { timer = setTimeout(() => r(null), 240_000); })]);
    clearTimeout(timer);
    if (exit === null) await w.stop('SIGKILL');
    const sent = find(w, 'sent');
    t.truthy(sent, `mptun finished: ${w.stdout().slice(-2000)} ${w.stderr().slice(-2000)}`);
    await waitFor('kernel report', () => k.stdout().includes('received'), { timeout: 10_000 });
    const got = lines(k).find((r) => r.event === 'received')!;
    t.is(got.bytes, opts.bytes, 'the kernel received every byte');
    t.is(got.sha256, sent!.sha256, 'sha256 at the kernel = sha256 mptun sent');
    t.is(sent!.peerSha256, sent!.sha256, 'mptun read back the digest');
    t.log(`mptun → kernel: ${(opts.bytes / 1e6).toFixed(0)} MB at ${got.gbps?.toFixed(2)} Gbit/s; mptun counters ${JSON.stringify(sent!.counters)}`);
    if (opts.loss) t.true((await lossDrops(bed.mptun)) > 0, 'the kernel dropped packets');
    return { bed };
  } finally {
    await k.stop();
  }
}

test.serial('kernel client → mptun server: 1 GB with TSO/GSO offloads, sha256 match', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await kernelToMptun(t, { bytes: 1e9, offload: true });
});

test.serial('mptun client → kernel server: 1 GB with TSO/GSO offloads, sha256 match', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await mptunToKernel(t, { bytes: 1e9, offload: true });
});

test.serial('kernel client → mptun with 1 % loss made by the kernel (nft numgen)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await kernelToMptun(t, { bytes: 200e6, offload: false, loss: 1 });
});

test.serial('mptun client → kernel with 1 % loss made by the kernel (nft numgen)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await mptunToKernel(t, { bytes: 200e6, offload: false, loss: 1 });
});

test.serial('a kernel peer without SACK, with loss: NewReno recovery', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const { got } = await kernelToMptun(t, { bytes: 100e6, offload: false, loss: 1, sack: false });
  t.truthy(got.counters);
});

test.serial('IPv6 both ways', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await kernelToMptun(t, { bytes: 200e6, offload: true, v6: true });
  await mptunToKernel(t, { bytes: 200e6, offload: true, v6: true });
});

test.serial('every segment mptun writes dissects clean in tshark (IPv4 and IPv6, both roles)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'mptio-'));
  try {
    for (const [role, v6] of [['serve', false], ['send', false], ['serve', true], ['send', true]] as const) {
      const bed = await namespace();
      const what = `${role} v${v6 ? 6 : 4}`;
      const pcap = join(dir, `${role}-${v6 ? 6 : 4}.pcap`);
      // capture on the veth: what mptun wrote, after forwarding (checksums as written by mptun: no offload here)
      const cap = spawnInNetns(bed.app, 'tcpdump', ['-i', 'a0', '-U', '-s', '0', '-c', '20000', '-w', pcap, 'tcp']);
      await waitFor('tcpdump', () => cap.stderr().includes('listening on'));
      if (role === 'serve') {
        const w = await startWorker(bed.mptun, ['--mode', 'serve', '--tun', DEV]);
        await inNetns(bed.app, process.execPath, [peer, '--mode', 'send', '--connect', v6 ? '[2001:db8:77::9]:5001' : '192.0.2.9:5001', '--bytes', '20000000'], { timeout: 60_000 });
        await w.stop();
      } else {
        const k = spawnInNetns(bed.app, process.execPath, [peer, '--mode', 'serve', '--listen', v6 ? '[::]:5002' : '0.0.0.0:5002']);
        await waitFor('kernel server', () => k.stdout().includes('listening'));
        const w = spawnInNetns(bed.mptun, process.execPath, [worker, '--mode', 'send', '--tun', DEV, '--bytes', '20000000', '--connect', v6 ? '[fd77::1]:5002' : '10.77.0.1:5002']);
        await waitFor('mptun sent', () => w.stdout().includes('"sent"') || w.child.exitCode !== null, { timeout: 60_000 });
        await w.stop();
        await k.stop();
      }
      await new Promise((r) => setTimeout(r, 300));
      await cap.stop('SIGINT');
      // packets that mptun wrote: from 192.0.2.0/24 or 2001:db8:77::/64
      const filter = v6 ? 'ipv6.src == 2001:db8:77::/64' : 'ip.src == 192.0.2.0/24';
      const r = await run('tshark', ['-r', pcap, '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-Y', filter, '-T', 'fields', '-E', 'separator=;',
        '-e', 'tcp.checksum.status', '-e', 'ip.checksum.status', '-e', '_ws.malformed', '-e', '_ws.expert.severity'], { timeout: 60_000 });
      const rows = r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split(';'));
      t.true(rows.length > 50, `${what}: ${rows.length} packets of mptun's dissected`);
      const badSum = rows.filter((c) => c[0] !== '1' || (!v6 && c[1] !== '1'));
      const malformed = rows.filter((c) => c[2] !== '');
      // expert severity 8388608 = error (malformed, bad checksum)
      const errors = rows.filter((c) => (c[3] ?? '').split(',').some((sev) => Number(sev) >= 8388608));
      t.is(badSum.length, 0, `${what}: bad checksums ${JSON.stringify(badSum.slice(0, 3))}`);
      t.is(malformed.length, 0, `${what}: malformed`);
      t.is(errors.length, 0, `${what}: expert errors ${JSON.stringify(errors.slice(0, 3))}`);
      t.log(`${what}: ${rows.length} segments of mptun's, all clean`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
