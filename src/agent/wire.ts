import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { LossCounters, PublishRequest } from '../gen/doorwatch/v1/collector.js';
import { encodeEvent, varintLength, writeVarint } from './event-encoder.js';

/**
 * Each event is protobuf-encoded once, into its spool record
 * (event-encoder.ts); a Publish batch splices those same bytes, where the
 * generated code would deep-copy the request and encode every event
 * again: protobuf encoding was the agent's largest
 * per-event cost (docs/benchmarks.md). test/unit/agent-wire.test.ts holds the
 * bytes equal to the generated encoder's.
 */

export { encodeEvent } from './event-encoder.js';

/** EventBatch.losses (field 3) as bytes: tag, length, LossCounters. */
export const lossField = (losses: LossCounters): Uint8Array =>
  LossCounters.encode(losses, new BinaryWriter().uint32(26).fork()).join().finish();

/** A uint64 as a protobuf varint (EventBatch.first_seq's value). */
export const uint64Bytes = (v: bigint): Uint8Array => new BinaryWriter().uint64(v).finish();

/** Events of a batch as encoded bytes: parts[i].subarray(skip) is event i's protobuf. */
export interface EncodedEvents {
  firstSeq: bigint;
  parts: readonly Buffer[];
  /** Bytes before each payload (a spool record's header), or 0. */
  skip: number;
}

/**
 * PublishRequest{batch} bytes from encoded events, exactly as
 * PublishRequest.encode({batch: {firstSeq, events, losses}}).finish():
 * sizes first, then one buffer, each payload copied once.
 */
export function encodeBatchRequest(b: EncodedEvents, losses: LossCounters | undefined): Uint8Array {
  // EventBatch: first_seq (1, varint), events (2, repeated message), losses (3, message).
  const head = b.firstSeq !== 0n ? new BinaryWriter().uint32(8).uint64(b.firstSeq).finish() : undefined;
  const lossBytes = losses !== undefined ? lossField(losses) : undefined;
  const skip = b.skip;
  let size = (head?.length ?? 0) + (lossBytes?.length ?? 0);
  for (const p of b.parts) {
    const n = p.length - skip;
    size += 1 + varintLength(n) + n;
  }
  // PublishRequest.batch is field 2 (length-delimited).
  const out = Buffer.allocUnsafe(1 + varintLength(size) + size);
  out[0] = 0x12;
  let off = writeVarint(size, out, 1);
  if (head) {
    out.set(head, off);
    off += head.length;
  }
  for (const p of b.parts) {
    const n = p.length - skip;
    out[off] = 0x12;
    off = writeVarint(n, out, off + 1);
    p.copy(out, off, skip);
    off += n;
  }
  if (lossBytes) out.set(lossBytes, off);
  return out;
}

/** PublishRequest bytes, exactly as PublishRequest.encode(req).finish(). */
export function encodePublishRequest(req: PublishRequest): Uint8Array {
  const b = req.batch;
  if (!b || req.hello !== undefined) return PublishRequest.encode(req).finish();
  return encodeBatchRequest({ firstSeq: b.firstSeq, parts: b.events.map(encodeEvent), skip: 0 }, b.losses);
}

/** What the publisher queues: a request, or one already encoded (a batch). */
export type OutgoingRequest = PublishRequest | Uint8Array;

/**
 * A batch sent with contexts (EventBatch.contexts, docs/transport.md): event j is bufs[j] from starts[j] to
 * ends[j], less the bytes of contexts[refs[j] - 1] at cuts[j] when refs[j] > 0 (its per-pod fields).
 */
export interface ContextBatch {
  firstSeq: bigint;
  contexts: Uint8Array[];
  bufs: Buffer[];
  starts: number[];
  ends: number[];
  cuts: number[];
  refs: number[];
}

/**
 * PublishRequest{batch} bytes: first_seq, the contexts, the events without their per-pod fields, event_contexts,
 * losses. `alloc` gives the buffer they are written to (its start, exactly `size` bytes used): a pooled one.
 */
export function encodeContextsRequest(
  e: ContextBatch,
  losses: LossCounters | undefined,
  alloc: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  const n = e.starts.length;
  let ctxBytes = 0;
  for (const c of e.contexts) ctxBytes += 1 + varintLength(c.length) + c.length;
  let evBytes = 0;
  let refBytes = 0;
  for (let j = 0; j < n; j++) {
    const k = e.refs[j]!;
    const len = e.ends[j]! - e.starts[j]! - (k > 0 ? e.contexts[k - 1]!.length : 0);
    evBytes += 1 + varintLength(len) + len;
    refBytes += varintLength(k);
  }
  const seq = uint64Bytes(e.firstSeq);
  const lb = losses !== undefined ? lossField(losses) : undefined;
  const size = 1 + seq.length + ctxBytes + evBytes + 1 + varintLength(refBytes) + refBytes + (lb?.length ?? 0);
  const out = alloc(1 + varintLength(size) + size);
  out[0] = 0x12;
  let o = writeVarint(size, out, 1);
  out[o++] = 0x08;
  out.set(seq, o);
  o += seq.length;
  for (const c of e.contexts) {
    out[o++] = 0x22;
    o = writeVarint(c.length, out, o);
    out.set(c, o);
    o += c.length;
  }
  // Buffer.copy by offsets: a subarray per event to hand to set() was a view allocated per event.
  for (let j = 0; j < n; j++) {
    const b = e.bufs[j]!;
    const p = e.starts[j]!;
    const end = e.ends[j]!;
    const k = e.refs[j]!;
    out[o++] = 0x12;
    if (k === 0) {
      o = writeVarint(end - p, out, o);
      o += b.copy(out, o, p, end);
    } else {
      // The payload around its per-pod fields; what follows them is a few fields (kind, policy): by hand.
      const cut = e.cuts[j]!;
      const skip = e.contexts[k - 1]!.length;
      o = writeVarint(end - p - skip, out, o);
      o += b.copy(out, o, p, cut);
      for (let q = cut + skip; q < end; q++) out[o++] = b[q]!;
    }
  }
  out[o++] = 0x2a;
  o = writeVarint(refBytes, out, o);
  for (let j = 0; j < n; j++) o = writeVarint(e.refs[j]!, out, o);
  if (lb !== undefined) {
    out.set(lb, o);
    o += lb.length;
  }
  return out.subarray(0, o);
}

/**
 * Where an encoded AcceptEvent's per-pod fields (18-22: namespaces, cgroup, container, pod, enrichment)
 * are: [from, to) when they are present, each at most once, one after another, and the whole event parses;
 * undefined otherwise (the event then travels whole). For events read back from the spool, whose encoder's
 * bookkeeping is gone.
 */
export function perPodSpan(b: Uint8Array, start: number, end: number): [number, number] | undefined {
  let from = -1;
  let to = -1;
  let seen = 0;
  let prevPerPod = false;
  let p = start;
  while (p < end) {
    const at = p;
    const tag = varint28(b, p, end);
    if (tag < 0) return undefined;
    p = vEnd;
    const wt = tag & 7;
    if (wt === 2) {
      const len = varint28(b, p, end);
      if (len < 0) return undefined;
      p = vEnd + len;
    } else if (wt === 0) {
      for (let i = 0; b[p++]! >= 0x80; i++) if (i >= 9 || p >= end) return undefined;
    } else if (wt === 1) p += 8;
    else if (wt === 5) p += 4;
    else return undefined;
    if (p > end) return undefined;
    const no = tag >>> 3;
    const perPod = no >= 18 && no <= 22;
    if (perPod) {
      const bit = 1 << (no - 18);
      if (wt !== 2 || seen & bit || (from >= 0 && !prevPerPod)) return undefined;
      seen |= bit;
      if (from < 0) from = at;
      to = p;
    }
    prevPerPod = perPod;
  }
  return from < 0 ? undefined : [from, to];
}

/** Where the last varint28 ended. */
let vEnd = 0;
/**
 * The varint at b[p] (tags and lengths: 4 bytes, 28 bits at most — anything longer is not an event this agent
 * wrote), or -1; vEnd is set past it.
 */
function varint28(b: Uint8Array, p: number, end: number): number {
  let x = b[p++]!;
  let v = x & 0x7f;
  for (let shift = 7; x >= 0x80; shift += 7) {
    if (shift > 21 || p >= end) return -1;
    x = b[p++]!;
    v |= (x & 0x7f) << shift;
  }
  vEnd = p;
  return v;
}

/**
 * Events as stored (the spool's payloads) as a ContextBatch: each distinct run of per-pod bytes once.
 * Distinct ones are found by length and a sample of their bytes, then compared whole.
 */
export function contextsFromPayloads(firstSeq: bigint, payloads: readonly Buffer[]): ContextBatch {
  const e: ContextBatch = { firstSeq, contexts: [], bufs: [], starts: [], ends: [], cuts: [], refs: [] };
  const byPrint = new Map<number, number[]>();
  for (const pl of payloads) {
    e.bufs.push(pl);
    e.starts.push(0);
    e.ends.push(pl.length);
    const span = perPodSpan(pl, 0, pl.length);
    if (span === undefined) {
      e.cuts.push(0);
      e.refs.push(0);
      continue;
    }
    const [a, z] = span;
    const len = z - a;
    let h = len;
    for (let i = a; i < z; i += 1 + (len >>> 4)) h = (Math.imul(h, 31) + pl[i]!) | 0;
    let k = 0;
    const same = byPrint.get(h);
    if (same) for (const c of same) if (pl.compare(e.contexts[c - 1]!, 0, len, a, z) === 0) k = c;
    if (k === 0) {
      e.contexts.push(pl.subarray(a, z));
      k = e.contexts.length;
      if (same) same.push(k);
      else byPrint.set(h, [k]);
    }
    e.cuts.push(a);
    e.refs.push(k);
  }
  return e;
}

/** Whether some per-pod bytes repeat in the batch (fewer contexts than events that refer to one): else whole events are smaller. */
export function contextsWorthIt(e: ContextBatch): boolean {
  let refs = 0;
  for (const k of e.refs) if (k > 0) refs++;
  return e.contexts.length < refs;
}
