import type { LossRecord } from '../gen/doorwatch/v1/collector.js';
import { type AcceptEvent, type Container, EventKind, type Pod, PolicyOrigin, type Process } from '../gen/doorwatch/v1/event.js';
import { bytes, type JsonWriter } from './native-json.js';
import {
  actionName,
  bytesPerObject,
  communityId,
  describeEvent,
  describeLoss,
  doorwatchDetail,
  doorwatchDetailRest,
  eventSeverity,
  failureText,
  inetOf,
  isListenerRecord,
  isoNanos,
  isPlainAccept,
  kindName,
  lossDetail,
  lossRecordId,
  NONE,
  outcomeOf,
  pairs,
  plainIp,
  policyOriginName,
  prune,
  prunedBytes,
  recordDataset,
  SEVERITY,
  safeNumber,
  str,
  summaryFailureText,
  summaryOf,
  summaryReasonName,
  summaryWindow,
  unixOf,
  writeDetailHead,
  writeIpPort,
  writeIsoNanos,
  writeMembers,
  writePruned,
  writeSafeNumber,
} from './ocsf.js';

/**
 * Elastic Common Schema 8.11 forms of Doorwatch records. Pure functions: no
 * I/O, no clock. docs/formats.md has the mapping tables.
 *
 * Kubernetes metadata is written twice, on purpose: once in ECS's own
 * `orchestrator.*`, and once as `kubernetes.*` the way Elastic's Kubernetes
 * integration (add_kubernetes_metadata) writes it — label keys de-dotted
 * ("app.kubernetes.io/name" -> "app_kubernetes_io/name"), workloads as
 * `kubernetes.<kind>.name` — so existing Kibana dashboards and detection rules
 * find Doorwatch events. The rest is under the custom `doorwatch.*` object.
 * Absent values are omitted (never null or "").
 *
 * A summary record is an event of its own dataset (doorwatch.summary) with
 * event.start / event.end / event.duration spanning the accepts it folds and
 * the counts under doorwatch.summary; the audit policy is rule.*.
 */

export const ECS_VERSION = '8.11.0';

type Obj = Record<string, unknown>;

/** Workload kinds Elastic's integration names `kubernetes.<kind>.name`. */
const K8S_WORKLOADS = new Set(['deployment', 'statefulset', 'daemonset', 'job', 'cronjob', 'replicaset']);

/** Elastic's default label de-dotting: dots in keys become underscores so keys do not become object paths. */
function dedot(m: Record<string, string> | undefined): Obj {
  return Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k.replace(/\./g, '_'), v]));
}

/** "sha256:…" from an image id ("docker.io/library/nginx@sha256:…" or "sha256:…"). */
function imageDigest(imageId: string): string | undefined {
  const at = imageId.lastIndexOf('@');
  const d = at >= 0 ? imageId.slice(at + 1) : imageId;
  return /^[a-z0-9]+:[0-9a-f]+$/i.test(d) ? d : undefined;
}

function orchestrator(p: Pod | undefined): Obj | undefined {
  if (!p) return undefined;
  return {
    type: 'kubernetes',
    namespace: str(p.namespace),
    resource: {
      type: 'pod',
      name: str(p.name),
      id: str(p.uid),
      ip: p.ip ? [p.ip] : undefined,
      label: pairs(p.labels, ':'),
      annotation: pairs(p.annotations, ':'),
      parent: p.workload?.kind ? { type: p.workload.kind } : undefined,
    },
  };
}

function kubernetes(ev: AcceptEvent): Obj | undefined {
  const p = ev.pod;
  if (!p) return undefined;
  const kind = p.workload?.kind.toLowerCase() ?? '';
  return {
    namespace: str(p.namespace),
    pod: { name: str(p.name), uid: str(p.uid), ip: str(p.ip) },
    node: { name: str(p.nodeName) },
    container: { name: str(ev.container?.name) },
    labels: dedot(p.labels),
    annotations: dedot(p.annotations),
    namespace_labels: dedot(p.namespaceLabels),
    ...(K8S_WORKLOADS.has(kind) && p.workload?.name ? { [kind]: { name: p.workload.name } } : {}),
  };
}

/** An accept event or a summary record as an ECS 8.11 document (docs/formats.md). */
export function eventToEcs(ev: AcceptEvent): Obj {
  return prune(ecsTree(ev));
}

/**
 * JSON.stringify(eventToEcs(ev)) written to `w` in one walk (writePruned): no pruned copy of the tree
 * and no string between (test/unit/formats-ecs.test.ts holds the two equal).
 */
export function writeEcsLine(w: JsonWriter, ev: AcceptEvent): void {
  // Everything but `doorwatch` (the last key), then `doorwatch` from its head's writer and the rest's
  // members: the same bytes as the whole tree, without building the detail by spreads.
  // The tree always keeps ecs.version: never empty, so its "}" can be replaced by more keys.
  let tail: Obj;
  if (isPlainAccept(ev)) tail = writeAcceptHead(w, ev);
  else {
    const parts = ecsParts(ev);
    writePruned(w, parts.head);
    tail = parts.tail;
  }
  w.pos--;
  // The per-container and per-pod blocks, as bytes once per shared object (the collector's decoder shares them).
  cachedMember(w, CONTAINER, containerBytes(ev.container));
  cachedMember(w, ORCHESTRATOR, orchestratorBytes(ev.pod));
  cachedMember(w, KUBERNETES, kubernetesBytes(ev));
  writeMembers(w, tail);
  w.raw(DOORWATCH);
  writeDetailHead(w, ev);
  w.pos--;
  writeMembers(w, doorwatchRest(ev));
  w.byte(0x7d);
  w.byte(0x7d);
}
const DOORWATCH = bytes(',"doorwatch":');
const CONTAINER = bytes(',"container":');
const ORCHESTRATOR = bytes(',"orchestrator":');
const KUBERNETES = bytes(',"kubernetes":');

function cachedMember(w: JsonWriter, key: Uint8Array, bytes: Uint8Array): void {
  if (!bytes.length) return;
  w.raw(key);
  w.raw(bytes);
}

// Per object: containers are frozen by the decoder, pods shared per distinct pod and never mutated (collector/wire.ts).
const containerBlock = bytesPerObject<Container>(ecsContainer, true);
const containerBytes = (c: Container | undefined): Uint8Array => (c ? containerBlock(c) : NONE);
const orchestratorBlock = bytesPerObject<Pod>(orchestrator, false);
const orchestratorBytes = (p: Pod | undefined): Uint8Array => (p ? orchestratorBlock(p) : NONE);
/** kubernetes.* also names the container: kept per pod with the container name it was made for. */
const kubernetesCache = new WeakMap<Pod, { container: string | undefined; bytes: Uint8Array }>();
function kubernetesBytes(ev: AcceptEvent): Uint8Array {
  const p = ev.pod;
  if (!p) return NONE;
  const name = ev.container?.name;
  const hit = kubernetesCache.get(p);
  if (hit && hit.container === name) return hit.bytes;
  const bytes = prunedBytes(kubernetes(ev));
  kubernetesCache.set(p, { container: name, bytes });
  return bytes;
}

const H = {
  timestamp: bytes('{"@timestamp":'),
  message: bytes(`,"ecs":{"version":"${ECS_VERSION}"},"message":`),
  eventStart: bytes(',"event":{"kind":"event","category":["network"],"type":["connection","start"],"action":"'),
  eventFail: bytes(',"event":{"kind":"event","category":["network"],"type":["connection"],"action":"'),
  success: bytes('","outcome":"success","id":'),
  failure: bytes('","outcome":"failure","id":'),
  dataset: bytes(',"dataset":"doorwatch.'),
  sequence: bytes('","module":"doorwatch","sequence":'),
  severity: bytes(',"severity":'),
  source: bytes(',"source":{'),
  destination: bytes(',"destination":{'),
  address: bytes('"address":'),
  network: bytes(',"network":{'),
  transport: bytes('"transport":'),
  ianaNumber: bytes('"iana_number":"'),
  ipv4: bytes('"type":"ipv4","direction":"ingress"'),
  ipv6: bytes('"type":"ipv6","direction":"ingress"'),
  communityId: bytes(',"community_id":'),
  process: bytes(',"process":'),
  host: bytes(',"host":{"name":'),
  agent: bytes(',"agent":{"type":"doorwatch"}}'),
};

/** `"address":…` (when known), `"ip":…` (when known), then `"port":n` (always). */
function writeAddressIpPort(w: JsonWriter, address: string, ip: string, port: number): void {
  if (address) {
    w.k(H.address);
    w.str(address);
    w.byte(0x2c);
  }
  writeIpPort(w, ip, port);
}

/** `process` as bytes once per shared (frozen) process object. */
const processBytes = bytesPerObject(ecsProcess, true);

/**
 * writePruned(w, ecsParts(ev).head) for a plain accept, field by field (the same members, the same order:
 * test/unit/formats-ecs.test.ts holds the line equal to the object form); returns the tail's object.
 */
function writeAcceptHead(w: JsonWriter, ev: AcceptEvent): Obj {
  const ok = ev.success;
  const inet = inetOf(ev);
  const unix = inet ? undefined : unixOf(ev);
  const s = ev.socket;
  const proc = ev.process;
  const node = ev.nodeName;
  w.room(0);
  w.raw(H.timestamp);
  writeIsoNanos(w, ev.timeUnixNano);
  w.raw(H.message);
  w.str(describeEvent(ev));
  w.raw(ok ? H.eventStart : H.eventFail);
  w.ascii(actionName(ev.source));
  w.raw(ok ? H.success : H.failure);
  w.str(ev.eventId);
  w.room(0);
  w.k(H.dataset);
  w.ascii(kindName(ev.kind));
  w.raw(H.sequence);
  writeSafeNumber(w, ev.seq);
  w.k(H.severity);
  w.num(eventSeverity(ev));
  w.byte(0x7d);
  if (inet) {
    w.k(H.source);
    writeAddressIpPort(w, s?.peer?.ip ?? '', inet.peerIp, inet.peerPort);
    w.byte(0x7d);
    w.room(0);
    w.k(H.destination);
    writeAddressIpPort(w, s?.local?.ip ?? '', inet.localIp, inet.localPort);
    w.byte(0x7d);
    w.room(0);
    w.k(H.network);
    if (inet.transport) {
      w.k(H.transport);
      w.str(inet.transport);
      w.byte(0x2c);
    }
    if (inet.ianaNumber !== undefined) {
      w.k(H.ianaNumber);
      w.num(inet.ianaNumber);
      w.byte(0x22);
      w.byte(0x2c);
    }
    w.raw(inet.ipVersion === 4 ? H.ipv4 : H.ipv6);
    const cid = inet.ianaNumber
      ? communityId(inet.ianaNumber, inet.peerIp, inet.peerPort, inet.localIp, inet.localPort)
      : undefined;
    if (cid) {
      w.k(H.communityId);
      w.str(cid);
    }
    w.byte(0x7d);
  } else if (unix?.path) {
    // ECS: .address holds the raw address, "an IP, a domain or a unix socket".
    w.k(H.destination);
    w.k(H.address);
    w.str(unix.path);
    w.byte(0x7d);
  }
  if (proc) {
    w.k(H.process);
    w.raw(processBytes(proc));
  }
  w.room(0);
  if (node) {
    w.k(H.host);
    w.str(node);
    w.byte(0x7d);
  }
  w.raw(H.agent);
  const uid = proc ? String(proc.uid) : undefined;
  const related = inet ? [inet.peerIp, inet.localIp].filter((x) => !!x) : [];
  return ecsTail(ev, {
    outcome: ok ? 'success' : 'failure',
    summary: undefined,
    finding: undefined,
    node: str(node),
    uid,
    related,
  });
}

/** `doorwatch` after the detail's head. */
function doorwatchRest(ev: AcceptEvent): Obj {
  // Assigned, not spread (as `{ ...a, ...b }`): the same key order — container keeps its place, pod comes last.
  const r = doorwatchDetailRest(ev);
  const parts = ecsDetailParts(ev);
  r.container = parts.container;
  r.pod = parts.pod;
  return r;
}

/** ECS's own container and pod blocks of `doorwatch`: the container replaces the detail's (cgroup_path only) in its place. */
function ecsDetailParts(ev: AcceptEvent): Obj {
  const c = ev.container;
  const p = ev.pod;
  return {
    container: c && { cgroup_path: str(c.cgroupPath), image_id: str(c.imageId) },
    pod: p && {
      service_account: str(p.serviceAccount),
      host_network: p.hostNetwork,
      qos_class: str(p.qosClass),
      deleted: p.deleted,
      workload: p.workload?.kind
        ? { kind: p.workload.kind, name: str(p.workload.name), inferred: p.workload.inferred }
        : undefined,
    },
  };
}

/** The ECS document of an event before pruning (empty parts still in it). */
function ecsTree(ev: AcceptEvent): Obj {
  const { head, tail } = ecsParts(ev);
  return {
    ...head,
    container: ecsContainer(ev.container),
    orchestrator: orchestrator(ev.pod),
    kubernetes: kubernetes(ev),
    ...tail,
    doorwatch: { ...doorwatchDetail(ev), ...ecsDetailParts(ev) },
  };
}

function ecsContainer(c: Container | undefined): Obj | undefined {
  if (!c?.id) return undefined;
  const digest = c.imageId ? imageDigest(c.imageId) : undefined;
  return {
    id: c.id,
    name: str(c.name),
    runtime: str(c.runtime),
    image: { name: str(c.image), hash: { all: digest ? [digest] : undefined } },
  };
}

/**
 * The document around its per-container and per-pod blocks: `head` ('@timestamp'
 * through agent) and `tail` (rule, error, related), computed together.
 */
function ecsParts(ev: AcceptEvent): { head: Obj; tail: Obj } {
  const inet = inetOf(ev);
  const unix = unixOf(ev);
  const s = ev.socket;
  const proc = ev.process;
  const summary = summaryOf(ev);
  const outcome = outcomeOf(ev);
  const window = summary && summaryWindow(summary);
  const node = str(ev.nodeName);
  const uid = proc ? String(proc.uid) : undefined;
  // A summary's source is its key: the peer address, without a port (one of many), none when peers were folded.
  const peerIp = summary ? str(plainIp(summary.peerIp)) : inet?.peerIp;
  const related = [peerIp, inet?.localIp].filter((x): x is string => !!x);
  // Listener records (src/listeners): a listening endpoint, no peer and no connection.
  const listener = isListenerRecord(ev);
  // A finding (src/findings): an alert about a listener, its rule in rule.*.
  const finding = ev.findingInfo;

  const head = {
    '@timestamp': isoNanos(ev.timeUnixNano),
    ecs: { version: ECS_VERSION },
    message: describeEvent(ev),
    event: {
      kind: finding ? 'alert' : 'event',
      category: ['network'],
      // ECS lists no "error" type for the network category: a failure is a connection with outcome failure.
      type: finding
        ? ['info']
        : listener
          ? ev.kind === EventKind.EVENT_KIND_LISTEN
            ? ['start']
            : ev.kind === EventKind.EVENT_KIND_LISTENER_CLOSED
              ? ['end']
              : ['info']
          : outcome === 'failure'
            ? ['connection']
            : ['connection', 'start'],
      action: finding ? finding.ruleId : actionName(ev.source),
      // A summary folding both successes and failures has no single outcome: left out (doorwatch.summary has the counts).
      // A finding is no attempt that succeeds or fails: none either.
      outcome: outcome === 'mixed' || finding ? undefined : outcome,
      id: ev.eventId,
      dataset: recordDataset(ev),
      module: 'doorwatch',
      sequence: safeNumber(ev.seq),
      severity: eventSeverity(ev),
      start: window && isoNanos(window.first),
      end: window && isoNanos(window.last),
      duration: window && safeNumber(window.last - window.first),
      reason: finding ? finding.reason : summary && summaryReasonName(summary.reason),
    },
    source:
      listener || (finding && !inet?.peerIp)
        ? undefined
        : summary
          ? peerIp && { address: str(summary.peerIp), ip: peerIp }
          : inet && { address: str(s?.peer?.ip), ip: str(inet.peerIp), port: inet.peerPort },
    destination: inet
      ? { address: str(s?.local?.ip), ip: str(inet.localIp), port: inet.localPort }
      : // ECS: .address holds the raw address, "an IP, a domain or a unix socket".
        unix && { address: str(unix.path) },
    network: inet && {
      transport: inet.transport,
      iana_number: inet.ianaNumber === undefined ? undefined : String(inet.ianaNumber),
      type: `ipv${inet.ipVersion}`,
      direction: listener || finding ? undefined : 'ingress',
      // Names one connection: not for a summary.
      community_id:
        inet.ianaNumber && !summary && !listener && !finding
          ? communityId(inet.ianaNumber, inet.peerIp, inet.peerPort, inet.localIp, inet.localPort)
          : undefined,
    },
    process: proc && ecsProcess(proc),
    host: { name: node },
    agent: { type: 'doorwatch' },
  };
  const tail = ecsTail(ev, { outcome, summary, finding, node, uid, related });
  return { head, tail };
}

function ecsProcess(proc: Process): Obj {
  const uid = String(proc.uid);
  return {
    pid: proc.pid,
    thread: { id: proc.tid },
    name: str(proc.comm),
    parent: proc.ppid > 0 ? { pid: proc.ppid } : undefined,
    // The kernel gives the real ids; Elastic rules and dashboards query process.user, so both are filled.
    // process.group is not an ECS 8.11 field (it came in 8.16): the gid is process.real_group.id only.
    user: { id: uid },
    real_user: { id: uid },
    real_group: { id: String(proc.gid) },
  };
}

interface TailContext {
  outcome: ReturnType<typeof outcomeOf>;
  summary: ReturnType<typeof summaryOf>;
  finding: AcceptEvent['findingInfo'];
  node: string | undefined;
  uid: string | undefined;
  /** The peer and local addresses (plain form), for related.ip. */
  related: string[];
}

/** rule, error and related: what follows the per-pod blocks. */
function ecsTail(ev: AcceptEvent, x: TailContext): Obj {
  const { outcome, summary, finding, node, uid, related } = x;
  const pol = ev.policy;
  return {
    // A finding's rule is its detection rule; the policy that let it through stays in doorwatch.policy.
    // Otherwise the audit policy that governed the record: ECS's rule.* ("the rule ... that generated the event").
    rule: finding
      ? {
          id: finding.ruleId,
          name: finding.ruleId,
          uuid: finding.uid,
          description: finding.title,
          category: 'listener',
          ruleset: 'doorwatch',
        }
      : pol && {
          name: str(pol.name),
          ruleset: pol.origin === PolicyOrigin.POLICY_ORIGIN_UNSPECIFIED ? undefined : policyOriginName(pol.origin),
        },
    error:
      outcome === 'success'
        ? undefined
        : {
            code: ev.success ? undefined : str(ev.error),
            message: summary ? summaryFailureText(ev, summary) : failureText(ev),
          },
    related: { ip: [...new Set(related)], hosts: node ? [node] : undefined, user: uid ? [uid] : undefined },
  };
}

/** A loss record as an ECS 8.11 document (docs/formats.md). */
export function lossToEcs(loss: LossRecord): Obj {
  const a = loss.agent;
  const node = str(a?.nodeName);
  return prune({
    '@timestamp': isoNanos(loss.timeUnixNano),
    ecs: { version: ECS_VERSION },
    message: describeLoss(loss),
    event: {
      // No ECS category fits a gap in an audit trail; ECS says to leave it empty then.
      kind: 'event',
      action: 'events-lost',
      outcome: 'failure',
      id: lossRecordId(loss),
      dataset: 'doorwatch.loss',
      module: 'doorwatch',
      reason: str(loss.reason),
      severity: SEVERITY.high,
    },
    host: { name: node },
    agent: { type: 'doorwatch', id: str(a?.instanceId), version: str(a?.version) },
    doorwatch: {
      agent: a && { boot_id: str(a.bootId), instance_id: str(a.instanceId) },
      loss: lossDetail(loss),
    },
  });
}
