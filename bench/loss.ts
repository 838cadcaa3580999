// bench/loss: goodput under random loss on the two-link test bed (scripts/testbed.sh --loss, both
// links, both directions), the kernel's own MPTCP client (`mptcpize run iperf3`) against plain
// iperf3 through `mptun up`, alternating in the same run (the machine is shared and noisy:
// compare within a run). With --rate 0 the links are unshaped. Prints JSON: medians, every run,
// the ratio, and mptun's loss-recovery counters (RTOs, retransmissions, RACK, undo) of the last run.
//
//   sudo node dist/bench/loss.js [--rate 100] [--loss 1] [--seconds 10] [--runs 3] [--reverse] [--mptun-args='--congestion-control cubic']
import { parseArgs } from 'node:util';
import { median, TestBed, type BedTopology, type Throughput } from '../src/cli/bedrun.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '100' },
    loss: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
    reverse: { type: 'boolean', default: false },
    prefix: { type: 'string', default: 'mptbloss' },
    'mptun-args': { type: 'string', default: '' },
  },
});
const rate = Number(values.rate);
const loss = Number(values.loss);
const seconds = Number(values.seconds);
const runs = Number(values.runs);
const reverse = values.reverse!;
const bed = new TestBed(values.prefix!);
const log = (s: string) => process.stderr.write(`bench/loss: ${s}\n`);

process.once('SIGINT', () => void bed.down().finally(() => process.exit(130)));
try {
  await bed.run('up', '--rate', String(rate), '--loss', String(loss));
  bed.topo = Object.fromEntries((await bed.run('env')).trim().split('\n').map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1).replace(/^'|'$/g, '')];
  })) as unknown as BedTopology;
  await bed.run('server-start');
  const kernel: Throughput[] = [];
  const mptun: Throughput[] = [];
  let counters: unknown = null;
  for (let i = 0; i < runs; i++) {
    log(`run ${i + 1}/${runs}: kernel MPTCP`);
    kernel.push(await bed.iperf(seconds, { mptcp: true, reverse }));
    log(`run ${i + 1}/${runs}: mptun`);
    await bed.startMptun(values['mptun-args'] ? values['mptun-args'].split(/\s+/) : []);
    try {
      mptun.push(await bed.iperf(seconds, { reverse }));
      counters = await bed.mptunStatus().then((s) => pickRecovery(s)).catch((e: Error) => `status: ${e.message}`);
    } finally {
      await bed.stopMptun();
    }
  }
  const m = (xs: Throughput[]) => +median(xs.map((x) => x.mbit)).toFixed(1);
  console.log(JSON.stringify({
    bench: 'loss',
    direction: reverse ? 'server→client (iperf3 -R)' : 'client→server',
    rateMbitPerLink: rate || 'unshaped',
    lossPercentEachWay: loss,
    seconds,
    runs,
    medianMbit: { kernelMptcp: m(kernel), mptun: m(mptun) },
    mptunVsKernelMptcp: +(m(mptun) / m(kernel)).toFixed(3),
    mptunRecoveryCountersLastRun: counters,
    all: { kernelMptcp: kernel, mptun },
  }, null, 2));
} finally {
  await bed.down();
}

/** The loss-recovery counters out of `mptun status` (wherever the TCP totals sit in it). */
function pickRecovery(status: unknown): Record<string, number> {
  const want = new Set(['rtoTimeouts', 'retransmittedSegments', 'fastRetransmits', 'tailLossProbes', 'tlpRecoveries', 'rackRecoveries',
    'spuriousRetransDetected', 'undoDsack', 'undoEifel', 'undoFrto', 'spuriousRtos', 'dsack', 'rackLost', 'rackLostRetransmits', 'undoCwnd']);
  const out: Record<string, number> = {};
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (typeof x === 'number' && want.has(k)) out[k] = (out[k] ?? 0) + x;
      else walk(x);
    }
  };
  walk(status);
  return out;
}
