/**
 * The loader's side of bpf/doorwatch.h: counter slots and runtime settings
 * (the record layout itself is the decoder's, in src/capture/record.ts).
 * test/unit/layout.test.ts checks these against the header.
 */

/** Indexes of the per-CPU dw_counters map. */
export const KernelCounter = {
  EMITTED: 0,
  RINGBUF_FULL: 1,
  EXIT_NO_ENTER: 2,
  EAGAIN_SKIPPED: 3,
  IO_URING: 4,
  CGROUP_FILTERED: 5,
  ENTER_MAP_FULL: 6,
  SOCK_UNRESOLVED: 7,
} as const;
export const KERNEL_COUNTER_SLOTS = 16;

/** dw_config.flags, the .data section userspace rewrites at runtime. */
export const ConfigFlags = { INCLUDE_EAGAIN: 1 << 0, FILTER_CGROUPS: 1 << 1 } as const;
