import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

/** /proc, sysctl and bpftool helpers for the benchmark. */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let clkTck: number | undefined;
function ticksPerSecond(): number {
  clkTck ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clkTck;
}

/** utime + stime of a live process, all threads, in µs (clock-tick resolution). */
export function procCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  return (ticks * 1e6) / ticksPerSecond();
}

/**
 * A tracer's CPU once it has caught up: sampled every 100 ms until two
 * samples agree (it has no more backlog to chew on), at most `maxMs`.
 */
export async function settledCpuUs(pid: number, maxMs = 5000): Promise<number> {
  let prev = procCpuUs(pid);
  for (let waited = 0; waited < maxMs; waited += 100) {
    await sleep(100);
    const now = procCpuUs(pid);
    if (now === prev) return now;
    prev = now;
  }
  return prev;
}

const BPF_STATS = '/proc/sys/kernel/bpf_stats_enabled';
let bpfStatsBefore: string | undefined;

/** Puts kernel.bpf_stats_enabled back as it was (also called on Ctrl-C). */
export function restoreBpfStats(): void {
  if (bpfStatsBefore === undefined) return;
  writeFileSync(BPF_STATS, bpfStatsBefore);
  bpfStatsBefore = undefined;
}

/** Runs fn with kernel.bpf_stats_enabled=1 (programs' run time and count), restoring the old value after. */
export async function withBpfStats<T>(fn: () => Promise<T>): Promise<T> {
  bpfStatsBefore = readFileSync(BPF_STATS, 'utf8').trim();
  writeFileSync(BPF_STATS, '1');
  try {
    return await fn();
  } finally {
    restoreBpfStats();
  }
}

interface PerfLink {
  pid: number;
  prog_id: number;
  tracepoint?: string;
}

/** Programs a process has attached to tracepoints (bpftool perf show). */
export function perfLinks(pid: number): PerfLink[] {
  const out = execFileSync('bpftool', ['-j', 'perf', 'show'], { encoding: 'utf8' });
  return (JSON.parse(out || '[]') as PerfLink[]).filter((l) => l.pid === pid);
}

export interface ProgRun {
  id: number;
  runTimeNs: number;
  runCount: number;
}

export function progRun(id: number): ProgRun {
  const p = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(id)], { encoding: 'utf8' })) as {
    run_time_ns?: number;
    run_cnt?: number;
  };
  return { id, runTimeNs: p.run_time_ns ?? 0, runCount: p.run_cnt ?? 0 };
}

/** CPU time the whole machine spent busy (not idle or iowait), µs, from /proc/stat. */
export function machineBusyUs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return ((user + nice + system + irq + softirq + steal) * 1e6) / ticksPerSecond();
}

/**
 * Waits until the rest of the machine is quiet (under `maxPct` % of one CPU
 * busy over 300 ms), at most `maxWaitMs`; returns the last busy share seen.
 * Other work on the host (tests, builds) is the main source of noise here.
 */
export async function quiesce(maxPct = 10, maxWaitMs = 30_000): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const b0 = machineBusyUs();
    await sleep(300);
    const pct = ((machineBusyUs() - b0) / 300_000) * 100;
    if (pct <= maxPct || Date.now() > deadline) return pct;
  }
}
