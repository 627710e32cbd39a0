/** Human durations and sizes: "30s", "5m", "100ms", "64MiB", or plain numbers. */

export class UnitError extends Error {}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds. A plain number is seconds (as in `--duration 30`). */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new UnitError(`"${text}" is not a duration (examples: 500ms, 30s, 5m, 1h)`);
  const ms = Number(m[1]) * DURATION_UNITS[m[2] ?? 's']!;
  if (!Number.isFinite(ms) || ms <= 0) throw new UnitError(`"${text}" must be a positive duration`);
  return Math.round(ms);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
};

/** Bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UnitError(`"${text}" is not a size (examples: 4096, 64KiB, 8MiB, 1GiB)`);
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(Math.round(n)) || n <= 0) throw new UnitError(`"${text}" must be a positive size`);
  return Math.round(n);
}

/** Milliseconds as parseDuration reads them back, in the largest unit that is exact: 10 -> "10ms", 2000 -> "2s". */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Bytes as parseSize reads them back, in the largest binary unit that is exact: 8388608 -> "8MiB". */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}
