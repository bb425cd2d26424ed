const links = Symbol('nestjs-redis-tx links');

interface Links<T> {
  set: LinkedSet<T & object>;
  previous?: T;
  next?: T;
}

type Linkable<T> = T & { [links]?: Links<T> };

/**
 * A set of objects that come and go all the time (locks held now, waits,
 * running bodies), threaded through the objects themselves: adding and
 * deleting touch the neighbours only.
 *
 * Not a Set: one that lives as long as the application, with an entry added
 * and deleted per lock, rehashes into new tables over and over, and a
 * discarded table that had reached the old generation still points at the
 * objects it held. The young-generation collector keeps whatever the old
 * generation points at, so those objects, and what they point at, survived
 * and were promoted when they were already garbage (see InFlightCommands).
 * Here a deleted object's neighbours stop pointing at it at once.
 */
export class LinkedSet<T extends object> implements Iterable<T> {
  private first?: Linkable<T>;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(item: T): boolean {
    return (item as Linkable<T>)[links]?.set === this;
  }

  /** An object is in one LinkedSet at a time: its links are on it. */
  add(item: T): void {
    const linked = item as Linkable<T>;
    const own = linked[links];
    if (own?.set === this) return;
    if (own) throw new Error('LinkedSet: this object is in another LinkedSet');
    linked[links] = { set: this, next: this.first };
    if (this.first) this.first[links]!.previous = linked;
    this.first = linked;
    this.count++;
  }

  delete(item: T): boolean {
    const linked = item as Linkable<T>;
    const own = linked[links];
    if (own?.set !== this) return false;
    const { previous, next } = own;
    if (previous) (previous as Linkable<T>)[links]!.next = next;
    else this.first = next;
    if (next) (next as Linkable<T>)[links]!.previous = previous;
    linked[links] = undefined;
    this.count--;
    return true;
  }

  /**
   * Newest first, from a copy taken when iteration starts: what a loop body
   * deletes (a holder told to stop may release other locks at once) is
   * skipped if not reached yet, and never cuts the iteration short.
   */
  *[Symbol.iterator](): Iterator<T> {
    const items: T[] = [];
    for (let item = this.first; item; item = item[links]?.next) items.push(item);
    for (const item of items) if (this.has(item)) yield item;
  }
}
