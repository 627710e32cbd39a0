import type { LossRecord } from '../gen/doorwatch/v1/collector.js';
import {
  type AcceptEvent,
  type AcceptSummary,
  type AuditPolicyRef,
  addressFamilyToJSON,
  auditModeToJSON,
  enrichmentStatusToJSON,
  eventKindToJSON,
  policyOriginToJSON,
  sourceToJSON,
  summaryReasonToJSON,
} from '../gen/doorwatch/v1/event.js';

/**
 * The native JSON form of an event: the proto3 canonical JSON mapping
 * (lowerCamelCase names, 64-bit integers as strings, enums by name) with
 * every field present, defaults included (protojson's EmitUnpopulated: an
 * unset message is null), so a SIEM query for `success:false` or `port:0`
 * finds what it should.
 * AcceptEvent.fromJSON() reads it back losslessly (test/unit/native-json.test.ts).
 */

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

/** Enum-typed fields by path; everything else converts by its JS type. */
const ENUMS: Record<string, (v: number) => string> = {
  source: sourceToJSON as (v: number) => string,
  'socket.family': addressFamilyToJSON as (v: number) => string,
  'enrichment.status': enrichmentStatusToJSON as (v: number) => string,
  kind: eventKindToJSON as (v: number) => string,
  'summary.reason': summaryReasonToJSON as (v: number) => string,
  'policy.origin': policyOriginToJSON as (v: number) => string,
  'policy.mode': auditModeToJSON as (v: number) => string,
};

function convert(v: unknown, path: string): Json {
  const e = ENUMS[path];
  if (e && typeof v === 'number') return e(v);
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map((x) => convert(x, path));
  if (v !== null && typeof v === 'object') {
    const out: { [k: string]: Json } = {};
    for (const [k, x] of Object.entries(v)) out[k] = x === undefined ? null : convert(x, path ? `${path}.${k}` : k);
    return out;
  }
  return v as Json;
}

export function eventToJson(ev: AcceptEvent): { [k: string]: Json } {
  return convert(ev, '') as { [k: string]: Json };
}

/**
 * A loss record the same way, readable back with LossRecord.fromJSON.
 * LossRecord has no enums (none of its paths is in ENUMS), so the walk is exact.
 */
export function lossToJson(loss: LossRecord): { [k: string]: Json } {
  return convert(loss, '') as { [k: string]: Json };
}

/*
 * The same JSON as JSON.stringify(eventToJson(ev)), written directly: this is
 * the per-event cost of `trace --output json` and of the jsonl sink, and the
 * generic walk above costs ~6 µs per event where this costs a fraction
 * (docs/benchmarks.md). test/unit/native-json.test.ts holds the two equal.
 */
const q = JSON.stringify as (s: string) => string;
const strings = (a: string[]) => (a.length ? `[${a.map(q).join(',')}]` : '[]');
const map = (m: { [k: string]: string } | undefined) => (m ? JSON.stringify(m) : '{}');
const endpoint = (e: { ip: string; port: number } | undefined) => (e ? `{"ip":${q(e.ip)},"port":${e.port}}` : 'null');

/** Rare (one record per folded key and interval): written plainly. */
const summary = (m: AcceptSummary) =>
  `{"reason":"${summaryReasonToJSON(m.reason)}","count":"${m.count}","failedCount":"${m.failedCount}",` +
  `"firstTimeUnixNano":"${m.firstTimeUnixNano}","lastTimeUnixNano":"${m.lastTimeUnixNano}",` +
  `"intervalStartUnixNano":"${m.intervalStartUnixNano}","intervalEndUnixNano":"${m.intervalEndUnixNano}",` +
  `"localPort":${m.localPort},"peerIp":${q(m.peerIp)},"peersFolded":${m.peersFolded}}`;

/*
 * The policy ref is on most events once policies exist, and a run of events
 * shares one policy (often the very same object): the last one written is
 * remembered by value, so a run costs three comparisons instead of a
 * JSON.stringify and a concatenation per event. By value, not by identity:
 * events decoded off the wire each have their own object.
 */
let lastOrigin = -1;
let lastName = '';
let lastMode = -1;
let lastPolicy = '';
function policy(p: AuditPolicyRef): string {
  if (p.origin !== lastOrigin || p.mode !== lastMode || p.name !== lastName) {
    lastPolicy = `{"origin":"${policyOriginToJSON(p.origin)}","name":${q(p.name)},"mode":"${auditModeToJSON(p.mode)}"}`;
    lastOrigin = p.origin;
    lastName = p.name;
    lastMode = p.mode;
  }
  return lastPolicy;
}

export function eventToJsonLine(ev: AcceptEvent): string {
  const p = ev.process;
  const s = ev.socket;
  const l = ev.listener;
  const u = ev.userAddress;
  const n = ev.namespaces;
  const cg = ev.cgroup;
  const c = ev.container;
  const pod = ev.pod;
  const w = pod?.workload;
  const en = ev.enrichment;
  return (
    `{"eventId":${q(ev.eventId)},"seq":"${ev.seq}","timeUnixNano":"${ev.timeUnixNano}","ktimeNs":"${ev.ktimeNs}",` +
    `"nodeName":${q(ev.nodeName)},"source":"${sourceToJSON(ev.source)}","ret":${ev.ret},"success":${ev.success},` +
    `"error":${q(ev.error)},"durationNs":"${ev.durationNs}","acceptFlags":${ev.acceptFlags},` +
    `"acceptFlagNames":${strings(ev.acceptFlagNames)},"flags":${strings(ev.flags)},` +
    `"process":${p ? `{"pid":${p.pid},"tid":${p.tid},"ppid":${p.ppid},"uid":${p.uid},"gid":${p.gid},"comm":${q(p.comm)}}` : 'null'},` +
    `"socket":${
      s
        ? `{"family":"${addressFamilyToJSON(s.family)}","familyNumber":${s.familyNumber},"type":${q(s.type)},` +
          `"protocol":${s.protocol},"local":${endpoint(s.local)},"peer":${endpoint(s.peer)},"v4Mapped":${s.v4Mapped},` +
          `"unixPath":${q(s.unixPath)},"peerPid":${s.peerPid},"resolved":${s.resolved}}`
        : 'null'
    },` +
    `"listener":${l ? `{"fd":${l.fd},"backlog":${l.backlog},"maxBacklog":${l.maxBacklog},"resolved":${l.resolved}}` : 'null'},` +
    `"userAddress":${
      u
        ? `{"present":${u.present},"addrlen":${u.addrlen},"familyNumber":${u.familyNumber},"ip":${q(u.ip)},` +
          `"port":${u.port},"fault":${u.fault},"mismatch":${u.mismatch}}`
        : 'null'
    },` +
    `"namespaces":${n ? `{"mnt":${n.mnt},"pid":${n.pid},"net":${n.net},"uts":${n.uts}}` : 'null'},` +
    `"cgroup":${cg ? `{"id":"${cg.id}","v1Id":"${cg.v1Id}"}` : 'null'},` +
    `"container":${
      c
        ? `{"id":${q(c.id)},"runtime":${q(c.runtime)},"name":${q(c.name)},"image":${q(c.image)},` +
          `"imageId":${q(c.imageId)},"cgroupPath":${q(c.cgroupPath)}}`
        : 'null'
    },` +
    `"pod":${
      pod
        ? `{"namespace":${q(pod.namespace)},"name":${q(pod.name)},"uid":${q(pod.uid)},"labels":${map(pod.labels)},` +
          `"annotations":${map(pod.annotations)},` +
          `"workload":${w ? `{"kind":${q(w.kind)},"name":${q(w.name)},"inferred":${w.inferred}}` : 'null'},` +
          `"serviceAccount":${q(pod.serviceAccount)},"nodeName":${q(pod.nodeName)},"ip":${q(pod.ip)},` +
          `"hostNetwork":${pod.hostNetwork},"qosClass":${q(pod.qosClass)},"namespaceLabels":${map(pod.namespaceLabels)},` +
          `"deleted":${pod.deleted}}`
        : 'null'
    },` +
    `"enrichment":${
      en
        ? `{"status":"${enrichmentStatusToJSON(en.status)}","missing":${strings(en.missing)},"reason":${q(en.reason)},` +
          `"cgroupFromProc":${en.cgroupFromProc},"waitedMs":${en.waitedMs}}`
        : 'null'
    },` +
    `"kind":"${eventKindToJSON(ev.kind)}","summary":${ev.summary ? summary(ev.summary) : 'null'},` +
    `"policy":${ev.policy ? policy(ev.policy) : 'null'}}`
  );
}
