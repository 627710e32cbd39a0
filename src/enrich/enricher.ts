import { type AcceptEvent, EnrichmentStatus } from '../gen/doorwatch/v1/event.js';
import type { Logger } from '../log/logger.js';
import { type Attribution, applyAttribution } from './attribution.js';
import { type CgroupIdentity, parseCgroupPath } from './cgroup/path.js';
import { readProcCgroupPath } from './cgroup/proc.js';
import type { CgroupResolver } from './cgroup/resolver.js';
import type { KubeMetadataSource } from './kube/source.js';

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
  #pending: Held[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #stats: EnricherStats = {
    complete: 0,
    partial: 0,
    host: 0,
    pending: 0,
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
    this.#release(this.#pending.splice(0), 'shutting down before pod metadata arrived');
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
    const expired: Held[] = [];
    this.#pending = this.#pending.filter((h) => {
      if (now - h.since < this.#deadline) return true;
      expired.push(h);
      return false;
    });
    this.#stats.pendingExpired += expired.length;
    this.#release(expired, `not in the Kubernetes API after ${this.#deadline}ms`);
  }

  stats(): EnricherStats {
    return { ...this.#stats, pending: this.#pending.length };
  }

  #hold(h: Held, out: AcceptEvent[]): void {
    if (this.#pending.length >= this.#maxPending) {
      const oldest = this.#pending.shift()!;
      this.#stats.pendingOverflow++;
      this.#finish(oldest, 'pending queue full', out);
    }
    this.#pending.push(h);
  }

  #recheck(): void {
    if (!this.#pending.length) return;
    const out: AcceptEvent[] = [];
    const now = this.#now();
    this.#pending = this.#pending.filter((h) => {
      if (!this.#attribute(h.ev, h.cg, false, now - h.since)) return true;
      out.push(h.ev);
      return false;
    });
    if (out.length) this.#o.emit(out);
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

  /** The kernel's cgroup ids first (v2, then the v1 memory hierarchy), /proc as the racy fallback. */
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

  /** Returns false when the event should wait for pod metadata (and `final` is false). */
  #attribute(ev: AcceptEvent, cg: CgroupResult, final: boolean, waitedMs: number, why?: string): boolean {
    const base = { cgroupPath: cg.path, identity: cg.identity, fromProc: cg.fromProc, waitedMs };
    const done = (a: Attribution) => {
      applyAttribution(ev, a);
      if (a.status === EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE) this.#stats.complete++;
      else if (a.status === EnrichmentStatus.ENRICHMENT_STATUS_HOST) this.#stats.host++;
      else this.#stats.partial++;
      return true;
    };
    const partial = (missing: string[], reason: string, extra: Partial<Attribution> = {}) =>
      done({ ...base, ...extra, status: EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL, missing, reason });

    const id = cg.identity;
    if (!id) return partial(['container', 'pod'], cg.reason ?? 'cgroup unknown');
    if (id.kind === 'host') return done({ ...base, status: EnrichmentStatus.ENRICHMENT_STATUS_HOST, missing: [], reason: '' });
    const kube = this.#o.kube;
    if (!kube) return partial(['pod'], this.#o.kubeDisabledReason ?? 'no Kubernetes API configured');

    const hit = id.containerId ? kube.byContainerId(id.containerId) : undefined;
    const pod = hit?.pod ?? (id.podUid ? kube.byPodUid(id.podUid) : undefined);
    if (hit || (pod && !id.containerId)) {
      const namespace = kube.namespace(pod!.namespace);
      const extra = { pod, container: hit?.container, namespace };
      if (!namespace) return partial(['namespace'], `namespace ${pod!.namespace} not (yet) known`, extra);
      return done({ ...base, ...extra, status: EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, missing: [], reason: '' });
    }
    if (!final) return false;
    const api = kube.synced() ? '' : ` (pod informer not synced: ${kube.status().lastError ?? 'still listing'})`;
    if (pod) return partial(['container'], `container ${id.containerId} not in pod status: ${why}${api}`, { pod });
    return partial(['pod'], `${id.containerId ? `container ${id.containerId}` : `pod ${id.podUid}`} ${why}${api}`);
  }
}
