// sysctls under /proc/sys, read and written in this process's network namespace. Writes
// return the previous value so that the caller can restore it.
import { access, readFile, writeFile } from 'node:fs/promises';
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
/** `net/ipv6/conf/DEV/forwarding`: the device acts as a router (with accept_ra 1 it ignores router advertisements). */
export const forwarding6Key = (dev: string): string => `net/ipv6/conf/${dev}/forwarding`;
/**
 * `net/ipv6/conf/DEV/force_forwarding` (Linux >= 6.17): IPv6 packets that come in on DEV are
 * forwarded whatever `all/forwarding` says. Unlike IPv4, the per-device `forwarding` of IPv6
 * does not forward (ip6_forward() checks `all/forwarding` or this key of the input device).
 */
export const forceForwarding6Key = (dev: string): string => `net/ipv6/conf/${dev}/force_forwarding`;
/**
 * `net/ipv6/conf/DEV/accept_ra`: 1 accepts router advertisements only while the device does
 * not forward, 2 accepts them even when it does. Turning IPv6 forwarding on also purges the
 * default routes learned from them on the devices whose accept_ra is not 2
 * (rt6_purge_dflt_routers()), so 2 must be set first.
 */
export const acceptRaKey = (dev: string): string => `net/ipv6/conf/${dev}/accept_ra`;

/** Does this kernel have the sysctl? */
export async function sysctlExists(key: string): Promise<boolean> {
  try {
    await access(sysctlPath(key));
    return true;
  } catch {
    return false;
  }
}

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
