import { sockTypeName } from '../capture/address.js';
import { decodeRecord, RECORD_SIZE, reusableRecord } from '../capture/record.js';
import { recordAddress, recordProcess } from './from-record.js';
import type { ScannedListener, ScanResult } from './proc-scan.js';

/**
 * The listener snapshot from the kernel (the iter/task_file program of
 * bpf/lib/listen.h): every listening socket held by some task's fd, with the
 * task, read in the kernel — no /proc/<pid>/fd, which needs CAP_SYS_PTRACE
 * for other users' processes. One record per (task, fd): a socket shared by
 * forked workers is kept once, with its lowest pid, as the /proc scan does.
 */

export function listenersFromIterator(buf: Buffer): ScanResult {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const bySocket = new Map<string, ScannedListener>();
  let unreadable = 0;
  // Every field is copied out below before the next record is decoded into it.
  const record = reusableRecord();
  for (let off = 0; off + RECORD_SIZE <= buf.length; off += RECORD_SIZE) {
    let r: ReturnType<typeof decodeRecord>;
    try {
      r = decodeRecord(view, off, RECORD_SIZE, record);
    } catch {
      unreadable++; // counted, as a /proc read that failed is
      continue;
    }
    const key = `${r.netNs}/${r.addrPtr}`;
    const prev = bySocket.get(key);
    if (prev?.holder && prev.holder.proc.pid <= r.pid) {
      if (prev.holder.proc.pid !== r.pid) prev.holders++;
      continue;
    }
    bySocket.set(key, {
      family: r.family,
      sockType: sockTypeName(r.sockType),
      protocol: r.protocol,
      ...recordAddress(r),
      inode: r.addrPtr,
      queued: r.backlog,
      maxBacklog: r.maxBacklog,
      netNs: r.netNs,
      holders: (prev?.holders ?? 0) + 1,
      holder: {
        fd: r.sockfd,
        proc: {
          ...recordProcess(r),
          cgroupId: r.cgroupId,
          cgroupV1Id: r.cgroupV1Id,
        },
      },
    });
  }
  if (buf.length % RECORD_SIZE) unreadable++;
  return { listeners: [...bySocket.values()], unreadable };
}
