// nftables: a table of mptun's own (`inet mptun`) holding the source NAT rule of every path.
// Runs `/usr/sbin/nft -f -` by absolute path: under npm, the first `nft` on PATH is a JS tool.
import { execFile } from 'node:child_process';
import { formatIpAddress, parseIpAddress } from '../ip/address.js';
import { parseInterfaceAddress, RoutingError, routingError } from './netlink.js';

export const NFT = '/usr/sbin/nft';
export const NFT_FAMILY = 'inet';
export const NFT_TABLE = 'mptun';

export interface Masquerade {
  /** Output interface (`oifname`). */
  oifname: string;
  /** The path's private source prefix (`ip saddr` / `ip6 saddr`). */
  sourcePrefix: string;
  /**
   * The interface's address, when known: `snat to` it rather than `masquerade`. A masqueraded
   * connection's conntrack entry is flushed when its device goes down, and after the link comes
   * back its next packet may be given another port (one a closed connection had): the peer then
   * resets the subflow that rode out the outage. A SNAT mapping outlives the link; mptun rebuilds
   * the rule when the address changes (setup.ts setPathNatAddress).
   */
  to?: string;
}

interface NftResult { code: number; stdout: string; stderr: string }

function runNft(args: string[], input?: string): Promise<NftResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(NFT, args, { encoding: 'utf8', timeout: 15_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code === 'string') { reject(error); return; }
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
    // nft may exit before it reads its input (or, listing, never reads it): EPIPE on its stdin
    // is then an 'error' event that, unheard, would be thrown (and inside a native callback of
    // the netlink package, abort the process). Its exit status says what happened.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;

/**
 * The forwarding fence (DESIGN.md): mptun turns forwarding on for uplinks; on those that did not
 * forward before, only packets to the TUN device may be forwarded, so that the host does not
 * become a router for its neighbours.
 */
export interface ForwardFence {
  tun: string;
  /** Uplinks fenced for IPv4. */
  ifaces: string[];
  /** Uplinks fenced for IPv6 (dual stack: an uplink may have forwarded one family before and not the other). */
  ifaces6?: string[];
  /**
   * New TCP connections (SYN without ACK) let into the device per second at most, the rest
   * dropped (and counted) by the kernel before the device's queue: a SYN flood on the host's
   * capture is shed there, not in the queue the host's other connections share. Absent: no limit.
   */
  synRate?: number;
}

function checkIfname(name: string): string {
  if (!IFNAME.test(name)) throw new RoutingError('nft script', 'EINVAL', `bad interface name ${JSON.stringify(name)}`);
  return name;
}

/**
 * The mark of the host's TCP packets in conntrack's reply direction: the answers of the host's
 * own servers to connections that came in (an SSH server's SYN/ACK). A rule sends packets with
 * this bit to the main table ahead of the capture rule, so that inbound TCP keeps working.
 */
export const REPLY_MARK = 0x00800000;

/** The nft script that (re)creates mptun's table with one source NAT rule per path (SNAT to its address, or masquerade). */
export function masqueradeScript(rules: readonly Masquerade[], fence?: ForwardFence): string {
  const lines = rules.map((r) => {
    checkIfname(r.oifname);
    const p = parseInterfaceAddress(r.sourcePrefix);
    const cidr = `${formatIpAddress(p.network)}/${p.prefixLength}`;
    const fam = p.family === 4 ? 'ip' : 'ip6';
    let nat = 'masquerade';
    if (r.to !== undefined) {
      const to = parseIpAddress(r.to);
      if (to.family !== p.family) throw new RoutingError('nft script', 'EINVAL', `${r.oifname}: NAT to ${r.to} for ${r.sourcePrefix}: not one IP version`);
      nat = `snat ${fam} to ${formatIpAddress(to.bytes)}`;
    }
    return `\t\toifname "${r.oifname}" ${fam} saddr ${cidr} ${nat}`;
  });
  // `add` then `delete` makes the delete safe when the table is absent; all in one transaction
  return [
    `add table ${NFT_FAMILY} ${NFT_TABLE}`,
    `delete table ${NFT_FAMILY} ${NFT_TABLE}`,
    `table ${NFT_FAMILY} ${NFT_TABLE} {`,
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    ...lines,
    '\t}',
    '\tchain output {',
    '\t\ttype route hook output priority mangle; policy accept;',
    `\t\tmeta l4proto tcp ct direction reply meta mark set meta mark | 0x${REPLY_MARK.toString(16).padStart(8, '0')}`,
    '\t}',
    ...(fence?.synRate
      ? [
        '\tchain synlimit {',
        '\t\ttype filter hook postrouting priority filter; policy accept;',
        `\t\toifname "${checkIfname(fence.tun)}" tcp flags & (fin|syn|rst|ack) == syn limit rate over ${Math.floor(fence.synRate)}/second burst ${Math.max(16, Math.floor(fence.synRate))} packets counter drop`,
        '\t}',
      ]
      : []),
    ...(fence && fence.ifaces.length + (fence.ifaces6?.length ?? 0) > 0
      ? [
        '\tchain forward {',
        '\t\ttype filter hook forward priority filter; policy accept;',
        ...fence.ifaces.map((i) => `\t\tmeta nfproto ipv4 iifname "${checkIfname(i)}" oifname != "${checkIfname(fence.tun)}" counter drop`),
        ...(fence.ifaces6 ?? []).map((i) => `\t\tmeta nfproto ipv6 iifname "${checkIfname(i)}" oifname != "${checkIfname(fence.tun)}" counter drop`),
        '\t}',
      ]
      : []),
    '}',
    '',
  ].join('\n');
}

/** Creates (or replaces) the `inet mptun` table with the given masquerade rules. */
export async function createNftTable(rules: readonly Masquerade[], fence?: ForwardFence): Promise<void> {
  const op = `create nft table ${NFT_FAMILY} ${NFT_TABLE}`;
  let r: NftResult;
  try {
    r = await runNft(['-f', '-'], masqueradeScript(rules, fence));
  } catch (e) {
    throw routingError(op, e);
  }
  if (r.code !== 0) throw new RoutingError(op, 'ENFT', `nft exited with ${r.code}: ${r.stderr.trim()}`);
}

/** Deletes the `inet mptun` table; no-op when it is absent. */
export async function deleteNftTable(): Promise<void> {
  const op = `delete nft table ${NFT_FAMILY} ${NFT_TABLE}`;
  let r: NftResult;
  try {
    r = await runNft(['-f', '-'], `add table ${NFT_FAMILY} ${NFT_TABLE}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n`);
  } catch (e) {
    throw routingError(op, e);
  }
  if (r.code !== 0) throw new RoutingError(op, 'ENFT', `nft exited with ${r.code}: ${r.stderr.trim()}`);
}

/** Does the `inet mptun` table exist? */
export async function tableExists(): Promise<boolean> {
  const op = `list nft tables`;
  let r: NftResult;
  try {
    r = await runNft(['list', 'tables', NFT_FAMILY]);
  } catch (e) {
    throw routingError(op, e);
  }
  if (r.code !== 0) throw new RoutingError(op, 'ENFT', `nft exited with ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.split('\n').some((l) => l.trim() === `table ${NFT_FAMILY} ${NFT_TABLE}`);
}
