import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientError, Status } from 'nice-grpc';
import { PushQueue } from '../../src/agent/push-queue.js';
import { describeTransportError } from '../../src/agent/transport-error.js';
import { Backoff } from '../../src/retry/backoff.js';

const T = '10.0.0.5:4317';
const grpcErr = (details: string) => new ClientError('/doorwatch.v1.CollectorService/Publish', Status.UNAVAILABLE, details);

describe('describeTransportError', () => {
  // The details strings are what grpc-js 1.14 really reports (seen in the integration tests).
  const cases: [string, RegExp][] = [
    [
      'No connection established. Last error: Error: self-signed certificate in certificate chain. Resolution note: ',
      /^TLS: the collector's certificate is not signed by the configured CA \(check tls\.ca\) \[UNAVAILABLE: Error: self-signed certificate in certificate chain\]$/,
    ],
    [
      'No connection established. Last error: 80FC:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 116\n (2026-11-22T00:54:11.651Z). Resolution note: ',
      /^TLS: the collector requires a client certificate and none was sent \(set tls\.cert and tls\.key\) \[UNAVAILABLE: .*alert number 116\]$/,
    ],
    [
      'No connection established. Last error: Failed to connect (2026-11-22T00:54:11.666Z). Resolution note: ',
      /^connection closed during setup: the collector may have rejected our client certificate .* \[UNAVAILABLE: Failed to connect\]$/,
    ],
    [
      'No connection established. Last error: Error: connect ECONNREFUSED 10.0.0.5:4317. Resolution note: ',
      /^collector unreachable: connection refused at 10\.0\.0\.5:4317 \(not running, or wrong port\)/,
    ],
    ['No connection established. Last error: tlsv1 alert unknown ca', /^TLS: the collector rejected our client certificate/],
    ["Hostname/IP does not match certificate's altnames", /does not name this target \(check tls\.serverName/],
  ];
  for (const [details, expected] of cases) {
    it(details.slice(0, 70), () => assert.match(describeTransportError(grpcErr(details), T), expected));
  }

  it('keeps unknown errors as they are, with the status name', () => {
    assert.equal(describeTransportError(grpcErr('boom'), T), 'UNAVAILABLE: boom');
    assert.equal(describeTransportError(new Error('the collector ended the stream'), T), 'the collector ended the stream');
  });
});

describe('Backoff', () => {
  it('full jitter under a doubling ceiling, capped, reset on success', () => {
    const b = new Backoff(200, 1000, () => 0.5);
    assert.deepEqual(
      Array.from({ length: 5 }, () => b.next()),
      [100, 200, 400, 500, 500],
    );
    assert.equal(b.attempt, 5);
    b.reset();
    assert.equal(b.next(), 100);
    const r = new Backoff(200, 30_000, () => 0);
    assert.equal(r.next(), 0, 'full jitter: zero is possible');
    assert.throws(() => new Backoff(0, 10), /0 < initialMs <= maxMs/);
  });
});

describe('PushQueue', () => {
  it('yields pushed items in order, waits for more, ends after what is queued', async () => {
    const q = new PushQueue<number>();
    q.push(1);
    q.push(2);
    const got: number[] = [];
    const done = (async () => {
      for await (const x of q) got.push(x);
    })();
    await new Promise((r) => setTimeout(r, 5));
    q.push(3);
    q.end();
    assert.equal(q.push(4), false);
    await done;
    assert.deepEqual(got, [1, 2, 3]);
  });
});
