/** The JSON lines exchanged by bench/run.ts, bench/agent.ts and bench/storm.c. */

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
