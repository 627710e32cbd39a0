import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Capture } from '../../src/capture/capture.js';
import type { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { probesWithRecords } from '../helpers/record-builder.js';

// stop() must take everything the ring still holds, not one chunk of it.
describe('Capture.stop', () => {
  it('drains the whole ring, in chunks, before stopping', () => {
    const got: AcceptEvent[] = [];
    const batches: number[] = [];
    const c = new Capture({
      probes: probesWithRecords(50_000, { pid: 7, comm: 'x' }),
      nodeName: 'n',
      log: silentLogger,
      maxBatch: 8192,
      onEvents: (b) => {
        batches.push(b.length);
        got.push(...b);
      },
    });
    c.stop();
    assert.equal(got.length, 50_000);
    assert.equal(got.at(-1)?.seq, 50_000n);
    assert.deepEqual(batches, [8192, 8192, 8192, 8192, 8192, 8192, 848], 'chunks of maxBatch, then the rest');
  });
});
