// The destination of the concentrator e2e test: a plain-TCP server (no MPTCP) that reads until
// the client's FIN, then answers "<sha256 hex> <byte count>\n" and closes; on the next port, one
// that resets the connection as soon as data arrives.
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';

const port = Number(process.argv[2]);
const server = createServer({ allowHalfOpen: true }, (sock) => {
  const h = createHash('sha256');
  let n = 0;
  sock.on('data', (d: Buffer) => {
    h.update(d);
    n += d.length;
  });
  sock.on('end', () => sock.end(`${h.digest('hex')} ${n}\n`));
  sock.on('error', () => undefined);
});
const resetter = createServer((sock) => {
  sock.on('error', () => undefined);
  sock.once('data', () => sock.resetAndDestroy());
});
resetter.listen(port + 1, () => server.listen(port, () => process.stdout.write(`listening ${port} ${port + 1}\n`)));
process.on('SIGTERM', () => process.exit(0));
