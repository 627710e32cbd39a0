import { AcceptEvent, AddressFamily, EnrichmentStatus, Source } from '../../src/gen/doorwatch/v1/event.js';

/**
 * One realistic, fully attributed accept (an nginx pod of a Deployment,
 * IPv4), for tests and benchmarks that need every part of an event filled.
 * Override any part: nested objects merge, arrays and scalars replace.
 */

type Deep<T> = { [K in keyof T]?: T[K] extends bigint | string | number | boolean | unknown[] ? T[K] : Deep<T[K]> };

export const SAMPLE_TIME = 1714564800123456789n; // 2024-05-01T12:00:00.123456789Z

const BASE = {
  eventId: 'boot-1/inst-1/42',
  seq: 42n,
  timeUnixNano: SAMPLE_TIME,
  ktimeNs: 987654321n,
  nodeName: 'node-a',
  source: Source.SOURCE_ACCEPT4,
  ret: 12,
  success: true,
  durationNs: 1500n,
  acceptFlags: 0o2004000,
  acceptFlagNames: ['SOCK_NONBLOCK', 'SOCK_CLOEXEC'],
  process: { pid: 812, tid: 813, ppid: 1, uid: 101, gid: 102, comm: 'nginx' },
  socket: {
    family: AddressFamily.ADDRESS_FAMILY_INET,
    familyNumber: 2,
    type: 'STREAM',
    protocol: 6,
    local: { ip: '10.0.0.5', port: 443 },
    peer: { ip: '10.0.0.9', port: 51544 },
    resolved: true,
  },
  listener: { fd: 6, backlog: 3, maxBacklog: 511, resolved: true },
  userAddress: { present: true, addrlen: 16, familyNumber: 2, ip: '10.0.0.9', port: 51544 },
  namespaces: { mnt: 4026531840, pid: 4026531836, net: 4026531992, uts: 4026531838 },
  cgroup: { id: 12345n, v1Id: 678n },
  container: {
    id: 'c'.repeat(64),
    runtime: 'containerd',
    name: 'web',
    image: 'nginx:1.25',
    imageId: `docker.io/library/nginx@sha256:${'d'.repeat(64)}`,
    cgroupPath: '/kubepods.slice/x',
  },
  pod: {
    namespace: 'shop',
    name: 'web-7d9f-abc',
    uid: '0f3c-uid',
    labels: { 'app.kubernetes.io/name': 'web', tier: 'front' },
    annotations: { 'doorwatch.io/audit': 'on' },
    workload: { kind: 'Deployment', name: 'web' },
    serviceAccount: 'web-sa',
    nodeName: 'node-a',
    ip: '10.0.0.5',
    qosClass: 'Burstable',
    namespaceLabels: { team: 'payments' },
  },
  enrichment: { status: EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE },
};

/** Proto maps are replaced whole, like arrays: an override says the whole map. */
const MAPS = new Set(['labels', 'annotations', 'namespaceLabels']);

function merge(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  const plain = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!plain(base) || !plain(over)) return over;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) out[k] = MAPS.has(k) ? v : merge(out[k], v);
  return out;
}

export function sampleEvent(over: Deep<AcceptEvent> = {}): AcceptEvent {
  return AcceptEvent.fromPartial(merge(BASE, over) as Deep<AcceptEvent>);
}
