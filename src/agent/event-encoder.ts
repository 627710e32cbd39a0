import { BinaryWriter } from '@bufbuild/protobuf/wire';
import {
  type AcceptEvent,
  AcceptSummary,
  AuditPolicyRef,
  type Cgroup,
  type Container,
  type Endpoint,
  type Enrichment,
  FindingInfo,
  ListenerInfo,
  type Namespaces,
  Pod,
  type Process,
} from '../gen/doorwatch/v1/event.js';

/**
 * AcceptEvent -> protobuf bytes, written straight into a caller's buffer:
 * byte-for-byte what the generated `AcceptEvent.encode(ev).finish()` makes
 * (test/unit/event-encoder.test.ts holds the two equal over a varied corpus),
 * at a fraction of its cost. The generated encoder forks a writer per nested
 * message and copies every sub-buffer on join; here nested messages are
 * written in place with a one-byte length slot (moved in the rare case a
 * message is 128 bytes or more), and what is constant per pod, container,
 * node, flag set or policy is encoded once and copied:
 *
 * - Pod: per object (the enricher shares one Pod per pod version), WeakMap;
 * - Container: per frozen object (shared per container and cgroup path), WeakMap;
 * - flag-name arrays: per array (to-event shares one frozen array per value);
 * - node name, event-id prefix, policy ref: the last value seen.
 *
 * Field order and default-skipping follow the generated code (declaration
 * order; proto3 defaults omitted; a present sub-message always written, even
 * empty).
 */

const scratch = new DataView(new ArrayBuffer(8));

/** Bytes of n as a protobuf varint (n < 2^32). */
export function varintLength(n: number): number {
  let len = 1;
  while (n > 0x7f) {
    n >>>= 7;
    len++;
  }
  return len;
}

/** n as a varint at out[off]; returns the offset after it. */
export function writeVarint(n: number, out: Uint8Array, off: number): number {
  while (n > 0x7f) {
    out[off++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[off++] = n;
  return off;
}

export class ByteSink {
  buf: Buffer;
  pos = 0;

  constructor(initial = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  /** Room for n more bytes; grows by doubling (the old bytes are copied, views into them stay valid). */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Hand the written bytes over and start a fresh buffer of the same capacity. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(Math.max(this.buf.length, 4096));
    this.pos = 0;
    return out;
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  varint(n: number): void {
    this.pos = writeVarint(n, this.buf, this.pos);
  }

  int32(n: number): void {
    if (n >= 0) {
      this.varint(n);
      return;
    }
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < 9; i++) {
      b[p++] = (n & 0x7f) | 0x80;
      n >>= 7;
    }
    b[p++] = 1;
    this.pos = p;
  }

  uint64(v: bigint): void {
    scratch.setBigUint64(0, v, true);
    let lo = scratch.getUint32(0, true);
    let hi = scratch.getUint32(4, true);
    const b = this.buf;
    let p = this.pos;
    while (hi > 0 || lo > 0x7f) {
      b[p++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  /** Length-prefixed UTF-8; ASCII written by hand (the usual case), anything else by Buffer.write. */
  string(s: string): void {
    const len = s.length;
    this.ensure(len * 3 + 5);
    if (len < 0x80) {
      const b = this.buf;
      const start = this.pos + 1;
      let p = start;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[p++] = c;
      }
      if (i === len) {
        b[this.pos] = len;
        this.pos = p;
        return;
      }
    }
    const bytes = Buffer.byteLength(s, 'utf8');
    this.varint(bytes);
    this.pos += this.buf.write(s, this.pos, bytes, 'utf8');
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Start a nested message: tag, then a one-byte length slot. Returns the slot's offset. */
  open(tag: number): number {
    this.buf[this.pos++] = tag;
    return this.pos++;
  }

  /** End a nested message opened at `slot`: fill its length, moving the body when it needs a longer prefix. */
  close(slot: number): void {
    const len = this.pos - slot - 1;
    if (len < 0x80) {
      this.buf[slot] = len;
      return;
    }
    let extra = 0;
    for (let n = len >>> 7; n > 0; n >>>= 7) extra++;
    this.ensure(extra);
    this.buf.copyWithin(slot + 1 + extra, slot + 1, this.pos);
    this.pos = slot;
    this.varint(len);
    this.pos += len;
  }
}

// Wire tags: (field << 3) | wire type (0 varint, 2 length-delimited).
const once = <K extends object>(make: (k: K) => Buffer) => {
  const cache = new WeakMap<K, Buffer>();
  return (k: K): Buffer => {
    let b = cache.get(k);
    if (!b) {
      b = make(k);
      cache.set(k, b);
    }
    return b;
  };
};

/** A whole field (tag, length, body) by the generated encoder: for what is encoded once and copied. */
const field = <T>(tag: number, encode: (m: T, w: BinaryWriter) => BinaryWriter, m: T): Buffer =>
  Buffer.from(encode(m, new BinaryWriter().uint32(tag).fork()).join().finish());

const podField = once((p: Pod) => field(170, Pod.encode, p));

function containerBody(c: Container): Buffer {
  const w = new ByteSink(256);
  w.ensure(8);
  w.byte(162);
  const slot = w.open(1);
  if (c.id !== '') str(w, 10, c.id);
  if (c.runtime !== '') str(w, 18, c.runtime);
  if (c.name !== '') str(w, 26, c.name);
  if (c.image !== '') str(w, 34, c.image);
  if (c.imageId !== '') str(w, 42, c.imageId);
  if (c.cgroupPath !== '') str(w, 50, c.cgroupPath);
  w.close(slot);
  return Buffer.from(w.take());
}
const containerField = once(containerBody);

const stringsField = (tag: number) =>
  once((names: string[]) => {
    const w = new ByteSink(256);
    for (const n of names) str(w, tag, n);
    return Buffer.from(w.take());
  });
const acceptFlagNamesField = stringsField(98);
const flagsField = stringsField(106);

/* One field each; the caller has ensured room for the tag and a varint. */
function uint(w: ByteSink, tag: number, v: number): void {
  w.byte(tag);
  w.varint(v);
}
function int(w: ByteSink, tag: number, v: number): void {
  w.byte(tag);
  w.int32(v);
}
function u64(w: ByteSink, tag: number, v: bigint): void {
  w.byte(tag);
  w.uint64(v);
}
function flag(w: ByteSink, tag: number): void {
  w.byte(tag);
  w.byte(1);
}

function str(w: ByteSink, tag: number, s: string): void {
  w.ensure(1);
  w.byte(tag);
  w.string(s);
}

/** Last-value caches: a run of events shares a node, an id prefix, a policy. */
let lastNode = '';
let lastNodeBytes: Buffer = Buffer.alloc(0);
let lastPolicy: AuditPolicyRef | undefined;
let lastPolicyBytes: Buffer = Buffer.alloc(0);

function policyBytes(p: AuditPolicyRef): Buffer {
  if (
    lastPolicy === undefined ||
    (p !== lastPolicy && (p.origin !== lastPolicy.origin || p.mode !== lastPolicy.mode || p.name !== lastPolicy.name))
  ) {
    lastPolicyBytes = field(202, AuditPolicyRef.encode, p);
    lastPolicy = p;
  }
  return lastPolicyBytes;
}

function endpoint(w: ByteSink, tag: number, e: Endpoint): void {
  w.ensure(16);
  const slot = w.open(tag);
  if (e.ip !== '') str(w, 10, e.ip);
  w.ensure(8);
  if (e.port !== 0) uint(w, 16, e.port);
  w.close(slot);
}

function processField(w: ByteSink, p: Process): void {
  w.ensure(64);
  const slot = w.open(114);
  if (p.pid !== 0) uint(w, 8, p.pid);
  if (p.tid !== 0) uint(w, 16, p.tid);
  if (p.ppid !== 0) uint(w, 24, p.ppid);
  if (p.uid !== 0) uint(w, 32, p.uid);
  if (p.gid !== 0) uint(w, 40, p.gid);
  if (p.comm !== '') str(w, 50, p.comm);
  w.close(slot);
}

function namespacesField(w: ByteSink, n: Namespaces): void {
  w.ensure(40);
  w.byte(146);
  const slot = w.open(1);
  if (n.mnt !== 0) uint(w, 8, n.mnt);
  if (n.pid !== 0) uint(w, 16, n.pid);
  if (n.net !== 0) uint(w, 24, n.net);
  if (n.uts !== 0) uint(w, 32, n.uts);
  w.close(slot);
}

function cgroupField(w: ByteSink, cg: Cgroup): void {
  w.ensure(40);
  w.byte(154);
  const slot = w.open(1);
  if (cg.id !== 0n) u64(w, 8, cg.id);
  if (cg.v1Id !== 0n) u64(w, 16, cg.v1Id);
  w.close(slot);
}

/*
 * Capture shares one frozen Process / Namespaces / Cgroup / local Endpoint
 * object between consecutive events whose values are equal (to-event.ts):
 * the bytes written for the last such object are copied while the next event
 * carries the very same one. Only frozen objects: a mutable one could have
 * changed since.
 */
interface Last<T> {
  obj: T | undefined;
  bytes: Buffer;
}
const last = <T>(): Last<T> => ({ obj: undefined, bytes: Buffer.alloc(0) });
const lastProcess = last<Process>();
const lastNamespaces = last<Namespaces>();
const lastCgroup = last<Cgroup>();
const lastLocal = last<Endpoint>();
/** The enricher shares one frozen record per (status, missing) for complete and host events. */
const lastEnrichment = last<Enrichment>();

function remembered<T extends object>(w: ByteSink, l: Last<T>, obj: T, write: (w: ByteSink, o: T) => void): void {
  if (obj === l.obj) {
    w.raw(l.bytes);
    return;
  }
  const start = w.pos;
  write(w, obj);
  if (Object.isFrozen(obj)) {
    l.obj = obj;
    l.bytes = Buffer.from(w.buf.subarray(start, w.pos));
  }
}

const localField = (w: ByteSink, e: Endpoint) => endpoint(w, 42, e);

function enrichment(w: ByteSink, e: Enrichment): void {
  w.ensure(16);
  w.byte(178);
  const slot = w.open(1);
  if (e.status !== 0) {
    w.byte(8);
    w.int32(e.status);
  }
  for (const m of e.missing) str(w, 18, m);
  if (e.reason !== '') str(w, 26, e.reason);
  w.ensure(16);
  if (e.cgroupFromProc) {
    w.byte(32);
    w.byte(1);
  }
  if (e.waitedMs !== 0) {
    w.byte(40);
    w.varint(e.waitedMs);
  }
  w.close(slot);
}

/**
 * Fields 18-22 (namespaces, cgroup, container, pod, enrichment): what a pod's
 * accepts share, one after another in declaration order. Their bytes are kept,
 * and copied in one piece, while an event carries the very same five objects as
 * the last one, or as the last one of its (frozen, shared) container — so
 * interleaved pods keep theirs too; only when all five are immutable (frozen,
 * or the shared Pod, whose bytes podField keeps by identity too).
 *
 * The kept bytes are also what the publisher sends once per batch for the
 * events that share them (EventBatch.contexts): `lastTailBytes` and
 * `lastTailAt` say what the last encoded event's tail was, and where.
 */
interface Tail {
  ns: Namespaces | undefined;
  cg: Cgroup | undefined;
  ct: Container | undefined;
  pod: Pod | undefined;
  en: Enrichment | undefined;
  bytes: Buffer | undefined;
}
const lastTail: Tail = { ns: undefined, cg: undefined, ct: undefined, pod: undefined, en: undefined, bytes: undefined };
const byContainer = new WeakMap<Container, Tail>();
const immutable = (o: object | undefined): boolean => o === undefined || Object.isFrozen(o);

/** The last encoded event's kept tail bytes (undefined: none, or not immutable) ... */
export let lastTailBytes: Buffer | undefined;
/** ... and their offset from the start of that event's encoding. */
export let lastTailAt = 0;

function sameTail(t: Tail, ns: unknown, cg: unknown, ct: unknown, pod: unknown, en: unknown): boolean {
  return t.bytes !== undefined && ns === t.ns && cg === t.cg && ct === t.ct && pod === t.pod && en === t.en;
}

function podTail(w: ByteSink, ev: AcceptEvent, eventStart: number): void {
  const { namespaces: ns, cgroup: cg, container: ct, pod, enrichment: en } = ev;
  lastTailAt = w.pos - eventStart;
  let t: Tail | undefined = lastTail;
  if (!sameTail(t, ns, cg, ct, pod, en)) t = ct !== undefined ? byContainer.get(ct) : undefined;
  if (t !== undefined && sameTail(t, ns, cg, ct, pod, en)) {
    if (t !== lastTail) Object.assign(lastTail, t);
    lastTailBytes = t.bytes;
    w.raw(t.bytes!);
    return;
  }
  const start = w.pos;
  if (ns !== undefined) remembered(w, lastNamespaces, ns, namespacesField);
  if (cg !== undefined) remembered(w, lastCgroup, cg, cgroupField);
  // Frozen containers are shared per container (enrich/attribution.ts): their bytes are kept per object.
  if (ct !== undefined) w.raw(Object.isFrozen(ct) ? containerField(ct) : containerBody(ct));
  if (pod !== undefined) w.raw(podField(pod));
  if (en !== undefined) remembered(w, lastEnrichment, en, enrichment);
  const bytes =
    w.pos > start && immutable(ns) && immutable(cg) && immutable(ct) && immutable(en)
      ? Buffer.from(w.buf.subarray(start, w.pos))
      : undefined;
  lastTail.ns = ns;
  lastTail.cg = cg;
  lastTail.ct = ct;
  lastTail.pod = pod;
  lastTail.en = en;
  lastTail.bytes = bytes;
  lastTailBytes = bytes;
  if (bytes !== undefined && ct !== undefined) byContainer.set(ct, { ns, cg, ct, pod, en, bytes });
}

const TWO_53 = 2n ** 53n;

/**
 * event_id = idPrefix + decimal seq, from the prefix's bytes: building the string per event (a bigint to
 * text, a concatenation, then a character loop over it) cost more than the rest of the id.
 */
function spaceEventId(w: ByteSink, idPrefix: Uint8Array, seq: bigint): void {
  if (seq >= TWO_53) {
    str(w, 10, Buffer.from(idPrefix).toString('utf8') + seq);
    return;
  }
  const n = Number(seq);
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  const len = idPrefix.length + digits;
  w.ensure(len + 6);
  w.byte(10);
  w.varint(len);
  const b = w.buf;
  let p = w.pos;
  for (let i = 0; i < idPrefix.length; i++) b[p++] = idPrefix[i]!;
  p += digits;
  w.pos = p;
  let x = n;
  do {
    b[--p] = 48 + (x % 10);
    x = Math.floor(x / 10);
  } while (x > 0);
}

/**
 * Append the protobuf encoding of `ev` to `w`; returns the number of bytes written. `idPrefix` (UTF-8): an
 * event without an event_id is given idPrefix + seq, as if it had carried it.
 */
export function encodeEventInto(w: ByteSink, ev: AcceptEvent, idPrefix?: Uint8Array): number {
  const start = w.pos;
  w.ensure(512);
  if (ev.eventId !== '') str(w, 10, ev.eventId);
  else if (idPrefix !== undefined) spaceEventId(w, idPrefix, ev.seq);
  w.ensure(64);
  if (ev.seq !== 0n) {
    w.byte(16);
    w.uint64(ev.seq);
  }
  if (ev.timeUnixNano !== 0n) {
    w.byte(24);
    w.uint64(ev.timeUnixNano);
  }
  if (ev.ktimeNs !== 0n) {
    w.byte(32);
    w.uint64(ev.ktimeNs);
  }
  if (ev.nodeName !== '') {
    if (ev.nodeName !== lastNode) {
      const n = new ByteSink(128);
      str(n, 42, ev.nodeName);
      lastNodeBytes = Buffer.from(n.take());
      lastNode = ev.nodeName;
    }
    w.raw(lastNodeBytes);
  }
  w.ensure(64);
  if (ev.source !== 0) {
    w.byte(48);
    w.int32(ev.source);
  }
  if (ev.ret !== 0) {
    w.byte(56);
    w.int32(ev.ret);
  }
  if (ev.success) {
    w.byte(64);
    w.byte(1);
  }
  if (ev.error !== '') str(w, 74, ev.error);
  w.ensure(32);
  if (ev.durationNs !== 0n) {
    w.byte(80);
    w.uint64(ev.durationNs);
  }
  if (ev.acceptFlags !== 0) {
    w.byte(88);
    w.varint(ev.acceptFlags);
  }
  if (ev.acceptFlagNames.length) w.raw(acceptFlagNamesField(ev.acceptFlagNames));
  if (ev.flags.length) w.raw(flagsField(ev.flags));

  if (ev.process !== undefined) remembered(w, lastProcess, ev.process, processField);
  const s = ev.socket;
  if (s !== undefined) {
    w.ensure(64);
    const slot = w.open(122);
    if (s.family !== 0) int(w, 8, s.family);
    if (s.familyNumber !== 0) uint(w, 16, s.familyNumber);
    if (s.type !== '') str(w, 26, s.type);
    w.ensure(32);
    if (s.protocol !== 0) uint(w, 32, s.protocol);
    if (s.local !== undefined) remembered(w, lastLocal, s.local, localField);
    if (s.peer !== undefined) endpoint(w, 50, s.peer);
    w.ensure(16);
    if (s.v4Mapped) flag(w, 56);
    if (s.unixPath !== '') str(w, 66, s.unixPath);
    w.ensure(16);
    if (s.peerPid !== 0) uint(w, 72, s.peerPid);
    if (s.resolved) flag(w, 80);
    w.close(slot);
  }
  const l = ev.listener;
  if (l !== undefined) {
    w.ensure(40);
    w.byte(130);
    const slot = w.open(1);
    if (l.fd !== 0) int(w, 8, l.fd);
    if (l.backlog !== 0) uint(w, 16, l.backlog);
    if (l.maxBacklog !== 0) uint(w, 24, l.maxBacklog);
    if (l.resolved) flag(w, 32);
    w.close(slot);
  }
  const u = ev.userAddress;
  if (u !== undefined) {
    w.ensure(40);
    w.byte(138);
    const slot = w.open(1);
    if (u.present) flag(w, 8);
    if (u.addrlen !== 0) uint(w, 16, u.addrlen);
    if (u.familyNumber !== 0) uint(w, 24, u.familyNumber);
    if (u.ip !== '') str(w, 34, u.ip);
    w.ensure(16);
    if (u.port !== 0) uint(w, 40, u.port);
    if (u.fault) flag(w, 48);
    if (u.mismatch) flag(w, 56);
    w.close(slot);
  }
  podTail(w, ev, start);
  w.ensure(16);
  if (ev.kind !== 0) {
    w.byte(184);
    int(w, 1, ev.kind);
  }
  if (ev.summary !== undefined) w.raw(field(194, AcceptSummary.encode, ev.summary));
  if (ev.policy !== undefined) w.raw(policyBytes(ev.policy));
  // Listener records only (src/listeners): few, so the generated encoder.
  if (ev.listenerInfo !== undefined) w.raw(field(226, ListenerInfo.encode, ev.listenerInfo));
  // Findings only (src/findings): rare, so the generated encoder.
  if (ev.findingInfo !== undefined) w.raw(field(234, FindingInfo.encode, ev.findingInfo));
  return w.pos - start;
}

/** AcceptEvent.encode(ev).finish(), the fast way (a fresh buffer). */
export function encodeEvent(ev: AcceptEvent): Buffer {
  const w = new ByteSink(1024);
  encodeEventInto(w, ev);
  return w.take();
}
