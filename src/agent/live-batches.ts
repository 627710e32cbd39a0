import type { LossCounters } from '../gen/doorwatch/v1/collector.js';
import { varintLength, writeVarint } from './event-encoder.js';
import { type ContextBatch, encodeContextsRequest, lossField, uint64Bytes } from './wire.js';

/**
 * Events spooled in this process and not yet sent, kept as the bytes of the
 * Publish requests they will travel in: each event's protobuf is copied once,
 * at publish time, into a growing batch already framed as EventBatch.events
 * entries; cutting a batch writes its few header bytes in front and hands the
 * region to gRPC as is. The regions are carved one after another from shared
 * slabs (SLAB_BYTES), so the agent allocates about one byte of buffer per byte
 * it sends — buffer churn is what made V8 run a full mark-compact several
 * times a second (external memory pressure) when every append and every batch
 * had a buffer of its own.
 *
 * Wire shape, exactly as PublishRequest.encode makes it (test/unit/live-batches.test.ts):
 *   0x12 len(EventBatch)  0x08 first_seq  (0x12 len event)*  [0x1a len LossCounters]
 *
 * To a collector that applies batch contexts (docs/transport.md) a batch is
 * cut differently: each event's shared per-pod bytes (the encoder's, known by
 * identity) go once into EventBatch.contexts and are left out of the event, in
 * a request buffer of its own (wire.ts encodeContextsRequest) — ~40 % of the
 * bytes. Those buffers are pooled too (REQUEST_BYTES): at 20 000 events/s
 * they were ~40 fresh ~110 KB buffers a second, each held until its ack,
 * and the few a scavenge promoted stayed until the next full collection.
 * The pool took glibc's heap from 11.6-14.2 to 10.6 MiB in a short run; the
 * rest of that growth is what the agent's periodic full collection bounds
 * (src/cli/v8-heap.ts).
 */

const SLAB_BYTES = 1 << 20;
/**
 * Slabs whose batches were all acknowledged (or dropped) are reused, up to
 * this many kept aside: in the steady state the agent allocates no buffer
 * for what it sends. Two cover it (a slab holds ~80 ms of events at 20k/s;
 * acks come within tens of ms); a burst's extra slabs become garbage rather
 * than resident memory (8 kept 8 MiB of RSS for good after any storm).
 */
export const MAX_FREE_SLABS = 2;
/** A pooled request buffer (batches with contexts): a batch that needs more gets a buffer of its own. */
export const REQUEST_BYTES = 256 * 1024;
/** Request buffers kept aside for reuse (2 MiB at most): at 20 000 events/s, 4 were not always enough. */
export const MAX_FREE_REQUESTS = 8;
/** Room before a batch's first event for `0x12 varint(size) 0x08 varint(first_seq)`: at most 1+5+1+10. */
const HEAD_ROOM = 17;
/**
 * Room left after a finished batch for its LossCounters (field 3: tag, length,
 * five tagged uint64s: at most 2 + 5·11): losses are only known when the batch
 * is sent, and the next batch has usually been started behind it by then.
 */
const LOSS_ROOM = 57;

interface Batch {
  slab: Buffer;
  /** Where the HEAD_ROOM starts. */
  base: number;
  /** First event's entry (after HEAD_ROOM, moved on by trims). */
  start: number;
  end: number;
  firstSeq: bigint;
  count: number;
  /** End offset of each event's entry (trims advance `skip`). */
  ends: number[];
  /** Per event (as `ends`): its shared per-pod bytes, if any, and their offset in its payload. */
  tails: (Uint8Array | undefined)[];
  tailAt: number[];
  /** Events with shared per-pod bytes: 0 = nothing to send once per batch. */
  shared: number;
  skip: number;
  /** When its first event was appended (now()). */
  since: number;
}

export class LiveBatches {
  readonly #maxEvents: number;
  readonly #now: () => number;
  #slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  #slabPos = 0;
  /** Batches (held, or sent and not yet released) per slab. */
  readonly #refs = new Map<Buffer, number>();
  readonly #free: Buffer[] = [];
  readonly #freeRequests: Buffer[] = [];
  #batches: Batch[] = [];
  #head = 0;
  #events = 0;
  #bytes = 0;

  constructor(maxEvents: number, now: () => number) {
    this.#maxEvents = maxEvents;
    this.#now = now;
  }

  /** Events held. */
  get size(): number {
    return this.#events;
  }

  /** Bytes of the events held (their framed protobuf). */
  get bytes(): number {
    return this.#bytes;
  }

  /** The oldest event's seq, or undefined when empty. */
  get firstSeq(): bigint | undefined {
    return this.#head < this.#batches.length ? this.#batches[this.#head]!.firstSeq : undefined;
  }

  /** Whether the oldest batch is full (maxEvents events). */
  get headFull(): boolean {
    const b = this.#batches[this.#head];
    return b !== undefined && b.count >= this.#maxEvents;
  }

  /** When the oldest batch's first event was appended. */
  get headSince(): number | undefined {
    return this.#batches[this.#head]?.since;
  }

  /** Whether the oldest batch is all there is (no complete run behind it). */
  get headIsTail(): boolean {
    return this.#head === this.#batches.length - 1;
  }

  /**
   * Add one event (seqs increasing): its protobuf payload, src[start .. end), is copied. `shared`: the bytes
   * of its per-pod fields at `tailAt` in the payload, when shared with other events (the encoder's kept
   * bytes, compared by identity).
   */
  append(seq: bigint, src: Buffer, start: number, end: number, shared?: Uint8Array, tailAt = 0): void {
    const len = end - start;
    const entry = 1 + varintLength(len) + len;
    let tail = this.#head < this.#batches.length ? this.#batches.at(-1) : undefined;
    if (tail && (tail.count >= this.#maxEvents || seq !== tail.firstSeq + BigInt(tail.count))) tail = undefined;
    if (tail && (tail.slab !== this.#slab || tail.end !== this.#slabPos)) tail = undefined;
    if (!tail) {
      // The batch before this one (if it is the slab's last) is finished: leave its loss room.
      const prev = this.#batches.at(-1);
      if (prev && this.#head < this.#batches.length && prev.slab === this.#slab && prev.end === this.#slabPos)
        this.#slabPos += LOSS_ROOM;
      this.#reserve(HEAD_ROOM + entry + LOSS_ROOM);
      tail = {
        slab: this.#slab,
        base: this.#slabPos,
        start: this.#slabPos + HEAD_ROOM,
        end: this.#slabPos + HEAD_ROOM,
        firstSeq: seq,
        count: 0,
        ends: [],
        tails: [],
        tailAt: [],
        shared: 0,
        skip: 0,
        since: this.#now(),
      };
      this.#ref(this.#slab);
      this.#slabPos = tail.end;
      this.#batches.push(tail);
    } else if (this.#slabPos + entry + LOSS_ROOM > this.#slab.length) {
      // The tail moves to a new slab with room for it and this event.
      const old = tail;
      const used = old.end - old.base;
      const from = old.slab;
      this.#newSlab(used + entry + LOSS_ROOM);
      from.copy(this.#slab, 0, old.base, old.end);
      this.#ref(this.#slab);
      this.#unref(from);
      const shift = -old.base;
      old.slab = this.#slab;
      old.base = 0;
      old.start += shift;
      old.end += shift;
      for (let i = old.skip; i < old.ends.length; i++) old.ends[i]! += shift;
      this.#slabPos = old.end;
    }
    const s = this.#slab;
    let p = tail.end;
    s[p++] = 0x12;
    p = writeVarint(len, s, p);
    p += src.copy(s, p, start, end);
    tail.end = p;
    tail.ends.push(p);
    tail.tails.push(shared);
    tail.tailAt.push(tailAt);
    if (shared !== undefined) tail.shared++;
    tail.count++;
    this.#slabPos = p;
    this.#events++;
    this.#bytes += entry;
  }

  /** Forget every event below seq (sent, acknowledged, or dropped from the spool). */
  dropBelow(seq: bigint): void {
    while (this.#head < this.#batches.length) {
      const b = this.#batches[this.#head]!;
      if (b.firstSeq >= seq) break;
      const n = seq - b.firstSeq >= BigInt(b.count) ? b.count : Number(seq - b.firstSeq);
      if (n === b.count) {
        this.#drop(b);
        this.#shift();
        continue;
      }
      const start = b.ends[b.skip + n - 1]!;
      this.#bytes -= start - b.start;
      b.start = start;
      b.skip += n;
      b.count -= n;
      b.firstSeq += BigInt(n);
      this.#events -= n;
      break;
    }
  }

  /** Drop whole oldest batches while more than `maxBytes` are held (they stay on disk). */
  bound(maxBytes: number): void {
    while (this.#bytes > maxBytes && this.#head < this.#batches.length) {
      this.#drop(this.#batches[this.#head]!);
      this.#shift();
    }
  }

  #forget(b: Batch): void {
    this.#events -= b.count;
    this.#bytes -= b.end - b.start;
  }

  /** A batch dropped without being sent: its slab may be reused. */
  #drop(b: Batch): void {
    this.#forget(b);
    this.#unref(b.slab);
  }

  #ref(slab: Buffer): void {
    this.#refs.set(slab, (this.#refs.get(slab) ?? 0) + 1);
  }

  #unref(slab: Buffer): void {
    const n = (this.#refs.get(slab) ?? 0) - 1;
    if (n > 0) {
      this.#refs.set(slab, n);
      return;
    }
    this.#refs.delete(slab);
    if (slab !== this.#slab && slab.length === SLAB_BYTES && this.#free.length < MAX_FREE_SLABS) this.#free.push(slab);
  }

  /**
   * Take the oldest batch as PublishRequest{batch} bytes, with `losses`
   * appended. The bytes are a view of a slab, never written again until
   * release() is called — once the collector acknowledged them, or the stream
   * they were queued on is gone — after which the slab may be reused.
   */
  takeRequest(
    losses: LossCounters | undefined,
    contexts = false,
  ): { bytes: Uint8Array; firstSeq: bigint; count: number; release: () => void } | undefined {
    const b = this.#batches[this.#head];
    if (!b) return undefined;
    this.#shift();
    this.#forget(b);
    if (contexts && b.shared > 0) return this.#withContexts(b, losses);
    let end = b.end;
    if (losses !== undefined) {
      const lb = lossField(losses);
      // Room was left behind every batch (LOSS_ROOM), whether or not another was started after it.
      if (lb.length <= LOSS_ROOM && end + lb.length <= b.slab.length) {
        b.slab.set(lb, end);
        end += lb.length;
        if (b.slab === this.#slab && b.end === this.#slabPos) this.#slabPos = end;
      } else {
        // Cannot happen with LossCounters' five fields; kept so a bigger message stays correct.
        const out = Buffer.allocUnsafe(end - b.base + lb.length);
        b.slab.copy(out, 0, b.base, end);
        this.#unref(b.slab);
        out.set(lb, end - b.base);
        b.end -= b.base;
        b.start -= b.base;
        b.base = 0;
        b.slab = out;
        end = b.end + lb.length;
      }
    }
    const seq = uint64Bytes(b.firstSeq);
    const size = 1 + seq.length + (end - b.start);
    const headLen = 1 + varintLength(size);
    const from = b.start - 1 - seq.length - headLen;
    const s = b.slab;
    s[from] = 0x12;
    let p = writeVarint(size, s, from + 1);
    s[p++] = 0x08;
    s.set(seq, p);
    let released = false;
    const release = () => {
      if (released || !this.#refs.has(s)) return;
      released = true;
      this.#unref(s);
    };
    return { bytes: s.subarray(from, end), firstSeq: b.firstSeq, count: b.count, release };
  }

  /**
   * The batch as PublishRequest{batch} bytes with each distinct shared tail sent once (EventBatch.contexts,
   * before the events) and left out of the events that refer to it (event_contexts): in a request buffer, so
   * the batch's hold on its slab ends here; release() puts the request buffer back in the pool.
   */
  #withContexts(b: Batch, losses: LossCounters | undefined) {
    const s = b.slab;
    const n = b.count;
    // Sized once: growing five arrays event by event was most of what a request with contexts allocated.
    const e: ContextBatch = {
      firstSeq: b.firstSeq,
      contexts: [],
      bufs: new Array<Buffer>(n),
      starts: new Array<number>(n),
      ends: new Array<number>(n),
      cuts: new Array<number>(n),
      refs: new Array<number>(n),
    };
    const keys = new Map<Uint8Array, number>();
    let at = b.start;
    // Runs of one pod's events: their tail is the one before.
    let lastTail: Uint8Array | undefined;
    let lastK = 0;
    for (let j = 0; j < n; j++) {
      const i = b.skip + j;
      const end = b.ends[i]!;
      // The entry: 0x12, varint(payload length), payload.
      let p = at + 1;
      while (s[p]! >= 0x80) p++;
      p++;
      const t = b.tails[i];
      let k = 0;
      if (t !== undefined) {
        if (t === lastTail) k = lastK;
        else {
          k = keys.get(t) ?? 0;
          if (k === 0) {
            e.contexts.push(t);
            k = e.contexts.length;
            keys.set(t, k);
          }
          lastTail = t;
          lastK = k;
        }
      }
      e.bufs[j] = s;
      e.starts[j] = p;
      e.ends[j] = end;
      e.cuts[j] = p + b.tailAt[i]!;
      e.refs[j] = k;
      at = end;
    }
    let pooled: Buffer | undefined;
    const out = encodeContextsRequest(e, losses, (size) => {
      if (size > REQUEST_BYTES) return Buffer.allocUnsafe(size);
      pooled = this.#freeRequests.pop() ?? Buffer.allocUnsafe(REQUEST_BYTES);
      return pooled;
    });
    // The request is a copy: the slab is not needed while it waits for its ack.
    this.#unref(s);
    const release = () => {
      if (pooled === undefined) return;
      if (this.#freeRequests.length < MAX_FREE_REQUESTS) this.#freeRequests.push(pooled);
      pooled = undefined;
    };
    return { bytes: out, firstSeq: b.firstSeq, count: n, release };
  }

  clear(): void {
    for (let i = this.#head; i < this.#batches.length; i++) this.#unref(this.#batches[i]!.slab);
    this.#batches = [];
    this.#head = 0;
    this.#events = 0;
    this.#bytes = 0;
  }

  #shift(): void {
    this.#head++;
    if (this.#head === this.#batches.length) {
      this.#batches = [];
      this.#head = 0;
    } else if (this.#head > 64 && this.#head * 2 > this.#batches.length) {
      this.#batches = this.#batches.slice(this.#head);
      this.#head = 0;
    }
  }

  #reserve(n: number): void {
    if (this.#slabPos + n > this.#slab.length) this.#newSlab(n);
  }

  #newSlab(atLeast: number): void {
    const old = this.#slab;
    this.#slab = (atLeast <= SLAB_BYTES ? this.#free.pop() : undefined) ?? Buffer.allocUnsafe(Math.max(SLAB_BYTES, atLeast));
    this.#slabPos = 0;
    // The slab left behind may already be free (all its batches released).
    if (!this.#refs.has(old) && old.length === SLAB_BYTES && this.#free.length < MAX_FREE_SLABS) this.#free.push(old);
  }

  /** Slabs allocated and not yet garbage (for tests and the curious): in use + kept aside; request buffers kept aside. */
  get slabs(): { inUse: number; free: number; freeRequests: number } {
    return { inUse: this.#refs.size, free: this.#free.length, freeRequests: this.#freeRequests.length };
  }
}
