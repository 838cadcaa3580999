// The appliance: what `mptun up` runs. It finds the paths, opens the TUN device, applies the
// routing plan (recording every step in a state file, so that a crash is cleaned up by the
// next start or `mptun down`), runs the engine with the relay, follows the paths' links through
// netlink, answers `mptun status` on a local control socket, and undoes everything on exit.
import { randomBytes } from 'node:crypto';
import { pooledRandom } from './random.js';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { readFileSync } from 'node:fs';
import { formatIpAddress, formatIpv6, ipv4FromNumber, ipv4ToNumber, parseIpAddress, parseIpv6Address } from '../ip/address.js';
import { Tun } from '../tun/index.js';
import { configureLink, MIN_TXQUEUELEN } from '../routing/link.js';
import { RTPROT_MPTUN, type RouteSpec } from '../routing/route.js';
import { addPathSteps, applyPlan, cleanupLeftovers, ensureSysctls, pathSysctls, replacePathRoute, setPathNatAddress, undo, type SetupPlan, type SetupRecord } from '../routing/setup.js';
import { discoverPaths, interfaceState, NetlinkMonitor, type DiscoveredPath, type MonitorEvent } from '../routing/monitor.js';
import { CounterSet } from '../ip/counters.js';
import { Engine } from './engine.js';
import { ControlError, queryControlSocket, startControlSocket } from '../control/socket.js';
import { Relay } from './relay.js';
import { compileSchedulerPolicy } from '../mptcp/policy.js';
import { MetricsServer, pathStatus, renderMetrics, statusCounters } from './metrics.js';
import { output } from './output.js';
import type { ConvertClient } from './convert-client.js';
import { metricsEndpoint, type ApplianceConfig, type PathConfig } from './config.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

/** Lines on stderr (a file once stderr is closed, see output.ts): `2026-11-25T23:40:01.123Z mptun info: ...`. */
export function makeLogger(level: LogLevel, write: (line: string) => void = (l) => output.writeLog(l)): Logger {
  const at = LEVELS[level];
  const line = (l: LogLevel) => (msg: string) => {
    if (LEVELS[l] <= at) write(`${new Date().toISOString()} mptun ${l}: ${msg}\n`);
  };
  return { error: line('error'), warn: line('warn'), info: line('info'), debug: line('debug') };
}

/** What a running instance keeps in `${stateDir}/state.json`. */
export interface StateFile {
  version: 1;
  pid: number;
  tun: string;
  startedAt: string;
  controlSocket: string;
  record: SetupRecord;
}

export class ApplianceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApplianceError';
  }
}

/**
 * A path: one interface, carrying IPv4 and, when the interface has an IPv6 default route (or
 * an IPv6 gateway was given), IPv6 too (dual stack: one path object, one table id, one index
 * for both versions; a connection uses the sources of its own version). `up` is the IPv4 half:
 * link up and a global IPv4 address; `up6` the IPv6 half: link up and a global IPv6 address.
 */
export interface ResolvedPath {
  index: number;
  iface: string;
  gateway?: string;
  /** The interface's own address (what the masquerade rewrites to), when known. */
  ifaceAddress?: string;
  sourcePrefix: string;
  source: string;
  table: number;
  backup: boolean;
  up: boolean;
  /** IPv6 next hop (often link-local); absent: on-link, or no IPv6 on this path. */
  gateway6?: string;
  ifaceAddress6?: string;
  /** The path's private IPv6 /64 (from sourceRange6) and source (its ::2); absent: IPv4 only. */
  sourcePrefix6?: string;
  source6?: string;
  up6?: boolean;
  /**
   * The gateway and the path's presence follow the interface's default route (in any table, as
   * DHCP clients and NetworkManager install it); false when `--path IFACE:GATEWAY` named the
   * gateway, or when the interface had no default route at start (an on-link path).
   */
  followsRoutes: boolean;
  /** The same for the IPv6 half and the IPv6 default route. */
  followsRoutes6?: boolean;
}

/** What the netlink monitor made the appliance do with its paths (`mptun status`: counters.paths). */
export const PATH_COUNTER_NAMES = [
  'netlinkEvents', 'settles', 'pathsDown', 'pathsUp', 'gatewayMoves', 'addressChanges', 'routeNotSet', 'natNotSet', 'pathsAdded', 'pathsNotAdded',
  'devicesRecreated', 'eventsLostResyncs',
] as const;

/** Paths at most: their rules sit at rulePriority + index, below the exclusions at + 50. */
const MAX_PATHS = 50;
/** Exclusions at most: at rulePriority + 50 + k, below the reply rule at + 99. */
const MAX_EXCLUDE = 48;

const statePath = (dir: string) => `${dir}/state.json`;
/** rtm_type of an ordinary route (include/uapi/linux/rtnetlink.h) */
const RTN_UNICAST = 1;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // a recycled pid belongs to some other program
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('mptun');
  } catch {
    return false;
  }
}

export async function readState(stateDir: string): Promise<StateFile | null> {
  let text: string;
  try {
    text = await readFile(statePath(stateDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const s = JSON.parse(text) as StateFile;
    if (s.version !== 1 || !Array.isArray(s.record?.steps)) throw new Error('unknown format');
    return s;
  } catch (e) {
    throw new ApplianceError(`${statePath(stateDir)}: unreadable state (${(e as Error).message}); remove it, then run \`mptun down\``);
  }
}

async function writeState(stateDir: string, state: StateFile): Promise<void> {
  const file = statePath(stateDir);
  await writeFile(`${file}.tmp`, JSON.stringify(state, null, 1), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

export interface CleanupReport {
  /** The pid of the dead instance whose record was undone, if any. */
  deadPid: number | null;
  recordSteps: number;
  rules: number;
  routes: number;
  nftTable: boolean;
}

/**
 * Removes what a dead instance left: its record undone (sysctls restored), then anything still
 * tagged as mptun's. Refuses when the instance of the state file is alive.
 */
export async function cleanupDeadInstance(stateDir: string, log: Logger): Promise<CleanupReport> {
  const state = await readState(stateDir);
  const report: CleanupReport = { deadPid: null, recordSteps: 0, rules: 0, routes: 0, nftTable: false };
  if (state) {
    if (pidAlive(state.pid) && state.pid !== process.pid) {
      throw new ApplianceError(`mptun is running (pid ${state.pid}, device ${state.tun}); \`mptun down\` stops it`);
    }
    report.deadPid = state.pid;
    report.recordSteps = state.record.steps.length;
    log.warn(`an instance (pid ${state.pid}) died without tearing down: undoing its ${state.record.steps.length} steps`);
    try {
      await undo(state.record);
    } catch (e) {
      log.debug(`undo of the old record: ${(e as Error).message} (the rest is found by its tag)`);
    }
    await rm(statePath(stateDir), { force: true });
    // its control socket (nothing listens there now)
    if (state.controlSocket) await rm(state.controlSocket, { force: true });
  }
  const left = await cleanupLeftovers();
  Object.assign(report, left);
  if (left.rules + left.routes > 0 || left.nftTable) log.warn(`removed leftovers: ${left.rules} rules, ${left.routes} routes${left.nftTable ? ', the nft table' : ''}`);
  return report;
}

/** Path i: the i+1-th /24 of the source range, its address .2; the device: the range's .1. */
function carve(range: string, count: number): { tunAddress: string; prefixes: string[]; sources: string[] } {
  const slash = range.indexOf('/');
  const base = ipv4ToNumber(range.slice(0, slash));
  const plen = Number(range.slice(slash + 1));
  const slots = 2 ** (24 - plen) - 1;
  if (count > slots) throw new ApplianceError(`sourceRange ${range} has room for ${slots} paths, not ${count}`);
  const prefixes: string[] = [];
  const sources: string[] = [];
  for (let i = 0; i < count; i++) {
    const net = (base + (i + 1) * 256) >>> 0;
    prefixes.push(`${ipv4FromNumber(net)}/24`);
    sources.push(ipv4FromNumber(net + 2));
  }
  return { tunAddress: ipv4FromNumber(base + 1), prefixes, sources };
}

/** Slot 0 of an IPv6 range is the device's (its ::1), slot i+1 path i's /64 (its source ::2). */
function carve6(range: string, count: number): { tunAddress: string; prefixes: string[]; sources: string[] } {
  const slash = range.indexOf('/');
  const base = parseIpv6Address(range.slice(0, slash));
  const plen = Number(range.slice(slash + 1));
  const slots = 2 ** (64 - plen) - 1;
  if (count > slots) throw new ApplianceError(`sourceRange6 ${range} has room for ${slots} paths, not ${count}`);
  const at = (slot: number, host: number) => {
    const b = Buffer.from(base);
    // the /64 number goes in bytes 6..7 (a range is at most /48 wide below /64 here: slots < 2^16)
    b.writeUInt16BE((b.readUInt16BE(6) + slot) & 0xffff, 6);
    b.fill(0, 8);
    b[15] = host;
    return b;
  };
  const prefixes: string[] = [];
  const sources: string[] = [];
  for (let i = 0; i < count; i++) {
    prefixes.push(`${formatIpv6(at(i + 1, 0))}/64`);
    sources.push(formatIpv6(at(i + 1, 2)));
  }
  return { tunAddress: formatIpv6(at(0, 1)), prefixes, sources };
}

const isV6 = (a: string) => a.includes(':');

/**
 * The paths of a config: named ones checked, or every interface with a default route (IPv4 or
 * IPv6; those with an IPv4 one first, in the kernel's order).
 */
export async function resolvePaths(config: ApplianceConfig): Promise<ResolvedPath[]> {
  const discovered = await discoverPaths([config.tun]);
  const discovered6 = await discoverPaths([config.tun], 6);
  const seen = new Set(discovered.map((d) => d.iface));
  const named = config.paths.length > 0
    ? config.paths
    : [...discovered, ...discovered6.filter((d) => !seen.has(d.iface))].map((d): PathConfig => ({ iface: d.iface, backup: config.backup.includes(d.iface) }));
  if (named.length === 0) {
    throw new ApplianceError('no paths: no interface has a default route and a global address; name them with --path IFACE[:GATEWAY]');
  }
  const { prefixes, sources } = carve(config.sourceRange, named.length);
  const v6 = carve6(config.sourceRange6, named.length);
  const out: ResolvedPath[] = [];
  for (const [i, p] of named.entries()) {
    const st = await interfaceState(p.iface);
    if (!st) throw new ApplianceError(`path ${p.iface}: no such interface`);
    if (p.iface === config.tun) throw new ApplianceError(`path ${p.iface}: that is mptun's own device`);
    const d = discovered.find((x) => x.iface === p.iface);
    const d6 = discovered6.find((x) => x.iface === p.iface);
    const given = p.gateway;
    const gateway = given !== undefined && !isV6(given) ? given : d?.gateway;
    const v4 = st.addresses.find((a) => !isV6(a.address) && a.scope === 0);
    const v6a = st.addresses.find((a) => isV6(a.address) && a.scope === 0);
    const path: ResolvedPath = {
      index: i, iface: p.iface, sourcePrefix: prefixes[i]!, source: sources[i]!, table: config.table + 1 + i,
      backup: p.backup, up: st.up && v4 !== undefined,
      // a gateway given (of either version) fixes that version's route
      followsRoutes: (given === undefined || isV6(given)) && d !== undefined,
    };
    if (gateway !== undefined) path.gateway = gateway;
    if (v4) path.ifaceAddress = v4.address;
    // the IPv6 half: a discovered IPv6 default route, or an IPv6 gateway given
    const gateway6 = given !== undefined && isV6(given) ? given : d6?.gateway;
    if (d6 || (given !== undefined && isV6(given))) {
      path.sourcePrefix6 = v6.prefixes[i]!;
      path.source6 = v6.sources[i]!;
      path.up6 = st.up && v6a !== undefined;
      path.followsRoutes6 = (given === undefined || !isV6(given)) && d6 !== undefined;
      if (gateway6 !== undefined) path.gateway6 = gateway6;
      if (v6a) path.ifaceAddress6 = v6a.address;
    }
    out.push(path);
  }
  return out;
}

export interface PathStatus extends ResolvedPath {
  subflows: number;
  packetsOut: number;
  bytesOut: number;
  packetsIn: number;
  bytesIn: number;
  /** Subflows opened on the path since start, the mean SRTT of the open ones, their TCP counters (closed ones included). */
  subflowsOpened: number;
  srttMs: number | null;
  tcp: Record<string, number> | null;
}

export class Appliance {
  readonly startedAt = Date.now();
  private monitor: NetlinkMonitor | null = null;
  private netlinkQueue: Promise<void> = Promise.resolve();
  readonly pathCounters = new CounterSet(PATH_COUNTER_NAMES);
  /** Jobs queued and not started (`settle IFACE`, `discover`): a burst of events queues one. */
  private readonly pendingJobs = new Set<string>();
  /** ifindex of each path's interface, as the last link event or read said (route events name the interface by index). */
  private readonly ifindexOf = new Map<string, number>();
  /** ifindex of each path's interface when settlePath last read it (a new one: the device was re-created). */
  private readonly settledIndex = new Map<string, number>();
  private server: Server | null = null;
  private metrics: MetricsServer | null = null;
  private stopping: Promise<void> | null = null;
  /** The plan captures IPv6 (a path had IPv6 at start): a path added later may carry it too. */
  private ipv6 = false;
  private resolveStopped!: () => void;
  /** Settles once everything is undone. */
  readonly stopped = new Promise<void>((r) => (this.resolveStopped = r));

  private constructor(
    readonly config: ApplianceConfig,
    readonly log: Logger,
    readonly tun: Tun,
    readonly tunAddress: string,
    readonly paths: ResolvedPath[],
    readonly relay: Relay,
    readonly engine: Engine,
    private record: SetupRecord,
    private readonly state: StateFile,
    /** The `to PREFIX lookup main` exclusions in place (a path added later may add its LAN's). */
    private readonly excluded: string[],
    readonly convert: ConvertClient | null = null,
  ) {}

  /** Keeps the state file's record what is there (after every step). */
  private readonly persist = async (r: SetupRecord): Promise<void> => {
    this.state.record = r;
    await writeState(this.config.stateDir, this.state);
  };

  /** Sets everything up and starts carrying traffic; on a failure, undoes what it did and throws. */
  static async start(config: ApplianceConfig, log: Logger, convert?: ConvertClient): Promise<Appliance> {
    if (config.metrics === null) return Appliance.setUp(config, log, convert);
    // --metrics is bound before anything is touched (once a running instance has been looked
    // for): an address in use is refused at once; scrapes before the end of the set-up get nothing
    await cleanupDeadInstance(config.stateDir, log);
    const ready: { app: Appliance | null } = { app: null };
    const version = packageVersion();
    const metrics = await Appliance.listenMetrics(config.metrics, () => (ready.app ? renderMetrics(ready.app, Date.now(), version) : ''), log);
    try {
      ready.app = await Appliance.setUp(config, log, convert);
    } catch (e) {
      await metrics.close();
      throw e;
    }
    ready.app.metrics = metrics;
    log.info(`metrics: http://${metrics.address}/metrics`);
    return ready.app;
  }

  private static async setUp(config: ApplianceConfig, log: Logger, convert?: ConvertClient): Promise<Appliance> {
    try {
      await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ApplianceError(`stateDir ${config.stateDir}: ${code ?? (e as Error).message}${code === 'EACCES' || code === 'EPERM' ? ' (mptun up needs root: run it with sudo)' : ''}`);
    }
    await cleanupDeadInstance(config.stateDir, log);
    const paths = await resolvePaths(config);
    const { tunAddress } = carve(config.sourceRange, paths.length);
    // IPv6 is captured when a path carries it: without one, the host's IPv6 keeps its own way
    const ipv6 = paths.some((p) => p.sourcePrefix6 !== undefined);
    const tunAddress6 = ipv6 ? carve6(config.sourceRange6, paths.length).tunAddress : null;
    for (const p of paths) {
      log.info(`path ${p.index}: ${p.iface}${p.gateway ? ` via ${p.gateway}` : ' (on-link)'}${p.ifaceAddress ? ` [${p.ifaceAddress}]` : ''}, source ${p.source} (${p.sourcePrefix}), table ${p.table}${p.backup ? ', backup' : ''}${p.up ? '' : ', DOWN'}`);
      if (p.sourcePrefix6 !== undefined) {
        log.info(`path ${p.index} IPv6: ${p.iface}${p.gateway6 ? ` via ${p.gateway6}` : ' (on-link)'}${p.ifaceAddress6 ? ` [${p.ifaceAddress6}]` : ''}, source ${p.source6} (${p.sourcePrefix6})${p.up6 ? '' : ', DOWN'}`);
      }
    }
    const tun = Tun.open({ name: config.tun, vnetHdr: config.offload, offload: config.offload });
    let record: SetupRecord = { version: 1, steps: [] };
    const state: StateFile = { version: 1, pid: process.pid, tun: tun.name, startedAt: new Date().toISOString(), controlSocket: config.controlSocket, record };
    const exclude = [...config.exclude.filter((c) => !isV6(c))];
    // link-local destinations are never reachable through a path's source prefix
    const exclude6 = ipv6 ? ['fe80::/10', ...config.exclude.filter((c) => isV6(c) && c !== 'fe80::/10')] : [];
    try {
      await configureLink(tun.name, { addresses: [`${tunAddress}/32`, ...(tunAddress6 ? [`${tunAddress6}/128`] : [])], mtu: config.mtu, txqueuelen: MIN_TXQUEUELEN, up: true });
      const priority = config.rulePriority;
      // the concentrator's own address is never captured (its connections would go into itself)
      if (convert && convert.server.addr.length === 4) exclude.push(`${formatIpAddress(convert.server.addr)}/32`);
      if (convert && convert.server.addr.length === 16 && ipv6) exclude6.push(`${formatIpAddress(convert.server.addr)}/128`);
      if (config.excludeLan) {
        for (const p of paths) {
          for (const c of (await interfaceState(p.iface))?.connected ?? []) {
            const list = isV6(c) ? exclude6 : exclude;
            if ((!isV6(c) || ipv6) && !list.includes(c)) list.push(c);
          }
        }
      }
      if (paths.length > MAX_PATHS || exclude.length > MAX_EXCLUDE || exclude6.length > MAX_EXCLUDE) {
        throw new ApplianceError(`too many paths (${paths.length}, at most ${MAX_PATHS}) or exclusions (${exclude.length} IPv4, ${exclude6.length} IPv6, at most ${MAX_EXCLUDE} each)`);
      }
      const plan: SetupPlan = {
        tun: tun.name,
        ipv6,
        synRate: config.synRate,
        capture: { table: config.table, priority: priority + 100 },
        paths: paths.map((p) => {
          const pp: SetupPlan['paths'][number] = { iface: p.iface, sourcePrefix: p.sourcePrefix, table: p.table, rulePriority: priority + p.index };
          if (p.gateway !== undefined) pp.gateway = p.gateway;
          if (p.sourcePrefix6 !== undefined) pp.sourcePrefix6 = p.sourcePrefix6;
          if (p.gateway6 !== undefined) pp.gateway6 = p.gateway6;
          if (p.ifaceAddress !== undefined) pp.address = p.ifaceAddress;
          if (p.ifaceAddress6 !== undefined) pp.address6 = p.ifaceAddress6;
          return pp;
        }),
        exclude: [
          ...exclude.map((prefix, k) => ({ prefix, priority: priority + 50 + k })),
          ...exclude6.map((prefix, k) => ({ prefix, priority: priority + 50 + k })),
        ],
      };
      for (const x of [...exclude, ...exclude6]) log.info(`excluded: ${x} keeps the main table`);
      record = await applyPlan(plan, async (r) => {
        state.record = r;
        await writeState(config.stateDir, state);
      });
      log.info(`routing: TCP (ipproto 6) → table ${config.table} → ${tun.name} (${tunAddress}${tunAddress6 ? `, IPv6 too: ${tunAddress6}` : ''}); rules at ${priority}..${priority + 100}; nft table inet mptun; ${record.steps.length} steps recorded in ${statePath(config.stateDir)}`);
    } catch (e) {
      tun.close();
      throw e;
    }

    const relay = new Relay({
      stack: {
        random: pooledRandom(),
        isnSecret: randomBytes(16),
        headroom: tun.headerLen,
        // the engine writes each packet to the device before it polls the next
        reuseOutput: true,
        checksumOffload: config.offload,
        tcp: { tsoMaxPayload: config.offload ? 64000 : 0, tsoDefer: config.offload },
        mtu: config.mtu,
        synBacklog: config.synBacklog,
        mptcp: { scheduler: config.scheduler, congestionControl: config.congestionControl },
      },
      paths: paths.map((p) => ({
        address: parseIpAddress(p.source).bytes, backup: p.backup, up: p.up,
        ...(p.source6 !== undefined ? { address6: parseIpAddress(p.source6).bytes, up6: p.up6 ?? false } : {}),
      })),
      fullmesh: config.fullmesh,
      maxSubflows: config.maxSubflows,
      maxPending: config.maxPendingOpens,
      ...(convert ? { convert } : {}),
      schedulerFor: compileSchedulerPolicy(config.schedulerPolicy),
    });
    const engine = new Engine(tun, relay);
    engine.onTick = (now) => relay.process(now);
    state.record = record;
    const app = new Appliance(config, log, tun, tunAddress, paths, relay, engine, record, state, [...exclude, ...exclude6], convert ?? null);
    app.ipv6 = ipv6;
    try {
      engine.start();
      await app.startMonitor();
      await app.startControl();
    } catch (e) {
      await app.stop(`start failed: ${(e as Error).message}`);
      throw e;
    }
    log.info(`up: ${paths.length} paths, control socket ${config.controlSocket}`);
    return app;
  }

  private async startMonitor(): Promise<void> {
    const monitor = await NetlinkMonitor.open();
    this.monitor = monitor;
    monitor.on((e) => this.onNetlink(e));
    // events lost (the socket's buffer overran in a burst): every path read afresh
    monitor.onError((err) => {
      this.log.warn(`netlink monitor: ${err.message}${err.errno === 'ENOBUFS' ? ': events lost, every path read again' : ''}`);
      if (err.errno !== 'ENOBUFS') return;
      this.pathCounters.increment('eventsLostResyncs');
      this.resync();
    });
    // the state may have changed between resolving the paths and subscribing
    this.resync();
    await this.netlinkQueue;
  }

  /** Every path settled from a fresh read; without `--path`, new interfaces looked for. */
  private resync(): void {
    for (const p of this.paths) this.enqueue(`settle ${p.iface}`, () => this.settlePath(p));
    if (this.config.paths.length === 0) this.enqueue('discover', () => this.discoverNewPaths());
  }

  /**
   * What a netlink event may change: the path of its interface (link, address, or a default
   * route through it, not one of mptun's own), or, without a `--path` list, the set of paths
   * (an interface with a default route and a global address appeared). The work is queued,
   * one job at a time, and a job already queued for the same thing is not queued again: a
   * burst of events (DHCP, NetworkManager) ends in one job that reads the state afresh.
   */
  private onNetlink(e: MonitorEvent): void {
    if (this.stopping) return;
    this.pathCounters.increment('netlinkEvents');
    let touched: ResolvedPath[] = [];
    if (e.kind === 'route') {
      // a default route of someone else's (DHCP, NetworkManager, by hand), in any table
      if (e.dst !== 'default' || e.protocol === RTPROT_MPTUN || (e.type !== undefined && e.type !== RTN_UNICAST)) return;
      touched = e.oif === undefined ? this.paths : this.paths.filter((p) => this.ifindexOf.get(p.iface) === e.oif);
    } else {
      // a link-local or host address (IPv6 link-local addresses finish DAD a second or two
      // after a link comes up) is never a path's: nothing to read again
      if (e.kind === 'address' && (e.scope ?? 0) !== 0) return;
      touched = this.paths.filter((p) => p.iface === e.iface);
      // the route events that follow name the interface by this index (a device re-created
      // under the same name has a new one)
      if (e.kind === 'link' && !e.deleted && touched.length > 0) this.ifindexOf.set(e.iface, e.index);
    }
    for (const p of touched) this.enqueue(`settle ${p.iface}`, () => this.settlePath(p));
    const joins = e.kind === 'route' ? e.added && touched.length === 0
      : e.kind === 'address' ? e.added && e.scope === 0 && touched.length === 0
        : e.up && touched.length === 0;
    if (joins && this.config.paths.length === 0 && (e.kind === 'route' || e.iface !== this.tun.name)) {
      this.enqueue('discover', () => this.discoverNewPaths());
    }
  }

  private enqueue(key: string, job: () => Promise<void>): void {
    if (this.pendingJobs.has(key)) return;
    this.pendingJobs.add(key);
    this.netlinkQueue = this.netlinkQueue
      .then(() => {
        this.pendingJobs.delete(key);
        return this.stopping ? undefined : job();
      })
      .catch((err: unknown) => this.log.warn(`${key}: ${(err as Error).message}`));
  }

  /**
   * Brings a path in line with its interface, read afresh, each IP version on its own (dual
   * stack: one read of the link, its addresses and its default routes of both versions). A
   * version of the path is up while its link is up (administratively and with carrier), it has
   * a global address of that version and, unless its gateway is fixed, a default route of that
   * version. Then, per version:
   * - it went down: its subflows are closed and their data goes on the other paths;
   * - its address changed (another network, a DHCP lease with a new address): its subflows are
   *   closed the same way (their NAT mapping is gone: the kernel drops the masquerade's
   *   conntrack entries of a deleted address), its route rebuilt, and new subflows opened;
   * - only its gateway changed: its route is moved to the new gateway; the subflows stay (the
   *   source address, so the NAT mapping, is the same);
   * - it came up: its route is put back (the kernel flushes it with the link or the last
   *   address) and the open connections get their subflows on it again.
   */
  private async settlePath(p: ResolvedPath): Promise<void> {
    this.pathCounters.increment('settles');
    const st = await interfaceState(p.iface);
    const dual = p.sourcePrefix6 !== undefined;
    if (st) {
      const known = this.settledIndex.get(p.iface);
      this.settledIndex.set(p.iface, st.index);
      this.ifindexOf.set(p.iface, st.index);
      if (known !== undefined && known !== st.index) {
        // the interface was re-created under its name (a modem plugged in again): a new device
        // starts from the default sysctls
        this.pathCounters.increment('devicesRecreated');
        this.log.info(`path ${p.index} (${p.iface}): a new device of that name (ifindex ${known} → ${st.index}): its sysctls set again`);
        await ensureSysctls(this.record, [...pathSysctls(p.iface), ...(dual ? pathSysctls(p.iface, 6) : [])], this.persist);
      }
    }
    const found4 = st?.up ? (await discoverPaths([this.tun.name])).find((d) => d.iface === p.iface) : undefined;
    const found6 = st?.up && dual ? (await discoverPaths([this.tun.name], 6)).find((d) => d.iface === p.iface) : undefined;
    if (this.stopping) return;
    await this.settleVersion(p, 4, st, found4);
    if (dual && !this.stopping) await this.settleVersion(p, 6, st, found6);
  }

  /** settlePath for one IP version of the path, from the read settlePath made. */
  private async settleVersion(p: ResolvedPath, v: 4 | 6, st: Awaited<ReturnType<typeof interfaceState>>, found: DiscoveredPath | undefined): Promise<void> {
    const half = v === 4
      ? { up: p.up, address: p.ifaceAddress, gateway: p.gateway, follows: p.followsRoutes }
      : { up: p.up6 === true, address: p.ifaceAddress6, gateway: p.gateway6, follows: p.followsRoutes6 === true };
    const globals = (st?.addresses ?? []).filter((a) => isV6(a.address) === (v === 6) && a.scope === 0).map((a) => a.address);
    // IPv6: an interface has several global addresses (SLAAC, temporary ones); the path's address
    // changed only when the one it had is gone
    const address = v === 6 && half.address !== undefined && globals.includes(half.address) ? half.address : found?.address ?? globals[0];
    const up = st !== null && st.up && address !== undefined && (!half.follows || found !== undefined);
    const name = `path ${p.index} (${p.iface}${v === 6 ? ', IPv6' : ''})`;
    if (!up) {
      if (!half.up) return;
      const why = !st ? 'its interface is gone' : !st.up ? 'its link is down' : address === undefined ? `it has no global IPv${v} address` : `its interface has no IPv${v} default route`;
      this.log.warn(`${name} is down (${why}): its subflows are closed, their data goes on the other paths (a connection with no other path keeps its own until one comes back)`);
      if (v === 4) p.up = false;
      else p.up6 = false;
      this.pathCounters.increment('pathsDown');
      this.relay.pathDown(this.engine.now(), p.index, v);
      this.engine.kick();
      return;
    }
    const gateway = half.follows ? found?.gateway : half.gateway;
    const moved = half.up && half.address !== undefined && address !== half.address;
    if (half.up && !moved && gateway === half.gateway) return;
    if (moved) {
      this.pathCounters.increment('addressChanges');
      this.log.warn(`${name}: its address changed (${half.address} → ${address}): its subflows are closed, their data goes on the other paths, new ones follow`);
      this.relay.pathDown(this.engine.now(), p.index, v);
      this.engine.kick();
    } else if (half.up) {
      this.pathCounters.increment('gatewayMoves');
      this.log.info(`${name}: new gateway ${gateway ?? '(on-link)'} (was ${half.gateway ?? 'on-link'}): its route is moved, its subflows kept`);
    }
    const wasUp = half.up && !moved;
    const newAddress = half.address !== undefined && address !== half.address;
    if (!(await this.rebuildPath(p, v, gateway))) return;
    if (address !== half.address) {
      // the NAT rewrites to the interface's address (nft.ts Masquerade.to): follow it
      const prefix = v === 4 ? p.sourcePrefix : p.sourcePrefix6!;
      await setPathNatAddress(this.record, prefix, address, this.persist).catch((e: Error) => {
        this.pathCounters.increment('natNotSet');
        this.log.warn(`${name}: its NAT to ${address} not set: ${e.message}`);
      });
    }
    if (v === 4) p.ifaceAddress = address;
    else p.ifaceAddress6 = address;
    if (wasUp) return;
    if (v === 4) p.up = true;
    else p.up6 = true;
    this.pathCounters.increment('pathsUp');
    this.log.info(`${name} is up${newAddress ? ' on a new address' : ' again'}${gateway ? ` via ${gateway}` : ''} [${address}]: subflows are opened for the open connections`);
    this.relay.pathUp(this.engine.now(), p.index, v);
    this.engine.kick();
  }

  /**
   * The path's table gets its default route of IP version `v` through `gateway` (undefined:
   * on-link), in one replace, and the record says so. Retries while the kernel refuses it (a
   * gateway not yet reachable, just after a link came up); false when it never took.
   */
  private async rebuildPath(p: ResolvedPath, v: 4 | 6, gateway: string | undefined): Promise<boolean> {
    const route: RouteSpec = { dst: 'default', dev: p.iface, table: p.table, version: v };
    if (gateway !== undefined) route.gateway = gateway;
    for (let attempt = 0; ; attempt++) {
      try {
        await replacePathRoute(this.record, route, this.persist);
        break;
      } catch (err) {
        if (attempt >= 20 || this.stopping) {
          this.pathCounters.increment('routeNotSet');
          this.log.warn(`path ${p.index} (${p.iface}): IPv${v} default route${gateway ? ` via ${gateway}` : ''} not set: ${(err as Error).message}`);
          return false;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (v === 4) {
      if (gateway !== undefined) p.gateway = gateway;
      else delete p.gateway;
    } else if (gateway !== undefined) p.gateway6 = gateway;
    else delete p.gateway6;
    return true;
  }

  /**
   * Without a `--path` list: every interface with a default route and a global address (IPv4
   * or IPv6) that is not a path yet joins.
   */
  private async discoverNewPaths(): Promise<void> {
    const found4 = await discoverPaths([this.tun.name]);
    const found6 = await discoverPaths([this.tun.name], 6);
    const ifaces = [...new Set([...found4, ...found6].map((d) => d.iface))];
    for (const iface of ifaces) {
      if (this.stopping) return;
      if (!this.paths.some((p) => p.iface === iface)) await this.addPath(iface, found4.find((d) => d.iface === iface), found6.find((d) => d.iface === iface));
    }
  }

  /**
   * A path that appeared while mptun runs (a USB modem plugged in): the next source prefix
   * (and, when it has IPv6 and mptun captures IPv6, the next /64 of sourceRange6), table and
   * rule, its masquerade, sysctls and (with excludeLan) its LAN's exclusions, all recorded in
   * the state file; then a path of the relay, that the open connections join.
   */
  private async addPath(iface: string, d4: DiscoveredPath | undefined, d6: DiscoveredPath | undefined): Promise<void> {
    const d = (d4 ?? d6)!;
    const index = this.paths.length;
    if (index >= MAX_PATHS) {
      this.pathCounters.increment('pathsNotAdded');
      this.log.warn(`${iface}: not a path: ${MAX_PATHS} paths already`);
      return;
    }
    let carved: ReturnType<typeof carve>;
    let carved6: ReturnType<typeof carve6> | null = null;
    try {
      carved = carve(this.config.sourceRange, index + 1);
      if (d6 && this.ipv6) carved6 = carve6(this.config.sourceRange6, index + 1);
    } catch (e) {
      this.pathCounters.increment('pathsNotAdded');
      this.log.warn(`${iface}: not a path: ${(e as Error).message}`);
      return;
    }
    if (d6 && !this.ipv6) this.log.warn(`${iface}: its IPv6 is not carried (mptun started without an IPv6 path, so IPv6 is not captured: restart it)`);
    // an IPv6-only interface still gets the path's IPv4 half (down until it has IPv4), as at start
    const p: ResolvedPath = {
      index, iface, sourcePrefix: carved.prefixes[index]!, source: carved.sources[index]!, table: this.config.table + 1 + index,
      backup: this.config.backup.includes(iface), up: d4 !== undefined, followsRoutes: true,
    };
    if (d4) p.ifaceAddress = d4.address;
    if (d4?.gateway !== undefined) p.gateway = d4.gateway;
    const priority = this.config.rulePriority;
    const exclude: Array<{ prefix: string; priority: number }> = [];
    const exclude6: Array<{ prefix: string; priority: number }> = [];
    if (this.config.excludeLan) {
      for (const c of (await interfaceState(iface))?.connected ?? []) {
        if (isV6(c) && !carved6) continue;
        const list = isV6(c) ? exclude6 : exclude;
        const held = this.excluded.filter((x) => isV6(x) === isV6(c)).length;
        if (this.excluded.includes(c) || list.some((x) => x.prefix === c)) continue;
        if (held + list.length >= MAX_EXCLUDE) {
          this.log.warn(`${iface}: its LAN ${c} is not excluded: ${MAX_EXCLUDE} exclusions already`);
          continue;
        }
        list.push({ prefix: c, priority: priority + 50 + held + list.length });
      }
    }
    const plan = {
      iface: p.iface, sourcePrefix: p.sourcePrefix, table: p.table, rulePriority: priority + index,
      ...(p.gateway !== undefined ? { gateway: p.gateway } : {}), ...(p.ifaceAddress !== undefined ? { address: p.ifaceAddress } : {}),
    };
    try {
      await addPathSteps(this.record, { tun: this.tun.name, path: plan, capturePriority: priority + 100, exclude }, this.persist);
    } catch (e) {
      this.pathCounters.increment('pathsNotAdded');
      this.log.warn(`${iface}: not a path: ${(e as Error).message}`);
      return;
    }
    this.excluded.push(...exclude.map((x) => x.prefix));
    if (carved6 && d6) {
      const plan6 = {
        iface, sourcePrefix: carved6.prefixes[index]!, table: p.table, rulePriority: priority + index,
        ...(d6.gateway !== undefined ? { gateway: d6.gateway } : {}), ...(d6.address !== undefined ? { address: d6.address } : {}),
      };
      try {
        await addPathSteps(this.record, { family: 6, tun: this.tun.name, path: plan6, capturePriority: priority + 100, exclude: exclude6 }, this.persist);
        this.excluded.push(...exclude6.map((x) => x.prefix));
        p.sourcePrefix6 = plan6.sourcePrefix;
        p.source6 = carved6.sources[index]!;
        p.up6 = true;
        p.followsRoutes6 = true;
        p.ifaceAddress6 = d6.address;
        if (d6.gateway !== undefined) p.gateway6 = d6.gateway;
      } catch (e) {
        this.log.warn(`${iface}: its IPv6 is not carried: ${(e as Error).message}`);
      }
    }
    this.ifindexOf.set(iface, d.index);
    this.settledIndex.set(iface, d.index);
    this.paths.push(p);
    this.pathCounters.increment('pathsAdded');
    const r = this.relay.addPath({
      address: parseIpAddress(p.source).bytes, backup: p.backup, up: p.up,
      ...(p.source6 !== undefined ? { address6: parseIpAddress(p.source6).bytes, up6: true } : {}),
    });
    if (r !== index) this.log.error(`path ${index} is path ${r} of the relay`);
    this.log.info(`path ${index} joins: ${p.iface}${p.gateway ? ` via ${p.gateway}` : ' (on-link)'}${p.ifaceAddress ? ` [${p.ifaceAddress}]` : ''}, source ${p.source} (${p.sourcePrefix}), table ${p.table}${p.backup ? ', backup' : ''}${p.up ? '' : ', IPv4 DOWN'}${exclude.length > 0 ? `; excluded: ${exclude.map((x) => x.prefix).join(', ')}` : ''}`);
    if (p.sourcePrefix6 !== undefined) {
      this.log.info(`path ${index} IPv6: ${p.iface}${p.gateway6 ? ` via ${p.gateway6}` : ' (on-link)'} [${p.ifaceAddress6}], source ${p.source6} (${p.sourcePrefix6})${exclude6.length > 0 ? `; excluded: ${exclude6.map((x) => x.prefix).join(', ')}` : ''}`);
    }
    this.engine.kick();
  }

  private async startControl(): Promise<void> {
    this.server = await startControlSocket(this.config.controlSocket, () => this.status());
  }

  /** `--metrics`: the Prometheus text, built on each scrape (src/appliance/metrics.ts). */
  private static async listenMetrics(listen: string, render: () => string, log: Logger): Promise<MetricsServer> {
    try {
      return await MetricsServer.start(metricsEndpoint(listen), render, (e) => log.warn(`metrics: ${e.message}`));
    } catch (e) {
      throw new ApplianceError(`metrics ${listen}: cannot listen: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }

  /** What `mptun status` shows. */
  status() {
    const now = this.engine.now();
    const flows = this.relay.flowInfo(now);
    const pathCounters = this.relay.pathCounters();
    const paths: PathStatus[] = this.paths.map((p) => {
      const s = this.relay.pathStats[p.index]!;
      return {
        ...p,
        subflows: flows.reduce((n, f) => n + f.subflows.filter((sf) => sf.path === p.index && !sf.closed).length, 0),
        packetsOut: s.packetsOut, bytesOut: s.bytesOut, packetsIn: s.packetsIn, bytesIn: s.bytesIn,
        ...pathStatus(pathCounters[p.index]),
      };
    });
    return {
      pid: process.pid,
      version: packageVersion(),
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      tun: { name: this.tun.name, address: this.tunAddress, offload: this.config.offload, mtu: this.config.mtu },
      paths,
      flows,
      // every counter since start, closed connections included (src/appliance/metrics.ts)
      counters: statusCounters(this),
    };
  }

  /** Tears down: connections reset (the apps see a RST), engine stopped, routing undone. */
  stop(reason: string): Promise<void> {
    this.stopping ??= this.doStop(reason);
    return this.stopping;
  }

  private async doStop(reason: string): Promise<void> {
    this.log.info(`stopping (${reason})`);
    try {
      this.relay.abortAll(this.engine.now());
      this.engine.drain();
    } catch (e) {
      this.log.warn(`resetting connections: ${(e as Error).message}`);
    }
    this.engine.stop();
    this.monitor?.close();
    await this.metrics?.close();
    if (this.server) {
      this.server.close();
      await rm(this.config.controlSocket, { force: true });
    }
    let failed = false;
    try {
      await undo(this.record);
    } catch (e) {
      failed = true;
      this.log.error(`undo: ${(e as Error).message}`);
    }
    try {
      const left = await cleanupLeftovers();
      if (left.rules + left.routes > 0 || left.nftTable) this.log.warn(`also removed: ${left.rules} rules, ${left.routes} routes${left.nftTable ? ', the nft table' : ''}`);
      failed = false;
    } catch (e) {
      this.log.error(`cleanup: ${(e as Error).message}`);
    }
    if (!failed) await rm(statePath(this.config.stateDir), { force: true });
    this.tun.close();
    this.log.info(failed ? 'down, but some of the set-up could not be undone: run `mptun down`' : 'down: routing restored');
    this.resolveStopped();
  }
}

export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Asks the running instance for its status over the control socket. */
export async function queryStatus(socketPath: string, timeoutMs = 5000): Promise<unknown> {
  try {
    return await queryControlSocket(socketPath, 'mptun up', timeoutMs);
  } catch (e) {
    throw e instanceof ControlError ? new ApplianceError(e.message) : e;
  }
}

/** `mptun down`: stops a running instance (SIGTERM, then SIGKILL), then removes what is left. */
export async function down(stateDir: string, log: Logger, waitMs = 10_000): Promise<CleanupReport & { stoppedPid: number | null }> {
  const state = await readState(stateDir);
  let stoppedPid: number | null = null;
  if (state && pidAlive(state.pid)) {
    log.info(`stopping the running instance (pid ${state.pid})`);
    process.kill(state.pid, 'SIGTERM');
    const until = Date.now() + waitMs;
    while (pidAlive(state.pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    if (pidAlive(state.pid)) {
      log.warn(`pid ${state.pid} did not stop within ${waitMs} ms: SIGKILL`);
      process.kill(state.pid, 'SIGKILL');
      while (pidAlive(state.pid)) await new Promise((r) => setTimeout(r, 50));
    }
    stoppedPid = state.pid;
  }
  const report = await cleanupDeadInstance(stateDir, log);
  return { ...report, stoppedPid };
}

