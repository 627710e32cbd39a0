import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ChannelCredentials, type ClientDuplexStream, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { ClientError, Status } from 'nice-grpc';
import type { RunningCollector } from '../../src/collector/collector.js';
import { PublishRequest } from '../../src/gen/doorwatch/v1/collector.js';
import {
  agentIdentity,
  bounded,
  clientCredentials,
  eventually,
  type MemorySinks,
  makeBatch,
  makeEvent,
  startMemoryCollector,
  TestAgent,
} from '../helpers/memory-sink.js';
import { makePki, type Pki } from '../helpers/pki.js';

// The collector over real gRPC on loopback with real mTLS (openssl-made
// certs): delivery, dedup, gaps, protocol errors, transport limits, and who
// gets in.

let pki: Pki;
let mem: MemorySinks;
let collector: RunningCollector;
let agentCreds: ChannelCredentials;
const agents: TestAgent[] = [];

function agent(creds: ChannelCredentials = agentCreds): TestAgent {
  const a = new TestAgent(collector.port, creds);
  agents.push(a);
  return a;
}

const sink = () => mem.get('main');
const eventsOf = (node: string) => sink().events.filter((e) => e.nodeName === node);
const lossesOf = (node: string) => sink().losses.filter((l) => l.agent?.nodeName === node);

async function statusOf(a: TestAgent): Promise<ClientError> {
  const err = await bounded(a.outcome, 5000, 'the call to end');
  assert.ok(err instanceof ClientError, `expected a gRPC error, got ${err}`);
  return err;
}

before(async () => {
  pki = makePki();
  const client = pki.client('agent-1');
  agentCreds = clientCredentials({ ca: pki.caPem, key: client.keyPem, cert: client.certPem });
  ({ collector, mem } = await startMemoryCollector(pki, [{ name: 'main', batch: { maxDelay: '5ms' } }], {
    maxMessageBytes: '256KiB',
  }));
});

after(async () => {
  for (const a of agents) a.close();
  await collector?.stop();
});

describe('collector over mTLS', () => {
  it('delivers every event of two agents exactly once and acks up to the last seq', async () => {
    const a = agent().hello(agentIdentity('n1'));
    const b = agent().hello(agentIdentity('n2'));
    for (let i = 0; i < 10; i++) {
      a.batch(makeBatch(1 + i * 50, 50, { node: 'n1' }));
      b.batch(makeBatch(1 + i * 30, 30, { node: 'n2' }));
    }
    await Promise.all([a.waitAck(500), b.waitAck(300)]);
    assert.equal(a.lastAck, 500n);
    assert.equal(b.lastAck, 300n);
    const seqs = (node: string) => eventsOf(node).map((e) => Number(e.seq));
    assert.deepEqual(
      seqs('n1'),
      Array.from({ length: 500 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      seqs('n2'),
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    // Acks only move forward.
    for (const x of [a, b])
      assert.deepEqual(
        x.acks,
        [...x.acks].sort((p, q) => (p < q ? -1 : p > q ? 1 : 0)),
      );
    // Half-close: the stream ends OK once everything is acked.
    a.end();
    assert.equal(await bounded(a.outcome, 5000, 'a clean end'), undefined);
  });

  it('deduplicates a replay of acked batches (new stream, same agent) and acks it', async () => {
    const id = agentIdentity('n3');
    const first = agent()
      .hello(id)
      .batch(makeBatch(1, 20, { node: 'n3' }))
      .batch(makeBatch(21, 20, { node: 'n3' }));
    await first.waitAck(40);
    first.close();
    const dupBefore = collector.stats().duplicates;
    // Reconnect and resend 11..40 (as if the acks were lost) plus new 41..50.
    const again = agent()
      .hello(id)
      .batch(makeBatch(11, 30, { node: 'n3' }))
      .batch(makeBatch(41, 10, { node: 'n3' }));
    await again.waitAck(50);
    const seqs = eventsOf('n3').map((e) => Number(e.seq));
    assert.deepEqual(
      seqs,
      Array.from({ length: 50 }, (_, i) => i + 1),
      'each seq persisted once',
    );
    assert.equal(collector.stats().duplicates - dupBefore, 30);
    // A batch that is all duplicates is acked too.
    const third = agent()
      .hello(id)
      .batch(makeBatch(1, 5, { node: 'n3' }));
    await third.waitAck(5);
    assert.equal(eventsOf('n3').length, 50);
  });

  it('a partially overlapping batch keeps only the new tail', async () => {
    const a = agent()
      .hello(agentIdentity('n4'))
      .batch(makeBatch(1, 10, { node: 'n4' }))
      .batch(makeBatch(6, 10, { node: 'n4' }));
    await a.waitAck(15);
    assert.deepEqual(
      eventsOf('n4').map((e) => Number(e.seq)),
      Array.from({ length: 15 }, (_, i) => i + 1),
    );
  });

  it('a seq gap becomes a LossRecord; the first batch after a (re)start is the baseline', async () => {
    const id = agentIdentity('n5');
    const a = agent()
      .hello(id)
      .batch(makeBatch(100, 10, { node: 'n5' })); // baseline: no loss for 1..99
    await a.waitAck(109);
    a.batch(makeBatch(120, 5, { node: 'n5' }));
    await a.waitAck(124);
    const losses = lossesOf('n5');
    assert.equal(losses.length, 1);
    assert.equal(losses[0]!.reason, 'seq gap');
    assert.equal(losses[0]!.fromSeq, 110n);
    assert.equal(losses[0]!.toSeq, 119n);
    assert.equal(losses[0]!.agent?.instanceId, id.instanceId);
    assert.ok(losses[0]!.timeUnixNano > 0n);
    // The loss record is persisted before the events after the gap.
    const recs = sink().records.filter(
      (r) => (r.kind === 'event' && r.event.nodeName === 'n5') || (r.kind === 'loss' && r.loss.agent?.nodeName === 'n5'),
    );
    assert.equal(recs[10]!.kind, 'loss');
  });

  it('agent-reported losses become a LossRecord with the counters', async () => {
    const b = makeBatch(1, 3, { node: 'n6' });
    b.losses = { kernelRingFull: 7n, decodeErrors: 0n, bpfRecursionMisses: 1n, queueDrops: 0n, spoolDrops: 0n };
    const a = agent()
      .hello(agentIdentity('n6'))
      .batch(b)
      .batch(makeBatch(4, 1, { node: 'n6' }));
    await a.waitAck(4);
    const losses = lossesOf('n6');
    assert.equal(losses.length, 1, 'zero counters are not a loss');
    assert.equal(losses[0]!.reason, 'agent reported losses');
    assert.equal(losses[0]!.counters?.kernelRingFull, 7n);
    assert.equal(losses[0]!.counters?.bpfRecursionMisses, 1n);
  });

  it('rejects a stream whose first message is not hello', async () => {
    const a = agent().batch(makeBatch(1, 1)).end();
    const err = await statusOf(a);
    assert.equal(err.code, Status.INVALID_ARGUMENT);
    assert.match(err.details, /first message must be hello/);
  });

  it('rejects a batch whose seqs are not first_seq + i, naming the index', async () => {
    const b = makeBatch(1, 5, { node: 'n7' });
    b.events[3] = makeEvent(9, { node: 'n7' });
    const a = agent().hello(agentIdentity('n7')).batch(b);
    const err = await statusOf(a);
    assert.equal(err.code, Status.INVALID_ARGUMENT);
    assert.match(err.details, /events\[3\]\.seq is 9, expected 4/);
    assert.equal(eventsOf('n7').length, 0);
  });

  it('rejects empty batches, hello without identity, and a second hello', async () => {
    const e1 = await statusOf(
      agent().hello(agentIdentity('n8')).batch({ firstSeq: 1n, events: [], losses: undefined, contexts: [], eventContexts: [] }),
    );
    assert.match(e1.details, /batch has no events/);
    const e2 = await statusOf(agent().send({ hello: { agent: { nodeName: 'x' } } }));
    assert.match(e2.details, /instance_id is empty/);
    const e3 = await statusOf(agent().hello(agentIdentity('n8')).hello(agentIdentity('n8')));
    assert.match(e3.details, /hello may only be sent once/);
    for (const e of [e1, e2, e3]) assert.equal(e.code, Status.INVALID_ARGUMENT);
  });

  it('answers malformed protobuf bytes with INVALID_ARGUMENT and keeps serving others', async () => {
    const bytes = {
      path: '/doorwatch.v1.CollectorService/Publish',
      requestStream: true,
      responseStream: true,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    };
    const Raw = makeGenericClientConstructor({ publish: bytes }, 'CollectorService');
    const client = new Raw(`127.0.0.1:${collector.port}`, agentCreds);
    try {
      const call = (client as unknown as { publish(): ClientDuplexStream<Buffer, Buffer> }).publish();
      const status = new Promise<ServiceError>((resolve) => call.on('error', resolve));
      call.on('data', () => {});
      call.write(Buffer.from(PublishRequest.encode({ hello: { agent: agentIdentity('n9') } }).finish()));
      // Field 2 (batch), length-delimited, claiming 2^31 bytes that are not there.
      call.write(Buffer.from([0x12, 0x80, 0x80, 0x80, 0x80, 0x08, 0x01]));
      const err = await bounded(status, 5000, 'a status for garbage');
      assert.equal(err.code, Status.INVALID_ARGUMENT);
      assert.match(err.details, /message 1 is not a valid PublishRequest/);
    } finally {
      client.close();
    }
    // The server is fine.
    const a = agent()
      .hello(agentIdentity('n10'))
      .batch(makeBatch(1, 2, { node: 'n10' }));
    await a.waitAck(2);
  });

  it('refuses a batch larger than maxMessageBytes with RESOURCE_EXHAUSTED', async () => {
    const a = agent()
      .hello(agentIdentity('n11'))
      .batch(makeBatch(1, 4000, { node: 'n11' })); // ~430 KiB > 256 KiB
    const err = await statusOf(a);
    assert.equal(err.code, Status.RESOURCE_EXHAUSTED);
    assert.match(err.details, /larger than max/);
    assert.equal(eventsOf('n11').length, 0);
  });

  describe('who gets in', () => {
    const refused = async (creds: ChannelCredentials, what: string) => {
      const streamsBefore = collector.stats().streams;
      const err = await statusOf(
        agent(creds)
          .hello(agentIdentity(`intruder-${what}`))
          .batch(makeBatch(1, 1)),
      );
      assert.equal(err.code, Status.UNAVAILABLE, `${what}: ${err.message}`);
      assert.equal(collector.stats().streams, streamsBefore, `${what}: no handler ran`);
    };

    it('refuses a client without a certificate at the TLS handshake', async () => {
      await refused(clientCredentials({ ca: pki.caPem }), 'no-cert');
    });

    it('refuses a client certificate from another CA', async () => {
      const o = pki.other.client;
      await refused(clientCredentials({ ca: pki.caPem, key: o.keyPem, cert: o.certPem }), 'other-ca');
    });

    it('refuses a plaintext client', async () => {
      await refused(clientCredentials('insecure'), 'plaintext');
    });

    it('is refused by an agent that does not trust the server', async () => {
      const c = pki.client('agent-2');
      await refused(clientCredentials({ ca: pki.other.caPem, key: c.keyPem, cert: c.certPem }), 'untrusted-server');
    });
  });

  it('reports per-sink and per-stream stats', async () => {
    await eventually(() => collector.stats().sinks[0]!.queued === 0, 2000, 'queue empty');
    const s = collector.stats();
    assert.ok(s.accepted >= 800);
    assert.ok(s.rejected >= 4);
    assert.equal(s.sinks[0]!.name, 'main');
    assert.equal(s.sinks[0]!.dropped, 0);
    assert.ok(s.sinks[0]!.written > 0);
    assert.ok(s.sinks[0]!.lastWriteMs !== null);
  });
});
