// The data sequence space (RFC 8684 §3.3): 64-bit data sequence numbers (DSN), the mappings
// between a subflow's byte stream and the DSN space, and the expansion of 32-bit values.

import { NO_ITEMS } from '../ip/fifo.js';

/** 2^32 and 2^64 as bigints. */
const TWO32 = 1n << 32n;
const MASK64 = (1n << 64n) - 1n;

/**
 * RFC 8684 §3.3.1: "the data sequence number is ... either 4 or 8 octets; when 4 octets are
 * used, ... the lower 32 bits" — expanded here to the 64-bit value closest to `near` (the
 * last value seen in that direction), as Linux's expand_seq does.
 */
export function expandDsn(low32: number, near: bigint): bigint {
  const base = near & ~(TWO32 - 1n);
  let candidate = base | BigInt(low32 >>> 0);
  const diff = candidate - near;
  if (diff > TWO32 / 2n) candidate -= TWO32;
  else if (diff < -(TWO32 / 2n)) candidate += TWO32;
  return candidate & MASK64;
}

export function dsnAdd(a: bigint, n: number | bigint): bigint {
  return (a + BigInt(n)) & MASK64;
}

/** a - b as a number (the caller knows it is small). */
export function dsnDiff(a: bigint, b: bigint): number {
  let d = (a - b) & MASK64;
  if (d >= 1n << 63n) d -= 1n << 64n;
  return Number(d);
}

/**
 * Subflow stream offsets (bytes since the SYN) are kept as plain numbers that never wrap (exact
 * up to 2^53 bytes, 9 PB). On the wire they are 32 bits: RFC 8684 §3.3: "The subflow sequence
 * number ... is the relative subflow sequence number ... 4 octets" and a TCP sequence number is
 * 32 bits; both wrap after 2^32 bytes. These two helpers convert, wrap-aware (CONVENTIONS.md 7).
 */

/** The 32-bit wire value of a stream offset (its low 32 bits). */
export function offsetLow32(offset: number): number {
  return offset >>> 0;
}

/**
 * Expands the low 32 bits of a stream offset to the full offset closest to `near` (an offset
 * known on the same subflow: what was read or written so far), as expandDsn does for the DSN.
 * Valid while the two are less than 2^31 apart (a window, never more).
 */
export function expandOffset(low32: number, near: number): number {
  return near + ((low32 - (near >>> 0)) | 0);
}

/** A mapping: `len` bytes at subflow stream offset `ssn` (bytes since the SYN) carry DSN `dsn`. */
export interface Mapping {
  ssn: number;
  dsn: bigint;
  len: number;
  /** The DSS checksum of the mapping, when checksums are in use (RFC 8684 §3.3.1). */
  csum?: number;
}

/**
 * Mappings in subflow order (ascending `ssn`, contiguous on the sending side). Lookups and
 * pruning are O(log n) / amortized O(1). `ssn` is a full stream offset (never wraps, see
 * expandOffset), so plain comparisons are right here.
 */
export class MappingTable {
  // NO_ITEMS while empty: an idle subflow's tables hold nothing (four per flow)
  private items: Mapping[] = NO_ITEMS;
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  /** Adds a mapping; an identical one (a retransmitted DSS) is ignored. */
  add(m: Mapping): void {
    const last = this.items[this.items.length - 1];
    if (last && this.items.length > this.head) {
      if (last.ssn === m.ssn && last.dsn === m.dsn && last.len === m.len) return;
      if (m.ssn < last.ssn + last.len) {
        // an older or overlapping mapping (retransmission): keep it only if it is new
        if (this.find(m.ssn)) return;
        this.items.push(m);
        this.items.sort((a, b) => a.ssn - b.ssn);
        return;
      }
    }
    if (this.items === NO_ITEMS) this.items = [];
    this.items.push(m);
  }

  /** The mapping that covers subflow offset `ssn`, or undefined. */
  find(ssn: number): Mapping | undefined {
    let lo = this.head;
    let hi = this.items.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const m = this.items[mid]!;
      if (ssn < m.ssn) hi = mid - 1;
      else if (ssn >= m.ssn + m.len) lo = mid + 1;
      else return m;
    }
    return undefined;
  }

  /**
   * Forgets the mappings that end at or before `ssn` (and, with `keep`, only while `keep` says
   * the oldest may go).
   */
  prune(ssn: number, keep?: (m: Mapping) => boolean): void {
    while (this.head < this.items.length && this.items[this.head]!.ssn + this.items[this.head]!.len <= ssn && !keep?.(this.items[this.head]!)) this.head++;
    if (this.head === this.items.length) {
      // all gone: let the array and the mappings behind the head go (an idle subflow holds
      // nothing, not its last 64 mappings)
      if (this.head > 0) this.clear();
    } else if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** Mappings still held (oldest first). */
  all(): Mapping[] {
    return this.items.slice(this.head);
  }

  clear(): void {
    this.items = NO_ITEMS;
    this.head = 0;
  }
}
