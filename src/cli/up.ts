// `mptun up`, `mptun down`, `mptun status`.
import { parseArgs } from 'node:util';
import { Appliance, down, makeLogger, queryStatus, type PathStatus } from '../appliance/appliance.js';
import { COUNTER_GROUP_TITLES } from '../appliance/metrics.js';
import { join } from 'node:path';
import { output } from '../appliance/output.js';
import { ConfigError, DEFAULT_CONFIG, loadConfig, type ApplianceConfig, type CliFlags } from './config.js';
import { pooledRandom } from '../appliance/random.js';
import { lookup } from 'node:dns/promises';
import { ConvertClient } from '../appliance/convert-client.js';
import { IpPrefix, parseIpAddress } from '../ip/address.js';
import { KeyFileError, readKeyFile } from '../server/key.js';

const UP_OPTIONS = {
  config: { type: 'string', short: 'c' },
  path: { type: 'string', multiple: true },
  backup: { type: 'string', multiple: true },
  tun: { type: 'string' },
  exclude: { type: 'string', multiple: true },
  'exclude-lan': { type: 'boolean' },
  'no-offload': { type: 'boolean' },
  mtu: { type: 'string' },
  scheduler: { type: 'string' },
  'congestion-control': { type: 'string' },
  'control-socket': { type: 'string' },
  'state-dir': { type: 'string' },
  'log-level': { type: 'string' },
  fullmesh: { type: 'boolean' },
  'max-subflows': { type: 'string' },
  'source-range6': { type: 'string' },
  metrics: { type: 'string' },
  server: { type: 'string' },
  key: { type: 'string' },
  direct: { type: 'string', multiple: true },
  'server-pool': { type: 'string' },
} as const;

function argError(e: unknown): never {
  throw new ConfigError('command line', '(arguments)', (e as Error).message);
}

export async function runUp(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: UP_OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    argError(e);
  }
  const flags: CliFlags = {};
  if (values.config !== undefined) flags.config = values.config;
  if (values.path !== undefined) flags.path = values.path;
  if (values.backup !== undefined) flags.backup = values.backup;
  if (values.tun !== undefined) flags.tun = values.tun;
  if (values.exclude !== undefined) flags.exclude = values.exclude;
  if (values['exclude-lan'] !== undefined) flags.excludeLan = values['exclude-lan'];
  if (values['no-offload'] !== undefined) flags.offload = !values['no-offload'];
  if (values.mtu !== undefined) flags.mtu = values.mtu;
  if (values.scheduler !== undefined) flags.scheduler = values.scheduler;
  if (values['congestion-control'] !== undefined) flags.congestionControl = values['congestion-control'];
  if (values['control-socket'] !== undefined) flags.controlSocket = values['control-socket'];
  if (values['state-dir'] !== undefined) flags.stateDir = values['state-dir'];
  if (values['log-level'] !== undefined) flags.logLevel = values['log-level'];
  if (values.fullmesh !== undefined) flags.fullmesh = values.fullmesh;
  if (values['max-subflows'] !== undefined) flags.maxSubflows = values['max-subflows'];
  if (values['source-range6'] !== undefined) flags.sourceRange6 = values['source-range6'];
  if (values.metrics !== undefined) flags.metrics = values.metrics;
  if (values.server !== undefined) flags.server = values.server;
  if (values.key !== undefined) flags.key = values.key;
  if (values.direct !== undefined) flags.direct = values.direct;
  if (values['server-pool'] !== undefined) flags.serverPool = values['server-pool'];
  // a bad config is refused before anything is touched
  const config = await loadConfig(flags);
  // a closed stderr (`mptun up | head -1`): log lines go on in the state directory
  output.setLogFile(join(config.stateDir, 'mptun.log'));
  const log = makeLogger(config.logLevel);
  const convert = await concentratorClient(config, log);
  const app = await Appliance.start(config, log, convert ?? undefined);
  const onSignal = (sig: NodeJS.Signals) => {
    void app.stop(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  let code = 0;
  process.on('uncaughtException', (e) => {
    log.error(`internal error: ${e.stack ?? e.message}`);
    code = 1;
    void app.stop('internal error');
  });
  await app.stopped;
  return code;
}

export async function runDown(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, 'state-dir': { type: 'string' }, 'log-level': { type: 'string' } }, strict: true }));
  } catch (e) {
    argError(e);
  }
  const level = values['log-level'] ?? 'info';
  if (level !== 'error' && level !== 'warn' && level !== 'info' && level !== 'debug') throw new ConfigError('command line', '--log-level', `"${level}" is not one of error, warn, info, debug`);
  const log = makeLogger(level);
  // --config: the state dir of the instance `mptun up --config FILE` started (the systemd unit's
  // ExecStopPost). A file that no longer reads (edited while mptun ran) must not keep the routing
  // from being put back: the default state dir is then tried, saying so.
  let stateDir = values['state-dir'];
  if (stateDir === undefined && values.config !== undefined) {
    try {
      stateDir = (await loadConfig({ config: values.config })).stateDir;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      log.warn(`${e.message}: using the default state dir ${DEFAULT_CONFIG.stateDir}`);
    }
  }
  const r = await down(stateDir ?? DEFAULT_CONFIG.stateDir, log);
  const what = [
    r.stoppedPid !== null ? `stopped pid ${r.stoppedPid}` : null,
    r.deadPid !== null && r.deadPid !== r.stoppedPid ? `undid the record of dead pid ${r.deadPid} (${r.recordSteps} steps)` : null,
    r.rules + r.routes > 0 || r.nftTable ? `removed ${r.rules} rules, ${r.routes} routes${r.nftTable ? ', the nft table' : ''}` : null,
  ].filter((x) => x !== null);
  console.log(`mptun down: ${what.length > 0 ? what.join('; ') : 'nothing of mptun was set up'}`);
  return 0;
}

interface StatusReport {
  pid: number;
  version: string;
  uptimeS: number;
  tun: { name: string; address: string; offload: boolean; mtu: number };
  paths: PathStatus[];
  flows: Array<{
    id: number; app: string; destination: string; state: string; fallback: boolean; ageMs: number; bytesToUpstream: number; bytesToHost: number;
    subflows: Array<{ path: number; local: string; remote: string; backup: boolean; closed: boolean; bytesOut: number; bytesIn: number; state: string; srttMs: number | null; cwnd: number }>;
  }>;
  counters: Record<string, Record<string, number>>;
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/**
 * The counters, a block per group (titled, in the order of COUNTER_GROUP_TITLES), the ones that
 * are not zero as `name value` wrapped at `width` columns.
 */
export function formatCounters(counters: Record<string, Record<string, number>>, width = 100): string[] {
  const lines: string[] = [];
  const titles = new Map(COUNTER_GROUP_TITLES);
  const keys = [...COUNTER_GROUP_TITLES.map(([k]) => k).filter((k) => k in counters), ...Object.keys(counters).filter((k) => !titles.has(k))];
  for (const key of keys) {
    const items = Object.entries(counters[key] ?? {}).filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${v}`);
    if (items.length === 0) continue;
    lines.push(`  ${titles.get(key) ?? key}:`);
    let line = '   ';
    for (const item of items) {
      if (line.length > 3 && line.length + 2 + item.length > width) {
        lines.push(line);
        line = '   ';
      }
      line += `${line.length > 3 ? ',' : ''} ${item}`;
    }
    lines.push(line);
  }
  return lines;
}

export async function runStatus(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, 'control-socket': { type: 'string' } }, strict: true }));
  } catch (e) {
    argError(e);
  }
  const s = (await queryStatus(values['control-socket'] ?? DEFAULT_CONFIG.controlSocket)) as StatusReport;
  if (values.json) {
    console.log(JSON.stringify(s, null, 2));
    return 0;
  }
  const lines: string[] = [];
  lines.push(`mptun ${s.version}, pid ${s.pid}, up ${s.uptimeS} s; device ${s.tun.name} ${s.tun.address} mtu ${s.tun.mtu}${s.tun.offload ? ' (TSO)' : ''}`);
  lines.push('paths:');
  for (const p of s.paths) {
    lines.push(`  ${p.index} ${p.iface.padEnd(10)} ${(p.up ? 'up' : 'DOWN').padEnd(5)}${p.backup ? 'backup ' : ''}via ${p.gateway ?? 'on-link'}  source ${p.source}  subflows ${p.subflows}  out ${mb(p.bytesOut)}  in ${mb(p.bytesIn)}`);
    if (p.source6 !== undefined) lines.push(`    IPv6 ${(p.up6 ? 'up' : 'DOWN').padEnd(5)}via ${p.gateway6 ?? 'on-link'}  source ${p.source6}`);
    if (p.subflowsOpened !== undefined) {
      const rtx = p.tcp ? `  retransmitted ${p.tcp.retransmittedSegments ?? 0} segments (${mb(p.tcp.retransmittedBytes ?? 0)}), ${p.tcp.rtoTimeouts ?? 0} RTOs` : '';
      lines.push(`      subflows opened ${p.subflowsOpened}  rtt ${p.srttMs === null ? '-' : `${p.srttMs.toFixed(1)} ms`}${rtx}`);
    }
  }
  lines.push(`connections: ${s.flows.length}`);
  for (const f of s.flows) {
    lines.push(`  #${f.id} ${f.app} -> ${f.destination} ${f.state}${f.fallback ? ' (plain TCP: the destination does not speak MPTCP)' : ''}  up ${mb(f.bytesToUpstream)}  down ${mb(f.bytesToHost)}`);
    for (const sf of f.subflows) {
      lines.push(`      path ${sf.path} ${sf.local} -> ${sf.remote} ${sf.closed ? 'closed' : sf.state}${sf.backup ? ' backup' : ''}  out ${mb(sf.bytesOut)} in ${mb(sf.bytesIn)}  rtt ${sf.srttMs === null ? '-' : `${sf.srttMs.toFixed(1)} ms`}  cwnd ${sf.cwnd}`);
    }
  }
  lines.push('counters since start, closed connections included (zeros left out; --json has them all):');
  lines.push(...formatCounters(s.counters));
  console.log(lines.join('\n'));
  return 0;
}

/**
 * `--server HOST[:PORT] --key FILE`: the concentrator client, with the key read (mode 0600 or
 * refused) and the host resolved (IPv4 first, else IPv6) before anything is touched.
 */
async function concentratorClient(config: ApplianceConfig, log: ReturnType<typeof makeLogger>): Promise<ConvertClient | null> {
  if (config.server === null) return null;
  const i = config.server.lastIndexOf(':');
  const host = config.server.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(config.server.slice(i + 1));
  let key: Buffer;
  try {
    key = await readKeyFile(config.key!);
  } catch (e) {
    if (e instanceof KeyFileError) throw new ConfigError(COMMAND_OR_FILE, 'key', e.message);
    throw e;
  }
  // an address as given; a name: its IPv4 address, else its IPv6 one (the upstream connections
  // then go over the paths' IPv6)
  let address: string;
  try {
    address = await lookup(host, { family: 4 }).then((a) => a.address, () => lookup(host, { family: 6 }).then((a) => a.address));
  } catch (e) {
    throw new ConfigError(COMMAND_OR_FILE, 'server', `${host}: no IPv4 or IPv6 address (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const client = new ConvertClient({
    server: { addr: parseIpAddress(address).bytes, port },
    key,
    direct: config.direct.map((d) => IpPrefix.parse(d)),
    random: pooledRandom(),
    nowS: () => Date.now() / 1000,
    log: (level, line) => log[level](line),
    pool: config.serverPool,
  });
  log.info(`concentrator: ${address}:${port}${host !== address ? ` (${host})` : ''}: every captured connection goes there over MPTCP${config.direct.length > 0 ? `, but for ${config.direct.join(', ')}` : ''}`);
  return client;
}

const COMMAND_OR_FILE = 'configuration';
