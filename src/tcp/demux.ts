// Demultiplexing by 4-tuple without a string per packet: a 30-bit hash of the tuple's bytes,
// read where they lie in the packet, picks a bucket of a Map keyed by small integers (V8 keeps
// them unboxed); the bucket's connections are compared field by field. The hash is seeded with
// a secret (the stack's ISN secret), so that nobody outside can aim many tuples at one bucket.
import type { Endpoint } from './connection.js';

/** What the table holds: something with a local and a remote end (a TCP connection). */
export interface Tupled {
  readonly local: Endpoint;
  readonly remote: Endpoint;
}

/** murmur3's 32-bit mixing step. */
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** murmur3's finalizer, cut to 30 bits (a Smi on every V8 build). */
function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & 0x3fffffff;
}

function mixAddress(h: number, b: Uint8Array, off: number, len: number): number {
  for (let i = off; i < off + len; i += 4) h = mix(h, (b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!);
  return h;
}

function sameBytes(a: Uint8Array, b: Uint8Array, off: number, len: number): boolean {
  if (a.length !== len) return false;
  for (let i = 0; i < len; i++) if (a[i] !== b[off + i]) return false;
  return true;
}

/** Connections by (remote address, remote port, local address, local port). */
export class TupleTable<V extends Tupled> {
  private readonly buckets = new Map<number, V | V[]>();
  private count = 0;

  constructor(private readonly seed = 0) {}

  get size(): number {
    return this.count;
  }

  private hash(remote: Uint8Array, rOff: number, local: Uint8Array, lOff: number, len: number, remotePort: number, localPort: number): number {
    let h = mixAddress(this.seed, remote, rOff, len);
    h = mixAddress(h, local, lOff, len);
    return finish(mix(h, (remotePort << 16) | localPort));
  }

  /**
   * The connection of a packet: its source (the remote end) at `srcOff`, its destination (the
   * local end) at `dstOff` in `packet`, `len` bytes each (4 or 16), and its ports.
   */
  lookup(packet: Uint8Array, srcOff: number, dstOff: number, len: number, srcPort: number, dstPort: number): V | undefined {
    const b = this.buckets.get(this.hash(packet, srcOff, packet, dstOff, len, srcPort, dstPort));
    if (b === undefined) return undefined;
    if (!Array.isArray(b)) return matches(b, packet, srcOff, dstOff, len, srcPort, dstPort) ? b : undefined;
    for (const v of b) if (matches(v, packet, srcOff, dstOff, len, srcPort, dstPort)) return v;
    return undefined;
  }

  /** The connection between these two ends. */
  get(remote: Endpoint, local: Endpoint): V | undefined {
    const len = remote.addr.length;
    if (local.addr.length !== len) return undefined;
    const b = this.buckets.get(this.hash(remote.addr, 0, local.addr, 0, len, remote.port, local.port));
    if (b === undefined) return undefined;
    const find = (v: V) => v.remote.port === remote.port && v.local.port === local.port && sameBytes(v.remote.addr, remote.addr, 0, len) && sameBytes(v.local.addr, local.addr, 0, len);
    if (!Array.isArray(b)) return find(b) ? b : undefined;
    return b.find(find);
  }

  /** Adds a connection (its tuple must not be in the table: see `get`). */
  add(v: V): void {
    const k = this.keyOf(v);
    const b = this.buckets.get(k);
    if (b === undefined) this.buckets.set(k, v);
    else if (Array.isArray(b)) b.push(v);
    else this.buckets.set(k, [b, v]);
    this.count++;
  }

  /** Removes this very connection; false when it is not in the table. */
  delete(v: V): boolean {
    const k = this.keyOf(v);
    const b = this.buckets.get(k);
    if (b === undefined) return false;
    if (!Array.isArray(b)) {
      if (b !== v) return false;
      this.buckets.delete(k);
    } else {
      const i = b.indexOf(v);
      if (i < 0) return false;
      b.splice(i, 1);
      if (b.length === 1) this.buckets.set(k, b[0]!);
    }
    this.count--;
    return true;
  }

  *values(): IterableIterator<V> {
    for (const b of this.buckets.values()) {
      if (Array.isArray(b)) yield* b;
      else yield b;
    }
  }

  private keyOf(v: V): number {
    return this.hash(v.remote.addr, 0, v.local.addr, 0, v.remote.addr.length, v.remote.port, v.local.port);
  }
}

function matches(v: Tupled, p: Uint8Array, srcOff: number, dstOff: number, len: number, srcPort: number, dstPort: number): boolean {
  return v.remote.port === srcPort && v.local.port === dstPort && sameBytes(v.remote.addr, p, srcOff, len) && sameBytes(v.local.addr, p, dstOff, len);
}
