import { AuditMode, type AuditPolicyRef, PolicyOrigin } from '../gen/doorwatch/v1/event.js';
import type { PolicyConfig } from './config.js';
import type { PolicyResource } from './resource.js';
import { globToRegExp, matchesSelector, selectorSize } from './selector.js';
import type { AuditModeName, PolicySpec } from './spec.js';

/**
 * Which policy governs a pod. Precedence (docs/policy.md), first difference wins:
 *   1. tier: a policy in the pod's own namespace > a policy in the Doorwatch
 *      namespace selecting namespaces > a configuration rule > the cluster default;
 *   2. the more specific pod selector (more requirements);
 *   3. the more specific namespace match: own / exact name > label selector > glob > any;
 *   4. ties: `off` wins, then `events`, then `summary`;
 *   5. then the key, alphabetically, so every agent decides the same.
 * One policy wins whole: settings are never merged across policies. Pure.
 */

export interface Policy {
  /** Stable identity: "resource:ns/name", "rule:name", "default", "host", "unattributed". */
  key: string;
  /** Shared, frozen: stamped on every event this policy governs. */
  ref: Readonly<AuditPolicyRef>;
  spec: PolicySpec;
  tier: number;
  /** Where it came from, for explanations. */
  description: string;
}

export interface PodView {
  namespace: string;
  labels: Readonly<Record<string, string>>;
}

interface Candidate {
  policy: Policy;
  /** Namespace specificity of this candidate for a given namespace; -1 = does not select it. */
  nsMatch(namespace: string, nsLabels: Readonly<Record<string, string>>): number;
}

export const Tier = { DEFAULT: 0, RULE: 1, CLUSTER_RESOURCE: 2, NAMESPACE_RESOURCE: 3 } as const;
const NS = { ANY: 0, GLOB: 1, SELECTOR: 2, EXACT: 3 } as const;

const MODE: Record<AuditModeName, AuditMode> = {
  events: AuditMode.AUDIT_MODE_EVENTS,
  summary: AuditMode.AUDIT_MODE_SUMMARY,
  off: AuditMode.AUDIT_MODE_OFF,
};
const TIE: Record<AuditModeName, number> = { off: 2, events: 1, summary: 0 };

function policy(key: string, origin: PolicyOrigin, name: string, spec: PolicySpec, tier: number, description: string): Policy {
  return { key, ref: Object.freeze({ origin, name, mode: MODE[spec.mode] }), spec, tier, description };
}

/** Namespace selection by names/globs and/or a label selector (both must hold). */
function namespaceMatcher(spec: PolicySpec): Candidate['nsMatch'] {
  const exact = new Set((spec.namespaces ?? []).filter((n) => !n.includes('*')));
  const globs = (spec.namespaces ?? []).filter((n) => n.includes('*')).map(globToRegExp);
  const byName = spec.namespaces !== undefined;
  const sel = spec.namespaceSelector;
  return (ns, labels) => {
    let score: number = NS.ANY;
    if (byName) {
      if (exact.has(ns)) score = NS.EXACT;
      else if (globs.some((g) => g.test(ns))) score = NS.GLOB;
      else return -1;
    }
    if (sel) {
      if (!matchesSelector(sel, labels)) return -1;
      score = Math.max(score, NS.SELECTOR);
    }
    return score;
  };
}

export class PolicyEngine {
  readonly config: PolicyConfig;
  #version = 0;
  readonly #default: Policy;
  readonly #host: Policy;
  readonly #unattributed: Policy;
  readonly #rules: Candidate[];
  /** In the order given, for all(). */
  #resources: Policy[] = [];
  /** Own-namespace resources by namespace: the usual lookup is one map hit. */
  #byNamespace = new Map<string, Candidate[]>();
  #clusterResources: Candidate[] = [];
  /** The identities last given to setResources (none yet: an empty list is no change). */
  #resourceKeys = '[]';

  constructor(config: PolicyConfig) {
    this.config = config;
    this.#default = policy(
      'default',
      PolicyOrigin.POLICY_ORIGIN_CONFIG_DEFAULT,
      'default',
      config.default,
      Tier.DEFAULT,
      'cluster default (agent configuration)',
    );
    this.#host = policy(
      'host',
      PolicyOrigin.POLICY_ORIGIN_HOST,
      'host',
      config.host,
      Tier.DEFAULT,
      'host processes (agent configuration)',
    );
    // Not attributable yet (pod not in the API, namespace unknown): audited, never silently unaudited.
    this.#unattributed = policy(
      'unattributed',
      PolicyOrigin.POLICY_ORIGIN_UNATTRIBUTED,
      'unattributed',
      { mode: 'events', ports: { include: [], exclude: [] }, peers: { include: [], exclude: [] }, failedAccepts: true },
      Tier.DEFAULT,
      'accepts not yet attributed to a pod (fail open)',
    );
    this.#rules = config.rules.map((r) => ({
      policy: policy(
        `rule:${r.name}`,
        PolicyOrigin.POLICY_ORIGIN_CONFIG_RULE,
        r.name,
        r.spec,
        Tier.RULE,
        `configuration rule "${r.name}"`,
      ),
      nsMatch: namespaceMatcher(r.spec),
    }));
  }

  /** Bumped whenever the outcome of forPod may have changed. */
  get version(): number {
    return this.#version;
  }

  /** Replace the AcceptAuditPolicy objects; false when nothing changed. */
  setResources(list: readonly PolicyResource[]): boolean {
    const keys = JSON.stringify(list.map((r) => [r.namespace, r.name, r.uid, r.generation]));
    if (keys === this.#resourceKeys) return false;
    this.#resourceKeys = keys;
    this.#resources = [];
    this.#byNamespace = new Map();
    this.#clusterResources = [];
    for (const r of list) {
      const name = `${r.namespace}/${r.name}`;
      const p = policy(
        `resource:${name}`,
        PolicyOrigin.POLICY_ORIGIN_RESOURCE,
        name,
        r.spec,
        r.clusterScoped ? Tier.CLUSTER_RESOURCE : Tier.NAMESPACE_RESOURCE,
        `AcceptAuditPolicy ${name}`,
      );
      this.#resources.push(p);
      if (r.clusterScoped) {
        this.#clusterResources.push({ policy: p, nsMatch: namespaceMatcher(r.spec) });
        continue;
      }
      const own = r.namespace;
      const inNamespace = this.#byNamespace.get(own) ?? [];
      inNamespace.push({ policy: p, nsMatch: (ns) => (ns === own ? NS.EXACT : -1) });
      this.#byNamespace.set(own, inNamespace);
    }
    this.#version++;
    return true;
  }

  /** Every policy that can govern something, the fixed three first. */
  all(): Policy[] {
    return [this.#unattributed, this.#default, this.#host, ...this.#rules.map((c) => c.policy), ...this.#resources];
  }

  host(): Policy {
    return this.#host;
  }

  unattributed(): Policy {
    return this.#unattributed;
  }

  /** The policy governing a pod; `nsLabels` undefined = the namespace is not known yet. */
  forPod(pod: PodView, nsLabels: Readonly<Record<string, string>> | undefined): Policy {
    return this.explainPod(pod, nsLabels)[0]?.policy ?? this.#default;
  }

  /** Every policy selecting the pod, the winner first, with the rank that ordered them. */
  explainPod(
    pod: PodView,
    nsLabels: Readonly<Record<string, string>> | undefined,
  ): { policy: Policy; rank: [number, number, number, number] }[] {
    const out: { policy: Policy; rank: [number, number, number, number] }[] = [];
    const consider = (c: Candidate) => {
      // A namespace selector cannot be decided without the namespace's labels: attribution is incomplete.
      const ns = c.nsMatch(pod.namespace, nsLabels ?? {});
      if (ns < 0 || !matchesSelector(c.policy.spec.podSelector, pod.labels)) return;
      out.push({ policy: c.policy, rank: [c.policy.tier, selectorSize(c.policy.spec.podSelector), ns, TIE[c.policy.spec.mode]] });
    };
    for (const c of this.#byNamespace.get(pod.namespace) ?? []) consider(c);
    for (const c of this.#clusterResources) consider(c);
    for (const c of this.#rules) consider(c);
    out.push({ policy: this.#default, rank: [Tier.DEFAULT, 0, NS.ANY, TIE[this.#default.spec.mode]] });
    out.sort((a, b) => {
      for (let i = 0; i < 4; i++) if (a.rank[i] !== b.rank[i]) return b.rank[i]! - a.rank[i]!;
      return a.policy.key < b.policy.key ? -1 : a.policy.key > b.policy.key ? 1 : 0;
    });
    return out;
  }
}
