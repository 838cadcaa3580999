// TCP options (RFC 9293 §3.1 and §3.2): the option kinds a TCP endpoint of ours speaks —
// Maximum Segment Size (RFC 9293 §3.2, RFC 6691), Window Scale and Timestamps (RFC 7323),
// SACK-Permitted and SACK (RFC 2018) — and the MPTCP option (RFC 8684, kind 30), which this
// codec passes through unparsed to the MPTCP layer. A plain representation (`TcpOptions`) with
// `parseOptions`, `optionsLen` and `emitOptions` (CONVENTIONS.md 1).
//
// RFC 9293 §3.1: "Options may occupy space at the end of the TCP header and are a multiple of
// 8 bits in length. All options are included in the checksum. An option may begin on any octet
// boundary. There are two cases for the format of an option:
//   Case 1: A single octet of option-kind.
//   Case 2: An octet of option-kind (Kind), an octet of option-length, and the actual
//   option-data octets.
// The option-length counts the two octets of option-kind and option-length as well as the
// option-data octets."

import { readU16, readU32, writeU16, writeU32 } from '../ip/bytes.js';
import type { Seq } from './seq.js';
import type { TcpCodecCounters, TcpDropReason } from './drops.js';

// Option kinds (RFC 9293 §3.2 and the IANA "TCP Option Kind Numbers" registry).
/** RFC 9293 §3.2: "End of Option List ... Kind: 0". Ends the list; what follows is padding. */
export const TCP_OPT_EOL = 0;
/** RFC 9293 §3.2: "No-Operation ... Kind: 1". "may be used between options, for example, to align the beginning of a subsequent option on a word boundary." */
export const TCP_OPT_NOP = 1;
/** RFC 9293 §3.2: "Maximum Segment Size ... Kind: 2 Length: 4". */
export const TCP_OPT_MSS = 2;
/** RFC 7323 §2.2: "Window Scale option (WSopt): Kind: 3 Length: 3 bytes". */
export const TCP_OPT_WINDOW_SCALE = 3;
/** RFC 2018 §2: "Sack-Permitted Option: Kind: 4 Length: 2". */
export const TCP_OPT_SACK_PERMITTED = 4;
/** RFC 2018 §3: "Sack Option Format: Kind: 5 Length: Variable". */
export const TCP_OPT_SACK = 5;
/** RFC 7323 §3.2: "Timestamps option (TSopt): Kind: 8 Length: 10 bytes". */
export const TCP_OPT_TIMESTAMPS = 8;
/** RFC 8684 §3: MPTCP signals all its operations in one TCP option kind, 30, with a subtype in its first data octet. */
export const TCP_OPT_MPTCP = 30;

// Option lengths (the option-length octet: kind and length octets included).
export const TCP_OPTLEN_MSS = 4;
export const TCP_OPTLEN_WINDOW_SCALE = 3;
export const TCP_OPTLEN_SACK_PERMITTED = 2;
export const TCP_OPTLEN_TIMESTAMPS = 10;
/** RFC 2018 §3: "A SACK option that specifies n blocks will have a length of 8*n+2 bytes". */
export const TCP_OPTLEN_SACK_BASE = 2;
export const TCP_OPTLEN_SACK_PER_BLOCK = 8;
/** Kind and length octets: the least an option with a length field can be. */
export const TCP_OPTLEN_MIN = 2;

/**
 * RFC 9293 §3.1: "Data Offset (DOffset): 4 bits" counts 32-bit words, so the header is at most
 * 15 words = 60 bytes, 20 of which are fixed: 40 bytes of options.
 */
export const TCP_MAX_OPTIONS_LEN = 40;

/**
 * RFC 7323 §2.3: "If a Window Scale option is received with a shift.cnt value larger than 14,
 * the TCP SHOULD log the error but MUST use 14 instead of the specified value."
 */
export const TCP_MAX_WINDOW_SCALE = 14;

/**
 * The bytes each option takes as Linux writes it (`tcp_options_write`), NOP padding included,
 * each a multiple of 4 so that every option after it stays word-aligned:
 *   MSS                          02 04 mm mm
 *   SACK-Permitted + Timestamps  04 02 08 0a vvvvvvvv eeeeeeee   (on a SYN that offers both)
 *   Timestamps                   01 01 08 0a vvvvvvvv eeeeeeee
 *   SACK-Permitted alone         01 01 04 02
 *   Window Scale                 01 03 03 ss
 *   SACK, n blocks               01 01 05 (2+8n) blocks...
 */
export const TCP_OPTLEN_MSS_ALIGNED = 4;
export const TCP_OPTLEN_TIMESTAMPS_ALIGNED = 12;
export const TCP_OPTLEN_SACK_PERMITTED_ALIGNED = 4;
export const TCP_OPTLEN_WINDOW_SCALE_ALIGNED = 4;
export const TCP_OPTLEN_SACK_ALIGNED_BASE = 4;

/**
 * RFC 2018 §3: "the 40 bytes available for TCP options can specify a maximum of 4 blocks. It is
 * expected that SACK will often be used in conjunction with the Timestamp option ... thus a
 * maximum of 3 SACK blocks will be allowed in this case."
 */
export const TCP_MAX_SACK_BLOCKS = 4;

/**
 * RFC 2018 §3: "Left Edge of Block: This is the first sequence number of this block. Right
 * Edge of Block: This is the sequence number immediately following the last sequence number of
 * this block."
 */
export interface SackBlock {
  start: Seq;
  end: Seq;
}

/** RFC 7323 §3.2: "TSval (Timestamp Value) ... TSecr (Timestamp Echo Reply)". */
export interface TcpTimestamps {
  tsVal: number;
  tsEcr: number;
}

/** An option of a kind this codec does not interpret: its kind and the octets after the length octet. */
export interface UnknownTcpOption {
  kind: number;
  data: Buffer;
}

/**
 * The options of one segment. A field that is `undefined` is an option that is absent.
 *
 * `mptcp` holds each MPTCP option (kind 30) as its raw bytes, kind and length octets included,
 * for the MPTCP layer to parse (a view into the segment on parse). `unknown` holds the options
 * of other kinds that nobody here interprets (RFC 9293 §3.2, MUST-6: "A TCP implementation
 * MUST ignore without error any TCP option it does not implement, assuming that the option has
 * a length field"): kept so that a relay or a test can see them and emit them again.
 *
 * Lists may also be empty arrays, which mean the same as `undefined` (a reused output object
 * keeps its arrays, emptied, so that parsing into it does not allocate them again).
 */
export interface TcpOptions {
  mss?: number;
  windowScale?: number;
  sackPermitted?: boolean;
  sackBlocks?: SackBlock[];
  timestamps?: TcpTimestamps;
  mptcp?: Buffer[];
  unknown?: UnknownTcpOption[];
}

/** An options object with every field present and absent (one shape for V8, fit to reuse as a parse target). */
export function newTcpOptions(): TcpOptions {
  return {
    mss: undefined,
    windowScale: undefined,
    sackPermitted: undefined,
    sackBlocks: undefined,
    timestamps: undefined,
    mptcp: undefined,
    unknown: undefined,
  };
}

// Parsing.

/**
 * Walks the option TLVs in `buf[start..end)` and says whether they are well formed: every
 * option of Case 2 has its length octet, a length of at least 2, and ends within the area.
 * Stops at End of Option List (RFC 9293 §3.1: "The content of the header beyond the End of
 * Option List Option MUST be header padding of zeros"; padding is not options, so it is not
 * walked). Never throws, never allocates.
 */
export function optionsWellFormed(buf: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const kind = buf[i];
    if (kind === TCP_OPT_EOL) return true;
    if (kind === TCP_OPT_NOP) {
      i += 1;
      continue;
    }
    if (i + 1 >= end) return false;
    const len = buf[i + 1];
    if (len < TCP_OPTLEN_MIN || i + len > end) return false;
    i += len;
  }
  return true;
}

/**
 * Parses the options in `buf[start..end)` into `out`. Returns `'tcpBadOptions'` when the list
 * is malformed, `null` otherwise. Never throws; allocates nothing for a segment whose options
 * are MSS, Window Scale, SACK-Permitted, Timestamps and SACK when `out` is reused (a Buffer view
 * per MPTCP or unknown option, and SACK block objects beyond those `out` already holds).
 *
 * Every field of `out` is overwritten: absent options become `undefined`, lists it already has
 * are emptied and refilled in place (their block objects reused), so what it held before is
 * gone — copy what must outlive the next parse into the same object. On failure `out` holds a
 * partial result that must not be used.
 *
 * Malformed lists (RFC 9293 §3.2, MUST-7: "A TCP implementation MUST be prepared to handle an
 * illegal option length (e.g., zero); a suggested procedure is to reset the connection and log
 * the error cause"): a length octet below 2, an option that runs past the options area, or a
 * kind octet with no room for its length octet make the segment a drop (`tcpBadOptions`).
 * Linux's `tcp_parse_options` instead stops reading the options and keeps the segment; a
 * segment that lies about its own layout is not one we want to act on.
 *
 * A well-formed option of a known kind but the wrong length (an MSS of 3 bytes) is ignored and
 * counted (`tcpOptionBadLength`), as Linux ignores it.
 */
export function parseOptionsAt(
  buf: Buffer,
  start: number,
  end: number,
  out: TcpOptions,
  counters?: TcpCodecCounters,
): TcpDropReason | null {
  out.mss = undefined;
  out.windowScale = undefined;
  out.sackPermitted = undefined;
  let sackCount = 0;
  let sawTimestamps = false;
  if (out.mptcp !== undefined) out.mptcp.length = 0;
  if (out.unknown !== undefined) out.unknown.length = 0;

  let i = start;
  while (i < end) {
    const kind = buf[i];
    // RFC 9293 §3.2: "This option code indicates the end of the option list."
    if (kind === TCP_OPT_EOL) break;
    if (kind === TCP_OPT_NOP) {
      i += 1;
      continue;
    }
    // RFC 9293 §3.2 (MUST-68): "TCP options except End of Option List Option (EOL) and
    // No-Operation (NOP) MUST have length fields".
    if (i + 1 >= end) return 'tcpBadOptions';
    const len = buf[i + 1];
    if (len < TCP_OPTLEN_MIN || i + len > end) return 'tcpBadOptions';

    switch (kind) {
      case TCP_OPT_MSS:
        // RFC 9293 §3.2: "Maximum Segment Size Option Data: 16 bits".
        if (len === TCP_OPTLEN_MSS) out.mss = readU16(buf, i + 2);
        else counters?.increment('tcpOptionBadLength');
        break;
      case TCP_OPT_WINDOW_SCALE:
        if (len === TCP_OPTLEN_WINDOW_SCALE) {
          let shift = buf[i + 2];
          // RFC 7323 §2.3: "If a Window Scale option is received with a shift.cnt value larger
          // than 14, the TCP SHOULD log the error but MUST use 14 instead of the specified value."
          if (shift > TCP_MAX_WINDOW_SCALE) {
            shift = TCP_MAX_WINDOW_SCALE;
            counters?.increment('tcpWindowScaleClamped');
          }
          out.windowScale = shift;
        } else {
          counters?.increment('tcpOptionBadLength');
        }
        break;
      case TCP_OPT_SACK_PERMITTED:
        if (len === TCP_OPTLEN_SACK_PERMITTED) out.sackPermitted = true;
        else counters?.increment('tcpOptionBadLength');
        break;
      case TCP_OPT_TIMESTAMPS:
        if (len === TCP_OPTLEN_TIMESTAMPS) {
          // RFC 7323 §3.2: "The Timestamps option carries two 4-byte timestamp fields."
          const ts = out.timestamps ?? (out.timestamps = { tsVal: 0, tsEcr: 0 });
          ts.tsVal = readU32(buf, i + 2);
          ts.tsEcr = readU32(buf, i + 6);
          sawTimestamps = true;
        } else {
          counters?.increment('tcpOptionBadLength');
        }
        break;
      case TCP_OPT_SACK: {
        // RFC 2018 §3: "A SACK option that specifies n blocks will have a length of 8*n+2 bytes".
        const blocksLen = len - TCP_OPTLEN_SACK_BASE;
        if (blocksLen < TCP_OPTLEN_SACK_PER_BLOCK || blocksLen % TCP_OPTLEN_SACK_PER_BLOCK !== 0) {
          counters?.increment('tcpOptionBadLength');
          break;
        }
        const blocks = out.sackBlocks ?? (out.sackBlocks = []);
        sackCount = blocksLen / TCP_OPTLEN_SACK_PER_BLOCK;
        for (let b = 0, p = i + TCP_OPTLEN_SACK_BASE; b < sackCount; b++, p += TCP_OPTLEN_SACK_PER_BLOCK) {
          const block = blocks[b];
          if (block === undefined) {
            blocks.push({ start: readU32(buf, p), end: readU32(buf, p + 4) });
          } else {
            block.start = readU32(buf, p);
            block.end = readU32(buf, p + 4);
          }
        }
        break;
      }
      case TCP_OPT_MPTCP:
        (out.mptcp ?? (out.mptcp = [])).push(buf.subarray(i, i + len));
        break;
      default:
        // RFC 9293 §3.2 (MUST-6): "A TCP implementation MUST ignore without error any TCP
        // option it does not implement, assuming that the option has a length field."
        counters?.increment('tcpUnknownOption');
        (out.unknown ?? (out.unknown = [])).push({ kind, data: buf.subarray(i + 2, i + len) });
        break;
    }
    i += len;
  }

  if (!sawTimestamps) out.timestamps = undefined;
  if (out.sackBlocks !== undefined) out.sackBlocks.length = sackCount;
  return null;
}

/** Parses an options area (`TcpPacket.options`, or any Buffer of option bytes) into `out`; see `parseOptionsAt`. */
export function parseOptions(area: Buffer, out: TcpOptions, counters?: TcpCodecCounters): TcpDropReason | null {
  return parseOptionsAt(area, 0, area.length, out, counters);
}

// Sizing.

/** An option's length with the NOPs that pad it to a 32-bit word, as Linux writes options (see above). */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * Bytes of every option but the SACK blocks, padded as `emitOptions` writes them. An MPTCP or
 * unknown option is followed by NOPs to the next multiple of 4, as Linux pads its MPTCP options
 * (`mptcp_established_options`: `*size = ALIGN(dss_size, 4)`), so each option that follows
 * starts on a word.
 */
function lenWithoutSack(o: TcpOptions): number {
  let len = 0;
  if (o.mss !== undefined) len += TCP_OPTLEN_MSS_ALIGNED;
  if (o.timestamps !== undefined) len += TCP_OPTLEN_TIMESTAMPS_ALIGNED;
  else if (o.sackPermitted === true) len += TCP_OPTLEN_SACK_PERMITTED_ALIGNED;
  if (o.windowScale !== undefined) len += TCP_OPTLEN_WINDOW_SCALE_ALIGNED;
  const unknown = o.unknown;
  if (unknown !== undefined) for (let i = 0; i < unknown.length; i++) len += align4(TCP_OPTLEN_MIN + unknown[i].data.length);
  const mptcp = o.mptcp;
  if (mptcp !== undefined) for (let i = 0; i < mptcp.length; i++) len += align4(mptcp[i].length);
  return len;
}

/**
 * How many of `o.sackBlocks` `emitOptions` writes: all of them when they fit in the 40 bytes
 * left by the other options, else as many as fit (RFC 2018 §3: "a maximum of 3 SACK blocks will
 * be allowed" with timestamps). The first blocks are kept: RFC 2018 §4 puts the most recently
 * received block first ("The first SACK block ... MUST specify the contiguous block of data
 * containing the segment which triggered this ACK").
 */
export function sackBlocksThatFit(o: TcpOptions): number {
  const want = o.sackBlocks?.length ?? 0;
  if (want === 0) return 0;
  const room = TCP_MAX_OPTIONS_LEN - lenWithoutSack(o) - TCP_OPTLEN_SACK_ALIGNED_BASE;
  const fit = room < 0 ? 0 : Math.floor(room / TCP_OPTLEN_SACK_PER_BLOCK);
  return want < fit ? want : fit;
}

/**
 * Bytes of options that `emitOptions` writes for `o`: a multiple of 4 (RFC 9293 §3.1: "The TCP
 * header (even one including options) is an integer multiple of 32 bits long"), SACK blocks
 * trimmed to what fits. More than 40 only when the options other than SACK exceed the limit,
 * which `emitOptions` refuses.
 */
export function optionsLen(o: TcpOptions): number {
  const sack = sackBlocksThatFit(o);
  return lenWithoutSack(o) + (sack > 0 ? TCP_OPTLEN_SACK_ALIGNED_BASE + sack * TCP_OPTLEN_SACK_PER_BLOCK : 0);
}

/**
 * The option bytes left for the MPTCP layer once the other options of `o` (MPTCP options it
 * already holds included) are written: its options, each padded to a multiple of 4, must fit
 * in this. SACK blocks do not count: like Linux, which sizes the MPTCP options before the SACK
 * blocks (`tcp_established_options`), SACK blocks take whatever room is left after them.
 */
export function optionSpaceLeft(o: TcpOptions): number {
  const left = TCP_MAX_OPTIONS_LEN - lenWithoutSack(o);
  return left > 0 ? left : 0;
}

// Emitting.

/**
 * Writes the options of `o` at `buf[offset..]` and returns the number of bytes written
 * (`optionsLen(o)`). The order is Linux's (`tcp_options_write`), so that our segments look
 * like the kernel's, byte for byte:
 *   MSS; Timestamps (behind SACK-Permitted when both are present, as on a SYN, else behind two
 *   NOPs); SACK-Permitted alone (behind two NOPs) when there are no timestamps; Window Scale
 *   (behind a NOP); SACK blocks (behind two NOPs); options of unknown kinds; MPTCP options last.
 * MPTCP and unknown options are each followed by NOPs to a multiple of 4 bytes.
 *
 * SACK blocks that do not fit are left out and counted (`tcpSackBlocksTrimmed`). Values are
 * written as given (a window scale above 14 is the caller's to avoid). Throws a RangeError only
 * on a programming error: options other than SACK that exceed 40 bytes (size MPTCP options
 * with `optionSpaceLeft`), a buffer too small (size it with `optionsLen`), or an MPTCP option
 * whose first two octets are not kind 30 and its length.
 */
export function emitOptions(o: TcpOptions, buf: Buffer, offset: number, counters?: TcpCodecCounters): number {
  const base = lenWithoutSack(o);
  if (base > TCP_MAX_OPTIONS_LEN) {
    throw new RangeError(`TCP options of ${base} bytes exceed the ${TCP_MAX_OPTIONS_LEN}-byte limit of the header`);
  }
  const sack = sackBlocksThatFit(o);
  const total = base + (sack > 0 ? TCP_OPTLEN_SACK_ALIGNED_BASE + sack * TCP_OPTLEN_SACK_PER_BLOCK : 0);
  if (offset + total > buf.length) {
    throw new RangeError(`TCP options need ${total} bytes at offset ${offset}, the buffer has ${buf.length}`);
  }
  let p = offset;

  if (o.mss !== undefined) {
    buf[p] = TCP_OPT_MSS;
    buf[p + 1] = TCP_OPTLEN_MSS;
    writeU16(buf, p + 2, o.mss);
    p += TCP_OPTLEN_MSS_ALIGNED;
  }
  const ts = o.timestamps;
  if (ts !== undefined) {
    if (o.sackPermitted === true) {
      buf[p] = TCP_OPT_SACK_PERMITTED;
      buf[p + 1] = TCP_OPTLEN_SACK_PERMITTED;
    } else {
      buf[p] = TCP_OPT_NOP;
      buf[p + 1] = TCP_OPT_NOP;
    }
    buf[p + 2] = TCP_OPT_TIMESTAMPS;
    buf[p + 3] = TCP_OPTLEN_TIMESTAMPS;
    writeU32(buf, p + 4, ts.tsVal);
    writeU32(buf, p + 8, ts.tsEcr);
    p += TCP_OPTLEN_TIMESTAMPS_ALIGNED;
  } else if (o.sackPermitted === true) {
    buf[p] = TCP_OPT_NOP;
    buf[p + 1] = TCP_OPT_NOP;
    buf[p + 2] = TCP_OPT_SACK_PERMITTED;
    buf[p + 3] = TCP_OPTLEN_SACK_PERMITTED;
    p += TCP_OPTLEN_SACK_PERMITTED_ALIGNED;
  }
  if (o.windowScale !== undefined) {
    buf[p] = TCP_OPT_NOP;
    buf[p + 1] = TCP_OPT_WINDOW_SCALE;
    buf[p + 2] = TCP_OPTLEN_WINDOW_SCALE;
    buf[p + 3] = o.windowScale & 0xff;
    p += TCP_OPTLEN_WINDOW_SCALE_ALIGNED;
  }
  const blocks = o.sackBlocks;
  if (sack > 0 && blocks !== undefined) {
    if (sack < blocks.length) counters?.increment('tcpSackBlocksTrimmed');
    buf[p] = TCP_OPT_NOP;
    buf[p + 1] = TCP_OPT_NOP;
    buf[p + 2] = TCP_OPT_SACK;
    buf[p + 3] = TCP_OPTLEN_SACK_BASE + sack * TCP_OPTLEN_SACK_PER_BLOCK;
    p += TCP_OPTLEN_SACK_ALIGNED_BASE;
    for (let b = 0; b < sack; b++, p += TCP_OPTLEN_SACK_PER_BLOCK) {
      writeU32(buf, p, blocks[b].start);
      writeU32(buf, p + 4, blocks[b].end);
    }
  } else if (blocks !== undefined && blocks.length > 0) {
    counters?.increment('tcpSackBlocksTrimmed');
  }
  const unknown = o.unknown;
  if (unknown !== undefined) {
    for (let u = 0; u < unknown.length; u++) {
      const { kind, data } = unknown[u];
      buf[p] = kind;
      buf[p + 1] = TCP_OPTLEN_MIN + data.length;
      buf.set(data, p + 2);
      p = padWithNops(buf, p + TCP_OPTLEN_MIN + data.length, offset);
    }
  }
  const mptcp = o.mptcp;
  if (mptcp !== undefined) {
    for (let m = 0; m < mptcp.length; m++) {
      const raw = mptcp[m];
      // The MPTCP layer hands over whole options: kind 30 and a length octet that says their size.
      if (raw.length < TCP_OPTLEN_MIN || raw[0] !== TCP_OPT_MPTCP || raw[1] !== raw.length) {
        throw new RangeError(`an MPTCP option must start with kind 30 and its own length, got ${raw.subarray(0, 2).toString('hex')} for ${raw.length} bytes`);
      }
      buf.set(raw, p);
      p = padWithNops(buf, p + raw.length, offset);
    }
  }
  return p - offset;
}

/** The representation's `parse`, `bufferLen` and `emit`, in the manner of `Ipv4Repr` (CONVENTIONS.md 1). */
export const TcpOptions = {
  parse: parseOptions,
  bufferLen: optionsLen,
  emit: emitOptions,
  spaceLeft: optionSpaceLeft,
};

/** Writes NOPs from `p` up to the next multiple of 4 counted from `origin`; returns the new position. */
function padWithNops(buf: Buffer, p: number, origin: number): number {
  while (((p - origin) & 3) !== 0) buf[p++] = TCP_OPT_NOP;
  return p;
}
