import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteSink, encodeEventInto } from '../src/agent/event-encoder.js';
import { LiveBatches } from '../src/agent/live-batches.js';
import { Spool } from '../src/agent/spool.js';
import type { AcceptEvent } from '../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../src/log/logger.js';
import { sampleEvent } from '../test/helpers/sample-events.js';

/**
 * The agent's per-event stages after capture and enrichment, warm, no kernel
 * and no network: what `sequence` (seq and event id), the spool's append
 * (encode, seal, one write() per batch to a real file) and the live batches
 * (the bytes a Publish request carries) cost per event. Batches of --batch
 * events (default 200: 20 000/s drained every 10 ms), shaped as the enricher
 * hands them over: one frozen process, namespaces, cgroup, local endpoint and
 * container and one shared Pod per pod, a fresh peer per accept.
 *
 *   npx tsc -p bench/tsconfig.json && node build/bench-js/bench/agent-micro.js [batch] [seconds]
 *   (ROUNDS=3 by default; ONLY=<stage> runs one stage, for a profiler; VERBOSE=1 prints every round)
 */

const batch = Number(process.argv[2] ?? 200);
const seconds = Number(process.argv[3] ?? 3);

const template = sampleEvent();
const shared = {
  process: Object.freeze({ ...template.process! }),
  namespaces: Object.freeze({ ...template.namespaces! }),
  cgroup: Object.freeze({ ...template.cgroup! }),
  container: Object.freeze({ ...template.container! }),
  enrichment: Object.freeze({ ...template.enrichment!, missing: Object.freeze([...template.enrichment!.missing]) as string[] }),
  local: Object.freeze({ ...template.socket!.local! }),
  pod: template.pod!,
};
function eventsOf(n: number): AcceptEvent[] {
  return Array.from({ length: n }, (_, i) => {
    const e = sampleEvent();
    return {
      ...e,
      process: shared.process,
      namespaces: shared.namespaces,
      cgroup: shared.cgroup,
      container: shared.container,
      enrichment: shared.enrichment,
      pod: shared.pod,
      socket: { ...e.socket!, local: shared.local, peer: { ip: `10.0.${i & 255}.${(i >> 8) & 255}`, port: 40000 + i } },
    } as AcceptEvent;
  });
}

const dir = mkdtempSync(join(tmpdir(), 'doorwatch-agent-micro-'));
const spool = Spool.open({ dir, maxBytes: '1GiB', log: silentLogger });
const id = spool.identity;
// As the agent: the event id is the spool's to write ("<boot id>/<instance id>/<seq>", straight into the bytes).
const idPrefix = Buffer.from(`${id.bootId}/${id.instanceId}/`);
const live = new LiveBatches(500, Date.now);
const sink = new ByteSink();
const events = eventsOf(batch);
let seq = spool.nextSeq();

function sequence(b: AcceptEvent[]): void {
  for (const ev of b) {
    ev.seq = seq;
    ev.eventId = '';
    ev.timeUnixNano += 1000n;
    seq++;
  }
}

type Stage = (b: AcceptEvent[]) => void;
const stages: Record<string, Stage> = {
  sequence,
  'sequence + encode': (b) => {
    sequence(b);
    sink.pos = 0;
    for (const ev of b) encodeEventInto(sink, ev, idPrefix);
  },
  'sequence + spool.append': (b) => {
    sequence(b);
    spool.append(b);
    spool.ack(id, seq - 1n);
  },
  'sequence + spool.append + live batches': (b) => {
    sequence(b);
    const { accepted, buf, starts, ends } = spool.append(b);
    for (let i = 0; i < accepted.length; i++) live.append(accepted[i]!.seq, buf, starts[i]!, ends[i]!);
    live.bound(16 << 20);
    spool.ack(id, seq - 1n);
    live.dropBelow(seq);
  },
  // The requests as sent: whole events (a collector from before batch contexts), then with contexts.
  '… + requests, whole events': (b) => appendAndSend(b, false),
  '… + requests, batch contexts': (b) => appendAndSend(b, true),
};

function appendAndSend(b: AcceptEvent[], contexts: boolean): void {
  sequence(b);
  const { accepted, buf, starts, ends, tails, tailAt } = spool.append(b);
  for (let i = 0; i < accepted.length; i++) live.append(accepted[i]!.seq, buf, starts[i]!, ends[i]!, tails[i], tailAt[i]);
  const sent = contexts ? withContexts : whole;
  for (let r = live.takeRequest(undefined, contexts); r; r = live.takeRequest(undefined, contexts)) {
    sent.bytes += r.bytes.length;
    sent.events += r.count;
    r.release();
  }
  spool.ack(id, seq - 1n);
}
/** Request bytes sent per mode, for bytes per event on the wire. */
const whole = { bytes: 0, events: 0 };
const withContexts = { bytes: 0, events: 0 };

/**
 * The event loop runs between batches, as between the agent's drains: the spool's background
 * fdatasync of a closed segment, and the close that frees a deleted segment's pages, complete there.
 * (Without it, deleted segments stayed open and the page cache grew until reclaim doubled the cost.)
 */
async function run(stage: Stage, ms: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let n = 0;
  while (Number(process.hrtime.bigint() - t0) / 1e6 < ms) {
    stage(events);
    n += events.length;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const c = process.cpuUsage(c0);
  sys.get(stage)!.push(c.system / (c.user + c.system));
  return ((c.user + c.system) * 1000) / n;
}
/** Per stage: the kernel's share of its CPU (the spool's write(), page cache, deleted segments). */
const sys = new Map<Stage, number[]>(Object.values(stages).map((st) => [st, []]));

// Rounds of every stage in turn: the spool's cost depends on the file system's state (dirty pages
// written back, segments deleted), which a single pass would charge to whichever stage ran later.
const rounds = Number(process.env.ROUNDS ?? 3);
const only = process.env.ONLY; // one stage by name (profiling)
const picked = Object.entries(stages).filter(([k]) => !only || k === only);
for (const [, stage] of picked) await run(stage, 500); // warm
const out = new Map<string, number[]>(picked.map(([k]) => [k, []]));
for (let r = 0; r < rounds; r++) for (const [name, stage] of picked) out.get(name)!.push(await run(stage, seconds * 1000));
spool.close();
rmSync(dir, { recursive: true, force: true });
console.log(`agent-micro: ${batch}-event batches, ${rounds} round(s) of ${seconds} s per stage; ns per event, median [min..max]`);
for (const [k, v] of out) {
  const s = [...v].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)]!;
  const kernel = sys.get(stages[k]!)!;
  const share = Math.round((100 * kernel.reduce((a, b) => a + b, 0)) / kernel.length);
  console.log(
    `${k.padEnd(44)} ${String(Math.round(med)).padStart(6)} [${Math.round(s[0]!)}..${Math.round(s.at(-1)!)}]  kernel ${share} %` +
      (process.env.VERBOSE ? `  rounds: ${v.map(Math.round).join(' ')}` : ''),
  );
}
if (whole.events && withContexts.events)
  console.log(
    `request bytes per event: whole events ${(whole.bytes / whole.events).toFixed(0)}, with batch contexts ${(withContexts.bytes / withContexts.events).toFixed(0)}`,
  );
