import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { kubeApi } from '../../src/kube/api.js';
import { ResilientInformer, type ResilientInformerOptions, type WatchFn } from '../../src/kube/informer.js';
import { type KubeApiServer, makePod, until } from '../helpers/kube-api-server.js';
import { kubeApiStandIn } from '../helpers/kube-stand-in.js';

// The list+watch loop on its own, for what the facade cannot show: the
// resourceVersion it resumes from, silent servers, dead watches, bad handlers.

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface LogLine {
  level: number;
  msg: string;
  err?: string;
}

/** A kubeconfig for a server that is not the stand-in (one that never answers). */
function kubeconfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'x' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

function podInformer(kc: KubeConfig, extra: Partial<ResilientInformerOptions<V1Pod>> = {}) {
  const api = kubeApi(kc);
  const logs: LogLine[] = [];
  const seen = new Map<string, V1Pod>();
  const inf = new ResilientInformer<V1Pod>({
    resource: 'pods',
    path: '/api/v1/pods',
    fieldSelector: 'spec.nodeName=node-a',
    list: (signal) => api.listPods('spec.nodeName=node-a', signal),
    watch: api.watch,
    keyOf: (p) => p.metadata!.uid!,
    handlers: {
      upsert: (p) => seen.set(p.metadata!.name!, p),
      remove: () => {},
    },
    log: pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) }),
    backoff: { initialMs: 20, maxMs: 200 },
    random: () => 0.5,
    ...extra,
  });
  cleanups.push(() => inf.stop());
  return { inf, logs, seen };
}

async function standIn(): Promise<{ server: KubeApiServer; kc: KubeConfig }> {
  const { api: server, kubeConfig: kc } = await kubeApiStandIn();
  cleanups.push(() => server.close());
  return { server, kc };
}

describe('ResilientInformer', () => {
  it('follows bookmarks: after a quiet spell and a compaction it resumes without a 410 or a relist', async () => {
    const { server, kc } = await standIn();
    const { inf } = podInformer(kc);
    await inf.start();
    await until(() => inf.state().connected, 'connected');
    // Activity on other nodes moves the RV on; this watch sees none of it...
    for (let i = 0; i < 5; i++) server.addPod(makePod({ name: `elsewhere-${i}`, nodeName: 'node-b' }));
    assert.notEqual(inf.resourceVersion, server.resourceVersion);
    // ...until a bookmark carries the new RV.
    server.sendBookmark();
    await until(() => inf.resourceVersion === server.resourceVersion, 'the bookmark RV');
    server.compact();
    server.dropConnections();
    await until(() => server.counters.watches.pods === 2 && inf.state().connected, 'reconnected');
    assert.equal(server.counters.lists.pods, 1, 'no relist');
  });

  it('after a 410 on a resumed watch it relists at once; a fresh list that is already expired backs off', async () => {
    const { server, kc } = await standIn();
    // random=1, initial 300 ms: a backoff would show as a gap of 300 ms or more (250 leaves a loaded machine room).
    const { inf } = podInformer(kc, { backoff: { initialMs: 300, maxMs: 300 }, random: () => 1 });
    await inf.start();
    await until(() => inf.state().connected, 'connected');
    server.dropConnections();
    server.addPod(makePod({ name: 'p1' }));
    server.compact();
    await until(() => server.counters.lists.pods === 2, 'the relist', 3000);
    const reqs = server.requests.filter((r) => r.resource === 'pods');
    const i = reqs.findIndex((r, n) => n > 0 && !r.watch);
    const [expired, relist] = [reqs[i - 1]!, reqs[i]!];
    assert.equal(expired.watch, true);
    assert.ok(relist.at - expired.at < 250, `relisted ${(relist.at - expired.at).toFixed(0)} ms after the 410`);

    // Now every watch 410s, even from a list just made: the loop must not turn into a relist storm.
    server.expireBefore(Number(server.resourceVersion) + 1_000_000);
    server.dropConnections();
    const lists0 = server.counters.lists.pods;
    await new Promise((r) => setTimeout(r, 700));
    const relists = server.counters.lists.pods - lists0;
    assert.ok(relists >= 1 && relists <= 4, `${relists} relists in 700 ms at 300 ms backoff`);
  });

  it('a list the server never answers times out, is reported, and retried', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      sockets.add(s); // accept, then say nothing (not even TLS)
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => silent.close(() => r()));
    });
    const port = (silent.address() as { port: number }).port;
    const { inf } = podInformer(kubeconfigFor(`https://127.0.0.1:${port}`), { requestTimeoutMs: 150 });
    const t0 = performance.now();
    await inf.start();
    assert.ok(performance.now() - t0 < 1000, 'start() does not hang on a silent server');
    assert.equal(inf.state().listed, false);
    assert.match(inf.state().lastError ?? '', /list pods: no answer within 0.15s/);
    await until(() => sockets.size >= 2, 'a retry');
    const t1 = performance.now();
    await inf.stop();
    assert.ok(performance.now() - t1 < 500, 'stop() is prompt');
  });

  it('a watch the server never ends is aborted by the watchdog and re-established', async () => {
    const { server, kc } = await standIn();
    const real = kubeApi(kc).watch;
    // A server that ignores timeoutSeconds (a proxy that swallowed it, a half-open connection).
    const deaf: WatchFn = (path, query, cb, done) => real(path, { ...query, timeoutSeconds: undefined }, cb, done);
    const { inf, logs } = podInformer(kc, { watch: deaf, watchTimeoutSeconds: () => 1, watchdogGraceMs: 100 });
    await inf.start();
    await until(() => server.counters.watches.pods === 2, 'a second watch', 3000);
    assert.ok(logs.some((l) => /still open past its 1s timeout/.test(String(l.err))));
    assert.equal(server.counters.lists.pods, 1, 'resumed from the RV');
    await until(() => inf.state().connected, 'reconnected');
  });

  it('a handler that throws costs one object, not the informer', async () => {
    const { server, kc } = await standIn();
    const seen: string[] = [];
    const { inf, logs } = podInformer(kc, {
      handlers: {
        upsert: (p) => {
          if (p.metadata?.name === 'poison') throw new Error('boom');
          seen.push(p.metadata!.name!);
        },
        remove: () => {},
      },
    });
    await inf.start();
    await until(() => inf.state().connected, 'connected');
    server.addPod(makePod({ name: 'poison' }));
    server.addPod(makePod({ name: 'fine' }));
    await until(() => seen.includes('fine'), 'the next pod');
    assert.ok(logs.some((l) => l.level === 50 && l.err === 'boom'));
    assert.equal(inf.state().connected, true);
  });
});
