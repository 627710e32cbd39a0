import type { KubeConfig, V1NamespaceList, V1NodeList, V1PodList, V1ServiceList } from '@kubernetes/client-node';
// Deep import: the package index loads every generated API and model (see rest.ts).
import { Watch } from '@kubernetes/client-node/dist/watch.js';
import type { WatchFn } from './informer.js';
import { kubeRequest } from './rest.js';

/**
 * The only list and watch calls Doorwatch makes: the agent lists pods (one
 * node) and namespaces, so its RBAC is exactly get/list/watch on those two;
 * the collector's peer index lists pods (every node: an empty selector),
 * Services and nodes (docs/security.md). Lists come back as the API server's
 * JSON, as watch events always did: no generated model classes (rest.ts).
 */
export interface KubeApi {
  listPods(fieldSelector: string, signal: AbortSignal): Promise<V1PodList>;
  listNamespaces(signal: AbortSignal): Promise<V1NamespaceList>;
  listServices(signal: AbortSignal): Promise<V1ServiceList>;
  listNodes(signal: AbortSignal): Promise<V1NodeList>;
  watch: WatchFn;
}

/** client-node's watch transport (its request and line reader), as the informer calls it. */
export function kubeWatch(kc: KubeConfig): WatchFn {
  const transport = new Watch(kc);
  return (path, query, cb, done) => transport.watch(path, query, cb, done);
}

export function kubeApi(kc: KubeConfig): KubeApi {
  const list = <T>(path: string, signal: AbortSignal, fieldSelector?: string) =>
    kubeRequest<T>(kc, { path, query: { fieldSelector }, signal });
  return {
    listPods: (fieldSelector, signal) => list('/api/v1/pods', signal, fieldSelector),
    listNamespaces: (signal) => list('/api/v1/namespaces', signal),
    listServices: (signal) => list('/api/v1/services', signal),
    listNodes: (signal) => list('/api/v1/nodes', signal),
    watch: kubeWatch(kc),
  };
}
