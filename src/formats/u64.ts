/**
 * A u64 split around 10^9 without BigInt arithmetic: each `/` or `%` on a
 * BigInt makes a new one, and the formats split a time or a seq per field per
 * event (seconds and nanoseconds, or the digits of a 64-bit number).
 */

const view = new DataView(new ArrayBuffer(8));

/** The result of the last splitBillion(): v = q·10^9 + r. */
export const billions = { q: 0, r: 0 };

/**
 * 0 <= v < 2^64 into billions.q (< 2^35) and billions.r (< 10^9), both exact: long division over four
 * 16-bit digits in doubles, every step below 2^53. The caller checks the range.
 */
export function splitBillion(v: bigint): void {
  view.setBigUint64(0, v, true);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  let r = hi >>> 16;
  let cur = r * 65536 + (hi & 0xffff);
  const qb = Math.floor(cur / 1e9);
  r = cur - qb * 1e9;
  cur = r * 65536 + (lo >>> 16);
  const qc = Math.floor(cur / 1e9);
  r = cur - qc * 1e9;
  cur = r * 65536 + (lo & 0xffff);
  const qd = Math.floor(cur / 1e9);
  billions.r = cur - qd * 1e9;
  billions.q = (qb * 65536 + qc) * 65536 + qd;
}

/** The largest u64: values above it (or negative) take the BigInt path. */
export const U64_MAX = 0xffffffffffffffffn;

let isoSecond = -1;
let isoWhole = '';
/** "YYYY-MM-DDTHH:MM:SS" of a Unix second; consecutive records mostly share one, so the last is remembered. */
export function isoSeconds(sec: number): string {
  if (sec !== isoSecond) {
    isoWhole = new Date(sec * 1000).toISOString().slice(0, 19);
    isoSecond = sec;
  }
  return isoWhole;
}
