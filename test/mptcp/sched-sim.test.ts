// The schedulers on unequal paths, in the simulator: a WiFi/LTE-like pair (50 Mbit/s 10 ms RTT,
// and 20 Mbit/s 50 ms RTT with 0.5 % loss both ways), mptun at both ends with the same
// scheduler. Bulk goodput per scheduler, and the completion time of 100 KB / 1 MB / 10 MB
// objects fetched over a fresh connection (the server sends, as a download), beside the better
// path alone; and stale subflows: a path blackholed with no link event (two fast paths: the
// application stalls at most 100 ms), and no false alarm on the slow, lossy LTE-like path.
//
// MPTSC_TABLE=1 logs the table (npx ava --verbose dist/test/mptcp/sched-sim.test.js).
import type { ExecutionContext } from 'ava';
import { test, useSeed, type SimContext } from '../sim/helpers.js';
import { Simulator, type Duplex, type LinkOptions } from '../sim/index.js';
import { MptcpHost, MptcpSender, addr, randomBytes, sha256 } from './simhost.js';
import { createHash } from 'node:crypto';
import type { Instant } from '../../src/ip/sansio.js';
import type { MptcpConnection } from '../../src/mptcp/protocol.js';
import { SCHEDULER_NAMES } from '../../src/mptcp/scheduler.js';

const A = ['10.1.0.2', '10.2.0.2'];
const S1 = '10.9.0.1';
const PORT = 443;

const WIFI: LinkOptions = { rateBps: 50e6, delayMs: 5, queueLimitBytes: 128 << 10 };
const LTE: LinkOptions = { rateBps: 20e6, delayMs: 25, loss: 0.005, queueLimitBytes: 128 << 10 };
/** The bed's links: 100 Mbit/s, 0.25 ms each way. */
const LAN: LinkOptions = { rateBps: 100e6, delayMs: 0.25, queueLimitBytes: 256 << 10 };

interface Fetch {
  seed: number;
  scheduler: string;
  paths: LinkOptions[];
  /** Bytes the server sends on the fresh connection. */
  size: number;
  /** The client's addresses used (default: all). */
  use?: number[];
  during?: (sim: Simulator, links: Duplex[]) => void;
  maxTime?: number;
  /** The client's connection-level receive buffer (its window to the server), bytes. */
  recvBuffer?: number;
}

interface Fetched {
  /** When the last byte was read by the client (ms after connect), or null. */
  doneAt: Instant | null;
  digestOk: boolean;
  /** The longest time the client read nothing, from `stallFrom` on (ms). */
  longestStall: (from: Instant, to: Instant) => number;
  client: MptcpConnection;
  server: MptcpConnection;
  links: Duplex[];
}

/** A fresh connection from the client; the server writes `size` bytes and closes; the client reads them. */
function fetch(f: Fetch): Fetched {
  const sim = new Simulator({ seed: f.seed });
  const n = f.paths.length;
  const clientAddrs = A.slice(0, n).map(addr);
  const mptcp = { scheduler: f.scheduler };
  const tcp = { recvBufferSize: 4 << 20 };
  const clientMptcp = f.recvBuffer === undefined ? mptcp : { ...mptcp, recvBufferSize: f.recvBuffer };
  const client = sim.addNode(new MptcpHost({ seed: f.seed * 2 + 1, addrs: clientAddrs, route: 'source', mptcp: clientMptcp, tcp }), 'client');
  const routes = new Map(A.slice(0, n).map((a, i) => [a, i] as const));
  const server = sim.addNode(new MptcpHost({ seed: f.seed * 2 + 2, addrs: A.slice(0, n).map(() => addr(S1)), route: routes, mptcp, tcp }), 'server');
  const links = f.paths.map((p, i) => sim.connect(client, i, server, i, p, p));
  const data = randomBytes(f.size, f.seed);
  const hash = createHash('sha256');
  let got = 0;
  let doneAt: Instant | null = null;
  const progress: Instant[] = [];
  let serverConn: MptcpConnection | null = null;
  let sender: MptcpSender | null = null;
  server.stack.listen(() => true);
  server.addApp(() => {
    serverConn ??= [...server.stack.connections][0] ?? null;
    if (!serverConn) return;
    sender ??= new MptcpSender(serverConn, data);
    sender.pump();
    for (let b = serverConn.read(); b; b = serverConn.read());
  });
  let conn: MptcpConnection | null = null;
  client.addApp((now) => {
    if (!conn) return;
    for (let b = conn.read(); b; b = conn.read()) {
      hash.update(b);
      got += b.length;
      progress.push(now);
      if (got === f.size && doneAt === null) {
        doneAt = now;
        conn.shutdown();
      }
    }
  });
  sim.at(0, (now) => {
    conn = client.connect(now, (f.use ?? f.paths.map((_, i) => i)).map((i) => clientAddrs[i]!), { addr: addr(S1), port: PORT });
  });
  f.during?.(sim, links);
  sim.runUntilIdle({ maxTime: f.maxTime ?? 300_000 });
  const longestStall = (from: Instant, to: Instant) => {
    let last = from;
    let worst = 0;
    for (const p of progress) {
      if (p < from) continue;
      if (p > to) break;
      worst = Math.max(worst, p - last);
      last = p;
    }
    return worst;
  };
  return { doneAt, digestOk: hash.digest('hex') === sha256(data), longestStall, client: conn!, server: serverConn!, links };
}

const table = process.env.MPTSC_TABLE === '1';
const fmt = (x: number | null) => (x === null ? '-' : x.toFixed(0));

function goodputMbps(t: ExecutionContext<SimContext>, r: Fetched, size: number): number {
  t.true(r.digestOk, 'every byte, in order');
  t.not(r.doneAt, null, 'the fetch completed');
  return (size * 8) / (r.doneAt! * 1000);
}

const BULK = 16 << 20;
const OBJECTS = [100_000, 1_000_000, 10_000_000];

test('WiFi/LTE-like pair: bulk goodput per scheduler beside WiFi alone; every scheduler delivers every byte', (t) => {
  const seed = useSeed(t, 11);
  const alone = goodputMbps(t, fetch({ seed, scheduler: 'lowest-rtt', paths: [WIFI, LTE], size: BULK, use: [0] }), BULK);
  const rows: string[] = [`WiFi alone: ${alone.toFixed(1)} Mbit/s`];
  const by = new Map<string, number>();
  for (const s of SCHEDULER_NAMES) {
    const r = fetch({ seed, scheduler: s, paths: [WIFI, LTE], size: BULK });
    const g = goodputMbps(t, r, BULK);
    by.set(s, g);
    const c = r.server.counters;
    rows.push(`${s}: ${g.toFixed(1)} Mbit/s (stale ${c.get('SubflowStale')}, opportunistic ${c.get('ReinjectOpportunistic')}, waits ${c.get('SchedulerWaits')}, redundant ${c.get('RedundantBytes')} B)`);
    // the slow, lossy path is never taken for dead
    t.is(c.get('SubflowStale'), 0, `${s}: no false stale alarm on the LTE-like path`);
  }
  if (table) t.log(rows.join('\n'));
  // aggregation: the schedulers that use both paths beat WiFi alone (redundant sends everything twice: not)
  for (const s of ['lowest-rtt', 'blest', 'ecf', 'kernel'] as const) t.true(by.get(s)! > alone, `${s}: ${by.get(s)!.toFixed(1)} Mbit/s against ${alone.toFixed(1)} alone`);
  t.true(by.get('redundant')! > alone * 0.8, `redundant: ${by.get('redundant')!.toFixed(1)} Mbit/s, near the fast path alone (${alone.toFixed(1)})`);
});

test('WiFi/LTE-like pair: completion of 100 KB / 1 MB / 10 MB on a fresh connection per scheduler, beside WiFi alone', (t) => {
  const seed = useSeed(t, 12);
  const rows: string[] = ['scheduler: 100 KB / 1 MB / 10 MB (ms)'];
  const alone = OBJECTS.map((size) => fetch({ seed, scheduler: 'lowest-rtt', paths: [WIFI, LTE], size, use: [0] }).doneAt!);
  rows.push(`WiFi alone: ${alone.map(fmt).join(' / ')}`);
  const by = new Map<string, number[]>();
  for (const s of SCHEDULER_NAMES) {
    const times = OBJECTS.map((size) => {
      const r = fetch({ seed, scheduler: s, paths: [WIFI, LTE], size });
      t.true(r.digestOk, `${s} ${size}: every byte`);
      if (s === 'redundant' && size >= 1_000_000) {
        // the copies went out, and the receiver took each DSN once (RFC 8684 §3.3.1)
        t.true(r.server.counters.get('RedundantBytes') > 0, 'redundant: copies on the second subflow');
        t.true(r.client.counters.get('DuplicateData') > 0, 'redundant: the receiver dropped the later copies');
      }
      return r.doneAt!;
    });
    by.set(s, times);
    rows.push(`${s}: ${times.map(fmt).join(' / ')}  (${times.map((x, i) => (x / alone[i]!).toFixed(2)).join(' / ')} × alone)`);
  }
  if (table) t.log(rows.join('\n'));
  // the schedulers made for unequal paths are never much worse than the fast path alone
  for (const s of ['blest', 'ecf', 'redundant'] as const) {
    by.get(s)!.forEach((x, i) => t.true(x <= alone[i]! * 1.1, `${s} ${OBJECTS[i]} B: ${x.toFixed(0)} ms against ${alone[i]!.toFixed(0)} ms alone`));
  }
});

test('stale: a path blackholed with no link event on two 100 Mbit/s paths: the reader stalls at most 100 ms, the data moves at once; the path is used again when it comes back', (t) => {
  const seed = useSeed(t, 13);
  const rows: string[] = ['scheduler: longest stall after the blackhole (ms), stale, recovered'];
  for (const s of SCHEDULER_NAMES) {
    const r = fetch({
      seed, scheduler: s, paths: [LAN, LAN], size: 32 << 20,
      during: (sim, links) => {
        sim.at(500, (now) => {
          links[0]!.ab.down(now);
          links[0]!.ba.down(now);
        });
        sim.at(1500, (now) => {
          links[0]!.ab.up(now);
          links[0]!.ba.up(now);
        });
      },
    });
    t.true(r.digestOk, `${s}: every byte`);
    const stall = r.longestStall(500, Math.min(r.doneAt ?? Infinity, 1500));
    const c = r.server.counters;
    rows.push(`${s}: ${stall.toFixed(1)} ms, SubflowStale ${c.get('SubflowStale')}, SubflowRecover ${c.get('SubflowRecover')}, reinjected ${c.get('ReinjectedBytes')} B`);
    t.true(stall <= 100, `${s}: the reader stalled ${stall.toFixed(1)} ms`);
    t.true(c.get('SubflowStale') >= 1, `${s}: the blackholed subflow was marked stale`);
    if ((r.doneAt ?? 0) > 1700) t.true(c.get('SubflowRecover') >= 1, `${s}: used again once it moved`);
  }
  if (table) t.log(rows.join('\n'));
});

test('WiFi/LTE-like pair with a 256 KB receive buffer (the connection-level window limits): bulk goodput per scheduler beside WiFi alone', (t) => {
  const seed = useSeed(t, 14);
  const recvBuffer = 256 << 10;
  const size = 8 << 20;
  const alone = goodputMbps(t, fetch({ seed, scheduler: 'lowest-rtt', paths: [WIFI, LTE], size, use: [0], recvBuffer }), size);
  const rows: string[] = [`WiFi alone: ${alone.toFixed(1)} Mbit/s`];
  const by = new Map<string, number>();
  let opportunistic = 0;
  for (const s of SCHEDULER_NAMES) {
    const r = fetch({ seed, scheduler: s, paths: [WIFI, LTE], size, recvBuffer });
    const g = goodputMbps(t, r, size);
    by.set(s, g);
    const c = r.server.counters;
    if (s === 'lowest-rtt') opportunistic = c.get('ReinjectOpportunistic');
    rows.push(`${s}: ${g.toFixed(1)} Mbit/s (opportunistic ${c.get('ReinjectOpportunistic')}, waits ${c.get('SchedulerWaits')}, stale ${c.get('SubflowStale')})`);
  }
  if (table) t.log(rows.join('\n'));
  t.true(opportunistic > 0, 'lowest-rtt: the full window\'s left edge on the LTE-like subflow was sent again on the WiFi one');
  // BLEST and ECF exist for this case: they do not fall below the fast path alone
  for (const s of ['blest', 'ecf'] as const) t.true(by.get(s)! >= alone * 0.9, `${s}: ${by.get(s)!.toFixed(1)} Mbit/s against ${alone.toFixed(1)} alone`);
});
