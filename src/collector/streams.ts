import type { AgentIdentity, LossCounters, LossRecord } from '../gen/doorwatch/v1/collector.js';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';

/**
 * One seq space per agent stream, keyed "instance_id/boot_id": what has been
 * accepted (dedup and gaps), what each required sink has persisted, and from
 * those the ack. Pure bookkeeping, no I/O.
 *
 * Invariants the dispatcher provides: a sink's queue is FIFO and a failed
 * batch is retried, never skipped, so for a required sink "persisted seq s"
 * implies every accepted seq <= s of the same stream is persisted too. The
 * per-sink watermark is therefore just the highest persisted seq.
 */

export type StreamKey = string;

export function streamKey(agent: AgentIdentity): StreamKey {
  return `${agent.instanceId}/${agent.bootId}`;
}

export interface Admission {
  /** Events not seen before, in seq order. */
  accepted: AcceptEvent[];
  /** Events with seq < next: already accepted earlier (a replay). */
  duplicates: number;
  /** A hole before this batch: [from, to] never arrived. */
  gap?: { from: bigint; to: bigint };
  /** The first batch of a stream this collector has not seen: taken as the baseline. */
  baseline: boolean;
}

export class StreamState {
  /** The latest Hello's identity (node name and version may change on agent restart). */
  agent: AgentIdentity;
  /** Lowest seq not yet accepted; undefined until the first batch (baseline). */
  next: bigint | undefined;
  /** Everything <= acked is persisted by every required sink (or the stream baseline). */
  acked = 0n;
  accepted = 0;
  duplicates = 0;
  gaps = 0;
  gapEvents = 0n;
  /** Open Publish streams for this key. */
  sessions = 0;
  private readonly persisted = new Map<string, bigint>();
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly key: StreamKey,
    agent: AgentIdentity,
    private readonly required: readonly string[],
  ) {
    this.agent = agent;
  }

  /** Dedup a batch and advance `next`. `events[i].seq == firstSeq + i` is checked by the caller. */
  admit(firstSeq: bigint, events: AcceptEvent[]): Admission {
    const n = BigInt(events.length);
    let baseline = false;
    if (this.next === undefined) {
      // Unknown stream (new agent, or this collector restarted): the first
      // batch is the baseline. Anything before it was acked by a previous
      // collector or lost by the agent (which the agent reports itself).
      baseline = true;
      this.next = firstSeq;
      this.acked = firstSeq - 1n;
      for (const s of this.required) this.persisted.set(s, firstSeq - 1n);
    }
    const next = this.next;
    let gap: Admission['gap'];
    if (firstSeq > next) {
      gap = { from: next, to: firstSeq - 1n };
      this.gaps++;
      this.gapEvents += firstSeq - next;
    }
    const skip = firstSeq >= next ? 0 : Number(next - firstSeq > n ? n : next - firstSeq);
    const accepted = skip ? events.slice(skip) : events;
    this.duplicates += skip;
    this.accepted += accepted.length;
    if (accepted.length) this.next = firstSeq + n;
    return { accepted, duplicates: skip, baseline, ...(gap ? { gap } : {}) };
  }

  /** With no required sink, "enqueued" is all an ack can mean. */
  enqueuedWithoutRequiredSinks(): void {
    if (this.next !== undefined) this.advance(this.next - 1n);
  }

  /** A required sink persisted `seq` (and so everything of this stream before it). */
  persistedBy(sink: string, seq: bigint): void {
    const prev = this.persisted.get(sink);
    if (prev !== undefined && seq <= prev) return;
    this.persisted.set(sink, seq);
    let min: bigint | undefined;
    for (const s of this.required) {
      const v = this.persisted.get(s);
      if (v === undefined) return;
      if (min === undefined || v < min) min = v;
    }
    if (min !== undefined) this.advance(min);
  }

  private advance(to: bigint): void {
    if (to <= this.acked) return;
    this.acked = to;
    for (const l of this.listeners) l();
  }

  /** Called whenever `acked` advances; returns the unsubscribe function. */
  onAck(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export class StreamTable {
  private readonly streams = new Map<StreamKey, StreamState>();

  constructor(private readonly required: readonly string[]) {}

  get hasRequiredSinks(): boolean {
    return this.required.length > 0;
  }

  open(agent: AgentIdentity): StreamState {
    const key = streamKey(agent);
    let s = this.streams.get(key);
    if (!s) {
      s = new StreamState(key, agent, this.required);
      this.streams.set(key, s);
    } else s.agent = agent;
    return s;
  }

  get size(): number {
    return this.streams.size;
  }

  all(): IterableIterator<StreamState> {
    return this.streams.values();
  }
}

export function hasLosses(c: LossCounters | undefined): c is LossCounters {
  return (
    !!c && (c.kernelRingFull > 0n || c.decodeErrors > 0n || c.bpfRecursionMisses > 0n || c.queueDrops > 0n || c.spoolDrops > 0n)
  );
}

export function emptyCounters(): LossCounters {
  return { kernelRingFull: 0n, decodeErrors: 0n, bpfRecursionMisses: 0n, queueDrops: 0n, spoolDrops: 0n };
}

export function nowUnixNano(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

export function lossRecord(
  agent: AgentIdentity | undefined,
  reason: string,
  range: { from: bigint; to: bigint } | undefined,
  counters: LossCounters | undefined,
): LossRecord {
  return {
    agent,
    fromSeq: range?.from ?? 0n,
    toSeq: range?.to ?? 0n,
    reason,
    counters,
    timeUnixNano: nowUnixNano(),
  };
}
