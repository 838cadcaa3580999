// What the concentrator changes in the kernel at start, recorded so that it is put back on exit:
// MPTCP on (net.mptcp.enabled), TCP Fast Open's server bit (net.ipv4.tcp_fastopen | 0x2),
// MPTCP limits (subflows a client may join, addresses accepted), and a `signal` MPTCP endpoint
// for each of the server's global addresses, so the kernel announces them (ADD_ADDR) to clients.
//
// Sysctls go through src/routing (/proc/sys). MPTCP limits and endpoints belong to the generic
// netlink family "mptcp_pm", which the `netlink` package does not speak: they go through
// `ip mptcp` (iproute2), run by this small wrapper.
import { execFile } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import { readSysctl, writeSysctl } from '../routing/sysctl.js';

const execFileP = promisify(execFile);
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A failed `ip mptcp` call, with its arguments and what it printed. */
export class IpMptcpError extends Error {
  constructor(readonly args: readonly string[], readonly stderr: string) {
    super(`ip ${args.join(' ')}: ${stderr.trim() || 'failed'}`);
    this.name = 'IpMptcpError';
  }
}

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP('ip', args, { env: { ...process.env, PATH: SYSTEM_PATH } });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new IpMptcpError(args, err.stderr ?? err.message);
  }
}

export interface MptcpLimits {
  subflows: number;
  addAddrAccepted: number;
}

export async function readMptcpLimits(): Promise<MptcpLimits> {
  const out = await ip(['mptcp', 'limits', 'show']);
  const num = (k: string): number => Number(new RegExp(`${k}\\s+(\\d+)`).exec(out)?.[1] ?? 0);
  return { subflows: num('subflows'), addAddrAccepted: num('add_addr_accepted') };
}

export async function setMptcpLimits(l: MptcpLimits): Promise<void> {
  await ip(['mptcp', 'limits', 'set', 'subflows', String(l.subflows), 'add_addr_accepted', String(l.addAddrAccepted)]);
}

export interface MptcpEndpoint {
  address: string;
  id: number;
  flags: string[];
  dev?: string;
}

export async function listMptcpEndpoints(): Promise<MptcpEndpoint[]> {
  const out = await ip(['mptcp', 'endpoint', 'show']);
  const eps: MptcpEndpoint[] = [];
  for (const line of out.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words.length < 3) continue;
    const id = Number(words[words.indexOf('id') + 1]);
    const devAt = words.indexOf('dev');
    const flags = words.filter((w) => ['signal', 'subflow', 'backup', 'fullmesh', 'implicit', 'laminar'].includes(w));
    eps.push({ address: words[0], id, flags, dev: devAt >= 0 ? words[devAt + 1] : undefined });
  }
  return eps;
}

/**
 * Every address of every interface, loopback's and link-local ones included (an address put on
 * `lo`, as anycast and direct-server-return set-ups do, is the host's as much as any).
 */
export function hostAddresses(): string[] {
  const out = ['127.0.0.1', '::1'];
  for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) out.push(a.address.replace(/%.*$/, ''));
  return out;
}

/** The host's global unicast addresses (no loopback, no link-local): the ones worth announcing. */
export function globalAddresses(): Array<{ address: string; family: 4 | 6; dev: string }> {
  const out: Array<{ address: string; family: 4 | 6; dev: string }> = [];
  for (const [dev, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv6' && /^fe[89ab]/i.test(a.address)) continue;
      if (a.family === 'IPv4' && a.address.startsWith('169.254.')) continue;
      out.push({ address: a.address, family: a.family === 'IPv4' ? 4 : 6, dev });
    }
  }
  return out;
}

export interface SystemSetupOptions {
  /** Subflows per connection the server accepts (MP_JOIN). Default 8. */
  subflows?: number;
  /** Announce the host's global addresses (signal endpoints). Default true. */
  announce?: boolean;
  log?: (line: string) => void;
}

/** What `setupSystem` changed, in the order to undo it. */
export interface SystemRecord {
  sysctls: Array<{ key: string; previous: string }>;
  limits: MptcpLimits | null;
  endpointsAdded: Array<{ id: number; address: string }>;
}

/** Enables what the concentrator needs; returns the record `restoreSystem` undoes. */
export async function setupSystem(opts: SystemSetupOptions = {}): Promise<SystemRecord> {
  const log = opts.log ?? (() => undefined);
  const record: SystemRecord = { sysctls: [], limits: null, endpointsAdded: [] };
  try {
    let enabled: string;
    try {
      enabled = await readSysctl('net.mptcp.enabled');
    } catch (e) {
      throw new IpMptcpError(['sysctl', 'net.mptcp.enabled'], `${(e as Error).message}: this kernel has no MPTCP (CONFIG_MPTCP=y, Linux ≥ 5.6; TCP Fast Open on MPTCP needs ≥ 6.2)`);
    }
    if (enabled !== '1') {
      record.sysctls.push({ key: 'net.mptcp.enabled', previous: await writeSysctl('net.mptcp.enabled', '1') });
      log(`net.mptcp.enabled: ${enabled} → 1`);
    }
    const tfo = Number(await readSysctl('net.ipv4.tcp_fastopen'));
    // 0x2: TFO server side enabled (the listener's TCP_FASTOPEN_NO_COOKIE waives the cookie).
    if ((tfo & 0x2) === 0) {
      record.sysctls.push({ key: 'net.ipv4.tcp_fastopen', previous: await writeSysctl('net.ipv4.tcp_fastopen', String(tfo | 0x2)) });
      log(`net.ipv4.tcp_fastopen: ${tfo} → ${tfo | 0x2}`);
    }
    const want = opts.subflows ?? 8;
    const limits = await readMptcpLimits();
    if (limits.subflows < want || limits.addAddrAccepted < want) {
      record.limits = limits;
      const next = { subflows: Math.max(want, limits.subflows), addAddrAccepted: Math.max(want, limits.addAddrAccepted) };
      await setMptcpLimits(next);
      log(`ip mptcp limits: subflows ${limits.subflows} → ${next.subflows}, add_addr_accepted ${limits.addAddrAccepted} → ${next.addAddrAccepted}`);
    }
    if (opts.announce ?? true) {
      const have = new Set((await listMptcpEndpoints()).map((e) => e.address));
      for (const a of globalAddresses()) {
        if (have.has(a.address)) continue;
        await ip(['mptcp', 'endpoint', 'add', a.address, 'dev', a.dev, 'signal']);
        const ep = (await listMptcpEndpoints()).find((e) => e.address === a.address);
        if (ep) record.endpointsAdded.push({ id: ep.id, address: a.address });
        log(`ip mptcp endpoint add ${a.address} dev ${a.dev} signal (id ${ep?.id ?? '?'})`);
      }
    }
  } catch (e) {
    await restoreSystem(record, log);
    throw e;
  }
  return record;
}

/** Undoes `setupSystem`; goes on after a failure and returns what it could not undo. */
export async function restoreSystem(record: SystemRecord, log: (line: string) => void = () => undefined): Promise<string[]> {
  const failed: string[] = [];
  for (const ep of record.endpointsAdded.splice(0).reverse()) {
    try {
      await ip(['mptcp', 'endpoint', 'delete', 'id', String(ep.id)]);
      log(`ip mptcp endpoint delete id ${ep.id} (${ep.address})`);
    } catch (e) {
      failed.push((e as Error).message);
    }
  }
  if (record.limits) {
    try {
      await setMptcpLimits(record.limits);
      log(`ip mptcp limits: back to subflows ${record.limits.subflows} add_addr_accepted ${record.limits.addAddrAccepted}`);
      record.limits = null;
    } catch (e) {
      failed.push((e as Error).message);
    }
  }
  for (const s of record.sysctls.splice(0).reverse()) {
    try {
      await writeSysctl(s.key, s.previous);
      log(`${s.key}: back to ${s.previous}`);
    } catch (e) {
      failed.push((e as Error).message);
    }
  }
  return failed;
}
