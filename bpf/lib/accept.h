/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* The handlers behind the attach points in accept.bpf.c. */
#ifndef DW_ACCEPT_H
#define DW_ACCEPT_H

#define DW_EAGAIN 11 /* == EWOULDBLOCK on Linux */
#define DW_IORING_OP_ACCEPT 13

static __always_inline int dw_handle_enter(struct trace_event_raw_sys_enter *ctx, __u32 flags)
{
	__u32 slot;
	struct dw_policy *pol = dw_current_policy(&slot);
	if (pol && pol->mode == DW_MODE_OFF)
		return 0; /* counted once, at exit */
	__u64 id = bpf_get_current_pid_tgid();
	struct dw_seed seed = {
		.sockfd = (int)BPF_CORE_READ(ctx, args[0]),
		.addr_ptr = BPF_CORE_READ(ctx, args[1]),
		.addrlen_ptr = BPF_CORE_READ(ctx, args[2]),
		.flags = flags ? (__u32)BPF_CORE_READ(ctx, args[3]) : 0,
		.ktime_ns = bpf_ktime_get_ns(),
	};
	/* *addrlen is in/out: the kernel reads the buffer size now and, at exit,
	 * has overwritten it with the address's full length while writing only
	 * min(size, length) bytes. Only now can the size be known. */
	if (seed.addr_ptr && seed.addrlen_ptr &&
	    !bpf_probe_read_user(&seed.addrlen_in, sizeof(seed.addrlen_in), (void *)seed.addrlen_ptr))
		seed.have_in = 1;
	/* Which socket sockfd names now: another thread may close or replace
	 * the fd while this accept blocks, and the exit must not describe that
	 * other socket as the listener. */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	seed.listen_sk = (__u64)dw_fd_to_sock(task, seed.sockfd);
	if (bpf_map_update_elem(&dw_inflight, &id, &seed, BPF_ANY))
		dw_count(DW_CNT_ENTER_MAP_FULL);
	return 0;
}

/* Reserve a record and fill what every source shares; NULL if the ring is full. */
static __always_inline struct dw_accept_event *dw_reserve(__u8 source, int ret)
{
	struct dw_accept_event *e = bpf_ringbuf_reserve(&dw_events, sizeof(*e), 0);
	if (!e) {
		dw_count(DW_CNT_RINGBUF_FULL);
		return NULL;
	}
	/* Ring memory is not zeroed: clear it so no stale bytes reach users. */
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.op = DW_OP_ACCEPT;
	e->hdr.version = DW_RECORD_VERSION;
	e->hdr.ktime_ns = bpf_ktime_get_ns();
	e->source = source;
	e->ret = ret;
	e->sockfd = -1;
	dw_fill_task(e);
	return e;
}

static __always_inline void dw_submit(struct dw_accept_event *e, struct dw_policy *pol, __u32 slot)
{
	e->policy_slot = slot;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	dw_count(DW_CNT_EMITTED);
	if (pol)
		dw_count_slot(slot, DW_SLOT_CNT_EMITTED);
}

static __always_inline bool dw_skip_result(int ret)
{
	if (ret != -DW_EAGAIN || (dw_cfg.flags & DW_CFG_INCLUDE_EAGAIN))
		return false;
	dw_count(DW_CNT_EAGAIN_SKIPPED);
	return true;
}

static __always_inline int dw_handle_exit(struct trace_event_raw_sys_exit *ctx, __u8 source)
{
	__u64 id = bpf_get_current_pid_tgid();
	int ret = (int)BPF_CORE_READ(ctx, ret);
	struct dw_seed *seed = bpf_map_lookup_elem(&dw_inflight, &id);
	struct dw_seed s = {};
	struct dw_policy *pol;
	__u32 slot;

	/* The policy as of now, not as of the enter: an accept may block for
	 * hours, and its slot may have been given to another policy since. */
	pol = dw_current_policy(&slot);
	if (seed) {
		s = *seed;
		bpf_map_delete_elem(&dw_inflight, &id);
	}
	if (dw_policy_off(pol, slot))
		return 0;
	if (!seed) /* already blocked in accept when we attached, or its policy was off at enter */
		dw_count(DW_CNT_EXIT_NO_ENTER);
	if (dw_skip_result(ret) || dw_policy_drops_failure(pol, slot, ret))
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct sock *sk = ret >= 0 ? dw_fd_to_sock(task, ret) : NULL;
	if (!dw_policy_admits(pol, slot, sk))
		return 0;

	struct dw_accept_event *e = dw_reserve(source, ret);
	if (!e)
		return 0;
	if (seed) {
		e->sockfd = s.sockfd;
		e->addr_ptr = s.addr_ptr;
		e->addrlen_ptr = s.addrlen_ptr;
		e->accept_flags = s.flags;
		e->enter_ktime_ns = s.ktime_ns;
		struct sock *lsk = dw_fd_to_sock(task, s.sockfd);
		if ((__u64)lsk != s.listen_sk)
			lsk = NULL; /* the fd names another socket than at enter */
		dw_fill_listener(e, lsk);
		/* A failed accept has no new socket: its socket fields name the
		 * listener, so failures can be told apart by listener. */
		if (ret < 0 && lsk)
			dw_fill_sock_fields(e, lsk);
	} else {
		e->hdr.flags |= DW_F_NO_ENTER | DW_F_LISTENER_UNRESOLVED | DW_F_USER_ADDR_NULL;
	}
	if (ret >= 0) {
		dw_fill_sock(e, sk);
		if (seed)
			dw_fill_user_addr(e, s.addrlen_in, s.have_in);
	}
	dw_submit(e, pol, slot);
	return 0;
}

static __always_inline int dw_handle_uring(void *req, struct io_uring_cqe *cqe)
{
	struct io_kiocb *r = req;
	if (BPF_CORE_READ(r, opcode) != DW_IORING_OP_ACCEPT)
		return 0;
	dw_count(DW_CNT_IO_URING);
	__u32 slot;
	struct dw_policy *pol = dw_current_policy(&slot);
	if (dw_policy_off(pol, slot))
		return 0;
	int ret = BPF_CORE_READ(cqe, res);
	if (dw_skip_result(ret) || dw_policy_drops_failure(pol, slot, ret))
		return 0;
	/* The request's command data is struct io_accept: the listening file,
	 * the caller's addr/addrlen and the fixed-file slot. */
	struct io_accept *acc = (struct io_accept *)&r->cmd;
	/* Direct descriptor: ret is a registered-file slot, not an fd in the
	 * process table; resolving it would be wrong. */
	bool direct = ret >= 0 && BPF_CORE_READ(acc, file_slot);
	struct sock *sk = NULL;
	if (ret >= 0 && !direct) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		sk = dw_fd_to_sock(task, ret);
	}
	if (!dw_policy_admits(pol, slot, sk))
		return 0;

	struct dw_accept_event *e = dw_reserve(DW_SRC_IO_URING, ret);
	if (!e)
		return 0;
	struct file *lf = BPF_CORE_READ(acc, file);
	struct socket *lsock = lf ? BPF_CORE_READ(lf, private_data) : NULL;
	dw_fill_listener(e, lsock ? BPF_CORE_READ(lsock, sk) : NULL);
	e->addr_ptr = (__u64)BPF_CORE_READ(acc, addr);
	e->addrlen_ptr = (__u64)BPF_CORE_READ(acc, addr_len);
	e->accept_flags = BPF_CORE_READ(acc, flags);

	if (ret >= 0) {
		if (direct)
			e->hdr.flags |= DW_F_DIRECT_DESCRIPTOR | DW_F_SOCK_UNRESOLVED;
		else
			dw_fill_sock(e, sk);
		/* The buffer size went into the kernel at submission, unseen here. */
		dw_fill_user_addr(e, 0, 0);
	}
	dw_submit(e, pol, slot);
	return 0;
}

#endif /* DW_ACCEPT_H */
