// bench/tun-io: how fast packets move through mptun's TUN device.
//
// Two namespaces, A and B. One process (bench/tun-io-copier) opens two TUN devices, keeps one
// in A and moves the other to B, and copies every batch it reads from one device to the other.
// iperf3 runs from A to B through it: without vnet_hdr (one MTU-size packet per read) and
// with vnet_hdr + TSO/CSUM offloads (64 KiB super-segments). In the same run, the kernel alone
// is measured on a veth pair between the same namespaces. Prints JSON.
//
//   sudo node dist/bench/tun-io.js [--seconds 5]
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';

const exec = promisify(execFile);
const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, prefix: { type: 'string', default: 'mptbio' } } });
const seconds = Number(values.seconds);
const P = values.prefix!;
const NS_A = `${P}-a`;
const NS_B = `${P}-b`;

async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await exec(cmd, args, { timeout: 60_000 });
  return stdout;
}
const ipn = (ns: string, ...args: string[]) => sh('ip', ['-n', ns, ...args]);
const inNs = (ns: string, cmd: string, ...args: string[]) => sh('ip', ['netns', 'exec', ns, cmd, ...args]);

async function teardown(): Promise<void> {
  for (const ns of [NS_A, NS_B]) await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
}

async function setup(): Promise<void> {
  await teardown();
  for (const ns of [NS_A, NS_B]) {
    await sh('ip', ['netns', 'add', ns]);
    await ipn(ns, 'link', 'set', 'lo', 'up');
  }
  // the kernel's own path, for the baseline: a veth pair
  await ipn(NS_A, 'link', 'add', `${P}va`, 'type', 'veth', 'peer', 'name', `${P}vb`, 'netns', NS_B);
  await ipn(NS_A, 'addr', 'add', '10.250.9.1/24', 'dev', `${P}va`);
  await ipn(NS_B, 'addr', 'add', '10.250.9.2/24', 'dev', `${P}vb`);
  await ipn(NS_A, 'link', 'set', `${P}va`, 'up');
  await ipn(NS_B, 'link', 'set', `${P}vb`, 'up');
}

interface IperfResult { gbps: number; retransmits: number }

async function iperf(dst: string): Promise<IperfResult> {
  const server = spawn('ip', ['netns', 'exec', NS_B, 'iperf3', '-s', '-1', '-B', dst], { stdio: 'ignore' });
  try {
    // wait for the server to listen
    for (let i = 0; i < 50; i++) {
      const ss = await inNs(NS_B, 'ss', '-Htln', 'sport', '= :5201');
      if (ss.trim()) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const out = await inNs(NS_A, 'iperf3', '-c', dst, '-t', String(seconds), '-J');
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } } };
    return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent.retransmits ?? 0 };
  } finally {
    server.kill();
  }
}

interface CopierStats { a: { rxPackets: number; rxBatches: number; rxBytes: number }; b: { rxPackets: number; rxBatches: number } }

async function throughTun(offload: boolean) {
  const copierPath = fileURLToPath(new URL('./tun-io-copier.js', import.meta.url));
  const args = ['netns', 'exec', NS_A, process.execPath, copierPath, '--peer-ns', NS_B];
  if (offload) args.push('--offload');
  const copier: ChildProcess = spawn('ip', args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  copier.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  try {
    while (!out.includes('ready')) {
      await Promise.race([once(copier.stdout!, 'data'), once(copier, 'exit').then(() => { throw new Error('copier exited'); })]);
    }
    await ipn(NS_B, 'addr', 'add', '10.250.1.1/32', 'dev', 'mptbioB');
    await ipn(NS_B, 'link', 'set', 'mptbioB', 'up');
    await ipn(NS_B, 'route', 'add', '10.250.0.0/24', 'dev', 'mptbioB');
    const before = out.length;
    const r = await iperf('10.250.1.1');
    copier.kill('SIGTERM');
    await once(copier, 'exit');
    const stats = JSON.parse(out.slice(before).trim().split('\n').pop()!) as CopierStats;
    const packets = stats.a.rxPackets + stats.b.rxPackets;
    return {
      gbps: +r.gbps.toFixed(2),
      retransmits: r.retransmits,
      packetsPerSecond: Math.round(packets / seconds),
      packetsPerBatch: +(packets / (stats.a.rxBatches + stats.b.rxBatches)).toFixed(1),
      bytesPerPacketAtoB: Math.round(stats.a.rxBytes / stats.a.rxPackets),
    };
  } finally {
    if (copier.exitCode === null) copier.kill('SIGKILL');
  }
}

const cleanup = () => { void teardown().finally(() => process.exit(1)); };
process.on('SIGINT', cleanup);
process.on('SIGTERM', cleanup);

try {
  await setup();
  const kernel = await iperf('10.250.9.2');
  const plain = await throughTun(false);
  const offload = await throughTun(true);
  const result = {
    bench: 'tun-io',
    seconds,
    kernelVeth: { gbps: +kernel.gbps.toFixed(2) },
    tun: plain,
    tunVnetHdrTso: offload,
    ratioToKernel: { tun: +(plain.gbps / kernel.gbps).toFixed(3), tunVnetHdrTso: +(offload.gbps / kernel.gbps).toFixed(3) },
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await teardown();
}
