// The packet mover of bench/tun-io: two TUN devices opened by one process, one of them moved
// into a second namespace, and every batch read from one written to the other, unchanged
// (with its virtio-net header when offloads are on). Run in the first namespace.
import { parseArgs } from 'node:util';
import { Tun } from '../src/tun/index.js';
import { configureLink, moveLinkToNetns, MIN_TXQUEUELEN } from '../src/routing/link.js';
import { addRoute } from '../src/routing/route.js';

const { values } = parseArgs({
  options: {
    offload: { type: 'boolean', default: false },
    'peer-ns': { type: 'string' },
    'name-a': { type: 'string', default: 'mptbioA' },
    'name-b': { type: 'string', default: 'mptbioB' },
    'addr-a': { type: 'string', default: '10.250.0.1' },
    'net-b': { type: 'string', default: '10.250.1.0/24' },
  },
});
if (!values['peer-ns']) throw new Error('--peer-ns is required');

const offload = values.offload ?? false;
const a = Tun.open({ name: values['name-a']!, vnetHdr: offload, offload });
const b = Tun.open({ name: values['name-b']!, vnetHdr: offload, offload });
await configureLink(b.name, { mtu: 1500, txqueuelen: MIN_TXQUEUELEN });
await moveLinkToNetns(b.name, `/var/run/netns/${values['peer-ns']}`);
await configureLink(a.name, { addresses: [`${values['addr-a']}/32`], mtu: 1500, txqueuelen: MIN_TXQUEUELEN, up: true });
await addRoute({ dst: values['net-b']!, dev: a.name });

let short = 0;
a.start((batch) => {
  const n = b.writeBatch(batch.arena, batch.offsets, batch.lengths, batch.count);
  if (n < batch.count) short += batch.count - n;
});
b.start((batch) => {
  const n = a.writeBatch(batch.arena, batch.offsets, batch.lengths, batch.count);
  if (n < batch.count) short += batch.count - n;
});
process.stdout.write('ready\n');

const report = () => {
  process.stdout.write(JSON.stringify({ a: a.stats(), b: b.stats(), shortWrites: short }) + '\n');
};
process.stdin.on('data', (d) => {
  if (d.toString().includes('stats')) report();
});
process.on('SIGTERM', () => {
  report();
  a.close();
  b.close();
  process.exit(0);
});
