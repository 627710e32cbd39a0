import { type PolicySpec, parseSpec } from './spec.js';

/**
 * AcceptAuditPolicy objects (helm/doorwatch/crds). A policy governs its own
 * namespace; only policies in the agent's own (admin) namespace may select
 * other namespaces by name, glob or label — a namespaced object never reaches
 * into namespaces its author may not control. Pure.
 */

export const POLICY_API = {
  group: 'doorwatch.io',
  version: 'v1alpha1',
  plural: 'acceptauditpolicies',
  kind: 'AcceptAuditPolicy',
} as const;
export const POLICY_API_VERSION = `${POLICY_API.group}/${POLICY_API.version}`;

export interface PolicyResource {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  spec: PolicySpec;
  /** In the admin namespace and selecting namespaces explicitly. */
  clusterScoped: boolean;
}

export interface RejectedResource {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  problems: string[];
  /**
   * The generation still enforced in its place: a valid policy edited into an
   * invalid one keeps its last valid version (src/policy/watch.ts).
   */
  enforcedGeneration?: number;
}

export type ParsedResource = { ok: true; policy: PolicyResource } | { ok: false; rejected: RejectedResource };

interface ObjectLike {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; generation?: number };
  spec?: unknown;
}

export function parseResource(obj: ObjectLike, adminNamespace: string): ParsedResource {
  const md = obj.metadata ?? {};
  const id = {
    namespace: md.namespace ?? '',
    name: md.name ?? '',
    uid: md.uid ?? '',
    generation: md.generation ?? 0,
  };
  const problems: string[] = [];
  if (obj.apiVersion !== undefined && obj.apiVersion !== POLICY_API_VERSION)
    problems.push(`apiVersion: "${obj.apiVersion}" is not ${POLICY_API_VERSION}`);
  if (obj.kind !== undefined && obj.kind !== POLICY_API.kind) problems.push(`kind: "${obj.kind}" is not ${POLICY_API.kind}`);
  if (!id.name) problems.push('metadata.name: required');
  if (!id.namespace) problems.push('metadata.namespace: required (AcceptAuditPolicy is namespaced)');
  if (obj.spec === undefined) problems.push('spec: required');
  const parsed = obj.spec === undefined ? undefined : parseSpec(obj.spec, 'spec');
  if (parsed && !parsed.ok) problems.push(...parsed.problems);
  const spec = parsed?.ok ? parsed.spec : undefined;
  // Judged on the spec as written, so an invalid spec does not hide this problem (every problem at once).
  const raw = typeof obj.spec === 'object' && obj.spec !== null ? (obj.spec as Record<string, unknown>) : {};
  const selectsNamespaces = raw.namespaces !== undefined || raw.namespaceSelector !== undefined;
  if (selectsNamespaces && id.namespace && id.namespace !== adminNamespace)
    problems.push(
      `spec.namespaces/namespaceSelector: only policies in the Doorwatch namespace "${adminNamespace}" may select ` +
        `other namespaces; this one governs namespace "${id.namespace}" — remove them, or move the policy`,
    );
  if (problems.length || !spec) return { ok: false, rejected: { ...id, problems } };
  return { ok: true, policy: { ...id, spec, clusterScoped: selectsNamespaces } };
}
