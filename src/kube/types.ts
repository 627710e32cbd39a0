import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';

/**
 * What Doorwatch keeps of the Kubernetes API: the few fields an accept event
 * carries, not whole Pod objects. Every object handed out is frozen — a
 * snapshot shared by every event that reads it, never mutated in place.
 * docs/enrichment-kubernetes.md names the API field behind each one.
 */

export interface ContainerMeta {
  /** Runtime container id without the `<runtime>://` prefix (64 lowercase hex for containerd, CRI-O, docker). */
  id: string;
  /** The prefix of status.containerStatuses[].containerID: 'containerd', 'cri-o', 'docker'. */
  runtime: string;
  name: string;
  /** The image as the pod spec names it (status image when the spec has none). */
  image: string;
  /** The resolved image, usually `repo@sha256:…` (status imageID). */
  imageId: string;
}

/** A port a container declares (spec.containers[].ports[]): what the undeclared-listener finding compares with. */
export interface DeclaredPortMeta {
  containerPort: number;
  /** 0 when not set. */
  hostPort: number;
  /** 'TCP' (the API's default when absent), 'UDP', 'SCTP'. */
  protocol: string;
  container: string;
  /** The port's name; '' when it has none. */
  name: string;
}

export interface WorkloadRef {
  kind: string;
  name: string;
  /** true when derived from a naming convention, not read from the API */
  inferred: boolean;
}

export interface PodMeta {
  uid: string;
  namespace: string;
  name: string;
  nodeName: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  serviceAccount: string;
  podIp: string;
  hostNetwork: boolean;
  qosClass: string;
  /**
   * ReplicaSet→Deployment via the pod-template-hash label (exact); Job→CronJob via the job name's
   * numeric suffix (inferred); StatefulSet, DaemonSet, Job, ReplicaSet (bare), any other controller
   * as named; none for a bare pod.
   */
  workload?: WorkloadRef;
  /** From status.containerStatuses + initContainerStatuses + ephemeralContainerStatuses, started ones only. */
  containers: ContainerMeta[];
  /**
   * spec.containers[].ports and those of native sidecars (spec.initContainers[] with restartPolicy
   * Always: they run beside the app), at most MAX_DECLARED_PORTS; the pod spec's ports are immutable,
   * so they are read once per pod update, never per event. Always set by toPodMeta (frozen, shared
   * empty list when none); absent only in hand-built metadata, read as none declared.
   */
  declaredPorts?: readonly DeclaredPortMeta[];
  /** Set when deleted; the pod stays resolvable for the retention period. */
  deletedAtMs?: number;
}

export interface NamespaceMeta {
  name: string;
  labels: Record<string, string>;
  /** Set when deleted; kept for the same retention as pods. */
  deletedAtMs?: number;
}

export interface ContainerHit {
  pod: PodMeta;
  container: ContainerMeta;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export interface KubeSourceOptions {
  kubeConfig: KubeConfig;
  nodeName: string;
  log: Logger;
  /** Default: all labels; else only these keys (exact keys or `prefix*` globs). Applies to namespaces too. */
  labelAllowList?: string[];
  /** Default: none (opt-in). Same syntax as labelAllowList. */
  annotationAllowList?: string[];
  /** Default 5 min: late events for deleted pods (and replaced containers) still resolve. */
  deletedRetentionMs?: number;
  /** Default 500ms..30s, full jitter. */
  backoff?: BackoffOptions;
  /** Injectable for tests (retention); defaults to Date.now. */
  now?: () => number;
  /** Injectable for tests (jitter); defaults to Math.random. */
  random?: () => number;
}

export interface KubeSourceStatus {
  /** Both informers listed at least once. */
  synced: boolean;
  /** Both informers have a watch stream open right now. */
  connected: boolean;
  /** Lists/watches re-established after the first one, all informers together. */
  restarts: number;
  /** The current failure, if any informer is failing now (cleared once it recovers). */
  lastError?: string;
  /** Live pods of this node. */
  pods: number;
  namespaces: number;
  /** Deleted pods still resolvable. */
  deletedRetained: number;
}
