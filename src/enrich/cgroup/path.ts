/**
 * cgroupfs path -> container identity. Pure: no filesystem, no clock.
 *
 * Paths are relative to a hierarchy root ('/kubepods.slice/...'); v1 and v2
 * use the same names, so one parser serves both. The path is read segment by
 * segment and the INNERMOST recognised segment wins: kind-in-docker, k3d and
 * CI runners put a whole kubelet tree below an outer container's cgroup, and
 * the workload is the deepest container, not the node that hosts it.
 */

export type ContainerRuntime = 'containerd' | 'cri-o' | 'docker' | 'podman';
export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

export interface CgroupIdentity {
  /** 'pod' = inside a pod's cgroup but in no container of it (the pod-level cgroup, CRI-O's conmon). */
  kind: 'container' | 'pod' | 'host';
  runtime?: ContainerRuntime;
  /** 64 lowercase hex characters, no runtime prefix. */
  containerId?: string;
  /** Canonical UUID with dashes (systemd slice names carry it with underscores). */
  podUid?: string;
  qos?: QosClass;
}

const ID = '[0-9a-f]{64}';
const UID = '[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}';

/**
 * Container scopes. `.scope` is the systemd cgroup driver; without it the
 * cgroupfs driver (CRI-O names its cgroupfs dirs `crio-<id>`, podman
 * `libpod-<id>`, under `libpod_parent`).
 */
const PREFIXED: readonly [RegExp, ContainerRuntime][] = [
  [new RegExp(`^cri-containerd-(${ID})(?:\\.scope)?$`), 'containerd'],
  [new RegExp(`^nerdctl-(${ID})(?:\\.scope)?$`), 'containerd'],
  [new RegExp(`^crio-(${ID})(?:\\.scope)?$`), 'cri-o'],
  [new RegExp(`^docker-(${ID})(?:\\.scope)?$`), 'docker'],
  [new RegExp(`^libpod-(${ID})(?:\\.scope)?$`), 'podman'],
];

/**
 * conmon, the runtime monitor CRI-O and podman run next to each container: a
 * host-side helper in its own scope, never the workload. It is recognised so
 * that its 64-hex id is not mistaken for a container.
 */
const CONMON: readonly [RegExp, ContainerRuntime][] = [
  [new RegExp(`^crio-conmon-(${ID})(?:\\.scope)?$`), 'cri-o'],
  [new RegExp(`^libpod-conmon-(${ID})(?:\\.scope)?$`), 'podman'],
];

/** cgroupfs driver, and docker/containerd's plain `<parent>/<id>` layouts. */
const BARE_ID = new RegExp(`^(${ID})$`);

/** systemd driver: `kubepods[-<qos>]-pod<uid>.slice`, possibly under a prefix (`kubelet-kubepods-...` in kind). */
const POD_SLICE = new RegExp(`(?:^|-)kubepods(?:-(burstable|besteffort))?-pod(${UID})\\.slice$`);
/** cgroupfs driver: `pod<uid>` under `kubepods`, `kubepods/burstable` or `kubepods/besteffort`. */
const POD_DIR = new RegExp(`^pod(${UID})$`);

const QOS_BY_NAME: Record<string, QosClass> = { burstable: 'Burstable', besteffort: 'BestEffort' };

interface ContainerHit {
  index: number;
  runtime: ContainerRuntime | undefined;
  id: string | undefined; // undefined for conmon
}

interface PodHit {
  index: number;
  uid: string;
  qos: QosClass | undefined;
}

function matchContainer(seg: string, parent: string | undefined): Omit<ContainerHit, 'index'> | undefined {
  for (const [re, runtime] of PREFIXED) {
    const m = re.exec(seg);
    if (m) return { runtime, id: m[1] };
  }
  for (const [re, runtime] of CONMON) {
    if (re.test(seg)) return { runtime, id: undefined };
  }
  const m = BARE_ID.exec(seg);
  // A bare id names its runtime only through docker's own parent; under
  // kubepods it may be containerd, cri-dockerd or anything CRI.
  if (m) return { runtime: parent === 'docker' ? 'docker' : undefined, id: m[1] };
  return undefined;
}

function matchPod(seg: string, parent: string | undefined): Omit<PodHit, 'index'> | undefined {
  let m = POD_SLICE.exec(seg);
  if (m) {
    // The systemd driver spells the QoS class into the pod slice; none = Guaranteed.
    return { uid: m[2]!.replaceAll('_', '-'), qos: m[1] ? QOS_BY_NAME[m[1]] : 'Guaranteed' };
  }
  m = POD_DIR.exec(seg);
  if (m) {
    // The cgroupfs driver uses the parent directory; Guaranteed pods sit directly under kubepods.
    const qos = parent === 'kubepods' ? 'Guaranteed' : parent ? QOS_BY_NAME[parent] : undefined;
    return { uid: m[1]!.replaceAll('_', '-'), qos };
  }
  return undefined;
}

export function parseCgroupPath(path: string): CgroupIdentity {
  const segs = path
    .trim()
    .split('/')
    .filter((s) => s !== '');
  let container: ContainerHit | undefined;
  let pod: PodHit | undefined;
  for (let i = segs.length - 1; i >= 0 && !(container && pod); i--) {
    const seg = segs[i]!;
    const parent = segs[i - 1];
    // Only the innermost container counts, and only a pod that encloses it (or, with none, the innermost pod).
    if (!container && !pod) {
      const c = matchContainer(seg, parent);
      if (c) {
        container = { index: i, ...c };
        continue;
      }
    }
    if (!pod) {
      const p = matchPod(seg, parent);
      if (p) pod = { index: i, ...p };
    }
  }

  const podFields = pod ? { podUid: pod.uid, ...(pod.qos ? { qos: pod.qos } : {}) } : {};
  const runtime = container?.runtime ? { runtime: container.runtime } : {};
  if (container?.id !== undefined) return { kind: 'container', ...runtime, containerId: container.id, ...podFields };
  // conmon inside a pod is attributed to the pod, not to the container it watches; outside one it is the host's.
  if (pod) return { kind: 'pod', ...runtime, ...podFields };
  return { kind: 'host' };
}
