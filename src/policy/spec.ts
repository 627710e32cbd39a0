import { z } from 'zod';
import { zodProblems } from '../config/errors.js';
import { type Cidr, parseCidr } from './cidr.js';
import { type LabelSelector, selectorProblems } from './selector.js';

/**
 * One audit policy's settings: the `spec` of an AcceptAuditPolicy object and
 * each rule of the agent configuration share this schema (the CRD's OpenAPI
 * schema in helm/doorwatch/crds says the same). Parsing normalises ports to
 * ranges and peers to CIDRs and reports every problem at once, so a policy is
 * applied whole or not at all. Pure.
 */

export const AUDIT_MODES = ['events', 'summary', 'off'] as const;
export type AuditModeName = (typeof AUDIT_MODES)[number];

/** `listeners.undeclared`: a pod listening on a port its spec does not declare is a finding, or not (src/findings). */
export const UNDECLARED_LISTENER_ACTIONS = ['finding', 'off'] as const;
export type UndeclaredListenerAction = (typeof UNDECLARED_LISTENER_ACTIONS)[number];
/** What a policy without `listeners` means. */
export const DEFAULT_UNDECLARED_LISTENER_ACTION: UndeclaredListenerAction = 'finding';

/** What one kernel policy slot can hold (bpf/doorwatch.h struct dw_policy, the peer trie's budget). */
export const KERNEL_LIMITS = { portRanges: 8, peerCidrs: 32 } as const;

export interface PortRange {
  lo: number;
  hi: number;
}

export interface PolicySpec {
  mode: AuditModeName;
  podSelector?: LabelSelector;
  /** Namespace names or `ci-*` globs. */
  namespaces?: string[];
  namespaceSelector?: LabelSelector;
  ports: { include: PortRange[]; exclude: PortRange[] };
  peers: { include: Cidr[]; exclude: Cidr[] };
  failedAccepts: boolean;
  rateLimit?: { eventsPerSecond: number; burst: number };
  /**
   * The listener inventory's findings for the pods this policy governs; independent of `mode`
   * (which is about accepts). Absent = DEFAULT_UNDECLARED_LISTENER_ACTION.
   */
  listeners?: { undeclared: UndeclaredListenerAction };
}

const selector = z
  .object({
    matchLabels: z.record(z.string(), z.string()).optional(),
    matchExpressions: z
      .array(
        z
          .object({
            key: z.string().min(1),
            operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
            values: z.array(z.string()).optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

const port = z.union([z.number().int(), z.string()]);
const list = <T extends z.ZodTypeAny>(t: T) =>
  z.object({ include: z.array(t).optional(), exclude: z.array(t).optional() }).strict();

export const specSchema = z
  .object({
    mode: z.enum(AUDIT_MODES),
    podSelector: selector.optional(),
    namespaces: z
      .array(
        z
          .string()
          .regex(/^[a-z0-9*]([-a-z0-9*]*[a-z0-9*])?$/, 'must be a namespace name or a glob like ci-*')
          .max(63),
      )
      .optional(),
    namespaceSelector: selector.optional(),
    ports: list(port).optional(),
    peers: list(z.string()).optional(),
    failedAccepts: z.boolean().optional(),
    rateLimit: z
      .object({
        eventsPerSecond: z.number().int().min(1).max(1_000_000),
        burst: z.number().int().min(1).max(10_000_000).optional(),
      })
      .strict()
      .optional(),
    listeners: z
      .object({ undeclared: z.enum(UNDECLARED_LISTENER_ACTIONS).optional() })
      .strict()
      .optional(),
  })
  .strict();

export function parsePortRange(v: number | string): PortRange {
  const text = String(v).trim();
  const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(text);
  const lo = m ? Number(m[1]) : Number.NaN;
  const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
  if (!m || lo > 65535 || hi > 65535) throw new Error(`"${text}" is not a port or range (examples: 443, 8000-8999)`);
  if (lo > hi) throw new Error(`"${text}": range start is above its end`);
  return { lo, hi };
}

export type ParsedSpec = { ok: true; spec: PolicySpec } | { ok: false; problems: string[] };

type SpecInput = z.infer<typeof specSchema>;

/**
 * The fields of `raw` that pass their own schema, each on its own: when one
 * field is malformed (`mode: sometimes`), the others are still checked beyond
 * the schema (CIDRs, ranges, limits), so every problem is reported at once.
 */
function wellFormedFields(raw: unknown): Partial<SpecInput> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return {};
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(specSchema.shape)) {
    const v = (raw as Record<string, unknown>)[key];
    if (v === undefined) continue;
    const r = (schema as z.ZodTypeAny).safeParse(v);
    if (r.success) out[key] = r.data;
  }
  return out as Partial<SpecInput>;
}

/** `path` prefixes every problem ("spec", "policy.rules[2]"). */
export function parseSpec(raw: unknown, path: string): ParsedSpec {
  const r = specSchema.safeParse(raw);
  const s: Partial<SpecInput> = r.success ? r.data : wellFormedFields(raw);
  const problems = [
    ...(r.success ? [] : zodProblems(r.error, path)),
    ...selectorProblems(s.podSelector, `${path}.podSelector`),
    ...selectorProblems(s.namespaceSelector, `${path}.namespaceSelector`),
  ];
  const each = <I, O>(items: I[] | undefined, key: string, limit: number, parse: (v: I) => O): O[] => {
    const out: O[] = [];
    (items ?? []).forEach((v, i) => {
      try {
        out.push(parse(v));
      } catch (e) {
        problems.push(`${path}.${key}[${i}]: ${(e as Error).message}`);
      }
    });
    if ((items?.length ?? 0) > limit)
      problems.push(`${path}.${key}: at most ${limit} entries (the kernel filter's per-policy budget), got ${items!.length}`);
    return out;
  };
  const ports = {
    include: each(s.ports?.include, 'ports.include', KERNEL_LIMITS.portRanges, parsePortRange),
    exclude: each(s.ports?.exclude, 'ports.exclude', KERNEL_LIMITS.portRanges, parsePortRange),
  };
  const peers = {
    include: each(s.peers?.include, 'peers.include', KERNEL_LIMITS.peerCidrs, parseCidr),
    exclude: each(s.peers?.exclude, 'peers.exclude', KERNEL_LIMITS.peerCidrs, parseCidr),
  };
  // The same prefix both included and excluded has no most-specific answer.
  for (const inc of peers.include) {
    const clash = peers.exclude.find((exc) => exc.prefix === inc.prefix && exc.addr.every((b, i) => b === inc.addr[i]));
    if (clash) problems.push(`${path}.peers: ${inc.text} is both included and excluded (${clash.text})`);
  }
  if (s.mode === 'off' && (s.rateLimit || s.ports || s.peers))
    problems.push(`${path}: mode "off" audits nothing, so ports, peers and rateLimit would be ignored; remove them`);
  if (problems.length || !r.success) return { ok: false, problems };
  return {
    ok: true,
    spec: {
      mode: r.data.mode,
      podSelector: s.podSelector,
      namespaces: s.namespaces,
      namespaceSelector: s.namespaceSelector,
      ports,
      peers,
      failedAccepts: s.failedAccepts ?? true,
      rateLimit: s.rateLimit
        ? { eventsPerSecond: s.rateLimit.eventsPerSecond, burst: s.rateLimit.burst ?? s.rateLimit.eventsPerSecond }
        : undefined,
      // Only when given: a policy without it reads as the default (undeclaredListenerAction).
      ...(s.listeners ? { listeners: { undeclared: s.listeners.undeclared ?? DEFAULT_UNDECLARED_LISTENER_ACTION } } : {}),
    },
  };
}

/** What a policy does with a governed pod's undeclared listeners. */
export const undeclaredListenerAction = (spec: PolicySpec): UndeclaredListenerAction =>
  spec.listeners?.undeclared ?? DEFAULT_UNDECLARED_LISTENER_ACTION;
