import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LineReader } from './lines.js';
import {
  BENCH_JS,
  BPF_OBJECT,
  cpuWindow,
  exited,
  noisePct,
  perfLinks,
  procCpuUs,
  progRun,
  quiesce,
  ROOT,
  type StormOptions,
  settledCpuUs,
  startNodeAgent,
  startStorm,
  track,
} from './proc.js';
import {
  type AgentFinal,
  type AgentMarked,
  type AgentMode,
  type AgentReady,
  type BpfCost,
  bpfCost,
  type StormReady,
} from './protocol.js';

/** The tracers the storm runs under: the doorwatch agent (by mode), the doorwatch CLI, bpftrace. */

export interface TracerOutcome {
  /** The tracer's own CPU (user + system) while the storm ran, µs. */
  cpuUs: number;
  /** Events of the storm's pid the tracer delivered; undefined when it cannot be counted. */
  events?: number;
  ringbufFull?: number;
  decodeErrors?: number;
  /** Loss the tracer itself reports (bpftrace "Lost N events", the CLI summary). */
  reportedLost?: number;
  lagMaxMs?: number;
  lagP99Ms?: number;
  /** In-kernel cost (kernel.bpf_stats_enabled). */
  bpf?: BpfCost;
  detail?: unknown;
}

export interface Attached {
  /** The tracer's process. */
  pid: number;
  /** Start counting from here (after a warm-up storm): CPU, events, kernel counters. */
  mark(): Promise<void>;
  stop(): Promise<TracerOutcome>;
}

export interface Tracer {
  /** Attaches, resolving once the probes are live. */
  attach(storm: StormReady): Promise<Attached>;
}

const AGENT = join(BENCH_JS, 'bench/agent.js');

/** bench/agent.ts, compiled, in its own Node process. */
export function agentTracer(mode: AgentMode): Tracer {
  return {
    async attach(storm) {
      const agent = startNodeAgent(
        AGENT,
        ['--pid', String(storm.pid), '--mode', mode, '--object', BPF_OBJECT],
        `agent (${mode})`,
      );
      const { child } = agent;
      try {
        await agent.nextJson<AgentReady>(60_000);
      } catch (e) {
        child.kill('SIGKILL');
        throw e;
      }
      return {
        pid: agent.pid,
        async mark() {
          child.stdin!.write('mark\n');
          await agent.nextJson<AgentMarked>(60_000);
        },
        async stop() {
          child.kill('SIGTERM');
          let fin: AgentFinal;
          try {
            fin = await agent.nextJson<AgentFinal>(60_000);
          } catch (e) {
            child.kill('SIGKILL');
            throw e;
          }
          await exited(child);
          return {
            cpuUs: fin.cpuUserUs + fin.cpuSystemUs,
            events: fin.events,
            ringbufFull: fin.kernel.RINGBUF_FULL ?? 0,
            decodeErrors: fin.decodeErrors,
            lagMaxMs: fin.lagMaxMs,
            lagP99Ms: fin.lagP99Ms,
            bpf: bpfCost(fin.programs),
            detail: fin,
          };
        },
      };
    },
  };
}

/** How a user starts the CLI: the executable itself (its shebang's V8 flags apply) or `node bin/doorwatch.js` (they do not). */
export type CliLaunch = 'exec' | 'node';

/** The CLI's own figures: a cold storm from process start, the warm one, memory. */
export interface CliDetail {
  launch: CliLaunch;
  /** The tree whose bin/doorwatch.js ran (the repository, or --cli-base). */
  root: string;
  /** CPU from exec to the cold storm, once settled (Node start, module load, BPF load and verification), µs. */
  startupCpuUs: number;
  /** The cold storm: its accepts (all shown unless lost), its rate, the CLI's CPU over it. */
  coldAccepts: number;
  coldAcceptsPerS: number;
  coldCpuUs: number;
  coldNoisePct: number;
  /** Peak resident set (VmHWM) over the whole run, KiB. */
  rssPeakKiB: number;
  /** The exit summary's lost count: cold and warm storms together (the kernel counts per process). */
  lost: number;
  /** Events shown and captured over the whole run: captured includes other processes' accepts (display-filtered). */
  shown: number;
  captured: number;
  summary: string;
}

export interface CliStormOptions extends Omit<StormOptions, 'connections'> {
  /** Accepts in the cold storm (the first events after start). */
  coldConnections: number;
}

const kib = (pid: number, key: string) =>
  Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);

/**
 * `doorwatch trace --output json --pid <cold>,<storm>` exactly as a user runs it, stdout to /dev/null:
 * `./bin/doorwatch.js ...` (launch 'exec') or `node bin/doorwatch.js ...` ('node'), from `root`.
 * Attaching runs a cold storm of its own first (shown, measured from the CLI's start: what a user pays
 * at the beginning of a burst); the storm passed in is the warm one. CPU is the whole process, every
 * thread, from /proc/<pid>/stat.
 */
export function cliTracer(launch: CliLaunch, o: CliStormOptions, root = ROOT): Tracer {
  return {
    async attach(storm) {
      const cold = startStorm({ ...o, connections: o.coldConnections }, 'storm (CLI cold)');
      const devNull = openSync('/dev/null', 'w');
      let child: ChildProcess | undefined;
      try {
        const coldReady = await cold.ready;
        const args = ['trace', '--output', 'json', '--pid', `${coldReady.pid},${storm.pid}`, '--log-level', 'info'];
        // BENCH_AGENT_NODE_ARGS ("--cpu-prof ...") through NODE_OPTIONS, so that both launches stay as users run them.
        const extra = process.env.BENCH_AGENT_NODE_ARGS ?? '';
        const env = extra ? { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${extra}` } : process.env;
        const bin = join(root, 'bin/doorwatch.js');
        const [cmd, argv] = launch === 'exec' ? [bin, args] : [process.execPath, [bin, ...args]];
        child = track(spawn(cmd, argv, { cwd: root, env, stdio: ['ignore', devNull, 'pipe'] }));
        closeSync(devNull);
        const err = new LineReader(child.stderr!, `doorwatch trace (${launch})`);
        await err.next(60_000, (l) => l.includes('tracing accepts'));
        const pid = child.pid!;
        await quiesce();
        // Everything before the first event is the start, including what its JIT and GC threads finish after the
        // "tracing accepts" line (compiling the module loader's hot functions: up to ~100 ms here).
        const startupCpuUs = await settledCpuUs(pid);
        const win = cpuWindow(pid);
        cold.go();
        const coldResult = await cold.result();
        const { busyUs, wallUs } = win.sample();
        await exited(cold.child);
        const coldEnd = await settledCpuUs(pid);
        const coldCpuUs = coldEnd - startupCpuUs;
        const coldNoisePct = noisePct(busyUs, coldResult.cpuUserUs + coldResult.cpuSysUs + coldCpuUs, wallUs);
        let cpu0 = coldEnd;
        const c = child;
        return {
          pid,
          async mark() {
            // The generic warm-up storm's events are captured but not shown (another pid).
            cpu0 = await settledCpuUs(pid);
          },
          async stop() {
            const cpu1 = await settledCpuUs(pid);
            const rssPeakKiB = kib(pid, 'VmHWM');
            c.kill('SIGTERM');
            await exited(c);
            const text = err.text;
            const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
            const coldAccepts = coldResult.connections + coldResult.acceptErrors;
            const detail: CliDetail = {
              launch,
              root,
              startupCpuUs,
              coldAccepts,
              coldAcceptsPerS: coldResult.acceptsPerS,
              coldCpuUs,
              coldNoisePct,
              rssPeakKiB,
              lost: num(/lost: (\d+)/),
              shown: num(/(\d+) shown of/),
              captured: num(/shown of (\d+) captured/),
              summary: text.slice(text.indexOf('doorwatch trace:')).trim(),
            };
            return {
              cpuUs: cpu1 - cpu0,
              // Shown events of the warm storm: all shown minus the cold storm's accepts.
              events: num(/(\d+) shown of/) - coldAccepts,
              ringbufFull: num(/ring_buffer_full=(\d+)/),
              decodeErrors: num(/decode_errors=(\d+)/),
              reportedLost: detail.lost,
              detail,
            };
          },
        };
      } catch (e) {
        child?.kill('SIGKILL');
        throw e;
      } finally {
        cold.kill();
      }
    },
  };
}

/**
 * bpftrace on the same four tracepoints, one printf per exit (the enter
 * saves the listening fd, as doorwatch's enter saves its arguments).
 */
export const BPFTRACE_SCRIPT = `
tracepoint:syscalls:sys_enter_accept, tracepoint:syscalls:sys_enter_accept4 { @fd[tid] = args->fd; }
tracepoint:syscalls:sys_exit_accept, tracepoint:syscalls:sys_exit_accept4 {
  printf("%d %d %d\\n", pid, @fd[tid], args->ret);
  delete(@fd[tid]);
}`;
const BPFTRACE_PROBES = 4;

/**
 * bpftrace prints "Attaching N probes..." (and "Lost N events") on stdout,
 * which goes to `outPath`: readiness is read from the kernel instead (its
 * four tracepoint links in `bpftool perf show`). With an outPath other than
 * /dev/null, its lines and losses are counted afterwards.
 */
export function bpftraceTracer(outPath: string): Tracer {
  return {
    async attach(storm) {
      const outFd = openSync(outPath, 'w');
      const child = track(spawn('bpftrace', ['-e', BPFTRACE_SCRIPT], { stdio: ['ignore', outFd, 'pipe'] }));
      closeSync(outFd);
      const err = new LineReader(child.stderr!, 'bpftrace stderr');
      const pid = child.pid!;
      const deadline = Date.now() + 60_000;
      let links = perfLinks(pid);
      while (links.length < BPFTRACE_PROBES) {
        if (child.exitCode !== null || Date.now() > deadline) {
          child.kill('SIGKILL');
          throw new Error(`bpftrace did not attach its ${BPFTRACE_PROBES} probes:\n${err.text.slice(-2000)}`);
        }
        await sleep(50);
        links = perfLinks(pid);
      }
      let cpu0 = procCpuUs(pid);
      let runs0 = links.map((l) => progRun(l.prog_id));
      return {
        pid,
        async mark() {
          cpu0 = await settledCpuUs(pid);
          runs0 = links.map((l) => progRun(l.prog_id));
        },
        async stop() {
          const cpu1 = await settledCpuUs(pid);
          const runs = links.map((l, i) => {
            const r = progRun(l.prog_id);
            const r0 = runs0[i]!;
            return {
              runTimeNs: r.runTimeNs - r0.runTimeNs,
              runCount: r.runCount - r0.runCount,
              exit: l.tracepoint?.startsWith('sys_exit') ?? false,
            };
          });
          child.kill('SIGINT');
          await exited(child);
          const outcome: TracerOutcome = {
            cpuUs: cpu1 - cpu0,
            bpf: {
              runTimeNs: runs.reduce((a, r) => a + r.runTimeNs, 0),
              runCount: runs.reduce((a, r) => a + r.runCount, 0),
              exits: runs.filter((r) => r.exit).reduce((a, r) => a + r.runCount, 0),
            },
          };
          if (outPath !== '/dev/null') {
            const text = readFileSync(outPath, 'utf8');
            outcome.events = text.split('\n').filter((l) => l.startsWith(`${storm.pid} `)).length;
            outcome.reportedLost = [...text.matchAll(/^Lost (\d+) events/gm)].reduce((a, m) => a + Number(m[1]), 0);
          }
          return outcome;
        },
      };
    },
  };
}
