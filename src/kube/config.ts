import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';

/**
 * Where the Kubernetes credentials come from, in client-go's habits:
 *   1. an explicit kubeconfig path (a --kubeconfig flag), when given;
 *   2. in-cluster: KUBERNETES_SERVICE_HOST/PORT set and the ServiceAccount token mounted;
 *   3. $KUBECONFIG (a path list, merged, first file wins on name clashes);
 *   4. ~/.kube/config.
 * Nothing found is an answer, not an exception: the agent runs without pod
 * metadata and says why. Not `KubeConfig.loadFromDefault()`: it reads
 * process.env itself and, finding nothing, silently points at http://localhost:8080.
 *
 * Discovery (which variables and files exist) is synchronous and comes first;
 * client-node itself (~70 MiB of RSS and ~0.5 s of CPU to import: its index
 * loads every generated API model) is imported only once something was found,
 * so `--no-kube` and hosts without any Kubernetes configuration never load it.
 */

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConfigDiscovery {
  /** The environment to read (KUBERNETES_SERVICE_*, KUBECONFIG): the cli passes process.env, the only reader of it. */
  env: Readonly<Record<string, string | undefined>>;
  /** Default os.homedir(). */
  homeDir?: string;
  /** Where kubelet mounts the ServiceAccount token, ca.crt and namespace. */
  serviceAccountDir?: string;
  /** An explicit kubeconfig file; when set nothing else is tried. */
  kubeconfigPath?: string;
}

export type KubeConfigSource = 'flag' | 'in-cluster' | 'KUBECONFIG' | 'home';

export type LoadedKubeConfig =
  | { kubeConfig: KubeConfig; source: KubeConfigSource; server: string; detail: string }
  | { kubeConfig: undefined; reason: string };

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

type KubeConfigClass = typeof KubeConfig;

/** client-node's KubeConfig, imported on first use (see above). */
async function kubeConfigClass(): Promise<KubeConfigClass> {
  // Deep import: the package index loads every generated API and model (rest.ts).
  return (await import('@kubernetes/client-node/dist/config.js')).KubeConfig;
}

export async function loadKubeConfig(d: KubeConfigDiscovery): Promise<LoadedKubeConfig> {
  const env = d.env;
  if (d.kubeconfigPath) return fromFiles([d.kubeconfigPath], 'flag');

  const tried: string[] = [];
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) tried.push('not in a pod (KUBERNETES_SERVICE_HOST unset)');
  else {
    const inCluster = await fromServiceAccount(host, env.KUBERNETES_SERVICE_PORT, d.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
    if (inCluster.kubeConfig) return inCluster;
    tried.push(inCluster.reason);
  }

  const list = env.KUBECONFIG;
  if (list) {
    // client-go: when KUBECONFIG is set, ~/.kube/config is not consulted.
    const files = list.split(delimiter).filter((f) => f !== '');
    const r = await fromFiles(files, 'KUBECONFIG');
    if (r.kubeConfig) return r;
    return { kubeConfig: undefined, reason: `no Kubernetes credentials: ${[...tried, r.reason].join('; ')}` };
  }

  const home = d.homeDir ?? homedir();
  const file = join(home, '.kube', 'config');
  if (readable(file)) return fromFiles([file], 'home');
  tried.push('KUBECONFIG unset', `no ${file}`);
  return { kubeConfig: undefined, reason: `no Kubernetes credentials: ${tried.join('; ')}` };
}

async function fromServiceAccount(host: string, port: string | undefined, dir: string): Promise<LoadedKubeConfig> {
  if (!port) return { kubeConfig: undefined, reason: 'KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not' };
  const tokenFile = join(dir, 'token');
  if (!readable(tokenFile)) {
    return {
      kubeConfig: undefined,
      reason: `in a pod but no ServiceAccount token at ${tokenFile} (automountServiceAccountToken: false?)`,
    };
  }
  const caFile = join(dir, 'ca.crt');
  const hasCa = readable(caFile);
  // The apiserver's in-cluster endpoint is always HTTPS; IPv6 service IPs need brackets.
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const kc = new (await kubeConfigClass())();
  kc.loadFromOptions({
    clusters: [{ name: 'in-cluster', server, skipTLSVerify: false, ...(hasCa ? { caFile } : {}) }],
    // The tokenFile provider re-reads the file (every 60 s): projected tokens rotate hourly.
    users: [{ name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster' }],
    currentContext: 'in-cluster',
  });
  const detail = `ServiceAccount token ${tokenFile}${hasCa ? '' : ` (no ${caFile}: system CAs)`}`;
  return { kubeConfig: kc, source: 'in-cluster', server, detail };
}

async function fromFiles(files: string[], source: KubeConfigSource): Promise<LoadedKubeConfig> {
  const present = files.filter(readable);
  if (present.length === 0) {
    return {
      kubeConfig: undefined,
      reason: `${source === 'flag' ? 'kubeconfig' : source} ${files.join(delimiter)}: no such readable file`,
    };
  }
  const KubeConfigCtor = await kubeConfigClass();
  const kc = new KubeConfigCtor();
  try {
    kc.loadFromFile(present[0]!);
    for (const f of present.slice(1)) {
      const more = new KubeConfigCtor();
      more.loadFromFile(f);
      mergeFirstWins(kc, more);
    }
  } catch (err) {
    return { kubeConfig: undefined, reason: `${source} ${present.join(delimiter)}: ${(err as Error).message}` };
  }
  const where = `${source === 'flag' ? 'kubeconfig' : source} ${present.join(delimiter)}`;
  const ctx = kc.getCurrentContext();
  if (!ctx) return { kubeConfig: undefined, reason: `${where}: no current-context` };
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) return { kubeConfig: undefined, reason: `${where}: context ${ctx} names no cluster with a server` };
  return { kubeConfig: kc, source, server: cluster.server, detail: `${where} (context ${ctx})` };
}

/** client-go's merge: the first file to define a name (or current-context) wins. */
function mergeFirstWins(into: KubeConfig, from: KubeConfig): void {
  const has = <T extends { name: string }>(list: T[], name: string) => list.some((x) => x.name === name);
  for (const c of from.getClusters()) if (!has(into.getClusters(), c.name)) into.addCluster(c);
  for (const u of from.getUsers()) if (!has(into.getUsers(), u.name)) into.addUser(u);
  for (const c of from.getContexts()) if (!has(into.getContexts(), c.name)) into.addContext(c);
  if (!into.getCurrentContext() && from.getCurrentContext()) into.setCurrentContext(from.getCurrentContext());
}
