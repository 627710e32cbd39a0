import { crc32 } from 'node:zlib';

/**
 * The spool's on-disk format (docs/transport.md, "Segment format"). Pure: bytes
 * in, values out, no file system.
 *
 * Segment file = header, then groups (version 2) or records (version 1):
 *
 *   header  0  8  magic "DWSPOOL2" ("DWSPOOL1": version 1)
 *           8  4  u32 LE  length n of the JSON that follows
 *          12  4  u32 LE  CRC-32 (IEEE) of the JSON
 *          16  n  JSON {"instanceId","bootId","epoch","firstSeq"}
 *
 *   group   0  4  u32 LE  body length b                       (version 2: one per append() and segment)
 *           4  4  u32 LE  CRC-32 of bytes 8 .. 16+b (count, reserved and body)
 *           8  4  u32 LE  count c of records in the body
 *          12  4  u32 LE  0 (reserved)
 *          16  b  c records:  0 4 u32 LE payload length p · 4 8 u64 LE seq · 12 p AcceptEvent, protobuf
 *
 *   record  0  4  u32 LE  payload length p                    (version 1, still read: segments of older agents)
 *           4  4  u32 LE  CRC-32 (IEEE) of bytes 8 .. 16+p (seq and payload)
 *           8  8  u64 LE  seq
 *          16  p  AcceptEvent, protobuf
 *
 * One checksum per group, not per record: a CRC-32 per record cost the agent ~0.5 µs per event, mostly
 * zlib's fixed cost per call (bench/agent-micro.ts). A group is what one append() wrote, so a crash inside
 * that write() loses the whole group, which was never sent (the publisher sends after append returns).
 *
 * A unit (group or record) that is cut short, whose length is absurd, or whose CRC does not match is torn:
 * the file is truncated there on open.
 */

const MAGIC = { 1: Buffer.from('DWSPOOL1', 'latin1'), 2: Buffer.from('DWSPOOL2', 'latin1') } as const;
export type SegmentVersion = keyof typeof MAGIC;
/** What this agent writes. */
export const SEGMENT_VERSION: SegmentVersion = 2;
export const SEGMENT_HEADER_FIXED = 16;
/** Version 1's record header. */
export const RECORD_HEADER_BYTES = 16;
export const GROUP_HEADER_BYTES = 16;
/** A record's header inside a group: payload length and seq. */
export const GROUP_RECORD_HEADER_BYTES = 12;
/** Larger group bodies are torn by definition (a group holds one append's events for one segment). */
const MAX_GROUP_BODY = 1 << 30;
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

export function encodeSegmentHeader(h: SegmentHeader, version: SegmentVersion = SEGMENT_VERSION): Buffer {
  const json = Buffer.from(
    JSON.stringify({ instanceId: h.instanceId, bootId: h.bootId, epoch: h.epoch, firstSeq: String(h.firstSeq) }),
    'utf8',
  );
  const out = Buffer.alloc(SEGMENT_HEADER_FIXED + json.length);
  MAGIC[version].copy(out, 0);
  out.writeUInt32LE(json.length, 8);
  out.writeUInt32LE(crc32(json), 12);
  json.copy(out, SEGMENT_HEADER_FIXED);
  return out;
}

export type HeaderResult =
  | { ok: true; header: SegmentHeader; bytes: number; version: SegmentVersion }
  | { ok: false; reason: string };

export function decodeSegmentHeader(buf: Uint8Array): HeaderResult {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < SEGMENT_HEADER_FIXED) return { ok: false, reason: `header cut short (${b.length} bytes)` };
  const magic = b.subarray(0, 8);
  const version: SegmentVersion | undefined = magic.equals(MAGIC[2]) ? 2 : magic.equals(MAGIC[1]) ? 1 : undefined;
  if (version === undefined) return { ok: false, reason: 'bad magic (not a doorwatch spool segment)' };
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
      version,
    };
  } catch {
    return { ok: false, reason: 'header JSON invalid' };
  }
}

/** One version-1 record (what agents before version 2 wrote; kept to make such segments in tests). */
export function encodeRecord(seq: bigint, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeBigUInt64LE(seq, 8);
  out.set(payload, RECORD_HEADER_BYTES);
  out.writeUInt32LE(crc32(out.subarray(8)), 4);
  return out;
}

/** Through a DataView: Buffer's writeBigUInt64LE splits the value with BigInt arithmetic, three BigInts per record. */
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(8));

/** The header of a group's record at b[at], whose payload (payloadLen bytes) follows it. */
export function writeGroupRecordHeader(b: Buffer, at: number, seq: bigint, payloadLen: number): void {
  if (view.buffer !== b.buffer) view = new DataView(b.buffer);
  view.setUint32(b.byteOffset + at, payloadLen, true);
  view.setBigUint64(b.byteOffset + at + 4, seq, true);
}

/** A group's CRC: over its header's count and reserved words (h[hAt + 8 .. hAt + 16)), then its body. */
const groupCrc = (h: Buffer, hAt: number, body: Buffer, start: number, end: number): number =>
  crc32(body.subarray(start, end), crc32(h.subarray(hAt + 8, hAt + GROUP_HEADER_BYTES)));

/** The 16-byte header of the group whose `count` records are body[start .. end). */
export function groupHeader(body: Buffer, start: number, end: number, count: number): Buffer {
  const h = Buffer.allocUnsafe(GROUP_HEADER_BYTES);
  h.writeUInt32LE(end - start, 0);
  h.writeUInt32LE(count, 8);
  h.writeUInt32LE(0, 12);
  h.writeUInt32LE(groupCrc(h, 0, body, start, end), 4);
  return h;
}

/** A whole group: its header and records (tests, tools). */
export function encodeGroup(records: readonly { seq: bigint; payload: Uint8Array }[]): Buffer {
  const body = Buffer.allocUnsafe(records.reduce((n, r) => n + GROUP_RECORD_HEADER_BYTES + r.payload.length, 0));
  let at = 0;
  for (const r of records) {
    writeGroupRecordHeader(body, at, r.seq, r.payload.length);
    body.set(r.payload, at + GROUP_RECORD_HEADER_BYTES);
    at += GROUP_RECORD_HEADER_BYTES + r.payload.length;
  }
  return Buffer.concat([groupHeader(body, 0, body.length, records.length), body]);
}

/** What a segment holds one after another: version 2's groups, or version 1's records (a unit of one). */
export type UnitResult =
  | { kind: 'unit'; seqs: bigint[]; payloads: Buffer[]; next: number }
  /** Nothing more in the buffer: exactly at its end. */
  | { kind: 'end' }
  /** A unit starts here but is not complete in the buffer (more may need reading, or it is torn). */
  | { kind: 'short'; need: number; lost: number }
  /** `lost`: the events it held, as far as its header says (at least one). */
  | { kind: 'torn'; reason: string; lost: number };

/** Parse the unit at `off` of a segment of `version`. */
export function readUnit(b: Buffer, off: number, version: SegmentVersion): UnitResult {
  if (version === 1) {
    const r = readRecord(b, off);
    if (r.kind === 'record') return { kind: 'unit', seqs: [r.seq], payloads: [r.payload], next: r.next };
    return r.kind === 'end' ? r : { ...r, lost: 1 };
  }
  return readGroup(b, off);
}

/** Parse the group at `off`: every record, or why not. */
export function readGroup(b: Buffer, off: number): UnitResult {
  if (off === b.length) return { kind: 'end' };
  if (b.length - off < GROUP_HEADER_BYTES) return { kind: 'short', need: GROUP_HEADER_BYTES, lost: 1 };
  const len = b.readUInt32LE(off);
  const count = b.readUInt32LE(off + 8);
  // The count is only trusted once the CRC holds; before that it bounds what a torn group is said to have held.
  const claimed = count > 0 && count * GROUP_RECORD_HEADER_BYTES <= len ? count : 1;
  if (len > MAX_GROUP_BODY) return { kind: 'torn', reason: `group length ${len} is absurd`, lost: 1 };
  const end = off + GROUP_HEADER_BYTES + len;
  if (end > b.length) return { kind: 'short', need: GROUP_HEADER_BYTES + len, lost: claimed };
  if (groupCrc(b, off, b, off + GROUP_HEADER_BYTES, end) !== b.readUInt32LE(off + 4)) {
    return { kind: 'torn', reason: 'group CRC mismatch', lost: claimed };
  }
  const seqs: bigint[] = [];
  const payloads: Buffer[] = [];
  let p = off + GROUP_HEADER_BYTES;
  while (p < end) {
    if (end - p < GROUP_RECORD_HEADER_BYTES) return { kind: 'torn', reason: 'group record cut short', lost: claimed };
    const n = b.readUInt32LE(p);
    const seq = b.readBigUInt64LE(p + 4);
    const q = p + GROUP_RECORD_HEADER_BYTES + n;
    if (q > end) return { kind: 'torn', reason: 'group record overruns its group', lost: claimed };
    if (seqs.length && seq <= seqs[seqs.length - 1]!)
      return { kind: 'torn', reason: `seq ${seq} not above ${seqs.at(-1)} in a group`, lost: claimed };
    seqs.push(seq);
    payloads.push(b.subarray(p + GROUP_RECORD_HEADER_BYTES, q));
    p = q;
  }
  if (seqs.length !== count)
    return { kind: 'torn', reason: `group holds ${seqs.length} records, its header says ${count}`, lost: claimed };
  return { kind: 'unit', seqs, payloads, next: end };
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
