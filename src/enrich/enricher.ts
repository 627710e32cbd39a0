import { type AcceptEvent, EnrichmentStatus } from '../gen/doorwatch/v1/event.js';
import type { KubeMetadataSource } from '../kube/source.js';
import type { ContainerMeta, NamespaceMeta, PodMeta } from '../kube/types.js';
import type { Logger } from '../log/logger.js';
import { applyAttribution } from './attribution.js';
import { type CgroupIdentity, parseCgroupPath } from './cgroup/path.js';
import { readProcCgroupPath } from './cgroup/proc.js';
import type { CgroupResolver } from './cgroup/resolver.js';

/**
 * AcceptEvent -> container -> pod. Never ships a blank field silently: every
 * event leaves with a status (complete, partial + what and why, host).
 * An event whose container is not yet in the API is held briefly (a pod that
 * just started), in a bounded queue; after the deadline it goes out partial.
 */

export interface EnricherOptions {
  cgroups: CgroupResolver;
  /** Undefined when there is no Kubernetes API (say why in kubeDisabledReason). */
  kube?: KubeMetadataSource;
  kubeDisabledReason?: string;
  pendingDeadlineMs?: number;
  maxPending?: number;
  now?: () => number;
  readProcCgroup?: typeof readProcCgroupPath;
  emit(batch: AcceptEvent[]): void;
  log: Logger;
}

export interface EnricherStats {
  complete: number;
  partial: number;
  host: number;
  pending: number;
  /** Held events that reached the deadline and went out partial. */
  pendingExpired: number;
  /** Held events released early because the queue was full (partial). */
  pendingOverflow: number;
  /** Cgroups found only through /proc/PID/cgroup. */
  procFallback: number;
}

// `enrichment.missing` values, shared by the events that carry them (events are read-only downstream).
const NONE: string[] = [];
const MISSING_POD = ['pod'];
const MISSING_CONTAINER = ['container'];
const MISSING_CONTAINER_POD = ['container', 'pod'];
const MISSING_NAMESPACE = ['namespace'];

interface CgroupResult {
  path?: string;
  identity?: CgroupIdentity;
  fromProc: boolean;
  reason?: string;
}

interface Held {
  ev: AcceptEvent;
  cg: CgroupResult;
  since: number;
}

export class Enricher {
  readonly #o: EnricherOptions;
  readonly #now: () => number;
  readonly #deadline: number;
  readonly #maxPending: number;
  /** Held events, oldest first, from #head on: overflow takes the oldest without shifting the array. */
  #pending: Held[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #stats: Omit<EnricherStats, 'pending'> = {
    complete: 0,
    partial: 0,
    host: 0,
    pendingExpired: 0,
    pendingOverflow: 0,
    procFallback: 0,
  };

  constructor(o: EnricherOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#deadline = o.pendingDeadlineMs ?? 2000;
    this.#maxPending = o.maxPending ?? 10_000;
    o.kube?.on('change', () => this.#recheck());
  }

  start(tickMs = 100): void {
    this.#timer = setInterval(() => this.tick(), tickMs);
    this.#timer.unref();
  }

  /** Release everything still held (as partial): shutdown must not lose events. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const held = this.#takePending(() => true);
    this.#release(held, 'shutting down before pod metadata arrived');
  }

  process(batch: AcceptEvent[]): void {
    const out: AcceptEvent[] = [];
    const procSeen = new Map<number, CgroupResult>();
    for (const ev of batch) {
      const cg = this.#cgroup(ev, procSeen);
      if (this.#attribute(ev, cg, false, 0)) out.push(ev);
      else this.#hold({ ev, cg, since: this.#now() }, out);
    }
    if (out.length) this.#o.emit(out);
  }

  /** Expire held events past the deadline. */
  tick(): void {
    const now = this.#now();
    const expired = this.#takePending((h) => now - h.since >= this.#deadline);
    this.#stats.pendingExpired += expired.length;
    this.#release(expired, `not in the Kubernetes API after ${this.#deadline}ms`);
  }

  stats(): EnricherStats {
    return { ...this.#stats, pending: this.#pending.length - this.#head };
  }

  #hold(h: Held, out: AcceptEvent[]): void {
    if (this.#pending.length - this.#head >= this.#maxPending) {
      const oldest = this.#pending[this.#head++]!;
      this.#stats.pendingOverflow++;
      this.#finish(oldest, 'pending queue full', out);
      // Compact once the consumed head dominates.
      if (this.#head * 2 > this.#pending.length) this.#takePending(() => false);
    }
    this.#pending.push(h);
  }

  /** Removes and returns the held events `take` selects, oldest first; the rest stay in order. */
  #takePending(take: (h: Held) => boolean): Held[] {
    const taken: Held[] = [];
    const kept: Held[] = [];
    for (let i = this.#head; i < this.#pending.length; i++) {
      const h = this.#pending[i]!;
      (take(h) ? taken : kept).push(h);
    }
    this.#pending = kept;
    this.#head = 0;
    return taken;
  }

  #recheck(): void {
    if (this.#pending.length === this.#head) return;
    const now = this.#now();
    const attributed = this.#takePending((h) => this.#attribute(h.ev, h.cg, false, now - h.since));
    if (attributed.length) this.#o.emit(attributed.map((h) => h.ev));
  }

  #release(held: Held[], why: string): void {
    if (!held.length) return;
    const out: AcceptEvent[] = [];
    for (const h of held) this.#finish(h, why, out);
    this.#o.emit(out);
  }

  #finish(h: Held, why: string, out: AcceptEvent[]): void {
    this.#attribute(h.ev, h.cg, true, this.#now() - h.since, why);
    out.push(h.ev);
  }

  /**
   * Cgroup results by (v2 id, v1 id): a storm comes from a handful of cgroups,
   * and resolving each event anew was a large share of the CLI's per-event
   * cost. Only results from cgroupfs are cached (not /proc fallbacks nor
   * misses, which may resolve later); bounded, cleared when full.
   */
  readonly #cgroupCache = new Map<bigint, Map<bigint, CgroupResult>>();
  #cgroupCacheSize = 0;

  /** `procSeen`: /proc answers of this batch by pid, so a storm from an unknown cgroup reads /proc once per batch, not per event. */
  #cgroup(ev: AcceptEvent, procSeen: Map<number, CgroupResult>): CgroupResult {
    const v2 = ev.cgroup?.id ?? 0n;
    const v1 = ev.cgroup?.v1Id ?? 0n;
    const hit = this.#cgroupCache.get(v2)?.get(v1);
    if (hit) return hit;
    const pid = ev.process?.pid ?? 0;
    const seen = procSeen.get(pid);
    if (seen) return seen;
    const r = this.#resolveCgroup(ev);
    if (r.fromProc) procSeen.set(pid, r);
    if (!r.fromProc && r.identity) {
      if (this.#cgroupCacheSize >= 4096) {
        this.#cgroupCache.clear();
        this.#cgroupCacheSize = 0;
      }
      let m = this.#cgroupCache.get(v2);
      if (!m) {
        m = new Map();
        this.#cgroupCache.set(v2, m);
      }
      m.set(v1, r);
      this.#cgroupCacheSize++;
    }
    return r;
  }

  /** The kernel's cgroup ids first (v2, then the v1 memory hierarchy), /proc as the racy fallback. */
  #resolveCgroup(ev: AcceptEvent): CgroupResult {
    // Each hierarchy numbers its cgroups from 1: an id means nothing without its version.
    const ids: [bigint, 1 | 2][] = [
      [ev.cgroup?.id ?? 0n, 2],
      [ev.cgroup?.v1Id ?? 0n, 1],
    ];
    const usable = ids.filter(([id]) => id > 1n);
    let host: CgroupResult | undefined;
    for (const [id, version] of usable) {
      const r = this.#o.cgroups.resolve(id, version);
      if (!r) continue;
      if (r.identity.kind !== 'host') return { path: r.path, identity: r.identity, fromProc: false };
      host ??= { path: r.path, identity: r.identity, fromProc: false };
    }
    // v2 id 1 is the root: on hybrid hosts every process has it, so it says nothing.
    if (host) return host;
    if (usable.length === 0 && (ev.cgroup?.id ?? 0n) === 1n && (ev.cgroup?.v1Id ?? 0n) <= 1n) {
      return { path: '/', identity: { kind: 'host' }, fromProc: false };
    }
    const proc = (this.#o.readProcCgroup ?? readProcCgroupPath)(ev.process?.pid ?? 0);
    if (proc) {
      this.#stats.procFallback++;
      return { path: proc.path, identity: parseCgroupPath(proc.path), fromProc: true };
    }
    const named = usable.map(([id, v]) => `${id} (v${v})`).join(', ') || 'none';
    return { fromProc: false, reason: `cgroup ids ${named} not found in cgroupfs and the process is gone` };
  }

  /**
   * Returns false when the event should wait for pod metadata (and `final` is false).
   * Runs for every event: locals and one Attribution literal, no closures or spreads
   * (those made it several microseconds per event).
   */
  #attribute(ev: AcceptEvent, cg: CgroupResult, final: boolean, waitedMs: number, why?: string): boolean {
    const id = cg.identity;
    const kube = this.#o.kube;
    let status = EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL;
    let missing = NONE;
    let reason = '';
    let pod: PodMeta | undefined;
    let container: ContainerMeta | undefined;
    let namespace: NamespaceMeta | undefined;
    if (!id) {
      missing = MISSING_CONTAINER_POD;
      reason = cg.reason ?? 'cgroup unknown';
    } else if (id.kind === 'host') {
      status = EnrichmentStatus.ENRICHMENT_STATUS_HOST;
    } else if (!kube) {
      missing = MISSING_POD;
      reason = this.#o.kubeDisabledReason ?? 'no Kubernetes API configured';
    } else {
      const hit = id.containerId ? kube.byContainerId(id.containerId) : undefined;
      pod = hit?.pod ?? (id.podUid ? kube.byPodUid(id.podUid) : undefined);
      if (pod && (hit || !id.containerId)) {
        container = hit?.container;
        namespace = kube.namespace(pod.namespace);
        if (namespace) status = EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE;
        else {
          missing = MISSING_NAMESPACE;
          reason = `namespace ${pod.namespace} not (yet) known`;
        }
      } else {
        if (!final) return false;
        const api = kube.synced() ? '' : ` (pod informer not synced: ${kube.status().lastError ?? 'still listing'})`;
        if (pod) {
          missing = MISSING_CONTAINER;
          reason = `container ${id.containerId} not in pod status: ${why}${api}`;
        } else {
          missing = MISSING_POD;
          reason = `${id.containerId ? `container ${id.containerId}` : `pod ${id.podUid}`} ${why}${api}`;
        }
      }
    }
    applyAttribution(ev, {
      cgroupPath: cg.path,
      identity: id,
      fromProc: cg.fromProc,
      pod,
      container,
      namespace,
      status,
      missing,
      reason,
      waitedMs,
    });
    if (status === EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE) this.#stats.complete++;
    else if (status === EnrichmentStatus.ENRICHMENT_STATUS_HOST) this.#stats.host++;
    else this.#stats.partial++;
    return true;
  }
}
