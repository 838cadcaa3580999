// The Linux kernel's MPTCP, through the project's addon (src/tun/native/mptcp.c): a listening
// socket with IPPROTO_MPTCP and TCP Fast Open without cookies, and MPTCP_INFO of a connection.
import { createRequire } from 'node:module';
import { findAddon } from './index.js';

/** What the kernel says of one MPTCP connection (getsockopt SOL_MPTCP: MPTCP_INFO, MPTCP_SUBFLOW_ADDRS). */
export interface MptcpInfo {
  subflows: number;
  subflowsMax: number;
  addAddrSignal: number;
  addAddrAccepted: number;
  flags: number;
  token: number;
  localAddrUsed: number;
  /** The connection fell back to plain TCP (the client's path stripped MPTCP, or the client is plain TCP). */
  fallback: boolean;
  subflowAddrs: Array<{ local: string; localPort: number; remote: string; remotePort: number }>;
}

interface MptcpAddon {
  mptcpListen(host: string, port: number, backlog: number, tfoQueue: number): number;
  mptcpInfo(fd: number): MptcpInfo | null;
}

/** A socket call that failed, with its errno (EPROTONOSUPPORT: the kernel has no MPTCP). */
export class MptcpError extends Error {
  constructor(readonly code: string, readonly errno: number, message: string) {
    super(message);
    this.name = 'MptcpError';
  }
}

let addon: MptcpAddon | undefined;
function load(): MptcpAddon {
  if (!addon) addon = createRequire(import.meta.url)(findAddon()) as MptcpAddon;
  return addon;
}

function asMptcpError(e: unknown): MptcpError {
  const err = e as Error & { code?: string; errno?: number };
  const code = typeof err.code === 'string' ? err.code : 'EMPTCP';
  let message = err.message ?? String(e);
  if (code === 'EPROTONOSUPPORT' || code === 'EAFNOSUPPORT') {
    message += ': this kernel has no MPTCP (build it with CONFIG_MPTCP=y, Linux ≥ 5.6) or it is off (sysctl net.mptcp.enabled=1)';
  } else if (code === 'ENOPROTOOPT' && /FASTOPEN/.test(message)) {
    message += ': TCP Fast Open on an MPTCP socket needs Linux ≥ 6.2';
  }
  return new MptcpError(code, typeof err.errno === 'number' ? err.errno : 0, message);
}

/**
 * A listening MPTCP socket's fd: socket(AF_INET6 or AF_INET, SOCK_STREAM, IPPROTO_MPTCP),
 * SO_REUSEADDR, TCP_FASTOPEN with `tfoQueue` (0: off) and TCP_FASTOPEN_NO_COOKIE, bind, listen.
 * `host` '' listens on every address of both families. Hand it to `net.Server.listen({ fd })`.
 * The listener still accepts plain TCP: a SYN without MP_CAPABLE makes a fallback connection.
 */
export function mptcpListen(host: string, port: number, backlog = 511, tfoQueue = 1024): number {
  try {
    return load().mptcpListen(host, port, backlog, tfoQueue);
  } catch (e) {
    throw asMptcpError(e);
  }
}

/** The kernel's MPTCP view of a connected socket's fd; null for a socket that is not MPTCP. */
export function mptcpInfo(fd: number): MptcpInfo | null {
  try {
    const info = load().mptcpInfo(fd);
    // A dual-stack listener's subflows carry IPv4 as ::ffff:a.b.c.d: show a.b.c.d.
    for (const sf of info?.subflowAddrs ?? []) {
      sf.local = sf.local.replace(/^::ffff:/, '');
      sf.remote = sf.remote.replace(/^::ffff:/, '');
    }
    return info;
  } catch (e) {
    throw asMptcpError(e);
  }
}
