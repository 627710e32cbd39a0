import type { V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { type AddressAttribution, AttributionStatus, OwnerKind, type Workload } from '../../gen/doorwatch/v1/event.js';
import type { KeyFilter } from '../../kube/allow-list.js';
import { deriveWorkload } from '../../kube/pod-meta.js';

/**
 * Pods, Services and nodes -> what the peer index keeps of them: the
 * addresses each holds, and the one frozen AddressAttribution every event
 * naming it will share. Pure, but for the interning: the labels of a
 * Deployment's replicas, their workload, namespace and node names are one
 * object or string each, not one per pod (150 000 pods, a few thousand
 * distinct label sets).
 *
 * The workload is the agent's own derivation (kube/pod-meta.ts
 * deriveWorkload: ReplicaSet -> Deployment by pod-template-hash, Job ->
 * CronJob by name), so a peer and a local pod name the same workload.
 */

export interface Owned {
  kind: OwnerKind;
  /** The index's key: uid (pods, Services), name (nodes). */
  key: string;
  attr: AddressAttribution;
  addresses: string[];
}

const EMPTY_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Shared values by content. Bounded: past `max` distinct entries it starts
 * afresh (objects already handed out stay valid; later ones are shared
 * among themselves), so churn cannot grow it without end.
 */
class Interner<T> {
  readonly #map = new Map<string, T>();
  constructor(private readonly max: number) {}
  get(key: string, make: () => T): T {
    let v = this.#map.get(key);
    if (v === undefined) {
      if (this.#map.size >= this.max) this.#map.clear();
      v = make();
      this.#map.set(key, v);
    }
    return v;
  }
  get size(): number {
    return this.#map.size;
  }
}

export class OwnerFactory {
  readonly #labels: KeyFilter;
  readonly #strings = new Interner<string>(65_536);
  readonly #labelSets = new Interner<Readonly<Record<string, string>>>(65_536);
  readonly #workloads = new Interner<Workload>(65_536);

  constructor(labels: KeyFilter) {
    this.#labels = labels;
  }

  #s(v: string | undefined): string {
    if (!v) return '';
    return this.#strings.get(v, () => v);
  }

  #labelsOf(src: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> {
    if (!src) return EMPTY_LABELS;
    const keys = Object.keys(src)
      .filter((k) => this.#labels(k))
      .sort();
    if (keys.length === 0) return EMPTY_LABELS;
    let id = '';
    for (const k of keys) id += `${k}\u0000${src[k]}\u0001`;
    return this.#labelSets.get(id, () => {
      const out: Record<string, string> = {};
      for (const k of keys) out[this.#s(k)] = this.#s(src[k]);
      return Object.freeze(out);
    });
  }

  #attr(
    kind: OwnerKind,
    namespace: string | undefined,
    name: string,
    uid: string,
    workload: Workload | undefined,
    labels: Readonly<Record<string, string>> | undefined,
    nodeName: string | undefined,
  ): AddressAttribution {
    // Field order as the generated createBase: one object shape for every attribution.
    return Object.freeze({
      status: AttributionStatus.ATTRIBUTION_STATUS_RESOLVED,
      reason: '',
      kind,
      namespace: this.#s(namespace),
      name,
      uid,
      workload,
      labels: this.#labelsOf(labels) as { [key: string]: string },
      nodeName: this.#s(nodeName),
    });
  }

  /**
   * A pod holds status.podIPs (status.podIP on old servers) while it runs. A hostNetwork
   * pod holds nothing: its address is its node's (the node answers). Succeeded and Failed
   * pods released their address though the object stays: they hold nothing either.
   */
  pod(p: V1Pod): Owned {
    const m = p.metadata;
    const uid = m?.uid ?? `${m?.namespace}/${m?.name}`;
    const phase = p.status?.phase;
    const released = p.spec?.hostNetwork === true || phase === 'Succeeded' || phase === 'Failed';
    const addresses: string[] = [];
    if (!released) {
      for (const a of p.status?.podIPs ?? []) if (a.ip) addresses.push(a.ip);
      if (addresses.length === 0 && p.status?.podIP) addresses.push(p.status.podIP);
    }
    const w = deriveWorkload(p);
    const workload = w
      ? this.#workloads.get(`${w.kind}\u0000${w.name}\u0000${w.inferred}`, () =>
          Object.freeze({ kind: this.#s(w.kind), name: this.#s(w.name), inferred: w.inferred }),
        )
      : undefined;
    return {
      kind: OwnerKind.OWNER_KIND_POD,
      key: uid,
      attr: this.#attr(OwnerKind.OWNER_KIND_POD, m?.namespace, m?.name ?? '', uid, workload, m?.labels, p.spec?.nodeName),
      addresses,
    };
  }

  /** Cluster IPs (not "None": headless), external IPs, load-balancer ingress IPs. */
  service(s: V1Service): Owned {
    const m = s.metadata;
    const uid = m?.uid ?? `${m?.namespace}/${m?.name}`;
    const addresses: string[] = [];
    const cluster = s.spec?.clusterIPs?.length ? s.spec.clusterIPs : s.spec?.clusterIP ? [s.spec.clusterIP] : [];
    for (const ip of cluster) if (ip && ip !== 'None') addresses.push(ip);
    for (const ip of s.spec?.externalIPs ?? []) if (ip) addresses.push(ip);
    for (const ing of s.status?.loadBalancer?.ingress ?? []) if (ing.ip) addresses.push(ing.ip);
    return {
      kind: OwnerKind.OWNER_KIND_SERVICE,
      key: uid,
      attr: this.#attr(OwnerKind.OWNER_KIND_SERVICE, m?.namespace, m?.name ?? '', uid, undefined, m?.labels, undefined),
      addresses,
    };
  }

  /** InternalIP and ExternalIP addresses (not Hostname, InternalDNS, ExternalDNS). */
  node(n: V1Node): Owned & { podCidrs: string[] } {
    const m = n.metadata;
    const name = m?.name ?? '';
    const addresses: string[] = [];
    for (const a of n.status?.addresses ?? []) {
      if ((a.type === 'InternalIP' || a.type === 'ExternalIP') && a.address) addresses.push(a.address);
    }
    const podCidrs = n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
    return {
      kind: OwnerKind.OWNER_KIND_NODE,
      key: name,
      attr: this.#attr(OwnerKind.OWNER_KIND_NODE, undefined, name, m?.uid ?? '', undefined, m?.labels, name),
      addresses,
      podCidrs,
    };
  }
}
