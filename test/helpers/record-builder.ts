import type { AcceptProbes } from '../../src/bpf/accept-probes.js';
import type { DrainResult, RecordHandler } from '../../src/bpf/ringbuf.js';
import { LAYOUT, OP_ACCEPT, type RawAccept, RECORD_SIZE, RECORD_VERSION } from '../../src/capture/record.js';

/** Test-only encoder: writes a dw_accept_event the way the BPF program does. */
export function buildRecord(r: Partial<RawAccept>): DataView {
  const v = new DataView(new ArrayBuffer(RECORD_SIZE + 16));
  const base = 8; // not at offset 0, like a record inside the ring
  const L = LAYOUT;
  v.setUint16(base + L['hdr.op'], r.op ?? OP_ACCEPT, true);
  v.setUint8(base + L['hdr.version'], r.version ?? RECORD_VERSION);
  v.setUint32(base + L['hdr.flags'], r.flags ?? 0, true);
  v.setBigUint64(base + L['hdr.ktime_ns'], r.ktimeNs ?? 0n, true);
  v.setBigUint64(base + L.cgroup_id, r.cgroupId ?? 0n, true);
  v.setBigUint64(base + L.cgroup_v1_id, r.cgroupV1Id ?? 0n, true);
  v.setBigUint64(base + L.enter_ktime_ns, r.enterKtimeNs ?? 0n, true);
  const u32: [keyof typeof L, number | undefined][] = [
    ['pid', r.pid],
    ['tid', r.tid],
    ['ppid', r.ppid],
    ['uid', r.uid],
    ['gid', r.gid],
    ['mnt_ns', r.mntNs],
    ['pid_ns', r.pidNs],
    ['net_ns', r.netNs],
    ['uts_ns', r.utsNs],
    ['accept_flags', r.acceptFlags],
    ['backlog', r.backlog],
    ['max_backlog', r.maxBacklog],
    ['user_addrlen', r.userAddrlen],
    ['user_addrlen_in', r.userAddrlenIn],
    ['peer_pid', r.peerPid],
  ];
  for (const [k, val] of u32) v.setUint32(base + L[k], val ?? 0, true);
  v.setInt32(base + L.ret, r.ret ?? 0, true);
  v.setInt32(base + L.sockfd, r.sockfd ?? -1, true);
  v.setBigUint64(base + L.addr_ptr, r.addrPtr ?? 0n, true);
  v.setBigUint64(base + L.addrlen_ptr, r.addrlenPtr ?? 0n, true);
  const u16: [keyof typeof L, number | undefined][] = [
    ['family', r.family],
    ['sock_type', r.sockType],
    ['protocol', r.protocol],
    ['lport', r.lport],
    ['rport', r.rport],
  ];
  for (const [k, val] of u16) v.setUint16(base + L[k], val ?? 0, true);
  v.setUint16(base + L.policy_slot, r.policySlot ?? 0, true);
  v.setUint8(base + L.source, r.source ?? 0);
  const put = (off: number, bytes: Uint8Array | undefined) => {
    if (bytes) new Uint8Array(v.buffer, base + off, bytes.length).set(bytes);
  };
  put(L.laddr, r.laddr);
  put(L.raddr, r.raddr);
  put(L.user_addr, r.userAddr);
  put(L.comm, r.comm === undefined ? undefined : new TextEncoder().encode(r.comm));
  if (r.unixPath) {
    v.setUint16(base + L.unix_path_len, r.unixPath.length, true);
    put(L.unix_path, r.unixPath);
  }
  return new DataView(v.buffer, 0);
}

export const RECORD_BASE = 8;

export const ipv4 = (s: string): Uint8Array => {
  const b = new Uint8Array(16);
  s.split('.').forEach((x, i) => {
    b[i] = Number(x);
  });
  return b;
};

/** sockaddr_in as the kernel writes it: family LE, port BE, address. */
export function sockaddrIn(ip: string, port: number): Uint8Array {
  const b = new Uint8Array(28);
  b[0] = 2;
  b[2] = port >> 8;
  b[3] = port & 0xff;
  b.set(ipv4(ip).subarray(0, 4), 4);
  return b;
}

/**
 * Probes for Capture without a kernel: a ring holding `count` copies of one
 * record, drained like RingReader.drain (at most `max` per call, `more` while
 * any are left); no kernel counters, no programs.
 */
export function probesWithRecords(count: number, r: Partial<RawAccept>): AcceptProbes {
  const view = buildRecord(r);
  let left = count;
  return {
    ring: {
      drain(onRecord: RecordHandler, max = Number.POSITIVE_INFINITY): DrainResult {
        let records = 0;
        for (; left > 0 && records < max; left--, records++) onRecord(view, RECORD_BASE, RECORD_SIZE);
        return { records, more: left > 0 };
      },
    },
    kernelCounters: () => ({}),
    programStats: () => [],
  } as unknown as AcceptProbes;
}
