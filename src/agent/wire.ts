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

function varint(n: number, out: number[]): void {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
}

/** PublishRequest bytes, exactly as PublishRequest.encode(req).finish(). */
export function encodePublishRequest(req: PublishRequest): Uint8Array {
  const b = req.batch;
  if (!b || req.hello !== undefined) return PublishRequest.encode(req).finish();
  // EventBatch: first_seq (1, varint), events (2, repeated message), losses (3, message).
  const head = new BinaryWriter();
  if (b.firstSeq !== 0n) head.uint32(8).uint64(b.firstSeq);
  const parts: Uint8Array[] = [head.finish()];
  let size = parts[0]!.length;
  for (const ev of b.events) {
    const bytes = encodeEvent(ev);
    const tag: number[] = [0x12];
    varint(bytes.length, tag);
    parts.push(Uint8Array.from(tag), bytes);
    size += tag.length + bytes.length;
  }
  if (b.losses !== undefined) {
    const l = LossCounters.encode(b.losses, new BinaryWriter().uint32(26).fork()).join().finish();
    parts.push(l);
    size += l.length;
  }
  // PublishRequest.batch is field 2 (length-delimited).
  const outer: number[] = [0x12];
  varint(size, outer);
  const out = new Uint8Array(outer.length + size);
  out.set(outer, 0);
  let off = outer.length;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
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
