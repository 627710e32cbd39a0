import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeRecord, RECORD_HEADER_BYTES } from '../../src/agent/spool-format.js';
import { encodeBatchRequest, encodeEvent, encodePublishRequest } from '../../src/agent/wire.js';
import { PublishRequest } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { sampleEvent } from '../helpers/sample-events.js';

// The spliced Publish frame must be byte-for-byte what the generated encoder makes.
const events = [1n, 2n, 3n].map((seq) => sampleEvent({ seq, eventId: `b/i/${seq}` }));

describe('agent wire encoding', () => {
  const cases: [string, PublishRequest][] = [
    [
      'a batch with losses',
      {
        batch: {
          firstSeq: 1n,
          events,
          losses: { kernelRingFull: 3n, decodeErrors: 0n, bpfRecursionMisses: 1n, queueDrops: 0n, spoolDrops: 7n },
          contexts: [],
          eventContexts: [],
        },
      },
    ],
    ['a batch without losses', { batch: { firstSeq: 1n, events, losses: undefined, contexts: [], eventContexts: [] } }],
    [
      'an empty batch (first_seq 0: no field at all)',
      { batch: { firstSeq: 0n, events: [], losses: undefined, contexts: [], eventContexts: [] } },
    ],
    [
      'a batch over 16 KiB (3-byte length prefix)',
      {
        batch: {
          firstSeq: 1n,
          events: Array.from({ length: 200 }, (_, i) => events[i % 3]!),
          losses: undefined,
          contexts: [],
          eventContexts: [],
        },
      },
    ],
    [
      'a loss-only batch',
      {
        batch: {
          firstSeq: 4n,
          events: [],
          losses: { kernelRingFull: 1n, decodeErrors: 0n, bpfRecursionMisses: 0n, queueDrops: 0n, spoolDrops: 0n },
          contexts: [],
          eventContexts: [],
        },
      },
    ],
    [
      'a large event (2-byte length prefix)',
      {
        batch: {
          firstSeq: 9n,
          events: [sampleEvent({ seq: 9n, error: 'x'.repeat(300) })],
          losses: undefined,
          contexts: [],
          eventContexts: [],
        },
      },
    ],
    ['a hello', { hello: { agent: { nodeName: 'n', bootId: 'b', instanceId: 'i', version: 'v' } } }],
  ];
  for (const [what, req] of cases) {
    it(`${what}: identical to PublishRequest.encode`, () => {
      assert.deepEqual(Buffer.from(encodePublishRequest(req)), Buffer.from(PublishRequest.encode(req).finish()));
      assert.deepEqual(PublishRequest.decode(encodePublishRequest(req)), PublishRequest.fromPartial(req));
    });
  }

  it('a batch spliced from spool records (header skipped): identical to PublishRequest.encode', () => {
    const frames = events.map((ev) => encodeRecord(ev.seq, encodeEvent(ev)));
    const losses = { kernelRingFull: 0n, decodeErrors: 2n, bpfRecursionMisses: 0n, queueDrops: 0n, spoolDrops: 1n };
    const bytes = encodeBatchRequest({ firstSeq: 1n, parts: frames, skip: RECORD_HEADER_BYTES }, losses);
    assert.deepEqual(
      Buffer.from(bytes),
      Buffer.from(PublishRequest.encode({ batch: { firstSeq: 1n, events, losses, contexts: [], eventContexts: [] } }).finish()),
    );
    assert.deepEqual(AcceptEvent.decode(encodeEvent(events[0]!)), events[0]);
  });
});
