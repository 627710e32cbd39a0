import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCollector } from '../src/collector/collector.js';
import { parseCollectorConfig } from '../src/collector/config.js';
import { silentLogger } from '../src/log/logger.js';
import { sinkRegistry } from '../src/sinks/registry.js';
import type { Sink, SinkFactory, SinkRecord } from '../src/sinks/sink.js';

/**
 * The collector side of `bench/transport.ts`, in its own process so its CPU is
 * its own: mTLS gRPC server -> the real jsonl sink (a file), wrapped to time
 * each event from its publish (timeUnixNano, set by the publisher) to written.
 * argv: port ca cert key. Prints {"ready":true}, then on SIGTERM one JSON line.
 */
const [port, ca, cert, key] = process.argv.slice(2) as [string, string, string, string];
const latenciesUs: number[] = [];
let events = 0;

const jsonl = sinkRegistry.jsonl!;
const timed: SinkFactory = {
  type: 'timed_jsonl',
  parse: (c, p) => jsonl.parse(c, p),
  async create(name, config, deps): Promise<Sink> {
    const inner = await jsonl.create(name, config, deps);
    return {
      name,
      async write(batch: SinkRecord[]) {
        await inner.write(batch);
        const now = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
        for (const r of batch) {
          if (r.kind !== 'event') continue;
          events++;
          latenciesUs.push(Number((now - r.event.timeUnixNano) / 1000n));
        }
      },
      flush: () => inner.flush(),
      close: () => inner.close(),
    };
  },
};

const dir = mkdtempSync(join(tmpdir(), 'doorwatch-bench-collector-'));
const registry = { timed_jsonl: timed };
const config = parseCollectorConfig(
  {
    listen: `127.0.0.1:${port}`,
    tls: { cert, key, clientCa: ca },
    rateLimit: { eventsPerSecond: 10_000_000, burst: 10_000_000 },
    sinks: [
      {
        name: 'file',
        type: 'timed_jsonl',
        required: true,
        path: join(dir, 'events.jsonl'),
        batch: { maxRecords: 2000, maxDelay: '5ms' },
      },
    ],
  },
  'bench',
  registry,
);
const collector = await startCollector(config, { registry, log: silentLogger });
const cpu0 = process.cpuUsage();
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

process.once('SIGTERM', async () => {
  const c = process.cpuUsage(cpu0);
  await collector.stop();
  // The jsonl file grows by ~440 MB per 200 000-event run: left behind, every run filled /tmp further.
  rmSync(dir, { recursive: true, force: true });
  latenciesUs.sort((a, b) => a - b);
  const pct = (p: number) => latenciesUs[Math.min(latenciesUs.length - 1, Math.floor((p / 100) * latenciesUs.length))] ?? 0;
  process.stdout.write(
    `${JSON.stringify({ events, cpuUs: c.user + c.system, p50Us: pct(50), p99Us: pct(99), maxUs: latenciesUs.at(-1) ?? 0 })}\n`,
    () => process.exit(0),
  );
});
