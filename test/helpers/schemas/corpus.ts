import type { SinkRecord } from '../../../src/formats/record.js';
import {
  type AcceptEvent,
  AddressFamily,
  AuditMode,
  EnrichmentStatus,
  EventKind,
  PolicyOrigin,
  Source,
} from '../../../src/gen/doorwatch/v1/event.js';
import { sampleEvent, sampleHostEvent, sampleLoss, sampleSummary, sampleUnixEvent } from '../sample-events.js';
import { sampleFinding } from '../sample-findings.js';

/**
 * Every record shape the formats produce, as the capture and the collector
 * build them (sample-events.ts shapes, varied one part at a time): families,
 * failures, summaries, losses, attribution levels, policy refs, io_uring,
 * numbers past 32 bits. Named, so a violation says which shape it came from.
 */

const POD_UID = '6f1d2c1e-0b7a-4f43-9a55-2f1c8e3d7b10'; // Kubernetes pod UIDs are RFC 4122 UUIDs
const pod = { uid: POD_UID };

const FAILED = {
  ret: -24,
  success: false,
  error: 'EMFILE',
  socket: { family: 0, familyNumber: 0, type: '', protocol: 0, local: {}, peer: {}, resolved: false },
  userAddress: { present: true, addrlen: 16 },
} as const;

const V4_MAPPED = {
  socket: {
    family: AddressFamily.ADDRESS_FAMILY_INET6,
    familyNumber: 10,
    local: { ip: '::ffff:10.0.0.5', port: 8080 },
    peer: { ip: '::ffff:10.0.0.9', port: 40000 },
    v4Mapped: true,
  },
  userAddress: { present: true, addrlen: 28, familyNumber: 10, ip: '::ffff:10.0.0.9', port: 40000 },
};

/** sampleEvent merges overrides: an absent pod is removed afterwards. */
function withoutPod(ev: AcceptEvent): AcceptEvent {
  ev.pod = undefined;
  return ev;
}

function events(): [string, AcceptEvent][] {
  return [
    ['ipv4 pod accept4', sampleEvent({ pod })],
    ['ipv4 accept, pod', sampleEvent({ pod, source: Source.SOURCE_ACCEPT, acceptFlags: 0, acceptFlagNames: [] })],
    ['ipv4 loopback', sampleEvent({ pod, socket: { local: { ip: '127.0.0.1' }, peer: { ip: '127.0.0.1' } } })],
    ['ipv6 host', sampleHostEvent()],
    ['ipv6 link-local host', sampleHostEvent({ socket: { local: { ip: 'fe80::1' }, peer: { ip: 'fe80::2' } } })],
    ['v4-mapped pod', sampleEvent({ pod, ...V4_MAPPED })],
    ['unix named, io_uring', sampleUnixEvent()],
    ['unix unnamed', sampleUnixEvent({ source: Source.SOURCE_ACCEPT, socket: { unixPath: '', peerPid: 0 } })],
    ['unix abstract', sampleUnixEvent({ socket: { unixPath: '@app' } })],
    ['io_uring ipv4 pod', sampleEvent({ pod, source: Source.SOURCE_IO_URING })],
    ['failed accept4, pod', sampleEvent({ pod, ...FAILED })],
    ['failed accept, host', sampleHostEvent({ ...FAILED, source: Source.SOURCE_ACCEPT })],
    [
      'unresolved socket',
      sampleEvent({ pod, socket: { resolved: false, family: 0, local: {}, peer: {} }, flags: ['SOCK_UNRESOLVED'] }),
    ],
    ['sctp', sampleEvent({ pod, socket: { protocol: 132 } })],
    ['mptcp', sampleEvent({ pod, socket: { protocol: 262 } })],
    ['user address mismatch', sampleEvent({ pod, userAddress: { ip: '10.9.9.9', mismatch: true } })],
    ['user address fault', sampleEvent({ pod, userAddress: { fault: true, ip: '', port: 0, familyNumber: 0 } })],
    ['no enter seen', sampleEvent({ pod, durationNs: 0n, flags: ['NO_ENTER'], listener: { fd: -1, resolved: false } })],
    [
      'container, no pod (partial)',
      withoutPod(
        sampleEvent({
          enrichment: {
            status: EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL,
            missing: ['pod'],
            reason: 'pod not in the API after 2s',
          },
        }),
      ),
    ],
    [
      'pod without workload, deleted',
      sampleEvent({ pod: { ...pod, workload: undefined, deleted: true, labels: {}, annotations: {} } }),
    ],
    ['host-network pod', sampleEvent({ pod: { ...pod, hostNetwork: true } })],
    [
      // The kubelet names a static pod by an MD5 hex digest, not a UUID; before the API knows it, the cgroup is all.
      'static pod, cgroup only (partial)',
      sampleEvent({
        pod: {
          uid: '3c5a0e5c3b6f1f9e2a4c1b7e8d9f0a12',
          namespace: '',
          name: '',
          labels: {},
          annotations: {},
          workload: { kind: '' },
        },
        enrichment: {
          status: EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL,
          missing: ['pod'],
          reason: 'pod not in the API after 2s',
        },
      }),
    ],
    ['container without image id', sampleEvent({ pod, container: { imageId: '', image: '' } })],
    ['uid and gid 4294967294', sampleHostEvent({ process: { uid: 4294967294, gid: 4294967294 } })],
    ['seq past 2^31', sampleEvent({ pod, seq: 2n ** 31n + 5n, eventId: 'boot-1/inst-1/2147483653' })],
    ['seq past 2^53', sampleEvent({ pod, seq: 2n ** 53n + 7n, eventId: 'boot-1/inst-1/9007199254740999' })],
    ['cgroup id past 2^53', sampleEvent({ pod, cgroup: { id: 2n ** 60n + 1n, v1Id: 2n ** 60n + 3n } })],
    [
      'policy resource',
      sampleEvent({
        pod,
        kind: EventKind.EVENT_KIND_ACCEPT,
        policy: { origin: PolicyOrigin.POLICY_ORIGIN_RESOURCE, name: 'shop/web-audit', mode: AuditMode.AUDIT_MODE_EVENTS },
      }),
    ],
    [
      'policy config default',
      sampleEvent({
        pod,
        kind: EventKind.EVENT_KIND_ACCEPT,
        policy: { origin: PolicyOrigin.POLICY_ORIGIN_CONFIG_DEFAULT, name: 'default', mode: AuditMode.AUDIT_MODE_EVENTS },
      }),
    ],
    [
      'policy host',
      sampleHostEvent({
        kind: EventKind.EVENT_KIND_ACCEPT,
        policy: { origin: PolicyOrigin.POLICY_ORIGIN_HOST, name: 'host', mode: AuditMode.AUDIT_MODE_EVENTS },
      }),
    ],
    [
      'policy unattributed, no name',
      sampleEvent({
        pod,
        kind: EventKind.EVENT_KIND_ACCEPT,
        policy: { origin: PolicyOrigin.POLICY_ORIGIN_UNATTRIBUTED, name: '', mode: AuditMode.AUDIT_MODE_EVENTS },
      }),
    ],
    ['summary all succeeded', sampleSummary({ pod })],
    ['summary all failed', sampleSummary({ pod, ...FAILED, summary: { count: 9n, failedCount: 9n, peerIp: '', localPort: 0 } })],
    [
      'summary mixed, unix',
      sampleUnixEvent({
        kind: EventKind.EVENT_KIND_SUMMARY,
        policy: { origin: PolicyOrigin.POLICY_ORIGIN_HOST, name: 'host', mode: AuditMode.AUDIT_MODE_SUMMARY },
        summary: {
          reason: 2,
          count: 26n,
          failedCount: 14n,
          firstTimeUnixNano: 1714564800123456789n,
          lastTimeUnixNano: 1714564801123456789n,
        },
      }),
    ],
    ['summary peers folded', sampleSummary({ pod, summary: { peerIp: '', peersFolded: true, count: 2n ** 40n } })],
    ['summary v4-mapped peer', sampleSummary({ pod, ...V4_MAPPED, summary: { peerIp: '::ffff:10.0.0.9', localPort: 8080 } })],
    ['summary no window', sampleSummary({ pod, summary: { firstTimeUnixNano: 0n, lastTimeUnixNano: 0n } })],
    // Findings (src/findings): OCSF Detection Finding, ECS alert.
    ['finding undeclared listener', withPod(sampleFinding(), POD_UID)],
    ['finding hostNetwork, no ports declared', sampleFinding({ hostNetwork: true, declared: [] })],
    [
      'finding IPv6 wildcard, no policy, no first-seen',
      (() => {
        const f = withPod(sampleFinding({ ip: '::' }), POD_UID);
        f.policy = undefined;
        f.listenerInfo!.firstSeenUnixNano = 0n;
        return f;
      })(),
    ],
  ];
}

function withPod(ev: AcceptEvent, uid: string): AcceptEvent {
  if (ev.pod) ev.pod.uid = uid;
  return ev;
}

export function corpus(): [string, SinkRecord][] {
  return [
    ...events().map(([name, event]): [string, SinkRecord] => [name, { kind: 'event', event }]),
    ['loss seq gap', { kind: 'loss', loss: sampleLoss() }],
    [
      'loss kernel counters, no range',
      {
        kind: 'loss',
        loss: sampleLoss({
          fromSeq: 0n,
          toSeq: 0n,
          reason: 'kernel ring full',
          counters: { kernelRingFull: 2n ** 40n, decodeErrors: 1n, bpfRecursionMisses: 0n, queueDrops: 3n, spoolDrops: 0n },
        }),
      },
    ],
    ['loss, agent unknown', { kind: 'loss', loss: sampleLoss({ agent: undefined, timeUnixNano: 0n }) }],
  ];
}
