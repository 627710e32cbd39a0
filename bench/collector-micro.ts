import { decodePublishRequest } from '../src/collector/wire.js';
import { eventToEcs } from '../src/formats/ecs.js';
import { JsonWriter, writeEventJson } from '../src/formats/native-json.js';
import { eventToOcsfLine } from '../src/formats/ocsf.js';
import { PublishRequest } from '../src/gen/doorwatch/v1/collector.js';
import type { AcceptEvent } from '../src/gen/doorwatch/v1/event.js';
import { bulkRequest } from '../src/sinks/elasticsearch.js';
import type { SinkRecord } from '../src/sinks/sink.js';
import { hecBody } from '../src/sinks/splunk-hec.js';
import { sampleEvent } from '../test/helpers/sample-events.js';

/**
 * The collector's decode in a warm loop, no network: `npx tsx bench/collector-micro.ts [pods]`.
 * One 500-event batch from `pods` pods (round robin), decoded by wire.ts and by the generated decoder;
 * then the sinks' formats of the decoded events, and the HTTP sinks' request bodies (Elasticsearch _bulk,
 * Splunk HEC) of the batch in each format.
 */
const pods = Number(process.argv[2] ?? 16);
const events = Array.from({ length: 500 }, (_, i) =>
  sampleEvent({
    seq: BigInt(i + 1),
    eventId: `boot/inst/${i + 1}`,
    process: { pid: 800 + (i % pods) },
    socket: { peer: { ip: '10.0.0.9', port: 30000 + i } },
    pod: { name: `web-${i % pods}` },
    container: { id: (i % pods).toString(16).padStart(64, 'c') },
  }),
);
const bytes = Buffer.from(
  PublishRequest.encode({ batch: { firstSeq: 1n, events, losses: undefined, contexts: [], eventContexts: [] } }).finish(),
);
for (const [name, decode] of [
  ['wire.ts', decodePublishRequest],
  ['generated', (b: Uint8Array) => PublishRequest.decode(b)],
] as const) {
  for (let i = 0; i < 200; i++) decode(bytes);
  // CPU time, not wall time: the machine is shared.
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let n = 0;
  while (performance.now() - t0 < 2000 && n < 1_000_000) {
    decode(bytes);
    n++;
  }
  const c = process.cpuUsage(c0);
  const us = (c.user + c.system) / (n * 500);
  console.log(`${name.padEnd(10)} ${pods} pods: ${us.toFixed(3)} µs/event (${bytes.length / 500} bytes/event)`);
}

/** CPU µs per event of `run` (which handles `events` events), warmed up, for 2 s or 100 000 runs. */
function usPerEvent(run: () => unknown, events: number, warmup: number): number {
  for (let i = 0; i < warmup; i++) run();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let n = 0;
  while (performance.now() - t0 < 2000 && n < 100_000) {
    run();
    n++;
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / (n * events);
}

// The sinks' formatting of the same decoded batch (shared sub-messages, as the collector has them).
const decoded = decodePublishRequest(bytes).batch!.events;
const w = new JsonWriter(1 << 20);
for (const [name, format] of [
  ['native json', (ev: AcceptEvent) => writeEventJson(w, ev)],
  ['ocsf line', (ev: AcceptEvent) => eventToOcsfLine(ev)],
  ['ecs line', (ev: AcceptEvent) => JSON.stringify(eventToEcs(ev))],
] as const) {
  const run = () => {
    w.reset();
    for (const ev of decoded) format(ev);
  };
  console.log(`${name.padEnd(12)} ${pods} pods: ${usPerEvent(run, decoded.length, 200).toFixed(3)} µs/event`);
}

// The HTTP sinks' request bodies: what Elasticsearch and Splunk HEC send per batch, as bytes on the socket.
const records: SinkRecord[] = decoded.map((event) => ({ kind: 'event', event }));
for (const format of ['native', 'ocsf', 'ecs'] as const) {
  for (const [name, body] of [
    [
      'es _bulk',
      () => bulkRequest(records, { format, index: 'doorwatch-accept-%Y.%m.%d', lossIndex: 'doorwatch-loss-%Y.%m.%d' }).body,
    ],
    [
      'hec body',
      () =>
        hecBody(records, {
          format,
          source: 'doorwatch',
          sourcetype: 'doorwatch:accept',
          lossSourcetype: 'doorwatch:loss',
          indexedFields: true,
        }),
    ],
  ] as const) {
    console.log(`${`${name} ${format}`.padEnd(16)} ${pods} pods: ${usPerEvent(body, records.length, 50).toFixed(3)} µs/event`);
  }
}
