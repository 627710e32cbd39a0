import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeEvent, lastTailAt, lastTailBytes } from '../../src/agent/event-encoder.js';
import { LiveBatches, MAX_FREE_REQUESTS, MAX_FREE_SLABS } from '../../src/agent/live-batches.js';
import { decodePublishRequest } from '../../src/collector/wire.js';
import { type LossCounters, PublishRequest } from '../../src/gen/doorwatch/v1/collector.js';
import type { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { podEvents, sampleEvent } from '../helpers/sample-events.js';

/*
 * The publisher's in-memory batches are the Publish requests themselves: each
 * one taken must be byte for byte what the generated encoder makes of the same
 * events — after trims, across slab boundaries, with and without losses.
 */

const ev = (seq: bigint, pad = 0) => sampleEvent({ seq, eventId: `b/i/${seq}`, error: 'e'.repeat(pad) });
const losses: LossCounters = { kernelRingFull: 5n, decodeErrors: 0n, bpfRecursionMisses: 1n, queueDrops: 0n, spoolDrops: 2n };

function expected(events: AcceptEvent[], l?: LossCounters): Buffer {
  return Buffer.from(
    PublishRequest.encode({ batch: { firstSeq: events[0]!.seq, events, losses: l, contexts: [], eventContexts: [] } }).finish(),
  );
}

function fill(live: LiveBatches, events: AcceptEvent[]): void {
  // Each payload in the middle of a larger buffer, as in the spool's encode buffer: only [start, end) is copied.
  for (const e of events) {
    const payload = encodeEvent(e);
    live.append(e.seq, Buffer.concat([Buffer.from('head'), payload, Buffer.from('tail')]), 4, 4 + payload.length);
  }
}

describe('LiveBatches', () => {
  it('a batch taken whole, without and with losses: identical to PublishRequest.encode', () => {
    for (const l of [undefined, losses]) {
      const live = new LiveBatches(500, () => 0);
      const events = [1n, 2n, 3n].map((s) => ev(s));
      fill(live, events);
      const req = live.takeRequest(l)!;
      assert.deepEqual(Buffer.from(req.bytes), expected(events, l));
      assert.equal(req.count, 3);
      assert.equal(live.size, 0);
    }
  });

  it('splits at maxEvents and at seq gaps; trims the head below a seq', () => {
    const live = new LiveBatches(4, () => 0);
    const events = [1n, 2n, 3n, 4n, 5n, 6n, 9n, 10n].map((s) => ev(s));
    fill(live, events);
    assert.equal(live.size, 8);
    live.dropBelow(3n);
    assert.equal(live.firstSeq, 3n);
    assert.deepEqual(Buffer.from(live.takeRequest(losses)!.bytes), expected(events.slice(2, 4), losses));
    assert.deepEqual(Buffer.from(live.takeRequest(undefined)!.bytes), expected(events.slice(4, 6)));
    assert.equal(live.headIsTail, true);
    assert.deepEqual(Buffer.from(live.takeRequest(undefined)!.bytes), expected(events.slice(6)));
    assert.equal(live.takeRequest(undefined), undefined);
  });

  it('3000 events of mixed sizes across several 1 MiB slabs, taken after later appends: every batch intact', () => {
    const live = new LiveBatches(500, () => 0);
    const events = Array.from({ length: 3000 }, (_, i) => ev(BigInt(i + 1), (i * 37) % 900));
    fill(live, events);
    for (let i = 0; i < 3000; i += 500) {
      const req = live.takeRequest(i === 1500 ? losses : undefined)!;
      assert.deepEqual(
        Buffer.from(req.bytes),
        expected(events.slice(i, i + 500), i === 1500 ? losses : undefined),
        `batch at ${i}`,
      );
    }
  });

  it('bound() drops whole oldest batches beyond the byte limit; bytes follow trims and takes', () => {
    const live = new LiveBatches(10, () => 0);
    const events = Array.from({ length: 35 }, (_, i) => ev(BigInt(i + 1)));
    fill(live, events);
    // A framed entry: tag, length varint (2 bytes here), payload.
    const entry = (k: number) => 1 + 2 + encodeEvent(events[k - 1]!).length;
    const sum = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => entry(from + i)).reduce((a, b) => a + b, 0);
    assert.equal(live.bytes, sum(1, 35));
    live.bound(sum(21, 35));
    assert.equal(live.firstSeq, 21n);
    assert.equal(live.size, 15);
    assert.equal(live.bytes, sum(21, 35));
    live.dropBelow(23n);
    assert.equal(live.bytes, sum(23, 35));
    live.takeRequest(undefined);
    assert.equal(live.bytes, sum(31, 35));
  });

  it('slabs are reused only once every batch in them is released; bytes held by the stream never change before that', () => {
    const live = new LiveBatches(500, () => 0);
    const events = Array.from({ length: 4000 }, (_, i) => ev(BigInt(i + 1), (i * 13) % 300));
    fill(live, events.slice(0, 2000));
    const taken = Array.from({ length: 4 }, () => live.takeRequest(undefined)!);
    const copies = taken.map((t) => Buffer.from(t.bytes));
    // More events while the first four batches are in flight: their bytes must not move.
    fill(live, events.slice(2000));
    for (const [i, t] of taken.entries()) assert.deepEqual(Buffer.from(t.bytes), copies[i], `in-flight batch ${i} intact`);
    assert.equal(live.slabs.free, 0, 'nothing reusable while in flight');
    for (const t of taken) t.release();
    for (const t of taken) t.release(); // twice: no effect
    assert.ok(live.slabs.free >= 1, `released slabs kept for reuse (${JSON.stringify(live.slabs)})`);
    for (let i = 2000; i < 4000; i += 500) {
      const req = live.takeRequest(undefined)!;
      assert.deepEqual(Buffer.from(req.bytes), expected(events.slice(i, i + 500)), `batch at ${i}`);
      req.release();
    }
    // Appends now land in reused slabs: still exact.
    const more = Array.from({ length: 1500 }, (_, i) => ev(BigInt(5000 + i), (i * 7) % 500));
    fill(live, more);
    for (let i = 0; i < 1500; i += 500)
      assert.deepEqual(Buffer.from(live.takeRequest(undefined)!.bytes), expected(more.slice(i, i + 500)));
  });

  it(`keeps at most ${MAX_FREE_SLABS} released slabs aside (the rest is garbage): memory bounded after a burst`, () => {
    const live = new LiveBatches(500, () => 0);
    const payload = encodeEvent(ev(1n, 600));
    for (let i = 1; i <= 30_000; i++) live.append(BigInt(i), payload, 0, payload.length); // ~40 MiB: ~40 slabs
    const taken: { release: () => void }[] = [];
    for (let r = live.takeRequest(undefined); r; r = live.takeRequest(undefined)) taken.push(r);
    assert.ok(live.slabs.inUse > 20, `in use while in flight (${JSON.stringify(live.slabs)})`);
    for (const t of taken) t.release();
    assert.equal(live.slabs.free, MAX_FREE_SLABS, `kept aside ${live.slabs.free}`);
    assert.ok(live.slabs.inUse <= 1, `in use after release ${live.slabs.inUse}`);
  });

  describe("batch contexts (a pod's fields once per batch, for a collector that announced them)", () => {
    const fillShared = (live: LiveBatches, events: AcceptEvent[]) => {
      for (const e of events) {
        const payload = encodeEvent(e);
        live.append(e.seq, payload, 0, payload.length, lastTailBytes, lastTailAt);
      }
    };

    it('each distinct shared tail once; the collector decodes the same events as from whole ones; the rest unchanged', () => {
      for (const l of [undefined, losses]) {
        const events = podEvents(300, 5);
        const whole = new LiveBatches(500, () => 0);
        fill(whole, events);
        const full = whole.takeRequest(l, false)!;
        assert.deepEqual(Buffer.from(full.bytes), expected(events, l), 'contexts off: byte for byte as before');
        const live = new LiveBatches(500, () => 0);
        fillShared(live, events);
        const req = live.takeRequest(l, true)!;
        assert.equal(req.count, 300);
        const raw = PublishRequest.decode(req.bytes).batch!;
        assert.equal(raw.contexts.length, 5, 'one context per pod');
        assert.equal(raw.eventContexts.length, 300);
        assert.equal(
          raw.eventContexts.filter((k) => k === 0).length,
          events.filter((_, i) => i % 7 === 3 || i % 11 === 5).length,
        );
        assert.deepEqual(raw.losses, l);
        assert.ok(req.bytes.length < full.bytes.length * 0.6, `${req.bytes.length} bytes, not ${full.bytes.length}`);
        assert.deepStrictEqual(decodePublishRequest(req.bytes), PublishRequest.decode(full.bytes));
      }
    });

    it('a request with contexts is a copy: its slab goes back at once, not at the ack', () => {
      const events = podEvents(4000, 3); // ~2.5 MiB of payloads: several slabs
      const live = new LiveBatches(500, () => 0);
      fillShared(live, events);
      const before = live.slabs.inUse;
      assert.ok(before >= 3, `slabs in use ${before}`);
      const held: Uint8Array[] = [];
      for (let r = live.takeRequest(undefined, true); r; r = live.takeRequest(undefined, true)) held.push(r.bytes);
      assert.equal(held.length, 8);
      assert.ok(live.slabs.inUse <= 1, `slabs still held after every batch was copied out: ${live.slabs.inUse} of ${before}`);
      assert.equal(
        held.reduce((n, b) => n + decodePublishRequest(b).batch!.events.length, 0),
        4000,
      );
    });

    it(`request buffers are reused only after release(), at most ${MAX_FREE_REQUESTS} kept aside; bytes in flight never change`, () => {
      const events = podEvents(7000, 3);
      const live = new LiveBatches(500, () => 0);
      fillShared(live, events);
      const take = () => live.takeRequest(undefined, true)!;
      // More in flight than are kept aside: a buffer each, none shared; each request's bytes stay as taken.
      const n = MAX_FREE_REQUESTS + 2;
      const inFlight = Array.from({ length: n }, take);
      const copies = inFlight.map((r) => Buffer.from(r.bytes));
      assert.equal(new Set(inFlight.map((r) => r.bytes.buffer)).size, n, 'a buffer per request in flight');
      assert.equal(live.slabs.freeRequests, 0);
      for (const r of inFlight) {
        r.release();
        r.release(); // twice: no effect (one buffer must never go to two requests)
      }
      assert.equal(live.slabs.freeRequests, MAX_FREE_REQUESTS, 'the rest is garbage');
      // The next requests are written into released buffers, and are still exact.
      const next = [take(), take()];
      const released = new Set(inFlight.map((r) => r.bytes.buffer));
      for (const r of next) assert.ok(released.has(r.bytes.buffer), 'a released buffer reused');
      assert.notEqual(next[0]!.bytes.buffer, next[1]!.bytes.buffer);
      assert.equal(live.slabs.freeRequests, MAX_FREE_REQUESTS - 2);
      const got = [...copies, ...next.map((r) => Buffer.from(r.bytes))].flatMap((b) => decodePublishRequest(b).batch!.events);
      assert.deepStrictEqual(got, PublishRequest.decode(expected(events.slice(0, (n + 2) * 500))).batch!.events);
    });

    it('after trims and across slabs, still the same events', () => {
      const events = podEvents(4000, 3);
      const live = new LiveBatches(500, () => 0);
      fillShared(live, events);
      live.dropBelow(123n);
      const got: AcceptEvent[] = [];
      for (let r = live.takeRequest(undefined, true); r; r = live.takeRequest(undefined, true)) {
        got.push(...decodePublishRequest(r.bytes).batch!.events);
        r.release();
      }
      assert.deepStrictEqual(got, PublishRequest.decode(expected(events.slice(122))).batch!.events);
    });
  });
});
