// `mptun echo`: the TUN device, its link set up through rtnetlink, and the ICMP/ICMPv6 echo
// responder answering every ping routed into it. The first end-to-end proof of the packet
// path (device → src/ip → device), and a diagnostic: "is mptun's device alive?"
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Tun } from '../tun/index.js';
import { configureLink, MIN_TXQUEUELEN } from '../routing/link.js';
import { addRoute } from '../routing/route.js';
import { EchoResponder } from '../ip/icmp.js';
import { IpCounters } from '../ip/counters.js';

export async function runEcho(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      tun: { type: 'string', default: 'mptun0' },
      address: { type: 'string', multiple: true, default: [] },
      route: { type: 'string', multiple: true, default: [] },
      mtu: { type: 'string', default: '1500' },
    },
  });
  const mtu = Number(values.mtu);
  if (!Number.isInteger(mtu) || mtu < 1280 || mtu > 65535) throw new Error(`--mtu: ${values.mtu} is not an MTU from 1280 to 65535`);

  const tun = Tun.open({ name: values.tun! });
  const counters = new IpCounters();
  const responder = new EchoResponder({ counters });
  const close = (signal: string) => {
    tun.close();
    console.error(`mptun echo: ${signal}: closed ${tun.name}`);
    console.log(JSON.stringify({ device: tun.stats(), ip: counters.nonZero() }));
    process.exit(0);
  };
  process.on('SIGINT', () => close('SIGINT'));
  process.on('SIGTERM', () => close('SIGTERM'));
  try {
    await configureLink(tun.name, { addresses: values.address!, mtu, txqueuelen: MIN_TXQUEUELEN, up: true });
    for (const dst of values.route!) await addRoute({ dst, dev: tun.name });
  } catch (e) {
    tun.close();
    throw e;
  }

  tun.start((batch) => {
    const now = performance.now();
    for (let i = 0; i < batch.count; i++) {
      const off = batch.offsets[i]!;
      const packet = batch.arena.subarray(off, off + batch.lengths[i]!);
      if (!responder.handlePacket(now, packet)) counters.increment('unsupportedProtocol');
    }
    for (let reply = responder.pollTransmit(); reply; reply = responder.pollTransmit()) tun.write(reply);
  });
  console.error(`mptun echo: ${tun.name} up (${values.address!.join(', ') || 'no address'}), routes: ${values.route!.join(', ') || 'none'}; answering pings`);
  console.log('ready');
  return new Promise<number>(() => undefined);
}
