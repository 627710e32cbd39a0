import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, before, describe, it } from 'node:test';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { ClientError, Status } from 'nice-grpc';
import { CollectorStartError, type RunningCollector, startCollector } from '../../src/collector/collector.js';
import { parseCollectorConfig } from '../../src/collector/config.js';
import { silentLogger } from '../../src/log/logger.js';
import {
  agentIdentity,
  bounded,
  clientCredentials,
  eventually,
  type MemorySinks,
  makeBatch,
  memorySinks,
  startMemoryCollector,
  TestAgent,
} from '../helpers/memory-sink.js';
import { makePki, type Pki } from '../helpers/pki.js';

// What the sinks see and when the agent is acked: slow and failing sinks,
// back-pressure, rate limiting, and shutdown. Real gRPC + mTLS throughout.

let pki: Pki;
let creds: ChannelCredentials;
const cleanups: (() => unknown)[] = [];

before(() => {
  pki = makePki();
  const c = pki.client('agent');
  creds = clientCredentials({ ca: pki.caPem, key: c.keyPem, cert: c.certPem });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(
  sinks: Record<string, unknown>[],
  extra: Record<string, unknown> = {},
): Promise<{ collector: RunningCollector; mem: MemorySinks; agent(): TestAgent }> {
  const { collector, mem } = await startMemoryCollector(pki, sinks, { drainTimeout: '2s', ...extra }, { random: () => 1 });
  cleanups.push(() => collector.stop());
  return {
    collector,
    mem,
    agent() {
      const a = new TestAgent(collector.port, creds);
      cleanups.push(() => a.close());
      return a;
    },
  };
}

const total = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

describe('collector delivery', () => {
  it('a slow non-required sink neither delays acks nor the required sink; its drops are counted and reported', async () => {
    const { collector, mem, agent } = await start([
      { name: 'fast', batch: { maxDelay: '5ms' } },
      { name: 'slow', required: false, delayMs: 100, queue: { maxRecords: 200 }, batch: { maxRecords: 50, maxDelay: '5ms' } },
    ]);
    const id = agentIdentity('n1');
    const a = agent().hello(id);
    for (let i = 0; i < 20; i++) a.batch(makeBatch(1 + i * 100, 100, { node: 'n1' }));
    await a.waitAck(2000, 5000);
    const slow = mem.get('slow');
    assert.equal(mem.get('fast').events.length, 2000);
    assert.ok(slow.events.length < 500, `acks did not wait for the slow sink (it had ${slow.events.length})`);

    await eventually(
      () => {
        const s = collector.stats().sinks.find((x) => x.name === 'slow')!;
        return s.queued === 0 && s.inFlight === 0 && slow.losses.length > 0;
      },
      5000,
      'the slow sink to catch up',
    );
    const stats = collector.stats().sinks.find((x) => x.name === 'slow')!;
    const reports = slow.losses;
    assert.ok(stats.dropped > 0);
    for (const l of reports) {
      assert.equal(l.reason, 'sink queue overflow');
      assert.equal(l.agent?.instanceId, id.instanceId);
      assert.ok(l.fromSeq >= 1n && l.toSeq <= 2000n && l.fromSeq <= l.toSeq);
    }
    const reported = total(reports.map((l) => l.counters?.queueDrops ?? 0n));
    assert.equal(reported, BigInt(stats.dropped), 'every drop is reported to the sink');
    assert.equal(BigInt(slow.events.length) + reported, 2000n, 'written + dropped = sent');
    // Persisted events are still unique and in order.
    const seqs = slow.events.map((e) => e.seq);
    assert.deepEqual(seqs, [...new Set(seqs)]);
    assert.equal(collector.stats().sinks.find((x) => x.name === 'fast')!.dropped, 0);
    assert.equal(mem.get('fast').losses.length, 0);
  });

  it('a required sink that fails 3 times then succeeds: no loss, acks wait for the success', async () => {
    const { collector, mem, agent } = await start([
      { name: 'flaky', failFirst: 3, retry: { initial: '60ms', max: '120ms' }, batch: { maxDelay: '5ms' } },
    ]);
    const a = agent()
      .hello(agentIdentity('n2'))
      .batch(makeBatch(1, 10, { node: 'n2' }));
    const flaky = mem.get('flaky');
    await flaky.until((s) => s.failures >= 2, 3000, 'two failures');
    assert.deepEqual(a.acks, [], 'no ack while the sink fails');
    assert.match(collector.stats().sinks[0]!.lastError ?? '', /injected failure/);
    await a.waitAck(10, 3000);
    assert.equal(flaky.failures, 3);
    assert.deepEqual(
      flaky.events.map((e) => Number(e.seq)),
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
    const s = collector.stats().sinks[0]!;
    assert.equal(s.retries, 3);
    assert.equal(s.lastError, null);
    assert.equal(s.written, 10);
  });

  it('back-pressure: a blocked required sink stops the reading, nothing is dropped, all arrive once unblocked', async () => {
    const { collector, mem, agent } = await start([
      { name: 'stuck', queue: { maxRecords: 500 }, batch: { maxRecords: 100, maxDelay: '5ms' } },
    ]);
    const stuck = mem.get('stuck');
    stuck.block();
    const a = agent().hello(agentIdentity('n3'));
    const batches = 300;
    const per = 100;
    for (let i = 0; i < batches; i++) a.batch(makeBatch(1 + i * per, per, { node: 'n3' }));
    await eventually(() => collector.stats().backpressureWaits > 0, 5000, 'the reader to wait for room');
    // The transport fills up and the agent's sends stall: no progress for 300ms.
    let prev = -1;
    for (let i = 0; i < 50 && a.pulled !== prev; i++) {
      prev = a.pulled;
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal(a.pulled, prev, 'the agent stalled');
    assert.ok(a.pulled < batches, `the agent stalled after ${a.pulled}/${batches} batches`);
    const s = collector.stats();
    assert.ok(s.sinks[0]!.queued <= 500 + per, `queue bounded (${s.sinks[0]!.queued})`);
    assert.ok(s.accepted <= 500 + 2 * per, `the collector stopped reading (${s.accepted} accepted)`);
    assert.deepEqual(a.acks, []);

    stuck.open();
    await a.waitAck(batches * per, 10_000);
    assert.equal(stuck.events.length, batches * per);
    assert.equal(new Set(stuck.events.map((e) => e.seq)).size, batches * per);
    assert.equal(collector.stats().sinks[0]!.dropped, 0);
    assert.equal(stuck.losses.length, 0);
  });

  it('rate limit: a stream over eventsPerSecond is slowed down, not dropped from', async () => {
    const { collector, mem, agent } = await start([{ name: 'm', batch: { maxDelay: '5ms' } }], {
      rateLimit: { eventsPerSecond: 2000, burst: 200 },
    });
    const t0 = Date.now();
    const a = agent().hello(agentIdentity('n4'));
    for (let i = 0; i < 10; i++) a.batch(makeBatch(1 + i * 100, 100, { node: 'n4' }));
    await a.waitAck(1000, 5000);
    const elapsed = Date.now() - t0;
    // 1000 events, 200 burst, 2000/s: at least ~350ms of waiting.
    assert.ok(elapsed >= 300, `took ${elapsed}ms`);
    assert.ok(collector.stats().rateLimitedMs >= 300);
    assert.equal(mem.get('m').events.length, 1000);
  });

  it('with no required sink, acks mean "enqueued"', async () => {
    const { mem, agent } = await start([{ name: 'opt', required: false }]);
    mem.get('opt').block();
    const a = agent().hello(agentIdentity('n5')).batch(makeBatch(1, 5));
    await a.waitAck(5);
    assert.equal(mem.get('opt').events.length, 0);
    mem.get('opt').open();
    await mem.get('opt').until((m) => m.events.length === 5, 2000);
  });

  it('stop() drains the queues, sends the last ack, ends streams with UNAVAILABLE and closes the sinks', async () => {
    const { collector, mem, agent } = await start([{ name: 'm', batch: { maxDelay: '5ms' } }]);
    const m = mem.get('m');
    m.block();
    const a = agent()
      .hello(agentIdentity('n6'))
      .batch(makeBatch(1, 300, { node: 'n6' }));
    await eventually(() => collector.stats().accepted === 300, 3000, 'events accepted');
    setTimeout(() => m.open(), 100);
    await bounded(collector.stop(), 5000, 'stop');
    assert.equal(m.events.length, 300);
    assert.ok(m.closed);
    const err = await bounded(a.outcome, 3000, 'the stream to end');
    assert.equal(a.lastAck, 300n, 'the last ack went out before the stream ended');
    assert.ok(err instanceof ClientError);
    assert.equal(err.code, Status.UNAVAILABLE);
    assert.match(err.details, /shutting down/);
  });

  it('stop() gives up on a stuck sink after drainTimeout and never acks what it did not persist', async () => {
    const { collector, mem, agent } = await start([{ name: 'm' }], { drainTimeout: '200ms' });
    mem.get('m').block();
    const a = agent().hello(agentIdentity('n7')).batch(makeBatch(1, 10));
    await eventually(() => collector.stats().accepted === 10, 3000, 'events accepted');
    const t0 = Date.now();
    await bounded(collector.stop(), 10_000, 'stop');
    assert.ok(Date.now() - t0 < 9000);
    await bounded(a.outcome, 3000, 'the stream to end');
    assert.deepEqual(a.acks, []);
    assert.equal(mem.get('m').events.length, 0);
  });

  it('refuses to start when a sink cannot be created, naming it; the others are closed', async () => {
    const mem = memorySinks();
    const registry = { memory: mem.factory };
    const config = parseCollectorConfig(
      {
        listen: '127.0.0.1:0',
        insecure: true,
        sinks: [
          { name: 'good', type: 'memory' },
          { name: 'bad', type: 'memory', failCreate: 'connection refused by siem.example:6514' },
        ],
      },
      'test',
      registry,
    );
    await assert.rejects(
      startCollector(config, { registry, log: silentLogger }),
      (e: unknown) =>
        e instanceof CollectorStartError && /sink "bad" \(memory\) could not start: connection refused/.test(e.message),
    );
    assert.ok(mem.get('good').closed);
  });

  it('refuses to start on a port in use, and on unreadable, garbage or mismatched TLS files, naming the key', async () => {
    const { collector } = await start([{ name: 'm' }]);
    const mem = memorySinks();
    const registry = { memory: mem.factory };
    const base = { insecure: true, sinks: [{ name: 'm', type: 'memory' }] };
    const busy = parseCollectorConfig({ ...base, listen: `127.0.0.1:${collector.port}` }, 'test', registry);
    await assert.rejects(startCollector(busy, { registry, log: silentLogger }), /cannot listen on 127\.0\.0\.1:\d+/);
    assert.ok(mem.get('m').closed);
    const noFiles = parseCollectorConfig(
      {
        listen: '127.0.0.1:0',
        tls: { cert: '/nonexistent/server.crt', key: pki.server.key, clientCa: '/nonexistent/ca.crt' },
        sinks: base.sinks,
      },
      'test',
      registry,
    );
    await assert.rejects(startCollector(noFiles, { registry, log: silentLogger }), (e: Error) => {
      assert.match(e.message, /tls\.cert: cannot read "\/nonexistent\/server\.crt": ENOENT/);
      assert.match(e.message, /tls\.clientCa: cannot read/);
      return true;
    });
    // Garbage and mismatches are caught before listening (grpc-js would start
    // with a garbage client CA and then refuse every agent).
    const garbage = join(mkdtempSync(join(tmpdir(), 'dw-garbage-')), 'garbage.pem');
    writeFileSync(garbage, 'not a pem\n');
    const bad = (tls: Record<string, string>) =>
      startCollector(parseCollectorConfig({ listen: '127.0.0.1:0', tls, sinks: base.sinks }, 'test', registry), {
        registry,
        log: silentLogger,
      });
    await assert.rejects(
      bad({ cert: pki.server.cert, key: pki.server.key, clientCa: garbage }),
      /tls\.clientCa: ".*garbage\.pem" holds no PEM certificate/,
    );
    await assert.rejects(
      bad({ cert: garbage, key: garbage, clientCa: pki.caFile }),
      (e: Error) =>
        /tls\.cert: .* holds no PEM certificate/.test(e.message) && /tls\.key: .* is not a PEM private key/.test(e.message),
    );
    await assert.rejects(
      bad({ cert: pki.server.cert, key: pki.other.server.key, clientCa: pki.caFile }),
      /tls\.key: ".*impostor\.key" is not the key of the certificate/,
    );
  });
});
