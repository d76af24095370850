/** Something scheduled at `at`; `seq` orders items due at the same time (first scheduled, first out). */
export interface Timed {
  /** When it is due (ms). */
  at: number;
  /** Tie-breaker among items with the same `at`: lower first. */
  seq: number;
}

/**
 * A binary min-heap on `(at, seq)`: the delivery queue of simulated links (the memory transport's, predict's
 * `SimLink`). `seq` makes the order total, so a seeded run pops in the same order every time.
 */
export class TimeHeap<T extends Timed> {
  readonly #h: T[] = [];

  /** Items held. */
  get size(): number {
    return this.#h.length;
  }

  /** The earliest item, or undefined when empty. */
  peek(): T | undefined {
    return this.#h[0];
  }

  /** Adds `item` in `(at, seq)` order. */
  push(item: T): void {
    const h = this.#h;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  /** Removes and returns the earliest item; undefined when empty. */
  pop(): T | undefined {
    const h = this.#h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function less(a: Timed, b: Timed): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
