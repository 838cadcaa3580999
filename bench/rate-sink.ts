// A TCP sink for bench/failover: accepts one connection on --port, counts the bytes received
// in buckets of --bucket ms (wall clock, Date.now(), so that another process on the same
// machine can say when it pulled a link), and prints one JSON line when the peer closes:
// { start, bucketMs, buckets: [bytes, ...], bytes }. Runs under `mptcpize run` for MPTCP.
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '5010' }, bucket: { type: 'string', default: '50' } } });
const bucketMs = Number(values.bucket);
const server = createServer((sock) => {
  const start = Date.now();
  const buckets: number[] = [];
  let bytes = 0;
  sock.on('data', (d) => {
    const i = Math.floor((Date.now() - start) / bucketMs);
    while (buckets.length <= i) buckets.push(0);
    buckets[i]! += d.length;
    bytes += d.length;
  });
  sock.on('end', () => {
    process.stdout.write(JSON.stringify({ start, bucketMs, buckets, bytes }) + '\n');
    sock.end();
    server.close();
  });
  sock.on('error', () => undefined);
});
server.listen(Number(values.port), () => process.stderr.write('listening\n'));
