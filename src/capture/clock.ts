import { readFileSync } from 'node:fs';

/**
 * Kernel CLOCK_MONOTONIC (bpf_ktime_get_ns) -> wall clock. The offset is
 * re-sampled periodically so NTP slews and suspends do not accumulate.
 */
export interface Clocks {
  monotonicNs(): bigint;
  realtimeNs(): bigint;
}

export const systemClocks: Clocks = {
  monotonicNs: () => process.hrtime.bigint(),
  realtimeNs: () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)),
};

export class WallClock {
  #offset = 0n;
  #sampledAt = 0n;
  readonly #clocks: Clocks;
  readonly #resampleNs: bigint;

  constructor(clocks: Clocks = systemClocks, resampleMs = 5000) {
    this.#clocks = clocks;
    this.#resampleNs = BigInt(resampleMs) * 1_000_000n;
    this.resample();
  }

  resample(): void {
    const m1 = this.#clocks.monotonicNs();
    const r = this.#clocks.realtimeNs();
    const m2 = this.#clocks.monotonicNs();
    this.#sampledAt = (m1 + m2) / 2n;
    this.#offset = r - this.#sampledAt;
  }

  /** Called once per drained batch, not per event. */
  maybeResample(): void {
    if (this.#clocks.monotonicNs() - this.#sampledAt > this.#resampleNs) this.resample();
  }

  toUnixNano(ktimeNs: bigint): bigint {
    return ktimeNs + this.#offset;
  }
}

export function readBootId(path = '/proc/sys/kernel/random/boot_id'): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return 'unknown-boot';
  }
}
