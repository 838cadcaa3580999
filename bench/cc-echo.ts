// A tiny echo pair for bench/concentrator (plain node:net, captured or not).
//   server PORT            echo everything back
//   client HOST PORT N     N times in sequence: connect, write 1 byte, read it back, close; JSON
//                          with the medians of connect time and time to first byte (from the
//                          start of connect), and the rate of whole connections per second
import { connect, createServer } from 'node:net';

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'server') {
  createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  }).listen(Number(a), () => process.stdout.write('listening\n'));
} else {
  const host = a!;
  const port = Number(b);
  const n = Number(c);
  const one = () => new Promise<{ connectMs: number; ttfbMs: number }>((resolve, reject) => {
    const t0 = performance.now();
    let connectMs = 0;
    const s = connect({ host, port });
    s.once('error', reject);
    s.once('connect', () => {
      connectMs = performance.now() - t0;
      s.write('x');
    });
    s.once('data', () => {
      const ttfbMs = performance.now() - t0;
      s.end();
      s.once('close', () => resolve({ connectMs, ttfbMs }));
    });
  });
  const med = (xs: number[]) => {
    const s = [...xs].sort((x, y) => x - y);
    return +s[Math.floor(s.length / 2)]!.toFixed(2);
  };
  const t0 = performance.now();
  const rs: Array<{ connectMs: number; ttfbMs: number }> = [];
  for (let i = 0; i < n; i++) rs.push(await one());
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(`${JSON.stringify({ n, connectMsMedian: med(rs.map((r) => r.connectMs)), ttfbMsMedian: med(rs.map((r) => r.ttfbMs)), perSecond: +(n / s).toFixed(1) })}\n`);
}
