import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { parse } from 'yaml';
import { sharedSchemaDir } from './shared-dir.js';

/**
 * A validator for ECS documents that reads the upstream `ecs_flat.yml`
 * (../shared/schemas/ecs-8.11.0, elastic/ecs tag v8.11.0, byte for byte): no
 * field list is kept here.
 *
 * validateEcs(doc) returns every violation, one line each:
 *  - a field under an ECS field set (a top-level name ECS uses: event, process,
 *    source, …) that ECS does not define — custom fields belong in namespaces
 *    of their own (Doorwatch's `doorwatch.*`, Elastic's integration `kubernetes.*`);
 *  - a value of the wrong type for the field's ES type: keyword/wildcard/
 *    constant_keyword/text strings, long/integer/short/byte integers in range,
 *    float numbers, ip a valid address, date an RFC 3339 string or epoch
 *    millis, boolean, object/flattened objects (their content free), nested
 *    arrays of objects;
 *  - an array on a field without `normalize: [array]`, and a single value on a
 *    field with it;
 *  - a categorisation value (`event.kind`, `event.category`, `event.type`,
 *    `event.outcome`) not among the field's `allowed_values`, and an
 *    `event.type` that none of the event's categories expects;
 *  - `@timestamp` (ECS: required) missing, `ecs.version` not this schema's.
 */

export const ECS_DIR = sharedSchemaDir('ecs-8.11.0');

interface Field {
  type: string;
  normalize: string[];
  allowed?: Map<string, string[] | undefined>;
  required: boolean;
}

export interface EcsSchema {
  version: string;
  fields: Map<string, Field>;
  /** Top-level names ECS uses: a field under one must be ECS's. */
  fieldSets: Set<string>;
}

type Json = Record<string, unknown>;

export function loadEcs(dir = ECS_DIR): EcsSchema {
  const flat = parse(readFileSync(join(dir, 'ecs_flat.yml'), 'utf8'), { maxAliasCount: -1 }) as Record<string, Json>;
  const fields = new Map<string, Field>();
  const fieldSets = new Set<string>();
  for (const [name, f] of Object.entries(flat)) {
    const allowed = f.allowed_values as { name: string; expected_event_types?: string[] }[] | undefined;
    fields.set(name, {
      type: f.type as string,
      normalize: (f.normalize as string[]) ?? [],
      allowed: allowed && new Map(allowed.map((v) => [v.name, v.expected_event_types])),
      required: f.required === true,
    });
    fieldSets.add(name.split('.')[0]!);
  }
  const version = /ecs-(\d+\.\d+\.\d+)/.exec(dir)?.[1] ?? '?';
  return { version, fields, fieldSets };
}

const RANGES: Record<string, [bigint, bigint]> = {
  long: [-(2n ** 63n), 2n ** 63n - 1n],
  integer: [-(2n ** 31n), 2n ** 31n - 1n],
  short: [-32768n, 32767n],
  byte: [-128n, 127n],
};
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** Every violation of one document against the schema, as "field: problem" lines. */
export function validateEcs(schema: EcsSchema, doc: Json): string[] {
  const out: string[] = [];
  if (doc['@timestamp'] === undefined) out.push('@timestamp: required, missing');
  const ecs = doc.ecs as Json | undefined;
  if (ecs?.version !== schema.version) out.push(`ecs.version: ${String(ecs?.version)}, expected ${schema.version}`);
  walk(schema, doc, '', out);

  const ev = (doc.event ?? {}) as Json;
  const cats = Array.isArray(ev.category) ? (ev.category as string[]) : [];
  const types = Array.isArray(ev.type) ? (ev.type as string[]) : [];
  const byCat = schema.fields.get('event.category')?.allowed;
  for (const t of types) {
    if (cats.length && !cats.some((c) => byCat?.get(c)?.includes(t)))
      out.push(`event.type: ${t} is not an expected type of event.category ${cats.join(', ')}`);
  }
  return out;
}

function walk(schema: EcsSchema, v: Json, prefix: string, out: string[]): void {
  for (const [k, val] of Object.entries(v)) {
    const path = prefix ? `${prefix}.${k}` : k;
    const f = schema.fields.get(path);
    if (f) {
      checkField(path, f, val, out);
      continue;
    }
    if (!prefix && !schema.fieldSets.has(k)) continue; // a custom top-level namespace
    if (val !== null && typeof val === 'object' && !Array.isArray(val)) {
      walk(schema, val as Json, path, out);
      continue;
    }
    out.push(`${path}: not a field of ECS ${schema.version}`);
  }
}

function checkField(path: string, f: Field, val: unknown, out: string[]): void {
  const isArray = f.normalize.includes('array');
  if (f.type === 'nested') {
    if (!Array.isArray(val) || !val.every((x) => x && typeof x === 'object'))
      out.push(`${path}: expected an array of objects (nested)`);
    return;
  }
  if (Array.isArray(val)) {
    if (!isArray) out.push(`${path}: an array, but ECS does not normalize this field to one`);
    for (const x of val) checkScalar(path, f, x, out);
  } else {
    if (isArray) out.push(`${path}: ECS normalizes this field to an array (normalize: array)`);
    checkScalar(path, f, val, out);
  }
}

function checkScalar(path: string, f: Field, val: unknown, out: string[]): void {
  const bad = (what: string) => out.push(`${path}: expected ${what} (${f.type}), got ${JSON.stringify(val)}`);
  switch (f.type) {
    case 'keyword':
    case 'constant_keyword':
    case 'wildcard':
    case 'text':
    case 'match_only_text':
      if (typeof val !== 'string') bad('a string');
      else if (f.allowed && !f.allowed.has(val)) out.push(`${path}: ${JSON.stringify(val)} is not an allowed value`);
      return;
    case 'long':
    case 'integer':
    case 'short':
    case 'byte': {
      const [lo, hi] = RANGES[f.type]!;
      // A decimal string only where a JSON number cannot be exact (beyond 2^53): Elasticsearch parses it.
      const n =
        typeof val === 'number' && Number.isInteger(val)
          ? BigInt(val)
          : typeof val === 'string' && /^-?\d+$/.test(val) && BigInt(val) > 2n ** 53n
            ? BigInt(val)
            : undefined;
      if (n === undefined || n < lo || n > hi) bad('an integer in range');
      return;
    }
    case 'float':
    case 'scaled_float':
    case 'half_float':
    case 'double':
      if (typeof val !== 'number') bad('a number');
      return;
    case 'boolean':
      if (typeof val !== 'boolean') bad('a boolean');
      return;
    case 'ip':
      if (typeof val !== 'string' || isIP(val) === 0) bad('an IP address');
      return;
    case 'date':
      if (!(typeof val === 'string' && RFC3339.test(val) && !Number.isNaN(Date.parse(val))) && !Number.isInteger(val))
        bad('an RFC 3339 date or epoch milliseconds');
      return;
    case 'object':
    case 'flattened':
      if (val === null || typeof val !== 'object' || Array.isArray(val)) bad('an object');
      return;
    default:
      out.push(`${path}: type ${f.type} not checked by this validator`);
  }
}
