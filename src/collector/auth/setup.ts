import { ConfigError } from '../../config/errors.js';
import { loadKubeConfig } from '../../kube/config.js';
import type { Logger } from '../../log/logger.js';
import type { Clock } from '../async.js';
import type { CollectorConfig } from '../config.js';
import { type Authorizer, certificateAuthorizer, kubernetesAuthorizer, openAuthorizer } from './authorizer.js';
import type { KubeAuthApi } from './kube-api.js';
import { InstanceRegistry } from './publish-guard.js';
import { TokenAuthenticator } from './token-authenticator.js';

/** The collector's auth pieces for its `auth.mode`, built once at start. */

export interface AuthSetup {
  authorizer: Authorizer;
  instances: InstanceRegistry;
  tokens: TokenAuthenticator | undefined;
}

export interface AuthDeps {
  log: Logger;
  clock: Clock;
  env: Readonly<Record<string, string | undefined>> | undefined;
  /** Tests: the API to use instead of the kubeconfig's. */
  kubeAuthApi: KubeAuthApi | undefined;
  source: string | undefined;
}

export async function createAuth(config: CollectorConfig, deps: AuthDeps): Promise<AuthSetup> {
  const instances = new InstanceRegistry();
  const a = config.auth;
  if (a.mode === 'none') return { authorizer: openAuthorizer, instances, tokens: undefined };
  if (a.mode === 'certificate') {
    if (!config.tls?.requireClientCert) {
      throw new ConfigError(deps.source ?? 'collector config', [
        'auth.mode: certificate needs mutual TLS (tls with requireClientCert: true): identities come from client certificates',
      ]);
    }
    return { authorizer: certificateAuthorizer(a.certificate), instances, tokens: undefined };
  }
  let api = deps.kubeAuthApi;
  if (!api) {
    const loaded = await loadKubeConfig({
      env: deps.env ?? {},
      ...(a.kubernetes.kubeconfig ? { kubeconfigPath: a.kubernetes.kubeconfig } : {}),
    });
    if (!loaded.kubeConfig) {
      throw new ConfigError(deps.source ?? 'collector config', [
        `auth.mode: kubernetes needs the Kubernetes API (in-cluster, auth.kubernetes.kubeconfig or KUBECONFIG): ${loaded.reason}`,
      ]);
    }
    // Imported here: kube-api.ts loads client-node, which auth modes none and certificate never need.
    const { kubeAuthApi } = await import('./kube-api.js');
    api = kubeAuthApi(loaded.kubeConfig);
  }
  const tokens = new TokenAuthenticator({ api, clock: deps.clock, log: deps.log, cacheMaxMs: a.kubernetes.cacheMaxMs });
  return { authorizer: kubernetesAuthorizer({ cfg: a.kubernetes, api, tokens }), instances, tokens };
}

export function authStats(a: AuthSetup): { reviews: number; cacheHits: number; apiErrors: number; waiting: number } {
  return a.tokens ? { ...a.tokens.stats } : { reviews: 0, cacheHits: 0, apiErrors: 0, waiting: 0 };
}
