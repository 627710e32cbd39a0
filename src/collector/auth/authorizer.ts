import { ServerError, Status } from 'nice-grpc';
import type { AuthConfig } from '../config.js';
import type { AccessQuestion, KubeAuthApi, ReviewedUser } from './kube-api.js';
import type { TokenAuthenticator } from './token-authenticator.js';

/**
 * Who a call is, and what it may do (docs/security.md).
 *
 * Publish: the stream is bound to the node(s) its credential vouches for,
 * never to what its Hello claims. In `kubernetes` mode the credential is the
 * agent's projected ServiceAccount token: TokenReview must authenticate it for
 * our audience, as the agents' ServiceAccount, and the node comes from the
 * token's node claim (Kubernetes >= 1.30) or else from the bound pod's
 * spec.nodeName (the pod's uid must match the token's, so a token of a
 * deleted pod whose name was reused elsewhere does not follow the name). In
 * `certificate` mode the client certificate's identity maps to node names.
 *
 * Subscribe: a separate right. The agents' identity is refused outright; any
 * other user is authorised per namespace with SubjectAccessReview on the
 * virtual resource `acceptevents.doorwatch.io`, verb `watch` — so a
 * RoleBinding gives a team exactly its namespaces, and a filter without
 * namespaces needs the cluster-wide permission (a ClusterRoleBinding).
 */

export const NODE_CLAIM = 'authentication.kubernetes.io/node-name';
export const POD_NAME_CLAIM = 'authentication.kubernetes.io/pod-name';
export const POD_UID_CLAIM = 'authentication.kubernetes.io/pod-uid';
export const SUBSCRIBE_PERMISSION = { group: 'doorwatch.io', resource: 'acceptevents', verb: 'watch' } as const;

/** What the transport knows about a peer: the client certificate's identities (DNS SANs, then CN). */
export interface PeerCredentials {
  certIdentities: string[];
}

export interface CallCredentials {
  /** The `authorization` metadata, as sent. */
  authorization: string | undefined;
  peer: PeerCredentials | undefined;
}

/** Who is publishing, and as which nodes. */
export interface AgentBinding {
  /** For logs: "system:serviceaccount:doorwatch:doorwatch-agent (pod doorwatch/agent-x)" or "certificate node-a". */
  who: string;
  nodes: ReadonlySet<string>;
}

/** What a subscriber may see: every namespace, or these. */
export type SubscriberScope = { who: string; all: true } | { who: string; all: false; namespaces: ReadonlySet<string> };

export interface Authorizer {
  readonly mode: AuthConfig['mode'];
  /** Throws ServerError UNAUTHENTICATED / PERMISSION_DENIED; undefined when `signal` aborted while waiting for the API. */
  bindAgent(c: CallCredentials, signal: AbortSignal): Promise<AgentBinding | undefined>;
  /** `namespaces`: the filter's; empty = all. Throws like bindAgent. */
  authorizeSubscriber(
    c: CallCredentials,
    namespaces: readonly string[],
    signal: AbortSignal,
  ): Promise<SubscriberScope | undefined>;
}

const unauthenticated = (m: string) => new ServerError(Status.UNAUTHENTICATED, m);
const denied = (m: string) => new ServerError(Status.PERMISSION_DENIED, m);

export function bearerToken(authorization: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return m?.[1];
}

/** `auth.mode: none`: everything goes (the collector warns at start). */
export const openAuthorizer: Authorizer = {
  mode: 'none',
  bindAgent: async () => ({ who: 'anyone (auth.mode: none)', nodes: new Set() }),
  authorizeSubscriber: async () => ({ who: 'anyone (auth.mode: none)', all: true }),
};

export function certificateAuthorizer(cfg: AuthConfig['certificate']): Authorizer {
  const agents = new Map(Object.entries(cfg.agents));
  const subscribers = new Map(Object.entries(cfg.subscribers));
  const identities = (c: CallCredentials) => c.peer?.certIdentities ?? [];
  return {
    mode: 'certificate',
    async bindAgent(c) {
      const ids = identities(c);
      if (!ids.length) throw unauthenticated('no client certificate identity (auth.mode certificate needs mutual TLS)');
      const nodes = new Set<string>();
      const matched: string[] = [];
      for (const id of ids) {
        const n = agents.get(id);
        if (n) {
          matched.push(id);
          for (const x of n) nodes.add(x);
        }
      }
      if (!nodes.size) throw denied(`certificate ${ids.join(', ')} is not an agent identity (auth.certificate.agents)`);
      return { who: `certificate ${matched.join(', ')}`, nodes };
    },
    async authorizeSubscriber(c, namespaces) {
      const ids = identities(c);
      if (!ids.length) throw unauthenticated('no client certificate identity (auth.mode certificate needs mutual TLS)');
      if (ids.some((id) => agents.has(id)))
        throw denied(`certificate ${ids.join(', ')} is an agent identity: agents may publish, not subscribe`);
      const allowed = new Set<string>();
      for (const id of ids) for (const ns of subscribers.get(id) ?? []) allowed.add(ns);
      if (!allowed.size) throw denied(`certificate ${ids.join(', ')} may not subscribe (auth.certificate.subscribers)`);
      const who = `certificate ${ids.join(', ')}`;
      if (allowed.has('*')) return { who, all: true };
      if (!namespaces.length) {
        throw denied(`${who} may not watch every namespace: name namespaces in the filter (allowed: ${[...allowed].join(', ')})`);
      }
      const refused = namespaces.filter((ns) => !allowed.has(ns));
      if (refused.length) throw denied(`${who} may not watch namespace ${refused.join(', ')}`);
      return { who, all: false, namespaces: new Set(namespaces) };
    },
  };
}

export interface KubernetesAuthorizerOptions {
  cfg: AuthConfig['kubernetes'];
  api: KubeAuthApi;
  tokens: TokenAuthenticator;
}

export function kubernetesAuthorizer(o: KubernetesAuthorizerOptions): Authorizer {
  const sa = o.cfg.agentServiceAccount;
  const agentUser = `system:serviceaccount:${sa.namespace}:${sa.name}`;
  // Pod lookups for the node fallback, by pod uid: a pod never moves to another node.
  const podNodes = new Map<string, string>();

  async function authenticate(c: CallCredentials, audiences: string[], signal: AbortSignal): Promise<ReviewedUser | undefined> {
    if (c.authorization === undefined) {
      throw unauthenticated('no bearer token: send "authorization: Bearer <token>" call metadata');
    }
    const token = bearerToken(c.authorization);
    if (!token) throw unauthenticated('the authorization metadata is not "Bearer <token>"');
    const a = await o.tokens.authenticate(token, audiences, signal);
    if (!a) return undefined;
    if (!a.ok) throw unauthenticated(`token rejected by TokenReview: ${a.error}`);
    if (audiences.length && a.audiences && !audiences.some((x) => a.audiences!.includes(x))) {
      throw unauthenticated(`token is not for audience ${audiences.join(', ')} (it is for ${a.audiences.join(', ') || 'none'})`);
    }
    return a.user;
  }

  async function nodeOf(user: ReviewedUser, signal: AbortSignal): Promise<string> {
    const claim = user.extra[NODE_CLAIM]?.[0];
    if (claim) return claim;
    const podName = user.extra[POD_NAME_CLAIM]?.[0];
    const podUid = user.extra[POD_UID_CLAIM]?.[0];
    if (!podName || !podUid) {
      throw denied(`token of ${user.username} is not bound to a pod (use the projected token, not a Secret-based one)`);
    }
    const known = podNodes.get(podUid);
    if (known) return known;
    const pod = await o.api.podNode(sa.namespace, podName, signal);
    if (!pod || pod.uid !== podUid) throw denied(`the pod ${sa.namespace}/${podName} the token is bound to no longer exists`);
    if (!pod.nodeName) throw denied(`the pod ${sa.namespace}/${podName} is not scheduled to a node`);
    if (podNodes.size > 10_000) podNodes.clear();
    podNodes.set(podUid, pod.nodeName);
    return pod.nodeName;
  }

  async function allowed(user: ReviewedUser, namespace: string, signal: AbortSignal): Promise<boolean> {
    const q: AccessQuestion = { user, namespace, ...SUBSCRIBE_PERMISSION };
    return (await o.api.accessReview(q, signal)).allowed;
  }

  return {
    mode: 'kubernetes',
    async bindAgent(c, signal) {
      const user = await authenticate(c, [o.cfg.audience], signal);
      if (!user) return undefined;
      if (user.username !== agentUser) {
        throw denied(`${user.username} may not publish: only the agents' ServiceAccount ${sa.namespace}/${sa.name} may`);
      }
      let node: string;
      try {
        node = await nodeOf(user, signal);
      } catch (e) {
        if (e instanceof ServerError || signal.aborted) throw e;
        // The API failed on the pod lookup: like a TokenReview outage, retryable for the agent.
        throw new ServerError(Status.UNAVAILABLE, `cannot look up the agent's pod: ${(e as Error).message}`);
      }
      const pod = user.extra[POD_NAME_CLAIM]?.[0];
      return { who: `${user.username}${pod ? ` (pod ${sa.namespace}/${pod})` : ''}`, nodes: new Set([node]) };
    },
    async authorizeSubscriber(c, namespaces, signal) {
      // No audience: a kubeconfig user's token is for the API server's own audience.
      const user = await authenticate(c, [], signal);
      if (!user) return undefined;
      if (user.username === agentUser) {
        throw denied(`${user.username} is the agents' identity: agents may publish, not subscribe`);
      }
      const verb = `${SUBSCRIBE_PERMISSION.verb} ${SUBSCRIBE_PERMISSION.resource}.${SUBSCRIBE_PERMISSION.group}`;
      try {
        if (!namespaces.length) {
          if (!(await allowed(user, '', signal))) {
            throw denied(
              `${user.username} may not ${verb} in every namespace: name namespaces in the filter, or bind the doorwatch-viewer ClusterRole cluster-wide`,
            );
          }
          return { who: user.username, all: true };
        }
        const answers = await Promise.all(namespaces.map((ns) => allowed(user, ns, signal)));
        const refused = namespaces.filter((_, i) => !answers[i]);
        if (refused.length) throw denied(`${user.username} may not ${verb} in namespace ${refused.join(', ')}`);
        return { who: user.username, all: false, namespaces: new Set(namespaces) };
      } catch (e) {
        if (e instanceof ServerError || signal.aborted) throw e;
        throw new ServerError(Status.UNAVAILABLE, `cannot check access with the Kubernetes API: ${(e as Error).message}`);
      }
    },
  };
}
