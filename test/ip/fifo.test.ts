import test from 'ava';
import { Fifo } from '../../src/ip/fifo.js';

test('items come out in the order they went in, null when empty; pushing after draining starts afresh', (t) => {
  const q = new Fifo<number>();
  t.is(q.shift(), null);
  for (let i = 0; i < 5; i++) q.push(i);
  t.is(q.size, 5);
  t.is(q.shift(), 0);
  t.is(q.shift(), 1);
  q.push(5);
  t.is(q.size, 4);
  const out: number[] = [];
  for (let x = q.shift(); x !== null; x = q.shift()) out.push(x);
  t.deepEqual(out, [2, 3, 4, 5]);
  t.is(q.size, 0);
  q.push(6);
  t.is(q.shift(), 6);
  t.is(q.shift(), null);
});
