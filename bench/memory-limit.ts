import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { discoverRoots } from '../src/enrich/cgroup/resolver.js';
import { ROOT } from './proc.js';

/**
 * The chart's memory limit, applied to a benchmarked process the way the
 * container runtime applies it: a memory cgroup the process starts in.
 *
 * Why it changes the figures: Node sizes V8's heap from the memory it may use
 * (libuv's uv_get_constrained_memory(): the cgroup's limit, else the host's
 * RAM). On this 24 GiB host an unconfined process gets a ~4 GiB heap limit,
 * and with it V8's largest growth factor (the old generation may grow to ~4×
 * its live size between full collections); in the chart's 768Mi (agent) or 1Gi
 * (collector) it gets ~400–520 MiB and a factor of ~1.3–1.4. A process measured
 * unconfined here is not the process a DaemonSet runs.
 */

export type Component = 'agent' | 'collector';

interface ComponentValues {
  nodeOptions?: string;
  mallocMmapThreshold?: number | string;
  resources?: { limits?: { memory?: string } };
}
interface ChartValues {
  agent?: ComponentValues;
  collector?: ComponentValues;
}

let values: ChartValues | undefined;
function chartValues(): ChartValues {
  values ??= parseYaml(readFileSync(join(ROOT, 'helm/doorwatch/values.yaml'), 'utf8')) as ChartValues;
  return values;
}

const UNITS: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 };

/** A Kubernetes memory quantity ("768Mi", "1Gi", "500M") in bytes. */
export function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(q.trim());
  if (!m) throw new Error(`memory quantity "${q}" is not one this bench reads (e.g. 768Mi, 1Gi)`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? '']!);
}

/**
 * The limit a component runs in: BENCH_<AGENT|COLLECTOR>_MEMORY ("768Mi"; "none" = unconfined),
 * else the chart's resources.limits.memory.
 */
export function memoryLimit(c: Component): number | undefined {
  const env = process.env[`BENCH_${c.toUpperCase()}_MEMORY`];
  if (env !== undefined) return env === 'none' || env === '' ? undefined : quantityBytes(env);
  const q = chartValues()[c]?.resources?.limits?.memory;
  return q ? quantityBytes(q) : undefined;
}

/**
 * What the chart puts in a component's environment that changes its figures: NODE_OPTIONS
 * (agent.nodeOptions, collector.nodeOptions) and glibc's MALLOC_MMAP_THRESHOLD_ (…mallocMmapThreshold).
 * BENCH_<AGENT|COLLECTOR>_NODE_OPTIONS and BENCH_<AGENT|COLLECTOR>_MALLOC_MMAP_THRESHOLD override them
 * ("" = unset: Node's and glibc's defaults).
 */
export interface ChartEnv {
  nodeOptions: string;
  mallocMmapThreshold: string;
}

export function chartEnv(c: Component): ChartEnv {
  const v = chartValues()[c];
  const pick = (name: string, chart: unknown) => process.env[`BENCH_${c.toUpperCase()}_${name}`] ?? String(chart ?? '');
  return {
    nodeOptions: pick('NODE_OPTIONS', v?.nodeOptions),
    mallocMmapThreshold: pick('MALLOC_MMAP_THRESHOLD', v?.mallocMmapThreshold),
  };
}

/** The environment of a process started as the chart starts it (`e` added to this one's). */
export function processEnv(e: ChartEnv): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (e.nodeOptions) env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} ${e.nodeOptions}`.trim();
  if (e.mallocMmapThreshold) env.MALLOC_MMAP_THRESHOLD_ = e.mallocMmapThreshold;
  else delete env.MALLOC_MMAP_THRESHOLD_;
  return env;
}

/** For a bench's header line. */
export const fmtEnv = (e: ChartEnv) =>
  `NODE_OPTIONS ${e.nodeOptions || 'none'}, MALLOC_MMAP_THRESHOLD_ ${e.mallocMmapThreshold || 'glibc default'}`;

export const fmtLimit = (bytes: number | undefined) => (bytes === undefined ? 'none' : `${Math.round(bytes / 2 ** 20)} MiB`);

/**
 * A memory cgroup of its own (v2 when its memory controller is enabled there, else the v1 memory
 * hierarchy), removed by remove() once its processes are gone.
 */
export class MemoryCgroup {
  readonly dir: string;
  readonly version: 1 | 2;

  constructor(name: string, limitBytes: number) {
    const roots = discoverRoots();
    const v2 = roots.find((r) => r.version === 2);
    const v2Memory = v2 && readFileSync(join(v2.path, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('memory');
    const root = v2Memory ? v2 : roots.find((r) => r.version === 1);
    if (!root)
      throw new Error(
        'no cgroup hierarchy with the memory controller: cannot apply the chart memory limit (BENCH_AGENT_MEMORY=none BENCH_COLLECTOR_MEMORY=none to run unconfined)',
      );
    this.version = root.version as 1 | 2;
    this.dir = join(root.path, `${name}-${process.pid}`);
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(join(this.dir, this.version === 2 ? 'memory.max' : 'memory.limit_in_bytes'), String(limitBytes));
  }

  /**
   * argv that starts `cmd args` inside this cgroup: a shell writes its own pid into cgroup.procs and
   * execs the command, so the pid spawn() returns is the process itself (and so are /proc/<pid>'s figures).
   */
  wrap(cmd: string, args: string[]): [string, string[]] {
    return ['sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(this.dir, 'cgroup.procs'), cmd, ...args]];
  }

  remove(): void {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(this.dir);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        // EBUSY while a killed process is still being reaped.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      }
    }
  }
}
