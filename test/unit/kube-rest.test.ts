import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { kubeApi } from '../../src/kube/api.js';
import { describeApiError } from '../../src/kube/api-error.js';
import { loadKubeConfig } from '../../src/kube/config.js';
import { KubeHttpError, kubeRequest } from '../../src/kube/rest.js';
import { KubeApiServer, makePod, tempDir } from '../helpers/kube-api-server.js';

// src/kube/rest.ts against the Kubernetes API stand-in (no kube-apiserver can run here:
// test/helpers/kube-api-server.ts), with client-node's KubeConfig as the agent loads `--kubeconfig`.
describe('kube REST calls without the generated client', () => {
  let api: KubeApiServer;
  let kc: KubeConfig;
  const signal = () => AbortSignal.timeout(10_000);

  before(async () => {
    api = await KubeApiServer.create();
    const loaded = await loadKubeConfig({ env: {}, kubeconfigPath: api.writeKubeconfig(tempDir()) });
    assert.ok(loaded.kubeConfig);
    kc = loaded.kubeConfig;
  });
  after(() => api.close());

  it('lists pods by field selector as the API server sent them (plain JSON, no model classes)', async () => {
    api.addPod(makePod({ namespace: 'shop', name: 'web-1', nodeName: 'node-a' }));
    api.addPod(makePod({ namespace: 'shop', name: 'web-2', nodeName: 'node-b' }));
    const list = await kubeApi(kc).listPods('spec.nodeName=node-a', signal());
    assert.deepEqual(
      list.items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`),
      ['shop/web-1'],
    );
    assert.equal(Object.getPrototypeOf(list.items[0]), Object.prototype);
    assert.equal(typeof list.metadata?.resourceVersion, 'string');
    const last = api.requests.at(-1);
    assert.equal(last?.path, '/api/v1/pods');
    assert.deepEqual(last?.query, { fieldSelector: 'spec.nodeName=node-a' });
  });

  it('an HTTP error is a KubeHttpError carrying the Status body, described with its fix', async () => {
    api.forbid('namespaces');
    try {
      const err = await kubeApi(kc)
        .listNamespaces(signal())
        .then(
          () => assert.fail('the list was forbidden'),
          (e: unknown) => e,
        );
      assert.ok(err instanceof KubeHttpError);
      assert.equal(err.statusCode, 403);
      assert.match(err.body, /"kind":"Status"/);
      assert.match(describeApiError('list namespaces', err), /^list namespaces: HTTP 403 namespaces is forbidden: .*— RBAC/);
    } finally {
      api.forbid('namespaces', false);
    }
  });

  it('rejected credentials: HTTP 401 with the fix named', async () => {
    const wrong = await loadKubeConfig({ env: {}, kubeconfigPath: api.writeKubeconfig(tempDir(), { token: 'wrong' }) });
    assert.ok(wrong.kubeConfig);
    const err = await kubeApi(wrong.kubeConfig)
      .listPods('', signal())
      .catch((e: unknown) => e);
    assert.ok(err instanceof KubeHttpError);
    assert.match(describeApiError('list pods', err), /^list pods: HTTP 401 .*check the ServiceAccount token/);
  });

  it('a POST body goes out as JSON (TokenReview) and its answer comes back parsed', async () => {
    const r = await kubeRequest<{ kind: string; status?: { authenticated?: boolean } }>(kc, {
      method: 'POST',
      path: '/apis/authentication.k8s.io/v1/tokenreviews',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'not-issued-here' } },
      signal: signal(),
    });
    assert.equal(r.kind, 'TokenReview');
    assert.equal(r.status?.authenticated, false);
  });

  it('an abort ends the request: the promise rejects, nothing hangs', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stopping'));
    await assert.rejects(kubeRequest(kc, { path: '/api/v1/pods', signal: ac.signal }), /abort|stopping/i);
  });

  it('a 200 whose body is not JSON (a proxy in the way) is one clear error', async () => {
    const server = createServer((_req, res) => res.end('<html>login required</html>'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const plain = new KubeConfig();
      const { port } = server.address() as AddressInfo;
      // client-node allows plain http only with skipTLSVerify set.
      plain.loadFromClusterAndUser({ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }, { name: 'u' });
      await assert.rejects(
        kubeRequest(plain, { path: '/api/v1/pods', signal: signal() }),
        /^Error: GET \/api\/v1\/pods: the API server answered HTTP 200 with a body that is not JSON \("<html>login required<\/html>"\)$/,
      );
    } finally {
      server.close();
    }
  });

  it('a configuration without a current cluster says so', async () => {
    await assert.rejects(kubeRequest(new KubeConfig(), { path: '/api/v1/pods', signal: signal() }), /no current cluster/);
  });
});
