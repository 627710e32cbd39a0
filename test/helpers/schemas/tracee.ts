import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * What Tracee v0.24.1's own source says an event's JSON is, parsed from the
 * byte-for-byte excerpts in ./tracee-v0.24.1 (its README cites the commit and
 * line ranges): trace.Event's fields with their Go types and json tags, the
 * accept/accept4 definitions' arguments, their ids per architecture, the keys
 * readSockaddrFromBuff puts in an `addr` map per family, and the AF_* names.
 * validateTracee(line) checks one JSON line against it.
 */

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'tracee-v0.24.1');
const read = (f: string) => readFileSync(join(DIR, f), 'utf8');

export interface GoField {
  field: string;
  goType: string;
  /** The json name; "-" = never written. */
  json: string;
  omitempty: boolean;
  /** `,string`: an integer written as a JSON string. */
  asString: boolean;
}

export interface TraceeSource {
  structs: Map<string, GoField[]>;
  events: Map<string, { name: string; args: { name: string; type: string }[] }>;
  ids: Record<'amd64' | 'arm64', Record<string, number>>;
  /** sa_family number -> the keys its case adds besides sa_family. */
  sockaddrKeys: Map<number, string[]>;
  afNames: string[];
}

export function loadTraceeSource(): TraceeSource {
  const structs = new Map<string, GoField[]>();
  const src = read('trace.go.txt');
  for (const m of src.matchAll(/^type (\w+) struct \{\n([\s\S]*?)^\}/gm)) {
    const fields: GoField[] = [];
    for (const line of m[2]!.split('\n')) {
      const f = /^\t(\w+)\s+(\S+)(?:\s+`json:"([^"]*)"`)?/.exec(line);
      if (!f) continue;
      const [name, ...opts] = (f[3] ?? f[1]!).split(',');
      fields.push({
        field: f[1]!,
        goType: f[2]!,
        json: name!,
        omitempty: opts.includes('omitempty'),
        asString: opts.includes('string'),
      });
    }
    // An embedded struct (`ArgMeta` in Argument) has its fields flattened into the parent's JSON.
    const embedded = /^\t(\w+)\n/m.exec(m[2]!);
    structs.set(
      m[1]!,
      embedded ? [{ field: embedded[1]!, goType: embedded[1]!, json: '', omitempty: false, asString: false }, ...fields] : fields,
    );
  }

  const events = new Map<string, { name: string; args: { name: string; type: string }[] }>();
  for (const f of ['core-accept.go.txt', 'core-accept4.go.txt']) {
    const text = read(f);
    const name = /name:\s+"(\w+)"/.exec(text)![1]!;
    const args = [...text.matchAll(/ArgMeta: trace\.ArgMeta\{Type: "([^"]+)", Name: "([^"]+)"\}/g)].map((a) => ({
      type: a[1]!,
      name: a[2]!,
    }));
    events.set(name, { name, args });
  }

  const idsOf = (f: string) =>
    Object.fromEntries([...read(f).matchAll(/^\t(\w+)\s+ID = (\d+)/gm)].map((m) => [m[1]!.toLowerCase(), Number(m[2])]));
  const ids = { amd64: idsOf('core_amd64.go.txt'), arm64: idsOf('core_arm64.go.txt') };

  const sockaddrKeys = new Map<number, string[]>();
  const reader = read('eventsreader-sockaddr.go.txt');
  for (const c of reader.matchAll(/case (\d+): \/\/ AF_\w+\n([\s\S]*?)(?=\n\tcase |\n\t\}\n)/g)) {
    sockaddrKeys.set(
      Number(c[1]),
      [...c[2]!.matchAll(/res\["(\w+)"\]/g)].map((k) => k[1]!),
    );
  }

  const parsers = read('data_parsers-af.go.txt');
  const byConst = new Map(
    [...parsers.matchAll(/^\t(AF_\w+)\s+= SystemFunctionArgument\{rawValue: \d+, stringValue: "(\w+)"\}/gm)].map((m) => [
      m[1]!,
      m[2]!,
    ]),
  );
  const list = /var socketDomainValues = \[\]SystemFunctionArgument\{([\s\S]*?)\n\}/.exec(parsers)![1]!;
  const afNames = [...list.matchAll(/(AF_\w+),/g)].map((m) => byConst.get(m[1]!)!);
  return { structs, events, ids, sockaddrKeys, afNames };
}

const INT64 = /^-?\d+$/;

/** Every way `line` departs from trace.Event as Go's encoding/json writes it. */
export function validateTracee(src: TraceeSource, line: string): string[] {
  const out: string[] = [];
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(line) as Record<string, unknown>;
  } catch (err) {
    return [`not JSON: ${(err as Error).message}`];
  }
  checkStruct(src, 'Event', v, '', out);
  return out;
}

function checkStruct(src: TraceeSource, name: string, v: Record<string, unknown>, path: string, out: string[]): void {
  const fields = src.structs.get(name)!;
  const flat: GoField[] = [];
  for (const f of fields) {
    if (f.json === '' && src.structs.has(f.goType)) flat.push(...src.structs.get(f.goType)!);
    else flat.push(f);
  }
  const written = flat.filter((f) => f.json !== '-');
  // Keys in struct order, none other; a field may be absent only when omitempty (and not a struct value: Go
  // writes those whatever omitempty says) or a nil pointer.
  const keys = Object.keys(v);
  const order = written.map((f) => f.json).filter((k) => keys.includes(k));
  if (keys.join() !== order.join())
    out.push(`${path || '(event)'}: keys ${keys.join(',')} are not in trace.${name}'s order ${order.join(',')}`);
  for (const k of keys) if (!written.some((f) => f.json === k)) out.push(`${path}${k}: not a field of trace.${name}`);
  for (const f of written) {
    const p = `${path}${f.json}`;
    const val = v[f.json];
    if (val === undefined) {
      const structValue = src.structs.has(f.goType);
      if (!(f.omitempty && !structValue) && !f.goType.startsWith('*')) out.push(`${p}: missing (not omitempty)`);
      continue;
    }
    checkValue(src, f, val, p, out);
  }
}

function checkValue(src: TraceeSource, f: GoField, val: unknown, p: string, out: string[]): void {
  const t = f.goType.replace(/^\*/, '');
  const bad = (what: string) =>
    out.push(`${p}: expected ${what} (Go ${f.goType}${f.asString ? ',string' : ''}), got ${JSON.stringify(val)}`);
  if (f.asString) {
    if (typeof val !== 'string' || !INT64.test(val)) bad('an integer in a string');
    return;
  }
  switch (t) {
    case 'int':
    case 'int32':
    case 'int64':
      if (!Number.isInteger(val)) bad('an integer');
      return;
    case 'uint':
    case 'uint16':
    case 'uint32':
    case 'uint64':
      if (!Number.isInteger(val) || (val as number) < 0) bad('an unsigned integer');
      if (t === 'uint32' && (val as number) > 0xffffffff) bad('a uint32');
      return;
    case 'string':
      if (typeof val !== 'string') bad('a string');
      return;
    case 'bool':
      if (typeof val !== 'boolean') bad('a boolean');
      return;
    case '[]string':
      if (val !== null && !(Array.isArray(val) && val.every((x) => typeof x === 'string'))) bad('an array of strings or null');
      return;
    case '[]uint64':
      if (val !== null && !(Array.isArray(val) && val.every((x) => Number.isInteger(x) && x >= 0)))
        bad('an array of uint64 or null');
      return;
    case '[]Argument':
      if (!Array.isArray(val)) {
        bad('an array of arguments');
        return;
      }
      for (const [i, a] of val.entries()) {
        if (!a || typeof a !== 'object') bad('an argument object');
        else checkStruct(src, 'Argument', a as Record<string, unknown>, `${p}[${i}].`, out);
      }
      return;
    case 'interface{}':
      return; // an argument's value: checked against the event definition by the caller
  }
  if (src.structs.has(t)) {
    if (!val || typeof val !== 'object' || Array.isArray(val)) bad('an object');
    else checkStruct(src, t, val as Record<string, unknown>, `${p}.`, out);
    return;
  }
  out.push(`${p}: Go type ${f.goType} not known to this validator`);
}
