// The stack's timers: each object's earliest deadline in one indexed binary min-heap (as
// quinn's endpoint and gVisor's timer queues keep theirs), so that the stack's next deadline
// is read in O(1) and the objects due are taken in O(log n) each. Nothing scans every
// connection on a timer or a tick: a connection held idle, or in TIME-WAIT, costs its slot.
import type { Instant } from '../ip/sansio.js';

/**
 * Objects by deadline: `set(item, at)` puts, moves or (with null) removes an item's one entry;
 * `peek()` the earliest deadline; `popDue(now)` takes the items due. An item's position is kept
 * in a Map, so the items need no field of the heap's own.
 */
export class DeadlineHeap<T> {
  private readonly items: T[] = [];
  private readonly at: number[] = [];
  private readonly pos = new Map<T, number>();

  get size(): number {
    return this.items.length;
  }

  /** The item's deadline in the heap, or null. */
  get(item: T): Instant | null {
    const i = this.pos.get(item);
    return i === undefined ? null : this.at[i]!;
  }

  /** Puts the item at `at` (moves it when it is there; null removes it). */
  set(item: T, at: Instant | null): void {
    const i = this.pos.get(item);
    if (at === null) {
      if (i !== undefined) this.removeAt(i);
      return;
    }
    if (i === undefined) {
      const n = this.items.length;
      this.items.push(item);
      this.at.push(at);
      this.pos.set(item, n);
      this.up(n);
      return;
    }
    const old = this.at[i]!;
    if (old === at) return;
    this.at[i] = at;
    if (at < old) this.up(i);
    else this.down(i);
  }

  delete(item: T): void {
    const i = this.pos.get(item);
    if (i !== undefined) this.removeAt(i);
  }

  /** The earliest deadline, or null when the heap is empty. */
  peek(): Instant | null {
    return this.items.length === 0 ? null : this.at[0]!;
  }

  /** Takes the earliest item when it is due at `now` (removed from the heap), else null. */
  popDue(now: Instant): T | null {
    if (this.items.length === 0 || this.at[0]! > now) return null;
    const item = this.items[0]!;
    this.removeAt(0);
    return item;
  }

  private removeAt(i: number): void {
    const items = this.items;
    const last = items.length - 1;
    this.pos.delete(items[i]!);
    if (i !== last) {
      items[i] = items[last]!;
      this.at[i] = this.at[last]!;
      this.pos.set(items[i]!, i);
    }
    items.pop();
    this.at.pop();
    if (i < items.length) {
      this.up(i);
      this.down(i);
    }
  }

  private up(i: number): void {
    const items = this.items;
    const at = this.at;
    const item = items[i]!;
    const t = at[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (at[p]! <= t) break;
      items[i] = items[p]!;
      at[i] = at[p]!;
      this.pos.set(items[i]!, i);
      i = p;
    }
    items[i] = item;
    at[i] = t;
    this.pos.set(item, i);
  }

  private down(i: number): void {
    const items = this.items;
    const at = this.at;
    const n = items.length;
    const item = items[i]!;
    const t = at[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && at[c + 1]! < at[c]!) c++;
      if (at[c]! >= t) break;
      items[i] = items[c]!;
      at[i] = at[c]!;
      this.pos.set(items[i]!, i);
      i = c;
    }
    items[i] = item;
    at[i] = t;
    this.pos.set(item, i);
  }
}
