import type { AcceptSummary } from '../gen/doorwatch/v1/event.js';
import { eventToEcs, lossToEcs, writeEcsLine } from './ecs.js';
import { eventToJson, eventToJsonLine, JsonWriter, lossToJson, writeEventJson } from './native-json.js';
import { eventToOcsf, eventToOcsfLine, kindName, lossRecordId, lossToOcsf, summaryOf, writeOcsfLine } from './ocsf.js';
import type { FormatName, SinkRecord } from './record.js';
import { eventToTraceeLine, lossToTraceeLine } from './tracee.js';

export { summaryReasonName } from './ocsf.js';

/**
 * One record in the format a sink was configured with, plus the id and time
 * every sink keys on. Pure. docs/formats.md describes the three formats.
 *
 *   native  the proto3 canonical JSON, every field present (native-json.ts;
 *           loss records the same way, readable back with LossRecord.fromJSON)
 *   ocsf    OCSF 1.7.0 (ocsf.ts)
 *   ecs     Elastic Common Schema 8.11 (ecs.ts)
 *   tracee  Tracee v0.24.x `--output json` events (tracee.ts); as an object,
 *           its 64-bit numbers (timestamps) are rounded by JSON.parse: the
 *           line (formatLine) is exact
 */

export function formatRecord(rec: SinkRecord, format: FormatName): Record<string, unknown> {
  switch (format) {
    case 'native':
      return rec.kind === 'event' ? eventToJson(rec.event) : lossToJson(rec.loss);
    case 'ocsf':
      return rec.kind === 'event' ? eventToOcsf(rec.event) : lossToOcsf(rec.loss);
    case 'ecs':
      return rec.kind === 'event' ? eventToEcs(rec.event) : lossToEcs(rec.loss);
    case 'tracee':
      return JSON.parse(traceeLine(rec)) as Record<string, unknown>;
    default: {
      const unknown: never = format;
      throw new TypeError(`unknown record format ${JSON.stringify(unknown)}: expected native, ocsf, ecs or tracee`);
    }
  }
}

/** formatRecord as one JSON string: native, OCSF and ECS events take their direct writers (the hot path). */
export function formatLine(rec: SinkRecord, format: FormatName): string {
  if (format === 'native' && rec.kind === 'event') return eventToJsonLine(rec.event);
  if (format === 'ocsf' && rec.kind === 'event') return eventToOcsfLine(rec.event);
  if (format === 'ecs' && rec.kind === 'event') return ecsScratch.textOf(writeEcsLine, rec.event);
  if (format === 'tracee') return traceeLine(rec);
  return JSON.stringify(formatRecord(rec, format));
}
const ecsScratch = new JsonWriter(16 * 1024);

/** formatLine's bytes appended to `w` (UTF-8): native, OCSF and ECS events are written there without a string between. */
export function writeLine(w: JsonWriter, rec: SinkRecord, format: FormatName): void {
  if (format === 'native' && rec.kind === 'event') writeEventJson(w, rec.event);
  else if (format === 'ocsf' && rec.kind === 'event') writeOcsfLine(w, rec.event);
  else if (format === 'ecs' && rec.kind === 'event') writeEcsLine(w, rec.event);
  else w.text(formatLine(rec, format));
}

const traceeLine = (rec: SinkRecord): string =>
  rec.kind === 'event' ? eventToTraceeLine(rec.event) : lossToTraceeLine(rec.loss);

/**
 * The id a sink dedupes on (Elasticsearch _id, Nats-Msg-Id, syslog SD id):
 * the event_id for events; for loss records a deterministic id from the
 * agent's boot and instance, the seq range and the reason (ocsf.ts
 * lossRecordId), so a retried or replayed loss record is written once.
 */
export function recordId(rec: SinkRecord): string {
  return rec.kind === 'event' ? rec.event.eventId : lossRecordId(rec.loss);
}

/** Wall-clock Unix nanoseconds of the record: the syscall exit, or when the collector noticed the loss. 0 = unknown. */
export function recordTimeNs(rec: SinkRecord): bigint {
  return rec.kind === 'event' ? rec.event.timeUnixNano : rec.loss.timeUnixNano;
}

/** What a record is: `accept` (kind ACCEPT or, from producers without audit policies, UNSPECIFIED), `summary` or `loss`. */
export function recordKind(rec: SinkRecord): 'accept' | 'summary' | 'loss' {
  return rec.kind === 'loss' ? 'loss' : (kindName(rec.event.kind) as 'accept' | 'summary');
}

/**
 * The summary block of a summary record (kind EVENT_KIND_SUMMARY), for sinks
 * that mark summaries in their own envelope (syslog MSGID); undefined for
 * accepts and loss records.
 */
export function recordSummary(rec: SinkRecord): AcceptSummary | undefined {
  return rec.kind === 'event' ? summaryOf(rec.event) : undefined;
}
