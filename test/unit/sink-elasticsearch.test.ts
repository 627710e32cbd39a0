import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { formatLine, formatRecord, recordId, recordTimeNs } from '../../src/formats/format.js';
import { LossRecord } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import {
  authorization,
  bulkFailure,
  bulkRequest,
  elasticsearchSink,
  expandIndex,
  indexTemplateProblem,
  summarizeBulk,
} from '../../src/sinks/elasticsearch.js';
import type { SinkRecord } from '../../src/sinks/sink.js';
import { configProblems } from '../helpers/config-problems.js';
import { plausibleRecords, randomCorpus } from '../helpers/random-events.js';
import { SAMPLE_TIME, sampleSummary } from '../helpers/sample-events.js';

const T = 1_700_000_000_123_456_789n; // 2023-11-14T22:13:20.123Z
const NEW_YEAR = 1_704_067_199_999_000_000n; // 2023-12-31T23:59:59.999Z

function ev(seq: number, time = T): SinkRecord {
  return {
    kind: 'event',
    event: AcceptEvent.fromPartial({ eventId: `node-a/boot/1/${seq}`, seq: BigInt(seq), timeUnixNano: time, nodeName: 'node-a' }),
  };
}
const loss: SinkRecord = {
  kind: 'loss',
  loss: LossRecord.fromPartial({
    agent: { nodeName: 'node-a', bootId: 'b', instanceId: 'i' },
    fromSeq: 4n,
    toSeq: 5n,
    timeUnixNano: T,
  }),
};
const opts = { format: 'ecs' as const, index: 'doorwatch-accept-%Y.%m.%d', lossIndex: 'doorwatch-loss-%Y.%m.%d' };

describe('index names', () => {
  it('come from the event time, in UTC', () => {
    assert.equal(expandIndex('doorwatch-accept-%Y.%m.%d', T), 'doorwatch-accept-2023.11.14');
    assert.equal(expandIndex('doorwatch-accept-%Y.%m.%d', NEW_YEAR), 'doorwatch-accept-2023.12.31');
    assert.equal(expandIndex('dw-%Y%m%d%H', T), 'dw-2023111422');
    assert.equal(expandIndex('logs-doorwatch.accept-default', T), 'logs-doorwatch.accept-default');
    assert.equal(expandIndex('a-%%-%Y', T), 'a-%-2023');
  });
  it('templates are checked', () => {
    assert.equal(indexTemplateProblem('doorwatch-accept-%Y.%m.%d'), undefined);
    assert.match(indexTemplateProblem('doorwatch-%j')!, /unknown date directive "%j"/);
    assert.match(indexTemplateProblem('Doorwatch')!, /lowercase/);
    assert.match(indexTemplateProblem('_doorwatch')!, /must not start/);
    assert.match(indexTemplateProblem('door watch')!, /spaces/);
  });
});

describe('bulk request', () => {
  it('one create action with the record id and one document per record, newline-terminated', () => {
    const batch = [ev(1), ev(2, NEW_YEAR), loss];
    const { body, targets } = bulkRequest(batch, opts);
    const text = body.toString('utf8');
    assert.ok(text.endsWith('\n'));
    const lines = text.slice(0, -1).split('\n');
    assert.equal(lines.length, 6);
    const expectIndex = ['doorwatch-accept-2023.11.14', 'doorwatch-accept-2023.12.31', 'doorwatch-loss-2023.11.14'];
    batch.forEach((rec, i) => {
      assert.deepEqual(JSON.parse(lines[2 * i]!), { create: { _index: expectIndex[i], _id: recordId(rec) } });
      assert.deepEqual(JSON.parse(lines[2 * i + 1]!), JSON.parse(JSON.stringify(formatRecord(rec, 'ecs'))));
    });
    assert.deepEqual(
      targets,
      batch.map((r, i) => ({ index: expectIndex[i], id: recordId(r) })),
    );
    assert.equal(targets[0]!.id, 'node-a/boot/1/1', 'events are indexed under their event_id');
  });
  it('the same batch gives the same request (what makes replays idempotent)', () => {
    assert.deepEqual(bulkRequest([ev(1), loss], opts, 1n), bulkRequest([ev(1), loss], opts, 999n * 10n ** 18n));
  });
  it('a record without a time goes to the index of now', () => {
    const now = 1_710_000_000_000_000_000n; // 2024-03-09
    assert.equal(bulkRequest([ev(1, 0n)], opts, now).targets[0]!.index, 'doorwatch-accept-2024.03.09');
  });
  it("byte for byte the NDJSON of JSON.stringify (action) and the record's line (document), over 3 000 varied records in every format", () => {
    const events = [...plausibleRecords(1500, 21), ...randomCorpus(1500, 22)];
    const records: SinkRecord[] = events.map((event) => ({ kind: 'event', event }));
    records.splice(7, 0, loss, { kind: 'loss', loss: LossRecord.fromPartial({ reason: 'seq gap "é"', timeUnixNano: 0n }) });
    const now = 1_710_000_000_000_000_000n;
    for (const format of ['ecs', 'native', 'ocsf', 'tracee'] as const) {
      const o = { ...opts, format, index: 'dw-%Y.%m.%d-%H' };
      // In batches of 100, as a sink writes them: the scratch writer is reused across batches.
      for (let i = 0; i < records.length; i += 100) {
        const batch = records.slice(i, i + 100);
        const expected = batch
          .map((rec) => {
            const t = recordTimeNs(rec);
            const index = expandIndex(rec.kind === 'event' ? o.index : o.lossIndex, t > 0n ? t : now);
            // The body as it was built before it was written as bytes (formatLine: the format's own key order).
            return `${JSON.stringify({ create: { _index: index, _id: recordId(rec) } })}\n${formatLine(rec, format)}\n`;
          })
          .join('');
        assert.equal(bulkRequest(batch, o, now).body.toString('utf8'), expected, `${format}, records ${i}..${i + 99}`);
      }
    }
  });
  it('an empty batch is an empty body', () => {
    assert.deepEqual(bulkRequest([], opts), { body: Buffer.alloc(0), targets: [] });
  });
  it('a summary record is a document of the events index, under its own event id and time', () => {
    const rec: SinkRecord = { kind: 'event', event: sampleSummary() };
    assert.equal(rec.event.timeUnixNano, SAMPLE_TIME);
    const { body, targets } = bulkRequest([rec], opts);
    assert.deepEqual(targets, [{ index: 'doorwatch-accept-2024.05.01', id: 'boot-1/inst-1/42' }]);
    assert.equal(JSON.parse(body.toString().split('\n')[1]!).event.dataset, 'doorwatch.summary');
    assert.deepEqual(bulkRequest([rec], opts, 1n), bulkRequest([rec], opts, 2n), 'a replay is the same request');
  });
});

const item = (status: number, id: string, error?: { type: string; reason: string }) => ({
  create: { _index: 'doorwatch-accept-2023.11.14', _id: id, status, ...(error ? { error } : { result: 'created', _version: 1 }) },
});

describe('bulk response', () => {
  it('counts created, already indexed (409 on create) and failed items', () => {
    const body = JSON.stringify({
      took: 3,
      errors: true,
      items: [
        item(201, 'a'),
        item(409, 'b', { type: 'version_conflict_engine_exception', reason: '[b]: version conflict, document already exists' }),
        item(429, 'c', { type: 'es_rejected_execution_exception', reason: 'rejected execution of coordinating operation' }),
        item(400, 'd', { type: 'document_parsing_exception', reason: 'failed to parse field [source.port]' }),
      ],
    });
    const s = summarizeBulk(body, 4);
    assert.equal(s.created, 1);
    assert.equal(s.duplicates, 1);
    assert.deepEqual(
      s.failed.map((f) => [f.id, f.status, f.type]),
      [
        ['c', 429, 'es_rejected_execution_exception'],
        ['d', 400, 'document_parsing_exception'],
      ],
    );
    const e = bulkFailure(s, 4, 'es')!;
    assert.equal(e.retryable, false, 'a 400 item will not succeed by waiting');
    assert.match(e.message, /2 of 4 items failed \(1 created, 1 already indexed\)/);
    assert.match(e.message, /1× 429 es_rejected_execution_exception, 1× 400 document_parsing_exception/);
    assert.match(e.message, /not retryable/);
  });
  it('a replay (all 409) is a success', () => {
    const body = JSON.stringify({
      errors: true,
      items: [item(409, 'a', { type: 'version_conflict_engine_exception', reason: 'exists' })],
    });
    assert.equal(bulkFailure(summarizeBulk(body, 1), 1, 'es'), undefined);
  });
  it('only 429s are retryable', () => {
    const body = JSON.stringify({ errors: true, items: [item(201, 'a'), item(429, 'b', { type: 'x', reason: 'busy' })] });
    const e = bulkFailure(summarizeBulk(body, 2), 2, 'es')!;
    assert.equal(e.retryable, true);
  });
  it('refuses a response that is not a bulk response for this request', () => {
    assert.throws(() => summarizeBulk('<html>', 1), /not JSON/);
    assert.throws(() => summarizeBulk('{"error":"x"}', 1), /no items/);
    assert.throws(() => summarizeBulk(JSON.stringify({ errors: false, items: [item(201, 'a')] }), 2), /1 items for 2 actions/);
  });
});

describe('elasticsearch config', () => {
  const parse = (c: unknown) => elasticsearchSink.parse(c, 'sinks[1]');
  const problems = (c: unknown): string[] => configProblems(parse, c);

  it('fills defaults: ecs, dated indices', () => {
    const c = parse({ name: 'es', type: 'elasticsearch', required: true, url: 'https://es:9200' });
    assert.equal(c.format, 'ecs');
    assert.equal(c.index, 'doorwatch-accept-%Y.%m.%d');
    assert.equal(c.lossIndex, 'doorwatch-loss-%Y.%m.%d');
    assert.equal(c.timeout, 30_000);
  });
  it('refuses inline password and API key', () => {
    const p = problems({ url: 'https://es:9200', user: 'dw', password: 'hunter2', apiKey: 'k' });
    assert.ok(
      p.some((s) => /^sinks\[1\]\.password: inline secrets are not accepted: .*passwordFile/.test(s)),
      p.join('\n'),
    );
    assert.ok(
      p.some((s) => /^sinks\[1\]\.apiKey: inline secrets are not accepted: .*apiKeyFile/.test(s)),
      p.join('\n'),
    );
    assert.ok(!p.join(' ').includes('hunter2'));
  });
  it('checks auth combinations and index templates', () => {
    assert.match(problems({ url: 'https://es:9200', user: 'dw' })[0]!, /^sinks\[1\]\.passwordFile: user needs passwordFile/);
    assert.match(
      problems({ url: 'https://es:9200', user: 'dw', passwordFile: '/p', apiKeyFile: '/k' })[0]!,
      /^sinks\[1\]\.apiKeyFile: use either/,
    );
    assert.match(problems({ url: 'https://es:9200', index: 'Doorwatch-%Y' })[0]!, /^sinks\[1\]\.index: .*lowercase/);
    assert.match(problems({ url: 'https://es:9200', lossIndex: 'x-%q' })[0]!, /^sinks\[1\]\.lossIndex: unknown date directive/);
    assert.match(problems({ url: 'https://es:9200', format: 'xml' })[0]!, /^sinks\[1\]\.format:/);
    assert.match(problems({ url: 'https://es:9200/?pretty' })[0]!, /^sinks\[1\]\.url: must not have a query string/);
  });
});

describe('elasticsearch authorization', () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorwatch-es-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const base = elasticsearchSink.parse({ url: 'https://es:9200' }, 's');
  it('basic from user + passwordFile', () => {
    writeFileSync(join(dir, 'pw'), 's3cret:with:colons\n');
    const h = authorization({ ...base, user: 'doorwatch', passwordFile: join(dir, 'pw') }, {});
    assert.equal(h, `Basic ${Buffer.from('doorwatch:s3cret:with:colons').toString('base64')}`);
  });
  it('ApiKey from the encoded key, or from id:key', () => {
    writeFileSync(join(dir, 'encoded'), 'VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==\n');
    writeFileSync(join(dir, 'pair'), 'VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw');
    assert.equal(
      authorization({ ...base, apiKeyFile: join(dir, 'encoded') }, {}),
      'ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==',
    );
    assert.equal(
      authorization({ ...base, apiKeyFile: join(dir, 'pair') }, {}),
      'ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==',
    );
  });
  it('none without credentials', () => {
    assert.equal(authorization(base, {}), undefined);
  });
});
