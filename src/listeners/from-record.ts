import { AF_INET, AF_INET6, AF_UNIX, formatIP, formatUnixPath, sockTypeName } from '../capture/address.js';
import { OP_LISTEN, type RawAccept, RecordFlags } from '../capture/record.js';
// Types only: to-event.ts calls this module at run time, not the other way round.
import type { EventContext } from '../capture/to-event.js';
import { type AcceptEvent, EventKind, ListenerOrigin, Source } from '../gen/doorwatch/v1/event.js';
import { listenerEvent } from './event.js';

/** A kernel listener record (DW_OP_LISTEN / DW_OP_LISTEN_CLOSE) as its event. Pure. */

export function listenerFromRecord(r: RawAccept, seq: bigint, ctx: EventContext): AcceptEvent {
  const listen = r.op === OP_LISTEN;
  const time = ctx.toUnixNano(r.ktimeNs);
  const flags: string[] = [];
  if (r.flags & RecordFlags.SOCK_UNRESOLVED) flags.push('SOCK_UNRESOLVED');
  if (r.flags & RecordFlags.CGROUP_V1_UNKNOWN) flags.push('CGROUP_V1_UNKNOWN');
  const ev = listenerEvent({
    kind: listen ? EventKind.EVENT_KIND_LISTEN : EventKind.EVENT_KIND_LISTENER_CLOSED,
    origin: listen ? ListenerOrigin.LISTENER_ORIGIN_KERNEL_LISTEN : ListenerOrigin.LISTENER_ORIGIN_KERNEL_CLOSE,
    source: listen ? Source.SOURCE_LISTEN : Source.SOURCE_LISTEN_CLOSE,
    timeUnixNano: time,
    ktimeNs: r.ktimeNs,
    nodeName: ctx.nodeName,
    ...recordProcess(r),
    cgroup: { id: r.cgroupId, v1Id: r.cgroupV1Id },
    family: r.family,
    sockType: r.family ? sockTypeName(r.sockType) : '',
    protocol: r.protocol,
    ...recordAddress(r),
    fd: listen ? r.sockfd : -1,
    queued: 0,
    maxBacklog: r.maxBacklog,
    requestedBacklog: listen ? r.backlog | 0 : 0,
    inode: r.addrPtr,
    flags,
    firstSeenUnixNano: listen ? time : 0n,
  });
  ev.seq = seq;
  ev.eventId = ctx.idPrefix === undefined ? '' : `${ctx.idPrefix}/${seq}`;
  ev.durationNs = listen && r.enterKtimeNs > 0n && r.ktimeNs >= r.enterKtimeNs ? r.ktimeNs - r.enterKtimeNs : 0n;
  return ev;
}

/** The task of a kernel listener record (a listen(2), a close, an iterator row). */
export function recordProcess(r: RawAccept) {
  return {
    pid: r.pid,
    tid: r.tid,
    ppid: r.ppid,
    uid: r.uid,
    gid: r.gid,
    comm: r.comm,
    ns: { mnt: r.mntNs, pid: r.pidNs, net: r.netNs, uts: r.utsNs },
  };
}

/** The listening address of a kernel listener record: IP and port for TCP, the path for a unix socket. */
export function recordAddress(r: RawAccept): { localIp: string; localPort: number; unixPath: string } {
  const inet = r.family === AF_INET || r.family === AF_INET6;
  return {
    localIp: inet ? formatIP(r.family, r.laddr) : '',
    localPort: inet ? r.lport : 0,
    unixPath: r.family === AF_UNIX ? formatUnixPath(r.unixPath) : '',
  };
}
