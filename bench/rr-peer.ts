// One end of bench/rr: request/response on one TCP connection (TCP_NODELAY at both ends).
// The server echoes what it reads, at once. The client writes a --size byte request, waits for
// the whole --size byte answer, and so on: --warmup round trips uncounted, then --count timed
// ones (process.hrtime, from the write to the last byte of the answer). One JSON line on stdout:
// percentiles in µs; with --raw, every round trip too. The server writes `listening` to stderr.
//
//   node dist/bench/rr-peer.js --listen PORT
//   node dist/bench/rr-peer.js --connect HOST:PORT [--count 20000] [--size 64] [--warmup 500] [--raw]
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    listen: { type: 'string' },
    connect: { type: 'string' },
    count: { type: 'string', default: '20000' },
    size: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '500' },
    raw: { type: 'boolean', default: false },
  },
});

/** The value at quantile q of sorted xs (nearest rank). */
export function quantile(sorted: Float64Array | number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

if (values.listen !== undefined) {
  const srv = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('data', (d) => sock.write(d));
    sock.on('error', () => sock.destroy());
  });
  srv.listen(Number(values.listen), '::', () => process.stderr.write('listening\n'));
} else if (values.connect !== undefined) {
  const count = Number(values.count);
  const size = Number(values.size);
  const warmup = Number(values.warmup);
  const i = values.connect.lastIndexOf(':');
  const req = Buffer.alloc(size, 0x61);
  const rtt = new Float64Array(count);
  let n = -warmup;
  let got = 0;
  let t0 = 0n;
  const sock = net.connect({ host: values.connect.slice(0, i), port: Number(values.connect.slice(i + 1)) }, () => {
    sock.setNoDelay(true);
    t0 = process.hrtime.bigint();
    sock.write(req);
  });
  sock.on('data', (d: Buffer) => {
    got += d.length;
    if (got < size) return;
    const t = process.hrtime.bigint();
    got -= size;
    if (n >= 0) rtt[n] = Number(t - t0) / 1e3;
    n++;
    if (n < count) {
      t0 = process.hrtime.bigint();
      sock.write(req);
      return;
    }
    const sorted = Float64Array.from(rtt).sort();
    const r1 = (x: number) => +x.toFixed(1);
    const out = {
      count, size,
      medianUs: r1(quantile(sorted, 0.5)), p90Us: r1(quantile(sorted, 0.9)), p99Us: r1(quantile(sorted, 0.99)),
      p999Us: r1(quantile(sorted, 0.999)), maxUs: r1(sorted[sorted.length - 1]!), minUs: r1(sorted[0]!),
      meanUs: r1(rtt.reduce((a, b) => a + b, 0) / count),
      ...(values.raw ? { rttUs: Array.from(rtt, r1) } : {}),
    };
    process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
    sock.destroy();
  });
  sock.on('error', (e) => { process.stderr.write(`rr client: ${e.message}\n`); process.exit(1); });
} else {
  process.stderr.write('rr-peer: --listen PORT or --connect HOST:PORT\n');
  process.exit(2);
}
