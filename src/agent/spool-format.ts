import { crc32 } from 'node:zlib';

/**
 * The spool's on-disk format (docs/transport.md, "Spool format"). Pure: bytes
 * in, values out, no file system.
 *
 * Segment file = header, then records:
 *
 *   header  0  8  magic "DWSPOOL1"
 *           8  4  u32 LE  length n of the JSON that follows
 *          12  4  u32 LE  CRC-32 (IEEE) of the JSON
 *          16  n  JSON {"instanceId","bootId","epoch","firstSeq"}
 *
 *   record  0  4  u32 LE  payload length p
 *           4  4  u32 LE  CRC-32 (IEEE) of bytes 8 .. 16+p (seq and payload)
 *           8  8  u64 LE  seq
 *          16  p  AcceptEvent, protobuf
 *
 * A record whose header or payload is cut short, whose length is absurd, or
 * whose CRC does not match is torn: the file is truncated there on open.
 */

export const SEGMENT_MAGIC = Buffer.from('DWSPOOL1', 'latin1');
export const SEGMENT_HEADER_FIXED = 16;
export const RECORD_HEADER_BYTES = 16;
/** Larger payloads are torn by definition: no AcceptEvent comes near this. */
export const MAX_RECORD_PAYLOAD = 16 * 1024 * 1024;
const MAX_HEADER_JSON = 64 * 1024;

export interface SegmentHeader {
  instanceId: string;
  bootId: string;
  /** Order of seq spaces in this spool: a new boot id gets the next epoch. */
  epoch: number;
  /** The seq the segment was opened for (its first record's, when it has one). */
  firstSeq: bigint;
}

export function encodeSegmentHeader(h: SegmentHeader): Buffer {
  const json = Buffer.from(
    JSON.stringify({ instanceId: h.instanceId, bootId: h.bootId, epoch: h.epoch, firstSeq: String(h.firstSeq) }),
    'utf8',
  );
  const out = Buffer.alloc(SEGMENT_HEADER_FIXED + json.length);
  SEGMENT_MAGIC.copy(out, 0);
  out.writeUInt32LE(json.length, 8);
  out.writeUInt32LE(crc32(json), 12);
  json.copy(out, SEGMENT_HEADER_FIXED);
  return out;
}

export type HeaderResult = { ok: true; header: SegmentHeader; bytes: number } | { ok: false; reason: string };

export function decodeSegmentHeader(buf: Uint8Array): HeaderResult {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < SEGMENT_HEADER_FIXED) return { ok: false, reason: `header cut short (${b.length} bytes)` };
  if (!b.subarray(0, 8).equals(SEGMENT_MAGIC)) return { ok: false, reason: 'bad magic (not a doorwatch spool segment)' };
  const n = b.readUInt32LE(8);
  if (n > MAX_HEADER_JSON) return { ok: false, reason: `header length ${n} is absurd` };
  if (b.length < SEGMENT_HEADER_FIXED + n) return { ok: false, reason: 'header cut short' };
  const json = b.subarray(SEGMENT_HEADER_FIXED, SEGMENT_HEADER_FIXED + n);
  if (crc32(json) !== b.readUInt32LE(12)) return { ok: false, reason: 'header CRC mismatch' };
  try {
    const v = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
    if (typeof v.instanceId !== 'string' || typeof v.bootId !== 'string' || typeof v.epoch !== 'number') {
      return { ok: false, reason: 'header fields missing' };
    }
    if (typeof v.firstSeq !== 'string' || !/^\d+$/.test(v.firstSeq)) return { ok: false, reason: 'header firstSeq invalid' };
    return {
      ok: true,
      header: { instanceId: v.instanceId, bootId: v.bootId, epoch: v.epoch, firstSeq: BigInt(v.firstSeq) },
      bytes: SEGMENT_HEADER_FIXED + n,
    };
  } catch {
    return { ok: false, reason: 'header JSON invalid' };
  }
}

/**
 * Fill the header of the record whose payload (payloadLen bytes) follows it
 * at b[at + RECORD_HEADER_BYTES]: length, seq, then the CRC over seq and
 * payload. Returns the whole record, a view of b.
 */
export function sealRecord(b: Buffer, at: number, seq: bigint, payloadLen: number): Buffer {
  b.writeUInt32LE(payloadLen, at);
  // Through a DataView: Buffer's writeBigUInt64LE splits the value with BigInt arithmetic, three BigInts per record.
  if (sealView.buffer !== b.buffer) sealView = new DataView(b.buffer);
  sealView.setBigUint64(b.byteOffset + at + 8, seq, true);
  const end = at + RECORD_HEADER_BYTES + payloadLen;
  b.writeUInt32LE(crc32(b.subarray(at + 8, end)), at + 4);
  return b.subarray(at, end);
}
/** A view of the buffer records are sealed in (the spool's one encode buffer: it changes only when it grows). */
let sealView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(8));

/** One framed record. */
export function encodeRecord(seq: bigint, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out.set(payload, RECORD_HEADER_BYTES);
  return sealRecord(out, 0, seq, payload.length);
}

export type RecordResult =
  | { kind: 'record'; seq: bigint; payload: Buffer; next: number }
  /** Nothing more in the buffer: exactly at its end. */
  | { kind: 'end' }
  /** A record starts here but is not complete in the buffer (more may need reading, or it is torn). */
  | { kind: 'short'; need: number }
  | { kind: 'torn'; reason: string };

/** Parse the record at `off`. */
export function readRecord(b: Buffer, off: number): RecordResult {
  if (off === b.length) return { kind: 'end' };
  if (b.length - off < RECORD_HEADER_BYTES) return { kind: 'short', need: RECORD_HEADER_BYTES };
  const len = b.readUInt32LE(off);
  if (len > MAX_RECORD_PAYLOAD) return { kind: 'torn', reason: `record length ${len} is absurd` };
  const end = off + RECORD_HEADER_BYTES + len;
  if (end > b.length) return { kind: 'short', need: RECORD_HEADER_BYTES + len };
  if (crc32(b.subarray(off + 8, end)) !== b.readUInt32LE(off + 4)) return { kind: 'torn', reason: 'record CRC mismatch' };
  return { kind: 'record', seq: b.readBigUInt64LE(off + 8), payload: b.subarray(off + RECORD_HEADER_BYTES, end), next: end };
}
