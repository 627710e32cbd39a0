import type { AcceptEvent, EnrichmentStatus } from '../gen/doorwatch/v1/event.js';
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
    ev.pod = {
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
      qosClass: p.qosClass || id?.qos || '',
      namespaceLabels: { ...(a.namespace?.labels ?? {}) },
      deleted: p.deletedAtMs !== undefined,
    };
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
