// bench/paths: the schedulers on unequal paths, on the test bed with the delay line
// (scripts/testbed.sh): a WiFi-like link (50 Mbit/s, 5 ms each way) and an LTE-like one
// (20 Mbit/s, 25 ms each way, 0.5 % random loss both ways: the delay line's Gilbert-Elliott
// model held in its Good state, `--burst-loss2 0,100,0,0.5`). Against the kernel's MPTCP
// server, in the same run: the better link alone (plain kernel TCP over link 1), the kernel's
// own MPTCP client, and `mptun up --scheduler X` for every scheduler. Uploads (client→server):
// the client's scheduler is the one that decides. Figures: bulk goodput (iperf3), and the
// completion time of 100 KB / 1 MB / 10 MB objects, each on a fresh connection (connect, send,
// the server's one-byte answer once it read them all). Prints JSON.
//
// --cc lia,cubic: mptun's congestion control too (`--congestion-control`): each scheduler with
// each (rows `mptun-SCHEDULER` for the first, `mptun-SCHEDULER-CC` for the others).
//
//   sudo node dist/bench/paths.js [--seconds 10] [--runs 3] [--schedulers a,b] [--cc lia,cubic] [--objects 100000,1000000,10000000]
import { parseArgs } from 'node:util';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { median, TestBed, type BedTopology, type Throughput } from '../src/cli/bedrun.js';
import { SCHEDULER_NAMES } from '../src/mptcp/scheduler.js';

const exec = promisify(execFile);
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
    schedulers: { type: 'string', default: SCHEDULER_NAMES.join(',') },
    objects: { type: 'string', default: '100000,1000000,10000000' },
    prefix: { type: 'string', default: 'mptbpth' },
    cc: { type: 'string', default: 'lia' },
  },
});
const seconds = Number(values.seconds);
const runs = Number(values.runs);
const schedulers = values.schedulers!.split(',');
const objects = values.objects!.split(',').map(Number);
const ccs = values.cc!.split(',');
const bed = new TestBed(values.prefix!);
const log = (s: string) => process.stderr.write(`bench/paths: ${s}\n`);
const BED = ['--rate1', '50', '--delay1', '5', '--rate2', '20', '--delay2', '25', '--burst-loss2', '0,100,0,0.5'];
const OBJECT_PORT = 5301;
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const ENV = { ...process.env, PATH: `${SYSTEM_PATH}:${process.env.PATH ?? ''}` };

// The object server (kernel MPTCP in the server namespace): reads to EOF, answers one byte.
const SERVER_JS = `require('net').createServer((s) => { s.on('data', () => {}); s.on('end', () => s.end('k')); }).listen(${OBJECT_PORT}, '::');`;
// The client: a fresh connection, SIZE bytes, half-close, wait for the answer: ms on stdout.
const CLIENT_JS = `const net = require('net'); const [host, size] = process.argv.slice(1); const t0 = process.hrtime.bigint();
const s = net.connect({ host, port: ${OBJECT_PORT} }, () => { s.setNoDelay(true); s.end(Buffer.alloc(Number(size), 7)); });
s.on('data', () => {}); s.on('end', () => { console.log(Number(process.hrtime.bigint() - t0) / 1e6); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });`;

const server: { child: ChildProcess | null } = { child: null };

async function bedUp(): Promise<void> {
  await bed.run('up', ...BED);
  bed.topo = Object.fromEntries((await bed.run('env')).trim().split('\n').map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1).replace(/^'|'$/g, '')];
  })) as unknown as BedTopology;
  await bed.run('server-start');
  const ns = (await bed.run('env')).match(/TESTBED_NS_SERVER='?([^'\n]+)/)![1]!;
  const srv = spawn('ip', ['netns', 'exec', ns, 'mptcpize', 'run', process.execPath, '-e', SERVER_JS], { stdio: 'ignore', env: ENV, detached: false });
  server.child = srv;
  await new Promise((r) => setTimeout(r, 500));
}

async function fetchObject(size: number, mptcp: boolean): Promise<number> {
  const cmd = mptcp ? ['mptcpize', 'run', process.execPath] : [process.execPath];
  const { stdout } = await exec('ip', ['netns', 'exec', bed.topo.TESTBED_NS_CLIENT, ...cmd, '-e', CLIENT_JS, bed.topo.TESTBED_SRV_ADDR1, String(size)],
    { env: ENV, timeout: 60_000 });
  return Number(stdout.trim());
}

interface PathShare { iface: string; mbOut: number; rtoTimeouts: number; retransmittedSegments: number }
interface Row { who: string; bulkMbit: number[]; objectMs: Record<string, number[]>; paths?: PathShare[][] }

type PathTcp = { tcp?: { rtoTimeouts?: number; retransmittedSegments?: number } | null };

/** mptun's paths now: bytes out and their subflows' RTOs and retransmissions. */
async function pathShares(): Promise<PathShare[]> {
  const s = await bed.mptunStatus();
  return s.paths.map((p) => {
    const tcp = (p as typeof p & PathTcp).tcp ?? {};
    return { iface: p.iface, mbOut: p.bytesOut / 1e6, rtoTimeouts: tcp.rtoTimeouts ?? 0, retransmittedSegments: tcp.retransmittedSegments ?? 0 };
  });
}

async function measure(who: string, mptcp: boolean, viaMptun = false): Promise<Row> {
  const row: Row = { who, bulkMbit: [], objectMs: Object.fromEntries(objects.map((o) => [String(o), []])) };
  for (let i = 0; i < runs; i++) {
    const before = viaMptun ? await pathShares() : null;
    const tp: Throughput = await bed.iperf(seconds, { mptcp });
    row.bulkMbit.push(tp.mbit);
    if (before) {
      // what each path carried of the bulk run (mptun's own counters)
      const after = await pathShares();
      (row.paths ??= []).push(after.map((a, k) => ({
        iface: a.iface, mbOut: +(a.mbOut - before[k]!.mbOut).toFixed(1),
        rtoTimeouts: a.rtoTimeouts - before[k]!.rtoTimeouts, retransmittedSegments: a.retransmittedSegments - before[k]!.retransmittedSegments,
      })));
    }
    for (const o of objects) row.objectMs[String(o)]!.push(+(await fetchObject(o, mptcp)).toFixed(1));
  }
  return row;
}

process.once('SIGINT', () => void bed.down().finally(() => process.exit(130)));
try {
  await bedUp();
  const rows: Row[] = [];
  // the better path alone: plain kernel TCP to the server's link-1 address leaves by link 1
  log('link 1 alone (plain kernel TCP)');
  rows.push(await measure('link1-alone', false));
  log('kernel MPTCP client');
  rows.push(await measure('kernel-mptcp', true));
  for (const s of schedulers) {
    for (const [k, cc] of ccs.entries()) {
      log(`mptun --scheduler ${s} --congestion-control ${cc}`);
      await bed.startMptun(['--scheduler', s, '--congestion-control', cc]);
      try {
        rows.push(await measure(k === 0 ? `mptun-${s}` : `mptun-${s}-${cc}`, false, true));
      } finally {
        await bed.stopMptun();
      }
    }
  }
  const alone = rows[0]!;
  const med = (xs: number[]) => +median(xs).toFixed(1);
  const result = {
    bench: 'paths',
    bed: BED.join(' '),
    direction: 'client→server',
    seconds,
    runs,
    median: Object.fromEntries(rows.map((r) => [r.who, {
      bulkMbit: med(r.bulkMbit),
      objectMs: Object.fromEntries(objects.map((o) => [String(o), med(r.objectMs[String(o)]!)])),
      objectVsLink1Alone: Object.fromEntries(objects.map((o) => [String(o), +(median(r.objectMs[String(o)]!) / median(alone.objectMs[String(o)]!)).toFixed(2)])),
    }])),
    runs_: rows,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  server.child?.kill();
  await bed.down();
}
