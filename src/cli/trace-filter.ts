import { type AcceptEvent, AddressFamily } from '../gen/doorwatch/v1/event.js';

/** `doorwatch trace` display filters (userspace; the kernel still counts all). Pure. */

export interface TraceFilter {
  pids?: number[];
  comms?: string[];
  ports?: number[];
  families?: AddressFamily[];
  /** Pod namespaces; host processes have none and never match. */
  namespaces?: string[];
}

export const FAMILY_NAMES: Record<string, AddressFamily> = {
  inet: AddressFamily.ADDRESS_FAMILY_INET,
  ipv4: AddressFamily.ADDRESS_FAMILY_INET,
  inet6: AddressFamily.ADDRESS_FAMILY_INET6,
  ipv6: AddressFamily.ADDRESS_FAMILY_INET6,
  unix: AddressFamily.ADDRESS_FAMILY_UNIX,
};

export function compileFilter(f: TraceFilter): (ev: AcceptEvent) => boolean {
  const pids = f.pids?.length ? new Set(f.pids) : undefined;
  const comms = f.comms?.length ? new Set(f.comms) : undefined;
  const ports = f.ports?.length ? new Set(f.ports) : undefined;
  const families = f.families?.length ? new Set(f.families) : undefined;
  const namespaces = f.namespaces?.length ? new Set(f.namespaces) : undefined;
  return (ev) => {
    if (pids && !pids.has(ev.process?.pid ?? -1)) return false;
    if (comms && !comms.has(ev.process?.comm ?? '')) return false;
    if (ports && !ports.has(ev.socket?.local?.port ?? -1) && !ports.has(ev.socket?.peer?.port ?? -1)) return false;
    if (families && !families.has(ev.socket?.family ?? AddressFamily.ADDRESS_FAMILY_UNSPECIFIED)) return false;
    if (namespaces && !namespaces.has(ev.pod?.namespace ?? '')) return false;
    return true;
  };
}
