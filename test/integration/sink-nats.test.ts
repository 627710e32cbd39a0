import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type JsMsg, type NatsConnection } from 'nats';
import { formatRecord, recordId } from '../../src/formats/format.js';
import { silentLogger } from '../../src/log/logger.js';
import { natsSink } from '../../src/sinks/nats.js';
import type { Sink, SinkRecord } from '../../src/sinks/sink.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { sinkEvent as ev, sampleLoss } from '../helpers/sample-events.js';

/** The NATS sink against a real nats-server with JetStream (Debian's nats-server 2.9). */

const deps = { log: silentLogger };
const loss: SinkRecord = { kind: 'loss', loss: sampleLoss() };

const dir = mkdtempSync(join(tmpdir(), 'doorwatch-nats-secrets-'));
function secret(name: string, value: string): string {
  const f = join(dir, name);
  writeFileSync(f, `${value}\n`);
  return f;
}

const sinks: Sink[] = [];
async function started(s: Promise<Sink>): Promise<Sink> {
  const sink = await s;
  sinks.push(sink);
  return sink;
}
after(async () => {
  for (const s of sinks) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function messages(nc: NatsConnection, stream: string): Promise<number> {
  const jsm = await nc.jetstreamManager();
  return (await jsm.streams.info(stream)).state.messages;
}

/** Everything in the stream, read back with an ordered consumer. */
async function readAll(nc: NatsConnection, stream: string): Promise<JsMsg[]> {
  const n = await messages(nc, stream);
  const consumer = await nc.jetstream().consumers.get(stream);
  const out: JsMsg[] = [];
  const iter = await consumer.fetch({ max_messages: n, expires: 2000 });
  for await (const m of iter) out.push(m);
  return out;
}

describe('nats sink against a real nats-server', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  before(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
  });
  after(async () => {
    await nc?.close();
    await server?.dispose();
  });

  const config = (extra: Record<string, unknown>) =>
    natsSink.parse({ name: 'nats', type: 'nats', servers: server.url, ...extra }, 'sinks[2]');

  it('creates the stream, publishes every record to its subject with Nats-Msg-Id, and JetStream has them', async () => {
    const sink = await started(natsSink.create('nats', config({ stream: 'DOORWATCH', createStream: true }), deps));
    const batch = [ev(1, 'shop'), ev(2, 'payments'), ev(3), loss];
    await sink.write(batch);

    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info('DOORWATCH');
    assert.deepEqual(info.config.subjects, ['doorwatch.accept.>']);
    assert.equal(info.config.duplicate_window, 120_000_000_000, '2 minutes, in nanoseconds');

    const got = await readAll(nc, 'DOORWATCH');
    assert.deepEqual(
      got.map((m) => m.subject),
      ['doorwatch.accept.shop', 'doorwatch.accept.payments', 'doorwatch.accept._host', 'doorwatch.accept._loss'],
    );
    assert.deepEqual(
      got.map((m) => m.headers?.get('Nats-Msg-Id')),
      batch.map((r) => recordId(r)),
    );
    assert.equal(got[0]!.headers?.get('Content-Type'), 'application/json');
    assert.equal(got[3]!.headers?.get('Doorwatch-Record'), 'loss');
    assert.deepEqual(got[0]!.json(), JSON.parse(JSON.stringify(formatRecord(batch[0]!, 'native'))));
  });

  it('a replayed batch is deduplicated by Nats-Msg-Id: the stream does not grow', async () => {
    const sink = await started(natsSink.create('nats', config({ stream: 'DOORWATCH' }), deps));
    const before = await messages(nc, 'DOORWATCH');
    await sink.write([ev(1, 'shop'), ev(2, 'payments'), ev(3), loss]);
    assert.equal(await messages(nc, 'DOORWATCH'), before);
    await sink.write([ev(1, 'shop'), ev(4, 'shop')]);
    assert.equal(await messages(nc, 'DOORWATCH'), before + 1, 'only the new record');
  });

  it('publishes a large batch concurrently and waits for every PubAck', async () => {
    const sink = await started(natsSink.create('nats', config({ stream: 'DOORWATCH' }), deps));
    const before = await messages(nc, 'DOORWATCH');
    const big = Array.from({ length: 2000 }, (_, i) => ev(1000 + i, `ns-${i % 7}`));
    await sink.write(big);
    assert.equal(await messages(nc, 'DOORWATCH'), before + 2000, 'all there when write resolves');
  });

  it('a missing stream fails the start clearly, unless createStream', async () => {
    await assert.rejects(
      natsSink.create('nats', config({ stream: 'ABSENT', subjectPrefix: 'other.accept' }), deps),
      /nats sink "nats" cannot start: JetStream stream "ABSENT" does not exist: create it \(nats stream add ABSENT --subjects 'other\.accept\.>'.*or set `createStream: true`/,
    );
  });

  it('without a stream name, some stream must capture the prefix', async () => {
    await assert.rejects(
      natsSink.create('nats', config({ subjectPrefix: 'nobody.listens' }), deps),
      /cannot start: no JetStream stream captures nobody\.listens\.>/,
    );
    const sink = await started(natsSink.create('nats', config({}), deps));
    await sink.write([ev(5000, 'shop')]);
  });

  it('a stream that does not capture the prefix fails the start', async () => {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: 'NARROW', subjects: ['narrow.accept.prod'] });
    await assert.rejects(
      natsSink.create('nats', config({ stream: 'NARROW', subjectPrefix: 'narrow.accept' }), deps),
      /stream "NARROW" captures \[narrow\.accept\.prod\], not narrow\.accept\.>/,
    );
  });

  it('nothing listening fails the start', async () => {
    await assert.rejects(
      natsSink.create('nats', natsSink.parse({ servers: 'nats://127.0.0.1:1' }, 's'), deps),
      /nats sink "nats" cannot start/,
    );
  });
});

describe('nats sink across a server restart', () => {
  let server: NatsServer;
  before(async () => {
    server = await startNatsServer();
  });
  after(() => server?.dispose());

  it('writes reject while the server is down and succeed once it is back', async () => {
    const cfg = natsSink.parse(
      { servers: server.url, stream: 'DW', createStream: true, ackTimeout: '500ms', reconnectWait: '100ms' },
      's',
    );
    const sink = await started(natsSink.create('nats', cfg, deps));
    await sink.write([ev(1, 'shop')]);

    await server.stop();
    await assert.rejects(
      sink.write([ev(2, 'shop'), ev(3, 'shop')]),
      /2 of 2 messages not acknowledged by JetStream: no PubAck within 500 ms/,
    );

    await server.start();
    // What the dispatcher does: retry the same batch with backoff until it is in.
    let attempts = 0;
    for (;;) {
      attempts++;
      try {
        await sink.write([ev(2, 'shop'), ev(3, 'shop')]);
        break;
      } catch (e) {
        if (attempts > 40) throw e;
        await sleep(250);
      }
    }
    const nc = await connect({ servers: server.url });
    try {
      assert.equal(await messages(nc, 'DW'), 3, 'the stream survived the restart, and no message is there twice');
    } finally {
      await nc.close();
    }
  });
});

describe('nats sink authentication and TLS', () => {
  let pki: Pki;
  before(() => {
    pki = makePki();
  });

  it('user + passwordFile; a wrong password fails the start with the fix', async () => {
    const server = await startNatsServer({ user: 'doorwatch', pass: 's3cret' });
    try {
      const ok = natsSink.parse(
        { servers: server.url, stream: 'DW', createStream: true, user: 'doorwatch', passwordFile: secret('pw', 's3cret') },
        's',
      );
      const sink = await started(natsSink.create('nats', ok, deps));
      await sink.write([ev(1, 'shop')]);
      await sink.close();
      const bad = natsSink.parse(
        { servers: server.url, stream: 'DW', user: 'doorwatch', passwordFile: secret('pw-bad', 'nope') },
        's',
      );
      await assert.rejects(
        natsSink.create('nats', bad, deps),
        /cannot start: .*Authorization Violation.*check user \+ passwordFile or tokenFile/i,
      );
    } finally {
      await server.dispose();
    }
  });

  it('tokenFile', async () => {
    const server = await startNatsServer({ token: 'tok-123' });
    try {
      const cfg = natsSink.parse(
        { servers: server.url, stream: 'DW', createStream: true, tokenFile: secret('tok', 'tok-123') },
        's',
      );
      const sink = await started(natsSink.create('nats', cfg, deps));
      await sink.write([ev(1, 'shop')]);
    } finally {
      await server.dispose();
    }
  });

  it('mutual TLS with the CA and a client certificate; the wrong CA fails the start', async () => {
    const server = await startNatsServer({ tls: { cert: pki.server.cert, key: pki.server.key, verifyCa: pki.caFile } });
    try {
      const client = pki.client('collector');
      const cfg = natsSink.parse(
        {
          servers: server.url,
          stream: 'DW',
          createStream: true,
          tls: { ca: pki.caFile, cert: client.cert, key: client.key },
        },
        's',
      );
      const sink = await started(natsSink.create('nats', cfg, deps));
      await sink.write([ev(1, 'shop'), ev(2)]);

      const wrong = natsSink.parse(
        { servers: server.url, stream: 'DW', tls: { ca: pki.other.caFile, cert: client.cert, key: client.key } },
        's',
      );
      await assert.rejects(natsSink.create('nats', wrong, deps), /nats sink "nats" cannot start: .*(certificate|verify)/i);
    } finally {
      await server.dispose();
    }
  });
});
