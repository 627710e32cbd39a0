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

#endif /* DW_LISTEN_H */
