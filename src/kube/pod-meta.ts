import type { V1ContainerStatus, V1Namespace, V1OwnerReference, V1Pod } from '@kubernetes/client-node';
import { type KeyFilter, pick } from './allow-list.js';
import type { ContainerMeta, DeclaredPortMeta, NamespaceMeta, PodMeta, WorkloadRef } from './types.js';

/**
 * V1Pod -> PodMeta, pure. Input is either a deserialised list item or a raw
 * watch object (client-node hands watch events over as parsed JSON, list items
 * as model classes): only string/boolean fields are read, which are the same in both.
 */

export interface MetaFilters {
  labels: KeyFilter;
  annotations: KeyFilter;
}

/** `containerd://<id>` -> { runtime: 'containerd', id }. Undefined for a container not started yet (''). */
export function parseContainerId(raw: string | undefined | null): { runtime: string; id: string } | undefined {
  if (!raw) return undefined;
  const sep = raw.indexOf('://');
  const runtime = sep < 0 ? '' : raw.slice(0, sep);
  const id = (sep < 0 ? raw : raw.slice(sep + 3)).toLowerCase();
  return id === '' ? undefined : { runtime, id };
}

/** The owner that manages the pod: the controller reference, else the only/first one. */
function controllerOf(refs: readonly V1OwnerReference[] | undefined): V1OwnerReference | undefined {
  if (!refs || refs.length === 0) return undefined;
  return refs.find((r) => r.controller === true) ?? refs[0];
}

// The CronJob controller names its Jobs `<cronjob>-<scheduled time in minutes since the epoch>`;
// 8+ digits (every time since 1989) keeps `worker-2` from being read as a CronJob's job.
const CRONJOB_JOB = /^(.+)-(\d{8,})$/;

/**
 * The workload behind a pod from its ownerReferences alone: the agent may only
 * read pods and namespaces (no ReplicaSet/Job get), so the level above the
 * direct owner comes from what its controller writes into names and labels.
 */
export function deriveWorkload(pod: V1Pod): WorkloadRef | undefined {
  const owner = controllerOf(pod.metadata?.ownerReferences);
  if (!owner?.kind || !owner.name) return undefined;
  if (owner.kind === 'ReplicaSet') {
    // The Deployment controller names each ReplicaSet `<deployment>-<pod-template-hash>` and stamps
    // the same hash on the pods: when both agree the Deployment's name is certain.
    const hash = pod.metadata?.labels?.['pod-template-hash'];
    if (hash && owner.name.length > hash.length + 1 && owner.name.endsWith(`-${hash}`)) {
      return { kind: 'Deployment', name: owner.name.slice(0, -(hash.length + 1)), inferred: false };
    }
    return { kind: 'ReplicaSet', name: owner.name, inferred: false };
  }
  if (owner.kind === 'Job') {
    const m = CRONJOB_JOB.exec(owner.name);
    if (m) return { kind: 'CronJob', name: m[1]!, inferred: true };
    return { kind: 'Job', name: owner.name, inferred: false };
  }
  // StatefulSet, DaemonSet, Node (static pods' mirror), custom controllers: as named.
  return { kind: owner.kind, name: owner.name, inferred: false };
}

function containersOf(pod: V1Pod): ContainerMeta[] {
  const spec = pod.spec;
  const specImage = new Map<string, string>();
  for (const c of [...(spec?.containers ?? []), ...(spec?.initContainers ?? []), ...(spec?.ephemeralContainers ?? [])]) {
    if (c.name && c.image) specImage.set(c.name, c.image);
  }
  const st = pod.status;
  const statuses: V1ContainerStatus[] = [
    ...(st?.containerStatuses ?? []),
    ...(st?.initContainerStatuses ?? []),
    ...(st?.ephemeralContainerStatuses ?? []),
  ];
  const out: ContainerMeta[] = [];
  for (const s of statuses) {
    const parsed = parseContainerId(s.containerID);
    if (!parsed) continue;
    out.push(
      Object.freeze({
        id: parsed.id,
        runtime: parsed.runtime,
        name: s.name ?? '',
        image: specImage.get(s.name) ?? s.image ?? '',
        imageId: s.imageID ?? '',
      }),
    );
  }
  return out;
}

/** Bound on the ports kept per pod: a spec may list hundreds; the finding compares with what is kept and says so. */
export const MAX_DECLARED_PORTS = 64;
const NO_PORTS: readonly DeclaredPortMeta[] = Object.freeze([]);

/**
 * The ports a pod declares: its containers' and its native sidecars' (init
 * containers with restartPolicy Always run for the pod's life). Classic init
 * containers and ephemeral (debug) containers are not serving the pod: left out.
 */
export function declaredPortsOf(pod: V1Pod): readonly DeclaredPortMeta[] {
  const spec = pod.spec;
  const serving = [...(spec?.containers ?? []), ...(spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always')];
  const out: DeclaredPortMeta[] = [];
  for (const c of serving) {
    for (const p of c.ports ?? []) {
      if (out.length >= MAX_DECLARED_PORTS) break;
      if (typeof p.containerPort !== 'number') continue;
      out.push(
        Object.freeze({
          containerPort: p.containerPort,
          hostPort: typeof p.hostPort === 'number' ? p.hostPort : 0,
          protocol: p.protocol || 'TCP',
          container: c.name ?? '',
          name: p.name ?? '',
        }),
      );
    }
  }
  return out.length ? Object.freeze(out) : NO_PORTS;
}

export function toPodMeta(pod: V1Pod, filters: MetaFilters): PodMeta {
  const m = pod.metadata;
  const workload = deriveWorkload(pod);
  const meta: PodMeta = {
    uid: m?.uid ?? '',
    namespace: m?.namespace ?? '',
    name: m?.name ?? '',
    nodeName: pod.spec?.nodeName ?? '',
    labels: pick(m?.labels, filters.labels),
    annotations: pick(m?.annotations, filters.annotations),
    // serviceAccount is the deprecated alias kubelet still fills in.
    serviceAccount: pod.spec?.serviceAccountName ?? pod.spec?.serviceAccount ?? '',
    podIp: pod.status?.podIP ?? '',
    hostNetwork: pod.spec?.hostNetwork === true,
    qosClass: pod.status?.qosClass ?? '',
    containers: Object.freeze(containersOf(pod)) as ContainerMeta[],
    declaredPorts: declaredPortsOf(pod),
  };
  if (workload) meta.workload = Object.freeze(workload);
  return Object.freeze(meta);
}

export function toNamespaceMeta(ns: V1Namespace, labels: KeyFilter): NamespaceMeta {
  return Object.freeze({ name: ns.metadata?.name ?? '', labels: pick(ns.metadata?.labels, labels) });
}
