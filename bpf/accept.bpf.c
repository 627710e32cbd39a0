// SPDX-License-Identifier: GPL-2.0-only
/*
 * Doorwatch accept probes: every attach point, one line each.
 * The handlers live in lib/accept.h; the record in doorwatch.h; every map and
 * who owns it in lib/maps.h. See docs/probes.md.
 */
#include "lib/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "doorwatch.h"
#include "lib/maps.h"
#include "lib/task.h"
#include "lib/socket.h"
#include "lib/policy.h"
#include "lib/accept.h"
#include "lib/listen.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tracepoint/syscalls/sys_enter_accept")
int dw_enter_accept(struct trace_event_raw_sys_enter *ctx) { return dw_handle_enter(ctx, 0); }

SEC("tracepoint/syscalls/sys_enter_accept4")
int dw_enter_accept4(struct trace_event_raw_sys_enter *ctx) { return dw_handle_enter(ctx, 1); }

SEC("tracepoint/syscalls/sys_exit_accept")
int dw_exit_accept(struct trace_event_raw_sys_exit *ctx) { return dw_handle_exit(ctx, DW_SRC_ACCEPT); }

SEC("tracepoint/syscalls/sys_exit_accept4")
int dw_exit_accept4(struct trace_event_raw_sys_exit *ctx) { return dw_handle_exit(ctx, DW_SRC_ACCEPT4); }

/* io_uring accepts never enter the syscall tracepoints. Kernel >= 6.0
 * signature; userspace disables this program where it does not load. */
SEC("tp_btf/io_uring_complete")
int BPF_PROG(dw_io_uring_complete, struct io_ring_ctx *ring, void *req, struct io_uring_cqe *cqe)
{
	return dw_handle_uring(req, cqe);
}

/* Listeners, for the node's inventory (lib/listen.h, src/listeners). */
SEC("tracepoint/syscalls/sys_enter_listen")
int dw_enter_listen(struct trace_event_raw_sys_enter *ctx) { return dw_handle_enter_listen(ctx); }

SEC("tracepoint/syscalls/sys_exit_listen")
int dw_exit_listen(struct trace_event_raw_sys_exit *ctx) { return dw_handle_exit_listen(ctx); }

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(dw_listen_state, struct sock *sk, int oldstate, int newstate)
{
	return dw_handle_listen_state(sk, oldstate, newstate);
}

/* The listener snapshot, run on demand by userspace (bpf_iter_create). */
SEC("iter/task_file")
int dw_iter_listeners(struct bpf_iter__task_file *ctx) { return dw_handle_iter_listeners(ctx); }

/* Puts struct dw_accept_event into the object's BTF (nothing else names its
 * type), so test/unit/layout.test.ts can check the TS decoder against it. */
struct dw_accept_event *dw_record_btf_anchor __attribute__((unused));
