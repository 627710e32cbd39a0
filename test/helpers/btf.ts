import { execFileSync } from 'node:child_process';

/** Struct layouts read from BTF with bpftool (`btf dump ... format raw`). */

export interface BtfStruct {
  size: number;
  /** member name -> { byte offset, type id } */
  members: Map<string, { offset: number; typeId: number }>;
}

export function dumpBtf(file: string): string {
  return execFileSync('bpftool', ['btf', 'dump', 'file', file, 'format', 'raw'], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
}

export function parseStructs(raw: string, names: string[]): Map<string, BtfStruct> {
  const out = new Map<string, BtfStruct>();
  const lines = raw.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^\[\d+\] STRUCT '([^']+)' size=(\d+) vlen=(\d+)/.exec(lines[i]!);
    if (!m || !names.includes(m[1]!) || out.has(m[1]!)) continue;
    const members = new Map<string, { offset: number; typeId: number }>();
    for (let j = 1; j <= Number(m[3]); j++) {
      const mm = /^\s+'([^']*)' type_id=(\d+) bits_offset=(\d+)/.exec(lines[i + j]!);
      if (mm) members.set(mm[1]!, { typeId: Number(mm[2]), offset: Number(mm[3]) / 8 });
    }
    out.set(m[1]!, { size: Number(m[2]), members });
  }
  return out;
}

/** `#define NAME value` pairs of a C header (numbers and shifts only). */
export function parseDefines(header: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of header.matchAll(/^#define\s+(\w+)\s+\(?\s*(\d+)u?\s*(?:<<\s*(\d+))?\s*\)?/gm)) {
    const v = Number(m[2]) * 2 ** Number(m[3] ?? 0);
    out.set(m[1]!, v);
  }
  return out;
}
