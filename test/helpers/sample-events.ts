import { LossRecord } from '../../src/gen/doorwatch/v1/collector.js';
import {
  AcceptEvent,
  AddressFamily,
  AuditMode,
  EnrichmentStatus,
  EventKind,
  PolicyOrigin,
  Source,
  SummaryReason,
} from '../../src/gen/doorwatch/v1/event.js';
import type { SinkRecord } from '../../src/sinks/sink.js';

/**
 * One realistic, fully attributed accept (an nginx pod of a Deployment,
 * IPv4), for tests and benchmarks that need every part of an event filled.
 * Override any part: nested objects merge, arrays and scalars replace.
 *
 * sampleEvent() is a record as a producer without audit policies writes it:
 * kind EVENT_KIND_UNSPECIFIED (an accept) and no policy ref. sampleSummary()
 * is the summary record that accept opens once its pod is over its rate limit.
 * sampleHostEvent() and sampleUnixEvent() are host processes (no container, no
 * pod) on IPv6 and on a unix socket; sampleLoss() is a seq gap of that node's agent.
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

/** The AcceptAuditPolicy governing the sample pod: every accept an event, up to its rate limit. */
export const SAMPLE_POLICY = {
  origin: PolicyOrigin.POLICY_ORIGIN_RESOURCE,
  name: 'shop/web-audit',
  mode: AuditMode.AUDIT_MODE_EVENTS,
};

/** End of the summary's last accept: 9.876 s after the sample. */
export const SAMPLE_SUMMARY_LAST = SAMPLE_TIME + 9_876_000_000n;

const SUMMARY = {
  kind: EventKind.EVENT_KIND_SUMMARY,
  policy: SAMPLE_POLICY,
  summary: {
    reason: SummaryReason.SUMMARY_REASON_RATE_LIMIT,
    count: 57n,
    failedCount: 0n,
    firstTimeUnixNano: SAMPLE_TIME,
    lastTimeUnixNano: SAMPLE_SUMMARY_LAST,
    intervalStartUnixNano: 1714564800000000000n, // 12:00:00
    intervalEndUnixNano: 1714564810000000000n, // 12:00:10
    localPort: 443,
    peerIp: '10.0.0.9',
  },
};

/**
 * A summary record: the sample accept (its fields) folded with 56 more from
 * the same peer to port 443 of the same pod, above the policy's rate limit.
 */
export function sampleSummary(over: Deep<AcceptEvent> = {}): AcceptEvent {
  return sampleEvent(merge(SUMMARY, over) as Deep<AcceptEvent>);
}

const HOST_EVENT = {
  eventId: 'boot-1/inst-1/44',
  seq: 44n,
  timeUnixNano: SAMPLE_TIME,
  nodeName: 'node-a',
  source: Source.SOURCE_ACCEPT,
  ret: 4,
  success: true,
  process: { pid: 1190, tid: 1190, ppid: 1, uid: 0, gid: 0, comm: 'sshd' },
  socket: {
    family: AddressFamily.ADDRESS_FAMILY_INET6,
    familyNumber: 10,
    type: 'STREAM',
    protocol: 6,
    local: { ip: '2001:db8::1', port: 22 },
    peer: { ip: '2001:db8::7', port: 40112 },
    resolved: true,
  },
  listener: { fd: 3, maxBacklog: 128, resolved: true },
  userAddress: { present: false },
  enrichment: { status: EnrichmentStatus.ENRICHMENT_STATUS_HOST },
};

/** sshd on the node itself accepting an IPv6 peer: a host process, no container or pod. */
export function sampleHostEvent(over: Deep<AcceptEvent> = {}): AcceptEvent {
  return AcceptEvent.fromPartial(merge(HOST_EVENT, over) as Deep<AcceptEvent>);
}

const UNIX_EVENT = {
  eventId: 'boot-1/inst-1/45',
  seq: 45n,
  timeUnixNano: SAMPLE_TIME,
  nodeName: 'node-a',
  source: Source.SOURCE_IO_URING,
  ret: 9,
  success: true,
  process: { pid: 2231, tid: 2240, ppid: 2200, uid: 1000, gid: 1000, comm: 'app' },
  socket: {
    family: AddressFamily.ADDRESS_FAMILY_UNIX,
    familyNumber: 1,
    type: 'STREAM',
    protocol: 0,
    local: {},
    peer: {},
    unixPath: '/run/app.sock',
    peerPid: 77,
    resolved: true,
  },
  listener: { fd: 5, maxBacklog: 4096, resolved: true },
  userAddress: { present: false },
  enrichment: { status: EnrichmentStatus.ENRICHMENT_STATUS_HOST },
};

/** A host process accepting on a named unix socket through io_uring; the peer's pid is known. */
export function sampleUnixEvent(over: Deep<AcceptEvent> = {}): AcceptEvent {
  return AcceptEvent.fromPartial(merge(UNIX_EVENT, over) as Deep<AcceptEvent>);
}

/** The collector's record of seqs 101-150 of node-a's agent never arriving. */
export function sampleLoss(over: Partial<LossRecord> = {}): LossRecord {
  return LossRecord.fromPartial({
    agent: { nodeName: 'node-a', bootId: 'boot-1', instanceId: 'inst-1', version: '0.1.0' },
    fromSeq: 101n,
    toSeq: 150n,
    reason: 'seq gap',
    timeUnixNano: SAMPLE_TIME,
    ...over,
  });
}

/**
 * For sink tests, which route on the namespace: accept `seq` of one stream
 * (event id node-a/boot-1/100/<seq>), one millisecond after another from
 * 2023-11-14T22:13:20.123456789Z, by nginx in a pod of `namespace`, or by a
 * host process when there is none.
 */
export function sinkEvent(seq: number, namespace?: string): SinkRecord {
  return {
    kind: 'event',
    event: AcceptEvent.fromPartial({
      eventId: `node-a/boot-1/100/${seq}`,
      seq: BigInt(seq),
      timeUnixNano: 1_700_000_000_123_456_789n + BigInt(seq) * 1_000_000n,
      nodeName: 'node-a',
      success: true,
      socket: { local: { ip: '10.0.0.1', port: 443 }, peer: { ip: '10.0.0.2', port: 50000 + seq }, resolved: true },
      process: { pid: 100, comm: 'nginx' },
      ...(namespace ? { pod: { namespace, name: `${namespace}-pod` } } : {}),
      enrichment: {
        status: namespace ? EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE : EnrichmentStatus.ENRICHMENT_STATUS_HOST,
      },
    }),
  };
}

/** Events of `pods` pods as the enricher makes them (frozen parts, one shared Pod per pod), interleaved, and host events. */
export function podEvents(n: number, pods: number): AcceptEvent[] {
  const parts = Array.from({ length: pods }, (_, k) => {
    const e = sampleEvent({
      pod: { name: `web-${k}`, labels: { app: `a${k}` } },
      container: { id: `${k}`.repeat(64).slice(0, 64) },
    });
    return {
      namespaces: Object.freeze(e.namespaces!),
      cgroup: Object.freeze({ ...e.cgroup!, id: BigInt(1000 + k) }),
      container: Object.freeze(e.container!),
      pod: e.pod!,
      enrichment: Object.freeze(e.enrichment!),
    };
  });
  return Array.from({ length: n }, (_, i) => {
    const e = sampleEvent({ seq: BigInt(i + 1), eventId: `b/i/${i + 1}`, socket: { peer: { port: 1000 + i } } });
    // Every 7th a host process (no pod, no container); every 11th a mutable copy (not shared).
    if (i % 7 === 3) return { ...e, container: undefined, pod: undefined };
    const p = parts[(i * 3) % pods]!;
    return i % 11 === 5 ? { ...e, ...p, enrichment: { ...p.enrichment } } : { ...e, ...p };
  });
}
