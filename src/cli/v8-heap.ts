import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * V8 settings every command runs with, set from inside the process so that
 * `./bin/doorwatch.js`, `node bin/doorwatch.js` and the container behave the
 * same (NODE_OPTIONS takes only a handful of V8 flags, and not this one).
 *
 * Allocation-site pretenuring is off. V8 watches each object literal's
 * allocation site; once 85 % of a site's objects survive a scavenge while the
 * young generation is at its maximum size, it allocates every later object of
 * that site straight in the old generation, and it does not go back while
 * the old generation keeps more than a tenth of what it held. A storm does
 * exactly that to the per-event literals (an event, its process, its socket):
 * a 1 024-record drain outlives a 2 MiB young generation. From then on every
 * event went to the old generation, which filled in ~0.6 s at 20 000 events/s:
 * a full mark-compact 1.7 times a second, for the life of the agent
 * (`--trace-gc`), and ~2 µs/event of marking on V8's helper threads. Without
 * it, events die young as they should: one full collection in 15-20 s.
 * Measured side by side in docs/benchmarks.md ("ninth session").
 *
 * A pretenuring flag given to node on its own command line wins.
 */
export function tuneV8(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((a) => /^--(no-)?allocation[-_]site[-_]pretenuring$/.test(a))) return;
  setFlagsFromString('--no-allocation-site-pretenuring');
}

/** A full (major) collection, run now: V8's own gc(), taken without exposing it to any other code. */
export function fullGcFunction(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // Only this closure keeps it: the flag goes off again, and no global gc() is left behind.
  setFlagsFromString('--no-expose-gc');
  return gc;
}

/**
 * A full collection every `intervalMs` while events flow (`progress()` is a count that moves with them:
 * a tick that finds it where the last one did collects nothing). Without pretenuring, per-event objects die
 * young and V8 runs a full collection only every 15-20 s at 20 000 events/s; the native memory kept by the
 * few objects promoted in between (grpc-js's ~110 KB framed request copies, TLS and HTTP/2 buffers) waited
 * that long too, and glibc's heap kept its high-water mark: 13.3 MiB against 5.8 with a collection every
 * 5 s, the agent's RSS 102-105 MiB against 94 (docs/benchmarks.md, "ninth session"). Each costs a few
 * milliseconds of the main thread on the agent's ~15 MB heap; a quiet node pays nothing.
 */
export function startFullGcTimer(o: { intervalMs: number; progress: () => bigint; gc?: () => void }): {
  stop(): void;
} {
  const gc = o.gc ?? fullGcFunction();
  let last = o.progress();
  const timer = setInterval(() => {
    const now = o.progress();
    if (now === last) return;
    last = now;
    gc();
  }, o.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
