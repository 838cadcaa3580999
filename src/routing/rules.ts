// Policy rules through rtnetlink. Every rule mptun makes carries mptun's own routing-protocol
// id (FRA_PROTOCOL = RTPROT_MPTUN), so that leftovers of a dead instance are easy to find.
import type { RtNetlinkSocket } from 'netlink';
import { formatIpAddress } from '../ip/address.js';
import { AF_INET, AF_INET6, parseInterfaceAddress, routingError, withRtnl } from './netlink.js';
import { RTPROT_MPTUN } from './route.js';

const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const FR_ACT_TO_TBL = 1;

export interface RuleSpec {
  family: 4 | 6;
  /** Preference (`ip rule ... pref N`). */
  priority: number;
  /** Table looked up (`lookup N`). */
  table: number;
  /** Source prefix (`from CIDR`); absent means `from all`. */
  src?: string;
  /** Destination prefix (`to CIDR`); absent means `to all`. */
  dst?: string;
  /** IP protocol number (`ipproto`), e.g. 6 for TCP. */
  ipProto?: number;
  /** Firewall mark (`fwmark MARK/MASK`; the mask defaults to all bits). */
  fwmark?: number;
  fwmask?: number;
  /** rtm_protocol of the rule; mptun's rules carry RTPROT_MPTUN (the default). */
  protocol?: number;
}

function describe(spec: RuleSpec): string {
  const parts = [`pref ${spec.priority}`, `from ${spec.src ?? 'all'}`];
  if (spec.dst !== undefined) parts.push(`to ${spec.dst}`);
  if (spec.ipProto !== undefined) parts.push(`ipproto ${spec.ipProto}`);
  if (spec.fwmark !== undefined) parts.push(`fwmark 0x${spec.fwmark.toString(16)}/0x${(spec.fwmask ?? 0xffffffff).toString(16)}`);
  parts.push(`lookup ${spec.table}`);
  return `${spec.family === 6 ? '-6 ' : ''}${parts.join(' ')}`;
}

function ruleMessage(spec: RuleSpec) {
  const src = spec.src !== undefined ? parseInterfaceAddress(spec.src) : null;
  if (src && src.family !== spec.family) {
    throw routingError(`rule ${describe(spec)}`, { code: 'EINVAL', message: `source ${spec.src} is not IPv${spec.family}` });
  }
  const dst = spec.dst !== undefined ? parseInterfaceAddress(spec.dst) : null;
  if (dst && dst.family !== spec.family) {
    throw routingError(`rule ${describe(spec)}`, { code: 'EINVAL', message: `destination ${spec.dst} is not IPv${spec.family}` });
  }
  const data = {
    family: spec.family === 4 ? AF_INET : AF_INET6,
    srcLen: src ? src.prefixLength : 0,
    dstLen: dst ? dst.prefixLength : 0,
    tos: 0,
    table: spec.table < 256 ? spec.table : 0,
    action: FR_ACT_TO_TBL,
  };
  const attrs: { priority: number; table: number; protocol: number; src?: Buffer; dst?: Buffer; ipProto?: number; fwmark?: number; fwmask?: number } = {
    priority: spec.priority,
    table: spec.table,
    protocol: spec.protocol ?? RTPROT_MPTUN,
  };
  if (src) attrs.src = src.network;
  if (dst) attrs.dst = dst.network;
  if (spec.ipProto !== undefined) attrs.ipProto = spec.ipProto;
  if (spec.fwmark !== undefined) {
    attrs.fwmark = spec.fwmark;
    attrs.fwmask = spec.fwmask ?? 0xffffffff;
  }
  return { data, attrs };
}

async function sendRule(rt: RtNetlinkSocket, op: 'add' | 'delete', spec: RuleSpec): Promise<void> {
  try {
    const { data, attrs } = ruleMessage(spec);
    if (op === 'add') await rt.newRule(data, attrs, { flags: NLM_F_CREATE | NLM_F_EXCL });
    else await rt.delRule(data, attrs);
  } catch (e) {
    throw routingError(`${op} rule ${describe(spec)}`, e);
  }
}

export async function addRule(spec: RuleSpec): Promise<void> {
  await withRtnl((rt) => sendRule(rt, 'add', spec));
}

export async function deleteRule(spec: RuleSpec): Promise<void> {
  await withRtnl((rt) => sendRule(rt, 'delete', spec));
}

/** The rules of one family, as specs (the fields mptun uses; `protocol` is always filled in). */
export async function listRules(family: 4 | 6): Promise<RuleSpec[]> {
  return withRtnl(async (rt) => {
    let msgs;
    try {
      msgs = await rt.getRules({ family: family === 4 ? AF_INET : AF_INET6 });
    } catch (e) {
      throw routingError(`list IPv${family} rules`, e);
    }
    const out: RuleSpec[] = [];
    for (const m of msgs) {
      const fam = m.data.family === AF_INET ? 4 : m.data.family === AF_INET6 ? 6 : null;
      if (fam !== family) continue;
      const spec: RuleSpec = {
        family,
        priority: m.attrs.priority ?? 0,
        table: m.attrs.table ?? m.data.table ?? 0,
        protocol: m.attrs.protocol ?? 0,
      };
      if (m.attrs.src && m.data.srcLen !== undefined) spec.src = `${formatIpAddress(m.attrs.src)}/${m.data.srcLen}`;
      if (m.attrs.dst && m.data.dstLen !== undefined) spec.dst = `${formatIpAddress(m.attrs.dst)}/${m.data.dstLen}`;
      if (m.attrs.ipProto !== undefined) spec.ipProto = m.attrs.ipProto;
      if (m.attrs.fwmark !== undefined) {
        spec.fwmark = m.attrs.fwmark;
        spec.fwmask = m.attrs.fwmask ?? 0xffffffff;
      }
      out.push(spec);
    }
    return out;
  });
}
