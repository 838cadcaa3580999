// bench/tcp: one TCP flow between the Linux kernel and mptun's userspace TCP, through the TUN
// device with vnet_hdr + TSO/GSO offloads, in both directions; and, in the same run, the same
// transfer kernel ↔ kernel over a veth pair (the same node:net program on both ends). Prints JSON.
//
//   sudo node dist/bench/tcp.js [--bytes 2000000000] [--runs 3]
//
// Topology: namespace A (kernel app) ──veth── namespace M (forwarding, mptun's TUN device).
import { execFile, spawn } from 'node:child_process';
import { promisify, parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const exec = promisify(execFile);
const { values } = parseArgs({ options: { bytes: { type: 'string', default: '2000000000' }, runs: { type: 'string', default: '3' } } });
const BYTES = Number(values.bytes);
const RUNS = Number(values.runs);
const A = 'mptbtcp-a';
const M = 'mptbtcp-m';
const worker = fileURLToPath(new URL('../test/tcp/interop-worker.js', import.meta.url));
const peer = fileURLToPath(new URL('../test/tcp/kernel-peer.js', import.meta.url));
const SYS = { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}` };

const sh = async (cmd: string, ...args: string[]) => (await exec(cmd, args, { env: SYS, timeout: 600_000, maxBuffer: 16 << 20 })).stdout;
const inNs = (ns: string, cmd: string, ...args: string[]) => sh('ip', 'netns', 'exec', ns, cmd, ...args);

async function teardown() {
  for (const ns of [A, M]) await sh('ip', 'netns', 'del', ns).catch(() => undefined);
}

async function setup() {
  await teardown();
  for (const ns of [A, M]) {
    await sh('ip', 'netns', 'add', ns);
    await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  }
  await sh('ip', '-n', A, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'm0', 'netns', M);
  await sh('ip', '-n', A, 'addr', 'add', '10.77.0.1/24', 'dev', 'a0');
  await sh('ip', '-n', M, 'addr', 'add', '10.77.0.2/24', 'dev', 'm0');
  await sh('ip', '-n', A, 'link', 'set', 'a0', 'up');
  await sh('ip', '-n', M, 'link', 'set', 'm0', 'up');
  await sh('ip', '-n', A, 'route', 'add', '192.0.2.0/24', 'via', '10.77.0.2');
  await inNs(M, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
}

interface Line { event: string; gbps?: number; sha256?: string; peerSha256?: string }
const parse = (out: string): Line[] => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);

function serve(ns: string, argv: string[]): Promise<{ stop: () => Promise<string> }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { env: SYS, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"ready"') || out.includes('"listening"')) resolve({
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          await exited;
          return out;
        },
      });
    });
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited with ${code}`)));
  });
}

async function kernelToKernel(): Promise<number> {
  const s = await serve(M, [process.execPath, peer, '--mode', 'serve', '--listen', '10.77.0.2:5003']);
  const out = parse(await inNs(A, process.execPath, peer, '--mode', 'send', '--connect', '10.77.0.2:5003', '--bytes', String(BYTES)));
  await s.stop();
  const sent = out.find((l) => l.event === 'sent')!;
  if (sent.sha256 !== sent.peerSha256) throw new Error('kernel ↔ kernel: sha256 mismatch');
  return sent.gbps!;
}

async function kernelToMptun(): Promise<number> {
  const s = await serve(M, [process.execPath, worker, '--mode', 'serve', '--offload']);
  const out = parse(await inNs(A, process.execPath, peer, '--mode', 'send', '--connect', '192.0.2.9:5001', '--bytes', String(BYTES)));
  await s.stop();
  const sent = out.find((l) => l.event === 'sent')!;
  if (sent.sha256 !== sent.peerSha256) throw new Error('kernel → mptun: sha256 mismatch');
  return sent.gbps!;
}

async function mptunToKernel(): Promise<number> {
  const s = await serve(A, [process.execPath, peer, '--mode', 'serve', '--listen', '0.0.0.0:5002']);
  const w = parse(await inNs(M, process.execPath, worker, '--mode', 'send', '--offload', '--bytes', String(BYTES), '--connect', '10.77.0.1:5002'));
  const k = parse(await s.stop());
  const sent = w.find((l) => l.event === 'sent')!;
  if (!sent || sent.sha256 !== sent.peerSha256) throw new Error('mptun → kernel: sha256 mismatch');
  return k.find((l) => l.event === 'received')!.gbps!;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
process.on('SIGINT', () => { void teardown().finally(() => process.exit(130)); });

try {
  await setup();
  const kk: number[] = [];
  const km: number[] = [];
  const mk: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    kk.push(await kernelToKernel());
    km.push(await kernelToMptun());
    mk.push(await mptunToKernel());
  }
  const r = (x: number) => +x.toFixed(2);
  console.log(JSON.stringify({
    bench: 'tcp',
    bytesPerRun: BYTES,
    runs: RUNS,
    gbps: {
      kernelToKernelVeth: { median: r(median(kk)), runs: kk.map(r) },
      kernelToMptun: { median: r(median(km)), runs: km.map(r) },
      mptunToKernel: { median: r(median(mk)), runs: mk.map(r) },
    },
    ratioToKernel: { kernelToMptun: +(median(km) / median(kk)).toFixed(3), mptunToKernel: +(median(mk) / median(kk)).toFixed(3) },
  }, null, 2));
} finally {
  await teardown();
}
