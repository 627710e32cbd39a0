import {
  type ConfigurationOptions,
  CoreV1Api,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  type V1NamespaceList,
  type V1PodList,
  Watch,
} from '@kubernetes/client-node';
import type { WatchFn } from './informer.js';

/**
 * The only calls the agent makes to the API — list and watch of pods (one
 * node) and namespaces — so RBAC can be exactly get/list/watch on those two.
 */
export interface KubeApi {
  listPods(fieldSelector: string, signal: AbortSignal): Promise<V1PodList>;
  listNamespaces(signal: AbortSignal): Promise<V1NamespaceList>;
  watch: WatchFn;
}

/** Per-call options carrying an AbortSignal: the generated client has no other way to cancel a request. */
function withSignal(signal: AbortSignal): ConfigurationOptions {
  const m: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(signal);
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
    listPods: (fieldSelector, signal) => core.listPodForAllNamespaces({ fieldSelector }, withSignal(signal)),
    listNamespaces: (signal) => core.listNamespace({}, withSignal(signal)),
    watch: (path, query, cb, done) => transport.watch(path, query, cb, done),
  };
}
