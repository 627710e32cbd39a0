/**
 * Small async building blocks for the collector: an injectable clock, an
 * abortable sleep, a wake-up notifier without lost wake-ups, and a race
 * against an AbortSignal. No timers outlive their purpose.
 */

export interface Clock {
  /** Milliseconds, monotonic enough for rates and backoff. */
  now(): number;
  /** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener('abort', done, { once: true });
    }),
};

export const ABORTED: unique symbol = Symbol('aborted');

/**
 * `p`, or ABORTED as soon as `signal` aborts. `p` keeps running; its eventual
 * rejection is swallowed so it cannot become an unhandled rejection.
 */
export function raceSignal<T>(p: Promise<T>, signal: AbortSignal): Promise<T | typeof ABORTED> {
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.resolve(ABORTED);
  }
  return new Promise<T | typeof ABORTED>((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => {});
      resolve(ABORTED);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * A level-triggered wake-up: notify() before wait() is not lost (the next
 * wait() returns at once). Waiters re-check their condition after waking.
 */
export class Notifier {
  private pending = false;
  private waiters: (() => void)[] = [];

  notify(): void {
    this.pending = true;
    const ws = this.waiters;
    if (!ws.length) return;
    this.waiters = [];
    for (const w of ws) w();
  }

  /** Resolves on the next notify() (or at once if one is pending), or when `signal` aborts. */
  wait(signal?: AbortSignal): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    if (signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        this.pending = false;
        resolve();
      };
      this.waiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

/** A promise that resolves after `ms` or when `p` settles, whichever is first; true when `p` won. */
export async function within(p: Promise<unknown>, ms: number, clock: Clock = systemClock): Promise<boolean> {
  const ac = new AbortController();
  let won = false;
  const guarded = p.then(
    () => {
      won = true;
    },
    () => {
      won = true;
    },
  );
  await Promise.race([guarded, clock.sleep(ms, ac.signal)]);
  ac.abort();
  return won;
}
