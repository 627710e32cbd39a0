import { findingEvent } from '../../src/findings/record.js';
import { UNDECLARED_LISTENER_RULE } from '../../src/findings/undeclared.js';
import { AddressFamily, EventKind, ListenerOrigin, Source } from '../../src/gen/doorwatch/v1/event.js';
import type { DeclaredPortMeta } from '../../src/kube/types.js';
import { SAMPLE_POLICY, sampleEvent } from './sample-events.js';

/** A listener record of the sample pod (shop/web-7d9f-abc): `listen(2)` on 0.0.0.0:`port`. */
export function sampleListener(port = 9999, ip = '0.0.0.0', kind = EventKind.EVENT_KIND_LISTEN, inode = 4242n) {
  return sampleEvent({
    kind,
    source: kind === EventKind.EVENT_KIND_LISTEN ? Source.SOURCE_LISTEN : Source.SOURCE_PROC_SCAN,
    ret: 0,
    durationNs: 0n,
    acceptFlags: 0,
    acceptFlagNames: [],
    socket: {
      family: ip.includes(':') ? AddressFamily.ADDRESS_FAMILY_INET6 : AddressFamily.ADDRESS_FAMILY_INET,
      familyNumber: ip.includes(':') ? 10 : 2,
      local: { ip, port },
      peer: { ip: '', port: 0 },
    },
    userAddress: { present: false, addrlen: 0, familyNumber: 0, ip: '', port: 0 },
    listener: { fd: 7, backlog: 0, maxBacklog: 128, resolved: true },
    listenerInfo: {
      origin:
        kind === EventKind.EVENT_KIND_LISTEN
          ? ListenerOrigin.LISTENER_ORIGIN_KERNEL_LISTEN
          : ListenerOrigin.LISTENER_ORIGIN_RESCAN,
      inode,
      requestedBacklog: 128,
      firstSeenUnixNano: 1714564800000000000n,
    },
  });
}

export const SAMPLE_DECLARED: DeclaredPortMeta[] = [
  { containerPort: 443, hostPort: 0, protocol: 'TCP', container: 'web', name: 'https' },
  { containerPort: 9113, hostPort: 0, protocol: 'TCP', container: 'exporter', name: '' },
];

/** The finding the sample pod's listener on 9999 raises. */
export function sampleFinding(o: { hostNetwork?: boolean; declared?: DeclaredPortMeta[]; ip?: string } = {}) {
  const l = sampleListener(9999, o.ip ?? '0.0.0.0');
  if (o.hostNetwork && l.pod) l.pod.hostNetwork = true;
  l.eventId = 'boot-1/inst-1/43';
  const f = findingEvent(l, {
    ruleId: UNDECLARED_LISTENER_RULE,
    uid: `${UNDECLARED_LISTENER_RULE}/${l.pod?.uid}/TCP/9999`,
    port: 9999,
    protocol: 'TCP',
    declared: o.declared ?? SAMPLE_DECLARED,
    hostNetwork: o.hostNetwork ?? false,
    policy: SAMPLE_POLICY,
  });
  f.eventId = 'boot-1/inst-1/43';
  f.seq = 43n;
  return f;
}
