/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The one record the kernel sends to userspace, shared by the BPF program and
 * (through test/unit/layout.test.ts, which reads the BTF of the built object)
 * the TypeScript decoder in src/capture/record.ts.
 *
 * Rules, because userspace decodes this with a DataView and not a compiler:
 *  - fixed-width fields only, explicit padding, no implicit holes;
 *  - op codes and flag bits are never reused: retire them, add new ones;
 *  - the size is pinned by _Static_assert; a layout change bumps DW_RECORD_VERSION.
 */
#ifndef DOORWATCH_H
#define DOORWATCH_H

#define DW_RECORD_VERSION 3

/* hdr.op */
#define DW_OP_ACCEPT 1
/* Listener records (bpf/lib/listen.h) use struct dw_accept_event too. There
 * ret is listen()'s result (0), sockfd the listening fd, backlog the backlog
 * argument as passed, max_backlog the kernel's (clamped to somaxconn),
 * net_ns the socket's network namespace, addr_ptr the socket's inode number;
 * the socket fields name the listening socket. Unused fields are zero. */
#define DW_OP_LISTEN 2       /* listen(2) succeeded */
#define DW_OP_LISTEN_CLOSE 3 /* a TCP listener went TCP_LISTEN -> TCP_CLOSE */

/* dw_accept_event.source: which entry point produced the event */
#define DW_SRC_ACCEPT 1   /* syscall accept(2)  */
#define DW_SRC_ACCEPT4 2  /* syscall accept4(2) */
#define DW_SRC_IO_URING 3 /* io_uring IORING_OP_ACCEPT completion */
#define DW_SRC_LISTEN 4   /* syscall listen(2) (DW_OP_LISTEN) */
#define DW_SRC_LISTEN_CLOSE 5 /* tp_btf/inet_sock_set_state (DW_OP_LISTEN_CLOSE) */
#define DW_SRC_LISTEN_SCAN 6  /* iter/task_file snapshot (DW_OP_LISTEN, read through bpf_iter_create, never the ring) */

/* hdr.flags */
#define DW_F_NO_ENTER (1u << 0)            /* exit seen without its enter: seeds unknown */
#define DW_F_SOCK_UNRESOLVED (1u << 1)     /* new fd could not be resolved to a socket */
#define DW_F_LISTENER_UNRESOLVED (1u << 2) /* listening socket gone/unknown: no backlog */
#define DW_F_USER_ADDR_NULL (1u << 3)      /* caller passed addr == NULL */
#define DW_F_USER_ADDR_FAULT (1u << 4)     /* caller's addr/addrlen could not be read */
#define DW_F_DIRECT_DESCRIPTOR (1u << 5)   /* io_uring accept into a fixed-file slot: ret is a slot */
#define DW_F_CGROUP_V1_UNKNOWN (1u << 6)   /* no v1 memory hierarchy id could be read */
#define DW_F_USER_ADDR_TRUNCATED (1u << 7) /* caller's buffer shorter than the address: only user_addrlen_in bytes written */
#define DW_F_USER_ADDRLEN_IN_UNKNOWN (1u << 8) /* caller's buffer size not known (io_uring, or *addrlen unreadable at enter) */

/* index into the per-CPU dw_counters map */
#define DW_CNT_EMITTED 0          /* records committed to the ring buffer */
#define DW_CNT_RINGBUF_FULL 1     /* reserve failed: event lost, counted here */
#define DW_CNT_EXIT_NO_ENTER 2    /* exits with no saved enter (emitted anyway) */
#define DW_CNT_EAGAIN_SKIPPED 3   /* EAGAIN/EWOULDBLOCK results dropped by config */
#define DW_CNT_IO_URING 4         /* io_uring accept completions seen */
#define DW_CNT_CGROUP_FILTERED 5  /* accepts whose policy mode is off (not audited) */
#define DW_CNT_ENTER_MAP_FULL 6   /* enter could not be saved (map full): exit will be NO_ENTER */
#define DW_CNT_SOCK_UNRESOLVED 7  /* successful accepts whose fd did not resolve */
#define DW_CNT_PORT_FILTERED 8    /* accepts outside their policy's ports */
#define DW_CNT_PEER_FILTERED 9    /* accepts from peers outside their policy's peers */
#define DW_CNT_FAILED_FILTERED 10 /* failed accepts of policies with failedAccepts: false */
#define DW_CNT_MAX 16

/* dw_config.flags (the .data section, written by userspace at runtime) */
#define DW_CFG_INCLUDE_EAGAIN (1u << 0)
#define DW_CFG_FILTER_CGROUPS (1u << 1) /* audit policies loaded: dw_audited_cgroups decides */
#define DW_CFG_LISTENERS (1u << 2)      /* emit listener records (lib/listen.h): the agent's inventory is on */

/* Audit policies (docs/policy.md): the agent compiles each effective policy
 * into a slot of dw_policies and maps cgroups to slots. */
#define DW_MAX_POLICY_SLOTS 256
#define DW_MODE_EVENTS 1  /* emit (0, a slot never written, means the same) */
#define DW_MODE_SUMMARY 2 /* emit; userspace folds into summaries */
#define DW_MODE_OFF 3     /* emit nothing; count per slot */
#define DW_POL_FAILED_ACCEPTS (1u << 0) /* emit accepts that returned an error */
#define DW_POL_PEER_INCLUDE (1u << 1)   /* peers matched by no rule are filtered */
#define DW_POL_PEER_RULES (1u << 2)     /* the slot has entries in dw_peer_rules */
#define DW_POL_PORTS_MAX 8
#define DW_PEER_INCLUDE 1 /* dw_peer_rules values */
#define DW_PEER_EXCLUDE 2

/* index into dw_slot_counters: slot * DW_SLOT_CNT_MAX + DW_SLOT_CNT_* */
#define DW_SLOT_CNT_EMITTED 0
#define DW_SLOT_CNT_OFF 1
#define DW_SLOT_CNT_PORT 2
#define DW_SLOT_CNT_PEER 3
#define DW_SLOT_CNT_FAILED 4
#define DW_SLOT_CNT_MAX 8

#define DW_COMM_LEN 16
#define DW_UNIX_PATH_LEN 108
#define DW_USER_ADDR_LEN 28 /* sizeof(struct sockaddr_in6), the largest inet sockaddr */

/* Common header of every kernel -> user message (Tetragon's msg_common idea). */
struct dw_header {
	__u16 op;       /* DW_OP_* */
	__u8 version;   /* DW_RECORD_VERSION */
	__u8 _pad0;
	__u32 flags;    /* DW_F_* */
	__u64 ktime_ns; /* bpf_ktime_get_ns() at exit/completion: CLOCK_MONOTONIC */
};

struct dw_accept_event {
	struct dw_header hdr;          /* 0 */
	__u64 cgroup_id;               /* 16 cgroup v2 id (bpf_get_current_cgroup_id) */
	__u64 cgroup_v1_id;            /* 24 id of the task's cgroup in the v1 memory hierarchy */
	__u64 enter_ktime_ns;          /* 32 enter timestamp, 0 if NO_ENTER / io_uring */
	__u32 pid;                     /* 40 tgid, as userspace knows it */
	__u32 tid;                     /* 44 */
	__u32 ppid;                    /* 48 real_parent->tgid */
	__u32 uid;                     /* 52 */
	__u32 gid;                     /* 56 */
	__u32 mnt_ns;                  /* 60 namespace inode numbers */
	__u32 pid_ns;                  /* 64 */
	__u32 net_ns;                  /* 68 */
	__u32 uts_ns;                  /* 72 */
	__s32 ret;                     /* 76 new fd, or -errno */
	__s32 sockfd;                  /* 80 listening fd (seed), -1 if unknown */
	__u32 accept_flags;            /* 84 accept4 flags (seed) */
	__u64 addr_ptr;                /* 88 user addr pointer (seed) */
	__u64 addrlen_ptr;             /* 96 user addrlen pointer (seed) */
	__u32 backlog;                 /* 104 listener sk_ack_backlog after this accept */
	__u32 max_backlog;             /* 108 listener sk_max_ack_backlog */
	__u32 user_addrlen;            /* 112 *addrlen at exit: the address's full length (kernel-written) */
	/* Success: the accepted socket. Failure (ret < 0): the listening socket,
	 * when the sockfd still named at exit the socket it named at enter. */
	__u16 family;                  /* 116 kernel socket family (AF_*) */
	__u16 sock_type;               /* 118 SOCK_STREAM, ... */
	__u16 protocol;                /* 120 IPPROTO_* */
	__u16 lport;                   /* 122 host byte order */
	__u16 rport;                   /* 124 host byte order */
	__u8 source;                   /* 126 DW_SRC_* */
	__u8 _pad1;                    /* 127 */
	__u8 laddr[16];                /* 128 IPv4 in the first 4 bytes, or IPv6 */
	__u8 raddr[16];                /* 144 */
	__u8 user_addr[DW_USER_ADDR_LEN]; /* 160 the bytes the kernel wrote to the caller's sockaddr, as found at exit (tag U); zero past them */
	char comm[DW_COMM_LEN];        /* 188 */
	__u16 unix_path_len;           /* 204 bytes valid in unix_path */
	__u16 policy_slot;             /* 206 dw_policies slot that admitted it; 0 = none */
	char unix_path[DW_UNIX_PATH_LEN]; /* 208 AF_UNIX: the accepted socket's bound path */
	__u32 peer_pid;                /* 316 AF_UNIX: peer's pid from SO_PEERCRED (sk_peer_pid) */
	__u32 user_addrlen_in;         /* 320 *addrlen at enter: the caller's buffer size (the kernel writes min(in, user_addrlen)) */
	__u32 _pad2;                   /* 324 */
};                                 /* 328 */

_Static_assert(sizeof(struct dw_header) == 16, "dw_header layout");
_Static_assert(sizeof(struct dw_accept_event) == 328, "dw_accept_event layout");

struct dw_config {
	__u32 flags;        /* DW_CFG_* */
	__u32 default_slot; /* slot of cgroups not in dw_audited_cgroups */
};

struct dw_port_range {
	__u16 lo; /* inclusive, host byte order */
	__u16 hi;
};

/* One compiled audit policy (value of dw_policies). */
struct dw_policy {
	__u8 mode;      /* DW_MODE_* */
	__u8 flags;     /* DW_POL_* */
	__u8 n_include; /* ranges used in include (0 = every port) */
	__u8 n_exclude;
	__u32 _pad0;
	struct dw_port_range include[DW_POL_PORTS_MAX]; /* local (listening) port */
	struct dw_port_range exclude[DW_POL_PORTS_MAX];
};

/* Key of dw_audited_cgroups: ids are numbered per hierarchy, so the same
 * number can name different cgroups in v2 and in v1 memory. */
struct dw_cgroup_key {
	__u64 id;
	__u32 version; /* 2: cgroup_id, 1: cgroup_v1_id */
	__u32 _pad0;
};

/* Key of the dw_peer_rules LPM trie: the slot is always matched whole
 * (prefixlen = 32 + address bits); IPv4 as ::ffff:a.b.c.d. */
struct dw_peer_key {
	__u32 prefixlen;
	__u32 slot;
	__u8 addr[16];
};

_Static_assert(sizeof(struct dw_policy) == 72, "dw_policy layout");
_Static_assert(sizeof(struct dw_cgroup_key) == 16, "dw_cgroup_key layout");
_Static_assert(sizeof(struct dw_peer_key) == 24, "dw_peer_key layout");

#endif /* DOORWATCH_H */
