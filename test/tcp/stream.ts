// A seeded byte stream that is cheap to make at gigabytes: a 1 MiB pseudo-random block, each
// copy stamped with its index, so no two blocks are the same. Both ends of an interop test
// can make it and hash it.
import { createHash, type Hash } from 'node:crypto';

const BLOCK = 1 << 20;

export class StreamSource {
  private readonly block: Buffer;
  private offset = 0;
  private readonly hash: Hash = createHash('sha256');
  constructor(readonly total: number, seed: number) {
    this.block = Buffer.alloc(BLOCK);
    let x = (seed * 2654435761) >>> 0 || 1;
    for (let i = 0; i < BLOCK; i += 4) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      this.block.writeUInt32LE(x, i);
    }
  }
  get done(): boolean {
    return this.offset >= this.total;
  }
  /** The next piece (a fresh Buffer the caller may keep), or null at the end. */
  next(max: number): Buffer | null {
    if (this.offset >= this.total) return null;
    const inBlock = this.offset % BLOCK;
    const len = Math.min(max, BLOCK - inBlock, this.total - this.offset);
    const out = Buffer.from(this.block.subarray(inBlock, inBlock + len));
    if (inBlock === 0 && len >= 8) out.writeDoubleLE(this.offset / BLOCK, 0);
    this.hash.update(out);
    this.offset += len;
    return out;
  }
  digest(): string {
    return this.hash.copy().digest('hex');
  }
}
