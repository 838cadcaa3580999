// sysctls under /proc/sys, read and written in this process's network namespace. Writes
// return the previous value so that the caller can restore it.
import { readFile, writeFile } from 'node:fs/promises';
import { RoutingError, routingError } from './netlink.js';

/**
 * The file of a sysctl. Takes the slash form (`net/ipv4/conf/eth0.100/rp_filter`, safe for
 * device names with dots) or the dotted form without slashes (`net.ipv4.ip_forward`).
 */
export function sysctlPath(key: string): string {
  const rel = key.includes('/') ? key : key.replace(/\./g, '/');
  if (rel.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new RoutingError(`sysctl ${key}`, 'EINVAL', 'bad sysctl key');
  }
  return `/proc/sys/${rel}`;
}

/** `net/ipv4/conf/DEV/rp_filter` (0 off, 1 strict, 2 loose). */
export const rpFilterKey = (dev: string): string => `net/ipv4/conf/${dev}/rp_filter`;
/** `net/ipv4/conf/DEV/forwarding`. */
export const forwardingKey = (dev: string): string => `net/ipv4/conf/${dev}/forwarding`;

export async function readSysctl(key: string): Promise<string> {
  try {
    return (await readFile(sysctlPath(key), 'utf8')).trim();
  } catch (e) {
    throw routingError(`read sysctl ${key}`, e);
  }
}

/** Writes `value` and returns the value it replaced. */
export async function writeSysctl(key: string, value: string): Promise<string> {
  const previous = await readSysctl(key);
  try {
    await writeFile(sysctlPath(key), `${value}\n`, 'utf8');
  } catch (e) {
    throw routingError(`write sysctl ${key}=${value}`, e);
  }
  return previous;
}
