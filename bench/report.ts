import { bpfNsPerAccept, type StormResult } from './protocol.js';
import type { TracerOutcome } from './tracers.js';

/** From runs to rows, the table, the summary over rounds, and the verdict on the targets. */

export const TARGETS = { overheadPct: 5, cpuUsPerEvent: 2, lost: 0 } as const;

export interface Run {
  /** Mode key: untraced, doorwatch, event, decode, ring, cli, bpftrace. */
  mode: string;
  storm: StormResult;
  tracer?: TracerOutcome;
  /** bench/agent.ts runs: their losses fail the benchmark. */
  agent?: boolean;
  /** CPU used by neither the storm nor the tracer while the storm ran, % of one CPU (other load: noise). */
  noisePct?: number;
}

export interface Row {
  mode: string;
  acceptsPerS: number;
  overheadPct?: number;
  cpuUsPerEvent?: number;
  events?: number;
  /** Accepts the storm made minus events the tracer delivered (or what it reports lost). */
  lost?: number;
  ringbufFull?: number;
  lagMaxMs?: number;
  lagP99Ms?: number;
  bpfNsPerEvent?: number;
  /** The storm's own CPU (user + system) per connection: in-kernel probe cost lands here. */
  stormCpuUsPerConn: number;
  noisePct?: number;
}

export const LABELS: Record<string, string> = {
  untraced: 'untraced',
  doorwatch: 'doorwatch',
  event: '  no JSON (event)',
  decode: '  decode only',
  ring: '  ring only',
  cli: '  doorwatch CLI',
  bpftrace: 'bpftrace',
};

const stormCpuPerConn = (s: StormResult) => (s.cpuUserUs + s.cpuSysUs) / s.connections;

/** A traced run against the untraced rate. */
export function rowOf(run: Run, untracedRate: number): Row {
  const t = run.tracer!;
  const expected = run.storm.connections + run.storm.acceptErrors;
  // Per event: the events it delivered when countable (doorwatch), else the storm's accepts.
  const perEvent = t.events !== undefined && t.events > 0 ? t.events : expected;
  return {
    mode: run.mode,
    acceptsPerS: run.storm.acceptsPerS,
    overheadPct: (1 - run.storm.acceptsPerS / untracedRate) * 100,
    cpuUsPerEvent: t.cpuUs / perEvent,
    events: t.events,
    lost: t.events !== undefined ? expected - t.events : t.reportedLost,
    ringbufFull: t.ringbufFull,
    lagMaxMs: t.lagMaxMs,
    lagP99Ms: t.lagP99Ms,
    // Per traced accept (enter + exit), whether or not the ring had room for its record.
    bpfNsPerEvent: bpfNsPerAccept(t.bpf),
    stormCpuUsPerConn: stormCpuPerConn(run.storm),
    noisePct: run.noisePct,
  };
}

/** One round: the untraced row is the mean of the untraced runs (before and after), the rest against it. */
export function rowsOf(runs: Run[]): Row[] {
  const untraced = runs.filter((r) => !r.tracer);
  const rate = untraced.reduce((a, r) => a + r.storm.acceptsPerS, 0) / untraced.length;
  const base: Row = {
    mode: 'untraced',
    acceptsPerS: rate,
    stormCpuUsPerConn: untraced.reduce((a, r) => a + stormCpuPerConn(r.storm), 0) / untraced.length,
    noisePct: Math.max(...untraced.map((r) => r.noisePct ?? 0)),
  };
  return [base, ...runs.filter((r) => r.tracer).map((r) => rowOf(r, rate))];
}

export const fmt = (v: number | undefined, digits = 0, suffix = '') =>
  v === undefined || Number.isNaN(v) ? '-' : `${v.toFixed(digits)}${suffix}`;

const COLUMNS: Column<Row>[] = [
  ['mode', 18, (r) => LABELS[r.mode] ?? r.mode],
  ['accepts/s', 10, (r) => fmt(r.acceptsPerS)],
  ['overhead', 9, (r) => fmt(r.overheadPct, 1, ' %')],
  ['CPU µs/event', 13, (r) => fmt(r.cpuUsPerEvent, 2)],
  ['events', 8, (r) => fmt(r.events)],
  ['lost', 6, (r) => fmt(r.lost)],
  ['rb full', 8, (r) => fmt(r.ringbufFull)],
  ['lag max/p99 ms', 15, (r) => (r.lagMaxMs === undefined ? '-' : `${fmt(r.lagMaxMs, 1)}/${fmt(r.lagP99Ms, 1)}`)],
  ['BPF ns/event', 13, (r) => fmt(r.bpfNsPerEvent)],
  ['noise %', 7, (r) => fmt(r.noisePct)],
];

/** A fixed-width text table: [header, width, cell] per column. */
export type Column<R> = [string, number, (r: R) => string];

export function renderTable<R>(columns: Column<R>[], rows: R[]): string {
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(columns[i]![1]))
      .join(' ')
      .trimEnd();
  return [line(columns.map((c) => c[0])), ...rows.map((r) => line(columns.map((c) => c[2](r))))].join('\n');
}

export function table(rows: Row[]): string {
  return renderTable(COLUMNS, rows);
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** median [min..max] of some numbers; undefined for none. */
export function spread(xs: number[]): Spread | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2, min: s[0]!, max: s[s.length - 1]! };
}

export const fmtSpread = (s: Spread, digits: number, suffix = '') =>
  s.min === s.max
    ? fmt(s.median, digits, suffix)
    : `${fmt(s.median, digits)} [${fmt(s.min, digits)}..${fmt(s.max, digits)}]${suffix}`;

export interface ModeSummary {
  acceptsPerS: Spread;
  overheadPct?: Spread;
  cpuUsPerEvent?: Spread;
  bpfNsPerEvent?: Spread;
  lagMaxMs?: Spread;
  /** Summed over rounds. */
  lost?: number;
  ringbufFull?: number;
}

/** Per mode over all rounds: median [min..max]. */
export function summarise(rounds: Row[][]): Record<string, ModeSummary> {
  const modes = rounds[0]!.map((r) => r.mode);
  const values = (mode: string, k: keyof Row) =>
    rounds.map((rows) => rows.find((r) => r.mode === mode)?.[k]).filter((v): v is number => typeof v === 'number');
  const sum = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) : undefined);
  return Object.fromEntries(
    modes.map((m) => [
      m,
      {
        acceptsPerS: spread(values(m, 'acceptsPerS'))!,
        overheadPct: spread(values(m, 'overheadPct')),
        cpuUsPerEvent: spread(values(m, 'cpuUsPerEvent')),
        bpfNsPerEvent: spread(values(m, 'bpfNsPerEvent')),
        lagMaxMs: spread(values(m, 'lagMaxMs')),
        lost: sum(values(m, 'lost')),
        ringbufFull: sum(values(m, 'ringbufFull')),
      },
    ]),
  );
}

export function summaryText(summary: Record<string, ModeSummary>, rounds: number): string {
  const lines = [`over ${rounds} rounds: median [min..max]`];
  for (const [m, s] of Object.entries(summary)) {
    const parts = [`accepts/s ${fmtSpread(s.acceptsPerS, 0)}`];
    if (s.overheadPct) parts.push(`overhead ${fmtSpread(s.overheadPct, 1, ' %')}`);
    if (s.cpuUsPerEvent) parts.push(`CPU ${fmtSpread(s.cpuUsPerEvent, 2, ' µs/event')}`);
    if (s.bpfNsPerEvent) parts.push(`BPF ${fmtSpread(s.bpfNsPerEvent, 0, ' ns/event')}`);
    if (s.lost !== undefined) parts.push(`lost ${s.lost}`);
    lines.push(`  ${(LABELS[m] ?? m).trim().padEnd(16)} ${parts.join(', ')}`);
  }
  return lines.join('\n');
}

export interface Verdict {
  target: number;
  measured: number;
  met: boolean;
}

/** The targets, judged on the doorwatch (JSON) mode's medians; losses over every agent run. */
export function judge(summary: Record<string, ModeSummary>, runs: Run[]): Record<keyof typeof TARGETS, Verdict> | undefined {
  const dw = summary['doorwatch'];
  if (!dw?.overheadPct || !dw.cpuUsPerEvent) return undefined;
  // Every agent mode runs the same probes: a lost event in any of them counts.
  const lost = runs
    .filter((r) => r.agent)
    .reduce((a, r) => {
      const row = rowOf(r, 1);
      return a + Math.max(0, row.lost ?? 0) + (r.tracer?.decodeErrors ?? 0);
    }, 0);
  return {
    overheadPct: {
      target: TARGETS.overheadPct,
      measured: dw.overheadPct.median,
      met: dw.overheadPct.median <= TARGETS.overheadPct,
    },
    cpuUsPerEvent: {
      target: TARGETS.cpuUsPerEvent,
      measured: dw.cpuUsPerEvent.median,
      met: dw.cpuUsPerEvent.median <= TARGETS.cpuUsPerEvent,
    },
    lost: { target: TARGETS.lost, measured: lost, met: lost === 0 },
  };
}

export function verdictText(v: Record<keyof typeof TARGETS, Verdict>): string {
  const say = (x: Verdict) => (x.met ? 'met' : 'MISSED');
  return (
    `targets: throughput overhead <= ${TARGETS.overheadPct} %: ${say(v.overheadPct)} (${fmt(v.overheadPct.measured, 1)} %); ` +
    `agent CPU <= ${TARGETS.cpuUsPerEvent} µs/event: ${say(v.cpuUsPerEvent)} (${fmt(v.cpuUsPerEvent.measured, 2)}); ` +
    `lost = 0: ${say(v.lost)} (${v.lost.measured})`
  );
}
