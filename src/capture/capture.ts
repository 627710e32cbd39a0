import { randomBytes } from 'node:crypto';
import type { AcceptProbes, KernelCounters, ProgramStats } from '../bpf/accept-probes.js';
import type { Logger } from '../log/logger.js';
import { WarnLimiter } from '../log/warn-limiter.js';
import { readBootId, WallClock } from './clock.js';
import { decodeRecord, reusableRecord } from './record.js';
import { type AcceptEvent, type EventContext, toAcceptEvent } from './to-event.js';

/**
 * Ring buffer -> AcceptEvent batches. Wake-ups, not decoding, are the cost of
 * a BPF event path (≈25 µs per event with a wake-up each, ≈2 µs batched), so
 * the kernel never wakes us: a timer drains whatever accumulated.
 */

export interface CaptureOptions {
  probes: AcceptProbes;
  nodeName: string;
  log: Logger;
  /** Drain period while events pour in (steadyPollMs would bring BUSY_RECORDS or more); latency is at most this. */
  pollMs?: number;
  /**
   * Drain period while events trickle in: QUIET_RECORDS or more per drain, but fewer than BUSY_RECORDS per
   * steadyPollMs at the last drain's rate. Default pollMs; kept between pollMs and idlePollMs. The agent sets
   * its publisher's batch interval: events drained more often only wait in the batch, and every drain has a
   * fixed cost (the ring walk, the spool's write, the live batch): 12–19 % of the agent's CPU at 5 000
   * events/s (docs/benchmarks.md, "tenth session").
   */
  steadyPollMs?: number;
  /**
   * Drain period while it is quiet (default 50 ms, never below pollMs): a node
   * that accepts a few connections a second pays for 20 drains, not 100, and
   * for fewer, fuller batches downstream. The ring holds ~26k records, half a
   * second of the fastest storm measured here, so the first 50 ms of a storm
   * fit easily.
   */
  idlePollMs?: number;
  /** Records per drain before yielding to the event loop. */
  maxBatch?: number;
  /**
   * The seq space to continue (the agent's spool): event ids become
   * "<bootId>/<instanceId>/<seq>". Default: this boot, a random instance.
   */
  identity?: { bootId: string; instanceId: string };
  /** The first seq to assign (the spool's nextSeq()). Default 1. */
  firstSeq?: bigint;
  /**
   * Name each event (default true). The agent renumbers events after enrichment and its spool writes each
   * one's id from its own seq space: an id made here would be thrown away.
   */
  eventIds?: boolean;
  onEvents(batch: AcceptEvent[]): void;
}

export interface CaptureStats {
  kernel: KernelCounters;
  programs: ProgramStats[];
  /** Records decoded into events and handed on. */
  delivered: bigint;
  /** Records that failed to decode (logged, counted, never silent). */
  decodeErrors: bigint;
}

/** A drain that finds fewer records than this counts as quiet. */
const QUIET_RECORDS = 32;
/**
 * While a drain after steadyPollMs would hold this many records, the ring is drained at pollMs instead: a
 * drain's events live until it ends, and 500 of them (20 000/s every 25 ms) outgrew the agent's 2 MiB young
 * generation: its RSS rose by ~5 MiB. A drain holds at most a few hundred, whatever the rate.
 */
const BUSY_RECORDS = 256;

export class Capture {
  readonly #o: Required<Omit<CaptureOptions, 'onEvents' | 'identity' | 'firstSeq' | 'eventIds'>> &
    Pick<CaptureOptions, 'onEvents'>;
  readonly #clock = new WallClock();
  readonly #ctx: EventContext;
  /** Every record of the ring is decoded into this one: toAcceptEvent is done with it before the next. */
  readonly #record = reusableRecord();
  #timer: NodeJS.Timeout | undefined;
  /** When the last timed drain began (Date.now()). */
  #lastTick = 0;
  #seq = 0n;
  /** seq before the first event of this run (firstSeq - 1). */
  readonly #seqBase: bigint;
  #decodeErrors = 0n;
  readonly #warn: WarnLimiter;
  #draining = false;
  #stopped = false;

  constructor(o: CaptureOptions) {
    const pollMs = o.pollMs ?? 10;
    const idlePollMs = Math.max(pollMs, o.idlePollMs ?? 50);
    const steadyPollMs = Math.min(idlePollMs, Math.max(pollMs, o.steadyPollMs ?? pollMs));
    this.#o = { maxBatch: 1024, ...o, pollMs, idlePollMs, steadyPollMs };
    this.#warn = new WarnLimiter(o.log, 5000);
    const id = o.identity ?? { bootId: readBootId(), instanceId: randomBytes(6).toString('hex') };
    if (o.firstSeq !== undefined && o.firstSeq < 1n) throw new RangeError(`firstSeq must be >= 1, got ${o.firstSeq}`);
    this.#seqBase = (o.firstSeq ?? 1n) - 1n;
    this.#seq = this.#seqBase;
    this.#ctx = {
      nodeName: o.nodeName,
      idPrefix: o.eventIds === false ? undefined : `${id.bootId}/${id.instanceId}`,
      toUnixNano: (k) => this.#clock.toUnixNano(k),
    };
  }

  start(): void {
    this.#lastTick = Date.now();
    this.#timer = setTimeout(this.#tick, this.#o.pollMs);
  }

  readonly #tick = (): void => {
    const now = Date.now();
    const n = this.drain();
    if (this.#stopped || this.#timer === undefined) return;
    this.#timer = setTimeout(this.#tick, this.#period(n, now - this.#lastTick));
    this.#lastTick = now;
  };

  /** The wait before the next drain, from what the last one found `elapsedMs` after the one before. */
  #period(n: number, elapsedMs: number): number {
    const o = this.#o;
    if (n < QUIET_RECORDS) return o.idlePollMs;
    // At this rate, would a drain after steadyPollMs hold BUSY_RECORDS or more?
    return elapsedMs > 0 && (n / elapsedMs) * o.steadyPollMs < BUSY_RECORDS ? o.steadyPollMs : o.pollMs;
  }

  /** Drain now; returns the number of events delivered. */
  drain(): number {
    if (this.#draining || this.#stopped) return 0;
    const { count, more } = this.#chunk();
    // A storm: hand the loop back between chunks, then continue.
    if (more) setImmediate(() => this.drain());
    return count;
  }

  /** One bounded chunk of the ring: decoded, handed on, consumer position published. */
  #chunk(): { count: number; more: boolean } {
    this.#draining = true;
    try {
      this.#clock.maybeResample();
      const batch: AcceptEvent[] = [];
      const { more } = this.#o.probes.ring.drain((view, off, len) => {
        try {
          batch.push(toAcceptEvent(decodeRecord(view, off, len, this.#record), ++this.#seq, this.#ctx));
        } catch (err) {
          this.#decodeError(err as Error);
        }
      }, this.#o.maxBatch);
      if (batch.length) this.#o.onEvents(batch);
      return { count: batch.length, more };
    } finally {
      this.#draining = false;
    }
  }

  #decodeError(err: Error): void {
    this.#decodeErrors++;
    this.#warn.warn(
      'decode',
      { err: err.message, decodeErrors: String(this.#decodeErrors) },
      'undecodable ring records (counted)',
    );
  }

  /** Records decoded into events and handed on (stats().delivered, without reading the kernel's counters). */
  get delivered(): bigint {
    return this.#seq - this.#seqBase;
  }

  stats(): CaptureStats {
    return {
      kernel: this.#o.probes.kernelCounters(),
      programs: this.#o.probes.programStats(),
      delivered: this.delivered,
      decodeErrors: this.#decodeErrors,
    };
  }

  /** Stop the timer and take what is left in the ring; probes stay attached. */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped) return;
    // Everything the ring holds, not one chunk: a stop during a storm must not
    // leave records behind (the probes are detached first, so this ends).
    // A record still BUSY (a program finishing on another CPU) makes no progress: bounded.
    for (let stalled = 0; stalled < 10_000; ) {
      const { count, more } = this.#chunk();
      if (!more) break;
      if (count === 0) stalled++;
    }
    this.#stopped = true;
  }
}
