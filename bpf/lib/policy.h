/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Audit policies in the kernel (docs/policy.md). An unaudited accept costs
 * one or two hash lookups and emits nothing; everything filtered is counted
 * per policy slot. The same rules run in userspace for accepts of cgroups the
 * agent has not mapped yet (src/policy/match.ts); tests hold the two equal.
 */
#ifndef DW_POLICY_H
#define DW_POLICY_H

/* The slot of the current task's cgroup: v2 id first, then the v1 memory
 * hierarchy's, else the default slot. */
static __always_inline __u32 dw_task_slot(void)
{
	struct dw_cgroup_key k = { .id = bpf_get_current_cgroup_id(), .version = 2 };
	__u32 *slot = bpf_map_lookup_elem(&dw_audited_cgroups, &k);
	if (slot)
		return *slot;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 ignored = 0;
	k.id = dw_cgroup_v1_id(task, &ignored);
	k.version = 1;
	if (k.id) {
		slot = bpf_map_lookup_elem(&dw_audited_cgroups, &k);
		if (slot)
			return *slot;
	}
	return dw_cfg.default_slot;
}

/* The policy governing the current task, or NULL when no policies are loaded
 * (then everything is audited). *slot receives its slot. */
static __always_inline struct dw_policy *dw_current_policy(__u32 *slot)
{
	*slot = 0;
	if (!(dw_cfg.flags & DW_CFG_FILTER_CGROUPS))
		return NULL;
	*slot = dw_task_slot();
	return bpf_map_lookup_elem(&dw_policies, slot);
}

/* An accept a policy keeps out of userspace: counted in total and per slot. */
static __always_inline void dw_count_filtered(__u32 slot, __u32 cnt, __u32 slot_cnt)
{
	dw_count(cnt);
	dw_count_slot(slot, slot_cnt);
}

static __always_inline bool dw_policy_off(struct dw_policy *p, __u32 slot)
{
	if (!p || p->mode != DW_MODE_OFF)
		return false;
	dw_count_filtered(slot, DW_CNT_CGROUP_FILTERED, DW_SLOT_CNT_OFF);
	return true;
}

/* A failed accept of a policy that does not want them: counted, dropped. */
static __always_inline bool dw_policy_drops_failure(struct dw_policy *p, __u32 slot, int ret)
{
	if (!p || ret >= 0 || (p->flags & DW_POL_FAILED_ACCEPTS))
		return false;
	dw_count_filtered(slot, DW_CNT_FAILED_FILTERED, DW_SLOT_CNT_FAILED);
	return true;
}

static __always_inline bool dw_port_in(const struct dw_port_range *r, __u8 n, __u16 port)
{
	for (int i = 0; i < DW_POL_PORTS_MAX; i++) {
		if (i >= n)
			break;
		if (port >= r[i].lo && port <= r[i].hi)
			return true;
	}
	return false;
}

/* Ports and peers, read from the accepted socket before a record is
 * reserved: a filtered accept costs no ring space and cannot be lost to a
 * full ring. Unresolved sockets pass: what cannot be checked is audited,
 * never guessed away. Non-inet sockets have no port or peer, so they pass
 * unless the policy lists ports or peers to include. */
static __always_inline bool dw_policy_admits(struct dw_policy *p, __u32 slot, struct sock *sk)
{
	if (!p || !sk)
		return true;
	bool ports = p->n_include || p->n_exclude;
	bool peers = p->flags & (DW_POL_PEER_RULES | DW_POL_PEER_INCLUDE);
	if (!ports && !peers)
		return true;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	bool inet = family == DW_AF_INET || family == DW_AF_INET6;
	if (ports) {
		bool port_ok;
		if (inet) {
			__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
			port_ok = (!p->n_include || dw_port_in(p->include, p->n_include, lport)) &&
				  !dw_port_in(p->exclude, p->n_exclude, lport);
		} else {
			port_ok = !p->n_include;
		}
		if (!port_ok) {
			dw_count_filtered(slot, DW_CNT_PORT_FILTERED, DW_SLOT_CNT_PORT);
			return false;
		}
	}
	if (!peers)
		return true;
	bool peer_ok;
	if (!inet) {
		peer_ok = !(p->flags & DW_POL_PEER_INCLUDE);
	} else {
		struct dw_peer_key k = { .prefixlen = 32 + 128, .slot = slot };
		if (family == DW_AF_INET) {
			__be32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
			k.addr[10] = 0xff;
			k.addr[11] = 0xff;
			__builtin_memcpy(&k.addr[12], &r, 4);
		} else {
			struct in6_addr r = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr);
			__builtin_memcpy(k.addr, &r, 16);
		}
		__u8 *act = bpf_map_lookup_elem(&dw_peer_rules, &k);
		peer_ok = act ? *act == DW_PEER_INCLUDE : !(p->flags & DW_POL_PEER_INCLUDE);
	}
	if (!peer_ok)
		dw_count_filtered(slot, DW_CNT_PEER_FILTERED, DW_SLOT_CNT_PEER);
	return peer_ok;
}

#endif /* DW_POLICY_H */
