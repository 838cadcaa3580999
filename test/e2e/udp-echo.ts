// A DNS-shaped UDP exchange for the appliance test: `--mode serve --port N` answers every
// datagram with the same bytes and the QR bit set (a DNS response); `--mode query --server
// ADDR --port N` sends a DNS query for example.com (A) and prints whether it was answered.
import { parseArgs } from 'node:util';
import { createSocket } from 'node:dgram';

const { values } = parseArgs({
  options: { mode: { type: 'string' }, port: { type: 'string', default: '53' }, server: { type: 'string' } },
});
const port = Number(values.port);

// header: id 0x1234, RD; one question: example.com A IN
const QUERY = Buffer.from('123401000001000000000000076578616d706c6503636f6d0000010001', 'hex');

if (values.mode === 'serve') {
  const s = createSocket('udp4');
  s.on('message', (msg, rinfo) => {
    const reply = Buffer.from(msg);
    if (reply.length >= 3) reply[2] = reply[2]! | 0x80;
    s.send(reply, rinfo.port, rinfo.address);
  });
  s.bind(port, '0.0.0.0');
} else {
  const s = createSocket('udp4');
  const timer = setTimeout(() => {
    process.stdout.write(JSON.stringify({ answered: false }) + '\n');
    process.exit(1);
  }, 3000);
  s.on('message', (msg) => {
    clearTimeout(timer);
    const ok = msg.length === QUERY.length && msg.readUInt16BE(0) === 0x1234 && (msg[2]! & 0x80) !== 0;
    process.stdout.write(JSON.stringify({ answered: ok }) + '\n');
    process.exit(ok ? 0 : 1);
  });
  s.send(QUERY, port, values.server!);
}
