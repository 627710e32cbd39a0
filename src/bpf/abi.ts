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
  PORT_FILTERED: 8,
  PEER_FILTERED: 9,
  FAILED_FILTERED: 10,
} as const;
export const KERNEL_COUNTER_SLOTS = 16;

/** dw_config.flags, the .data section userspace rewrites at runtime. */
export const ConfigFlags = { INCLUDE_EAGAIN: 1 << 0, FILTER_CGROUPS: 1 << 1, LISTENERS: 1 << 2 } as const;

/** Audit policies in the kernel: struct dw_policy and its companions. */
export const MAX_POLICY_SLOTS = 256;
export const PolicyMode = { EVENTS: 1, SUMMARY: 2, OFF: 3 } as const;
export const PolicyFlags = { FAILED_ACCEPTS: 1 << 0, PEER_INCLUDE: 1 << 1, PEER_RULES: 1 << 2 } as const;
export const POLICY_PORTS_MAX = 8;
export const PeerAction = { INCLUDE: 1, EXCLUDE: 2 } as const;
/** dw_slot_counters index: slot * SLOT_COUNTERS + SlotCounter.X */
export const SlotCounter = { EMITTED: 0, OFF: 1, PORT: 2, PEER: 3, FAILED: 4 } as const;
export const SLOT_COUNTERS = 8;
/** sizeof and member offsets of struct dw_policy, dw_cgroup_key, dw_peer_key. */
export const POLICY_LAYOUT = { size: 72, mode: 0, flags: 1, n_include: 2, n_exclude: 3, include: 8, exclude: 40 } as const;
export const CGROUP_KEY_LAYOUT = { size: 16, id: 0, version: 8 } as const;
export const PEER_KEY_LAYOUT = { size: 24, prefixlen: 0, slot: 4, addr: 8 } as const;
