import { Histogram, Registry } from 'prom-client';
import type { CaptureStats } from '../capture/capture.js';
import type { EnricherStats } from '../enrich/enricher.js';
import { type AcceptEvent, Source } from '../gen/doorwatch/v1/event.js';
import type { KubeSourceStatus } from '../kube/source.js';
import {
  addProcessMetrics,
  addScrapeMetric,
  byLabel,
  type CollectorSpec,
  one,
  type Sample,
} from '../observability/scrape-metrics.js';
import type { PublisherStatus } from './publisher.js';
import type { Readiness } from './readiness.js';
import type { SpoolStats } from './spool.js';

/**
 * The agent's Prometheus metrics (docs/metrics.md), on a registry of its own.
 *
 * Nothing here costs anything per event except countEvents(): one array
 * increment per event, no label lookup. Every other value is read from the
 * stats objects the components already keep (capture, enricher, kube source,
 * publisher, spool), at scrape time, by collect callbacks.
 *
 * Other modules add their own metrics the same way, without touching this
 * file: addCollector({ name, help, type, labelNames, collect }) — collect()
 * returns the current samples and is called on every scrape.
 */

export type { CollectorSpec, Sample };

export interface AgentInfo {
  version: string;
  node: string;
  /** POD_NAME / POD_NAMESPACE from the downward API, when set. */
  pod?: string;
  namespace?: string;
  /** The spool's instance id (the event id's middle part). */
  instance?: string;
}

/** Where scraped values come from; each is set once its component exists. */
export interface MetricsSources {
  capture(): CaptureStats;
  enricher(): EnricherStats;
  /** Absent when there is no Kubernetes API. */
  kube(): KubeSourceStatus;
  publisher(): PublisherStatus;
  spool(): SpoolStats & { maxBytes: number };
  readiness(): Readiness;
}

export interface AgentMetricsOptions {
  info: AgentInfo;
  /** prom-client's process_* and nodejs_* metrics (default true). */
  processMetrics?: boolean;
}

const SYSCALL_LABEL: Record<number, string> = {
  [Source.SOURCE_ACCEPT]: 'accept',
  [Source.SOURCE_ACCEPT4]: 'accept4',
  [Source.SOURCE_IO_URING]: 'io_uring',
};
/** Slots of the per-event counter: source * 2 + (failed ? 1 : 0). */
const EVENT_SLOTS = 8;

/** RTT buckets (seconds): an ack waits for the collector's required sinks, so up to seconds. */
export const RTT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Kernel counters that are events lost (not merely filtered), by the reason label they get. */
const KERNEL_DROP_REASON: Record<string, string> = { RINGBUF_FULL: 'ring_buffer_full' };

export class AgentMetrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;
  #sources: Partial<MetricsSources> = {};
  #info: AgentInfo;
  readonly #events = new Float64Array(EVENT_SLOTS);
  readonly #rtt: Histogram;

  constructor(o: AgentMetricsOptions) {
    this.#info = { ...o.info };
    if (o.processMetrics ?? true) addProcessMetrics(this.registry);
    this.#rtt = new Histogram({
      name: 'doorwatch_collector_rtt_seconds',
      help: 'Time from sending a batch to the collector to the acknowledgement covering it (includes persistence at required sinks)',
      buckets: RTT_BUCKETS,
      registers: [this.registry],
    });
    this.#standardCollectors();
  }

  setInfo(info: Partial<AgentInfo>): void {
    this.#info = { ...this.#info, ...info };
  }

  setSources(s: Partial<MetricsSources>): void {
    this.#sources = { ...this.#sources, ...s };
  }

  /** The emit path calls this once per batch; a summary record counts the accepts it stands for. */
  countEvents(batch: readonly AcceptEvent[]): void {
    const c = this.#events;
    for (const ev of batch) {
      // Listener records (src/listeners) are not accepts: counted by the inventory's own metrics.
      if (ev.listenerInfo !== undefined) continue;
      const slot = (ev.source & 3) << 1;
      const s = ev.summary;
      if (s === undefined) c[slot + (ev.success ? 0 : 1)]!++;
      else {
        c[slot + 1]! += Number(s.failedCount);
        c[slot]! += Number(s.count - s.failedCount);
      }
    }
  }

  /** One acknowledgement's round trip (Publisher's onAck). */
  observeRtt(ms: number): void {
    this.#rtt.observe(ms / 1000);
  }

  /**
   * A metric whose samples are read at scrape time: exactly what collect()
   * returns, no stale label sets and no made-up 0 when there is no source.
   * Throws if the name is taken or a name is not a valid Prometheus name.
   */
  addCollector(spec: CollectorSpec): void {
    addScrapeMetric(this.registry, spec);
  }

  /** The exposition (Prometheus text format 0.0.4). */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.contentType, body: await this.registry.metrics() };
  }

  #standardCollectors(): void {
    const from = <K extends keyof MetricsSources>(k: K): ReturnType<MetricsSources[K]> | undefined => {
      const f = this.#sources[k] as (() => ReturnType<MetricsSources[K]>) | undefined;
      return f?.();
    };
    const add = (spec: CollectorSpec) => this.addCollector(spec);

    add({
      name: 'doorwatch_agent_info',
      help: 'Always 1; the labels say which agent this is (version, node, pod, namespace, instance)',
      type: 'gauge',
      labelNames: ['version', 'node', 'pod', 'namespace', 'instance'],
      collect: () => {
        const i = this.#info;
        return [
          {
            labels: {
              version: i.version,
              node: i.node,
              pod: i.pod ?? '',
              namespace: i.namespace ?? '',
              instance: i.instance ?? '',
            },
            value: 1,
          },
        ];
      },
    });
    add({
      name: 'doorwatch_agent_ready',
      help: '1 when /readyz answers 200',
      type: 'gauge',
      collect: () => one(from('readiness')?.ready),
    });

    // --- capture -----------------------------------------------------------------------------
    add({
      name: 'doorwatch_events_total',
      help: 'Accepts handed to the spool, by syscall and result (a summary record counts the accepts it stands for)',
      type: 'counter',
      labelNames: ['syscall', 'status'],
      collect: () => {
        const out: Sample[] = [];
        for (let slot = 0; slot < EVENT_SLOTS; slot++) {
          const syscall = SYSCALL_LABEL[slot >> 1];
          // Source 0 never comes from the kernel; show it only if it ever did.
          if (syscall === undefined && !this.#events[slot]) continue;
          out.push({
            labels: { syscall: syscall ?? 'unknown', status: slot & 1 ? 'error' : 'success' },
            value: this.#events[slot]!,
          });
        }
        return out;
      },
    });
    // One scrape reads the kernel maps and program infos once, not once per metric: the registry
    // calls every collect() in one synchronous run, so the cache ends with the next microtask.
    let captureCache: CaptureStats | undefined;
    const capture = (): CaptureStats | undefined => {
      if (captureCache) return captureCache;
      captureCache = from('capture');
      if (captureCache) {
        queueMicrotask(() => {
          captureCache = undefined;
        });
      }
      return captureCache;
    };
    add({
      name: 'doorwatch_kernel_events_total',
      help: "The probes' per-CPU counters (dw_counters), summed: emitted, exit_no_enter, eagain_skipped, io_uring, *_filtered, …",
      type: 'counter',
      labelNames: ['counter'],
      collect: () => {
        const k = capture()?.kernel;
        if (!k) return undefined;
        return Object.entries(k)
          .filter(([name]) => !(name in KERNEL_DROP_REASON))
          .map(([name, value]) => ({ labels: { counter: name.toLowerCase() }, value }));
      },
    });
    add({
      name: 'doorwatch_kernel_dropped_total',
      help: 'Events lost in the kernel, by reason (ring_buffer_full: the ring was full when the probe reserved a record)',
      type: 'counter',
      labelNames: ['reason'],
      collect: () => {
        const k = capture()?.kernel as Record<string, bigint> | undefined;
        if (!k) return undefined;
        return Object.entries(KERNEL_DROP_REASON).map(([name, reason]) => ({ labels: { reason }, value: k[name] ?? 0n }));
      },
    });
    add({
      name: 'doorwatch_decode_errors_total',
      help: 'Ring-buffer records that could not be decoded (lost; logged, rate-limited)',
      type: 'counter',
      collect: () => one(capture()?.decodeErrors),
    });
    add({
      name: 'doorwatch_captured_events_total',
      help: 'Records decoded from the ring buffer and handed to enrichment',
      type: 'counter',
      collect: () => one(capture()?.delivered),
    });
    const perProgram = (pick: (p: CaptureStats['programs'][number]) => number | bigint) => () =>
      capture()?.programs.map((p) => ({ labels: { program: p.name }, value: pick(p) }));
    add({
      name: 'doorwatch_bpf_program_run_time_seconds_total',
      help: 'Time spent in each BPF program (bpf_prog_info.run_time_ns); stays 0 unless kernel.bpf_stats_enabled=1',
      type: 'counter',
      labelNames: ['program'],
      collect: perProgram((p) => Number(p.runTimeNs) / 1e9),
    });
    add({
      name: 'doorwatch_bpf_program_run_count_total',
      help: 'Runs of each BPF program (bpf_prog_info.run_cnt); stays 0 unless kernel.bpf_stats_enabled=1',
      type: 'counter',
      labelNames: ['program'],
      collect: perProgram((p) => p.runCount),
    });
    add({
      name: 'doorwatch_bpf_program_recursion_misses_total',
      help: 'Runs of each BPF program the kernel skipped because another BPF program was running on that CPU (events lost)',
      type: 'counter',
      labelNames: ['program'],
      collect: perProgram((p) => p.recursionMisses),
    });

    // --- enrichment --------------------------------------------------------------------------
    add({
      name: 'doorwatch_enrichment_total',
      help: 'Events by attribution status: complete (container and pod), partial (something missing; the event says what and why), host',
      type: 'counter',
      labelNames: ['status'],
      collect: () => {
        const e = from('enricher');
        return e && byLabel('status', { complete: e.complete, partial: e.partial, host: e.host });
      },
    });
    add({
      name: 'doorwatch_enrichment_pending',
      help: 'Events held now, waiting for their pod to appear in the API (bounded by --pending-deadline)',
      type: 'gauge',
      collect: () => one(from('enricher')?.pending),
    });
    add({
      name: 'doorwatch_enrichment_pending_expired_total',
      help: 'Held events that reached the pending deadline and left partial',
      type: 'counter',
      collect: () => one(from('enricher')?.pendingExpired),
    });
    add({
      name: 'doorwatch_enrichment_pending_overflow_total',
      help: 'Held events released early (partial) because the pending queue was full',
      type: 'counter',
      collect: () => one(from('enricher')?.pendingOverflow),
    });
    add({
      name: 'doorwatch_enrichment_proc_fallback_total',
      help: 'Cgroups found only through /proc/PID/cgroup (the cgroupfs scan had not seen them)',
      type: 'counter',
      collect: () => one(from('enricher')?.procFallback),
    });
    add({
      name: 'doorwatch_kube_informer_synced',
      help: '1 once the pod and namespace informers have both listed (absent without a Kubernetes API)',
      type: 'gauge',
      collect: () => one(from('kube')?.synced),
    });
    add({
      name: 'doorwatch_kube_informer_connected',
      help: '1 while both informers have a watch open',
      type: 'gauge',
      collect: () => one(from('kube')?.connected),
    });
    add({
      name: 'doorwatch_kube_informer_restarts_total',
      help: 'Lists/watches re-established after the first one, both informers together',
      type: 'counter',
      collect: () => one(from('kube')?.restarts),
    });
    add({
      name: 'doorwatch_kube_pods',
      help: 'Live pods of this node in the metadata store',
      type: 'gauge',
      collect: () => one(from('kube')?.pods),
    });

    // --- spool and transport ---------------------------------------------------------------------
    add({
      name: 'doorwatch_spool_bytes',
      help: 'Bytes of spool segment files (events not yet acknowledged, and their segments)',
      type: 'gauge',
      collect: () => one(from('spool')?.bytes),
    });
    add({
      name: 'doorwatch_spool_max_bytes',
      help: 'The spool bound (--spool-max)',
      type: 'gauge',
      collect: () => one(from('spool')?.maxBytes),
    });
    add({
      name: 'doorwatch_spool_segments',
      help: 'Spool segment files',
      type: 'gauge',
      collect: () => one(from('spool')?.segments),
    });
    add({
      name: 'doorwatch_spool_dropped_total',
      help: 'Events the spool dropped since start: overflow policy (full) or torn/corrupt records; reported to the collector',
      type: 'counter',
      collect: () => one(from('spool')?.dropsTotal),
    });
    add({
      name: 'doorwatch_spool_acked_seq',
      help: 'Acknowledged seq watermark of the current seq space: every event up to it is persisted by the collector',
      type: 'gauge',
      collect: () => one(from('publisher')?.ackedSeq),
    });
    add({
      name: 'doorwatch_collector_connected',
      help: '1 while a Publish stream is open on a connected channel',
      type: 'gauge',
      collect: () => one(from('publisher')?.connected),
    });
    add({
      name: 'doorwatch_collector_in_flight_batches',
      help: 'Batches sent on the current stream and not yet acknowledged (bounded by the window)',
      type: 'gauge',
      collect: () => one(from('publisher')?.inFlightBatches),
    });
    add({
      name: 'doorwatch_collector_batch_contexts',
      help: "1 while the current stream's collector applies batch contexts (a pod's fields sent once per batch, not with every event)",
      type: 'gauge',
      collect: () => one(from('publisher')?.batchContexts),
    });
    add({
      name: 'doorwatch_collector_reconnects_total',
      help: 'Streams opened after a failure',
      type: 'counter',
      collect: () => one(from('publisher')?.reconnects),
    });
  }
}
