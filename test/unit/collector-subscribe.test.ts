import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServerError, Status } from 'nice-grpc';
import { compileSubscribeFilter, FilterError, SubscriberHub } from '../../src/collector/subscribe.js';
import { SubscribeFilter, type SubscribeResponse } from '../../src/gen/doorwatch/v1/collector.js';
import { makeEvent } from '../helpers/memory-sink.js';

// Every list not given empty, as a decoded request has it.
const filter = (x: Partial<SubscribeFilter>): SubscribeFilter => SubscribeFilter.fromPartial(x);

describe('subscribe filter', () => {
  it('matches everything when empty', () => {
    assert.ok(compileSubscribeFilter(undefined)(makeEvent(1)));
    assert.ok(compileSubscribeFilter(filter({}))(makeEvent(1)));
  });

  it('any entry within a list, all lists together', () => {
    const m = compileSubscribeFilter(filter({ namespaces: ['a', 'b'], ports: [443] }));
    assert.ok(m(makeEvent(1, { namespace: 'b', localPort: 443 })));
    assert.ok(m(makeEvent(1, { namespace: 'a', localPort: 80, peerPort: 443 })), 'peer port counts');
    assert.ok(!m(makeEvent(1, { namespace: 'c', localPort: 443 })));
    assert.ok(!m(makeEvent(1, { namespace: 'a', localPort: 80 })));
    assert.ok(!m(makeEvent(1, { localPort: 443 })), 'no pod: a namespace filter does not match');
  });

  it('pods and nodes', () => {
    const m = compileSubscribeFilter(filter({ pods: ['web-0'], nodes: ['n1'] }));
    assert.ok(m(makeEvent(1, { node: 'n1', pod: 'web-0' })));
    assert.ok(!m(makeEvent(1, { node: 'n2', pod: 'web-0' })));
  });

  it('peers: addresses and CIDRs, both families, IPv4-mapped peers', () => {
    const m = compileSubscribeFilter(filter({ peers: ['10.0.0.0/8', '192.168.1.7', 'fd00::/8'] }));
    for (const ip of ['10.9.9.9', '192.168.1.7', 'fd12::1', '::ffff:10.1.1.1']) assert.ok(m(makeEvent(1, { peerIp: ip })), ip);
    for (const ip of ['11.0.0.1', '192.168.1.8', 'fe80::1', '::ffff:11.1.1.1', ''])
      assert.ok(!m(makeEvent(1, { peerIp: ip })), ip);
  });

  it('says which entry is invalid', () => {
    assert.throws(
      () => compileSubscribeFilter(filter({ peers: ['10.0.0.0/8', 'nope'] })),
      /filter\.peers\[1\]: "nope" is not an IP/,
    );
    assert.throws(() => compileSubscribeFilter(filter({ peers: ['10.0.0.0/33'] })), FilterError);
    assert.throws(() => compileSubscribeFilter(filter({ ports: [70000] })), /filter\.ports\[0\]: 70000 is not a port/);
  });
});

describe('subscriber hub', () => {
  async function take(it: AsyncIterator<SubscribeResponse>, n: number): Promise<SubscribeResponse[]> {
    const out: SubscribeResponse[] = [];
    for (let i = 0; i < n; i++) {
      const r = await it.next();
      if (r.done) break;
      out.push(r.value);
    }
    return out;
  }

  it('a slow subscriber loses the oldest events, is told how many, and still gets every loss record', async () => {
    const hub = new SubscriberHub({ maxBuffered: 5, maxSubscribers: 10 });
    const ac = new AbortController();
    const it = hub.subscribe(filter({}), ac.signal);
    const first = it.next(); // registers the subscriber
    await new Promise((r) => setImmediate(r));
    assert.equal(hub.stats().subscribers, 1);
    hub.publishEvents([makeEvent(1)]);
    assert.equal((await first).value?.event?.seq, 1n);
    const loss = { agent: undefined, fromSeq: 3n, toSeq: 4n, reason: 'seq gap', counters: undefined, timeUnixNano: 0n };
    hub.publishEvents([makeEvent(2)]);
    hub.publishLoss(loss);
    hub.publishEvents(Array.from({ length: 20 }, (_, i) => makeEvent(10 + i)));
    const got = await take(it, 7);
    assert.equal(got[0]!.loss?.reason, 'seq gap', 'a loss pushed out of the buffer is carried, not dropped');
    assert.equal(got[1]!.loss?.reason, 'subscriber too slow');
    assert.equal(got[1]!.loss?.counters?.queueDrops, 16n, '1 + 15 events dropped');
    assert.deepEqual(
      got.slice(2).map((r) => Number(r.event?.seq)),
      [25, 26, 27, 28, 29],
    );
    assert.equal(hub.stats().dropped, 16);
    ac.abort();
    assert.equal((await it.next()).done, true);
    assert.equal(hub.stats().subscribers, 0);
  });

  it('refuses bad filters and too many subscribers with gRPC statuses', async () => {
    const hub = new SubscriberHub({ maxBuffered: 5, maxSubscribers: 1 });
    await assert.rejects(
      hub.subscribe(filter({ peers: ['x'] }), new AbortController().signal).next(),
      (e: unknown) => e instanceof ServerError && e.code === Status.INVALID_ARGUMENT,
    );
    const ac = new AbortController();
    const one = hub.subscribe(filter({}), ac.signal);
    const pending = one.next();
    await new Promise((r) => setImmediate(r));
    await assert.rejects(
      hub.subscribe(filter({}), new AbortController().signal).next(),
      (e: unknown) => e instanceof ServerError && e.code === Status.RESOURCE_EXHAUSTED && /subscribers\.max/.test(e.details),
    );
    hub.close();
    assert.equal((await pending).done, true, 'close() ends subscriptions');
  });
});
