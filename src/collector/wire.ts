import { BinaryReader } from '@bufbuild/protobuf/wire';
import { LossCounters, PublishRequest } from '../gen/doorwatch/v1/collector.js';
import {
  type AcceptEvent,
  AcceptSummary,
  AuditPolicyRef,
  Cgroup,
  Container,
  type Endpoint,
  Enrichment,
  FindingInfo,
  type Listener,
  ListenerInfo,
  Namespaces,
  Pod,
  type Process,
  type Socket,
  type UserAddress,
} from '../gen/doorwatch/v1/event.js';

/**
 * The collector's decoder for Publish requests: the result equals
 * `PublishRequest.decode(bytes)` (the generated ts-proto decoder, deep-equal;
 * test/unit/collector-wire.test.ts holds the two together over a corpus with
 * malformed input), for a fraction of the work on the hot path:
 *
 * - An event's own fields (ids, times, seq, result, the socket) are read by
 *   hand, and short strings that repeat (node name, comm, addresses, flag
 *   names) are interned instead of decoded again.
 * - What is constant per pod or container (namespaces, cgroup, container,
 *   pod, enrichment, kind, policy: the end of an event as encoders write it)
 *   is looked up ONCE per event by its bytes, and decoded once per distinct
 *   byte string: events whose sub-message bytes are equal share one object
 *   (bounded caches). Such objects are shared and must never be
 *   mutated; per-pod work downstream (formatting) can key on their identity.
 * - Anything unusual (an unknown field, an unexpected wire type, a group, a
 *   length past its end, a Hello) makes the whole request go through the
 *   generated decoder, so odd and malformed input gets exactly its answer
 *   (including its exceptions: server.ts turns those into INVALID_ARGUMENT).
 */

/** Thrown inside the fast path: decode this request with the generated decoder instead. */
const FALLBACK = new Error('wire: fall back to the generated decoder');

/** Buffer's own latin1 decoder (untyped in @types/node): one native call, no argument parsing. */
type Latin1 = Buffer & { latin1Slice(start: number, end: number): string };
const EMPTY = Buffer.alloc(0) as Latin1;
let buf: Latin1 = EMPTY;
let pos = 0;
/** The two halves of the last varint read. */
let lo = 0;
let hi = 0;

function varint(end: number): void {
  if (pos >= end) throw FALLBACK;
  let b = buf[pos++]!;
  if (b < 0x80) {
    lo = b;
    hi = 0;
    return;
  }
  let l = b & 0x7f;
  let h = 0;
  let shift = 7;
  for (; shift < 28; shift += 7) {
    if (pos >= end) throw FALLBACK;
    b = buf[pos++]!;
    l |= (b & 0x7f) << shift;
    if (b < 0x80) {
      lo = l >>> 0;
      hi = 0;
      return;
    }
  }
  // 5th byte: 4 bits to lo, 3 to hi.
  if (pos >= end) throw FALLBACK;
  b = buf[pos++]!;
  l |= (b & 0x0f) << 28;
  h = (b & 0x7f) >> 4;
  if (b >= 0x80) {
    for (shift = 3; shift <= 31; shift += 7) {
      if (pos >= end) throw FALLBACK;
      b = buf[pos++]!;
      h |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    if (b >= 0x80) throw FALLBACK; // more than 10 bytes
  }
  lo = l >>> 0;
  hi = h >>> 0;
}

const u32 = (end: number): number => {
  varint(end);
  return lo;
};
const i32 = (end: number): number => {
  varint(end);
  return lo | 0;
};
const bool = (end: number): boolean => {
  varint(end);
  return lo !== 0 || hi !== 0;
};
const dv = new DataView(new ArrayBuffer(8));
function u64(end: number): bigint {
  varint(end);
  if (hi === 0) return BigInt(lo);
  dv.setInt32(0, lo, true);
  dv.setInt32(4, hi, true);
  return dv.getBigUint64(0, true);
}

/** The end of a length-delimited field starting at pos (after its tag). */
function sub(end: number): number {
  varint(end);
  if (hi !== 0) throw FALLBACK;
  const e = pos + lo;
  if (e > end) throw FALLBACK;
  return e;
}

// ------------------------------------------------------------------ strings

const utf8 = new TextDecoder('utf-8', { ignoreBOM: true }); // as @bufbuild/protobuf decodes
/** Short ASCII strings, direct-mapped by a hash of their bytes: repeated values are not decoded again. */
const INTERN_MAX = 40;
const INTERN_SLOTS = 4096;
const interned: (string | undefined)[] = new Array(INTERN_SLOTS);

function str(end: number): string {
  const e = sub(end);
  const s = pos;
  pos = e;
  const len = e - s;
  if (len === 0) return '';
  if (len <= INTERN_MAX) {
    let h = len;
    for (let i = s; i < e; i++) {
      const c = buf[i]!;
      if (c > 0x7f) return utf8.decode(buf.subarray(s, e));
      h = (Math.imul(h, 31) + c) | 0;
    }
    const slot = (h ^ (h >>> 15)) & (INTERN_SLOTS - 1);
    const hit = interned[slot];
    if (hit !== undefined && hit.length === len) {
      let i = 0;
      while (i < len && hit.charCodeAt(i) === buf[s + i]) i++;
      if (i === len) return hit;
    }
    const v = buf.latin1Slice(s, e);
    interned[slot] = v;
    return v;
  }
  for (let i = s; i < e; i++) if (buf[i]! > 0x7f) return utf8.decode(buf.subarray(s, e));
  return buf.latin1Slice(s, e);
}

// ------------------------------------------------------------------ shared sub-messages

/**
 * A sub-message [pos, e) by the generated decoder. In the whole request that
 * decoder would read the same bytes the same way only if it ends exactly at
 * e (a field running past the end, a group or a zero tag that stops it early
 * would make it continue elsewhere): otherwise fall back.
 */
function generated<T>(decode: (r: BinaryReader) => T, e: number): T {
  const r = new BinaryReader(buf.subarray(pos, e));
  const v = decode(r);
  if (r.pos !== r.len) throw FALLBACK;
  return v;
}

/** Decoded sub-messages by their bytes (latin1 key), one map per type, bounded in entries and key bytes. */
class SubCache<T> {
  private readonly map = new Map<string, T>();
  private bytes = 0;
  constructor(
    private readonly decode: (r: BinaryReader) => T,
    // A collector serves every node: room for a large cluster's pods; the bytes bound the memory.
    private readonly maxEntries = 32_768,
    private readonly maxBytes = 8 << 20,
  ) {}

  get(end: number): T {
    const e = sub(end);
    const key = buf.latin1Slice(pos, e);
    let v = this.map.get(key);
    if (v === undefined) {
      v = generated(this.decode, e);
      if (this.map.size >= this.maxEntries || this.bytes + key.length > this.maxBytes) {
        this.map.clear();
        this.bytes = 0;
      }
      this.map.set(key, v);
      this.bytes += key.length;
    }
    pos = e;
    return v;
  }

  get size(): number {
    return this.map.size;
  }
}

const pods = new SubCache((r) => Pod.decode(r));
// Frozen: one object shared by the events of a container; the JSON writer keeps its text per (frozen) object.
const containers = new SubCache((r) => Object.freeze(Container.decode(r)));
const namespacesCache = new SubCache((r) => Namespaces.decode(r));
const cgroups = new SubCache((r) => Cgroup.decode(r));
const enrichments = new SubCache((r) => Enrichment.decode(r));
const policies = new SubCache((r) => AuditPolicyRef.decode(r));

/** Entries in the shared sub-message caches (tests, stats). */
export function wireCacheSizes(): Record<string, number> {
  return {
    pods: pods.size,
    containers: containers.size,
    namespaces: namespacesCache.size,
    cgroups: cgroups.size,
    tails: tailEntries,
    enrichments: enrichments.size,
    policies: policies.size,
  };
}

/**
 * An event's per-pod tail: fields 18-23 and 25 (namespaces, cgroup,
 * container, pod, enrichment, kind, policy), which an encoder writes last and
 * together. One key and one lookup for all of them; null = these bytes are
 * not such a tail (another field among them), decode field by field.
 */
interface Tail {
  namespaces: AcceptEvent['namespaces'];
  cgroup: AcceptEvent['cgroup'];
  container: AcceptEvent['container'];
  pod: AcceptEvent['pod'];
  enrichment: AcceptEvent['enrichment'];
  kind: number;
  policy: AcceptEvent['policy'];
}
const TAIL_MAX_ENTRIES = 32_768;
const TAIL_MAX_BYTES = 16 << 20;
/*
 * Keyed by a fingerprint of the bytes (their length and a sample of them), each hit checked byte for byte:
 * a string key cost a copy of the tail and a hash over all of it per event (~6 % of the collector's CPU).
 */
interface TailEntry {
  bytes: Buffer;
  t: Tail | null;
  next: TailEntry | undefined;
}
const tails = new Map<number, TailEntry>();
let tailEntries = 0;
let tailBytes = 0;

function fingerprint(start: number, e: number): number {
  const len = e - start;
  let h = len;
  const step = len > 32 ? len >>> 4 : 1;
  for (let i = start; i < e; i += step) h = (Math.imul(h, 31) + buf[i]!) | 0;
  for (let i = e > start + 8 ? e - 8 : start; i < e; i++) h = (Math.imul(h, 31) + buf[i]!) | 0;
  return h;
}

/** The tail [start, e) of an event, from the cache or decoded once (with the sub-message caches). */
function tail(start: number, e: number): Tail | null {
  const h = fingerprint(start, e);
  const len = e - start;
  const first = tails.get(h);
  for (let x = first; x !== undefined; x = x.next) {
    if (x.bytes.length === len && buf.compare(x.bytes, 0, len, start, e) === 0) return x.t;
  }
  const resume = pos;
  pos = start;
  const t = decodeTail(e);
  pos = resume;
  const bytes = Buffer.from(buf.subarray(start, e));
  if (tailEntries >= TAIL_MAX_ENTRIES || tailBytes + len > TAIL_MAX_BYTES) {
    tails.clear();
    tailEntries = 0;
    tailBytes = 0;
    tails.set(h, { bytes, t, next: undefined });
  } else tails.set(h, { bytes, t, next: first });
  tailEntries++;
  tailBytes += len;
  return t;
}

function decodeTail(e: number): Tail | null {
  const t: Tail = {
    namespaces: undefined,
    cgroup: undefined,
    container: undefined,
    pod: undefined,
    enrichment: undefined,
    kind: 0,
    policy: undefined,
  };
  while (pos < e) {
    const t0 = buf[pos++]!;
    if (t0 < 0x80 || pos >= e) return null;
    const t1 = buf[pos++]!;
    if (t1 >= 0x80) return null;
    switch ((t0 & 0x7f) | (t1 << 7)) {
      case 146:
        t.namespaces = namespacesCache.get(e);
        break;
      case 154:
        t.cgroup = cgroups.get(e);
        break;
      case 162:
        t.container = containers.get(e);
        break;
      case 170:
        t.pod = pods.get(e);
        break;
      case 178:
        t.enrichment = enrichments.get(e);
        break;
      case 184:
        t.kind = i32(e);
        break;
      case 202:
        t.policy = policies.get(e);
        break;
      default:
        return null;
    }
  }
  return pos === e ? t : null;
}

// ------------------------------------------------------------------ per-event messages

/**
 * Sub-messages that repeat across the events of a stream (the accepting
 * process, the listener, the local address): an event carrying the bytes of
 * one seen recently gets that one's (frozen) object instead of a new one.
 * Fewer objects per event is less for the young generation to scavenge and
 * less promoted while events wait for their sinks. Direct-mapped by a hash of
 * the bytes (a few hundred slots: interleaved pods and threads each keep
 * theirs), each hit checked byte for byte; small messages only.
 */
const SEEN_SLOTS = 256;
const SEEN_MAX_BYTES = 64;
class SeenBytes<T extends object> {
  private readonly bytes: Uint8Array[] = [];
  private readonly lens = new Int32Array(SEEN_SLOTS).fill(-1);
  private readonly values: (T | undefined)[] = new Array(SEEN_SLOTS);
  constructor(private readonly decode: (e: number) => T) {}

  /** The sub-message whose length prefix is at pos. */
  get(end: number): T {
    const e = sub(end);
    const start = pos;
    const len = e - start;
    if (len > SEEN_MAX_BYTES) return Object.freeze(this.decode(e)); // shared or not, the same contract
    const h = fingerprint(start, e);
    const slot = (h ^ (h >>> 11)) & (SEEN_SLOTS - 1);
    if (this.lens[slot] === len) {
      const b = this.bytes[slot]!;
      let i = 0;
      while (i < len && b[i] === buf[start + i]) i++;
      if (i === len) {
        pos = e;
        return this.values[slot]!;
      }
    }
    const v = Object.freeze(this.decode(e));
    let b = this.bytes[slot];
    if (b === undefined) {
      b = new Uint8Array(SEEN_MAX_BYTES);
      this.bytes[slot] = b;
    }
    for (let i = 0; i < len; i++) b[i] = buf[start + i]!;
    this.lens[slot] = len;
    this.values[slot] = v;
    return v;
  }
}

function processBody(e: number): Process {
  const m: Process = { pid: 0, tid: 0, ppid: 0, uid: 0, gid: 0, comm: '' };
  while (pos < e) {
    switch (buf[pos++]) {
      case 8:
        m.pid = u32(e);
        break;
      case 16:
        m.tid = u32(e);
        break;
      case 24:
        m.ppid = u32(e);
        break;
      case 32:
        m.uid = u32(e);
        break;
      case 40:
        m.gid = u32(e);
        break;
      case 50:
        m.comm = str(e);
        break;
      default:
        throw FALLBACK;
    }
  }
  if (pos !== e) throw FALLBACK;
  return m;
}

function listenerBody(e: number): Listener {
  const m: Listener = { fd: 0, backlog: 0, maxBacklog: 0, resolved: false };
  while (pos < e) {
    switch (buf[pos++]) {
      case 8:
        m.fd = i32(e);
        break;
      case 16:
        m.backlog = u32(e);
        break;
      case 24:
        m.maxBacklog = u32(e);
        break;
      case 32:
        m.resolved = bool(e);
        break;
      default:
        throw FALLBACK;
    }
  }
  if (pos !== e) throw FALLBACK;
  return m;
}

function endpoint(end: number): Endpoint {
  return endpointBody(sub(end));
}

function endpointBody(e: number): Endpoint {
  const m: Endpoint = { ip: '', port: 0 };
  while (pos < e) {
    const tag = buf[pos++]!;
    if (tag === 10) m.ip = str(e);
    else if (tag === 16) m.port = u32(e);
    else throw FALLBACK;
  }
  if (pos !== e) throw FALLBACK;
  return m;
}

function socket(end: number): Socket {
  const e = sub(end);
  const m: Socket = {
    family: 0,
    familyNumber: 0,
    type: '',
    protocol: 0,
    local: undefined,
    peer: undefined,
    v4Mapped: false,
    unixPath: '',
    peerPid: 0,
    resolved: false,
  };
  while (pos < e) {
    switch (buf[pos++]) {
      case 8:
        m.family = i32(e);
        break;
      case 16:
        m.familyNumber = u32(e);
        break;
      case 26:
        m.type = str(e);
        break;
      case 32:
        m.protocol = u32(e);
        break;
      case 42:
        m.local = seenLocals.get(e);
        break;
      case 50:
        m.peer = endpoint(e);
        break;
      case 56:
        m.v4Mapped = bool(e);
        break;
      case 66:
        m.unixPath = str(e);
        break;
      case 72:
        m.peerPid = u32(e);
        break;
      case 80:
        m.resolved = bool(e);
        break;
      default:
        throw FALLBACK;
    }
  }
  if (pos !== e) throw FALLBACK;
  return m;
}

function userAddress(end: number): UserAddress {
  const e = sub(end);
  const m: UserAddress = { present: false, addrlen: 0, familyNumber: 0, ip: '', port: 0, fault: false, mismatch: false };
  while (pos < e) {
    switch (buf[pos++]) {
      case 8:
        m.present = bool(e);
        break;
      case 16:
        m.addrlen = u32(e);
        break;
      case 24:
        m.familyNumber = u32(e);
        break;
      case 34:
        m.ip = str(e);
        break;
      case 40:
        m.port = u32(e);
        break;
      case 48:
        m.fault = bool(e);
        break;
      case 56:
        m.mismatch = bool(e);
        break;
      default:
        throw FALLBACK;
    }
  }
  if (pos !== e) throw FALLBACK;
  return m;
}

const seenProcesses = new SeenBytes(processBody);
const seenListeners = new SeenBytes(listenerBody);
const seenLocals = new SeenBytes(endpointBody);
/** An event's repeated string fields while empty (most events), shared; a new array once one is pushed. */
const NO_STRINGS: string[] = Object.freeze([]) as unknown as string[];

function event(end: number): AcceptEvent {
  const e = sub(end);
  const m: AcceptEvent = {
    eventId: '',
    seq: 0n,
    timeUnixNano: 0n,
    ktimeNs: 0n,
    nodeName: '',
    source: 0,
    ret: 0,
    success: false,
    error: '',
    durationNs: 0n,
    acceptFlags: 0,
    acceptFlagNames: NO_STRINGS,
    flags: NO_STRINGS,
    process: undefined,
    socket: undefined,
    listener: undefined,
    userAddress: undefined,
    namespaces: undefined,
    cgroup: undefined,
    container: undefined,
    pod: undefined,
    enrichment: undefined,
    kind: 0,
    summary: undefined,
    policy: undefined,
    // Filled by the collector's peer index (publish.ts), never sent by agents.
    peerAttribution: undefined,
    localAttribution: undefined,
    listenerInfo: undefined,
    findingInfo: undefined,
  };
  let tailTried = false;
  while (pos < e) {
    const at = pos;
    let tag = buf[pos++]!;
    if (tag >= 0x80) {
      // Fields 16..25 have two-byte tags.
      if (pos >= e) throw FALLBACK;
      const b = buf[pos++]!;
      if (b >= 0x80) throw FALLBACK;
      tag = (tag & 0x7f) | (b << 7);
      if (!tailTried && tag >= 146 && tag !== 194) {
        // The first of the per-pod fields: the rest of the event may be a known tail.
        tailTried = true;
        const t = tail(at, e);
        if (t !== null) {
          m.namespaces = t.namespaces;
          m.cgroup = t.cgroup;
          m.container = t.container;
          m.pod = t.pod;
          m.enrichment = t.enrichment;
          m.kind = t.kind;
          m.policy = t.policy;
          pos = e;
          break;
        }
      }
    }
    switch (tag) {
      case 10:
        m.eventId = str(e);
        break;
      case 16:
        m.seq = u64(e);
        break;
      case 24:
        m.timeUnixNano = u64(e);
        break;
      case 32:
        m.ktimeNs = u64(e);
        break;
      case 42:
        m.nodeName = str(e);
        break;
      case 48:
        m.source = i32(e);
        break;
      case 56:
        m.ret = i32(e);
        break;
      case 64:
        m.success = bool(e);
        break;
      case 74:
        m.error = str(e);
        break;
      case 80:
        m.durationNs = u64(e);
        break;
      case 88:
        m.acceptFlags = u32(e);
        break;
      case 98:
        if (m.acceptFlagNames === NO_STRINGS) m.acceptFlagNames = [];
        m.acceptFlagNames.push(str(e));
        break;
      case 106:
        if (m.flags === NO_STRINGS) m.flags = [];
        m.flags.push(str(e));
        break;
      case 114:
        m.process = seenProcesses.get(e);
        break;
      case 122:
        m.socket = socket(e);
        break;
      case 130:
        m.listener = seenListeners.get(e);
        break;
      case 138:
        m.userAddress = userAddress(e);
        break;
      case 146:
        m.namespaces = namespacesCache.get(e);
        break;
      case 154:
        m.cgroup = cgroups.get(e);
        break;
      case 162:
        m.container = containers.get(e);
        break;
      case 170:
        m.pod = pods.get(e);
        break;
      case 178:
        m.enrichment = enrichments.get(e);
        break;
      case 184:
        m.kind = i32(e);
        break;
      case 194: {
        // Summaries differ from one another (counts, times): not shared.
        const se = sub(e);
        m.summary = generated((r) => AcceptSummary.decode(r), se);
        pos = se;
        break;
      }
      case 202:
        m.policy = policies.get(e);
        break;
      case 226: {
        // Listener records (src/listeners): few, not shared.
        const le = sub(e);
        m.listenerInfo = generated((r) => ListenerInfo.decode(r), le);
        pos = le;
        break;
      }
      case 234: {
        // Findings (src/findings): rare, not shared.
        const fe = sub(e);
        m.findingInfo = generated((r) => FindingInfo.decode(r), fe);
        pos = fe;
        break;
      }
      default:
        throw FALLBACK;
    }
  }
  if (pos !== e) throw FALLBACK;
  if (m.acceptFlagNames !== NO_STRINGS) m.acceptFlagNames = lastFlagNames.share(m.acceptFlagNames);
  if (m.flags !== NO_STRINGS) m.flags = lastFlags.share(m.flags);
  return m;
}

/** The previous event's flag names (interned strings), shared frozen while the next event's are the same. */
class LastStrings {
  private last: string[] = NO_STRINGS;
  share(a: string[]): string[] {
    const l = this.last;
    if (a.length === l.length) {
      let i = 0;
      while (i < a.length && a[i] === l[i]) i++;
      if (i === a.length) return l;
    }
    this.last = Object.freeze(a) as string[];
    return this.last;
  }
}
const lastFlagNames = new LastStrings();
const lastFlags = new LastStrings();

function fastRequest(bytes: Uint8Array): PublishRequest {
  buf = (bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as Latin1;
  pos = 0;
  const end = buf.length;
  // Only the common shape: exactly one field, a batch (the Hello, once per stream, takes the generated path).
  if (end < 2 || buf[pos++] !== 0x12) throw FALLBACK;
  const be = sub(end);
  if (be !== end) throw FALLBACK;
  const batch: PublishRequest['batch'] & object = {
    firstSeq: 0n,
    events: [],
    losses: undefined,
    contexts: [],
    eventContexts: [],
  };
  const contexts: Tail[] = [];
  while (pos < be) {
    switch (buf[pos++]) {
      case 8:
        batch.firstSeq = u64(be);
        break;
      case 18:
        batch.events.push(event(be));
        break;
      case 26: {
        const le = sub(be);
        batch.losses = generated((r) => LossCounters.decode(r), le);
        pos = le;
        break;
      }
      case 34: {
        // A context: an event's per-pod fields, the same bytes an encoder writes as an event's tail.
        const ce = sub(be);
        const t = tail(pos, ce);
        if (t === null) throw FALLBACK;
        contexts.push(t);
        pos = ce;
        break;
      }
      case 42: {
        const re = sub(be);
        while (pos < re) batch.eventContexts.push(u32(re));
        break;
      }
      default:
        throw FALLBACK;
    }
  }
  if (pos !== be) throw FALLBACK;
  applyContexts(batch.events, batch.eventContexts, contexts);
  batch.eventContexts = [];
  return { hello: undefined, batch };
}

/** Why a batch's contexts cannot be applied (the request is malformed: INVALID_ARGUMENT). */
export class BatchContextError extends Error {}

/**
 * Give each event that refers to a context (EventBatch.event_contexts) that context's per-pod fields. Only
 * those five are taken from a context; an event that refers to one must carry none of them itself.
 */
type PerPod = Pick<AcceptEvent, 'namespaces' | 'cgroup' | 'container' | 'pod' | 'enrichment'>;
function applyContexts(events: AcceptEvent[], refs: number[], contexts: readonly PerPod[]): void {
  if (refs.length === 0) return;
  if (refs.length !== events.length) {
    throw new BatchContextError(
      `batch.event_contexts has ${refs.length} entries for ${events.length} events (0 or one per event)`,
    );
  }
  for (let i = 0; i < refs.length; i++) {
    const k = refs[i]!;
    if (k === 0) continue;
    if (k > contexts.length)
      throw new BatchContextError(`batch.event_contexts[${i}] is ${k}, but the batch has ${contexts.length} contexts`);
    const ev = events[i]!;
    if (ev.namespaces || ev.cgroup || ev.container || ev.pod || ev.enrichment) {
      throw new BatchContextError(`batch.events[${i}] refers to context ${k} but carries per-pod fields of its own`);
    }
    const c = contexts[k - 1]!;
    ev.namespaces = c.namespaces;
    ev.cgroup = c.cgroup;
    ev.container = c.container;
    ev.pod = c.pod;
    ev.enrichment = c.enrichment;
  }
}

/** The generated decoder's batch with its contexts applied, as the fast path returns it. */
function resolved(req: PublishRequest): PublishRequest {
  const b = req.batch;
  if (!b || (b.contexts.length === 0 && b.eventContexts.length === 0)) return req;
  applyContexts(b.events, b.eventContexts, b.contexts);
  b.contexts = [];
  b.eventContexts = [];
  return req;
}

/**
 * `PublishRequest.decode(bytes)` with the batch's contexts applied to its events (`contexts` and
 * `event_contexts` then empty: what follows sees whole events), faster; throws exactly when that throws (it
 * is what runs then), or a BatchContextError for contexts that cannot be applied.
 */
export function decodePublishRequest(bytes: Uint8Array): PublishRequest {
  let req: PublishRequest | undefined;
  try {
    req = fastRequest(bytes);
  } catch (e) {
    // FALLBACK, or anything else the fast path tripped on: the generated decoder answers (below).
    if (e instanceof BatchContextError) throw e;
  } finally {
    buf = EMPTY; // do not hold the request's memory
  }
  return req ?? resolved(PublishRequest.decode(bytes));
}
