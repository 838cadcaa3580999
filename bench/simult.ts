// bench/simult: the Linux selftest tools/testing/selftests/net/mptcp/simult_flows.sh reproduced on
// the two-link test bed (scripts/testbed.sh, the delay line for the delays). Its matrix: two links
// 10/10 Mbit/s with one-way delays 0/0 and 1/25 ms, 10/3 Mbit/s with 0/0, 1/25 and 25/1 ms; in
// each case two transfers, one after the other, each both ways at once as `mptcp_connect -j`
// does: the server sends 16 MiB while the client sends 80 KiB ("download"), then the client sends
// 16 MiB while the server sends 80 KiB ("upload", the selftest's "reverse direction"). The
// selftest's limit for a case (its run_test):
//
//     # time is measured in ms, account for transfer size, aggregated link speed
//     # and header overhead (10%)
//     local time=$((1000 * size  *  8  * 10 / ((rate1 + rate2) * 1000 * 1000 * 9) ))
//     # mptcp_connect will do some sleeps to allow the mp_join handshake
//     # completion (see mptcp_connect): 200ms on each side, add some slack
//     time=$((time + 400 + slack))          # slack=50
//
// i.e. the time the 16 MiB take at 90 % of the links' sum, plus 450 ms; both ends must finish
// within it (mptcp_connect -T). Run here for (a) the kernel's MPTCP client (`mptcpize run`) and
// (b) a plain app through `mptun up`, both against the kernel's MPTCP server (`mptcpize run`),
// with the same program at both ends (bench/simult-peer: random bytes, SHA-256 checked).
// The selftest shapes with netem (rate and delay on both ends' egress, netem's default limit of
// 1000 packets); this kernel has no netem, so the bed's tbf (no delay) or delay line (a delay)
// does the rate, with a queue of --queue (default 1000 full frames, as netem's limit).
// Prints JSON: per case and direction, each one's time (the longer of the two ends'), the limit,
// pass/fail, and mptun's time over the kernel's.
//
//   sudo node dist/bench/simult.js [--runs 1] [--queue 1514000|20ms] [--cases 0,1,2,3,4] [--mptun-args='--scheduler blest']
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, TestBed, type BedTopology } from '../src/cli/bedrun.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1' },
    queue: { type: 'string', default: String(1000 * 1514) },
    cases: { type: 'string', default: '0,1,2,3,4' },
    'mptun-args': { type: 'string', default: '' },
    prefix: { type: 'string', default: 'mpts1' },
  },
});
const mptunArgs = values['mptun-args']!.split(' ').filter((s) => s !== '');
const runs = Number(values.runs);
const PEER = fileURLToPath(new URL('./simult-peer.js', import.meta.url));
const SIZE = 2 * 2048 * 4096; // size=$((2 * 2048 * 4096)): 16 MiB
const SMALL = 4096 * 20; // dd if=/dev/zero of=$small bs=4096 count=20
const SLACK = 50;
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const ENV = { ...process.env, PATH: `${SYSTEM_PATH}:${process.env.PATH ?? ''}` };
const bed = new TestBed(values.prefix!);
const log = (s: string) => process.stderr.write(`bench/simult: ${s}\n`);

interface Case { rate1: number; rate2: number; delay1: number; delay2: number; msg: string }
const MATRIX: Case[] = [
  { rate1: 10, rate2: 10, delay1: 0, delay2: 0, msg: 'balanced bwidth' },
  { rate1: 10, rate2: 10, delay1: 1, delay2: 25, msg: 'balanced bwidth with unbalanced delay' },
  { rate1: 10, rate2: 3, delay1: 0, delay2: 0, msg: 'unbalanced bwidth' },
  { rate1: 10, rate2: 3, delay1: 1, delay2: 25, msg: 'unbalanced bwidth with unbalanced delay' },
  { rate1: 10, rate2: 3, delay1: 25, delay2: 1, msg: 'unbalanced bwidth with opposed, unbalanced delay' },
];
const cases = values.cases!.split(',').map((i) => MATRIX[Number(i)]!);

/** The selftest's limit in ms (shell integer arithmetic). */
function limitMs(c: Case): number {
  return Math.floor((1000 * SIZE * 8 * 10) / ((c.rate1 + c.rate2) * 1000 * 1000 * 9)) + 400 + SLACK;
}

interface PeerReport { role: string; ms: number; sent: number; sentSha: string; received: number; receivedSha: string }

function inNs(ns: string, argv: string[]) {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: ENV });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  return { child, exited, out: () => out, err: () => err };
}

let port = 10000;

/** One do_transfer: the client sends `cin` bytes, the server `sin`, both at once. */
async function transfer(kernelClient: boolean, cin: number, sin: number, limit: number) {
  port++;
  const srv = inNs(bed.topo.TESTBED_NS_SERVER, ['mptcpize', 'run', process.execPath, PEER, '--listen', String(port), '--send', String(sin)]);
  while (!srv.err().includes('listening')) {
    if (srv.child.exitCode !== null) throw new Error(`server: ${srv.err()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const cli = inNs(bed.topo.TESTBED_NS_CLIENT, [...(kernelClient ? ['mptcpize', 'run'] : []), process.execPath, PEER,
    '--connect', `${bed.topo.TESTBED_SRV_ADDR1}:${port}`, '--send', String(cin)]);
  // timeout_test=$((timeout_poll * 2 + 1)) = 61 s
  const kill = setTimeout(() => { cli.child.kill(); srv.child.kill(); }, 61_000);
  const [cc, sc] = await Promise.all([cli.exited, srv.exited]);
  clearTimeout(kill);
  if (cc !== 0 || sc !== 0) return { ms: null, clientMs: null, serverMs: null, pass: false, error: `client ${cc}: ${cli.err().trim()}; server ${sc}: ${srv.err().trim()}` };
  const c = JSON.parse(cli.out()) as PeerReport;
  const s = JSON.parse(srv.out()) as PeerReport;
  const bytesOk = c.received === sin && s.received === cin && c.receivedSha === s.sentSha && s.receivedSha === c.sentSha;
  const ms = Math.max(c.ms, s.ms);
  return { ms, clientMs: c.ms, serverMs: s.ms, pass: bytesOk && ms <= limit, ...(bytesOk ? {} : { error: 'bytes differ (length or SHA-256)' }) };
}

async function bedUp(c: Case): Promise<void> {
  const q = values.queue!;
  await bed.run('up', '--rate1', String(c.rate1), '--rate2', String(c.rate2), '--delay1', String(c.delay1), '--delay2', String(c.delay2), '--queue', q);
  bed.topo = Object.fromEntries((await bed.run('env')).trim().split('\n').map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1).replace(/^'|'$/g, '')];
  })) as unknown as BedTopology;
}

type Result = Awaited<ReturnType<typeof transfer>>;

process.once('SIGINT', () => void bed.down().finally(() => process.exit(130)));
const started = new Date().toISOString();
const table: unknown[] = [];
try {
  for (const c of cases) {
    log(`${c.msg}: ${c.rate1}/${c.rate2} Mbit/s, ${c.delay1}/${c.delay2} ms`);
    await bedUp(c);
    const limit = limitMs(c);
    const r: Record<string, { kernel: Result[]; mptun: Result[] }> = { download: { kernel: [], mptun: [] }, upload: { kernel: [], mptun: [] } };
    for (let i = 0; i < runs; i++) {
      for (const dir of ['download', 'upload'] as const) {
        const [cin, sin] = dir === 'download' ? [SMALL, SIZE] : [SIZE, SMALL];
        log(`  ${dir} run ${i + 1}/${runs}: kernel MPTCP`);
        r[dir]!.kernel.push(await transfer(true, cin, sin, limit));
        log(`  ${dir} run ${i + 1}/${runs}: mptun`);
        await bed.startMptun(mptunArgs);
        try {
          r[dir]!.mptun.push(await transfer(false, cin, sin, limit));
        } finally {
          await bed.stopMptun();
        }
      }
    }
    for (const dir of ['download', 'upload'] as const) {
      const med = (xs: Result[]) => {
        const ok = xs.filter((x) => x.ms !== null).map((x) => x.ms!);
        return ok.length === xs.length ? +median(ok).toFixed(0) : null;
      };
      const k = med(r[dir]!.kernel);
      const m = med(r[dir]!.mptun);
      table.push({
        case: c.msg,
        rateMbit: `${c.rate1}/${c.rate2}`,
        delayMs: `${c.delay1}/${c.delay2}`,
        direction: dir === 'download' ? 'server→client 16 MiB (client→server 80 KiB)' : 'client→server 16 MiB (server→client 80 KiB)',
        limitMs: limit,
        kernelMs: k,
        kernelPass: r[dir]!.kernel.every((x) => x.pass),
        mptunMs: m,
        mptunPass: r[dir]!.mptun.every((x) => x.pass),
        mptunVsKernel: k !== null && m !== null ? +(m / k).toFixed(3) : null,
        runs: { kernel: r[dir]!.kernel, mptun: r[dir]!.mptun },
      });
    }
    await bed.down();
  }
  console.log(JSON.stringify({ bench: 'simult', started, bytes: SIZE, small: SMALL, queue: values.queue, runs, mptunArgs: mptunArgs.join(' '), table }, null, 2));
} finally {
  await bed.down();
}
