import { binomial, test, useSeed } from './helpers.js';
import { Rng } from './rng.js';

const draw = (rng: Rng, n: number): number[] => Array.from({ length: n }, () => rng.nextU32());

test('the same seed gives the same sequence; different seeds differ', (t) => {
  const seed = useSeed(t, 7);
  t.deepEqual(draw(new Rng(seed), 100), draw(new Rng(seed), 100));
  t.notDeepEqual(draw(new Rng(seed), 100), draw(new Rng(seed + 1), 100));
  const forked = new Rng(seed).fork();
  t.notDeepEqual(draw(forked, 100), draw(new Rng(seed), 100));
});

test('next, uniform, int and chance stay in range and are spread', (t) => {
  const rng = new Rng(useSeed(t, 8));
  const N = 20000;
  let sum = 0, heads = 0;
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < N; i++) {
    const x = rng.next();
    t.true(x >= 0 && x < 1);
    sum += x;
    const u = rng.uniform(-3, 5);
    t.true(u >= -3 && u < 5);
    const k = rng.int(10);
    t.true(Number.isInteger(k) && k >= 0 && k < 10);
    buckets[k]!++;
    if (rng.chance(0.3)) heads++;
  }
  t.true(Math.abs(sum / N - 0.5) < 5 * Math.sqrt(1 / 12 / N), `mean ${sum / N}`);
  buckets.forEach((b, i) => binomial(t, b, N, 0.1, `int(10) == ${i}`));
  binomial(t, heads, N, 0.3, 'chance(0.3)');
  t.false(rng.chance(0));
  t.true(rng.chance(1));
});
