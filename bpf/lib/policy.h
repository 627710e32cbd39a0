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

static __always_inline bool dw_policy_off(struct dw_policy *p, __u32 slot)
{
	if (!p || p->mode != DW_MODE_OFF)
		return false;
	dw_count(DW_CNT_CGROUP_FILTERED);
	dw_count_slot(slot, DW_SLOT_CNT_OFF);
	return true;
}

/* A failed accept of a policy that does not want them: counted, dropped. */
static __always_inline bool dw_policy_drops_failure(struct dw_policy *p, __u32 slot, int ret)
{
	if (!p || ret >= 0 || (p->flags & DW_POL_FAILED_ACCEPTS))
		return false;
	dw_count(DW_CNT_FAILED_FILTERED);
	dw_count_slot(slot, DW_SLOT_CNT_FAILED);
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

/* Ports and peers of a filled record. Unresolved sockets pass: what cannot
 * be checked is audited, never guessed away. Non-inet sockets have no port or
 * peer, so they pass unless the policy lists ports or peers to include. */
static __always_inline bool dw_policy_admits(struct dw_policy *p, __u32 slot, struct dw_accept_event *e)
{
	if (!p || e->ret < 0 || (e->hdr.flags & DW_F_SOCK_UNRESOLVED))
		return true;
	bool inet = e->family == DW_AF_INET || e->family == DW_AF_INET6;
	bool port_ok = inet ? (!p->n_include || dw_port_in(p->include, p->n_include, e->lport)) &&
				      !(p->n_exclude && dw_port_in(p->exclude, p->n_exclude, e->lport))
			    : !p->n_include;
	if (!port_ok) {
		dw_count(DW_CNT_PORT_FILTERED);
		dw_count_slot(slot, DW_SLOT_CNT_PORT);
		return false;
	}
	if (!(p->flags & (DW_POL_PEER_RULES | DW_POL_PEER_INCLUDE)))
		return true;
	bool peer_ok;
	if (!inet) {
		peer_ok = !(p->flags & DW_POL_PEER_INCLUDE);
	} else {
		struct dw_peer_key k = { .prefixlen = 32 + 128, .slot = slot };
		if (e->family == DW_AF_INET) {
			k.addr[10] = 0xff;
			k.addr[11] = 0xff;
			__builtin_memcpy(&k.addr[12], e->raddr, 4);
		} else {
			__builtin_memcpy(k.addr, e->raddr, 16);
		}
		__u8 *act = bpf_map_lookup_elem(&dw_peer_rules, &k);
		peer_ok = act ? *act == DW_PEER_INCLUDE : !(p->flags & DW_POL_PEER_INCLUDE);
	}
	if (!peer_ok) {
		dw_count(DW_CNT_PEER_FILTERED);
		dw_count_slot(slot, DW_SLOT_CNT_PEER);
	}
	return peer_ok;
}

#endif /* DW_POLICY_H */
