import test from 'ava';
import { Fifo, NO_ITEMS } from '../../src/ip/fifo.js';

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

test('some: only the items still queued; a drained queue shares the one frozen empty array and takes pushes again', (t) => {
  const q = new Fifo<number>();
  t.false(q.some(() => true));
  q.push(1);
  q.push(2);
  t.true(q.some((x) => x === 1));
  q.shift();
  t.false(q.some((x) => x === 1), 'taken items are not seen');
  t.true(q.some((x) => x === 2));
  q.shift();
  t.true(Object.isFrozen(NO_ITEMS) && NO_ITEMS.length === 0);
  q.push(3);
  t.is(q.shift(), 3);
  t.is(NO_ITEMS.length, 0, 'the shared array was never written');
});
