import type { KubeConfig, V1Pod, V1SubjectAccessReview, V1TokenReview } from '@kubernetes/client-node';
import { httpStatusOf } from '../../kube/api-error.js';
import { kubeRequest } from '../../kube/rest.js';

/**
 * The only Kubernetes calls the collector makes, so its RBAC can be exactly
 * `create` on tokenreviews and subjectaccessreviews, and `get` on pods (the
 * node fallback for clusters older than 1.30, whose tokens carry no node
 * claim). Behind an interface so the auth logic is tested without HTTP, and
 * over src/kube/rest.ts (client-node's credentials, no generated API classes) in production.
 */

export interface ReviewedUser {
  username: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export type TokenReviewResult =
  | { authenticated: true; user: ReviewedUser; audiences: string[] | undefined }
  | { authenticated: false; error: string };

export interface AccessQuestion {
  user: ReviewedUser;
  /** "" = cluster-wide. */
  namespace: string;
  group: string;
  resource: string;
  verb: string;
}

export interface KubeAuthApi {
  tokenReview(token: string, audiences: string[], signal: AbortSignal): Promise<TokenReviewResult>;
  accessReview(q: AccessQuestion, signal: AbortSignal): Promise<{ allowed: boolean; reason: string }>;
  /** The pod's nodeName and uid, or undefined when it does not exist (404). */
  podNode(namespace: string, name: string, signal: AbortSignal): Promise<{ nodeName: string; uid: string } | undefined>;
}

export function kubeAuthApi(kc: KubeConfig): KubeAuthApi {
  return {
    async tokenReview(token, audiences, signal) {
      const r = await kubeRequest<V1TokenReview>(kc, {
        method: 'POST',
        path: '/apis/authentication.k8s.io/v1/tokenreviews',
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } },
        signal,
      });
      const st = r.status;
      if (!st?.authenticated || !st.user?.username)
        return { authenticated: false, error: st?.error || 'token not authenticated' };
      const u = st.user;
      return {
        authenticated: true,
        user: { username: u.username!, ...(u.uid ? { uid: u.uid } : {}), groups: u.groups ?? [], extra: u.extra ?? {} },
        audiences: st.audiences,
      };
    },
    async accessReview(q, signal) {
      const r = await kubeRequest<V1SubjectAccessReview>(kc, {
        method: 'POST',
        path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: q.user.username,
            ...(q.user.uid ? { uid: q.user.uid } : {}),
            groups: q.user.groups,
            extra: q.user.extra,
            resourceAttributes: {
              group: q.group,
              resource: q.resource,
              verb: q.verb,
              ...(q.namespace ? { namespace: q.namespace } : {}),
            },
          },
        },
        signal,
      });
      return { allowed: r.status?.allowed === true && r.status.denied !== true, reason: r.status?.reason ?? '' };
    },
    async podNode(namespace, name, signal) {
      try {
        const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
        const p = await kubeRequest<V1Pod>(kc, { path, signal });
        return { nodeName: p.spec?.nodeName ?? '', uid: p.metadata?.uid ?? '' };
      } catch (e) {
        if (httpStatusOf(e) === 404) return undefined;
        throw e;
      }
    },
  };
}
