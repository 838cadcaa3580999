// bench/concentrator: the concentrator on the two-link test bed (scripts/testbed.sh), links
// shaped to RATE Mbit/s each (tbf, both directions). `mptun server` runs in the server
// namespace; the destination is the bed's destination namespace (up --dest: one unshaped link
// behind the server), with plain-TCP servers (iperf3 by `dest-start`, the echo server), reached
// by the client's apps only through the concentrator. In the same run: one link alone (plain
// kernel TCP to the kernel's MPTCP iperf3 server), the kernel's own MPTCP client to it
// (`mptcpize run iperf3`), and plain iperf3 through `mptun up --server` to the destination's
// iperf3; then time to first byte and the rate of sequential connect/echo/close, through the
// concentrator (to the destination's echo server) and direct (kernel TCP over link 1 to an echo
// server in the server namespace: the client cannot reach the destination but through the
// concentrator).
// Prints JSON (medians, every run, ratios; the machine is shared and noisy: compare within a run).
//
// --reverse: the throughput parts the other way (iperf3 -R: the destination sends).
//
//   sudo node dist/bench/concentrator.js [--rate 100] [--seconds 8] [--runs 3] [--connects 200] [--reverse]
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { median, TestBed, type Throughput } from '../src/cli/bedrun.js';

const exec = promisify(execFile);
const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '8' },
    runs: { type: 'string', default: '3' },
    connects: { type: 'string', default: '200' },
    prefix: { type: 'string', default: 'mptcb' },
    reverse: { type: 'boolean', default: false },
  },
});
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const runs = Number(values.runs);
const connects = Number(values.connects);
const reverse = values.reverse === true;
const bed = new TestBed(values.prefix!);
const log = (s: string) => process.stderr.write(`bench/concentrator: ${s}\n`);
const MPTUN = fileURLToPath(new URL('../../bin/mptun.js', import.meta.url));
const ECHO = fileURLToPath(new URL('./cc-echo.js', import.meta.url));
const CON_PORT = 7443;
const PLAIN_IPERF = 5202;
const ECHO_PORT = 7007;
const ENV = { ...process.env, PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}` };
const ns = (which: 'c' | 's' | 'd') =>
  (which === 'c' ? bed.topo.TESTBED_NS_CLIENT : which === 's' ? bed.topo.TESTBED_NS_SERVER : bed.topo.TESTBED_NS_DEST);
const inNs = async (which: 'c' | 's', cmd: string, args: string[], timeout = 120_000) =>
  (await exec('ip', ['netns', 'exec', ns(which), cmd, ...args], { env: ENV, timeout, maxBuffer: 16 << 20 })).stdout;
const spawnNs = (which: 'c' | 's' | 'd', cmd: string, args: string[]) => {
  const child = spawn('ip', ['netns', 'exec', ns(which), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: ENV });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  return { child, out: () => out };
};
const until = async (what: string, probe: () => boolean) => {
  const deadline = Date.now() + 20_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`${what}: timed out`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

async function iperfTo(host: string, port: number): Promise<number> {
  const out = await inNs('c', 'iperf3', ['-c', host, '-p', String(port), '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])], (seconds + 30) * 1000);
  return +((JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e6).toFixed(1);
}
async function echo(host: string): Promise<{ connectMsMedian: number; ttfbMsMedian: number; perSecond: number }> {
  return JSON.parse(await inNs('c', process.execPath, [ECHO, 'client', host, String(ECHO_PORT), String(connects)])) as { connectMsMedian: number; ttfbMsMedian: number; perSecond: number };
}

const dir = await mkdtemp(join(tmpdir(), 'mptcb-'));
const children: Array<{ child: ReturnType<typeof spawn> }> = [];
process.once('SIGINT', () => void bed.down().finally(() => process.exit(130)));
try {
  await bed.up(rate, ['--dest']);
  // the destination (its own namespace behind the server's): plain-TCP servers
  const DEST = bed.topo.TESTBED_DST_ADDR;
  await bed.run('dest-start', '--port', String(PLAIN_IPERF));
  const echoDst = spawnNs('d', process.execPath, [ECHO, 'server', String(ECHO_PORT)]);
  children.push(echoDst);
  // direct (no concentrator): the client's kernel to an echo server of the server namespace, over link 1
  const echoSrv = spawnNs('s', process.execPath, [ECHO, 'server', String(ECHO_PORT)]);
  children.push(echoSrv);
  await until('echo servers', () => echoDst.out().includes('listening') && echoSrv.out().includes('listening'));

  const one: Throughput[] = [];
  const kernel: Throughput[] = [];
  for (let i = 0; i < runs; i++) {
    log(`run ${i + 1}/${runs}: one link, kernel MPTCP`);
    one.push(await bed.iperf(seconds, { reverse }));
    kernel.push(await bed.iperf(seconds, { mptcp: true, reverse }));
  }
  log('direct: connect/echo/close');
  const direct = await echo(bed.topo.TESTBED_SRV_ADDR1);

  const keyFile = join(dir, 'key');
  await exec(process.execPath, [MPTUN, 'server', '--genkey', keyFile]);
  const server = spawnNs('s', process.execPath, [MPTUN, 'server', '--listen', String(CON_PORT), '--key', keyFile, '--allow', `${DEST}/32`, '--control-socket', `/run/${values.prefix!}-server.sock`]);
  children.push(server);
  await until('mptun server', () => server.out().includes('listening on') || server.child.exitCode !== null);
  await bed.startMptun(['--server', `${bed.topo.TESTBED_SRV_ADDR1}:${CON_PORT}`, '--key', keyFile]);
  const through: number[] = [];
  let via: { connectMsMedian: number; ttfbMsMedian: number; perSecond: number };
  try {
    for (let i = 0; i < runs; i++) {
      log(`run ${i + 1}/${runs}: through the concentrator`);
      through.push(await iperfTo(DEST, PLAIN_IPERF));
    }
    log('through the concentrator: connect/echo/close');
    via = await echo(DEST);
  } finally {
    await bed.stopMptun();
  }
  const m = (xs: number[]) => +median(xs).toFixed(1);
  const oneM = m(one.map((x) => x.mbit));
  const kernelM = m(kernel.map((x) => x.mbit));
  const throughM = m(through);
  const result = {
    bench: 'concentrator',
    direction: reverse ? 'destination→client' : 'client→destination',
    links: 2,
    rateMbitPerLink: rate,
    seconds,
    runs,
    medianMbit: { oneLinkKernelTcp: oneM, kernelMptcpToMptcpServer: kernelM, mptunThroughConcentratorToPlainServer: throughM },
    ratios: {
      concentratorOfLinkSum: +(throughM / (2 * rate)).toFixed(3),
      concentratorVsOneLink: +(throughM / oneM).toFixed(2),
      concentratorVsKernelMptcp: +(throughM / kernelM).toFixed(3),
    },
    connects: { n: connects, direct, throughConcentrator: via },
    runsMbit: { oneLink: one.map((x) => x.mbit), kernelMptcp: kernel.map((x) => x.mbit), throughConcentrator: through },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  for (const c of children) c.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  await bed.down();
  await rm(dir, { recursive: true, force: true });
}
