import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Publisher } from '../src/agent/publisher.js';
import { Spool } from '../src/agent/spool.js';
import type { AcceptEvent } from '../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../src/log/logger.js';
import { sampleEvent } from '../test/helpers/sample-events.js';

/**
 * The agent side of `bench/transport.ts`: the real spool + publisher sending
 * N realistic enriched events (as the agent makes them) to the collector over
 * mutual TLS, waiting until all are acknowledged.
 * argv: port ca cert key events batchSize. Prints one JSON line.
 */
const [port, ca, cert, key, nStr, batchStr, rateStr] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
  string?,
];
const N = Number(nStr);
const batch = Number(batchStr);
/** Offered load in events/s; 0 = as fast as the acks allow (throughput). */
const rate = Number(rateStr ?? 0);

const spoolDir = mkdtempSync(join(tmpdir(), 'doorwatch-bench-spool-'));
const spool = Spool.open({ dir: spoolDir, maxBytes: 1 << 30, log: silentLogger });
const id = spool.identity;
const publisher = new Publisher({
  target: `127.0.0.1:${port}`,
  tls: { ca: readFileSync(ca), cert: readFileSync(cert), key: readFileSync(key), serverName: 'localhost' },
  identity: { nodeName: 'bench-node', version: 'bench', ...id },
  spool,
  batch: { maxEvents: batch, maxDelayMs: 5 },
  window: { maxBatches: 64 },
  log: silentLogger,
});
publisher.start();

// A fully attributed event, as the agent sends them (test/helpers/sample-events.ts).
const template = sampleEvent({ nodeName: 'bench-node' });

const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let seq = spool.nextSeq();
const last = seq + BigInt(N) - 1n;
// Offer events in chunks as a capture would (one drain's worth at a time), yielding to I/O.
const CHUNK = rate > 0 ? Math.max(1, Math.round(rate / 100)) : 1000; // a 10 ms drain's worth at a set rate
for (let sent = 0; sent < N; sent += CHUNK) {
  const chunk: AcceptEvent[] = [];
  const t = nowNs();
  for (let i = 0; i < Math.min(CHUNK, N - sent); i++, seq++) {
    chunk.push({ ...template, seq, eventId: `${id.bootId}/${id.instanceId}/${seq}`, timeUnixNano: t, ktimeNs: t });
  }
  publisher.publish(chunk);
  if (rate > 0) {
    const due = t0 + ((sent + chunk.length) / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  // Keep at most ~4 windows of events ahead of the acks, like a live agent's steady state.
  while (seq - publisher.status().ackedSeq > BigInt(batch * 64 * 4)) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
}
while (publisher.status().ackedSeq < last) await new Promise((r) => setTimeout(r, 1));
const seconds = (performance.now() - t0) / 1000;
const c = process.cpuUsage(cpu0);
await publisher.close({ flushTimeoutMs: 1000 });
spool.close();
rmSync(spoolDir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify({ events: N, seconds, cpuUs: c.user + c.system })}\n`, () => process.exit(0));
