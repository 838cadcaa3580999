// `ping` of addresses routed into mptun's TUN device is answered by mptun (IPv4 and IPv6),
// and Wireshark's dissector finds every reply well formed with good checksums.
import test from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRootOrSkip } from '../helpers/netns.js';

const exec = promisify(execFile);
const NS = `mptping-${process.pid}`;
const DEV = 'mptping0';
const mptun = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));
const inNs = (cmd: string, ...args: string[]) => exec('ip', ['netns', 'exec', NS, cmd, ...args], { timeout: 30_000 });

test.after.always(async () => {
  await exec('ip', ['netns', 'del', NS]).catch(() => undefined);
});

async function waitFor(child: ChildProcess, text: string): Promise<void> {
  let out = '';
  while (!out.includes(text)) {
    const [chunk] = (await Promise.race([
      once(child.stdout!, 'data'),
      once(child, 'exit').then(([code]) => { throw new Error(`mptun echo exited with ${code}`); }),
    ])) as [Buffer];
    out += chunk.toString();
  }
}

test.serial('mptun answers ping over IPv4 and IPv6 through its TUN device', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await exec('ip', ['netns', 'del', NS]).catch(() => undefined);
  await exec('ip', ['netns', 'add', NS]);
  await exec('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  const dir = mkdtempSync(join(tmpdir(), 'mptping-'));
  const pcap = join(dir, 'ping.pcap');
  const echo = spawn('ip', ['netns', 'exec', NS, process.execPath, mptun, 'echo', '--tun', DEV,
    '--address', '198.18.0.1/32', '--address', 'fd00:18::1/128',
    '--route', '192.0.2.0/24', '--route', '2001:db8:77::/64'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  echo.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  let capture: ChildProcess | undefined;
  try {
    await waitFor(echo, 'ready');
    // 6 requests and 6 replies: tcpdump stops by itself once it has them all
    capture = spawn('ip', ['netns', 'exec', NS, 'tcpdump', '-i', DEV, '-U', '-c', '12', '-w', pcap, 'icmp or icmp6'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let capErr = '';
    while (!capErr.includes('listening on')) {
      const [chunk] = (await Promise.race([once(capture.stderr!, 'data'), once(capture, 'exit').then(() => { throw new Error(`tcpdump exited: ${capErr}`); })])) as [Buffer];
      capErr += chunk.toString();
    }
    const captured = once(capture, 'exit');

    const v4 = await inNs('ping', '-c', '3', '-i', '0.2', '-W', '2', '-s', '1000', '192.0.2.55');
    t.regex(v4.stdout, /3 packets transmitted, 3 received/);
    t.regex(v4.stdout, /1008 bytes from 192\.0\.2\.55/);
    const v6 = await inNs('ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', '2001:db8:77::5');
    t.regex(v6.stdout, /3 packets transmitted, 3 received/);
    // an address not routed into the device is not answered
    await t.throwsAsync(inNs('ping', '-c', '1', '-W', '1', '203.0.113.9'));
    // UDP into the device is not ICMP: counted, not answered
    await inNs('bash', '-c', 'echo hi > /dev/udp/192.0.2.55/9');

    const timer = setTimeout(() => capture?.kill('SIGINT'), 10_000);
    await captured;
    clearTimeout(timer);
    echo.kill('SIGTERM');
    let out = '';
    echo.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    const [code] = (await once(echo, 'exit')) as [number];
    t.is(code, 0, stderr);
    const report = JSON.parse(out.trim().split('\n').pop()!) as { ip: Record<string, number>; device: { rxPackets: number; txPackets: number } };
    t.is(report.ip.icmpEchoReplied, 6);
    t.true((report.ip.unsupportedProtocol ?? 0) >= 1, 'the UDP datagram was counted');
    t.is(report.device.txPackets, 6);

    // Wireshark's view of what mptun wrote: replies, well formed, checksums good
    const { stdout } = await exec('tshark', ['-r', pcap, '-o', 'ip.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=,',
      '-e', 'icmp.type', '-e', 'icmpv6.type', '-e', 'ip.checksum.status', '-e', 'icmp.checksum.status', '-e', 'icmpv6.checksum.status', '-e', '_ws.malformed', '-e', '_ws.expert.severity']);
    const rows = stdout.trim().split('\n').map((l) => l.split(','));
    const replies = rows.filter((r) => r[0] === '0' || r[1] === '129');
    t.is(replies.length, 6, stdout);
    for (const r of replies) {
      if (r[0] === '0') {
        t.is(r[2], '1', 'IPv4 header checksum good');
        t.is(r[3], '1', 'ICMP checksum good');
      } else {
        t.is(r[4], '1', 'ICMPv6 checksum good');
      }
      t.is(r[5], '', 'not malformed');
    }
    // the device and its routes went with the process
    const links = await exec('ip', ['-n', NS, 'link', 'show']);
    t.notRegex(links.stdout, new RegExp(DEV));
  } finally {
    capture?.kill('SIGKILL');
    if (echo.exitCode === null) echo.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
