import type { Logger } from '../log/logger.js';

/**
 * 'change' listeners of an informer-backed store: called once per microtask
 * however many objects changed in between (a relist is one change, not N),
 * and a listener that throws is logged, never breaks the informer.
 */
export class CoalescedChange {
  readonly #listeners: (() => void)[] = [];
  readonly #log: Logger;
  #queued = false;

  constructor(log: Logger) {
    this.#log = log;
  }

  on(fn: () => void): void {
    this.#listeners.push(fn);
  }

  fire(): void {
    if (this.#queued) return;
    this.#queued = true;
    queueMicrotask(() => {
      this.#queued = false;
      for (const fn of this.#listeners) {
        try {
          fn();
        } catch (err) {
          this.#log.error({ err: (err as Error)?.message ?? String(err) }, "a 'change' listener threw");
        }
      }
    });
  }
}
