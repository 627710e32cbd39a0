import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { KubeApiServer, makePod, until } from '../helpers/kube-api-server.js';
import { apiRequest } from '../helpers/kube-stand-in.js';

// The stand-in is only worth its tests if it behaves like kube-apiserver on the
// wire: checked here with a bare HTTPS client, not with the client under test.

let server: KubeApiServer;
before(async () => {
  server = await KubeApiServer.create();
});
after(() => server.close());

interface WatchEvent {
  type: string;
  object: { metadata?: { name?: string; resourceVersion?: string }; code?: number; reason?: string; kind?: string };
}

const get = (path: string, token?: string) => apiRequest(server, 'GET', path, { token });

/** Opens a watch; events accumulate in `events`, `ended` resolves when the server ends the stream. */
function openWatch(path: string) {
  const events: WatchEvent[] = [];
  let close = () => {};
  const ended = new Promise<void>((resolve, reject) => {
    let responded = false;
    const req = request(
      `${server.url}${path}`,
      { ca: server.caPem, headers: { authorization: `Bearer ${server.token}` } },
      (res) => {
        responded = true;
        assert.equal(res.statusCode, 200);
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            events.push(JSON.parse(buf.slice(0, i)));
            buf = buf.slice(i + 1);
          }
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
      },
    );
    // A reset stream is an end too (dropConnections); an error before any response is not.
    req.on('error', (e) => (responded ? resolve() : reject(e)));
    req.end();
    close = () => req.destroy();
  });
  return { events, ended, close: () => close() };
}

describe('kube-apiserver stand-in', () => {
  it('answers 401 with a Status without the right bearer token', async () => {
    const r = await get('/api/v1/pods', 'wrong');
    assert.equal(r.status, 401);
    assert.equal(r.body.kind, 'Status');
    assert.equal(r.body.code, 401);
  });

  it('lists with a resourceVersion and honours spec.nodeName field selectors', async () => {
    server.addPod(makePod({ name: 'mine', namespace: 'ns1', nodeName: 'node-a' }));
    server.addPod(makePod({ name: 'theirs', namespace: 'ns1', nodeName: 'node-b' }));
    const all = await get('/api/v1/pods');
    assert.equal(all.body.kind, 'PodList');
    assert.equal((all.body.metadata as { resourceVersion: string }).resourceVersion, server.resourceVersion);
    const names = (r: typeof all) => (r.body.items as { metadata: { name: string } }[]).map((p) => p.metadata.name).sort();
    assert.deepEqual(names(all), ['mine', 'theirs']);
    assert.deepEqual(names(await get('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a')), ['mine']);
    assert.deepEqual(names(await get('/api/v1/pods?fieldSelector=spec.nodeName!%3Dnode-a')), ['theirs']);
    const bad = await get('/api/v1/pods?fieldSelector=spec.nodname%3Dx');
    assert.equal(bad.status, 400);
    assert.match(String(bad.body.message), /field label not supported: spec.nodname/);
  });

  it('watch replays what came after the RV, then streams; entering/leaving the selector is ADDED/DELETED', async () => {
    const rv = server.resourceVersion;
    server.addPod(makePod({ name: 'missed', namespace: 'ns2', nodeName: 'node-a' }));
    const w = openWatch(`/api/v1/pods?watch=true&resourceVersion=${rv}&fieldSelector=spec.nodeName%3Dnode-a`);
    await until(() => w.events.length === 1, 'the replayed event');
    assert.equal(w.events[0]!.type, 'ADDED');
    assert.equal(w.events[0]!.object.kind, 'Pod');
    // Scheduling: a pending pod (no node) bound to node-a enters the selector.
    server.addPod(makePod({ name: 'pending', namespace: 'ns2', nodeName: '' }));
    const bound = server.getPod('ns2', 'pending')!;
    bound.spec!.nodeName = 'node-a';
    server.updatePod(bound);
    server.addPod(makePod({ name: 'elsewhere', namespace: 'ns2', nodeName: 'node-b' }));
    server.deletePod('ns2', 'missed');
    await until(() => w.events.length === 3, 'three events');
    assert.deepEqual(
      w.events.map((e) => `${e.type} ${e.object.metadata?.name}`),
      ['ADDED missed', 'ADDED pending', 'DELETED missed'],
    );
    assert.equal(w.events[2]!.object.metadata?.resourceVersion, server.resourceVersion, 'a delete has its own RV');
    w.close();
  });

  it('sends bookmarks only to watchers that asked, and ends a watch after timeoutSeconds', async () => {
    const rv = server.resourceVersion;
    const withBm = openWatch(`/api/v1/namespaces?watch=true&resourceVersion=${rv}&allowWatchBookmarks=true&timeoutSeconds=1`);
    const without = openWatch(`/api/v1/namespaces?watch=true&resourceVersion=${rv}`);
    await until(() => server.openWatches('namespaces') === 2, 'both watches open');
    server.sendBookmark();
    await until(() => withBm.events.length === 1, 'a bookmark');
    assert.equal(withBm.events[0]!.type, 'BOOKMARK');
    assert.equal(withBm.events[0]!.object.metadata?.resourceVersion, rv);
    await withBm.ended; // timeoutSeconds=1: a clean end
    assert.equal(without.events.length, 0);
    without.close();
  });

  it('a watch from a compacted RV gets a 410 Expired ERROR event and the stream ends', async () => {
    const old = server.resourceVersion;
    server.addNamespace('n-after');
    server.compact();
    const w = openWatch(`/api/v1/namespaces?watch=true&resourceVersion=${old}`);
    await w.ended;
    assert.equal(w.events.length, 1);
    assert.equal(w.events[0]!.type, 'ERROR');
    assert.equal(w.events[0]!.object.code, 410);
    assert.equal(w.events[0]!.object.reason, 'Expired');
    // From the current RV it is still served.
    const ok = openWatch(`/api/v1/namespaces?watch=true&resourceVersion=${server.resourceVersion}`);
    await until(() => server.openWatches('namespaces') === 1, 'the watch open');
    ok.close();
  });

  it('dropConnections resets open watches; stop/start closes and reopens the same port', async () => {
    const w = openWatch(`/api/v1/pods?watch=true&resourceVersion=${server.resourceVersion}`);
    await until(() => server.openWatches('pods') === 1, 'the watch open');
    assert.equal(server.dropConnections(), 1);
    await w.ended;
    const port = server.port;
    await server.stop();
    await assert.rejects(get('/api/v1/pods'), /ECONNREFUSED/);
    await server.start();
    assert.equal(server.port, port);
    assert.equal((await get('/api/v1/pods')).status, 200);
  });

  it('counts requests, and answers 503 while unavailable and 403 when forbidden', async () => {
    const before = server.counters.lists.namespaces;
    server.setUnavailable(true);
    assert.equal((await get('/api/v1/namespaces')).status, 503);
    server.setUnavailable(false);
    server.forbid('namespaces');
    const r = await get('/api/v1/namespaces');
    assert.equal(r.status, 403);
    assert.match(String(r.body.message), /cannot list resource "namespaces"/);
    server.forbid('namespaces', false);
    assert.equal(server.counters.lists.namespaces, before + 2);
    assert.equal(server.requests.at(-1)?.status, 403);
  });
});
