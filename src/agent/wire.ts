import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { CollectorServiceDefinition, LossCounters, PublishRequest } from '../gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../gen/doorwatch/v1/event.js';

/**
 * Each event is protobuf-encoded once. The spool writes an event's bytes and
 * the Publish batch splices the same bytes, where the generated code would
 * deep-copy the request (nice-grpc applies fromPartial) and encode every event
 * a second time: protobuf encoding is the agent's largest per-event cost
 * (docs/benchmarks.md). test/unit/agent-wire.test.ts holds the bytes equal to
 * the generated encoder's.
 */

const encoded = new WeakMap<AcceptEvent, Uint8Array>();

/** AcceptEvent.encode(ev), computed once per event object. */
export function encodeEvent(ev: AcceptEvent): Uint8Array {
  let bytes = encoded.get(ev);
  if (!bytes) {
    bytes = AcceptEvent.encode(ev).finish();
    encoded.set(ev, bytes);
  }
  return bytes;
}

function varintLength(n: number): number {
  let len = 1;
  while (n > 0x7f) {
    n >>>= 7;
    len++;
  }
  return len;
}

function writeVarint(n: number, out: Uint8Array, off: number): number {
  while (n > 0x7f) {
    out[off++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[off++] = n;
  return off;
}

/** PublishRequest bytes, exactly as PublishRequest.encode(req).finish(). */
export function encodePublishRequest(req: PublishRequest): Uint8Array {
  const b = req.batch;
  if (!b || req.hello !== undefined) return PublishRequest.encode(req).finish();
  // EventBatch: first_seq (1, varint), events (2, repeated message), losses (3, message).
  // Sizes first, then one buffer: no allocation per event.
  const head = b.firstSeq !== 0n ? new BinaryWriter().uint32(8).uint64(b.firstSeq).finish() : undefined;
  const events = b.events.map(encodeEvent);
  const losses =
    b.losses !== undefined ? LossCounters.encode(b.losses, new BinaryWriter().uint32(26).fork()).join().finish() : undefined;
  let size = (head?.length ?? 0) + (losses?.length ?? 0);
  for (const bytes of events) size += 1 + varintLength(bytes.length) + bytes.length;
  // PublishRequest.batch is field 2 (length-delimited).
  const out = new Uint8Array(1 + varintLength(size) + size);
  out[0] = 0x12;
  let off = writeVarint(size, out, 1);
  if (head) {
    out.set(head, off);
    off += head.length;
  }
  for (const bytes of events) {
    out[off] = 0x12;
    off = writeVarint(bytes.length, out, off + 1);
    out.set(bytes, off);
    off += bytes.length;
  }
  if (losses) out.set(losses, off);
  return out;
}

/** CollectorService with Publish requests serialized by encodePublishRequest. */
export const FastCollectorServiceDefinition = {
  ...CollectorServiceDefinition,
  methods: {
    ...CollectorServiceDefinition.methods,
    publish: {
      ...CollectorServiceDefinition.methods.publish,
      requestType: {
        ...PublishRequest,
        // No fromPartial: nice-grpc would deep-copy every event before encoding.
        fromPartial: undefined,
        encode: (req: PublishRequest) => ({ finish: () => encodePublishRequest(req) }),
      },
    },
  },
} as unknown as typeof CollectorServiceDefinition;
