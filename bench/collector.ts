import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makePki } from '../test/helpers/pki.js';
import { startRsyslog } from '../test/helpers/rsyslog.js';
import { freePort, tcpListening } from '../test/helpers/wait.js';
import { chartEnv, fmtEnv, fmtLimit, MemoryCgroup, memoryLimit, processEnv } from './memory-limit.js';
import { benchArgs, exited, killChildren, ROOT, track } from './proc.js';
import { type Column, fmtSpread, renderTable, spread } from './report.js';

/**
 * Collector benchmark (issue 10): the real collector process, as users run it
 * (`bin/doorwatch.js collector --config`, built JS, default settings but the
 * sink), fed ONE agent-like Publish stream over mutual TLS by
 * bench/collector-gen.ts (pre-encoded batches: the generator is cheap, so the
 * collector gets the CPU). Per sink (jsonl native to a file; syslog OCSF to a
 * real rsyslogd over TLS) and round: saturation (as fast as the acks allow),
 * then a fixed offered rate. Collector CPU is the whole process from /proc
 * (utime + stime, every thread); latency is from send to the line in the
 * jsonl file (rate runs). Medians [min..max] over the rounds. The collector
 * runs in the chart's memory limit and with its NODE_OPTIONS, as its Deployment
 * does (bench/memory-limit.ts).
 *
 * `npx tsx bench/collector.ts`, or `npm run bench -- --collector`.
 */
const USAGE = `usage: tsx bench/collector.ts [options]
  --rounds R        rounds (default 3)
  --events N        measured events per saturated run (default 1000000: long enough for the heap to
                    reach its steady size; 200000 ended before the first full GC and hid the peak)
  --rate N          offered events/s of the rate runs (default 10000)
  --rate-seconds S  length of a rate run (default 5)
  --batch B         events per Publish batch (default 500; rate runs: rate/100, a 10 ms drain)
  --window W        batches in flight before the generator waits for an ack (default 64, as the agent)
  --pods P          distinct pods the events come from (default 16)
  --contexts on|off each pod's fields once per batch when the collector announces batch contexts, as agents
                    send them (default on); off: whole events, as to a collector from before them
  --sinks LIST      jsonl,syslog (default both)
  --timeout S       wall-clock bound per run (default 120)
  --bin LIST        collector executables to compare, comma-separated (default bin/doorwatch.js of
                    this tree; e.g. /tmp/base/bin/doorwatch.js,bin/doorwatch.js for before/after)
The collector runs as the chart's Deployment runs it: in its memory limit (collector.resources.limits.memory,
a memory cgroup) with its NODE_OPTIONS (collector.nodeOptions) and MALLOC_MMAP_THRESHOLD_
(collector.mallocMmapThreshold). BENCH_COLLECTOR_MEMORY=512Mi sets another limit (none: unconfined),
BENCH_COLLECTOR_NODE_OPTIONS other options, BENCH_COLLECTOR_MALLOC_MMAP_THRESHOLD another threshold ("": defaults).
`;
const args = benchArgs('bench/collector', USAGE, {
  rounds: { type: 'string', default: '3' },
  events: { type: 'string', default: '1000000' },
  rate: { type: 'string', default: '10000' },
  'rate-seconds': { type: 'string', default: '5' },
  batch: { type: 'string', default: '500' },
  pods: { type: 'string', default: '16' },
  contexts: { type: 'string', default: 'on' },
  window: { type: 'string', default: '64' },
  sinks: { type: 'string', default: 'jsonl,syslog' },
  timeout: { type: 'string', default: '120' },
  bin: { type: 'string' },
});
if (args.contexts !== 'on' && args.contexts !== 'off') {
  process.stderr.write(`bench/collector: --contexts must be on or off, not "${args.contexts}"\n`);
  process.exit(2);
}
const rounds = Number(args.rounds);
/** The chart's collector memory limit and environment (BENCH_COLLECTOR_MEMORY, BENCH_COLLECTOR_NODE_OPTIONS, BENCH_COLLECTOR_MALLOC_MMAP_THRESHOLD override). */
const limit = memoryLimit('collector');
const env = chartEnv('collector');
const N = Number(args.events);
const rate = Number(args.rate);
const rateEvents = Math.round(rate * Number(args['rate-seconds']));
const batch = Number(args.batch);
const sinks = args.sinks!.split(',') as ('jsonl' | 'syslog')[];
const timeoutS = Number(args.timeout);
const bins = (args.bin ?? join(ROOT, 'bin/doorwatch.js')).split(',').map((b) => resolve(b));
/** A collector's name in the tables: the directory its bin/ is in. */
const binLabel = (b: string) =>
  bins.length === 1 ? '' : b === resolve(ROOT, 'bin/doorwatch.js') ? 'this tree' : basename(dirname(dirname(b)));

process.once('SIGINT', () => {
  killChildren();
  process.exit(130);
});

// The generator runs as plain JS (tsx's transform would cost it CPU the collector should have).
const GEN = join(ROOT, 'build/bench-collector/collector-gen.mjs');
mkdirSync(join(ROOT, 'build/bench-collector'), { recursive: true });
execFileSync(
  join(ROOT, 'node_modules/.bin/esbuild'),
  [
    join(ROOT, 'bench/collector-gen.ts'),
    '--bundle',
    '--platform=node',
    '--format=esm',
    '--packages=external',
    `--outfile=${GEN}`,
    '--log-level=warning',
  ],
  { stdio: 'inherit' },
);

const pki = makePki();
const client = pki.client('bench-agent');
const dir = mkdtempSync(join(tmpdir(), 'doorwatch-bench-collector-'));

async function listening(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await tcpListening(port)) return;
    await sleep(50);
  }
  throw new Error(`collector did not listen on ${port} within ${timeoutMs} ms`);
}

interface GenResult {
  events: number;
  seconds: number;
  eventsPerS: number;
  cpuUsPerEvent: number;
  mainUsPerEvent: number;
  genUsPerEvent: number;
  othersPct: number;
  rssMiB: number;
  hwmMiB: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

async function gen(opts: Record<string, unknown>): Promise<GenResult> {
  const p = track(spawn(process.execPath, [GEN, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  p.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const code = await exited(p, (timeoutS + 30) * 1000);
  if (code !== 0) throw new Error(`collector-gen exited ${code}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as GenResult;
}

const rsyslog = sinks.includes('syslog')
  ? await startRsyslog({ tls: { caFile: pki.caFile, certFile: pki.server.cert, keyFile: pki.server.key } })
  : undefined;

interface Row {
  round: number;
  bin: string;
  sink: string;
  run: string;
  r: GenResult;
}
const rows: Row[] = [];

try {
  for (let round = 1; round <= rounds; round++) {
    for (const sink of sinks)
      for (const bin of bins) {
        const port = await freePort();
        const jsonlPath = join(dir, `events-${round}-${bins.indexOf(bin)}.jsonl`);
        const sinkConfig =
          sink === 'jsonl'
            ? { name: 'archive', type: 'jsonl', path: jsonlPath }
            : {
                name: 'siem',
                type: 'syslog',
                format: 'ocsf',
                host: '127.0.0.1',
                port: rsyslog!.port,
                tls: { ca: pki.caFile, serverName: 'localhost' },
              };
        const cfgFile = join(dir, `collector-${sink}-${round}-${bins.indexOf(bin)}.yaml`);
        // JSON is YAML. Everything but the sink is the default.
        writeFileSync(
          cfgFile,
          JSON.stringify({
            listen: `127.0.0.1:${port}`,
            tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.caFile },
            sinks: [sinkConfig],
          }),
        );
        // As users run it: the executable (its shebang carries the V8 flags), the built JS in dist/.
        // BENCH_COLLECTOR_NODE_ARGS="--cpu-prof ...": run it as `node --max-semi-space-size=64 <those> bin/doorwatch.js`.
        const extra = (process.env.BENCH_COLLECTOR_NODE_ARGS ?? '').split(' ').filter(Boolean);
        const [cmd, argv] = extra.length ? [process.execPath, ['--max-semi-space-size=64', ...extra, bin]] : [bin, []];
        // In the chart's memory limit, as its Deployment runs it (bench/memory-limit.ts: V8 sizes its heap from it).
        const cg = limit === undefined ? undefined : new MemoryCgroup('doorwatch-bench-collector', limit);
        const [c, a] = cg
          ? cg.wrap(cmd, [...argv, 'collector', '--config', cfgFile])
          : [cmd, [...argv, 'collector', '--config', cfgFile]];
        const col = track(spawn(c, a, { stdio: ['ignore', 'ignore', 'pipe'], env: processEnv(env) }));
        let log = '';
        col.stderr!.on('data', (d: Buffer) => {
          log = (log + d.toString()).slice(-4000);
        });
        try {
          await listening(port);
          const base = {
            port,
            ca: pki.caFile,
            cert: client.cert,
            key: client.key,
            pid: col.pid,
            pods: Number(args.pods),
            contexts: args.contexts !== 'off',
            timeoutS,
          };
          const sat = await gen({ ...base, events: N, warmup: 20_000, rate: 0, batch, window: Number(args.window) });
          rows.push({ round, bin, sink, run: 'max', r: sat });
          const rb = Math.max(1, Math.round(rate / 100));
          const paced = await gen({
            ...base,
            events: rateEvents,
            warmup: rate,
            rate,
            batch: rb,
            window: 64 * Math.ceil(500 / rb),
            ...(sink === 'jsonl' ? { tail: jsonlPath } : {}),
          });
          rows.push({ round, bin, sink, run: `${rate}/s`, r: paced });
        } catch (e) {
          process.stderr.write(`collector stderr (tail):\n${log}\n`);
          throw e;
        } finally {
          col.kill('SIGTERM');
          await exited(col, 20_000);
          cg?.remove();
          // Every run writes hundreds of MB (jsonl lines; rsyslog's copy of every message): never keep them.
          for (const f of readdirSync(dir)) if (f.startsWith('events-')) rmSync(join(dir, f), { force: true });
          if (rsyslog && existsSync(rsyslog.outFile)) truncateSync(rsyslog.outFile, 0);
        }
        process.stderr.write(`collector bench: round ${round} ${sink} ${binLabel(bin)} done\n`);
      }
  }
} finally {
  await rsyslog?.stop('SIGTERM');
  killChildren();
  rmSync(dir, { recursive: true, force: true });
  if (rsyslog) rmSync(rsyslog.dir, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
}

const label = (sink: string) => (sink === 'jsonl' ? 'jsonl native' : 'syslog ocsf');
const binCol: Column<{ bin: string }>[] = bins.length > 1 ? [['collector', 12, (x) => binLabel(x.bin).slice(-12)]] : [];
const f = (v: number | null, d: number) => (v === null ? '-' : v.toFixed(d));
console.log(
  `\ncollector: one agent stream (mTLS), ${N} events saturated, ${rateEvents} at ${rate}/s; CPU = collector process, all threads (/proc); ` +
    `memory limit ${fmtLimit(limit)}, ${fmtEnv(env)}`,
);
console.log(
  renderTable<Row>(
    [
      ['round', 6, (x) => String(x.round)],
      ...binCol,
      ['sink', 13, (x) => label(x.sink)],
      ['offered', 9, (x) => x.run],
      ['events/s', 9, (x) => f(x.r.eventsPerS, 0)],
      ['CPU µs/ev', 10, (x) => f(x.r.cpuUsPerEvent, 2)],
      ['main thr', 9, (x) => f(x.r.mainUsPerEvent, 2)],
      ['RSS MiB', 8, (x) => f(x.r.rssMiB, 0)],
      ['peak MiB', 9, (x) => f(x.r.hwmMiB, 0)],
      ['p50 ms', 7, (x) => f(x.r.p50Ms, 1)],
      ['p99 ms', 7, (x) => f(x.r.p99Ms, 1)],
      ['gen µs/ev', 10, (x) => f(x.r.genUsPerEvent, 2)],
      ['others %CPU', 11, (x) => f(x.r.othersPct, 0)],
    ],
    rows,
  ),
);
console.log(`\nmedian [min..max] over ${rounds} round(s):`);
const groups = [...new Set(rows.map((x) => `${x.sink}|${x.run}|${x.bin}`))];
const sum = groups.map((g) => {
  const rs = rows.filter((x) => `${x.sink}|${x.run}|${x.bin}` === g).map((x) => x.r);
  const sp = (k: keyof GenResult) => spread(rs.map((r) => r[k]).filter((v): v is number => typeof v === 'number'));
  const [sink, run, bin] = g.split('|') as [string, string, string];
  return {
    sink,
    run,
    bin,
    eps: sp('eventsPerS'),
    cpu: sp('cpuUsPerEvent'),
    rss: sp('hwmMiB'),
    p99: sp('p99Ms'),
    p50: sp('p50Ms'),
  };
});
type S = (typeof sum)[number];
const fs = (s: ReturnType<typeof spread>, d: number) => (s ? fmtSpread(s, d) : '-');
console.log(
  renderTable<S>(
    [
      ...binCol,
      ['sink', 13, (x) => label(x.sink)],
      ['offered', 9, (x) => x.run],
      ['events/s', 24, (x) => fs(x.eps, 0)],
      ['CPU µs/ev', 20, (x) => fs(x.cpu, 2)],
      ['peak RSS MiB', 16, (x) => fs(x.rss, 0)],
      ['p50 ms', 18, (x) => fs(x.p50, 1)],
      ['p99 ms', 18, (x) => fs(x.p99, 1)],
    ],
    sum,
  ),
);
// Targets: judged on the last --bin (this tree by default).
const judged = bins.at(-1)!;
const med = (sink: string, run: string, k: 'eps' | 'cpu' | 'rss' | 'p99') =>
  sum.find((s) => s.sink === sink && s.run === run && s.bin === judged)?.[k]?.median;
const verdict = (name: string, v: number | undefined, ok: (v: number) => boolean, unit: string) =>
  console.log(`target ${name}: ${v === undefined ? 'not measured' : `${v.toFixed(2)}${unit} ${ok(v) ? 'met' : 'MISSED'}`}`);
console.log('');
verdict('jsonl native <= 2 µs/event (saturated)', med('jsonl', 'max', 'cpu'), (v) => v <= 2, ' µs');
verdict('syslog ocsf <= 3 µs/event (saturated)', med('syslog', 'max', 'cpu'), (v) => v <= 3, ' µs');
verdict('>= 150k events/s (jsonl, saturated)', med('jsonl', 'max', 'eps'), (v) => v >= 150_000, ' events/s');
const jsonlPeaks = rows.filter((x) => x.sink === 'jsonl' && x.bin === judged).map((x) => x.r.hwmMiB);
// Without a jsonl run there is no peak to judge (Math.max() of nothing is -Infinity, which passed).
verdict('peak RSS <= 150 MiB (jsonl)', jsonlPeaks.length ? Math.max(...jsonlPeaks) : undefined, (v) => v <= 150, ' MiB');
verdict(`p99 <= 100 ms at ${rate}/s (jsonl)`, med('jsonl', `${rate}/s`, 'p99'), (v) => v <= 100, ' ms');
