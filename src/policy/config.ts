import { z } from 'zod';
import { ConfigError, zodProblems } from '../config/errors.js';
import { parseDuration } from '../config/units.js';
import { type PolicySpec, parseSpec } from './spec.js';

/**
 * The `policy` key of the agent configuration (Helm values `agent.policy`):
 * the cluster default, the host policy, cluster-wide rules, and how the
 * AcceptAuditPolicy objects are used. Absent = no policies: every accept is
 * audited as an event, as before. Pure.
 */

export interface PolicyRule {
  name: string;
  spec: PolicySpec;
}

export interface PolicyConfig {
  /** Watch AcceptAuditPolicy objects (needs the CRD and RBAC). */
  resources: boolean;
  /** Report each object's validity in status.conditions (needs patch on acceptauditpolicies/status). */
  writeStatus: boolean;
  /** Namespace whose policies may select other namespaces: the agent's own. */
  adminNamespace: string;
  summaryIntervalMs: number;
  /** Distinct (pod, port, peer) keys per interval before peers are folded. */
  maxSummaryKeys: number;
  default: PolicySpec;
  host: PolicySpec;
  rules: PolicyRule[];
}

const duration = z.union([z.number().positive(), z.string()]).transform((v, ctx) => {
  try {
    return typeof v === 'number' ? v * 1000 : parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (e as Error).message });
    return z.NEVER;
  }
});

const schema = z
  .object({
    resources: z.boolean().default(true),
    writeStatus: z.boolean().default(true),
    adminNamespace: z.string().min(1).optional(),
    summaryInterval: duration.default('10s'),
    maxSummaryKeys: z.number().int().min(16).max(1_000_000).default(10_000),
    default: z.unknown().default({ mode: 'events' }),
    host: z.unknown().default({ mode: 'events' }),
    rules: z.array(z.object({ name: z.string().min(1) }).passthrough()).default([]),
  })
  .strict();

/** Selectors make no sense on the catch-all policies. */
const SELECTOR_KEYS = ['podSelector', 'namespaces', 'namespaceSelector'] as const;

export function parsePolicyConfig(raw: unknown, o: { source: string; defaultAdminNamespace: string }): PolicyConfig {
  const r = schema.safeParse(raw ?? {});
  // Every problem at once: the policies inside are checked even when the
  // layer around them is not well formed.
  const problems = r.success ? [] : zodProblems(r.error, 'policy');
  const obj = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  const catchAll = (v: unknown, key: string): PolicySpec | undefined => {
    for (const k of SELECTOR_KEYS)
      if (v && typeof v === 'object' && k in v) problems.push(`policy.${key}.${k}: the ${key} policy selects no pods, remove it`);
    const p = parseSpec(v, `policy.${key}`);
    if (!p.ok) problems.push(...p.problems);
    return p.ok ? p.spec : undefined;
  };
  const def = catchAll(obj.default ?? { mode: 'events' }, 'default');
  const host = catchAll(obj.host ?? { mode: 'events' }, 'host');
  const names = new Set<string>();
  const rules: PolicyRule[] = [];
  (Array.isArray(obj.rules) ? obj.rules : []).forEach((rule: unknown, i) => {
    if (!rule || typeof rule !== 'object' || Array.isArray(rule)) return; // the schema said so
    const { name, ...spec } = rule as Record<string, unknown>;
    if (typeof name === 'string' && name) {
      if (names.has(name)) problems.push(`policy.rules[${i}].name: "${name}" is used twice`);
      names.add(name);
    }
    const p = parseSpec(spec, `policy.rules[${i}]`);
    if (!p.ok) problems.push(...p.problems);
    else if (typeof name === 'string' && name) rules.push({ name, spec: p.spec });
  });
  if (problems.length || !r.success || !def || !host) throw new ConfigError(o.source, problems);
  const c = r.data;
  return {
    resources: c.resources,
    writeStatus: c.writeStatus,
    adminNamespace: c.adminNamespace ?? o.defaultAdminNamespace,
    summaryIntervalMs: c.summaryInterval,
    maxSummaryKeys: c.maxSummaryKeys,
    default: def,
    host,
    rules,
  };
}
