import type { AcceptEvent, EnrichmentStatus, Pod } from '../gen/doorwatch/v1/event.js';
import type { CgroupIdentity } from './cgroup/path.js';
import type { ContainerMeta, NamespaceMeta, PodMeta } from './kube/types.js';

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

export function applyAttribution(ev: AcceptEvent, a: Attribution): void {
  const id = a.identity;
  if (id && id.kind !== 'host') {
    ev.container = id.containerId
      ? {
          id: id.containerId,
          runtime: id.runtime ?? a.container?.runtime ?? '',
          name: a.container?.name ?? '',
          image: a.container?.image ?? '',
          imageId: a.container?.imageId ?? '',
          cgroupPath: a.cgroupPath ?? '',
        }
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
  ev.enrichment = {
    status: a.status,
    missing: a.missing,
    reason: a.reason,
    cgroupFromProc: a.fromProc ?? false,
    waitedMs: a.waitedMs ?? 0,
  };
}
