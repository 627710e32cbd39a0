import { type AcceptEvent, EnrichmentStatus } from '../gen/doorwatch/v1/event.js';
import type { PolicyEngine } from '../policy/engine.js';
import { DEFAULT_UNDECLARED_LISTENER_ACTION, undeclaredListenerAction } from '../policy/spec.js';
import type { Governing } from './undeclared.js';

/**
 * The policy that governs a listener's pod for findings: the same engine and
 * precedence as for its accepts (src/policy/engine.ts), its
 * `listeners.undeclared`. Without audit policies every pod gets the default
 * (`finding`); until the policies are loaded the answer waits ('not-ready'),
 * so a namespace that turned findings off is never flooded at agent start.
 */
export function governingFor(policies: { engine: PolicyEngine; ready(): boolean } | undefined): (ev: AcceptEvent) => Governing {
  if (!policies) return () => ({ action: DEFAULT_UNDECLARED_LISTENER_ACTION });
  const { engine } = policies;
  return (ev) => {
    if (!policies.ready()) return 'not-ready';
    const pod = ev.pod;
    // The detector only asks about records with a pod; its namespace's labels may still be unknown.
    const nsLabels = ev.enrichment?.status === EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE ? pod?.namespaceLabels : undefined;
    const p = engine.forPod({ namespace: pod?.namespace ?? '', labels: pod?.labels ?? {} }, nsLabels);
    return { action: undeclaredListenerAction(p.spec), ref: p.ref };
  };
}
