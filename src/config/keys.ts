import { z } from 'zod';

/** Key paths and "did you mean" for config problems: one implementation for every config file. */

/** ["sinks", 1, "port"] -> "sinks[1].port" (after `prefix`); "(root)" when empty. */
export function keyPath(prefix: string, path: readonly (string | number)[]): string {
  const p = path.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${k}` : String(k)), prefix);
  return p || '(root)';
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

/** ` (did you mean "labels"?)` when one known key is close enough, else ''. */
export function suggestion(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const dist = editDistance(key.toLowerCase(), k.toLowerCase());
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

/** The keys a strict object at `path` of `schema` accepts (through optionals, defaults, effects, arrays). */
export function knownKeysAt(schema: z.ZodTypeAny, path: readonly (string | number)[]): string[] {
  let s: z.ZodTypeAny | undefined = schema;
  for (const k of [...path, undefined]) {
    while (s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodEffects) {
      s = s instanceof z.ZodEffects ? s.innerType() : (s as z.ZodDefault<z.ZodTypeAny>)._def.innerType;
    }
    if (k === undefined) break;
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, z.ZodTypeAny>)[String(k)];
    else if (s instanceof z.ZodArray) s = s.element;
    else return [];
  }
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
