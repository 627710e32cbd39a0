import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { type Channel, ClientError, createChannel, createClient, Status } from 'nice-grpc';
import type { RunningCollector } from '../../src/collector/collector.js';
import {
  CollectorServiceDefinition,
  type DeepPartial,
  type SubscribeFilter,
  type SubscribeResponse,
} from '../../src/gen/doorwatch/v1/collector.js';
import {
  agentIdentity,
  bounded,
  clientCredentials,
  eventually,
  makeBatch,
  makeEvent,
  startMemoryCollector,
  TestAgent,
} from '../helpers/memory-sink.js';
import { makePki } from '../helpers/pki.js';

// Subscribe over real gRPC + mTLS: filters, losses for everyone, only new
// events, and what a slow subscriber is told.

let collector: RunningCollector;
let creds: ChannelCredentials;
const channels: Channel[] = [];
const agents: TestAgent[] = [];
const cancels: (() => void)[] = [];

before(async () => {
  const pki = makePki();
  const c = pki.client('tail');
  creds = clientCredentials({ ca: pki.caPem, key: c.keyPem, cert: c.certPem });
  ({ collector } = await startMemoryCollector(pki, [{ name: 'm', batch: { maxDelay: '5ms' } }], {
    subscribers: { maxBuffered: 20 },
  }));
});

// Each test starts with no subscriber registered.
afterEach(async () => {
  for (const c of cancels.splice(0)) c();
  await eventually(() => collector.stats().subscribers === 0, 3000, 'subscribers to go away');
});

after(async () => {
  for (const a of agents) a.close();
  for (const ch of channels) ch.close();
  await collector?.stop();
});

function subscriber(filter: DeepPartial<SubscribeFilter>) {
  const channel = createChannel(`localhost:${collector.port}`, creds);
  channels.push(channel);
  const ac = new AbortController();
  cancels.push(() => ac.abort());
  const it = createClient(CollectorServiceDefinition, channel)
    .subscribe({ filter }, { signal: ac.signal })
    [Symbol.asyncIterator]();
  return {
    /** The next item, bounded. */
    next: async (): Promise<SubscribeResponse> => {
      const r = await bounded(it.next(), 3000, 'a subscription item');
      assert.ok(!r.done, 'stream ended');
      return r.value;
    },
    /** Start the call and wait until the collector has registered it. */
    async connected(first: Promise<IteratorResult<SubscribeResponse>>, before: number) {
      first.catch(() => {});
      await eventually(() => collector.stats().subscribers > before, 3000, 'the subscriber to register');
    },
    it,
  };
}

let seqs = 0;
/** Publish events as agent `node` and wait until they are acked. */
async function publish(node: string, events: ReturnType<typeof makeEvent>[]): Promise<void> {
  const a = new TestAgent(collector.port, creds);
  agents.push(a);
  const first = BigInt(++seqs * 100_000);
  a.hello(agentIdentity(node, `inst-${node}-${seqs}`));
  for (let i = 0; i < events.length; i += 500) {
    const chunk = events.slice(i, i + 500).map((e, j) => ({ ...e, seq: first + BigInt(i + j) }));
    a.batch({ firstSeq: first + BigInt(i), events: chunk, losses: undefined, contexts: [], eventContexts: [] });
  }
  await a.waitAck(first + BigInt(events.length) - 1n);
  a.close();
}

async function subscribed(filter: DeepPartial<SubscribeFilter>) {
  const s = subscriber(filter);
  const before = collector.stats().subscribers;
  const first = s.it.next();
  await s.connected(first, before);
  return { ...s, first };
}

describe('collector Subscribe', () => {
  it('filters by namespace, and sees only events accepted after it connected', async () => {
    await publish('n1', [makeEvent(1, { namespace: 'prod', pod: 'before' })]);
    const s = await subscribed({ namespaces: ['prod'] });
    await publish('n1', [
      makeEvent(1, { namespace: 'dev', pod: 'a' }),
      makeEvent(1, { namespace: 'prod', pod: 'b' }),
      makeEvent(1, { node: 'n1' }), // host process: no pod
      makeEvent(1, { namespace: 'prod', pod: 'c' }),
    ]);
    const got = [(await bounded(s.first, 3000, 'first')).value as SubscribeResponse, await s.next()];
    assert.deepEqual(
      got.map((r) => r.event?.pod?.name),
      ['b', 'c'],
    );
  });

  it('filters by port (local or peer) and by peer CIDR, IPv4-mapped peers included', async () => {
    const byPort = await subscribed({ ports: [443] });
    const byPeer = await subscribed({ peers: ['10.2.0.0/16', '2001:db8::/32'] });
    const both = await subscribed({ ports: [443], peers: ['10.2.0.0/16'], nodes: ['n2'] });
    await publish('n2', [
      makeEvent(1, { node: 'n2', pod: 'p1', localPort: 443, peerIp: '192.168.1.1' }),
      makeEvent(1, { node: 'n2', pod: 'p2', localPort: 80, peerPort: 443, peerIp: '10.2.3.4' }),
      makeEvent(1, { node: 'n2', pod: 'p3', localPort: 80, peerIp: '::ffff:10.2.9.9' }),
      makeEvent(1, { node: 'n2', pod: 'p4', localPort: 80, peerIp: '2001:db8::1' }),
      makeEvent(1, { node: 'n2', pod: 'p5', localPort: 80, peerIp: '10.3.0.1' }),
    ]);
    const names = async (s: Awaited<ReturnType<typeof subscribed>>, n: number) => {
      const out = [((await bounded(s.first, 3000, 'first')).value as SubscribeResponse).event?.pod?.name];
      for (let i = 1; i < n; i++) out.push((await s.next()).event?.pod?.name);
      return out;
    };
    assert.deepEqual(await names(byPort, 2), ['p1', 'p2']);
    assert.deepEqual(await names(byPeer, 3), ['p2', 'p3', 'p4']);
    assert.deepEqual(await names(both, 1), ['p2']);
  });

  it('delivers loss records to every subscriber, whatever the filter', async () => {
    const s = await subscribed({ namespaces: ['nothing-matches'] });
    const a = new TestAgent(collector.port, creds);
    agents.push(a);
    a.hello(agentIdentity('n3'))
      .batch(makeBatch(1, 2, { node: 'n3' }))
      .batch(makeBatch(10, 2, { node: 'n3' }));
    const loss = ((await bounded(s.first, 3000, 'loss')).value as SubscribeResponse).loss;
    assert.equal(loss?.reason, 'seq gap');
    assert.equal(loss?.fromSeq, 3n);
    assert.equal(loss?.toSeq, 9n);
  });

  it('rejects an invalid filter with INVALID_ARGUMENT', async () => {
    const s = subscriber({ peers: ['not-an-ip'] });
    await assert.rejects(
      bounded(s.it.next(), 3000, 'rejection'),
      (e: unknown) => e instanceof ClientError && e.code === Status.INVALID_ARGUMENT && /filter\.peers\[0\]/.test(e.details),
    );
  });

  it('a slow subscriber loses the oldest events and is told how many', async () => {
    const s = await subscribed({ nodes: ['n4'] });
    // It reads nothing while 3000 events go by (its buffer holds 20).
    const total = 3000;
    const events = Array.from({ length: total }, (_, i) => makeEvent(i + 1, { node: 'n4', pod: `p${i}` }));
    await publish('n4', events);
    let received = 0;
    let dropped = 0n;
    const count = (r: SubscribeResponse) => {
      if (r.event) received++;
      if (r.loss) {
        assert.equal(r.loss.reason, 'subscriber too slow');
        dropped += r.loss.counters?.queueDrops ?? 0n;
      }
    };
    count((await bounded(s.first, 3000, 'first')).value as SubscribeResponse);
    while (BigInt(received) + dropped < BigInt(total)) count(await s.next());
    assert.ok(dropped > 0n, 'something was dropped');
    assert.ok(received >= 20, `the newest events were kept (${received})`);
    assert.ok(collector.stats().subscriberDrops >= Number(dropped));
  });
});
