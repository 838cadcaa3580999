// The appliance's counters, process-wide, for `mptun status` and for Prometheus.
//
// Every counter set of the stacks is gathered into named groups (the relay's, the MPTCP
// connections' MIB under the kernel's MPTcpExt names, the TCP of the app side and of the
// subflows, the engine's ...). The counters of connections survive their close: each stack
// folds a closing connection's counters into its totals and adds the open ones when asked
// (src/ip/counters.ts CounterTotals), so nothing here runs on the packet path: the groups
// and the exposition text are built only when `mptun status` or a scrape asks.
//
// `mptun up --metrics ADDR:PORT` serves the text exposition (format 0.0.4) on GET /metrics.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Relay, PathCounters } from './relay.js';
import type { EngineStats } from './engine.js';
import { EXPOSITION_CONTENT_TYPE, FamilyBuilder, formatExposition, type Labels, type MetricFamily } from './exposition.js';

/** What the metrics are read from: the running appliance (Appliance has these fields). */
export interface MetricsSource {
  /** When the appliance started (ms since the epoch). */
  readonly startedAt: number;
  readonly paths: ReadonlyArray<{ readonly index: number; readonly iface: string; readonly up: boolean; readonly backup: boolean }>;
  readonly relay: Relay;
  readonly engine: { readonly stats: EngineStats };
  /** What the path monitor did (netlink events, settles, paths down/up, address and gateway moves). */
  readonly pathCounters: { snapshot(): Readonly<Record<string, number>> };
}

/** The kernel's MPTcpExt MIB names (`nstat -az`, Linux 6.x) that mptun's MPTCP counters share. */
export const KERNEL_MPTCP_MIB: ReadonlySet<string> = new Set([
  'MPCapableSYNRX', 'MPCapableSYNTX', 'MPCapableSYNACKRX', 'MPCapableACKRX', 'MPCapableFallbackACK', 'MPCapableFallbackSYNACK',
  'MPFallbackTokenInit', 'MPTCPRetrans', 'MPJoinNoTokenFound', 'MPJoinSynRx', 'MPJoinSynBackupRx', 'MPJoinSynAckRx',
  'MPJoinSynAckBackupRx', 'MPJoinSynAckHMacFailure', 'MPJoinAckRx', 'MPJoinAckHMacFailure', 'MPJoinRejected', 'MPJoinSynTx',
  'DSSNotMatching', 'DSSCorruptionFallback', 'DSSCorruptionReset', 'InfiniteMapTx', 'InfiniteMapRx', 'DSSNoMatchTCP', 'DataCsumErr',
  'OFOQueueTail', 'OFOQueue', 'OFOMerge', 'NoDSSInWindow', 'DuplicateData', 'AddAddr', 'AddAddrTx', 'AddAddrTxDrop', 'EchoAdd',
  'EchoAddTx', 'EchoAddTxDrop', 'PortAdd', 'AddAddrDrop', 'RmAddr', 'RmAddrDrop', 'RmAddrTx', 'RmAddrTxDrop', 'RmSubflow', 'MPPrioTx',
  'MPPrioRx', 'MPFailTx', 'MPFailRx', 'MPFastcloseTx', 'MPFastcloseRx', 'MPRstTx', 'MPRstRx', 'SubflowStale', 'SubflowRecover',
  'MPCurrEstab', 'DssFallback', 'FallbackFailed',
]);

/** camelCase to snake_case, a leading word `strip` removed first: ('tcpBadChecksum', 'tcp') → 'bad_checksum'. */
export function snakeName(name: string, strip = ''): string {
  let n = name;
  if (strip !== '' && n.startsWith(strip) && /^[A-Z]/.test(n.slice(strip.length))) n = n[strip.length]!.toLowerCase() + n.slice(strip.length + 1);
  return n.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z])([A-Z][a-z])/g, '$1_$2').toLowerCase();
}

/** A group of counters: one line of `mptun status`, one key of its JSON, a set of metric families. */
export interface CounterGroup {
  /** The key in `mptun status --json` counters. */
  key: string;
  values: Readonly<Record<string, number>>;
  /** The metric of a counter of the group. */
  metric(name: string): { name: string; labels?: Labels; help: string };
}

/**
 * The groups in the order `mptun status` shows them, with their titles. The app side (host) and
 * the subflow side each have their TCP stack, so their groups come in pairs.
 */
export const COUNTER_GROUP_TITLES: ReadonlyArray<readonly [string, string]> = [
  ['relay', 'relay (app connections and the MPTCP connections that carry them)'],
  ['mptcp', 'MPTCP connections (the kernel\'s MPTcpExt names where one matches)'],
  ['upstream', 'MPTCP stack (connections, joins, path manager)'],
  ['mptcpOptions', 'MPTCP option codec'],
  ['mptcpMappings', 'MPTCP DSS mappings received, by verdict'],
  ['lia', 'coupled congestion control (LIA, RFC 6356)'],
  ['mptcpReassembly', 'MPTCP connection-level reassembly'],
  ['mptcpSendBuffer', 'MPTCP connection-level send buffer'],
  ['mptcpRecvQueue', 'MPTCP connection-level receive queue'],
  ...(['subflow', 'host'] as const).flatMap((side) => {
    const who = side === 'host' ? 'app side (the host\'s TCP, impersonated)' : 'subflows';
    return [
      [side, `TCP stack, ${who}`],
      [`${side}Tcp`, `TCP connections, ${who}`],
      [`${side}Rtt`, `RTT estimation, ${who}`],
      [`${side}Cc`, `congestion control, ${who}`],
      [`${side}Sack`, `SACK scoreboard, ${who}`],
      [`${side}Reassembly`, `TCP reassembly, ${who}`],
      [`${side}SendBuffer`, `TCP send buffers, ${who}`],
      [`${side}RecvQueue`, `TCP receive queues, ${who}`],
      [`${side}Codec`, `TCP segment codec, ${who}`],
      [`${side}Ip`, `IP, ${who}`],
    ] as Array<readonly [string, string]>;
  }),
  ['engine', 'engine (TUN device I/O, timers)'],
  ['paths', 'paths (netlink events, settles, paths down/up, address and gateway moves)'],
];

const TOTAL = 'since start, closed connections included';

/** A group whose counters are metrics `${prefix}${snake name}_total`, with `labels`. */
function snakeGroup(key: string, values: Readonly<Record<string, number>>, prefix: string, what: string, labels?: Labels, strip = ''): CounterGroup {
  return {
    key, values,
    metric: (name) => ({ name: `${prefix}${snakeName(name, strip)}_total`, ...(labels ? { labels } : {}), help: `${what}: ${name} (${TOTAL}).` }),
  };
}

/** The MPTCP MIB: metrics keep the kernel's names, `mptun_mptcp_MPCapableSYNTX_total`. */
function mibMetric(name: string, what: string): { name: string; help: string } {
  const kernel = KERNEL_MPTCP_MIB.has(name) ? `, as the kernel's MPTcpExt${name}` : ', mptun\'s own (no kernel counterpart)';
  return { name: `mptun_mptcp_${name}_total`, help: `${what}: ${name}${kernel} (${TOTAL}).` };
}

/** Every counter of the appliance, by group (see COUNTER_GROUP_TITLES). Built when called. */
export function counterGroups(src: MetricsSource): CounterGroup[] {
  const relay = src.relay;
  const mptcp = relay.upstream.connectionCounters();
  const groups: CounterGroup[] = [
    snakeGroup('relay', relay.counters.snapshot(), 'mptun_relay_', 'Relay'),
    { key: 'mptcp', values: mptcp.mptcp, metric: (name) => mibMetric(name, 'MPTCP connections') },
    {
      key: 'upstream', values: relay.upstream.counters.snapshot(),
      metric: (name) => (/^[A-Z]/.test(name) ? mibMetric(name, 'MPTCP stack') : { name: `mptun_mptcp_stack_${snakeName(name)}_total`, help: `MPTCP stack: ${name} (${TOTAL}).` }),
    },
    snakeGroup('mptcpOptions', mptcp.options, 'mptun_mptcp_option_', 'MPTCP option codec', undefined, 'mptcp'),
    {
      key: 'mptcpMappings', values: mptcp.mappings,
      metric: (name) => ({ name: 'mptun_mptcp_dss_mappings_total', labels: { verdict: name }, help: `MPTCP DSS mappings received, by verdict (${TOTAL}).` }),
    },
    snakeGroup('lia', mptcp.lia, 'mptun_mptcp_lia_', 'LIA coupled congestion control'),
    snakeGroup('mptcpReassembly', mptcp.reassembly, 'mptun_mptcp_reassembly_', 'MPTCP connection-level reassembly'),
    snakeGroup('mptcpSendBuffer', mptcp.sendBuffer, 'mptun_mptcp_send_buffer_', 'MPTCP connection-level send buffers'),
    snakeGroup('mptcpRecvQueue', mptcp.recvQueue, 'mptun_mptcp_recv_queue_', 'MPTCP connection-level receive queues'),
  ];
  for (const side of ['subflow', 'host'] as const) {
    const stack = side === 'host' ? relay.host : relay.upstream.tcp;
    const conns = stack.connectionCounters();
    const labels = { side };
    const what = (part: string) => `${part} (side="host": the app's TCP, which mptun impersonates; side="subflow": the subflows)`;
    groups.push(
      snakeGroup(side, stack.counters.snapshot(), 'mptun_tcp_stack_', what('TCP stack'), labels),
      snakeGroup(`${side}Tcp`, conns.tcp, 'mptun_tcp_', what('TCP connections'), labels),
      snakeGroup(`${side}Rtt`, conns.rtt, 'mptun_tcp_rtt_', what('TCP RTT estimation'), labels, 'rtt'),
      snakeGroup(`${side}Cc`, conns.cc, 'mptun_tcp_cc_', what('TCP congestion control'), labels),
      snakeGroup(`${side}Sack`, conns.sack, 'mptun_tcp_sack_', what('TCP SACK scoreboard'), labels, 'sack'),
      snakeGroup(`${side}Reassembly`, conns.reassembly, 'mptun_tcp_reassembly_', what('TCP reassembly'), labels),
      snakeGroup(`${side}SendBuffer`, conns.sendBuffer, 'mptun_tcp_send_buffer_', what('TCP send buffers'), labels),
      snakeGroup(`${side}RecvQueue`, conns.recvQueue, 'mptun_tcp_recv_queue_', what('TCP receive queues'), labels),
      snakeGroup(`${side}Codec`, stack.codecCounters.snapshot(), 'mptun_tcp_codec_', what('TCP segment codec'), labels, 'tcp'),
      snakeGroup(`${side}Ip`, stack.ipCounters.snapshot(), 'mptun_ip_', what('IP'), labels),
    );
  }
  groups.push(snakeGroup('engine', { ...src.engine.stats }, 'mptun_engine_', 'Engine'));
  groups.push(snakeGroup('paths', src.pathCounters.snapshot(), 'mptun_path_monitor_', 'Path monitor'));
  return groups;
}

/** `mptun status --json` counters: every group, every counter (zeros included). */
export function statusCounters(src: MetricsSource): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const g of counterGroups(src)) out[g.key] = { ...g.values };
  return out;
}

/** What `mptun status` shows of a path besides its bytes: its subflows, their RTT and their TCP counters. */
export function pathStatus(counters: PathCounters | undefined) {
  return {
    subflowsOpened: counters?.subflowsOpened ?? 0,
    srttMs: counters?.srttMs ?? null,
    tcp: counters?.tcp ?? null,
  };
}

/** The metric families of the appliance, now. */
export function collectMetrics(src: MetricsSource, nowMs: number, version: string): MetricFamily[] {
  const b = new FamilyBuilder();
  b.add('mptun_info', 'gauge', 'mptun\'s version (the value is always 1).', 1, { version });
  b.add('mptun_start_time_seconds', 'gauge', 'When mptun up started, seconds since the Unix epoch.', src.startedAt / 1000);
  b.add('mptun_uptime_seconds', 'gauge', 'Seconds since mptun up started.', Math.max(0, (nowMs - src.startedAt) / 1000));
  const relay = src.relay;
  b.add('mptun_connections', 'gauge', 'App connections carried now (captured, not yet closed).', relay.flowCount);
  b.add('mptun_connections_total', 'counter', 'App connections captured since start (their SYNs that asked for an upstream connection).', relay.counters.get('flowsRequested'));
  b.add('mptun_mptcp_connections', 'gauge', 'MPTCP connections open now (fallbacks to TCP included).', relay.upstream.connections.size);

  const pc = relay.pathCounters();
  const pathLabels = src.paths.map((p) => ({ path: String(p.index), iface: p.iface }));
  const perPath = (name: string, type: 'counter' | 'gauge', help: string, value: (i: number) => number | null) => {
    src.paths.forEach((p, k) => {
      const v = value(p.index);
      if (v !== null) b.add(name, type, help, v, pathLabels[k]);
    });
  };
  perPath('mptun_path_up', 'gauge', 'Whether the path is up (its link up with a global address): 1 or 0.', (i) => (src.paths.find((p) => p.index === i)!.up ? 1 : 0));
  perPath('mptun_path_backup', 'gauge', 'Whether the path is a backup (used only when no other is up): 1 or 0.', (i) => (src.paths.find((p) => p.index === i)!.backup ? 1 : 0));
  const stats = (i: number) => relay.pathStats[i] ?? { packetsOut: 0, bytesOut: 0, packetsIn: 0, bytesIn: 0 };
  perPath('mptun_path_bytes_out_total', 'counter', 'Bytes (IP packets, headers included) sent on the path by its subflows.', (i) => stats(i).bytesOut);
  perPath('mptun_path_bytes_in_total', 'counter', 'Bytes (IP packets, headers included) received on the path by its subflows.', (i) => stats(i).bytesIn);
  perPath('mptun_path_packets_out_total', 'counter', 'IP packets sent on the path (a TSO super-segment counts once).', (i) => stats(i).packetsOut);
  perPath('mptun_path_packets_in_total', 'counter', 'IP packets received on the path (a GRO super-segment counts once).', (i) => stats(i).packetsIn);
  perPath('mptun_path_subflows', 'gauge', 'Subflows open on the path now (handshake done, not closed).', (i) => pc[i]?.subflowsOpen ?? 0);
  perPath('mptun_path_subflows_opened_total', 'counter', 'Subflows opened on the path since start (SYNs of their TCP connections).', (i) => pc[i]?.subflowsOpened ?? 0);
  perPath('mptun_path_srtt_seconds', 'gauge', 'Smoothed RTT (RFC 6298 SRTT) of the path\'s open subflows, their mean, seconds; absent while none has a sample.', (i) => {
    const ms = pc[i]?.srttMs ?? null;
    return ms === null ? null : ms / 1000;
  });
  // every TCP counter of the path's subflows: retransmissions, timeouts, duplicate ACKs (loss as the TCP stack counts it) ...
  const tcpNames = Object.keys(pc[0]?.tcp ?? {});
  for (const name of tcpNames) {
    perPath(`mptun_path_tcp_${snakeName(name)}_total`, 'counter', `TCP of the path's subflows: ${name} (${TOTAL}).`, (i) => pc[i]?.tcp[name as keyof PathCounters['tcp']] ?? 0);
  }

  for (const g of counterGroups(src)) {
    for (const [name, value] of Object.entries(g.values)) {
      const m = g.metric(name);
      b.add(m.name, 'counter', m.help, value, m.labels);
    }
  }
  return b.build();
}

/** The exposition text of the appliance, now. */
export function renderMetrics(src: MetricsSource, nowMs: number, version: string): string {
  return formatExposition(collectMetrics(src, nowMs, version));
}

/** Where the metrics are served. */
export interface MetricsListen {
  host: string;
  port: number;
}

/** The HTTP server of `--metrics`: GET (or HEAD) /metrics, 404 for any other path. */
export class MetricsServer {
  private constructor(private readonly server: Server, readonly listen: MetricsListen) {}

  /** Listens on `listen`; `render` builds the text on each scrape. Rejects when the address cannot be bound. */
  static async start(listen: MetricsListen, render: () => string, onError: (e: Error) => void): Promise<MetricsServer> {
    const server = createServer((req, res) => handle(req, res, render, onError));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: listen.host, port: listen.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', onError);
    const a = server.address();
    const port = typeof a === 'object' && a !== null ? a.port : listen.port;
    return new MetricsServer(server, { host: listen.host, port });
  }

  /** "ADDR:PORT" (IPv6 in brackets), as a URL host. */
  get address(): string {
    return `${this.listen.host.includes(':') ? `[${this.listen.host}]` : this.listen.host}:${this.listen.port}`;
  }

  /** Stops listening and closes the scrapers' connections (keep-alive ones too). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function handle(req: IncomingMessage, res: ServerResponse, render: () => string, onError: (e: Error) => void): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/metrics') {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at /metrics\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET, HEAD' }).end('method not allowed\n');
    return;
  }
  let body: string;
  try {
    body = render();
  } catch (e) {
    onError(e as Error);
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('the metrics could not be built\n');
    return;
  }
  res.writeHead(200, { 'content-type': EXPOSITION_CONTENT_TYPE, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}
