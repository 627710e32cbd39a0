import type { KubeConfig, KubernetesObject, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { OwnerKind } from '../../gen/doorwatch/v1/event.js';
import { ALL_KEYS, compileAllowList } from '../../kube/allow-list.js';
import { type InformerState, ResilientInformer } from '../../kube/informer.js';
import type { BackoffOptions } from '../../kube/types.js';
import type { Logger } from '../../log/logger.js';
import type { PeerView } from './attributor.js';
import { DEFAULT_HISTORY_MS, PeerIndex, type PeerIndexStats } from './index-store.js';
import { type Owned, OwnerFactory } from './objects.js';
import { RangeSet } from './ranges.js';

/**
 * The collector's cluster-wide view for peer attribution: one list+watch
 * each of pods, Services and nodes (the agent's own loop, kube/
 * informer.ts: bookmarks, backoff with jitter, relist only on 410, watchdog),
 * feeding the peer index. One watch for the cluster at the collector, instead
 * of every agent watching every pod.
 *
 * Like the agent's source, an unreachable API never holds events back:
 * start() resolves after the first attempt either way, and until the first
 * lists are in, addresses the index does not know are "not synced yet".
 */

export interface PeerSourceOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** Ended holdings stay answerable this long (default 5 min). */
  historyMs?: number;
  maxEndedHoldings?: number;
  /** Label keys kept (exact or `prefix*`); default all, as the agent's labelAllowList. */
  labelAllowList?: string[];
  /** Pod and Service ranges to count as the cluster's besides the nodes' podCIDRs. */
  clusterCidrs?: string[];
  backoff?: BackoffOptions;
  now?: () => number;
  random?: () => number;
  /** How often ended holdings past the history are dropped when no update does it. Default 10 s. */
  maintainEveryMs?: number;
}

export interface PeerSourceStatus extends PeerIndexStats {
  /** Pods, Services and nodes listed at least once. */
  synced: boolean;
  /** All three watches open now. */
  connected: boolean;
  restarts: number;
  lastError?: string;
  /** CIDRs known as the cluster's (node podCIDRs + clusterCidrs). */
  clusterRanges: number;
}

const FORBIDDEN_HINT =
  "RBAC: the collector's ServiceAccount needs get/list/watch on pods, services and nodes (a ClusterRole bound to it)";

export class PeerSource implements PeerView {
  readonly index: PeerIndex;
  readonly ranges = new RangeSet();
  readonly historyMs: number;
  readonly #o: PeerSourceOptions;
  readonly #log: Logger;
  readonly #factory: OwnerFactory;
  /** node name -> its podCIDRs, as counted in ranges. */
  readonly #nodeCidrs = new Map<string, string[]>();
  #informers: ResilientInformer<KubernetesObject>[] = [];
  #timer: NodeJS.Timeout | undefined;
  #starting: Promise<void> | undefined;
  #stopped = false;
  #loaded = false;

  constructor(o: PeerSourceOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'peers' });
    this.historyMs = o.historyMs ?? DEFAULT_HISTORY_MS;
    this.index = new PeerIndex({
      historyMs: this.historyMs,
      ...(o.maxEndedHoldings !== undefined ? { maxEndedHoldings: o.maxEndedHoldings } : {}),
      ...(o.now ? { now: o.now } : {}),
    });
    this.#factory = new OwnerFactory(compileAllowList(o.labelAllowList, ALL_KEYS));
    for (const c of o.clusterCidrs ?? []) {
      if (!this.ranges.add(c)) throw new Error(`peers.clusterCidrs: "${c}" is not a CIDR (e.g. 10.244.0.0/16)`);
    }
  }

  /** Starts the three informers; resolves once each made its first list attempt (successful or not). */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const o = this.#o;
    const { kubeApi } = await import('../../kube/api.js');
    const api = kubeApi(o.kubeConfig);
    const loop = {
      watch: api.watch,
      log: this.#log,
      backoff: o.backoff ?? { initialMs: 500, maxMs: 30_000 },
      random: o.random,
      forbiddenHint: FORBIDDEN_HINT,
    };
    const apply = (owned: Owned) => this.index.set(owned.kind, owned.key, owned.attr, owned.addresses);
    const byUid = (x: KubernetesObject) => x.metadata?.uid ?? `${x.metadata?.namespace}/${x.metadata?.name}`;
    const pods = new ResilientInformer<V1Pod>({
      ...loop,
      resource: 'pods',
      path: '/api/v1/pods',
      list: (signal) => api.listPods('', signal),
      keyOf: byUid,
      handlers: {
        upsert: (p) => apply(this.#factory.pod(p)),
        remove: (uid) => this.index.delete(OwnerKind.OWNER_KIND_POD, uid),
      },
    });
    const services = new ResilientInformer<V1Service>({
      ...loop,
      resource: 'services',
      path: '/api/v1/services',
      list: (signal) => api.listServices(signal),
      keyOf: byUid,
      handlers: {
        upsert: (s) => apply(this.#factory.service(s)),
        remove: (uid) => this.index.delete(OwnerKind.OWNER_KIND_SERVICE, uid),
      },
    });
    const nodes = new ResilientInformer<V1Node>({
      ...loop,
      resource: 'nodes',
      path: '/api/v1/nodes',
      list: (signal) => api.listNodes(signal),
      keyOf: (n) => n.metadata?.name ?? '',
      handlers: {
        upsert: (n) => {
          const owned = this.#factory.node(n);
          apply(owned);
          this.#setNodeCidrs(owned.key, owned.podCidrs);
        },
        remove: (name) => {
          this.index.delete(OwnerKind.OWNER_KIND_NODE, name);
          this.#setNodeCidrs(name, []);
        },
      },
    });
    this.#informers = [pods, services, nodes] as ResilientInformer<KubernetesObject>[];
    if (this.#stopped) return;
    const every = o.maintainEveryMs ?? 10_000;
    this.#timer = setInterval(() => {
      this.index.maintain();
      this.#checkLoaded();
    }, every);
    this.#timer.unref();
    await Promise.all(this.#informers.map((i) => i.start()));
    this.#checkLoaded();
    const s = this.status();
    if (s.synced)
      this.#log.info({ pods: s.pods, services: s.services, nodes: s.nodes, addresses: s.addresses }, 'peer index synced');
    else if (!this.#stopped) {
      this.#log.warn(
        { err: s.lastError },
        'Kubernetes API not available yet: peers are attributed "unknown: peer index not synced yet" until it is; retrying in the background',
      );
    }
  }

  #checkLoaded(): void {
    if (this.#loaded || !this.synced()) return;
    this.#loaded = true;
    this.index.loaded();
  }

  #setNodeCidrs(name: string, cidrs: string[]): void {
    for (const c of this.#nodeCidrs.get(name) ?? []) this.ranges.remove(c);
    const kept = cidrs.filter((c) => this.ranges.add(c));
    if (kept.length) this.#nodeCidrs.set(name, kept);
    else this.#nodeCidrs.delete(name);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await Promise.all(this.#informers.map((i) => i.stop()));
  }

  synced(): boolean {
    return this.#informers.length === 3 && this.#informers.every((i) => i.state().listed);
  }

  status(): PeerSourceStatus {
    const states: InformerState[] = this.#informers.map((i) => i.state());
    const lastError = states.find((s) => s.lastError)?.lastError;
    return {
      synced: this.synced(),
      connected: states.length === 3 && states.every((s) => s.connected),
      restarts: states.reduce((n, s) => n + s.restarts, 0),
      ...(lastError !== undefined ? { lastError } : {}),
      clusterRanges: this.ranges.size,
      ...this.index.stats(),
    };
  }
}
