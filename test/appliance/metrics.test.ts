// The appliance's metrics (src/appliance/metrics.ts) over a relay driven by hand-made packets:
// an MPTCP connection carried and then reset by the app; the counters of its connections stay
// in the totals after they closed (no value ever goes down), in the exposition and in the
// status groups; and the HTTP server of `--metrics` (GET /metrics, 404 elsewhere).
import test from 'ava';
import { Relay } from '../../src/appliance/relay.js';
import type { EngineStats } from '../../src/appliance/engine.js';
import {
  COUNTER_GROUP_TITLES, MetricsServer, counterGroups, renderMetrics, snakeName, statusCounters, type MetricsSource,
} from '../../src/appliance/metrics.js';
import { EXPOSITION_CONTENT_TYPE } from '../../src/appliance/exposition.js';
import { parseIpAddress } from '../../src/ip/address.js';
import { TCP_FLAG_ACK, TCP_FLAG_RST, TCP_FLAG_SYN, type TcpRepr } from '../../src/tcp/segment.js';
import { craftSegment, parseSegment, type WireSegment } from '../mptcp/simhost.js';
import { Rng } from '../sim/rng.js';
import { parseExposition, sampleValue } from '../helpers/exposition-check.js';
import { counterDeclarations, readSources } from '../helpers/counter-scan.js';
import { fileURLToPath } from 'node:url';
import { PATH_COUNTER_NAMES } from '../../src/appliance/appliance.js';
import { CounterSet } from '../../src/ip/counters.js';

const APP = parseIpAddress('198.18.0.1').bytes;
const DST = parseIpAddress('192.0.2.10').bytes;
const PATHS = ['198.18.1.2', '198.18.2.2'];
const APP_ISN = 1000;
const STARTED = 1_700_000_000_000;

function source(): MetricsSource & { relay: Relay } {
  const rng = new Rng(11);
  const relay = new Relay({
    stack: {
      random: (n) => {
        const b = Buffer.allocUnsafe(n);
        for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff;
        return b;
      },
      isnSecret: Buffer.from('metrics test secret'),
      mtu: 1500,
    },
    paths: PATHS.map((a) => ({ address: parseIpAddress(a).bytes, backup: false, up: true })),
  });
  const stats: EngineStats = { batches: 3, packetsIn: 7, packetsOut: 9, bytesIn: 700, bytesOut: 900, superSegmentsIn: 0, superSegmentsOut: 0, writeErrors: 0, timerFires: 1 };
  return {
    startedAt: STARTED, relay, engine: { stats }, pathCounters: new CounterSet(PATH_COUNTER_NAMES),
    paths: [{ index: 0, iface: 'eth0', up: true, backup: false }, { index: 1, iface: 'wl"an\\0', up: false, backup: true }],
  };
}

function feed(r: Relay, now: number, packet: Buffer | null): WireSegment[] {
  if (packet) r.handleInput(now, 0, packet, false);
  r.process(now);
  const out: WireSegment[] = [];
  for (let o = r.pollOutput(now); o; o = r.pollOutput(now)) {
    const seg = parseSegment(o.buffer);
    if (seg) out.push(seg);
  }
  return out;
}

const fromApp = (seg: Partial<TcpRepr>) => craftSegment(APP, DST, { srcPort: 40000, dstPort: 80, ...seg });

/** An app connection carried over MPTCP (the destination's MP_CAPABLE SYN/ACK), then reset by the app. */
function carryAndReset(r: Relay, during: () => void): void {
  const syn = feed(r, 0, fromApp({ seq: APP_ISN, flags: TCP_FLAG_SYN, options: { mss: 1460 } as TcpRepr['options'] })).find((s) => PATHS.includes(s.src))!;
  const out = feed(r, 10, craftSegment(DST, parseIpAddress(syn.src).bytes, {
    srcPort: 80, dstPort: syn.tcp.srcPort, seq: 9000, ack: (syn.tcp.seq + 1) >>> 0, flags: TCP_FLAG_SYN | TCP_FLAG_ACK, window: 65535,
  }, [{ type: 'mp_capable', version: 1, flags: { checksumRequired: false, extensibility: false, noMoreSubflowAddr: false, hmacSha256: true }, senderKey: 0x0123456789abcdefn }]));
  const synAck = out.find((s) => s.dst === '198.18.0.1')!;
  feed(r, 11, fromApp({ seq: APP_ISN + 1, ack: (synAck.tcp.seq + 1) >>> 0, flags: TCP_FLAG_ACK, window: 65535 }));
  during();
  feed(r, 12, fromApp({ seq: APP_ISN + 1, ack: 0, flags: TCP_FLAG_RST }));
  // the upstream reset goes out; its subflow and the host side are forgotten
  for (let now = 13; now < 20; now++) feed(r, now, null);
}

test('snake_case names, a leading word stripped', (t) => {
  t.is(snakeName('bytesToUpstream'), 'bytes_to_upstream');
  t.is(snakeName('tcpBadChecksum', 'tcp'), 'bad_checksum');
  t.is(snakeName('rttSamples', 'rtt'), 'samples');
  t.is(snakeName('rtoBackoffs', 'rtt'), 'rto_backoffs');
  t.is(snakeName('newRenoRecoveries'), 'new_reno_recoveries');
  t.is(snakeName('dsack'), 'dsack');
});

test('an MPTCP connection that closed: its counters stay (MIB names, per path, TCP both sides); nothing goes down', (t) => {
  const src = source();
  const r = src.relay;
  let open = parseExposition('');
  carryAndReset(r, () => {
    open = parseExposition(renderMetrics(src, STARTED + 5000, '1.2.3'));
  });
  t.deepEqual(open.errors, []);
  t.is(sampleValue(open, 'mptun_connections'), 1);
  t.is(sampleValue(open, 'mptun_path_subflows', { path: '0' }), 1, 'the subflow is open on path 0');
  t.is(sampleValue(open, 'mptun_path_subflows', { path: '1' }), 0);
  t.is(sampleValue(open, 'mptun_mptcp_MPCapableSYNTX_total'), 1);
  t.is(sampleValue(open, 'mptun_mptcp_MPCapableSYNACKRX_total'), 1);

  const text = renderMetrics(src, STARTED + 9000, '1.2.3');
  const closed = parseExposition(text);
  t.deepEqual(closed.errors, []);
  t.is(r.flowCount, 0, 'the flow is gone');
  t.is(r.upstream.connections.size, 0, 'the MPTCP connection is gone');
  t.is(r.upstream.tcp.size, 0, 'its subflow is gone');
  t.is(sampleValue(closed, 'mptun_connections'), 0);
  t.is(sampleValue(closed, 'mptun_connections_total'), 1);
  t.is(sampleValue(closed, 'mptun_mptcp_MPCapableSYNTX_total'), 1, 'the MIB counter survived the close');
  t.is(sampleValue(closed, 'mptun_mptcp_MPCapableACKTX_total'), 1);
  t.is(sampleValue(closed, 'mptun_path_subflows', { path: '0' }), 0);
  t.is(sampleValue(closed, 'mptun_path_subflows_opened_total', { path: '0', iface: 'eth0' }), 1);
  t.is(sampleValue(closed, 'mptun_path_tcp_segments_out_total', { path: '0' }), 2, 'the SYN and the third ACK');
  t.is(sampleValue(closed, 'mptun_path_tcp_resets_sent_total', { path: '0' }), 1, 'and the RST (MP_FASTCLOSE)');
  t.is(sampleValue(closed, 'mptun_path_packets_out_total', { path: '0' }), 3);
  t.true(sampleValue(closed, 'mptun_path_bytes_out_total', { path: '0' })! > 0);
  t.is(sampleValue(closed, 'mptun_path_packets_out_total', { path: '1' }), 0);
  t.is(sampleValue(closed, 'mptun_relay_flows_reset_by_app_total'), 1);
  t.is(sampleValue(closed, 'mptun_tcp_resets_received_total', { side: 'host' }), 1, 'the app\'s RST, in the host side\'s TCP totals');
  t.true(sampleValue(closed, 'mptun_tcp_stack_connections_closed_total', { side: 'subflow' })! >= 1);
  for (const [series, before] of open.samples) {
    if (open.types.get(series.split('{')[0]!) !== 'counter') continue;
    const after = closed.samples.get(series);
    t.true(after !== undefined && after >= before, `${series}: ${before} then ${after}`);
  }
  // process-wide gauges, the path labels escaped
  t.is(sampleValue(closed, 'mptun_uptime_seconds'), 9);
  t.is(sampleValue(closed, 'mptun_start_time_seconds'), STARTED / 1000);
  t.regex(text, /^mptun_info\{version="1\.2\.3"\} 1$/m);
  t.regex(text, /^mptun_path_up\{path="1",iface="wl\\"an\\\\0"\} 0$/m);
  t.regex(text, /^mptun_path_backup\{path="1",iface="wl\\"an\\\\0"\} 1$/m);
  t.regex(text, /^mptun_mptcp_dss_mappings_total\{verdict="ok"\} \d+$/m);
  t.regex(text, /^# HELP mptun_mptcp_MPCapableSYNTX_total .*as the kernel's MPTcpExtMPCapableSYNTX/m);
  t.regex(text, /^mptun_engine_timer_fires_total 1$/m);
});

test('status: every group has a title, every counter of every group is there (zeros too), the same values as the exposition', (t) => {
  const src = source();
  carryAndReset(src.relay, () => undefined);
  const groups = counterGroups(src);
  const titled = new Set(COUNTER_GROUP_TITLES.map(([k]) => k));
  for (const g of groups) t.true(titled.has(g.key), `${g.key} has a title`);
  t.is(new Set(groups.map((g) => g.key)).size, groups.length, 'keys are unique');
  const status = statusCounters(src);
  t.is(status.mptcp!.MPCapableSYNTX, 1);
  t.is(status.mptcp!.DSSNotMatching, 0, 'zeros are kept in --json');
  t.is(status.relay!.flowsResetByApp, 1);
  t.is(status.host!.connectionsOpened, 1, 'the host side stack');
  t.is(status.subflowTcp!.segmentsOut, 2);
  t.is(status.subflowTcp!.resetsSent, 1);
  const p = parseExposition(renderMetrics(src, STARTED, 'x'));
  // every counter of the status is a series of the exposition, with its value
  let n = 0;
  for (const g of groups) {
    for (const [name, value] of Object.entries(g.values)) {
      const m = g.metric(name);
      t.is(sampleValue(p, m.name, m.labels ?? {}), value, `${g.key}.${name} as ${m.name}`);
      n++;
    }
  }
  t.true(n > 200, `${n} counters`);
});

test('every counter declared in src/ is shown by `mptun status` (and so served as a metric)', (t) => {
  const shown = new Set(Object.values(statusCounters(source())).flatMap((g) => Object.keys(g)));
  // the concentrator's counters (src/server, and the Convert codec's it counts) are `mptun
  // server status`'s, not the appliance's
  const declared = counterDeclarations(readSources(fileURLToPath(new URL('../../../src', import.meta.url))))
    .filter((d) => !/(^|\/)(server|convert)\//.test(d.file));
  t.true(declared.length > 10);
  const missing = declared.flatMap((d) => d.names.filter((n) => !shown.has(n)).map((n) => `${d.constant}.${n}`));
  t.deepEqual(missing, []);
});

test('the HTTP server: GET and HEAD /metrics with the format\'s content type, 404 elsewhere, 405 for POST; built on each scrape', async (t) => {
  let scrapes = 0;
  const server = await MetricsServer.start({ host: '127.0.0.1', port: 0 }, () => {
    scrapes++;
    return `# HELP mptun_scrapes_total Scrapes.\n# TYPE mptun_scrapes_total counter\nmptun_scrapes_total ${scrapes}\n`;
  }, (e) => t.fail(e.message));
  try {
    t.is(scrapes, 0, 'nothing is built before a scrape');
    const base = `http://${server.address}`;
    const r1 = await fetch(`${base}/metrics`);
    t.is(r1.status, 200);
    t.is(r1.headers.get('content-type'), EXPOSITION_CONTENT_TYPE);
    t.regex(await r1.text(), /^mptun_scrapes_total 1$/m);
    const r2 = await fetch(`${base}/metrics?x=1`);
    t.regex(await r2.text(), /^mptun_scrapes_total 2$/m);
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    t.is(head.status, 200);
    t.is(await head.text(), '');
    for (const path of ['/', '/metricsx', '/favicon.ico']) t.is((await fetch(`${base}${path}`)).status, 404, path);
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    t.is(post.status, 405);
    t.is(post.headers.get('allow'), 'GET, HEAD');
  } finally {
    await server.close();
  }
  await t.throwsAsync(fetch(`http://${server.address}/metrics`), undefined, 'closed');
});

test('the HTTP server: an address in use is refused at start', async (t) => {
  const a = await MetricsServer.start({ host: '127.0.0.1', port: 0 }, () => '', () => undefined);
  try {
    const e = await t.throwsAsync(MetricsServer.start({ host: '127.0.0.1', port: a.listen.port }, () => '', () => undefined));
    t.is((e as NodeJS.ErrnoException).code, 'EADDRINUSE');
  } finally {
    await a.close();
  }
});
