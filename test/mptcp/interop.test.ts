// mptun's MPTCP against the Linux kernel's MPTCP, through a real TUN device, over two links:
// mptun is the client, the kernel the server (`mptcpize run` of a node:net program). The
// kernel's own MIB counters (nstat) must show the handshakes and no DSS trouble; the sha256 of
// what arrived must match; and a middlebox that strips MPTCP options makes a clean fallback.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { inNetns, requireRootOrSkip, run, spawnInNetns, waitFor, type Spawned } from '../helpers/netns.js';
import { mpBed, mptcpMib, type MpBed } from './bed.js';

const worker = fileURLToPath(new URL('./interop-worker.js', import.meta.url));
const peer = fileURLToPath(new URL('../tcp/kernel-peer.js', import.meta.url));
const beds: MpBed[] = [];

interface SubflowInfo { id: number; local: string; bytesOut: number; closed: boolean }
interface Report { event: string; sha256?: string; peerSha256?: string; bytes?: number; gbps?: number; counters?: Record<string, number>; info?: { fallback: boolean; subflows: SubflowInfo[] } }
const lines = (s: Spawned | string): Report[] => (typeof s === 'string' ? s : s.stdout()).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Report);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A pulled cable: both ends of link `i` (0 or 1) down. */
async function linkDown(bed: MpBed, i: number): Promise<void> {
  await run('ip', ['-n', bed.app, 'link', 'set', `a${i}`, 'down']);
  await run('ip', ['-n', bed.mptun, 'link', 'set', `m${i}`, 'down']);
}

test.after.always(async () => {
  for (const b of beds) await b.down();
});

/**
 * mptun's worker sends `bytes` to the kernel's MPTCP server; `during` acts while it runs (a
 * link pulled, a signal). Both sides' reports.
 */
async function transfer(bed: MpBed, bytes: number, extra: string[] = [], during?: (w: Spawned) => Promise<void>) {
  const server = spawnInNetns(bed.app, 'mptcpize', ['run', process.execPath, peer, '--mode', 'serve', '--listen', '0.0.0.0:5002']);
  try {
    await waitFor('kernel MPTCP server', () => server.stdout().includes('listening'));
    const w = spawnInNetns(bed.mptun, process.execPath, [worker, '--connect', '10.77.0.1:5002', '--bytes', String(bytes), ...extra]);
    if (during) await during(w);
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([w.exited, new Promise<null>((r) => { timer = setTimeout(() => r(null), 120_000); })]);
    clearTimeout(timer);
    // stuck: SIGTERM makes the worker print its connection's state (the test's message shows it)
    if (exit === null) await w.stop('SIGTERM', 2000);
    await waitFor('kernel report', () => server.stdout().includes('received'), { timeout: 10_000 }).catch(() => undefined);
    return { mptun: lines(w), mptunErr: w.stderr(), kernel: lines(server) };
  } finally {
    await server.stop();
  }
}

/** The kernel's MPTCP client sends `bytes` to mptun's listener; both sides' reports. */
async function kernelClientToMptun(bed: MpBed, bytes: number): Promise<{ sent: Report; got: Report }> {
  const w = spawnInNetns(bed.mptun, process.execPath, [worker, '--mode', 'serve']);
  try {
    await waitFor('mptun ready', () => w.stdout().includes('"ready"'), { timeout: 15_000 });
    const k = await inNetns(bed.app, 'mptcpize', ['run', process.execPath, peer, '--mode', 'send', '--connect', '192.0.2.1:5001', '--bytes', String(bytes)], { timeout: 120_000 });
    const sent = lines(k.stdout).find((l) => l.event === 'sent')!;
    await waitFor('mptun report', () => w.stdout().includes('"received"'), { timeout: 10_000 });
    return { sent, got: lines(w).find((l) => l.event === 'received')! };
  } finally {
    await w.stop();
  }
}

test.serial('mptun client → kernel MPTCP server over two links of 100 Mbit/s: 200 MB, sha256 match, both subflows carry data, the kernel agrees', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const bed = await mpBed({ rateMbit: 100 });
  beds.push(bed);
  await inNetns(bed.app, 'nstat', ['-n']);
  const r = await transfer(bed, 200e6);
  const sent = r.mptun.find((l) => l.event === 'sent');
  t.truthy(sent, `mptun finished: ${JSON.stringify(r.mptun.slice(-3)).slice(0, 3000)} ${r.mptunErr.slice(-2000)}`);
  const got = r.kernel.find((l) => l.event === 'received');
  t.is(got?.bytes, 200e6, 'the kernel received every byte');
  t.is(got?.sha256, sent!.sha256, 'sha256 at the kernel = sha256 mptun sent');
  t.is(sent!.peerSha256, sent!.sha256, 'mptun read back the digest over MPTCP');
  t.false(sent!.info!.fallback);
  const subflows = sent!.info!.subflows;
  t.is(subflows.length, 2, 'one subflow per link');
  // two equal links: each subflow carries a fair part of the data
  for (const sf of subflows) t.true(sf.bytesOut > 0.3 * 200e6, `subflow ${sf.id} from ${sf.local} carried ${sf.bytesOut} bytes`);
  t.true((got?.gbps ?? 0) * 1000 > 120, `more than one link's worth: ${((got?.gbps ?? 0) * 1000).toFixed(1)} Mbit/s`);
  const mib = await mptcpMib(bed.app);
  t.log(`kernel MIB: ${JSON.stringify(Object.fromEntries(Object.entries(mib).filter(([, v]) => v > 0)))}`);
  t.log(`${((got?.gbps ?? 0) * 1000).toFixed(1)} Mbit/s over two 100 Mbit/s links; subflows ${subflows.map((s) => `${s.local}: ${(s.bytesOut / 1e6).toFixed(0)} MB`).join(', ')}`);
  t.true(mib.MPCapableSYNRX! >= 1, 'MP_CAPABLE SYN seen');
  t.true(mib.MPCapableACKRX! >= 1, 'MP_CAPABLE third ACK seen');
  t.true(mib.MPJoinSynRx! >= 1, 'MP_JOIN SYN seen');
  t.true(mib.MPJoinAckRx! >= 1, 'MP_JOIN ACK (HMAC checked) seen');
  t.true((sent!.counters!.AddAddr ?? 0) >= 1, 'the kernel\'s ADD_ADDR taken (its HMAC checked)');
  t.true((mib.EchoAdd ?? 0) >= 1, 'the kernel saw our ADD_ADDR echo');
  // The kernel announces again when no echo comes back within its subflow's RTO (RFC 8684
  // §3.4.1: "the sender ... SHOULD retransmit"): the echo rides on a pure ACK in the loaded
  // direction, and the shaper may drop it. Every announcement must reach us and be echoed, and an
  // echo must have stopped it: the kernel gives up after ADD_ADDR_RETRANS_MAX (3) more.
  // One echo is owed per address ID: announcements that arrive before it goes (a retransmission
  // while mptun, the sender here, had no pure ACK to carry it) are answered by that one echo, as
  // Linux's receiver answers them (one ADD_ADDR_ECHO signal bit)
  t.is(sent!.counters!.AddAddr, mib.AddAddrTx, 'every ADD_ADDR the kernel sent reached mptun');
  t.true(sent!.counters!.EchoAddTx! >= 1 && sent!.counters!.EchoAddTx! <= sent!.counters!.AddAddr!, `mptun echoed: ${sent!.counters!.EchoAddTx} echoes for ${sent!.counters!.AddAddr} announcements`);
  t.log(`ADD_ADDR: the kernel sent ${mib.AddAddrTx}, mptun echoed ${sent!.counters!.EchoAddTx}`);
  t.true(mib.AddAddrTx! < 4, `an echo stopped the announcements: ${mib.AddAddrTx} sent`);
  for (const bad of ['DSSNotMatching', 'InfiniteMapRx', 'DataCsumErr', 'DSSNoMatchTCP', 'MPJoinAckHMacFailure', 'MPCapableFallbackACK', 'DssFallback', 'MPJoinSynAckHMacFailure']) {
    t.is(mib[bad] ?? 0, 0, `kernel ${bad}`);
  }
});

test.serial('mptun client → kernel MPTCP server, unshaped links, TSO/GSO offloads: 1 GB, sha256 match, no DSS trouble', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const bed = await mpBed();
  beds.push(bed);
  await inNetns(bed.app, 'nstat', ['-n']);
  const r = await transfer(bed, 1e9, ['--offload']);
  const sent = r.mptun.find((l) => l.event === 'sent');
  t.truthy(sent, `mptun finished: ${JSON.stringify(r.mptun.slice(-3)).slice(0, 3000)}`);
  const got = r.kernel.find((l) => l.event === 'received');
  t.is(got?.sha256, sent!.sha256);
  t.is(sent!.info!.subflows.length, 2);
  const mib = await mptcpMib(bed.app);
  for (const bad of ['DSSNotMatching', 'InfiniteMapRx', 'DataCsumErr', 'DSSNoMatchTCP', 'DssFallback', 'MPCapableFallbackACK']) t.is(mib[bad] ?? 0, 0, `kernel ${bad}`);
  t.log(`${got?.gbps?.toFixed(2)} Gbit/s with TSO; subflows ${sent!.info!.subflows.map((s) => `${(s.bytesOut / 1e6).toFixed(0)} MB`).join(', ')}`);
});

test.serial('a middlebox that strips MPTCP options: mptun falls back to plain TCP and the data still arrives', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const bed = await mpBed();
  beds.push(bed);
  // RFC 8684 §3.7: "If the SYN/ACK ... does not contain an MP_CAPABLE option, the initiator MUST fall back"
  await inNetns(bed.mptun, '/usr/sbin/nft', ['-f', '-'], {
    input: 'table inet mptmpstrip {\n chain strip {\n  type filter hook forward priority 0;\n  tcp flags syn reset tcp option mptcp counter\n }\n}\n',
  });
  const r = await transfer(bed, 20e6);
  const sent = r.mptun.find((l) => l.event === 'sent');
  t.truthy(sent, `mptun finished: ${JSON.stringify(r.mptun.slice(-3)).slice(0, 2000)}`);
  t.true(sent!.info!.fallback, 'fell back to TCP');
  t.is(sent!.counters!.MPCapableFallbackSYNACK, 1);
  const got = r.kernel.find((l) => l.event === 'received');
  t.is(got?.sha256, sent!.sha256);
  t.is(sent!.peerSha256, sent!.sha256);
  const counters = await run('ip', ['netns', 'exec', bed.mptun, '/usr/sbin/nft', 'list', 'table', 'inet', 'mptmpstrip']);
  t.truthy(counters.stdout);
});

test.serial('kernel MPTCP client → mptun listener over two links: 200 MB, sha256 match, the kernel joins a second subflow', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const bed = await mpBed({ kernelClient: true });
  beds.push(bed);
  await inNetns(bed.app, 'nstat', ['-n']);
  const { sent, got } = await kernelClientToMptun(bed, 200e6);
  t.is(got.bytes, 200e6);
  t.is(got.sha256, sent.sha256, 'sha256 at mptun = sha256 the kernel sent');
  t.is(sent.peerSha256, sent.sha256, 'the kernel read back the digest over MPTCP');
  const subflows = (got.info as unknown as { subflows: Array<{ bytesIn: number; remote: string }> }).subflows;
  t.is(subflows.length, 2, 'the kernel joined a second subflow');
  for (const sf of subflows) t.true(sf.bytesIn > 10e6, `subflow from ${sf.remote} carried ${sf.bytesIn} bytes`);
  const mib = await mptcpMib(bed.app);
  t.log(`kernel MIB: ${JSON.stringify(Object.fromEntries(Object.entries(mib).filter(([, v]) => v > 0)))}; ${sent.gbps?.toFixed(2)} Gbit/s`);
  t.true(mib.MPCapableSYNACKRX! >= 1, 'the kernel took our MP_CAPABLE SYN/ACK');
  t.true(mib.MPJoinSynAckRx! >= 1, 'the kernel checked our MP_JOIN SYN/ACK HMAC');
  for (const bad of ['DSSNotMatching', 'InfiniteMapRx', 'DataCsumErr', 'DSSNoMatchTCP', 'MPJoinSynAckHMacFailure', 'MPCapableFallbackSYNACK', 'DssFallback']) {
    t.is(mib[bad] ?? 0, 0, `kernel ${bad}`);
  }
});

test.serial('failover: link 2 goes down in the middle of a transfer; its data is reinjected on link 1 and every byte arrives', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // links shaped to 100 Mbit/s so the transfer lasts long enough to lose a link in the middle
  const bed = await mpBed({ rateMbit: 100 });
  beds.push(bed);
  let after = 0;
  const r = await transfer(bed, 40e6, [], async (w) => {
    await waitFor('two subflows', () => (w.stdout().match(/"change":"established"/g) ?? []).length >= 2, { timeout: 15_000 });
    await sleep(700);
    // a pulled cable: both ends of link 2 down
    await linkDown(bed, 1);
    const downAt = Date.now();
    await waitFor('the transfer to finish', () => w.stdout().includes('"sent"') || w.child.exitCode !== null, { timeout: 60_000, interval: 100 });
    after = (Date.now() - downAt) / 1000;
  });
  const sent = r.mptun.find((l) => l.event === 'sent');
  t.truthy(sent, `mptun finished: ${JSON.stringify(r.mptun.slice(-3)).slice(0, 1500)}`);
  const got = r.kernel.find((l) => l.event === 'received');
  t.is(got?.bytes, 40e6);
  t.is(got?.sha256, sent!.sha256, 'sha256 at the kernel = sha256 mptun sent');
  t.true((sent!.counters!.Reinjections ?? 0) > 0, 'data of the dead subflow was reinjected');
  t.true(r.mptun.some((l) => l.event === 'closed'), 'the connection closed (the dead subflow reset)');
  t.log(`finished ${after.toFixed(1)} s after link 2 went down; counters ${JSON.stringify(sent!.counters)}`);
});

/** Bytes received by interface `dev` in namespace `ns` (its kernel counter). */
async function rxBytes(ns: string, dev: string): Promise<number> {
  return Number((await run('ip', ['-n', ns, '-s', '-j', 'link', 'show', 'dev', dev])).stdout.match(/"rx":\{"bytes":(\d+)/)?.[1] ?? NaN);
}

test.serial('a backup path (the cheaper link) carries nothing while the primary lives, and everything once the primary is gone', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const bed = await mpBed({ rateMbit: 100 });
  beds.push(bed);
  await inNetns(bed.app, 'nstat', ['-n']);
  // path 2 (192.0.2.2, link 2) is the backup: MP_JOIN with the B flag (RFC 8684 §3.2)
  const r = await transfer(bed, 30e6, ['--backup', '1'], async (w) => {
    await waitFor('two subflows', () => (w.stdout().match(/"change":"established"/g) ?? []).length >= 2, { timeout: 15_000 });
    // the primary carries for a while: until the kernel's end of link 1 has received 10 MB (not
    // a fixed second, which a loaded machine fills with less)
    const rx0 = await rxBytes(bed.app, 'a0');
    await waitFor('10 MB over the primary', async () => (await rxBytes(bed.app, 'a0')) - rx0 > 10e6, { timeout: 30_000, interval: 50 });
    // the primary's link goes (as the netlink monitor of the appliance will say: a signal here)
    await linkDown(bed, 0);
    w.child.kill('SIGUSR1');
  });
  const sent = r.mptun.find((l) => l.event === 'sent');
  t.truthy(sent, `mptun finished: ${JSON.stringify(r.mptun.slice(-3)).slice(0, 1500)}`);
  t.is(r.kernel.find((l) => l.event === 'received')?.sha256, sent!.sha256, 'sha256 at the kernel = sha256 mptun sent');
  const [primary, backup] = sent!.info!.subflows;
  // 1 s at 100 Mbit/s on the primary is ~12 MB; the backup took the rest only after the failure
  t.true(primary!.bytesOut > 8e6, `primary carried ${primary!.bytesOut}`);
  t.true(backup!.bytesOut > 10e6, `backup carried ${backup!.bytesOut} after the primary failed`);
  t.true(primary!.bytesOut + backup!.bytesOut < 30e6 * 1.1, 'little was sent twice');
  const mib = await mptcpMib(bed.app);
  t.log(`primary ${(primary!.bytesOut / 1e6).toFixed(1)} MB, backup ${(backup!.bytesOut / 1e6).toFixed(1)} MB; counters ${JSON.stringify(sent!.counters)}; kernel ${JSON.stringify(Object.fromEntries(Object.entries(mib).filter(([, v]) => v > 0)))}`);
});

test.serial('DSS checksums when the kernel asks for them (net.mptcp.checksum_enabled=1), both roles: sha256 match, no checksum failure', async (t) => {
  if (!requireRootOrSkip(t)) return;
  // mptun client → kernel server
  const bed = await mpBed();
  beds.push(bed);
  await inNetns(bed.app, 'sysctl', ['-qw', 'net.mptcp.checksum_enabled=1']);
  await inNetns(bed.app, 'nstat', ['-n']);
  const r = await transfer(bed, 50e6);
  const sent = r.mptun.find((l) => l.event === 'sent');
  t.truthy(sent, `mptun finished: ${JSON.stringify(r.mptun.slice(-3)).slice(0, 2000)}`);
  t.is(r.kernel.find((l) => l.event === 'received')?.sha256, sent!.sha256);
  t.is(sent!.peerSha256, sent!.sha256, 'and the kernel\'s checksummed reply verified at mptun');
  t.true((sent!.info as unknown as { checksum: boolean }).checksum, 'checksums were in use');
  const mib = await mptcpMib(bed.app);
  t.is(mib.DataCsumErr ?? 0, 0, 'the kernel verified every mapping');
  t.is(sent!.counters!.DataCsumErr ?? 0, 0);
  // kernel client → mptun listener
  const bed2 = await mpBed({ kernelClient: true });
  beds.push(bed2);
  await inNetns(bed2.app, 'sysctl', ['-qw', 'net.mptcp.checksum_enabled=1']);
  const { sent: ks, got } = await kernelClientToMptun(bed2, 50e6);
  t.is(got.sha256, ks.sha256, 'mptun verified and delivered the kernel\'s checksummed mappings');
  t.is(ks.peerSha256, ks.sha256);
  t.is(got.counters!.DataCsumErr ?? 0, 0);
  t.true((got.info as unknown as { checksum: boolean }).checksum, 'checksums were in use');
});

test.serial('fullmesh: two local paths × the server\'s two addresses (one announced with ADD_ADDR) = four subflows', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const bed = await mpBed();
  beds.push(bed);
  await inNetns(bed.app, 'nstat', ['-n']);
  const r = await transfer(bed, 100e6, ['--fullmesh']);
  const sent = r.mptun.find((l) => l.event === 'sent');
  if (!sent) t.log(`kernel: ${JSON.stringify(Object.fromEntries(Object.entries(await mptcpMib(bed.app)).filter(([, v]) => v > 0)))}`);
  t.truthy(sent, `mptun finished: ${JSON.stringify(r.mptun.slice(-3)).slice(0, 2000)}`);
  t.is(r.kernel.find((l) => l.event === 'received')?.sha256, sent!.sha256);
  const subflows = sent!.info!.subflows as unknown as Array<{ local: string; remote: string; bytesOut: number }>;
  t.is(subflows.length, 4, JSON.stringify(subflows.map((s) => `${s.local}->${s.remote}`)));
  t.deepEqual(new Set(subflows.map((s) => `${s.local}->${s.remote}`)).size, 4);
  t.true(subflows.some((s) => s.remote === '10.77.1.1'), 'subflows to the announced address');
  const mib = await mptcpMib(bed.app);
  t.is(mib.MPJoinSynRx, 3, 'the kernel took three joins');
  t.is(mib.DSSNotMatching ?? 0, 0);
});

test.serial('a middlebox that strips MPTCP options after the handshake: the third ACK\'s keys never arrive, mptun falls back late and every byte still arrives', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const bed = await mpBed();
  beds.push(bed);
  await inNetns(bed.app, 'nstat', ['-n']);
  // SYN and SYN/ACK keep MP_CAPABLE; every later segment loses its MPTCP options
  await inNetns(bed.mptun, '/usr/sbin/nft', ['-f', '-'], {
    input: 'table inet mptmpstrip2 {\n chain strip {\n  type filter hook forward priority 0;\n  tcp flags & syn == 0 reset tcp option mptcp counter\n }\n}\n',
  });
  const r = await transfer(bed, 20e6, ['--paths', '192.0.2.1']);
  const sent = r.mptun.find((l) => l.event === 'sent');
  t.truthy(sent, `mptun finished: ${JSON.stringify(r.mptun.slice(-3)).slice(0, 2000)}`);
  t.true(sent!.info!.fallback, 'fell back');
  t.is(sent!.counters!.FallbackLate, 1);
  t.is(r.kernel.find((l) => l.event === 'received')?.sha256, sent!.sha256);
  t.is(sent!.peerSha256, sent!.sha256);
  const mib = await mptcpMib(bed.app);
  t.log(`kernel: ${JSON.stringify(Object.fromEntries(Object.entries(mib).filter(([, v]) => v > 0)))}`);
});

test.serial('MP_PRIO: the first path turned into a backup once the connection is up; the kernel counts it and the other path carries the data', async (t) => {
  if (!requireRootOrSkip(t)) return;
  const bed = await mpBed({ rateMbit: 100 });
  beds.push(bed);
  await inNetns(bed.app, 'nstat', ['-n']);
  const r = await transfer(bed, 20e6, ['--backup', '0']);
  const sent = r.mptun.find((l) => l.event === 'sent');
  t.truthy(sent, `mptun finished: ${JSON.stringify(r.mptun.slice(-3)).slice(0, 2000)}`);
  t.is(r.kernel.find((l) => l.event === 'received')?.sha256, sent!.sha256);
  t.is(sent!.counters!.MPPrioTx, 1);
  const mib = await mptcpMib(bed.app);
  t.true((mib.MPPrioRx ?? 0) >= 1, 'the kernel took the MP_PRIO');
  const [first, second] = sent!.info!.subflows;
  // until the join is up the first path is all there is; after, the regular path takes over
  t.true(second!.bytesOut > first!.bytesOut, `regular path ${second!.bytesOut} > backup ${first!.bytesOut}`);
});
