/**
 * Kubernetes label selectors (matchLabels + matchExpressions, ANDed, as in
 * metav1.LabelSelector) and namespace name globs. Pure.
 */

export interface LabelRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelRequirement[];
}

/** Requirements a selector imposes: its specificity. An empty selector selects everything. */
export function selectorSize(s: LabelSelector | undefined): number {
  if (!s) return 0;
  return Object.keys(s.matchLabels ?? {}).length + (s.matchExpressions?.length ?? 0);
}

export function matchesSelector(s: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!s) return true;
  for (const [k, v] of Object.entries(s.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of s.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    const v = labels[r.key];
    switch (r.operator) {
      case 'In':
        if (!has || !(r.values ?? []).includes(v!)) return false;
        break;
      case 'NotIn':
        if (has && (r.values ?? []).includes(v!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** Problems with a selector that the schema cannot express (values with Exists, none with In). */
export function selectorProblems(s: LabelSelector | undefined, path: string): string[] {
  const out: string[] = [];
  (s?.matchExpressions ?? []).forEach((r, i) => {
    const n = r.values?.length ?? 0;
    if ((r.operator === 'In' || r.operator === 'NotIn') && n === 0)
      out.push(`${path}.matchExpressions[${i}]: operator ${r.operator} needs at least one value`);
    if ((r.operator === 'Exists' || r.operator === 'DoesNotExist') && n > 0)
      out.push(`${path}.matchExpressions[${i}]: operator ${r.operator} takes no values`);
  });
  return out;
}

/** `ci-*` style globs: `*` matches any run of characters; everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}
