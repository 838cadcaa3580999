// Randomness for the stacks (keys, nonces, ephemeral ports): crypto.randomFillSync in blocks,
// handed out in the small pieces the stacks ask for. A connection asks some ten times (its key,
// its subflows' ports and nonces), and a call to the CSPRNG per piece cost some 5 µs each: a
// tenth of the appliance's time on a stream of short connections. No byte is handed out twice.
import { randomFillSync } from 'node:crypto';

const BLOCK = 4096;

/** A `random(n)` for the stacks: n fresh random bytes, each call a Buffer of its own. */
export function pooledRandom(): (n: number) => Buffer {
  const pool = Buffer.allocUnsafeSlow(BLOCK);
  let used = BLOCK;
  return (n) => {
    if (n > BLOCK) return randomFillSync(Buffer.allocUnsafe(n));
    if (used + n > BLOCK) {
      randomFillSync(pool);
      used = 0;
    }
    const out = Buffer.from(pool.subarray(used, used + n));
    used += n;
    return out;
  };
}
