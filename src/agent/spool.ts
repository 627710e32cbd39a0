import { randomBytes } from 'node:crypto';
import {
  close,
  closeSync,
  fdatasync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  open,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  write,
  writeFileSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { join } from 'node:path';
import { readBootId } from '../capture/clock.js';
import { parseSize } from '../config/units.js';
import { AcceptEvent } from '../gen/doorwatch/v1/event.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { WarnLimiter } from '../log/warn-limiter.js';
import { ByteSink, encodeEventInto, lastTailAt, lastTailBytes } from './event-encoder.js';
import {
  decodeSegmentHeader,
  encodeSegmentHeader,
  GROUP_HEADER_BYTES,
  GROUP_RECORD_HEADER_BYTES,
  groupHeader,
  readUnit,
  SEGMENT_VERSION,
  type SegmentVersion,
  writeGroupRecordHeader,
} from './spool-format.js';

/**
 * A bounded on-disk write-ahead spool of AcceptEvents (docs/transport.md).
 *
 * Events are appended before they are sent and deleted once the collector
 * acknowledges them, so neither a dead collector nor an agent restart loses
 * them. Each seq space — (instance id, boot id) — has its own segment files;
 * a node reboot starts a new space while the old one is still drained.
 *
 * Everything here is synchronous: appends are one write() per call, which is
 * cheaper than the promise machinery around an async write, and a spool is
 * only ever used by one event loop.
 */

export type OverflowPolicy = 'drop-oldest' | 'drop-newest';
export type FsyncPolicy = 'always' | 'interval';

/** Names one seq space. */
export interface SpoolIdentity {
  instanceId: string;
  bootId: string;
}

export interface SpoolOptions {
  /** Directory (a hostPath in Kubernetes); created if missing. One agent per directory. */
  dir: string;
  /** The node's current boot id; default /proc/sys/kernel/random/boot_id. */
  bootId?: string;
  /** Bound on all segment files together: bytes or "256MiB". Default 256MiB. */
  maxBytes?: number | string;
  /** Size at which a segment is closed and a new one begun. Default maxBytes/8, at most 16MiB. */
  segmentBytes?: number | string;
  /** What to do when full. Default drop-oldest (keep the newest events). */
  overflow?: OverflowPolicy;
  /** always: fdatasync every append; interval (default): every fsyncIntervalMs. */
  fsync?: FsyncPolicy;
  /** Default 1000. */
  fsyncIntervalMs?: number;
  log?: Logger;
}

/** A seq space the spool holds events of. */
export interface SpaceInfo {
  identity: SpoolIdentity;
  /** Order of the spaces: older boots have smaller epochs. */
  epoch: number;
  /** The space new events are appended to. */
  current: boolean;
  /** Everything <= this is acknowledged. */
  ackedSeq: bigint;
  /** Highest seq on disk or acknowledged. */
  lastSeq: bigint;
  /** Whether records above ackedSeq remain on disk. */
  unacked: boolean;
  /** Bytes of its segment files. */
  bytes: number;
}

export interface AppendResult {
  /** The events written, in order (the same array when all were). */
  accepted: AcceptEvent[];
  /**
   * The spool's encoding buffer, where each accepted event's protobuf is, at buf[starts[i] .. ends[i]): what
   * the publisher sends, so no event is encoded twice. Valid until the next append().
   */
  buf: Buffer;
  starts: number[];
  ends: number[];
  /**
   * Per accepted event, the bytes of its event's per-pod fields when they are shared (event-encoder.ts keeps them per
   * pod), and where in the payload they start: what a batch may carry once for all its events of that pod.
   */
  tails: (Buffer | undefined)[];
  tailAt: number[];
  /** Events refused for lack of room (drop-newest, or larger than the spool). */
  refused: number;
}

/** Unacknowledged events read back from disk: seqs and their protobuf payloads. */
export interface RawEvents {
  seqs: bigint[];
  payloads: Buffer[];
}

export interface SpoolStats {
  bytes: number;
  segments: number;
  /** Events dropped since open: overflow policy, torn or corrupt records. */
  dropsTotal: bigint;
  /** Dropped events no acknowledged batch has reported yet (kept across restarts). */
  unconfirmedDrops: bigint;
}

interface Space {
  key: string;
  identity: SpoolIdentity;
  epoch: number;
  acked: bigint;
  /** Highest seq on disk or acked. */
  lastSeq: bigint;
  segments: Segment[];
}

interface Segment {
  space: Space;
  path: string;
  /** On-disk format (spool-format.ts): 2 for what this agent writes, 1 for an older agent's segments. */
  version: SegmentVersion;
  headerBytes: number;
  bytes: number;
  firstSeq: bigint;
  /** firstSeq - 1 while empty. */
  lastSeq: bigint;
  count: number;
  deleted: boolean;
}

const IDENTITY_FILE = 'identity.json';
const STATE_FILE = 'state.json';
const SEGMENT_RE = /^seg-(\d{6})-(\d{20})\.dws$/;
const READ_CHUNK = 256 * 1024;
const DROP_WARN_EVERY_MS = 5000;

/** One group record (spool-format.ts) for `ev`, encoded at the end of `w`: its length. */
function encodeGroupRecord(w: ByteSink, ev: AcceptEvent, idPrefix: Uint8Array): number {
  w.ensure(GROUP_RECORD_HEADER_BYTES);
  const at = w.pos;
  w.pos += GROUP_RECORD_HEADER_BYTES;
  // Encode first: the payload may grow `w` into a new buffer, and the header must be written in that one.
  const payloadLen = encodeEventInto(w, ev, idPrefix);
  writeGroupRecordHeader(w.buf, at, ev.seq, payloadLen);
  return GROUP_RECORD_HEADER_BYTES + payloadLen;
}

/** The group being built in the encode buffer: records at [start, end) of it, for the active segment. */
interface OpenGroup {
  start: number;
  end: number;
  count: number;
}

/** The segment being written and its file; `syncing` while a background fdatasync holds its fd. */
interface ActiveFile {
  seg: Segment;
  fd: number;
  syncing: boolean;
  /** Another sync asked for while one runs. */
  again: boolean;
  closeAfterSync: boolean;
}

const keyOf = (id: SpoolIdentity): string => `${id.instanceId}/${id.bootId}`;
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

function newSpace(identity: SpoolIdentity, epoch: number, acks: ReadonlyMap<string, bigint>): Space {
  const key = keyOf(identity);
  const acked = acks.get(key) ?? 0n;
  return { key, identity, epoch, acked, lastSeq: acked, segments: [] };
}

/** An empty segment: its header only. */
function newSegment(space: Space, path: string, headerBytes: number, firstSeq: bigint, version: SegmentVersion): Segment {
  return { space, path, version, headerBytes, bytes: headerBytes, firstSeq, lastSeq: firstSeq - 1n, count: 0, deleted: false };
}

function toBytes(v: number | string, what: string): number {
  const n = typeof v === 'number' ? v : parseSize(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`spool ${what} must be a positive size, got ${v}`);
  return n;
}

export class Spool {
  readonly dir: string;
  readonly maxBytes: number;
  readonly segmentBytes: number;
  readonly overflow: OverflowPolicy;
  readonly fsync: FsyncPolicy;
  readonly #log: Logger;
  readonly #spaces = new Map<string, Space>();
  readonly #current: Space;
  #active: ActiveFile | undefined;
  #wbuf: Buffer[] = [];
  /** Where append() encodes records (reused: a buffer per call was garbage at the event rate). */
  readonly #enc = new ByteSink(256 * 1024);
  /** "<boot id>/<instance id>/" of the current space: the event id of an event appended without one, before its seq. */
  readonly #idPrefix: Buffer;
  /** Sealed (spool-format.ts groupHeader) by #flush: when the append ends, the segment changes or is read. */
  #group: OpenGroup | undefined;
  #dirty = false;
  /** Writes of state.json so far: a background one renames only if none came after it. */
  #stateGen = 0;
  #stateWriting = false;
  /** Ack watermarks or drop counts changed since state.json was written. */
  #stateDirty = false;
  #bytes = 0;
  #lastSeen: bigint;
  #unconfirmedDrops = 0n;
  #dropsTotal = 0n;
  /** Highest seq of the current space deleted unacknowledged by drop-oldest. */
  #droppedThrough = 0n;
  /** Drop warnings: one per reason per DROP_WARN_EVERY_MS (every drop is counted regardless). */
  readonly #dropWarn: WarnLimiter;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Where the last read() stopped, so sequential reads do not rescan a segment. */
  #rc: { seg: Segment; off: number; after: bigint } | undefined;

  private constructor(o: SpoolOptions) {
    this.dir = o.dir;
    this.maxBytes = toBytes(o.maxBytes ?? '256MiB', 'maxBytes');
    this.segmentBytes = toBytes(
      o.segmentBytes ?? Math.max(4096, Math.min(16 * 1024 * 1024, Math.floor(this.maxBytes / 8))),
      'segmentBytes',
    );
    if (this.segmentBytes > this.maxBytes) {
      throw new RangeError(`spool segmentBytes (${this.segmentBytes}) must not exceed maxBytes (${this.maxBytes})`);
    }
    this.overflow = o.overflow ?? 'drop-oldest';
    if (this.overflow !== 'drop-oldest' && this.overflow !== 'drop-newest') {
      throw new RangeError(`spool overflow must be drop-oldest or drop-newest, got ${String(this.overflow)}`);
    }
    this.fsync = o.fsync ?? 'interval';
    this.#log = o.log ?? silentLogger;
    this.#dropWarn = new WarnLimiter(this.#log, DROP_WARN_EVERY_MS);
    mkdirSync(this.dir, { recursive: true });

    const state = this.#readJson(STATE_FILE) as { acks?: Record<string, string>; unconfirmedDrops?: string } | undefined;
    const acks = new Map(Object.entries(state?.acks ?? {}).map(([k, v]) => [k, BigInt(v)]));
    this.#unconfirmedDrops = BigInt(state?.unconfirmedDrops ?? '0');
    this.#loadSegments(acks);

    // Identity: the instance id is made once and kept; the boot id is the node's.
    const saved = this.#readJson(IDENTITY_FILE) as { instanceId?: string; bootId?: string; epoch?: number } | undefined;
    const spaces = [...this.#spaces.values()].sort((a, b) => a.epoch - b.epoch);
    const instanceId = saved?.instanceId ?? spaces.at(-1)?.identity.instanceId ?? randomBytes(8).toString('hex');
    const bootId = o.bootId ?? readBootId();
    const identity = { instanceId, bootId };
    let cur = this.#spaces.get(keyOf(identity));
    if (!cur) {
      const epoch =
        saved?.instanceId === instanceId && saved.bootId === bootId && typeof saved.epoch === 'number'
          ? saved.epoch
          : Math.max(saved?.epoch ?? 0, ...spaces.map((s) => s.epoch)) + 1;
      cur = newSpace(identity, epoch, acks);
      this.#spaces.set(cur.key, cur);
    }
    this.#current = cur;
    this.#idPrefix = Buffer.from(`${bootId}/${instanceId}/`, 'utf8');
    if (saved?.instanceId !== instanceId || saved.bootId !== bootId || saved.epoch !== cur.epoch) {
      this.#writeJson(IDENTITY_FILE, { instanceId, bootId, epoch: cur.epoch });
    }
    this.#lastSeen = cur.lastSeq;
    this.#persistState();

    const ms = o.fsyncIntervalMs ?? 1000;
    if (!(ms > 0)) throw new RangeError(`spool fsyncIntervalMs must be > 0, got ${ms}`);
    this.#timer = setInterval(() => this.#tick(), ms);
    this.#timer.unref();
    const old = spaces.filter((s) => s !== cur && s.segments.length);
    this.#log.info(
      {
        dir: this.dir,
        instanceId,
        bootId,
        nextSeq: String(this.nextSeq()),
        bytes: this.#bytes,
        oldSpaces: old.map((s) => s.identity.bootId),
      },
      'spool opened',
    );
  }

  /** Open (or create) the spool in o.dir, recovering what a previous process left. */
  static open(o: SpoolOptions): Spool {
    return new Spool(o);
  }

  /** The current seq space: this spool's instance id and the node's boot id. */
  get identity(): SpoolIdentity {
    return { ...this.#current.identity };
  }

  /** The seq the next event of the current space must carry. */
  nextSeq(): bigint {
    return max(this.#lastSeen, this.#current.acked) + 1n;
  }

  /**
   * Write events of the current space (seqs strictly increasing, above every
   * earlier one). When full, the overflow policy applies and every event it
   * costs is counted (stats().unconfirmedDrops), never silent. An event with
   * no event id is written with its space's: "<boot id>/<instance id>/<seq>".
   */
  append(events: readonly AcceptEvent[]): AppendResult {
    this.#assertOpen();
    const accepted: AcceptEvent[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    const tails: (Buffer | undefined)[] = [];
    const tailAt: number[] = [];
    let refused = 0;
    const dropsBefore = this.#dropsTotal;
    // Every record of this call is encoded into one reused buffer, one after another: a group per segment
    // (one checksum), written with its header in one writev().
    const w = this.#enc;
    w.pos = 0;
    try {
      for (const ev of events) {
        if (ev.seq <= this.#lastSeen) {
          throw new RangeError(`spool append: seq ${ev.seq} is not above the last seq ${this.#lastSeen}`);
        }
        this.#lastSeen = ev.seq;
        const at = w.pos;
        const len = encodeGroupRecord(w, ev, this.#idPrefix);
        if (!this.#makeRoom(ev.seq, len)) {
          refused++;
          // The next record takes its place: a group's records lie end to end.
          w.pos = at;
          continue;
        }
        this.#write(ev.seq, at, len);
        accepted.push(ev);
        starts.push(at + GROUP_RECORD_HEADER_BYTES);
        ends.push(at + len);
        tails.push(lastTailBytes);
        tailAt.push(lastTailAt);
      }
    } finally {
      this.#flush();
      if (this.fsync === 'always') this.sync();
    }
    if (refused)
      this.#countDrops(BigInt(refused), `spool full (${this.#bytes} of ${this.maxBytes} bytes): new events refused`, 'refused');
    if (this.#dropsTotal !== dropsBefore) this.#persistState();
    const buf = w.buf;
    if (accepted.length && accepted[0]!.seq <= this.#droppedThrough) {
      // drop-oldest took some of this very call's events (a tiny spool).
      const cut = this.#droppedThrough;
      const keep = accepted.findIndex((e) => e.seq > cut);
      const from = keep < 0 ? accepted.length : keep;
      return {
        accepted: accepted.slice(from),
        buf,
        starts: starts.slice(from),
        ends: ends.slice(from),
        tails: tails.slice(from),
        tailAt: tailAt.slice(from),
        refused,
      };
    }
    const all = accepted.length === events.length ? (events as AcceptEvent[]) : accepted;
    return { accepted: all, buf, starts, ends, tails, tailAt, refused };
  }

  /** Everything <= seq in that space is acknowledged: persist it and delete what is no longer needed. */
  ack(identity: SpoolIdentity, seq: bigint): void {
    this.#assertOpen();
    const sp = this.#spaces.get(keyOf(identity));
    if (!sp || seq <= sp.acked) return;
    sp.acked = seq;
    if (sp.lastSeq < seq) sp.lastSeq = seq;
    // The segment being written stays until it is full or the next tick finds it fully acknowledged: deleting it
    // and creating the next file at every ack cost a create, a rename and an unlink per batch — ~40 % of an idle
    // agent's CPU.
    const active = this.#active?.seg;
    const done = sp.segments.filter((g) => g.lastSeq <= seq && g !== active);
    if (!done.length) {
      // Written on the next tick (or close): losing it in a crash only costs a resend.
      this.#stateDirty = true;
      return;
    }
    // The watermark is on disk before the segments go: nextSeq() may depend on it.
    this.#persistState();
    for (const seg of done) this.#deleteSegment(seg);
  }

  /** The acknowledged watermark of a space (0 when unknown). */
  ackedSeq(identity: SpoolIdentity = this.#current.identity): bigint {
    return this.#spaces.get(keyOf(identity))?.acked ?? 0n;
  }

  /** Spaces held, oldest first; the current one always, older ones while they have segments. */
  spaces(): SpaceInfo[] {
    return [...this.#spaces.values()]
      .sort((a, b) => a.epoch - b.epoch)
      .map((s) => ({
        identity: { ...s.identity },
        epoch: s.epoch,
        current: s === this.#current,
        ackedSeq: s.acked,
        lastSeq: s.lastSeq,
        unacked: s.segments.some((g) => g.lastSeq > s.acked),
        bytes: s.segments.reduce((n, g) => n + g.bytes, 0),
      }));
  }

  /**
   * Unacknowledged events from disk, in seq order: the first run of
   * consecutive seqs at or after fromSeq, at most maxEvents, and below
   * beforeSeq when given. [] when there are none.
   */
  read(identity: SpoolIdentity, fromSeq: bigint, maxEvents: number, beforeSeq?: bigint): AcceptEvent[] {
    const out: AcceptEvent[] = [];
    this.#readRecords(identity, fromSeq, maxEvents, beforeSeq, (seq, payload) => {
      const ev = AcceptEvent.decode(payload);
      ev.seq = seq;
      out.push(ev);
    });
    return out;
  }

  #readRecords(
    identity: SpoolIdentity,
    fromSeq: bigint,
    maxEvents: number,
    beforeSeq: bigint | undefined,
    take: (seq: bigint, payload: Buffer) => void,
  ): void {
    this.#assertOpen();
    const sp = this.#spaces.get(keyOf(identity));
    if (!sp) return;
    const from = max(fromSeq, sp.acked + 1n);
    let n = 0;
    let expect: bigint | undefined;
    for (const seg of sp.segments) {
      if (seg.lastSeq < from || seg.count === 0) continue;
      if (expect !== undefined && seg.firstSeq !== expect) break;
      const rc = this.#rc;
      const start = rc && rc.seg === seg && !seg.deleted && rc.after < from ? rc.off : seg.headerBytes;
      let stop = false;
      this.#scan(seg, start, (seq, payload, next) => {
        if (seq < from) return true;
        if ((beforeSeq !== undefined && seq >= beforeSeq) || (expect !== undefined && seq !== expect)) {
          stop = true;
          return false;
        }
        take(seq, payload);
        expect = seq + 1n;
        this.#rc = { seg, off: next, after: seq };
        if (++n >= maxEvents) stop = true;
        return !stop;
      });
      if (stop) break;
    }
  }

  /** read(), without decoding: the payloads as stored (what a Publish batch carries). */
  readRaw(identity: SpoolIdentity, fromSeq: bigint, maxEvents: number, beforeSeq?: bigint): RawEvents {
    const out: RawEvents = { seqs: [], payloads: [] };
    this.#readRecords(identity, fromSeq, maxEvents, beforeSeq, (seq, payload) => {
      out.seqs.push(seq);
      out.payloads.push(payload);
    });
    return out;
  }

  /**
   * The lowest seq of a space still retrievable: events below it were
   * acknowledged, or dropped by the overflow policy.
   */
  floorSeq(identity: SpoolIdentity = this.#current.identity): bigint {
    const sp = this.#spaces.get(keyOf(identity));
    if (!sp) return 0n;
    const first = sp.segments.find((g) => g.count > 0 && g.lastSeq > sp.acked)?.firstSeq;
    if (first === undefined) return sp.lastSeq + 1n;
    return first <= sp.acked ? sp.acked + 1n : first;
  }

  /** Every unacknowledged event of a space (default: the current one), from disk, in seq order. */
  *pending(identity: SpoolIdentity = this.#current.identity, fromSeq = 0n): Generator<AcceptEvent> {
    let from = fromSeq;
    for (;;) {
      const evs = this.read(identity, from, 512);
      if (!evs.length) return;
      yield* evs;
      from = evs.at(-1)!.seq + 1n;
    }
  }

  /** Dropped events not yet reported in an acknowledged batch. */
  unconfirmedDrops(): bigint {
    return this.#unconfirmedDrops;
  }

  /** n dropped events were reported in a batch the collector acknowledged. */
  confirmDrops(n: bigint): void {
    if (n <= 0n || this.#closed) return;
    this.#unconfirmedDrops = this.#unconfirmedDrops > n ? this.#unconfirmedDrops - n : 0n;
    // Lazily: a crash before the next tick reports these drops twice, never zero times.
    this.#stateDirty = true;
  }

  bytes(): number {
    return this.#bytes;
  }

  stats(): SpoolStats {
    let segments = 0;
    for (const s of this.#spaces.values()) segments += s.segments.length;
    return { bytes: this.#bytes, segments, dropsTotal: this.#dropsTotal, unconfirmedDrops: this.#unconfirmedDrops };
  }

  #tick(): void {
    if (this.#closed) return;
    if (this.fsync === 'interval' && this.#active && this.#dirty) {
      this.#dirty = false;
      this.#backgroundSync(this.#active);
    }
    if (!this.#deleteAckedActive() && this.#stateDirty) this.#persistStateInBackground();
  }

  /** The segment being written, when fully acknowledged, is deleted (ack() leaves it: see there). */
  #deleteAckedActive(): boolean {
    const a = this.#active?.seg;
    if (!a || a.count === 0 || a.lastSeq > a.space.acked) return false;
    // The watermark on disk first (nextSeq() may depend on it), then the file goes.
    this.#persistState();
    this.#deleteSegment(a);
    return true;
  }

  /** Make everything appended so far durable (fdatasync). */
  sync(): void {
    if (this.#closed || !this.#active || !this.#dirty) return;
    fdatasyncSync(this.#active.fd);
    this.#dirty = false;
  }

  /*
   * The interval policy's fdatasync, on libuv's pool: on the main thread it
   * stopped the ring's drain for 4-16 ms a second, and for up to 430 ms when
   * the disk was slow (bpftrace, docs/benchmarks.md) - half the ring's room
   * at a storm's rate. One at a time per file, and once more after it when
   * asked meanwhile (its writes may postdate the running one); the fd stays
   * open until the last is done (#release).
   */
  #backgroundSync(a: ActiveFile): void {
    if (a.syncing) {
      a.again = true;
      return;
    }
    a.syncing = true;
    fdatasync(a.fd, (err) => {
      a.syncing = false;
      if (err) {
        // The last second's durability is in doubt: the next tick (or close) tries again.
        if (this.#active === a) this.#dirty = true;
        this.#log.warn({ file: a.seg.path, err: err.message }, 'spool: fdatasync failed');
      }
      if (a.again) {
        a.again = false;
        this.#backgroundSync(a);
      } else if (a.closeAfterSync) closeSync(a.fd);
    });
  }

  /** Close the active file, or, while a background sync still uses its fd, right after that sync. */
  #release(a: ActiveFile): void {
    if (a.syncing) a.closeAfterSync = true;
    else closeSync(a.fd);
  }

  /** Sync and release files; unacknowledged events stay for the next open. Idempotent. */
  close(): void {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    this.#deleteAckedActive();
    this.#closeActive('now');
    this.#persistState();
    this.#closed = true;
  }

  // --- writing -------------------------------------------------------------

  /** Free space for a record of `len` bytes; false when the event must be refused. */
  #makeRoom(seq: bigint, len: number): boolean {
    for (;;) {
      const need =
        len + (this.#needsNewSegment(len) ? this.#headerBytes(seq) + GROUP_HEADER_BYTES : this.#group ? 0 : GROUP_HEADER_BYTES);
      if (need > this.maxBytes) {
        this.#countDrops(1n, `event ${seq} (${len} bytes) is larger than the whole spool`, 'oversized');
        return false;
      }
      if (this.#bytes + need <= this.maxBytes) return true;
      if (this.overflow === 'drop-newest') return false;
      const victim = this.#oldestSegment();
      if (!victim) return false;
      const n = this.#unackedIn(victim);
      if (victim.space === this.#current && n > 0n) this.#droppedThrough = max(this.#droppedThrough, victim.lastSeq);
      this.#deleteSegment(victim);
      if (n > 0n) this.#countDrops(n, 'spool full: oldest unacknowledged segment deleted');
    }
  }

  #needsNewSegment(len: number): boolean {
    const a = this.#active;
    return !a || (a.seg.count > 0 && a.seg.bytes + len + (this.#group ? 0 : GROUP_HEADER_BYTES) > this.segmentBytes);
  }

  #headerBytes(seq: bigint): number {
    return encodeSegmentHeader({ ...this.#current.identity, epoch: this.#current.epoch, firstSeq: seq }).length;
  }

  /** The record at [at, at + len) of the encode buffer joins the active segment's open group. */
  #write(seq: bigint, at: number, len: number): void {
    if (this.#needsNewSegment(len)) this.#openSegment(seq);
    const seg = this.#active!.seg;
    let g = this.#group;
    if (!g) {
      g = this.#group = { start: at, end: at, count: 0 };
      seg.bytes += GROUP_HEADER_BYTES;
      this.#bytes += GROUP_HEADER_BYTES;
    }
    g.end = at + len;
    g.count++;
    seg.bytes += len;
    this.#bytes += len;
    if (seg.count === 0) seg.firstSeq = seq;
    seg.lastSeq = seq;
    seg.count++;
    if (this.#current.lastSeq < seq) this.#current.lastSeq = seq;
  }

  #openSegment(seq: bigint): void {
    this.#closeActive();
    const sp = this.#current;
    const header = encodeSegmentHeader({ ...sp.identity, epoch: sp.epoch, firstSeq: seq });
    const path = join(this.dir, `seg-${String(sp.epoch).padStart(6, '0')}-${String(seq).padStart(20, '0')}.dws`);
    const fd = openSync(path, 'wx');
    const seg = newSegment(sp, path, header.length, seq, SEGMENT_VERSION);
    sp.segments.push(seg);
    this.#bytes += header.length;
    this.#active = { seg, fd, syncing: false, again: false, closeAfterSync: false };
    // The header goes out with the first records, in the same write().
    this.#wbuf.push(header);
    if (this.fsync === 'always') this.#syncDir();
  }

  /** Seal the open group (its header and records join the write queue), then write the queue in one writev(). */
  #flush(): void {
    const g = this.#group;
    if (g) {
      this.#group = undefined;
      const body = this.#enc.buf;
      this.#wbuf.push(groupHeader(body, g.start, g.end, g.count), body.subarray(g.start, g.end));
    }
    if (!this.#active || !this.#wbuf.length) return;
    const parts = this.#wbuf;
    this.#wbuf = [];
    let total = 0;
    for (const p of parts) total += p.length;
    let done = writevSync(this.#active.fd, parts);
    // A short write (a full disk, a signal): the rest, part by part.
    for (const p of done < total ? parts : []) {
      if (done >= p.length) {
        done -= p.length;
        continue;
      }
      let off = done;
      done = 0;
      while (off < p.length) off += writeSync(this.#active.fd, p, off, p.length - off);
    }
    this.#dirty = true;
  }

  /**
   * A closed segment is synced once, whatever the policy (later syncs only see
   * the active one): at once when the spool closes, in the background when
   * the interval policy moves on to the next segment.
   */
  #closeActive(sync: 'now' | 'policy' = 'policy'): void {
    const a = this.#active;
    if (!a) return;
    this.#flush();
    if (this.#dirty) {
      if (this.fsync === 'interval' && sync === 'policy') this.#backgroundSync(a);
      else fdatasyncSync(a.fd);
    }
    this.#release(a);
    this.#dirty = false;
    this.#active = undefined;
  }

  #oldestSegment(): Segment | undefined {
    let best: Segment | undefined;
    for (const sp of this.#spaces.values()) {
      const s = sp.segments[0];
      if (s && (!best || sp.epoch < best.space.epoch)) best = s;
    }
    return best;
  }

  #unackedIn(seg: Segment): bigint {
    const acked = seg.space.acked;
    if (seg.count === 0 || seg.lastSeq <= acked) return 0n;
    if (seg.lastSeq - seg.firstSeq + 1n === BigInt(seg.count)) {
      return seg.lastSeq - max(acked, seg.firstSeq - 1n);
    }
    let n = 0n;
    this.#scan(seg, seg.headerBytes, (seq) => {
      if (seq > acked) n++;
      return true;
    });
    return n;
  }

  #deleteSegment(seg: Segment): void {
    if (seg.deleted) return;
    if (this.#active?.seg === seg) {
      this.#wbuf = [];
      this.#group = undefined;
      this.#release(this.#active);
      this.#active = undefined;
      this.#dirty = false;
    }
    unlinkSync(seg.path);
    seg.deleted = true;
    if (this.#rc?.seg === seg) this.#rc = undefined;
    const sp = seg.space;
    sp.segments = sp.segments.filter((s) => s !== seg);
    this.#bytes -= seg.bytes;
    if (sp !== this.#current && !sp.segments.length) this.#spaces.delete(sp.key);
    if (this.fsync === 'always') this.#syncDir();
  }

  /** `kind`: what the warnings are limited by (default `why`, when it has no numbers in it). */
  #countDrops(n: bigint, why: string, kind = why): void {
    this.#unconfirmedDrops += n;
    this.#dropsTotal += n;
    this.#dropWarn.warn(
      kind,
      { dropped: String(n), dropsTotal: String(this.#dropsTotal), policy: this.overflow, dir: this.dir },
      `spool: events dropped (${why}); counted and reported to the collector as spool_drops`,
    );
  }

  // --- reading -------------------------------------------------------------

  /**
   * Call visit(seq, payload, nextOffset) for each record from offset `start`
   * until it returns false or the segment ends.
   */
  #scan(seg: Segment, start: number, visit: (seq: bigint, payload: Buffer, next: number) => boolean): void {
    // What this append has so far must be on disk to be read.
    if (this.#active?.seg === seg) this.#flush();
    const fd = openSync(seg.path, 'r');
    try {
      let pos = start;
      let buf = Buffer.alloc(0);
      let bufAt = start;
      while (pos < seg.bytes) {
        const r = readUnit(buf, pos - bufAt, seg.version);
        if (r.kind === 'unit') {
          const next = bufAt + r.next;
          const last = r.seqs.length - 1;
          // Resuming inside a group re-reads it from its start (its checksum covers it whole).
          for (let i = 0; i <= last; i++) if (!visit(r.seqs[i]!, r.payloads[i]!, i === last ? next : pos)) return;
          pos = next;
          continue;
        }
        if (r.kind === 'torn') {
          this.#log.error({ file: seg.path, offset: pos, reason: r.reason }, 'spool: corrupt record; rest of segment skipped');
          this.#countDrops(BigInt(r.lost), 'corrupt record in a sealed segment');
          return;
        }
        // 'end' or 'short': read more from pos.
        const want = Math.min(seg.bytes - pos, Math.max(READ_CHUNK, r.kind === 'short' ? r.need : 0));
        buf = Buffer.allocUnsafe(want);
        let got = 0;
        while (got < want) {
          const n = readSync(fd, buf, got, want - got, pos + got);
          if (n === 0) break;
          got += n;
        }
        buf = buf.subarray(0, got);
        bufAt = pos;
        if (got < want) {
          this.#log.error(
            { file: seg.path, offset: pos, expected: seg.bytes },
            'spool: segment shorter than written; rest skipped',
          );
          return;
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  // --- open-time recovery ----------------------------------------------------

  #loadSegments(acks: Map<string, bigint>): void {
    const names = readdirSync(this.dir).sort();
    for (const name of names) {
      if (name.endsWith('.tmp')) {
        unlinkSync(join(this.dir, name));
        continue;
      }
      if (SEGMENT_RE.test(name)) this.#loadSegment(name, acks);
    }
    for (const sp of this.#spaces.values()) {
      sp.segments.sort((a, b) => (a.firstSeq < b.firstSeq ? -1 : a.firstSeq > b.firstSeq ? 1 : 0));
      for (const seg of [...sp.segments]) {
        if (seg.count === 0 || seg.lastSeq <= sp.acked) this.#deleteSegment(seg);
      }
    }
    for (const sp of [...this.#spaces.values()]) if (!sp.segments.length) this.#spaces.delete(sp.key);
  }

  #loadSegment(name: string, acks: Map<string, bigint>): void {
    const path = join(this.dir, name);
    const buf = readFileSync(path);
    const h = decodeSegmentHeader(buf);
    if (!h.ok) {
      // A header is written with the segment's first records: if records may
      // have followed it, count one lost record (at least one was there).
      const lost = buf.length > 256 ? 1n : 0n;
      this.#log.warn({ file: path, reason: h.reason, bytes: buf.length }, 'spool: unreadable segment header, segment deleted');
      unlinkSync(path);
      if (lost) this.#countDrops(lost, 'unreadable segment');
      return;
    }
    const key = keyOf(h.header);
    let sp = this.#spaces.get(key);
    if (!sp) {
      sp = newSpace({ instanceId: h.header.instanceId, bootId: h.header.bootId }, h.header.epoch, acks);
      this.#spaces.set(key, sp);
    }
    const seg = newSegment(sp, path, h.bytes, h.header.firstSeq, h.version);
    let off = h.bytes;
    for (;;) {
      const r = readUnit(buf, off, h.version);
      if (r.kind === 'end') break;
      let reason: string;
      let lost = 1;
      if (r.kind === 'unit') {
        const first = r.seqs[0]!;
        if (seg.count === 0 || first > seg.lastSeq) {
          if (seg.count === 0) seg.firstSeq = first;
          seg.lastSeq = r.seqs.at(-1)!;
          seg.count += r.seqs.length;
          off = r.next;
          continue;
        }
        reason = `seq ${first} not above ${seg.lastSeq}`;
        lost = r.seqs.length;
      } else {
        reason = r.kind === 'short' ? 'record cut short' : r.reason;
        lost = r.lost;
      }
      // A crash in the middle of a write() leaves a partial group (one append's events) at the tail: keep the
      // valid prefix, count the torn group's events (as many as its header says, at least one), say so.
      this.#log.warn(
        { file: path, offset: off, discardedBytes: buf.length - off, reason, lost },
        'spool: torn record at segment tail truncated (counted as a spool drop)',
      );
      const fd = openSync(path, 'r+');
      try {
        ftruncateSync(fd, off);
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
      this.#countDrops(BigInt(lost), 'torn record after a crash');
      break;
    }
    seg.bytes = off;
    sp.segments.push(seg);
    this.#bytes += seg.bytes;
    if (sp.lastSeq < seg.lastSeq) sp.lastSeq = seg.lastSeq;
  }

  // --- small files -------------------------------------------------------------

  #stateValue(): unknown {
    const acks: Record<string, string> = {};
    for (const sp of this.#spaces.values()) if (sp.acked > 0n) acks[sp.key] = String(sp.acked);
    return { version: 1, acks, unconfirmedDrops: String(this.#unconfirmedDrops) };
  }

  /** state.json now: when what follows depends on it (a segment's deletion, close). */
  #persistState(): void {
    this.#stateDirty = false;
    this.#stateGen++;
    this.#writeJson(STATE_FILE, this.#stateValue());
  }

  /*
   * The tick's lazy state.json (a newer ack watermark, drop counts), written
   * and flushed on libuv's pool, then renamed on the main thread: renaming an
   * unflushed file over the old one makes ext4 flush it inside rename(), which
   * stopped the ring's drain for up to 74 ms (bpftrace). A state written at
   * once meanwhile (#persistState) is newer: the background one is then not
   * renamed over it. Losing it in a crash only costs a resend.
   */
  #persistStateInBackground(): void {
    if (this.#stateWriting) return; // still dirty: the next tick
    this.#stateDirty = false;
    const gen = ++this.#stateGen;
    const final = join(this.dir, STATE_FILE);
    const tmp = `${final}.bg.tmp`;
    const data = `${JSON.stringify(this.#stateValue())}\n`;
    this.#stateWriting = true;
    const done = (err: Error | null) => {
      this.#stateWriting = false;
      if (this.#closed) return;
      try {
        if (err) throw err;
        if (gen === this.#stateGen) renameSync(tmp, final);
        else unlinkSync(tmp);
      } catch (e) {
        this.#stateDirty = true;
        this.#log.warn({ file: final, err: (e as Error).message }, 'spool: state write failed; retried at the next tick');
      }
    };
    open(tmp, 'w', (err, fd) => {
      if (err) return done(err);
      write(fd, data, (werr) => {
        if (werr) return close(fd, () => done(werr));
        fdatasync(fd, (serr) => close(fd, (cerr) => done(serr ?? cerr)));
      });
    });
  }

  #readJson(name: string): unknown {
    try {
      return JSON.parse(readFileSync(join(this.dir, name), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#log.warn({ file: join(this.dir, name), err: (err as Error).message }, 'spool: unreadable state file ignored');
      }
      return undefined;
    }
  }

  /** Write-then-rename: a crash leaves the old file or the new one, never half of one. */
  #writeJson(name: string, value: unknown): void {
    const final = join(this.dir, name);
    const tmp = `${final}.tmp`;
    const data = `${JSON.stringify(value)}\n`;
    if (this.fsync === 'always') {
      const fd = openSync(tmp, 'w');
      try {
        writeSync(fd, data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, final);
      this.#syncDir();
    } else {
      writeFileSync(tmp, data);
      renameSync(tmp, final);
    }
  }

  #syncDir(): void {
    const fd = openSync(this.dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`spool ${this.dir} is closed`);
  }
}
