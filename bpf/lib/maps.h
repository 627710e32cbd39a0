/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Every map: who inserts, who deletes, who reads, key and value. */
#ifndef DW_MAPS_H
#define DW_MAPS_H

/*
 * dw_events: every record for userspace (struct dw_accept_event).
 *   written: exit / io_uring handlers (reserve+submit, never blocks)
 *   read:    src/bpf/ringbuf.ts over mmap, drained on a timer.
 * Size is set by userspace before load (--ring-size). Records are submitted
 * with BPF_RB_NO_WAKEUP: the reader polls in batches, so the per-event irq_work
 * of a wake-up would be pure cost. A failed reserve bumps DW_CNT_RINGBUF_FULL.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} dw_events SEC(".maps");

/*
 * dw_inflight: seed arguments of an accept in progress.
 *   key:   pid_tgid (thread)          value: struct dw_seed
 *   insert: sys_enter_accept{,4}      delete + read: sys_exit_accept{,4}
 * A thread killed inside accept never reaches the exit and would leak its
 * entry; LRU eviction reclaims those. An evicted live entry only turns its
 * exit into a NO_ENTER event (still emitted, counted), never a lost one.
 */
struct dw_seed {
	__u64 addr_ptr;
	__u64 addrlen_ptr;
	__u64 ktime_ns;
	__u64 listen_sk;  /* the sock sockfd named at enter: compared (never dereferenced) at exit */
	__s32 sockfd;
	__u32 flags;
	__u32 addrlen_in; /* *addrlen at enter: the size of the caller's buffer */
	__u32 have_in;    /* addrlen_in was read */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct dw_seed);
} dw_inflight SEC(".maps");

/*
 * dw_listen_inflight: listen(2) arguments between enter and exit.
 *   key: pid_tgid   value: struct dw_listen_seed
 *   insert: sys_enter_listen   delete + read: sys_exit_listen (lib/listen.h)
 * LRU for the same reason as dw_inflight.
 */
struct dw_listen_seed {
	__u64 ktime_ns;
	__s32 fd;
	__s32 backlog;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct dw_listen_seed);
} dw_listen_inflight SEC(".maps");

/*
 * dw_counters: what happened in the kernel, per CPU (no shared cache line).
 *   key: DW_CNT_* index   value: __u64 per CPU
 *   written: every handler   read: userspace sums across CPUs.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DW_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} dw_counters SEC(".maps");

/*
 * dw_audited_cgroups: which audit policy governs a cgroup.
 *   key: struct dw_cgroup_key (id + hierarchy)   value: slot in dw_policies
 *   written/deleted: the agent's policy sync (src/policy/kernel-sync.ts) as
 *   pods' containers appear and go   read: enter/exit/io_uring handlers.
 * Consulted only when DW_CFG_FILTER_CGROUPS is set; a miss means
 * dw_cfg.default_slot (the agent keeps that one "audit, let userspace decide",
 * so a container the agent has not mapped yet is never silently unaudited).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dw_cgroup_key);
	__type(value, __u32);
} dw_audited_cgroups SEC(".maps");

/*
 * dw_policies: compiled audit policies (mode, failed-accepts flag, ports).
 *   key: slot   value: struct dw_policy
 *   written: the agent's policy compiler   read: every handler.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DW_MAX_POLICY_SLOTS);
	__type(key, __u32);
	__type(value, struct dw_policy);
} dw_policies SEC(".maps");

/*
 * dw_peer_rules: per-slot peer CIDRs; the longest prefix decides.
 *   key: struct dw_peer_key   value: DW_PEER_INCLUDE | DW_PEER_EXCLUDE
 *   written/deleted: the agent's policy compiler   read: exit/io_uring
 *   handlers of slots with DW_POL_PEER_RULES.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct dw_peer_key);
	__type(value, __u8);
} dw_peer_rules SEC(".maps");

/*
 * dw_slot_counters: per policy slot, what was emitted and what was filtered
 * in the kernel, by reason ("how much did we not see, by choice").
 *   key: slot * DW_SLOT_CNT_MAX + DW_SLOT_CNT_*   value: __u64 per CPU
 *   written: handlers (only while policies are loaded)   read: userspace.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DW_MAX_POLICY_SLOTS * DW_SLOT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} dw_slot_counters SEC(".maps");

/* Runtime settings: the whole .data section, rewritten by userspace. */
volatile struct dw_config dw_cfg SEC(".data") = {};

static __always_inline void dw_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&dw_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline void dw_count_slot(__u32 slot, __u32 what)
{
	__u32 idx = slot * DW_SLOT_CNT_MAX + what;
	__u64 *v = bpf_map_lookup_elem(&dw_slot_counters, &idx);
	if (v)
		*v += 1;
}

#endif /* DW_MAPS_H */
