// What the fuzzer checks after every input it feeds the node under test (issue 12): every packet
// the node emits parses with the project's own codecs, carries right checksums (unless the
// checksum is left partial for the device), and fits the MTU (a TSO super-segment: each segment
// it is cut into); after handleTimeout(now) the next deadline is null or after now.
import type { DeviceOutput, Instant } from '../../src/ip/sansio.js';
import { IpCounters } from '../../src/ip/counters.js';
import { IpPacketInfo, parseIpPacket } from '../../src/ip/packet.js';
import { IPPROTO_TCP } from '../../src/ip/ipv4.js';
import { TCP_FLAG_ACK, TCP_FLAG_RST, TCP_FLAG_SYN, TcpCodecCounters, newTcpRepr, parseTcp } from '../../src/tcp/segment.js';
import { MptcpOptionCounters, parseMptcpOption } from '../../src/mptcp/options.js';
import { deadlineViolation } from '../helpers/invariants.js';

export { deadlineViolation };

/** Checks emitted packets; reuses its parse targets. */
export class OutputChecker {
  private readonly ipCounters = new IpCounters();
  private readonly tcpCounters = new TcpCodecCounters();
  private readonly optCounters = new MptcpOptionCounters();
  private readonly info = new IpPacketInfo();
  private readonly repr = newTcpRepr();

  constructor(readonly mtu: number, readonly headroom = 0) {}

  /** What is wrong with an emitted packet, or null. */
  check(out: DeviceOutput): string | null {
    const pkt = out.buffer.subarray(this.headroom);
    const before = this.ipCounters.snapshot();
    const ip = parseIpPacket(pkt, this.ipCounters, this.info);
    if (!ip) return `an emitted packet does not parse as IP (${diff(before, this.ipCounters.snapshot())}): ${pkt.subarray(0, 64).toString('hex')}`;
    if (ip.end !== pkt.length) return `an emitted packet has ${pkt.length - ip.end} bytes past its IP length`;
    if (ip.version !== out.ipVersion) return `an emitted packet is IPv${ip.version}, said IPv${out.ipVersion}`;
    if (ip.protocol !== IPPROTO_TCP) return null;
    if (out.gsoSize > 0) {
      // a TSO super-segment: every segment the device cuts from it fits
      if (out.headerLen + out.gsoSize > this.mtu) return `a super-segment cut at ${out.gsoSize} bytes makes ${out.headerLen + out.gsoSize}-byte packets, over the MTU ${this.mtu}`;
    } else if (pkt.length > this.mtu) {
      return `an emitted ${pkt.length}-byte packet is over the MTU ${this.mtu}`;
    }
    const t0 = this.tcpCounters.snapshot();
    const tcp = parseTcp(ip, this.tcpCounters, { checksum: out.checksumPartial || out.gsoSize > 0 ? 'skip' : 'verify' }, this.repr);
    if (!tcp) return `an emitted segment does not parse as TCP (${diff(t0, this.tcpCounters.snapshot())})`;
    const ctx = { syn: (tcp.flags & TCP_FLAG_SYN) !== 0, ack: (tcp.flags & TCP_FLAG_ACK) !== 0, rst: (tcp.flags & TCP_FLAG_RST) !== 0 };
    for (const raw of tcp.options.mptcp ?? []) {
      const o0 = this.optCounters.snapshot();
      if (!parseMptcpOption(raw, ctx, this.optCounters)) return `an emitted MPTCP option does not parse (${diff(o0, this.optCounters.snapshot())}): ${raw.toString('hex')}`;
    }
    return null;
  }
}

function diff(a: Record<string, number>, b: Record<string, number>): string {
  return Object.keys(b).filter((k) => b[k] !== a[k]).join(',');
}

/** Every deadline fires work or is cleared (see test/helpers/invariants.ts). */
export function checkDeadline(node: { pollTimeout(): Instant | null }, now: Instant): string | null {
  return deadlineViolation(node, now);
}
