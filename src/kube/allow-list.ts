/**
 * Which label/annotation keys are kept. Labels default to all (they are what
 * users select on); annotations default to none — they often hold large blobs
 * (kubectl's last-applied-configuration) or values nobody meant to ship to a SIEM.
 */

export type KeyFilter = (key: string) => boolean;

export const ALL_KEYS: KeyFilter = () => true;
export const NO_KEYS: KeyFilter = () => false;

/**
 * `undefined` -> `fallback`. Otherwise a key is kept when it equals an entry or
 * starts with an entry that ends in `*` (`app.kubernetes.io/*`); a lone `*` keeps all.
 */
export function compileAllowList(list: readonly string[] | undefined, fallback: KeyFilter): KeyFilter {
  if (list === undefined) return fallback;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const raw of list) {
    const entry = raw.trim();
    if (entry === '') continue;
    if (entry.endsWith('*')) prefixes.push(entry.slice(0, -1));
    else exact.add(entry);
  }
  if (prefixes.includes('')) return ALL_KEYS;
  if (exact.size === 0 && prefixes.length === 0) return NO_KEYS;
  return (key) => exact.has(key) || prefixes.some((p) => key.startsWith(p));
}

/** A frozen copy with only the kept keys. */
export function pick(map: Readonly<Record<string, string>> | undefined, keep: KeyFilter): Record<string, string> {
  const out: Record<string, string> = {};
  if (map) for (const [k, v] of Object.entries(map)) if (keep(k)) out[k] = v;
  return Object.freeze(out);
}
