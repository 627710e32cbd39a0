import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Leak checks that look at one process's BPF objects only: other tests and
 * a concurrent `doorwatch trace` load the same dw_* programs and maps, so
 * counting every dw_* object of the system fails whenever one runs.
 */

export interface BpfIds {
  progs: number[];
  maps: number[];
}

/** The programs and maps a process holds open (its descriptors' prog_id / map_id in /proc/PID/fdinfo). */
export function bpfObjectsOf(pid: number | 'self'): BpfIds {
  const progs = new Set<number>();
  const maps = new Set<number>();
  const dir = `/proc/${pid}/fdinfo`;
  for (const fd of readdirSync(dir)) {
    let info: string;
    try {
      info = readFileSync(`${dir}/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    // Program and link descriptors name a program; map descriptors a map.
    const prog = /^prog_id:\s*(\d+)/m.exec(info);
    if (prog) progs.add(Number(prog[1]));
    const map = /^map_id:\s*(\d+)/m.exec(info);
    if (map) maps.add(Number(map[1]));
  }
  return { progs: [...progs], maps: [...maps] };
}

/** Of `ids`, those the kernel still has loaded (bpftool). */
export function stillLoaded(ids: BpfIds): BpfIds {
  const loaded = (what: 'prog' | 'map') =>
    new Set(
      (JSON.parse(execFileSync('bpftool', [what, 'show', '--json'], { encoding: 'utf8' })) as { id: number }[]).map((x) => x.id),
    );
  const progs = loaded('prog');
  const maps = loaded('map');
  return { progs: ids.progs.filter((id) => progs.has(id)), maps: ids.maps.filter((id) => maps.has(id)) };
}

/** None of `ids` is loaded any more. */
export function noneLoaded(ids: BpfIds): boolean {
  const left = stillLoaded(ids);
  return !left.progs.length && !left.maps.length;
}
