// mptun's MPTCP on a real TUN device, for the interop tests against the Linux kernel's MPTCP
// (test/mptcp/interop.test.ts). Runs in the mptun namespace; prints JSON lines.
//
//   --connect ADDR:PORT --paths 192.0.2.1,192.0.2.2 --bytes N
//     open an MPTCP connection from the first path address, add a subflow from each other one,
//     send N bytes of a seeded stream, DATA_FIN, read the peer's answer (its sha256), report.
//   --mode serve
//     accept MPTCP (and plain TCP) connections to 192.0.2.0/24; read all, hash it; when the
//     peer's DATA_FIN arrives, answer with the sha256 hex and close.
import { parseArgs } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { Tun } from '../../src/tun/index.js';
import { configureLink, MIN_TXQUEUELEN } from '../../src/routing/link.js';
import { addRoute } from '../../src/routing/route.js';
import { Engine } from '../../src/appliance/engine.js';
import { MptcpStack } from '../../src/mptcp/stack.js';
import type { MptcpConnection } from '../../src/mptcp/protocol.js';
import { parseIpAddress } from '../../src/ip/address.js';
import { StreamSource } from '../tcp/stream.js';

const { values } = parseArgs({
  options: {
    tun: { type: 'string', default: 'mptmp0' },
    offload: { type: 'boolean', default: false },
    bytes: { type: 'string', default: '0' },
    connect: { type: 'string' },
    paths: { type: 'string', default: '192.0.2.1,192.0.2.2' },
    seed: { type: 'string', default: '1' },
    mode: { type: 'string', default: 'send' },
    backup: { type: 'string', multiple: true, default: [] },
    fullmesh: { type: 'boolean', default: false },
  },
});
const offload = values.offload!;
const tun = Tun.open({ name: values.tun!, vnetHdr: offload, offload });
await configureLink(tun.name, { addresses: ['198.18.0.1/32'], mtu: 1500, txqueuelen: MIN_TXQUEUELEN, up: true });
await addRoute({ dst: '192.0.2.0/24', dev: tun.name });

const stack = new MptcpStack({
  random: (n) => randomBytes(n),
  isnSecret: randomBytes(16),
  headroom: tun.headerLen,
  checksumOffload: offload,
  tcp: { tsoMaxPayload: offload ? 64000 : 0 },
  mtu: 1500,
});
const engine = new Engine(tun, {
  handleInput: (now, iface, packet, valid) => stack.handleInput(now, iface, packet, valid),
  handleTimeout: (now) => stack.handleTimeout(now),
  pollOutput: (now) => stack.pollOutput(now),
  pollTimeout: () => stack.pollTimeout(),
});
const print = (o: unknown) => process.stdout.write(JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');

const serve = values.mode === 'serve';
const total = Number(values.bytes);
const source = new StreamSource(total, Number(values.seed));
let pending: Buffer | null = null;
let answer = '';
let reported = false;
let conn: MptcpConnection | null = null;
const sinks = new Map<MptcpConnection, { hash: ReturnType<typeof createHash>; bytes: number; answered: boolean }>();

if (serve) {
  stack.listen(() => true);
} else {
  const [host, port] = ((s: string): [string, number] => {
    const i = s.lastIndexOf(':');
    return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
  })(values.connect!);
  conn = stack.connect(engine.now(), values.paths!.split(',').map((a) => parseIpAddress(a).bytes), { addr: parseIpAddress(host).bytes, port }, { backup: values.backup!.map(Number), fullmesh: values.fullmesh! });
}

function pumpSender(c: MptcpConnection): void {
  for (;;) {
    if (!pending) pending = source.next(256 * 1024);
    if (!pending) break;
    const n = c.write(pending);
    if (n === 0) break;
    pending = n < pending.length ? pending.subarray(n) : null;
  }
  if (!pending && source.done) c.shutdown();
  for (let b = c.read(); b; b = c.read()) answer += b.toString();
  if (c.readEnded && !reported) {
    reported = true;
    print({ event: 'sent', bytes: total, sha256: source.digest(), peerSha256: answer.trim(), counters: c.counters.nonZero(), info: c.info() });
  }
}

function pumpSink(c: MptcpConnection): void {
  let s = sinks.get(c);
  if (!s) sinks.set(c, (s = { hash: createHash('sha256'), bytes: 0, answered: false }));
  for (let b = c.read(); b; b = c.read()) {
    s.hash.update(b);
    s.bytes += b.length;
  }
  if (c.readEnded && !s.answered) {
    s.answered = true;
    const digest = s.hash.digest('hex');
    c.write(Buffer.from(digest + '\n'));
    c.shutdown();
    print({ event: 'received', bytes: s.bytes, sha256: digest, counters: c.counters.nonZero(), info: c.info() });
  }
}

engine.onTick = (now) => {
  stack.process(now);
  for (let e = stack.pollEvent(); e; e = stack.pollEvent()) {
    if (e.event.type === 'reset') print({ event: 'reset', reason: e.event.reason, info: e.conn.info(), counters: e.conn.counters.nonZero() });
    if (e.event.type === 'subflow') print({ event: 'subflow', change: e.event.change, id: e.event.subflow.id });
    if (e.event.type === 'closed') {
      print({ event: 'closed' });
      sinks.delete(e.conn);
      if (!serve) setTimeout(() => process.exit(0), 50);
    }
  }
  if (conn) pumpSender(conn);
  for (const c of stack.connections) if (serve) pumpSink(c);
  stack.process(now);
};
engine.start();
engine.kick();
print({ event: 'ready' });

// Until the appliance follows links through netlink, tests say a path went down or came back
// with a signal: SIGUSR1 = the first path down, SIGUSR2 = it is back.
const firstPath = parseIpAddress(values.paths!.split(',')[0]!).bytes;
process.on('SIGUSR1', () => {
  stack.pathDown(engine.now(), firstPath);
  print({ event: 'pathDown' });
  engine.kick();
});
process.on('SIGUSR2', () => {
  stack.pathUp(engine.now(), firstPath);
  engine.kick();
});

process.on('SIGTERM', () => {
  print({ event: 'stats', info: conn?.info(), counters: conn?.counters.nonZero(), stack: stack.counters.nonZero(), engine: engine.stats });
  process.exit(0);
});
