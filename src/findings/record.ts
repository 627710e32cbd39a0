import { type AcceptEvent, type AuditPolicyRef, type DeclaredPort, EventKind } from '../gen/doorwatch/v1/event.js';
import type { DeclaredPortMeta } from '../kube/types.js';

/**
 * A finding is an AcceptEvent of kind FINDING (the precedent of summaries and
 * listener records): it travels the listener records' path — spool, collector,
 * every sink and format — and carries the listener record that raised it
 * (process, socket, container, pod, listener_info) with finding_info beside.
 */

export interface FindingFacts {
  ruleId: string;
  uid: string;
  port: number;
  /** As Kubernetes names it: 'TCP'. */
  protocol: string;
  declared: readonly DeclaredPortMeta[];
  hostNetwork: boolean;
  /** The policy that let the finding through; undefined without audit policies. */
  policy: AuditPolicyRef | undefined;
}

const portText = (d: DeclaredPortMeta): string =>
  `${d.containerPort}/${d.protocol}${d.hostPort && d.hostPort !== d.containerPort ? ` (hostPort ${d.hostPort})` : ''} (${d.container || '?'})`;

/** "pod shop/web listens on 0.0.0.0:9999/TCP, a port none of its containers declares". */
export function findingTitle(ev: AcceptEvent, f: Pick<FindingFacts, 'port' | 'protocol' | 'hostNetwork'>): string {
  const p = ev.pod;
  const ip = ev.socket?.local?.ip ?? '';
  const where = `${ip.includes(':') ? `[${ip}]` : ip}:${f.port}/${f.protocol}`;
  const net = f.hostNetwork ? ' (hostNetwork: on the node)' : '';
  return `pod ${p?.namespace}/${p?.name} listens on ${where}${net}, a port none of its containers declares`;
}

function reasonText(f: FindingFacts): string {
  const where = f.hostNetwork ? 'containerPort or hostPort' : 'containerPort';
  const declared = f.declared.length ? `declared: ${f.declared.map(portText).join(', ')}` : 'the pod declares no ports';
  return `${f.port}/${f.protocol} is no ${where} of spec.containers[].ports or of a native sidecar's (initContainers with restartPolicy Always); ${declared}`;
}

export function findingEvent(listener: AcceptEvent, f: FindingFacts): AcceptEvent {
  const declaredPorts: DeclaredPort[] = f.declared.map((d) => ({
    containerPort: d.containerPort,
    hostPort: d.hostPort,
    protocol: d.protocol,
    container: d.container,
    name: d.name,
  }));
  return {
    ...listener,
    // The sequencer's (agent).
    eventId: '',
    seq: 0n,
    kind: EventKind.EVENT_KIND_FINDING,
    policy: f.policy,
    findingInfo: {
      ruleId: f.ruleId,
      uid: f.uid,
      title: findingTitle(listener, f),
      reason: reasonText(f),
      port: f.port,
      protocol: f.protocol,
      declaredPorts,
    },
  };
}
