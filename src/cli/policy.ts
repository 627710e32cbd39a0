import { PolicyEngine } from '../policy/engine.js';
import { describeSettings, explainPolicies } from '../policy/explain.js';
import { loadPolicyFile } from '../policy/file.js';

/** `doorwatch policy check FILE`: validate offline and say what each policy selects. */

export interface PolicyCheckOptions {
  file: string;
  adminNamespace?: string;
  /** Optional example pod: which policy would govern it, and why. */
  example?: { namespace: string; labels: Record<string, string>; namespaceLabels: Record<string, string> };
}

export interface PolicyCheckResult {
  ok: boolean;
  text: string;
}

export function runPolicyCheck(o: PolicyCheckOptions): PolicyCheckResult {
  const f = loadPolicyFile(o.file, o.adminNamespace); // ConfigError: the caller prints it, exit 2
  const engine = new PolicyEngine(f.config);
  engine.setResources(f.resources);
  const lines: string[] = [];
  for (const r of f.rejected) {
    lines.push(`INVALID AcceptAuditPolicy ${r.namespace}/${r.name}: would be rejected (status Accepted=False, InvalidSpec):`);
    for (const p of r.problems) lines.push(`    ${p}`);
  }
  const valid = f.resources.length + f.config.rules.length;
  lines.push(
    `${f.path}: ${valid} polic${valid === 1 ? 'y' : 'ies'} valid, ${f.rejected.length} invalid` +
      `${f.hasConfig ? '' : ' (no configuration in the file: default and host policies are "events")'}`,
  );
  lines.push(...explainPolicies(engine).map((s) => `  ${s}`));
  lines.push(
    'precedence: namespace policy > cluster policy (Doorwatch namespace) > configuration rule > default; then the more ' +
      'specific pod selector, then namespace (name > label selector > glob); ties: off > events > summary',
  );
  if (o.example) {
    const ex = o.example;
    const ranked = engine.explainPod({ namespace: ex.namespace, labels: ex.labels }, ex.namespaceLabels);
    const [win, ...rest] = ranked;
    lines.push(
      `example pod in namespace ${ex.namespace} with labels {${Object.entries(ex.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}}:`,
    );
    lines.push(`  governed by ${win!.policy.description}: ${describeSettings(win!.policy.spec)}`);
    for (const r of rest) lines.push(`  also selected, lower precedence: ${r.policy.description}`);
  }
  return { ok: f.rejected.length === 0, text: `${lines.join('\n')}\n` };
}
