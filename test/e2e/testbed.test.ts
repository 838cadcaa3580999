// The two-link test bed (scripts/testbed.sh) builds what it promises: two links that answer
// on IPv4 and IPv6, shaped to the rate in both directions, that the kernel's MPTCP uses
// together (more than one link's rate), loss that drops, links that go down and come back,
// and a teardown that leaves nothing behind; with --dest, a third namespace behind the server.
// It has prefixes of its own, so it runs beside other users of the bed.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  readableCopy,
  inNetns, isListening, isRoot, parseEnvLines, requireRootOrSkip, run, spawnInNetns, systemEnv, waitForPort, type RunOptions,
} from '../helpers/netns.js';

const PREFIX = 'mptbt';
const RATE = 100; // Mbit/s, each link, each direction
const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed.sh', import.meta.url));
const ENV = systemEnv({ TESTBED_PREFIX: PREFIX });

function bed(args: string[], opts: RunOptions = {}) {
  return run('bash', [SCRIPT, ...args], { env: ENV, timeout: 30_000, ...opts });
}

type Topology = Record<string, string>;
let topo: Topology = {};
const cli = () => topo.TESTBED_NS_CLIENT;
const srv = () => topo.TESTBED_NS_SERVER;

async function namespacesOfPrefix(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(`${PREFIX}-`));
}

/** Mbit/s received in an iperf3 run, from its JSON report. */
interface IperfReport { end: { sum_received: { bits_per_second: number } } }
function mbps(stdout: string): number {
  return (JSON.parse(stdout) as IperfReport).end.sum_received.bits_per_second / 1e6;
}

async function iperf(args: string[], mptcp = false): Promise<number> {
  const cmd = mptcp ? ['mptcpize', 'run', 'iperf3'] : ['iperf3'];
  const { stdout } = await inNetns(cli(), cmd[0], [...cmd.slice(1), ...args, '-J'], { timeout: 20_000 });
  return mbps(stdout);
}

async function ping(args: string[]): Promise<{ ok: boolean; sent: number; received: number }> {
  const r = await inNetns(cli(), 'ping', args, { check: false, timeout: 15_000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { ok: r.code === 0, sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0 };
}

async function mptcpCounter(ns: string, name: string): Promise<number> {
  const { stdout } = await inNetns(ns, 'nstat', ['-asz', '-j', name]);
  return (JSON.parse(stdout) as { kernel: Record<string, number> }).kernel[name] ?? 0;
}

async function rxBytes(ns: string, dev: string): Promise<number> {
  const { stdout } = await run('ip', ['-j', '-s', '-n', ns, 'link', 'show', 'dev', dev]);
  return (JSON.parse(stdout) as [{ stats64: { rx: { bytes: number } } }])[0].stats64.rx.bytes;
}

/**
 * The bed's loss and blackhole rules, each where its packets arrive: the server namespace's
 * `inet` table (client -> server), the client namespace's `netdev` table (server -> client).
 */
async function nftRules(): Promise<string> {
  const a = await inNetns(srv(), 'nft', ['list', 'table', 'inet', topo.TESTBED_NFT_TABLE!], { check: false });
  const b = await inNetns(cli(), 'nft', ['list', 'table', 'netdev', topo.TESTBED_NFT_TABLE!], { check: false });
  return `${a.stdout}${b.stdout}`;
}

async function nftDropCounters(): Promise<number[]> {
  return [...(await nftRules()).matchAll(/counter packets (\d+) bytes \d+ drop/g)].map((m) => Number(m[1]));
}

async function startServers() {
  await bed(['server-start']);
  await bed(['server-start', '--port', '5202']);
}

test.before(async () => {
  if (!isRoot()) return;
  await bed(['up', '--rate', String(RATE)]);
  topo = parseEnvLines((await bed(['env'])).stdout);
  await startServers();
});

test.after.always(async (t) => {
  if (!isRoot()) return;
  await bed(['down']);
  t.deepEqual(await namespacesOfPrefix(), [], `namespaces of ${PREFIX} remain after down`);
  t.false(existsSync(`/run/mptun-testbed/${PREFIX}`), 'the run dir remains after down');
  // down is idempotent
  await bed(['down']);
});

test.serial('env describes the bed that is up', async (t) => {
  if (!requireRootOrSkip(t)) return;
  t.like(topo, {
    TESTBED_PREFIX: PREFIX,
    TESTBED_NS_CLIENT: `${PREFIX}-cli`,
    TESTBED_NS_SERVER: `${PREFIX}-srv`,
    TESTBED_CLI_IF1: `${PREFIX}c1`,
    TESTBED_CLI_IF2: `${PREFIX}c2`,
    TESTBED_SRV_IF1: `${PREFIX}s1`,
    TESTBED_SRV_IF2: `${PREFIX}s2`,
    TESTBED_CLI_ADDR1: '10.201.1.1',
    TESTBED_SRV_ADDR1: '10.201.1.2',
    TESTBED_CLI_ADDR2: '10.201.2.1',
    TESTBED_SRV_ADDR2: '10.201.2.2',
    TESTBED_CLI_ADDR6_2: 'fd00:201:2::1',
    TESTBED_SRV_ADDR6_2: 'fd00:201:2::2',
    TESTBED_RATE1: String(RATE),
    TESTBED_RATE2: String(RATE),
    TESTBED_UP: '1',
  });
  t.deepEqual((await namespacesOfPrefix()).sort(), [`${PREFIX}-cli`, `${PREFIX}-srv`]);
  const status = await bed(['status']);
  t.regex(status.stdout, /up/);
});

test.serial('both links answer ping on IPv4 and IPv6, and address 2 leaves by link 2', async (t) => {
  if (!requireRootOrSkip(t)) return;
  for (const [dev, addr] of [
    [topo.TESTBED_CLI_IF1, topo.TESTBED_SRV_ADDR1], [topo.TESTBED_CLI_IF2, topo.TESTBED_SRV_ADDR2],
    [topo.TESTBED_CLI_IF1, topo.TESTBED_SRV_ADDR6_1], [topo.TESTBED_CLI_IF2, topo.TESTBED_SRV_ADDR6_2],
  ]) {
    const p = await ping(['-c', '2', '-i', '0.1', '-W', '2', '-I', dev, addr]);
    t.true(p.ok && p.received === 2, `ping ${addr} by ${dev}`);
  }
  // policy routing: from address 2, even to the server's address 1, by link 2
  const route = await run('ip', ['-n', cli(), 'route', 'get', topo.TESTBED_SRV_ADDR1, 'from', topo.TESTBED_CLI_ADDR2]);
  t.regex(route.stdout, new RegExp(`via ${topo.TESTBED_SRV_ADDR2.replace(/\./g, '\\.')} dev ${topo.TESTBED_CLI_IF2}`));
  const def = await run('ip', ['-n', cli(), 'route', 'get', '192.0.2.1']);
  t.regex(def.stdout, new RegExp(`dev ${topo.TESTBED_CLI_IF1}`));
});

test.serial(`each link is shaped to ${RATE} Mbit/s in both directions (kernel TCP)`, async (t) => {
  if (!requireRootOrSkip(t)) return;
  // Two runs at once, one per link and server port, each direction of each link once.
  const rounds: [string, number, boolean][][] = [
    [[topo.TESTBED_SRV_ADDR1, 5201, false], [topo.TESTBED_SRV_ADDR2, 5202, true]],
    [[topo.TESTBED_SRV_ADDR1, 5201, true], [topo.TESTBED_SRV_ADDR2, 5202, false]],
  ];
  for (const round of rounds) {
    const results = await Promise.all(round.map(([addr, port, reverse]) =>
      iperf(['-c', addr, '-p', String(port), '-t', '2', ...(reverse ? ['-R'] : [])])));
    round.forEach(([addr, , reverse], i) => {
      const r = results[i];
      t.log(`TCP to ${addr} ${reverse ? 'server->client' : 'client->server'}: ${r.toFixed(1)} Mbit/s`);
      t.true(r <= RATE * 1.03, `${addr} ${reverse ? 'reverse' : 'forward'}: ${r.toFixed(1)} Mbit/s exceeds the rate`);
      t.true(r >= RATE * 0.75, `${addr} ${reverse ? 'reverse' : 'forward'}: ${r.toFixed(1)} Mbit/s, far below the rate`);
    });
  }
});

test.serial('the kernel MPTCP client uses both links: more than one link carries', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const joins0 = await mptcpCounter(srv(), 'MPTcpExtMPJoinSynRx');
  const rx0 = [await rxBytes(srv(), topo.TESTBED_SRV_IF1), await rxBytes(srv(), topo.TESTBED_SRV_IF2)];
  const r = await iperf(['-c', topo.TESTBED_SRV_ADDR1, '-t', '3'], true);
  const joins = (await mptcpCounter(srv(), 'MPTcpExtMPJoinSynRx')) - joins0;
  const rx = [await rxBytes(srv(), topo.TESTBED_SRV_IF1) - rx0[0], await rxBytes(srv(), topo.TESTBED_SRV_IF2) - rx0[1]];
  t.log(`MPTCP over two links: ${r.toFixed(1)} Mbit/s; MP_JOIN SYNs received: ${joins}; ` +
    `received by link: ${(rx[0] / 1e6).toFixed(1)} MB, ${(rx[1] / 1e6).toFixed(1)} MB`);
  // iperf3's control and data connections each join a second subflow
  t.true(joins >= 2, `MP_JOIN SYNs received by the server: ${joins}`);
  t.true(r > RATE * 1.15, `MPTCP throughput ${r.toFixed(1)} Mbit/s is not above one link's rate`);
  // each link carried a good part of the ~3 s of data (a link alone carries ~36 MB in 3 s)
  for (const [i, b] of rx.entries()) t.true(b > 15e6, `link ${i + 1} received only ${b} bytes`);
});

test.serial('the helpers: a server spawned in a namespace, waited for, and stopped', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const server = spawnInNetns(srv(), 'iperf3', ['-s', '-p', '5203']);
  try {
    await waitForPort(srv(), 5203, { timeout: 5000 });
    t.true(await isListening(srv(), 5203));
    t.false(await isListening(cli(), 5203), 'the port is not in the client namespace');
    const r = await iperf(['-c', topo.TESTBED_SRV_ADDR2, '-p', '5203', '-t', '1']);
    t.true(r > 50 && r <= RATE * 1.03, `${r} Mbit/s`);
  } finally {
    const end = await server.stop();
    t.true(end.signal === 'SIGTERM' || end.code !== null, `iperf3 ended: ${JSON.stringify(end)}`);
  }
  t.false(await isListening(srv(), 5203), 'stopped');
  t.regex(server.stdout(), /Server listening on 5203/);
});

test.serial('--loss drops packets on both links, and set --loss 0 removes it', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // up over a bed that is up: it starts afresh
  await bed(['up', '--rate', String(RATE), '--loss', '20']);
  t.is(parseEnvLines((await bed(['env'])).stdout).TESTBED_LOSS2, '20');
  for (const [dev, addr] of [[topo.TESTBED_CLI_IF1, topo.TESTBED_SRV_ADDR1], [topo.TESTBED_CLI_IF2, topo.TESTBED_SRV_ADDR2]]) {
    const p = await ping(['-q', '-c', '100', '-i', '0.005', '-W', '1', '-I', dev, addr]);
    t.log(`ping ${addr} with 20 % loss each way: ${p.received}/${p.sent} received`);
    t.true(p.sent === 100 && p.received < 100 && p.received > 20, `received ${p.received}/${p.sent}`);
  }
  const drops = await nftDropCounters();
  t.is(drops.length, 4, 'a loss rule per link and direction');
  t.true(drops.every((n) => n > 0), `drop counters ${drops.join(', ')}`);

  await bed(['set', '--loss', '0']);
  t.deepEqual(await nftDropCounters(), [], 'no loss rules left');
  const p = await ping(['-q', '-c', '50', '-i', '0.005', '-W', '1', '-I', topo.TESTBED_CLI_IF2, topo.TESTBED_SRV_ADDR2]);
  t.is(p.received, 50);
});

test.serial('--loss: a lossy link carries wire-size packets (its loss rules drop one MTU at a time under TSO), and set --loss 0 gives GSO back', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await bed(['up', '--loss', '2']);
  const segs = async (ns: string, dev: string) => Number(/gso_max_segs (\d+)/.exec((await inNetns(ns, 'ip', ['-d', 'link', 'show', dev])).stdout)?.[1]);
  t.is(await segs(cli(), topo.TESTBED_CLI_IF1!), 1);
  t.is(await segs(srv(), topo.TESTBED_SRV_IF1!), 1);
  const server = spawnInNetns(srv(), 'iperf3', ['-s', '-p', '5204']);
  try {
    await waitForPort(srv(), 5204);
    // unshaped, the kernel's TCP would send 64 KB super-packets: what the rules drop says what crossed
    await iperf(['-c', topo.TESTBED_SRV_ADDR1!, '-p', '5204', '-t', '2']);
    await iperf(['-c', topo.TESTBED_SRV_ADDR1!, '-p', '5204', '-t', '2', '-R']);
  } finally {
    await server.stop();
  }
  const listing = await nftRules();
  const rules = [...listing.matchAll(/counter packets (\d+) bytes (\d+) drop comment "loss link 1 (in|out)"/g)].map((m) => ({ dir: m[3]!, packets: Number(m[1]), bytes: Number(m[2]) }));
  t.is(rules.length, 2, listing);
  for (const x of rules) {
    t.true(x.packets > 20, `link 1 ${x.dir}: ${x.packets} drops`);
    t.true(x.bytes / x.packets <= 1500, `link 1 ${x.dir}: ${x.bytes} bytes in ${x.packets} drops (${(x.bytes / x.packets).toFixed(0)} per packet)`);
  }
  await bed(['set', '--loss', '0']);
  t.is(await segs(cli(), topo.TESTBED_CLI_IF1!), 65535);
  t.is(await segs(srv(), topo.TESTBED_SRV_IF1!), 65535);
  await bed(['up', '--rate', String(RATE)]);
});

test.serial('link-down 2 takes link 2 away, link-up 2 brings it back (also --blackhole)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const link2 = ['-c', '1', '-W', '1', '-I', topo.TESTBED_CLI_IF2, topo.TESTBED_SRV_ADDR2];
  const link1 = ['-c', '1', '-W', '1', '-I', topo.TESTBED_CLI_IF1, topo.TESTBED_SRV_ADDR1];
  for (const how of [[], ['--blackhole']]) {
    await bed(['link-down', '2', ...how]);
    t.false((await ping(link2)).ok, `link 2 still answers after link-down ${how.join(' ')}`);
    t.true((await ping(link1)).ok, 'link 1 is unaffected');
    t.is(parseEnvLines((await bed(['env'])).stdout).TESTBED_LINK2, how.length ? 'blackhole' : 'down');
    await bed(['link-up', '2']);
    t.true((await ping(link2)).ok, `link 2 does not answer after link-up (${how.join(' ') || 'down'})`);
    const v6 = await ping(['-c', '1', '-W', '2', '-I', topo.TESTBED_CLI_IF2, topo.TESTBED_SRV_ADDR6_2]);
    t.true(v6.ok, 'IPv6 on link 2 after link-up');
  }
  // the routes of link 2 are back: from address 2 by link 2
  const route = await run('ip', ['-n', cli(), 'route', 'get', topo.TESTBED_SRV_ADDR1, 'from', topo.TESTBED_CLI_ADDR2]);
  t.regex(route.stdout, new RegExp(`dev ${topo.TESTBED_CLI_IF2}`));
  // and the shaper is still there
  const qdisc = await run('tc', ['-n', cli(), 'qdisc', 'show', 'dev', topo.TESTBED_CLI_IF2]);
  t.regex(qdisc.stdout, /tbf .*rate 100Mbit/);
});

for (const how of [['--blackhole'], []]) {
  test.serial(`link-down 1${how.length ? ` ${how.join(' ')}` : ''}: a connection caught half-open by it lives on after link-up (the server is not told: its SYN-ACK retransmissions are lost, not send errors)`, async (t) => {
    if (!requireRootOrSkip(t)) return;
    const PORT = 7091;
    const HALF = `${PREFIX}_half`;
    const echo = spawnInNetns(srv(), process.execPath, ['-e', `require('net').createServer((s) => s.pipe(s)).listen(${PORT})`]);
    try {
      await waitForPort(srv(), PORT);
      // the client's third ACK and first data are lost (its own egress drops all but SYNs for a
      // moment), then link 1 goes: the server holds a request whose SYN-ACK it retransmits
      await inNetns(cli(), 'nft', ['-f', '-'], {
        input: `table inet ${HALF} {\n chain out {\n  type filter hook postrouting priority 0; policy accept;\n  oifname "${topo.TESTBED_CLI_IF1}" tcp dport ${PORT} tcp flags & syn == 0 drop;\n }\n}\n`,
      });
      const client = spawnInNetns(cli(), process.execPath, ['-e', `
        const data = Buffer.alloc(3000, 7); let got = 0;
        const s = require('net').connect({ host: '${topo.TESTBED_SRV_ADDR1}', port: ${PORT} }, () => s.write(data));
        s.on('data', (d) => { got += d.length; if (got >= data.length) { console.log(JSON.stringify({ echoed: got })); process.exit(0); } });
        s.on('error', (e) => { console.log(JSON.stringify({ echoed: got, error: e.code })); process.exit(0); });
        setTimeout(() => { console.log(JSON.stringify({ echoed: got, error: 'timeout' })); process.exit(0); }, 20000);`]);
      await new Promise((r) => setTimeout(r, 300));
      await bed(['link-down', '1', ...how]);
      await inNetns(cli(), 'nft', ['delete', 'table', 'inet', HALF]);
      await new Promise((r) => setTimeout(r, 3000));
      await bed(['link-up', '1']);
      await client.exited;
      const result = JSON.parse(client.stdout().trim().split('\n')[0]!) as { echoed: number; error?: string };
      t.deepEqual(result, { echoed: 3000 }, 'the connection was reset or stalled after the outage');
    } finally {
      await inNetns(cli(), 'nft', ['delete', 'table', 'inet', HALF], { check: false });
      await bed(['link-up', '1']).catch(() => undefined);
      await echo.stop();
    }
  });
}

test.serial('up --dest: a destination namespace behind the server by one fast link, a plain iperf3 server there, and down leaves nothing', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // a bed of its own: client ==two links== server --link 3-- destination
  const D = 'mptbd';
  const denv = systemEnv({ TESTBED_PREFIX: D });
  const dbed = (args: string[], opts: RunOptions = {}) => run('bash', [SCRIPT, ...args], { env: denv, timeout: 30_000, ...opts });
  const ofPrefix = async () => (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${D}-`));
  try {
    t.is(parseEnvLines((await dbed(['env'])).stdout).TESTBED_DEST, '0', 'no destination before up --dest');
    await dbed(['up', '--dest']);
    const env = parseEnvLines((await dbed(['env'])).stdout);
    t.like(env, {
      TESTBED_DEST: '1',
      TESTBED_NS_DEST: `${D}-dst`,
      TESTBED_SRV_IF3: `${D}x3`,
      TESTBED_DST_IF: `${D}y3`,
      TESTBED_SRV_ADDR3: '10.201.3.1',
      TESTBED_DST_ADDR: '10.201.3.2',
      TESTBED_SRV_ADDR6_3: 'fd00:201:3::1',
      TESTBED_DST_ADDR6: 'fd00:201:3::2',
      TESTBED_UP: '1',
    });
    const [srvNs, dstNs] = [env.TESTBED_NS_SERVER!, env.TESTBED_NS_DEST!];
    t.deepEqual((await ofPrefix()).sort(), [`${D}-cli`, `${D}-dst`, `${D}-srv`]);
    // the server namespace reaches the destination over link 3, IPv4 and IPv6
    for (const addr of [env.TESTBED_DST_ADDR!, env.TESTBED_DST_ADDR6!]) {
      const p = await inNetns(srvNs, 'ping', ['-c', '2', '-i', '0.1', '-W', '2', addr], { check: false, timeout: 15_000 });
      t.is(p.code, 0, `ping ${addr} from the server namespace: ${p.stdout}`);
    }
    // the destination's default routes go to the server's end of link 3 (exec-dest runs there)
    t.regex((await dbed(['exec-dest', 'ip', 'route', 'get', '192.0.2.1'])).stdout, /via 10\.201\.3\.1 dev mptbdy3/);
    t.regex((await dbed(['exec-dest', 'ip', '-6', 'route', 'get', '2001:db8::1'])).stdout, /via fd00:201:3::1 dev mptbdy3/);
    // the client does not reach it, even when the server namespace forwards (as with the delay line)
    await inNetns(srvNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    const p = await inNetns(env.TESTBED_NS_CLIENT!, 'ping', ['-c', '1', '-W', '1', env.TESTBED_DST_ADDR!], { check: false, timeout: 15_000 });
    t.not(p.code, 0, 'the client reached the destination past the concentrator');
    const nft = await inNetns(srvNs, 'nft', ['list', 'table', 'inet', `${D}_dest`]);
    t.regex(nft.stdout, /oifname "mptbdx3" counter packets [1-9]\d* bytes \d+ drop/, 'the forwarded ping was dropped');

    // dest-start: a plain-TCP iperf3 server in the destination namespace
    await dbed(['dest-start']);
    t.true(await isListening(dstNs, 5201));
    t.false(await isListening(srvNs, 5201), 'not in the server namespace');
    t.is((await inNetns(dstNs, 'ss', ['-HMln'])).stdout.trim(), '', 'no MPTCP listener in the destination');
    const { stdout } = await inNetns(srvNs, 'iperf3', ['-c', env.TESTBED_DST_ADDR!, '-t', '1', '-J'], { timeout: 20_000 });
    const r = mbps(stdout);
    t.log(`iperf3 server namespace -> destination over link 3 (plain TCP, unshaped): ${r.toFixed(0)} Mbit/s`);
    t.true(r > 100, `${r} Mbit/s over an unshaped veth`);
    t.regex((await dbed(['status'])).stdout, /== mptbd-dst[\s\S]*port 5201: pid \d+/);
    await dbed(['dest-stop']);
    t.false(await isListening(dstNs, 5201), 'dest-stop stopped it');

    // down removes the destination with the rest, its running server too
    await dbed(['dest-start', '--port', '5202']);
    const pid = Number(readFileSync(`/run/mptun-testbed/${D}/dst-iperf3-5202.pid`, 'utf8').trim());
    // running: not gone, not a zombie (a daemon's parent is PID 1, which may be slow to reap it)
    const running = () => {
      try {
        return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
      } catch {
        return false;
      }
    };
    t.true(running());
    await dbed(['down']);
    t.deepEqual(await ofPrefix(), [], 'namespaces remain after down');
    t.false(running(), 'the destination\'s iperf3 outlived down');
    t.false((await run('ip', ['-o', 'link', 'show'])).stdout.includes(D), 'a link of the bed remains in the root namespace');
    t.false(existsSync(`/run/mptun-testbed/${D}`), 'the run dir remains after down');
  } finally {
    await dbed(['down'], { check: false });
  }
});

test.serial('clear errors: not root, a tool missing', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // --help and env need no root; the unprivileged user reads a copy of the script, since the
  // clone may be where it cannot enter (/root, a mktemp -d folder)
  const readable = readableCopy({ 'testbed.sh': SCRIPT });
  const other = systemEnv({ TESTBED_PREFIX: 'mptbx' });
  try {
    const help = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', join(readable, 'testbed.sh'), '--help']);
    t.regex(help.stdout, /Usage: testbed\.sh/);
    const notRoot = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', join(readable, 'testbed.sh'), 'up'],
      { env: other, check: false });
    t.not(notRoot.code, 0);
    t.regex(notRoot.stderr, /must run as root/);
  } finally {
    rmSync(readable, { recursive: true, force: true });
  }
  // tools looked up in a directory with the basics but no iproute2
  const bin = mkdtempSync(join(tmpdir(), 'mptbx-'));
  try {
    symlinkSync('/usr/bin/id', join(bin, 'id'));
    const noIp = await run('/bin/bash', [SCRIPT, 'up'], { env: { ...other, PATH: bin, TESTBED_PATH: bin }, check: false });
    t.not(noIp.code, 0);
    t.regex(noIp.stderr, /'ip' is missing: apt-get install iproute2/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
  t.deepEqual((await run('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith('mptbx-')), []);
});
