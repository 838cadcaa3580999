// Big-endian field access on byte arrays, without bounds-checked Buffer methods and without
// allocation. Callers have checked the length once (the view's `check`).

export function readU16(buf: Uint8Array, offset: number): number {
  return (buf[offset] << 8) | buf[offset + 1];
}

/** Reads a big-endian unsigned 32-bit value (an IPv4 address) without allocating. */
export function readU32(buf: Uint8Array, offset: number): number {
  return ((buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]) >>> 0;
}

export function writeU32(buf: Uint8Array, offset: number, v: number): void {
  buf[offset] = v >>> 24;
  buf[offset + 1] = (v >>> 16) & 0xff;
  buf[offset + 2] = (v >>> 8) & 0xff;
  buf[offset + 3] = v & 0xff;
}

export function writeU16(buf: Uint8Array, offset: number, v: number): void {
  buf[offset] = (v >>> 8) & 0xff;
  buf[offset + 1] = v & 0xff;
}
