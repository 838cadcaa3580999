// `mptun server` (the concentrator) end to end, in three network namespaces:
//
//   mptcv-cli ══ link 1: 10.211.1.1 ── 10.211.1.2 ══ mptcv-con ── 10.211.3.1 ── 10.211.3.2 ── mptcv-dst
//             ══ link 2: 10.211.2.1 ── 10.211.2.2 ══ (mptun server)                          (plain TCP)
//
// A client in mptcv-cli (test/e2e/mptcv_client.py: the kernel's MPTCP, or plain TCP, optionally
// with TCP Fast Open) sends an RFC 8803 Convert message built by src/convert, then data, to the
// concentrator, which connects to a plain-TCP sha256 server in mptcv-dst. Checked: the bytes
// arrive whole (sha256) over both links (the kernel counts MP_JOINs); refusals (a closed port,
// no cookie, a wrong key, a replayed cookie, forbidden destinations, a malformed message) come
// back as the right Error TLV, are counted, and connect nothing (the destination's SYN counter
// does not move); the SYN carries the Convert message with TCP Fast Open (tshark); the server
// still serves after each refusal; `mptun server status` shows the kernel's subflows; SIGTERM
// puts back what the server changed in the kernel.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCookie } from '../../src/convert/cookie.js';
import { encodeConnect, encodeConnectRequest, parseReply } from '../../src/convert/message.js';
import { inNetns, requireRootOrSkip, run, spawnInNetns, waitFor, waitForPort, type Spawned } from '../helpers/netns.js';

const P = 'mptcv';
const CLI = `${P}-cli`;
const CON = `${P}-con`;
const DST = `${P}-dst`;
const MPTUN = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../../test/e2e/mptcv_client.py', import.meta.url));
const DST_SERVER = fileURLToPath(new URL('./mptcv-dst.js', import.meta.url));
const CON_ADDR = '10.211.1.2';
const CON_PORT = 7443;
const DST_ADDR = '10.211.3.2';
const DST_PORT = 9000;
const CONTROL = `/run/${P}/server.sock`;

let dir = '';
let key = Buffer.alloc(0);
let server: Spawned | null = null;
let dst: Spawned | null = null;

async function sh(ns: string | null, cmd: string, args: string[], check = true) {
  return ns ? inNetns(ns, cmd, args, { check }) : run(cmd, args, { check });
}

async function teardown(): Promise<void> {
  for (const ns of [CLI, CON, DST]) await run('ip', ['netns', 'del', ns], { check: false });
  await run('ip', ['link', 'del', `${P}c1`], { check: false });
  await run('ip', ['link', 'del', `${P}c2`], { check: false });
  await run('ip', ['link', 'del', `${P}s3`], { check: false });
}

async function buildBed(): Promise<void> {
  await teardown();
  for (const ns of [CLI, CON, DST]) {
    await sh(null, 'ip', ['netns', 'add', ns]);
    await sh(ns, 'ip', ['link', 'set', 'lo', 'up']);
  }
  const veth = async (a: string, nsA: string, addrA: string, b: string, nsB: string, addrB: string) => {
    await sh(null, 'ip', ['link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
    await sh(nsA, 'ip', ['addr', 'add', addrA, 'dev', a]);
    await sh(nsB, 'ip', ['addr', 'add', addrB, 'dev', b]);
    await sh(nsA, 'ip', ['link', 'set', a, 'up']);
    await sh(nsB, 'ip', ['link', 'set', b, 'up']);
  };
  await veth(`${P}c1`, CLI, '10.211.1.1/24', `${P}s1`, CON, '10.211.1.2/24');
  await veth(`${P}c2`, CLI, '10.211.2.1/24', `${P}s2`, CON, '10.211.2.2/24');
  await veth(`${P}s3`, CON, '10.211.3.1/24', `${P}d3`, DST, '10.211.3.2/24');
  // The client: the kernel's MPTCP with a second subflow from link 2; TFO client without cookie.
  await sh(CLI, 'sysctl', ['-qw', 'net.mptcp.enabled=1', 'net.ipv4.tcp_fastopen=5']);
  await sh(CLI, 'ip', ['mptcp', 'limits', 'set', 'subflows', '2', 'add_addr_accepted', '2']);
  await sh(CLI, 'ip', ['mptcp', 'endpoint', 'add', '10.211.2.1', 'dev', `${P}c2`, 'subflow']);
  // The second subflow's packets leave by link 2 whatever server address they go to.
  await sh(CLI, 'ip', ['rule', 'add', 'from', '10.211.2.1', 'table', '102']);
  await sh(CLI, 'ip', ['route', 'add', 'default', 'dev', `${P}c2`, 'table', '102']);
  // The destination counts every SYN it receives (nothing may be connected for a refusal).
  const nft = `table inet ${P} {\n counter syns {}\n chain in {\n  type filter hook input priority 0;\n  tcp flags & (syn | ack) == syn counter name syns\n }\n}\n`;
  await run('ip', ['netns', 'exec', DST, 'nft', '-f', '-'], { input: nft });
}

async function dstSyns(): Promise<number> {
  const r = await sh(DST, 'nft', ['-j', 'list', 'counter', 'inet', P, 'syns']);
  const j = JSON.parse(r.stdout) as { nftables: Array<{ counter?: { packets: number } }> };
  return j.nftables.find((x) => x.counter)!.counter!.packets;
}

async function nstat(ns: string): Promise<Record<string, number>> {
  const r = await sh(ns, 'nstat', ['-az', '--json']);
  const j = JSON.parse(r.stdout) as Record<string, Record<string, number>>;
  return Object.assign({}, ...Object.values(j));
}

interface ClientResult { received: string; end: string; sha256: string; sentBytes: number }

async function client(msg: Buffer, opts: { bytes?: number; mptcp?: boolean; fastopen?: boolean } = {}): Promise<ClientResult & { reply: ReturnType<typeof parseReply>; after: string }> {
  const args = [CLIENT, '--host', CON_ADDR, '--port', String(CON_PORT), '--msg', msg.toString('hex'), '--bytes', String(opts.bytes ?? 0)];
  if (opts.mptcp ?? true) args.push('--mptcp');
  if (opts.fastopen) args.push('--fastopen');
  const r = await inNetns(CLI, 'python3', args, { timeout: 60_000 });
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as ClientResult;
  const bytes = Buffer.from(out.received, 'hex');
  const reply = parseReply(bytes);
  const after = 'length' in reply ? bytes.subarray(reply.length).toString() : '';
  return { ...out, reply, after };
}

const nonce = () => randomBytes(8);
const now = () => Date.now() / 1000;
const goodMsg = (dstAddr = DST_ADDR, port = DST_PORT) => encodeConnect(dstAddr, port, makeCookie(key, now(), nonce(), dstAddr, port));

interface Status { connections: Array<{ client: string; destination: string; mptcp: { subflows: number; subflowAddrs: unknown[] } | null }>; errorsByCode: Record<string, number>; counters: Record<string, number> }

async function status(): Promise<Status> {
  const r = await sh(CON, process.execPath, [MPTUN, 'server', 'status', '--json', '--control-socket', CONTROL]);
  return JSON.parse(r.stdout) as Status;
}

test.before(async (t) => {
  if (!requireRootOrSkip(t)) return;
  dir = await mkdtemp(join(tmpdir(), `${P}-`));
  await buildBed();
  // an address of the concentrator's own on lo (anycast, direct server return): the host's too
  await sh(CON, 'ip', ['addr', 'add', '203.0.113.77/32', 'dev', 'lo']);
  const keyFile = join(dir, 'key');
  await run(process.execPath, [MPTUN, 'server', '--genkey', keyFile]);
  key = Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'hex');
  dst = spawnInNetns(DST, process.execPath, [DST_SERVER, String(DST_PORT)]);
  await waitForPort(DST, DST_PORT);
  server = spawnInNetns(CON, process.execPath, [MPTUN, 'server', '--listen', String(CON_PORT), '--key', keyFile, '--allow', '10.211.3.0/24', '--max-open', '3', '--control-socket', CONTROL, '--log-level', 'debug']);
  await waitFor('mptun server to listen', () => server!.stderr().includes('listening on') || server!.child.exitCode !== null, { timeout: 15_000 });
  if (server.child.exitCode !== null) throw new Error(`mptun server exited: ${server.stderr()}`);
});

test.after.always(async () => {
  await server?.stop('SIGTERM', 10_000);
  await dst?.stop();
  await teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test.serial('mptcv: 20 MB over the kernel\'s MPTCP through the concentrator to a plain-TCP server arrive whole, over both links', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const before = await nstat(CON);
  const r = await client(goodMsg(), { bytes: 20_000_000 });
  t.like(r.reply, { kind: 'ok', length: 4 });
  t.is(r.after, `${r.sha256} 20000000\n`);
  const after = await nstat(CON);
  t.true((after.MPTcpExtMPCapableSYNRX ?? 0) > (before.MPTcpExtMPCapableSYNRX ?? 0), 'the client spoke MPTCP');
  t.true((after.MPTcpExtMPJoinAckRx ?? 0) > (before.MPTcpExtMPJoinAckRx ?? 0), 'a second subflow joined');
  const s = await status();
  t.true((s.counters.acceptedMptcp ?? 0) >= 1);
  t.true((s.counters.connected ?? 0) >= 1);
});

test.serial('mptcv: a plain-TCP client (a path that strips MPTCP) is served too', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const r = await client(goodMsg(), { bytes: 100_000, mptcp: false });
  t.like(r.reply, { kind: 'ok' });
  t.is(r.after, `${r.sha256} 100000\n`);
  t.true(((await status()).counters.acceptedTcp ?? 0) >= 1);
});

test.serial('mptcv: an MPTCP client behind a middlebox that strips MPTCP options falls back to TCP and is served', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const strip = `table inet ${P}strip {\n chain pre {\n  type filter hook prerouting priority -150;\n  tcp dport ${CON_PORT} reset tcp option mptcp\n }\n}\n`;
  await run('ip', ['netns', 'exec', CON, 'nft', '-f', '-'], { input: strip });
  try {
    const before = (await status()).counters.acceptedTcp ?? 0;
    const r = await client(goodMsg(), { bytes: 100_000 });
    t.like(r.reply, { kind: 'ok' });
    t.is(r.after, `${r.sha256} 100000\n`);
    t.is(((await status()).counters.acceptedTcp ?? 0) - before, 1, 'the server saw plain TCP');
  } finally {
    await sh(CON, 'nft', ['delete', 'table', 'inet', `${P}strip`]);
  }
});

test.serial('mptcv: with TCP Fast Open the Convert message rides in the MP_CAPABLE SYN (tshark), and the server reads it at accept', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const pcap = join(dir, 'tfo.pcap');
  const cap = spawnInNetns(CLI, 'tshark', ['-i', `${P}c1`, '-w', pcap, '-f', `tcp port ${CON_PORT}`]);
  try {
    await waitFor('tshark to capture', () => cap.stderr().includes('Capturing on'), { timeout: 15_000 });
    const tfoBefore = (await nstat(CON)).TcpExtTCPFastOpenPassive ?? 0;
    const msg = goodMsg();
    const r = await client(msg, { bytes: 1000, fastopen: true });
    t.like(r.reply, { kind: 'ok' });
    t.is(r.after, `${r.sha256} 1000\n`);
    t.true(((await nstat(CON)).TcpExtTCPFastOpenPassive ?? 0) > tfoBefore, 'the kernel took the SYN data');
    await new Promise((res) => setTimeout(res, 500)); // let tshark write the last packets
    await cap.stop('SIGINT');
    const syn = await run('tshark', ['-r', pcap, '-Y', 'tcp.flags.syn == 1 && tcp.flags.ack == 0', '-T', 'fields', '-e', 'tcp.payload', '-e', 'tcp.options.mptcp.subtype']);
    const first = syn.stdout.trim().split('\n')[0]!.split('\t');
    t.is(first[0]!.replace(/:/g, '').slice(0, msg.length * 2), msg.toString('hex'), 'the SYN payload starts with the Convert message');
    t.is(first[1], '0', 'and the SYN is MP_CAPABLE');
  } finally {
    await cap.stop('SIGKILL');
  }
});

test.serial('mptcv: a closed port → Error 96 Connection Reset; the client sees it', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const r = await client(goodMsg(DST_ADDR, 9999));
  t.like(r.reply, { kind: 'error', code: 96 });
});

test.serial('mptcv: an unreachable destination → Error 97 with the ICMP code (host unreachable, 1)', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const r = await client(goodMsg('10.211.3.99', DST_PORT));
  t.like(r.reply, { kind: 'error', code: 97, value: 1 });
  t.regex(server!.stderr(), /refused client 10\.211\.1\.1 -> 10\.211\.3\.99:9000: Error 97 Destination Unreachable \(ICMP code 1\) \(EHOSTUNREACH\)/);
});

test.serial('mptcv: a destination that resets after the reply → the client\'s connection is reset too', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const before = (await status()).counters.dstReset ?? 0;
  const r = await client(goodMsg(DST_ADDR, DST_PORT + 1), { bytes: 10 });
  t.like(r.reply, { kind: 'ok' });
  t.is(r.end, 'reset');
  t.is(((await status()).counters.dstReset ?? 0) - before, 1);
});

test.serial('mptcv: refusals connect nothing, are counted by code, and the server serves the next client', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const syns = await dstSyns();
  const s0 = await status();
  // no cookie → Missing Cookie (3)
  t.like((await client(encodeConnect(DST_ADDR, DST_PORT))).reply, { kind: 'error', code: 3 });
  // a cookie made with another key → Not Authorized (32)
  const other = randomBytes(32);
  t.like((await client(encodeConnect(DST_ADDR, DST_PORT, makeCookie(other, now(), nonce(), DST_ADDR, DST_PORT)))).reply, { kind: 'error', code: 32 });
  // a cookie for another destination → 32
  t.like((await client(encodeConnect(DST_ADDR, DST_PORT, makeCookie(key, now(), nonce(), DST_ADDR, 22)))).reply, { kind: 'error', code: 32 });
  // an old cookie → 32
  t.like((await client(encodeConnect(DST_ADDR, DST_PORT, makeCookie(key, now() - 3600, nonce(), DST_ADDR, DST_PORT)))).reply, { kind: 'error', code: 32 });
  // with good cookies: loopback → Malformed Message (1, RFC 8803 §4.2.8); forbidden destinations:
  // the concentrator's own address, a private one not --allow'ed → Not Authorized (32)
  t.like((await client(goodMsg('127.0.0.1', DST_PORT))).reply, { kind: 'error', code: 1 });
  t.like((await client(goodMsg('10.211.3.1', DST_PORT))).reply, { kind: 'error', code: 32 });
  t.like((await client(goodMsg('203.0.113.77', DST_PORT))).reply, { kind: 'error', code: 32 }, 'an address on lo is the host\'s own');
  t.like((await client(goodMsg('192.168.1.1', DST_PORT))).reply, { kind: 'error', code: 32 });
  // Total Length 0: RFC 8803 §4.1 "the connection MUST be reset" → a RST, no Error TLV
  const zero = await client(Buffer.from('01000000', 'hex'));
  t.is(zero.end, 'reset');
  t.is(zero.received, '');
  // malformed: a Connect TLV too short → Malformed Message (1), whose Value is a zero octet and the
  // message echoed (RFC 8803 §4.2.8)
  const short = Buffer.from('01020000 0a010050'.replace(/ /g, ''), 'hex');
  const shortReply = (await client(short)).reply;
  t.like(shortReply, { kind: 'error', code: 1 });
  if (shortReply.kind === 'error') t.is(Buffer.from(shortReply.valueBytes).toString('hex'), `00${short.toString('hex')}`);
  // a Connect asking for a TCP option the kernel's SYN cannot carry (TFO, Kind 34) → Unsupported TCP
  // Option (33), Value: the Kind (RFC 8803 §4.2.5, §4.2.8)
  const withTfo = encodeConnectRequest({ address: DST_ADDR, port: DST_PORT, cookie: makeCookie(key, now(), nonce(), DST_ADDR, DST_PORT), tcpOptions: Uint8Array.of(34, 2, 0, 0) });
  t.like((await client(withTfo)).reply, { kind: 'error', code: 33, value: 34 });
  t.is(await dstSyns(), syns, 'no SYN reached the destination');
  // a replayed cookie: the first use is served, the second refused
  const msg = goodMsg();
  const first = await client(msg, { bytes: 10 });
  t.like(first.reply, { kind: 'ok' });
  t.like((await client(msg)).reply, { kind: 'error', code: 32 });
  t.is(await dstSyns(), syns + 1, 'only the first use connected');
  // MSS asked for without a value: the kernel's SYN has its own, so the Connect is served
  const withMss = encodeConnectRequest({ address: DST_ADDR, port: DST_PORT, cookie: makeCookie(key, now(), nonce(), DST_ADDR, DST_PORT), tcpOptions: Uint8Array.of(2, 2, 0, 0) });
  t.like((await client(withMss, { bytes: 10 })).reply, { kind: 'ok' });
  // an Info TLV with the Connect: the reply carries Supported TCP Extensions, MPTCP (30) (RFC 8803 §4.2.3)
  const withInfo = Buffer.concat([goodMsg(), Buffer.from('01010000', 'hex')]);
  withInfo[1] += 1; // Total Length covers the Info TLV
  t.like((await client(withInfo, { bytes: 10 })).reply, { kind: 'ok', length: 12, tlvs: [{ type: 21, kinds: [30] }] });
  // and the server still serves everyone
  const next = await client(goodMsg(), { bytes: 1234 });
  t.is(next.after, `${next.sha256} 1234\n`);
  const s = await status();
  const d = (k: string) => (s.errorsByCode[k] ?? 0) - (s0.errorsByCode[k] ?? 0);
  t.is(d('3 Missing Cookie'), 1);
  t.is(d('32 Not Authorized'), 7);
  t.is(d('1 Malformed Message'), 2);
  const c = (k: string) => (s.counters[k] ?? 0) - (s0.counters[k] ?? 0);
  t.is(c('cookieMissing'), 1);
  t.is(c('cookieBadMac'), 2);
  t.is(c('cookieStale'), 1);
  t.is(c('cookieReplayed'), 1);
  t.is(c('dstLoopback'), 1);
  t.is(c('dstOwnAddress'), 2);
  t.is(c('dstPrivate'), 1);
  t.is(c('convertZeroTotalLength'), 1);
  t.is(c('resetSent'), 1);
  t.is(c('convertTlvTooShort'), 1);
  t.is(c('tcpOptionRefused'), 1);
  t.is(d('33 Unsupported TCP Option'), 1);
  t.regex(server!.stderr(), /refused client 10\.211\.1\.1 -> 127\.0\.0\.1:9000: Error 1 Malformed Message \(dstLoopback\)/);
});

test.serial('mptcv: `mptun server status` shows live connections with the kernel\'s subflows; a client over --max-open gets Error 64 with a retry delay', async (t) => {
  if (!requireRootOrSkip(t)) return;
  await waitFor('earlier connections to close', async () => (await status()).connections.length === 0);
  const held: Spawned[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const args = [CLIENT, '--host', CON_ADDR, '--port', String(CON_PORT), '--msg', goodMsg().toString('hex'), '--mptcp', '--hold'];
      const h = spawnInNetns(CLI, 'python3', args);
      held.push(h);
      await waitFor('a held client', () => h.stdout().includes('READY') || h.child.exitCode !== null, { timeout: 15_000 });
    }
    // the fourth is over this client's share (--max-open 3): Resource Exceeded, retry in 2 s
    t.like((await client(goodMsg())).reply, { kind: 'error', code: 64, value: 2 });
    await waitFor('second subflows', async () => (await status()).connections.every((c) => (c.mptcp?.subflowAddrs.length ?? 0) >= 2), { timeout: 10_000 });
    const s = await status();
    t.is(s.connections.length, 3);
    t.like(s.connections[0], { client: '10.211.1.1', destination: `${DST_ADDR}:${DST_PORT}` });
    t.true(s.connections[0]!.mptcp!.subflows >= 1);
    t.is(s.counters.limitOpen, 1);
    const text = await sh(CON, process.execPath, [MPTUN, 'server', 'status', '--control-socket', CONTROL]);
    t.regex(text.stdout, /10\.211\.1\.1 {2}pending 0 {2}open 3/);
    t.regex(text.stdout, /#\d+ 10\.211\.1\.1 -> 10\.211\.3\.2:9000 relaying \(MPTCP, [23] subflows\)/);
    t.regex(text.stdout, /subflow 10\.211\.\d\.2:7443 <- 10\.211\.2\.1:\d+/);
    t.regex(text.stdout, /64 Resource Exceeded=1/);
  } finally {
    for (const h of held) await h.stop('SIGTERM');
  }
});

test.serial('mptcv: SIGTERM puts back what the server changed in the kernel', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const eps = await sh(CON, 'ip', ['mptcp', 'endpoint', 'show']);
  t.regex(eps.stdout, /10\.211\.3\.1 .*signal/, 'it announces its addresses');
  t.is((await sh(CON, 'sysctl', ['-n', 'net.ipv4.tcp_fastopen'])).stdout.trim(), '3');
  await server!.stop('SIGTERM', 10_000);
  t.is((await sh(CON, 'ip', ['mptcp', 'endpoint', 'show'])).stdout.trim(), '');
  t.is((await sh(CON, 'sysctl', ['-n', 'net.ipv4.tcp_fastopen'])).stdout.trim(), '1');
  t.regex((await sh(CON, 'ip', ['mptcp', 'limits', 'show'])).stdout, /subflows 2/);
  server = null;
});
