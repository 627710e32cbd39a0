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
  if (!r.success) {
    // Report the policies' own problems too, not only the first layer's: every problem at once.
    const problems = zodProblems(r.error, 'policy');
    const obj = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
    for (const key of ['default', 'host'] as const) {
      if (obj[key] === undefined || problems.some((p) => p.startsWith(`policy.${key}`))) continue;
      const p = parseSpec(obj[key], `policy.${key}`);
      if (!p.ok) problems.push(...p.problems);
    }
    if (Array.isArray(obj.rules))
      obj.rules.forEach((rule, i) => {
        if (!rule || typeof rule !== 'object' || problems.some((p) => p.startsWith(`policy.rules[${i}]`))) return;
        const { name: _name, ...spec } = rule as Record<string, unknown>;
        const p = parseSpec(spec, `policy.rules[${i}]`);
        if (!p.ok) problems.push(...p.problems);
      });
    throw new ConfigError(o.source, problems);
  }
  const c = r.data;
  const problems: string[] = [];
  const catchAll = (v: unknown, key: string): PolicySpec | undefined => {
    for (const k of SELECTOR_KEYS)
      if (v && typeof v === 'object' && k in v) problems.push(`policy.${key}.${k}: the ${key} policy selects no pods, remove it`);
    const p = parseSpec(v, `policy.${key}`);
    if (!p.ok) problems.push(...p.problems);
    return p.ok ? p.spec : undefined;
  };
  const def = catchAll(c.default, 'default');
  const host = catchAll(c.host, 'host');
  const names = new Set<string>();
  const rules: PolicyRule[] = [];
  c.rules.forEach((raw, i) => {
    const { name, ...spec } = raw;
    if (names.has(name)) problems.push(`policy.rules[${i}].name: "${name}" is used twice`);
    names.add(name);
    const p = parseSpec(spec, `policy.rules[${i}]`);
    if (!p.ok) problems.push(...p.problems);
    else rules.push({ name, spec: p.spec });
  });
  if (problems.length || !def || !host) throw new ConfigError(o.source, problems);
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
