/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Who is accepting: process, credentials, namespaces, cgroups. */
#ifndef DW_TASK_H
#define DW_TASK_H

static __always_inline __u32 dw_active_pid_ns(struct task_struct *task)
{
	struct pid *p = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid up = {};

	/* The task's own pid namespace is numbers[level], not nsproxy's
	 * pid_ns_for_children (which differs after unshare(CLONE_NEWPID)). */
	bpf_core_read(&up, sizeof(up), &p->numbers[level & 31]);
	return BPF_CORE_READ(up.ns, ns.inum);
}

static __always_inline __u64 dw_cgroup_v1_id(struct task_struct *task, __u32 *flags)
{
	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id)) {
		*flags |= DW_F_CGROUP_V1_UNKNOWN;
		return 0;
	}
	int idx = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	struct css_set *cgs = BPF_CORE_READ(task, cgroups);
	struct cgroup_subsys_state *css = NULL;

	/* kubelet places a container at the same path in every v1 hierarchy;
	 * memory is always mounted where kubelet runs on v1. On a pure v2 host
	 * this is the v2 cgroup, i.e. equal to cgroup_id. */
	bpf_core_read(&css, sizeof(css), &cgs->subsys[idx & 15]);
	__u64 id = BPF_CORE_READ(css, cgroup, kn, id);
	if (!id)
		*flags |= DW_F_CGROUP_V1_UNKNOWN;
	return id;
}

static __always_inline void dw_fill_task(struct dw_accept_event *e)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->uid = (__u32)uid_gid;
	e->gid = uid_gid >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	e->net_ns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	e->uts_ns = BPF_CORE_READ(task, nsproxy, uts_ns, ns.inum);
	e->pid_ns = dw_active_pid_ns(task);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->cgroup_v1_id = dw_cgroup_v1_id(task, &e->hdr.flags);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

#endif /* DW_TASK_H */
