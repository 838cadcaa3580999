// Measurements on the two-link test bed (scripts/testbed.sh), shared by `mptun demo` and
// bench/aggregate: iperf3 from the client namespace to the kernel's MPTCP iperf3 server over
// one link (plain kernel TCP), over both (the kernel's own MPTCP client), and through mptun
// (plain iperf3, captured by `mptun up`). Per-link figures are bytes on the wire: the client
// links' transmit (upload) or receive (download) counters.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const TESTBED = `${root}scripts/testbed.sh`;
const MPTUN = `${root}bin/mptun.js`;
/** System tools first: under npm, node_modules/.bin (with a JS `nft`) leads PATH. */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const ENV = { ...process.env, PATH: `${SYSTEM_PATH}:${process.env.PATH ?? ''}` };

export interface BedTopology {
  TESTBED_NS_CLIENT: string;
  TESTBED_NS_SERVER: string;
  TESTBED_SRV_ADDR1: string;
  TESTBED_SRV_ADDR6_1: string;
  TESTBED_CLI_IF1: string;
  TESTBED_CLI_IF2: string;
  /** "1" when the bed has a destination namespace behind the server (up --dest) */
  TESTBED_DEST: string;
  TESTBED_NS_DEST: string;
  TESTBED_DST_ADDR: string;
  TESTBED_DST_ADDR6: string;
}

export class TestBed {
  topo!: BedTopology;
  private mptun: ChildProcess | null = null;
  private mptunLog = '';

  constructor(readonly prefix: string) {}

  get stateDir(): string {
    return `/run/mptun-${this.prefix}`;
  }

  get controlSocket(): string {
    return `${this.stateDir}/control.sock`;
  }

  async run(...args: string[]): Promise<string> {
    const { stdout } = await exec('bash', [TESTBED, ...args], { env: { ...ENV, TESTBED_PREFIX: this.prefix }, timeout: 120_000, maxBuffer: 16 << 20 });
    return stdout;
  }

  async client(cmd: string, args: string[], timeout = 60_000): Promise<string> {
    const { stdout } = await exec('ip', ['netns', 'exec', this.topo.TESTBED_NS_CLIENT, cmd, ...args], { env: ENV, timeout, maxBuffer: 64 << 20 });
    return stdout;
  }

  /**
   * Builds the bed (links shaped to `rate` Mbit/s) with the kernel's MPTCP iperf3 server;
   * `options`: more options of testbed.sh's `up` (e.g. `--dest`).
   */
  async up(rate: number, options: string[] = []): Promise<void> {
    await this.run('up', '--rate', String(rate), ...options);
    this.topo = Object.fromEntries((await this.run('env')).trim().split('\n').map((l) => {
      const i = l.indexOf('=');
      return [l.slice(0, i), l.slice(i + 1).replace(/^'|'$/g, '')];
    })) as unknown as BedTopology;
    await this.run('server-start');
  }

  async down(): Promise<void> {
    await this.stopMptun().catch(() => undefined);
    await this.run('down').catch(() => undefined);
  }

  /**
   * Starts `mptun up` in the client namespace; resolves once it is up. `nodeOptions`: options
   * of node itself (`--cpu-prof --cpu-prof-dir DIR`: a CPU profile written when mptun exits).
   */
  async startMptun(extra: string[] = [], nodeOptions: string[] = []): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', this.topo.TESTBED_NS_CLIENT, process.execPath, ...nodeOptions, MPTUN, 'up',
      '--state-dir', this.stateDir, '--control-socket', this.controlSocket, ...extra], { stdio: ['ignore', 'ignore', 'pipe'], env: ENV });
    this.mptun = child;
    this.mptunLog = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.mptunLog += d; });
    const deadline = Date.now() + 20_000;
    while (!this.mptunLog.includes('mptun info: up:')) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`mptun up exited: ${this.mptunLog.trim()}`);
      if (Date.now() > deadline) throw new Error(`mptun up did not come up: ${this.mptunLog.trim()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  get log(): string {
    return this.mptunLog;
  }

  async stopMptun(): Promise<void> {
    const child = this.mptun;
    this.mptun = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async mptunStatus(): Promise<MptunStatus> {
    return JSON.parse(await this.client(process.execPath, [MPTUN, 'status', '--json', '--control-socket', this.controlSocket])) as MptunStatus;
  }

  /** Transmit and receive byte counters of the client's two links. */
  async linkBytes(): Promise<Array<{ tx: number; rx: number }>> {
    const out: Array<{ tx: number; rx: number }> = [];
    for (const dev of [this.topo.TESTBED_CLI_IF1, this.topo.TESTBED_CLI_IF2]) {
      const j = JSON.parse(await this.client('ip', ['-j', '-s', 'link', 'show', 'dev', dev])) as [{ stats64: { tx: { bytes: number }; rx: { bytes: number } } }];
      out.push({ tx: j[0].stats64.tx.bytes, rx: j[0].stats64.rx.bytes });
    }
    return out;
  }

  /**
   * iperf3 for `seconds` from the client (`mptcpize run` for the kernel's MPTCP); goodput as
   * iperf3's receiver saw it, and each link's share of the bytes on the wire.
   */
  async iperf(seconds: number, opts: { mptcp?: boolean; reverse?: boolean; ipv6?: boolean } = {}): Promise<Throughput> {
    const cmd = opts.mptcp ? ['mptcpize', 'run', 'iperf3'] : ['iperf3'];
    const to = opts.ipv6 ? ['-6', '-c', this.topo.TESTBED_SRV_ADDR6_1] : ['-c', this.topo.TESTBED_SRV_ADDR1];
    const args = [...cmd.slice(1), ...to, '-t', String(seconds), '-J', ...(opts.reverse ? ['-R'] : [])];
    const before = await this.linkBytes();
    const pid = this.mptun?.pid;
    const cpu0 = pid !== undefined ? cpuSeconds(pid) : null;
    const t0 = process.hrtime.bigint();
    const out = await this.client(cmd[0]!, args, (seconds + 30) * 1000);
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu1 = pid !== undefined ? cpuSeconds(pid) : null;
    const after = await this.linkBytes();
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    const wire = after.map((a, i) => (opts.reverse ? a.rx - before[i]!.rx : a.tx - before[i]!.tx));
    const result: Throughput = {
      mbit: +(j.end.sum_received.bits_per_second / 1e6).toFixed(1),
      perLinkMbit: wire.map((b) => +((b * 8) / elapsed / 1e6).toFixed(1)),
      perLinkShare: wire.map((b) => +(b / Math.max(1, wire[0]! + wire[1]!)).toFixed(3)),
    };
    if (cpu0 && cpu1) {
      result.mptunCpu = {
        ofOneCore: +((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed).toFixed(3),
        user: +((cpu1.user - cpu0.user) / elapsed).toFixed(3),
        system: +((cpu1.system - cpu0.system) / elapsed).toFixed(3),
      };
    }
    return result;
  }
}

export interface Throughput {
  /** iperf3's goodput at the receiver, Mbit/s */
  mbit: number;
  /** bytes on each client link during the run (IP + link headers, all of iperf3's traffic), Mbit/s */
  perLinkMbit: number[];
  perLinkShare: number[];
  /**
   * While mptun ran: its process's CPU time (user + system, /proc/PID/stat) over the run's
   * wall time, as a fraction of one core (the iperf3 run's setup and teardown included).
   */
  mptunCpu?: { ofOneCore: number; user: number; system: number };
}

/** User and system CPU seconds of process `pid` so far (/proc/PID/stat utime, stime), or null when it is gone. */
export function cpuSeconds(pid: number): { user: number; system: number } | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // proc(5): "(2) comm %s ... in parentheses"; the fields after it: (14) utime, (15) stime in clock ticks
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = 100; // sysconf(_SC_CLK_TCK) on Linux
  return { user: Number(f[11]) / hz, system: Number(f[12]) / hz };
}

export interface MptunStatus {
  paths: Array<{ iface: string; up: boolean; bytesOut: number; bytesIn: number; subflows: number }>;
  flows: Array<{ fallback: boolean }>;
  counters: Record<string, Record<string, number>>;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
