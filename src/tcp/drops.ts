// The drop reasons and decision counters of the TCP segment codec (segment.ts and options.ts
// both count into them; a module of their own keeps the two codecs free of an import cycle).
import { CounterSet } from '../ip/counters.js';

/**
 * Why a TCP segment was dropped. Each is also a counter name of `TcpCodecCounters`, so a check
 * that returns one is counted with `counters.increment(reason)`.
 */
export const TCP_DROP_REASONS = [
  /** Shorter than the 20-byte fixed header. */
  'tcpTruncated',
  /** Data Offset below 5 words, or a header longer than the segment. */
  'tcpBadDataOffset',
  /** An option whose length octet is missing, below 2, or runs past the options area (RFC 9293 MUST-7). */
  'tcpBadOptions',
  /** The checksum, pseudo-header included, does not verify. */
  'tcpBadChecksum',
  /** Handed to the TCP parser although the IP layer says the protocol is not TCP (a bug upstream). */
  'tcpNotTcp',
] as const;

export type TcpDropReason = (typeof TCP_DROP_REASONS)[number];

/** What the codec decided about segments it kept. */
export const TCP_CODEC_DECISIONS = [
  /** A segment parsed without checksum verification, as asked (GSO or checksum-offloaded input whose checksum the kernel owns). */
  'tcpChecksumSkipped',
  /** A Window Scale shift above 14 taken as 14 (RFC 7323 §2.3). */
  'tcpWindowScaleClamped',
  /** A known option (MSS, WS, SACK-Permitted, TS, SACK) with the wrong length, ignored. */
  'tcpOptionBadLength',
  /** An option of a kind we do not implement, ignored (RFC 9293 MUST-6) and passed on in `unknown`. */
  'tcpUnknownOption',
  /** An emitted segment whose SACK blocks did not all fit in the option space: the last ones were left out. */
  'tcpSackBlocksTrimmed',
  /** Segments parsed and kept. */
  'tcpSegmentsParsed',
  /** Segments (or TSO super-segments) written by `emitIpTcp`. */
  'tcpSegmentsEmitted',
] as const;

export const TCP_CODEC_COUNTER_NAMES = [...TCP_DROP_REASONS, ...TCP_CODEC_DECISIONS] as const;

export type TcpCodecCounterName = (typeof TCP_CODEC_COUNTER_NAMES)[number];

/** The counters of the TCP segment codec. */
export class TcpCodecCounters extends CounterSet<TcpCodecCounterName> {
  constructor() {
    super(TCP_CODEC_COUNTER_NAMES);
  }
}

const TCP_DROP_REASON_SET: ReadonlySet<string> = new Set(TCP_DROP_REASONS);

/** True when `x` (e.g. the result of `TcpPacket.check`) is a drop reason rather than a view. */
export function isTcpDropReason(x: unknown): x is TcpDropReason {
  return typeof x === 'string' && TCP_DROP_REASON_SET.has(x);
}

