// The client's packet path, set up and torn down (DESIGN.md "The packet path of the client"):
// the capture rule (`ipproto tcp lookup CAPTURE`), one table + rule + masquerade per path,
// the capture table's default route into the TUN device, and the sysctls the path needs.
// applyPlan() records every step (JSON-serializable); undo() reverses the record;
// cleanupLeftovers() finds what a killed instance left by its RTPROT_MPTUN tag.
import type { RtNetlinkSocket } from 'netlink';
import { RoutingError, routingError, withRtnl } from './netlink.js';
import { addRoute, deleteRoute, replaceRoute, RT_TABLE_MAIN, RTPROT_MPTUN, type RouteSpec } from './route.js';
import { addRule, deleteRule, listRules, type RuleSpec } from './rules.js';
import { createNftTable, deleteNftTable, REPLY_MARK, tableExists, type ForwardFence, type Masquerade } from './nft.js';
import { forwardingKey, readSysctl, rpFilterKey, writeSysctl } from './sysctl.js';

const IPPROTO_TCP = 6;
const AF_INET = 2;
const AF_INET6 = 10;

export interface PathPlan {
  /** Uplink interface of the path. */
  iface: string;
  /** Next hop on the uplink; without it the default route is on-link. */
  gateway?: string;
  /** The path's private source prefix (e.g. `198.18.1.0/24`). */
  sourcePrefix: string;
  /** The path's routing table. */
  table: number;
  /** Preference of `from PREFIX lookup TABLE`; must come before the capture rule. */
  rulePriority: number;
}

export interface SysctlSetting {
  key: string;
  value: string;
}

export interface SetupPlan {
  /** IP version of the rules and routes (4 unless said). */
  family?: 4 | 6;
  /** The TUN device (the capture table's default route leads into it). */
  tun: string;
  /** `pref PRIORITY ipproto IPPROTO lookup TABLE` (ipProto: TCP unless said). */
  capture: { table: number; priority: number; ipProto?: number };
  paths: PathPlan[];
  /** `pref PRIORITY to PREFIX lookup main`: destinations never captured (before the capture rule). */
  exclude?: Array<{ prefix: string; priority: number }>;
  /** Create the `inet mptun` nft table with a masquerade rule per path (default true). */
  masquerade?: boolean;
  /** Sysctls to set (default: defaultSysctls(plan)). */
  sysctls?: SysctlSetting[];
}

/** One thing applyPlan did. */
export type SetupStep =
  | { kind: 'route'; route: RouteSpec }
  | { kind: 'rule'; rule: RuleSpec }
  | { kind: 'nft'; masquerade: Masquerade[]; fence?: ForwardFence }
  | { kind: 'sysctl'; key: string; value: string; previous: string };

/** What applyPlan did, in order; JSON-serializable, so it can be kept in a file. */
export interface SetupRecord {
  version: 1;
  steps: SetupStep[];
}

/**
 * rp_filter loose on the TUN device and the uplinks (replies come back on an uplink while the
 * capture rule sends TCP to the device); forwarding on the device and on every uplink (IPv4).
 * A value already looser (rp_filter 0) is left alone.
 */
export function defaultSysctls(plan: SetupPlan): SysctlSetting[] {
  if ((plan.family ?? 4) !== 4) return [];
  return [
    { key: rpFilterKey(plan.tun), value: '2' },
    { key: forwardingKey(plan.tun), value: '1' },
    ...plan.paths.flatMap((p) => [{ key: rpFilterKey(p.iface), value: '2' }, { key: forwardingKey(p.iface), value: '1' }]),
  ];
}

function checkPlan(plan: SetupPlan): void {
  for (const p of plan.paths) {
    if (p.rulePriority >= plan.capture.priority - 1) {
      throw new RoutingError('apply plan', 'EINVAL', `path ${p.iface}: rule priority ${p.rulePriority} must come before the capture rule's ${plan.capture.priority}`);
    }
    if (p.table === plan.capture.table || p.table === RT_TABLE_MAIN) {
      throw new RoutingError('apply plan', 'EINVAL', `path ${p.iface}: table ${p.table} is the capture or the main table`);
    }
  }
  for (const x of plan.exclude ?? []) {
    if (x.priority >= plan.capture.priority - 1) {
      throw new RoutingError('apply plan', 'EINVAL', `exclusion ${x.prefix}: rule priority ${x.priority} must come before the capture rule's ${plan.capture.priority}`);
    }
  }
}

/**
 * Applies a plan: routes, the nft table, sysctls, the path rules, then the capture rule (so
 * capture starts only when the rest is in place). `onStep` sees the record after every step
 * (to persist it). On failure, what was done is undone and the error is thrown.
 */
export async function applyPlan(plan: SetupPlan, onStep?: (record: SetupRecord) => void | Promise<void>): Promise<SetupRecord> {
  checkPlan(plan);
  const family = plan.family ?? 4;
  const record: SetupRecord = { version: 1, steps: [] };
  const done = async (step: SetupStep) => {
    record.steps.push(step);
    if (onStep) await onStep(record);
  };
  try {
    for (const p of plan.paths) {
      const route: RouteSpec = { dst: 'default', dev: p.iface, table: p.table, version: family };
      if (p.gateway !== undefined) route.gateway = p.gateway;
      await addRoute(route);
      await done({ kind: 'route', route });
    }
    const captureRoute: RouteSpec = { dst: 'default', dev: plan.tun, table: plan.capture.table, version: family };
    await addRoute(captureRoute);
    await done({ kind: 'route', route: captureRoute });

    const sysctls = plan.sysctls ?? defaultSysctls(plan);
    if (plan.masquerade ?? true) {
      const masquerade = plan.paths.map((p) => ({ oifname: p.iface, sourcePrefix: p.sourcePrefix }));
      // fence the uplinks that did not forward before
      const fence: ForwardFence = { tun: plan.tun, ifaces: [] };
      if (family === 4) {
        for (const p of plan.paths) {
          if (sysctls.some((s) => s.key === forwardingKey(p.iface)) && (await readSysctl(forwardingKey(p.iface))) === '0') fence.ifaces.push(p.iface);
        }
      }
      await createNftTable(masquerade, fence);
      await done({ kind: 'nft', masquerade, fence });
    }

    for (const s of sysctls) {
      const step = await setSysctl(s);
      if (step) await done(step);
    }

    for (const p of plan.paths) {
      const rule: RuleSpec = { family, priority: p.rulePriority, table: p.table, src: p.sourcePrefix, protocol: RTPROT_MPTUN };
      await addRule(rule);
      await done({ kind: 'rule', rule });
    }
    for (const x of plan.exclude ?? []) {
      const rule: RuleSpec = { family, priority: x.priority, table: RT_TABLE_MAIN, dst: x.prefix, protocol: RTPROT_MPTUN };
      await addRule(rule);
      await done({ kind: 'rule', rule });
    }
    if (plan.masquerade ?? true) {
      // the host's answers on inbound TCP connections (marked by the nft table) keep the main table
      const replies: RuleSpec = { family, priority: plan.capture.priority - 1, table: RT_TABLE_MAIN, fwmark: REPLY_MARK, fwmask: REPLY_MARK, protocol: RTPROT_MPTUN };
      await addRule(replies);
      await done({ kind: 'rule', rule: replies });
    }
    const capture: RuleSpec = {
      family, priority: plan.capture.priority, table: plan.capture.table,
      ipProto: plan.capture.ipProto ?? IPPROTO_TCP, protocol: RTPROT_MPTUN,
    };
    await addRule(capture);
    await done({ kind: 'rule', rule: capture });
  } catch (e) {
    try {
      await undo(record);
    } catch {
      // the original error matters more; cleanupLeftovers() catches the rest
    }
    throw routingError('apply plan', e);
  }
  return record;
}

/** Sets a sysctl unless it is already (or looser than) the value; the step, or null. */
async function setSysctl(s: SysctlSetting): Promise<SetupStep | null> {
  const current = await readSysctl(s.key);
  if (current === s.value) return null;
  // rp_filter: the kernel uses the larger of `all` and the device's value; a device at 0
  // (off) under an `all` at 0 is already looser than loose
  if (s.key.endsWith('/rp_filter') && current === '0' && (await readSysctl(rpFilterKey('all'))) === '0') return null;
  const previous = await writeSysctl(s.key, s.value);
  return { kind: 'sysctl', key: s.key, value: s.value, previous };
}

/** One more path for a plan already applied (an interface that appeared while mptun runs). */
export interface PathAddition {
  family?: 4 | 6;
  tun: string;
  path: PathPlan;
  /** The capture rule's priority (the path's rule and the exclusions must come before it). */
  capturePriority: number;
  /** More `to PREFIX lookup main` exclusions (the new interface's LAN). */
  exclude?: Array<{ prefix: string; priority: number }>;
  /** Default: rp_filter loose and forwarding on for the interface (IPv4). */
  sysctls?: SysctlSetting[];
}

/**
 * Applies one more path to a record applyPlan made, as applyPlan would have: its default
 * route, its masquerade (the record's nft step is updated in place: the table is rebuilt whole
 * with the new rule, and fenced when the interface did not forward), its sysctls, its
 * exclusions, then its rule. The record grows by the new steps, so that undo() still removes
 * exactly what is there. On failure the new steps are undone (the nft table put back as it was)
 * and the error is thrown.
 */
export async function addPathSteps(record: SetupRecord, add: PathAddition, onStep?: (record: SetupRecord) => void | Promise<void>): Promise<void> {
  const family = add.family ?? 4;
  const p = add.path;
  checkPlan({ tun: add.tun, capture: { table: -1, priority: add.capturePriority }, paths: [p], exclude: add.exclude ?? [] });
  const added: SetupStep[] = [];
  const done = async (step: SetupStep) => {
    record.steps.push(step);
    added.push(step);
    if (onStep) await onStep(record);
  };
  const nftStep = record.steps.find((s): s is Extract<SetupStep, { kind: 'nft' }> => s.kind === 'nft');
  const nftBefore = nftStep ? { masquerade: [...nftStep.masquerade], fence: nftStep.fence ? { ...nftStep.fence, ifaces: [...nftStep.fence.ifaces] } : undefined } : null;
  try {
    const route: RouteSpec = { dst: 'default', dev: p.iface, table: p.table, version: family };
    if (p.gateway !== undefined) route.gateway = p.gateway;
    await replaceRoute(route);
    await done({ kind: 'route', route });
    const sysctls = add.sysctls ?? pathSysctls(p.iface, family);
    if (nftStep) {
      const masquerade = [...nftStep.masquerade.filter((m) => m.sourcePrefix !== p.sourcePrefix), { oifname: p.iface, sourcePrefix: p.sourcePrefix }];
      const fence: ForwardFence = nftStep.fence ? { ...nftStep.fence, ifaces: [...nftStep.fence.ifaces] } : { tun: add.tun, ifaces: [] };
      if (family === 4 && !fence.ifaces.includes(p.iface) && sysctls.some((s) => s.key === forwardingKey(p.iface)) && (await readSysctl(forwardingKey(p.iface))) === '0') fence.ifaces.push(p.iface);
      await createNftTable(masquerade, fence);
      nftStep.masquerade = masquerade;
      nftStep.fence = fence;
      if (onStep) await onStep(record);
    }
    for (const s of sysctls) {
      const step = await setSysctl(s);
      if (step) await done(step);
    }
    for (const x of add.exclude ?? []) {
      const rule: RuleSpec = { family, priority: x.priority, table: RT_TABLE_MAIN, dst: x.prefix, protocol: RTPROT_MPTUN };
      await addRule(rule);
      await done({ kind: 'rule', rule });
    }
    const rule: RuleSpec = { family, priority: p.rulePriority, table: p.table, src: p.sourcePrefix, protocol: RTPROT_MPTUN };
    await addRule(rule);
    await done({ kind: 'rule', rule });
  } catch (e) {
    try {
      await undo({ version: 1, steps: added });
      if (nftStep && nftBefore) {
        nftStep.masquerade = nftBefore.masquerade;
        if (nftBefore.fence) nftStep.fence = nftBefore.fence;
        else delete nftStep.fence;
        await createNftTable(nftStep.masquerade, nftStep.fence);
      }
    } catch {
      // the original error matters more; cleanupLeftovers() catches the rest
    }
    record.steps = record.steps.filter((s) => !added.includes(s));
    if (onStep) await onStep(record);
    throw routingError(`add path ${p.iface}`, e);
  }
}

/** rp_filter loose and forwarding on for a path's interface (IPv4), as defaultSysctls() has them. */
export function pathSysctls(iface: string, family: 4 | 6 = 4): SysctlSetting[] {
  return family === 4 ? [{ key: rpFilterKey(iface), value: '2' }, { key: forwardingKey(iface), value: '1' }] : [];
}

/**
 * Sets again the sysctls of an interface that was re-created under the same name (a USB modem
 * plugged in again: a new device starts from the defaults). A key the record already has keeps
 * its step (undo restores the value from before mptun); a new one is recorded.
 */
export async function ensureSysctls(record: SetupRecord, sysctls: SysctlSetting[], onStep?: (record: SetupRecord) => void | Promise<void>): Promise<void> {
  for (const s of sysctls) {
    const held = record.steps.some((x) => x.kind === 'sysctl' && x.key === s.key);
    if (held) {
      if ((await readSysctl(s.key)) !== s.value) await writeSysctl(s.key, s.value);
      continue;
    }
    const step = await setSysctl(s);
    if (!step) continue;
    record.steps.push(step);
    if (onStep) await onStep(record);
  }
}

/**
 * Moves a path's default route to a new gateway (undefined: on-link), or puts it back after the
 * kernel flushed it, in one `replace`; the record's step for that route is updated to say what
 * is there now (added when the record has none), so that undo() removes exactly it.
 */
export async function replacePathRoute(record: SetupRecord, route: RouteSpec, onStep?: (record: SetupRecord) => void | Promise<void>): Promise<void> {
  await replaceRoute(route);
  const same = (r: RouteSpec) => r.dst === route.dst && (r.table ?? RT_TABLE_MAIN) === (route.table ?? RT_TABLE_MAIN) && (r.version ?? 4) === (route.version ?? 4);
  const step = record.steps.find((s): s is Extract<SetupStep, { kind: 'route' }> => s.kind === 'route' && same(s.route));
  if (step) step.route = { ...route };
  else record.steps.push({ kind: 'route', route: { ...route } });
  if (onStep) await onStep(record);
}

async function undoStep(step: SetupStep): Promise<void> {
  switch (step.kind) {
    case 'rule': return deleteRule(step.rule);
    case 'route': return deleteRoute(step.route);
    case 'nft': return deleteNftTable();
    case 'sysctl': await writeSysctl(step.key, step.previous); return;
  }
}

/**
 * Undoes a record in reverse order, restoring sysctls. Every step is tried; if some fail, the
 * first failure is thrown (naming its operation) after the others have been tried.
 */
export async function undo(record: SetupRecord): Promise<void> {
  let first: RoutingError | null = null;
  for (const step of [...record.steps].reverse()) {
    try {
      await undoStep(step);
    } catch (e) {
      const err = routingError(`undo ${step.kind}`, e);
      // already gone (removed by hand, or with its device): what undo wanted
      if (err.errno === 'ENOENT' || err.errno === 'ESRCH' || err.errno === 'ENODEV') continue;
      first ??= err;
    }
  }
  if (first) throw first;
}

export interface LeftoverReport {
  rules: number;
  routes: number;
  nftTable: boolean;
}

function isMptunProtocol(p: unknown): boolean {
  return p === RTPROT_MPTUN || p === String(RTPROT_MPTUN);
}

async function deleteTaggedRoutes(rt: RtNetlinkSocket, family: number): Promise<number> {
  let routes;
  try {
    routes = await rt.getRoutes({ family });
  } catch (e) {
    throw routingError(`list routes (family ${family})`, e);
  }
  let n = 0;
  for (const r of routes) {
    if (!isMptunProtocol(r.data.protocol)) continue;
    const attrs: { dst?: Buffer; oif?: number; gateway?: Buffer; table?: number } = {};
    if (r.attrs.dst) attrs.dst = r.attrs.dst;
    if (r.attrs.oif !== undefined) attrs.oif = r.attrs.oif;
    if (r.attrs.gateway) attrs.gateway = r.attrs.gateway;
    if (r.attrs.table !== undefined) attrs.table = r.attrs.table;
    try {
      // a number variable, not the literal: 250 is not a member of the package's RouteProtocol enum
      const protocol: number = RTPROT_MPTUN;
      await rt.delRoute({ family, dstLen: r.data.dstLen ?? 0, table: r.data.table ?? 0, protocol, scope: r.data.scope, type: r.data.type }, attrs);
      n++;
    } catch (e) {
      throw routingError(`delete leftover route (table ${r.attrs.table ?? r.data.table})`, e);
    }
  }
  return n;
}

/**
 * Removes every rule and route tagged RTPROT_MPTUN (both IP versions) and the `inet mptun`
 * nft table, without a record (after a crash). Sysctls are not restored: only a record knows
 * their previous values.
 */
export async function cleanupLeftovers(): Promise<LeftoverReport> {
  let rules = 0;
  for (const family of [4, 6] as const) {
    for (const rule of await listRules(family)) {
      if (rule.protocol !== RTPROT_MPTUN) continue;
      await deleteRule(rule);
      rules++;
    }
  }
  const routes = await withRtnl(async (rt) => (await deleteTaggedRoutes(rt, AF_INET)) + (await deleteTaggedRoutes(rt, AF_INET6)));
  const nftTable = await tableExists();
  if (nftTable) await deleteNftTable();
  return { rules, routes, nftTable };
}
