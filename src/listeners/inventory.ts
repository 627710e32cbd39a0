import { type AcceptEvent, EventKind, ListenerOrigin } from '../gen/doorwatch/v1/event.js';
import type { Logger } from '../log/logger.js';
import { isListenerKind, listenerKey } from './event.js';
import { type ScanResult, scanListeners } from './proc-scan.js';
import { scannedEvent } from './scan-event.js';

/**
 * The node's listener inventory: a /proc snapshot at start, listen(2) and TCP
 * close records from the kernel as they happen, and a /proc rescan every
 * period that re-sends every listener as a state record and closes the ones
 * no longer there — the only way a unix listener's end is seen (no tracepoint
 * marks it), and a catch-all for anything the kernel records missed.
 *
 * Records go out twice: scan results into `attribute` (the enricher, which
 * attributes them like accepts and hands them on), and every listener record
 * leaving the enricher through observe() (the pipeline calls it), which keeps
 * the inventory and gives a kernel close the owner's attribution.
 */

export interface InventoryOptions {
  nodeName: string;
  /** Rescan and re-send period; 0 = only the snapshot at start. */
  periodMs: number;
  /** Records to attribute (the enricher's input). */
  attribute(batch: AcceptEvent[]): void;
  /** Records that need no attribution (closed by a rescan: the live record's own). */
  emit(batch: AcceptEvent[]): void;
  log: Logger;
  scan?: () => Promise<ScanResult>;
  nowUnixNano?: () => bigint;
}

export interface InventoryStats {
  listeners: number;
  scans: number;
  scanErrors: number;
  /** Processes gone or unreadable during scans (normal churn). */
  unreadable: number;
  closedByKernel: number;
  closedByRescan: number;
}

const wallNow = (): bigint => BigInt(Date.now()) * 1_000_000n;

export class ListenerInventory {
  readonly #o: InventoryOptions;
  /** key -> the newest attributed record of a live listener. */
  readonly #live = new Map<string, AcceptEvent>();
  #timer: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;
  readonly #stats = { scans: 0, scanErrors: 0, unreadable: 0, closedByKernel: 0, closedByRescan: 0 };

  constructor(o: InventoryOptions) {
    this.#o = o;
  }

  /** Set by stop(): a scan still in flight then hands nothing on. */
  #stopped = false;

  /** The snapshot now, then a rescan every period. Resolves when the snapshot has been handed on. */
  start(): Promise<void> {
    const first = this.rescan(ListenerOrigin.LISTENER_ORIGIN_SNAPSHOT);
    if (this.#o.periodMs > 0) {
      this.#timer = setInterval(() => void this.rescan(ListenerOrigin.LISTENER_ORIGIN_RESCAN), this.#o.periodMs);
      this.#timer.unref();
    }
    return first;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Scan /proc and hand on every listener found; close the live ones not found. One at a time. */
  rescan(origin: ListenerOrigin): Promise<void> {
    this.#scanning ??= this.#rescan(origin).finally(() => {
      this.#scanning = undefined;
    });
    return this.#scanning;
  }

  async #rescan(origin: ListenerOrigin): Promise<void> {
    const now = this.#o.nowUnixNano ?? wallNow;
    const startedAt = now();
    let result: ScanResult;
    try {
      result = await (this.#o.scan ?? scanListeners)();
    } catch (e) {
      this.#stats.scanErrors++;
      this.#o.log.warn(
        { err: (e as Error).message },
        'listener scan of /proc failed; the inventory is re-sent at the next period',
      );
      return;
    }
    // Stopped while scanning: the pipeline behind (enricher, spool, publisher) may be closed already.
    if (this.#stopped) return;
    this.#stats.scans++;
    this.#stats.unreadable += result.unreadable;
    const t = now();
    const found = new Set<string>();
    const batch: AcceptEvent[] = [];
    for (const s of result.listeners) {
      const ev = scannedEvent(s, { nodeName: this.#o.nodeName, origin, timeUnixNano: t, firstSeenUnixNano: t });
      const key = listenerKey(ev);
      found.add(key);
      const seen = this.#live.get(key)?.listenerInfo?.firstSeenUnixNano;
      if (seen && ev.listenerInfo) ev.listenerInfo.firstSeenUnixNano = seen;
      batch.push(ev);
    }
    // Gone since the last scan. A listener first recorded after this scan began may be missing from it: kept.
    const closed: AcceptEvent[] = [];
    for (const [key, ev] of this.#live) {
      if (found.has(key) || ev.timeUnixNano >= startedAt) continue;
      this.#live.delete(key);
      this.#stats.closedByRescan++;
      closed.push(closedFrom(ev, t, ListenerOrigin.LISTENER_ORIGIN_RESCAN));
    }
    if (batch.length) this.#o.attribute(batch);
    if (closed.length) this.#o.emit(closed);
  }

  /**
   * A listener record leaving the enricher: kept (listen, state) or dropped
   * (closed). A kernel close names whoever closed the socket; the record
   * leaves with the owner's process, container and pod when the listener is
   * known. Returns the record to hand on.
   */
  observe(ev: AcceptEvent): AcceptEvent {
    const key = listenerKey(ev);
    if (ev.kind === EventKind.EVENT_KIND_LISTENER_CLOSED) {
      const live = this.#live.get(key);
      this.#live.delete(key);
      if (ev.listenerInfo?.origin !== ListenerOrigin.LISTENER_ORIGIN_KERNEL_CLOSE) return ev;
      this.#stats.closedByKernel++;
      return live ? closedFrom(live, ev.timeUnixNano, ListenerOrigin.LISTENER_ORIGIN_KERNEL_CLOSE, ev) : ev;
    }
    const prev = this.#live.get(key);
    const first = prev?.listenerInfo?.firstSeenUnixNano;
    if (first && ev.listenerInfo && ev.listenerInfo.firstSeenUnixNano > first) ev.listenerInfo.firstSeenUnixNano = first;
    this.#live.set(key, ev);
    return ev;
  }

  /** Every live listener, newest record each. */
  list(): AcceptEvent[] {
    return [...this.#live.values()];
  }

  stats(): InventoryStats {
    return { listeners: this.#live.size, ...this.#stats };
  }
}

/** The live record as a closed one: same listener, attribution and first-seen time. */
function closedFrom(live: AcceptEvent, time: bigint, origin: ListenerOrigin, kernel?: AcceptEvent): AcceptEvent {
  return {
    ...live,
    eventId: kernel?.eventId ?? '',
    seq: kernel?.seq ?? 0n,
    timeUnixNano: time,
    ktimeNs: kernel?.ktimeNs ?? 0n,
    source: kernel?.source ?? live.source,
    kind: EventKind.EVENT_KIND_LISTENER_CLOSED,
    listenerInfo: { ...(live.listenerInfo ?? { inode: 0n, requestedBacklog: 0, firstSeenUnixNano: 0n }), origin },
  };
}

export { isListenerKind };
