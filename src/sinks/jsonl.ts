import { createReadStream } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { formatLine, writeLine } from '../formats/format.js';
import { JsonWriter } from '../formats/native-json.js';
import type { Logger } from '../log/logger.js';
import { entryKeys, parseConfig, sizeBytes } from './config.js';
import type { FormatName, Sink, SinkDeps, SinkFactory, SinkRecord } from './sink.js';

/**
 * `type: jsonl` — one JSON object per line (formatRecord), to stdout
 * (`path: "-"`) or appended to a file rotated by size and count. Lines are
 * never split across files. docs/sinks/jsonl.md is the user-facing description.
 */

// ---------------------------------------------------------------------------
// Payload (pure)

/** One record as one line, newline included. JSON.stringify escapes every newline inside strings. */
export function jsonlLine(rec: SinkRecord, format: FormatName): Buffer {
  return Buffer.from(`${formatLine(rec, format)}\n`, 'utf8');
}

/**
 * A batch's lines, newlines included, appended to `w` (reset first); `ends`
 * gets each line's end offset. Native and OCSF events are written as bytes
 * straight into the buffer (format.ts writeLine: the same bytes as
 * jsonlLine, per-pod parts once per pod); other records through formatLine.
 * One buffer per batch, no string per line.
 */
export function encodeLines(batch: readonly SinkRecord[], format: FormatName, w: JsonWriter, ends: number[]): void {
  w.reset();
  ends.length = 0;
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i]!;
    writeLine(w, r, format);
    w.byte(0x0a);
    ends.push(w.pos);
  }
}

/**
 * Splits a batch's lines into runs that fit the current file, given the bytes
 * already in it: a rotation happens between runs. A line larger than maxBytes
 * gets a file of its own rather than being split.
 */
export function planRotation(lineSizes: number[], currentBytes: number, maxBytes: number): number[][] {
  const runs: number[][] = [[]];
  let used = currentBytes;
  lineSizes.forEach((size, i) => {
    if (used > 0 && used + size > maxBytes) {
      runs.push([]);
      used = 0;
    }
    runs[runs.length - 1]!.push(i);
    used += size;
  });
  return runs;
}

// ---------------------------------------------------------------------------
// Config

const FILE_ONLY = ['maxBytes', 'maxFiles', 'fsync'] as const;

const schema = z
  .object({
    ...entryKeys('jsonl'),
    path: z.string().min(1),
    maxBytes: sizeBytes.optional(),
    maxFiles: z.number().int().min(1).max(1000).optional(),
    fsync: z.boolean().optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.path !== '-') return;
    for (const key of FILE_ONLY) {
      if (c[key] !== undefined) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'applies to files only, not to stdout (path "-")' });
      }
    }
  })
  .transform(({ path, format, maxBytes, maxFiles, fsync }) => ({
    path,
    format,
    maxBytes: maxBytes ?? 100 * 1024 ** 2,
    maxFiles: maxFiles ?? 5,
    fsync: fsync ?? false,
  }));

export type JsonlConfig = z.output<typeof schema>;

// ---------------------------------------------------------------------------
// Transport

/** Serializes work: writes and rotations never interleave. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.catch(() => {});
    return p;
  }
}

function isEnoent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

/** "<boot>/<instance>/<seq>" -> stream key and seq; undefined for anything else (loss records). */
export function parseEventId(id: string): { stream: string; seq: bigint } | undefined {
  const i = id.lastIndexOf('/');
  if (i <= 0 || i === id.length - 1) return undefined;
  for (let j = i + 1; j < id.length; j++) {
    const c = id.charCodeAt(j);
    if (c < 48 || c > 57) return undefined;
  }
  return { stream: id.slice(0, i), seq: BigInt(id.slice(i + 1)) };
}

/** id === `${stream}/${seq}`, for a non-empty stream and 0 < seq < 2^53, without building that string. */
export function idIs(id: string, stream: string, seq: bigint): boolean {
  const n = stream.length;
  if (n === 0 || id.length <= n + 1 || id.length > n + 16 || id.charCodeAt(n) !== 47 || !id.startsWith(stream)) return false;
  let v = 0;
  for (let i = n + 1; i < id.length; i++) {
    const c = id.charCodeAt(i) - 48;
    if (c < 0 || c > 9 || (c === 0 && v === 0)) return false; // a digit, and no leading zero
    v = v * 10 + c;
  }
  return v === Number(seq);
}

/** Where each format keeps the event id (recordId) in a written line. Tracee's event has none: no recovery (docs/formats.md). */
const ID_PATHS: Record<FormatName, string[]> = {
  native: ['eventId'],
  ocsf: ['metadata', 'uid'],
  ecs: ['event', 'id'],
  tracee: [],
};

export function idOfLine(line: string, format: FormatName): string | undefined {
  try {
    let v: unknown = JSON.parse(line);
    for (const k of ID_PATHS[format]) v = (v as Record<string, unknown> | undefined)?.[k];
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined; // a torn last line from a crash: ignored
  }
}

/**
 * The highest seq written per agent stream, for the dedup after a collector crash. One entry per agent
 * start, so bounded: past `max`, the least recently written stream is forgotten, which only lets a replay
 * of its events after a crash be written again (at least once, as for every append-only sink).
 */
export class StreamMarks {
  readonly #seqs = new Map<string, bigint>();
  constructor(readonly max = 65_536) {}

  get(stream: string): bigint | undefined {
    return this.#seqs.get(stream);
  }

  mark(stream: string, seq: bigint): void {
    const m = this.#seqs;
    m.delete(stream);
    m.set(stream, seq);
    if (m.size > this.max) m.delete(m.keys().next().value!);
  }

  get size(): number {
    return this.#seqs.size;
  }
}

class FileSink implements Sink {
  private fh: FileHandle | null = null;
  /**
   * Highest seq written per agent stream, recovered from the files at start:
   * a collector that crashed after writing but before acking gets the same
   * events again from the agents, and they are skipped here, so the file holds
   * each event exactly once.
   */
  private readonly written = new StreamMarks();
  /** Bytes in the current file (tracked; the sink is the file's only writer). */
  private size = 0;
  private closed = false;
  private readonly serial = new Serial();
  /** The batch being written, as bytes (reused: writes are serial, and a batch is encoded inside its turn). */
  private readonly out = new JsonWriter(256 * 1024);
  private readonly ends: number[] = [];

  constructor(
    readonly name: string,
    private readonly cfg: JsonlConfig,
    private readonly log: Logger,
  ) {}

  async open(): Promise<FileHandle> {
    if (this.fh) return this.fh;
    let fh: FileHandle;
    try {
      fh = await open(this.cfg.path, 'a', 0o640);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const hint =
        e.code === 'ENOENT'
          ? ' — create the directory first'
          : e.code === 'EACCES'
            ? ' — check the permissions of the file and its directory'
            : '';
      throw new Error(`jsonl sink "${this.name}": cannot open "${this.cfg.path}": ${e.message}${hint}`, { cause: err });
    }
    this.size = (await fh.stat()).size;
    this.fh = fh;
    return fh;
  }

  /** Appends all of data, or nothing: a failed write is truncated away so a retry never follows half a line. */
  private async append(data: Buffer): Promise<void> {
    const fh = await this.open();
    let off = 0;
    try {
      while (off < data.length) off += (await fh.write(data, off, data.length - off, null)).bytesWritten;
      if (this.cfg.fsync) await fh.datasync();
    } catch (err) {
      if (off > 0) await fh.truncate(this.size).catch(() => {});
      throw new Error(`jsonl sink "${this.name}": write to "${this.cfg.path}" failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.size += data.length;
  }

  /**
   * file -> file.1 -> ... -> file.(maxFiles-1); the oldest is unlinked first. Never renamed over an
   * existing file: ext4 (auto_da_alloc) then writes the renamed file's dirty pages out inside rename()
   * — ~100 MiB of writeback per rotation in the collector's time, while the sink, and the events it
   * holds, waited.
   */
  private async rotate(): Promise<void> {
    const { path, maxFiles } = this.cfg;
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
    const name = (i: number) => (i === 0 ? path : `${path}.${i}`);
    const ignoreMissing = (err: unknown) => {
      if (!isEnoent(err)) throw err;
    };
    try {
      await unlink(name(maxFiles - 1)).catch(ignoreMissing);
      for (let i = maxFiles - 1; i >= 1; i--) await rename(name(i - 1), name(i)).catch(ignoreMissing);
    } catch (err) {
      throw new Error(`jsonl sink "${this.name}": rotating "${path}" failed: ${(err as Error).message}`, { cause: err });
    }
    this.log.debug({ path, maxFiles }, 'jsonl file rotated');
  }

  /** Read the live file and the newest rotated one (the unacked window is far smaller than two files). */
  async recover(): Promise<void> {
    for (const file of [`${this.cfg.path}.1`, this.cfg.path]) {
      let input: NodeJS.ReadableStream;
      try {
        input = createReadStream(file);
        await new Promise<void>((resolve, reject) => {
          (input as ReturnType<typeof createReadStream>).once('open', () => resolve()).once('error', reject);
        });
      } catch (err) {
        if (isEnoent(err)) continue;
        throw err;
      }
      for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
        const id = line && idOfLine(line, this.cfg.format);
        const p = id ? parseEventId(id) : undefined;
        if (p && p.seq > (this.written.get(p.stream) ?? 0n)) this.written.mark(p.stream, p.seq);
      }
    }
    if (this.written.size) this.log.info({ streams: this.written.size }, 'jsonl: recovered what the files already hold');
  }

  /** The stream of the last event id parsed: the next ones from that agent are checked against it, not sliced. */
  private lastStream = '';

  /** Drop events the file already has; note what this batch adds. */
  private fresh(batch: SinkRecord[]): { keep: SinkRecord[]; marks: Map<string, bigint> } {
    const marks = new Map<string, bigint>();
    // A batch is mostly a run of one stream's events: its highest seq so far is kept here, in marks only when
    // the run ends (a Map lookup and update per event were 3-4 % of the collector's CPU).
    let run: string | undefined;
    let seen = 0n;
    let kept = false;
    const keep = batch.filter((r) => {
      if (r.kind !== 'event') return true;
      const id = r.event.eventId;
      let stream = this.lastStream;
      let seq = r.event.seq;
      // parseEventId's answer without a string and a BigInt per event: the id is "<lastStream>/<digits>" and
      // the digits are the event's own seq (as agents write them). Anything else is parsed.
      if (!idIs(id, stream, seq)) {
        const p = parseEventId(id);
        if (!p) return true;
        stream = this.lastStream = p.stream;
        seq = p.seq;
      }
      if (stream !== run) {
        if (kept) marks.set(run!, seen);
        run = stream;
        seen = marks.get(stream) ?? this.written.get(stream) ?? 0n;
        kept = false;
      }
      if (seq <= seen) return false;
      seen = seq;
      kept = true;
      return true;
    });
    if (kept) marks.set(run!, seen);
    return { keep, marks };
  }

  write(batch: SinkRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`jsonl sink "${this.name}" is closed`));
    return this.serial.run(async () => {
      const { keep, marks } = this.fresh(batch);
      await this.open();
      const { out, ends } = this;
      encodeLines(keep, this.cfg.format, out, ends);
      // The common case: the batch fits the current file, one write.
      if (this.size + out.pos <= this.cfg.maxBytes) {
        if (out.pos > 0) await this.append(out.buf.subarray(0, out.pos));
      } else {
        const sizes = ends.map((e, i) => e - (i ? ends[i - 1]! : 0));
        const runs = planRotation(sizes, this.size, this.cfg.maxBytes);
        for (const [i, run] of runs.entries()) {
          if (i > 0) await this.rotate();
          if (run.length > 0) {
            const from = run[0]! ? ends[run[0]! - 1]! : 0;
            await this.append(out.buf.subarray(from, ends[run.at(-1)!]!));
          }
        }
      }
      for (const [k, v] of marks) this.written.mark(k, v);
    });
  }

  flush(): Promise<void> {
    return this.serial.run(async () => {});
  }

  close(): Promise<void> {
    if (this.closed) return this.flush();
    this.closed = true;
    return this.serial.run(async () => {
      const fh = this.fh;
      this.fh = null;
      if (!fh) return;
      if (this.cfg.fsync) await fh.datasync().catch(() => {});
      await fh.close();
    });
  }
}

/** `path: "-"`: stdout, which belongs to machine-readable output (logs go to stderr). */
class StdoutSink implements Sink {
  private closed = false;
  private readonly onError = (err: Error) => this.log.error({ err: err.message }, 'jsonl: stdout failed');

  constructor(
    readonly name: string,
    private readonly cfg: JsonlConfig,
    private readonly log: Logger,
    private readonly out: NodeJS.WritableStream = process.stdout,
  ) {
    // Without a listener an EPIPE (reader gone) would crash the process; the write's callback reports it instead.
    this.out.on('error', this.onError);
  }

  write(batch: SinkRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`jsonl sink "${this.name}" is closed`));
    const w = new JsonWriter(64 * 1024);
    encodeLines(batch, this.cfg.format, w, []);
    const data = w.buf.subarray(0, w.pos);
    return new Promise((resolve, reject) => {
      this.out.write(data, (err) => {
        if (err) reject(new Error(`jsonl sink "${this.name}": write to stdout failed: ${err.message}`, { cause: err }));
        else resolve();
      });
    });
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.out.off('error', this.onError);
  }
}

export const jsonlSink: SinkFactory<JsonlConfig> = {
  type: 'jsonl',

  parse: (config, path) => parseConfig(schema, 'jsonl', config, path),

  async create(name: string, config: JsonlConfig, deps: SinkDeps): Promise<Sink> {
    const { log } = deps;
    if (config.path === '-') return new StdoutSink(name, config, log);
    const sink = new FileSink(name, config, log);
    await sink.recover();
    await sink.open();
    return sink;
  },
};
