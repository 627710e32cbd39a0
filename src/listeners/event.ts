import { AF_INET, AF_INET6, AF_UNIX } from '../capture/address.js';
import { type AcceptEvent, AddressFamily, EventKind, type ListenerOrigin, type Source } from '../gen/doorwatch/v1/event.js';

/**
 * A listener record is an AcceptEvent of kind LISTEN / LISTENER /
 * LISTENER_CLOSED (the proto's precedent for summaries): it travels the
 * accepts' path — enricher, spool, collector, sinks — unchanged, and the
 * listening address is where an accept has its local address.
 */
export interface ListenerFields {
  kind: EventKind;
  origin: ListenerOrigin;
  source: Source;
  timeUnixNano: bigint;
  /** CLOCK_MONOTONIC of the kernel record; 0 for a /proc scan. */
  ktimeNs: bigint;
  nodeName: string;
  pid: number;
  tid: number;
  ppid: number;
  uid: number;
  gid: number;
  comm: string;
  ns: { mnt: number; pid: number; net: number; uts: number };
  cgroup: { id: bigint; v1Id: bigint };
  /** AF_* number. */
  family: number;
  sockType: string;
  protocol: number;
  localIp: string;
  localPort: number;
  unixPath: string;
  /** Listening fd in `pid`, -1 when unknown (a close, a socket no process holds). */
  fd: number;
  /** Connections waiting in the accept queue now (sk_ack_backlog). */
  queued: number;
  maxBacklog: number;
  requestedBacklog: number;
  inode: bigint;
  flags: string[];
  firstSeenUnixNano: bigint;
}

export function addressFamily(f: number): AddressFamily {
  if (f === AF_INET) return AddressFamily.ADDRESS_FAMILY_INET;
  if (f === AF_INET6) return AddressFamily.ADDRESS_FAMILY_INET6;
  if (f === AF_UNIX) return AddressFamily.ADDRESS_FAMILY_UNIX;
  return f === 0 ? AddressFamily.ADDRESS_FAMILY_UNSPECIFIED : AddressFamily.ADDRESS_FAMILY_OTHER;
}

/** The record; event_id and seq are the sequencer's (agent) or the caller's. */
export function listenerEvent(f: ListenerFields): AcceptEvent {
  return {
    eventId: '',
    seq: 0n,
    timeUnixNano: f.timeUnixNano,
    ktimeNs: f.ktimeNs,
    nodeName: f.nodeName,
    source: f.source,
    ret: 0,
    success: true,
    error: '',
    durationNs: 0n,
    acceptFlags: 0,
    acceptFlagNames: [],
    flags: f.flags,
    process: { pid: f.pid, tid: f.tid, ppid: f.ppid, uid: f.uid, gid: f.gid, comm: f.comm },
    socket: {
      family: addressFamily(f.family),
      familyNumber: f.family,
      type: f.sockType,
      protocol: f.protocol,
      local: { ip: f.localIp, port: f.localPort },
      peer: { ip: '', port: 0 },
      v4Mapped: false,
      unixPath: f.unixPath,
      peerPid: 0,
      resolved: f.family !== 0,
    },
    listener: { fd: f.fd, backlog: f.queued, maxBacklog: f.maxBacklog, resolved: f.family !== 0 },
    userAddress: { present: false, addrlen: 0, familyNumber: 0, ip: '', port: 0, fault: false, mismatch: false },
    namespaces: { ...f.ns },
    cgroup: { ...f.cgroup },
    container: undefined,
    pod: undefined,
    enrichment: undefined,
    kind: f.kind,
    summary: undefined,
    policy: undefined,
    peerAttribution: undefined,
    localAttribution: undefined,
    listenerInfo: {
      origin: f.origin,
      inode: f.inode,
      requestedBacklog: f.requestedBacklog,
      firstSeenUnixNano: f.firstSeenUnixNano,
    },
    findingInfo: undefined,
  };
}

/** Listener kinds: records of the inventory, not accepts. */
export const isListenerKind = (k: EventKind): boolean =>
  k === EventKind.EVENT_KIND_LISTEN || k === EventKind.EVENT_KIND_LISTENER || k === EventKind.EVENT_KIND_LISTENER_CLOSED;

/**
 * What identifies one listening socket on the node: its network namespace and
 * inode (unique while the socket lives), else its address.
 */
export function listenerKey(ev: AcceptEvent): string {
  const net = ev.namespaces?.net ?? 0;
  const inode = ev.listenerInfo?.inode ?? 0n;
  if (inode > 0n) return `${net}/i${inode}`;
  const s = ev.socket;
  return `${net}/${s?.familyNumber ?? 0}/${s?.unixPath || `${s?.local?.ip}:${s?.local?.port}`}`;
}
