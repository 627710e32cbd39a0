import type { LossRecord } from '../gen/doorwatch/v1/collector.js';
import {
  type AcceptEvent,
  type AcceptSummary,
  type AddressAttribution,
  type AuditPolicyRef,
  addressFamilyToJSON,
  attributionStatusToJSON,
  auditModeToJSON,
  type Container,
  enrichmentStatusToJSON,
  eventKindToJSON,
  type FindingInfo,
  type ListenerInfo,
  listenerOriginToJSON,
  ownerKindToJSON,
  type Pod,
  policyOriginToJSON,
  sourceToJSON,
  summaryReasonToJSON,
  type Workload,
} from '../gen/doorwatch/v1/event.js';
import {
  type EnrichmentSeen,
  type PolicySeen,
  SegMemo,
  sameEnrichment,
  samePolicy,
  sameStrings,
  seenEnrichment,
  seenPolicy,
} from './seg-memo.js';
import { billions, splitBillion, U64_MAX } from './u64.js';

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
  'peerAttribution.status': attributionStatusToJSON as (v: number) => string,
  'peerAttribution.kind': ownerKindToJSON as (v: number) => string,
  'localAttribution.status': attributionStatusToJSON as (v: number) => string,
  'localAttribution.kind': ownerKindToJSON as (v: number) => string,
  'listenerInfo.origin': listenerOriginToJSON as (v: number) => string,
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
 * The same JSON as JSON.stringify(eventToJson(ev)), written directly as bytes
 * into a reusable Buffer: this is the per-event cost of `trace --output json`
 * and of the jsonl sink. The generic walk above costs ~6 µs per event; this
 * writer builds no intermediate strings (constant keys are pre-encoded, numbers
 * are written as digits, plain ASCII strings byte by byte) and what is
 * constant per pod is encoded once per Pod object. test/unit/native-json.test.ts
 * holds its output byte-identical to the generic walk.
 */

const utf8 = new TextEncoder();
/** A constant piece of a line (a key, a fixed run of members), encoded once: the byte writers' `k()` and `raw()` copy it. */
export const bytes = (s: string): Uint8Array => utf8.encode(s);

/** Pre-encoded constant pieces of the line, in order. */
const K = {
  eventId: bytes('{"eventId":'),
  seq: bytes(',"seq":"'),
  time: bytes('","timeUnixNano":"'),
  ktime: bytes('","ktimeNs":"'),
  nodeName: bytes('","nodeName":'),
  source: bytes(',"source":"'),
  ret: bytes('","ret":'),
  success: bytes(',"success":'),
  error: bytes(',"error":'),
  duration: bytes(',"durationNs":"'),
  acceptFlags: bytes('","acceptFlags":'),
  acceptFlagNames: bytes(',"acceptFlagNames":'),
  flags: bytes(',"flags":'),
  process: bytes(',"process":'),
  pid: bytes('{"pid":'),
  tid: bytes(',"tid":'),
  ppid: bytes(',"ppid":'),
  uid: bytes(',"uid":'),
  gid: bytes(',"gid":'),
  comm: bytes(',"comm":'),
  socket: bytes('},"socket":'),
  socketNull: bytes(',"socket":'),
  family: bytes('{"family":"'),
  familyNumber: bytes('","familyNumber":'),
  type: bytes(',"type":'),
  protocol: bytes(',"protocol":'),
  local: bytes(',"local":'),
  ip: bytes('{"ip":'),
  port: bytes(',"port":'),
  peer: bytes(',"peer":'),
  v4Mapped: bytes(',"v4Mapped":'),
  unixPath: bytes(',"unixPath":'),
  peerPid: bytes(',"peerPid":'),
  resolved: bytes(',"resolved":'),
  listener: bytes(',"listener":'),
  fd: bytes('{"fd":'),
  backlog: bytes(',"backlog":'),
  maxBacklog: bytes(',"maxBacklog":'),
  userAddress: bytes(',"userAddress":'),
  present: bytes('{"present":'),
  addrlen: bytes(',"addrlen":'),
  uaFamilyNumber: bytes(',"familyNumber":'),
  uaIp: bytes(',"ip":'),
  fault: bytes(',"fault":'),
  mismatch: bytes(',"mismatch":'),
  namespaces: bytes(',"namespaces":'),
  mnt: bytes('{"mnt":'),
  nsPid: bytes(',"pid":'),
  net: bytes(',"net":'),
  uts: bytes(',"uts":'),
  cgroup: bytes(',"cgroup":'),
  cgId: bytes('{"id":"'),
  cgV1: bytes('","v1Id":"'),
  cgEnd: bytes('"}'),
  container: bytes(',"container":'),
  pod: bytes(',"pod":'),
  enrichment: bytes(',"enrichment":'),
  status: bytes('{"status":"'),
  missing: bytes('","missing":'),
  reason: bytes(',"reason":'),
  cgroupFromProc: bytes(',"cgroupFromProc":'),
  waitedMs: bytes(',"waitedMs":'),
  kind: bytes(',"kind":"'),
  summary: bytes('","summary":'),
  policy: bytes(',"policy":'),
  null: bytes('null'),
  true: bytes('true'),
  false: bytes('false'),
  emptyArray: bytes('[]'),
  end: bytes('}'),
};

/**
 * Bytes an event may write between two capacity checks (keys, numbers,
 * booleans): room() keeps this much free beyond what it is asked for, so the
 * writes of constant size need no check of their own.
 */
const SLACK = 4096;

/**
 * Appends JSON to a growable Buffer; `buf.subarray(0, pos)` is what was
 * written. Reuse one writer (reset() between chunks): its Buffer is the only
 * allocation, grown (never shrunk) when an event does not fit.
 */
export class JsonWriter {
  buf: Buffer;
  pos = 0;

  constructor(capacity = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(capacity, 2 * SLACK));
  }

  reset(): void {
    this.pos = 0;
  }

  /** What `write(this, x)` writes from the start of this writer, as a string (the writer is reset first). */
  textOf<T>(write: (w: JsonWriter, x: T) => void, x: T): string {
    this.pos = 0;
    write(this, x);
    return this.buf.toString('utf8', 0, this.pos);
  }

  /** Room for n more bytes, and SLACK beyond them. */
  room(n: number): void {
    if (this.pos + n + SLACK > this.buf.length) {
      const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n + 2 * SLACK));
      this.buf.copy(b, 0, 0, this.pos);
      this.buf = b;
    }
  }

  /** Bytes of any length. */
  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A short constant (a key): no capacity check, within SLACK of the last one. */
  k(b: Uint8Array): void {
    const d = this.buf;
    let p = this.pos;
    for (let i = 0; i < b.length; i++) d[p++] = b[i]!;
    this.pos = p;
  }

  byte(c: number): void {
    if (this.pos >= this.buf.length) this.room(1);
    this.buf[this.pos++] = c;
  }

  bool(v: boolean): void {
    this.k(v ? K.true : K.false);
  }

  /** A JSON number, as String(n) writes it: integers as digits (within SLACK), anything else through String(). */
  num(n: number): void {
    if (n >= 0 && n <= 0x7fffffff && (n | 0) === n) {
      this.#digits(n);
      return;
    }
    if (n < 0 && n >= -0x7fffffff && (n | 0) === n) {
      this.buf[this.pos++] = 0x2d; // '-'
      this.#digits(-n);
      return;
    }
    this.ascii(String(n));
  }

  /** 0 <= n < 2^31. */
  #digits(n: number): void {
    const d = this.buf;
    const len =
      n < 10
        ? 1
        : n < 100
          ? 2
          : n < 1000
            ? 3
            : n < 10000
              ? 4
              : n < 100000
                ? 5
                : n < 1000000
                  ? 6
                  : n < 10000000
                    ? 7
                    : n < 100000000
                      ? 8
                      : n < 1000000000
                        ? 9
                        : 10;
    let p = this.pos + len;
    this.pos = p;
    do {
      const q = (n / 10) | 0;
      d[--p] = 0x30 + n - q * 10;
      n = q;
    } while (n > 0);
  }

  /** A 64-bit integer's digits (the canonical mapping quotes them; the quotes are the caller's). */
  big(v: bigint): void {
    if (v >= 0n && v <= 0x7fffffffn) {
      this.#digits(Number(v));
      return;
    }
    if (v < 0n || v > U64_MAX) {
      this.ascii(v.toString());
      return;
    }
    // Times in ns and seqs past 2^31, several per event: toString() was a string per field.
    splitBillion(v);
    const q = billions.q;
    const r = billions.r;
    if (this.pos + 24 > this.buf.length) this.room(24);
    if (q === 0) this.#digits(r);
    else {
      if (q <= 0x7fffffff) this.#digits(q);
      else {
        const q2 = Math.floor(q / 1e9); // < 19
        this.#digits(q2);
        this.nine(q - q2 * 1e9);
      }
      this.nine(r);
    }
  }

  /** 0 <= n < 10^9 as exactly nine digits (leading zeros); the caller has made room (room() or SLACK). */
  nine(n: number): void {
    const d = this.buf;
    let p = this.pos + 9;
    this.pos = p;
    for (let i = 0; i < 9; i++) {
      const q = (n / 10) | 0;
      d[--p] = 0x30 + n - q * 10;
      n = q;
    }
  }

  /** Text known to be ASCII with nothing to escape (digits, enum names). */
  ascii(s: string): void {
    const n = s.length;
    if (this.pos + n + SLACK > this.buf.length) this.room(n);
    const d = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) d[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** A JSON string exactly as JSON.stringify writes it. */
  str(s: string): void {
    const n = s.length;
    if (this.pos + n + 2 + SLACK > this.buf.length) this.room(n + 2);
    const d = this.buf;
    let p = this.pos;
    d[p++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      // Printable ASCII but '"' and '\': as is. Anything else (escapes, UTF-8, lone surrogates): JSON.stringify.
      if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) {
        this.#strSlow(s);
        return;
      }
      d[p++] = c;
    }
    d[p++] = 0x22;
    this.pos = p;
  }

  #strSlow(s: string): void {
    this.text(JSON.stringify(s));
  }

  /** Any text, UTF-8 encoded, written as is. */
  text(s: string): void {
    this.room(Buffer.byteLength(s, 'utf8'));
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  /** A repeated string field. */
  strings(a: readonly string[]): void {
    if (!a.length) {
      this.k(K.emptyArray);
      return;
    }
    this.byte(0x5b);
    for (let i = 0; i < a.length; i++) {
      if (i) this.byte(0x2c);
      this.str(a[i]!);
    }
    this.byte(0x5d);
  }

  /** A bytes copy of what was written from `from` on. */
  since(from: number): Uint8Array {
    return Uint8Array.prototype.slice.call(this.buf, from, this.pos);
  }
}

const map = (w: JsonWriter, m: { [k: string]: string } | undefined) => w.text(m ? JSON.stringify(m) : '{}');

/** A pod's or an address owner's workload (the owner chain's top), or null. */
function workload(w: JsonWriter, wl: Workload | undefined): void {
  if (!wl) {
    w.k(K.null);
    return;
  }
  w.text('{"kind":');
  w.str(wl.kind);
  w.text(',"name":');
  w.str(wl.name);
  w.text(`,"inferred":${wl.inferred}}`);
}
const endpoint = (w: JsonWriter, e: { ip: string; port: number } | undefined) => {
  if (!e) return w.k(K.null);
  w.k(K.ip);
  w.str(e.ip);
  w.k(K.port);
  w.num(e.port);
  w.byte(0x7d);
};

/** Rare (one record per folded key and interval): written plainly. */
const summary = (m: AcceptSummary) =>
  `{"reason":"${summaryReasonToJSON(m.reason)}","count":"${m.count}","failedCount":"${m.failedCount}",` +
  `"firstTimeUnixNano":"${m.firstTimeUnixNano}","lastTimeUnixNano":"${m.lastTimeUnixNano}",` +
  `"intervalStartUnixNano":"${m.intervalStartUnixNano}","intervalEndUnixNano":"${m.intervalEndUnixNano}",` +
  `"localPort":${m.localPort},"peerIp":${JSON.stringify(m.peerIp)},"peersFolded":${m.peersFolded}}`;

/*
 * The policy ref is on most events once policies exist, and a run of events
 * shares one policy (often the very same object): the last one written is
 * remembered by value, so a run costs three comparisons instead of encoding it
 * again. By value, not by identity: events decoded off the wire each have
 * their own object, and a shared one may change in place.
 */
let lastOrigin = -1;
let lastName = '';
let lastMode = -1;
let lastPolicy: Uint8Array = new Uint8Array(0);
function policy(w: JsonWriter, p: AuditPolicyRef): void {
  if (p.origin !== lastOrigin || p.mode !== lastMode || p.name !== lastName) {
    lastPolicy = bytes(
      `{"origin":"${policyOriginToJSON(p.origin)}","name":${JSON.stringify(p.name)},"mode":"${auditModeToJSON(p.mode)}"}`,
    );
    lastOrigin = p.origin;
    lastName = p.name;
    lastMode = p.mode;
  }
  w.raw(lastPolicy);
}

/*
 * Per pod: the enricher shares one Pod object per pod (and namespace)
 * version and the collector one per identical bytes, so its JSON is encoded
 * once per object. Pod objects on events are read-only (as every consumer of
 * an event treats them): a Pod changed in place after it was written would be
 * written as it was.
 */
const podJson = new WeakMap<Pod, Uint8Array>();
function pod(w: JsonWriter, pod: Pod): void {
  let frag = podJson.get(pod);
  if (!frag) {
    const from = w.pos;
    const wl = pod.workload;
    w.text('{"namespace":');
    w.str(pod.namespace);
    w.text(',"name":');
    w.str(pod.name);
    w.text(',"uid":');
    w.str(pod.uid);
    w.text(',"labels":');
    map(w, pod.labels);
    w.text(',"annotations":');
    map(w, pod.annotations);
    w.text(',"workload":');
    workload(w, wl);
    w.text(',"serviceAccount":');
    w.str(pod.serviceAccount);
    w.text(',"nodeName":');
    w.str(pod.nodeName);
    w.text(',"ip":');
    w.str(pod.ip);
    w.text(`,"hostNetwork":${pod.hostNetwork},"qosClass":`);
    w.str(pod.qosClass);
    w.text(',"namespaceLabels":');
    map(w, pod.namespaceLabels);
    w.text(`,"deleted":${pod.deleted}}`);
    frag = w.since(from);
    podJson.set(pod, frag);
    return;
  }
  w.raw(frag);
}

/*
 * Per container: the enricher (attribution.ts) and the collector's decoder
 * (collector/wire.ts) share one frozen Container object per container, so its
 * JSON is kept per object and interleaved pods hit too. Other objects (not
 * frozen: they may change in place) fall back to the last one remembered by
 * value: six string comparisons.
 */
const containerJson = new WeakMap<Container, Uint8Array>();
let lastContainer: Container | undefined;
let lastContainerJson: Uint8Array = new Uint8Array(0);
function container(w: JsonWriter, c: Container): void {
  const known = containerJson.get(c);
  if (known) {
    w.raw(known);
    return;
  }
  const l = lastContainer;
  if (
    l &&
    (l === c ||
      (l.id === c.id &&
        l.runtime === c.runtime &&
        l.name === c.name &&
        l.image === c.image &&
        l.imageId === c.imageId &&
        l.cgroupPath === c.cgroupPath))
  ) {
    w.raw(lastContainerJson);
    return;
  }
  const from = w.pos;
  w.text('{"id":');
  w.str(c.id);
  w.text(',"runtime":');
  w.str(c.runtime);
  w.text(',"name":');
  w.str(c.name);
  w.text(',"image":');
  w.str(c.image);
  w.text(',"imageId":');
  w.str(c.imageId);
  w.text(',"cgroupPath":');
  w.str(c.cgroupPath);
  w.byte(0x7d);
  lastContainerJson = w.since(from);
  // A copy: the caller's object may be reused and changed in place.
  lastContainer = { ...c };
  if (Object.isFrozen(c)) containerJson.set(c, lastContainerJson);
}

/** Every field, one by one: events without some sub-message (off the wire, tests) and summary records. */
function writeEachField(w: JsonWriter, ev: AcceptEvent): void {
  const p = ev.process;
  const s = ev.socket;
  const l = ev.listener;
  const u = ev.userAddress;
  w.room(0);
  w.k(K.eventId);
  w.str(ev.eventId);
  w.k(K.seq);
  w.big(ev.seq);
  w.k(K.time);
  w.big(ev.timeUnixNano);
  w.k(K.ktime);
  w.big(ev.ktimeNs);
  w.k(K.nodeName);
  w.str(ev.nodeName);
  w.k(K.source);
  w.ascii(sourceToJSON(ev.source));
  w.k(K.ret);
  w.num(ev.ret);
  w.k(K.success);
  w.bool(ev.success);
  w.k(K.error);
  w.str(ev.error);
  w.k(K.duration);
  w.big(ev.durationNs);
  w.k(K.acceptFlags);
  w.num(ev.acceptFlags);
  w.k(K.acceptFlagNames);
  w.strings(ev.acceptFlagNames);
  w.k(K.flags);
  w.strings(ev.flags);
  w.k(K.process);
  if (p) {
    w.k(K.pid);
    w.num(p.pid);
    w.k(K.tid);
    w.num(p.tid);
    w.k(K.ppid);
    w.num(p.ppid);
    w.k(K.uid);
    w.num(p.uid);
    w.k(K.gid);
    w.num(p.gid);
    w.k(K.comm);
    w.str(p.comm);
    w.k(K.socket);
  } else {
    w.k(K.null);
    w.k(K.socketNull);
  }
  if (s) {
    w.k(K.family);
    w.ascii(addressFamilyToJSON(s.family));
    w.k(K.familyNumber);
    w.num(s.familyNumber);
    w.k(K.type);
    w.str(s.type);
    w.k(K.protocol);
    w.num(s.protocol);
    w.k(K.local);
    endpoint(w, s.local);
    w.k(K.peer);
    endpoint(w, s.peer);
    w.k(K.v4Mapped);
    w.bool(s.v4Mapped);
    w.k(K.unixPath);
    w.str(s.unixPath);
    w.k(K.peerPid);
    w.num(s.peerPid);
    w.k(K.resolved);
    w.bool(s.resolved);
    w.byte(0x7d);
  } else w.k(K.null);
  w.k(K.listener);
  if (l) {
    w.k(K.fd);
    w.num(l.fd);
    w.k(K.backlog);
    w.num(l.backlog);
    w.k(K.maxBacklog);
    w.num(l.maxBacklog);
    w.k(K.resolved);
    w.bool(l.resolved);
    w.byte(0x7d);
  } else w.k(K.null);
  w.k(K.userAddress);
  if (u) {
    w.k(K.present);
    w.bool(u.present);
    w.k(K.addrlen);
    w.num(u.addrlen);
    w.k(K.uaFamilyNumber);
    w.num(u.familyNumber);
    w.k(K.uaIp);
    w.str(u.ip);
    w.k(K.port);
    w.num(u.port);
    w.k(K.fault);
    w.bool(u.fault);
    w.k(K.mismatch);
    w.bool(u.mismatch);
    w.byte(0x7d);
  } else w.k(K.null);
  writeTail(w, ev);
}

/** namespaces … policy: the end of every event line, as the full writer and the fast path both write it. */
function writeTail(w: JsonWriter, ev: AcceptEvent): void {
  const n = ev.namespaces;
  const cg = ev.cgroup;
  const en = ev.enrichment;
  w.k(K.namespaces);
  if (n) {
    w.k(K.mnt);
    w.num(n.mnt);
    w.k(K.nsPid);
    w.num(n.pid);
    w.k(K.net);
    w.num(n.net);
    w.k(K.uts);
    w.num(n.uts);
    w.byte(0x7d);
  } else w.k(K.null);
  w.k(K.cgroup);
  if (cg) {
    w.k(K.cgId);
    w.big(cg.id);
    w.k(K.cgV1);
    w.big(cg.v1Id);
    w.k(K.cgEnd);
  } else w.k(K.null);
  w.k(K.container);
  if (ev.container) container(w, ev.container);
  else w.k(K.null);
  w.k(K.pod);
  if (ev.pod) pod(w, ev.pod);
  else w.k(K.null);
  w.k(K.enrichment);
  if (en) {
    w.k(K.status);
    w.ascii(enrichmentStatusToJSON(en.status));
    w.k(K.missing);
    w.strings(en.missing);
    w.k(K.reason);
    w.str(en.reason);
    w.k(K.cgroupFromProc);
    w.bool(en.cgroupFromProc);
    w.k(K.waitedMs);
    w.num(en.waitedMs);
    w.byte(0x7d);
  } else w.k(K.null);
  w.k(K.kind);
  w.ascii(eventKindToJSON(ev.kind));
  w.k(K.summary);
  if (ev.summary) w.text(summary(ev.summary));
  else w.k(K.null);
  w.k(K.policy);
  if (ev.policy) policy(w, ev.policy);
  else w.k(K.null);
  w.text(',"peerAttribution":');
  attribution(w, ev.peerAttribution);
  w.text(',"localAttribution":');
  attribution(w, ev.localAttribution);
  w.text(',"listenerInfo":');
  if (ev.listenerInfo) w.text(listenerInfo(ev.listenerInfo));
  else w.k(K.null);
  w.text(',"findingInfo":');
  if (ev.findingInfo) w.text(JSON.stringify(findingInfo(ev.findingInfo)));
  else w.k(K.null);
  w.k(K.end);
}

/** Findings only (src/findings): rare, so the generic walk. */
const findingInfo = (m: FindingInfo) => convert(m, 'findingInfo');

/** Listener records only (src/listeners): few, so plain text. */
const listenerInfo = (m: ListenerInfo) =>
  `{"origin":"${listenerOriginToJSON(m.origin)}","inode":"${m.inode}","requestedBacklog":${m.requestedBacklog},"firstSeenUnixNano":"${m.firstSeenUnixNano}"}`;

/*
 * Peer and local attribution (collector/peers): one frozen object per pod,
 * Service, node or status, shared by every event it describes, so its JSON
 * is encoded once per object.
 */
const attributionJson = new WeakMap<AddressAttribution, Uint8Array>();
function attribution(w: JsonWriter, a: AddressAttribution | undefined): void {
  if (!a) {
    w.k(K.null);
    return;
  }
  const known = attributionJson.get(a);
  if (known) {
    w.raw(known);
    return;
  }
  const from = w.pos;
  const wl = a.workload;
  w.text(`{"status":"${attributionStatusToJSON(a.status)}","reason":`);
  w.str(a.reason);
  w.text(`,"kind":"${ownerKindToJSON(a.kind)}","namespace":`);
  w.str(a.namespace);
  w.text(',"name":');
  w.str(a.name);
  w.text(',"uid":');
  w.str(a.uid);
  w.text(',"workload":');
  workload(w, wl);
  w.text(',"labels":');
  map(w, a.labels);
  w.text(',"nodeName":');
  w.str(a.nodeName);
  w.byte(0x7d);
  const frag = w.since(from);
  if (Object.isFrozen(a)) attributionJson.set(a, frag);
}

/*
 * The fast path. Between two events of a storm only a few values change (ids,
 * times, the peer's port, the backlog); everything else is what the previous
 * event had. The line is cut into segments that end just before a value that
 * usually changes; each segment is remembered as bytes with the values it was
 * made from, and written again when those values are equal (compared by
 * value, never by object identity, so an object changed in place or an
 * event decoded off the wire is written as it is).
 */
/** `","nodeName":…,"source":…,"ret":` */
const segNode = { bytes: new Uint8Array(0) as Uint8Array, nodeName: '', source: -1 };
/** `,"success":…,"error":…,"durationNs":"` */
const segResult = { bytes: new Uint8Array(0) as Uint8Array, valid: false, success: false, error: '' };
/** `","acceptFlags":…` through the socket's `"peer":{"ip":`, per process */
const newSegProcess = () => ({
  bytes: new Uint8Array(0) as Uint8Array,
  valid: false,
  acceptFlags: 0,
  acceptFlagNames: [] as string[],
  flags: [] as string[],
  pid: 0,
  tid: 0,
  ppid: 0,
  uid: 0,
  gid: 0,
  comm: '',
  family: 0,
  familyNumber: 0,
  type: '',
  protocol: 0,
  localIp: '',
  localPort: 0,
  localNull: false,
});
/** `},"v4Mapped":…` through `"listener":{"fd":…,"backlog":` */
const newSegSocketEnd = () => ({
  bytes: new Uint8Array(0) as Uint8Array,
  valid: false,
  v4Mapped: false,
  unixPath: '',
  peerPid: 0,
  resolved: false,
  fd: 0,
});
/** `,"maxBacklog":…` through the user address's `"ip":…,"port":` */
const newSegListenerEnd = () => ({
  bytes: new Uint8Array(0) as Uint8Array,
  valid: false,
  maxBacklog: 0,
  resolved: false,
  present: false,
  addrlen: 0,
  familyNumber: 0,
  ip: '',
});
/** `,"fault":…` to the end of the line */
const newSegTail = () => ({
  bytes: new Uint8Array(0) as Uint8Array,
  valid: false,
  fault: false,
  mismatch: false,
  mnt: 0,
  pid: 0,
  net: 0,
  uts: 0,
  cgroupId: 0n,
  cgroupV1Id: 0n,
  hasContainer: false,
  cId: '',
  cRuntime: '',
  cName: '',
  cImage: '',
  cImageId: '',
  cCgroupPath: '',
  pod: undefined as Pod | undefined,
  enrichment: undefined as EnrichmentSeen | undefined,
  kind: 0,
  policy: undefined as PolicySeen | undefined,
});

/** A process's three segments: one lookup per event. */
const segsOfProcess = new SegMemo(() => ({
  process: newSegProcess(),
  socketEnd: newSegSocketEnd(),
  listenerEnd: newSegListenerEnd(),
}));
const segTail = new SegMemo(newSegTail);

/** The event's native JSON line (no newline) appended to `w`. */
export function writeEventJson(w: JsonWriter, ev: AcceptEvent): void {
  const p = ev.process;
  const s = ev.socket;
  const l = ev.listener;
  const u = ev.userAddress;
  const n = ev.namespaces;
  const cg = ev.cgroup;
  // Listener records (few) too: the cached tail below is an accept's, with listenerInfo null.
  if (!p || !s?.peer || !l || !u || !n || !cg || ev.summary || ev.listenerInfo || ev.findingInfo) {
    writeEachField(w, ev);
    return;
  }
  w.room(0);
  w.k(K.eventId);
  w.str(ev.eventId);
  w.k(K.seq);
  w.big(ev.seq);
  w.k(K.time);
  w.big(ev.timeUnixNano);
  w.k(K.ktime);
  w.big(ev.ktimeNs);

  const a = segNode;
  if (a.nodeName === ev.nodeName && a.source === ev.source) w.raw(a.bytes);
  else {
    const from = w.pos;
    w.k(K.nodeName);
    w.str(ev.nodeName);
    w.k(K.source);
    w.ascii(sourceToJSON(ev.source));
    w.k(K.ret);
    a.bytes = w.since(from);
    a.nodeName = ev.nodeName;
    a.source = ev.source;
  }
  w.num(ev.ret);

  const b = segResult;
  if (b.valid && b.success === ev.success && b.error === ev.error) w.raw(b.bytes);
  else {
    const from = w.pos;
    w.k(K.success);
    w.bool(ev.success);
    w.k(K.error);
    w.str(ev.error);
    w.k(K.duration);
    b.bytes = w.since(from);
    b.valid = true;
    b.success = ev.success;
    b.error = ev.error;
  }
  w.big(ev.durationNs);

  const ps = segsOfProcess.get(p.pid);
  const c = ps.process;
  const local = s.local;
  const peer = s.peer;
  if (
    c.valid &&
    c.acceptFlags === ev.acceptFlags &&
    c.pid === p.pid &&
    c.tid === p.tid &&
    c.ppid === p.ppid &&
    c.uid === p.uid &&
    c.gid === p.gid &&
    c.comm === p.comm &&
    c.family === s.family &&
    c.familyNumber === s.familyNumber &&
    c.type === s.type &&
    c.protocol === s.protocol &&
    (local ? !c.localNull && c.localIp === local.ip && c.localPort === local.port : c.localNull) &&
    sameStrings(c.acceptFlagNames, ev.acceptFlagNames) &&
    sameStrings(c.flags, ev.flags)
  ) {
    w.raw(c.bytes);
  } else {
    const from = w.pos;
    w.k(K.acceptFlags);
    w.num(ev.acceptFlags);
    w.k(K.acceptFlagNames);
    w.strings(ev.acceptFlagNames);
    w.k(K.flags);
    w.strings(ev.flags);
    w.k(K.process);
    w.k(K.pid);
    w.num(p.pid);
    w.k(K.tid);
    w.num(p.tid);
    w.k(K.ppid);
    w.num(p.ppid);
    w.k(K.uid);
    w.num(p.uid);
    w.k(K.gid);
    w.num(p.gid);
    w.k(K.comm);
    w.str(p.comm);
    w.k(K.socket);
    w.k(K.family);
    w.ascii(addressFamilyToJSON(s.family));
    w.k(K.familyNumber);
    w.num(s.familyNumber);
    w.k(K.type);
    w.str(s.type);
    w.k(K.protocol);
    w.num(s.protocol);
    w.k(K.local);
    endpoint(w, local);
    w.k(K.peer);
    w.k(K.ip);
    c.bytes = w.since(from);
    c.valid = true;
    c.acceptFlags = ev.acceptFlags;
    c.acceptFlagNames = [...ev.acceptFlagNames];
    c.flags = [...ev.flags];
    c.pid = p.pid;
    c.tid = p.tid;
    c.ppid = p.ppid;
    c.uid = p.uid;
    c.gid = p.gid;
    c.comm = p.comm;
    c.family = s.family;
    c.familyNumber = s.familyNumber;
    c.type = s.type;
    c.protocol = s.protocol;
    c.localNull = !local;
    c.localIp = local?.ip ?? '';
    c.localPort = local?.port ?? 0;
  }
  // The peer varies per connection (many clients): written per event, not remembered.
  w.str(peer.ip);
  w.k(K.port);
  w.num(peer.port);

  const d = ps.socketEnd;
  if (
    d.valid &&
    d.v4Mapped === s.v4Mapped &&
    d.unixPath === s.unixPath &&
    d.peerPid === s.peerPid &&
    d.resolved === s.resolved &&
    d.fd === l.fd
  ) {
    w.raw(d.bytes);
  } else {
    const from = w.pos;
    w.byte(0x7d);
    w.k(K.v4Mapped);
    w.bool(s.v4Mapped);
    w.k(K.unixPath);
    w.str(s.unixPath);
    w.k(K.peerPid);
    w.num(s.peerPid);
    w.k(K.resolved);
    w.bool(s.resolved);
    w.byte(0x7d);
    w.k(K.listener);
    w.k(K.fd);
    w.num(l.fd);
    w.k(K.backlog);
    d.bytes = w.since(from);
    d.valid = true;
    d.v4Mapped = s.v4Mapped;
    d.unixPath = s.unixPath;
    d.peerPid = s.peerPid;
    d.resolved = s.resolved;
    d.fd = l.fd;
  }
  w.num(l.backlog);

  const e = ps.listenerEnd;
  if (
    e.valid &&
    e.maxBacklog === l.maxBacklog &&
    e.resolved === l.resolved &&
    e.present === u.present &&
    e.addrlen === u.addrlen &&
    e.familyNumber === u.familyNumber &&
    e.ip === u.ip
  ) {
    w.raw(e.bytes);
  } else {
    const from = w.pos;
    w.k(K.maxBacklog);
    w.num(l.maxBacklog);
    w.k(K.resolved);
    w.bool(l.resolved);
    w.byte(0x7d);
    w.k(K.userAddress);
    w.k(K.present);
    w.bool(u.present);
    w.k(K.addrlen);
    w.num(u.addrlen);
    w.k(K.uaFamilyNumber);
    w.num(u.familyNumber);
    w.k(K.uaIp);
    w.str(u.ip);
    w.k(K.port);
    e.bytes = w.since(from);
    e.valid = true;
    e.maxBacklog = l.maxBacklog;
    e.resolved = l.resolved;
    e.present = u.present;
    e.addrlen = u.addrlen;
    e.familyNumber = u.familyNumber;
    e.ip = u.ip;
  }
  w.num(u.port);

  const t = segTail.get(ev.pod ?? ev.container ?? cg.id);
  const ct = ev.container;
  const en = ev.enrichment;
  const pol = ev.policy;
  if (
    t.valid &&
    t.fault === u.fault &&
    t.mismatch === u.mismatch &&
    t.mnt === n.mnt &&
    t.pid === n.pid &&
    t.net === n.net &&
    t.uts === n.uts &&
    t.cgroupId === cg.id &&
    t.cgroupV1Id === cg.v1Id &&
    (ct
      ? t.hasContainer &&
        t.cId === ct.id &&
        t.cRuntime === ct.runtime &&
        t.cName === ct.name &&
        t.cImage === ct.image &&
        t.cImageId === ct.imageId &&
        t.cCgroupPath === ct.cgroupPath
      : !t.hasContainer) &&
    t.pod === ev.pod &&
    sameEnrichment(t.enrichment, en) &&
    t.kind === ev.kind &&
    samePolicy(t.policy, pol)
  ) {
    w.raw(t.bytes);
    return;
  }
  const from = w.pos;
  w.k(K.fault);
  w.bool(u.fault);
  w.k(K.mismatch);
  w.bool(u.mismatch);
  w.byte(0x7d);
  writeTail(w, ev); // namespaces and cgroup are present and summary absent here (the fast path's precondition)
  t.bytes = w.since(from);
  t.valid = true;
  t.fault = u.fault;
  t.mismatch = u.mismatch;
  t.mnt = n.mnt;
  t.pid = n.pid;
  t.net = n.net;
  t.uts = n.uts;
  t.cgroupId = cg.id;
  t.cgroupV1Id = cg.v1Id;
  t.hasContainer = ct !== undefined;
  t.cId = ct?.id ?? '';
  t.cRuntime = ct?.runtime ?? '';
  t.cName = ct?.name ?? '';
  t.cImage = ct?.image ?? '';
  t.cImageId = ct?.imageId ?? '';
  t.cCgroupPath = ct?.cgroupPath ?? '';
  t.pod = ev.pod;
  t.enrichment = seenEnrichment(en);
  t.kind = ev.kind;
  t.policy = seenPolicy(pol);
}

const scratch = new JsonWriter(16 * 1024);

/** The event's native JSON line (no newline) as a string: writeEventJson into a reused buffer. */
export function eventToJsonLine(ev: AcceptEvent): string {
  return scratch.textOf(writeEventJson, ev);
}
