import type { Logger } from '../log/logger.js';
import { WarnLimiter } from '../log/warn-limiter.js';
import { backoffDelay } from '../retry/backoff.js';
import type { Sink, SinkRecord } from '../sinks/sink.js';
import { type Clock, Notifier, systemClock, within } from './async.js';
import type { SinkConfig } from './config.js';
import { Deque } from './deque.js';
import { emptyCounters, lossRecord, type StreamState } from './streams.js';

/**
 * Fan-out: one bounded queue and one worker per sink. A worker takes up to
 * batch.maxRecords (waiting for a fuller batch only while records keep
 * arriving, at most batch.maxDelay), writes it, and on failure retries the SAME batch with exponential backoff and full
 * jitter until it succeeds or the collector stops. Workers are independent: a
 * slow or failing sink never blocks another.
 *
 * Full queues: a required sink's queue is never dropped from; the publish
 * side waits on whenAccepting() before reading more from agents
 * (back-pressure), and it does so as soon as a required queue holds
 * READ_AHEAD_BATCHES of that sink's batches (or queue.maxRecords): requests
 * are decoded only when read (server.ts), so what agents sent ahead waits as
 * bytes in the transport, and decoded events live only from their decode to
 * their write. Held longer, every one of them outlived the young generation
 * and went to the old one — in the chart's memory limit, the collector's
 * largest cost (docs/benchmarks.md). A non-required sink's queue drops its oldest events, counts
 * them, and the next batch to that sink starts with LossRecords ("sink queue
 * overflow") naming the agent, the seq range and the count (counters.queueDrops).
 */

/** Batches a required sink's queue may hold before the readers stop decoding: one written, the next ones ready. */
export const READ_AHEAD_BATCHES = 4;

/** A record on its way to the sinks, with where it came from (for acks). */
export interface QueuedRecord {
  record: SinkRecord;
  /** The agent stream it belongs to. */
  stream?: StreamState;
  /** The event's seq (events only). */
  seq?: bigint;
}

export interface SinkStats {
  name: string;
  type: string;
  required: boolean;
  /** Waiting in the queue (not counting the batch being written). */
  queued: number;
  /** In the batch being written (or retried). */
  inFlight: number;
  /** Records handed to this sink's queue (events and loss records). */
  enqueued: number;
  /** Records persisted (events and loss records). */
  written: number;
  /** Failed write attempts. */
  retries: number;
  /** Events dropped because the queue was full (non-required sinks only). */
  dropped: number;
  /** Loss records made for those drops ("sink queue overflow"). */
  overflowRecords: number;
  /** The last write error's message, until the next successful write. */
  lastError: string | null;
  /** Wall clock (Date.now()) of the last successful write. */
  lastWriteMs: number | null;
  /** How long that write took, retries not included. */
  lastWriteDurationMs: number | null;
}

export interface DispatcherOptions {
  log: Logger;
  /** A required sink persisted these records (called once per successful batch). */
  onPersisted?: (sink: string, records: QueuedRecord[]) => void;
  clock?: Clock;
  random?: () => number;
  /** Minimum interval between two "write failed" warnings of one sink. */
  warnIntervalMs?: number;
  /** A batch was persisted, in `ms` (retries not included): metrics.ts observes it. */
  onWritten?: (sink: string, ms: number, records: number) => void;
}

interface Overflow {
  stream: StreamState | undefined;
  from: bigint;
  to: bigint;
  count: number;
}

class SinkWorker {
  readonly queue = new Deque<QueuedRecord>();
  readonly arrived = new Notifier();
  inFlight: QueuedRecord[] = [];
  enqueued = 0;
  written = 0;
  retries = 0;
  dropped = 0;
  overflowRecords = 0;
  lastError: string | null = null;
  lastWriteMs: number | null = null;
  lastWriteDurationMs: number | null = null;
  /** Drops not yet reported to this sink, per agent stream. */
  private readonly overflow = new Map<string, Overflow>();
  /** Loss records pushed out of a full queue: they are carried, never dropped. */
  private carried: QueuedRecord[] = [];
  running: Promise<void> | undefined;

  /** Records the readers keep decoded ahead of this sink (required sinks): a few batches, within the queue's bound. */
  readonly readAhead: number;

  constructor(
    readonly config: SinkConfig,
    readonly sink: Sink,
  ) {
    this.readAhead = Math.min(config.queue.maxRecords, READ_AHEAD_BATCHES * config.batch.maxRecords);
  }

  get pendingReports(): number {
    return this.overflow.size + this.carried.length;
  }

  get idle(): boolean {
    return this.queue.length === 0 && this.inFlight.length === 0 && this.pendingReports === 0;
  }

  enqueue(records: QueuedRecord[]): void {
    for (const r of records) this.queue.push(r);
    this.enqueued += records.length;
    if (!this.config.required) {
      while (this.queue.length > this.config.queue.maxRecords) this.dropOldest();
    }
    this.arrived.notify();
  }

  private dropOldest(): void {
    const r = this.queue.shift()!;
    if (r.record.kind === 'loss') {
      this.carried.push(r);
      return;
    }
    this.dropped++;
    const key = r.stream?.key ?? '';
    const seq = r.seq ?? 0n;
    const o = this.overflow.get(key);
    if (!o) this.overflow.set(key, { stream: r.stream, from: seq, to: seq, count: 1 });
    else {
      if (seq < o.from) o.from = seq;
      if (seq > o.to) o.to = seq;
      o.count++;
    }
  }

  /** The next batch: pending overflow reports first, then queued records. */
  nextBatch(): QueuedRecord[] {
    const batch: QueuedRecord[] = [];
    if (this.carried.length) {
      batch.push(...this.carried);
      this.carried = [];
    }
    for (const o of this.overflow.values()) {
      const counters = { ...emptyCounters(), queueDrops: BigInt(o.count) };
      const loss = lossRecord(o.stream?.agent, 'sink queue overflow', { from: o.from, to: o.to }, counters);
      batch.push({ record: { kind: 'loss', loss }, ...(o.stream ? { stream: o.stream } : {}) });
      this.overflowRecords++;
    }
    this.overflow.clear();
    const room = Math.max(1, this.config.batch.maxRecords - batch.length);
    batch.push(...this.queue.take(room));
    return batch;
  }

  stats(): SinkStats {
    return {
      name: this.config.name,
      type: this.config.type,
      required: this.config.required,
      queued: this.queue.length,
      inFlight: this.inFlight.length,
      enqueued: this.enqueued,
      written: this.written,
      retries: this.retries,
      dropped: this.dropped,
      overflowRecords: this.overflowRecords,
      lastError: this.lastError,
      lastWriteMs: this.lastWriteMs,
      lastWriteDurationMs: this.lastWriteDurationMs,
    };
  }
}

/** One turn of the event loop: I/O callbacks that were ready (more requests) run first. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Dispatcher {
  private readonly workers: SinkWorker[];
  private readonly required: SinkWorker[];
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly warn: WarnLimiter;
  /** Stops the workers (backoff sleeps end, no new batch is started). */
  private readonly stopped = new AbortController();
  /** While draining, workers do not wait for fuller batches. */
  private draining = false;
  /** Notified whenever a worker takes from its queue or finishes a batch. */
  private readonly progress = new Notifier();

  constructor(
    sinks: { config: SinkConfig; sink: Sink }[],
    private readonly opts: DispatcherOptions,
  ) {
    this.workers = sinks.map((s) => new SinkWorker(s.config, s.sink));
    this.required = this.workers.filter((w) => w.config.required);
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.warn = new WarnLimiter(opts.log, opts.warnIntervalMs ?? 10_000, () => this.clock.now());
  }

  start(): void {
    for (const w of this.workers) w.running ??= this.run(w);
  }

  /** Hand records to every sink's queue. Never blocks and never drops for required sinks. */
  enqueue(records: QueuedRecord[]): void {
    if (!records.length) return;
    for (const w of this.workers) w.enqueue(records);
  }

  /** False while a required sink's queue holds its read-ahead (or is at its bound). */
  get accepting(): boolean {
    return this.required.every((w) => w.queue.length < w.readAhead);
  }

  /** Resolves once every required queue has room (or `signal` aborts). */
  async whenAccepting(signal?: AbortSignal): Promise<void> {
    while (!this.accepting && !signal?.aborted && !this.stopped.signal.aborted) await this.progress.wait(signal);
  }

  /** Wait until every queue is empty and nothing is in flight, at most `timeoutMs`; true when drained. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    for (const w of this.workers) w.arrived.notify();
    const expired = new AbortController();
    const done = new AbortController();
    void this.clock.sleep(timeoutMs, done.signal).then(() => expired.abort());
    try {
      while (!this.workers.every((w) => w.idle)) {
        if (expired.signal.aborted) return false;
        await this.progress.wait(expired.signal);
      }
      return true;
    } finally {
      done.abort();
    }
  }

  /**
   * Stop the workers (a write still in progress gets `graceMs` to finish:
   * drain() already waited), then close every sink. Records still queued are not persisted and so not
   * acked: the agents resend them to the next collector.
   */
  async close(graceMs = 1000): Promise<void> {
    this.stopped.abort();
    for (const w of this.workers) w.arrived.notify();
    await within(Promise.all(this.workers.map((w) => w.running)), graceMs, this.clock);
    await Promise.all(
      this.workers.map(async (w) => {
        try {
          await w.sink.close();
        } catch (e) {
          this.opts.log.warn({ sink: w.config.name, err: (e as Error).message }, 'sink close failed');
        }
      }),
    );
  }

  stats(): SinkStats[] {
    return this.workers.map((w) => w.stats());
  }

  private async run(w: SinkWorker): Promise<void> {
    const stop = this.stopped.signal;
    const { maxRecords, maxDelayMs } = w.config.batch;
    while (!stop.aborted) {
      if (w.queue.length === 0 && w.pendingReports === 0) {
        await w.arrived.wait(stop);
        continue;
      }
      if (w.queue.length < maxRecords && !this.draining) {
        // A fuller batch only while more is coming: every turn of the event
        // loop that added records (the agents' requests being read) is waited
        // out, at most batch.maxDelay in all; a turn that added nothing ends
        // the wait. A lone request is written at once, a burst as one batch,
        // and while a write is in flight the next batch fills by itself.
        const until = this.clock.now() + maxDelayMs;
        let seen = w.queue.length;
        while (w.queue.length < maxRecords && !this.draining && !stop.aborted) {
          await nextTurn();
          if (w.queue.length === seen || this.clock.now() >= until) break;
          seen = w.queue.length;
        }
        if (stop.aborted) break;
      }
      w.inFlight = w.nextBatch();
      this.progress.notify();
      await this.writeWithRetry(w, w.inFlight, stop);
      w.inFlight = [];
      this.progress.notify();
    }
  }

  private async writeWithRetry(w: SinkWorker, batch: QueuedRecord[], stop: AbortSignal): Promise<void> {
    const records = batch.map((q) => q.record);
    for (let attempt = 0; ; attempt++) {
      const started = this.clock.now();
      try {
        await w.sink.write(records);
      } catch (e) {
        w.retries++;
        w.lastError = (e as Error)?.message ?? String(e);
        const delay = backoffDelay(attempt, w.config.retry.initialMs, w.config.retry.maxMs, this.random);
        this.warn.warn(
          w.config.name,
          { sink: w.config.name, err: w.lastError, attempt: attempt + 1, records: records.length, retryInMs: delay },
          'sink write failed; retrying the same batch',
        );
        if (stop.aborted) return;
        await this.clock.sleep(delay, stop);
        if (stop.aborted) return;
        continue;
      }
      w.written += records.length;
      w.lastError = null;
      w.lastWriteMs = Date.now();
      const ms = this.clock.now() - started;
      w.lastWriteDurationMs = Math.round(ms);
      this.opts.onWritten?.(w.config.name, ms, records.length);
      if (w.config.required) this.opts.onPersisted?.(w.config.name, batch);
      return;
    }
  }
}
