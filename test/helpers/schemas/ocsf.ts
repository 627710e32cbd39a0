import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sharedSchemaDir } from './shared-dir.js';

/**
 * A validator for OCSF records that reads the upstream schema files
 * (../shared/schemas/ocsf-1.7.0, byte-for-byte copies of ocsf/ocsf-schema at
 * tag 1.7.0; its README says which) and compiles them the way the OCSF schema
 * compiler does: a class or object takes its parent's attributes (`extends`,
 * child entries merged over the parent's, enums merged), `$include`d profile
 * attributes tagged with their profile, the Linux extension's patch of
 * `process` (tagged `linux/linux_users`), every `timestamp_t` attribute's
 * `_dt` sibling (profile `datetime`), and each attribute's type, enum and
 * array-ness from the dictionaries. No field list is kept here.
 *
 * validateOcsf(record) returns every violation, one line each:
 *  - an attribute the class or object does not define (except under
 *    `unmapped` and other `object`/`json_t` values, which are free-form);
 *  - an attribute that only a profile defines, when `metadata.profiles` does
 *    not name that profile; a profile named that the schema does not have;
 *  - a value of the wrong type: integer_t a 32-bit signed integer, long_t and
 *    timestamp_t 64-bit, port_t 0-65535, string types with their regex and
 *    max_len, booleans, objects, arrays where `is_array`;
 *  - an enum id the attribute's enum does not list, and a sibling caption
 *    that disagrees with it (except for 99 Other, whose caption is free);
 *  - a missing `required` attribute; a broken at_least_one / just_one constraint;
 *  - an attribute the schema marks `@deprecated`;
 *  - class_uid / category_uid / type_uid and their captions not agreeing.
 */

export const OCSF_DIR = sharedSchemaDir('ocsf-1.7.0');

/**
 * Detection Finding (2004), its parent and the objects only it reaches, copied byte for byte from the same
 * upstream commit (its README says which): ../shared/schemas copies only the classes Doorwatch emitted before
 * findings, and is read-only here. Read on top of OCSF_DIR.
 */
export const OCSF_FINDINGS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'ocsf-1.7.0-findings');

type Json = Record<string, unknown>;

interface AttrDef {
  name: string;
  type: string;
  isArray: boolean;
  requirement: string;
  enum?: Record<string, { caption?: string }>;
  sibling?: string;
  /** The profile that brought the attribute in; undefined = always allowed. */
  profile?: string;
  /** `@deprecated`: "since <version>: <message>". */
  deprecated?: string;
}

interface Compiled {
  attributes: Map<string, AttrDef>;
  constraints: { at_least_one?: string[]; just_one?: string[] };
}

export interface OcsfSchema {
  version: string;
  classes: Map<number, { name: string; caption: string; categoryUid: number; categoryCaption: string; compiled: Compiled }>;
  objects: Map<string, Compiled>;
  profiles: Set<string>;
  types: Record<string, Json>;
}

const readJson = (p: string): Json => JSON.parse(readFileSync(p, 'utf8')) as Json;

function deepMerge(a: Json | undefined, b: Json | undefined): Json {
  const out: Json = { ...(a ?? {}) };
  for (const [k, v] of Object.entries(b ?? {})) {
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? deepMerge(prev as Json, v as Json)
        : v;
  }
  return out;
}

export function loadOcsf(dir = OCSF_DIR, overlays: string[] = [OCSF_FINDINGS_DIR]): OcsfSchema {
  const dict = readJson(join(dir, 'dictionary.json'));
  const linuxDict = readJson(join(dir, 'extensions/linux/dictionary.json'));
  const dictAttrs = deepMerge(dict.attributes as Json, linuxDict.attributes as Json) as Record<string, Json>;
  const types = (dict.types as Json).attributes as Record<string, Json>;
  const version = (readJson(join(dir, 'version.json')) as { version: string }).version;

  // Profiles: core ones by file name, the extension's as "<extension>/<name>".
  const profileFiles = new Map<string, { name: string; json: Json }>();
  const profiles = new Set<string>();
  for (const f of readdirSync(join(dir, 'profiles'))) {
    const json = readJson(join(dir, 'profiles', f));
    profileFiles.set(`profiles/${f}`, { name: json.name as string, json });
    profiles.add(json.name as string);
  }
  const linuxProfiles = new Map<string, { name: string; json: Json }>();
  for (const f of readdirSync(join(dir, 'extensions/linux/profiles'))) {
    const json = readJson(join(dir, 'extensions/linux/profiles', f));
    linuxProfiles.set(`profiles/${f}`, { name: `linux/${json.name as string}`, json });
    profiles.add(`linux/${json.name as string}`);
  }

  /** A class's or object's own attribute entries, with included profile attributes tagged. */
  function ownEntries(json: Json, profileTable: Map<string, { name: string; json: Json }>): Record<string, Json> {
    const attrs = { ...((json.attributes as Record<string, Json>) ?? {}) };
    const inc = attrs.$include as unknown as string[] | undefined;
    delete attrs.$include;
    const out: Record<string, Json> = {};
    for (const path of inc ?? []) {
      const p = profileTable.get(path) ?? profileFiles.get(path);
      if (!p) throw new Error(`OCSF schema: $include ${path} not found`);
      for (const [k, v] of Object.entries(p.json.attributes as Record<string, Json>)) out[k] = { ...v, _profile: p.name };
    }
    for (const [k, v] of Object.entries(attrs)) out[k] = deepMerge(out[k], v);
    return out;
  }

  function compile(entries: Record<string, Json>, constraints: Json | undefined): Compiled {
    const attributes = new Map<string, AttrDef>();
    for (const [name, entry] of Object.entries(entries)) {
      const d = dictAttrs[name];
      if (!d) throw new Error(`OCSF schema: attribute ${name} is not in the dictionary`);
      const merged = deepMerge(d, entry);
      attributes.set(name, {
        name,
        type: merged.type as string,
        isArray: merged.is_array === true,
        requirement: (merged.requirement as string) ?? 'optional',
        enum: merged.enum as AttrDef['enum'],
        sibling: merged.sibling as string | undefined,
        profile: merged._profile as string | undefined,
        deprecated: deprecation(merged['@deprecated']),
      });
    }
    // The datetime profile: every timestamp_t attribute has a datetime_t `_dt` sibling.
    for (const a of [...attributes.values()]) {
      if (a.type === 'timestamp_t' && !attributes.has(`${a.name}_dt`)) {
        attributes.set(`${a.name}_dt`, {
          name: `${a.name}_dt`,
          type: 'datetime_t',
          isArray: a.isArray,
          requirement: 'optional',
          profile: 'datetime',
        });
      }
    }
    return { attributes, constraints: (constraints ?? {}) as Compiled['constraints'] };
  }

  // Objects: resolve `extends` chains, then the Linux extension's patch of `process`.
  const objectJson = new Map<string, Json>();
  for (const d of [dir, ...overlays]) {
    for (const f of readdirSync(join(d, 'objects'))) {
      const json = readJson(join(d, 'objects', f));
      objectJson.set(json.name as string, json);
    }
  }
  const linuxPatches = readdirSync(join(dir, 'extensions/linux/objects')).map((f) =>
    readJson(join(dir, 'extensions/linux/objects', f)),
  );
  const objectEntries = new Map<string, Record<string, Json>>();
  const entriesOf = (name: string): Record<string, Json> => {
    const hit = objectEntries.get(name);
    if (hit) return hit;
    const json = objectJson.get(name);
    if (!json) throw new Error(`OCSF schema: object ${name} not copied`);
    let entries = ownEntries(json, profileFiles);
    if (json.extends) {
      const parent = entriesOf(json.extends as string);
      const merged: Record<string, Json> = { ...parent };
      for (const [k, v] of Object.entries(entries)) merged[k] = deepMerge(parent[k], v);
      entries = merged;
    }
    for (const patch of linuxPatches) {
      if (patch.extends === name && (patch.name === undefined || patch.name === name)) {
        for (const [k, v] of Object.entries(ownEntries(patch, linuxProfiles))) entries[k] = deepMerge(entries[k], v);
      }
    }
    objectEntries.set(name, entries);
    return entries;
  };
  const constraintsOf = (name: string): Json | undefined => {
    const json = objectJson.get(name);
    return (json?.constraints as Json | undefined) ?? (json?.extends ? constraintsOf(json.extends as string) : undefined);
  };
  const objects = new Map<string, Compiled>();
  for (const name of objectJson.keys()) objects.set(name, compile(entriesOf(name), constraintsOf(name)));

  // Classes: every events/**.json, resolved through extends.
  const classJson = new Map<string, Json>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.json')) {
        const json = readJson(join(d, e.name));
        classJson.set(json.name as string, json);
      }
    }
  };
  for (const d of [dir, ...overlays]) walk(join(d, 'events'));
  const classEntries = (name: string): Record<string, Json> => {
    const json = classJson.get(name);
    if (!json) throw new Error(`OCSF schema: class ${name} not copied`);
    const own = ownEntries(json, profileFiles);
    if (!json.extends) return own;
    const parent = classEntries(json.extends as string);
    const merged: Record<string, Json> = { ...parent };
    for (const [k, v] of Object.entries(own)) merged[k] = deepMerge(parent[k], v);
    return merged;
  };
  const categoryOf = (json: Json): string | undefined =>
    (json.category as string | undefined) ?? (json.extends ? categoryOf(classJson.get(json.extends as string)!) : undefined);
  const categories = (readJson(join(dir, 'categories.json')).attributes ?? {}) as Record<
    string,
    { uid: number; caption: string }
  >;
  const classes: OcsfSchema['classes'] = new Map();
  for (const [name, json] of classJson) {
    if (json.uid === undefined) continue; // abstract: base_event, network, application
    const cat = categories[categoryOf(json)!]!;
    const uid = cat.uid * 1000 + (json.uid as number);
    const compiled = compile(classEntries(name), json.constraints as Json | undefined);
    // As the compiler does: the class's own uid, category and type_uids are the enums of these three.
    const set = (attr: string, e: AttrDef['enum']) => {
      const a = compiled.attributes.get(attr);
      if (a) a.enum = e;
    };
    set('class_uid', { [uid]: { caption: json.caption as string } });
    set('category_uid', { [cat.uid]: { caption: cat.caption } });
    const activities = compiled.attributes.get('activity_id')?.enum ?? {};
    set(
      'type_uid',
      Object.fromEntries(
        Object.entries(activities).map(([id, e]) => [
          uid * 100 + Number(id),
          { caption: `${json.caption as string}: ${e.caption}` },
        ]),
      ),
    );
    classes.set(uid, { name, caption: json.caption as string, categoryUid: cat.uid, categoryCaption: cat.caption, compiled });
  }
  return { version, classes, objects, profiles, types };
}

function deprecation(d: unknown): string | undefined {
  if (!d || typeof d !== 'object') return undefined;
  const { since, message } = d as { since?: string; message?: string };
  return `since ${since ?? '?'}: ${(message ?? '').replace(/<[^>]+>/g, '')}`;
}

const INT32 = [-(2 ** 31), 2 ** 31 - 1] as const;
const INT64 = [-(2n ** 63n), 2n ** 63n - 1n] as const;

/** Every violation of one record against the schema, as "path: problem" lines. */
export function validateOcsf(schema: OcsfSchema, record: Json): string[] {
  const out: string[] = [];
  const cls = schema.classes.get(record.class_uid as number);
  if (!cls) return [`class_uid: ${String(record.class_uid)} is not a class of OCSF ${schema.version} (or not copied)`];
  const meta = record.metadata as Json | undefined;
  const declared = new Set(Array.isArray(meta?.profiles) ? (meta.profiles as string[]) : []);
  for (const p of declared) if (!schema.profiles.has(p)) out.push(`metadata.profiles: unknown profile ${JSON.stringify(p)}`);
  if (meta?.version !== schema.version) out.push(`metadata.version: ${String(meta?.version)}, expected ${schema.version}`);

  // Classification attributes agree with each other and with the class.
  if (record.category_uid !== cls.categoryUid)
    out.push(`category_uid: ${String(record.category_uid)}, class says ${cls.categoryUid}`);
  if (record.class_name !== undefined && record.class_name !== cls.caption)
    out.push(`class_name: ${String(record.class_name)}, expected ${cls.caption}`);
  if (record.category_name !== undefined && record.category_name !== cls.categoryCaption)
    out.push(`category_name: ${String(record.category_name)}, expected ${cls.categoryCaption}`);
  const activity = cls.compiled.attributes.get('activity_id')?.enum?.[String(record.activity_id)]?.caption;
  const classUid = record.class_uid as number;
  if (record.type_uid !== classUid * 100 + (record.activity_id as number))
    out.push(`type_uid: ${String(record.type_uid)}, expected class_uid * 100 + activity_id`);
  if (record.type_name !== undefined && activity && record.type_name !== `${cls.caption}: ${activity}`)
    out.push(`type_name: ${String(record.type_name)}, expected "${cls.caption}: ${activity}"`);

  checkObject(schema, cls.compiled, record, '', declared, out);
  return out;
}

function checkObject(schema: OcsfSchema, def: Compiled, v: Json, path: string, profiles: Set<string>, out: string[]): void {
  const at = (k: string) => (path ? `${path}.${k}` : k);
  for (const [k, val] of Object.entries(v)) {
    const a = def.attributes.get(k);
    if (!a) {
      out.push(`${at(k)}: not an attribute of this ${path ? 'object' : 'class'} in OCSF ${schema.version}`);
      continue;
    }
    if (a.deprecated) out.push(`${at(k)}: deprecated ${a.deprecated}`);
    if (a.profile && !profiles.has(a.profile))
      out.push(`${at(k)}: defined by profile ${a.profile}, which metadata.profiles does not declare`);
    if (a.isArray) {
      if (!Array.isArray(val)) out.push(`${at(k)}: expected an array`);
      else for (const [i, x] of val.entries()) checkValue(schema, a, x, `${at(k)}[${i}]`, profiles, out);
    } else if (Array.isArray(val)) out.push(`${at(k)}: an array where one value is expected`);
    else checkValue(schema, a, val, at(k), profiles, out);
    // Enum ids and their sibling captions.
    if (a.enum && typeof val === 'number') {
      const e = a.enum[String(val)];
      if (!e) out.push(`${at(k)}: ${val} is not one of the enum's ids (${Object.keys(a.enum).join(', ')})`);
      else if (a.sibling && v[a.sibling] !== undefined && val !== 99 && v[a.sibling] !== e.caption)
        out.push(
          `${path ? `${path}.` : ''}${a.sibling}: ${JSON.stringify(v[a.sibling])} disagrees with ${k} ${val} (${e.caption})`,
        );
    }
  }
  for (const a of def.attributes.values()) {
    if (a.requirement === 'required' && (!a.profile || profiles.has(a.profile)) && v[a.name] === undefined)
      out.push(`${at(a.name)}: required, missing`);
  }
  const { at_least_one: one, just_one: just } = def.constraints;
  if (one && !one.some((k) => v[k] !== undefined)) out.push(`${path || '(record)'}: needs at least one of ${one.join(', ')}`);
  if (just && just.filter((k) => v[k] !== undefined).length !== 1)
    out.push(`${path || '(record)'}: needs exactly one of ${just.join(', ')}`);
}

function checkValue(schema: OcsfSchema, a: AttrDef, val: unknown, path: string, profiles: Set<string>, out: string[]): void {
  const obj = schema.objects.get(a.type);
  if (obj || a.type === 'object') {
    if (val === null || typeof val !== 'object' || Array.isArray(val)) {
      out.push(`${path}: expected an object (${a.type})`);
      return;
    }
    if (a.type === 'object') return; // free-form (unmapped)
    checkObject(schema, obj!, val as Json, path, profiles, out);
    return;
  }
  checkScalar(schema, a.type, val, path, out);
}

/** A value against a dictionary type, following its `type` chain (port_t -> integer_t) with every constraint on the way. */
function checkScalar(schema: OcsfSchema, type: string, val: unknown, path: string, out: string[]): void {
  const t = schema.types[type];
  if (!t) {
    out.push(`${path}: unknown type ${type}`);
    return;
  }
  switch (type) {
    case 'json_t':
      return;
    case 'boolean_t':
      if (typeof val !== 'boolean') out.push(`${path}: expected a boolean, got ${JSON.stringify(val)}`);
      return;
    case 'float_t':
      if (typeof val !== 'number') out.push(`${path}: expected a number, got ${JSON.stringify(val)}`);
      return;
    case 'integer_t':
      if (typeof val !== 'number' || !Number.isInteger(val) || val < INT32[0] || val > INT32[1])
        out.push(`${path}: expected integer_t (32-bit signed), got ${JSON.stringify(val)}`);
      return;
    case 'long_t':
      if (typeof val !== 'number' || !Number.isInteger(val) || BigInt(val) < INT64[0] || BigInt(val) > INT64[1])
        out.push(`${path}: expected long_t (64-bit signed integer), got ${JSON.stringify(val)}`);
      return;
    case 'string_t':
      if (typeof val !== 'string') out.push(`${path}: expected a string, got ${JSON.stringify(val)}`);
      return;
  }
  const base = t.type as string | undefined;
  if (base) checkScalar(schema, base, val, path, out);
  if (typeof val === 'string') {
    if (typeof t.max_len === 'number' && val.length > t.max_len) out.push(`${path}: longer than ${type}'s max_len ${t.max_len}`);
    if (typeof t.regex === 'string' && !new RegExp(t.regex).test(val))
      out.push(`${path}: ${JSON.stringify(val)} does not match ${type}`);
  }
  if (typeof val === 'number' && Array.isArray(t.range)) {
    const [lo, hi] = t.range as [number, number];
    if (val < lo || val > hi) out.push(`${path}: ${val} outside ${type}'s range ${lo}-${hi}`);
  }
}
