// A first-in first-out queue that takes from the front without Array.prototype.shift (which
// moves every element: O(n) a take once a queue is long, as a stack's event queue is after a
// burst of thousands of connections). The array is dropped when the last item is taken.

export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  push(item: T): void {
    this.items.push(item);
  }

  /** The oldest item, taken off the queue, or null when it is empty. */
  shift(): T | null {
    if (this.head >= this.items.length) return null;
    const item = this.items[this.head++]!;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    }
    return item;
  }

  get size(): number {
    return this.items.length - this.head;
  }
}
