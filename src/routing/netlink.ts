// rtnetlink through the `netlink` package: the one place mptun talks to the kernel's routing.
// Every failure becomes a RoutingError naming the operation and the errno (CONVENTIONS.md 8).
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';

export class RoutingError extends Error {
  constructor(readonly operation: string, readonly errno: string, message: string) {
    super(`${operation}: ${message}`);
    this.name = 'RoutingError';
  }
}

export function routingError(operation: string, e: unknown): RoutingError {
  if (e instanceof RoutingError) return e;
  const err = e as { code?: unknown; errno?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : typeof err.errno === 'number' ? `errno ${err.errno}` : 'EUNKNOWN';
  const message = typeof err.message === 'string' ? err.message : String(e);
  const hint = code === 'EPERM' || code === 'EACCES' ? ' (run with sudo: needs CAP_NET_ADMIN)' : '';
  return new RoutingError(operation, code, `${message}${hint}`);
}

/** Runs `fn` with a fresh rtnetlink socket in this process's network namespace, then closes it. */
export async function withRtnl<T>(fn: (rt: RtNetlinkSocket) => Promise<T>): Promise<T> {
  const rt = createRtNetlink();
  try {
    return await fn(rt);
  } finally {
    rt.socket.close();
  }
}
