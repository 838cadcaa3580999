// Captured packets in tests, one way: hex (as tshark or tcpdump -x print it, white space
// allowed) to bytes, to the IP layer's view, to the TCP representation, through the codecs of
// src (parseIpPacket, parseTcp), as the stack itself parses them.
import { IpCounters } from '../../src/ip/counters.js';
import { type IpPacketInfo, parseIpPacket } from '../../src/ip/packet.js';
import { parseTcp, TcpCodecCounters, type TcpRepr } from '../../src/tcp/segment.js';

/** Hex, white space allowed, to bytes. */
export function bytes(...hex: string[]): Buffer {
  return Buffer.from(hex.join('').replace(/\s+/g, ''), 'hex');
}

/** The IP layer's view of a captured packet (the fixture must pass the IP checks). */
export function ipOf(hex: string): IpPacketInfo {
  const info = parseIpPacket(bytes(hex), new IpCounters());
  if (info === null) throw new Error('fixture rejected by the IP layer');
  return info;
}

/**
 * A captured packet down to its TCP representation. The checksum is skipped by default: a
 * capture on a veth has the partial checksums of offload.
 */
export function tcpOf(hex: string, checksum: 'verify' | 'skip' = 'skip'): TcpRepr {
  const counters = new TcpCodecCounters();
  const repr = parseTcp(ipOf(hex), counters, { checksum });
  if (repr === null) throw new Error(`fixture dropped by the TCP codec: ${JSON.stringify(counters.nonZero())}`);
  return repr;
}
