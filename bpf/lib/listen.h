/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * listen(2) and the end of a TCP listener, for the node's listener inventory
 * (src/listeners). Records are struct dw_accept_event with hdr.op
 * DW_OP_LISTEN / DW_OP_LISTEN_CLOSE (doorwatch.h says which fields mean what).
 * Listener records ignore audit policies: the inventory is of the whole node.
 */
#ifndef DW_LISTEN_H
#define DW_LISTEN_H

#define DW_TCP_LISTEN 10 /* include/net/tcp_states.h */
#define DW_TCP_CLOSE 7

/* Kernel fields only this file reads, as CO-RE flavours (the ___dw suffix is
 * dropped when matching), so vmlinux_min.h stays the accept probes' own. */
struct inode___dw {
	unsigned long i_ino;
} __attribute__((preserve_access_index));

struct file___dw {
	struct inode___dw *f_inode;
} __attribute__((preserve_access_index));

struct socket___dw {
	struct file___dw *file;
} __attribute__((preserve_access_index));

struct possible_net_t___dw {
	struct net *net;
} __attribute__((preserve_access_index));

struct sock_common___dw {
	struct possible_net_t___dw skc_net;
} __attribute__((preserve_access_index));

struct sock___dw {
	struct sock_common___dw __sk_common;
	struct socket___dw *sk_socket;
} __attribute__((preserve_access_index));

/* The socket's inode (what /proc/PID/fd and /proc/net/tcp name) and network
 * namespace: the keys the inventory matches kernel records and /proc scans on. */
static __always_inline void dw_fill_listen_ids(struct dw_accept_event *e, struct sock *sk)
{
	struct sock___dw *s = (struct sock___dw *)sk;
	e->addr_ptr = BPF_CORE_READ(s, sk_socket, file, f_inode, i_ino);
	e->net_ns = BPF_CORE_READ(s, __sk_common.skc_net.net, ns.inum);
}

static __always_inline int dw_handle_enter_listen(struct trace_event_raw_sys_enter *ctx)
{
	if (!(dw_cfg.flags & DW_CFG_LISTENERS))
		return 0; /* `trace` and other accept-only users: no listener records */
	__u64 id = bpf_get_current_pid_tgid();
	struct dw_listen_seed seed = {
		.fd = (int)BPF_CORE_READ(ctx, args[0]),
		.backlog = (int)BPF_CORE_READ(ctx, args[1]),
		.ktime_ns = bpf_ktime_get_ns(),
	};
	if (bpf_map_update_elem(&dw_listen_inflight, &id, &seed, BPF_ANY))
		dw_count(DW_CNT_ENTER_MAP_FULL);
	return 0;
}

static __always_inline int dw_handle_exit_listen(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	int ret = (int)BPF_CORE_READ(ctx, ret);
	struct dw_listen_seed *seed = bpf_map_lookup_elem(&dw_listen_inflight, &id);
	if (!seed)
		return 0; /* in listen() when the probes attached: the /proc snapshot has it */
	struct dw_listen_seed s = *seed;
	bpf_map_delete_elem(&dw_listen_inflight, &id);
	if (ret < 0)
		return 0; /* no listener came of it */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct sock *sk = dw_fd_to_sock(task, s.fd);

	struct dw_accept_event *e = dw_reserve(DW_SRC_LISTEN, ret);
	if (!e)
		return 0;
	e->hdr.op = DW_OP_LISTEN;
	e->sockfd = s.fd;
	e->enter_ktime_ns = s.ktime_ns;
	e->backlog = (__u32)s.backlog;
	if (sk) {
		e->max_backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
		dw_fill_sock_fields(e, sk);
		dw_fill_listen_ids(e, sk);
	} else {
		e->hdr.flags |= DW_F_SOCK_UNRESOLVED;
	}
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	dw_count(DW_CNT_EMITTED);
	return 0;
}

/* TCP_LISTEN -> TCP_CLOSE: the listener is gone (close, shutdown, or its
 * process exiting). The task is whoever closed it, often not its owner. */
static __always_inline int dw_handle_listen_state(struct sock *sk, int oldstate, int newstate)
{
	if (oldstate != DW_TCP_LISTEN || newstate != DW_TCP_CLOSE || !sk || !(dw_cfg.flags & DW_CFG_LISTENERS))
		return 0;
	struct dw_accept_event *e = dw_reserve(DW_SRC_LISTEN_CLOSE, 0);
	if (!e)
		return 0;
	e->hdr.op = DW_OP_LISTEN_CLOSE;
	e->max_backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
	dw_fill_sock_fields(e, sk);
	dw_fill_listen_ids(e, sk);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	dw_count(DW_CNT_EMITTED);
	return 0;
}

/*
 * The snapshot: every listening socket held by an fd of any task, with that
 * task, read in the kernel (iter/task_file, run by userspace on demand through
 * bpf_iter_create). /proc/<pid>/fd would need CAP_SYS_PTRACE for other users'
 * processes, which the agent does not have. Threads sharing a file table are
 * visited once (the kernel skips them). Records are written to the iterator's
 * seq_file, one struct dw_accept_event each (hdr.op DW_OP_LISTEN, source
 * DW_SRC_LISTEN_SCAN, sockfd the fd, backlog the accept queue now).
 */
struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	__u32 fd;
	struct file *file;
} __attribute__((preserve_access_index));

struct kuid___dw {
	__u32 val;
} __attribute__((preserve_access_index));

struct cred___dw {
	struct kuid___dw uid;
	struct kuid___dw gid;
} __attribute__((preserve_access_index));

struct task_struct___dw {
	const struct cred___dw *cred;
} __attribute__((preserve_access_index));

struct css_set___dw {
	struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));

struct sock_common___state {
	unsigned char skc_state;
} __attribute__((preserve_access_index));

struct sock___state {
	struct sock_common___state __sk_common;
} __attribute__((preserve_access_index));

/* dw_fill_task for a task that is not the current one. */
static __always_inline void dw_fill_task_of(struct dw_accept_event *e, struct task_struct *task)
{
	struct task_struct___dw *t = (struct task_struct___dw *)task;
	struct css_set___dw *cgs = (struct css_set___dw *)BPF_CORE_READ(task, cgroups);

	e->pid = BPF_CORE_READ(task, tgid);
	e->tid = BPF_CORE_READ(task, pid);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = BPF_CORE_READ(t, cred, uid.val);
	e->gid = BPF_CORE_READ(t, cred, gid.val);
	e->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	e->uts_ns = BPF_CORE_READ(task, nsproxy, uts_ns, ns.inum);
	e->pid_ns = dw_active_pid_ns(task);
	e->cgroup_id = BPF_CORE_READ(cgs, dfl_cgrp, kn, id);
	e->cgroup_v1_id = dw_cgroup_v1_id(task, &e->hdr.flags);
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
}

/* Scratch for the iterator's records: 328 bytes do not fit its stack beside the rest. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dw_accept_event);
} dw_listen_scratch SEC(".maps");

static __always_inline int dw_handle_iter_listeners(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	if (!task || !file)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	/* Only socket files: a socket's ->file points back at its file. */
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return 0;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != DW_AF_INET && family != DW_AF_INET6 && family != DW_AF_UNIX)
		return 0;
	/* unix_listen() sets TCP_LISTEN too. */
	if (BPF_CORE_READ((struct sock___state *)sk, __sk_common.skc_state) != DW_TCP_LISTEN)
		return 0;
	if (family != DW_AF_UNIX && BPF_CORE_READ(sk, sk_protocol) != 6 /* IPPROTO_TCP */)
		return 0;

	__u32 zero = 0;
	struct dw_accept_event *e = bpf_map_lookup_elem(&dw_listen_scratch, &zero);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.op = DW_OP_LISTEN;
	e->hdr.version = DW_RECORD_VERSION;
	e->hdr.ktime_ns = bpf_ktime_get_ns();
	e->source = DW_SRC_LISTEN_SCAN;
	e->sockfd = ctx->fd;
	e->backlog = BPF_CORE_READ(sk, sk_ack_backlog);
	e->max_backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
	dw_fill_task_of(e, task);
	dw_fill_sock_fields(e, sk);
	dw_fill_listen_ids(e, sk);
	bpf_seq_write(seq, e, sizeof(*e));
	return 0;
}

#endif /* DW_LISTEN_H */
