// A two-path bed for MPTCP interop with the Linux kernel: namespace A is the kernel's MPTCP
// peer, with one address per link; namespace M holds mptun's TUN device and forwards, each of
// mptun's path addresses leaving by its own link (a `from` rule per path).
//
//   A: a0 10.77.0.1/24 ──link 1── m0 10.77.0.2/24 ┐
//      a1 10.77.1.1/24 ──link 2── m1 10.77.1.2/24 ┴─ M: forwarding ── mptmp0 (mptun)
//   mptun's paths: 192.0.2.1 (link 1, main table), 192.0.2.2 (link 2, table 102)
//   A routes 192.0.2.1 via link 1 and 192.0.2.2 via link 2.
import { inNetns, run } from '../helpers/netns.js';

export interface MpBed {
  app: string;
  mptun: string;
  down(): Promise<void>;
}

let count = 0;

/**
 * `kernelClient`: A is the kernel's MPTCP client instead of its server: a `subflow` endpoint on
 * link 2 (its second subflow leaves by link 2, a `from` rule), and no address signalled.
 */
export async function mpBed(opts: { rateMbit?: number; signal?: boolean; kernelClient?: boolean } = {}): Promise<MpBed> {
  const base = `mptmp${process.pid % 100000}-${count++}`;
  const app = `${base}a`;
  const mptun = `${base}m`;
  const down = async () => {
    for (const ns of [app, mptun]) await run('ip', ['netns', 'del', ns], { check: false });
  };
  await down();
  try {
    for (const ns of [app, mptun]) {
      await run('ip', ['netns', 'add', ns]);
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    for (const i of [0, 1]) {
      await run('ip', ['-n', app, 'link', 'add', `a${i}`, 'type', 'veth', 'peer', 'name', `m${i}`, 'netns', mptun]);
      await run('ip', ['-n', app, 'addr', 'add', `10.77.${i}.1/24`, 'dev', `a${i}`]);
      await run('ip', ['-n', mptun, 'addr', 'add', `10.77.${i}.2/24`, 'dev', `m${i}`]);
      await run('ip', ['-n', app, 'link', 'set', `a${i}`, 'up']);
      await run('ip', ['-n', mptun, 'link', 'set', `m${i}`, 'up']);
      if (opts.rateMbit) {
        for (const [ns, dev] of [[app, `a${i}`], [mptun, `m${i}`]] as const) {
          await run('tc', ['-n', ns, 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${opts.rateMbit}mbit`, 'burst', '64kb', 'latency', '20ms']);
        }
      }
    }
    await run('ip', ['-n', app, 'route', 'add', '192.0.2.1/32', 'via', '10.77.0.2']);
    await run('ip', ['-n', app, 'route', 'add', '192.0.2.2/32', 'via', '10.77.1.2']);
    await run('ip', ['-n', mptun, 'route', 'add', 'default', 'via', '10.77.0.1', 'table', '102']);
    await run('ip', ['-n', mptun, 'route', 'replace', 'default', 'via', '10.77.1.1', 'table', '102']);
    await run('ip', ['-n', mptun, 'rule', 'add', 'from', '192.0.2.2', 'lookup', '102', 'priority', '100']);
    await run('ip', ['-n', mptun, 'route', 'add', 'default', 'via', '10.77.0.1']);
    for (const kv of ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']) {
      await inNetns(mptun, 'sysctl', ['-qw', kv]);
    }
    await inNetns(app, 'sysctl', ['-qw', 'net.mptcp.enabled=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    await run('ip', ['-n', app, 'mptcp', 'limits', 'set', 'subflows', '4', 'add_addr_accepted', '4']);
    if (opts.kernelClient) {
      await run('ip', ['-n', app, 'route', 'add', 'default', 'via', '10.77.1.2', 'table', '202']);
      await run('ip', ['-n', app, 'rule', 'add', 'from', '10.77.1.1', 'lookup', '202', 'priority', '100']);
      await run('ip', ['-n', app, 'mptcp', 'endpoint', 'add', '10.77.1.1', 'dev', 'a1', 'subflow']);
    } else if (opts.signal !== false) {
      await run('ip', ['-n', app, 'mptcp', 'endpoint', 'add', '10.77.1.1', 'dev', 'a1', 'signal']);
    }
  } catch (e) {
    await down();
    throw e;
  }
  return { app, mptun, down };
}

/** The kernel's MPTCP MIB counters in a namespace (nstat -az), by name without the MPTcpExt prefix. */
export async function mptcpMib(ns: string): Promise<Record<string, number>> {
  const r = await inNetns(ns, 'nstat', ['-az', '-j']);
  const j = JSON.parse(r.stdout) as { kernel: Record<string, number> };
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(j.kernel)) if (k.startsWith('MPTcpExt')) out[k.slice('MPTcpExt'.length)] = v;
  return out;
}
