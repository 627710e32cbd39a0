/**
 * An async iterable fed by push(): the request side of a bidi stream. The
 * publisher's window bounds what can be queued, so this needs no limit.
 */
export class PushQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiter: ((r: IteratorResult<T, undefined>) => void) | undefined;
  #ended = false;

  get ended(): boolean {
    return this.#ended;
  }

  /** false once ended: the item is not queued. */
  push(item: T): boolean {
    if (this.#ended) return false;
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      w({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
    return true;
  }

  /** No more items: the consumer sees the end after what is queued. */
  end(): void {
    this.#ended = true;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T, undefined> {
    return {
      next: () => {
        const item = this.#items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiter = resolve;
        });
      },
      return: () => {
        this.#ended = true;
        this.#items = [];
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
