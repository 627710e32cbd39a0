import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recordId } from '../../src/formats/format.js';
import {
  communityId,
  eventToOcsf,
  eventToOcsfLine,
  isoNanos,
  lossToOcsf,
  OCSF_VERSION,
  prune,
  pruned,
} from '../../src/formats/ocsf.js';
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

// biome-ignore lint/suspicious/noExplicitAny: formatted records are walked by path in assertions
type J = Record<string, any>;

const T = 1714564800123456789n; // 2024-05-01T12:00:00.123456789Z

/** Kubernetes pod UIDs are UUIDs (OCSF pod_uuid is uuid_t). */
const POD_UID = '6f1d2c1e-0b7a-4f43-9a55-2f1c8e3d7b10';
const full = sampleEvent({ pod: { uid: POD_UID } });

const failed = AcceptEvent.fromPartial({
  eventId: 'boot-1/inst-1/43',
  seq: 43n,
  timeUnixNano: T,
  nodeName: 'node-a',
  source: Source.SOURCE_ACCEPT,
  ret: -24,
  success: false,
  error: 'EMFILE',
  process: { pid: 812, tid: 812, ppid: 1, uid: 0, gid: 0, comm: 'nginx' },
  socket: { resolved: false, local: {}, peer: {} },
  listener: { fd: 6, resolved: false },
  userAddress: { present: true },
  namespaces: {},
  cgroup: {},
  enrichment: { status: EnrichmentStatus.ENRICHMENT_STATUS_HOST },
});

const host = sampleHostEvent();

const unix = sampleUnixEvent();

const gap = sampleLoss();

const kernelDrops = LossRecord.fromPartial({
  agent: { nodeName: 'node-a', bootId: 'boot-1', instanceId: 'inst-1', version: '0.1.0' },
  reason: 'agent reported losses',
  counters: { kernelRingFull: 40n, queueDrops: 2n },
  timeUnixNano: T,
});

/** Serialisable, and nothing null or undefined hides in the object. */
function roundTrips(o: object): void {
  assert.deepStrictEqual(JSON.parse(JSON.stringify(o)), o);
}

/** Every value present is meaningful: no null, no "" (OCSF's cmd_line excepted), no empty containers. */
function noBlanks(o: unknown, path = ''): void {
  if (o === null || o === undefined) assert.fail(`${path} is ${o}`);
  if (o === '' && !path.endsWith('cmd_line')) assert.fail(`${path} is ""`);
  if (Array.isArray(o)) {
    assert.ok(o.length > 0, `${path} is []`);
    for (const [i, x] of o.entries()) noBlanks(x, `${path}[${i}]`);
  } else if (typeof o === 'object') {
    assert.ok(Object.keys(o as object).length > 0, `${path} is {}`);
    for (const [k, v] of Object.entries(o as object)) noBlanks(v, path ? `${path}.${k}` : k);
  }
}

/** The attributes OCSF requires of every event of these classes. */
function assertRequired(o: J, classUid: number): void {
  assert.equal(o.class_uid, classUid);
  assert.equal(typeof o.category_uid, 'number');
  assert.equal(typeof o.activity_id, 'number');
  assert.equal(o.type_uid, o.class_uid * 100 + o.activity_id);
  assert.equal(typeof o.time, 'number');
  assert.equal(typeof o.severity_id, 'number');
  assert.equal(o.metadata.version, OCSF_VERSION);
  assert.equal(o.metadata.product.name, 'Doorwatch');
  assert.equal(o.metadata.product.vendor_name, 'Doorwatch');
}

describe('OCSF: accepted connection (container, pod, workload, labels)', () => {
  const o = eventToOcsf(full) as J;

  it('is a Network Activity "Open" with every required attribute', () => {
    assertRequired(o, 4001);
    assert.equal(o.class_name, 'Network Activity');
    assert.equal(o.category_uid, 4);
    assert.equal(o.category_name, 'Network Activity');
    assert.equal(o.activity_id, 1);
    assert.equal(o.activity_name, 'Open');
    assert.equal(o.type_uid, 400101);
    assert.equal(o.type_name, 'Network Activity: Open');
    assert.equal(o.severity_id, 1);
    assert.equal(o.severity, 'Informational');
    assert.equal(o.status_id, 1);
    assert.equal(o.status, 'Success');
    assert.equal(o.status_code, undefined);
  });

  it('keeps the time in ms and, exactly, in time_dt and unmapped', () => {
    assert.equal(o.time, 1714564800123);
    assert.equal(o.time_dt, '2024-05-01T12:00:00.123456789Z');
    assert.equal(o.unmapped.time_unix_nano, '1714564800123456789');
    assert.equal(o.unmapped.ktime_ns, '987654321');
  });

  it('fills metadata', () => {
    assert.deepEqual(o.metadata, {
      version: OCSF_VERSION,
      product: { name: 'Doorwatch', vendor_name: 'Doorwatch' },
      uid: 'boot-1/inst-1/42',
      log_name: 'doorwatch.accept',
      event_code: 'accept4',
      // linux/linux_users: actor.process.group; no sequence (integer_t is 32-bit, seq is 64-bit: unmapped.seq).
      profiles: ['host', 'container', 'datetime', 'linux/linux_users'],
      extensions: [{ name: 'linux', uid: '1', version: '1.7.0' }],
    });
    assert.equal(o.unmapped.seq, 42);
  });

  it('puts the peer in src_endpoint and the local side in dst_endpoint', () => {
    assert.deepEqual(o.src_endpoint, { ip: '10.0.0.9', port: 51544 });
    assert.deepEqual(o.dst_endpoint, { ip: '10.0.0.5', port: 443, hostname: 'node-a' });
    assert.equal(o.observation_point_id, 2);
    assert.equal(o.observation_point, 'Destination');
    assert.equal(o.is_src_dst_assignment_known, true);
  });

  it('describes the connection', () => {
    assert.deepEqual(o.connection_info, {
      direction_id: 1,
      direction: 'Inbound',
      protocol_name: 'tcp',
      protocol_num: 6,
      protocol_ver_id: 4,
      protocol_ver: 'Internet Protocol version 4 (IPv4)',
      community_uid: communityId(6, '10.0.0.9', 51544, '10.0.0.5', 443),
    });
    assert.match(String(o.connection_info.community_uid), /^1:[A-Za-z0-9+/]{27}=$/);
  });

  it('puts the process and its container in actor.process', () => {
    const p = o.actor.process;
    assert.equal(p.pid, 812);
    assert.equal(p.ptid, 813);
    assert.equal(p.name, 'nginx');
    assert.equal(p.cmd_line, '');
    assert.deepEqual(p.user, { uid: '101' });
    assert.deepEqual(p.group, { uid: '102' });
    assert.deepEqual(p.parent_process, { pid: 1 });
    assert.deepEqual(p.container, {
      uid: 'c'.repeat(64),
      name: 'web',
      runtime: 'containerd',
      image: { name: 'nginx:1.25', uid: `docker.io/library/nginx@sha256:${'d'.repeat(64)}` },
      orchestrator: 'kubernetes',
      pod_uuid: POD_UID,
      labels: ['app.kubernetes.io/name=web', 'tier=front'],
    });
  });

  it('leaves pod_uuid out for a UID that is not a UUID (a static pod: the kubelet’s MD5 digest), keeping it in unmapped', () => {
    const md5 = '3c5a0e5c3b6f1f9e2a4c1b7e8d9f0a12';
    const s: J = eventToOcsf(sampleEvent({ pod: { uid: md5 } }));
    assert.equal(s.actor.process.container.pod_uuid, undefined);
    assert.equal(s.unmapped.k8s.pod.uid, md5);
  });

  it('names the node as the device', () => {
    assert.deepEqual(o.device, { hostname: 'node-a', name: 'node-a', type_id: 1, type: 'Server' });
  });

  it('keeps what OCSF lacks in unmapped', () => {
    const u = o.unmapped;
    assert.equal(u.seq, 42);
    assert.equal(u.duration_ns, 1500);
    assert.equal(u.ret, 12);
    assert.equal(u.accept_flags, 0o2004000);
    assert.deepEqual(u.accept_flag_names, ['SOCK_NONBLOCK', 'SOCK_CLOEXEC']);
    assert.deepEqual(u.socket, {
      resolved: true,
      family: 'inet',
      family_number: 2,
      type: 'STREAM',
      protocol: 6,
      v4_mapped: false,
    });
    assert.deepEqual(u.listener, { resolved: true, fd: 6, backlog: 3, max_backlog: 511 });
    assert.deepEqual(u.user_address, {
      present: true,
      mismatch: false,
      fault: false,
      addrlen: 16,
      family_number: 2,
      ip: '10.0.0.9',
      port: 51544,
    });
    assert.deepEqual(u.namespaces, { mnt: 4026531840, pid: 4026531836, net: 4026531992, uts: 4026531838 });
    assert.deepEqual(u.cgroup, { id: '12345', v1_id: '678' });
    assert.deepEqual(u.container, { cgroup_path: '/kubepods.slice/x' });
    assert.deepEqual(u.enrichment, { status: 'complete', cgroup_from_proc: false, waited_ms: 0 });
    assert.deepEqual(u.k8s, {
      namespace: 'shop',
      pod: {
        name: 'web-7d9f-abc',
        uid: POD_UID,
        ip: '10.0.0.5',
        service_account: 'web-sa',
        node_name: 'node-a',
        host_network: false,
        qos_class: 'Burstable',
        deleted: false,
        annotations: { 'doorwatch.io/audit': 'on' },
      },
      workload: { kind: 'Deployment', name: 'web', inferred: false },
      namespace_labels: { team: 'payments' },
    });
  });

  it('says what happened in message', () => {
    assert.equal(o.message, 'nginx[812] in pod shop/web-7d9f-abc accepted 10.0.0.9:51544 on 10.0.0.5:443 via accept4');
  });

  it('is an accept when the producer has no audit policies (kind unspecified, no policy ref)', () => {
    assert.equal(full.kind, EventKind.EVENT_KIND_UNSPECIFIED);
    assert.equal(o.unmapped.kind, 'accept');
    assert.equal(o.metadata.log_name, 'doorwatch.accept');
    for (const k of ['count', 'start_time', 'end_time', 'duration', 'policy']) assert.equal(o[k], undefined, k);
    assert.equal(o.unmapped.summary, undefined);
    assert.equal(o.unmapped.policy, undefined);
    assert.deepEqual(eventToOcsf(AcceptEvent.fromPartial({ ...full, kind: EventKind.EVENT_KIND_ACCEPT })), o);
  });

  it('raises severity when the caller rewrote its address buffer', () => {
    const ev = AcceptEvent.fromPartial({ ...full, userAddress: { ...full.userAddress!, port: 1, mismatch: true } });
    const m = eventToOcsf(ev) as J;
    assert.equal(m.severity_id, 3);
    assert.equal(m.severity, 'Medium');
    assert.equal(m.unmapped.user_address.mismatch, true);
  });

  it('is IPv4 on the wire for an IPv4-mapped peer, and Local on loopback', () => {
    const ev = AcceptEvent.fromPartial({
      ...full,
      socket: {
        ...full.socket!,
        family: AddressFamily.ADDRESS_FAMILY_INET6,
        familyNumber: 10,
        local: { ip: '::ffff:127.0.0.1', port: 8080 },
        peer: { ip: '::ffff:127.0.0.1', port: 39990 },
        v4Mapped: true,
      },
    });
    const m = eventToOcsf(ev) as J;
    assert.deepEqual(m.src_endpoint, { ip: '127.0.0.1', port: 39990 });
    assert.equal(m.dst_endpoint.ip, '127.0.0.1');
    assert.equal(m.connection_info.protocol_ver_id, 4);
    assert.equal(m.connection_info.direction_id, 4);
    assert.equal(m.connection_info.direction, 'Local');
    assert.equal(m.unmapped.socket.v4_mapped, true);
  });

  it('is JSON with nothing blank', () => {
    roundTrips(o);
    noBlanks(o);
  });
});

describe('OCSF: failed accept', () => {
  const o = eventToOcsf(failed) as J;

  it('is a Network Activity "Fail" with the errno as status', () => {
    assertRequired(o, 4001);
    assert.equal(o.activity_id, 4);
    assert.equal(o.activity_name, 'Fail');
    assert.equal(o.type_uid, 400104);
    assert.equal(o.type_name, 'Network Activity: Fail');
    assert.equal(o.severity_id, 2);
    assert.equal(o.severity, 'Low');
    assert.equal(o.status_id, 2);
    assert.equal(o.status, 'Failure');
    assert.equal(o.status_code, 'EMFILE');
    assert.equal(o.status_detail, 'accept() failed: EMFILE (errno 24)');
    assert.equal(o.metadata.event_code, 'accept');
  });

  it('has no peer, and only the node as the local side', () => {
    assert.equal(o.src_endpoint, undefined);
    assert.deepEqual(o.dst_endpoint, { hostname: 'node-a' });
    assert.deepEqual(o.connection_info, { direction_id: 1, direction: 'Inbound' });
  });

  it('keeps the raw return value and the unresolved parts', () => {
    assert.equal(o.unmapped.ret, -24);
    assert.deepEqual(o.unmapped.socket, { resolved: false });
    assert.deepEqual(o.unmapped.listener, { resolved: false, fd: 6 });
    assert.equal(o.message, 'nginx[812]: accept() failed: EMFILE (errno 24)');
  });

  it('is JSON with nothing blank', () => {
    roundTrips(o);
    noBlanks(o);
  });
});

describe('OCSF: host process over IPv6', () => {
  const o = eventToOcsf(host) as J;

  it('has no container and no Kubernetes block', () => {
    assertRequired(o, 4001);
    assert.deepEqual(o.metadata.profiles, ['host', 'datetime', 'linux/linux_users']);
    assert.equal(o.actor.process.container, undefined);
    assert.equal(o.unmapped.k8s, undefined);
    assert.equal(o.unmapped.enrichment.status, 'host');
  });

  it('maps the IPv6 endpoints', () => {
    assert.deepEqual(o.src_endpoint, { ip: '2001:db8::7', port: 40112 });
    assert.deepEqual(o.dst_endpoint, { ip: '2001:db8::1', port: 22, hostname: 'node-a' });
    assert.equal(o.connection_info.protocol_ver_id, 6);
    assert.equal(o.connection_info.protocol_ver, 'Internet Protocol version 6 (IPv6)');
    assert.equal(o.connection_info.direction_id, 1);
    assert.equal(o.message, 'sshd[1190] accepted [2001:db8::7]:40112 on [2001:db8::1]:22 via accept');
  });

  it('is JSON with nothing blank', () => {
    roundTrips(o);
    noBlanks(o);
  });
});

describe('OCSF: unix socket', () => {
  const o = eventToOcsf(unix) as J;

  it('names the socket path, and the peer is on this node', () => {
    assertRequired(o, 4001);
    assert.deepEqual(o.dst_endpoint, { name: '/run/app.sock', hostname: 'node-a' });
    assert.deepEqual(o.src_endpoint, { hostname: 'node-a' });
    assert.deepEqual(o.connection_info, { direction_id: 4, direction: 'Local', protocol_name: 'unix' });
    assert.equal(o.metadata.event_code, 'io_uring_accept');
  });

  it('keeps the peer pid in unmapped', () => {
    assert.deepEqual(o.unmapped.socket, {
      resolved: true,
      family: 'unix',
      family_number: 1,
      type: 'STREAM',
      protocol: 0,
      v4_mapped: false,
      unix_path: '/run/app.sock',
      peer_pid: 77,
    });
    assert.equal(o.actor.process.ptid, 2240);
    assert.equal(o.message, 'app[2231] accepted a connection on unix socket /run/app.sock from pid 77 via io_uring_accept');
  });

  it('is JSON with nothing blank', () => {
    roundTrips(o);
    noBlanks(o);
  });
});

describe('OCSF: accept with an audit policy', () => {
  const o = eventToOcsf(sampleEvent({ kind: EventKind.EVENT_KIND_ACCEPT, policy: SAMPLE_POLICY })) as J;

  it('names the policy (Security Control profile) and keeps its origin and mode in unmapped', () => {
    assertRequired(o, 4001);
    assert.deepEqual(o.policy, { name: 'shop/web-audit' });
    assert.deepEqual(o.metadata.profiles, ['host', 'container', 'datetime', 'security_control', 'linux/linux_users']);
    assert.deepEqual(o.unmapped.policy, { origin: 'resource', name: 'shop/web-audit', mode: 'events' });
    assert.equal(o.unmapped.kind, 'accept');
    // Doorwatch observes; it does not claim to have allowed or denied anything.
    assert.equal(o.action_id, undefined);
    assert.equal(o.disposition_id, undefined);
  });

  it('is otherwise the accept it was', () => {
    assert.equal(o.activity_id, 1);
    assert.equal(o.count, undefined);
    assert.equal(o.metadata.log_name, 'doorwatch.accept');
    assert.deepEqual(o.src_endpoint, { ip: '10.0.0.9', port: 51544 });
    assert.ok(o.connection_info.community_uid);
  });

  it('leaves policy out (and the profile) when the ref has no name, keeping what it has in unmapped', () => {
    const m = eventToOcsf(
      sampleEvent({ policy: { origin: PolicyOrigin.POLICY_ORIGIN_UNATTRIBUTED, mode: AuditMode.AUDIT_MODE_EVENTS } }),
    ) as J;
    assert.equal(m.policy, undefined);
    assert.deepEqual(m.metadata.profiles, ['host', 'container', 'datetime', 'linux/linux_users']);
    assert.deepEqual(m.unmapped.policy, { origin: 'unattributed', mode: 'events' });
    noBlanks(m);
  });

  it('is JSON with nothing blank', () => {
    roundTrips(o);
    noBlanks(o);
  });
});

describe('OCSF: summary record (rate limit)', () => {
  const ev = sampleSummary();
  const o = eventToOcsf(ev) as J;

  it('is a Network Activity "Open" with the aggregation attributes: count, start_time, end_time', () => {
    assertRequired(o, 4001);
    assert.equal(o.activity_id, 1);
    assert.equal(o.type_uid, 400101);
    assert.equal(o.status_id, 1);
    assert.equal(o.severity_id, 1);
    assert.equal(o.count, 57);
    assert.equal(o.start_time, 1714564800123);
    assert.equal(o.end_time, 1714564809999);
    assert.equal(o.start_time_dt, '2024-05-01T12:00:00.123456789Z');
    assert.equal(o.end_time_dt, '2024-05-01T12:00:09.999456789Z');
    assert.equal(o.duration, 9876);
    assert.equal(o.time, 1714564800123);
  });

  it('is its own record type: log_name doorwatch.summary, unmapped.kind summary', () => {
    assert.equal(o.metadata.log_name, 'doorwatch.summary');
    assert.equal(o.metadata.uid, 'boot-1/inst-1/42');
    assert.equal(o.metadata.event_code, 'accept4');
    assert.equal(o.unmapped.kind, 'summary');
  });

  it('has the key as endpoints: the peer without a port, no Community ID', () => {
    assert.deepEqual(o.src_endpoint, { ip: '10.0.0.9' });
    assert.deepEqual(o.dst_endpoint, { ip: '10.0.0.5', port: 443, hostname: 'node-a' });
    assert.equal(o.connection_info.community_uid, undefined);
    assert.equal(o.connection_info.protocol_name, 'tcp');
  });

  it('keeps reason, failed count, interval and the sample’s own peer in unmapped.summary', () => {
    assert.deepEqual(o.unmapped.summary, {
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
    assert.deepEqual(o.policy, { name: 'shop/web-audit' });
    assert.deepEqual(o.unmapped.policy, { origin: 'resource', name: 'shop/web-audit', mode: 'events' });
  });

  it('says how many, from whom, over how long and why', () => {
    assert.equal(
      o.message,
      'nginx[812] in pod shop/web-7d9f-abc: 57 accepts from 10.0.0.9 on port 443 via accept4 over 9.876s, ' +
        'summarised (rate limit exceeded, policy shop/web-audit)',
    );
  });

  it('is JSON with nothing blank', () => {
    roundTrips(o);
    noBlanks(o);
  });
});

describe('OCSF: summary record of failed accepts (summary mode)', () => {
  const ev = sampleSummary({
    ret: -24,
    success: false,
    error: 'EMFILE',
    socket: { resolved: false, family: AddressFamily.ADDRESS_FAMILY_UNSPECIFIED, local: {}, peer: {} },
    policy: { mode: AuditMode.AUDIT_MODE_SUMMARY },
    summary: { reason: SummaryReason.SUMMARY_REASON_MODE, count: 4n, failedCount: 4n, peerIp: '' },
  });
  const o = eventToOcsf(ev) as J;

  it('is a "Fail" when every accept failed, with the first errno', () => {
    assertRequired(o, 4001);
    assert.equal(o.activity_id, 4);
    assert.equal(o.status_id, 2);
    assert.equal(o.status_code, 'EMFILE');
    assert.equal(o.status_detail, '4 of 4 accepts failed (first seen: accept4() failed: EMFILE (errno 24))');
    assert.equal(o.severity_id, 2);
    assert.equal(o.count, 4);
  });

  it('has no peer', () => {
    assert.equal(o.src_endpoint, undefined);
    assert.deepEqual(o.dst_endpoint, { hostname: 'node-a' });
    assert.equal(o.unmapped.summary.peer_ip, undefined);
    assert.equal(o.unmapped.summary.sample_peer, undefined);
    assert.equal(o.unmapped.summary.reason, 'mode');
    assert.equal(
      o.message,
      'nginx[812] in pod shop/web-7d9f-abc: 4 accepts (4 failed) on port 443 via accept4 over 9.876s, summarised (policy mode summary, policy shop/web-audit)',
    );
  });

  it('is JSON with nothing blank', () => {
    roundTrips(o);
    noBlanks(o);
  });
});

describe('OCSF: summary record with folded peers, some accepts failed', () => {
  const o = eventToOcsf(sampleSummary({ summary: { count: 1000n, failedCount: 3n, peerIp: '', peersFolded: true } })) as J;

  it('is an "Open" with status Other (Partial) and says how many failed', () => {
    assert.equal(o.activity_id, 1);
    assert.equal(o.status_id, 99);
    assert.equal(o.status, 'Partial');
    assert.equal(o.status_code, undefined);
    assert.equal(o.status_detail, '3 of 1000 accepts failed');
    assert.equal(o.severity_id, 2);
  });

  it('attributes the accepts to no single peer', () => {
    assert.equal(o.src_endpoint, undefined);
    assert.equal(o.unmapped.summary.peers_folded, true);
    assert.deepEqual(o.unmapped.summary.sample_peer, { ip: '10.0.0.9', port: 51544 });
    assert.match(o.message, /: 1000 accepts \(3 failed\) from many peers \(key table full\) on port 443 /);
  });

  it('is JSON with nothing blank', () => {
    roundTrips(o);
    noBlanks(o);
  });
});

describe('OCSF: loss records', () => {
  it('are Application Error events with every required attribute', () => {
    const o = lossToOcsf(gap) as J;
    assertRequired(o, 6008);
    assert.equal(o.class_name, 'Application Error');
    assert.equal(o.category_uid, 6);
    assert.equal(o.category_name, 'Application Activity');
    assert.equal(o.activity_id, 1);
    assert.equal(o.activity_name, 'General Error');
    assert.equal(o.type_uid, 600801);
    assert.equal(o.severity_id, 4);
    assert.equal(o.severity, 'High');
    assert.equal(o.status_id, 2);
    assert.equal(o.status_detail, 'seq gap');
    assert.equal(o.time, 1714564800123);
    assert.equal(o.time_dt, isoNanos(T));
  });

  it('carry the agent identity and the seq range', () => {
    const o = lossToOcsf(gap) as J;
    assert.equal(o.metadata.uid, recordId({ kind: 'loss', loss: gap }));
    assert.equal(o.metadata.product.version, '0.1.0');
    assert.equal(o.metadata.log_name, 'doorwatch.loss');
    assert.deepEqual(o.device, { hostname: 'node-a', name: 'node-a', type_id: 1, type: 'Server', boot_uid: 'boot-1' });
    assert.deepEqual(o.unmapped, {
      agent: { node_name: 'node-a', boot_id: 'boot-1', instance_id: 'inst-1', version: '0.1.0' },
      from_seq: 101,
      to_seq: 150,
      seq_count: 50,
      reason: 'seq gap',
      time_unix_nano: '1714564800123456789',
    });
    assert.equal(o.message, 'Doorwatch lost events on node-a: seq 101-150 (50 events) (seq gap)');
    roundTrips(o);
    noBlanks(o);
  });

  it('carry the agent counters when there is no seq range', () => {
    const o = lossToOcsf(kernelDrops) as J;
    assert.deepEqual(o.unmapped.counters, {
      kernel_ring_full: 40,
      decode_errors: 0,
      bpf_recursion_misses: 0,
      queue_drops: 2,
      spool_drops: 0,
    });
    assert.equal(o.unmapped.counters_total, 42);
    assert.equal(o.unmapped.seq_count, 0);
    assert.equal(
      o.message,
      'Doorwatch lost events on node-a: 42 counted: kernel_ring_full=40 queue_drops=2 (agent reported losses)',
    );
    roundTrips(o);
    noBlanks(o);
  });
});

describe('OCSF: eventToOcsfLine (the fast line) is JSON.stringify(eventToOcsf)', () => {
  const corpus = (): AcceptEvent[] => [
    sampleEvent(),
    sampleEvent({ success: false, ret: -24, error: 'EMFILE', socket: { resolved: false } }),
    sampleEvent({ userAddress: { mismatch: true }, socket: { peer: { ip: '::ffff:127.0.0.1', port: 1 }, v4Mapped: true } }),
    sampleEvent({ pod: { labels: {}, annotations: {}, namespaceLabels: {}, workload: { kind: '' } } }),
    sampleEvent({ pod: { labels: { z: '1', a: '"\\\n', ü: '\u2028' }, hostNetwork: true, deleted: true } }),
    sampleEvent({ container: { id: '' } }),
    sampleEvent({ container: { image: '', imageId: '' }, process: { comm: '', ppid: 0 } }),
    sampleEvent({ nodeName: '', policy: SAMPLE_POLICY, kind: EventKind.EVENT_KIND_ACCEPT }),
    sampleEvent({ socket: { protocol: 262 } }),
    sampleSummary(),
    sampleSummary({ summary: { failedCount: 57n, peerIp: '', peersFolded: true } }),
    sampleHostEvent(),
    sampleUnixEvent(),
    { ...sampleEvent(), process: undefined, pod: undefined, container: undefined, socket: undefined },
    AcceptEvent.fromPartial({}),
  ];

  it('for every kind of record, twice (the second time from the per-pod text)', () => {
    for (const [i, ev] of corpus().entries()) {
      const want = JSON.stringify(eventToOcsf(ev));
      assert.equal(eventToOcsfLine(ev), want, `record ${i}`);
      assert.equal(eventToOcsfLine(ev), want, `record ${i}, again`);
    }
  });

  it('3000 plausible records (seed 11): every accept shape the field-by-field head writes, and the rest', () => {
    let accepts = 0;
    for (const [i, ev] of plausibleRecords(3000, 11).entries()) {
      const want = JSON.stringify(eventToOcsf(ev));
      assert.equal(eventToOcsfLine(ev), want, `record ${i}`);
      if (ev.kind !== EventKind.EVENT_KIND_SUMMARY && want.includes('"activity_name":"Open"')) accepts++;
    }
    // The corpus must exercise the fast head, not only the object form.
    assert.ok(accepts > 1000, `only ${accepts} plain accepts in the corpus`);
  });

  it('when events share pod and container objects, and when one container moves to another pod object', () => {
    const a = sampleEvent();
    const b = { ...sampleEvent({ seq: 43n, socket: { peer: { port: 9 } } }), pod: a.pod, container: a.container };
    const c = { ...a, pod: sampleEvent({ pod: { uid: 'other-uid', labels: { x: 'y' } } }).pod };
    for (const ev of [a, b, c, a]) assert.equal(eventToOcsfLine(ev), JSON.stringify(eventToOcsf(ev)));
  });

  it('a pod’s remembered detail: any one of its values changed (shared pod object or not) is written as it is', () => {
    const pod = sampleEvent().pod;
    const base = (shared: boolean) => {
      const ev = sampleEvent({ policy: SAMPLE_POLICY, kind: EventKind.EVENT_KIND_ACCEPT });
      if (shared) ev.pod = pod; // the memo's key: the same pod object with other values under it
      return ev;
    };
    const changes: [string, (ev: AcceptEvent) => void][] = [
      ['namespaces.net', (ev) => (ev.namespaces!.net += 1)],
      ['namespaces absent', (ev) => (ev.namespaces = undefined)],
      ['cgroup.id', (ev) => (ev.cgroup!.id += 1n)],
      ['cgroup.v1Id', (ev) => (ev.cgroup!.v1Id += 1n)],
      ['cgroup absent', (ev) => (ev.cgroup = undefined)],
      ['container.cgroupPath', (ev) => (ev.container!.cgroupPath += '/x')],
      ['enrichment.status', (ev) => (ev.enrichment!.status += 1)],
      ['enrichment.missing', (ev) => ev.enrichment!.missing.push('pod')],
      ['enrichment.reason', (ev) => (ev.enrichment!.reason = 'late')],
      ['enrichment.cgroupFromProc', (ev) => (ev.enrichment!.cgroupFromProc = !ev.enrichment!.cgroupFromProc)],
      ['enrichment.waitedMs', (ev) => (ev.enrichment!.waitedMs += 7)],
      ['enrichment absent', (ev) => (ev.enrichment = undefined)],
      ['policy.name', (ev) => (ev.policy!.name = 'other')],
      ['policy.mode', (ev) => (ev.policy!.mode += 1)],
      ['policy.origin', (ev) => (ev.policy!.origin += 1)],
      ['policy absent', (ev) => (ev.policy = undefined)],
    ];
    for (const shared of [true, false]) {
      for (const [what, change] of changes) {
        const check = (ev: AcceptEvent, label: string) =>
          assert.equal(eventToOcsfLine(ev), JSON.stringify(eventToOcsf(ev)), `${label} (shared pod: ${shared})`);
        check(base(shared), 'base');
        const ev = base(shared);
        change(ev);
        check(ev, what);
        check(base(shared), `base after ${what}`);
      }
    }
  });
});

describe('pruned (JSON of a pruned value in one walk)', () => {
  it('is JSON.stringify(prune(v)) for plain data, empty parts and odd numbers included', () => {
    const values: Record<string, unknown>[] = [
      { a: 1, b: undefined, c: null, d: [], e: {}, f: { g: { h: [] } }, i: false, j: 0, k: '' },
      { n: Number.NaN, inf: Number.POSITIVE_INFINITY, neg: -0, big: 1e21, small: 1e-7, s: '"\\\n\u2028\ud800é🚪' },
      { arr: [undefined, null, 1, [], {}, [null], { x: undefined }, 'x', [[], [1]]] },
      { '': 'empty key', 'a"b': 1, '1': 'integer-like keys first', z: { y: { x: { w: 'deep' } } } },
      { 'é\n🚪\\': 2, '\u0001': [1], 'app.kubernetes.io/name': 'web', '\ud800': 'lone surrogate key' },
      eventToOcsf(sampleEvent()),
    ];
    for (const [i, v] of values.entries()) assert.equal(pruned(v), JSON.stringify(prune(v)), `value ${i}`);
    assert.equal(pruned({ a: undefined, b: [null] }), undefined, 'all empty: pruned away');
    assert.throws(() => pruned({ a: 1n }), TypeError);
  });
});

describe('OCSF: time as text', () => {
  it('isoNanos equals the BigInt arithmetic it replaced, at every digit split and across seconds', () => {
    const reference = (ns: bigint) =>
      `${new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().slice(0, 19)}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`;
    const values = [0n, 1n, 999_999_999n, 1_000_000_000n, 1_700_000_000_123_456_789n, 1_700_000_000_999_999_999n];
    values.push(1_700_000_001_000_000_000n, 1_700_000_000_000_000_001n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n);
    let seed = 7;
    for (let i = 0; i < 20_000; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      values.push(1_600_000_000_000_000_000n + BigInt(seed) * BigInt(seed % 100_003));
    }
    for (const ns of values) assert.equal(isoNanos(ns), reference(ns), String(ns));
  });
});
