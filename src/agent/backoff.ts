/**
 * Exponential backoff with full jitter: attempt n waits uniform(0, min(max, initial·2ⁿ)).
 * A collector restart drops every agent of the cluster at once; without jitter
 * they would all reconnect in the same instant, and again, and again.
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(initialMs: number, maxMs: number, random: () => number = Math.random) {
    if (!(initialMs > 0) || !(maxMs >= initialMs)) {
      throw new RangeError(`backoff needs 0 < initialMs <= maxMs, got ${initialMs}..${maxMs}`);
    }
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.#random = random;
  }

  /** Consecutive failures since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The cap for the current attempt, before jitter. */
  ceilingMs(): number {
    return Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.#attempt, 31));
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
