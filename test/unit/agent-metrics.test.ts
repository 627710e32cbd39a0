import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AgentMetrics, type MetricsSources } from '../../src/agent/metrics.js';
import { Publisher } from '../../src/agent/publisher.js';
import { Spool } from '../../src/agent/spool.js';
import type { KernelCounters } from '../../src/bpf/accept-probes.js';
import type { CaptureStats } from '../../src/capture/capture.js';
import type { EnricherStats } from '../../src/enrich/enricher.js';
import { AcceptEvent, EventKind, Source, SummaryReason } from '../../src/gen/doorwatch/v1/event.js';
import type { KubeSourceStatus } from '../../src/kube/source.js';
import { metricSample as value } from '../helpers/agent-harness.js';
import { FakeCollector, makeEvents } from '../helpers/fake-collector.js';
import { makePki } from '../helpers/pki.js';
import { until } from '../helpers/wait.js';

// The exposition the agent serves on /metrics, from fake stats objects.

const kernel = (o: Partial<KernelCounters> = {}): KernelCounters =>
  ({
    EMITTED: 0n,
    RINGBUF_FULL: 0n,
    EXIT_NO_ENTER: 0n,
    EAGAIN_SKIPPED: 0n,
    IO_URING: 0n,
    CGROUP_FILTERED: 0n,
    ENTER_MAP_FULL: 0n,
    SOCK_UNRESOLVED: 0n,
    ...o,
  }) as KernelCounters;

function capture(o: Partial<CaptureStats> = {}): CaptureStats {
  return { kernel: kernel(), programs: [], delivered: 0n, decodeErrors: 0n, ...o };
}

function enricher(o: Partial<EnricherStats> = {}): EnricherStats {
  return { complete: 0, partial: 0, host: 0, pending: 0, pendingExpired: 0, pendingOverflow: 0, procFallback: 0, ...o };
}

function ev(source: Source, success: boolean): AcceptEvent {
  return AcceptEvent.fromPartial({ source, success, ret: success ? 5 : -9, error: success ? '' : 'EBADF' });
}

const metrics = (sources: Partial<MetricsSources> = {}) => {
  const m = new AgentMetrics({ info: { version: '9.9.9', node: 'node-a' }, processMetrics: false });
  m.setSources(sources);
  return m;
};

describe('agent metrics', () => {
  it('doorwatch_events_total: by syscall and status, counted per batch; a summary counts what it stands for', async () => {
    const m = metrics();
    m.countEvents([ev(Source.SOURCE_ACCEPT, true), ev(Source.SOURCE_ACCEPT, true), ev(Source.SOURCE_ACCEPT4, false)]);
    m.countEvents([ev(Source.SOURCE_IO_URING, true)]);
    m.countEvents([
      AcceptEvent.fromPartial({
        source: Source.SOURCE_ACCEPT4,
        success: true,
        kind: EventKind.EVENT_KIND_SUMMARY,
        summary: { reason: SummaryReason.SUMMARY_REASON_MODE, count: 10n, failedCount: 3n },
      }),
    ]);
    const t = (await m.scrape()).body;
    assert.match(t, /# TYPE doorwatch_events_total counter/);
    assert.equal(value(t, 'doorwatch_events_total{syscall="accept",status="success"}'), 2);
    assert.equal(value(t, 'doorwatch_events_total{syscall="accept",status="error"}'), 0);
    assert.equal(value(t, 'doorwatch_events_total{syscall="accept4",status="success"}'), 7);
    assert.equal(value(t, 'doorwatch_events_total{syscall="accept4",status="error"}'), 4);
    assert.equal(value(t, 'doorwatch_events_total{syscall="io_uring",status="success"}'), 1);
    assert.equal(value(t, 'doorwatch_events_total{syscall="io_uring",status="error"}'), 0);
    assert.doesNotMatch(t, /syscall="unknown"/);
  });

  it('kernel counters, drops, decode errors and per-program stats are read at scrape time', async () => {
    let stats = capture({
      kernel: kernel({ EMITTED: 120n, RINGBUF_FULL: 7n, EAGAIN_SKIPPED: 40n, IO_URING: 2n }),
      programs: [
        { name: 'dw_exit_accept4', runTimeNs: 1_500_000_000n, runCount: 300n, recursionMisses: 1n },
        { name: 'dw_enter_accept4', runTimeNs: 0n, runCount: 0n, recursionMisses: 0n },
      ],
      delivered: 118n,
      decodeErrors: 2n,
    });
    let reads = 0;
    const m = metrics({
      capture: () => {
        reads++;
        return stats;
      },
    });
    const t = (await m.scrape()).body;
    assert.equal(reads, 1, 'one scrape reads the kernel maps once, for every metric');
    assert.equal(value(t, 'doorwatch_kernel_events_total{counter="emitted"}'), 120);
    assert.equal(value(t, 'doorwatch_kernel_events_total{counter="eagain_skipped"}'), 40);
    assert.equal(value(t, 'doorwatch_kernel_events_total{counter="io_uring"}'), 2);
    assert.equal(value(t, 'doorwatch_kernel_events_total{counter="ringbuf_full"}'), undefined, 'drops are their own metric');
    assert.equal(value(t, 'doorwatch_kernel_dropped_total{reason="ring_buffer_full"}'), 7);
    assert.equal(value(t, 'doorwatch_decode_errors_total'), 2);
    assert.equal(value(t, 'doorwatch_captured_events_total'), 118);
    assert.equal(value(t, 'doorwatch_bpf_program_run_time_seconds_total{program="dw_exit_accept4"}'), 1.5);
    assert.equal(value(t, 'doorwatch_bpf_program_run_count_total{program="dw_exit_accept4"}'), 300);
    assert.equal(value(t, 'doorwatch_bpf_program_recursion_misses_total{program="dw_exit_accept4"}'), 1);
    assert.equal(value(t, 'doorwatch_bpf_program_run_count_total{program="dw_enter_accept4"}'), 0);

    // The next scrape reads them again, and sees the new values.
    stats = capture({ kernel: kernel({ EMITTED: 500n, RINGBUF_FULL: 9n }) });
    const t2 = (await m.scrape()).body;
    assert.equal(reads, 2);
    assert.equal(value(t2, 'doorwatch_kernel_events_total{counter="emitted"}'), 500);
    assert.equal(value(t2, 'doorwatch_kernel_dropped_total{reason="ring_buffer_full"}'), 9);
    assert.equal(value(t2, 'doorwatch_bpf_program_run_count_total{program="dw_exit_accept4"}'), undefined, 'no stale series');
  });

  it('enrichment, Kubernetes, spool and collector state', async () => {
    const kube: KubeSourceStatus = { synced: true, connected: false, restarts: 3, pods: 12, namespaces: 4, deletedRetained: 1 };
    const m = metrics({
      enricher: () =>
        enricher({ complete: 50, partial: 4, host: 9, pending: 2, pendingExpired: 1, pendingOverflow: 5, procFallback: 6 }),
      kube: () => kube,
      spool: () => ({ bytes: 4096, segments: 2, dropsTotal: 11n, unconfirmedDrops: 0n, maxBytes: 1 << 20 }),
      publisher: () => ({
        connected: true,
        lastError: undefined,
        lastErrorAt: undefined,
        ackedSeq: 1234n,
        inFlightBatches: 3,
        batchContexts: true,
        spoolBytes: 4096,
        spoolDrops: 11n,
        reconnects: 2,
        lastRttMs: 5,
        lastBackoffMs: 0,
        draining: undefined,
      }),
      readiness: () => ({ ready: true, mode: 'connected', checks: [] }),
    });
    const t = (await m.scrape()).body;
    assert.equal(value(t, 'doorwatch_enrichment_total{status="complete"}'), 50);
    assert.equal(value(t, 'doorwatch_enrichment_total{status="partial"}'), 4);
    assert.equal(value(t, 'doorwatch_enrichment_total{status="host"}'), 9);
    assert.equal(value(t, 'doorwatch_enrichment_pending'), 2);
    assert.equal(value(t, 'doorwatch_enrichment_pending_expired_total'), 1);
    assert.equal(value(t, 'doorwatch_enrichment_pending_overflow_total'), 5);
    assert.equal(value(t, 'doorwatch_enrichment_proc_fallback_total'), 6);
    assert.equal(value(t, 'doorwatch_kube_informer_synced'), 1);
    assert.equal(value(t, 'doorwatch_kube_informer_connected'), 0);
    assert.equal(value(t, 'doorwatch_kube_informer_restarts_total'), 3);
    assert.equal(value(t, 'doorwatch_kube_pods'), 12);
    assert.equal(value(t, 'doorwatch_spool_bytes'), 4096);
    assert.equal(value(t, 'doorwatch_spool_max_bytes'), 1 << 20);
    assert.equal(value(t, 'doorwatch_spool_segments'), 2);
    assert.equal(value(t, 'doorwatch_spool_dropped_total'), 11);
    assert.equal(value(t, 'doorwatch_spool_acked_seq'), 1234);
    assert.equal(value(t, 'doorwatch_collector_connected'), 1);
    assert.equal(value(t, 'doorwatch_collector_in_flight_batches'), 3);
    assert.equal(value(t, 'doorwatch_collector_batch_contexts'), 1);
    assert.equal(value(t, 'doorwatch_collector_reconnects_total'), 2);
    assert.equal(value(t, 'doorwatch_agent_ready'), 1);
  });

  it('doorwatch_agent_info carries the identity; unset sources give no samples, not errors', async () => {
    const m = new AgentMetrics({
      info: { version: '1.2.3', node: 'node-a', pod: 'doorwatch-agent-x7k2p', namespace: 'doorwatch' },
      processMetrics: false,
    });
    m.setInfo({ instance: 'abc123' });
    const t = (await m.scrape()).body;
    assert.equal(
      value(
        t,
        'doorwatch_agent_info{version="1.2.3",node="node-a",pod="doorwatch-agent-x7k2p",namespace="doorwatch",instance="abc123"}',
      ),
      1,
    );
    assert.match(
      t,
      /# TYPE doorwatch_kube_informer_synced gauge\n(?!doorwatch_kube_informer_synced)/,
      'no sample without a source',
    );
    assert.equal(value(t, 'doorwatch_spool_bytes'), undefined);
  });

  it('doorwatch_collector_rtt_seconds is a histogram of acknowledgement round trips', async () => {
    const m = metrics();
    m.observeRtt(3);
    m.observeRtt(40);
    m.observeRtt(1200);
    const t = (await m.scrape()).body;
    assert.match(t, /# TYPE doorwatch_collector_rtt_seconds histogram/);
    assert.equal(value(t, 'doorwatch_collector_rtt_seconds_bucket{le="0.005"}'), 1);
    assert.equal(value(t, 'doorwatch_collector_rtt_seconds_bucket{le="0.05"}'), 2);
    assert.equal(value(t, 'doorwatch_collector_rtt_seconds_bucket{le="+Inf"}'), 3);
    assert.equal(value(t, 'doorwatch_collector_rtt_seconds_count'), 3);
    assert.ok(Math.abs(value(t, 'doorwatch_collector_rtt_seconds_sum')! - 1.243) < 1e-9);
  });

  it('other modules add their own metrics with addCollector (read at scrape time)', async () => {
    const m = metrics();
    const perPolicy = new Map([
      ['payments/audit-all', 10n],
      ['default/summary', 3n],
    ]);
    m.addCollector({
      name: 'doorwatch_policy_events_total',
      help: 'Accepts per audit policy',
      type: 'counter',
      labelNames: ['policy'],
      collect: () => [...perPolicy].map(([policy, v]) => ({ labels: { policy }, value: v })),
    });
    m.addCollector({ name: 'doorwatch_policy_count', help: 'Policies in force', type: 'gauge', collect: () => [{ value: 2 }] });
    let t = (await m.scrape()).body;
    assert.equal(value(t, 'doorwatch_policy_events_total{policy="payments/audit-all"}'), 10);
    assert.equal(value(t, 'doorwatch_policy_count'), 2);
    perPolicy.delete('default/summary');
    perPolicy.set('payments/audit-all', 12n);
    t = (await m.scrape()).body;
    assert.equal(value(t, 'doorwatch_policy_events_total{policy="payments/audit-all"}'), 12);
    assert.equal(value(t, 'doorwatch_policy_events_total{policy="default/summary"}'), undefined, 'a removed policy leaves');
    assert.throws(
      () => m.addCollector({ name: 'doorwatch_policy_count', help: 'x', type: 'gauge', collect: () => [] }),
      /already been registered/,
    );
  });

  it('its own registry: process metrics on request, nothing on the global registry', async () => {
    const withProcess = new AgentMetrics({ info: { version: '1', node: 'n' } });
    const t = (await withProcess.scrape()).body;
    assert.match(t, /^process_cpu_user_seconds_total \d/m);
    assert.match(t, /^nodejs_eventloop_lag_seconds \d/m);
    const { register } = await import('prom-client');
    assert.equal(await register.getSingleMetric('doorwatch_events_total'), undefined);
    assert.match((await withProcess.scrape()).contentType, /^text\/plain; version=0\.0\.4/);
  });
});

describe('Publisher onAck hook (feeds doorwatch_collector_rtt_seconds)', () => {
  const pki = makePki();
  const dir = mkdtempSync(join(tmpdir(), 'dw-metrics-rtt-'));
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  });

  it('reports now() at the ack minus now() when the newest acknowledged batch was sent, once per ack', async () => {
    const c = await FakeCollector.start(pki, { ack: 'never' });
    const spool = Spool.open({ dir, bootId: 'boot-rtt' });
    const agent = pki.client('agent-rtt');
    let clock = 1000;
    const rtts: number[] = [];
    const pub = new Publisher({
      target: c.target,
      tls: { ca: pki.caPem, cert: agent.certPem, key: agent.keyPem, serverName: 'localhost' },
      identity: { nodeName: 'node-a', version: 'test' },
      spool,
      batch: { maxEvents: 10, maxDelayMs: 10 },
      now: () => clock,
      onAck: (ms) => rtts.push(ms),
    });
    try {
      pub.start();
      pub.publish(makeEvents(spool.identity, 1n, 10));
      await until(() => c.received === 10, 'the batch at the collector', 10_000);
      clock = 1250;
      c.ackNow();
      await until(() => rtts.length === 1, 'the ack', 5000);
      assert.deepEqual(rtts, [250]);
      assert.equal(pub.status().lastRttMs, 250);
      c.ackNow(); // nothing new acknowledged: no call
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(rtts, [250]);
    } finally {
      await pub.close({ flushTimeoutMs: 100 });
      spool.close();
      await c.close();
    }
  });
});
