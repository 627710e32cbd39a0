import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { KubeMetadataSource } from '../../src/kube/source.js';
import type { KubeSourceOptions } from '../../src/kube/types.js';
import { KubeApiServer, makePod, randomContainerId, tempDir, until } from '../helpers/kube-api-server.js';

// KubeMetadataSource against the kube-apiserver stand-in: real HTTPS, real
// list/watch wire protocol, real connection resets and outages. Backoff values
// are small so recovery takes milliseconds; every wait is bounded.

const FAST = { initialMs: 20, maxMs: 200 };
const NODE = 'node-a';

interface LogLine {
  level: number;
  msg: string;
  err?: string;
  [k: string]: unknown;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: Partial<KubeSourceOptions> & { token?: string; start?: boolean } = {}) {
  const server = await KubeApiServer.create();
  cleanups.push(() => server.close());
  server.addNamespace('default');
  server.addNamespace('shop', { team: 'payments' });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(server.writeKubeconfig(tempDir(), { token: opts.token }));
  const logs: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) });
  const { token: _t, start: _s, ...rest } = opts;
  const src = new KubeMetadataSource({ kubeConfig, nodeName: NODE, log, backoff: FAST, ...rest });
  cleanups.push(() => src.stop());
  return { server, src, logs };
}

/** A pod of this node with one container whose id is returned. */
function podOn(server: KubeApiServer, name: string, nodeName = NODE, namespace = 'shop') {
  const id = randomContainerId();
  const pod = server.addPod(makePod({ name, namespace, nodeName, containers: [{ name: 'app', image: 'nginx:1.27', id }] }));
  return { id, uid: pod.metadata!.uid! };
}

describe('KubeMetadataSource: sync', () => {
  it('the initial list covers pods that existed before start — this node only — with one list and one watch each', async () => {
    const { server, src } = await setup();
    const mine = podOn(server, 'web-1');
    const other = podOn(server, 'web-2', 'node-b');
    server.addPod(makePod({ name: 'unscheduled', namespace: 'shop', nodeName: '' }));
    await src.start();
    assert.equal(src.synced(), true);
    const hit = src.byContainerId(mine.id);
    assert.equal(hit?.pod.name, 'web-1');
    assert.equal(hit?.container.name, 'app');
    assert.equal(src.byPodUid(mine.uid), hit?.pod);
    assert.equal(src.byContainerId(`containerd://${mine.id}`)?.pod.uid, mine.uid, 'prefixed ids resolve too');
    assert.equal(src.byContainerId(other.id), undefined, 'pods of other nodes never appear');
    assert.equal(src.byPodUid(other.uid), undefined);
    assert.deepEqual(src.namespace('shop'), {
      name: 'shop',
      labels: { 'kubernetes.io/metadata.name': 'shop', team: 'payments' },
    });

    await until(() => src.status().connected, 'both watches open');
    const s = src.status();
    assert.deepEqual(s, { synced: true, connected: true, restarts: 0, pods: 1, namespaces: 2, deletedRetained: 0 });
    assert.deepEqual(server.counters.lists, { pods: 1, namespaces: 1 });
    assert.deepEqual(server.counters.watches, { pods: 1, namespaces: 1 });
    // The selector is sent on both the list and the watch; the watch resumes from the list's RV with bookmarks.
    const podReqs = server.requests.filter((r) => r.resource === 'pods');
    assert.equal(podReqs[0]!.query.fieldSelector, `spec.nodeName=${NODE}`);
    assert.equal(podReqs[1]!.query.fieldSelector, `spec.nodeName=${NODE}`);
    assert.equal(podReqs[1]!.query.allowWatchBookmarks, 'true');
    assert.match(podReqs[1]!.query.resourceVersion ?? '', /^\d+$/);
    const timeout = Number(podReqs[1]!.query.timeoutSeconds);
    assert.ok(timeout >= 300 && timeout <= 600, `watch timeoutSeconds ${timeout}`);
  });

  it('pods added, changed and deleted later arrive by watch — and cost no further requests', async () => {
    const { server, src } = await setup();
    let changes = 0;
    src.on('change', () => changes++);
    await src.start();
    await until(() => src.status().connected, 'connected');
    const base = changes;
    const pods = Array.from({ length: 20 }, (_, i) => podOn(server, `burst-${i}`));
    const last = await until(() => src.byContainerId(pods.at(-1)!.id), 'the last pod', 2000);
    assert.equal(last?.pod.name, 'burst-19');
    const p0 = server.getPod('shop', 'burst-0')!;
    p0.metadata!.labels = { app: 'web', version: '2' };
    server.updatePod(p0);
    await until(() => src.byPodUid(pods[0]!.uid)?.labels.version === '2', 'the label update');
    server.deletePod('shop', 'burst-1');
    await until(() => src.byPodUid(pods[1]!.uid)?.deletedAtMs !== undefined, 'the deletion');
    server.updateNamespace('shop', { team: 'checkout' });
    await until(() => src.namespace('shop')?.labels.team === 'checkout', 'the namespace update');
    assert.ok(changes > base, "'change' fired");
    assert.deepEqual(server.counters.lists, { pods: 1, namespaces: 1 }, 'nothing per event');
    assert.deepEqual(server.counters.watches, { pods: 1, namespaces: 1 });
    assert.equal(src.status().pods, 19);
  });

  it('a pending pod appears once it is scheduled here (it enters the node selector as ADDED)', async () => {
    const { server, src } = await setup();
    await src.start();
    await until(() => src.status().connected, 'connected');
    const id = randomContainerId();
    server.addPod(makePod({ name: 'pending', namespace: 'shop', nodeName: '', containers: [{ name: 'app', image: 'x', id }] }));
    const bound = server.getPod('shop', 'pending')!;
    bound.spec!.nodeName = NODE; // the scheduler binds it
    server.updatePod(bound);
    assert.equal((await until(() => src.byContainerId(id), 'the bound pod', 3000)).pod.name, 'pending');
    assert.deepEqual(server.counters.lists, { pods: 1, namespaces: 1 }, 'by watch, not by relist');
  });

  it('a restarted container’s old id still resolves, to the current pod', async () => {
    const { server, src } = await setup();
    const { id: first, uid } = podOn(server, 'crashy');
    await src.start();
    const second = randomContainerId();
    const p = server.getPod('shop', 'crashy')!;
    p.status!.containerStatuses![0]!.containerID = `containerd://${second}`;
    server.updatePod(p);
    await until(() => src.byContainerId(second), 'the new container', 2000);
    assert.equal(src.byContainerId(first)?.pod.uid, uid);
    assert.equal(src.byContainerId(first)?.container.id, first);
  });
});

describe('KubeMetadataSource: retention', () => {
  it('deleted pods stay resolvable for deletedRetentionMs, then are purged', async () => {
    let now = 1_000_000;
    const { server, src } = await setup({ now: () => now, deletedRetentionMs: 60_000 });
    const { id, uid } = podOn(server, 'short-lived');
    await src.start();
    server.deletePod('shop', 'short-lived');
    await until(() => src.byPodUid(uid)?.deletedAtMs !== undefined, 'the deletion');
    assert.equal(src.byContainerId(id)?.pod.deletedAtMs, 1_000_000);
    assert.deepEqual([src.status().pods, src.status().deletedRetained], [0, 1]);
    now += 59_999;
    assert.ok(src.byContainerId(id), 'late events still resolve');
    now += 1;
    assert.equal(src.byContainerId(id), undefined);
    assert.equal(src.byPodUid(uid), undefined);
    assert.equal(src.status().deletedRetained, 0);
  });
});

describe('KubeMetadataSource: resilience', () => {
  it('connection reset: the watch resumes from its RV with backoff (no relist) and metadata keeps flowing', async () => {
    const { server, src, logs } = await setup();
    await src.start();
    await until(() => src.status().connected, 'connected');
    assert.equal(server.dropConnections(), 2);
    const { id } = podOn(server, 'after-reset');
    assert.equal((await until(() => src.byContainerId(id), 'the pod added after the reset', 3000)).pod.name, 'after-reset');
    await until(() => src.status().connected, 'reconnected');
    const s = src.status();
    assert.equal(s.restarts, 2);
    assert.equal(s.lastError, undefined, 'cleared once reconnected');
    assert.deepEqual(server.counters.lists, { pods: 1, namespaces: 1 }, 'resumed, not relisted');
    assert.deepEqual(server.counters.watches, { pods: 2, namespaces: 2 });
    assert.ok(
      logs.some((l) => l.level === 40 && /ECONNRESET/.test(String(l.err))),
      'the reset is logged',
    );
    assert.ok(logs.some((l) => l.msg === 'Kubernetes watch re-established'));
  });

  it('410 Gone: relists, and the relist finds what changed meanwhile (additions and deletions)', async () => {
    const { server, src } = await setup();
    const gone = podOn(server, 'deleted-while-away');
    await src.start();
    await until(() => src.status().connected, 'connected');
    server.dropConnections();
    // While the client is away (all synchronous: it cannot reconnect in between): changes, then compaction.
    const added = podOn(server, 'added-while-away');
    server.deletePod('shop', 'deleted-while-away');
    server.compact();
    assert.equal((await until(() => src.byContainerId(added.id), 'the pod added while away', 3000)).pod.name, 'added-while-away');
    await until(() => src.byPodUid(gone.uid)?.deletedAtMs !== undefined, 'the deletion found by the relist diff');
    await until(() => src.status().connected, 'reconnected');
    assert.deepEqual(server.counters.lists, { pods: 2, namespaces: 2 });
    const expired = server.requests.filter((r) => r.watch && r.resource === 'pods')[1]!;
    assert.equal(Number(expired.query.resourceVersion) < Number(server.resourceVersion), true);
  });

  it('a clean end of the watch (server timeout) re-watches at once from the RV', async () => {
    const { server, src } = await setup();
    await src.start();
    await until(() => src.status().connected, 'connected');
    server.closeWatches();
    await until(() => server.counters.watches.pods === 2 && server.counters.watches.namespaces === 2, 're-watch');
    await until(() => src.status().connected, 'reconnected');
    assert.deepEqual(server.counters.lists, { pods: 1, namespaces: 1 });
  });

  it('API server down, then back: recovers by itself, retries bounded by the backoff meanwhile', async () => {
    const { server, src } = await setup({ random: () => 0.5 });
    await src.start();
    await until(() => src.status().connected, 'connected');
    await server.stop();
    const during = podOn(server, 'created-during-outage');
    // First the cut stream (a FIN: "Premature close"), then refused reconnects.
    await until(() => /ECONNREFUSED/.test(src.status().lastError ?? ''), 'refused reconnects', 2000);
    assert.equal(src.status().connected, false);
    const r0 = src.status().restarts;
    await new Promise((r) => setTimeout(r, 1000));
    const attempts = src.status().restarts - r0;
    // random=0.5 -> waits of 10, 20, 40, 80, 100, 100 … ms per informer: about 2×12 in a second.
    // Without backoff this would be hundreds.
    assert.ok(attempts >= 6 && attempts <= 30, `${attempts} attempts in 1 s`);
    await server.start();
    assert.equal(
      (await until(() => src.byContainerId(during.id), 'the pod created during the outage', 3000)).pod.name,
      'created-during-outage',
    );
    await until(() => src.status().connected, 'reconnected', 3000);
    assert.equal(src.status().lastError, undefined);
    assert.equal(src.synced(), true);
  });

  it('503 outage: the server sees a backoff-shaped trickle of retries, not a storm', async () => {
    const { server, src } = await setup({ random: () => 0.5 });
    await src.start();
    await until(() => src.status().connected, 'connected');
    server.setUnavailable(true);
    server.dropConnections();
    const from = server.requests.length;
    await new Promise((r) => setTimeout(r, 1000));
    const podWatches = server.requests.slice(from).filter((r) => r.resource === 'pods');
    assert.ok(
      podWatches.every((r) => r.watch && r.status === 503),
      'resumes watches, never relists',
    );
    assert.ok(podWatches.length >= 4 && podWatches.length <= 15, `${podWatches.length} pod watch attempts in 1 s`);
    // The gaps follow the backoff: at least half the ceiling (10, 20, 40, 80, 100 …), never shrinking much.
    const gaps = podWatches.slice(1).map((r, i) => r.at - podWatches[i]!.at);
    gaps.forEach((g, i) => {
      const floor = 0.5 * Math.min(FAST.maxMs, FAST.initialMs * 2 ** (i + 1));
      assert.ok(g >= floor - 2, `gap ${i} = ${g.toFixed(1)}ms < ${floor}ms`);
    });
    assert.match(src.status().lastError ?? '', /HTTP 503/);
    server.setUnavailable(false);
    await until(() => src.status().connected, 'reconnected', 3000);
  });

  it('wrong token: a clear error in status() and the log, no crash, retries continue', async () => {
    const { server, src, logs } = await setup({ token: 'not-the-token' });
    await src.start(); // resolves: an unreachable/refusing API must not stop events
    assert.equal(src.synced(), false);
    const err = src.status().lastError ?? '';
    assert.match(err, /HTTP 401/);
    assert.match(err, /credentials/);
    const warned = logs.filter((l) => l.level === 40);
    assert.ok(
      warned.some((l) => /HTTP 401/.test(String(l.err))),
      'logged',
    );
    assert.ok(logs.some((l) => /API not available yet/.test(l.msg)));
    await until(() => server.counters.unauthorized >= 4, 'retries');
    // One warning per distinct failure, not one per retry.
    const retryWarnings = logs.filter((l) => l.level === 40 && /list\/watch failed/.test(l.msg));
    assert.equal(retryWarnings.length, 2, 'pods and namespaces, once each');
    assert.equal(src.byContainerId(randomContainerId()), undefined);
  });

  it('RBAC: a forbidden resource names the missing permission; granting it later recovers', async () => {
    const { server, src } = await setup();
    server.forbid('namespaces');
    podOn(server, 'visible');
    await src.start();
    assert.equal(src.synced(), false, 'namespaces never listed');
    assert.equal(src.status().pods, 1, 'pods still work');
    assert.match(src.status().lastError ?? '', /HTTP 403 namespaces is forbidden.*RBAC/);
    server.forbid('namespaces', false);
    await until(() => src.synced() && src.status().connected, 'synced after the grant', 3000);
    assert.ok(src.namespace('shop'));
  });

  it('stop() is prompt, mid-outage too, and leaves no watch open', async () => {
    const { server, src } = await setup();
    await src.start();
    await until(() => server.openWatches() === 2, 'watches open');
    await src.stop();
    await until(() => server.openWatches() === 0, 'watches closed');

    const down = await setup();
    await down.server.stop();
    await down.src.start();
    const t0 = performance.now();
    await down.src.stop();
    assert.ok(performance.now() - t0 < 500, 'no waiting out a backoff');
    assert.equal(down.src.status().connected, false);
  });

  it('refuses to start without a node name (an empty selector would match every unscheduled pod)', () => {
    const kubeConfig = new KubeConfig();
    assert.throws(() => new KubeMetadataSource({ kubeConfig, nodeName: '', log: pino({ level: 'silent' }) }), /node name/);
  });
});
