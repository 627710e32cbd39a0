import { type AcceptEvent, EnrichmentStatus, type Pod, SummaryReason } from '../gen/doorwatch/v1/event.js';
import type { Policy, PolicyEngine } from './engine.js';
import { compileMatcher, type FilterReason } from './match.js';
import { RateLimiter, Summarizer, type SummarizerStats } from './summarize.js';

/**
 * The policy step of the pipeline, after enrichment: which policy governs
 * each accept, the kernel's checks again for accepts the kernel could not
 * decide (cgroup not mapped yet), and events vs summaries. Every accept
 * leaves as an event, inside a summary, or as a count of what was filtered.
 */

export interface PolicyCounts {
  events: number;
  /** Accepts folded into summaries (mode summary, or above the rate limit). */
  summarized: number;
  /** Filtered here, in userspace, by reason (the kernel's own counts are per slot). */
  filtered: Record<FilterReason, number>;
}

export interface PolicyStageStats {
  byPolicy: Map<string, { policy: Policy; counts: PolicyCounts }>;
  summaries: SummarizerStats;
}

export interface PolicyStageOptions {
  engine: PolicyEngine;
  /** False until pods and policies are known: everything is then audited as unattributed. */
  ready(): boolean;
  emit(batch: AcceptEvent[]): void;
  /** Called when userspace had to filter an accept the kernel let through (its cgroup is not mapped yet). */
  onKernelMiss?(): void;
  nowMs?: () => number;
  nowNs?: () => bigint;
}

/** Every counter at zero. */
export const zeroCounts = (): PolicyCounts => ({ events: 0, summarized: 0, filtered: { off: 0, port: 0, peer: 0, failed: 0 } });

/** What the per-event loop needs of a policy: built once per Policy object, found per pod through #byPod. */
interface Governing {
  policy: Policy;
  match: ReturnType<typeof compileMatcher>;
  counts: PolicyCounts;
}

export class PolicyStage {
  readonly #o: PolicyStageOptions;
  readonly #summaries: Summarizer;
  readonly #limiter: RateLimiter;
  readonly #byPolicy = new WeakMap<Policy, Governing>();
  /** Per proto Pod object (shared by a pod's events, replaced on change) and engine version. */
  readonly #byPod = new WeakMap<Pod, { version: number; g: Governing }>();
  readonly #counts = new Map<string, { policy: Policy; counts: PolicyCounts }>();
  #sweepAt = 0;

  constructor(o: PolicyStageOptions) {
    this.#o = o;
    const cfg = o.engine.config;
    this.#summaries = new Summarizer({
      intervalMs: cfg.summaryIntervalMs,
      maxKeys: cfg.maxSummaryKeys,
      emit: o.emit,
      nowNs: o.nowNs,
    });
    this.#limiter = new RateLimiter(o.nowMs);
  }

  get engine(): PolicyEngine {
    return this.#o.engine;
  }

  start(): void {
    this.#summaries.start();
  }

  /** Flush open summaries: nothing folded is lost at shutdown. */
  stop(): void {
    this.#summaries.stop();
  }

  /** Close the current summary interval now (tests, and `trace --duration`). */
  flush(): void {
    this.#summaries.flush();
  }

  policyOf(ev: AcceptEvent): Policy {
    return this.#governingOf(ev, this.#o.ready()).policy;
  }

  process(batch: AcceptEvent[]): void {
    const out: AcceptEvent[] = [];
    let missed = false;
    const ready = this.#o.ready();
    for (const ev of batch) {
      const { policy: p, match, counts: c } = this.#governingOf(ev, ready);
      const why = match(ev);
      if (why) {
        c.filtered[why]++;
        missed = true;
        continue;
      }
      ev.policy = p.ref;
      const rl = p.spec.rateLimit;
      if (p.spec.mode === 'summary') {
        this.#summaries.add(ev, SummaryReason.SUMMARY_REASON_MODE);
        c.summarized++;
      } else if (rl && !this.#limiter.take(ev, rl.eventsPerSecond, rl.burst)) {
        this.#summaries.add(ev, SummaryReason.SUMMARY_REASON_RATE_LIMIT);
        c.summarized++;
      } else {
        c.events++;
        out.push(ev);
      }
    }
    if (out.length) this.#o.emit(out);
    if (missed) this.#o.onKernelMiss?.();
    const now = (this.#o.nowMs ?? Date.now)();
    if (now >= this.#sweepAt) {
      this.#sweepAt = now + 60_000;
      this.#limiter.sweep();
    }
  }

  /** `ready`: pods and policies known (asked once per batch). */
  #governingOf(ev: AcceptEvent, ready: boolean): Governing {
    const e = this.#o.engine;
    if (!ready) return this.#governing(e.unattributed());
    const status = ev.enrichment?.status;
    if (status === EnrichmentStatus.ENRICHMENT_STATUS_HOST) return this.#governing(e.host());
    const pod = ev.pod;
    if (status !== EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE || !pod) return this.#governing(e.unattributed());
    const hit = this.#byPod.get(pod);
    if (hit && hit.version === e.version) return hit.g;
    const g = this.#governing(e.forPod({ namespace: pod.namespace, labels: pod.labels }, pod.namespaceLabels));
    this.#byPod.set(pod, { version: e.version, g });
    return g;
  }

  #governing(p: Policy): Governing {
    let g = this.#byPolicy.get(p);
    if (!g) {
      // A changed policy (a new object) keeps its key: keep counting under it.
      const counts = this.#counts.get(p.key)?.counts ?? zeroCounts();
      this.#counts.set(p.key, { policy: p, counts });
      g = { policy: p, match: compileMatcher(p.spec), counts };
      this.#byPolicy.set(p, g);
    }
    return g;
  }

  /** A snapshot: later accepts do not move it. */
  stats(): PolicyStageStats {
    const byPolicy = new Map<string, { policy: Policy; counts: PolicyCounts }>();
    for (const [k, { policy, counts }] of this.#counts)
      byPolicy.set(k, { policy, counts: { ...counts, filtered: { ...counts.filtered } } });
    return { byPolicy, summaries: this.#summaries.stats() };
  }
}
