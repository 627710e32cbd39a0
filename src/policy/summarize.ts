import { type AcceptEvent, AddressFamily, EventKind, type SummaryReason } from '../gen/doorwatch/v1/event.js';

/**
 * Folds accepts into summary records: one per (pod or host cgroup, reason,
 * accepting process, listening socket, peer IP) and interval, with exact
 * counts, first/last time and the first accept as the sample. The listener
 * is the listening port, or the unix path, or — when the kernel could not
 * resolve it (EBADF, ENOTSOCK) — the fd the call was given; a failed accept
 * is keyed by the listener it failed on (its record describes that listener),
 * so failures on one process's TCP listener never merge with another's unix
 * accepts, and the process is part of the key because a summary names one.
 * Bounded: past maxKeys distinct keys, further peers of a (process, listener)
 * fold into one `peers_folded` row, and past twice that, further listeners
 * (and processes) of a pod into one row with port 0 and `peers_folded` —
 * counts stay exact, only the key gets coarser. Nothing added is dropped.
 */

interface Row {
  sample: AcceptEvent;
  reason: SummaryReason;
  count: bigint;
  failed: bigint;
  first: bigint;
  last: bigint;
  port: number;
  peer: string;
  folded: boolean;
}

export interface SummarizerOptions {
  intervalMs: number;
  maxKeys: number;
  emit(batch: AcceptEvent[]): void;
  /** Wall clock in ns; injectable for tests. */
  nowNs?: () => bigint;
}

export interface SummarizerStats {
  /** Accepts folded into summaries so far. */
  folded: number;
  /** Summary records emitted. */
  summaries: number;
  /** Accepts folded under a coarsened key because the table was full. */
  keysFolded: number;
  /** Rows open in the current interval. */
  open: number;
}

const wallNs = () => BigInt(Date.now()) * 1_000_000n;

function subject(ev: AcceptEvent): string {
  if (ev.pod?.uid) return ev.pod.uid;
  return `cg:${ev.cgroup?.id ?? 0n}:${ev.cgroup?.v1Id ?? 0n}`;
}

/**
 * The listening socket an accept came through, as a key part and its port:
 * the port for inet listeners, the path for unix ones, else the fd (a
 * failed accept whose listener could not be resolved).
 */
export function listenerKey(ev: AcceptEvent): { key: string; port: number } {
  const s = ev.socket;
  const f = s?.family;
  if (f === AddressFamily.ADDRESS_FAMILY_INET || f === AddressFamily.ADDRESS_FAMILY_INET6) {
    const port = s?.local?.port ?? 0;
    return { key: `p${port}`, port };
  }
  if (f === AddressFamily.ADDRESS_FAMILY_UNIX && s?.unixPath) return { key: `u${s.unixPath}`, port: 0 };
  return { key: `f${ev.listener?.fd ?? -1}${f ? `/${f}` : ''}`, port: 0 };
}

export class Summarizer {
  readonly #o: SummarizerOptions;
  readonly #now: () => bigint;
  #rows = new Map<string, Row>();
  #intervalStart: bigint;
  #timer: NodeJS.Timeout | undefined;
  readonly #stats = { folded: 0, summaries: 0, keysFolded: 0 };

  constructor(o: SummarizerOptions) {
    this.#o = o;
    this.#now = o.nowNs ?? wallNs;
    this.#intervalStart = this.#now();
  }

  start(): void {
    this.#timer = setInterval(() => this.flush(), this.#o.intervalMs);
    this.#timer.unref();
  }

  /** Flush what is open: shutdown must not lose counts. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.flush();
  }

  add(ev: AcceptEvent, reason: SummaryReason): void {
    this.#stats.folded++;
    const who = `${subject(ev)}|${reason}`;
    const pid = ev.process?.pid ?? 0;
    const listener = listenerKey(ev);
    const peer = ev.success ? (ev.socket?.peer?.ip ?? '') : '';
    let key = `${who}|${pid}|${listener.key}|${peer}`;
    let row = this.#rows.get(key);
    if (!row) {
      let folded = false;
      let rowPort = listener.port;
      let rowPeer = peer;
      if (this.#rows.size >= this.#o.maxKeys) {
        // A key without a peer (unix, failed) has nothing to fold at this level.
        if (peer !== '') {
          folded = true;
          rowPeer = '';
          key = `${who}|${pid}|${listener.key}|*`;
        }
        if (!this.#rows.has(key) && this.#rows.size >= 2 * this.#o.maxKeys) {
          // Every further listener of the subject: port 0 and peers_folded
          // together say "several listeners" (no listener-level row has both).
          folded = true;
          rowPeer = '';
          rowPort = 0;
          key = `${who}|*|*|*`;
        }
        if (folded) this.#stats.keysFolded++;
      }
      row = this.#rows.get(key);
      if (!row) {
        row = {
          sample: ev,
          reason,
          count: 0n,
          failed: 0n,
          first: ev.timeUnixNano,
          last: ev.timeUnixNano,
          port: rowPort,
          peer: rowPeer,
          folded,
        };
        this.#rows.set(key, row);
      }
    }
    row.count++;
    if (!ev.success) row.failed++;
    if (ev.timeUnixNano < row.first) row.first = ev.timeUnixNano;
    if (ev.timeUnixNano > row.last) row.last = ev.timeUnixNano;
  }

  flush(): void {
    const end = this.#now();
    const start = this.#intervalStart;
    this.#intervalStart = end;
    if (!this.#rows.size) return;
    const out: AcceptEvent[] = [];
    for (const r of this.#rows.values()) {
      const ev = r.sample;
      ev.kind = EventKind.EVENT_KIND_SUMMARY;
      ev.summary = {
        reason: r.reason,
        count: r.count,
        failedCount: r.failed,
        firstTimeUnixNano: r.first,
        lastTimeUnixNano: r.last,
        intervalStartUnixNano: start,
        intervalEndUnixNano: end,
        localPort: r.port,
        peerIp: r.peer,
        peersFolded: r.folded,
      };
      out.push(ev);
    }
    this.#rows = new Map();
    this.#stats.summaries += out.length;
    this.#o.emit(out);
  }

  stats(): SummarizerStats {
    return { ...this.#stats, open: this.#rows.size };
  }
}

/** Per-subject token buckets: eventsPerSecond refill, `burst` capacity. */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number; refillMs: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** True when the accept may go out as an event. */
  take(ev: AcceptEvent, eventsPerSecond: number, burst: number): boolean {
    const key = subject(ev);
    const now = this.#now();
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: burst, at: now, refillMs: (burst / eventsPerSecond) * 1000 };
      this.#buckets.set(key, b);
    }
    b.refillMs = (burst / eventsPerSecond) * 1000;
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * eventsPerSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forget buckets idle long enough to be full again anyway (and at least idleMs). */
  sweep(idleMs = 60_000): void {
    const now = this.#now();
    for (const [k, b] of this.#buckets) if (now - b.at > Math.max(idleMs, b.refillMs)) this.#buckets.delete(k);
  }
}
