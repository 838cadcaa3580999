// The two apps of the long transfer test (test/e2e/long.test.ts), one program:
//   --listen ADDR:PORT    the server: a listening socket of the kernel's MPTCP (IPPROTO_MPTCP,
//                         through mptun's addon, no mptcpize), one connection taken
//   --connect ADDR:PORT   the client: a plain node:net TCP socket (mptun carries it)
//   --send N              this end sends N bytes (fewer if SIGUSR2 comes first: it stops at
//                         the end of the chunk being written), then half-closes; without it,
//                         this end receives until the peer's FIN
//   --seed S              the stream: the AES-256-CTR keystream (key sha256("mptun long S"),
//                         IV 0) over zeros, in chunks of 1 MiB: pseudo-random, cheap (AES-NI)
// Each end hashes what it sent or received (sha256) and prints one JSON line when its half
// is done ({ event: 'sent' | 'received', bytes, sha256, seconds, ... }). The connection then
// stays open (half-closed) until the receiving end gets SIGUSR1, so that the test can read both
// ends' views of the open connection (mptun status, ss, MPTCP_INFO): then the receiver closes
// its half too, and each end exits 0 once its socket has closed (1 if it closed before its
// half was done).
import { createCipheriv, createHash } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { mptcpInfo, mptcpListen } from '../../src/tun/mptcp.js';

const { values } = parseArgs({
  options: {
    listen: { type: 'string' },
    connect: { type: 'string' },
    send: { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
});
const CHUNK = 1 << 20;
const print = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const split = (s: string): [string, number] => {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
};
const fdOf = (sock: Socket): number | null => {
  const h = (sock as unknown as { _handle?: { fd?: number } })._handle;
  return typeof h?.fd === 'number' && h.fd >= 0 ? h.fd : null;
};
/** The kernel's MPTCP view of the connection (the listening end only; null when plain TCP). */
const kernelView = (sock: Socket) => {
  if (!values.listen) return undefined;
  const fd = fdOf(sock);
  const info = fd === null ? null : mptcpInfo(fd);
  return info && { subflows: info.subflows, fallback: info.fallback, subflowAddrs: info.subflowAddrs };
};

function run(sock: Socket): void {
  const hash = createHash('sha256');
  const started = process.hrtime.bigint();
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  let bytes = 0;
  let done = false;
  const report = (event: 'sent' | 'received') => {
    done = true;
    print({ event, bytes, sha256: hash.digest('hex'), seconds: seconds(), mptcp: kernelView(sock) });
  };
  sock.on('error', (e) => {
    print({ event: 'error', message: e.message, bytes });
    process.exit(1);
  });
  // a socket whose read side has ended and that writes nothing keeps no libuv handle active:
  // this timer keeps the process (and the half-closed connection) until the socket closes
  const keep = setInterval(() => undefined, 1 << 30);
  sock.on('close', (hadError) => {
    clearInterval(keep);
    print({ event: 'closed', hadError, done });
    process.exit(done ? 0 : 1);
  });
  process.on('SIGUSR1', () => sock.end());
  if (values.send !== undefined) {
    // SIGUSR2: stop at the end of the chunk being written (the test has seen what it wanted)
    let total = Number(values.send);
    process.on('SIGUSR2', () => {
      total = Math.min(total, bytes);
    });
    const key = createHash('sha256').update(`mptun long ${values.seed}`).digest();
    const keystream = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    const zeros = Buffer.alloc(CHUNK);
    const pump = () => {
      while (bytes < total) {
        const n = Math.min(CHUNK, total - bytes);
        const chunk = keystream.update(n === CHUNK ? zeros : zeros.subarray(0, n));
        hash.update(chunk);
        bytes += n;
        if (!sock.write(chunk)) {
          sock.once('drain', pump);
          return;
        }
      }
      // the callback: everything is in the kernel's send buffer
      sock.end(() => report('sent'));
    };
    pump();
    // the peer sends nothing; its FIN comes after SIGUSR1
    sock.on('data', () => undefined);
  } else {
    sock.on('data', (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
    });
    sock.on('end', () => report('received'));
  }
}

if (values.listen) {
  const [host, port] = split(values.listen);
  // the listener stays open: the kernel takes the MP_JOIN SYNs of the connection's next
  // subflows on it (closed, they are answered with a RST)
  let taken = false;
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    if (taken) {
      sock.destroy();
      return;
    }
    taken = true;
    run(sock);
  });
  server.listen({ fd: mptcpListen(host, port, 16, 0) }, () => print({ event: 'listening', port }));
} else if (values.connect) {
  const [host, port] = split(values.connect);
  const sock = connect({ host, port, allowHalfOpen: true });
  sock.once('connect', () => run(sock));
  sock.once('error', (e) => {
    print({ event: 'error', message: e.message });
    process.exit(1);
  });
} else {
  process.stderr.write('long-peer: --listen or --connect\n');
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
