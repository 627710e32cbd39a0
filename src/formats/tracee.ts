import type { LossRecord } from '../gen/doorwatch/v1/collector.js';
import { type AcceptEvent, type Container, EventKind, type Pod, Source } from '../gen/doorwatch/v1/event.js';
import { JsonWriter } from './native-json.js';
import {
  auditModeName,
  listenerOriginName,
  lossSummary,
  plainIp,
  policyOriginName,
  summaryOf,
  summaryReasonName,
} from './ocsf.js';

/**
 * Doorwatch records as Tracee v0.24.x prints its events with `--output json`:
 * `json.Marshal` of `trace.Event` (aquasecurity/tracee `types/trace/trace.go`
 * at v0.24.1, b40e7f3f89ade93b7f480b9007ab8aafeb978472), one object per line,
 * keys in the struct's field order, so tooling written for Tracee's `accept`
 * and `accept4` events reads Doorwatch's. docs/formats.md says where each
 * field comes from, what Doorwatch cannot know (written as Go's zero value,
 * as Tracee writes an unset field) and what summaries and loss records become.
 *
 * Written straight into a JsonWriter (the `trace --output tracee` hot path);
 * strings escaped as Go's encoding/json escapes them (<, >, & and U+2028/9 too).
 */

/** Tracee's event ids are its build architecture's syscall numbers (pkg/events/core_{amd64,arm64}.go). */
const SYSCALL_IDS: Record<string, { accept: number; accept4: number }> = {
  x64: { accept: 43, accept4: 288 },
  arm64: { accept: 202, accept4: 242 },
};

const IDS = SYSCALL_IDS[process.arch] ?? SYSCALL_IDS.x64!;

/**
 * Ids of the two record types Tracee has no event for, in Tracee's range for
 * user-space derived events of extended builds (3000-3999, pkg/events/core.go
 * StartUserSpaceExtendedID): never taken for a syscall event.
 */
export const TRACEE_SUMMARY_EVENT = { id: 3900, name: 'doorwatch_accept_summary' } as const;
export const TRACEE_LOSS_EVENT = { id: 3901, name: 'doorwatch_events_lost' } as const;
/**
 * Listener records (src/listeners), in the same range. Tracee's own `listen`
 * event carries only sockfd and backlog: the address, the inventory's point,
 * would be lost, so each kind is an event of its own with everything in args.
 */
export const TRACEE_LISTENER_EVENTS: Readonly<Record<number, { id: number; name: string }>> = {
  [EventKind.EVENT_KIND_LISTEN]: { id: 3902, name: 'doorwatch_listen' },
  [EventKind.EVENT_KIND_LISTENER]: { id: 3903, name: 'doorwatch_listener' },
  [EventKind.EVENT_KIND_LISTENER_CLOSED]: { id: 3904, name: 'doorwatch_listener_closed' },
};

/**
 * Findings (src/findings), in the same range: one event for every rule, the
 * rule in `rule_id` (Tracee's own detections are signature events with ids of
 * their own builds; none fits a Doorwatch rule).
 */
export const TRACEE_FINDING_EVENT = { id: 3905, name: 'doorwatch_finding' } as const;

/** The init pid namespace's inode (PROC_PID_INIT_INO): its tasks' pids are the host's. */
const INIT_PID_NS = 0xeffffffc;

/** Tracee's sa_family names (common/parsers/data_parsers.go socketDomainValues, AF_UNSPEC..AF_MCTP). */
const AF_NAMES = [
  'AF_UNSPEC',
  'AF_UNIX',
  'AF_INET',
  'AF_AX25',
  'AF_IPX',
  'AF_APPLETALK',
  'AF_NETROM',
  'AF_BRIDGE',
  'AF_ATMPVC',
  'AF_X25',
  'AF_INET6',
  'AF_ROSE',
  'AF_DECnet',
  'AF_NETBEUI',
  'AF_SECURITY',
  'AF_KEY',
  'AF_NETLINK',
  'AF_PACKET',
  'AF_ASH',
  'AF_ECONET',
  'AF_ATMSVC',
  'AF_RDS',
  'AF_SNA',
  'AF_IRDA',
  'AF_PPPOX',
  'AF_WANPIPE',
  'AF_LLC',
  'AF_IB',
  'AF_MPLS',
  'AF_CAN',
  'AF_TIPC',
  'AF_BLUETOOTH',
  'AF_IUCV',
  'AF_RXRPC',
  'AF_ISDN',
  'AF_PHONET',
  'AF_IEEE802154',
  'AF_CAIF',
  'AF_ALG',
  'AF_NFC',
  'AF_VSOCK',
  'AF_KCM',
  'AF_QIPCRTR',
  'AF_SMC',
  'AF_XDP',
  'AF_MCTP',
];

/** ParseSocketDomainArgument, with readSockaddrFromBuff's fallback: anything past AF_MCTP is AF_UNSPEC. */
export const traceeFamilyName = (n: number): string => AF_NAMES[n] ?? 'AF_UNSPEC';

const utf8 = new TextEncoder();
const b = (s: string) => utf8.encode(s);

/** The constant pieces of a line, in trace.Event's field order. */
const K = {
  timestamp: b('{"timestamp":'),
  threadStartTime: b(',"threadStartTime":0,"processorId":0,"processId":'),
  cgroupId: b(',"cgroupId":'),
  threadId: b(',"threadId":'),
  parentProcessId: b(',"parentProcessId":'),
  hostProcessId: b(',"hostProcessId":'),
  hostThreadId: b(',"hostThreadId":'),
  hostParentProcessId: b(',"hostParentProcessId":'),
  userId: b(',"userId":'),
  mountNamespace: b(',"mountNamespace":'),
  pidNamespace: b(',"pidNamespace":'),
  processName: b(',"processName":'),
  hostName: b(',"executable":{"path":""},"hostName":'),
  containerId: b(',"containerId":'),
  container: b(',"container":{'),
  id: b('"id":'),
  name: b('"name":'),
  image: b('"image":'),
  imageDigest: b('"imageDigest":'),
  kubernetes: b('},"kubernetes":{'),
  podName: b('"podName":'),
  podNamespace: b('"podNamespace":'),
  podUID: b('"podUID":'),
  eventId: b('},"eventId":"'),
  eventName: b('","eventName":'),
  matchedPolicies: b(',"matchedPolicies":['),
  argsNum: b('],"argsNum":'),
  returnValue: b(',"returnValue":'),
  syscall: b(',"syscall":'),
  containerStarted: b(',"stackAddresses":null,"contextFlags":{"containerStarted":'),
  entityIds: b(',"isCompat":false},"threadEntityId":0,"processEntityId":0,"parentEntityId":0,"args":['),
  end: b(']}'),
  argName: b('{"name":"'),
  argType: b('","type":"'),
  argValue: b('","value":'),
  sockaddrFamily: b('{"sa_family":"'),
  sinAddr: b('","sin_addr":'),
  sinPort: b(',"sin_port":"'),
  sin6Addr: b('","sin6_addr":'),
  sin6Rest: b(',"sin6_flowinfo":"0","sin6_port":"'),
  sin6ScopeId: b('","sin6_scopeid":"0"}'),
  sunPath: b('","sun_path":""}'),
  familyEnd: b('"}'),
  quoteEnd: b('"}'),
};

/** Go's encoding/json string: JSON.stringify's escapes, plus HTML-safe <, >, & and U+2028/U+2029. */
export function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function str(w: JsonWriter, s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x3c || c === 0x3e || c === 0x26 || c > 0x7e) {
      w.text(goString(s));
      return;
    }
  }
  w.str(s);
}

/** One `{"name":…,"type":…,"value":` opening (names and types are ASCII constants). */
function argHead(w: JsonWriter, name: string, type: string): void {
  w.k(K.argName);
  w.ascii(name);
  w.k(K.argType);
  w.ascii(type);
  w.k(K.argValue);
}

/**
 * `addr` as Tracee decodes the caller's buffer at syscall exit
 * (pkg/bufferdecoder/eventsreader.go readSockaddrFromBuff): a map of strings,
 * keys sorted as Go sorts a map's. No buffer (NULL addr) reads as family 0,
 * AF_UNSPEC; so does a buffer Doorwatch could not read or a failed accept's
 * (whose contents the kernel did not write).
 */
function writeAddr(w: JsonWriter, ev: AcceptEvent): void {
  const u = ev.userAddress;
  const fam = u?.present && !u.fault && ev.success ? u.familyNumber : 0;
  w.k(K.sockaddrFamily);
  w.ascii(traceeFamilyName(fam));
  if (fam === 2) {
    w.k(K.sinAddr);
    str(w, u!.ip);
    w.k(K.sinPort);
    w.num(u!.port);
    w.k(K.quoteEnd);
  } else if (fam === 10) {
    // Go's net.IP.String(): an IPv4-mapped address in dotted form.
    w.k(K.sin6Addr);
    str(w, plainIp(u!.ip));
    w.k(K.sin6Rest);
    w.num(u!.port);
    w.k(K.sin6ScopeId);
  } else if (fam === 1) {
    w.k(K.sunPath);
  } else {
    w.k(K.familyEnd);
  }
}

/** `"k":"v"` pairs of the non-empty values (Go's omitempty), comma-separated. */
function omitempty(pairs: [Uint8Array, string | undefined][], w: JsonWriter): void {
  let sep = false;
  for (const [key, v] of pairs) {
    if (!v) continue;
    if (sep) w.byte(0x2c);
    w.k(key);
    str(w, v);
    sep = true;
  }
}

const workloadScratch = new JsonWriter(16 * 1024);
const NO_WORKLOAD = Symbol('none');
const workloadText = new WeakMap<Container | typeof NO_WORKLOAD, { pod: Pod | undefined; bytes: Uint8Array }>();

/**
 * `,"containerId":…,"container":{…},"kubernetes":{…` — constant per container
 * and pod, so encoded once per Container object (the collector's decoder and
 * the enricher share one per container) and pod.
 */
function workloadBytes(c: Container | undefined, pod: Pod | undefined): Uint8Array {
  const key = c ?? NO_WORKLOAD;
  const hit = workloadText.get(key);
  if (hit && hit.pod === pod) return hit.bytes;
  const w = workloadScratch;
  w.reset();
  w.room(1024);
  const cid = c?.id ?? '';
  w.k(K.containerId);
  str(w, cid);
  // trace.Container and trace.Kubernetes: struct values (always written), every field omitempty.
  w.k(K.container);
  if (cid) {
    omitempty(
      [
        [K.id, cid],
        [K.name, c?.name],
        [K.image, c?.image],
        [K.imageDigest, c?.imageId],
      ],
      w,
    );
  }
  w.k(K.kubernetes);
  omitempty(
    [
      [K.podName, pod?.name],
      [K.podNamespace, pod?.namespace],
      [K.podUID, pod?.uid],
    ],
    w,
  );
  const bytes = w.since(0);
  workloadText.set(key, { pod, bytes });
  return bytes;
}

/** The event context (trace.Event up to `args`) shared by accepts and summaries. */
function writeContext(
  w: JsonWriter,
  ev: AcceptEvent,
  eventId: number,
  eventName: string,
  argsNum: number,
  syscall: string,
): void {
  const p = ev.process;
  const ns = ev.namespaces;
  const c = ev.container;
  const pod = ev.pod;
  // The syscall's entry: Tracee stamps a syscall event with its entry time.
  w.k(K.timestamp);
  w.big(ev.durationNs > 0n && ev.durationNs < ev.timeUnixNano ? ev.timeUnixNano - ev.durationNs : ev.timeUnixNano);
  // Pids as the task's pid namespace sees them: the host's in the init namespace, else unknown (0).
  const hostNs = ns?.pid === INIT_PID_NS;
  w.k(K.threadStartTime);
  w.num(hostNs && p ? p.pid : 0);
  w.k(K.cgroupId);
  w.big(ev.cgroup?.id ?? 0n);
  w.k(K.threadId);
  w.num(hostNs && p ? p.tid : 0);
  w.k(K.parentProcessId);
  w.num(hostNs && p ? p.ppid : 0);
  w.k(K.hostProcessId);
  w.num(p?.pid ?? 0);
  w.k(K.hostThreadId);
  w.num(p?.tid ?? 0);
  w.k(K.hostParentProcessId);
  w.num(p?.ppid ?? 0);
  w.k(K.userId);
  w.num(p?.uid ?? 0);
  w.k(K.mountNamespace);
  w.num(ns?.mnt ?? 0);
  w.k(K.pidNamespace);
  w.num(ns?.pid ?? 0);
  w.k(K.processName);
  str(w, p?.comm ?? '');
  // The task's UTS nodename: a pod's hostname is its name (unless spec.hostname says otherwise, which
  // Doorwatch does not read); a host-network pod and a host process share the node's.
  w.k(K.hostName);
  str(w, pod?.name && !pod.hostNetwork ? pod.name : ev.nodeName);
  const cid = c?.id ?? '';
  w.raw(workloadBytes(c, pod));
  w.k(K.eventId);
  w.num(eventId);
  w.k(K.eventName);
  str(w, eventName);
  // Tracee always fills matchedPolicies; a run from CLI flags only is one policy named "".
  w.k(K.matchedPolicies);
  str(w, ev.policy?.name ?? '');
  w.k(K.argsNum);
  w.num(argsNum);
  w.k(K.returnValue);
  w.num(ev.ret);
  w.k(K.syscall);
  str(w, syscall);
  w.k(K.containerStarted);
  w.bool(cid !== '');
  w.k(K.entityIds);
}

const CALLS = {
  accept: { name: 'accept', syscall: 'accept' },
  accept4: { name: 'accept4', syscall: 'accept4' },
  ioUring: { name: 'accept4', syscall: 'io_uring_enter' },
} as const;

/** The call Tracee would name, and the syscall it ran in (io_uring: submitted through io_uring_enter). */
function callOf(ev: AcceptEvent): { name: 'accept' | 'accept4'; syscall: string } {
  if (ev.source === Source.SOURCE_ACCEPT) return CALLS.accept;
  if (ev.source === Source.SOURCE_IO_URING) return CALLS.ioUring;
  return CALLS.accept4;
}

/** The accept arguments' `{"name":…,"type":…,"value":` openings, pre-encoded (names and types as pkg/events/core.go has them). */
const ARG = {
  sockfd: b('{"name":"sockfd","type":"int32","value":'),
  addr: b('},{"name":"addr","type":"SockAddr","value":'),
  addrlen: b('},{"name":"addrlen","type":"trace.Pointer","value":0}'),
  flags: b(',{"name":"flags","type":"int32","value":'),
};

/** sockfd, addr, addrlen (and flags for accept4) as pkg/events/core.go defines them for the event. */
function writeAcceptArgs(w: JsonWriter, ev: AcceptEvent, call: 'accept' | 'accept4'): void {
  w.k(ARG.sockfd);
  w.num(ev.listener?.fd ?? -1);
  w.k(ARG.addr);
  writeAddr(w, ev);
  // addrlen is a user-space pointer: Doorwatch keeps whether one was passed, not its value; 0 is NULL.
  w.k(ARG.addrlen);
  if (call === 'accept4') {
    w.k(ARG.flags);
    w.num(ev.acceptFlags | 0);
    w.byte(0x7d);
  }
}

type Arg = [name: string, type: string, value: string | number | bigint | boolean];

function writeArgs(w: JsonWriter, args: readonly Arg[]): void {
  for (let i = 0; i < args.length; i++) {
    const [name, type, v] = args[i]!;
    if (i) w.byte(0x2c);
    argHead(w, name, type);
    if (typeof v === 'string') str(w, v);
    else if (typeof v === 'bigint') w.big(v);
    else if (typeof v === 'boolean') w.bool(v);
    else w.num(v);
    w.byte(0x7d);
  }
}

function summaryArgs(ev: AcceptEvent): Arg[] {
  const s = ev.summary!;
  const pol = ev.policy;
  return [
    ['count', 'uint64', s.count],
    ['failed_count', 'uint64', s.failedCount],
    ['reason', 'string', summaryReasonName(s.reason)],
    ['first_time', 'uint64', s.firstTimeUnixNano],
    ['last_time', 'uint64', s.lastTimeUnixNano],
    ['interval_start', 'uint64', s.intervalStartUnixNano],
    ['interval_end', 'uint64', s.intervalEndUnixNano],
    ['local_port', 'uint16', s.localPort],
    ['peer_ip', 'string', plainIp(s.peerIp)],
    ['peers_folded', 'bool', s.peersFolded],
    ['sample_call', 'string', callOf(ev).name],
    ['policy', 'string', pol?.name ?? ''],
    ['policy_origin', 'string', pol ? policyOriginName(pol.origin) : ''],
    ['policy_mode', 'string', pol ? auditModeName(pol.mode) : ''],
  ];
}

function listenerArgs(ev: AcceptEvent): Arg[] {
  const s = ev.socket;
  const l = ev.listener;
  const i = ev.listenerInfo;
  return [
    ['sockfd', 'int32', l?.fd ?? -1],
    ['family', 'string', AF_NAMES[s?.familyNumber ?? 0] ?? String(s?.familyNumber)],
    ['type', 'string', s?.type ?? ''],
    ['local_ip', 'string', plainIp(s?.local?.ip ?? '')],
    ['local_port', 'uint16', s?.local?.port ?? 0],
    ['unix_path', 'string', s?.unixPath ?? ''],
    ['backlog', 'int32', i?.requestedBacklog ?? 0],
    ['max_backlog', 'uint32', l?.maxBacklog ?? 0],
    ['queued', 'uint32', l?.backlog ?? 0],
    ['inode', 'uint64', i?.inode ?? 0n],
    ['origin', 'string', i ? listenerOriginName(i.origin) : ''],
    ['first_seen', 'uint64', i?.firstSeenUnixNano ?? 0n],
  ];
}

function findingArgs(ev: AcceptEvent): Arg[] {
  const f = ev.findingInfo!;
  const s = ev.socket;
  const pol = ev.policy;
  return [
    ['rule_id', 'string', f.ruleId],
    ['finding_uid', 'string', f.uid],
    ['title', 'string', f.title],
    ['reason', 'string', f.reason],
    ['local_ip', 'string', plainIp(s?.local?.ip ?? '')],
    ['local_port', 'uint16', f.port],
    ['protocol', 'string', f.protocol],
    ['declared_ports', 'string', f.declaredPorts.map((d) => `${d.containerPort}/${d.protocol}`).join(',')],
    ['inode', 'uint64', ev.listenerInfo?.inode ?? 0n],
    ['policy', 'string', pol?.name ?? ''],
  ];
}

/** One accept (or summary record) as a Tracee event JSON object, no newline. */
export function writeEventTracee(w: JsonWriter, ev: AcceptEvent): void {
  w.room(1024); // the constant pieces below are written without capacity checks (JsonWriter.k)
  const call = callOf(ev);
  const listener = TRACEE_LISTENER_EVENTS[ev.kind];
  if (ev.findingInfo) {
    const args = findingArgs(ev);
    writeContext(w, ev, TRACEE_FINDING_EVENT.id, TRACEE_FINDING_EVENT.name, args.length, '');
    writeArgs(w, args);
  } else if (listener) {
    const args = listenerArgs(ev);
    writeContext(w, ev, listener.id, listener.name, args.length, ev.kind === EventKind.EVENT_KIND_LISTEN ? 'listen' : '');
    writeArgs(w, args);
  } else if (ev.kind === EventKind.EVENT_KIND_SUMMARY && summaryOf(ev)) {
    const args = summaryArgs(ev);
    writeContext(w, ev, TRACEE_SUMMARY_EVENT.id, TRACEE_SUMMARY_EVENT.name, args.length, call.syscall);
    writeArgs(w, args);
  } else {
    writeContext(w, ev, IDS[call.name], call.name, call.name === 'accept4' ? 4 : 3, call.syscall);
    writeAcceptArgs(w, ev, call.name);
  }
  w.k(K.end);
}

const scratch = new JsonWriter(16 * 1024);

/** The Tracee line of an event (no newline). */
export function eventToTraceeLine(ev: AcceptEvent): string {
  return scratch.textOf(writeEventTracee, ev);
}

/**
 * A loss record as a Tracee event of its own (TRACE_LOSS_EVENT): no task
 * context (Go zero values), the node as hostName, what was lost in `args`.
 */
export function lossToTraceeLine(loss: LossRecord): string {
  const a = loss.agent;
  const { seqCount, counters, countersTotal } = lossSummary(loss);
  const args: Arg[] = [
    ['from_seq', 'uint64', loss.fromSeq],
    ['to_seq', 'uint64', loss.toSeq],
    ['seq_count', 'uint64', seqCount],
    ['reason', 'string', loss.reason],
    ...counters.map(([k, n]): Arg => [k, 'uint64', n]),
    ['counters_total', 'uint64', countersTotal],
    ['agent_boot_id', 'string', a?.bootId ?? ''],
    ['agent_instance_id', 'string', a?.instanceId ?? ''],
    ['agent_version', 'string', a?.version ?? ''],
  ];
  scratch.reset();
  const w = scratch;
  w.room(1024);
  w.k(K.timestamp);
  w.big(loss.timeUnixNano);
  w.k(K.threadStartTime);
  w.ascii('0,"cgroupId":0,"threadId":0,"parentProcessId":0,"hostProcessId":0,"hostThreadId":0,"hostParentProcessId":0');
  w.ascii(',"userId":0,"mountNamespace":0,"pidNamespace":0,"processName":""');
  w.k(K.hostName);
  str(w, a?.nodeName ?? '');
  w.ascii(',"containerId":"","container":{},"kubernetes":{},"eventId":"');
  w.num(TRACEE_LOSS_EVENT.id);
  w.k(K.eventName);
  str(w, TRACEE_LOSS_EVENT.name);
  w.k(K.matchedPolicies);
  str(w, '');
  w.k(K.argsNum);
  w.num(args.length);
  w.ascii(',"returnValue":0,"syscall":""');
  w.k(K.containerStarted);
  w.bool(false);
  w.k(K.entityIds);
  writeArgs(w, args);
  w.k(K.end);
  return w.buf.toString('utf8', 0, w.pos);
}
