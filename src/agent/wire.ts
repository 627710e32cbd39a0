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
  const lossBytes =
    losses !== undefined ? LossCounters.encode(losses, new BinaryWriter().uint32(26).fork()).join().finish() : undefined;
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
