import type { Policy, PolicyEngine } from './engine.js';
import { Tier } from './engine.js';
import type { LabelSelector } from './selector.js';
import { type PolicySpec, type PortRange, undeclaredListenerAction } from './spec.js';

/** Policies in words, for `doorwatch policy check`. Pure. */

function selector(s: LabelSelector | undefined): string {
  const parts = [
    ...Object.entries(s?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`),
    ...(s?.matchExpressions ?? []).map((r) =>
      r.operator === 'Exists'
        ? r.key
        : r.operator === 'DoesNotExist'
          ? `!${r.key}`
          : `${r.key} ${r.operator.toLowerCase()} (${(r.values ?? []).join(', ')})`,
    ),
  ];
  return parts.join(', ');
}

const ranges = (r: PortRange[]) => r.map((x) => (x.lo === x.hi ? `${x.lo}` : `${x.lo}-${x.hi}`)).join(', ');

export function describeSettings(s: PolicySpec): string {
  if (s.mode === 'off') return 'mode off: nothing leaves the kernel (counted per policy)';
  const ports = s.ports.include.length
    ? `listening ports ${ranges(s.ports.include)}${s.ports.exclude.length ? ` except ${ranges(s.ports.exclude)}` : ''}`
    : s.ports.exclude.length
      ? `every listening port except ${ranges(s.ports.exclude)}`
      : 'every listening port';
  const cidrs = (l: { text: string }[]) => l.map((c) => c.text).join(', ');
  const peerRules = [
    s.peers.include.length ? `include ${cidrs(s.peers.include)}` : '',
    s.peers.exclude.length ? `exclude ${cidrs(s.peers.exclude)}` : '',
  ].filter(Boolean);
  const peers = peerRules.length
    ? `peers: ${peerRules.join(', ')} (the most specific prefix decides; unmatched peers are ` +
      `${s.peers.include.length ? 'excluded, as an include list is set' : 'included'})`
    : 'every peer';
  const mode = s.mode === 'events' ? 'mode events: one event per accept' : 'mode summary: counts per pod, port and peer';
  const rl = s.rateLimit
    ? `; above ${s.rateLimit.eventsPerSecond} accepts/s per pod (burst ${s.rateLimit.burst}) summaries instead`
    : '';
  return `${mode}${s.mode === 'events' ? rl : ''}; ${ports}; ${peers}; failed accepts ${s.failedAccepts ? 'reported' : 'not reported'}`;
}

/** `listeners.undeclared` in words (independent of mode, so said for every policy). */
export function describeListeners(s: PolicySpec): string {
  const given = s.listeners ? '' : ' (default)';
  return undeclaredListenerAction(s) === 'finding'
    ? `a listener on a port the pod does not declare is a finding${given}`
    : 'listeners on undeclared ports are not findings (listeners.undeclared: off)';
}

export function describeSelection(p: Policy): string {
  const s = p.spec;
  if (p.key === 'default') return 'every pod no other policy selects';
  if (p.key === 'host') return 'processes in no pod (the node itself)';
  if (p.key === 'unattributed') return 'accepts not yet attributed to a pod';
  const pods = s.podSelector && selector(s.podSelector) ? `pods with ${selector(s.podSelector)}` : 'every pod';
  let where: string;
  if (p.tier === Tier.NAMESPACE_RESOURCE) where = `in namespace ${p.ref.name.split('/')[0]}`;
  else {
    const names = s.namespaces?.length ? `namespaces ${s.namespaces.join(', ')}` : '';
    const labels = s.namespaceSelector ? `namespaces labelled ${selector(s.namespaceSelector)}` : '';
    where = names || labels ? `in ${[names, labels].filter(Boolean).join(' that are also ')}` : 'in every namespace';
  }
  return `${pods} ${where}`;
}

const TIER_NAMES: Record<number, string> = {
  [Tier.NAMESPACE_RESOURCE]: 'namespace policy',
  [Tier.CLUSTER_RESOURCE]: 'cluster policy (Doorwatch namespace)',
  [Tier.RULE]: 'configuration rule',
  [Tier.DEFAULT]: 'default',
};

export function explainPolicies(engine: PolicyEngine): string[] {
  return engine
    .all()
    .filter((p) => p.key !== 'unattributed')
    .map(
      (p) =>
        `${p.description} [${TIER_NAMES[p.tier]}]\n    selects: ${describeSelection(p)}\n    audits:  ${describeSettings(p.spec)}` +
        `\n    listens: ${p.key === 'host' ? 'not judged: processes in no pod have no declared ports' : describeListeners(p.spec)}`,
    );
}
