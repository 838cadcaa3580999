// A first-in first-out queue that takes from the front without Array.prototype.shift (which
// moves every element: O(n) a take once a queue is long, as a stack's event queue is after a
// burst of thousands of connections). The array is dropped when the last item is taken.
//
// NO_ITEMS is the one array of every empty queue, range set, log or table that keeps its items
// in arrays of its own only while it holds some (a connection holds a dozen such arrays, most of
// them empty for its whole life, and thousands of connections are held): shared, so frozen; a
// holder compares with it and makes its own array before the first write.

/** The items of what holds none: shared and frozen (never written). */
export const NO_ITEMS = Object.freeze([]) as unknown as never[];

export class Fifo<T> {
  private items: T[] = NO_ITEMS;
  private head = 0;

  push(item: T): void {
    if (this.items === NO_ITEMS) this.items = [];
    this.items.push(item);
  }

  /** The oldest item, taken off the queue, or null when it is empty. */
  shift(): T | null {
    if (this.head >= this.items.length) return null;
    const item = this.items[this.head++]!;
    if (this.head === this.items.length) {
      this.items = NO_ITEMS;
      this.head = 0;
    }
    return item;
  }

  /** Whether an item still queued satisfies `pred`. */
  some(pred: (item: T) => boolean): boolean {
    for (let i = this.head; i < this.items.length; i++) if (pred(this.items[i]!)) return true;
    return false;
  }

  get size(): number {
    return this.items.length - this.head;
  }
}
