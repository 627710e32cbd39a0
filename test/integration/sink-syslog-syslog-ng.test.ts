import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Dispatcher, type QueuedRecord } from '../../src/collector/dispatcher.js';
import { formatLine, recordId, recordTimeNs } from '../../src/formats/format.js';
import { FORMATS } from '../../src/formats/record.js';
import { EventKind } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import type { Sink, SinkRecord } from '../../src/sinks/sink.js';
import { buildSyslogMessage, SD_ID, type SyslogFrameOptions, syslogPri, syslogSink } from '../../src/sinks/syslog.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { parseRfc5424 } from '../helpers/rsyslog.js';
import { sampleEvent, sampleHostEvent, sampleLoss, sampleSummary, sinkEvent } from '../helpers/sample-events.js';
import { type SyslogNg, type SyslogNgReceived, startSyslogNg } from '../helpers/syslog-ng.js';

/**
 * The syslog sink against Debian's syslog-ng, the second independent RFC 5424 receiver next to rsyslog
 * (sink-syslog-rsyslog.test.ts): TLS, RFC 5425 octet counting, parsed by the `syslog()` source itself and by
 * a `syslog-parser(flags(syslog-protocol))`. syslog-ng writes every field it parsed separately
 * (test/helpers/syslog-ng.ts), so these tests compare values, not bytes.
 */

// Values RFC 5424 §6.3.3 says must be escaped in PARAM-VALUE (`"`, `\`, `]`), a `[`, `=` and spaces that a
// careless parser splits on, and non-ASCII text (UTF-8 in PARAM-VALUE and in MSG).
const TRICKY = 'a]b"c\\d [x=y] é 日本語 🚪 \\]';
const records = (): SinkRecord[] => [
  { kind: 'event', event: sampleEvent() },
  {
    kind: 'event',
    event: sampleEvent({
      eventId: `node-a/boot-1/100/${TRICKY}`,
      pod: { namespace: 'ns"]\\', name: 'pöd-ü "quoted" [bracket]' },
      process: { pid: 4242 },
      timeUnixNano: 1_714_564_800_000_001_999n, // a fraction with leading zeros: .000001
    }),
  },
  { kind: 'event', event: sampleEvent({ success: false, ret: -24, error: 'EMFILE', process: { pid: 7 } }) },
  { kind: 'event', event: sampleSummary({ summary: { failedCount: 3n } }) },
  { kind: 'event', event: sampleHostEvent() },
  { kind: 'loss', loss: sampleLoss({ reason: `sink queue overflow ${TRICKY}` }) },
];

const endpoint = (ep: { ip: string; port: number } | undefined) =>
  ep?.ip ? (ep.ip.includes(':') ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`) : undefined;
const defined = (o: Record<string, string | undefined>) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as Record<string, string>;

/** The structured data each kind of record carries (docs/sinks/syslog.md), from the record itself. */
function expectedSd(rec: SinkRecord): Record<string, string> {
  if (rec.kind === 'loss') {
    const l = rec.loss;
    return defined({
      id: recordId(rec), // deterministic, from the agent, the range and the reason (formats/ocsf.ts)
      from: String(l.fromSeq),
      to: String(l.toSeq),
      reason: l.reason,
    });
  }
  const e = rec.event;
  if (e.summary && e.kind === EventKind.EVENT_KIND_SUMMARY) {
    return defined({
      id: e.eventId,
      ns: e.pod?.namespace,
      pod: e.pod?.name,
      peer: e.summary.peerIp,
      dst: endpoint(e.socket?.local),
      count: String(e.summary.count),
      failed: String(e.summary.failedCount),
      reason: 'rate_limit',
    });
  }
  return defined({
    id: e.eventId,
    ns: e.pod?.namespace,
    pod: e.pod?.name,
    src: endpoint(e.socket?.peer),
    dst: endpoint(e.socket?.local),
  });
}

/** "2024-05-01T12:00:00.123456+00:00" -> Unix microseconds; the fraction must have all six digits. */
function isoMicros(ts: string): bigint {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})(Z|[+-]\d\d:\d\d)$/.exec(ts);
  assert.ok(m, `syslog-ng's timestamp ${JSON.stringify(ts)} has a six-digit fraction`);
  return BigInt(Date.parse(`${m[1]}${m[3]}`)) * 1000n + BigInt(m[2]!);
}

function assertParsed(got: SyslogNgReceived, rec: SinkRecord, opts: SyslogFrameOptions, what: string): void {
  const sent = parseRfc5424(buildSyslogMessage(rec, opts));
  const e = rec.kind === 'event' ? rec.event : undefined;
  const severity =
    rec.kind === 'loss' ? 3 : e!.kind === EventKind.EVENT_KIND_SUMMARY ? (e!.summary!.failedCount ? 4 : 6) : e!.success ? 6 : 4;
  assert.equal(got.pri, String(syslogPri(opts.facility, severity)), `${what}: PRI`);
  assert.equal(isoMicros(got.ts), recordTimeNs(rec) / 1000n, `${what}: timestamp to the microsecond`);
  assert.equal(got.host, e ? e.nodeName : rec.kind === 'loss' ? rec.loss.agent!.nodeName : '', `${what}: HOSTNAME`);
  assert.equal(got.host, sent.hostname);
  assert.equal(got.app, opts.appName, `${what}: APP-NAME`);
  assert.equal(got.pid, e?.process?.pid ? String(e.process.pid) : '', `${what}: PROCID`);
  assert.equal(
    got.msgid,
    rec.kind === 'loss' ? 'LOSS' : e!.kind === EventKind.EVENT_KIND_SUMMARY ? 'SUMMARY' : 'ACCEPT',
    `${what}: MSGID`,
  );
  assert.deepEqual(Object.keys(got._SDATA ?? {}), [SD_ID], `${what}: one SD-ELEMENT`);
  assert.deepEqual({ ...got._SDATA![SD_ID] }, expectedSd(rec), `${what}: every SD-PARAM, unescaped`);
  assert.equal(got.msg, formatLine(rec, opts.format), `${what}: MSG, the ${opts.format} record without the BOM`);
}

describe('syslog sink against a real syslog-ng (Debian 12, TLS, RFC 5425)', () => {
  let pki: Pki;
  const servers: SyslogNg[] = [];
  const sinks: Sink[] = [];
  const byParse: Record<'source' | 'syslog-parser', SyslogNg> = {} as never;

  const start = async (parse: 'source' | 'syslog-parser', port?: number) => {
    const s = await startSyslogNg({ certFile: pki.server.cert, keyFile: pki.server.key, parse, port });
    servers.push(s);
    return s;
  };
  const create = async (server: SyslogNg, over: Record<string, unknown> = {}) => {
    const config = { host: '127.0.0.1', port: server.port, tls: { ca: pki.caFile }, connectTimeout: '3s', ...over };
    const sink = await syslogSink.create('siem', syslogSink.parse(config, 'sinks[0]'), { log: silentLogger });
    sinks.push(sink);
    return sink;
  };

  before(async () => {
    pki = makePki();
    byParse.source = await start('source');
    byParse['syslog-parser'] = await start('syslog-parser');
  });

  after(async () => {
    for (const s of sinks) await s.close().catch(() => {});
    for (const s of servers) {
      await s.stop();
      rmSync(s.dir, { recursive: true, force: true });
    }
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  for (const parse of ['source', 'syslog-parser'] as const) {
    for (const format of FORMATS) {
      for (const bom of [false, true]) {
        it(`parsed by ${parse === 'source' ? 'the syslog() source' : 'syslog-parser()'}: ${format}${bom ? ', BOM' : ''} — every header field and SD-PARAM as sent`, async () => {
          const server = byParse[parse];
          const base = server.received().length;
          const opts: SyslogFrameOptions = { facility: 'local3', format, appName: 'doorwatch-test', bom };
          const sink = await create(server, { format, bom, facility: opts.facility, appName: opts.appName });
          const recs = records();
          await sink.write(recs);
          const got = (await server.waitFor(base + recs.length)).slice(base);
          assert.equal(got.length, recs.length, 'no message lost, split or merged');
          for (const [i, rec] of recs.entries()) assertParsed(got[i]!, rec, opts, `record ${i}`);
          await sink.close();
        });
      }
    }
  }

  it('restarted mid-stream: every record arrives at least once (duplicates counted)', async () => {
    const server = await start('source');
    const sink = await create(server, { format: 'native' });
    const persisted: bigint[] = [];
    const d = new Dispatcher(
      [
        {
          config: {
            name: 'siem',
            type: 'syslog',
            required: true,
            queue: { maxRecords: 100_000 },
            batch: { maxRecords: 50, maxDelayMs: 5 },
            retry: { initialMs: 20, maxMs: 200 },
            options: {},
          },
          sink,
        },
      ],
      { log: silentLogger, onPersisted: (_, rs) => persisted.push(...rs.map((r) => r.seq!)) },
    );
    d.start();
    const TOTAL = 6000;
    const queued = (from: number, n: number): QueuedRecord[] =>
      Array.from({ length: n }, (_, i) => {
        const record = sinkEvent(from + i, 'shop');
        return { record, seq: BigInt(from + i) };
      });
    // A steady stream (50 records every 5 ms); syslog-ng is killed and started again in the middle of it,
    // twice: once with SIGTERM (a graceful stop), once with SIGKILL.
    const deadline = Date.now() + 60_000;
    let next = 1;
    const restarts: NodeJS.Signals[] = ['SIGTERM', 'SIGKILL'];
    while (next <= TOTAL) {
      d.enqueue(queued(next, 50));
      next += 50;
      if (next === 2001 || next === 4001) {
        await server.stop(restarts.shift());
        await sleep(300);
        await server.restart();
      }
      await sleep(5);
      assert.ok(Date.now() < deadline, 'the stream was sent within 60 s');
    }
    assert.ok(await d.drain(30_000), 'every batch was written within 30 s');
    const { retries } = d.stats()[0]!;
    await d.close();
    assert.equal(persisted.length, TOTAL, 'the dispatcher saw every record persisted once');

    const ids = server.received().map((r) => r._SDATA?.[SD_ID]?.id);
    const counts = new Map<string, number>();
    for (const id of ids) counts.set(id!, (counts.get(id!) ?? 0) + 1);
    const missing = [];
    for (let seq = 1; seq <= TOTAL; seq++) if (!counts.has(`node-a/boot-1/100/${seq}`)) missing.push(seq);
    const duplicates = ids.length - counts.size;
    assert.deepEqual(missing, [], `no record lost (received ${ids.length}, ${duplicates} duplicates)`);
    assert.equal(counts.size, TOTAL, 'nothing but the stream arrived');
    // Every duplicate is one the sink resent after a lost connection (and counted), or part of a batch the
    // dispatcher retried after a write failed half-way (it counts the failed attempts).
    const resent = (sink as unknown as { resentRecords: number }).resentRecords;
    assert.ok(resent > 0, 'the sink resent what the lost connections may not have delivered');
    assert.ok(duplicates <= resent + retries * 50, `${duplicates} duplicates <= ${resent} resent + ${retries} retried batches`);
    console.log(
      `# syslog-ng restarted twice mid-stream: ${TOTAL} records, ${ids.length} received, ${duplicates} duplicates (${resent} resent by the sink, ${retries} failed writes retried)`,
    );
  });
});
