// mptun's TCP on a real TUN device, for the interop tests against the Linux kernel's TCP
// (test/tcp/interop.test.ts). Runs in a network namespace, prints JSON lines.
//
//   --mode serve   accept every connection to 192.0.2.0/24 or 2001:db8:77::/64; read all,
//                  hash it; when the peer half-closes, answer with the sha256 hex and close
//   --mode send    connect to --connect ADDR:PORT, send --bytes of a seeded stream, half-close,
//                  read the peer's answer (its sha256 of what it got) and print both
import { parseArgs } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { Tun } from '../../src/tun/index.js';
import { configureLink, MIN_TXQUEUELEN } from '../../src/routing/link.js';
import { addRoute } from '../../src/routing/route.js';
import { Engine } from '../../src/appliance/engine.js';
import { TcpStack } from '../../src/tcp/stack.js';
import type { TcpConnection } from '../../src/tcp/connection.js';
import { parseIpAddress } from '../../src/ip/address.js';
import { StreamSource } from './stream.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'serve' },
    tun: { type: 'string', default: 'mptio0' },
    offload: { type: 'boolean', default: false },
    bytes: { type: 'string', default: '0' },
    connect: { type: 'string' },
    local: { type: 'string', default: '192.0.2.1' },
    seed: { type: 'string', default: '1' },
  },
});
const offload = values.offload!;
const tun = Tun.open({ name: values.tun!, vnetHdr: offload, offload });
await configureLink(tun.name, { addresses: ['198.18.0.1/32', 'fd00:18::1/128'], mtu: 1500, txqueuelen: MIN_TXQUEUELEN, up: true });
await addRoute({ dst: '192.0.2.0/24', dev: tun.name });
await addRoute({ dst: '2001:db8:77::/64', dev: tun.name });

const stack = new TcpStack({
  isnSecret: randomBytes(16),
  headroom: tun.headerLen,
  checksumOffload: offload,
  tcp: { tsoMaxPayload: offload ? 64000 : 0 },
  mtu: 1500,
});
const engine = new Engine(tun, stack);
const print = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

interface App { pump(): void }
const apps = new Map<TcpConnection, App>();

function sinkApp(conn: TcpConnection): App {
  const hash = createHash('sha256');
  let bytes = 0;
  let answered = false;
  return {
    pump() {
      for (let b = conn.read(); b; b = conn.read()) {
        hash.update(b);
        bytes += b.length;
      }
      if (conn.readEnded && !answered) {
        answered = true;
        const digest = hash.digest('hex');
        conn.write(Buffer.from(digest + '\n'));
        conn.shutdown();
        print({ event: 'received', bytes, sha256: digest, counters: conn.counters.nonZero(), info: conn.info() });
      }
      stack.touch(conn);
    },
  };
}

function sendApp(conn: TcpConnection, total: number): App {
  const source = new StreamSource(total, Number(values.seed));
  let pending: Buffer | null = null;
  let answer = '';
  let done = false;
  return {
    pump() {
      for (;;) {
        if (!pending) pending = source.next(256 * 1024);
        if (!pending) break;
        const n = conn.write(pending);
        if (n === 0) break;
        pending = n < pending.length ? pending.subarray(n) : null;
      }
      if (!pending && source.done) conn.shutdown();
      for (let b = conn.read(); b; b = conn.read()) answer += b.toString();
      if (conn.readEnded && !done) {
        done = true;
        print({ event: 'sent', bytes: total, sha256: source.digest(), peerSha256: answer.trim(), counters: conn.counters.nonZero(), info: conn.info() });
      }
      stack.touch(conn);
    },
  };
}

stack.listen(() => values.mode === 'serve');

engine.onTick = () => {
  for (let e = stack.pollEvent(); e; e = stack.pollEvent()) {
    const { conn, event } = e;
    if (event.type === 'connected' && !apps.has(conn)) apps.set(conn, values.mode === 'serve' ? sinkApp(conn) : sendApp(conn, Number(values.bytes)));
    if (event.type === 'reset') print({ event: 'reset', reason: event.reason, counters: conn.counters.nonZero(), info: conn.info() });
    if (event.type === 'closed') {
      apps.get(conn)?.pump();
      apps.delete(conn);
      print({ event: 'closed' });
      if (values.mode === 'send') setTimeout(() => process.exit(0), 50);
    }
  }
  for (const app of apps.values()) app.pump();
};
engine.start();

if (values.mode === 'send') {
  const [host, port] = splitHostPort(values.connect!);
  const remote = { addr: parseIpAddress(host).bytes, port };
  const local = { addr: parseIpAddress(remote.addr.length === 4 ? values.local! : '2001:db8:77::1').bytes, port: 40000 + Math.floor(Math.random() * 20000) };
  stack.connect(engine.now(), local, remote);
  engine.kick();
}
print({ event: 'ready' });

process.on('SIGTERM', () => {
  print({ event: 'stats', engine: engine.stats, stack: stack.counters.nonZero(), codec: stack.codecCounters.nonZero(), ip: stack.ipCounters.nonZero() });
  process.exit(0);
});

function splitHostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
}
