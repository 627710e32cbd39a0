import assert from 'node:assert/strict';
import { request } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/kube/config.js';
import { KubeMetadataSource } from '../../src/kube/source.js';
import { silentLogger } from '../../src/log/logger.js';
import { KubeApiServer, tempDir } from './kube-api-server.js';

/**
 * The Kubernetes side of a test, set up once here: the API stand-in
 * (kube-api-server.ts: no kube-apiserver can run here) with a kubeconfig
 * loaded as the agent loads `--kubeconfig`, and for the end-to-end tests the
 * agent's node-scoped pod and namespace source on it. The caller stops the
 * source and closes the server.
 */

/** Retries in milliseconds: a test recovers from an outage fast. */
export const FAST_BACKOFF = { initialMs: 50, maxMs: 200 } as const;

export interface KubeStandIn {
  api: KubeApiServer;
  kubeConfig: KubeConfig;
}

/** The stand-in and a kubeconfig for it. */
export async function kubeApiStandIn(): Promise<KubeStandIn> {
  const api = await KubeApiServer.create();
  const loaded = await loadKubeConfig({ env: {}, kubeconfigPath: api.writeKubeconfig(tempDir()) });
  assert.ok(loaded.kubeConfig, `the stand-in's kubeconfig loads: ${loaded.kubeConfig ? '' : loaded.reason}`);
  return { api, kubeConfig: loaded.kubeConfig };
}

/**
 * The stand-in holding `namespaces` (name -> labels), and a KubeMetadataSource watching node `node`'s pods
 * through it, started (its first list made).
 */
export async function startKubeStandIn(o: {
  node: string;
  namespaces: Record<string, Record<string, string>>;
}): Promise<KubeStandIn & { kube: KubeMetadataSource }> {
  const s = await kubeApiStandIn();
  for (const [name, labels] of Object.entries(o.namespaces)) s.api.addNamespace(name, labels);
  const kube = new KubeMetadataSource({ kubeConfig: s.kubeConfig, nodeName: o.node, log: silentLogger, backoff: FAST_BACKOFF });
  await kube.start();
  return { ...s, kube };
}

/** One request straight to the stand-in, past client-node: for checks of the stand-in's own wire behaviour. */
export function apiRequest(
  api: KubeApiServer,
  method: string,
  path: string,
  o: { body?: string; contentType?: string; token?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? api.token}` };
    if (o.contentType) headers['content-type'] = o.contentType;
    const req = request(`${api.url}${path}`, { method, ca: api.caPem, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}
