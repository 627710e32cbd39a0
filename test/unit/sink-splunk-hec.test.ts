import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { formatLine, formatRecord } from '../../src/formats/format.js';
import { LossRecord } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent, EnrichmentStatus } from '../../src/gen/doorwatch/v1/event.js';
import { readSecret } from '../../src/sinks/config.js';
import type { SinkRecord } from '../../src/sinks/sink.js';
import { ackedIds, type HecOptions, hecBody, hecEvent, hecFailure, hecTime, splunkHecSink } from '../../src/sinks/splunk-hec.js';
import { configProblems } from '../helpers/config-problems.js';
import { splitConcatenatedJson } from '../helpers/http-siem-standins.js';
import { plausibleRecords, randomCorpus } from '../helpers/random-events.js';
import { sampleSummary } from '../helpers/sample-events.js';

const T = 1_700_000_000_123_456_789n; // 2023-11-14T22:13:20.123456789Z

function podEvent(seq: number, namespace = 'shop', pod = 'web-1'): SinkRecord {
  return {
    kind: 'event',
    event: AcceptEvent.fromPartial({
      eventId: `node-a/boot/1/${seq}`,
      seq: BigInt(seq),
      timeUnixNano: T,
      nodeName: 'node-a',
      success: true,
      pod: { namespace, name: pod },
      enrichment: { status: EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE },
    }),
  };
}

const hostEvent: SinkRecord = {
  kind: 'event',
  event: AcceptEvent.fromPartial({
    eventId: 'node-a/boot/1/9',
    seq: 9n,
    timeUnixNano: T,
    nodeName: 'node-a',
    enrichment: { status: EnrichmentStatus.ENRICHMENT_STATUS_HOST },
  }),
};

const loss: SinkRecord = {
  kind: 'loss',
  loss: LossRecord.fromPartial({
    agent: { nodeName: 'node-b', bootId: 'boot', instanceId: 'inst' },
    fromSeq: 10n,
    toSeq: 12n,
    reason: 'seq gap',
    timeUnixNano: T,
  }),
};

const opts: HecOptions = {
  format: 'native',
  source: 'doorwatch',
  sourcetype: 'doorwatch:accept',
  lossSourcetype: 'doorwatch:loss',
  indexedFields: true,
};

describe('HEC payload', () => {
  it('time is epoch seconds with a millisecond fraction', () => {
    assert.equal(hecTime(T), 1_700_000_000.123);
    assert.equal(hecTime(1_000_000_000n), 1);
  });

  it('an event: host from the node, the formatted record, namespace and pod as indexed fields', () => {
    const rec = podEvent(1);
    assert.deepEqual(hecEvent(rec, { ...opts, index: 'security' }), {
      time: 1_700_000_000.123,
      host: 'node-a',
      source: 'doorwatch',
      sourcetype: 'doorwatch:accept',
      index: 'security',
      event: formatRecord(rec, 'native'),
      fields: { namespace: 'shop', pod: 'web-1' },
    });
    assert.deepEqual(hecEvent(rec, { ...opts, format: 'ecs' }).event, formatRecord(rec, 'ecs'));
  });

  it('no fields for host processes or when indexed fields are off; no index unless configured', () => {
    assert.equal(hecEvent(hostEvent, opts).fields, undefined);
    assert.equal(hecEvent(podEvent(1), { ...opts, indexedFields: false }).fields, undefined);
    assert.equal('index' in hecEvent(podEvent(1), opts), false);
  });

  it('a loss record: its own sourcetype, the agent node as host', () => {
    const e = hecEvent(loss, opts);
    assert.equal(e.sourcetype, 'doorwatch:loss');
    assert.equal(e.host, 'node-b');
    assert.deepEqual(e.event, formatRecord(loss, 'native'));
  });

  it('a summary record: the events’ sourcetype (same shape), its pod as indexed fields, the sample’s time', () => {
    const rec: SinkRecord = { kind: 'event', event: sampleSummary() };
    const e = hecEvent(rec, opts);
    assert.equal(e.sourcetype, 'doorwatch:accept');
    assert.equal(e.time, 1_714_564_800.123);
    assert.deepEqual(e.fields, { namespace: 'shop', pod: 'web-7d9f-abc' });
    assert.equal(e.event.kind, 'EVENT_KIND_SUMMARY');
  });

  it('leaves time out when unknown (0), so Splunk uses the receipt time', () => {
    const rec: SinkRecord = { kind: 'event', event: AcceptEvent.fromPartial({ eventId: 'x', nodeName: 'n' }) };
    assert.equal('time' in hecEvent(rec, opts), false);
  });

  it('the body is the event objects concatenated, in order', () => {
    const batch = [podEvent(1), hostEvent, loss];
    const body = hecBody(batch, opts).toString('utf8');
    const objects = splitConcatenatedJson(body);
    assert.deepEqual(objects, JSON.parse(JSON.stringify(batch.map((r) => hecEvent(r, opts)))));
    assert.equal(body.split('\n').length, 4, 'one object per line');
    assert.equal(hecBody([], opts).length, 0);
  });
});

describe('HEC body bytes', () => {
  it("byte for byte the envelope by JSON.stringify and the record's line, one per line, over 3 000 varied records, every format and option", () => {
    const events = [...plausibleRecords(1500, 31), ...randomCorpus(1500, 32)];
    const records: SinkRecord[] = events.map((event) => ({ kind: 'event', event }));
    records.splice(5, 0, loss, { kind: 'loss', loss: LossRecord.fromPartial({ reason: 'x', timeUnixNano: 0n }) });
    const variants: HecOptions[] = [
      opts,
      { ...opts, format: 'ocsf', index: 'main', source: 'dw "q"' },
      { ...opts, format: 'ecs', indexedFields: false },
      { ...opts, format: 'tracee', sourcetype: 'é' },
    ];
    for (const o of variants) {
      for (let i = 0; i < records.length; i += 100) {
        const batch = records.slice(i, i + 100);
        // The body as it was built before it was written as bytes: the envelope by JSON.stringify, then the
        // record's line (formatLine: its key order is the format's, which JSON.parse(...) comparisons ignore).
        const expected = batch
          .map((rec) => {
            const { event: _, ...envelope } = hecEvent(rec, o);
            return `${JSON.stringify(envelope).slice(0, -1)},"event":${formatLine(rec, o.format)}}\n`;
          })
          .join('');
        assert.equal(hecBody(batch, o).toString('utf8'), expected, `${o.format}, records ${i}..${i + 99}`);
      }
    }
  });
});

describe('HEC replies', () => {
  const what = 'splunk_hec sink "s"';
  it('accepts only 2xx with code 0', () => {
    assert.equal(hecFailure({ status: 200, body: '{"text":"Success","code":0}' }, what), undefined);
    const e = hecFailure({ status: 200, body: '<html>proxy</html>' }, what);
    assert.ok(e?.retryable);
    assert.match(e!.message, /not a HEC success/);
  });
  it('503 busy and 429 are retryable', () => {
    const e = hecFailure({ status: 503, body: '{"text":"Server is busy","code":9}' }, what)!;
    assert.ok(e.retryable);
    assert.match(e.message, /Server is busy.*code 9/);
    assert.ok(hecFailure({ status: 429, body: '' }, what)!.retryable);
  });
  it('auth and request errors are not retryable and say what to fix', () => {
    const bad = hecFailure({ status: 403, body: '{"text":"Invalid token","code":4}' }, what)!;
    assert.equal(bad.retryable, false);
    assert.equal(bad.status, 403);
    assert.match(bad.message, /Invalid token.*tokenFile\/tokenEnv.*not retryable/);
    assert.match(hecFailure({ status: 400, body: '{"text":"Data channel is missing","code":10}' }, what)!.message, /ack: true/);
    assert.match(hecFailure({ status: 400, body: '{"text":"Incorrect index","code":7}' }, what)!.message, /`index`/);
  });
  it('reads acknowledged ids', () => {
    assert.deepEqual([...ackedIds('{"acks":{"0":true,"1":false,"2":true}}')].sort(), [0, 2]);
    assert.equal(ackedIds('nonsense').size, 0);
  });
});

describe('HEC config', () => {
  const parse = (c: unknown) => splunkHecSink.parse(c, 'sinks[0]');
  const problems = (c: unknown): string[] => configProblems(parse, c);

  it('fills defaults', () => {
    const c = parse({ name: 'splunk', type: 'splunk_hec', required: true, url: 'https://splunk:8088', tokenFile: '/run/hec' });
    assert.equal(c.path, '/services/collector/event');
    assert.equal(c.sourcetype, 'doorwatch:accept');
    assert.equal(c.source, 'doorwatch');
    assert.equal(c.format, 'native');
    assert.equal(c.ack, false);
    assert.equal(c.timeout, 30_000);
    assert.equal(c.ackTimeout, 60_000);
    assert.equal(c.indexedFields, true);
  });

  it('reads durations in human form, or numbers of milliseconds', () => {
    const c = parse({ url: 'https://s:8088', tokenEnv: 'HEC_TOKEN', timeout: '500ms', ackPollInterval: 250 });
    assert.equal(c.timeout, 500);
    assert.equal(c.ackPollInterval, 250, 'a number is milliseconds');
  });

  it('refuses an inline token, naming the key and where the token goes', () => {
    const p = problems({ url: 'https://s:8088', token: 'abcd-1234', tokenFile: '/run/hec' });
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^sinks\[0\]\.token: inline secrets are not accepted: .*tokenFile.*tokenEnv/);
    assert.ok(!p[0]!.includes('abcd-1234'), 'the secret is not echoed');
  });

  it('needs exactly one of tokenFile and tokenEnv', () => {
    assert.match(problems({ url: 'https://s:8088' })[0]!, /sinks\[0\]\.tokenFile: set exactly one of tokenFile and tokenEnv/);
    assert.match(problems({ url: 'https://s:8088', tokenFile: '/a', tokenEnv: 'B' })[0]!, /exactly one/);
    assert.match(
      problems({ url: 'https://s:8088', tokenEnv: 'not a name' })[0]!,
      /sinks\[0\]\.tokenEnv: must be an environment variable name/,
    );
  });

  it('reports every problem at once, unknown keys included', () => {
    const p = problems({ url: 'ftp://x', tokenFile: '/a', sourcetyp: 'typo', timeout: 'soon', tls: { cert: '/c' } });
    const keys = p.map((s) => s.split(':')[0]);
    assert.deepEqual(keys.sort(), ['sinks[0]', 'sinks[0].timeout', 'sinks[0].tls.key', 'sinks[0].url'].sort(), p.join('\n'));
    assert.ok(p.some((s) => s.includes('"sourcetyp"')));
  });
});

describe('readSecret', () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorwatch-secret-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  it('reads a file and drops the trailing newline', () => {
    writeFileSync(join(dir, 'ok'), 'abc-123\n');
    assert.equal(readSecret({ key: 'tokenFile', file: join(dir, 'ok') }, {}), 'abc-123');
  });
  it('reads an environment variable', () => {
    assert.equal(readSecret({ key: 'tokenEnv', env: 'HEC' }, { HEC: 'xyz' }), 'xyz');
  });
  it('refuses empty, multi-line, missing', () => {
    writeFileSync(join(dir, 'empty'), '\n');
    writeFileSync(join(dir, 'two'), 'a\nb\n');
    assert.throws(() => readSecret({ key: 'tokenFile', file: join(dir, 'empty') }, {}), /tokenFile .* is empty/);
    assert.throws(() => readSecret({ key: 'tokenFile', file: join(dir, 'two') }, {}), /more than one line/);
    assert.throws(() => readSecret({ key: 'tokenFile', file: join(dir, 'nope') }, {}), /cannot read tokenFile .*ENOENT/);
    assert.throws(() => readSecret({ key: 'tokenEnv', env: 'NOPE' }, {}), /NOPE \(tokenEnv\) is not set/);
  });
});
