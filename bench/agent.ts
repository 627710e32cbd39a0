import { closeSync, openSync, writeSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AcceptProbes, type KernelCounters, type ProgramStats } from '../src/bpf/accept-probes.js';
import { Capture } from '../src/capture/capture.js';
import { decodeRecord, LAYOUT, reusableRecord } from '../src/capture/record.js';
import { JsonWriter, writeEventJson } from '../src/formats/native-json.js';
import type { AcceptEvent } from '../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../src/log/logger.js';
import {
  AGENT_MODES,
  type AgentFinal,
  type AgentMarked,
  type AgentMode,
  type AgentReady,
  kernelSince,
  programsSince,
} from './protocol.js';

/**
 * The traced side of the benchmark: the real probes loaded in this process
 * (as test/helpers/tracer.ts does), counting the storm's events. Modes, from
 * the full cost down, to split where the CPU goes:
 *   json   Capture (decode + AcceptEvent) + writeEventJson into one reused
 *          Buffer, written to /dev/null in 64 KiB pieces and at the end of
 *          each batch: what `doorwatch trace --output json` pays.
 *   event  Capture only (decodeRecord + toAcceptEvent), no serialisation.
 *   decode decodeRecord only (RawAccept), no AcceptEvent.
 *   ring   the ring reader alone, reading one u32 (pid) per record.
 *
 * Protocol: one AgentReady line on stdout once attached. A "mark" line on
 * stdin (after a warm-up storm has let the JIT optimise the event path)
 * drains, zeroes every count and baseline, and answers one AgentMarked line.
 * SIGTERM: final drain, one AgentFinal line, exit. Nothing else goes to stdout.
 */

const { values } = parseArgs({
  options: {
    pid: { type: 'string' },
    mode: { type: 'string', default: 'json' },
    'ring-bytes': { type: 'string', default: String(8 << 20) },
    'poll-ms': { type: 'string', default: '10' },
    /** The built BPF object: the compiled agent does not live where accept-probes.ts looks by default. */
    object: { type: 'string' },
  },
  strict: true,
});
const stormPid = Number(values.pid);
const mode = values.mode as AgentMode;
if (!Number.isInteger(stormPid) || stormPid <= 0) throw new Error('--pid <storm pid> is required');
if (!AGENT_MODES.includes(mode)) throw new Error(`--mode must be one of ${AGENT_MODES.join(', ')}`);
const ringBytes = Number(values['ring-bytes']);
const pollMs = Number(values['poll-ms']);
const MAX_BATCH = 1024; // Capture's default
const OUT_CHUNK = 64 * 1024; // runTrace's

const probes = AcceptProbes.load({ ringBytes, includeEagain: false, log: silentLogger, objectPath: values.object });

let events = 0; // records of the storm's pid
let total = 0; // all records
let decodeErrors = 0;
const devNull = openSync('/dev/null', 'w');

let capture: Capture | undefined;
let timer: NodeJS.Timeout | undefined;
/** Drains everything pending; returns the records taken. */
let drainAll: () => number;

if (mode === 'json' || mode === 'event') {
  const json = mode === 'json';
  const out = new JsonWriter(OUT_CHUNK + 64 * 1024);
  const flush = () => {
    if (out.pos) writeSync(devNull, out.buf, 0, out.pos);
    out.reset();
  };
  const onEvents = (batch: AcceptEvent[]) => {
    total += batch.length;
    for (const ev of batch) {
      if (ev.process?.pid === stormPid) events++;
      if (!json) continue;
      // As runTrace does: lines appended to one Buffer, written in pieces.
      writeEventJson(out, ev);
      out.byte(0x0a);
      if (out.pos >= OUT_CHUNK) flush();
    }
    flush();
  };
  const c = new Capture({ probes, nodeName: 'bench-node', log: silentLogger, pollMs, maxBatch: MAX_BATCH, onEvents });
  capture = c;
  drainAll = () => {
    let n = 0;
    for (let got = c.drain(); got > 0; got = c.drain()) n += got;
    return n;
  };
} else {
  const pidOff = LAYOUT.pid;
  // As the capture decodes: every record into one reused record.
  const record = reusableRecord();
  const onRecord =
    mode === 'ring'
      ? (v: DataView, off: number) => {
          total++;
          if (v.getUint32(off + pidOff, true) === stormPid) events++;
        }
      : (v: DataView, off: number, len: number) => {
          total++;
          try {
            if (decodeRecord(v, off, len, record).pid === stormPid) events++;
          } catch {
            decodeErrors++;
          }
        };
  drainAll = () => {
    let n = 0;
    for (;;) {
      const { records, more } = probes.ring.drain(onRecord, MAX_BATCH);
      n += records;
      if (!more) return n;
    }
  };
}

// 1 ms: enough samples in a sub-second storm for a p99 that is not just the max.
const lag = monitorEventLoopDelay({ resolution: 1 });
if (capture) capture.start();
else timer = setInterval(drainAll, pollMs);
lag.enable();
let cpu0 = process.cpuUsage();
let kernel0: KernelCounters | undefined;
let programs0: ProgramStats[] | undefined;
let decodeErrors0 = 0n;

const ready: AgentReady = { ready: true, pid: process.pid, mode, programs: probes.attachedPrograms(), ioUring: probes.ioUring };
process.stdout.write(`${JSON.stringify(ready)}\n`);

function mark(): void {
  drainAll();
  events = 0;
  total = 0;
  decodeErrors = 0;
  decodeErrors0 = capture?.stats().decodeErrors ?? 0n;
  kernel0 = probes.kernelCounters();
  programs0 = probes.programStats();
  lag.reset();
  cpu0 = process.cpuUsage();
  const marked: AgentMarked = { marked: true };
  process.stdout.write(`${JSON.stringify(marked)}\n`);
}

function finish(): void {
  lag.disable();
  if (timer) clearInterval(timer);
  // The storm is over: drain what it left, and stop the clock before detaching
  // (link teardown is a one-off cost, not a per-event one; reported apart).
  drainAll();
  const cpu = process.cpuUsage(cpu0);
  probes.detach();
  drainAll(); // anything another process accepted meanwhile
  capture?.stop();
  const detachCpu = process.cpuUsage(cpu0);
  const final: AgentFinal = {
    mode,
    events,
    total,
    decodeErrors: capture ? Number(capture.stats().decodeErrors - decodeErrors0) : decodeErrors,
    kernel: kernelSince(probes.kernelCounters(), kernel0),
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    detachCpuUs: detachCpu.user + detachCpu.system - cpu.user - cpu.system,
    lagMaxMs: lag.max / 1e6,
    lagP99Ms: lag.percentile(99) / 1e6,
    programs: programsSince(probes.programStats(), programs0),
  };
  probes.close();
  closeSync(devNull);
  process.stdout.write(`${JSON.stringify(final)}\n`, () => process.exit(0));
}

process.once('SIGTERM', finish);
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line.trim() === 'mark') mark();
  })
  // The parent closing our stdin (it died): stop without a report.
  .on('close', () => process.exit(1));
