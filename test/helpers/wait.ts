import { connect, createServer } from 'node:net';

/**
 * Bounded waiting for tests: every wait has a timeout and says what it waited
 * for. (Plain delays: `setTimeout` from node:timers/promises.)
 */

/**
 * Resolves once `cond()` is truthy (checked every `everyMs`), with its value; rejects after `timeoutMs`.
 * An async condition (an HTTP request, a scrape) is awaited: its promise is never mistaken for "true".
 */
export async function until<T>(
  cond: () => T | Promise<T>,
  what: string,
  timeoutMs = 5000,
  everyMs = 10,
): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Resolve `p` or reject after `ms`. */
export async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`timed out after ${ms}ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Whether something accepts a TCP connection on the loopback `port` now (the probe connection is closed at once). */
export function tcpListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
