// A seeded pseudo-random generator for the simulator: sfc32 (Chris Doty-Humphrey's Small
// Fast Chaotic PRNG, 32-bit), seeded through splitmix32. Same seed, same sequence, on every
// machine: a failing seed replays exactly.

/** The seed tests use unless `SIM_SEED` is set in the environment (replay: `SIM_SEED=1234 npx ava ...`). */
export function seedFromEnv(fallback: number): number {
  const raw = process.env['SIM_SEED'];
  if (raw === undefined || raw === '') return fallback >>> 0;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new RangeError(`SIM_SEED must be an integer, got ${JSON.stringify(raw)}`);
  return n >>> 0;
}

/** splitmix32: spreads a (possibly small or similar) seed over 32 bits. */
function splitmix32(state: number): [next: number, out: number] {
  const s = (state + 0x9e3779b9) | 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [s, z >>> 0];
}

export class Rng {
  /** The seed this generator was made from. */
  readonly seed: number;
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    let s = this.seed;
    let out: number;
    [s, out] = splitmix32(s);
    this.a = out;
    [s, out] = splitmix32(s);
    this.b = out;
    [s, out] = splitmix32(s);
    this.c = out;
    [, out] = splitmix32(s);
    this.d = out;
    // The reference implementation discards the first outputs to mix the state.
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** A uniform float in [a, b). */
  uniform(a: number, b: number): number {
    return a + (b - a) * this.next();
  }

  /** True with probability `p`. p <= 0 and p >= 1 are decided without drawing. */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }

  /** A uniform integer in [0, n), for 1 <= n <= 2^32. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An independent generator seeded from this one (one draw), for a separate stream. */
  fork(): Rng {
    return new Rng(this.nextU32());
  }
}
