import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Capture } from '../../src/capture/capture.js';
import { readBootId } from '../../src/capture/clock.js';
import type { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { probesWithRecords } from '../helpers/record-builder.js';

// Capture continuing the spool's seq space (CaptureOptions.identity / firstSeq).

function run(o: Partial<ConstructorParameters<typeof Capture>[0]>, records = 3): { events: AcceptEvent[]; cap: Capture } {
  const events: AcceptEvent[] = [];
  const cap = new Capture({
    probes: probesWithRecords(records, { pid: 7, ret: 4, family: 2 }),
    nodeName: 'node-a',
    log: silentLogger,
    onEvents: (b) => events.push(...b),
    ...o,
  });
  cap.drain();
  return { events, cap };
}

it('continues a persisted seq space: identity and firstSeq', () => {
  const { events, cap } = run({ identity: { bootId: 'boot-x', instanceId: 'inst-1' }, firstSeq: 42n });
  assert.deepEqual(
    events.map((e) => [e.seq, e.eventId]),
    [
      [42n, 'boot-x/inst-1/42'],
      [43n, 'boot-x/inst-1/43'],
      [44n, 'boot-x/inst-1/44'],
    ],
  );
  assert.equal(cap.stats().delivered, 3n, 'delivered counts this run, not the seq');
});

it('defaults are unchanged: this boot, a random instance, seq from 1', () => {
  const { events } = run({});
  assert.deepEqual(
    events.map((e) => e.seq),
    [1n, 2n, 3n],
  );
  assert.match(events[0]!.eventId, new RegExp(`^${readBootId()}/[0-9a-f]{12}/1$`));
});

it('rejects a firstSeq below 1', () => {
  assert.throws(() => run({ firstSeq: 0n }), /firstSeq must be >= 1/);
});
