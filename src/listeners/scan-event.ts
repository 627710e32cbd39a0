import { type AcceptEvent, EventKind, type ListenerOrigin, Source } from '../gen/doorwatch/v1/event.js';
import { listenerEvent } from './event.js';
import type { ScannedListener } from './proc-scan.js';

/** A socket found by the /proc scan as a listener record of kind LISTENER. */
export function scannedEvent(
  s: ScannedListener,
  o: { nodeName: string; origin: ListenerOrigin; timeUnixNano: bigint; firstSeenUnixNano: bigint },
): AcceptEvent {
  const p = s.holder?.proc;
  return listenerEvent({
    kind: EventKind.EVENT_KIND_LISTENER,
    origin: o.origin,
    source: Source.SOURCE_PROC_SCAN,
    timeUnixNano: o.timeUnixNano,
    ktimeNs: 0n,
    nodeName: o.nodeName,
    pid: p?.pid ?? 0,
    tid: p?.tid ?? p?.pid ?? 0,
    ppid: p?.ppid ?? 0,
    uid: p?.uid ?? 0,
    gid: p?.gid ?? 0,
    comm: p?.comm ?? '',
    // The namespaces of the holder; net is always the socket's own.
    ns: { mnt: p?.ns.mnt ?? 0, pid: p?.ns.pid ?? 0, net: s.netNs, uts: p?.ns.uts ?? 0 },
    cgroup: { id: p?.cgroupId ?? 0n, v1Id: p?.cgroupV1Id ?? 0n },
    family: s.family,
    sockType: s.sockType,
    protocol: s.protocol,
    localIp: s.localIp,
    localPort: s.localPort,
    unixPath: s.unixPath,
    fd: s.holder?.fd ?? -1,
    queued: s.queued,
    // /proc/net/tcp does not show a listener's maximum backlog (only inet_diag and the iterator do).
    maxBacklog: s.maxBacklog ?? 0,
    requestedBacklog: 0,
    inode: s.inode,
    flags: p ? [] : ['NO_HOLDER'],
    firstSeenUnixNano: o.firstSeenUnixNano,
  });
}
