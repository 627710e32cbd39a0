import type { ContainerHit, NamespaceMeta, PodMeta } from './types.js';

/**
 * The indexes behind the lookups done for every event: container id -> pod +
 * container, pod uid -> pod, namespace name -> namespace.
 *
 * Nothing leaves the indexes the moment the API says it is gone: an accept seen
 * just before a pod was deleted (or before a container was replaced by its
 * restart) is often enriched after that, so deleted pods, replaced containers
 * and deleted namespaces stay resolvable for `retentionMs`. Expiry is a FIFO
 * (the clock only moves forward), checked at its head on every access: O(1).
 */

interface ContainerEntry {
  hit: ContainerHit;
  /** When the container left its pod's status (replaced by a restart); undefined while current. */
  retiredAtMs?: number;
}

interface Expiry {
  kind: 'pod' | 'container' | 'namespace';
  key: string;
  atMs: number;
}

export class MetadataStore {
  readonly #retentionMs: number;
  readonly #now: () => number;
  readonly #pods = new Map<string, PodMeta>();
  readonly #containers = new Map<string, ContainerEntry>();
  /** pod uid -> every container id indexed for it (current and retired). */
  readonly #podContainers = new Map<string, Set<string>>();
  readonly #namespaces = new Map<string, NamespaceMeta>();
  #expiries: Expiry[] = [];
  #expiryHead = 0;
  #deletedPods = 0;

  constructor(retentionMs: number, now: () => number) {
    this.#retentionMs = retentionMs;
    this.#now = now;
  }

  /** Adds or replaces a pod. */
  upsertPod(meta: PodMeta): void {
    this.purge();
    const prev = this.#pods.get(meta.uid);
    if (prev?.deletedAtMs !== undefined) this.#deletedPods--;
    this.#pods.set(meta.uid, meta);
    const ids = this.#podContainers.get(meta.uid) ?? new Set<string>();
    this.#podContainers.set(meta.uid, ids);
    const current = new Set<string>();
    for (const c of meta.containers) {
      current.add(c.id);
      this.#containers.set(c.id, { hit: Object.freeze({ pod: meta, container: c }) });
      ids.add(c.id);
    }
    const now = this.#now();
    for (const id of ids) {
      if (current.has(id)) continue;
      const e = this.#containers.get(id);
      if (!e) continue;
      // Replaced containers keep pointing at the latest pod metadata.
      const retiredAtMs = e.retiredAtMs ?? now;
      this.#containers.set(id, { hit: Object.freeze({ pod: meta, container: e.hit.container }), retiredAtMs });
      if (e.retiredAtMs === undefined) this.#expire('container', id, now);
    }
  }

  /** Marks a pod deleted (with its final state when the API sent one); it is purged after the retention. */
  deletePod(uid: string, final?: PodMeta): void {
    if (final) this.upsertPod(final);
    else this.purge();
    const cur = this.#pods.get(uid);
    if (!cur || cur.deletedAtMs !== undefined) return;
    const now = this.#now();
    const deleted: PodMeta = Object.freeze({ ...cur, deletedAtMs: now });
    this.#pods.set(uid, deleted);
    this.#deletedPods++;
    for (const id of this.#podContainers.get(uid) ?? []) {
      const e = this.#containers.get(id);
      if (e) this.#containers.set(id, { ...e, hit: Object.freeze({ pod: deleted, container: e.hit.container }) });
    }
    this.#expire('pod', uid, now);
  }

  upsertNamespace(meta: NamespaceMeta): void {
    this.purge();
    this.#namespaces.set(meta.name, meta);
  }

  deleteNamespace(name: string, final?: NamespaceMeta): void {
    this.purge();
    const cur = final ?? this.#namespaces.get(name);
    if (!cur || this.#namespaces.get(name)?.deletedAtMs !== undefined) return;
    const now = this.#now();
    this.#namespaces.set(name, Object.freeze({ ...cur, deletedAtMs: now }));
    this.#expire('namespace', name, now);
  }

  container(id: string): ContainerHit | undefined {
    this.purge();
    return this.#containers.get(id)?.hit;
  }

  pod(uid: string): PodMeta | undefined {
    this.purge();
    return this.#pods.get(uid);
  }

  namespace(name: string): NamespaceMeta | undefined {
    this.purge();
    return this.#namespaces.get(name);
  }

  counts(): { pods: number; namespaces: number; deletedRetained: number; containers: number } {
    this.purge();
    let namespaces = 0;
    for (const ns of this.#namespaces.values()) if (ns.deletedAtMs === undefined) namespaces++;
    return {
      pods: this.#pods.size - this.#deletedPods,
      namespaces,
      deletedRetained: this.#deletedPods,
      containers: this.#containers.size,
    };
  }

  /** Drops what has been gone longer than the retention. Called by every accessor. */
  purge(): void {
    const q = this.#expiries;
    if (this.#expiryHead >= q.length) return;
    const cutoff = this.#now() - this.#retentionMs;
    while (this.#expiryHead < q.length && q[this.#expiryHead]!.atMs <= cutoff) {
      this.#drop(q[this.#expiryHead++]!);
    }
    // Compact the FIFO once its consumed head dominates.
    if (this.#expiryHead > 1024 && this.#expiryHead * 2 > q.length) {
      this.#expiries = q.slice(this.#expiryHead);
      this.#expiryHead = 0;
    }
  }

  #expire(kind: Expiry['kind'], key: string, atMs: number): void {
    this.#expiries.push({ kind, key, atMs });
  }

  /** An expiry applies only if the object is still in the state that queued it (not revived, not re-deleted). */
  #drop(x: Expiry): void {
    if (x.kind === 'pod') {
      const pod = this.#pods.get(x.key);
      if (pod?.deletedAtMs !== x.atMs) return;
      this.#pods.delete(x.key);
      this.#deletedPods--;
      for (const id of this.#podContainers.get(x.key) ?? []) {
        if (this.#containers.get(id)?.hit.pod.uid === x.key) this.#containers.delete(id);
      }
      this.#podContainers.delete(x.key);
    } else if (x.kind === 'container') {
      const e = this.#containers.get(x.key);
      if (e?.retiredAtMs !== x.atMs) return;
      this.#containers.delete(x.key);
      this.#podContainers.get(e.hit.pod.uid)?.delete(x.key);
    } else {
      if (this.#namespaces.get(x.key)?.deletedAtMs === x.atMs) this.#namespaces.delete(x.key);
    }
  }
}
