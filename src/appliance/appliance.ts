// The appliance: what `mptun up` runs. It finds the paths, opens the TUN device, applies the
// routing plan (recording every step in a state file, so that a crash is cleaned up by the
// next start or `mptun down`), runs the engine with the relay, follows the paths' links through
// netlink, answers `mptun status` on a local control socket, and undoes everything on exit.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { readFileSync } from 'node:fs';
import { ipv4FromNumber, ipv4ToNumber, parseIpAddress } from '../ip/address.js';
import { Tun } from '../tun/index.js';
import { configureLink, MIN_TXQUEUELEN } from '../routing/link.js';
import { addRoute, type RouteSpec } from '../routing/route.js';
import { applyPlan, cleanupLeftovers, undo, type SetupPlan, type SetupRecord } from '../routing/setup.js';
import { RoutingError } from '../routing/netlink.js';
import { discoverPaths, interfaceState, NetlinkMonitor, type MonitorEvent } from '../routing/monitor.js';
import { Engine } from './engine.js';
import { Relay } from './relay.js';
import { MetricsServer, pathStatus, renderMetrics, statusCounters } from './metrics.js';
import { metricsEndpoint, type ApplianceConfig } from '../cli/config.js';
import { output } from './output.js';

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
}

const statePath = (dir: string) => `${dir}/state.json`;

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

/** The paths of a config: named ones checked, or every interface with a default route. */
export async function resolvePaths(config: ApplianceConfig): Promise<ResolvedPath[]> {
  const discovered = await discoverPaths([config.tun]);
  const named = config.paths.length > 0
    ? config.paths
    : discovered.map((d) => ({ iface: d.iface, gateway: d.gateway, backup: config.backup.includes(d.iface) }));
  if (named.length === 0) {
    throw new ApplianceError('no paths: no interface has a default route and a global IPv4 address; name them with --path IFACE[:GATEWAY]');
  }
  const { prefixes, sources } = carve(config.sourceRange, named.length);
  const out: ResolvedPath[] = [];
  for (const [i, p] of named.entries()) {
    const st = await interfaceState(p.iface);
    if (!st) throw new ApplianceError(`path ${p.iface}: no such interface`);
    if (p.iface === config.tun) throw new ApplianceError(`path ${p.iface}: that is mptun's own device`);
    const d = discovered.find((x) => x.iface === p.iface);
    const gateway = p.gateway ?? d?.gateway;
    const v4 = st.addresses.find((a) => !a.address.includes(':') && a.scope === 0);
    const path: ResolvedPath = {
      index: i, iface: p.iface, sourcePrefix: prefixes[i]!, source: sources[i]!, table: config.table + 1 + i,
      backup: p.backup, up: st.up,
    };
    if (gateway !== undefined) path.gateway = gateway;
    if (v4) path.ifaceAddress = v4.address;
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
  private server: Server | null = null;
  private metrics: MetricsServer | null = null;
  private stopping: Promise<void> | null = null;
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
  ) {}

  /** Sets everything up and starts carrying traffic; on a failure, undoes what it did and throws. */
  static async start(config: ApplianceConfig, log: Logger): Promise<Appliance> {
    if (config.metrics === null) return Appliance.setUp(config, log);
    // --metrics is bound before anything is touched (once a running instance has been looked
    // for): an address in use is refused at once; scrapes before the end of the set-up get nothing
    await cleanupDeadInstance(config.stateDir, log);
    const ready: { app: Appliance | null } = { app: null };
    const version = packageVersion();
    const metrics = await Appliance.listenMetrics(config.metrics, () => (ready.app ? renderMetrics(ready.app, Date.now(), version) : ''), log);
    try {
      ready.app = await Appliance.setUp(config, log);
    } catch (e) {
      await metrics.close();
      throw e;
    }
    ready.app.metrics = metrics;
    log.info(`metrics: http://${metrics.address}/metrics`);
    return ready.app;
  }

  private static async setUp(config: ApplianceConfig, log: Logger): Promise<Appliance> {
    try {
      await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ApplianceError(`stateDir ${config.stateDir}: ${code ?? (e as Error).message}${code === 'EACCES' || code === 'EPERM' ? ' (mptun up needs root: run it with sudo)' : ''}`);
    }
    await cleanupDeadInstance(config.stateDir, log);
    const paths = await resolvePaths(config);
    const { tunAddress } = carve(config.sourceRange, paths.length);
    for (const p of paths) {
      log.info(`path ${p.index}: ${p.iface}${p.gateway ? ` via ${p.gateway}` : ' (on-link)'}${p.ifaceAddress ? ` [${p.ifaceAddress}]` : ''}, source ${p.source} (${p.sourcePrefix}), table ${p.table}${p.backup ? ', backup' : ''}${p.up ? '' : ', DOWN'}`);
    }
    const tun = Tun.open({ name: config.tun, vnetHdr: config.offload, offload: config.offload });
    let record: SetupRecord = { version: 1, steps: [] };
    try {
      await configureLink(tun.name, { addresses: [`${tunAddress}/32`], mtu: config.mtu, txqueuelen: MIN_TXQUEUELEN, up: true });
      const priority = config.rulePriority;
      const exclude = [...config.exclude.filter((c) => !c.includes(':'))];
      if (config.excludeLan) {
        for (const p of paths) for (const c of (await interfaceState(p.iface))?.connected ?? []) if (!c.includes(':') && !exclude.includes(c)) exclude.push(c);
      }
      if (paths.length > 50 || exclude.length > 48) throw new ApplianceError(`too many paths (${paths.length}, at most 50) or exclusions (${exclude.length}, at most 48)`);
      const plan: SetupPlan = {
        tun: tun.name,
        capture: { table: config.table, priority: priority + 100 },
        paths: paths.map((p) => {
          const pp: SetupPlan['paths'][number] = { iface: p.iface, sourcePrefix: p.sourcePrefix, table: p.table, rulePriority: priority + p.index };
          if (p.gateway !== undefined) pp.gateway = p.gateway;
          return pp;
        }),
        exclude: exclude.map((prefix, k) => ({ prefix, priority: priority + 50 + k })),
      };
      for (const x of exclude) log.info(`excluded: ${x} keeps the main table`);
      const state: StateFile = { version: 1, pid: process.pid, tun: tun.name, startedAt: new Date().toISOString(), controlSocket: config.controlSocket, record };
      record = await applyPlan(plan, async (r) => {
        state.record = r;
        await writeState(config.stateDir, state);
      });
      log.info(`routing: TCP (ipproto 6) → table ${config.table} → ${tun.name} (${tunAddress}); rules at ${priority}..${priority + 100}; nft table inet mptun; ${record.steps.length} steps recorded in ${statePath(config.stateDir)}`);
    } catch (e) {
      tun.close();
      throw e;
    }

    const relay = new Relay({
      stack: {
        random: (n) => randomBytes(n),
        isnSecret: randomBytes(16),
        headroom: tun.headerLen,
        checksumOffload: config.offload,
        tcp: { tsoMaxPayload: config.offload ? 64000 : 0 },
        mtu: config.mtu,
        mptcp: { scheduler: config.scheduler, congestionControl: config.congestionControl },
      },
      paths: paths.map((p) => ({ address: parseIpAddress(p.source).bytes, backup: p.backup, up: p.up })),
      fullmesh: config.fullmesh,
      maxSubflows: config.maxSubflows,
    });
    const engine = new Engine(tun, relay);
    engine.onTick = (now) => relay.process(now);
    const app = new Appliance(config, log, tun, tunAddress, paths, relay, engine, record);
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
    // one event at a time: a handler that reads the interface's state must not race the next
    monitor.on((e) => {
      this.netlinkQueue = this.netlinkQueue.then(() => this.onNetlink(e)).catch((err: unknown) => this.log.warn(`netlink event: ${(err as Error).message}`));
    });
    // the state may have changed between resolving the paths and subscribing
    for (const p of this.paths) {
      const st = await interfaceState(p.iface);
      const e: MonitorEvent = st ? { kind: 'link', iface: p.iface, index: st.index, up: st.up, deleted: false } : { kind: 'link', iface: p.iface, index: -1, up: false, deleted: true };
      this.netlinkQueue = this.netlinkQueue.then(() => this.onNetlink(e));
      await this.netlinkQueue;
    }
  }

  /**
   * A path is up while its link is up (administratively and with carrier) and it has a global
   * IPv4 address: a link going down, or losing its address (a DHCP lease gone), takes it down.
   */
  private async onNetlink(e: MonitorEvent): Promise<void> {
    if ((e.kind !== 'link' && e.kind !== 'address') || this.stopping) return;
    const p = this.paths.find((x) => x.iface === e.iface);
    if (!p) return;
    let up = e.kind === 'link' ? e.up && !e.deleted : p.up;
    if (up || e.kind === 'address') {
      const st = await interfaceState(p.iface);
      up = st !== null && st.up && st.addresses.some((a) => !a.address.includes(':') && a.scope === 0);
    }
    if (this.stopping || up === p.up) return;
    p.up = up;
    if (!up) {
      this.log.warn(`path ${p.index} (${p.iface}) is down: its subflows are closed, their data goes on the other paths`);
      this.relay.pathDown(this.engine.now(), p.index);
      this.engine.kick();
      return;
    }
    // the kernel flushed the path's routes with the link: put its default route back
    const route: RouteSpec = { dst: 'default', dev: p.iface, table: p.table };
    if (p.gateway !== undefined) route.gateway = p.gateway;
    for (let attempt = 0; ; attempt++) {
      try {
        await addRoute(route);
        break;
      } catch (err) {
        if (err instanceof RoutingError && err.errno === 'EEXIST') break;
        if (attempt >= 20 || !p.up) {
          this.log.warn(`path ${p.index} (${p.iface}): default route not restored: ${(err as Error).message}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (!p.up) return;
    this.log.info(`path ${p.index} (${p.iface}) is up again: subflows are re-created for the open connections`);
    this.relay.pathUp(p.index);
    this.engine.kick();
  }

  private async startControl(): Promise<void> {
    const path = this.config.controlSocket;
    await mkdir(path.slice(0, path.lastIndexOf('/')) || '/', { recursive: true, mode: 0o700 });
    await rm(path, { force: true });
    const server = createServer((sock) => {
      let buf = '';
      sock.setEncoding('utf8');
      sock.on('error', () => undefined);
      sock.on('data', (d: string) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl < 0) {
          if (buf.length > 4096) sock.destroy();
          return;
        }
        const cmd = buf.slice(0, nl).trim();
        if (cmd === 'status') sock.end(JSON.stringify(this.status()) + '\n');
        else sock.end(JSON.stringify({ error: `unknown command ${JSON.stringify(cmd)}` }) + '\n');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    // root only
    await chmod(path, 0o600);
    this.server = server;
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
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ApplianceError(`${socketPath}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write('status\n'));
    sock.on('data', (d: string) => (buf += d));
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf));
      } catch {
        reject(new ApplianceError(`${socketPath}: bad answer`));
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? ' (is mptun up running?)' : e.code === 'EACCES' ? ' (root only: use sudo)' : '';
      reject(new ApplianceError(`${socketPath}: ${e.message}${hint}`));
    });
  });
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

