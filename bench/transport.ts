import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { makePki } from '../test/helpers/pki.js';
import { freePort } from '../test/helpers/wait.js';
import { BENCH_JS, benchArgs, benchNodeArgs, buildBenchJs } from './proc.js';

/**
 * Transport benchmark: one agent (real spool + publisher) -> the collector
 * (mTLS gRPC) -> the jsonl sink, each in its own process; batch sizes side by
 * side. Prints events/s, CPU µs per event on each side, end-to-end p50/p99
 * latency (publish -> written by the sink). `npx tsx bench/transport.ts`.
 */
const USAGE = `usage: tsx bench/transport.ts [options]
  --events N         events per batch size (default 200000)
  --batches LIST     batch sizes to compare, comma-separated (default 1,100,500,1000)
  --latency-rate N   latency measured again at this offered load, events/s (default 10000)
`;
const values = benchArgs('bench/transport', USAGE, {
  events: { type: 'string', default: '200000' },
  batches: { type: 'string', default: '1,100,500,1000' },
  /** Latency is measured again at this offered load (events/s), below saturation. */
  'latency-rate': { type: 'string', default: '10000' },
});
const N = Number(values.events);
const sizes = values.batches!.split(',').map(Number);
const pki = makePki();
const client = pki.client('bench-agent');

// The two sides run as plain tsc output (tsx's per-call wrappers would double their cost).
buildBenchJs();

function child(script: string, args: string[]) {
  const js = join(BENCH_JS, 'bench', script.replace('./', '').replace('.ts', '.js'));
  const p = spawn(process.execPath, [...benchNodeArgs(), js, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: p.stdout! })[Symbol.asyncIterator]();
  return { p, next: async () => JSON.parse((await lines.next()).value as string) };
}

interface Row {
  batch: number;
  rate: number;
  eventsPerS: number;
  agentUs: number;
  collectorUs: number;
  p50Ms: number;
  p99Ms: number;
}
const rows: Row[] = [];
const latencyRate = Number(values['latency-rate']);
const runs: { batch: number; rate: number }[] = [
  ...sizes.map((batch) => ({ batch, rate: 0 })),
  ...(latencyRate > 0 ? [{ batch: 500, rate: latencyRate }] : []),
];
for (const { batch, rate } of runs) {
  // One event per message is slow, and a set rate takes N/rate seconds: fewer events for those.
  const n = batch === 1 ? Math.min(N, 20_000) : rate > 0 ? Math.min(N, rate * 5) : N;
  const port = await freePort();
  const col = child('./transport-collector.ts', [String(port), pki.caFile, pki.server.cert, pki.server.key]);
  await col.next();
  const agent = child('./transport-agent.ts', [
    String(port),
    pki.caFile,
    client.cert,
    client.key,
    String(n),
    String(batch),
    String(rate),
  ]);
  const a = await agent.next();
  col.p.kill('SIGTERM');
  const c = await col.next();
  rows.push({
    batch,
    rate,
    eventsPerS: Math.round(a.events / a.seconds),
    agentUs: a.cpuUs / a.events,
    collectorUs: c.cpuUs / c.events,
    p50Ms: c.p50Us / 1000,
    p99Ms: c.p99Us / 1000,
  });
  process.stderr.write(`transport: batch ${batch}${rate ? ` at ${rate}/s` : ''}: done\n`);
}
const pad = (s: string, n: number) => s.padEnd(n);
console.log(`\ntransport: ${N} events, agent -> collector (mTLS) -> jsonl file, one process each`);
console.log(
  `${pad('batch', 8)}${pad('offered', 10)}${pad('events/s', 12)}${pad('agent µs/ev', 14)}${pad('collector µs/ev', 17)}${pad('p50 ms', 9)}p99 ms`,
);
for (const r of rows) {
  console.log(
    `${pad(String(r.batch), 8)}${pad(r.rate ? `${r.rate}/s` : 'max', 10)}${pad(String(r.eventsPerS), 12)}${pad(r.agentUs.toFixed(2), 14)}${pad(r.collectorUs.toFixed(2), 17)}${pad(r.p50Ms.toFixed(1), 9)}${r.p99Ms.toFixed(1)}`,
  );
}
const best = rows.filter((r) => r.batch >= 100 && r.rate === 0);
const ok = best.some((r) => r.eventsPerS >= 100_000 && r.agentUs <= 2 && r.collectorUs <= 2);
console.log(`target >= 100k events/s with <= 2 µs CPU per event per side: ${ok ? 'met' : 'MISSED'} (batches >= 100)`);
