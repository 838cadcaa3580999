// One end of a bench/simult transfer, as the selftest's `mptcp_connect -j` in poll mode: send
// --send bytes (random) and half-close, read the peer's bytes to EOF, both at once; the runtime
// is from the connection's start (the client: the connect() call; the server: accept) until
// this end has both written all it had (to its socket) and read the peer's EOF. SHA-256 of
// what was sent and what was received, so the caller can check the bytes. One JSON line on
// stdout; the server writes `listening` to stderr once it listens, and serves one connection.
// As `mptcp_connect -j`, each end first writes 100 bytes and waits 200 ms for the joins.
//
//   node dist/bench/simult-peer.js --listen PORT --send BYTES
//   node dist/bench/simult-peer.js --connect HOST:PORT --send BYTES
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    listen: { type: 'string' },
    connect: { type: 'string' },
    send: { type: 'string', default: '0' },
  },
});
const size = Number(values.send);
const data = randomBytes(size);
const sentSha = createHash('sha256').update(data).digest('hex');
const CHUNK = 64 * 1024;

function run(sock: net.Socket, t0: bigint, role: string): void {
  const hash = createHash('sha256');
  let received = 0;
  let outDone: number | null = null;
  let inDone: number | null = null;
  const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const finish = () => {
    if (outDone === null || inDone === null) return;
    process.stdout.write(`${JSON.stringify({ role, ms: +Math.max(outDone, inDone).toFixed(1), outDoneMs: +outDone.toFixed(1), inDoneMs: +inDone.toFixed(1), sent: size, sentSha, received, receivedSha: hash.digest('hex') })}\n`, () => process.exit(0));
    sock.destroy();
  };
  sock.on('data', (d: Buffer) => { received += d.length; hash.update(d); });
  sock.on('end', () => { inDone = ms(); finish(); });
  sock.on('error', (e) => { process.stderr.write(`${role}: ${e.message}\n`); process.exit(1); });
  let off = 0;
  const pump = () => {
    while (off < size) {
      const chunk = data.subarray(off, Math.min(size, off + CHUNK));
      off += chunk.length;
      if (!sock.write(chunk)) { sock.once('drain', pump); return; }
    }
    sock.end(() => { outDone = ms(); finish(); });
  };
  // mptcp_connect -j (do_rnd_write): "let the join handshake complete, before going on": the
  // first write is at most 100 bytes, then it sleeps 200 ms (both ends, hence the selftest's
  // "200ms on each side"). Here the sleep is a timer, so reading goes on meanwhile.
  const first = Math.min(100, size);
  if (first > 0) sock.write(data.subarray(0, first));
  off = first;
  setTimeout(pump, 200);
}

if (values.listen !== undefined) {
  const srv = net.createServer({ allowHalfOpen: true }, (sock) => {
    // The listener stays open (mptcp_connect -j does not close it either): the kernel's MPTCP
    // takes the MP_JOIN SYNs of this connection on it.
    const t0 = process.hrtime.bigint();
    run(sock, t0, 'server');
  });
  srv.listen(Number(values.listen), '::', () => process.stderr.write('listening\n'));
} else if (values.connect !== undefined) {
  const i = values.connect.lastIndexOf(':');
  const t0 = process.hrtime.bigint();
  const sock = net.connect({ allowHalfOpen: true, host: values.connect.slice(0, i), port: Number(values.connect.slice(i + 1)) }, () => run(sock, t0, 'client'));
  sock.on('error', (e) => { process.stderr.write(`client: ${e.message}\n`); process.exit(1); });
} else {
  process.stderr.write('simult-peer: --listen PORT or --connect HOST:PORT\n');
  process.exit(2);
}
