import type { AuditPolicyRef, Enrichment } from '../gen/doorwatch/v1/event.js';

/*
 * Several pods and processes interleave on a busy node: the line writers
 * remember a segment per process or per pod, not one for the last event, or
 * every switch between two sources writes the whole segment again. Each
 * entry is checked by value before its bytes are reused (the key only picks
 * the entry). Bounded: past SEG_KEYS distinct keys the memo starts over.
 */
const SEG_KEYS = 4096;

export class SegMemo<S> {
  readonly #map = new Map<unknown, S>();
  constructor(readonly make: () => S) {}

  get(key: unknown): S {
    let s = this.#map.get(key);
    if (s === undefined) {
      if (this.#map.size >= SEG_KEYS) this.#map.clear();
      s = this.make();
      this.#map.set(key, s);
    }
    return s;
  }
}

export const sameStrings = (a: readonly string[], b: readonly string[]): boolean => {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};

/** An event's enrichment and policy as a segment remembers them: copies, compared by value. */
export interface EnrichmentSeen {
  status: number;
  missing: string[];
  reason: string;
  cgroupFromProc: boolean;
  waitedMs: number;
}
export interface PolicySeen {
  origin: number;
  name: string;
  mode: number;
}

export const seenEnrichment = (en: Enrichment | undefined): EnrichmentSeen | undefined =>
  en && {
    status: en.status,
    missing: [...en.missing],
    reason: en.reason,
    cgroupFromProc: en.cgroupFromProc,
    waitedMs: en.waitedMs,
  };

export const sameEnrichment = (s: EnrichmentSeen | undefined, en: Enrichment | undefined): boolean =>
  en
    ? s !== undefined &&
      s.status === en.status &&
      s.reason === en.reason &&
      s.cgroupFromProc === en.cgroupFromProc &&
      s.waitedMs === en.waitedMs &&
      sameStrings(s.missing, en.missing)
    : s === undefined;

export const seenPolicy = (p: AuditPolicyRef | undefined): PolicySeen | undefined =>
  p && { origin: p.origin, name: p.name, mode: p.mode };

export const samePolicy = (s: PolicySeen | undefined, p: AuditPolicyRef | undefined): boolean =>
  p ? s !== undefined && s.origin === p.origin && s.name === p.name && s.mode === p.mode : s === undefined;
