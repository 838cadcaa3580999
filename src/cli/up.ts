// `mptun up`, `mptun down`, `mptun status`.
import { parseArgs } from 'node:util';
import { Appliance, down, makeLogger, queryStatus, type PathStatus } from '../appliance/appliance.js';
import { COUNTER_GROUP_TITLES } from '../appliance/metrics.js';
import { ConfigError, DEFAULT_CONFIG, loadConfig, type CliFlags } from './config.js';
import { join } from 'node:path';
import { output } from '../appliance/output.js';

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
  metrics: { type: 'string' },
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
  if (values.metrics !== undefined) flags.metrics = values.metrics;
  // a bad config is refused before anything is touched
  const config = await loadConfig(flags);
  // a closed stderr (`mptun up | head -1`): log lines go on in the state directory
  output.setLogFile(join(config.stateDir, 'mptun.log'));
  const log = makeLogger(config.logLevel);
  const app = await Appliance.start(config, log);
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
