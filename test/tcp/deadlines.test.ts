// The stack's timer heap (src/tcp/deadlines.ts): each object's one deadline, the earliest read
// at once, the due ones taken in order, moved and removed in place; checked against a plain
// list sorted by deadline over a long random sequence of operations.
import test from 'ava';
import { DeadlineHeap } from '../../src/tcp/deadlines.js';

test('the earliest deadline is on top; the due ones come out in deadline order, the others stay', (t) => {
  const h = new DeadlineHeap<string>();
  t.is(h.peek(), null);
  h.set('rto', 300);
  h.set('delack', 40);
  h.set('timewait', 2000);
  h.set('keepalive', 7200);
  t.is(h.peek(), 40);
  t.is(h.size, 4);
  const due: string[] = [];
  for (let x = h.popDue(2000); x; x = h.popDue(2000)) due.push(x);
  t.deepEqual(due, ['delack', 'rto', 'timewait']);
  t.is(h.peek(), 7200);
  t.is(h.popDue(7199), null);
  t.is(h.size, 1);
});

test('an object has one entry: set again moves it (earlier or later), null removes it', (t) => {
  const h = new DeadlineHeap<string>();
  h.set('a', 100);
  h.set('b', 200);
  h.set('a', 300);
  t.is(h.size, 2);
  t.is(h.peek(), 200);
  t.is(h.get('a'), 300);
  h.set('a', 50);
  t.is(h.peek(), 50);
  h.set('a', null);
  t.is(h.get('a'), null);
  t.is(h.size, 1);
  h.delete('b');
  h.delete('b');
  t.is(h.peek(), null);
  t.is(h.size, 0);
});

test('10 000 random operations agree with a sorted list', (t) => {
  let seed = 12345;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const h = new DeadlineHeap<number>();
  const model = new Map<number, number>();
  let now = 0;
  for (let i = 0; i < 10_000; i++) {
    const op = rand(10);
    const item = rand(500);
    if (op < 6) {
      const at = now + rand(1000);
      h.set(item, at);
      model.set(item, at);
    } else if (op < 7) {
      h.delete(item);
      model.delete(item);
    } else {
      now += rand(50);
      const got: number[] = [];
      for (let x = h.popDue(now); x !== null; x = h.popDue(now)) {
        got.push(model.get(x)!);
        model.delete(x);
      }
      t.true(got.every((at, k) => at <= now && (k === 0 || got[k - 1]! <= at)));
    }
    const min = model.size === 0 ? null : Math.min(...model.values());
    if (h.peek() !== min || h.size !== model.size) {
      t.fail(`after operation ${i}: heap ${h.peek()}/${h.size}, model ${min}/${model.size}`);
      return;
    }
  }
  t.pass();
});
