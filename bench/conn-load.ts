// The load of bench/connections (plain node:net; run under `mptcpize run` for the kernel's MPTCP
// client, or captured by `mptun up`). One JSON line per phase on stdout.
//
//   server PORT [--plain]        an echo server on the kernel's MPTCP listener (the project's
//                                addon; --plain: plain TCP), backlog 65535; prints "listening"
//   hold HOST PORT N CONC        N connections, at most CONC of them opening at once; each
//                                connects, writes 64 bytes and reads them back, then is held.
//                                Prints {phase:"open"} (time to open them all, failures), then
//                                waits for a line "close" on stdin, closes them all (FIN) and
//                                prints {phase:"closed"} once every one is closed
//   seq HOST PORT SECONDS        connect, echo 64 bytes, close, in sequence, for SECONDS
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const ECHO_BYTES = 64;
/** A connection that has not opened and echoed within this time has failed. */
const OPEN_TIMEOUT_MS = 30_000;
const [mode, ...args] = process.argv.slice(2);
const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

if (mode === 'server') {
  const port = Number(args[0]);
  const onConn = (s: Socket) => {
    s.on('error', () => undefined);
    s.pipe(s);
  };
  if (args.includes('--plain')) {
    createServer(onConn).listen({ port, backlog: 65535 }, () => out({ listening: port }));
  } else {
    const { mptcpListen } = await import('../src/tun/mptcp.js');
    const fd = mptcpListen('', port, 65535, 0);
    createServer(onConn).listen({ fd }, () => out({ listening: port, mptcp: true }));
  }
} else if (mode === 'hold' || mode === 'seq') {
  const host = args[0]!;
  const port = Number(args[1]);
  const payload = Buffer.alloc(ECHO_BYTES, 0x61);
  const errors: Record<string, number> = {};
  const fail = (code: string) => {
    errors[code] = (errors[code] ?? 0) + 1;
  };
  /** Connects, echoes 64 bytes; resolves with the socket (held open) or null on failure. */
  const open = () => new Promise<Socket | null>((resolve) => {
    const s = connect({ host, port });
    let got = 0;
    let done = false;
    const end = (ok: boolean, code?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!ok) {
        fail(code ?? 'unknown');
        s.destroy();
      }
      resolve(ok ? s : null);
    };
    const timer = setTimeout(() => end(false, 'timeout'), OPEN_TIMEOUT_MS);
    s.on('error', (e: NodeJS.ErrnoException) => end(false, e.code ?? e.message));
    s.once('connect', () => s.write(payload));
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= ECHO_BYTES) end(true);
    });
    s.once('close', () => end(false, 'closedEarly'));
  });
  const closeAll = (socks: Socket[]) => new Promise<void>((resolve) => {
    let left = socks.length;
    if (left === 0) resolve();
    for (const s of socks) {
      s.once('close', () => {
        if (--left === 0) resolve();
      });
      s.end();
    }
  });

  if (mode === 'hold') {
    const n = Number(args[2]);
    const conc = Number(args[3]);
    const held: Socket[] = [];
    let next = 0;
    let failed = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (next < n) {
        next++;
        const s = await open();
        if (s) held.push(s);
        else failed++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(conc, n) }, worker));
    const openMs = performance.now() - t0;
    out({ phase: 'open', n, concurrency: conc, opened: held.length, failed, errors, openMs: Math.round(openMs), perSecond: +(n / (openMs / 1000)).toFixed(1) });
    for (const s of held) s.on('error', () => undefined);
    const rl = createInterface({ input: process.stdin });
    for await (const line of rl) if (line.trim() === 'close') break;
    const t1 = performance.now();
    await closeAll(held);
    out({ phase: 'closed', closeMs: Math.round(performance.now() - t1) });
    rl.close();
    process.exit(0);
  } else {
    const seconds = Number(args[2]);
    const times: number[] = [];
    let failed = 0;
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    while (performance.now() < deadline) {
      const t = performance.now();
      const s = await open();
      if (!s) {
        failed++;
        continue;
      }
      await closeAll([s]);
      times.push(performance.now() - t);
    }
    const s = (performance.now() - t0) / 1000;
    const sorted = [...times].sort((a, b) => a - b);
    const q = (p: number) => (sorted.length ? +sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(2) : null);
    out({ phase: 'seq', n: times.length, failed, errors, seconds: +s.toFixed(2), perSecond: +(times.length / s).toFixed(1), msMedian: q(0.5), msP99: q(0.99) });
  }
} else {
  process.stderr.write('usage: conn-load server PORT [--plain] | hold HOST PORT N CONC | seq HOST PORT SECONDS\n');
  process.exit(2);
}
