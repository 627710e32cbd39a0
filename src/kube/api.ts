import {
  type ConfigurationOptions,
  CoreV1Api,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  type V1NamespaceList,
  type V1NodeList,
  type V1PodList,
  type V1ServiceList,
  Watch,
} from '@kubernetes/client-node';
import type { WatchFn } from './informer.js';

/**
 * The only list and watch calls Doorwatch makes: the agent lists pods (one
 * node) and namespaces, so its RBAC is exactly get/list/watch on those two;
 * the collector's peer index lists pods (every node: an empty selector),
 * Services and nodes (docs/security.md).
 */
export interface KubeApi {
  listPods(fieldSelector: string, signal: AbortSignal): Promise<V1PodList>;
  listNamespaces(signal: AbortSignal): Promise<V1NamespaceList>;
  listServices(signal: AbortSignal): Promise<V1ServiceList>;
  listNodes(signal: AbortSignal): Promise<V1NodeList>;
  watch: WatchFn;
}

/**
 * Per-call client-node options: an AbortSignal (the generated client has no
 * other way to cancel a request), and headers set after the request
 * factory's own (client-node 1.4.0 picks json-patch for every PATCH).
 */
export function callOptions(signal: AbortSignal, headers: Record<string, string> = {}): ConfigurationOptions {
  const m: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(signal);
      for (const [k, v] of Object.entries(headers)) ctx.setHeaderParam(k, v);
      return new Observable(Promise.resolve(ctx));
    },
    post: (ctx) => new Observable(Promise.resolve(ctx)),
  };
  return { middleware: [m], middlewareMergeStrategy: 'append' };
}

export function kubeApi(kc: KubeConfig): KubeApi {
  const core = kc.makeApiClient(CoreV1Api);
  const transport = new Watch(kc);
  return {
    listPods: (fieldSelector, signal) =>
      core.listPodForAllNamespaces(fieldSelector ? { fieldSelector } : {}, callOptions(signal)),
    listNamespaces: (signal) => core.listNamespace({}, callOptions(signal)),
    listServices: (signal) => core.listServiceForAllNamespaces({}, callOptions(signal)),
    listNodes: (signal) => core.listNode({}, callOptions(signal)),
    watch: (path, query, cb, done) => transport.watch(path, query, cb, done),
  };
}
