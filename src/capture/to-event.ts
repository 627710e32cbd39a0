import { constants } from 'node:os';
import {
  AcceptEvent,
  AddressFamily,
  type Cgroup,
  type Endpoint,
  EventKind,
  type Namespaces,
  type Process,
  Source as ProtoSource,
} from '../gen/doorwatch/v1/event.js';
import { listenerFromRecord } from '../listeners/from-record.js';
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  formatIP,
  formatUnixPath,
  isV4Mapped,
  NO_SOCKADDR,
  parseSockaddr,
  sockaddrDisagrees,
  sockTypeName,
} from './address.js';
import { OP_ACCEPT, type RawAccept, RecordFlags, Source } from './record.js';

/** RawAccept (bytes as numbers) -> AcceptEvent (the proto, what users see). Pure. */

export interface EventContext {
  nodeName: string;
  /**
   * "<boot id>/<agent instance>": with seq, a stable event_id across replays. Undefined: no event_id (the
   * agent's spool writes its own seq space's, agent/event-encoder.ts).
   */
  idPrefix: string | undefined;
  toUnixNano(ktimeNs: bigint): bigint;
}

const errnoNames = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) {
  // EWOULDBLOCK == EAGAIN and EDEADLOCK == EDEADLK on Linux: keep the usual names.
  if (!errnoNames.has(n)) errnoNames.set(n, name);
}
export const errnoName = (n: number): string => errnoNames.get(n) ?? `E${n}`;

export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

/* Names depend only on the bits: computed once per distinct value, shared (read-only) by events. */
const acceptNames = new Map<number, string[]>();
export function acceptFlagNames(flags: number): string[] {
  let out = acceptNames.get(flags);
  if (out) return out;
  out = [];
  if (flags & SOCK_NONBLOCK) out.push('SOCK_NONBLOCK');
  if (flags & SOCK_CLOEXEC) out.push('SOCK_CLOEXEC');
  const rest = flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (rest) out.push(`0x${rest.toString(16)}`);
  Object.freeze(out); // shared between events: nobody may sort or push in place
  if (acceptNames.size < 256) acceptNames.set(flags, out);
  return out;
}

const flagEntries = Object.entries(RecordFlags);
const recordNames = new Map<number, string[]>();
export function recordFlagNames(flags: number): string[] {
  let out = recordNames.get(flags);
  if (!out) {
    out = Object.freeze(flagEntries.filter(([, bit]) => flags & bit).map(([name]) => name)) as string[];
    if (recordNames.size < 256) recordNames.set(flags, out);
  }
  return out;
}

function family(f: number): AddressFamily {
  if (f === AF_INET) return AddressFamily.ADDRESS_FAMILY_INET;
  if (f === AF_INET6) return AddressFamily.ADDRESS_FAMILY_INET6;
  if (f === AF_UNIX) return AddressFamily.ADDRESS_FAMILY_UNIX;
  return f === 0 ? AddressFamily.ADDRESS_FAMILY_UNSPECIFIED : AddressFamily.ADDRESS_FAMILY_OTHER;
}

function source(s: number): ProtoSource {
  if (s === Source.ACCEPT) return ProtoSource.SOURCE_ACCEPT;
  if (s === Source.ACCEPT4) return ProtoSource.SOURCE_ACCEPT4;
  if (s === Source.IO_URING) return ProtoSource.SOURCE_IO_URING;
  return ProtoSource.SOURCE_UNSPECIFIED;
}

/*
 * Sub-messages that repeat from event to event (a storm comes from one
 * process, in one set of namespaces and cgroups, on one listening address):
 * the last one is shared, frozen, by the events whose values are equal, as
 * the collector shares decoded ones. Events are read-only downstream.
 */
let lastProcess: Process = Object.freeze({ pid: -1, tid: -1, ppid: -1, uid: -1, gid: -1, comm: '' });
function processOf(r: RawAccept): Process {
  const l = lastProcess;
  if (l.pid === r.pid && l.tid === r.tid && l.ppid === r.ppid && l.uid === r.uid && l.gid === r.gid && l.comm === r.comm)
    return l;
  lastProcess = Object.freeze({ pid: r.pid, tid: r.tid, ppid: r.ppid, uid: r.uid, gid: r.gid, comm: r.comm });
  return lastProcess;
}

let lastNamespaces: Namespaces = Object.freeze({ mnt: -1, pid: -1, net: -1, uts: -1 });
function namespacesOf(r: RawAccept): Namespaces {
  const l = lastNamespaces;
  if (l.mnt === r.mntNs && l.pid === r.pidNs && l.net === r.netNs && l.uts === r.utsNs) return l;
  lastNamespaces = Object.freeze({ mnt: r.mntNs, pid: r.pidNs, net: r.netNs, uts: r.utsNs });
  return lastNamespaces;
}

let lastCgroup: Cgroup = Object.freeze({ id: -1n, v1Id: -1n });
function cgroupOf(r: RawAccept): Cgroup {
  const l = lastCgroup;
  if (l.id === r.cgroupId && l.v1Id === r.cgroupV1Id) return l;
  lastCgroup = Object.freeze({ id: r.cgroupId, v1Id: r.cgroupV1Id });
  return lastCgroup;
}

let lastLocal: Endpoint = Object.freeze({ ip: '', port: -1 });
function endpointOf(ip: string, port: number): Endpoint {
  const l = lastLocal;
  if (l.ip === ip && l.port === port) return l;
  lastLocal = Object.freeze({ ip, port });
  return lastLocal;
}

/** sizeof(struct sockaddr): the smallest buffer the sockets API hands a caller. */
const SOCKADDR_LEN = 16;

/**
 * How many bytes of the caller's buffer the kernel wrote: min(buffer size at
 * enter, address length at exit). Without the size (io_uring: it went in at
 * submission), only the first sizeof(struct sockaddr) are taken as written.
 */
export function userBytesWritten(r: RawAccept): number {
  if (r.flags & RecordFlags.USER_ADDRLEN_IN_UNKNOWN) return Math.min(r.userAddrlen, SOCKADDR_LEN);
  return Math.min(r.userAddrlenIn, r.userAddrlen);
}

export function toAcceptEvent(r: RawAccept, seq: bigint, ctx: EventContext): AcceptEvent {
  if (r.op !== OP_ACCEPT) return listenerFromRecord(r, seq, ctx); // listen(2) / listener closed (src/listeners)
  const success = r.ret >= 0;
  const resolved = success && !(r.flags & RecordFlags.SOCK_UNRESOLVED) && r.family !== 0;
  // A failed accept has no new socket: the record then describes its listener (when resolved).
  const described = resolved || (!success && r.family !== 0);
  const inet = r.family === AF_INET || r.family === AF_INET6;
  const peerIp = resolved && inet ? formatIP(r.family, r.raddr) : '';

  const present = !(r.flags & (RecordFlags.USER_ADDR_NULL | RecordFlags.NO_ENTER)) && r.addrPtr !== 0n;
  const fault = (r.flags & RecordFlags.USER_ADDR_FAULT) !== 0;
  const checked = present && !fault && success;
  const written = checked ? userBytesWritten(r) : 0;
  const user = checked ? parseSockaddr(r.userAddr, written) : NO_SOCKADDR;
  // Only a buffer the kernel filled can disagree, and only in the bytes it wrote.
  const mismatch =
    checked && resolved && (inet || r.family === AF_UNIX) && sockaddrDisagrees(r.userAddr, written, r.family, r.rport, r.raddr);

  return {
    eventId: ctx.idPrefix === undefined ? '' : `${ctx.idPrefix}/${seq}`,
    seq,
    timeUnixNano: ctx.toUnixNano(r.ktimeNs),
    ktimeNs: r.ktimeNs,
    nodeName: ctx.nodeName,
    source: source(r.source),
    ret: r.ret,
    success,
    error: success ? '' : errnoName(-r.ret),
    durationNs: r.enterKtimeNs > 0n && r.ktimeNs >= r.enterKtimeNs ? r.ktimeNs - r.enterKtimeNs : 0n,
    acceptFlags: r.acceptFlags,
    acceptFlagNames: acceptFlagNames(r.acceptFlags),
    flags: recordFlagNames(r.flags),
    process: processOf(r),
    socket: {
      family: family(described ? r.family : 0),
      familyNumber: described ? r.family : 0,
      type: described ? sockTypeName(r.sockType) : '',
      protocol: described ? r.protocol : 0,
      local: endpointOf(described && inet ? formatIP(r.family, r.laddr) : '', described && inet ? r.lport : 0),
      peer: { ip: peerIp, port: resolved ? r.rport : 0 },
      v4Mapped: resolved && r.family === AF_INET6 && isV4Mapped(r.raddr),
      unixPath: described && r.family === AF_UNIX ? formatUnixPath(r.unixPath) : '',
      peerPid: r.peerPid,
      resolved,
    },
    listener: {
      fd: r.sockfd,
      backlog: r.backlog,
      maxBacklog: r.maxBacklog,
      resolved: !(r.flags & RecordFlags.LISTENER_UNRESOLVED),
    },
    userAddress: {
      present,
      addrlen: present ? r.userAddrlen : 0,
      familyNumber: user.family,
      ip: user.ip,
      port: user.port,
      fault,
      mismatch,
    },
    namespaces: namespacesOf(r),
    cgroup: cgroupOf(r),
    // Filled by src/enrich: attribution is a later stage of the path.
    container: undefined,
    pod: undefined,
    enrichment: undefined,
    kind: EventKind.EVENT_KIND_ACCEPT,
    // Filled by src/policy when accepts are folded, and by the policy stage.
    summary: undefined,
    policy: undefined,
    // Filled at the collector (cluster-wide peer index), never by the agent.
    peerAttribution: undefined,
    localAttribution: undefined,
    listenerInfo: undefined, // listener records only (src/listeners)
    findingInfo: undefined, // findings only (src/findings)
  };
}

export { AcceptEvent };
