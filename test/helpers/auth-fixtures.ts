import { pino } from 'pino';
import type { Logger } from '../../src/log/logger.js';
import type { KubeApiServer } from './kube-api-server.js';
import { makePod } from './kube-api-server.js';

/**
 * Shared set-up of the trust-boundary tests: a logger whose lines the test
 * can read, and a cluster on the Kubernetes API stand-in with two agent pods
 * (node-a, node-b) of the agents' ServiceAccount and a subscriber allowed
 * `payments` only.
 */

export interface CapturedLog {
  log: Logger;
  lines: Record<string, unknown>[];
  /** Lines whose msg matches. */
  grep(re: RegExp): Record<string, unknown>[];
}

export function captureLogger(level: 'debug' | 'info' | 'warn' = 'info'): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines, grep: (re) => lines.filter((l) => re.test(String(l.msg))) };
}

export const AGENT_SA = { namespace: 'doorwatch', name: 'doorwatch-agent' } as const;
export const AUDIENCE = 'doorwatch-collector';
export const VIEWER = { group: 'doorwatch.io', resources: ['acceptevents'], verbs: ['get', 'list', 'watch'] } as const;

/** Agent pods on node-a and node-b; a `payments` watcher (RoleBinding) and a cluster-wide auditor. */
export function seedCluster(api: KubeApiServer): { paymentsToken: string; auditorToken: string; nobodyToken: string } {
  for (const node of ['node-a', 'node-b']) {
    api.addPod(
      makePod({ name: `agent-${node}`, namespace: AGENT_SA.namespace, nodeName: node, serviceAccountName: AGENT_SA.name }),
    );
  }
  api.addPod(makePod({ name: 'other-0', namespace: AGENT_SA.namespace, nodeName: 'node-a', serviceAccountName: 'other' }));
  const paymentsToken = api.auth.addUserToken('alice', ['team-payments']);
  const auditorToken = api.auth.addUserToken('auditor');
  const nobodyToken = api.auth.addUserToken('mallory');
  api.auth.grant({
    group: 'team-payments',
    namespace: 'payments',
    group_: VIEWER.group,
    resources: [...VIEWER.resources],
    verbs: [...VIEWER.verbs],
  });
  api.auth.grant({ user: 'auditor', group_: VIEWER.group, resources: [...VIEWER.resources], verbs: [...VIEWER.verbs] });
  return { paymentsToken, auditorToken, nobodyToken };
}

/** The projected token the kubelet would give the agent pod on `node`. */
export function agentToken(api: KubeApiServer, node: string, o: { expiresIn?: number; audience?: string } = {}): string {
  return api.auth.issueServiceAccountToken({
    namespace: AGENT_SA.namespace,
    serviceAccount: AGENT_SA.name,
    audiences: [o.audience ?? AUDIENCE],
    pod: { name: `agent-${node}` },
    ...(o.expiresIn !== undefined ? { expiresIn: o.expiresIn } : {}),
  });
}

/** The collector's `auth` config for the stand-in. */
export function kubernetesAuth(kubeconfig: string): Record<string, unknown> {
  return {
    mode: 'kubernetes',
    kubernetes: { kubeconfig, audience: AUDIENCE, agentServiceAccount: { ...AGENT_SA } },
  };
}
