/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * fd -> struct file -> struct socket -> struct sock, and the addresses read
 * from the sock itself. These come from kernel memory, so a process cannot
 * make us report a peer it did not accept (the seeds' TOCTOU problem).
 */
#ifndef DW_SOCKET_H
#define DW_SOCKET_H

#define DW_AF_UNIX 1
#define DW_AF_INET 2
#define DW_AF_INET6 10

static __always_inline struct sock *dw_fd_to_sock(struct task_struct *task, int fd)
{
	if (fd < 0)
		return NULL;
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	/* A socket file's private_data is its struct socket, whose ->file
	 * points back: anything else is not a socket. */
	if (!sock || BPF_CORE_READ(sock, file) != f)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

static __always_inline void dw_fill_listener(struct dw_accept_event *e, struct sock *lsk)
{
	if (!lsk) {
		e->hdr.flags |= DW_F_LISTENER_UNRESOLVED;
		return;
	}
	e->backlog = BPF_CORE_READ(lsk, sk_ack_backlog);
	e->max_backlog = BPF_CORE_READ(lsk, sk_max_ack_backlog);
}

static __always_inline void dw_fill_unix(struct dw_accept_event *e, struct sock *sk)
{
	struct unix_sock *us = (struct unix_sock *)sk;
	struct unix_address *ua = BPF_CORE_READ(us, addr);
	struct pid *peer = BPF_CORE_READ(sk, sk_peer_pid);

	/* numbers[0] is the pid in the initial namespace, as the agent sees it. */
	if (peer)
		e->peer_pid = BPF_CORE_READ(peer, numbers[0].nr);
	if (!ua)
		return;
	int len = BPF_CORE_READ(ua, len) - 2; /* minus sun_family */
	if (len <= 0)
		return;
	__u64 n = (__u32)len;
	if (n > DW_UNIX_PATH_LEN)
		n = DW_UNIX_PATH_LEN;
	barrier_var(n); /* keep clang from reading the unclamped copy */
	if (n > DW_UNIX_PATH_LEN)
		return;
	e->unix_path_len = n;
	bpf_core_read(e->unix_path, n, &ua->name[0].sun_path);
}

/* Family, type, protocol, addresses (or unix path) of sk into the record. */
static __always_inline void dw_fill_sock_fields(struct dw_accept_event *e, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->family = family;
	e->sock_type = BPF_CORE_READ(sk, sk_type);
	e->protocol = BPF_CORE_READ(sk, sk_protocol);

	if (family == DW_AF_INET) {
		__be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->laddr, &l, 4);
		__builtin_memcpy(e->raddr, &r, 4);
	} else if (family == DW_AF_INET6) {
		/* Read into typed locals: BPF_CORE_READ_INTO on a u8[16] copies
		 * one byte (sizeof(*dst)). */
		struct in6_addr l = BPF_CORE_READ(sk, __sk_common.skc_v6_rcv_saddr);
		struct in6_addr r = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr);
		__builtin_memcpy(e->laddr, &l, 16);
		__builtin_memcpy(e->raddr, &r, 16);
	} else if (family == DW_AF_UNIX) {
		dw_fill_unix(e, sk);
		return;
	} else {
		return;
	}
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

static __always_inline void dw_fill_sock(struct dw_accept_event *e, struct sock *sk)
{
	if (!sk) {
		e->hdr.flags |= DW_F_SOCK_UNRESOLVED;
		dw_count(DW_CNT_SOCK_UNRESOLVED);
		return;
	}
	dw_fill_sock_fields(e, sk);
}

/* The caller's own view (tag U): *addrlen at exit and the sockaddr bytes
 * the kernel wrote. *addrlen is in/out: at enter the caller's buffer size
 * (`in`, read by the enter handler), at exit the address's full length. The
 * kernel copies min(in, length) bytes and leaves the rest of the buffer as it
 * was, so bytes past `in` are the caller's old stack, never the peer: they are
 * not read (a sockaddr_in6 accepted into a 16-byte struct sockaddr is the
 * common case: socat does it). */
static __always_inline void dw_fill_user_addr(struct dw_accept_event *e, __u32 in, __u32 have_in)
{
	if (!e->addr_ptr || !e->addrlen_ptr) {
		e->hdr.flags |= DW_F_USER_ADDR_NULL;
		return;
	}
	__u32 ulen = 0;
	if (bpf_probe_read_user(&ulen, sizeof(ulen), (void *)e->addrlen_ptr)) {
		e->hdr.flags |= DW_F_USER_ADDR_FAULT;
		return;
	}
	e->user_addrlen = ulen;
	__u32 written = ulen;
	if (!have_in) {
		e->hdr.flags |= DW_F_USER_ADDRLEN_IN_UNKNOWN;
	} else {
		e->user_addrlen_in = in;
		if (in < ulen) {
			e->hdr.flags |= DW_F_USER_ADDR_TRUNCATED;
			written = in;
		}
	}
	__u64 n = written > DW_USER_ADDR_LEN ? DW_USER_ADDR_LEN : written;
	barrier_var(n);
	if (n == 0 || n > DW_USER_ADDR_LEN)
		return;
	if (bpf_probe_read_user(e->user_addr, n, (void *)e->addr_ptr))
		e->hdr.flags |= DW_F_USER_ADDR_FAULT;
}

#endif /* DW_SOCKET_H */
