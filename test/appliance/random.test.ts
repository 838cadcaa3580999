import test from 'ava';
import { pooledRandom } from '../../src/appliance/random.js';

test('pooledRandom: n bytes a call, a Buffer of its own, never the same bytes twice across block refills', (t) => {
  const random = pooledRandom();
  const seen = new Set<string>();
  // 3 blocks' worth of 8-byte keys: a repeat would mean bytes handed out twice
  for (let i = 0; i < 1600; i++) {
    const b = random(8);
    t.is(b.length, 8);
    seen.add(b.toString('hex'));
  }
  t.is(seen.size, 1600);
  const a = random(4);
  const copy = Buffer.from(a);
  random(4);
  t.deepEqual(a, copy, 'a later call does not change what an earlier one gave');
  t.is(random(10000).length, 10000, 'more than a block at once');
  t.is(random(0).length, 0);
});
