// `mptun demo`: the main job on the embedded default.
//
// Builds the two-link test bed in network namespaces (scripts/testbed.sh, links shaped to
// 100 Mbit/s each, the kernel's MPTCP iperf3 server), measures one link alone (plain kernel
// TCP) and the kernel's own MPTCP client, then runs `mptun up` in the client namespace and
// plain iperf3 through it, both ways, and reports per-link and total throughput. The bed is
// torn down at the end, also on Ctrl-C or an error.
import { parseArgs } from 'node:util';
import { TestBed, type Throughput } from './bedrun.js';

export async function runDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      keep: { type: 'boolean', default: false },
      rate: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '8' },
      prefix: { type: 'string', default: 'mptdemo' },
      json: { type: 'boolean', default: false },
    },
  });
  if (process.getuid?.() !== 0) throw new Error('the demo builds network namespaces: run it as root (sudo)');
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  if (!(rate > 0) || !(seconds > 0)) throw new Error('--rate and --seconds must be positive numbers');
  const bed = new TestBed(values.prefix!);
  const log = (s: string) => console.error(`demo: ${s}`);
  const teardown = async () => {
    if (values.keep) await bed.stopMptun().catch(() => undefined);
    else await bed.down();
  };
  const onSignal = () => { void teardown().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log(`building the two-link test bed (prefix ${bed.prefix}, ${rate} Mbit/s per link, kernel MPTCP iperf3 server)`);
    await bed.up(rate);
    log(`one link alone: kernel TCP over link 1, ${seconds} s`);
    const oneLink = await bed.iperf(seconds);
    log(`the kernel's own MPTCP client over both links, ${seconds} s`);
    const kernel = await bed.iperf(seconds, { mptcp: true });
    log('mptun up in the client namespace');
    await bed.startMptun();
    log(`plain iperf3 through mptun, client → server, ${seconds} s`);
    const up = await bed.iperf(seconds);
    log(`plain iperf3 through mptun, server → client (-R), ${seconds} s`);
    const down = await bed.iperf(seconds, { reverse: true });
    const status = await bed.mptunStatus();
    await bed.stopMptun();

    const sum = 2 * rate;
    const report = {
      testbed: { links: 2, rateMbitPerLink: rate, seconds },
      oneLinkKernelTcp: oneLink,
      kernelMptcp: kernel,
      mptun: { upload: up, download: down, paths: status.paths.map((p) => ({ iface: p.iface, bytesOut: p.bytesOut, bytesIn: p.bytesIn })), relay: status.counters.relay },
      ratios: {
        mptunOfLinkSum: +(up.mbit / sum).toFixed(3),
        mptunVsKernelMptcp: +(up.mbit / kernel.mbit).toFixed(3),
        mptunVsOneLink: +(up.mbit / oneLink.mbit).toFixed(2),
      },
    };
    if (values.json) {
      console.log(JSON.stringify(report, null, 2));
    } else {
      const row = (name: string, t: Throughput) =>
        `  ${name.padEnd(34)} ${t.mbit.toFixed(1).padStart(6)} Mbit/s   link 1 ${t.perLinkMbit[0]!.toFixed(1).padStart(6)}   link 2 ${t.perLinkMbit[1]!.toFixed(1).padStart(6)}`;
      console.log([
        `mptun demo: two links of ${rate} Mbit/s each (sum ${sum}), iperf3 for ${seconds} s each`,
        '  (goodput as iperf3 received it; per link: bytes on the wire, Mbit/s)',
        row('one link alone (kernel TCP)', oneLink),
        row('kernel MPTCP (mptcpize iperf3)', kernel),
        row('mptun, plain iperf3, upload', up),
        row('mptun, plain iperf3, download (-R)', down),
        `  mptun: ${(report.ratios.mptunOfLinkSum * 100).toFixed(1)} % of the links' sum, ${report.ratios.mptunVsOneLink}× one link, ${report.ratios.mptunVsKernelMptcp}× the kernel's MPTCP`,
      ].join('\n'));
    }
    const ok = up.mbit > oneLink.mbit * 1.3 && up.perLinkShare.every((s) => s > 0.2);
    log(ok ? 'both links carried the app\'s TCP through mptun' : 'FAILED: mptun did not add the links up');
    return ok ? 0 : 1;
  } finally {
    await teardown();
  }
}
