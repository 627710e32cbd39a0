import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import { describe, it, mock } from 'node:test';
import { fullGcFunction, startFullGcTimer } from '../../src/cli/v8-heap.js';

const MAJOR = 4; // perf_hooks' NODE_PERFORMANCE_GC_MAJOR

describe("the agent's periodic full collection (startFullGcTimer)", () => {
  it('fullGcFunction() runs a real major collection, and leaves no global gc() behind', async () => {
    const kinds: number[] = [];
    const obs = new PerformanceObserver((l) => {
      for (const e of l.getEntries()) kinds.push((e as unknown as { detail: { kind: number } }).detail.kind);
    });
    obs.observe({ entryTypes: ['gc'] });
    const gc = fullGcFunction();
    gc();
    // GC entries are delivered asynchronously.
    await new Promise((r) => setTimeout(r, 50));
    obs.disconnect();
    assert.ok(kinds.includes(MAJOR), `gc kinds seen: ${JSON.stringify(kinds)}`);
    assert.equal((globalThis as { gc?: unknown }).gc, undefined);
  });

  it('collects on each tick while events move, never on a quiet node, and not after stop()', () => {
    // Mocked timers: each tick is stepped, so a loaded machine cannot make the count drift.
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      let delivered = 1000n; // events already delivered before the timer starts: no reason to collect
      let calls = 0;
      const t = startFullGcTimer({ intervalMs: 20, progress: () => delivered, gc: () => calls++ });
      mock.timers.tick(100);
      assert.equal(calls, 0, 'quiet from the start: none');
      for (let i = 0; i < 5; i++) {
        delivered += 7n;
        mock.timers.tick(20);
      }
      assert.equal(calls, 5, 'one collection per tick while events move');
      mock.timers.tick(100);
      assert.equal(calls, 5, 'none while quiet');
      delivered += 1n;
      mock.timers.tick(20);
      assert.equal(calls, 6, 'again as soon as events move again');
      t.stop();
      delivered += 1n;
      mock.timers.tick(100);
      assert.equal(calls, 6, 'none after stop()');
    } finally {
      mock.timers.reset();
    }
  });
});
