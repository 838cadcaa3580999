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
  const block = Buffer.alloc(64 * 1024);
  let seed = createHash('sha256').update('mptcc').digest();
  let sent = 0;
  const next = (): Buffer | null => {
    if (sent >= total) return null;
    for (let o = 0; o < block.length; o += 32) {
      seed = createHash('sha256').update(seed).digest();
      seed.copy(block, o);
    }
    const b = block.subarray(0, Math.min(block.length, total - sent));
    sent += b.length;
    h.update(b);
    return Buffer.from(b);
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
