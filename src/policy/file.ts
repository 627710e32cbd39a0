import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../config/errors.js';
import { type PolicyConfig, parsePolicyConfig } from './config.js';
import { POLICY_API, type PolicyResource, parseResource, type RejectedResource } from './resource.js';

/**
 * A policy file for `doorwatch policy check` and `doorwatch trace --policy`:
 * YAML documents, each an AcceptAuditPolicy object (as for kubectl apply) or a
 * policy configuration — an agent config file's `policy:` key, or that key's
 * content (default / host / rules). At most one configuration.
 */

export interface PolicyFile {
  path: string;
  config: PolicyConfig;
  /** True when the file held a configuration (else the defaults: everything events). */
  hasConfig: boolean;
  resources: PolicyResource[];
  rejected: RejectedResource[];
}

export const DEFAULT_ADMIN_NAMESPACE = 'doorwatch';

export function loadPolicyFile(path: string, adminNamespace?: string): PolicyFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, [`cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  const docs = parseAllDocuments(text);
  const problems: string[] = [];
  const objects: { obj: Record<string, unknown>; index: number }[] = [];
  let rawConfig: unknown;
  let configs = 0;
  docs.forEach((d, index) => {
    if (d.errors.length) {
      problems.push(...d.errors.map((e) => `document ${index + 1}: ${e.message.split('\n')[0]}`));
      return;
    }
    const v = d.toJS() as unknown;
    if (v === null || v === undefined) return;
    if (typeof v !== 'object' || Array.isArray(v)) {
      problems.push(`document ${index + 1}: expected a mapping (an AcceptAuditPolicy or a policy configuration)`);
      return;
    }
    const o = v as Record<string, unknown>;
    if (o.kind === POLICY_API.kind) objects.push({ obj: o, index });
    else if (o.kind !== undefined) problems.push(`document ${index + 1}: kind "${String(o.kind)}" is not ${POLICY_API.kind}`);
    else {
      configs++;
      rawConfig = 'policy' in o ? o.policy : o;
    }
  });
  if (configs > 1) problems.push(`${configs} policy configurations: a file holds at most one`);
  let config: PolicyConfig | undefined;
  try {
    config = parsePolicyConfig(rawConfig, { source: path, defaultAdminNamespace: adminNamespace ?? DEFAULT_ADMIN_NAMESPACE });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push(...e.problems);
  }
  if (problems.length || !config) throw new ConfigError(path, problems);
  const resources: PolicyResource[] = [];
  const rejected: RejectedResource[] = [];
  for (const { obj } of objects) {
    const r = parseResource(obj, config.adminNamespace);
    if (r.ok) resources.push(r.policy);
    else rejected.push(r.rejected);
  }
  return { path, config, hasConfig: configs > 0, resources, rejected };
}
