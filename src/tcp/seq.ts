// 32-bit TCP sequence arithmetic (RFC 9293 §3.4, "all arithmetic dealing with sequence numbers
// must be performed modulo 2**32"). Sequence numbers are never compared with `<`
// (CONVENTIONS.md 7): a < b means b is ahead of a by less than 2**31.

export type Seq = number;

/** a + n, modulo 2**32. */
export function seqAdd(a: Seq, n: number): Seq {
  return (a + n) >>> 0;
}

/** The signed distance from b to a (a - b), in (-2**31, 2**31]. */
export function seqDiff(a: Seq, b: Seq): number {
  return (a - b) | 0;
}

export function seqLt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) >= 0;
}

export function seqMax(a: Seq, b: Seq): Seq {
  return seqGe(a, b) ? a : b;
}

export function seqMin(a: Seq, b: Seq): Seq {
  return seqLe(a, b) ? a : b;
}

/** lo <= x < hi, in sequence space. */
export function seqInRange(x: Seq, lo: Seq, hi: Seq): boolean {
  return seqLe(lo, x) && seqLt(x, hi);
}
