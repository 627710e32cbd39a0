import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AcceptProbes } from '../../src/bpf/accept-probes.js';
import type { RecordHandler } from '../../src/bpf/ringbuf.js';
import { Capture } from '../../src/capture/capture.js';
import { RECORD_SIZE } from '../../src/capture/record.js';
import type { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { buildRecord, RECORD_BASE } from '../helpers/record-builder.js';

// stop() must take everything the ring still holds, not one chunk of it.
function fakeProbes(records: number): AcceptProbes {
  let left = records;
  const view = buildRecord({ pid: 7, comm: 'x' });
  return {
    ring: {
      drain(onRecord: RecordHandler, max = Number.POSITIVE_INFINITY) {
        let n = 0;
        while (left > 0 && n < max) {
          onRecord(view, RECORD_BASE, RECORD_SIZE);
          left--;
          n++;
        }
        return { records: n, more: left > 0 };
      },
    },
  } as unknown as AcceptProbes;
}

describe('Capture.stop', () => {
  it('drains the whole ring, in chunks, before stopping', () => {
    const got: AcceptEvent[] = [];
    const c = new Capture({
      probes: fakeProbes(50_000),
      nodeName: 'n',
      log: silentLogger,
      maxBatch: 8192,
      onEvents: (b) => got.push(...b),
    });
    c.stop();
    assert.equal(got.length, 50_000);
    assert.equal(got.at(-1)?.seq, 50_000n);
  });
});
