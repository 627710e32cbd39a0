import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { Clock } from '../../src/collector/async.js';
import type { SinkConfig } from '../../src/collector/config.js';
import { Dispatcher, type QueuedRecord } from '../../src/collector/dispatcher.js';
import { TokenBucket } from '../../src/collector/rate.js';
import { StreamTable } from '../../src/collector/streams.js';
import { silentLogger } from '../../src/log/logger.js';
import { WarnLimiter } from '../../src/log/warn-limiter.js';
import { backoffDelay } from '../../src/retry/backoff.js';
import type { SinkRecord } from '../../src/sinks/sink.js';
import { agentIdentity, eventually, MemorySink, makeEvent } from '../helpers/memory-sink.js';

// The dispatcher with in-memory sinks: batching, retries of the same batch,
// isolation between sinks, overflow accounting, back-pressure and drain.

function sinkConfig(name: string, over: Partial<SinkConfig> = {}): SinkConfig {
  return {
    name,
    type: 'memory',
    required: true,
    queue: { maxRecords: 1000 },
    batch: { maxRecords: 10, maxDelayMs: 5 },
    retry: { initialMs: 1, maxMs: 5 },
    options: {},
    ...over,
  };
}

const stream = new StreamTable([]).open(agentIdentity('n'));
function records(from: number, count: number): QueuedRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const event = makeEvent(from + i);
    return { record: { kind: 'event', event } as SinkRecord, stream, seq: event.seq };
  });
}

function fakeClock(): Clock & { t: number } {
  const c = { t: 0, now: () => c.t, sleep: async () => {} };
  return c;
}

describe('backoff and rate limits', () => {
  it('backs off exponentially with full jitter, capped', () => {
    assert.equal(
      backoffDelay(0, 200, 30_000, () => 0.999_999),
      199,
    );
    assert.equal(
      backoffDelay(3, 200, 30_000, () => 0.5),
      800,
    );
    assert.equal(
      backoffDelay(20, 200, 30_000, () => 0.999_999),
      29_999,
    );
    assert.equal(
      backoffDelay(5000, 200, 30_000, () => 0.5),
      15_000,
      'no overflow on huge attempts',
    );
    assert.equal(
      backoffDelay(4, 200, 30_000, () => 0),
      0,
    );
  });

  it('a token bucket lets a burst through, then makes the reader wait off its debt', () => {
    const clock = fakeClock();
    const b = new TokenBucket(1000, 500, clock);
    b.consume(500);
    assert.equal(b.delayMs(), 0);
    b.consume(300);
    assert.equal(b.delayMs(), 300);
    clock.t += 200;
    assert.equal(b.delayMs(), 100);
    clock.t += 10_000;
    assert.equal(b.delayMs(), 0);
    b.consume(500);
    assert.equal(b.delayMs(), 0, 'refill is capped at the burst');
    b.consume(1);
    assert.equal(b.delayMs(), 1);
  });

  it('rate-limits warnings and says how many were suppressed', () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const clock = fakeClock();
    const w = new WarnLimiter(log, 1000, () => clock.now());
    w.warn('k', { n: 1 }, 'failed');
    w.warn('k', { n: 2 }, 'failed');
    w.warn('k', { n: 3 }, 'failed');
    w.warn('other', { n: 4 }, 'failed');
    clock.t = 1500;
    w.warn('k', { n: 5 }, 'failed');
    assert.deepEqual(
      lines.map((l) => [l.n, l.suppressed]),
      [
        [1, undefined],
        [4, undefined],
        [5, 2],
      ],
    );
  });
});

describe('dispatcher', () => {
  it('batches up to batch.maxRecords and reports what a required sink persisted', async () => {
    const sink = new MemorySink('a', { delayMs: 0, failFirst: 0 });
    const batches: number[] = [];
    const persisted: bigint[] = [];
    const d = new Dispatcher([{ config: sinkConfig('a', { batch: { maxRecords: 10, maxDelayMs: 50 } }), sink }], {
      log: silentLogger,
      onPersisted: (_, rs) => {
        batches.push(rs.length);
        persisted.push(rs.at(-1)!.seq!);
      },
    });
    d.start();
    d.enqueue(records(1, 25));
    await sink.until((s) => s.events.length === 25, 2000);
    assert.deepEqual(batches, [10, 10, 5]);
    assert.deepEqual(persisted, [10n, 20n, 25n]);
    assert.equal(sink.writes, 3);
    await d.close();
    assert.ok(sink.closed);
  });

  it('waits for a fuller batch only while more is coming, at most batch.maxDelay', async () => {
    const sink = new MemorySink('a', { delayMs: 0, failFirst: 0 });
    const d = new Dispatcher([{ config: sinkConfig('a', { batch: { maxRecords: 100, maxDelayMs: 5000 } }), sink }], {
      log: silentLogger,
    });
    d.start();
    // Records arriving turn after turn (requests being read) make one batch...
    let seq = 1;
    await new Promise<void>((resolve) => {
      const more = () => {
        d.enqueue(records(seq, 2));
        seq += 2;
        if (seq < 10) setImmediate(more);
        else resolve();
      };
      more();
    });
    await sink.until((s) => s.events.length === 10, 2000);
    assert.equal(sink.writes, 1, 'one write for the burst');
    // ...and a lone record is written at once, not after maxDelay (5 s).
    const t0 = performance.now();
    d.enqueue(records(11, 1));
    await sink.until((s) => s.events.length === 11, 2000);
    assert.ok(performance.now() - t0 < 1000, `written after ${performance.now() - t0} ms`);
    assert.equal(sink.writes, 2);
    await d.close();
  });

  it('stops waiting after batch.maxDelay even while records keep coming', async () => {
    const sink = new MemorySink('a', { delayMs: 0, failFirst: 0 });
    const d = new Dispatcher([{ config: sinkConfig('a', { batch: { maxRecords: 1_000_000, maxDelayMs: 30 } }), sink }], {
      log: silentLogger,
    });
    d.start();
    let seq = 1;
    const until = performance.now() + 300;
    await new Promise<void>((resolve) => {
      const more = () => {
        d.enqueue(records(seq++, 1));
        if (performance.now() < until && seq < 200_000) setImmediate(more);
        else resolve();
      };
      more();
    });
    await sink.until((s) => s.events.length === seq - 1, 2000);
    assert.ok(sink.writes >= 3, `${sink.writes} writes in 300 ms of steady arrivals with maxDelay 30 ms`);
    await d.close();
  });

  it('retries the SAME batch until it succeeds', async () => {
    const sink = new MemorySink('a', { delayMs: 0, failFirst: 3 });
    const seen: SinkRecord[][] = [];
    const write = sink.write.bind(sink);
    sink.write = (b) => {
      seen.push(b);
      return write(b);
    };
    const d = new Dispatcher([{ config: sinkConfig('a'), sink }], { log: silentLogger, random: () => 0 });
    d.start();
    d.enqueue(records(1, 5));
    await sink.until((s) => s.events.length === 5, 2000);
    assert.equal(seen.length, 4);
    for (const b of seen) assert.equal(b, seen[0], 'the same array, not a rebuilt batch');
    const st = d.stats()[0]!;
    assert.equal(st.retries, 3);
    assert.equal(st.written, 5);
    assert.equal(st.lastError, null);
    await d.close();
  });

  it('a failing sink does not hold back a healthy one', async () => {
    const bad = new MemorySink('bad', { delayMs: 0, failFirst: 1_000_000 });
    const good = new MemorySink('good', { delayMs: 0, failFirst: 0 });
    const d = new Dispatcher(
      [
        { config: sinkConfig('bad', { retry: { initialMs: 20, maxMs: 20 } }), sink: bad },
        { config: sinkConfig('good'), sink: good },
      ],
      { log: silentLogger },
    );
    d.start();
    d.enqueue(records(1, 30));
    await good.until((s) => s.events.length === 30, 2000);
    const st = d.stats();
    assert.equal(st[0]!.written, 0);
    assert.ok(st[0]!.retries >= 1);
    assert.match(st[0]!.lastError!, /injected failure/);
    await d.close(50);
  });

  it('a full non-required queue drops its oldest events and reports them, per agent, in its next batch', async () => {
    const sink = new MemorySink('opt', { delayMs: 0, failFirst: 0 });
    sink.block();
    const d = new Dispatcher(
      [
        {
          config: sinkConfig('opt', { required: false, queue: { maxRecords: 10 }, batch: { maxRecords: 5, maxDelayMs: 1 } }),
          sink,
        },
      ],
      { log: silentLogger },
    );
    d.start();
    d.enqueue(records(1, 5));
    await eventually(() => d.stats()[0]!.inFlight === 5, 1000, 'a batch in flight');
    const loss: QueuedRecord = {
      record: {
        kind: 'loss',
        loss: {
          agent: stream.agent,
          fromSeq: 0n,
          toSeq: 0n,
          reason: 'agent reported losses',
          counters: undefined,
          timeUnixNano: 1n,
        },
      },
      stream,
    };
    d.enqueue([loss, ...records(6, 20)]); // 21 into a queue of 10
    assert.equal(d.stats()[0]!.queued, 10);
    assert.equal(d.stats()[0]!.dropped, 10, 'events 6..15 dropped; the loss record is carried, not dropped');
    sink.open();
    await eventually(() => d.stats()[0]!.queued === 0 && d.stats()[0]!.inFlight === 0, 2000, 'drained');
    const overflow = sink.losses.filter((l) => l.reason === 'sink queue overflow');
    assert.equal(overflow.length, 1);
    assert.equal(overflow[0]!.fromSeq, 6n);
    assert.equal(overflow[0]!.toSeq, 15n);
    assert.equal(overflow[0]!.counters?.queueDrops, 10n);
    assert.equal(overflow[0]!.agent?.instanceId, stream.agent.instanceId);
    assert.equal(sink.losses.filter((l) => l.reason === 'agent reported losses').length, 1);
    assert.deepEqual(
      sink.events.map((e) => Number(e.seq)),
      [1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25],
    );
    await d.close();
  });

  it('a full required queue never drops: enqueue overshoots, accepting turns false until there is room', async () => {
    const sink = new MemorySink('req', { delayMs: 0, failFirst: 0 });
    sink.block();
    const d = new Dispatcher(
      [{ config: sinkConfig('req', { queue: { maxRecords: 10 }, batch: { maxRecords: 5, maxDelayMs: 1 } }), sink }],
      {
        log: silentLogger,
      },
    );
    d.start();
    d.enqueue(records(1, 30));
    assert.equal(d.accepting, false);
    let waited = false;
    const room = d.whenAccepting().then(() => {
      waited = true;
    });
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(waited, false);
    assert.equal(d.stats()[0]!.dropped, 0);
    sink.open();
    await room;
    assert.ok(await d.drain(2000));
    assert.equal(sink.events.length, 30);
    await d.close();
  });

  it('readers stop decoding once a required queue holds 4 of its batches, long before queue.maxRecords', async () => {
    const sink = new MemorySink('req', { delayMs: 0, failFirst: 0 });
    sink.block();
    const d = new Dispatcher(
      [{ config: sinkConfig('req', { queue: { maxRecords: 1000 }, batch: { maxRecords: 5, maxDelayMs: 1 } }), sink }],
      { log: silentLogger },
    );
    d.start();
    d.enqueue(records(1, 12));
    assert.equal(d.accepting, true, '12 queued: under the read-ahead of 4 x 5');
    d.enqueue(records(13, 28));
    assert.equal(d.accepting, false, 'at least 35 queued of 1000 allowed: the read-ahead holds the readers');
    sink.open();
    await d.whenAccepting();
    assert.ok(await d.drain(2000));
    assert.equal(sink.events.length, 40);
    assert.equal(d.stats()[0]!.dropped, 0);
    await d.close();
  });

  it('drain() times out on a stuck sink and says so', async () => {
    const sink = new MemorySink('stuck', { delayMs: 0, failFirst: 0 });
    sink.block();
    const d = new Dispatcher([{ config: sinkConfig('stuck'), sink }], { log: silentLogger });
    d.start();
    d.enqueue(records(1, 3));
    const t0 = Date.now();
    assert.equal(await d.drain(100), false);
    assert.ok(Date.now() - t0 < 1000);
    await d.close(10);
    assert.equal(sink.events.length, 0);
  });
});
