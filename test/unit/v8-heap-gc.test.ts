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

  it('collects on each tick while events move, never on a quiet node, and not after stop()', async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    let delivered = 1000n; // events already delivered before the timer starts: no reason to collect
    let calls = 0;
    const t = startFullGcTimer({ intervalMs: 20, progress: () => delivered, gc: () => calls++ });
    await sleep(90);
    assert.equal(calls, 0, 'quiet from the start: none');
    const flow = setInterval(() => delivered++, 5);
    await sleep(130);
    const busy = calls;
    assert.ok(busy >= 3, `collections while busy: ${busy}`);
    clearInterval(flow);
    await sleep(30); // the tick that sees the last events may still collect once
    const settled = calls;
    await sleep(130);
    assert.equal(calls, settled, 'none while quiet');
    t.stop();
    const flow2 = setInterval(() => delivered++, 5);
    await sleep(60);
    clearInterval(flow2);
    assert.equal(calls, settled, 'none after stop()');
  });
});
