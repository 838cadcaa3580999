// The client's packet path, set up and torn down (DESIGN.md "The packet path of the client"):
// the capture rule (`ipproto tcp lookup CAPTURE`), one table + rule + masquerade per path,
// the capture table's default route into the TUN device, and the sysctls the path needs.
// applyPlan() records every step (JSON-serializable); undo() reverses the record;
// cleanupLeftovers() finds what a killed instance left by its RTPROT_MPTUN tag.
import type { RtNetlinkSocket } from 'netlink';
import { IPPROTO_TCP } from '../ip/ipv4.js';
import { AF_INET, AF_INET6, RoutingError, routingError, withRtnl } from './netlink.js';
import { addRoute, deleteRoute, PATH_BLACKHOLE_METRIC, replaceRoute, RT_TABLE_MAIN, RTPROT_MPTUN, type RouteSpec } from './route.js';
import { addRule, deleteRule, listRules, type RuleSpec } from './rules.js';
import { createNftTable, deleteNftTable, REPLY_MARK, tableExists, type ForwardFence, type Masquerade } from './nft.js';
import { acceptRaKey, forceForwarding6Key, forwarding6Key, forwardingKey, readSysctl, rpFilterKey, sysctlExists, writeSysctl } from './sysctl.js';

export interface PathPlan {
  /** Uplink interface of the path. */
  iface: string;
  /** Next hop on the uplink; without it the default route is on-link. */
  gateway?: string;
  /** The path's private source prefix (e.g. `198.18.1.0/24`). */
  sourcePrefix: string;
  /** The path's routing table (the same id for both IP versions: their tables are apart). */
  table: number;
  /** Preference of `from PREFIX lookup TABLE`; must come before the capture rule. */
  rulePriority: number;
  /**
   * Dual stack (a plan with `ipv6`): the path's private IPv6 source prefix (a ULA /64). With
   * it the path also gets an IPv6 default route, rule, masquerade and sysctls; without it the
   * path carries IPv4 only.
   */
  sourcePrefix6?: string;
  /** The IPv6 next hop (often a link-local address, as router advertisements give it). */
  gateway6?: string;
  /** The interface's address (IPv4, IPv6), when known: the path's NAT rewrites to it (nft.ts Masquerade.to). */
  address?: string;
  address6?: string;
}

export interface SysctlSetting {
  key: string;
  value: string;
  /** Written only when the current value is this one (accept_ra: 1 becomes 2, 0 stays). */
  onlyFrom?: string;
  /** Written instead when `key` does not exist on this kernel. */
  fallback?: SysctlSetting;
}

export interface SetupPlan {
  /** IP version of the rules and routes (4 unless said); a plan of one version. */
  family?: 4 | 6;
  /**
   * Dual stack (with family 4, the default): IPv6 TCP is captured too, with the same table ids
   * and priorities in the IPv6 rules and tables, for the paths that have `sourcePrefix6`.
   */
  ipv6?: boolean;
  /** The TUN device (the capture table's default route leads into it). */
  tun: string;
  /** `pref PRIORITY ipproto IPPROTO lookup TABLE` (ipProto: TCP unless said). */
  capture: { table: number; priority: number; ipProto?: number };
  paths: PathPlan[];
  /**
   * `pref PRIORITY to PREFIX lookup main`: destinations never captured (before the capture
   * rule). In a dual-stack plan each goes to the rules of its prefix's IP version.
   */
  exclude?: Array<{ prefix: string; priority: number }>;
  /** Create the `inet mptun` nft table with a masquerade rule per path (default true). */
  masquerade?: boolean;
  /** Sysctls to set (default: defaultSysctls(plan)). */
  sysctls?: SysctlSetting[];
  /** New TCP connections let into the device per second at most (nft; ForwardFence.synRate). */
  synRate?: number;
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

/** A path as one IP version sees it. */
interface FamilyPath {
  iface: string;
  gateway?: string;
  address?: string;
  sourcePrefix: string;
  table: number;
  rulePriority: number;
}

/** The IP versions a plan sets up. */
export function planFamilies(plan: SetupPlan): Array<4 | 6> {
  if ((plan.family ?? 4) === 6) return [6];
  return plan.ipv6 ? [4, 6] : [4];
}

/** The paths of one IP version: all of them in a plan of one version, those with an IPv6 prefix for the IPv6 half of a dual-stack plan. */
function familyPaths(plan: SetupPlan, family: 4 | 6): FamilyPath[] {
  if (family === 4 || (plan.family ?? 4) === 6) return plan.paths;
  return plan.paths.flatMap((p) => {
    if (p.sourcePrefix6 === undefined) return [];
    const fp: FamilyPath = { iface: p.iface, sourcePrefix: p.sourcePrefix6, table: p.table, rulePriority: p.rulePriority };
    if (p.gateway6 !== undefined) fp.gateway = p.gateway6;
    if (p.address6 !== undefined) fp.address = p.address6;
    return [fp];
  });
}

function familyExcludes(plan: SetupPlan, family: 4 | 6): Array<{ prefix: string; priority: number }> {
  const all = plan.exclude ?? [];
  if (planFamilies(plan).length === 1) return all;
  return all.filter((x) => (x.prefix.includes(':') ? 6 : 4) === family);
}

/**
 * IPv4: rp_filter loose on the TUN device and the uplinks (replies come back on an uplink while
 * the capture rule sends TCP to the device); forwarding on the device and on every uplink. A
 * value already looser (rp_filter 0) is left alone.
 *
 * IPv6 (no rp_filter): first accept_ra 2 on the uplinks where it is 1, so that the default
 * routes learned from router advertisements survive forwarding (and the next ones are still
 * heard); then `forwarding` on the device and the uplinks, and `force_forwarding` (Linux >=
 * 6.17) on them, which is what forwards; without it, `all/forwarding`.
 */
export function defaultSysctls(plan: SetupPlan): SysctlSetting[] {
  const out: SysctlSetting[] = [];
  const families = planFamilies(plan);
  if (families.includes(4)) {
    out.push(
      { key: rpFilterKey(plan.tun), value: '2' },
      { key: forwardingKey(plan.tun), value: '1' },
      ...plan.paths.flatMap((p) => [{ key: rpFilterKey(p.iface), value: '2' }, { key: forwardingKey(p.iface), value: '1' }]),
    );
  }
  if (families.includes(6)) {
    const devs = [plan.tun, ...familyPaths(plan, 6).map((p) => p.iface)];
    const all = { key: forwarding6Key('all'), value: '1' };
    out.push(
      ...devs.slice(1).map((d) => ({ key: acceptRaKey(d), value: '2', onlyFrom: '1' })),
      ...devs.map((d) => ({ key: forwarding6Key(d), value: '1' })),
      ...devs.map((d) => ({ key: forceForwarding6Key(d), value: '1', fallback: all })),
    );
  }
  return out;
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

/** Does IPv6 forward packets that come in on `dev` now? */
async function forwards6(dev: string): Promise<boolean> {
  if ((await readSysctl(forwarding6Key('all'))) !== '0') return true;
  return (await sysctlExists(forceForwarding6Key(dev))) && (await readSysctl(forceForwarding6Key(dev))) !== '0';
}

/** A path's NAT rule: SNAT to its interface's address when known, else masquerade. */
function natOf(p: { iface: string; sourcePrefix: string; address?: string }): Masquerade {
  return { oifname: p.iface, sourcePrefix: p.sourcePrefix, ...(p.address !== undefined ? { to: p.address } : {}) };
}

/**
 * The NAT of the path whose private prefix is `sourcePrefix` now rewrites to `address` (its
 * interface's address changed, or became known; undefined: masquerade): the nft table is rebuilt
 * whole with it, and the record's nft step says so.
 */
export async function setPathNatAddress(record: SetupRecord, sourcePrefix: string, address: string | undefined, onStep?: (record: SetupRecord) => void | Promise<void>): Promise<void> {
  const nftStep = record.steps.find((s): s is Extract<SetupStep, { kind: 'nft' }> => s.kind === 'nft');
  const old = nftStep?.masquerade.find((m) => m.sourcePrefix === sourcePrefix);
  if (!nftStep || !old || old.to === address) return;
  const masquerade = nftStep.masquerade.map((m) => (m === old ? natOf({ iface: m.oifname, sourcePrefix: m.sourcePrefix, ...(address !== undefined ? { address } : {}) }) : m));
  await createNftTable(masquerade, nftStep.fence);
  nftStep.masquerade = masquerade;
  if (onStep) await onStep(record);
}

/** The blackhole route at the end of a path's table (see PATH_BLACKHOLE_METRIC). */
export function pathBlackhole(table: number, family: 4 | 6): RouteSpec {
  return { dst: 'default', type: 'blackhole', table, version: family, metric: PATH_BLACKHOLE_METRIC };
}

/**
 * Applies a plan: routes, the nft table, sysctls, the path rules, then the capture rule (so
 * capture starts only when the rest is in place), each IP version in turn for the routes and
 * rules. `onStep` sees the record after every step (to persist it). On failure, what was done
 * is undone and the error is thrown.
 */
export async function applyPlan(plan: SetupPlan, onStep?: (record: SetupRecord) => void | Promise<void>): Promise<SetupRecord> {
  checkPlan(plan);
  const families = planFamilies(plan);
  const record: SetupRecord = { version: 1, steps: [] };
  const done = async (step: SetupStep) => {
    record.steps.push(step);
    if (onStep) await onStep(record);
  };
  try {
    for (const family of families) {
      for (const p of familyPaths(plan, family)) {
        const route: RouteSpec = { dst: 'default', dev: p.iface, table: p.table, version: family };
        if (p.gateway !== undefined) route.gateway = p.gateway;
        await addRoute(route);
        await done({ kind: 'route', route });
        const end = pathBlackhole(p.table, family);
        await addRoute(end);
        await done({ kind: 'route', route: end });
      }
      const captureRoute: RouteSpec = { dst: 'default', dev: plan.tun, table: plan.capture.table, version: family };
      await addRoute(captureRoute);
      await done({ kind: 'route', route: captureRoute });
    }

    const sysctls = plan.sysctls ?? defaultSysctls(plan);
    if (plan.masquerade ?? true) {
      const masquerade = families.flatMap((f) => familyPaths(plan, f).map((p) => natOf(p)));
      // fence the uplinks that did not forward before
      const fence: ForwardFence = { tun: plan.tun, ifaces: [], ...(plan.synRate ? { synRate: plan.synRate } : {}) };
      if (families.includes(4)) {
        for (const p of familyPaths(plan, 4)) {
          if (sysctls.some((s) => s.key === forwardingKey(p.iface)) && (await readSysctl(forwardingKey(p.iface))) === '0') fence.ifaces.push(p.iface);
        }
      }
      if (families.includes(6)) {
        fence.ifaces6 = [];
        for (const p of familyPaths(plan, 6)) {
          if (sysctls.some((s) => s.key === forwarding6Key(p.iface) || s.key === forceForwarding6Key(p.iface)) && !(await forwards6(p.iface))) fence.ifaces6.push(p.iface);
        }
      }
      await createNftTable(masquerade, fence);
      await done({ kind: 'nft', masquerade, fence });
    }

    for (const s of sysctls) {
      const step = await setSysctl(s);
      if (step) await done(step);
    }

    for (const family of families) {
      for (const p of familyPaths(plan, family)) {
        const rule: RuleSpec = { family, priority: p.rulePriority, table: p.table, src: p.sourcePrefix, protocol: RTPROT_MPTUN };
        await addRule(rule);
        await done({ kind: 'rule', rule });
      }
      for (const x of familyExcludes(plan, family)) {
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
    }
    // capture last, IPv4 then IPv6: everything it leads to is in place
    for (const family of families) {
      const capture: RuleSpec = {
        family, priority: plan.capture.priority, table: plan.capture.table,
        ipProto: plan.capture.ipProto ?? IPPROTO_TCP, protocol: RTPROT_MPTUN,
      };
      await addRule(capture);
      await done({ kind: 'rule', rule: capture });
    }
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
async function setSysctl(wanted: SysctlSetting): Promise<SetupStep | null> {
  let s = wanted;
  // a key this kernel does not have (force_forwarding before Linux 6.17): its fallback
  if (s.fallback && !(await sysctlExists(s.key))) s = s.fallback;
  const current = await readSysctl(s.key);
  if (current === s.value) return null;
  // set only over that one value (accept_ra: 1 becomes 2; an administrator's 0 stays 0)
  if (s.onlyFrom !== undefined && current !== s.onlyFrom) return null;
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
  /** Default: pathSysctls(iface, family): rp_filter loose and forwarding on (IPv4); accept_ra 2, forwarding and force_forwarding on (IPv6). */
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
  const copyFence = (f: ForwardFence): ForwardFence => ({ ...f, ifaces: [...f.ifaces], ...(f.ifaces6 ? { ifaces6: [...f.ifaces6] } : {}) });
  const nftBefore = nftStep ? { masquerade: [...nftStep.masquerade], fence: nftStep.fence ? copyFence(nftStep.fence) : undefined } : null;
  try {
    const route: RouteSpec = { dst: 'default', dev: p.iface, table: p.table, version: family };
    if (p.gateway !== undefined) route.gateway = p.gateway;
    await replaceRoute(route);
    await done({ kind: 'route', route });
    const end = pathBlackhole(p.table, family);
    await replaceRoute(end);
    await done({ kind: 'route', route: end });
    const sysctls = add.sysctls ?? pathSysctls(p.iface, family);
    if (nftStep) {
      const masquerade = [...nftStep.masquerade.filter((m) => m.sourcePrefix !== p.sourcePrefix), natOf(p)];
      const fence: ForwardFence = nftStep.fence ? copyFence(nftStep.fence) : { tun: add.tun, ifaces: [] };
      if (family === 4 && !fence.ifaces.includes(p.iface) && sysctls.some((s) => s.key === forwardingKey(p.iface)) && (await readSysctl(forwardingKey(p.iface))) === '0') fence.ifaces.push(p.iface);
      if (family === 6 && !(fence.ifaces6 ?? []).includes(p.iface) && sysctls.some((s) => s.key === forwarding6Key(p.iface) || s.key === forceForwarding6Key(p.iface)) && !(await forwards6(p.iface))) {
        fence.ifaces6 = [...(fence.ifaces6 ?? []), p.iface];
      }
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

/**
 * A path's interface's sysctls of one IP version, as defaultSysctls() has them: IPv4 rp_filter
 * loose and forwarding on; IPv6 accept_ra 2 where it is 1, forwarding and force_forwarding on.
 */
export function pathSysctls(iface: string, family: 4 | 6 = 4): SysctlSetting[] {
  if (family === 4) return [{ key: rpFilterKey(iface), value: '2' }, { key: forwardingKey(iface), value: '1' }];
  return [
    { key: acceptRaKey(iface), value: '2', onlyFrom: '1' },
    { key: forwarding6Key(iface), value: '1' },
    { key: forceForwarding6Key(iface), value: '1', fallback: { key: forwarding6Key('all'), value: '1' } },
  ];
}

/**
 * Sets again the sysctls of an interface that was re-created under the same name (a USB modem
 * plugged in again: a new device starts from the defaults). A key the record already has keeps
 * its step (undo restores the value from before mptun); a new one is recorded.
 */
export async function ensureSysctls(record: SetupRecord, sysctls: SysctlSetting[], onStep?: (record: SetupRecord) => void | Promise<void>): Promise<void> {
  for (const wanted of sysctls) {
    const s = wanted.fallback && !(await sysctlExists(wanted.key)) ? wanted.fallback : wanted;
    const held = record.steps.some((x) => x.kind === 'sysctl' && x.key === s.key);
    if (held) {
      const current = await readSysctl(s.key);
      if (current !== s.value && (s.onlyFrom === undefined || current === s.onlyFrom)) await writeSysctl(s.key, s.value);
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
  const same = (r: RouteSpec) => r.dst === route.dst && (r.table ?? RT_TABLE_MAIN) === (route.table ?? RT_TABLE_MAIN) && (r.version ?? 4) === (route.version ?? 4)
    && (r.type ?? 'unicast') === (route.type ?? 'unicast') && (r.metric ?? 0) === (route.metric ?? 0);
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
    const attrs: { dst?: Buffer; oif?: number; gateway?: Buffer; table?: number; priority?: number } = {};
    if (r.attrs.dst) attrs.dst = r.attrs.dst;
    if (r.attrs.priority !== undefined) attrs.priority = r.attrs.priority;
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
