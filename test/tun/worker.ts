// Runs one TUN scenario inside a network namespace (started by tun.test.ts with
// `ip netns exec`) and prints its findings as one JSON line.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { once } from 'node:events';
import { Tun, parseVnetHdr, VNET_HDR_LEN, VIRTIO_NET_HDR_F_NEEDS_CSUM } from '../../src/tun/index.js';
import { configureLink } from '../../src/routing/link.js';
import { addRoute } from '../../src/routing/route.js';
import { Ipv4Packet } from '../../src/ip/ipv4.js';

const scenario = process.argv[2];
const NAME = 'mpttun0';

async function open(vnet: boolean): Promise<Tun> {
  const tun = Tun.open({ name: NAME, vnetHdr: vnet, offload: vnet, maxBatch: 64 });
  await configureLink(NAME, { addresses: ['198.18.0.1/32'], mtu: 1500, txqueuelen: 4000, up: true });
  await addRoute({ dst: '192.0.2.0/24', dev: NAME });
  return tun;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function batchedRead() {
  // 200 UDP datagrams to an address routed into the device, then one synchronous drain:
  // they come out in batches, not one per call.
  const tun = await open(false);
  const sock = createSocket('udp4');
  for (let i = 0; i < 200; i++) sock.send(Buffer.from(`datagram ${i}`), 9, '192.0.2.9');
  await sleep(200);
  const batches: number[] = [];
  const payloads: string[] = [];
  for (;;) {
    const b = tun.readBatch();
    if (b.count === 0) break;
    batches.push(b.count);
    for (let i = 0; i < b.count; i++) {
      const pkt = b.arena.subarray(b.offsets[i], b.offsets[i]! + b.lengths[i]!);
      const ip = Ipv4Packet.check(pkt);
      if (typeof ip === 'string') { payloads.push(`bad: ${ip}`); continue; }
      if (ip.protocol === 17) payloads.push(ip.payload.subarray(8).toString());
    }
  }
  sock.close();
  // and through the event loop: start() calls back once per batch
  const cbCounts: number[] = [];
  tun.start((b) => cbCounts.push(b.count));
  const sock2 = createSocket('udp4');
  for (let i = 0; i < 100; i++) sock2.send(Buffer.from(`again ${i}`), 9, '192.0.2.9');
  await sleep(300);
  sock2.close();
  tun.close();
  return { batches, payloads, cbCounts, stats: tun.stats() };
}

async function batchedWrite() {
  // 50 UDP datagrams written with one writeBatch call arrive at a socket of the kernel's.
  const tun = await open(false);
  const sock = createSocket('udp4');
  sock.bind(7777, '198.18.0.1');
  await once(sock, 'listening');
  const got: string[] = [];
  sock.on('message', (m) => got.push(m.toString()));
  const N = 50;
  const buf = Buffer.alloc(N * 64);
  const offsets = new Uint32Array(N);
  const lengths = new Uint32Array(N);
  for (let i = 0; i < N; i++) {
    const payload = Buffer.from(`written ${i}`);
    const len = 20 + 8 + payload.length;
    const p = buf.subarray(i * 64, i * 64 + len);
    p[0] = 0x45; p.writeUInt16BE(len, 2); p.writeUInt16BE(i, 4); p[8] = 64; p[9] = 17;
    Buffer.from([192, 0, 2, 9]).copy(p, 12);
    Buffer.from([198, 18, 0, 1]).copy(p, 16);
    new Ipv4Packet(p).fillChecksum();
    p.writeUInt16BE(4000 + i, 20); p.writeUInt16BE(7777, 22); p.writeUInt16BE(8 + payload.length, 24); p.writeUInt16BE(0, 26);
    payload.copy(p, 28);
    offsets[i] = i * 64;
    lengths[i] = len;
  }
  const written = tun.writeBatch(buf, offsets, lengths, N);
  for (let i = 0; i < 50 && got.length < N; i++) await sleep(20);
  sock.close();
  tun.close();
  return { written, got, stats: tun.stats() };
}

async function vnetHeader() {
  // With IFF_VNET_HDR and offloads every packet starts with a virtio-net header; a TCP SYN
  // from the kernel comes with its checksum left partial (NEEDS_CSUM at the TCP checksum).
  const tun = await open(true);
  const s = connect({ host: '192.0.2.9', port: 80 });
  s.on('error', () => undefined);
  await sleep(200);
  const b = tun.readBatch();
  const seen = [];
  for (let i = 0; i < b.count; i++) {
    const raw = b.arena.subarray(b.offsets[i], b.offsets[i]! + b.lengths[i]!);
    const hdr = parseVnetHdr(raw);
    const ip = Ipv4Packet.check(raw.subarray(VNET_HDR_LEN));
    if (typeof ip === 'string') { seen.push({ bad: ip }); continue; }
    seen.push({ ...hdr, needsCsum: (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0, protocol: ip.protocol, headerLen: ip.headerLen, length: raw.length });
  }
  s.destroy();
  tun.close();
  return { seen };
}

const scenarios: Record<string, () => Promise<unknown>> = { batchedRead, batchedWrite, vnetHeader };
const fn = scenarios[scenario ?? ''];
if (!fn) {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
console.log(JSON.stringify(await fn()));
process.exit(0);
