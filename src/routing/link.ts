// Links and addresses through rtnetlink: what the TUN device needs to carry traffic
// (address, MTU, txqueuelen, link state), set without running `ip`.
import type { RtNetlinkSocket } from 'netlink';
import { AF_INET, AF_INET6, parseInterfaceAddress, routingError, withRtnl } from './netlink.js';

const NLM_F_REPLACE = 0x100;
const NLM_F_CREATE = 0x400;

/** The default txqueuelen of a TUN device (500) drops packets under load. */
export const MIN_TXQUEUELEN = 4000;

export interface LinkSettings {
  /** Addresses with prefix, e.g. `198.18.0.1/30`, `fd00:18::1/64`. */
  addresses?: string[];
  mtu?: number;
  txqueuelen?: number;
  up?: boolean;
}

export interface LinkInfo {
  index: number;
  name: string;
  mtu: number;
  txqueuelen: number;
  up: boolean;
}

export async function getLink(rt: RtNetlinkSocket, name: string): Promise<LinkInfo> {
  let links;
  try {
    links = await rt.getLinks();
  } catch (e) {
    throw routingError('list links', e);
  }
  const link = links.find((l) => l.attrs.ifname === name);
  if (!link || link.data.index === undefined) throw routingError(`find link ${name}`, { code: 'ENODEV', message: `no such device: ${name}` });
  return {
    index: link.data.index,
    name,
    mtu: link.attrs.mtu ?? 0,
    txqueuelen: link.attrs.txqlen ?? 0,
    up: link.data.flags?.up ?? false,
  };
}

/** Applies settings to a link: MTU and txqueuelen, addresses (no-op when present), then up or down. */
export async function configureLink(name: string, settings: LinkSettings): Promise<LinkInfo> {
  return withRtnl(async (rt) => {
    const link = await getLink(rt, name);
    const attrs: { mtu?: number; txqlen?: number } = {};
    if (settings.mtu !== undefined) attrs.mtu = settings.mtu;
    if (settings.txqueuelen !== undefined) attrs.txqlen = settings.txqueuelen;
    if (Object.keys(attrs).length > 0) {
      try {
        await rt.setLink({ index: link.index }, attrs);
      } catch (e) {
        throw routingError(`set ${name} ${JSON.stringify(attrs)}`, e);
      }
    }
    for (const cidr of settings.addresses ?? []) {
      const { bytes, prefixLength, family: version } = parseInterfaceAddress(cidr);
      const family = version === 4 ? AF_INET : AF_INET6;
      try {
        await rt.newAddress(
          { family, prefixlen: prefixLength, index: link.index, flags: version === 6 ? { nodad: true } : {} },
          { local: bytes, address: bytes },
          { flags: NLM_F_CREATE | NLM_F_REPLACE },
        );
      } catch (e) {
        throw routingError(`add address ${cidr} to ${name}`, e);
      }
    }
    if (settings.up !== undefined) {
      try {
        await rt.setLink({ index: link.index, change: { up: true }, flags: settings.up ? { up: true } : {} });
      } catch (e) {
        throw routingError(`set ${name} ${settings.up ? 'up' : 'down'}`, e);
      }
    }
    return getLink(rt, name);
  });
}

/** Moves a link into another network namespace, given a path such as /var/run/netns/NAME. */
export async function moveLinkToNetns(name: string, netnsPath: string): Promise<void> {
  const { openSync, closeSync } = await import('node:fs');
  let fd: number;
  try {
    fd = openSync(netnsPath, 'r');
  } catch (e) {
    throw routingError(`open namespace ${netnsPath}`, e);
  }
  try {
    await withRtnl(async (rt) => {
      const link = await getLink(rt, name);
      try {
        await rt.setLink({ index: link.index }, { netNsFd: fd });
      } catch (e) {
        throw routingError(`move ${name} to ${netnsPath}`, e);
      }
    });
  } finally {
    closeSync(fd);
  }
}
