import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALL_KEYS, NO_KEYS } from '../../src/kube/allow-list.js';
import { toPodMeta } from '../../src/kube/pod-meta.js';
import { MetadataStore } from '../../src/kube/store.js';
import { Backoff } from '../../src/retry/backoff.js';
import { makePod, randomContainerId } from '../helpers/kube-api-server.js';

const filters = { labels: ALL_KEYS, annotations: NO_KEYS };

function setup(retentionMs = 1000) {
  let t = 10_000;
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  return { clock, store: new MetadataStore(retentionMs, clock.now) };
}

describe('metadata store', () => {
  it('indexes by container id, pod uid and namespace name', () => {
    const { store } = setup();
    const id = randomContainerId();
    const meta = toPodMeta(makePod({ name: 'p', uid: 'uid-1', containers: [{ name: 'app', image: 'x', id }] }), filters);
    store.upsertPod(meta);
    store.upsertPod(meta); // an update of the same pod
    assert.equal(store.container(id)?.pod, meta);
    assert.equal(store.container(id)?.container.name, 'app');
    assert.equal(store.pod('uid-1'), meta);
    store.upsertNamespace({ name: 'default', labels: {} });
    assert.deepEqual(store.namespace('default'), { name: 'default', labels: {} });
    assert.deepEqual(store.counts(), { pods: 1, namespaces: 1, deletedRetained: 0, containers: 1 });
  });

  it('a deleted pod resolves (marked deleted) for the retention, then is purged with its containers', () => {
    const { store, clock } = setup(1000);
    const id = randomContainerId();
    store.upsertPod(toPodMeta(makePod({ name: 'p', uid: 'uid-1', containers: [{ name: 'app', image: 'x', id }] }), filters));
    store.deletePod('uid-1');
    const deletedAt = clock.now();
    assert.equal(store.pod('uid-1')?.deletedAtMs, deletedAt);
    assert.equal(store.container(id)?.pod.deletedAtMs, deletedAt, 'container lookups see the deletion');
    assert.deepEqual(store.counts(), { pods: 0, namespaces: 0, deletedRetained: 1, containers: 1 });
    clock.advance(999);
    assert.ok(store.container(id));
    clock.advance(1);
    assert.equal(store.container(id), undefined);
    assert.equal(store.pod('uid-1'), undefined);
    assert.deepEqual(store.counts(), { pods: 0, namespaces: 0, deletedRetained: 0, containers: 0 });
  });

  it('the final state sent with a delete is kept (containers seen only then still resolve)', () => {
    const { store } = setup();
    store.upsertPod(toPodMeta(makePod({ name: 'p', uid: 'u', containers: [{ name: 'app', image: 'x', id: '' }] }), filters));
    const id = randomContainerId();
    store.deletePod('u', toPodMeta(makePod({ name: 'p', uid: 'u', containers: [{ name: 'app', image: 'x', id }] }), filters));
    assert.ok(store.container(id)?.pod.deletedAtMs);
  });

  it('a container replaced by a restart stays resolvable for the retention, pointing at the current pod', () => {
    const { store, clock } = setup(1000);
    const first = randomContainerId();
    const second = randomContainerId();
    store.upsertPod(
      toPodMeta(
        makePod({ name: 'p', uid: 'u', labels: { v: '1' }, containers: [{ name: 'app', image: 'x', id: first }] }),
        filters,
      ),
    );
    clock.advance(10);
    store.upsertPod(
      toPodMeta(
        makePod({ name: 'p', uid: 'u', labels: { v: '2' }, containers: [{ name: 'app', image: 'x', id: second }] }),
        filters,
      ),
    );
    assert.equal(store.container(second)?.pod.labels.v, '2');
    assert.equal(store.container(first)?.pod.labels.v, '2');
    clock.advance(1000);
    assert.equal(store.container(first), undefined);
    assert.ok(store.container(second));
    assert.equal(store.counts().containers, 1);
  });

  it('an object back before its expiry is not purged by the stale expiry', () => {
    const { store, clock } = setup(1000);
    store.upsertNamespace({ name: 'team-a', labels: { v: '1' } });
    store.deleteNamespace('team-a');
    assert.ok(store.namespace('team-a')?.deletedAtMs);
    clock.advance(500);
    store.upsertNamespace({ name: 'team-a', labels: { v: '2' } }); // recreated
    clock.advance(5000);
    assert.deepEqual(store.namespace('team-a'), { name: 'team-a', labels: { v: '2' } });
  });

  it('deleted namespaces expire like pods', () => {
    const { store, clock } = setup(1000);
    store.upsertNamespace({ name: 'gone', labels: {} });
    store.deleteNamespace('gone');
    assert.equal(store.counts().namespaces, 0);
    assert.ok(store.namespace('gone'));
    clock.advance(1000);
    assert.equal(store.namespace('gone'), undefined);
  });
});

describe('backoff', () => {
  it('full jitter under an exponential ceiling capped at max', () => {
    const b = new Backoff(100, 1000, () => 0.999);
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.next()),
      [99, 199, 399, 799, 999, 999],
    );
    b.reset();
    assert.equal(b.next(), 99);
  });
  it('spreads: uniform in [0, ceiling)', () => {
    const b = new Backoff(1000, 1000);
    const xs = Array.from({ length: 2000 }, () => b.next());
    assert.ok(xs.every((x) => x >= 0 && x < 1000));
    const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
    assert.ok(mean > 400 && mean < 600, `mean ${mean}`);
  });
  it('refuses nonsense', () => {
    assert.throws(() => new Backoff(0, 10), RangeError);
    assert.throws(() => new Backoff(10, 5), RangeError);
  });
});
