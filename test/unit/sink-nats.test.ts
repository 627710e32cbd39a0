import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NatsError } from 'nats';
import { formatRecord, recordId } from '../../src/formats/format.js';
import { LossRecord } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent, EnrichmentStatus } from '../../src/gen/doorwatch/v1/event.js';
import { describePublishError, natsMessage, natsSink, patternCovers, subjectFor, subjectToken } from '../../src/sinks/nats.js';
import type { SinkRecord } from '../../src/sinks/sink.js';
import { configProblems } from '../helpers/config-problems.js';
import { sampleSummary } from '../helpers/sample-events.js';

function ev(namespace: string | undefined, status = EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE): SinkRecord {
  return {
    kind: 'event',
    event: AcceptEvent.fromPartial({
      eventId: 'node-a/boot/1/7',
      seq: 7n,
      timeUnixNano: 1_700_000_000_000_000_000n,
      nodeName: 'node-a',
      ...(namespace === undefined ? {} : { pod: { namespace, name: 'p' } }),
      enrichment: { status },
    }),
  };
}

describe('NATS subjects', () => {
  it('a token cannot hold spaces, dots, wildcards or control characters', () => {
    assert.equal(subjectToken('kube-system'), 'kube-system');
    assert.equal(subjectToken('a b.c*d>e'), 'a_b_c_d_e');
    assert.equal(subjectToken('tab\there\nnl\u0000'), 'tab_here_nl_');
    assert.equal(subjectToken(''), '_unknown');
  });

  it('namespace, _host, _unknown and _loss under the prefix', () => {
    const p = 'doorwatch.accept';
    assert.equal(subjectFor(ev('shop'), p), 'doorwatch.accept.shop');
    assert.equal(subjectFor(ev('weird.ns name'), p), 'doorwatch.accept.weird_ns_name');
    assert.equal(subjectFor(ev(undefined, EnrichmentStatus.ENRICHMENT_STATUS_HOST), p), 'doorwatch.accept._host');
    assert.equal(subjectFor(ev(undefined, EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL), p), 'doorwatch.accept._unknown');
    const loss: SinkRecord = { kind: 'loss', loss: LossRecord.fromPartial({ fromSeq: 1n, toSeq: 2n }) };
    assert.equal(subjectFor(loss, 'audit'), 'audit._loss');
  });

  it('the message carries the record id (Nats-Msg-Id) and the formatted record', () => {
    const rec = ev('shop');
    const m = natsMessage(rec, 'doorwatch.accept', 'ocsf');
    assert.equal(m.subject, 'doorwatch.accept.shop');
    assert.equal(m.id, recordId(rec));
    assert.equal(m.id, 'node-a/boot/1/7');
    assert.deepEqual(JSON.parse(new TextDecoder().decode(m.data)), JSON.parse(JSON.stringify(formatRecord(rec, 'ocsf'))));
  });

  it('a summary record goes to its namespace’s subject, under its own event id', () => {
    const rec: SinkRecord = { kind: 'event', event: sampleSummary() };
    const m = natsMessage(rec, 'doorwatch.accept', 'native');
    assert.equal(m.subject, 'doorwatch.accept.shop');
    assert.equal(m.id, 'boot-1/inst-1/42');
    assert.equal(JSON.parse(new TextDecoder().decode(m.data)).kind, 'EVENT_KIND_SUMMARY');
  });

  it('knows whether a stream subject captures all of prefix.*', () => {
    assert.ok(patternCovers('doorwatch.accept.>', 'doorwatch.accept.*'));
    assert.ok(patternCovers('doorwatch.>', 'doorwatch.accept.*'));
    assert.ok(patternCovers('>', 'doorwatch.accept.*'));
    assert.ok(patternCovers('doorwatch.accept.*', 'doorwatch.accept.*'));
    assert.ok(patternCovers('doorwatch.*.*', 'doorwatch.accept.*'));
    assert.ok(!patternCovers('doorwatch.accept.prod', 'doorwatch.accept.*'));
    assert.ok(!patternCovers('doorwatch.accept', 'doorwatch.accept.*'));
    assert.ok(!patternCovers('doorwatch.accept.*.x', 'doorwatch.accept.*'));
    assert.ok(!patternCovers('other.>', 'doorwatch.accept.*'));
  });

  it('explains publish failures', () => {
    assert.match(describePublishError(new NatsError('503', '503'), 'a.b', 5000), /no JetStream stream captures a\.b/);
    assert.match(describePublishError(new NatsError('TIMEOUT', 'TIMEOUT'), 'a.b', 5000), /no PubAck within 5000 ms/);
  });
});

describe('nats config', () => {
  const parse = (c: unknown) => natsSink.parse(c, 'sinks[2]');
  const problems = (c: unknown): string[] => configProblems(parse, c);

  it('fills defaults', () => {
    const c = parse({ name: 'n', type: 'nats', required: false, servers: 'nats://nats:4222' });
    assert.deepEqual(c.servers, ['nats://nats:4222']);
    assert.equal(c.subjectPrefix, 'doorwatch.accept');
    assert.equal(c.createStream, false);
    assert.equal(c.duplicateWindow, 120_000);
    assert.equal(c.ackTimeout, 5000);
    assert.equal(c.format, 'native');
  });

  it('refuses inline password and token', () => {
    const p = problems({ servers: 'nats://n:4222', user: 'u', password: 'pw', token: 't' });
    assert.ok(
      p.some((s) => /^sinks\[2\]\.password: inline secrets are not accepted: .*passwordFile/.test(s)),
      p.join('\n'),
    );
    assert.ok(
      p.some((s) => /^sinks\[2\]\.token: inline secrets are not accepted: .*tokenFile/.test(s)),
      p.join('\n'),
    );
  });

  it('checks prefix, stream name and combinations, naming the key', () => {
    assert.match(
      problems({ servers: 'nats://n:4222', subjectPrefix: 'a..b' })[0]!,
      /^sinks\[2\]\.subjectPrefix: must be dot-separated/,
    );
    assert.match(problems({ servers: 'nats://n:4222', subjectPrefix: 'a.*' })[0]!, /^sinks\[2\]\.subjectPrefix:/);
    assert.match(problems({ servers: 'nats://n:4222', stream: 'DOOR.WATCH' })[0]!, /^sinks\[2\]\.stream: stream names cannot/);
    assert.match(
      problems({ servers: 'nats://n:4222', createStream: true })[0]!,
      /^sinks\[2\]\.stream: createStream needs the stream name/,
    );
    assert.match(problems({ servers: 'nats://n:4222', user: 'u' })[0]!, /^sinks\[2\]\.passwordFile: user needs passwordFile/);
    assert.match(
      problems({ servers: 'nats://n:4222', user: 'u', passwordFile: '/p', tokenFile: '/t' })[0]!,
      /^sinks\[2\]\.tokenFile: use either/,
    );
    assert.match(problems({ servers: [] })[0]!, /^sinks\[2\]\.servers/);
    assert.match(problems({ servers: 'http://n:4222' })[0]!, /^sinks\[2\]\.servers\[0\]: must look like nats:\/\/host:4222/);
    assert.match(problems({ servers: 'nats://n:4222', tls: { ca: '/ca', verify: false } })[0]!, /^sinks\[2\]\.tls: .*"verify"/);
  });
});
