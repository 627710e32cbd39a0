import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import { ALL_KEYS, compileAllowList, NO_KEYS } from './allow-list.js';
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
    // The transport (client-node's API classes) is imported here, not at the top: a process that never
    // starts a source (--no-kube, no configuration found) never loads client-node (see config.ts).
    const { kubeApi } = await import('./api.js');
    const api = kubeApi(o.kubeConfig);
    const backoff = o.backoff ?? DEFAULT_BACKOFF;
    const fieldSelector = `spec.nodeName=${o.nodeName}`;
    const loop = { watch: api.watch, log: this.#log, backoff, random: o.random };
    const pod = (p: V1Pod) => toPodMeta(p, this.#filters);
    const namespace = (n: V1Namespace) => toNamespaceMeta(n, this.#filters.labels);

    this.#pods = new ResilientInformer<V1Pod>({
      ...loop,
      resource: 'pods',
      path: '/api/v1/pods',
      fieldSelector,
      list: (signal) => api.listPods(fieldSelector, signal),
      // By uid: a StatefulSet's db-0 recreated while we were disconnected is another pod.
      keyOf: (p) => p.metadata?.uid ?? `${p.metadata?.namespace}/${p.metadata?.name}`,
      handlers: {
        upsert: (p) => {
          this.#store.upsertPod(pod(p));
          this.#change.fire();
        },
        // With the final state when the watch sent one: a container seen only in it still resolves.
        remove: (uid, p) => {
          this.#store.deletePod(uid, p && pod(p));
          this.#change.fire();
        },
      },
    });
    this.#namespaces = new ResilientInformer<V1Namespace>({
      ...loop,
      resource: 'namespaces',
      path: '/api/v1/namespaces',
      list: (signal) => api.listNamespaces(signal),
      // By name: that is how events look namespaces up.
      keyOf: (n) => n.metadata?.name ?? '',
      handlers: {
        upsert: (n) => {
          this.#store.upsertNamespace(namespace(n));
          this.#change.fire();
        },
        remove: (name, n) => {
          this.#store.deleteNamespace(name, n && namespace(n));
          this.#change.fire();
        },
      },
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
}
