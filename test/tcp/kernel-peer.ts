// The Linux kernel's side of the TCP interop tests: node:net (kernel TCP) in the namespace.
//   --mode send --connect ADDR:PORT --bytes N   connect, send a seeded stream, half-close,
//                                               read the answer (mptun's sha256), print both
//   --mode serve --listen ADDR:PORT             accept one connection, hash all, answer sha256
import { parseArgs } from 'node:util';
import { connect, createServer, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { StreamSource } from './stream.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'send' },
    connect: { type: 'string' },
    listen: { type: 'string' },
    bytes: { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
  },
});
const print = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const split = (s: string): [string, number] => {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
};

if (values.mode === 'send') {
  const [host, port] = split(values.connect!);
  const total = Number(values.bytes);
  const source = new StreamSource(total, Number(values.seed));
  const started = process.hrtime.bigint();
  const sock = connect({ host, port });
  let answer = '';
  sock.on('connect', () => {
    const pump = () => {
      for (let b = source.next(1 << 20); b; b = source.next(1 << 20)) {
        if (!sock.write(b)) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end();
    };
    pump();
  });
  sock.on('data', (d) => { answer += d.toString(); });
  sock.on('end', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    print({ event: 'sent', bytes: total, sha256: source.digest(), peerSha256: answer.trim(), seconds, gbps: (total * 8) / seconds / 1e9 });
    process.exit(0);
  });
  sock.on('error', (e) => { print({ event: 'error', message: e.message }); process.exit(1); });
} else {
  const [host, port] = split(values.listen!);
  const server = createServer((sock: Socket) => {
    const hash = createHash('sha256');
    let bytes = 0;
    const started = process.hrtime.bigint();
    sock.on('data', (d) => { hash.update(d); bytes += d.length; });
    sock.on('end', () => {
      const digest = hash.digest('hex');
      sock.end(digest + '\n');
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      print({ event: 'received', bytes, sha256: digest, seconds, gbps: (bytes * 8) / seconds / 1e9 });
      server.close();
    });
    sock.on('error', (e) => { print({ event: 'error', message: e.message }); process.exit(1); });
  });
  server.listen(port, host, () => print({ event: 'listening' }));
}
