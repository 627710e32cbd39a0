import { existsSync, readFileSync } from 'node:fs';
import { DoorwatchError } from '../errors.js';

/**
 * Checks that turn a cryptic libbpf errno into one line saying what is wrong
 * and what to do. Each takes its inputs as parameters so tests can feed them.
 */

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

export function effectiveCaps(status: string): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function checkPrivileges(status = readFileSync('/proc/self/status', 'utf8')): void {
  const caps = effectiveCaps(status);
  const has = (c: bigint) => (caps & (1n << c)) !== 0n;
  if (has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) return;
  throw new DoorwatchError(
    'DW_ERR_BPF_PRIVILEGE',
    'doorwatch needs to load eBPF programs, but this process has neither CAP_SYS_ADMIN nor CAP_BPF+CAP_PERFMON',
    'run it as root (sudo), or grant CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE',
  );
}

export function checkBtf(path = '/sys/kernel/btf/vmlinux'): void {
  if (existsSync(path)) return;
  throw new DoorwatchError(
    'DW_ERR_BPF_NO_BTF',
    `this kernel exposes no BTF (${path} is missing), which CO-RE probes need`,
    'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (default on Debian 11+, Ubuntu 20.10+, RHEL 8.2+)',
  );
}

export const TRACEFS_CANDIDATES = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

export function checkTracefs(roots = TRACEFS_CANDIDATES): string {
  for (const r of roots) if (existsSync(`${r}/events/syscalls/sys_enter_accept4`)) return r;
  throw new DoorwatchError(
    'DW_ERR_BPF_NO_TRACEFS',
    `tracefs is not mounted (no ${roots[0]}/events/syscalls), so syscall tracepoints cannot be attached`,
    'mount it: mount -t tracefs nodev /sys/kernel/tracing (in Kubernetes, mount the host path read-only)',
  );
}

export function preflight(): void {
  checkPrivileges();
  checkBtf();
  checkTracefs();
}
