import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatRecord, recordId } from '../../src/formats/format.js';
import { silentLogger } from '../../src/log/logger.js';
import { elasticsearchSink } from '../../src/sinks/elasticsearch.js';
import { HttpSinkError } from '../../src/sinks/http-client.js';
import type { Sink, SinkRecord } from '../../src/sinks/sink.js';
import { splunkHecSink } from '../../src/sinks/splunk-hec.js';
import { type EsStandin, type HecStandin, startEsStandin, startHecStandin } from '../helpers/http-siem-standins.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { sinkEvent as ev, sampleLoss } from '../helpers/sample-events.js';

/**
 * The Splunk HEC and Elasticsearch sinks over HTTPS (certificates from the
 * test PKI) against STAND-INS (test/helpers/http-siem-standins.ts) that check
 * the wire format and answer as the products do: neither Splunk nor
 * Elasticsearch runs on this machine.
 */

const deps = { log: silentLogger };
const T = 1_700_000_000_123_456_789n; // 2023-11-14

const loss: SinkRecord = { kind: 'loss', loss: sampleLoss({ timeUnixNano: T }) };

const batch = [ev(1, 'shop'), ev(2, 'payments'), ev(3), loss];

let pki: Pki;
const sinks: Sink[] = [];
/** create() and remember the sink for cleanup. */
async function started(s: Promise<Sink>): Promise<Sink> {
  const sink = await s;
  sinks.push(sink);
  return sink;
}
function secret(name: string, value: string): string {
  const f = join(pki.dir, name);
  writeFileSync(f, `${value}\n`);
  return f;
}

before(() => {
  pki = makePki();
});
after(async () => {
  for (const s of sinks) await s.close();
});

describe('splunk_hec sink against the HEC stand-in', () => {
  let hec: HecStandin;
  const token = '11111111-2222-3333-4444-555555555555';
  const config = (extra: Record<string, unknown> = {}) =>
    splunkHecSink.parse(
      {
        name: 'splunk',
        type: 'splunk_hec',
        url: hec.url,
        tokenFile: secret('hec-token', token),
        tls: { ca: pki.caFile },
        ...extra,
      },
      'sinks[0]',
    );

  before(async () => {
    hec = await startHecStandin({
      token,
      tls: { cert: pki.server.certPem, key: pki.server.keyPem },
      allowedIndexes: ['security'],
    });
  });
  after(() => hec.close());

  it('delivers a batch as concatenated HEC events over HTTPS', async () => {
    const sink = await started(splunkHecSink.create('splunk', config({ index: 'security' }), deps));
    const before = hec.received.length;
    await sink.write(batch);
    const got = hec.received.slice(before).map((r) => r.event);
    assert.equal(got.length, 4);
    assert.deepEqual(got[0], {
      time: 1_700_000_000.124,
      host: 'node-a',
      source: 'doorwatch',
      sourcetype: 'doorwatch:accept',
      index: 'security',
      event: JSON.parse(JSON.stringify(formatRecord(batch[0]!, 'native'))),
      fields: { namespace: 'shop', pod: 'shop-pod' },
    });
    assert.equal(got[2]!.fields, undefined, 'host process: no namespace/pod');
    assert.equal(got[3]!.sourcetype, 'doorwatch:loss');
    const post = hec.requests.at(-1)!;
    assert.equal(post.headers.authorization, `Splunk ${token}`);
    assert.equal(post.headers['content-type'], 'application/json');
    assert.equal(post.status, 200);
  });

  it('503 busy rejects (retryable); the same batch succeeds once HEC recovers', async () => {
    const sink = await started(splunkHecSink.create('splunk', config(), deps));
    const before = hec.received.length;
    hec.setBusy(true);
    await assert.rejects(
      sink.write(batch),
      (e: unknown) => e instanceof HttpSinkError && e.retryable && e.status === 503 && /Server is busy/.test(e.message),
    );
    assert.equal(hec.received.length, before, 'nothing indexed while busy');
    hec.setBusy(false);
    await sink.write(batch);
    assert.equal(hec.received.length, before + batch.length);
  });

  it('a wrong token fails the start, saying which setting to check', async () => {
    const cfg = splunkHecSink.parse({ url: hec.url, tokenFile: secret('bad-token', 'nope'), tls: { ca: pki.caFile } }, 's');
    await assert.rejects(
      splunkHecSink.create('splunk', cfg, deps),
      /splunk_hec sink "splunk" cannot start: .*403 "Invalid token" \(code 4\).*tokenFile/,
    );
  });

  it('a token revoked after the start rejects writes as not retryable', async () => {
    const sink = await started(splunkHecSink.create('splunk', config(), deps));
    hec.setToken('rotated');
    try {
      await assert.rejects(
        sink.write(batch),
        (e: unknown) => e instanceof HttpSinkError && !e.retryable && /Invalid token/.test(e.message),
      );
    } finally {
      hec.setToken(token);
    }
  });

  it('an index the token may not write to is reported with the fix', async () => {
    const sink = await started(splunkHecSink.create('splunk', config({ index: 'main' }), deps));
    await assert.rejects(sink.write(batch), /Incorrect index.*`index`/);
  });

  it('a server certificate from another CA fails the start with a TLS message', async () => {
    const cfg = splunkHecSink.parse({ url: hec.url, tokenFile: secret('hec-token', token), tls: { ca: pki.other.caFile } }, 's');
    await assert.rejects(splunkHecSink.create('splunk', cfg, deps), /cannot start: .*TLS failure.*tls\.ca /);
  });

  it('a missing token file fails the start', async () => {
    const cfg = splunkHecSink.parse({ url: hec.url, tokenFile: join(pki.dir, 'absent') }, 's');
    await assert.rejects(splunkHecSink.create('splunk', cfg, deps), /cannot start: cannot read tokenFile .*ENOENT/);
  });
});

describe('splunk_hec sink with indexer acknowledgement (HEC stand-in)', () => {
  let hec: HecStandin;
  const token = 'ack-token';
  before(async () => {
    hec = await startHecStandin({
      token,
      ack: true,
      ackAfterPolls: 2,
      tls: { cert: pki.server.certPem, key: pki.server.keyPem },
    });
  });
  after(() => hec.close());

  it('resolves only once the ackId is acknowledged', async () => {
    const cfg = splunkHecSink.parse(
      { url: hec.url, tokenEnv: 'DW_TEST_HEC_TOKEN', ack: true, ackPollInterval: '20ms', tls: { ca: pki.caFile } },
      's',
    );
    const sink = await started(splunkHecSink.create('splunk', cfg, { ...deps, env: { DW_TEST_HEC_TOKEN: token } }));
    await sink.write(batch);
    const acks = hec.requests.filter((r) => r.path === '/services/collector/ack');
    assert.equal(acks.length, 3, 'answered false twice (ackAfterPolls), then true');
    const channel = acks[0]!.headers['x-splunk-request-channel'];
    assert.match(String(channel), /^[0-9a-f-]{36}$/);
    assert.ok(hec.received.every((r) => r.channel === channel));
  });

  it('a token that requires acknowledgement, without ack: true, fails the start with the fix', async () => {
    const cfg = splunkHecSink.parse({ url: hec.url, tokenFile: secret('ack-token', token), tls: { ca: pki.caFile } }, 's');
    await assert.rejects(splunkHecSink.create('splunk', cfg, deps), /Data channel is missing.*set `ack: true`/);
  });
});

describe('elasticsearch sink against the _bulk stand-in', () => {
  let es: EsStandin;
  const password = 'correct horse battery staple';
  const index = 'doorwatch-accept-2023.11.14';
  const config = (extra: Record<string, unknown> = {}) =>
    elasticsearchSink.parse(
      {
        name: 'es',
        type: 'elasticsearch',
        required: true,
        format: 'ecs',
        url: es.url,
        user: 'doorwatch',
        passwordFile: secret('es-password', password),
        tls: { ca: pki.caFile },
        ...extra,
      },
      'sinks[1]',
    );

  before(async () => {
    es = await startEsStandin({
      auth: { user: 'doorwatch', password },
      tls: { cert: pki.server.certPem, key: pki.server.keyPem },
      dataStreams: ['logs-doorwatch.accept-default'],
    });
  });
  after(() => es.close());

  it('indexes every record under its id, in the index of its date, as NDJSON', async () => {
    const sink = await started(elasticsearchSink.create('es', config(), deps));
    await sink.write(batch);
    const docs = es.indices.get(index)!;
    assert.equal(docs.size, 3);
    assert.deepEqual(docs.get('node-a/boot-1/100/1'), JSON.parse(JSON.stringify(formatRecord(batch[0]!, 'ecs'))));
    assert.equal(es.count('doorwatch-loss-2023.11.14'), 1);
    assert.ok(es.indices.get('doorwatch-loss-2023.11.14')!.has(recordId(loss)));
    const bulk = es.requests.at(-1)!;
    assert.equal(bulk.path, '/_bulk');
    assert.equal(bulk.headers['content-type'], 'application/x-ndjson');
    assert.match(String(bulk.headers.authorization), /^Basic /);
  });

  it('a replayed batch is idempotent: 409s count as success, no duplicate documents', async () => {
    const sink = await started(elasticsearchSink.create('es', config(), deps));
    const before = es.count();
    await sink.write(batch);
    await sink.write(batch);
    assert.equal(es.count(), before, 'the first test already indexed this batch');
    await sink.write([ev(10, 'shop'), ...batch]);
    assert.equal(es.count(), before + 1, 'only the new record was added');
  });

  it('an item rejected with 429 rejects the batch with counts; the resend completes it', async () => {
    const sink = await started(elasticsearchSink.create('es', config(), deps));
    const fresh = [ev(20, 'shop'), ev(21, 'shop'), ev(22, 'shop')];
    const before = es.count(index);
    es.failNextItems(1, {
      status: 429,
      type: 'es_rejected_execution_exception',
      reason: 'rejected execution of coordinating operation',
    });
    await assert.rejects(sink.write(fresh), (e: unknown) => {
      assert.ok(e instanceof HttpSinkError);
      assert.ok(e.retryable);
      assert.match(e.message, /1 of 3 items failed \(2 created, 0 already indexed\): 1× 429 es_rejected_execution_exception/);
      return true;
    });
    assert.equal(es.count(index), before + 2);
    await sink.write(fresh);
    assert.equal(es.count(index), before + 3);
  });

  it('a document the mapping refuses is reported as not retryable', async () => {
    const sink = await started(elasticsearchSink.create('es', config(), deps));
    es.failNextItems(1, {
      status: 400,
      type: 'document_parsing_exception',
      reason: 'failed to parse field [source.port] of type [long]',
    });
    await assert.rejects(
      sink.write([ev(30, 'shop')]),
      (e: unknown) => e instanceof HttpSinkError && !e.retryable && /source\.port/.test(e.message),
    );
  });

  it('an unavailable cluster rejects; the same batch succeeds after recovery', async () => {
    const sink = await started(elasticsearchSink.create('es', config(), deps));
    es.setUnavailable(true);
    try {
      await assert.rejects(
        sink.write([ev(40, 'shop')]),
        (e: unknown) => e instanceof HttpSinkError && e.retryable && e.status === 503,
      );
    } finally {
      es.setUnavailable(false);
    }
    await sink.write([ev(40, 'shop')]);
    assert.ok(es.indices.get(index)!.has('node-a/boot-1/100/40'));
  });

  it('writes to a data stream with create actions and @timestamp (ecs)', async () => {
    const sink = await started(elasticsearchSink.create('es', config({ index: 'logs-doorwatch.accept-default' }), deps));
    await sink.write([ev(50, 'shop'), ev(51, 'shop')]);
    await sink.write([ev(50, 'shop'), ev(51, 'shop')]);
    assert.equal(es.count('logs-doorwatch.accept-default'), 2);
  });

  it('wrong credentials fail the start with the fix', async () => {
    const cfg = config({ passwordFile: secret('es-wrong', 'wrong') });
    await assert.rejects(
      elasticsearchSink.create('es', cfg, deps),
      /elasticsearch sink "es" cannot start: .*HTTP 401 .*unable to authenticate user \[doorwatch\].*check user \+ passwordFile/,
    );
  });

  it('an unreachable cluster fails the start', async () => {
    const cfg = config({ url: 'https://127.0.0.1:1' });
    await assert.rejects(elasticsearchSink.create('es', cfg, deps), /cannot start: .*connection refused/);
  });
});

describe('elasticsearch sink with an API key and mutual TLS (_bulk stand-in)', () => {
  let es: EsStandin;
  const encoded = Buffer.from('key-id:key-secret').toString('base64');
  before(async () => {
    es = await startEsStandin({
      auth: { apiKey: encoded },
      tls: { cert: pki.server.certPem, key: pki.server.keyPem, clientCa: pki.caPem },
    });
  });
  after(() => es.close());

  it('authenticates with the API key and the client certificate', async () => {
    const client = pki.client('collector');
    const cfg = elasticsearchSink.parse(
      {
        url: es.url,
        apiKeyFile: secret('es-api-key', encoded),
        tls: { ca: pki.caFile, cert: client.cert, key: client.key },
      },
      's',
    );
    const sink = await started(elasticsearchSink.create('es', cfg, deps));
    await sink.write([ev(1, 'shop')]);
    const bulk = es.requests.at(-1)!;
    assert.equal(bulk.headers.authorization, `ApiKey ${encoded}`);
    assert.equal(bulk.clientCn, 'collector');
    assert.equal(es.count(), 1);
  });

  it('without a client certificate the TLS handshake fails the start', async () => {
    const cfg = elasticsearchSink.parse({ url: es.url, apiKeyFile: secret('es-api-key', encoded), tls: { ca: pki.caFile } }, 's');
    await assert.rejects(elasticsearchSink.create('es', cfg, deps), /cannot start: GET .* failed/);
  });
});
