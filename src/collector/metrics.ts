import { Histogram, Registry } from 'prom-client';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';
import { addProcessMetrics, addScrapeMetric, byLabel, type CollectorSpec, one } from '../observability/scrape-metrics.js';
import type { SinkStats } from './dispatcher.js';
import type { PeerSourceStatus } from './peers/source.js';
import type { PublishCounters, PublishObserver } from './publish.js';
import type { RefusalReason } from './refusals.js';
import type { NodeTotals } from './streams.js';

/**
 * The collector's Prometheus metrics (docs/metrics.md, "Collector"), on a
 * registry of its own.
 *
 * The per-event path (issue 10: a few µs per event) pays only for
 * AcceptCounts.count(): one map lookup and one integer increment per event.
 * Every other value is a plain counter the components already keep (streams,
 * dispatcher, hub, refusals), read at scrape time by collect callbacks. The
 * two histograms are observed once per batch (a sink write, an ack), never
 * per event.
 */

/** What the collector's parts report, read on every scrape. */
export interface CollectorMetricsSources {
  ready(): boolean;
  /** Per node: open sessions and counts of its streams, streams no longer tracked included (StreamTable.totalsByNode). */
  streams(): Map<string, NodeTotals>;
  sinks(): SinkStats[];
  /** queue.maxRecords per sink name. */
  queueCapacity(sink: string): number | undefined;
  publish(): PublishCounters;
  subscribers(): { subscribers: number; dropped: number };
  refusals(): Record<RefusalReason, number>;
  auth(): { reviews: number; cacheHits: number; apiErrors: number; waiting: number };
  connections(): number;
  /** The peer index (undefined: peer attribution off). */
  peers?(): PeerSourceStatus | undefined;
  /** Peer attributions made, by status label. */
  peerAttributions?(): Record<string, number>;
}

export interface CollectorMetricsOptions {
  /** prom-client's process_* and nodejs_* metrics (default true). */
  processMetrics?: boolean;
}

/** Events of a pod-less source (host processes, unattributed cgroups) are counted under this namespace. */
export const NO_NAMESPACE = '_none';
/** Namespaces past MAX_NAMESPACES are counted under this one: a hostile agent cannot grow the series. */
export const OTHER_NAMESPACES = '_other';
export const MAX_NAMESPACES = 2000;

/**
 * Accepts by pod namespace and result, counted as they arrive: a Map of small
 * arrays of plain numbers ([success, error]), no prom-client call. A summary
 * record counts the accepts it stands for.
 */
export class AcceptCounts {
  readonly byNamespace = new Map<string, [number, number]>();

  count(events: readonly AcceptEvent[]): void {
    // The wire decoder shares one Pod object between events with equal pod bytes (wire.ts), and a
    // batch's events mostly come from few pods: consecutive events of one pod skip the map.
    let lastPod: AcceptEvent['pod'] | null = null;
    let c: [number, number] = [0, 0];
    for (const ev of events) {
      const pod = ev.pod;
      if (pod !== lastPod) {
        c = this.#slot(pod?.namespace || NO_NAMESPACE);
        lastPod = pod;
      }
      const s = ev.summary;
      if (s === undefined) c[ev.success ? 0 : 1]++;
      else {
        c[1] += Number(s.failedCount);
        c[0] += Number(s.count - s.failedCount);
      }
    }
  }

  #slot(ns: string): [number, number] {
    const m = this.byNamespace;
    let c = m.get(ns);
    if (c === undefined) {
      const key = m.size < MAX_NAMESPACES ? ns : OTHER_NAMESPACES;
      c = m.get(key);
      if (c === undefined) {
        c = [0, 0];
        m.set(key, c);
      }
    }
    return c;
  }
}

/** Seconds: a sink write is a network round trip or an fsync; an ack waits for every required sink. */
export const WRITE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
export const ACK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class CollectorMetrics {
  readonly registry = new Registry();
  readonly accepts = new AcceptCounts();
  readonly #write: Histogram<'sink'>;
  readonly #writeBySink = new Map<string, ReturnType<Histogram<'sink'>['labels']>>();
  readonly #ack: Histogram;
  #sources: CollectorMetricsSources | undefined;

  constructor(o: CollectorMetricsOptions = {}) {
    if (o.processMetrics ?? true) addProcessMetrics(this.registry);
    this.#write = new Histogram({
      name: 'doorwatch_collector_sink_write_duration_seconds',
      help: 'Time of one successful batch write to a sink (failed attempts and retry waits not included)',
      labelNames: ['sink'],
      buckets: WRITE_BUCKETS,
      registers: [this.registry],
    });
    this.#ack = new Histogram({
      name: 'doorwatch_collector_ack_latency_seconds',
      help: "Time from a batch's arrival to the ack covering it (persisted by every required sink), per batch",
      buckets: ACK_BUCKETS,
      registers: [this.registry],
    });
    this.#standard();
  }

  setSources(s: CollectorMetricsSources): void {
    this.#sources = s;
  }

  /** The dispatcher's onWritten: once per persisted batch. */
  readonly onWritten = (sink: string, ms: number): void => {
    let h = this.#writeBySink.get(sink);
    if (!h) {
      h = this.#write.labels({ sink });
      this.#writeBySink.set(sink, h);
    }
    h.observe(ms / 1000);
  };

  /** The publish handler's hooks. */
  readonly observer: PublishObserver = {
    accepted: (events) => this.accepts.count(events),
    ackLatency: (seconds) => this.#ack.observe(seconds),
  };

  addCollector(spec: CollectorSpec): void {
    addScrapeMetric(this.registry, spec);
  }

  /** The exposition (Prometheus text format 0.0.4). */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  #standard(): void {
    const src = () => this.#sources;
    const add = (spec: CollectorSpec) => this.addCollector(spec);

    add({
      name: 'doorwatch_collector_ready',
      help: '1 when /readyz answers 200 (listening, and every required sink healthy)',
      type: 'gauge',
      collect: () => one(src() && Number(src()!.ready())),
    });

    // --- agents ------------------------------------------------------------------------------
    // One pass over the stream table per scrape (the registry calls every collect() synchronously).
    // One walk of the stream table per scrape: the five per-node metrics below read the same totals.
    let nodeCache: Map<string, NodeTotals> | undefined;
    const nodes = (): Map<string, NodeTotals> | undefined => {
      if (nodeCache) return nodeCache;
      const s = src();
      if (!s) return undefined;
      nodeCache = s.streams();
      queueMicrotask(() => {
        nodeCache = undefined;
      });
      return nodeCache;
    };
    const perNode = (pick: (t: NodeTotals) => number) => () => {
      const m = nodes();
      return m && [...m].map(([node, t]) => ({ labels: { node }, value: pick(t) }));
    };
    add({
      name: 'doorwatch_collector_agent_streams',
      help: 'Open Publish streams per agent node (0: the node published before and is not connected now)',
      type: 'gauge',
      labelNames: ['node'],
      collect: perNode((t) => t.sessions),
    });
    add({
      name: 'doorwatch_collector_events_received_total',
      help: 'Events accepted from each agent node (first time seen) and handed to the sinks',
      type: 'counter',
      labelNames: ['node'],
      collect: perNode((t) => t.accepted),
    });
    add({
      name: 'doorwatch_collector_duplicates_total',
      help: 'Replayed events dropped as already accepted (dedup), per agent node',
      type: 'counter',
      labelNames: ['node'],
      collect: perNode((t) => t.duplicates),
    });
    add({
      name: 'doorwatch_collector_seq_gaps_total',
      help: 'Seq gaps noticed per agent node (events that never arrived; each makes a loss record)',
      type: 'counter',
      labelNames: ['node'],
      collect: perNode((t) => t.gaps),
    });
    add({
      name: 'doorwatch_collector_seq_gap_events_total',
      help: 'Events the seq gaps span, per agent node',
      type: 'counter',
      labelNames: ['node'],
      collect: perNode((t) => Number(t.gapEvents)),
    });
    add({
      name: 'doorwatch_collector_accepts_total',
      help: `Accepts received, by pod namespace (${NO_NAMESPACE}: no pod; ${OTHER_NAMESPACES}: past ${MAX_NAMESPACES} namespaces) and result (a summary counts the accepts it stands for)`,
      type: 'counter',
      labelNames: ['pod_namespace', 'result'],
      collect: () =>
        [...this.accepts.byNamespace].flatMap(([namespace, c]) => [
          { labels: { pod_namespace: namespace, result: 'success' }, value: c[0] },
          { labels: { pod_namespace: namespace, result: 'error' }, value: c[1] },
        ]),
    });
    add({
      name: 'doorwatch_collector_loss_records_total',
      help: 'Loss records sent to the sinks, by reason: seq_gap, agent_reported (kernel ring full, spool or queue drops on the agent), sink_queue_overflow (a non-required sink dropped)',
      type: 'counter',
      labelNames: ['reason'],
      collect: () => {
        const s = src();
        if (!s) return undefined;
        const p = s.publish();
        const overflow = s.sinks().reduce((n, x) => n + x.overflowRecords, 0);
        return byLabel('reason', { seq_gap: p.seqGapRecords, agent_reported: p.agentLossRecords, sink_queue_overflow: overflow });
      },
    });
    const pub =
      <K extends keyof ReturnType<CollectorMetricsSources['publish']>>(k: K, scale = 1) =>
      () =>
        one(src() && src()!.publish()[k] * scale);
    add({
      name: 'doorwatch_collector_publish_streams',
      help: 'Open Publish calls (all agents)',
      type: 'gauge',
      collect: pub('activeSessions'),
    });
    add({ name: 'doorwatch_collector_batches_total', help: 'Event batches received', type: 'counter', collect: pub('batches') });
    add({
      name: 'doorwatch_collector_publish_rejected_total',
      help: 'Publish calls ended with an error status (malformed or invalid requests)',
      type: 'counter',
      collect: pub('rejected'),
    });
    add({
      name: 'doorwatch_collector_backpressure_waits_total',
      help: "Times a Publish reader waited for a required sink's queue (its read-ahead of batches held: agents slowed down, nothing dropped)",
      type: 'counter',
      collect: pub('backpressureWaits'),
    });
    add({
      name: 'doorwatch_collector_rate_limited_seconds_total',
      help: 'Time Publish readers waited for the per-stream rate limit',
      type: 'counter',
      collect: pub('rateLimitedMs', 1 / 1000),
    });

    // --- connections, refusals, subscribers ------------------------------------------------------
    add({
      name: 'doorwatch_collector_connections',
      help: 'Open client connections (agents and subscribers)',
      type: 'gauge',
      collect: () => one(src()?.connections()),
    });
    add({
      name: 'doorwatch_collector_refusals_total',
      help: 'Refused connections and calls, by reason (docs/security.md)',
      type: 'counter',
      labelNames: ['reason'],
      collect: () => {
        const r = src()?.refusals();
        return r && byLabel('reason', r);
      },
    });
    add({
      name: 'doorwatch_collector_subscribers',
      help: 'Live Subscribe calls (doorwatch tail, SIEM pulls)',
      type: 'gauge',
      collect: () => one(src()?.subscribers().subscribers),
    });
    add({
      name: 'doorwatch_collector_subscriber_dropped_total',
      help: "Events dropped from slow subscribers' buffers (the sinks still get them)",
      type: 'counter',
      collect: () => one(src()?.subscribers().dropped),
    });
    add({
      name: 'doorwatch_collector_token_reviews_total',
      help: 'TokenReviews made (auth.mode kubernetes)',
      type: 'counter',
      collect: () => one(src()?.auth().reviews),
    });
    add({
      name: 'doorwatch_collector_token_review_cache_hits_total',
      help: 'Calls authorised from the TokenReview cache',
      type: 'counter',
      collect: () => one(src()?.auth().cacheHits),
    });
    add({
      name: 'doorwatch_collector_auth_api_errors_total',
      help: 'Kubernetes API errors while authenticating or authorising (calls refused as auth_unavailable)',
      type: 'counter',
      collect: () => one(src()?.auth().apiErrors),
    });

    // --- peer attribution (docs/events.md, "Peer attribution") ----------------------------------
    add({
      name: 'doorwatch_collector_peer_attributions_total',
      help: 'Events whose peer address was attributed, by status (resolved, external, loopback, link_local, unknown, no_address)',
      type: 'counter',
      labelNames: ['status'],
      collect: () => {
        const r = src()?.peerAttributions?.();
        return r && byLabel('status', r);
      },
    });
    add({
      name: 'doorwatch_collector_peer_index_synced',
      help: 'Peer attribution on: 1 once pods, Services and nodes were all listed',
      type: 'gauge',
      collect: () => {
        const p = src()?.peers?.();
        return one(p && Number(p.synced));
      },
    });
    add({
      name: 'doorwatch_collector_peer_index_addresses',
      help: 'Addresses in the peer index (with at least one current or remembered holder)',
      type: 'gauge',
      collect: () => one(src()?.peers?.()?.addresses),
    });
    add({
      name: 'doorwatch_collector_peer_index_holdings',
      help: 'Holdings in the peer index: current, or ended and kept for late events (peers.history)',
      type: 'gauge',
      labelNames: ['state'],
      collect: () => {
        const p = src()?.peers?.();
        return p && byLabel('state', { current: p.current, ended: p.ended });
      },
    });
    add({
      name: 'doorwatch_collector_peer_index_evicted_early_total',
      help: 'Ended holdings dropped before peers.history because peers.maxEndedHoldings was reached',
      type: 'counter',
      collect: () => one(src()?.peers?.()?.evictedEarly),
    });
    add({
      name: 'doorwatch_collector_peer_watch_restarts_total',
      help: "Lists/watches of the peer index's pods, Services and nodes re-established after the first",
      type: 'counter',
      collect: () => one(src()?.peers?.()?.restarts),
    });

    // --- sinks -------------------------------------------------------------------------------
    const perSink = (pick: (x: SinkStats) => number | null | undefined) => () =>
      src()
        ?.sinks()
        .flatMap((x) => {
          const value = pick(x);
          return value === null || value === undefined
            ? []
            : [{ labels: { sink: x.name, type: x.type, required: String(x.required) }, value }];
        });
    const sinkLabels = ['sink', 'type', 'required'];
    add({
      name: 'doorwatch_collector_sink_enqueued_total',
      help: "Records handed to each sink's queue (events and loss records): what goes in",
      type: 'counter',
      labelNames: sinkLabels,
      collect: perSink((x) => x.enqueued),
    });
    add({
      name: 'doorwatch_collector_sink_written_total',
      help: 'Records each sink persisted (events and loss records): what comes out',
      type: 'counter',
      labelNames: sinkLabels,
      collect: perSink((x) => x.written),
    });
    add({
      name: 'doorwatch_collector_sink_dropped_total',
      help: 'Events a non-required sink dropped because its queue was full (each reported by a loss record)',
      type: 'counter',
      labelNames: sinkLabels,
      collect: perSink((x) => x.dropped),
    });
    add({
      name: 'doorwatch_collector_sink_write_errors_total',
      help: 'Failed write attempts per sink (the same batch is retried with backoff)',
      type: 'counter',
      labelNames: sinkLabels,
      collect: perSink((x) => x.retries),
    });
    add({
      name: 'doorwatch_collector_sink_queue_records',
      help: "Records waiting in each sink's queue plus the batch being written",
      type: 'gauge',
      labelNames: sinkLabels,
      collect: perSink((x) => x.queued + x.inFlight),
    });
    add({
      name: 'doorwatch_collector_sink_queue_capacity_records',
      help: "Each sink's queue bound (queue.maxRecords): full means back-pressure (required) or drops (not required)",
      type: 'gauge',
      labelNames: sinkLabels,
      collect: perSink((x) => src()?.queueCapacity(x.name)),
    });
    add({
      name: 'doorwatch_collector_sink_healthy',
      help: "1 unless the sink's last write attempt failed (it is retrying); a required sink at 0 makes /readyz fail",
      type: 'gauge',
      labelNames: sinkLabels,
      collect: perSink((x) => (x.lastError === null ? 1 : 0)),
    });
    add({
      name: 'doorwatch_collector_sink_last_write_timestamp_seconds',
      help: 'Unix time of the last successful write per sink (absent before the first)',
      type: 'gauge',
      labelNames: sinkLabels,
      collect: perSink((x) => (x.lastWriteMs === null ? null : x.lastWriteMs / 1000)),
    });
  }
}
