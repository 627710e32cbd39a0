import { createHash, hash } from 'node:crypto';
import { isIP } from 'node:net';
import type { LossCounters, LossRecord } from '../gen/doorwatch/v1/collector.js';
import {
  type AcceptEvent,
  type AcceptSummary,
  type AddressAttribution,
  AddressFamily,
  AttributionStatus,
  AuditMode,
  type AuditPolicyRef,
  type Container,
  EnrichmentStatus,
  EventKind,
  ListenerOrigin,
  OwnerKind,
  type Pod,
  PolicyOrigin,
  type Process,
  Source,
  SummaryReason,
} from '../gen/doorwatch/v1/event.js';
import { bytes, JsonWriter } from './native-json.js';
import {
  type EnrichmentSeen,
  type PolicySeen,
  SegMemo,
  sameEnrichment,
  samePolicy,
  seenEnrichment,
  seenPolicy,
} from './seg-memo.js';
import { billions, isoSeconds, splitBillion, U64_MAX } from './u64.js';

/**
 * OCSF (Open Cybersecurity Schema Framework) 1.7.0 forms of Doorwatch records.
 * Pure functions: no I/O, no clock. docs/formats.md has the mapping tables and
 * the reasons behind each choice.
 *
 *   event -> Network Activity (class 4001): activity Open (1) for an accepted
 *            connection, Fail (4) for a failed accept. A summary record is
 *            the same class with OCSF's aggregation attributes (count,
 *            start_time, end_time), activity Fail only when every accept it
 *            folds failed.
 *   loss  -> Application Error (class 6008), activity General Error (1): "issues
 *            with an application that generates OCSF events" — a gap in the
 *            audit trail is exactly that.
 *
 * Absent values are omitted (never null or ""); everything Doorwatch knows that
 * OCSF has no attribute for lands in `unmapped`. 64-bit identifiers and
 * nanosecond clocks are decimal strings; counts are JSON numbers.
 *
 * The first section also holds the derivations ecs.ts and format.ts share (time
 * text, action names, transport names, Community ID, the Doorwatch detail
 * block, loss ids), so all three formats agree on them.
 */

export const OCSF_VERSION = '1.7.0';
export const PRODUCT_NAME = 'Doorwatch';
export const VENDOR_NAME = 'Doorwatch';

type Obj = Record<string, unknown>;

// ---------------------------------------------------------------------------
// Shared derivations (used by ecs.ts and format.ts too)

/** Drops undefined, null, empty arrays and empty objects, recursively. Keeps false, 0 and "". */
export function prune<T extends Obj>(o: T): T {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) {
    const p = pruneValue(v);
    if (p !== undefined) out[k] = p;
  }
  return out as T;
}

function pruneValue(v: unknown): unknown {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) {
    const a = v.map(pruneValue).filter((x) => x !== undefined);
    return a.length ? a : undefined;
  }
  if (typeof v === 'object') {
    const o = prune(v as Obj);
    return Object.keys(o).length ? o : undefined;
  }
  return v;
}

/** "" means unknown in the proto: omit it. */
export const str = (s: string | undefined): string | undefined => (s ? s : undefined);

/** A bigint count as a JSON number when exact, else its decimal string (Elasticsearch coerces both). */
export function safeNumber(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
}

/** Unix nanoseconds -> RFC 3339 UTC with all nine fractional digits. */
export function isoNanos(ns: bigint): string {
  if (ns < 0n || ns > U64_MAX) {
    const sec = ns / 1_000_000_000n;
    const frac = ns % 1_000_000_000n;
    return `${new Date(Number(sec) * 1000).toISOString().slice(0, 19)}.${frac.toString().padStart(9, '0')}Z`;
  }
  // Per event: no BigInt arithmetic, and the second's text from the last record's.
  splitBillion(ns);
  return `${isoSeconds(billions.q)}.${String(billions.r).padStart(9, '0')}Z`;
}

/** Unix nanoseconds -> epoch milliseconds (OCSF timestamp_t), truncated. */
export const epochMs = (ns: bigint): number => Number(ns / 1_000_000n);

const ACTIONS: Record<number, string> = {
  [Source.SOURCE_ACCEPT]: 'accept',
  [Source.SOURCE_ACCEPT4]: 'accept4',
  [Source.SOURCE_IO_URING]: 'io_uring_accept',
  [Source.SOURCE_LISTEN]: 'listen',
  [Source.SOURCE_LISTEN_CLOSE]: 'listener_close',
  [Source.SOURCE_PROC_SCAN]: 'proc_scan',
};

/** The kernel entry point as a short name: accept, accept4, io_uring_accept (ECS event.action, OCSF metadata.event_code). */
export const actionName = (s: Source): string => ACTIONS[s] ?? 'unknown';

const FAMILIES: Record<number, string> = {
  [AddressFamily.ADDRESS_FAMILY_INET]: 'inet',
  [AddressFamily.ADDRESS_FAMILY_INET6]: 'inet6',
  [AddressFamily.ADDRESS_FAMILY_UNIX]: 'unix',
  [AddressFamily.ADDRESS_FAMILY_OTHER]: 'other',
};
export const familyName = (f: AddressFamily): string => FAMILIES[f] ?? 'unspecified';

const STATUSES: Record<number, string> = {
  [EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE]: 'complete',
  [EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL]: 'partial',
  [EnrichmentStatus.ENRICHMENT_STATUS_HOST]: 'host',
};
export const enrichmentStatusName = (s: EnrichmentStatus): string => STATUSES[s] ?? 'unspecified';

const KINDS: Record<number, string> = {
  [EventKind.EVENT_KIND_SUMMARY]: 'summary',
  [EventKind.EVENT_KIND_LISTEN]: 'listen',
  [EventKind.EVENT_KIND_LISTENER]: 'listener',
  [EventKind.EVENT_KIND_LISTENER_CLOSED]: 'listener_closed',
  [EventKind.EVENT_KIND_FINDING]: 'finding',
};
/** `accept`, `summary`, or a listener record's `listen` / `listener` / `listener_closed`; EVENT_KIND_UNSPECIFIED (producers without audit policies) is an accept. */
export const kindName = (k: EventKind): string => KINDS[k] ?? 'accept';

/** Listener records (src/listeners): the inventory, not accepts. */
export const isListenerRecord = (ev: AcceptEvent): boolean =>
  ev.kind === EventKind.EVENT_KIND_LISTEN ||
  ev.kind === EventKind.EVENT_KIND_LISTENER ||
  ev.kind === EventKind.EVENT_KIND_LISTENER_CLOSED;

const LISTENER_ORIGINS: Record<number, string> = {
  [ListenerOrigin.LISTENER_ORIGIN_KERNEL_LISTEN]: 'kernel_listen',
  [ListenerOrigin.LISTENER_ORIGIN_SNAPSHOT]: 'snapshot',
  [ListenerOrigin.LISTENER_ORIGIN_RESCAN]: 'rescan',
  [ListenerOrigin.LISTENER_ORIGIN_KERNEL_CLOSE]: 'kernel_close',
};
export const listenerOriginName = (o: ListenerOrigin): string => LISTENER_ORIGINS[o] ?? 'unspecified';

/** The record type as OCSF `metadata.log_name` and ECS `event.dataset`: doorwatch.accept or doorwatch.summary. */
export const recordDataset = (ev: AcceptEvent): string => `doorwatch.${kindName(ev.kind)}`;

const REASONS: Record<number, string> = {
  [SummaryReason.SUMMARY_REASON_MODE]: 'mode',
  [SummaryReason.SUMMARY_REASON_RATE_LIMIT]: 'rate_limit',
};
export const summaryReasonName = (r: SummaryReason): string => REASONS[r] ?? 'unspecified';

const ORIGINS: Record<number, string> = {
  [PolicyOrigin.POLICY_ORIGIN_RESOURCE]: 'resource',
  [PolicyOrigin.POLICY_ORIGIN_CONFIG_RULE]: 'config_rule',
  [PolicyOrigin.POLICY_ORIGIN_CONFIG_DEFAULT]: 'config_default',
  [PolicyOrigin.POLICY_ORIGIN_HOST]: 'host',
  [PolicyOrigin.POLICY_ORIGIN_UNATTRIBUTED]: 'unattributed',
};
export const policyOriginName = (o: PolicyOrigin): string => ORIGINS[o] ?? 'unspecified';

const MODES: Record<number, string> = {
  [AuditMode.AUDIT_MODE_EVENTS]: 'events',
  [AuditMode.AUDIT_MODE_SUMMARY]: 'summary',
  [AuditMode.AUDIT_MODE_OFF]: 'off',
};
export const auditModeName = (m: AuditMode): string => MODES[m] ?? 'unspecified';

/**
 * The summary block of a summary record; undefined for an accept. `kind` is
 * the discriminator (the proto's rule): a summary block on a record that does
 * not say it is a summary is kept in the Doorwatch block but not interpreted.
 */
export function summaryOf(ev: AcceptEvent): AcceptSummary | undefined {
  return ev.kind === EventKind.EVENT_KIND_SUMMARY ? ev.summary : undefined;
}

/**
 * What a record says happened: one accept succeeded or failed; a summary's
 * accepts all succeeded, all failed, or some of each (`mixed`: only where the
 * key keeps no peer — unix sockets, folded peers — since a failed accept has
 * no peer address).
 */
export function outcomeOf(ev: AcceptEvent): 'success' | 'failure' | 'mixed' {
  const s = summaryOf(ev);
  if (!s) return ev.success ? 'success' : 'failure';
  if (s.failedCount === 0n) return 'success';
  return s.failedCount >= s.count ? 'failure' : 'mixed';
}

/** First and last accept of a summary, when the producer said (0 = unknown). */
export function summaryWindow(s: AcceptSummary): { first: bigint; last: bigint } | undefined {
  if (s.firstTimeUnixNano <= 0n || s.lastTimeUnixNano < s.firstTimeUnixNano) return undefined;
  return { first: s.firstTimeUnixNano, last: s.lastTimeUnixNano };
}

/** "::ffff:10.0.0.9" -> "10.0.0.9": SIEMs correlate on the address the wire carried. */
export function plainIp(ip: string): string {
  if (ip.charCodeAt(0) !== 0x3a) return ip; // not "::ffff:…"
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  return m ? m[1]! : ip;
}

export function isLoopback(ip: string): boolean {
  const p = plainIp(ip);
  return p.startsWith('127.') || p === '::1';
}

/** `[v6]:port` or `v4:port`. */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** IANA keyword of sk_protocol for inet sockets; IPPROTO_MPTCP (262) has no IANA number. */
const TRANSPORTS: Record<number, string> = { 6: 'tcp', 17: 'udp', 33: 'dccp', 132: 'sctp', 136: 'udplite', 262: 'mptcp' };

export interface Inet {
  /** Peer (initiator), local (responder) as reported, and in plain form. */
  peerIp: string;
  peerPort: number;
  localIp: string;
  localPort: number;
  /** 4 or 6: the IP version on the wire (an IPv4-mapped peer is 4). */
  ipVersion: 4 | 6;
  transport: string | undefined;
  /** The IANA protocol number, when sk_protocol is one. */
  ianaNumber: number | undefined;
}

/** The inet view of a resolved AF_INET/AF_INET6 socket, else undefined. */
export function inetOf(ev: AcceptEvent): Inet | undefined {
  const s = ev.socket;
  if (!s?.resolved) return undefined;
  const v4 = s.family === AddressFamily.ADDRESS_FAMILY_INET;
  if (!v4 && s.family !== AddressFamily.ADDRESS_FAMILY_INET6) return undefined;
  return {
    peerIp: plainIp(s.peer?.ip ?? ''),
    peerPort: s.peer?.port ?? 0,
    localIp: plainIp(s.local?.ip ?? ''),
    localPort: s.local?.port ?? 0,
    ipVersion: v4 || s.v4Mapped ? 4 : 6,
    transport: TRANSPORTS[s.protocol],
    ianaNumber: s.protocol < 256 && TRANSPORTS[s.protocol] ? s.protocol : undefined,
  };
}

/** The resolved AF_UNIX socket, else undefined. */
export function unixOf(ev: AcceptEvent): { path: string; peerPid: number } | undefined {
  const s = ev.socket;
  if (!s?.resolved || s.family !== AddressFamily.ADDRESS_FAMILY_UNIX) return undefined;
  return { path: s.unixPath, peerPid: s.peerPid };
}

/** ipBytes by address text (a node sees few distinct addresses); bounded, the values are never mutated. */
const ipBytesCache = new Map<string, Buffer | undefined>();
function ipBytes(ip: string): Buffer | undefined {
  if (ipBytesCache.has(ip)) return ipBytesCache.get(ip);
  if (ipBytesCache.size >= 4096) ipBytesCache.clear();
  const b = ipBytesOf(ip);
  ipBytesCache.set(ip, b);
  return b;
}

function ipBytesOf(ip: string): Buffer | undefined {
  const addr = ip.replace(/%.*$/, '');
  const v = isIP(addr);
  if (v === 4) return Buffer.from(addr.split('.').map(Number));
  if (v !== 6) return undefined;
  // An embedded dotted quad becomes two hex groups, then "::" expands to zeros.
  const text = addr.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a, b, c, d) =>
    [(Number(a) << 8) | Number(b), (Number(c) << 8) | Number(d)].map((g) => g.toString(16)).join(':'),
  );
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), 2 * i);
  return out;
}

/**
 * Community ID v1 (seed 0) of a TCP/UDP/SCTP flow: the hash Zeek, Suricata,
 * Elastic (network.community_id) and OCSF (connection_info.community_uid) use
 * to join records of the same connection. Undefined for other protocols.
 */
export function communityId(proto: number, srcIp: string, srcPort: number, dstIp: string, dstPort: number): string | undefined {
  if (proto !== 6 && proto !== 17 && proto !== 132) return undefined;
  let sa = ipBytes(srcIp);
  let da = ipBytes(dstIp);
  if (!sa || !da || sa.length !== da.length) return undefined;
  let sp = srcPort;
  let dp = dstPort;
  const order = Buffer.compare(sa, da);
  if (order > 0 || (order === 0 && sp > dp)) {
    [sa, da] = [da, sa];
    [sp, dp] = [dp, sp];
  }
  // seed 0 (big-endian), the addresses, proto, one byte of padding, the ports: in one reused buffer.
  const b = communityScratch;
  b[0] = 0;
  b[1] = 0;
  b.set(sa, 2);
  b.set(da, 2 + sa.length);
  let p = 2 + 2 * sa.length;
  b[p++] = proto;
  b[p++] = 0;
  b[p++] = sp >>> 8;
  b[p++] = sp & 0xff;
  b[p++] = dp >>> 8;
  b[p++] = dp & 0xff;
  return `1:${hash('sha1', b.subarray(0, p), 'base64')}`;
}
const communityScratch = Buffer.alloc(2 + 16 + 16 + 6);

/** The errno of a failed accept (ret = -errno), 0 on success. */
export const errnoOf = (ev: AcceptEvent): number => (ev.ret < 0 ? -ev.ret : 0);

/** "accept4() failed: EMFILE (errno 24)". */
export function failureText(ev: AcceptEvent): string {
  return `${actionName(ev.source)}() failed: ${ev.error || 'unknown error'} (errno ${errnoOf(ev)})`;
}

/** A summary's failures: "2 of 57 accepts failed (first seen: accept4() failed: EMFILE (errno 24))". */
export function summaryFailureText(ev: AcceptEvent, s: AcceptSummary): string {
  const first = ev.success ? '' : ` (first seen: ${failureText(ev)})`;
  return `${s.failedCount} of ${s.count} accepts failed${first}`;
}

const REASON_TEXT: Record<string, string> = { mode: 'policy mode summary', rate_limit: 'rate limit exceeded' };

/** "nginx[812] in pod shop/web: 57 accepts from 10.0.0.9 on port 443 via accept4 over 9.8s, summarised (rate limit exceeded, policy shop/web-audit)". */
/**
 * The listener a summary's accepts came through. Summaries are keyed by
 * process and listening socket, a failed accept by the listener it failed on
 * (its record describes that listener: src/policy/summarize.ts); port 0 with
 * peers_folded is the row that folds every further listener of a pod.
 */
function summaryWhere(ev: AcceptEvent, s: AcceptSummary): string {
  const sock = ev.socket;
  if (s.peersFolded && s.localPort === 0) return ' on several listeners';
  if (sock?.family === AddressFamily.ADDRESS_FAMILY_UNIX)
    return sock.unixPath ? ` on unix socket ${sock.unixPath}` : ' on an unnamed unix socket';
  if (s.localPort) return ` on port ${s.localPort}`;
  return ` on fd ${ev.listener?.fd ?? -1} (listener not resolved)`;
}

function describeSummary(ev: AcceptEvent, s: AcceptSummary, who: string): string {
  const where = summaryWhere(ev, s);
  const from = s.peerIp ? ` from ${plainIp(s.peerIp)}` : s.peersFolded ? ' from many peers (key table full)' : '';
  const failed = s.failedCount > 0n ? ` (${s.failedCount} failed)` : '';
  const w = summaryWindow(s);
  const over = w ? ` over ${Number((w.last - w.first) / 1_000_000n) / 1000}s` : '';
  const reason = REASON_TEXT[summaryReasonName(s.reason)] ?? 'reason unspecified';
  const policy = ev.policy?.name ? `, policy ${ev.policy.name}` : '';
  const n = `${s.count} accept${s.count === 1n ? '' : 's'}`;
  return `${who}: ${n}${failed}${from}${where} via ${actionName(ev.source)}${over}, summarised (${reason}${policy})`;
}

/** "nginx[812] in pod shop/web listens on 0.0.0.0:80 (tcp)", "... stopped listening on ...", "... is listening on ...". */
function describeListener(ev: AcceptEvent, who: string): string {
  const s = ev.socket;
  const inet = inetOf(ev);
  const where = inet
    ? `${hostPort(inet.localIp, inet.localPort)} (${inet.transport ?? `protocol ${s?.protocol}`})`
    : s?.unixPath
      ? `unix socket ${s.unixPath}`
      : 'an unnamed unix socket';
  if (ev.kind === EventKind.EVENT_KIND_LISTEN) return `${who} listens on ${where}`;
  if (ev.kind === EventKind.EVENT_KIND_LISTENER_CLOSED) return `${who} stopped listening on ${where}`;
  return `${who} is listening on ${where}`;
}

/** One human line: who accepted what, from whom, through which call (a summary: how many, from whom, why). */
export function describeEvent(ev: AcceptEvent): string {
  if (ev.findingInfo) return `${ev.findingInfo.title} (${ev.findingInfo.ruleId})`;
  const p = ev.process;
  const who = p ? `${p.comm || '?'}[${p.pid}]` : 'unknown process';
  const pod = ev.pod?.name ? ` in pod ${ev.pod.namespace}/${ev.pod.name}` : '';
  if (isListenerRecord(ev)) return describeListener(ev, `${who}${pod}`);
  const call = actionName(ev.source);
  const summary = summaryOf(ev);
  if (summary) return describeSummary(ev, summary, `${who}${pod}`);
  if (!ev.success) return `${who}${pod}: ${failureText(ev)}`;
  const inet = inetOf(ev);
  if (inet) {
    return `${who}${pod} accepted ${hostPort(inet.peerIp, inet.peerPort)} on ${hostPort(inet.localIp, inet.localPort)} via ${call}`;
  }
  const unix = unixOf(ev);
  if (unix) {
    const on = unix.path ? `unix socket ${unix.path}` : 'an unnamed unix socket';
    const from = unix.peerPid ? ` from pid ${unix.peerPid}` : '';
    return `${who}${pod} accepted a connection on ${on}${from} via ${call}`;
  }
  return `${who}${pod} accepted fd ${ev.ret} (socket not resolved) via ${call}`;
}

/** OCSF severity ids, shared with ECS event.severity: see docs/formats.md. */
export const SEVERITY = { informational: 1, low: 2, medium: 3, high: 4 } as const;

/**
 * Informational; Low for a failed accept (a summary: when any accept it folds
 * failed); Medium when the caller's buffer contradicts the kernel (evasion signal).
 */
export function eventSeverity(ev: AcceptEvent): number {
  // A finding: a port open that nobody declared (docs/formats.md).
  if (ev.findingInfo) return SEVERITY.medium;
  if (ev.userAddress?.mismatch) return SEVERITY.medium;
  return outcomeOf(ev) === 'success' ? SEVERITY.informational : SEVERITY.low;
}

/**
 * What Doorwatch knows beyond any common schema: OCSF `unmapped` and ECS
 * `doorwatch` both start from this block (snake_case, mirroring the proto).
 */
export function doorwatchDetail(ev: AcceptEvent, withAttribution = true): Obj {
  return { ...detailHead(ev), ...doorwatchDetailRest(ev, withAttribution) };
}

/**
 * The detail after its head (namespaces on), in doorwatchDetail's order: what
 * the line writers append after writeDetailHead without spreading the head into
 * a new object (the spreads were a quarter of an ECS line's time).
 */
export function doorwatchDetailRest(ev: AcceptEvent, withAttribution = true): Obj {
  // Member by member, not `...podDetail(ev)`: a spread into a literal cost more than the rest of it.
  const pd = podDetail(ev);
  return {
    namespaces: pd.namespaces,
    cgroup: pd.cgroup,
    container: pd.container,
    enrichment: pd.enrichment,
    summary: ev.summary && summaryDetail(ev),
    finding: ev.findingInfo && findingDetail(ev),
    listener_info: ev.listenerInfo && {
      origin: listenerOriginName(ev.listenerInfo.origin),
      inode: ev.listenerInfo.inode.toString(),
      requested_backlog: ev.listenerInfo.requestedBacklog || undefined,
      first_seen_unix_nano: ev.listenerInfo.firstSeenUnixNano ? ev.listenerInfo.firstSeenUnixNano.toString() : undefined,
    },
    policy: ev.policy && policyDetail(ev.policy),
    // Last: eventToOcsfLine appends them as cached text (withAttribution false) in this same place.
    peer_attribution: withAttribution ? attributionDetail(ev.peerAttribution) : undefined,
    local_attribution: withAttribution ? attributionDetail(ev.localAttribution) : undefined,
  };
}

/** The detail's members of this one accept (kind through user_address; always kind). */
function detailHead(ev: AcceptEvent): Obj {
  const s = ev.socket;
  const l = ev.listener;
  const u = ev.userAddress;
  const unix = s?.family === AddressFamily.ADDRESS_FAMILY_UNIX;
  return {
    kind: kindName(ev.kind),
    seq: safeNumber(ev.seq),
    time_unix_nano: ev.timeUnixNano.toString(),
    ktime_ns: ev.ktimeNs.toString(),
    duration_ns: safeNumber(ev.durationNs),
    ret: ev.ret,
    accept_flags: ev.acceptFlags,
    accept_flag_names: ev.acceptFlagNames,
    flags: ev.flags,
    socket: s && {
      resolved: s.resolved,
      ...(s.resolved && {
        family: familyName(s.family),
        family_number: s.familyNumber,
        type: str(s.type),
        protocol: s.protocol,
        v4_mapped: s.v4Mapped,
        unix_path: unix ? str(s.unixPath) : undefined,
        peer_pid: unix ? s.peerPid : undefined,
      }),
    },
    listener: l && {
      resolved: l.resolved,
      fd: l.fd >= 0 ? l.fd : undefined,
      backlog: l.resolved ? l.backlog : undefined,
      max_backlog: l.resolved ? l.maxBacklog : undefined,
    },
    user_address: u && {
      present: u.present,
      mismatch: u.mismatch,
      fault: u.fault,
      ...(u.present && {
        addrlen: u.addrlen,
        family_number: u.familyNumber,
        ip: str(u.ip),
        port: u.ip ? u.port : undefined,
      }),
    },
  };
}

/** The detail's members its pod (or host process) shares between accepts: namespaces through enrichment. */
function podDetail(ev: AcceptEvent): Obj {
  const en = ev.enrichment;
  return {
    namespaces: ev.namespaces && { ...ev.namespaces },
    cgroup: ev.cgroup && { id: ev.cgroup.id.toString(), v1_id: ev.cgroup.v1Id.toString() },
    container: ev.container && { cgroup_path: str(ev.container.cgroupPath) },
    enrichment: en && {
      status: enrichmentStatusName(en.status),
      missing: en.missing,
      reason: str(en.reason),
      cgroup_from_proc: en.cgroupFromProc,
      waited_ms: en.waitedMs,
    },
  };
}

// Peer/local attribution (collector/peers): the same names as the native form's enums, lowercase.
const ATTRIBUTION_STATUSES: Record<number, string> = {
  [AttributionStatus.ATTRIBUTION_STATUS_RESOLVED]: 'resolved',
  [AttributionStatus.ATTRIBUTION_STATUS_EXTERNAL]: 'external',
  [AttributionStatus.ATTRIBUTION_STATUS_LOOPBACK]: 'loopback',
  [AttributionStatus.ATTRIBUTION_STATUS_LINK_LOCAL]: 'link_local',
  [AttributionStatus.ATTRIBUTION_STATUS_UNKNOWN]: 'unknown',
  [AttributionStatus.ATTRIBUTION_STATUS_NO_ADDRESS]: 'no_address',
};
const OWNER_KINDS: Record<number, string> = {
  [OwnerKind.OWNER_KIND_POD]: 'pod',
  [OwnerKind.OWNER_KIND_SERVICE]: 'service',
  [OwnerKind.OWNER_KIND_NODE]: 'node',
};

/** One detail block per (shared, frozen) attribution object: OCSF `unmapped` and ECS `doorwatch.*`. */
const attributionDetails = new WeakMap<AddressAttribution, Obj>();
function attributionDetail(a: AddressAttribution | undefined): Obj | undefined {
  if (!a) return undefined;
  let d = attributionDetails.get(a);
  if (d) return d;
  d = {
    status: ATTRIBUTION_STATUSES[a.status] ?? 'unspecified',
    reason: str(a.reason),
    kind: OWNER_KINDS[a.kind],
    namespace: str(a.namespace),
    name: str(a.name),
    uid: str(a.uid),
    workload: a.workload && { kind: str(a.workload.kind), name: str(a.workload.name), inferred: a.workload.inferred },
    labels: Object.keys(a.labels).length ? { ...a.labels } : undefined,
    node_name: str(a.nodeName),
  };
  if (Object.isFrozen(a)) attributionDetails.set(a, d);
  return d;
}

/**
 * OCSF network_endpoint attributes of a resolved attribution: name and uid of the pod, Service or
 * node; type_id 99 (Other) with the Kubernetes kind as `type`; svc_name for a Service; hostname
 * for a node. Namespace, workload and labels have no endpoint attribute in OCSF 1.7.0: they are in
 * `unmapped.peer_attribution` / `unmapped.local_attribution`.
 */
function endpointAttribution(a: AddressAttribution | undefined, local: boolean): Obj | undefined {
  if (a?.status !== AttributionStatus.ATTRIBUTION_STATUS_RESOLVED) return undefined;
  const service = a.kind === OwnerKind.OWNER_KIND_SERVICE;
  // The local end is the node the event came from: its hostname is already the node's.
  if (local) return service ? { svc_name: str(a.name) } : undefined;
  const kind = OWNER_KINDS[a.kind];
  return {
    name: str(a.name),
    uid: str(a.uid),
    type_id: 99,
    type: kind && kind[0]!.toUpperCase() + kind.slice(1),
    svc_name: service ? str(a.name) : undefined,
    hostname: a.kind === OwnerKind.OWNER_KIND_NODE ? str(a.name) : undefined,
  };
}

/**
 * A summary's block. Counts are numbers, nanosecond clocks decimal strings.
 * `sample_peer` is the sample's own peer address: the formats' endpoint
 * attributes of a summary describe the key (peer_ip), not one connection.
 */
function summaryDetail(ev: AcceptEvent): Obj | undefined {
  const m = ev.summary;
  if (!m) return undefined;
  const peer = ev.kind === EventKind.EVENT_KIND_SUMMARY ? inetOf(ev) : undefined;
  return {
    reason: summaryReasonName(m.reason),
    count: safeNumber(m.count),
    failed_count: safeNumber(m.failedCount),
    first_time_unix_nano: m.firstTimeUnixNano.toString(),
    last_time_unix_nano: m.lastTimeUnixNano.toString(),
    interval_start_unix_nano: m.intervalStartUnixNano.toString(),
    interval_end_unix_nano: m.intervalEndUnixNano.toString(),
    local_port: m.localPort,
    peer_ip: str(m.peerIp),
    peers_folded: m.peersFolded,
    sample_peer: peer && { ip: str(ev.socket?.peer?.ip), port: peer.peerPort },
  };
}

/** A finding's own block (OCSF `unmapped.finding`, ECS `doorwatch.finding`): what finding_info / rule.* do not hold. */
function findingDetail(ev: AcceptEvent): Obj | undefined {
  const f = ev.findingInfo;
  if (!f) return undefined;
  return {
    rule_id: f.ruleId,
    uid: f.uid,
    // The listener record's call (listen, proc_scan) and error, if any: what event.action / status hold for others.
    call: actionName(ev.source),
    error: str(ev.error),
    port: f.port,
    protocol: f.protocol,
    reason: f.reason,
    declared_ports: f.declaredPorts.map((d) => ({
      container_port: d.containerPort,
      host_port: d.hostPort || undefined,
      protocol: d.protocol,
      container: str(d.container),
      name: str(d.name),
    })),
  };
}

function policyDetail(p: AuditPolicyRef): Obj {
  return { origin: policyOriginName(p.origin), name: str(p.name), mode: auditModeName(p.mode) };
}

/** Sorted "key<sep>value" strings of a label map. */
export function pairs(m: Record<string, string> | undefined, sep: string): string[] {
  return Object.entries(m ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}${sep}${v}`);
}

const COUNTER_NAMES: [keyof LossCounters, string][] = [
  ['kernelRingFull', 'kernel_ring_full'],
  ['decodeErrors', 'decode_errors'],
  ['bpfRecursionMisses', 'bpf_recursion_misses'],
  ['queueDrops', 'queue_drops'],
  ['spoolDrops', 'spool_drops'],
];

export interface LossSummary {
  /** Events in [from_seq, to_seq], 0 when the loss has no seq range. */
  seqCount: bigint;
  /** The agent's counters, snake_case, as bigints (empty when none were reported). */
  counters: [string, bigint][];
  countersTotal: bigint;
}

export function lossSummary(loss: LossRecord): LossSummary {
  const seqCount = loss.toSeq > 0n && loss.toSeq >= loss.fromSeq ? loss.toSeq - loss.fromSeq + 1n : 0n;
  const c = loss.counters;
  const counters = c ? COUNTER_NAMES.map(([k, name]): [string, bigint] => [name, c[k]]) : [];
  return { seqCount, counters, countersTotal: counters.reduce((sum, [, n]) => sum + n, 0n) };
}

/** What Doorwatch knows of a loss: OCSF `unmapped` and ECS `doorwatch.loss` (snake_case, mirroring the proto). */
export function lossDetail(loss: LossRecord): Obj {
  const { seqCount, counters, countersTotal } = lossSummary(loss);
  return {
    from_seq: safeNumber(loss.fromSeq),
    to_seq: safeNumber(loss.toSeq),
    seq_count: safeNumber(seqCount),
    reason: str(loss.reason),
    counters: counters.length ? Object.fromEntries(counters.map(([k, n]) => [k, safeNumber(n)])) : undefined,
    counters_total: counters.length ? safeNumber(countersTotal) : undefined,
    time_unix_nano: loss.timeUnixNano.toString(),
  };
}

/** "Doorwatch lost events on node-a: seq 101-150 (50 events); kernel_ring_full=40 (seq gap)". */
export function describeLoss(loss: LossRecord): string {
  const { seqCount, counters, countersTotal } = lossSummary(loss);
  const parts: string[] = [];
  if (seqCount > 0n) parts.push(`seq ${loss.fromSeq}-${loss.toSeq} (${seqCount} events)`);
  const nonzero = counters.filter(([, n]) => n > 0n);
  if (nonzero.length) parts.push(`${countersTotal} counted: ${nonzero.map(([k, n]) => `${k}=${n}`).join(' ')}`);
  const node = loss.agent?.nodeName ? ` on ${loss.agent.nodeName}` : '';
  const reason = loss.reason ? ` (${loss.reason})` : '';
  return `Doorwatch lost events${node}: ${parts.length ? parts.join('; ') : 'count unknown'}${reason}`;
}

/**
 * A loss record's id, deterministic so a retried or replayed record dedupes at
 * the sink: "<boot id>/<instance id>/loss/<from>-<to>/<digest>". The digest
 * covers the reason and, for losses without a seq range (kernel drops), the
 * time and counters, which are then the only thing telling two records apart.
 */
export function lossRecordId(loss: LossRecord): string {
  const a = loss.agent;
  const noRange = loss.fromSeq === 0n && loss.toSeq === 0n;
  const { counters } = lossSummary(loss);
  const key = JSON.stringify([
    loss.reason,
    noRange ? loss.timeUnixNano.toString() : '',
    noRange ? counters.map(([k, n]) => `${k}=${n}`) : [],
  ]);
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return `${a?.bootId || '-'}/${a?.instanceId || '-'}/loss/${loss.fromSeq}-${loss.toSeq}/${digest}`;
}

// ---------------------------------------------------------------------------
// Events: Network Activity (4001)

const NETWORK_ACTIVITY = 4001;
const ACTIVITY = { open: [1, 'Open'], close: [2, 'Close'], fail: [4, 'Fail'], listen: [7, 'Listen'] } as const;
const SEVERITY_NAMES: Record<number, string> = { 1: 'Informational', 2: 'Low', 3: 'Medium', 4: 'High' };
const DIRECTION = { inbound: [1, 'Inbound'], local: [4, 'Local'] } as const;
const IP_VERSION: Record<number, string> = { 4: 'Internet Protocol version 4 (IPv4)', 6: 'Internet Protocol version 6 (IPv6)' };

interface MetadataOpts {
  uid: string;
  logName: string;
  eventCode: string;
  profiles: string[];
  productVersion?: string | undefined;
}

/** The Linux platform extension (OCSF 1.7.0 extensions/linux, uid 1): its `linux_users` profile defines `process.group`. */
const LINUX_EXTENSION = { name: 'linux', uid: '1', version: OCSF_VERSION };
const LINUX_USERS = 'linux/linux_users';

// No `sequence`: OCSF's is integer_t (32-bit) and Doorwatch's seq is 64-bit; it is in metadata.uid and unmapped.seq.
function metadata(o: MetadataOpts): Obj {
  return {
    version: OCSF_VERSION,
    product: { name: PRODUCT_NAME, vendor_name: VENDOR_NAME, version: o.productVersion },
    uid: o.uid,
    log_name: o.logName,
    event_code: o.eventCode,
    profiles: o.profiles,
    extensions: o.profiles.includes(LINUX_USERS) ? [LINUX_EXTENSION] : undefined,
  };
}

/** OCSF integer_t is 32-bit signed: a count past it is left to `unmapped`. */
const INT32_MAX = 2n ** 31n - 1n;

/** The node the record comes from (host profile). A Kubernetes node is a server. */
function device(node: string, bootUid?: string): Obj | undefined {
  if (!node) return undefined;
  return { hostname: node, name: node, type_id: 1, type: 'Server', boot_uid: str(bootUid) };
}

/** OCSF uuid_t's form (dictionary.json), anchored. */
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function ocsfContainer(ev: AcceptEvent): Obj | undefined {
  const c = ev.container;
  if (!c?.id) return undefined;
  const p = ev.pod;
  return {
    uid: c.id,
    name: str(c.name),
    runtime: str(c.runtime),
    image: c.image || c.imageId ? { name: str(c.image), uid: str(c.imageId) } : undefined,
    orchestrator: p ? 'kubernetes' : undefined,
    // uuid_t: a static pod's UID is the kubelet's MD5 hex digest, not a UUID (it stays in unmapped.k8s.pod.uid).
    pod_uuid: p?.uid && UUID.test(p.uid) ? p.uid : undefined,
    labels: pairs(p?.labels, '='),
  };
}

function k8s(ev: AcceptEvent): Obj | undefined {
  const p = ev.pod;
  if (!p) return undefined;
  return {
    namespace: str(p.namespace),
    pod: {
      name: str(p.name),
      uid: str(p.uid),
      ip: str(p.ip),
      service_account: str(p.serviceAccount),
      node_name: str(p.nodeName),
      host_network: p.hostNetwork,
      qos_class: str(p.qosClass),
      deleted: p.deleted,
      annotations: { ...p.annotations },
    },
    workload: p.workload?.kind ? { kind: p.workload.kind, name: str(p.workload.name), inferred: p.workload.inferred } : undefined,
    namespace_labels: { ...p.namespaceLabels },
  };
}

/** OCSF status per outcome; a summary folding successes and failures is Other ("Partial"). */
const STATUS = { success: [1, 'Success'], failure: [2, 'Failure'], mixed: [99, 'Partial'] } as const;

/**
 * Everything of the Network Activity event up to `policy` (unpruned), in its
 * key order; `actor`, `device` and `unmapped` follow it (eventToOcsf), and
 * eventToOcsfLine serialises those three from per-pod text.
 */
function ocsfHead(ev: AcceptEvent, hasContainer: boolean): Obj {
  const summary = summaryOf(ev);
  const outcome = outcomeOf(ev);
  // A listener record: Listen (7) while it listens, Close (2) once gone; it has no peer.
  const listener = isListenerRecord(ev);
  const [activityId, activityName] = listener
    ? ev.kind === EventKind.EVENT_KIND_LISTENER_CLOSED
      ? ACTIVITY.close
      : ACTIVITY.listen
    : outcome === 'failure'
      ? ACTIVITY.fail
      : ACTIVITY.open;
  const [statusId, status] = STATUS[outcome];
  const severityId = eventSeverity(ev);
  const inet = inetOf(ev);
  const unix = unixOf(ev);
  // A summary's endpoints are its key: the peer address, without a port (one of many), none when peers were folded.
  const peerIp = summary ? str(plainIp(summary.peerIp)) : inet?.peerIp;
  const local = (peerIp !== undefined && isLoopback(peerIp)) || unix !== undefined;
  const [directionId, direction] = local ? DIRECTION.local : DIRECTION.inbound;
  const node = str(ev.nodeName);
  const window = summary && summaryWindow(summary);
  const policy = ev.policy?.name ? { name: ev.policy.name } : undefined;

  const src = listener
    ? undefined
    : unix
      ? // AF_UNIX: the peer is on this node by definition.
        { hostname: node }
      : summary
        ? peerIp && { ip: peerIp, ...endpointAttribution(ev.peerAttribution, false) }
        : inet && { ip: str(inet.peerIp), port: inet.peerPort, ...endpointAttribution(ev.peerAttribution, false) };
  const dst = inet
    ? { ip: str(inet.localIp), port: inet.localPort, hostname: node, ...endpointAttribution(ev.localAttribution, true) }
    : unix
      ? { name: str(unix.path), hostname: node }
      : // A failed or unresolved accept: only the node is known.
        { hostname: node };

  const profiles = [
    'host',
    ...(hasContainer ? ['container'] : []),
    'datetime',
    ...(policy ? ['security_control'] : []),
    // actor.process.group comes from the Linux extension's linux_users profile.
    ...(ev.process ? [LINUX_USERS] : []),
  ];
  return {
    class_uid: NETWORK_ACTIVITY,
    class_name: 'Network Activity',
    category_uid: 4,
    category_name: 'Network Activity',
    activity_id: activityId,
    activity_name: activityName,
    type_uid: NETWORK_ACTIVITY * 100 + activityId,
    type_name: `Network Activity: ${activityName}`,
    severity_id: severityId,
    severity: SEVERITY_NAMES[severityId],
    status_id: statusId,
    status,
    status_code: outcome !== 'success' && !ev.success ? str(ev.error) : undefined,
    status_detail: outcome === 'success' ? undefined : summary ? summaryFailureText(ev, summary) : failureText(ev),
    time: epochMs(ev.timeUnixNano),
    time_dt: isoNanos(ev.timeUnixNano),
    // Aggregation (base event "occurrence" attributes): how many accepts, first to last.
    count: summary && summary.count <= INT32_MAX ? Number(summary.count) : undefined,
    start_time: window && epochMs(window.first),
    start_time_dt: window && isoNanos(window.first),
    end_time: window && epochMs(window.last),
    end_time_dt: window && isoNanos(window.last),
    duration: window && epochMs(window.last) - epochMs(window.first),
    message: describeEvent(ev),
    metadata: metadata({
      uid: ev.eventId,
      logName: recordDataset(ev),
      eventCode: actionName(ev.source),
      profiles,
    }),
    src_endpoint: src,
    dst_endpoint: dst,
    connection_info: {
      direction_id: directionId,
      direction,
      protocol_name: inet ? inet.transport : unix ? 'unix' : undefined,
      protocol_num: inet?.ianaNumber,
      protocol_ver_id: inet?.ipVersion,
      protocol_ver: inet && IP_VERSION[inet.ipVersion],
      // Names one connection: not for a summary.
      community_uid:
        inet?.ianaNumber && !summary && !listener
          ? communityId(inet.ianaNumber, inet.peerIp, inet.peerPort, inet.localIp, inet.localPort)
          : undefined,
    },
    observation_point_id: 2,
    observation_point: 'Destination',
    is_src_dst_assignment_known: true,
    // Security Control profile: the audit policy that governed the record. Doorwatch observes, it does
    // not allow or deny, so action_id / disposition_id are left out rather than claimed.
    policy,
  };
}

/** `actor.process` without its container (the last key, added by the callers). */
function actorProcess(proc: Process): Obj {
  return {
    pid: proc.pid,
    ptid: proc.tid,
    name: str(proc.comm),
    // OCSF: "If the command line is unavailable or missing, the empty string '' is to be used."
    cmd_line: '',
    user: { uid: String(proc.uid) },
    group: { uid: String(proc.gid) },
    parent_process: proc.ppid > 0 ? { pid: proc.ppid } : undefined,
  };
}

/** An accept event or a summary record as an OCSF 1.7.0 Network Activity event (docs/formats.md); a finding as a Detection Finding. */
export function eventToOcsf(ev: AcceptEvent): Obj {
  if (ev.findingInfo) return findingToOcsf(ev);
  const proc = ev.process;
  const container = ocsfContainer(ev);
  return prune({
    ...ocsfHead(ev, container !== undefined),
    actor: proc && { process: { ...actorProcess(proc), container } },
    device: device(ev.nodeName),
    unmapped: { ...doorwatchDetail(ev), k8s: k8s(ev) },
  });
}

// The same as one JSON line, fast: prune() is compositional (a pruned object's
// value at k is pruneValue of the value at k), so the line is the pruned head
// followed by the pruned actor, device and unmapped, each serialised on its
// own; the per-pod parts (the container with its labels, the k8s block) are
// serialised once per Pod/Container object (the collector's decoder shares
// one object per distinct pod) and the device once per node name.

const NULL = Buffer.from('null');

/**
 * Writes `JSON.stringify(pruneValue(v))` to `w` in one walk, without
 * building the pruned copy or any intermediate string; false (and nothing
 * written) when v prunes away. Plain data only (what the formats build):
 * strings, finite and non-finite numbers, booleans, arrays, plain objects;
 * anything else goes through JSON.stringify (a bigint throws there as it
 * would).
 */
export function writePruned(w: JsonWriter, v: unknown): boolean {
  if (v === undefined || v === null) return false;
  switch (typeof v) {
    case 'string':
      w.str(v);
      return true;
    case 'number':
      w.room(0);
      if (Number.isFinite(v)) w.num(v);
      else w.k(NULL);
      return true;
    case 'boolean':
      w.room(0);
      w.bool(v);
      return true;
    case 'object': {
      // Arrays and objects written inline, not through a shared per-item helper: the call per item
      // cost the OCSF line 5-8 % (bench/collector-micro.ts).
      const start = w.pos;
      let any = false;
      if (Array.isArray(v)) {
        w.byte(0x5b);
        for (let i = 0; i < v.length; i++) {
          const at = w.pos;
          if (any) w.byte(0x2c);
          if (writePruned(w, v[i])) any = true;
          else w.pos = at;
        }
        if (!any) {
          w.pos = start;
          return false;
        }
        w.byte(0x5d);
        return true;
      }
      const o = v as Obj;
      w.byte(0x7b);
      for (const k in o) {
        const x = o[k];
        if (x === undefined || x === null) continue;
        const at = w.pos;
        if (any) w.byte(0x2c);
        // The key as JSON.stringify writes it (str), then the colon: a map lookup and a copy per key cost more.
        w.str(k);
        w.byte(0x3a);
        if (writePruned(w, x)) any = true;
        else w.pos = at;
      }
      if (!any) {
        w.pos = start;
        return false;
      }
      w.byte(0x7d);
      return true;
    }
    default:
      w.text(JSON.stringify(v));
      return true;
  }
}

const prunedScratch = new JsonWriter(16 * 1024);
/** `JSON.stringify(pruneValue(v))`, undefined when v prunes away (writePruned, as a string). */
export function pruned(v: unknown): string | undefined {
  prunedScratch.reset();
  return writePruned(prunedScratch, v) ? prunedScratch.buf.toString('utf8', 0, prunedScratch.pos) : undefined;
}

/** Pruned JSON as bytes, empty when it prunes away (the caches' "computed, and nothing there"). */
export const NONE = new Uint8Array(0);
export function prunedBytes(v: unknown): Uint8Array {
  prunedScratch.reset();
  return writePruned(prunedScratch, v) ? prunedScratch.since(0) : NONE;
}

/**
 * `make(o)` as pruned JSON bytes, kept per object: the line writers copy what
 * a shared object (a pod, a container, a process, an attribution) makes
 * instead of formatting it per event. `frozenOnly`: kept only for frozen
 * objects, since a mutable one could change; otherwise the object is shared
 * and never mutated by contract (the collector's decoder, the enricher).
 */
export function bytesPerObject<T extends object>(make: (o: T) => unknown, frozenOnly: boolean): (o: T) => Uint8Array {
  const cache = new WeakMap<T, Uint8Array>();
  return (o) => {
    let b = cache.get(o);
    if (b === undefined) {
      b = prunedBytes(make(o));
      if (!frozenOnly || Object.isFrozen(o)) cache.set(o, b);
    }
    return b;
  };
}
const k8sBytes = new WeakMap<Pod, Uint8Array>();
const containerBytes = new WeakMap<Container, { pod: Pod | undefined; bytes: Uint8Array }>();
const deviceBytes = new Map<string, Uint8Array>();

function k8sJson(ev: AcceptEvent): Uint8Array {
  const p = ev.pod;
  if (!p) return NONE;
  let t = k8sBytes.get(p);
  if (t === undefined) {
    t = prunedBytes(k8s(ev));
    k8sBytes.set(p, t);
  }
  return t;
}

function containerJson(ev: AcceptEvent): Uint8Array {
  const c = ev.container;
  if (!c?.id) return NONE;
  const hit = containerBytes.get(c);
  if (hit && hit.pod === ev.pod) return hit.bytes;
  const bytes = prunedBytes(ocsfContainer(ev));
  containerBytes.set(c, { pod: ev.pod, bytes });
  return bytes;
}

/** An attribution's detail as bytes, once per shared (frozen) attribution object. */
const attributionBytes = bytesPerObject<AddressAttribution>(attributionDetail, true);
const attributionJson = (a: AddressAttribution | undefined): Uint8Array => (a ? attributionBytes(a) : NONE);

function deviceJson(node: string): Uint8Array {
  let t = deviceBytes.get(node);
  if (t === undefined) {
    t = prunedBytes(device(node));
    if (deviceBytes.size >= 4096) deviceBytes.clear();
    deviceBytes.set(node, t);
  }
  return t;
}

/*
 * An accept's detail from namespaces on (namespaces, cgroup, container,
 * enrichment, policy: what its pod shares) as `,"namespaces":…` bytes,
 * remembered per pod and checked by value before reuse.
 */
const newPodDetailSeg = () => ({
  bytes: NONE,
  valid: false,
  ns: false,
  mnt: 0,
  pid: 0,
  net: 0,
  uts: 0,
  cg: false,
  cgId: 0n,
  cgV1: 0n,
  ct: false,
  cgroupPath: '',
  enrichment: undefined as EnrichmentSeen | undefined,
  policy: undefined as PolicySeen | undefined,
});
const podDetailSegs = new SegMemo(newPodDetailSeg);

function podDetailTail(ev: AcceptEvent): Uint8Array {
  const n = ev.namespaces;
  const cg = ev.cgroup;
  const ct = ev.container;
  const en = ev.enrichment;
  const pol = ev.policy;
  const t = podDetailSegs.get(ev.pod ?? ct ?? cg?.id);
  if (
    t.valid &&
    (n ? t.ns && t.mnt === n.mnt && t.pid === n.pid && t.net === n.net && t.uts === n.uts : !t.ns) &&
    (cg ? t.cg && t.cgId === cg.id && t.cgV1 === cg.v1Id : !t.cg) &&
    (ct ? t.ct && t.cgroupPath === ct.cgroupPath : !t.ct) &&
    sameEnrichment(t.enrichment, en) &&
    samePolicy(t.policy, pol)
  )
    return t.bytes;
  const whole = prunedBytes({ ...podDetail(ev), policy: pol && policyDetail(pol) });
  // `{…}` -> `,…`: members to follow the accept's own.
  const bytes = whole === NONE ? NONE : Buffer.concat([COMMA, whole.subarray(1, -1)]);
  Object.assign(t, {
    bytes,
    valid: true,
    ns: n !== undefined,
    mnt: n?.mnt ?? 0,
    pid: n?.pid ?? 0,
    net: n?.net ?? 0,
    uts: n?.uts ?? 0,
    cg: cg !== undefined,
    cgId: cg?.id ?? 0n,
    cgV1: cg?.v1Id ?? 0n,
    ct: ct !== undefined,
    cgroupPath: ct?.cgroupPath ?? '',
    enrichment: seenEnrichment(en),
    policy: seenPolicy(pol),
  });
  return bytes;
}
const COMMA = Buffer.from(',');

/*
 * An accept's head (class through policy) field by field: what
 * writePruned(ocsfHead(ev)) writes, without building the head object and
 * walking it key by key (that walk was over half of the line's cost:
 * bench/collector-micro.ts). Summaries, listener records and findings keep
 * the object form: they are few. test/unit/formats-ocsf.test.ts holds the two
 * equal over a random corpus.
 */
const HEAD = {
  start: bytes(
    '{"class_uid":4001,"class_name":"Network Activity","category_uid":4,"category_name":"Network Activity","activity_id":',
  ),
  open: bytes('1,"activity_name":"Open","type_uid":400101,"type_name":"Network Activity: Open"'),
  fail: bytes('4,"activity_name":"Fail","type_uid":400104,"type_name":"Network Activity: Fail"'),
  severity: [0, 1, 2, 3, 4].map((id) => bytes(`,"severity_id":${id},"severity":"${SEVERITY_NAMES[id]}"`)),
  success: bytes(',"status_id":1,"status":"Success"'),
  failure: bytes(',"status_id":2,"status":"Failure"'),
  statusCode: bytes(',"status_code":'),
  statusDetail: bytes(',"status_detail":'),
  time: bytes(',"time":'),
  timeDt: bytes(',"time_dt":'),
  message: bytes(',"message":'),
  metadata: bytes(`,"metadata":{"version":"${OCSF_VERSION}","product":{"name":"${PRODUCT_NAME}","vendor_name":"${VENDOR_NAME}"}`),
  uid: bytes(',"uid":'),
  logName: bytes(',"log_name":"doorwatch.'),
  eventCode: bytes('","event_code":"'),
  profiles: bytes('","profiles":["host"'),
  container: bytes(',"container"'),
  datetime: bytes(',"datetime"'),
  securityControl: bytes(',"security_control"'),
  linuxUsers: bytes(`,"${LINUX_USERS}"],"extensions":[${JSON.stringify(LINUX_EXTENSION)}]}`),
  profilesEnd: bytes(']}'),
  src: bytes(',"src_endpoint":{'),
  dst: bytes(',"dst_endpoint":{'),
  ip: bytes('"ip":'),
  port: bytes('"port":'),
  hostname: bytes('"hostname":'),
  name: bytes('"name":'),
  svcName: bytes(',"svc_name":'),
  direction: [
    bytes(',"connection_info":{"direction_id":1,"direction":"Inbound"'),
    bytes(',"connection_info":{"direction_id":4,"direction":"Local"'),
  ],
  protocolName: bytes(',"protocol_name":'),
  protocolNum: bytes(',"protocol_num":'),
  protocolVer: [4, 6].map((v) => bytes(`,"protocol_ver_id":${v},"protocol_ver":"${IP_VERSION[v]}"`)),
  communityUid: bytes(',"community_uid":'),
  observation: bytes('},"observation_point_id":2,"observation_point":"Destination","is_src_dst_assignment_known":true'),
  policy: bytes(',"policy":{"name":'),
};

/** Number(ns / 1_000_000n) (epochMs) as digits, without the BigInt division. */
function writeEpochMs(w: JsonWriter, ns: bigint): void {
  if (ns < 0n || ns > U64_MAX) {
    w.num(epochMs(ns));
    return;
  }
  splitBillion(ns);
  const q = billions.q;
  const m = Math.floor(billions.r / 1e6);
  if (q === 0) w.num(m);
  else if (q > 0x7fffffff) w.num(q * 1000 + m);
  else {
    w.num(q);
    w.byte(0x30 + Math.floor(m / 100));
    w.byte(0x30 + (Math.floor(m / 10) % 10));
    w.byte(0x30 + (m % 10));
  }
}

/** JSON.stringify(isoNanos(ns)), without the string. */
export function writeIsoNanos(w: JsonWriter, ns: bigint): void {
  if (ns < 0n || ns > U64_MAX) {
    w.str(isoNanos(ns));
    return;
  }
  splitBillion(ns);
  const r = billions.r;
  w.byte(0x22);
  w.ascii(isoSeconds(billions.q));
  w.byte(0x2e);
  w.nine(r);
  w.byte(0x5a);
  w.byte(0x22);
}

/** `,"k":"v"`-style members of a pruned object appended after earlier members: its braces dropped. */
export function writeMembers(w: JsonWriter, o: Obj | undefined): void {
  const at = w.pos;
  if (o && writePruned(w, o)) {
    w.buf[at] = 0x2c;
    w.pos--;
  }
}

/** A string member when non-empty (as `str(s)` prunes it); `key` carries its leading comma when one is needed. */
function strMember(w: JsonWriter, key: Uint8Array, s: string): void {
  if (!s) return;
  w.k(key);
  w.str(s);
}

/** An endpoint's `"ip":…,` (when known) and `"port":n` (always, 0 included); ECS's endpoints too. */
export function writeIpPort(w: JsonWriter, ip: string, port: number): void {
  if (ip) {
    w.k(HEAD.ip);
    w.str(ip);
    w.byte(0x2c);
  }
  w.k(HEAD.port);
  w.num(port);
}

/** Not a summary, listener record or finding: the records the line writers write field by field (OCSF and ECS). */
export const isPlainAccept = (ev: AcceptEvent): boolean =>
  !ev.findingInfo && ev.kind !== EventKind.EVENT_KIND_SUMMARY && !isListenerRecord(ev);

/**
 * writePruned(w, ocsfHead(ev, hasContainer)) for a plain accept; false, with
 * nothing written, for the others.
 */
function writeAcceptHead(w: JsonWriter, ev: AcceptEvent, hasContainer: boolean): boolean {
  if (!isPlainAccept(ev)) return false;
  const ok = ev.success;
  w.room(0);
  w.raw(HEAD.start);
  w.raw(ok ? HEAD.open : HEAD.fail);
  w.k(HEAD.severity[eventSeverity(ev)]!);
  w.k(ok ? HEAD.success : HEAD.failure);
  if (!ok) {
    strMember(w, HEAD.statusCode, ev.error);
    w.k(HEAD.statusDetail);
    w.str(failureText(ev));
  }
  w.k(HEAD.time);
  writeEpochMs(w, ev.timeUnixNano);
  w.k(HEAD.timeDt);
  writeIsoNanos(w, ev.timeUnixNano);
  w.k(HEAD.message);
  w.str(describeEvent(ev));
  w.room(0);
  w.raw(HEAD.metadata);
  // metadata.uid is the event id as is: "" kept (prune keeps empty strings; metadata() does not str() it).
  w.k(HEAD.uid);
  w.str(ev.eventId);
  w.k(HEAD.logName);
  w.ascii(kindName(ev.kind));
  w.k(HEAD.eventCode);
  w.ascii(actionName(ev.source));
  w.k(HEAD.profiles);
  if (hasContainer) w.k(HEAD.container);
  w.k(HEAD.datetime);
  const policyName = ev.policy?.name;
  if (policyName) w.k(HEAD.securityControl);
  w.raw(ev.process ? HEAD.linuxUsers : HEAD.profilesEnd);

  const inet = inetOf(ev);
  const unix = inet ? undefined : unixOf(ev);
  const node = ev.nodeName;
  if (inet) {
    // src: ip (when known), port (always), then the peer's attribution.
    w.k(HEAD.src);
    writeIpPort(w, inet.peerIp, inet.peerPort);
    writeMembers(w, endpointAttribution(ev.peerAttribution, false));
    w.byte(0x7d);
    w.room(0);
    w.k(HEAD.dst);
    writeIpPort(w, inet.localIp, inet.localPort);
    if (node) {
      w.byte(0x2c);
      w.k(HEAD.hostname);
      w.str(node);
    }
    const a = ev.localAttribution;
    if (a?.status === AttributionStatus.ATTRIBUTION_STATUS_RESOLVED && a.kind === OwnerKind.OWNER_KIND_SERVICE)
      strMember(w, HEAD.svcName, a.name);
    w.byte(0x7d);
  } else if (unix) {
    // AF_UNIX: the peer is on this node by definition.
    if (node) {
      w.k(HEAD.src);
      w.k(HEAD.hostname);
      w.str(node);
      w.byte(0x7d);
    }
    if (unix.path || node) {
      w.room(0);
      w.k(HEAD.dst);
      if (unix.path) {
        w.k(HEAD.name);
        w.str(unix.path);
        if (node) w.byte(0x2c);
      }
      if (node) {
        w.k(HEAD.hostname);
        w.str(node);
      }
      w.byte(0x7d);
    }
  } else if (node) {
    // A failed or unresolved accept: only the node is known.
    w.k(HEAD.dst);
    w.k(HEAD.hostname);
    w.str(node);
    w.byte(0x7d);
  }

  w.room(0);
  const local = (inet !== undefined && isLoopback(inet.peerIp)) || unix !== undefined;
  w.raw(HEAD.direction[local ? 1 : 0]!);
  if (inet) {
    if (inet.transport) {
      w.k(HEAD.protocolName);
      w.str(inet.transport);
    }
    if (inet.ianaNumber) {
      w.k(HEAD.protocolNum);
      w.num(inet.ianaNumber);
    }
    w.raw(HEAD.protocolVer[inet.ipVersion === 4 ? 0 : 1]!);
    const cid = inet.ianaNumber
      ? communityId(inet.ianaNumber, inet.peerIp, inet.peerPort, inet.localIp, inet.localPort)
      : undefined;
    if (cid) {
      w.k(HEAD.communityUid);
      w.str(cid);
    }
  } else if (unix) {
    w.k(HEAD.protocolName);
    w.str('unix');
  }
  w.raw(HEAD.observation);
  if (policyName) {
    w.k(HEAD.policy);
    w.str(policyName);
    w.byte(0x7d);
  }
  w.byte(0x7d);
  return true;
}

const DETAIL = {
  kind: bytes('{"kind":"'),
  seq: bytes('","seq":'),
  time: bytes(',"time_unix_nano":"'),
  ktime: bytes('","ktime_ns":"'),
  duration: bytes('","duration_ns":'),
  ret: bytes(',"ret":'),
  acceptFlags: bytes(',"accept_flags":'),
  acceptFlagNames: bytes(',"accept_flag_names":'),
  flags: bytes(',"flags":'),
  socket: bytes(',"socket":{"resolved":'),
  family: bytes(',"family":"'),
  familyNumber: bytes('","family_number":'),
  type: bytes(',"type":'),
  protocol: bytes(',"protocol":'),
  v4Mapped: bytes(',"v4_mapped":'),
  unixPath: bytes(',"unix_path":'),
  peerPid: bytes(',"peer_pid":'),
  listener: bytes(',"listener":{"resolved":'),
  fd: bytes(',"fd":'),
  backlog: bytes(',"backlog":'),
  maxBacklog: bytes(',"max_backlog":'),
  userAddress: bytes(',"user_address":{"present":'),
  mismatch: bytes(',"mismatch":'),
  fault: bytes(',"fault":'),
  addrlen: bytes(',"addrlen":'),
  userFamilyNumber: bytes(',"family_number":'),
  ip: bytes(',"ip":'),
  port: bytes(',"port":'),
};

/** safeNumber(v) as JSON: digits when exact as a number, else the decimal string. */
export function writeSafeNumber(w: JsonWriter, v: bigint): void {
  if (v >= 0n && v <= MAX_SAFE) w.big(v);
  else if (v < 0n && v >= -MAX_SAFE) w.num(Number(v));
  else w.str(v.toString());
}
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** writePruned(w, detailHead(ev)), field by field (the same members, the same order). */
export function writeDetailHead(w: JsonWriter, ev: AcceptEvent): void {
  w.room(0);
  w.k(DETAIL.kind);
  w.ascii(kindName(ev.kind));
  w.k(DETAIL.seq);
  writeSafeNumber(w, ev.seq);
  w.k(DETAIL.time);
  w.big(ev.timeUnixNano);
  w.k(DETAIL.ktime);
  w.big(ev.ktimeNs);
  w.k(DETAIL.duration);
  writeSafeNumber(w, ev.durationNs);
  w.k(DETAIL.ret);
  w.num(ev.ret);
  w.k(DETAIL.acceptFlags);
  w.num(ev.acceptFlags);
  if (ev.acceptFlagNames.length) {
    w.k(DETAIL.acceptFlagNames);
    w.strings(ev.acceptFlagNames);
  }
  if (ev.flags.length) {
    w.k(DETAIL.flags);
    w.strings(ev.flags);
  }
  w.room(0);
  const s = ev.socket;
  if (s) {
    w.k(DETAIL.socket);
    w.bool(s.resolved);
    if (s.resolved) {
      const unix = s.family === AddressFamily.ADDRESS_FAMILY_UNIX;
      w.k(DETAIL.family);
      w.ascii(familyName(s.family));
      w.k(DETAIL.familyNumber);
      w.num(s.familyNumber);
      strMember(w, DETAIL.type, s.type);
      w.room(0);
      w.k(DETAIL.protocol);
      w.num(s.protocol);
      w.k(DETAIL.v4Mapped);
      w.bool(s.v4Mapped);
      if (unix) {
        strMember(w, DETAIL.unixPath, s.unixPath);
        w.room(0);
        w.k(DETAIL.peerPid);
        w.num(s.peerPid);
      }
    }
    w.byte(0x7d);
  }
  w.room(0);
  const l = ev.listener;
  if (l) {
    w.k(DETAIL.listener);
    w.bool(l.resolved);
    if (l.fd >= 0) {
      w.k(DETAIL.fd);
      w.num(l.fd);
    }
    if (l.resolved) {
      w.k(DETAIL.backlog);
      w.num(l.backlog);
      w.k(DETAIL.maxBacklog);
      w.num(l.maxBacklog);
    }
    w.byte(0x7d);
  }
  const u = ev.userAddress;
  if (u) {
    w.k(DETAIL.userAddress);
    w.bool(u.present);
    w.k(DETAIL.mismatch);
    w.bool(u.mismatch);
    w.k(DETAIL.fault);
    w.bool(u.fault);
    if (u.present) {
      w.k(DETAIL.addrlen);
      w.num(u.addrlen);
      w.k(DETAIL.userFamilyNumber);
      w.num(u.familyNumber);
      if (u.ip) {
        w.k(DETAIL.ip);
        w.str(u.ip);
        w.room(0);
        w.k(DETAIL.port);
        w.num(u.port);
      }
    }
    w.byte(0x7d);
  }
  w.byte(0x7d);
}

/** actor.process without its container, as bytes once per shared (frozen) Process: `{…}` open at the end. */
const actorBytes = bytesPerObject(actorProcess, true);
const writeActorProcess = (w: JsonWriter, proc: Process): void => w.raw(actorBytes(proc));

const B = {
  actor: Buffer.from(',"actor":{"process":'),
  container: Buffer.from(',"container":'),
  device: Buffer.from(',"device":'),
  unmapped: Buffer.from(',"unmapped":'),
  peer: Buffer.from(',"peer_attribution":'),
  local: Buffer.from(',"local_attribution":'),
  k8s: Buffer.from(',"k8s":'),
};

/**
 * Appends `JSON.stringify(eventToOcsf(ev))` to `w`, built from cached
 * per-pod bytes (test/unit/formats-ocsf.test.ts holds them equal).
 */
export function writeOcsfLine(w: JsonWriter, ev: AcceptEvent): void {
  // Findings are rare: the plain form.
  if (ev.findingInfo) {
    w.text(JSON.stringify(findingToOcsf(ev)));
    return;
  }
  const container = containerJson(ev);
  // The head always keeps class_uid: never empty, so its "}" can be replaced by more keys.
  if (!writeAcceptHead(w, ev, container !== NONE)) writePruned(w, ocsfHead(ev, container !== NONE));
  w.pos--;
  const proc = ev.process;
  if (proc) {
    // actor.process always keeps pid (a number): never empty.
    w.raw(B.actor);
    writeActorProcess(w, proc);
    w.pos--;
    if (container !== NONE) {
      w.raw(B.container);
      w.raw(container);
    }
    w.byte(0x7d);
    w.byte(0x7d);
  }
  const dev = deviceJson(ev.nodeName);
  if (dev !== NONE) {
    w.raw(B.device);
    w.raw(dev);
  }
  // The detail always keeps kind (a string): never empty.
  w.raw(B.unmapped);
  if (ev.summary || ev.listenerInfo) {
    writePruned(w, doorwatchDetail(ev, false));
    w.pos--;
  } else {
    // An accept: its own members, then its pod's (remembered), in doorwatchDetail's order.
    writeDetailHead(w, ev);
    w.pos--;
    w.raw(podDetailTail(ev));
  }
  const peer = attributionJson(ev.peerAttribution);
  if (peer !== NONE) {
    w.raw(B.peer);
    w.raw(peer);
  }
  const local = attributionJson(ev.localAttribution);
  if (local !== NONE) {
    w.raw(B.local);
    w.raw(local);
  }
  const k8sPart = k8sJson(ev);
  if (k8sPart !== NONE) {
    w.raw(B.k8s);
    w.raw(k8sPart);
  }
  w.byte(0x7d);
  w.byte(0x7d);
}

const lineScratch = new JsonWriter(16 * 1024);
/** `JSON.stringify(eventToOcsf(ev))`: writeOcsfLine into a reused buffer. */
export function eventToOcsfLine(ev: AcceptEvent): string {
  return lineScratch.textOf(writeOcsfLine, ev);
}

// ---------------------------------------------------------------------------
// Findings: Detection Finding (2004)

const DETECTION_FINDING = 2004;

/**
 * A finding record (src/findings) as an OCSF 1.7.0 Detection Finding, activity
 * Create: finding_info names the rule (analytic, type Rule) and the finding's
 * stable uid; the pod is the affected resource; the listener (process, local
 * endpoint, container) is the evidence. Severity Medium: an exposed port
 * nobody declared, not an attack by itself. status New: Doorwatch does not
 * track its review.
 */
export function findingToOcsf(ev: AcceptEvent): Obj {
  const f = ev.findingInfo!;
  const proc = ev.process;
  const p = ev.pod;
  const container = ocsfContainer(ev);
  const inet = inetOf(ev);
  const first = ev.listenerInfo?.firstSeenUnixNano;
  const policy = ev.policy?.name ? { name: ev.policy.name } : undefined;
  const profiles = ['host', 'datetime', 'security_control', ...(proc ? [LINUX_USERS] : [])];
  return prune({
    class_uid: DETECTION_FINDING,
    class_name: 'Detection Finding',
    category_uid: 2,
    category_name: 'Findings',
    activity_id: 1,
    activity_name: 'Create',
    type_uid: DETECTION_FINDING * 100 + 1,
    type_name: 'Detection Finding: Create',
    severity_id: SEVERITY.medium,
    severity: SEVERITY_NAMES[SEVERITY.medium],
    status_id: 1,
    status: 'New',
    is_alert: true,
    // Doorwatch observes: the listener was neither allowed nor blocked by it.
    action_id: 3,
    action: 'Observed',
    time: epochMs(ev.timeUnixNano),
    time_dt: isoNanos(ev.timeUnixNano),
    message: f.title,
    metadata: metadata({ uid: ev.eventId, logName: 'doorwatch.finding', eventCode: f.ruleId, profiles }),
    finding_info: {
      uid: f.uid,
      title: f.title,
      desc: f.reason,
      types: [f.ruleId],
      analytic: { uid: f.ruleId, name: f.ruleId, type_id: 1, type: 'Rule' },
      created_time: epochMs(ev.timeUnixNano),
      created_time_dt: isoNanos(ev.timeUnixNano),
      first_seen_time: first ? epochMs(first) : undefined,
      first_seen_time_dt: first ? isoNanos(first) : undefined,
    },
    resources: p && [
      {
        type: 'Pod',
        name: str(p.name),
        namespace: str(p.namespace),
        uid: str(p.uid),
        ip: str(p.ip),
        labels: pairs(p.labels, '='),
      },
    ],
    evidences: [
      {
        name: 'listener',
        process: proc && actorProcess(proc),
        container,
        dst_endpoint: inet
          ? { ip: str(inet.localIp), port: inet.localPort, hostname: str(ev.nodeName) }
          : { hostname: str(ev.nodeName) },
        // A listener has no peer; a finding raised from an accept would.
        src_endpoint: inet?.peerIp ? { ip: inet.peerIp, port: inet.peerPort } : undefined,
        // A listener waits for inbound connections.
        connection_info: inet && {
          direction_id: DIRECTION.inbound[0],
          direction: DIRECTION.inbound[1],
          protocol_name: inet.transport,
          protocol_num: inet.ianaNumber,
          protocol_ver_id: inet.ipVersion,
          protocol_ver: IP_VERSION[inet.ipVersion],
        },
      },
    ],
    policy,
    actor: proc && { process: actorProcess(proc) },
    device: device(ev.nodeName),
    unmapped: { ...doorwatchDetail(ev), k8s: k8s(ev) },
  });
}

// ---------------------------------------------------------------------------
// Loss records: Application Error (6008)

const APPLICATION_ERROR = 6008;

/** A loss record as an OCSF 1.7.0 Application Error event, activity General Error (docs/formats.md). */
export function lossToOcsf(loss: LossRecord): Obj {
  const a = loss.agent;
  return prune({
    class_uid: APPLICATION_ERROR,
    class_name: 'Application Error',
    category_uid: 6,
    category_name: 'Application Activity',
    activity_id: 1,
    activity_name: 'General Error',
    type_uid: APPLICATION_ERROR * 100 + 1,
    type_name: 'Application Error: General Error',
    // A gap in the audit trail.
    severity_id: SEVERITY.high,
    severity: SEVERITY_NAMES[SEVERITY.high],
    status_id: 2,
    status: 'Failure',
    status_detail: str(loss.reason),
    time: epochMs(loss.timeUnixNano),
    time_dt: isoNanos(loss.timeUnixNano),
    message: describeLoss(loss),
    metadata: metadata({
      uid: lossRecordId(loss),
      logName: 'doorwatch.loss',
      eventCode: 'loss',
      profiles: ['host', 'datetime'],
      productVersion: str(a?.version),
    }),
    device: device(a?.nodeName ?? '', a?.bootId),
    unmapped: {
      agent: a && {
        node_name: str(a.nodeName),
        boot_id: str(a.bootId),
        instance_id: str(a.instanceId),
        version: str(a.version),
      },
      ...lossDetail(loss),
    },
  });
}
