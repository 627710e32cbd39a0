import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

/**
 * What a process allocates, by call stack: preloaded into the agent (or any node process), it samples every
 * allocation — those the garbage collector has already taken too, which `node --heap-prof` leaves out, and
 * which are what a per-event agent's GC pays for — and writes a .heapprofile (Chrome DevTools opens it;
 * bench/alloc-summary.ts prints the top allocators) when the window ends.
 *
 *   npx tsc -p bench/tsconfig.json
 *   BENCH_AGENT_NODE_ARGS="--import ./build/bench-js/bench/alloc-profile.js" npx tsx bench/pipeline.ts --rounds 1 --seconds 40
 *   npx tsx bench/alloc-summary.ts alloc-<pid>.heapprofile
 *
 * ALLOC_PROFILE_DELAY_MS (default 20000: past the pipeline's warm-up storm), ALLOC_PROFILE_MS (15000),
 * ALLOC_PROFILE_DIR (the working directory), ALLOC_PROFILE_INTERVAL (bytes between samples, 16384),
 * ALLOC_PROFILE_MINOR=0 (only what survived the young generation: what is promoted).
 */

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const session = new Session();
session.connect();
const post = (method: string, params: object = {}) =>
  new Promise<unknown>((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));

async function sample(): Promise<void> {
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', {
    samplingInterval: env('ALLOC_PROFILE_INTERVAL', 16384),
    includeObjectsCollectedByMajorGC: true,
    // ALLOC_PROFILE_MINOR=0: leave out what the scavenger took — what remains is what lived long enough to
    // be promoted (or is still alive), the old generation's growth that paces the full mark-compacts.
    includeObjectsCollectedByMinorGC: process.env.ALLOC_PROFILE_MINOR !== '0',
  });
  setTimeout(
    () => {
      void post('HeapProfiler.stopSampling').then((res) => {
        const file = join(process.env.ALLOC_PROFILE_DIR ?? '.', `alloc-${process.pid}.heapprofile`);
        writeFileSync(file, JSON.stringify((res as { profile: unknown }).profile));
        process.stderr.write(`alloc-profile: wrote ${file}\n`);
      });
    },
    env('ALLOC_PROFILE_MS', 15000),
  ).unref();
}

setTimeout(() => void sample(), env('ALLOC_PROFILE_DELAY_MS', 20000)).unref();
