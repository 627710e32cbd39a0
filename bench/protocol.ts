import type { KernelCounters, ProgramStats } from '../src/bpf/accept-probes.js';

/**
 * The JSON lines exchanged by bench/run.ts, bench/agent.ts and bench/storm.c (bench/policy.ts's storms and
 * agent too), and the counts the agents put in them.
 */

export const AGENT_MODES = ['json', 'event', 'decode', 'ring'] as const;
export type AgentMode = (typeof AGENT_MODES)[number];

/** storm: first line, once listening (it then waits for a line on stdin). */
export interface StormReady {
  pid: number;
  port: number;
}

/** storm: last line. */
export interface StormResult {
  connections: number;
  /** Failed accept4() calls: each is an event too (0 in practice). */
  acceptErrors: number;
  /** connect() calls that failed and were retried (ECONNRESET when the server's RST wins the race). */
  connectErrors: number;
  elapsedS: number;
  acceptsPerS: number;
  timedOut: boolean;
  cpuUserUs: number;
  cpuSysUs: number;
  clients: number;
}

/** agent: once the probes are attached and the drain timer runs. */
export interface AgentReady {
  ready: true;
  pid: number;
  mode: AgentMode;
  programs: number;
  ioUring: boolean;
}

/** agent: answer to "mark" on stdin: every count and baseline starts again from here. */
export interface AgentMarked {
  marked: true;
}

export interface ProgramRun {
  name: string;
  runTimeNs: number;
  runCount: number;
  recursionMisses: number;
}

/** agent: after SIGTERM, the final drain and the books. */
export interface AgentFinal {
  mode: AgentMode;
  /** Records of the storm's pid. */
  events: number;
  /** All records, any process. */
  total: number;
  decodeErrors: number;
  /** probes.kernelCounters(): EMITTED, RINGBUF_FULL, ... */
  kernel: Record<string, number>;
  /** process.cpuUsage() from ready (or the mark) to the end of the final drain (before detaching). */
  cpuUserUs: number;
  cpuSystemUs: number;
  /** CPU spent detaching the probes afterwards: a one-off, not per event. */
  detachCpuUs: number;
  lagMaxMs: number;
  lagP99Ms: number;
  /** Since the mark (or load); run time needs kernel.bpf_stats_enabled=1. */
  programs: ProgramRun[];
}

/** Kernel counters since a baseline (the mark), as JSON numbers. */
export function kernelSince(now: KernelCounters, before?: KernelCounters): Record<string, number> {
  return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, Number(v - (before?.[k as keyof KernelCounters] ?? 0n))]));
}

/** Each program's runs since a baseline (the mark), as JSON numbers. */
export function programsSince(now: readonly ProgramStats[], before?: readonly ProgramStats[]): ProgramRun[] {
  return now.map((p) => {
    const p0 = before?.find((x) => x.name === p.name);
    return {
      name: p.name,
      runTimeNs: Number(p.runTimeNs - (p0?.runTimeNs ?? 0n)),
      runCount: Number(p.runCount - (p0?.runCount ?? 0n)),
      recursionMisses: Number(p.recursionMisses - (p0?.recursionMisses ?? 0n)),
    };
  });
}

/** What probes cost in the kernel (kernel.bpf_stats_enabled): run time and runs, and the runs of the exit programs (one per accept). */
export interface BpfCost {
  runTimeNs: number;
  runCount: number;
  exits: number;
}

/** The cost of doorwatch's programs (its exit programs are named dw_exit_*). */
export function bpfCost(programs: readonly ProgramRun[]): BpfCost {
  const sum = (k: 'runTimeNs' | 'runCount', ps: readonly ProgramRun[]) => ps.reduce((a, p) => a + p[k], 0);
  return {
    runTimeNs: sum('runTimeNs', programs),
    runCount: sum('runCount', programs),
    exits: sum(
      'runCount',
      programs.filter((p) => p.name.startsWith('dw_exit_')),
    ),
  };
}

/** In-kernel ns per traced accept; undefined when bpf_stats counted nothing. */
export const bpfNsPerAccept = (c: BpfCost | undefined): number | undefined =>
  c && c.exits > 0 && c.runTimeNs > 0 ? c.runTimeNs / c.exits : undefined;
