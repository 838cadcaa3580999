// An unmodified app in the client namespace of the client-concentrator e2e test (plain
// node:net, captured by `mptun up --server`). Prints one JSON line.
//   send HOST PORT BYTES   connect, send BYTES pseudo-random bytes, half-close, read the answer
//                          ("<sha256> <count>" from test/e2e/mptcv-dst.ts); the sha256 of what was sent
//   connect HOST PORT      connect only: ok, or the error code (ECONNREFUSED, EHOSTUNREACH, ...), and how long it took
import { createHash } from 'node:crypto';
import { connect } from 'node:net';

const [mode, host, portText, bytesText] = process.argv.slice(2);
const port = Number(portText);
const t0 = performance.now();
const sock = connect({ host: host!, port, allowHalfOpen: true });
sock.setTimeout(120_000, () => sock.destroy(new Error('ETIMEDOUT')));
const done = (r: Record<string, unknown>) => {
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
};
sock.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, code: e.code ?? e.message, ms: performance.now() - t0 }));
sock.on('connect', () => {
  const connectMs = performance.now() - t0;
  if (mode === 'connect') {
    sock.destroy();
    done({ ok: true, ms: connectMs });
    return;
  }
  const total = Number(bytesText);
  const h = createHash('sha256');
  // pseudo-random bytes that cost little to make (the app must not be what limits the
  // transfer): a 1 MiB pool from a seeded hash chain, each 64 KiB block a different slice of
  // it with the block's number written in its first 8 bytes
  const BLOCK = 64 * 1024;
  const pool = Buffer.alloc(1 << 20);
  let seed = createHash('sha256').update('mptcc').digest();
  for (let o = 0; o < pool.length; o += 32) {
    seed = createHash('sha256').update(seed).digest();
    seed.copy(pool, o);
  }
  let sent = 0;
  let n = 0;
  const next = (): Buffer | null => {
    if (sent >= total) return null;
    const off = ((n * 7919) % (pool.length / 16 - BLOCK / 16)) * 16;
    const b = Buffer.from(pool.subarray(off, off + Math.min(BLOCK, total - sent)));
    if (b.length >= 8) b.writeBigUInt64BE(BigInt(n), 0);
    n++;
    sent += b.length;
    h.update(b);
    return b;
  };
  const pump = () => {
    for (let b = next(); b; b = next()) if (!sock.write(b)) return void sock.once('drain', pump);
    sock.end();
  };
  pump();
  let answer = '';
  sock.on('data', (d: Buffer) => (answer += d.toString()));
  sock.on('end', () => done({ ok: true, connectMs, ms: performance.now() - t0, sent, sha256: h.digest('hex'), answer: answer.trim() }));
});
