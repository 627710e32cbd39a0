import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tableHeader, tableRow } from '../../src/cli/table.js';
import { EXTERNAL } from '../../src/collector/peers/attributor.js';
import { OwnerFactory } from '../../src/collector/peers/objects.js';
import { compileSubscribeFilter, redactEvent, SubscriberHub } from '../../src/collector/subscribe.js';
import { SubscribeFilter } from '../../src/gen/doorwatch/v1/collector.js';
import { type AcceptEvent, AttributionStatus } from '../../src/gen/doorwatch/v1/event.js';
import { ALL_KEYS, compileAllowList } from '../../src/kube/allow-list.js';
import { makeEvent } from '../helpers/memory-sink.js';

const f = new OwnerFactory(compileAllowList(undefined, ALL_KEYS));
const client = f.pod({
  metadata: {
    name: 'client-5d8f-x2v9q',
    namespace: 'shop',
    uid: 'u1',
    labels: { 'pod-template-hash': '5d8f' },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'client-5d8f', uid: 'rs', controller: true }],
  },
  spec: { containers: [], nodeName: 'node-b' },
  status: { podIP: '10.244.2.7' },
}).attr;
const secret = f.pod({ metadata: { name: 'vault-0', namespace: 'secrets', uid: 'u2' }, spec: { containers: [] } }).attr;

// Every list not given empty, as a decoded request has it.
const filter = (x: Partial<SubscribeFilter>): SubscribeFilter => SubscribeFilter.fromPartial(x);

function withPeer(seq: number, peer: AcceptEvent['peerAttribution'], namespace = 'shop'): AcceptEvent {
  const ev = makeEvent(seq, { namespace, pod: 'web-0' });
  ev.peerAttribution = peer;
  return ev;
}

describe('subscribe: peer filters (tail --peer-namespace, --peer-workload)', () => {
  it('match the peer’s namespace, and its workload by name or Kind/name', () => {
    const ev = withPeer(1, client);
    const other = withPeer(2, EXTERNAL);
    const m = (x: Partial<SubscribeFilter>) => compileSubscribeFilter(filter(x));
    assert.ok(m({ peerNamespaces: ['shop'] })(ev));
    assert.ok(!m({ peerNamespaces: ['kube-system'] })(ev));
    assert.ok(!m({ peerNamespaces: ['shop'] })(other), 'an external peer is in no namespace');
    assert.ok(m({ peerWorkloads: ['client'] })(ev));
    assert.ok(m({ peerWorkloads: ['Deployment/client'] })(ev));
    assert.ok(!m({ peerWorkloads: ['StatefulSet/client'] })(ev));
    assert.ok(!m({ peerWorkloads: ['client'] })(makeEvent(3)), 'no attribution: no match');
  });

  it('a namespace-scoped subscriber sees a peer in a namespace it may not watch only as its kind, and cannot filter on it', async () => {
    const hub = new SubscriberHub({ maxBuffered: 10, maxSubscribers: 2 });
    const ac = new AbortController();
    const scoped = hub.subscribe(filter({}), ac.signal, { all: false, namespaces: new Set(['shop']) });
    const probe = hub.subscribe(filter({ peerNamespaces: ['secrets'] }), ac.signal, {
      all: false,
      namespaces: new Set(['shop']),
    });
    const first = scoped.next();
    const probed = probe.next();
    await new Promise((r) => setImmediate(r));
    const a = withPeer(1, secret);
    hub.publishEvents([a, withPeer(2, client)]);
    const got = (await first).value?.event;
    assert.equal(got?.peerAttribution?.status, AttributionStatus.ATTRIBUTION_STATUS_UNKNOWN);
    assert.equal(got?.peerAttribution?.name, '');
    assert.match(got?.peerAttribution?.reason ?? '', /may not watch/);
    assert.equal(a.peerAttribution, secret, 'the event itself (sinks, other subscribers) is not touched');
    assert.equal((await scoped.next()).value?.event?.peerAttribution, client, 'a visible peer as it is, no copy');
    ac.abort();
    assert.equal((await probed).done, true, 'the hidden namespace matched nothing');
    assert.equal(redactEvent(withPeer(3, client), new Set(['shop'])).peerAttribution, client);
  });

  it('the table names the peer owner, or its status, or that attribution is the collector’s', () => {
    assert.match(tableHeader(true), /PEER OWNER/);
    assert.match(tableRow(withPeer(1, client), true), /shop\/client \(client-5d8f-x2v9q\)/);
    assert.match(tableRow(withPeer(1, EXTERNAL), true), / external/);
    assert.match(tableRow(makeEvent(1, { namespace: 'shop', pod: 'web-0' }), true), /\(at collector\)/);
  });
});
