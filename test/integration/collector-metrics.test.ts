import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { RunningCollector } from '../../src/collector/collector.js';
import { httpGet, metricSample } from '../helpers/agent-harness.js';
import {
  agentIdentity,
  clientCredentials,
  eventually,
  type MemorySinks,
  makeBatch,
  startMemoryCollector,
  TestAgent,
} from '../helpers/memory-sink.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { checkMetrics } from '../helpers/prometheus.js';

// The collector's /healthz, /readyz and /metrics (health.address) over real gRPC + mTLS: readiness follows
// the required sink, every counter moves with what the agents sent, and the exposition passes the real
// `promtool check metrics`.

let pki: Pki;
let creds: ChannelCredentials;
let collector: RunningCollector;
let mem: MemorySinks;
let port: number;
const agents: TestAgent[] = [];

before(async () => {
  pki = makePki();
  const c = pki.client('agent');
  creds = clientCredentials({ ca: pki.caPem, key: c.keyPem, cert: c.certPem });
  ({ collector, mem } = await startMemoryCollector(
    pki,
    [
      { name: 'flaky', failFirst: 2, retry: { initial: '150ms', max: '150ms' }, batch: { maxDelay: '5ms' } },
      {
        name: 'small',
        required: false,
        delayMs: 50,
        queue: { maxRecords: 20 },
        batch: { maxRecords: 10, maxDelay: '5ms' },
      },
    ],
    { drainTimeout: '2s', health: { address: '127.0.0.1:0' } },
    { random: () => 1 },
  ));
  port = collector.healthAddress!.port;
});

after(async () => {
  for (const a of agents) a.close();
  await collector?.stop();
});

function agent(): TestAgent {
  const a = new TestAgent(collector.port, creds);
  agents.push(a);
  return a;
}

const scrape = async () => (await httpGet(port, '/metrics')).body;

describe('collector /healthz, /readyz, /metrics', () => {
  it('serves /healthz and reports readiness per required sink', async () => {
    assert.ok(collector.healthAddress, 'health.address set: endpoints served');
    const h = await httpGet(port, '/healthz');
    assert.equal(h.status, 200);
    const ready = await httpGet(port, '/readyz');
    assert.equal(ready.status, 200, ready.body);
    assert.match(ready.body, /^ready\n\[\+\] grpc: listening on 127\.0\.0\.1:\d+\n\[\+\] sink flaky: ok/);
    assert.match(ready.body, /\[\+\] sink small \(not required\): ok/);
    assert.equal(metricSample(await scrape(), 'doorwatch_collector_ready'), 1);

    // The required sink fails twice: not ready while it retries, ready again after its first success.
    const a = agent()
      .hello(agentIdentity('n1'))
      .batch(makeBatch(1, 10, { node: 'n1', namespace: 'shop' }));
    await mem.get('flaky').until((s) => s.failures >= 1, 3000, 'a failure');
    const failing = await httpGet(port, '/readyz?format=json');
    assert.equal(failing.status, 503);
    const r = JSON.parse(failing.body) as { ready: boolean; checks: { name: string; ok: boolean; detail: string }[] };
    assert.equal(r.ready, false);
    assert.match(r.checks.find((c) => c.name === 'sink flaky')!.detail, /write failing \(retrying\): .*injected failure/);
    assert.equal(metricSample(await scrape(), 'doorwatch_collector_ready'), 0);
    assert.equal(metricSample(await scrape(), 'doorwatch_collector_sink_healthy{sink="flaky",type="memory",required="true"}'), 0);
    await a.waitAck(10, 5000);
    assert.equal((await httpGet(port, '/readyz')).status, 200);
  });

  it('counts streams, events, duplicates, gaps, losses, sinks and acks', async () => {
    const a = agent().hello(agentIdentity('n2'));
    a.batch(makeBatch(1, 100, { node: 'n2', namespace: 'shop' }));
    a.batch(makeBatch(51, 100, { node: 'n2', namespace: 'shop' })); // 51..100 replayed: 50 duplicates
    a.batch(makeBatch(201, 50, { node: 'n2' })); // 151..200 never sent: a gap; no pod: namespace _none
    a.send({
      batch: {
        firstSeq: 0n,
        events: [],
        losses: { kernelRingFull: 3n, decodeErrors: 0n, bpfRecursionMisses: 0n, queueDrops: 0n, spoolDrops: 2n },
      },
    });
    await a.waitAck(250, 5000);
    await eventually(
      () => {
        const s = collector.stats().sinks.find((x) => x.name === 'small')!;
        return s.queued === 0 && s.inFlight === 0;
      },
      5000,
      'the small sink to catch up',
    );
    const m = await scrape();
    const v = (series: string) => metricSample(m, series);
    assert.equal(v('doorwatch_collector_agent_streams{node="n2"}'), 1);
    assert.equal(v('doorwatch_collector_events_received_total{node="n2"}'), 200);
    assert.equal(v('doorwatch_collector_events_received_total{node="n1"}'), 10);
    assert.equal(v('doorwatch_collector_duplicates_total{node="n2"}'), 50);
    assert.equal(v('doorwatch_collector_seq_gaps_total{node="n2"}'), 1);
    assert.equal(v('doorwatch_collector_seq_gap_events_total{node="n2"}'), 50);
    assert.equal(v('doorwatch_collector_accepts_total{pod_namespace="shop",result="success"}'), 160);
    assert.equal(v('doorwatch_collector_accepts_total{pod_namespace="_none",result="success"}'), 50);
    assert.equal(v('doorwatch_collector_loss_records_total{reason="seq_gap"}'), 1);
    assert.equal(v('doorwatch_collector_loss_records_total{reason="agent_reported"}'), 1);
    const small = collector.stats().sinks.find((x) => x.name === 'small')!;
    assert.ok(small.dropped > 0, 'the small queue overflowed');
    assert.equal(v('doorwatch_collector_sink_dropped_total{sink="small",type="memory",required="false"}'), small.dropped);
    assert.equal(v('doorwatch_collector_loss_records_total{reason="sink_queue_overflow"}'), small.overflowRecords);
    assert.ok(small.overflowRecords > 0);
    // In: 10 + 200 events and 2 loss records per sink; out: everything, for the required sink.
    assert.equal(v('doorwatch_collector_sink_enqueued_total{sink="flaky",type="memory",required="true"}'), 212);
    assert.equal(v('doorwatch_collector_sink_written_total{sink="flaky",type="memory",required="true"}'), 212);
    assert.equal(v('doorwatch_collector_sink_write_errors_total{sink="flaky",type="memory",required="true"}'), 2);
    assert.equal(v('doorwatch_collector_sink_queue_records{sink="flaky",type="memory",required="true"}'), 0);
    assert.equal(v('doorwatch_collector_sink_queue_capacity_records{sink="small",type="memory",required="false"}'), 20);
    assert.ok(v('doorwatch_collector_sink_last_write_timestamp_seconds{sink="flaky",type="memory",required="true"}')! > 1.7e9);
    const writes = v('doorwatch_collector_sink_write_duration_seconds_count{sink="flaky"}')!;
    assert.ok(writes >= 2, `write latency observed per batch (${writes})`);
    assert.ok(writes < 212, 'per batch, not per event');
    const acks = v('doorwatch_collector_ack_latency_seconds_count')!;
    assert.ok(acks >= 3 && acks <= 4, `one ack-latency observation per acked batch with events (${acks})`);
    // The first batch waited out two failed writes and their 150 ms retries.
    assert.ok(v('doorwatch_collector_ack_latency_seconds_bucket{le="0.25"}')! < acks, 'the slow first batch is seen');
    assert.equal(v('doorwatch_collector_batches_total'), 5);
    assert.equal(v('doorwatch_collector_refusals_total{reason="tls_unknown_ca"}'), 0);
    assert.equal(v('doorwatch_collector_subscribers'), 0);
    assert.ok(v('doorwatch_collector_connections')! >= 1);
    assert.ok(v('process_cpu_seconds_total') !== undefined, 'process metrics');
  });

  it('a refusal is counted by reason', async () => {
    const stranger = makePki().client('stranger');
    const a = new TestAgent(collector.port, clientCredentials({ ca: pki.caPem, key: stranger.keyPem, cert: stranger.certPem }));
    agents.push(a);
    a.hello(agentIdentity('n3'));
    await eventually(() => collector.stats().refusals.tls_unknown_ca > 0, 5000, 'the unknown client certificate to be refused');
    assert.equal(metricSample(await scrape(), 'doorwatch_collector_refusals_total{reason="tls_unknown_ca"}'), 1);
  });

  it('the exposition passes promtool check metrics', async () => {
    assert.deepEqual(checkMetrics(await scrape()), []);
  });
});
