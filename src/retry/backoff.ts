/**
 * Exponential backoff with full jitter: attempt n waits uniform(0, min(max, initial·2ⁿ)).
 * One implementation for every retry loop (agent -> collector reconnects, the
 * Kubernetes informers, sink retries). Jitter is the point: a collector or
 * apiserver restart drops every node of a cluster at once, and without it they
 * would all come back in the same instant, again and again.
 */

/** The delay before retry number `attempt` (from 0). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  // 2^31 is far past any useful max; the clamp keeps the arithmetic finite.
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 31));
  return Math.floor(random() * cap);
}

/** backoffDelay with the attempt count kept. */
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

  /** The next delay; each call counts one more failure. */
  next(): number {
    return backoffDelay(this.#attempt++, this.initialMs, this.maxMs, this.#random);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
