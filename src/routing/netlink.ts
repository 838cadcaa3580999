// rtnetlink through the `netlink` package: the one place mptun talks to the kernel's routing.
// Every failure becomes a RoutingError naming the operation and the errno (CONVENTIONS.md 8).
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';
import { IpPrefix, parseIpAddress, type IpFamily } from '../ip/address.js';

/** Linux's address families (include/linux/socket.h), as rtnetlink messages carry them. */
export const AF_INET = 2;
export const AF_INET6 = 10;

export class RoutingError extends Error {
  constructor(readonly operation: string, readonly errno: string, message: string) {
    super(`${operation}: ${message}`);
    this.name = 'RoutingError';
  }
}

export function routingError(operation: string, e: unknown): RoutingError {
  if (e instanceof RoutingError) return e;
  const err = e as { code?: unknown; errno?: unknown; message?: unknown };
  const message = typeof err.message === 'string' ? err.message : String(e);
  // the netlink package rejects with a plain Error: "Request rejected: ENOENT"
  const rejected = /Request rejected: (E[A-Z0-9]+)/.exec(message)?.[1];
  const code = typeof err.code === 'string' ? err.code : typeof err.errno === 'number' ? `errno ${err.errno}` : rejected ?? 'EUNKNOWN';
  const hint = code === 'EPERM' || code === 'EACCES' ? ' (run with sudo: needs CAP_NET_ADMIN)' : '';
  return new RoutingError(operation, code, `${message}${hint}`);
}

/** Runs `fn` with a fresh rtnetlink socket in this process's network namespace, then closes it. */
export async function withRtnl<T>(fn: (rt: RtNetlinkSocket) => Promise<T>): Promise<T> {
  const rt = createRtNetlink();
  // An error of the socket itself (not a reply) is emitted as an event: without a listener it
  // would be thrown out of the native callback and abort the process. It fails the operation.
  let onError: (e: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    onError = (e: unknown) => reject(routingError('rtnetlink socket', e));
  });
  failed.catch(() => undefined);
  rt.socket.on('error', onError);
  try {
    return await Promise.race([fn(rt), failed]);
  } finally {
    rt.socket.close();
  }
}

export interface InterfaceAddress {
  family: IpFamily;
  /** the address itself */
  bytes: Buffer;
  /** the prefix's network address (host bits cleared) */
  network: Buffer;
  prefixLength: number;
}

/** Parses `ADDRESS/LEN` as `ip addr` takes it (host bits allowed) or a bare address (host prefix). */
export function parseInterfaceAddress(text: string): InterfaceAddress {
  const slash = text.indexOf('/');
  const { family, bytes } = parseIpAddress(slash < 0 ? text : text.slice(0, slash));
  const prefix = IpPrefix.parse(text, { strict: false });
  return { family, bytes, network: prefix.network, prefixLength: prefix.length };
}
