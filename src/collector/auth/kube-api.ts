import { AuthenticationV1Api, AuthorizationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { callOptions } from '../../kube/api.js';

/**
 * The only Kubernetes calls the collector makes, so its RBAC can be exactly
 * `create` on tokenreviews and subjectaccessreviews, and `get` on pods (the
 * node fallback for clusters older than 1.30, whose tokens carry no node
 * claim). Behind an interface so the auth logic is tested without HTTP, and
 * over client-node's transport (with callOptions' AbortSignal) in production.
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
  const authn = kc.makeApiClient(AuthenticationV1Api);
  const authz = kc.makeApiClient(AuthorizationV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  return {
    async tokenReview(token, audiences, signal) {
      const r = await authn.createTokenReview(
        { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } } },
        callOptions(signal),
      );
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
      const r = await authz.createSubjectAccessReview(
        {
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
        },
        callOptions(signal),
      );
      return { allowed: r.status?.allowed === true && r.status.denied !== true, reason: r.status?.reason ?? '' };
    },
    async podNode(namespace, name, signal) {
      try {
        const p = await core.readNamespacedPod({ namespace, name }, callOptions(signal));
        return { nodeName: p.spec?.nodeName ?? '', uid: p.metadata?.uid ?? '' };
      } catch (e) {
        if ((e as { code?: unknown }).code === 404) return undefined;
        throw e;
      }
    },
  };
}
