import { readFileSync } from 'node:fs';

/**
 * Fallback for an unusable cgroup id: the process's own view. Racy for
 * short-lived processes (the caller marks the result): by the time an event
 * is read the pid may have exited, or been reused by another process.
 *
 * Preference, for /proc/<pid>/cgroup lines `<hierarchy>:<controllers>:<path>`:
 * the v2 line `0::<path>` when it is not `/` (pure v2, or hybrid with runtimes
 * that populate the unified hierarchy); else the v1 line holding `memory`
 * (hybrid hosts where v2 stays at `/` for everyone, like a bare cgroup-v1
 * Docker host); else the v2 line.
 */
export function readProcCgroupPath(pid: number, procRoot = '/proc'): { path: string; version: 1 | 2 } | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8');
  } catch {
    // ENOENT/ESRCH: gone. Anything else (EACCES) is no better for a per-event fallback.
    return undefined;
  }
  let v2: string | undefined;
  let memory: string | undefined;
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const hierarchy = line.slice(0, a);
    const controllers = line.slice(a + 1, b);
    // The path may itself contain ':'; v2 marks a removed cgroup with ' (deleted)'.
    const path = line.slice(b + 1).replace(/ \(deleted\)$/, '');
    if (hierarchy === '0' && controllers === '') v2 ??= path;
    else if (controllers.split(',').includes('memory')) memory ??= path;
  }
  if (v2 !== undefined && v2 !== '/') return { path: v2, version: 2 };
  if (memory !== undefined) return { path: memory, version: 1 };
  if (v2 !== undefined) return { path: v2, version: 2 };
  return undefined;
}
