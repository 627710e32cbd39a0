/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The kernel types doorwatch reads, trimmed to the fields it uses.
 *
 * Why not a generated vmlinux.h: the build must not depend on the build host's
 * kernel (a Docker build, a CI runner), and a reviewer should see at a glance
 * every kernel field the probe touches. Every struct is preserve_access_index,
 * so libbpf relocates each field by name against the running kernel's BTF
 * (CO-RE): offsets here are irrelevant, names and types are what matter. A
 * field that a kernel lacks fails the load with a clear CO-RE error.
 */
#ifndef DW_VMLINUX_MIN_H
#define DW_VMLINUX_MIN_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_RB_NO_WAKEUP = 1,
	BPF_F_NO_PREALLOC = 1,
};

/* Values are relocated with bpf_core_enum_value(); the numbers are placeholders. */
enum cgroup_subsys_id {
	memory_cgrp_id = 4,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
};

struct trace_event_raw_sys_exit {
	struct trace_entry ent;
	long id;
	long ret;
};

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

/* Fields inside the kernel's anonymous unions are matched by name. */
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct upid {
	int nr;
	struct pid_namespace *ns;
};

struct pid {
	unsigned int level;
	struct upid numbers[1];
};

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
	__u16 sk_type;
	__u32 sk_ack_backlog;
	__u32 sk_max_ack_backlog;
	struct pid *sk_peer_pid;
};

struct sockaddr_un {
	unsigned short sun_family;
	char sun_path[108];
};

struct unix_address {
	int len;
	struct sockaddr_un name[0];
};

struct unix_sock {
	struct sock sk;
	struct unix_address *addr;
};

struct file {
	void *private_data;
};

struct socket {
	struct file *file;
	struct sock *sk;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct ns_common {
	unsigned int inum;
};

struct mnt_namespace {
	struct ns_common ns;
};

struct net {
	struct ns_common ns;
};

struct uts_namespace {
	struct ns_common ns;
};

struct pid_namespace {
	struct ns_common ns;
};

struct nsproxy {
	struct uts_namespace *uts_ns;
	struct mnt_namespace *mnt_ns;
	struct net *net_ns;
};

struct kernfs_node {
	__u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
};

struct cgroup_subsys_state {
	struct cgroup *cgroup;
};

struct css_set {
	struct cgroup_subsys_state *subsys[1];
};

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct pid *thread_pid;
	char comm[16];
	struct files_struct *files;
	struct nsproxy *nsproxy;
	struct css_set *cgroups;
};

/* io_uring internals (kernel >= 6.0 tracepoint signature). */
struct io_uring_cqe {
	__u64 user_data;
	__s32 res;
	__u32 flags;
};

struct io_cmd_data {
	struct file *file;
};

struct io_kiocb {
	struct io_cmd_data cmd;
	__u8 opcode;
};

struct sockaddr;

struct io_accept {
	struct file *file;
	struct sockaddr *addr;
	int *addr_len;
	int flags;
	__u32 file_slot;
};

struct io_ring_ctx;

#pragma clang attribute pop

#endif /* DW_VMLINUX_MIN_H */
