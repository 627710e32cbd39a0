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
  /** When the last session of this key ended (clock ms); undefined while one is open, or none ever was. */
  idleSince: number | undefined;
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

/** What a node's streams counted, the live ones and those no longer tracked together (metrics are counters). */
export interface StreamTotals {
  accepted: number;
  duplicates: number;
  gaps: number;
  gapEvents: bigint;
}
/** A node's totals and its open Publish sessions. */
export type NodeTotals = StreamTotals & { sessions: number };

const addCounts = (t: StreamTotals, s: StreamState): void => {
  t.accepted += s.accepted;
  t.duplicates += s.duplicates;
  t.gaps += s.gaps;
  t.gapEvents += s.gapEvents;
};

export interface StreamTableOptions {
  /** A stream with no session, everything it sent persisted, idle this long, is forgotten (sweep()). */
  idleMs?: number;
  /** Past this many streams, settled idle ones are forgotten sooner, oldest first. */
  maxStreams?: number;
}

/**
 * Every agent stream (instance_id/boot_id) the collector is talking to, and
 * the ones it talked to recently. An agent restart is a new stream, so a
 * long-running collector would otherwise keep one entry per agent restart
 * forever. sweep() forgets a stream only when nothing is lost by it: no
 * session open, and everything it sent acked (persisted by every required
 * sink). If that agent comes back, its first batch is a baseline, as after a
 * collector restart (docs/collector.md), and it resends only what is unacked,
 * which here is nothing. Its counts move to its node's retired totals, so the
 * metrics (counters) never go back.
 */
export class StreamTable {
  private readonly streams = new Map<StreamKey, StreamState>();
  private readonly retired = new Map<string, StreamTotals>();
  private readonly idleMs: number;
  private readonly maxStreams: number;

  constructor(
    private readonly required: readonly string[],
    opts: StreamTableOptions = {},
  ) {
    this.idleMs = opts.idleMs ?? 60 * 60 * 1000;
    this.maxStreams = opts.maxStreams ?? 10_000;
  }

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

  /** A session of this stream began (publish.ts). */
  attach(s: StreamState): void {
    s.sessions++;
    s.idleSince = undefined;
  }

  /** A session of this stream ended. */
  detach(s: StreamState, now: number): void {
    s.sessions--;
    if (s.sessions === 0) s.idleSince = now;
  }

  /**
   * Forget settled streams idle for idleMs; while more than maxStreams are
   * tracked, the oldest settled idle ones regardless of how long. Returns how
   * many were forgotten.
   */
  sweep(now: number): number {
    const settled: StreamState[] = [];
    for (const s of this.streams.values()) {
      if (s.sessions > 0 || s.idleSince === undefined) continue;
      if (s.next !== undefined && s.acked < s.next - 1n) continue; // something is not persisted yet
      settled.push(s);
    }
    settled.sort((a, b) => a.idleSince! - b.idleSince!);
    let over = this.streams.size - this.maxStreams;
    let n = 0;
    for (const s of settled) {
      if (now - s.idleSince! < this.idleMs && over <= 0) break;
      this.retire(s);
      over--;
      n++;
    }
    return n;
  }

  private retire(s: StreamState): void {
    this.streams.delete(s.key);
    const node = s.agent.nodeName;
    const t = this.retired.get(node) ?? { accepted: 0, duplicates: 0, gaps: 0, gapEvents: 0n };
    addCounts(t, s);
    this.retired.set(node, t);
  }

  /** Per node: what its streams counted, forgotten ones included, and its open sessions. */
  totalsByNode(): Map<string, NodeTotals> {
    const m = new Map<string, NodeTotals>();
    for (const [node, t] of this.retired) m.set(node, { ...t, sessions: 0 });
    for (const s of this.streams.values()) {
      const node = s.agent.nodeName;
      let t = m.get(node);
      if (!t) {
        t = { accepted: 0, duplicates: 0, gaps: 0, gapEvents: 0n, sessions: 0 };
        m.set(node, t);
      }
      t.sessions += s.sessions;
      addCounts(t, s);
    }
    return m;
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
