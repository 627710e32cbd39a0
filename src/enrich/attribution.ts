import type { AcceptEvent, Container, Enrichment, EnrichmentStatus, Pod } from '../gen/doorwatch/v1/event.js';
import type { ContainerMeta, NamespaceMeta, PodMeta } from '../kube/types.js';
import type { CgroupIdentity } from './cgroup/path.js';

/** Write what is known onto an event: pure, one place for every field. */

export interface Attribution {
  cgroupPath?: string;
  identity?: CgroupIdentity;
  fromProc?: boolean;
  pod?: PodMeta;
  container?: ContainerMeta;
  namespace?: NamespaceMeta;
  status: EnrichmentStatus;
  missing: string[];
  reason: string;
  waitedMs?: number;
}

/*
 * The proto Pod of a pod is built once per (pod, namespace) version, not per
 * event: copying its label maps for every accept was per-event work for
 * per-pod data. The informer replaces a PodMeta/NamespaceMeta object on every
 * change, so identity is the cache key. Events share the object (read-only).
 */
const pods = new WeakMap<PodMeta, { namespace: NamespaceMeta | undefined; pod: Pod }>();

function podOf(p: PodMeta, namespace: NamespaceMeta | undefined, qos: string | undefined): Pod {
  const hit = pods.get(p);
  if (hit && hit.namespace === namespace) return hit.pod;
  const pod: Pod = {
    namespace: p.namespace,
    name: p.name,
    uid: p.uid,
    labels: { ...p.labels },
    annotations: { ...p.annotations },
    workload: p.workload ? { kind: p.workload.kind, name: p.workload.name, inferred: p.workload.inferred } : undefined,
    serviceAccount: p.serviceAccount,
    nodeName: p.nodeName,
    ip: p.podIp,
    hostNetwork: p.hostNetwork,
    qosClass: p.qosClass || qos || '',
    namespaceLabels: { ...(namespace?.labels ?? {}) },
    deleted: p.deletedAtMs !== undefined,
  };
  pods.set(p, { namespace, pod });
  return pod;
}

/*
 * The same for a container: one proto Container per (cgroup identity,
 * container metadata, cgroup path), shared by its events. The identity comes
 * from the enricher's per-cgroup cache and the metadata from the informer,
 * both replaced (never mutated) on change, so identity is the key. Sharing
 * also lets the encoders (agent/event-encoder.ts, formats/native-json.ts)
 * encode a container once instead of per event.
 */
const containers = new WeakMap<CgroupIdentity, { meta: ContainerMeta | undefined; path: string; container: Container }>();

function containerOf(id: CgroupIdentity & { containerId: string }, meta: ContainerMeta | undefined, path: string): Container {
  const hit = containers.get(id);
  if (hit && hit.meta === meta && hit.path === path) return hit.container;
  // Frozen: shared by every event of the container, and the encoders keep its bytes per object.
  const container: Container = Object.freeze({
    id: id.containerId,
    runtime: id.runtime ?? meta?.runtime ?? '',
    name: meta?.name ?? '',
    image: meta?.image ?? '',
    imageId: meta?.imageId ?? '',
    cgroupPath: path,
  });
  containers.set(id, { meta, path, container });
  return container;
}

/*
 * Enrichment records without a wait or a reason (every complete or host
 * event) are one shared object per (status, missing, /proc): a fresh object
 * per event was garbage the agent made at its event rate.
 */
// Keyed by the `missing` array itself: the enricher passes one shared constant per case.
const plainEnrichments = new Map<readonly string[], (Enrichment | undefined)[]>();
function enrichmentOf(a: Attribution): Enrichment {
  const fromProc = a.fromProc ?? false;
  const waitedMs = a.waitedMs ?? 0;
  if (waitedMs !== 0 || a.reason !== '') {
    return { status: a.status, missing: a.missing, reason: a.reason, cgroupFromProc: fromProc, waitedMs };
  }
  let byStatus = plainEnrichments.get(a.missing);
  if (!byStatus) {
    byStatus = [];
    if (plainEnrichments.size < 64) plainEnrichments.set(a.missing, byStatus);
  }
  const slot = a.status * 2 + (fromProc ? 1 : 0);
  let e = byStatus[slot];
  if (!e) {
    e = Object.freeze({ status: a.status, missing: a.missing, reason: '', cgroupFromProc: fromProc, waitedMs: 0 }) as Enrichment;
    byStatus[slot] = e;
  }
  return e;
}

export function applyAttribution(ev: AcceptEvent, a: Attribution): void {
  const id = a.identity;
  if (id && id.kind !== 'host') {
    ev.container = id.containerId
      ? containerOf(id as CgroupIdentity & { containerId: string }, a.container, a.cgroupPath ?? '')
      : undefined;
  }
  const p = a.pod;
  if (p) {
    ev.pod = podOf(p, a.namespace, id?.qos);
  } else if (id?.podUid) {
    // The cgroup alone names the pod UID and QoS: say that much.
    ev.pod = {
      namespace: '',
      name: '',
      uid: id.podUid,
      labels: {},
      annotations: {},
      workload: undefined,
      serviceAccount: '',
      nodeName: '',
      ip: '',
      hostNetwork: false,
      qosClass: id.qos ?? '',
      namespaceLabels: {},
      deleted: false,
    };
  }
  ev.enrichment = enrichmentOf(a);
}
