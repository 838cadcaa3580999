// What the concentrator refuses before it connects anything: destinations it must not reach for
// a stranger (an open proxy into its own host or network), and clients over their share.
import { type CookieRefusal } from '../convert/cookie.js';
import { CONVERT_ERR_MALFORMED_MESSAGE, CONVERT_ERR_MISSING_COOKIE, CONVERT_ERR_NOT_AUTHORIZED, CONVERT_ERR_RESOURCE_EXCEEDED } from '../convert/message.js';
import { type IpFamily, IpPrefix } from '../ip/address.js';

/** The Error code that answers a cookie refusal (RFC 8803 §4.2.8: Missing Cookie, Not Authorized). */
export function cookieError(r: CookieRefusal): number {
  if (r === 'cookieMissing') return CONVERT_ERR_MISSING_COOKIE;
  if (r === 'cookieReplayCacheFull') return CONVERT_ERR_RESOURCE_EXCEEDED;
  return CONVERT_ERR_NOT_AUTHORIZED;
}

/** Why a destination is refused (each a counter); `destinationError` gives the Error code. */
export const DESTINATION_REFUSALS = ['dstUnspecified', 'dstLoopback', 'dstLinkLocal', 'dstMulticast', 'dstOwnAddress', 'dstPrivate', 'dstPortZero'] as const;
export type DestinationRefusal = (typeof DESTINATION_REFUSALS)[number];

/**
 * The Error code that answers a destination refusal. RFC 8803 §4.2.8, Malformed Message (1):
 * "Typically, this error code is sent by the Transport Converter if it receives a Connect TLV
 * enclosing a multicast, broadcast, or loopback IP address." So loopback and multicast (the
 * limited broadcast 255.255.255.255 is in dstMulticast) are Malformed Message; the rest is the
 * concentrator's policy, Not Authorized (32: "administratively prohibited").
 */
export function destinationError(r: DestinationRefusal): number {
  return r === 'dstLoopback' || r === 'dstMulticast' ? CONVERT_ERR_MALFORMED_MESSAGE : CONVERT_ERR_NOT_AUTHORIZED;
}

const ranges = (r: DestinationRefusal, cidrs: string[]): Array<[IpPrefix, DestinationRefusal]> => cidrs.map((c) => [IpPrefix.parse(c), r]);

/** Never reachable through the concentrator, whatever --allow says. */
const ALWAYS: Array<[IpPrefix, DestinationRefusal]> = [
  ...ranges('dstUnspecified', ['0.0.0.0/8', '::/128']),
  ...ranges('dstLoopback', ['127.0.0.0/8', '::1/128']),
  ...ranges('dstLinkLocal', ['169.254.0.0/16', 'fe80::/10']),
  ...ranges('dstMulticast', ['224.0.0.0/4', '255.255.255.255/32', 'ff00::/8']),
];

/** Private and special-purpose unicast ranges: refused unless a --allow prefix covers them. */
const PRIVATE: Array<[IpPrefix, DestinationRefusal]> = ranges('dstPrivate', [
  '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', // RFC 1918
  '100.64.0.0/10', // RFC 6598 shared address space
  '198.18.0.0/15', // RFC 2544 benchmarking
  '192.0.0.0/24', '240.0.0.0/4',
  'fc00::/7', // RFC 4193 unique local
  'fec0::/10', '64:ff9b:1::/48',
]);

export interface DestinationPolicyOptions {
  /** Prefixes the operator allows although they are private (`--allow CIDR`). */
  allow?: readonly IpPrefix[];
  /**
   * The server's own addresses, of every interface, loopback's included (refused: the
   * concentrator is not a way into its host), unless `allow` names one by itself (a /32, /128).
   */
  ownAddresses?: () => Iterable<{ family: IpFamily; bytes: Uint8Array }>;
}

export class DestinationPolicy {
  constructor(private readonly options: DestinationPolicyOptions = {}) {}

  /** `null` when the concentrator may connect to `bytes`:`port`, else why not. */
  check(family: IpFamily, bytes: Uint8Array, port: number): DestinationRefusal | null {
    if (port === 0) return 'dstPortZero';
    for (const [p, r] of ALWAYS) if (p.contains(family, bytes)) return r;
    for (const own of this.options.ownAddresses?.() ?? []) {
      if (own.family !== family || Buffer.compare(Buffer.from(own.bytes), Buffer.from(bytes)) !== 0) continue;
      // only an --allow of that one address (a /32 or /128) lets an own address through: a
      // service of the host's own that the administrator means to offer; a wider allow never does
      const named = (this.options.allow ?? []).some((a) => a.length === (family === 4 ? 32 : 128) && a.contains(family, bytes));
      if (!named) return 'dstOwnAddress';
    }
    for (const [p, r] of PRIVATE) {
      if (p.contains(family, bytes) && !(this.options.allow ?? []).some((a) => a.contains(family, bytes))) return r;
    }
    return null;
  }
}

/** Why a client was turned away for its share (counted); answered with Resource Exceeded (64) and a retry delay. */
export const LIMIT_REFUSALS = ['limitPending', 'limitOpen'] as const;
export type LimitRefusal = (typeof LIMIT_REFUSALS)[number];

/** Seconds the client is told to wait (the Error TLV's Value) after a Resource Exceeded. */
export const RETRY_DELAY_S = 2;

/**
 * Per-client counts of pending (Convert read, destination not yet connected) and open (relaying)
 * connections, with their limits.
 */
export class ClientLimits {
  private readonly clients = new Map<string, { pending: number; open: number }>();

  constructor(readonly maxPending: number, readonly maxOpen: number) {}

  /** Takes a pending slot for `client`, or says which limit it is over. */
  admit(client: string): LimitRefusal | null {
    const c = this.clients.get(client) ?? { pending: 0, open: 0 };
    if (c.pending >= this.maxPending) return 'limitPending';
    if (c.pending + c.open >= this.maxOpen) return 'limitOpen';
    c.pending++;
    this.clients.set(client, c);
    return null;
  }

  /** A pending connection became open. */
  opened(client: string): void {
    const c = this.clients.get(client);
    if (!c) return;
    c.pending--;
    c.open++;
  }

  /** A pending (`wasOpen` false) or open connection ended. */
  release(client: string, wasOpen: boolean): void {
    const c = this.clients.get(client);
    if (!c) return;
    if (wasOpen) c.open--;
    else c.pending--;
    if (c.pending <= 0 && c.open <= 0) this.clients.delete(client);
  }

  snapshot(): Array<{ client: string; pending: number; open: number }> {
    return [...this.clients].map(([client, c]) => ({ client, ...c }));
  }
}
