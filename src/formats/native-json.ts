import { type AcceptEvent, addressFamilyToJSON, enrichmentStatusToJSON, sourceToJSON } from '../gen/doorwatch/v1/event.js';

/**
 * The native JSON form of an event: the proto3 canonical JSON mapping
 * (lowerCamelCase names, 64-bit integers as strings, enums by name) with
 * every field present, defaults included (protojson's EmitUnpopulated: an
 * unset message is null), so a SIEM query for `success:false` or `port:0`
 * finds what it should.
 * AcceptEvent.fromJSON() reads it back losslessly (test/unit/native-json.test.ts).
 */

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

/** Enum-typed fields by path; everything else converts by its JS type. */
const ENUMS: Record<string, (v: number) => string> = {
  source: sourceToJSON as (v: number) => string,
  'socket.family': addressFamilyToJSON as (v: number) => string,
  'enrichment.status': enrichmentStatusToJSON as (v: number) => string,
};

function convert(v: unknown, path: string): Json {
  const e = ENUMS[path];
  if (e && typeof v === 'number') return e(v);
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map((x) => convert(x, path));
  if (v !== null && typeof v === 'object') {
    const out: { [k: string]: Json } = {};
    for (const [k, x] of Object.entries(v)) out[k] = x === undefined ? null : convert(x, path ? `${path}.${k}` : k);
    return out;
  }
  return v as Json;
}

export function eventToJson(ev: AcceptEvent): { [k: string]: Json } {
  return convert(ev, '') as { [k: string]: Json };
}

export function eventToJsonLine(ev: AcceptEvent): string {
  return JSON.stringify(eventToJson(ev));
}
