/**
 * A Publisher in its own process, for the crash test: it appends events
 * forever (as Capture would) and prints one JSON line per append *after* the
 * append returned, until the parent SIGKILLs it.
 *
 *   node --import tsx test/helpers/agent-child.ts <spoolDir> <target> <caFile> <certFile> <keyFile>
 *
 * (Run node directly, not `npx tsx`: npx and the tsx CLI are wrappers, and a
 * SIGKILL to the wrapper would leave the real agent running.)
 */
import { readFileSync } from 'node:fs';
import { Publisher } from '../../src/agent/publisher.js';
import { Spool } from '../../src/agent/spool.js';
import { makeEvents } from './fake-collector.js';

const [dir, target, caFile, certFile, keyFile] = process.argv.slice(2);
if (!dir || !target || !caFile || !certFile || !keyFile) {
  process.stderr.write('usage: agent-child.ts <spoolDir> <target> <caFile> <certFile> <keyFile>\n');
  process.exit(2);
}

const spool = Spool.open({ dir, bootId: 'boot-crash', segmentBytes: '64KiB', maxBytes: '16MiB' });
const publisher = new Publisher({
  target,
  tls: { ca: readFileSync(caFile), cert: readFileSync(certFile), key: readFileSync(keyFile), serverName: 'localhost' },
  identity: { nodeName: 'node-a', version: 'child' },
  spool,
  batch: { maxEvents: 100, maxDelayMs: 5 },
  backoff: { initialMs: 20, maxMs: 200 },
});
publisher.start();
const id = spool.identity;
process.stdout.write(`${JSON.stringify({ ready: true, ...id, nextSeq: String(spool.nextSeq()) })}\n`);

let seq = spool.nextSeq();
setInterval(() => {
  const evs = makeEvents(id, seq, 50);
  publisher.publish(evs);
  seq += 50n;
  const s = publisher.status();
  process.stdout.write(
    `${JSON.stringify({ appended: String(seq - 1n), inFlight: s.inFlightBatches, connected: s.connected })}\n`,
  );
}, 5);
