// Shared by the simulator tests: the seed of each test, printed when it fails so that the
// run replays (`SIM_SEED=<seed> npx ava dist/test/sim/<file>.test.js`).
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { seedFromEnv } from './rng.js';

export interface SimContext {
  seed?: number;
}

export const test = anyTest as TestFn<SimContext>;

test.afterEach.always((t) => {
  if (!t.passed && t.context.seed !== undefined) {
    t.log(`replay with SIM_SEED=${t.context.seed}`);
  }
});

/** The test's seed: SIM_SEED if set, else `fallback`; remembered for the failure report. */
export function useSeed(t: ExecutionContext<SimContext>, fallback: number): number {
  const seed = seedFromEnv(fallback);
  t.context.seed = seed;
  return seed;
}

/** |actual - expected| <= tolerance, with a readable message. */
export function near(t: ExecutionContext<SimContext>, actual: number, expected: number, tolerance = 1e-9, what = 'value'): void {
  t.true(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);
}

/**
 * Asserts that `k` successes out of `n` trials is a plausible draw of Binomial(n, p): within
 * `sigmas` standard deviations of n*p. Deterministic for a seed, but any seed should pass.
 */
export function binomial(t: ExecutionContext<SimContext>, k: number, n: number, p: number, what: string, sigmas = 5): void {
  const mean = n * p;
  const sd = Math.sqrt(n * p * (1 - p));
  t.true(Math.abs(k - mean) <= sigmas * sd, `${what}: ${k} of ${n} is more than ${sigmas} sd (${sd.toFixed(1)}) from ${mean}`);
}
