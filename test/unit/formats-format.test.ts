import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventToEcs, lossToEcs } from '../../src/formats/ecs.js';
import { formatLine, formatRecord, recordId, recordTimeNs } from '../../src/formats/format.js';
import { eventToJson, lossToJson } from '../../src/formats/native-json.js';
import { eventToOcsf, lossToOcsf } from '../../src/formats/ocsf.js';
import { LossRecord } from '../../src/gen/doorwatch/v1/collector.js';
import {
  AcceptEvent,
  AddressFamily,
  AttributionStatus,
  AuditMode,
  EnrichmentStatus,
  EventKind,
  ListenerOrigin,
  OwnerKind,
  PolicyOrigin,
  Source,
  SummaryReason,
} from '../../src/gen/doorwatch/v1/event.js';
import type { FormatName, SinkRecord } from '../../src/sinks/sink.js';
import { SAMPLE_POLICY, sampleEvent, sampleSummary } from '../helpers/sample-events.js';

const FORMATS: FormatName[] = ['native', 'ocsf', 'ecs', 'tracee'];
const T = 1714564800123456789n;

/**
 * Every field of the proto set to a distinctive, non-default value (inet side;
 * `everythingUnix` covers the AF_UNIX-only fields and a summary whose peers
 * were folded). Not a realistic event — a summary record whose sample failed,
 * with a summary key that differs from the sample's socket: it exists so that
 * a field added to the proto, or dropped by a mapping, fails the coverage
 * tests below, so every value is one no other field has.
 */
const everything = AcceptEvent.fromPartial({
  eventId: 'boot-9/inst-9/777',
  seq: 777n,
  timeUnixNano: T,
  ktimeNs: 555000111n,
  nodeName: 'node-cov',
  source: Source.SOURCE_ACCEPT4,
  ret: -23,
  success: false,
  error: 'ENFILE',
  durationNs: 4321n,
  acceptFlags: 0o4000,
  acceptFlagNames: ['SOCK_NONBLOCK'],
  flags: ['NO_ENTER', 'CGROUP_V1_UNKNOWN'],
  process: { pid: 3101, tid: 3102, ppid: 3100, uid: 3103, gid: 3104, comm: 'covd' },
  socket: {
    family: AddressFamily.ADDRESS_FAMILY_INET6,
    familyNumber: 10,
    type: 'STREAM',
    protocol: 6,
    local: { ip: '2001:db8::a1', port: 8443 },
    peer: { ip: '2001:db8::b2', port: 50001 },
    v4Mapped: true,
    resolved: true,
  },
  listener: { fd: 31, backlog: 32, maxBacklog: 33, resolved: true },
  userAddress: {
    present: true,
    addrlen: 28,
    familyNumber: 11,
    ip: '2001:db8::c3',
    port: 50002,
    fault: true,
    mismatch: true,
  },
  namespaces: { mnt: 41, pid: 42, net: 43, uts: 44 },
  cgroup: { id: 51n, v1Id: 52n },
  container: {
    id: 'e'.repeat(64),
    runtime: 'cri-o',
    name: 'cov-ctr',
    image: 'registry.example/cov:1',
    imageId: `registry.example/cov@sha256:${'f'.repeat(64)}`,
    cgroupPath: '/kubepods/cov',
  },
  pod: {
    namespace: 'cov-ns',
    name: 'cov-pod',
    uid: 'cov-uid',
    labels: { covlabel: 'covlabelvalue' },
    annotations: { covannotation: 'covannotationvalue' },
    workload: { kind: 'DaemonSet', name: 'cov-ds', inferred: true },
    serviceAccount: 'cov-sa',
    nodeName: 'node-cov-pod',
    ip: '10.9.9.9',
    hostNetwork: true,
    qosClass: 'Guaranteed',
    namespaceLabels: { covnslabel: 'covnslabelvalue' },
    deleted: true,
  },
  enrichment: {
    status: EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL,
    missing: ['namespace'],
    reason: 'cov reason',
    cgroupFromProc: true,
    waitedMs: 61,
  },
  kind: EventKind.EVENT_KIND_SUMMARY,
  summary: {
    reason: SummaryReason.SUMMARY_REASON_RATE_LIMIT,
    count: 9101n,
    failedCount: 91n,
    firstTimeUnixNano: T + 1001n,
    lastTimeUnixNano: T + 2_000_002_002n,
    intervalStartUnixNano: T - 3003n,
    intervalEndUnixNano: T + 4_000_004_004n,
    localPort: 8444,
    peerIp: '2001:db8::d4',
    peersFolded: false,
  },
  policy: { origin: PolicyOrigin.POLICY_ORIGIN_RESOURCE, name: 'cov-ns/cov-policy', mode: AuditMode.AUDIT_MODE_EVENTS },
  peerAttribution: {
    status: AttributionStatus.ATTRIBUTION_STATUS_RESOLVED,
    reason: 'cov peer reason',
    kind: OwnerKind.OWNER_KIND_POD,
    namespace: 'cov-peer-ns',
    name: 'cov-peer-pod',
    uid: 'cov-peer-uid',
    workload: { kind: 'StatefulSet', name: 'cov-peer-sts', inferred: true },
    labels: { covpeerlabel: 'covpeerlabelvalue' },
    nodeName: 'node-cov-peer',
  },
  localAttribution: {
    status: AttributionStatus.ATTRIBUTION_STATUS_UNKNOWN,
    reason: 'cov local reason',
    kind: OwnerKind.OWNER_KIND_SERVICE,
    namespace: 'cov-local-ns',
    name: 'cov-local-svc',
    uid: 'cov-local-uid',
    workload: { kind: 'Deployment', name: 'cov-local-deploy', inferred: true },
    labels: { covlocallabel: 'covlocallabelvalue' },
    nodeName: 'node-cov-local',
  },
  // Listener records only (kind LISTEN/LISTENER/LISTENER_CLOSED); set here so every format is checked to carry it.
  listenerInfo: {
    origin: ListenerOrigin.LISTENER_ORIGIN_RESCAN,
    inode: 9876543n,
    requestedBacklog: 4711,
    firstSeenUnixNano: T - 5005n,
  },
});

const everythingUnix = AcceptEvent.fromPartial({
  ...everything,
  socket: {
    family: AddressFamily.ADDRESS_FAMILY_UNIX,
    familyNumber: 1,
    type: 'SEQPACKET',
    local: {},
    peer: {},
    unixPath: '/run/cov.sock',
    peerPid: 71,
    resolved: true,
  },
  summary: { ...everything.summary!, localPort: 0, peerIp: '', peersFolded: true },
});

/** Leaves of a JSON value as [path, value]; an empty array or map is a leaf of its own. */
function leaves(v: unknown, path = ''): [string, unknown][] {
  if (Array.isArray(v)) return v.length ? v.flatMap((x) => leaves(x, path)) : [[path, v]];
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v);
    return entries.length ? entries.flatMap(([k, x]) => leaves(x, path ? `${path}.${k}` : k)) : [[path, v]];
  }
  return [[path, v]];
}

const isDefault = (v: unknown) =>
  v === null || v === '' || v === 0 || v === '0' || v === false || (typeof v === 'object' && Object.keys(v).length === 0);

/** Native enum names as the OCSF/ECS forms spell them: the value's own name, lowercase (SUMMARY_REASON_RATE_LIMIT -> rate_limit). */
function expected(v: unknown): string {
  const s = String(v);
  const m =
    /^(?:SOURCE|ADDRESS_FAMILY|ENRICHMENT_STATUS|EVENT_KIND|SUMMARY_REASON|POLICY_ORIGIN|AUDIT_MODE|ATTRIBUTION_STATUS|OWNER_KIND|LISTENER_ORIGIN)_(.+)$/.exec(
      s,
    );
  return m ? m[1]!.toLowerCase() : s;
}

/** Every string and number in a formatted record, label pairs ("k=v", "k:v") split too. */
function valuesOf(o: object): Set<string> {
  const out = new Set<string>();
  for (const [, v] of leaves(o)) {
    const s = String(v);
    out.add(s);
    const pair = /^[\w./-]+[=:](.+)$/.exec(s);
    if (pair) out.add(pair[1]!);
  }
  return out;
}

/** A finding (src/findings) on top of everything: its own class in OCSF, an alert in ECS, nothing dropped either. */
const everythingFinding = AcceptEvent.fromPartial({
  ...everything,
  kind: EventKind.EVENT_KIND_FINDING,
  findingInfo: {
    ruleId: 'undeclared-listener',
    uid: 'undeclared-listener/pod-uid-cov/TCP/9999',
    title: 'pod cov/p listens on 0.0.0.0:9999/TCP, a port none of its containers declares',
    reason: 'declared-ports-cov',
    port: 9999,
    protocol: 'TCP',
    declaredPorts: [{ containerPort: 8443, hostPort: 18443, protocol: 'TCP', container: 'app-cov', name: 'https-cov' }],
  },
});

describe('format coverage: no proto field is dropped', () => {
  it('the coverage events set every proto field (a new proto field must be added here and mapped)', () => {
    const set = new Set<string>();
    const all = new Set<string>();
    for (const ev of [everything, everythingUnix, everythingFinding]) {
      for (const [path, v] of leaves(eventToJson(ev))) {
        all.add(path);
        if (!isDefault(v)) set.add(path);
      }
    }
    // Booleans are set true somewhere, except `success` (false to exercise the error fields).
    // A message null in one event and set in another (findingInfo) is set.
    const unset = [...all].filter((p) => !set.has(p) && p !== 'success' && ![...set].some((s) => s.startsWith(`${p}.`)));
    assert.deepEqual(unset, []);
  });

  for (const [name, fn] of [
    ['ocsf', eventToOcsf],
    ['ecs', eventToEcs],
  ] as const) {
    it(`${name} carries every non-boolean value`, () => {
      for (const ev of [everything, everythingUnix, everythingFinding]) {
        const got = valuesOf(fn(ev));
        const missing = leaves(eventToJson(ev))
          .filter(([, v]) => !isDefault(v) && typeof v !== 'boolean')
          .filter(([, v]) => !got.has(expected(v)))
          .map(([p, v]) => `${p}=${String(v)}`);
        assert.deepEqual(missing, [], `${name} drops these fields`);
      }
    });
  }
});

const ev = AcceptEvent.fromPartial({
  eventId: 'b/i/1',
  seq: 1n,
  timeUnixNano: T,
  nodeName: 'n',
  source: Source.SOURCE_ACCEPT,
  ret: 5,
  success: true,
  process: { pid: 1, comm: 'x' },
  socket: {
    family: AddressFamily.ADDRESS_FAMILY_INET,
    resolved: true,
    local: { ip: '1.1.1.1', port: 1 },
    peer: { ip: '2.2.2.2', port: 2 },
  },
});

const loss = LossRecord.fromPartial({
  agent: { nodeName: 'n', bootId: 'b', instanceId: 'i', version: '0.1.0' },
  fromSeq: 10n,
  toSeq: 19n,
  reason: 'seq gap',
  timeUnixNano: T,
});

const kernelLoss = LossRecord.fromPartial({
  agent: { nodeName: 'n', bootId: 'b', instanceId: 'i' },
  reason: 'agent reported losses',
  counters: { kernelRingFull: 3n },
  timeUnixNano: T,
});

describe('formatRecord', () => {
  it('dispatches events to each format', () => {
    const rec: SinkRecord = { kind: 'event', event: ev };
    assert.deepEqual(formatRecord(rec, 'native'), eventToJson(ev));
    assert.deepEqual(formatRecord(rec, 'ocsf'), eventToOcsf(ev));
    assert.deepEqual(formatRecord(rec, 'ecs'), eventToEcs(ev));
  });

  it('dispatches loss records to each format', () => {
    const rec: SinkRecord = { kind: 'loss', loss };
    assert.deepEqual(formatRecord(rec, 'native'), lossToJson(loss));
    assert.deepEqual(formatRecord(rec, 'ocsf'), lossToOcsf(loss));
    assert.deepEqual(formatRecord(rec, 'ecs'), lossToEcs(loss));
  });

  it('gives JSON-serialisable output for every record and format (no bigint)', () => {
    const recs: SinkRecord[] = [
      { kind: 'event', event: ev },
      { kind: 'event', event: everything },
      { kind: 'event', event: everythingUnix },
      { kind: 'event', event: AcceptEvent.fromPartial({}) },
      { kind: 'event', event: sampleEvent({ kind: EventKind.EVENT_KIND_ACCEPT, policy: SAMPLE_POLICY }) },
      { kind: 'event', event: sampleSummary() },
      { kind: 'event', event: AcceptEvent.fromPartial({ kind: EventKind.EVENT_KIND_SUMMARY }) },
      { kind: 'loss', loss },
      { kind: 'loss', loss: kernelLoss },
      { kind: 'loss', loss: LossRecord.fromPartial({}) },
    ];
    for (const rec of recs) {
      for (const f of FORMATS) {
        const out = formatRecord(rec, f);
        assert.deepStrictEqual(JSON.parse(JSON.stringify(out)), out, `${rec.kind} as ${f}`);
      }
    }
  });

  it('refuses an unknown format', () => {
    assert.throws(() => formatRecord({ kind: 'event', event: ev }, 'cef' as FormatName), TypeError);
  });
});

describe('native loss records', () => {
  it('are canonical proto JSON with every field, readable back with LossRecord.fromJSON', () => {
    const json = lossToJson(kernelLoss);
    assert.deepEqual(Object.keys(json).sort(), ['agent', 'counters', 'fromSeq', 'reason', 'timeUnixNano', 'toSeq']);
    assert.equal(json.fromSeq, '0');
    assert.equal(json.timeUnixNano, '1714564800123456789');
    assert.deepEqual(json.counters, {
      kernelRingFull: '3',
      decodeErrors: '0',
      bpfRecursionMisses: '0',
      queueDrops: '0',
      spoolDrops: '0',
    });
    assert.deepEqual(LossRecord.fromJSON(JSON.parse(JSON.stringify(json))), kernelLoss);
  });

  it('write unset messages as null', () => {
    const json = lossToJson(loss);
    assert.equal(json.counters, null);
    assert.deepEqual(LossRecord.fromJSON(JSON.parse(JSON.stringify(json))), loss);
  });
});

describe('recordId', () => {
  const id = (l: LossRecord) => recordId({ kind: 'loss', loss: l });

  it('is the event_id for events', () => {
    assert.equal(recordId({ kind: 'event', event: ev }), 'b/i/1');
  });

  it('names a loss by boot, instance and seq range', () => {
    assert.match(id(loss), /^b\/i\/loss\/10-19\/[0-9a-f]{16}$/);
  });

  it('is the same for a replayed loss: same range and reason, noticed at another time', () => {
    assert.equal(id(LossRecord.fromPartial({ ...loss, timeUnixNano: T + 5_000_000_000n })), id(loss));
    assert.equal(id(LossRecord.fromPartial({ ...loss })), id(loss));
  });

  it('tells apart different ranges, reasons and agents', () => {
    const ids = new Set([
      id(loss),
      id(LossRecord.fromPartial({ ...loss, toSeq: 20n })),
      id(LossRecord.fromPartial({ ...loss, reason: 'subscriber too slow' })),
      id(LossRecord.fromPartial({ ...loss, agent: { ...loss.agent!, instanceId: 'j' } })),
      id(LossRecord.fromPartial({ ...loss, agent: { ...loss.agent!, bootId: 'c' } })),
    ]);
    assert.equal(ids.size, 5);
  });

  it('tells apart losses without a seq range by their time and counters', () => {
    const again = LossRecord.fromPartial({ ...kernelLoss });
    const later = LossRecord.fromPartial({ ...kernelLoss, timeUnixNano: T + 1n });
    const more = LossRecord.fromPartial({ ...kernelLoss, counters: { kernelRingFull: 4n } });
    assert.equal(id(again), id(kernelLoss));
    assert.notEqual(id(later), id(kernelLoss));
    assert.notEqual(id(more), id(kernelLoss));
    assert.match(id(kernelLoss), /^b\/i\/loss\/0-0\//);
  });

  it('survives a loss record without an agent', () => {
    assert.match(id(LossRecord.fromPartial({ reason: 'seq gap' })), /^-\/-\/loss\/0-0\/[0-9a-f]{16}$/);
  });
});

describe('summary records', () => {
  it('keep their event id as the record id and the sample’s time as the record time', () => {
    const rec: SinkRecord = { kind: 'event', event: sampleSummary() };
    assert.equal(recordId(rec), 'boot-1/inst-1/42');
    assert.equal(recordTimeNs(rec), rec.event.timeUnixNano);
  });

  it('say they are summaries in every format', () => {
    const rec: SinkRecord = { kind: 'event', event: sampleSummary() };
    assert.equal(formatRecord(rec, 'native').kind, 'EVENT_KIND_SUMMARY');
    assert.equal((formatRecord(rec, 'ocsf').metadata as { log_name: string }).log_name, 'doorwatch.summary');
    assert.equal((formatRecord(rec, 'ecs').event as { dataset: string }).dataset, 'doorwatch.summary');
    assert.equal(formatLine(rec, 'native'), JSON.stringify(formatRecord(rec, 'native')));
  });
});

describe('recordTimeNs', () => {
  it('is the event time, or when the collector noticed the loss', () => {
    assert.equal(recordTimeNs({ kind: 'event', event: ev }), T);
    assert.equal(recordTimeNs({ kind: 'loss', loss }), T);
    assert.equal(recordTimeNs({ kind: 'loss', loss: LossRecord.fromPartial({}) }), 0n);
  });
});
