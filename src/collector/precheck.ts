import { ServerError, Status } from 'nice-grpc';
import type { PublishRequest } from '../gen/doorwatch/v1/collector.js';
import type { LimitsConfig } from './config.js';
import type { MaybeMalformed } from './publish.js';

/**
 * Size limits of a Publish request, checked on its bytes before it is
 * decoded. Decoding is where a hostile request costs: a million minimal events
 * fit in 14 MB (under maxMessageBytes) and decode into ~350 MB of objects in
 * ~0.5 s; a handful in parallel would take the collector down. Walking the
 * decoded objects for long strings costs ~1 µs per event, too much for the
 * hot path. The wire format gives both answers for free: the events of a
 * batch are length-delimited entries of EventBatch field 2, so counting them
 * and reading each one's length is a skip over a few bytes per event.
 *
 * A request over a limit is not decoded: the deserializer returns an empty
 * request carrying the refusal (PRECHECK_REFUSAL), which the Publish guard
 * (auth/publish-guard.ts) turns into the status. Malformed bytes are left to
 * the real decoder, which reports them.
 */

export const PRECHECK_REFUSAL: unique symbol = Symbol('precheck refusal');
export type Prechecked<T> = MaybeMalformed<T> & { [PRECHECK_REFUSAL]?: ServerError };

/*
 * The walk runs over every event of every request: it allocates nothing per
 * field (a tuple per varint and an object per field were a tenth of the
 * collector's allocations). Results go to these module-level slots.
 */
/** The last varint read (clamped above 2^53: only lengths and tags matter) and the offset after it. */
let vValue = 0;
let vNext = 0;
/** The last field read: number, wire type, value range (for LEN) and where the field ends. */
let fNo = 0;
let fWt = 0;
let fStart = 0;
let fNext = 0;

/** Reads a varint at `p` into vValue/vNext; false past `end`. */
function varint(b: Uint8Array, p: number, end: number): boolean {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10 && p < end; i++) {
    const x = b[p++]!;
    v += (x & 0x7f) * mul;
    if (x < 0x80) {
      vValue = Math.min(v, Number.MAX_SAFE_INTEGER);
      vNext = p;
      return true;
    }
    mul *= 128;
  }
  return false;
}

/** The next field at `p` into fNo/fWt/fStart/fNext; false if malformed. */
function field(b: Uint8Array, p: number, end: number): boolean {
  if (!varint(b, p, end)) return false;
  const tag = vValue;
  const q = vNext;
  fNo = Math.floor(tag / 8);
  fWt = tag % 8;
  fStart = q;
  switch (fWt) {
    case 0:
      if (!varint(b, q, end)) return false;
      fNext = vNext;
      return true;
    case 1:
      fNext = q + 8;
      return fNext <= end;
    case 5:
      fNext = q + 4;
      return fNext <= end;
    case 2: {
      if (!varint(b, q, end) || vNext + vValue > end) return false;
      fStart = vNext;
      fNext = vNext + vValue;
      return true;
    }
    default:
      return false;
  }
}

export interface BatchShape {
  events: number;
  /** Index and encoded size of the largest event. */
  largest: { index: number; bytes: number };
  /** The batch's contexts (EventBatch field 4: a pod's fields, once per batch), and the largest of them. */
  contexts: number;
  largestContext: { index: number; bytes: number };
}

/** The events of the batch in an encoded PublishRequest (field 2 -> EventBatch field 2); undefined when malformed. */
export function batchShape(b: Uint8Array): BatchShape | undefined {
  // Per kind of entry (2 = an event, 4 = a context): how many, and the largest.
  const events = { n: 0, index: -1, bytes: 0 };
  const contexts = { n: 0, index: -1, bytes: 0 };
  for (let p = 0; p < b.length; ) {
    if (!field(b, p, b.length)) return undefined;
    const next = fNext;
    if (fNo === 2 && fWt === 2) {
      // Repeated occurrences of a message field merge: their events add up.
      const end = fNext;
      for (let q = fStart; q < end; ) {
        if (!field(b, q, end)) return undefined;
        const t = fWt !== 2 ? undefined : fNo === 2 ? events : fNo === 4 ? contexts : undefined;
        if (t !== undefined) {
          const bytes = fNext - fStart;
          if (bytes > t.bytes) {
            t.bytes = bytes;
            t.index = t.n;
          }
          t.n++;
        }
        q = fNext;
      }
    }
    p = next;
  }
  return {
    events: events.n,
    largest: { index: events.index, bytes: events.bytes },
    contexts: contexts.n,
    largestContext: { index: contexts.index, bytes: contexts.bytes },
  };
}

/** Why these bytes must not be decoded, or undefined. */
export function precheckPublish(
  bytes: Uint8Array,
  limits: Pick<LimitsConfig, 'maxBatchEvents' | 'maxEventBytes'>,
): ServerError | undefined {
  const s = batchShape(bytes);
  if (!s) return undefined; // the decoder names the problem
  if (s.events > limits.maxBatchEvents) {
    return new ServerError(
      Status.RESOURCE_EXHAUSTED,
      `batch has ${s.events} events; at most ${limits.maxBatchEvents} (limits.maxBatchEvents): send smaller batches`,
    );
  }
  // A context is part of the events that refer to it: no more of them than events, none longer than an event.
  if (s.contexts > limits.maxBatchEvents) {
    return new ServerError(
      Status.RESOURCE_EXHAUSTED,
      `batch has ${s.contexts} contexts; at most ${limits.maxBatchEvents} (limits.maxBatchEvents): send smaller batches`,
    );
  }
  if (s.largestContext.bytes > limits.maxEventBytes) {
    return new ServerError(
      Status.INVALID_ARGUMENT,
      `batch.contexts[${s.largestContext.index}] is ${s.largestContext.bytes} bytes; at most ${limits.maxEventBytes} (limits.maxEventBytes: an overlong field)`,
    );
  }
  if (s.largest.bytes > limits.maxEventBytes) {
    return new ServerError(
      Status.INVALID_ARGUMENT,
      `batch.events[${s.largest.index}] is ${s.largest.bytes} bytes; at most ${limits.maxEventBytes} (limits.maxEventBytes: an overlong field)`,
    );
  }
  return undefined;
}

/** A service definition (ts-proto generic) whose Publish deserializer prechecks the bytes first. */
export function withPublishPrecheck<D extends { methods: { publish: { requestType: { decode(b: Uint8Array): unknown } } } }>(
  definition: D,
  limits: Pick<LimitsConfig, 'maxBatchEvents' | 'maxEventBytes'>,
  empty: () => PublishRequest,
): D {
  const publish = definition.methods.publish;
  const decode = publish.requestType.decode.bind(publish.requestType);
  return {
    ...definition,
    methods: {
      ...definition.methods,
      publish: {
        ...publish,
        requestType: {
          ...publish.requestType,
          decode: (b: Uint8Array) => {
            const refusal = precheckPublish(b, limits);
            return refusal ? Object.assign(empty(), { [PRECHECK_REFUSAL]: refusal }) : decode(b);
          },
        },
      },
    },
  };
}
