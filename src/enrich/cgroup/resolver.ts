import { type Dirent, readdirSync, readFileSync, statSync } from 'node:fs';
import type { Logger } from '../../log/logger.js';
import { silentLogger } from '../../log/logger.js';
import { type CgroupIdentity, parseCgroupPath } from './path.js';

/**
 * cgroup id -> cgroupfs path. A cgroup directory's inode number is its id
 * (kernfs), so walking the hierarchies and stat()ing every directory builds
 * the map; the kernel offers no reverse lookup we can use from Node.
 *
 * Ids are allocated per hierarchy (each kernfs root counts from 1), so the
 * same number can name different cgroups in v1 memory and v2: the cache is
 * keyed by (version, id), and callers say which hierarchy an id came from.
 */

export interface CgroupRoot {
  /** Mount point, as it appears in mountinfo: /sys/fs/cgroup (pure v2), /sys/fs/cgroup/unified, /sys/fs/cgroup/memory. */
  path: string;
  version: 1 | 2;
}

export interface ResolvedCgroup {
  id: bigint;
  /** Relative to its hierarchy's root, starting with '/'. */
  path: string;
  version: 1 | 2;
  identity: CgroupIdentity;
}

export interface CgroupResolverOptions {
  /** Default: discoverRoots() from /proc/self/mountinfo. */
  roots?: CgroupRoot[];
  /** Milliseconds; injectable so tests need no sleeping. */
  now?: () => number;
  /** A miss walks the hierarchies at most once per interval. Default 1000. */
  minRescanIntervalMs?: number;
  /** How long a vanished cgroup still resolves, for late events of a deleted container. Default 60000. */
  forgetAfterMs?: number;
  /** Directories deeper than this below a root are not learned. Default 12. */
  maxDepth?: number;
  /** Directories learned per root per walk. Default 200000. */
  maxEntries?: number;
  log?: Logger;
}

export interface CgroupResolverStats {
  /** Cgroups currently known, gone-but-not-forgotten ones included. */
  entries: number;
  /** Walks done (explicit rescan() calls and misses). */
  rescans: number;
  /** Misses that did not walk because the last walk was too recent. */
  rescansSkipped: number;
  /** resolve() calls that returned undefined. */
  misses: number;
  /** resolve() calls that returned a cgroup (from the cache or after a walk). */
  hits: number;
}

/**
 * The v2 hierarchy (cgroup2, any mount point) and the v1 hierarchy holding
 * the memory controller, from /proc/self/mountinfo. When a hierarchy is
 * mounted more than once, a mount of its root ('/' in field 4) is preferred:
 * a bind mount of a subtree would make every path relative to that subtree.
 */
export function discoverRoots(mountinfo?: string): CgroupRoot[] {
  let text = mountinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/mountinfo', 'utf8');
    } catch {
      return [];
    }
  }
  let v2: { path: string; whole: boolean } | undefined;
  let v1: { path: string; whole: boolean } | undefined;
  for (const line of text.split('\n')) {
    // <id> <parent> <maj:min> <root> <mount point> <opts> [optional fields...] - <fstype> <source> <super opts>
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const root = left[3];
    const mountPoint = left[4];
    const fstype = right[0];
    if (root === undefined || mountPoint === undefined) continue;
    const cand = { path: unescapeMountinfo(mountPoint), whole: unescapeMountinfo(root) === '/' };
    if (fstype === 'cgroup2') {
      if (!v2 || (!v2.whole && cand.whole)) v2 = cand;
    } else if (fstype === 'cgroup' && (right[2] ?? '').split(',').includes('memory')) {
      if (!v1 || (!v1.whole && cand.whole)) v1 = cand;
    }
  }
  const roots: CgroupRoot[] = [];
  if (v2) roots.push({ path: v2.path, version: 2 });
  if (v1) roots.push({ path: v1.path, version: 1 });
  return roots;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

interface Entry {
  value: Readonly<ResolvedCgroup>;
  /** Walk generation that last saw the directory. */
  seen: number;
  /** now() of the first walk that missed it; undefined while it exists. */
  goneSince: number | undefined;
}

export class CgroupResolver {
  readonly #roots: readonly CgroupRoot[];
  readonly #now: () => number;
  readonly #minRescanIntervalMs: number;
  readonly #forgetAfterMs: number;
  readonly #maxDepth: number;
  readonly #maxEntries: number;
  readonly #log: Logger;
  /** One map per hierarchy: ids repeat across hierarchies. */
  readonly #byVersion: Record<1 | 2, Map<bigint, Entry>> = { 1: new Map(), 2: new Map() };
  readonly #hasV1: boolean;
  #generation = 0;
  #lastRescanAt = Number.NEGATIVE_INFINITY;
  #warnedTruncated = false;
  #warnedUnreadable = false;
  #stats = { rescans: 0, rescansSkipped: 0, misses: 0, hits: 0 };

  constructor(opts: CgroupResolverOptions = {}) {
    this.#roots = opts.roots ?? discoverRoots();
    this.#now = opts.now ?? Date.now;
    this.#minRescanIntervalMs = opts.minRescanIntervalMs ?? 1000;
    this.#forgetAfterMs = opts.forgetAfterMs ?? 60_000;
    this.#maxDepth = opts.maxDepth ?? 12;
    this.#maxEntries = opts.maxEntries ?? 200_000;
    this.#log = opts.log ?? silentLogger;
    this.#hasV1 = this.#roots.some((r) => r.version === 1);
    if (this.#roots.length === 0)
      this.#log.warn('no cgroup hierarchy found in /proc/self/mountinfo: cgroup ids will not resolve');
  }

  get roots(): readonly CgroupRoot[] {
    return this.#roots;
  }

  /**
   * Cached lookup; on a miss, one walk of every root unless the last walk was
   * less than minRescanIntervalMs ago, then a second lookup. `version` says
   * which hierarchy the id came from: 2 for `cgroup.id`, 1 for `cgroup.v1Id`
   * (on a host without a v1 memory hierarchy, v1 ids are v2 ids and are looked
   * up there). Without it, v2 is tried first, then v1 — ambiguous on hybrid
   * hosts, where the same number can exist in both.
   */
  resolve(id: bigint, version?: 1 | 2): ResolvedCgroup | undefined {
    let found = this.#lookup(id, version);
    if (!found) {
      const now = this.#now();
      if (now - this.#lastRescanAt >= this.#minRescanIntervalMs) {
        this.rescan();
        found = this.#lookup(id, version);
      } else {
        this.#stats.rescansSkipped++;
      }
    }
    if (found) this.#stats.hits++;
    else this.#stats.misses++;
    return found;
  }

  /**
   * Walks every root: learns new cgroups, stamps the ones that disappeared,
   * drops those gone for forgetAfterMs or longer. Not rate-limited: the agent
   * may call it at start to warm the cache.
   */
  rescan(): void {
    const now = this.#now();
    this.#lastRescanAt = now;
    this.#stats.rescans++;
    const gen = ++this.#generation;
    const complete: Record<1 | 2, boolean> = { 1: true, 2: true };
    for (const root of this.#roots) {
      if (!this.#walk(root, gen)) complete[root.version] = false;
    }
    for (const version of [1, 2] as const) {
      const map = this.#byVersion[version];
      // After a truncated or failed walk, unseen is not gone: leave the stamps alone.
      if (!complete[version]) continue;
      for (const [id, e] of map) {
        if (e.seen === gen) {
          e.goneSince = undefined;
          continue;
        }
        e.goneSince ??= now;
        if (now - e.goneSince >= this.#forgetAfterMs) map.delete(id);
      }
    }
  }

  /** Cgroups that existed at the last walk, both hierarchies (for the policy map). */
  entries(): ResolvedCgroup[] {
    const out: ResolvedCgroup[] = [];
    for (const version of [1, 2] as const)
      for (const e of this.#byVersion[version].values()) if (e.goneSince === undefined) out.push(e.value);
    return out;
  }

  stats(): CgroupResolverStats {
    return { entries: this.#byVersion[1].size + this.#byVersion[2].size, ...this.#stats };
  }

  #lookup(id: bigint, version: 1 | 2 | undefined): ResolvedCgroup | undefined {
    if (version === 2 || (version === 1 && !this.#hasV1)) return this.#byVersion[2].get(id)?.value;
    if (version === 1) return this.#byVersion[1].get(id)?.value;
    return (this.#byVersion[2].get(id) ?? this.#byVersion[1].get(id))?.value;
  }

  /** Depth-first walk of one root; false when it could not be completed. */
  #walk(root: CgroupRoot, gen: number): boolean {
    const map = this.#byVersion[root.version];
    const stack: { rel: string; depth: number }[] = [{ rel: '/', depth: 0 }];
    let learned = 0;
    let complete = true;
    while (stack.length > 0) {
      const { rel, depth } = stack.pop()!;
      if (learned >= this.#maxEntries) {
        if (!this.#warnedTruncated) {
          this.#warnedTruncated = true;
          this.#log.warn(
            { root: root.path, maxEntries: this.#maxEntries },
            'cgroup walk stopped at maxEntries: some cgroups will not resolve (raise maxEntries)',
          );
        }
        return false;
      }
      const abs = rel === '/' ? root.path : root.path + rel;
      let ino: bigint;
      let children: Dirent[];
      try {
        ino = statSync(abs, { bigint: true }).ino;
        children = depth < this.#maxDepth ? readdirSync(abs, { withFileTypes: true }) : [];
      } catch (err) {
        // A cgroup removed between readdir and here is normal churn.
        const code = (err as NodeJS.ErrnoException).code;
        if ((code === 'ENOENT' || code === 'ENOTDIR') && rel !== '/') continue;
        // Anything else (EACCES, EIO) hides a subtree: the walk is incomplete. Warn once, then debug: walks repeat.
        const level = this.#warnedUnreadable ? 'debug' : 'warn';
        this.#warnedUnreadable = true;
        this.#log[level]({ err, dir: abs }, 'cannot read cgroup directory: cgroups below it will not resolve');
        complete = false;
        continue;
      }
      learned++;
      this.#learn(map, ino, rel, root.version, gen);
      for (const d of children) {
        // Dirent.isDirectory() is false for symlinks: nothing in cgroupfs is one, and not following them rules out loops.
        if (d.isDirectory()) stack.push({ rel: rel === '/' ? `/${d.name}` : `${rel}/${d.name}`, depth: depth + 1 });
      }
    }
    return complete;
  }

  #learn(map: Map<bigint, Entry>, id: bigint, path: string, version: 1 | 2, gen: number): void {
    const e = map.get(id);
    if (e && e.value.path === path) {
      e.seen = gen;
      e.goneSince = undefined;
      return;
    }
    // New, or the id now names another path (a renamed cgroup): parse once, here, never per event.
    const value = Object.freeze({ id, path, version, identity: Object.freeze(parseCgroupPath(path)) });
    map.set(id, { value, seen: gen, goneSince: undefined });
  }
}
