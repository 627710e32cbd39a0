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

/** Reads a varint at `p`; returns [value, next] or undefined past `end`. Values above 2^53 are clamped (only lengths and tags matter). */
function varint(b: Uint8Array, p: number, end: number): [number, number] | undefined {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10 && p < end; i++) {
    const x = b[p++]!;
    v += (x & 0x7f) * mul;
    if (x < 0x80) return [Math.min(v, Number.MAX_SAFE_INTEGER), p];
    mul *= 128;
  }
  return undefined;
}

/** The next field at `p`: number, wire type, value range (for LEN) and where the field ends; undefined if malformed. */
function field(b: Uint8Array, p: number, end: number): { no: number; wt: number; start: number; next: number } | undefined {
  const t = varint(b, p, end);
  if (!t) return undefined;
  const [tag, q] = t;
  const no = Math.floor(tag / 8);
  const wt = tag % 8;
  switch (wt) {
    case 0: {
      const v = varint(b, q, end);
      return v ? { no, wt, start: q, next: v[1] } : undefined;
    }
    case 1:
      return q + 8 <= end ? { no, wt, start: q, next: q + 8 } : undefined;
    case 5:
      return q + 4 <= end ? { no, wt, start: q, next: q + 4 } : undefined;
    case 2: {
      const l = varint(b, q, end);
      if (!l || l[1] + l[0] > end) return undefined;
      return { no, wt, start: l[1], next: l[1] + l[0] };
    }
    default:
      return undefined;
  }
}

export interface BatchShape {
  events: number;
  /** Index and encoded size of the largest event. */
  largest: { index: number; bytes: number };
}

/** The events of the batch in an encoded PublishRequest (field 2 -> EventBatch field 2); undefined when malformed. */
export function batchShape(b: Uint8Array): BatchShape | undefined {
  const shape: BatchShape = { events: 0, largest: { index: -1, bytes: 0 } };
  for (let p = 0; p < b.length; ) {
    const f = field(b, p, b.length);
    if (!f) return undefined;
    if (f.no === 2 && f.wt === 2) {
      // Repeated occurrences of a message field merge: their events add up.
      for (let q = f.start; q < f.next; ) {
        const e = field(b, q, f.next);
        if (!e) return undefined;
        if (e.no === 2 && e.wt === 2) {
          const bytes = e.next - e.start;
          if (bytes > shape.largest.bytes) shape.largest = { index: shape.events, bytes };
          shape.events++;
        }
        q = e.next;
      }
    }
    p = f.next;
  }
  return shape;
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
