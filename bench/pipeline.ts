import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeApiServer, makePod, ownerRef, tempDir } from '../test/helpers/kube-api-server.js';
import { makePki, tlsFlags } from '../test/helpers/pki.js';
import { type FakePod, PodSim } from '../test/helpers/pod-sim.js';
import { freePort } from '../test/helpers/wait.js';
import {
  type ChartEnv,
  type Component,
  chartEnv,
  fmtEnv,
  fmtLimit,
  MemoryCgroup,
  memoryLimit,
  processEnv,
} from './memory-limit.js';
import {
  benchArgs,
  buildStorm,
  cpuWindow,
  exited,
  kill,
  killChildren,
  machineInfo,
  noisePct,
  procCpuUs,
  quiesce,
  ROOT,
  startStorm,
  track,
} from './proc.js';
import { fmtSpread, renderTable, spread } from './report.js';

/**
 * The agent end to end, as it runs on a node: the real `doorwatch agent`
 * process (bin/doorwatch.js with the chart's NODE_OPTIONS and malloc setting, as the DaemonSet starts it) capturing the
 * accepts of a simulated pod (test/helpers/pod-sim.ts: a kubelet-shaped
 * cgroup and a network namespace) described by the Kubernetes API stand-in
 * (labels, owner, image: every event fully attributed), through its policy
 * stage and on-disk spool, over mutual TLS to the real `doorwatch collector`
 * process writing native JSON lines to a jsonl file. Both run in the chart's
 * memory limits (resources.limits.memory, each in a memory cgroup of its own:
 * bench/memory-limit.ts), because Node sizes V8's heap from that limit;
 * BENCH_AGENT_MEMORY / BENCH_COLLECTOR_MEMORY set others ("none": unconfined).
 *
 *   npx tsx bench/pipeline.ts [--rounds 3] [--rate 20000 --seconds 60] [--storm 1000000]
 *                             [--latency-rate 10000 --latency-seconds 10]
 *
 * Each round runs three phases, each bench/storm.c inside the pod, bounded
 * by count and wall clock:
 *
 *   sustained  --rate accepts/s for --seconds (paced)
 *   storm      --storm accepts as fast as the machine accepts them
 *   latency    --latency-rate accepts/s for --latency-seconds; every line's
 *              accept time (timeUnixNano) against the moment the line was
 *              read from the jsonl file (a 2 ms poll: the figure includes it)
 *
 * Per phase: the agent's and the collector's CPU (utime + stime of every
 * thread, /proc/<pid>/stat) per event, from the storm's start until the last
 * event is in the file, and the agent main thread's share of it; their RSS (VmRSS sampled every 100 ms: median and
 * peak); events delivered (lines of the storm's pid in the file) and lost
 * (accepts − delivered), with the kernel's ring-full count from the agent's
 * /metrics. A warm-up storm (50 000 accepts) runs before the first round.
 */

const USAGE = `usage: tsx bench/pipeline.ts [options]     (or: npm run bench -- --pipeline [options]; as root)
  --rounds R            rounds of the three phases (default 3)
  --rate N              accepts/s of the sustained phase (default 20000)
  --seconds S           length of the sustained phase (default 60)
  --storm N             accepts of the storm phase, as fast as the machine accepts them (default 1000000)
  --latency-rate N      accepts/s of the latency phase (default 10000)
  --latency-seconds S   length of the latency phase (default 10)
  --warmup N            accepts of the warm-up storm before the first round (default 50000)
  --storm-cpus LIST     CPUs for the storm's threads (default 0: the agent and collector get the other)
  --json F              the results, machine-readable, written to F
The agent and the collector run as the chart runs them: in their memory limits, with their NODE_OPTIONS and
MALLOC_MMAP_THRESHOLD_. BENCH_<AGENT|COLLECTOR>_MEMORY, _NODE_OPTIONS, _MALLOC_MMAP_THRESHOLD and _BIN override
them; BENCH_AGENT_ARGS adds agent flags, BENCH_AGENT_NODE_ARGS and BENCH_COLLECTOR_NODE_ARGS node flags
(BENCH_NODE_STDOUT keeps their output: the agent's in that file, the collector's in <file>.collector).
`;
const values = benchArgs('bench/pipeline', USAGE, {
  rounds: { type: 'string', default: '3' },
  rate: { type: 'string', default: '20000' },
  seconds: { type: 'string', default: '60' },
  storm: { type: 'string', default: '1000000' },
  'latency-rate': { type: 'string', default: '10000' },
  'latency-seconds': { type: 'string', default: '10' },
  warmup: { type: 'string', default: '50000' },
  'storm-cpus': { type: 'string', default: '0' },
  json: { type: 'string' },
});
const opts = {
  rounds: Number(values.rounds),
  rate: Number(values.rate),
  seconds: Number(values.seconds),
  storm: Number(values.storm),
  latencyRate: Number(values['latency-rate']),
  latencySeconds: Number(values['latency-seconds']),
  warmup: Number(values.warmup),
  stormCpus: values['storm-cpus']!,
};
for (const [k, v] of Object.entries(opts)) {
  if (typeof v === 'number' && !(Number.isFinite(v) && v >= 0)) throw new Error(`bench/pipeline: --${k} must be a number >= 0`);
}
if (process.getuid?.() !== 0) throw new Error('bench/pipeline loads eBPF programs, makes cgroups and netns: run it as root');

const NODE = 'bench-node';
const NS = 'shop';
const POD = 'web-7d9f8c6b5-x2k4p';
const BIN = join(ROOT, 'bin/doorwatch.js');

// ---------------------------------------------------------------- set-up

let sim: PodSim | undefined;
let api: KubeApiServer | undefined;
/** The bench's files (spool, the jsonl sink's file, configs): removed whatever happens. */
const dirs: string[] = [];
/** The chart's memory limits (bench/memory-limit.ts), one cgroup per process; removed after the processes. */
const cgroups: MemoryCgroup[] = [];
const cleanup = () => {
  killChildren();
  for (const cg of cgroups.splice(0)) cg.remove();
  sim?.cleanup();
  sim = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
};
process.once('SIGINT', () => {
  cleanup();
  process.exit(130);
});

/** A process runs in its chart memory limit (resources.limits.memory; BENCH_<C>_MEMORY overrides, "none" = unconfined). */
function limitFor(c: Component): MemoryCgroup | undefined {
  const bytes = memoryLimit(c);
  if (bytes === undefined) return undefined;
  const cg = new MemoryCgroup(`doorwatch-bench-${c}`, bytes);
  cgroups.push(cg);
  return cg;
}

function child(
  args: string[],
  what: string,
  bin = BIN,
  nodeArgs?: string,
  chart?: ChartEnv,
  cg?: MemoryCgroup,
): { p: ChildProcess; stderr: () => string } {
  // As users run it (the shebang), unless node flags are asked for (profiling).
  // Node's own diagnostics (--trace-gc) go to stdout: kept in a file when BENCH_NODE_STDOUT names one (the
  // agent's; the collector's in the same name + ".collector").
  const file =
    process.env.BENCH_NODE_STDOUT &&
    (what === 'agent' ? process.env.BENCH_NODE_STDOUT : `${process.env.BENCH_NODE_STDOUT}.${what}`);
  const out = nodeArgs && file ? openSync(file, 'w') : 'ignore';
  const env = chart ? processEnv(chart) : process.env;
  const [cmd, argv] = nodeArgs ? [process.execPath, [...nodeArgs.split(' ').filter(Boolean), bin, ...args]] : [bin, args];
  const [c, a] = cg ? cg.wrap(cmd, argv) : [cmd, argv];
  const p = track(spawn(c, a, { stdio: ['ignore', nodeArgs ? out : 'ignore', 'pipe'], env }));
  let err = '';
  p.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString('utf8')).slice(-8000);
  });
  p.once('exit', (code, sig) => {
    if (!stopping) process.stderr.write(`bench/pipeline: ${what} exited (${code ?? sig}):\n${err}\n`);
  });
  return { p, stderr: () => err };
}
let stopping = false;

async function httpText(url: string): Promise<string> {
  const res = await fetch(url);
  return res.text();
}

/**
 * The jsonl file, read from where the last read stopped: lines of `pid`, and their accept times. Emptied
 * after every phase (truncate), and the sink's rotation set far beyond what a run writes: the sink counts
 * the bytes it wrote, not the file's size, and a rotation mid-phase would hide lines from this reader.
 */
class JsonlTail {
  #off = 0;
  #rest = '';
  constructor(readonly path: string) {}

  skipToEnd(): void {
    this.#off = existsSync(this.path) ? statSync(this.path).size : 0;
    this.#rest = '';
  }

  /** Empty the file (the sink appends, O_APPEND): a phase's gigabytes do not pile up on disk. */
  truncate(): void {
    if (existsSync(this.path)) truncateSync(this.path, 0);
    this.#off = 0;
    this.#rest = '';
  }

  /** Accept lines of process `pid` since the last read; `onTime(ns)` with each one's timeUnixNano when given. */
  read(pid: number, onTime?: (unixNano: bigint) => void): number {
    if (!existsSync(this.path)) return 0;
    const fd = openSync(this.path, 'r');
    const buf = Buffer.allocUnsafe(8 << 20);
    const needle = `"process":{"pid":${pid},`;
    let n = 0;
    try {
      for (;;) {
        const got = readSync(fd, buf, 0, buf.length, this.#off);
        if (got === 0) break;
        this.#off += got;
        const text = this.#rest + buf.toString('utf8', 0, got);
        const lines = text.split('\n');
        this.#rest = lines.pop()!;
        for (const line of lines) {
          // Accepts only: the agent's listener inventory reports the storm's listen() too.
          if (!line.includes(needle) || !line.includes('"listenerInfo":null')) continue;
          n++;
          if (onTime) {
            const m = /"timeUnixNano":"(\d+)"/.exec(line);
            if (m) onTime(BigInt(m[1]!));
          }
        }
      }
    } finally {
      closeSync(fd);
    }
    return n;
  }
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function ringFull(metrics: string): number {
  const m = /doorwatch_kernel_dropped_total\{reason="ring_buffer_full"\} (\d+)/.exec(metrics);
  return m ? Number(m[1]) : 0;
}

/** Events the agent counted as lost after the kernel: spool overflow, enrichment queue overflow. */
function agentDrops(metrics: string): number {
  let n = 0;
  for (const re of [/^doorwatch_spool_dropped_total (\d+)/m, /^doorwatch_enrichment_pending_overflow_total (\d+)/m]) {
    const m = re.exec(metrics);
    if (m) n += Number(m[1]);
  }
  return n;
}

const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;

buildStorm();
sim = new PodSim();
const pod: FakePod = sim.systemdContainerdPod();
api = await KubeApiServer.create();
api.addNamespace(NS, { team: 'payments', 'kubernetes.io/metadata.name': NS });
api.addPod(
  makePod({
    name: POD,
    namespace: NS,
    uid: pod.uid,
    nodeName: NODE,
    labels: { app: 'web', 'app.kubernetes.io/name': 'web', 'pod-template-hash': '7d9f8c6b5', tier: 'front' },
    ownerReferences: [ownerRef('ReplicaSet', 'web-7d9f8c6b5')],
    containers: [{ name: 'web', image: 'registry.example/shop/web:1.4.2', id: pod.cid, runtime: 'containerd' }],
    qosClass: 'Burstable',
    podIP: pod.netns.ip,
  }),
);
const work = tempDir('doorwatch-bench-pipeline-');
dirs.push(work);
const kubeconfig = api.writeKubeconfig(work);
const pki = makePki();
dirs.push(pki.dir);
const agentCert = pki.client('bench-agent');
const jsonl = join(work, 'events.jsonl');
const grpcPort = await freePort();
const healthPort = await freePort();
writeFileSync(
  join(work, 'collector.yaml'),
  `${JSON.stringify({
    listen: `127.0.0.1:${grpcPort}`,
    tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.caFile },
    sinks: [{ name: 'file', type: 'jsonl', required: true, format: 'native', path: jsonl, maxBytes: '1024GiB', maxFiles: 2 }],
  })}\n`,
);
// BENCH_COLLECTOR_BIN: another build's bin/doorwatch.js as the collector (an agent change measured against a fixed collector).
// Both processes with the chart's NODE_OPTIONS and malloc setting (agent.*, collector.*), as their pods start them.
const collectorEnv = chartEnv('collector');
const collector = child(
  ['collector', '-c', join(work, 'collector.yaml'), '--log-level', 'warn'],
  'collector',
  process.env.BENCH_COLLECTOR_BIN ?? BIN,
  // e.g. "--perf-basic-prof" to name its JavaScript in perf, as BENCH_AGENT_NODE_ARGS for the agent.
  process.env.BENCH_COLLECTOR_NODE_ARGS,
  collectorEnv,
  limitFor('collector'),
);
await sleep(1500);
const agentEnv = chartEnv('agent');
const agent = child(
  [
    'agent',
    ...['--collector', `127.0.0.1:${grpcPort}`, ...tlsFlags(pki.caFile, agentCert)],
    ...['--server-name', 'localhost', '--spool-dir', join(work, 'spool'), '--node-name', NODE],
    ...['--kubeconfig', kubeconfig, '--health-address', `127.0.0.1:${healthPort}`, '--log-level', 'warn'],
    // BENCH_AGENT_ARGS: more agent flags, e.g. "--poll-interval 20ms" (a setting measured against the default).
    ...(process.env.BENCH_AGENT_ARGS ?? '').split(' ').filter(Boolean),
  ],
  'agent',
  // BENCH_AGENT_BIN: another build's bin/doorwatch.js (before/after in one sitting).
  process.env.BENCH_AGENT_BIN ?? BIN,
  // e.g. "--cpu-prof --cpu-prof-dir=DIR": the agent is stopped with SIGTERM, so the profile is written.
  process.env.BENCH_AGENT_NODE_ARGS,
  agentEnv,
  limitFor('agent'),
);
const metricsUrl = `http://127.0.0.1:${healthPort}/metrics`;
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`http://127.0.0.1:${healthPort}/readyz`)).ok) break;
  } catch {}
  if (i > 300) {
    // Outside the phases' try/finally: the collector and the cgroups would outlive the bench.
    const why = agent.stderr();
    cleanup();
    throw new Error(`the agent did not become ready in 30 s:\n${why}`);
  }
  await sleep(100);
}
const machine = machineInfo();
process.stderr.write(
  `bench/pipeline: agent pid ${agent.p.pid} (${fmtEnv(agentEnv)}, memory limit ${fmtLimit(memoryLimit('agent'))}), ` +
    `collector pid ${collector.p.pid} (${fmtEnv(collectorEnv)}, memory limit ${fmtLimit(memoryLimit('collector'))}); pod ${NS}/${POD} in netns ${pod.netns.name}; ` +
    `${machine.cpus} CPUs, kernel ${machine.kernel}, node ${machine.node}\n`,
);

// ---------------------------------------------------------------- phases

interface PhaseResult {
  phase: string;
  accepts: number;
  acceptsPerS: number;
  delivered: number;
  lost: number;
  ringFull: number;
  /** Counted by the agent after the kernel (spool overflow, enrichment queue overflow). */
  agentDrops: number;
  agentUs: number;
  /** Of agentUs, the main thread's (JavaScript, and the native work libuv's poll phase does on it). */
  agentMainUs: number;
  collectorUs: number;
  agentRssMedMiB: number;
  agentRssPeakMiB: number;
  collectorRssPeakMiB: number;
  p50Ms?: number;
  p99Ms?: number;
  noisePct: number;
}

const tail = new JsonlTail(jsonl);

async function phase(name: string, o: { connections: number; rate?: number; latency?: boolean }): Promise<PhaseResult> {
  await quiesce(15, 20_000);
  const timeoutS = Math.ceil(o.rate ? o.connections / o.rate + 60 : 120);
  const storm = startStorm(
    { connections: o.connections, clients: 2, timeoutS, stormCpus: opts.stormCpus, rate: o.rate },
    `storm (${name})`,
    ['sh', '-c', `echo $$ > ${pod.cgroupDir}/cgroup.procs && exec ip netns exec ${pod.netns.name} "$0" "$@"`],
  );
  const ready = await storm.ready;
  tail.skipToEnd();
  const metrics0 = await httpText(metricsUrl);
  const ring0 = ringFull(metrics0);
  const drops0 = agentDrops(metrics0);
  const aPid = agent.p.pid!;
  const cPid = collector.p.pid!;
  const a0 = procCpuUs(aPid);
  const aMain0 = procCpuUs(aPid, aPid);
  const c0 = procCpuUs(cPid);
  const s0 = procCpuUs(ready.pid);
  const window = cpuWindow();
  const t0 = performance.now();
  const rss: number[] = [];
  let cRssPeak = 0;
  const sampler = setInterval(() => {
    rss.push(rssKiB(aPid));
    cRssPeak = Math.max(cRssPeak, rssKiB(cPid));
  }, 100);
  const lat: number[] = [];
  let delivered = 0;
  let reading = o.latency === true;
  const reader = (async () => {
    while (reading) {
      delivered += tail.read(ready.pid, (t) => lat.push(Number(nowNs() - t) / 1e6));
      await sleep(2);
    }
  })();
  process.stderr.write(`bench/pipeline: ${name}: storm ${ready.pid} started\n`);
  storm.go();
  const result = await storm.result();
  let sCpu = 0;
  try {
    sCpu = procCpuUs(ready.pid);
  } catch {}
  // Until every accepted connection is a line in the file, or nothing moves for 10 s.
  reading = false;
  await reader;
  let last = performance.now();
  for (let prev = -1; delivered < result.connections && performance.now() - last < 10_000; ) {
    delivered += tail.read(ready.pid, o.latency ? (t) => lat.push(Number(nowNs() - t) / 1e6) : undefined);
    if (delivered !== prev) last = performance.now();
    prev = delivered;
    await sleep(20);
  }
  clearInterval(sampler);
  tail.truncate();
  const wallUs = (performance.now() - t0) * 1000;
  const agentCpu = procCpuUs(aPid) - a0;
  const agentMainCpu = procCpuUs(aPid, aPid) - aMain0;
  const collectorCpu = procCpuUs(cPid) - c0;
  const metrics1 = await httpText(metricsUrl);
  const ring = ringFull(metrics1) - ring0;
  const drops = agentDrops(metrics1) - drops0;
  const busy = window.sample().busyUs;
  if (delivered < result.connections) {
    // Say why: the agent's and the collector's last log lines (warnings and errors).
    process.stderr.write(
      `bench/pipeline: ${name}: ${result.connections - delivered} not in the file after 10 s without progress\n` +
        `--- agent stderr (tail) ---\n${agent.stderr().slice(-3000)}\n--- collector stderr (tail) ---\n${collector.stderr().slice(-3000)}\n`,
    );
  }
  const sorted = [...rss].sort((a, b) => a - b);
  lat.sort((a, b) => a - b);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))];
  return {
    phase: name,
    accepts: result.connections,
    acceptsPerS: Math.round(result.acceptsPerS),
    delivered,
    lost: result.connections - delivered,
    ringFull: ring,
    agentDrops: drops,
    agentUs: agentCpu / Math.max(1, delivered),
    agentMainUs: agentMainCpu / Math.max(1, delivered),
    collectorUs: collectorCpu / Math.max(1, delivered),
    agentRssMedMiB: (sorted[Math.floor(sorted.length / 2)] ?? 0) / 1024,
    agentRssPeakMiB: (sorted.at(-1) ?? 0) / 1024,
    collectorRssPeakMiB: cRssPeak / 1024,
    p50Ms: o.latency ? pct(50) : undefined,
    p99Ms: o.latency ? pct(99) : undefined,
    noisePct: noisePct(busy, agentCpu + collectorCpu + (sCpu - s0), wallUs),
  };
}

const results: PhaseResult[][] = [];
try {
  if (opts.warmup > 0) {
    const w = await phase('warm-up', { connections: opts.warmup });
    process.stderr.write(`bench/pipeline: warm-up ${w.accepts} accepts, ${w.lost} lost\n`);
  }
  for (let r = 1; r <= opts.rounds; r++) {
    const round: PhaseResult[] = [];
    if (opts.seconds > 0 && opts.rate > 0) {
      round.push(await phase(`sustained ${opts.rate}/s`, { connections: opts.rate * opts.seconds, rate: opts.rate }));
    }
    if (opts.storm > 0) round.push(await phase('storm (max rate)', { connections: opts.storm }));
    if (opts.latencySeconds > 0 && opts.latencyRate > 0) {
      round.push(
        await phase(`latency ${opts.latencyRate}/s`, {
          connections: opts.latencyRate * opts.latencySeconds,
          rate: opts.latencyRate,
          latency: true,
        }),
      );
    }
    results.push(round);
    process.stdout.write(`\nround ${r}/${opts.rounds}\n${table(round)}\n`);
  }
} finally {
  stopping = true;
  agent.p.kill('SIGTERM');
  await exited(agent.p, 20_000);
  kill(collector.p);
  await api.close();
  cleanup();
}

function table(rows: PhaseResult[]): string {
  const f = (v: number | undefined, d = 1) => (v === undefined ? '-' : v.toFixed(d));
  return renderTable<PhaseResult>(
    [
      ['phase', 20, (r) => r.phase],
      ['accepts/s', 11, (r) => String(r.acceptsPerS)],
      ['delivered', 11, (r) => String(r.delivered)],
      ['lost', 7, (r) => String(r.lost)],
      ['rb full', 9, (r) => String(r.ringFull)],
      ['agent drops', 13, (r) => String(r.agentDrops)],
      ['agent µs/ev', 13, (r) => f(r.agentUs, 2)],
      ['(main thr.)', 13, (r) => f(r.agentMainUs, 2)],
      ['coll. µs/ev', 13, (r) => f(r.collectorUs, 2)],
      ['agent RSS med/peak MiB', 24, (r) => `${f(r.agentRssMedMiB, 0)}/${f(r.agentRssPeakMiB, 0)}`],
      ['coll. RSS MiB', 15, (r) => f(r.collectorRssPeakMiB, 0)],
      ['p50/p99 ms', 13, (r) => (r.p50Ms === undefined ? '-' : `${f(r.p50Ms)}/${f(r.p99Ms)}`)],
      ['noise %', 8, (r) => f(r.noisePct, 0)],
    ],
    rows,
  );
}

// Medians over rounds, per phase.
const phases = results[0]?.map((r) => r.phase) ?? [];
const lines: string[] = [`\nover ${results.length} round(s): median [min..max]`];
const summary: Record<string, Record<string, unknown>> = {};
for (const name of phases) {
  const rows = results.map((round) => round.find((r) => r.phase === name)!);
  const s = (k: keyof PhaseResult) => spread(rows.map((r) => Number(r[k] ?? Number.NaN)).filter((x) => !Number.isNaN(x)));
  const part = (label: string, k: keyof PhaseResult, d: number, suffix = '') => {
    const v = s(k);
    return v ? `${label} ${fmtSpread(v, d, suffix)}` : undefined;
  };
  lines.push(
    `  ${name.padEnd(20)} ${[
      part('agent', 'agentUs', 2, ' µs/ev'),
      part('main thread', 'agentMainUs', 2, ' µs/ev'),
      part('collector', 'collectorUs', 2, ' µs/ev'),
      part('agent RSS', 'agentRssMedMiB', 0, ' MiB'),
      part('peak', 'agentRssPeakMiB', 0, ' MiB'),
      part('collector RSS', 'collectorRssPeakMiB', 0, ' MiB'),
      part('lost', 'lost', 0),
      part('p99', 'p99Ms', 1, ' ms'),
    ]
      .filter(Boolean)
      .join(', ')}`,
  );
  summary[name] = Object.fromEntries(
    (
      [
        'agentUs',
        'agentMainUs',
        'collectorUs',
        'agentRssMedMiB',
        'agentRssPeakMiB',
        'collectorRssPeakMiB',
        'lost',
        'p50Ms',
        'p99Ms',
      ] as const
    ).map((k) => [k, s(k)]),
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
if (values.json) writeFileSync(values.json, `${JSON.stringify({ opts, machine, results, summary }, null, 2)}\n`);
const lost = results.flat().reduce((a, r) => a + r.lost, 0);
process.exit(lost > 0 ? 1 : 0);
