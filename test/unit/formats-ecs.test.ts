import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ECS_VERSION, eventToEcs, lossToEcs } from '../../src/formats/ecs.js';
import { formatLine, recordId, writeLine } from '../../src/formats/format.js';
import { JsonWriter } from '../../src/formats/native-json.js';
import { communityId } from '../../src/formats/ocsf.js';
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
import { plausibleRecords } from '../helpers/random-events.js';
import {
  SAMPLE_POLICY,
  sampleEvent,
  sampleHostEvent,
  sampleLoss,
  sampleSummary,
  sampleUnixEvent,
} from '../helpers/sample-events.js';
import { sampleFinding } from '../helpers/sample-findings.js';

// biome-ignore lint/suspicious/noExplicitAny: formatted records are walked by path in assertions
type J = Record<string, any>;

const T = 1714564800123456789n; // 2024-05-01T12:00:00.123456789Z
const ISO_NS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;

const full = sampleEvent({
  flags: ['NO_ENTER'],
  socket: {
    family: AddressFamily.ADDRESS_FAMILY_INET6,
    familyNumber: 10,
    local: { ip: '::ffff:10.0.0.5' },
    peer: { ip: '::ffff:10.0.0.9' },
    v4Mapped: true,
  },
  userAddress: { addrlen: 28, familyNumber: 10, ip: '::ffff:10.0.0.9' },
  pod: { workload: { kind: 'StatefulSet' }, namespaceLabels: { 'kubernetes.io/metadata.name': 'shop' } },
  enrichment: { waitedMs: 12 },
});

const failed = AcceptEvent.fromPartial({
  eventId: 'boot-1/inst-1/43',
  seq: 43n,
  timeUnixNano: T,
  nodeName: 'node-a',
  source: Source.SOURCE_ACCEPT4,
  ret: -103,
  success: false,
  error: 'ECONNABORTED',
  process: { pid: 812, tid: 812, ppid: 1, uid: 101, gid: 101, comm: 'nginx' },
  socket: { resolved: false, local: {}, peer: {} },
  listener: { fd: 6, backlog: 0, maxBacklog: 511, resolved: true },
  userAddress: { present: false },
  container: { id: 'c'.repeat(64), runtime: 'containerd', cgroupPath: '/kubepods.slice/x' },
  pod: { uid: '0f3c-uid', qosClass: 'Burstable' },
  enrichment: {
    status: EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL,
    missing: ['pod'],
    reason: 'pod not in the API after 2000ms',
    waitedMs: 2000,
  },
});

const host = sampleHostEvent();

const unix = sampleUnixEvent({ socket: { type: 'SEQPACKET', unixPath: '@app-abstract' }, listener: { maxBacklog: 0 } });

function roundTrips(o: object): void {
  assert.deepStrictEqual(JSON.parse(JSON.stringify(o)), o);
}

function noBlanks(o: unknown, path = ''): void {
  if (o === null || o === undefined || o === '') assert.fail(`${path} is ${JSON.stringify(o)}`);
  if (Array.isArray(o)) {
    assert.ok(o.length > 0, `${path} is []`);
    for (const [i, x] of o.entries()) noBlanks(x, `${path}[${i}]`);
  } else if (typeof o === 'object') {
    assert.ok(Object.keys(o as object).length > 0, `${path} is {}`);
    for (const [k, v] of Object.entries(o as object)) noBlanks(v, path ? `${path}.${k}` : k);
  }
}

/** The ECS base every document has, with the right JSON types. */
function assertBase(o: J): void {
  assert.equal(typeof o['@timestamp'], 'string');
  assert.match(o['@timestamp'], ISO_NS);
  assert.equal(Date.parse(o['@timestamp']), 1714564800123);
  assert.deepEqual(o.ecs, { version: ECS_VERSION });
  assert.equal(o.event.kind, 'event');
  assert.equal(o.event.module, 'doorwatch');
  assert.equal(typeof o.event.id, 'string');
  assert.equal(typeof o.event.severity, 'number');
  assert.equal(typeof o.message, 'string');
  assert.equal(o.agent.type, 'doorwatch');
  roundTrips(o);
  noBlanks(o);
}

describe('ECS: accepted connection (container, pod, workload, labels)', () => {
  const o = eventToEcs(full) as J;

  it('has the ECS base with a nanosecond @timestamp', () => {
    assertBase(o);
    assert.equal(o['@timestamp'], '2024-05-01T12:00:00.123456789Z');
  });

  it('categorises the event', () => {
    assert.deepEqual(o.event, {
      kind: 'event',
      category: ['network'],
      type: ['connection', 'start'],
      action: 'accept4',
      outcome: 'success',
      id: 'boot-1/inst-1/42',
      dataset: 'doorwatch.accept',
      module: 'doorwatch',
      sequence: 42,
      severity: 1,
    });
  });

  it('maps source (peer) and destination (local) with numeric ports', () => {
    assert.deepEqual(o.source, { address: '::ffff:10.0.0.9', ip: '10.0.0.9', port: 51544 });
    assert.deepEqual(o.destination, { address: '::ffff:10.0.0.5', ip: '10.0.0.5', port: 443 });
    assert.equal(typeof o.source.port, 'number');
    assert.equal(typeof o.destination.port, 'number');
  });

  it('maps network: IPv4 on the wire for a mapped peer, ingress, Community ID', () => {
    assert.deepEqual(o.network, {
      transport: 'tcp',
      iana_number: '6',
      type: 'ipv4',
      direction: 'ingress',
      community_id: communityId(6, '10.0.0.9', 51544, '10.0.0.5', 443),
    });
  });

  it('maps the process, with ids as keyword strings', () => {
    assert.deepEqual(o.process, {
      pid: 812,
      thread: { id: 813 },
      name: 'nginx',
      parent: { pid: 1 },
      user: { id: '101' },
      // No process.group: it is not an ECS 8.11 field (8.16).
      real_user: { id: '101' },
      real_group: { id: '102' },
    });
  });

  it('maps host, container and image digest', () => {
    assert.deepEqual(o.host, { name: 'node-a' });
    assert.deepEqual(o.container, {
      id: 'c'.repeat(64),
      name: 'web',
      runtime: 'containerd',
      image: { name: 'nginx:1.25', hash: { all: [`sha256:${'d'.repeat(64)}`] } },
    });
  });

  it('maps the pod to orchestrator.*', () => {
    assert.deepEqual(o.orchestrator, {
      type: 'kubernetes',
      namespace: 'shop',
      resource: {
        type: 'pod',
        name: 'web-7d9f-abc',
        id: '0f3c-uid',
        ip: ['10.0.0.5'],
        label: ['app.kubernetes.io/name:web', 'tier:front'],
        annotation: ['doorwatch.io/audit:on'],
        parent: { type: 'StatefulSet' },
      },
    });
  });

  it('writes kubernetes.* the way Elastic’s Kubernetes integration does', () => {
    assert.deepEqual(o.kubernetes, {
      namespace: 'shop',
      pod: { name: 'web-7d9f-abc', uid: '0f3c-uid', ip: '10.0.0.5' },
      node: { name: 'node-a' },
      container: { name: 'web' },
      labels: { 'app_kubernetes_io/name': 'web', tier: 'front' },
      annotations: { 'doorwatch_io/audit': 'on' },
      namespace_labels: { 'kubernetes_io/metadata_name': 'shop' },
      statefulset: { name: 'web' },
    });
  });

  it('fills related.*', () => {
    assert.deepEqual(o.related, { ip: ['10.0.0.9', '10.0.0.5'], hosts: ['node-a'], user: ['101'] });
    assert.equal(o.error, undefined);
  });

  it('is an accept when the producer has no audit policies (kind unspecified, no policy ref)', () => {
    assert.equal(full.kind, EventKind.EVENT_KIND_UNSPECIFIED);
    assert.equal(o.doorwatch.kind, 'accept');
    assert.equal(o.event.dataset, 'doorwatch.accept');
    for (const k of ['start', 'end', 'duration', 'reason']) assert.equal(o.event[k], undefined, k);
    assert.equal(o.rule, undefined);
    assert.equal(o.doorwatch.summary, undefined);
    assert.equal(o.doorwatch.policy, undefined);
    assert.deepEqual(eventToEcs(AcceptEvent.fromPartial({ ...full, kind: EventKind.EVENT_KIND_ACCEPT })), o);
  });

  it('keeps the rest under doorwatch.*', () => {
    const d = o.doorwatch;
    assert.equal(d.seq, 42);
    assert.equal(d.time_unix_nano, '1714564800123456789');
    assert.equal(d.ktime_ns, '987654321');
    assert.equal(d.duration_ns, 1500);
    assert.equal(d.ret, 12);
    assert.deepEqual(d.flags, ['NO_ENTER']);
    assert.deepEqual(d.socket, {
      resolved: true,
      family: 'inet6',
      family_number: 10,
      type: 'STREAM',
      protocol: 6,
      v4_mapped: true,
    });
    assert.deepEqual(d.listener, { resolved: true, fd: 6, backlog: 3, max_backlog: 511 });
    assert.equal(d.user_address.mismatch, false);
    assert.equal(d.user_address.ip, '::ffff:10.0.0.9');
    assert.deepEqual(d.namespaces, { mnt: 4026531840, pid: 4026531836, net: 4026531992, uts: 4026531838 });
    assert.deepEqual(d.cgroup, { id: '12345', v1_id: '678' });
    assert.deepEqual(d.container, {
      cgroup_path: '/kubepods.slice/x',
      image_id: `docker.io/library/nginx@sha256:${'d'.repeat(64)}`,
    });
    assert.deepEqual(d.pod, {
      service_account: 'web-sa',
      host_network: false,
      qos_class: 'Burstable',
      deleted: false,
      workload: { kind: 'StatefulSet', name: 'web', inferred: false },
    });
    assert.deepEqual(d.enrichment, { status: 'complete', cgroup_from_proc: false, waited_ms: 12 });
  });
});

describe('ECS: failed accept, partially attributed', () => {
  const o = eventToEcs(failed) as J;

  it('is a connection with outcome failure and an error', () => {
    assertBase(o);
    assert.deepEqual(o.event.type, ['connection']);
    assert.equal(o.event.outcome, 'failure');
    assert.equal(o.event.severity, 2);
    assert.deepEqual(o.error, { code: 'ECONNABORTED', message: 'accept4() failed: ECONNABORTED (errno 103)' });
  });

  it('has no endpoints or network, and says what is missing', () => {
    assert.equal(o.source, undefined);
    assert.equal(o.destination, undefined);
    assert.equal(o.network, undefined);
    assert.equal(o.related.ip, undefined);
    assert.deepEqual(o.doorwatch.socket, { resolved: false });
    assert.deepEqual(o.doorwatch.enrichment, {
      status: 'partial',
      missing: ['pod'],
      reason: 'pod not in the API after 2000ms',
      cgroup_from_proc: false,
      waited_ms: 2000,
    });
  });

  it('keeps the pod it knows from the cgroup', () => {
    assert.deepEqual(o.orchestrator, { type: 'kubernetes', resource: { type: 'pod', id: '0f3c-uid' } });
    assert.deepEqual(o.kubernetes, { pod: { uid: '0f3c-uid' } });
    assert.deepEqual(o.container, { id: 'c'.repeat(64), runtime: 'containerd' });
  });
});

describe('ECS: host process over IPv6', () => {
  const o = eventToEcs(host) as J;

  it('has no container or Kubernetes fields', () => {
    assertBase(o);
    assert.equal(o.container, undefined);
    assert.equal(o.orchestrator, undefined);
    assert.equal(o.kubernetes, undefined);
    assert.equal(o.doorwatch.enrichment.status, 'host');
  });

  it('maps the IPv6 connection', () => {
    assert.deepEqual(o.source, { address: '2001:db8::7', ip: '2001:db8::7', port: 40112 });
    assert.deepEqual(o.destination, { address: '2001:db8::1', ip: '2001:db8::1', port: 22 });
    assert.equal(o.network.type, 'ipv6');
    assert.equal(o.event.action, 'accept');
    assert.deepEqual(o.process.user, { id: '0' });
  });
});

describe('ECS: unix socket', () => {
  const o = eventToEcs(unix) as J;

  it('puts the socket path in destination.address and nothing in network', () => {
    assertBase(o);
    assert.deepEqual(o.destination, { address: '@app-abstract' });
    assert.equal(o.source, undefined);
    assert.equal(o.network, undefined);
    assert.equal(o.event.action, 'io_uring_accept');
    assert.deepEqual(o.event.type, ['connection', 'start']);
  });

  it('keeps family and peer pid under doorwatch.socket', () => {
    assert.deepEqual(o.doorwatch.socket, {
      resolved: true,
      family: 'unix',
      family_number: 1,
      type: 'SEQPACKET',
      protocol: 0,
      v4_mapped: false,
      unix_path: '@app-abstract',
      peer_pid: 77,
    });
    assert.deepEqual(o.process.thread, { id: 2240 });
  });
});

describe('ECS: accept with an audit policy', () => {
  const o = eventToEcs(sampleEvent({ kind: EventKind.EVENT_KIND_ACCEPT, policy: SAMPLE_POLICY })) as J;

  it('names the policy in rule.* and keeps origin and mode under doorwatch.policy', () => {
    assertBase(o);
    assert.deepEqual(o.rule, { name: 'shop/web-audit', ruleset: 'resource' });
    assert.deepEqual(o.doorwatch.policy, { origin: 'resource', name: 'shop/web-audit', mode: 'events' });
    assert.equal(o.doorwatch.kind, 'accept');
  });

  it('is otherwise the accept it was', () => {
    assert.equal(o.event.dataset, 'doorwatch.accept');
    assert.deepEqual(o.event.type, ['connection', 'start']);
    assert.deepEqual(o.source, { address: '10.0.0.9', ip: '10.0.0.9', port: 51544 });
    assert.ok(o.network.community_id);
    assert.equal(o.event.start, undefined);
  });

  it('has no ruleset without an origin, and no rule.name without a name', () => {
    const m = eventToEcs(
      sampleEvent({ policy: { origin: PolicyOrigin.POLICY_ORIGIN_UNSPECIFIED, mode: AuditMode.AUDIT_MODE_EVENTS } }),
    ) as J;
    assert.equal(m.rule, undefined);
    assert.deepEqual(m.doorwatch.policy, { origin: 'unspecified', mode: 'events' });
    assertBase(m);
  });
});

describe('ECS: summary record (rate limit)', () => {
  const o = eventToEcs(sampleSummary()) as J;

  it('is an event of its own dataset, spanning first to last accept', () => {
    assertBase(o);
    assert.deepEqual(o.event, {
      kind: 'event',
      category: ['network'],
      type: ['connection', 'start'],
      action: 'accept4',
      outcome: 'success',
      id: 'boot-1/inst-1/42',
      dataset: 'doorwatch.summary',
      module: 'doorwatch',
      sequence: 42,
      severity: 1,
      start: '2024-05-01T12:00:00.123456789Z',
      end: '2024-05-01T12:00:09.999456789Z',
      duration: 9_876_000_000,
      reason: 'rate_limit',
    });
    assert.equal(o['@timestamp'], '2024-05-01T12:00:00.123456789Z');
  });

  it('counts under doorwatch.summary', () => {
    assert.equal(o.doorwatch.kind, 'summary');
    assert.deepEqual(o.doorwatch.summary, {
      reason: 'rate_limit',
      count: 57,
      failed_count: 0,
      first_time_unix_nano: '1714564800123456789',
      last_time_unix_nano: '1714564809999456789',
      interval_start_unix_nano: '1714564800000000000',
      interval_end_unix_nano: '1714564810000000000',
      local_port: 443,
      peer_ip: '10.0.0.9',
      peers_folded: false,
      sample_peer: { ip: '10.0.0.9', port: 51544 },
    });
    assert.deepEqual(o.rule, { name: 'shop/web-audit', ruleset: 'resource' });
  });

  it('has the key as source (no port) and no Community ID', () => {
    assert.deepEqual(o.source, { address: '10.0.0.9', ip: '10.0.0.9' });
    assert.deepEqual(o.destination, { address: '10.0.0.5', ip: '10.0.0.5', port: 443 });
    assert.equal(o.network.community_id, undefined);
    assert.deepEqual(o.related.ip, ['10.0.0.9', '10.0.0.5']);
    assert.equal(o.error, undefined);
  });

  it('says how many, from whom and why', () => {
    assert.match(
      o.message,
      /: 57 accepts from 10\.0\.0\.9 on port 443 via accept4 over 9\.876s, summarised \(rate limit exceeded/,
    );
  });
});

describe('ECS: summary record of failed accepts (summary mode)', () => {
  const o = eventToEcs(
    sampleSummary({
      ret: -24,
      success: false,
      error: 'EMFILE',
      socket: { resolved: false, family: AddressFamily.ADDRESS_FAMILY_UNSPECIFIED, local: {}, peer: {} },
      policy: { mode: AuditMode.AUDIT_MODE_SUMMARY },
      summary: { reason: SummaryReason.SUMMARY_REASON_MODE, count: 4n, failedCount: 4n, peerIp: '' },
    }),
  ) as J;

  it('is a failed connection with the first errno', () => {
    assertBase(o);
    assert.deepEqual(o.event.type, ['connection']);
    assert.equal(o.event.outcome, 'failure');
    assert.equal(o.event.severity, 2);
    assert.equal(o.event.reason, 'mode');
    assert.deepEqual(o.error, {
      code: 'EMFILE',
      message: '4 of 4 accepts failed (first seen: accept4() failed: EMFILE (errno 24))',
    });
    assert.equal(o.source, undefined);
    assert.equal(o.doorwatch.summary.failed_count, 4);
    assert.equal(o.doorwatch.policy.mode, 'summary');
  });
});

describe('ECS: summary record with folded peers, some accepts failed', () => {
  const o = eventToEcs(sampleSummary({ summary: { count: 1000n, failedCount: 3n, peerIp: '', peersFolded: true } })) as J;

  it('has no single outcome, says how many failed, and names no peer', () => {
    assertBase(o);
    assert.equal(o.event.outcome, undefined);
    assert.deepEqual(o.event.type, ['connection', 'start']);
    assert.equal(o.event.severity, 2);
    assert.deepEqual(o.error, { message: '3 of 1000 accepts failed' });
    assert.equal(o.source, undefined);
    assert.deepEqual(o.related.ip, ['10.0.0.5']);
    assert.equal(o.doorwatch.summary.peers_folded, true);
  });
});

describe('ECS: loss records', () => {
  const gap = sampleLoss();

  it('are events with an action, a reason and the agent', () => {
    const o = lossToEcs(gap) as J;
    assertBase(o);
    assert.deepEqual(o.event, {
      kind: 'event',
      action: 'events-lost',
      outcome: 'failure',
      id: recordId({ kind: 'loss', loss: gap }),
      dataset: 'doorwatch.loss',
      module: 'doorwatch',
      reason: 'seq gap',
      severity: 4,
    });
    assert.deepEqual(o.host, { name: 'node-a' });
    assert.deepEqual(o.agent, { type: 'doorwatch', id: 'inst-1', version: '0.1.0' });
    assert.deepEqual(o.doorwatch, {
      agent: { boot_id: 'boot-1', instance_id: 'inst-1' },
      loss: { from_seq: 101, to_seq: 150, seq_count: 50, reason: 'seq gap', time_unix_nano: '1714564800123456789' },
    });
  });

  it('carry counters as numbers', () => {
    const o = lossToEcs(LossRecord.fromPartial({ ...gap, fromSeq: 0n, toSeq: 0n, counters: { spoolDrops: 7n } })) as J;
    assert.equal(o.doorwatch.loss.counters.spool_drops, 7);
    assert.equal(o.doorwatch.loss.counters_total, 7);
    assert.equal(o.doorwatch.loss.seq_count, 0);
    roundTrips(o);
  });
});

describe('ECS: the line writer', () => {
  it('writes exactly JSON.stringify(eventToEcs(ev)), for every kind of event and odd values', () => {
    const events = [
      sampleEvent(),
      sampleEvent({ success: false, ret: -24, error: 'EMFILE' }),
      sampleEvent({ pod: { labels: { 'a"b': 'c\\d', 'é🚪': '\n', '1': 'integer-like' } } }),
      sampleEvent({ pod: undefined, container: undefined }),
      sampleEvent({ policy: SAMPLE_POLICY, kind: EventKind.EVENT_KIND_ACCEPT }),
      sampleEvent({ process: undefined, socket: undefined, userAddress: undefined, listener: undefined }),
      sampleHostEvent(),
      sampleUnixEvent(),
      sampleSummary(),
      sampleSummary({ summary: { reason: SummaryReason.SUMMARY_REASON_RATE_LIMIT, failedCount: 3n } }),
      sampleFinding(),
      AcceptEvent.fromPartial({}),
    ];
    for (const [i, ev] of events.entries()) {
      const want = JSON.stringify(eventToEcs(ev));
      assert.equal(formatLine({ kind: 'event', event: ev }, 'ecs'), want, `event ${i}`);
      const w = new JsonWriter(16);
      writeLine(w, { kind: 'event', event: ev }, 'ecs');
      assert.equal(w.buf.toString('utf8', 0, w.pos), want, `event ${i}, bytes`);
    }
  });

  it('per-pod blocks kept as bytes follow the objects: a shared pod with another container, another pod', () => {
    const a = sampleEvent();
    const frozenContainer = Object.freeze({ ...a.container! });
    const other = Object.freeze({ ...a.container!, name: 'sidecar', id: 'd'.repeat(64) });
    const pod2 = sampleEvent({ pod: { name: 'web-2', labels: { 'app.kubernetes.io/name': 'other' } } }).pod;
    const events = [
      { ...a, container: frozenContainer },
      { ...a, container: other }, // the same pod object, another container: kubernetes.container.name changes
      { ...a, container: frozenContainer, pod: pod2 },
      { ...a, container: frozenContainer },
      { ...a, container: { ...a.container!, image: 'changed:1' } }, // a mutable container is never kept
    ];
    const w = new JsonWriter(16);
    for (const [i, ev] of events.entries()) {
      w.reset();
      writeLine(w, { kind: 'event', event: ev }, 'ecs');
      assert.equal(w.buf.toString('utf8', 0, w.pos), JSON.stringify(eventToEcs(ev)), `event ${i}`);
    }
  });

  it('3000 plausible records (seed 12): the line is the object form, byte for byte', () => {
    const w = new JsonWriter(16);
    for (const [i, ev] of plausibleRecords(3000, 12).entries()) {
      const want = JSON.stringify(eventToEcs(ev));
      w.reset();
      writeLine(w, { kind: 'event', event: ev }, 'ecs');
      assert.equal(w.buf.toString('utf8', 0, w.pos), want, `record ${i}`);
    }
  });
});
