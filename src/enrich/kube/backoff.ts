import type { BackoffOptions } from './types.js';

/**
 * Exponential backoff with full jitter: attempt n waits uniform(0, min(max, initial·2ⁿ)).
 * Jitter spreads a DaemonSet's reconnects after an apiserver restart: without it every
 * node of the cluster would list at the same instant, which is what keeps an apiserver down.
 */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(opts: BackoffOptions, random: () => number = Math.random) {
    if (!(opts.initialMs > 0) || !(opts.maxMs >= opts.initialMs)) {
      throw new RangeError(`backoff needs 0 < initialMs <= maxMs, got ${opts.initialMs}..${opts.maxMs}`);
    }
    this.#initialMs = opts.initialMs;
    this.#maxMs = opts.maxMs;
    this.#random = random;
  }

  /** Consecutive failures since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The cap for the current attempt, before jitter. */
  ceilingMs(): number {
    // 2^31 is far past any useful max; the clamp keeps the arithmetic finite.
    return Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#attempt, 31));
  }

  /** The next delay; each call counts one more failure. */
  next(): number {
    const delay = Math.floor(this.#random() * this.ceilingMs());
    this.#attempt++;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
}
