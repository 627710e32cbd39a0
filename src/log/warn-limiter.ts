import type { Logger } from './logger.js';

/** Milliseconds now; injectable so tests need no sleeping. */
export type Now = () => number;

/**
 * At most one warning per key per interval; the next one that gets through
 * says how many were suppressed meanwhile. Per-event failures are counted in
 * stats, not logged one by one.
 */
export class WarnLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 10_000,
    private readonly now: Now = Date.now,
  ) {}

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.now();
    const s = this.last.get(key);
    if (s && now - s.at < this.intervalMs) {
      s.suppressed++;
      return;
    }
    const suppressed = s?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    this.log.warn(suppressed ? { ...fields, suppressed } : fields, msg);
  }
}
