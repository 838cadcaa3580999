// `mptun demo`: the main job on the embedded default.
//
// Builds the two-link test bed in network namespaces (scripts/testbed.sh, links shaped to
// 100 Mbit/s each), measures what the Linux kernel does on it (one link with plain TCP, two
// links with the kernel's MPTCP), then runs mptun in the client namespace and sends packets
// through its TUN device (ping over IPv4 and IPv6 into the device), and reports. The bed is
// torn down at the end, also on Ctrl-C or an error.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const testbed = `${root}scripts/testbed.sh`;
const mptun = `${root}bin/mptun.js`;

interface Bed { TESTBED_NS_CLIENT: string; TESTBED_SRV_ADDR1: string }

async function bed(prefix: string, ...args: string[]): Promise<string> {
  const { stdout } = await exec('bash', [testbed, ...args], { env: { ...process.env, TESTBED_PREFIX: prefix }, timeout: 120_000, maxBuffer: 16 << 20 });
  return stdout;
}

async function iperf(prefix: string, dst: string, seconds: number, mptcp: boolean): Promise<number> {
  const cmd = mptcp ? ['mptcpize', 'run', 'iperf3'] : ['iperf3'];
  const out = await bed(prefix, 'exec-client', ...cmd, '-c', dst, '-t', String(seconds), '-J');
  const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e6;
}

export async function runDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      keep: { type: 'boolean', default: false },
      rate: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '5' },
      prefix: { type: 'string', default: 'mptdemo' },
    },
  });
  if (process.getuid?.() !== 0) throw new Error('the demo builds network namespaces: run it as root (sudo)');
  const prefix = values.prefix!;
  const seconds = Number(values.seconds);
  const log = (s: string) => console.error(`demo: ${s}`);
  let echo: ChildProcess | undefined;
  const teardown = async () => {
    if (echo && echo.exitCode === null) echo.kill('SIGTERM');
    if (!values.keep) await bed(prefix, 'down').catch(() => undefined);
  };
  const onSignal = () => { void teardown().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log(`building the two-link test bed (prefix ${prefix}, ${values.rate} Mbit/s per link)`);
    await bed(prefix, 'up', '--rate', values.rate!);
    const env = Object.fromEntries((await bed(prefix, 'env')).trim().split('\n').map((l) => {
      const i = l.indexOf('=');
      return [l.slice(0, i), l.slice(i + 1).replace(/^'|'$/g, '')];
    })) as unknown as Bed;
    await bed(prefix, 'server-start');
    log(`kernel TCP over link 1 for ${seconds} s`);
    const oneLink = await iperf(prefix, env.TESTBED_SRV_ADDR1, seconds, false);
    log(`kernel MPTCP over both links for ${seconds} s`);
    const kernelMptcp = await iperf(prefix, env.TESTBED_SRV_ADDR1, seconds, true);

    log('starting mptun in the client namespace (TUN device mptun0)');
    echo = spawn('ip', ['netns', 'exec', env.TESTBED_NS_CLIENT, process.execPath, mptun, 'echo', '--tun', 'mptun0',
      '--address', '198.18.0.1/32', '--address', 'fd00:18::1/128', '--route', '192.0.2.0/24', '--route', '2001:db8:77::/64'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    echo.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    while (!out.includes('ready')) {
      await Promise.race([once(echo.stdout!, 'data'), once(echo, 'exit').then(() => { throw new Error('mptun echo exited early'); })]);
    }
    const ping4 = await bed(prefix, 'exec-client', 'ping', '-c', '5', '-i', '0.2', '-W', '2', '192.0.2.1');
    const ping6 = await bed(prefix, 'exec-client', 'ping', '-6', '-c', '5', '-i', '0.2', '-W', '2', '2001:db8:77::1');
    const rtt = (s: string) => /= [\d.]+\/([\d.]+)\//.exec(s)?.[1] ?? '?';
    const received = (s: string) => Number(/(\d+) received/.exec(s)?.[1] ?? 0);
    echo.kill('SIGTERM');
    await once(echo, 'exit');
    const counters = JSON.parse(out.trim().split('\n').pop()!) as { ip: Record<string, number> };

    const report = {
      testbed: { links: 2, rateMbitPerLink: Number(values.rate) },
      kernel: { tcpOneLinkMbit: +oneLink.toFixed(1), mptcpTwoLinksMbit: +kernelMptcp.toFixed(1) },
      mptun: {
        device: 'mptun0',
        ping4: { received: received(ping4), of: 5, avgRttMs: rtt(ping4) },
        ping6: { received: received(ping6), of: 5, avgRttMs: rtt(ping6) },
        echoReplies: counters.ip.icmpEchoReplied ?? 0,
      },
    };
    console.log(JSON.stringify(report, null, 2));
    const ok = report.mptun.ping4.received === 5 && report.mptun.ping6.received === 5;
    log(ok ? 'packets made the round trip through mptun\'s TUN device' : 'FAILED: pings through mptun were lost');
    return ok ? 0 : 1;
  } finally {
    await teardown();
  }
}
