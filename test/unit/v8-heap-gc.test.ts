import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import { describe, it } from 'node:test';
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

  it('collects on each tick while events move, and not at all on a quiet node', async () => {
    let moving = true;
    let calls = 0;
    const t = startFullGcTimer({ intervalMs: 20, moved: () => moving, gc: () => calls++ });
    await new Promise((r) => setTimeout(r, 130));
    const busy = calls;
    assert.ok(busy >= 3, `collections while busy: ${busy}`);
    assert.equal(t.runs, busy);
    moving = false;
    await new Promise((r) => setTimeout(r, 130));
    assert.equal(calls, busy, 'none while quiet');
    t.stop();
    moving = true;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(calls, busy, 'none after stop()');
  });
});
