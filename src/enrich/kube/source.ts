import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../log/logger.js';
import { ALL_KEYS, compileAllowList, NO_KEYS } from './allow-list.js';
import { kubeApi } from './api.js';
import { CoalescedChange } from './change.js';
import { ResilientInformer } from './informer.js';
import { type MetaFilters, parseContainerId, toNamespaceMeta, toPodMeta } from './pod-meta.js';
import { MetadataStore } from './store.js';
import type { ContainerHit, KubeSourceOptions, KubeSourceStatus, NamespaceMeta, PodMeta } from './types.js';

/**
 * Pod and namespace metadata for the events of THIS node: a pod informer
 * restricted by `spec.nodeName=<node>` (a DaemonSet agent that watched every pod
 * would cost the apiserver and each node O(cluster) for O(node) use) and a
 * namespace informer (cluster-scoped and small), feeding one store.
 *
 * An unreachable API never stops events: start() resolves after the first
 * attempt either way, the informers keep retrying in the background, and
 * status() says what is wrong.
 */

export const DEFAULT_RETENTION_MS = 5 * 60_000;
export const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000 } as const;

export type {
  ContainerHit,
  ContainerMeta,
  KubeSourceOptions,
  KubeSourceStatus,
  NamespaceMeta,
  PodMeta,
  WorkloadRef,
} from './types.js';

type Waiter = (hit: ContainerHit | undefined) => void;

/** The id as the store keys it: no `<runtime>://` prefix, lowercase. */
function normaliseId(id: string): string {
  return parseContainerId(id)?.id ?? '';
}

export class KubeMetadataSource {
  readonly #o: KubeSourceOptions;
  readonly #log: Logger;
  readonly #store: MetadataStore;
  readonly #filters: MetaFilters;
  readonly #change: CoalescedChange;
  readonly #waiters = new Map<string, Set<Waiter>>();
  #pods: ResilientInformer<V1Pod> | undefined;
  #namespaces: ResilientInformer<V1Namespace> | undefined;
  #starting: Promise<void> | undefined;
  #stopped = false;

  constructor(opts: KubeSourceOptions) {
    if (!opts.nodeName) {
      // An empty selector value matches the unscheduled pods of the whole cluster: never what was meant.
      throw new Error('KubeMetadataSource needs the node name (--node-name or NODE_NAME) to watch only this node’s pods');
    }
    this.#o = opts;
    this.#log = opts.log.child({ component: 'kube', node: opts.nodeName });
    this.#change = new CoalescedChange(this.#log);
    this.#store = new MetadataStore(opts.deletedRetentionMs ?? DEFAULT_RETENTION_MS, opts.now ?? Date.now);
    this.#filters = {
      labels: compileAllowList(opts.labelAllowList, ALL_KEYS),
      annotations: compileAllowList(opts.annotationAllowList, NO_KEYS),
    };
  }

  /** Starts both informers; resolves once each made its first list attempt (successful or not). */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const o = this.#o;
    const api = kubeApi(o.kubeConfig);
    const backoff = o.backoff ?? DEFAULT_BACKOFF;
    const fieldSelector = `spec.nodeName=${o.nodeName}`;

    this.#pods = new ResilientInformer<V1Pod>({
      resource: 'pods',
      path: '/api/v1/pods',
      fieldSelector,
      list: (signal) => api.listPods(fieldSelector, signal),
      watch: api.watch,
      // By uid: a StatefulSet's db-0 recreated while we were disconnected is another pod.
      keyOf: (p) => p.metadata?.uid ?? `${p.metadata?.namespace}/${p.metadata?.name}`,
      handlers: {
        upsert: (p) => this.#upsertPod(p),
        remove: (uid, p) => {
          // The final state first: a container seen only in it still wakes its waiters.
          if (p) this.#upsertPod(p);
          this.#store.deletePod(uid);
          this.#changed();
        },
      },
      log: this.#log,
      backoff,
      random: o.random,
    });
    this.#namespaces = new ResilientInformer<V1Namespace>({
      resource: 'namespaces',
      path: '/api/v1/namespaces',
      list: (signal) => api.listNamespaces(signal),
      watch: api.watch,
      // By name: that is how events look namespaces up.
      keyOf: (n) => n.metadata?.name ?? '',
      handlers: {
        upsert: (n) => {
          this.#store.upsertNamespace(toNamespaceMeta(n, this.#filters.labels));
          this.#changed();
        },
        remove: (name, n) => {
          this.#store.deleteNamespace(name, n ? toNamespaceMeta(n, this.#filters.labels) : undefined);
          this.#changed();
        },
      },
      log: this.#log,
      backoff,
      random: o.random,
    });
    if (this.#stopped) return;
    await Promise.all([this.#pods.start(), this.#namespaces.start()]);
    const s = this.status();
    if (s.synced) this.#log.info({ pods: s.pods, namespaces: s.namespaces }, 'Kubernetes metadata synced');
    else if (!this.#stopped) {
      this.#log.warn(
        { err: s.lastError },
        'Kubernetes API not available yet: events go out without pod metadata until it is; retrying in the background',
      );
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([this.#pods?.stop(), this.#namespaces?.stop()]);
    for (const set of this.#waiters.values()) for (const w of [...set]) w(undefined);
    this.#waiters.clear();
  }

  byContainerId(id: string): ContainerHit | undefined {
    return this.#store.container(id) ?? this.#store.container(normaliseId(id));
  }

  byPodUid(uid: string): PodMeta | undefined {
    return this.#store.pod(uid);
  }

  namespace(name: string): NamespaceMeta | undefined {
    return this.#store.namespace(name);
  }

  synced(): boolean {
    return (this.#pods?.state().listed ?? false) && (this.#namespaces?.state().listed ?? false);
  }

  /** Resolves when the container id becomes known, or after timeoutMs with undefined (used to hold an event briefly). */
  waitForContainer(id: string, timeoutMs: number): Promise<ContainerHit | undefined> {
    const key = normaliseId(id);
    const hit = this.#store.container(key);
    if (hit || this.#stopped || key === '') return Promise.resolve(hit);
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(key) ?? new Set<Waiter>();
      this.#waiters.set(key, waiters);
      const waiter: Waiter = (h) => {
        clearTimeout(timer);
        waiters.delete(waiter);
        if (waiters.size === 0 && this.#waiters.get(key) === waiters) this.#waiters.delete(key);
        resolve(h);
      };
      const timer = setTimeout(() => waiter(undefined), Math.max(0, timeoutMs));
      waiters.add(waiter);
    });
  }

  status(): KubeSourceStatus {
    const p = this.#pods?.state();
    const n = this.#namespaces?.state();
    const counts = this.#store.counts();
    const lastError = p?.lastError ?? n?.lastError;
    return {
      synced: this.synced(),
      connected: (p?.connected ?? false) && (n?.connected ?? false),
      restarts: (p?.restarts ?? 0) + (n?.restarts ?? 0),
      ...(lastError !== undefined ? { lastError } : {}),
      pods: counts.pods,
      namespaces: counts.namespaces,
      deletedRetained: counts.deletedRetained,
    };
  }

  /** Any pod/namespace add/update/delete; a burst (a relist) is reported once. */
  on(event: 'change', fn: () => void): void {
    if (event !== 'change') throw new Error(`unknown event ${String(event)}`);
    this.#change.on(fn);
  }

  #upsertPod(pod: V1Pod): void {
    const fresh = this.#store.upsertPod(toPodMeta(pod, this.#filters));
    for (const id of fresh) {
      const waiters = this.#waiters.get(id);
      if (!waiters) continue;
      const hit = this.#store.container(id);
      for (const w of [...waiters]) w(hit);
    }
    this.#changed();
  }

  #changed(): void {
    this.#change.fire();
  }
}
