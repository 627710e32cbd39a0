import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  BENCH_JS,
  benchArgs,
  buildBenchJs,
  buildStorm,
  cpuWindow,
  exited,
  killChildren,
  machineInfo,
  noisePct,
  quiesce,
  ROOT,
  restoreBpfStats,
  startStorm,
  usageErrors,
  withBpfStats,
} from './proc.js';
import {
  type Column,
  fmt,
  fmtSpread,
  judge,
  type Row,
  type Run,
  renderTable,
  rowsOf,
  type Spread,
  spread,
  summarise,
  summaryText,
  table,
  verdictText,
} from './report.js';
import { type Attached, agentTracer, bpftraceTracer, type CliDetail, type CliLaunch, cliTracer, type Tracer } from './tracers.js';

/**
 * npm run bench: a bounded loopback accept storm (bench/storm.c), untraced,
 * under the doorwatch agent, under bpftrace, and untraced again, side by side.
 * See docs/benchmarks.md for what each number means.
 */

const ALL_MODES = ['doorwatch', 'event', 'decode', 'ring', 'cli', 'cli-node', 'bpftrace'] as const;
/** The CLI modes again, from another tree (--cli-base: a build from before a change), in the same rounds. */
const BASE_MODES = ['cli-base', 'cli-node-base'] as const;
type Mode = (typeof ALL_MODES)[number] | (typeof BASE_MODES)[number];

const USAGE = `usage: tsx bench/run.ts [options]
       tsx bench/run.ts --collector [options]   the collector alone (bench/collector.ts --help)
       tsx bench/run.ts --pipeline [options]    the agent end to end: agent -> collector -> jsonl (bench/pipeline.ts)
  --connections N     accepts per storm (default 100000)
  --rounds R          repeat the whole sequence R times (default 3; the table of each, then medians)
  --breakdown         every mode (as --modes ${ALL_MODES.join(',')}) plus the
                      userspace stages on their own (bench/micro.ts): where the agent's time goes
  --modes LIST        traced modes, in order (default doorwatch,bpftrace); always between two untraced runs:
                        doorwatch  the agent: decode + AcceptEvent + JSON line, as \`trace --output json\`
                        event      the agent without JSON        decode  decodeRecord only
                        ring       the ring reader alone
                        cli        \`./bin/doorwatch.js trace -o json --pid\` (executed, through its shebang)
                        cli-node   \`node bin/doorwatch.js trace -o json --pid\`
                        bpftrace   bpftrace, one printf per accept
                      the cli modes first run a cold storm of --cold-connections (40000) once the CLI
                      has started, then the warm storm; RSS peak and losses are the whole process's
  --clients C         connecting threads in the storm (default 2)
  --window W          max connections between connect() and accept() (default 128)
  --storm-cpus LIST   CPUs for every storm thread (default 0: the tracers get the other CPU);
                      "all" leaves it unpinned (the whole machine saturated)
  --cold              measure from the tracer's first event; by default a warm-up storm of
                      --warmup-connections (20000) runs under it first (steady state, JIT warm)
  --no-bpf-stats      leave kernel.bpf_stats_enabled alone (no BPF ns/event)
  --bpftrace-out F    bpftrace's stdout (default /dev/null; a file lets its lines and losses be counted)
  --cli-base DIR      also run the cli modes from DIR's bin/doorwatch.js (a built tree from before a change) as
                      cli-base and cli-node-base, in the same rounds: before and after under the same noise
  --timeout S         wall-clock bound per storm, seconds (default 120)
  --out F             machine-readable results (default .bench/last.json)
`;

// `npm run bench -- --collector [options]`: the collector benchmark (bench/collector.ts, issue 10) instead;
// `npm run bench -- --pipeline [options]`: the agent end to end (bench/pipeline.ts, issue 10).
// `npm run bench -- --peer-index`: the collector's peer index at 5 000 nodes / 150 000 pods (bench/peer-index.ts, issue 12).
if (process.argv[2] === '--collector' || process.argv[2] === '--pipeline' || process.argv[2] === '--peer-index') {
  const script = join(dirname(new URL(import.meta.url).pathname), `${process.argv[2].slice(2)}.ts`);
  // The peer index measures its heap: gc() between the snapshots.
  const gcFlag = process.argv[2] === '--peer-index' ? ['--expose-gc'] : [];
  const r = spawnSync(process.execPath, [...process.execArgv, ...gcFlag, script, ...process.argv.slice(3)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const args = benchArgs('bench', USAGE, {
  connections: { type: 'string', default: '100000' },
  rounds: { type: 'string', default: '3' },
  breakdown: { type: 'boolean', default: false },
  modes: { type: 'string' },
  clients: { type: 'string', default: '2' },
  window: { type: 'string', default: '128' },
  'storm-cpus': { type: 'string', default: '0' },
  cold: { type: 'boolean', default: false },
  'warmup-connections': { type: 'string', default: '20000' },
  'cold-connections': { type: 'string', default: '40000' },
  'cli-base': { type: 'string' },
  'no-bpf-stats': { type: 'boolean', default: false },
  'bpftrace-out': { type: 'string', default: '/dev/null' },
  timeout: { type: 'string', default: '120' },
  out: { type: 'string', default: join(ROOT, '.bench/last.json') },
});

const usage = usageErrors('bench', USAGE);

function parseModes(): Mode[] {
  const base: Mode[] = args['cli-base'] ? [...BASE_MODES] : [];
  if (args.breakdown) return [...ALL_MODES, ...base];
  const list = (args.modes ?? 'doorwatch,bpftrace').split(',').map((s) => s.trim());
  for (const m of list) if (!(ALL_MODES as readonly string[]).includes(m)) usage.fail(`unknown mode "${m}"`);
  return [...(list as Mode[]), ...base];
}

const opts = {
  connections: usage.int('connections', args.connections),
  rounds: usage.int('rounds', args.rounds),
  modes: parseModes(),
  micro: args.breakdown ?? false,
  clients: usage.int('clients', args.clients),
  window: usage.int('window', args.window),
  stormCpus: args['storm-cpus'] ?? '0',
  warmupConnections: args.cold ? 0 : usage.int('warmup-connections', args['warmup-connections']),
  coldConnections: usage.int('cold-connections', args['cold-connections']),
  bpfStats: !args['no-bpf-stats'],
  bpftraceOut: args['bpftrace-out'] ?? '/dev/null',
  timeoutS: usage.int('timeout', args.timeout),
  out: resolve(args.out ?? join(ROOT, '.bench/last.json')),
};

function tracerFor(mode: Mode): { tracer: Tracer; agent: boolean } {
  switch (mode) {
    case 'doorwatch':
      return { tracer: agentTracer('json'), agent: true };
    case 'event':
    case 'decode':
    case 'ring':
      return { tracer: agentTracer(mode), agent: true };
    case 'cli':
    case 'cli-node':
      return { tracer: cliTracer(mode === 'cli' ? 'exec' : 'node', opts), agent: false };
    case 'cli-base':
    case 'cli-node-base':
      return { tracer: cliTracer(mode === 'cli-base' ? 'exec' : 'node', opts, resolve(args['cli-base']!)), agent: false };
    case 'bpftrace':
      return { tracer: bpftraceTracer(opts.bpftraceOut), agent: false };
  }
}

// ---------------------------------------------------------------- the storm

/**
 * One storm: start it (it waits on stdin), attach the tracer, warm it up with
 * a storm of its own (another pid: processed, not counted), mark, release
 * the storm, then collect both sides.
 */
async function storm(mode: string, tracer: Tracer | undefined, connections = opts.connections): Promise<Run> {
  const s = startStorm({ ...opts, connections }, `storm (${mode})`);
  let attached: Attached | undefined;
  try {
    const ready = await s.ready;
    if (tracer) {
      attached = await tracer.attach(ready);
      if (opts.warmupConnections > 0) {
        await storm('warm-up', undefined, opts.warmupConnections);
        await attached.mark();
      }
    }
    const quietPct = mode === 'warm-up' ? 0 : await quiesce();
    if (quietPct > 10)
      process.stderr.write(`bench: warning: the machine is busy (${quietPct.toFixed(0)} % of a CPU) before ${mode}\n`);
    const win = cpuWindow(attached?.pid);
    s.go();
    const result = await s.result();
    const { busyUs, pidUs: tracerUs } = win.sample();
    await exited(s.child);
    const outcome = attached ? await attached.stop() : undefined;
    if (result.timedOut) {
      throw new Error(`${mode}: the storm timed out after ${result.elapsedS.toFixed(1)} s (${result.connections} accepted)`);
    }
    // What else ran during the storm: the machine's busy time minus the storm's and the tracer's.
    const noise = noisePct(busyUs, result.cpuUserUs + result.cpuSysUs + tracerUs, result.elapsedS * 1e6);
    return { mode, storm: result, tracer: outcome, noisePct: noise };
  } finally {
    s.kill();
  }
}

// ---------------------------------------------------------------- main

interface Micro {
  nsPerEvent: Record<string, number>;
  jsonBytes: number;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark loads eBPF programs and must run as root');
  buildStorm();
  buildBenchJs();

  const machine = { ...machineInfo(), bpftrace: execFileSync('bpftrace', ['--version'], { encoding: 'utf8' }).trim() };
  process.stderr.write(
    `bench: ${opts.connections} connections x ${opts.rounds} round(s), ${opts.clients} client threads on CPU(s) ${opts.stormCpus}; ` +
      `${machine.cpus} CPUs, kernel ${machine.kernel}, node ${machine.node}\n`,
  );

  // Warm-up (caches, page cache for the binaries, the network stack): not reported.
  await storm('warm-up', undefined, Math.min(opts.connections, 20_000));

  const rounds: { runs: Run[]; rows: Row[] }[] = [];
  for (let r = 1; r <= opts.rounds; r++) {
    const runs: Run[] = [];
    for (const mode of ['untraced', ...opts.modes, 'untraced'] as ('untraced' | Mode)[]) {
      process.stderr.write(`bench: round ${r}/${opts.rounds}: ${mode}...\n`);
      if (mode === 'untraced') {
        runs.push(await storm(mode, undefined));
        continue;
      }
      const { tracer, agent } = tracerFor(mode);
      // Program run time is only counted while kernel.bpf_stats_enabled=1.
      const run = opts.bpfStats ? await withBpfStats(() => storm(mode, tracer)) : await storm(mode, tracer);
      runs.push({ ...run, agent });
    }
    const rows = rowsOf(runs);
    rounds.push({ runs, rows });
    const untraced = runs.filter((x) => !x.tracer).map((x) => fmt(x.storm.acceptsPerS));
    process.stdout.write(`\nround ${r}/${opts.rounds} (untraced runs: ${untraced.join(', ')} accepts/s)\n${table(rows)}\n`);
  }

  const summary = summarise(rounds.map((x) => x.rows));
  if (opts.rounds > 1) process.stdout.write(`\n${summaryText(summary, opts.rounds)}\n`);

  // Where the agent's time goes, warm and without the kernel: one record, stage by stage.
  let micro: Micro | undefined;
  if (opts.micro) {
    const text = execFileSync(process.execPath, [join(BENCH_JS, 'bench/micro.js')], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    micro = JSON.parse(text) as Micro;
    const stages = Object.entries(micro.nsPerEvent).map(([k, v]) => `${k} ${(v / 1000).toFixed(2)}`);
    process.stdout.write(`\nuserspace stages, warm, no kernel (bench/micro.ts), µs/event: ${stages.join(', ')}\n`);
  }

  const cli = cliReport(rounds.flatMap((x) => x.runs));
  if (cli) process.stdout.write(`\n${cli.text}\n`);

  const dw = summary['doorwatch'];
  const bt = summary['bpftrace'];
  let ratio: number | undefined;
  if (dw?.cpuUsPerEvent && bt?.cpuUsPerEvent) {
    ratio = dw.cpuUsPerEvent.median / bt.cpuUsPerEvent.median;
    const kernel =
      dw.bpfNsPerEvent && bt.bpfNsPerEvent
        ? `; in-kernel BPF time ${fmt(dw.bpfNsPerEvent.median)} vs ${fmt(bt.bpfNsPerEvent.median)} ns/event`
        : '';
    process.stdout.write(
      `\ndoorwatch agent CPU per event = ${ratio.toFixed(2)} x bpftrace's ` +
        `(${fmt(dw.cpuUsPerEvent.median, 2)} vs ${fmt(bt.cpuUsPerEvent.median, 2)} µs/event)${kernel}\n`,
    );
  }

  const allRuns = rounds.flatMap((x) => x.runs);
  const targets = judge(summary, allRuns);
  if (targets) process.stdout.write(`${verdictText(targets)}\n`);

  mkdirSync(dirname(opts.out), { recursive: true });
  const report = {
    date: new Date().toISOString(),
    machine,
    options: opts,
    rounds,
    summary,
    micro,
    doorwatchVsBpftraceCpu: ratio,
    targets,
    cli: cli?.modes,
  };
  writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stderr.write(`bench: wrote ${opts.out}\n`);

  const lossy = allRuns.filter(
    (r) => r.agent && (r.storm.connections + r.storm.acceptErrors !== r.tracer?.events || r.tracer?.decodeErrors),
  );
  if (lossy.length) {
    const what = lossy.map(
      (r) => `${r.mode}: ${r.tracer?.events} of ${r.storm.connections} (ring buffer full ${r.tracer?.ringbufFull})`,
    );
    process.stderr.write(`bench: FAIL: doorwatch lost events: ${what.join('; ')}\n`);
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------- the CLI (issue 10, target 4)

const CLI_TARGETS = { warmUs: 2, coldUs: 4, rssMiB: 120 } as const;
const LAUNCH: Record<CliLaunch, string> = { exec: './bin/doorwatch.js', node: 'node bin/doorwatch.js' };
const CLI_MODES: Record<string, string> = {
  cli: LAUNCH.exec,
  'cli-node': LAUNCH.node,
  'cli-base': `${LAUNCH.exec} (base)`,
  'cli-node-base': `${LAUNCH.node} (base)`,
};

interface CliSummary {
  /** The tree whose bin/doorwatch.js ran. */
  root: string;
  warmUsPerEvent: Spread;
  coldUsPerEvent: Spread;
  /** The cold storm's events paying for the start too (Node, modules, BPF load): CPU from exec / cold accepts. */
  coldFromExecUsPerEvent: Spread;
  lostPerRound: number[];
  rssPeakMiB: Spread;
  startupCpuMs: Spread;
}

/** The trace CLI's figures per mode (launch way, and tree) over the rounds: warm and cold CPU per event, losses, RSS peak. */
function cliReport(runs: Run[]) {
  const byMode = new Map<
    string,
    { warm: number[]; cold: number[]; fromExec: number[]; lost: number[]; rss: number[]; startup: number[]; root: string }
  >();
  for (const r of runs) {
    const d = r.tracer?.detail as CliDetail | undefined;
    if (!d || !(r.mode in CLI_MODES)) continue;
    let e = byMode.get(r.mode);
    if (!e) {
      e = { warm: [], cold: [], fromExec: [], lost: [], rss: [], startup: [], root: d.root };
      byMode.set(r.mode, e);
    }
    e.warm.push(r.tracer!.cpuUs / (r.tracer!.events || 1));
    e.cold.push(d.coldCpuUs / d.coldAccepts);
    e.fromExec.push((d.startupCpuUs + d.coldCpuUs) / d.coldAccepts);
    e.lost.push(d.lost);
    e.rss.push(d.rssPeakKiB / 1024);
    e.startup.push(d.startupCpuUs / 1000);
  }
  if (!byMode.size) return undefined;
  const modes: Record<string, CliSummary> = Object.fromEntries(
    [...byMode].map(([m, e]) => [
      m,
      {
        root: e.root,
        warmUsPerEvent: spread(e.warm)!,
        coldUsPerEvent: spread(e.cold)!,
        coldFromExecUsPerEvent: spread(e.fromExec)!,
        lostPerRound: e.lost,
        rssPeakMiB: spread(e.rss)!,
        startupCpuMs: spread(e.startup)!,
      },
    ]),
  );
  const rows = Object.entries(modes).map(([mode, x]) => ({ mode, ...x }));
  const columns: Column<(typeof rows)[number]>[] = [
    ['launch', 29, (x) => CLI_MODES[x.mode] ?? x.mode],
    ['warm µs/event', 20, (x) => fmtSpread(x.warmUsPerEvent, 2)],
    [`cold µs/event (${opts.coldConnections})`, 24, (x) => fmtSpread(x.coldUsPerEvent, 2)],
    ['same, from exec', 22, (x) => fmtSpread(x.coldFromExecUsPerEvent, 2)],
    ['lost per round', 16, (x) => x.lostPerRound.join(',')],
    ['RSS peak MiB', 16, (x) => fmtSpread(x.rssPeakMiB, 0)],
    ['startup CPU ms', 14, (x) => fmtSpread(x.startupCpuMs, 0)],
  ];
  const verdicts = rows.map((x) => {
    const say = (ok: boolean) => (ok ? 'met' : 'MISSED');
    return (
      `  ${CLI_MODES[x.mode]}: warm <= ${CLI_TARGETS.warmUs} µs ${say(x.warmUsPerEvent.median <= CLI_TARGETS.warmUs)}, ` +
      `cold <= ${CLI_TARGETS.coldUs} µs ${say(x.coldUsPerEvent.median <= CLI_TARGETS.coldUs)}, ` +
      `0 lost in every round ${say(x.lostPerRound.every((n) => n === 0))}, ` +
      `RSS <= ${CLI_TARGETS.rssMiB} MiB ${say(x.rssPeakMiB.max <= CLI_TARGETS.rssMiB)}`
    );
  });
  const base = args['cli-base'] ? `(base) = ${resolve(args['cli-base'])}\n` : '';
  const text =
    `trace CLI (\`trace -o json --pid\`, stdout /dev/null; whole process, every thread, /proc), median [min..max] over rounds;\n` +
    `cold = the first ${opts.coldConnections} events once the CLI has started, "from exec" adds its start (Node, modules, BPF load):\n` +
    `${base}${renderTable(columns, rows)}\ntargets (issue 10):\n${verdicts.join('\n')}`;
  return { text, modes };
}

function cleanup(): void {
  killChildren();
  restoreBpfStats();
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    cleanup();
    process.exit(130);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    cleanup();
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
