import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { LineReader } from './lines.js';
import type { StormReady, StormResult } from './protocol.js';

/**
 * The benchmark's processes: the children it starts (tracked, so that a failure or Ctrl-C ends exactly
 * those), the storm and the compiled agents; CPU time from /proc; the bpf_stats sysctl and bpftool; and the
 * bench's own command line.
 */

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The built BPF object: the compiled agents do not live where accept-probes.ts looks by default. */
export const BPF_OBJECT = join(ROOT, 'build/accept.bpf.o');
/** bench/tsconfig.json's output: plain tsc output, as dist/ is; tsx's transform is not what ships. */
export const BENCH_JS = join(ROOT, 'build/bench-js');

// ---------------------------------------------------------------- children

/** Every child the benchmark started, so a failure or Ctrl-C can end exactly those. */
const children = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function kill(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Ends every child still running (on failure or Ctrl-C). */
export function killChildren(): void {
  for (const c of children) kill(c);
  children.clear();
}

export async function exited(child: ChildProcess, timeoutMs = 30_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return code;
}

/** Compiles bench/tsconfig.json's files into BENCH_JS (incremental: quick when fresh). */
export function buildBenchJs(): void {
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(ROOT, 'bench/tsconfig.json')], { stdio: 'inherit' });
}

/** Node flags for the compiled bench agents: none, as bin/doorwatch.js (issue 10), plus any from BENCH_AGENT_NODE_ARGS ("--cpu-prof ..."). */
export const benchNodeArgs = () => (process.env.BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean);

/**
 * A compiled bench agent in its own Node process (benchNodeArgs), stdin for its commands, JSON lines read
 * from its stdout; a line that does not come says why with the tail of its stderr.
 */
export function startNodeAgent(js: string, args: string[], what: string) {
  const child = track(spawn(process.execPath, [...benchNodeArgs(), js, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
  const out = new LineReader(child.stdout!, what);
  const err = new LineReader(child.stderr!, `${what} stderr`);
  return {
    child,
    pid: child.pid!,
    nextJson: <T>(timeoutMs: number): Promise<T> =>
      out.nextJson<T>(timeoutMs).catch((e: Error) => {
        throw new Error(`${e.message}\n${what} stderr:\n${err.text.slice(-3000)}`);
      }),
  };
}

// ---------------------------------------------------------------- the storm (bench/storm.c)

const STORM_SRC = join(ROOT, 'bench/storm.c');
const STORM_BIN = join(ROOT, 'build/bench/storm');

/** Compiles bench/storm.c when its binary is missing or older than the source. */
export function buildStorm(): void {
  if (existsSync(STORM_BIN) && statSync(STORM_BIN).mtimeMs >= statSync(STORM_SRC).mtimeMs) return;
  mkdirSync(dirname(STORM_BIN), { recursive: true });
  const tmp = `${STORM_BIN}.${process.pid}.tmp`;
  execFileSync('gcc', ['-O2', '-Wall', '-Werror', '-pthread', '-o', tmp, STORM_SRC], { stdio: 'inherit' });
  renameSync(tmp, STORM_BIN);
}

export interface StormOptions {
  connections: number;
  clients: number;
  timeoutS: number;
  /** CPUs of its threads, or "all" (unpinned). */
  stormCpus: string;
  window?: number;
  /** Paced: connections per second (default: as fast as possible). */
  rate?: number;
}

/**
 * One storm, started: it listens, prints its ready line and waits for go(); then connects and accepts until
 * done and prints its result. `wrap` is a command it runs through (one that ends in `exec "$0" "$@"`, e.g.
 * into a pod's cgroup and network namespace).
 */
export function startStorm(o: StormOptions, what = 'storm', wrap: string[] = []) {
  const args = [
    ...['--connections', String(o.connections), '--clients', String(o.clients), '--timeout', String(o.timeoutS)],
    ...(o.window === undefined ? [] : ['--window', String(o.window)]),
    ...(o.rate === undefined ? [] : ['--rate', String(o.rate)]),
    ...(o.stormCpus === 'all' ? [] : ['--cpus', o.stormCpus]),
  ];
  const [cmd, ...before] = [...wrap, STORM_BIN];
  const child = track(spawn(cmd!, [...before, ...args], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const out = new LineReader(child.stdout!, what);
  // One reader, one pending line at a time: the result is only awaited after the ready line.
  const ready = out.nextJson<StormReady>(10_000);
  return {
    child,
    ready,
    go: () => child.stdin!.end('go\n'),
    result: () => ready.then(() => out.nextJson<StormResult>((o.timeoutS + 10) * 1000)),
    kill: () => kill(child),
  };
}

// ---------------------------------------------------------------- CPU time

let clkTck: number | undefined;
function ticksPerSecond(): number {
  clkTck ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clkTck;
}

/**
 * utime + stime of a live process, all threads, in µs (clock-tick resolution); with `tid`, of that one
 * thread (the main thread's tid is the pid). A V8 CPU profile cannot stand in for the main thread's figure:
 * it marks libuv's poll phase idle, native work done there (TLS, HTTP/2, socket I/O) included.
 */
export function procCpuUs(pid: number, tid?: number): number {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
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

/** CPU time the whole machine spent busy (not idle or iowait), µs, from /proc/stat. */
function machineBusyUs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return ((user + nice + system + irq + softirq + steal) * 1e6) / ticksPerSecond();
}

/**
 * A measurement window from now: sample() gives its wall time, the machine's busy CPU time and that of
 * process `pid` (from /proc) since it opened, all in µs.
 */
export function cpuWindow(pid?: number) {
  const t0 = process.hrtime.bigint();
  const busy0 = machineBusyUs();
  const pid0 = pid === undefined ? 0 : procCpuUs(pid);
  return {
    sample: () => ({
      wallUs: Number(process.hrtime.bigint() - t0) / 1000,
      busyUs: machineBusyUs() - busy0,
      pidUs: pid === undefined ? 0 : procCpuUs(pid) - pid0,
    }),
  };
}

/** CPU that other work on the host used over a window, % of one CPU: busy time minus what we know ran (`knownUs`). */
export const noisePct = (busyUs: number, knownUs: number, wallUs: number) => Math.max(0, (busyUs - knownUs) / wallUs) * 100;

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

/** What the results were measured on. */
export function machineInfo() {
  return { kernel: release(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown' };
}

// ---------------------------------------------------------------- the kernel

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

// ---------------------------------------------------------------- the command line

/** A bench's command-line problems: the message and the usage on stderr, exit status 2. */
export function usageErrors(prog: string, usage: string) {
  const fail = (msg: string): never => {
    process.stderr.write(`${prog}: ${msg}\n${usage}`);
    process.exit(2);
  };
  return {
    fail,
    /** An integer option, at least `min`. */
    int: (name: string, v: string | undefined, min = 1): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got ${v}`);
      return n;
    },
  };
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * A bench's options, strictly: --help prints the usage (exit 0); an unknown option, a missing value or a
 * stray argument is one line and the usage on stderr, exit status 2, instead of parseArgs' stack trace.
 */
export function benchArgs<O extends Options>(prog: string, usage: string, options: O) {
  try {
    const { values } = parseArgs({ options: { ...options, help: { type: 'boolean' } }, strict: true });
    if ((values as { help?: boolean }).help) {
      process.stdout.write(usage);
      process.exit(0);
    }
    return values as ReturnType<typeof parseArgs<{ options: O; strict: true }>>['values'];
  } catch (err) {
    return usageErrors(prog, usage).fail((err as Error).message);
  }
}
