import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeRecord, RECORD_HEADER_BYTES } from '../../src/agent/spool-format.js';
import {
  contextsFromPayloads,
  contextsWorthIt,
  encodeBatchRequest,
  encodeContextsRequest,
  encodeEvent,
  encodePublishRequest,
  perPodSpan,
} from '../../src/agent/wire.js';
import { decodePublishRequest } from '../../src/collector/wire.js';
import { PublishRequest } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { randomCorpus } from '../helpers/random-events.js';
import { podEvents, sampleEvent } from '../helpers/sample-events.js';

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

describe('batch contexts from stored events (the spool read back)', () => {
  it('finds the per-pod fields of encoded events, and none where they are absent', () => {
    const ev = sampleEvent();
    const b = encodeEvent(ev);
    const span = perPodSpan(b, 0, b.length)!;
    const part = {
      namespaces: ev.namespaces,
      cgroup: ev.cgroup,
      container: ev.container,
      pod: ev.pod,
      enrichment: ev.enrichment,
    };
    assert.deepEqual(Buffer.from(b.subarray(...span)), Buffer.from(AcceptEvent.encode(AcceptEvent.fromPartial(part)).finish()));
    const bare = encodeEvent({
      ...ev,
      ...{ namespaces: undefined, cgroup: undefined, container: undefined, pod: undefined, enrichment: undefined },
    });
    assert.equal(perPodSpan(bare, 0, bare.length), undefined);
    assert.equal(perPodSpan(b, 0, b.length - 1), undefined, 'cut short: not parsed');
  });

  it('a backlog with contexts decodes to the very same events, each pod once', () => {
    for (const [what, evs] of [
      ['pods, host and unshared events', podEvents(700, 7)],
      ['a varied corpus', randomCorpus(400, 5).map((e, i) => ({ ...e, seq: BigInt(i + 1) }))],
    ] as const) {
      const payloads = evs.map((e) => encodeEvent(e));
      const losses = { kernelRingFull: 2n, decodeErrors: 0n, bpfRecursionMisses: 0n, queueDrops: 0n, spoolDrops: 1n };
      const whole = encodeBatchRequest({ firstSeq: evs[0]!.seq, parts: payloads, skip: 0 }, losses);
      const batch = contextsFromPayloads(evs[0]!.seq, payloads);
      const compact = encodeContextsRequest(batch, losses);
      assert.deepStrictEqual(decodePublishRequest(compact), PublishRequest.decode(whole), what);
      // Smaller when pods repeat; a corpus of all-different events is not (the publisher then sends it whole).
      if (what.startsWith('pods'))
        assert.ok(compact.length < whole.length * 0.6, `${what}: ${compact.length} of ${whole.length} bytes`);
      else assert.equal(contextsWorthIt(batch), false, `${what}: nothing repeats`);
      // One context per distinct set of per-pod fields among the events.
      const distinct = new Set(
        evs.map((e) => {
          const part = {
            namespaces: e.namespaces,
            cgroup: e.cgroup,
            container: e.container,
            pod: e.pod,
            enrichment: e.enrichment,
          };
          return Buffer.from(AcceptEvent.encode(AcceptEvent.fromPartial(part)).finish()).toString('hex');
        }),
      );
      distinct.delete('');
      assert.equal(batch.contexts.length, distinct.size, `${what}: contexts`);
      if (what.startsWith('pods')) assert.ok(distinct.size >= 6, `${distinct.size} distinct`);
    }
  });
});
