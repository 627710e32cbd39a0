/**
 * A STAND-IN for kube-apiserver's authentication and authorization APIs, for tests only (there is no
 * kube-apiserver on this machine). Served by KubeApiServer (kube-api-server.ts) on the same HTTPS port,
 * behind the same availability and caller-authentication gate. It reproduces what the collector depends on,
 * with the real wire shapes:
 *
 * - `POST /apis/authentication.k8s.io/v1/tokenreviews`: JWT-shaped ServiceAccount tokens it issued (signed
 *   with its own HMAC key, as the real server signs with its service-account key), checked like the real
 *   authenticator: signature, `exp`, audiences (the review's `spec.audiences`, or the server's default
 *   audience when empty; `status.audiences` is the intersection), and for pod-bound tokens that the pod
 *   still exists with the same uid ("service account token has been invalidated" otherwise). The user is
 *   `system:serviceaccount:<ns>:<name>` with groups `system:serviceaccounts`, `system:serviceaccounts:<ns>`,
 *   `system:authenticated`, and the extras `authentication.kubernetes.io/pod-name`/`pod-uid`, plus
 *   `credential-id`, and — Kubernetes >= 1.30 (`nodeClaims`, on by default) — `node-name`/`node-uid`.
 *   Static user tokens (the token-auth-file authenticator) are for the default audience only.
 *   A refused token is a 201 with `status.authenticated: false` and `status.error`, as the real server does.
 * - `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: RBAC reduced to grants — a cluster-wide grant
 *   (a ClusterRoleBinding) allows in every namespace and at the cluster scope; a namespaced grant (a
 *   RoleBinding) only in its namespace; subjects by user name or group. `status.allowed` + `reason`.
 * - `GET /api/v1/namespaces/{ns}/pods/{name}`: one pod (404 Status when absent).
 *
 * Test controls: `issueServiceAccountToken`, `addUserToken`, `grant`, `setNodeClaims`, counters.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { V1Pod } from '@kubernetes/client-node';

export const DEFAULT_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
const TOKEN_REVIEWS = '/apis/authentication.k8s.io/v1/tokenreviews';
const ACCESS_REVIEWS = '/apis/authorization.k8s.io/v1/subjectaccessreviews';
const POD_GET = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/;

export interface ServiceAccountTokenRequest {
  namespace: string;
  serviceAccount: string;
  audiences: string[];
  /** Seconds from now (negative: already expired). Default 3600. */
  expiresIn?: number;
  /** Bound to this pod (name, uid and node are taken from the stored pod). */
  pod?: { name: string };
}

export interface Grant {
  user?: string;
  group?: string;
  /** Absent: cluster-wide (ClusterRoleBinding); set: that namespace only (RoleBinding). */
  namespace?: string;
  group_: string;
  resources: string[];
  verbs: string[];
}

export interface AuthCounters {
  tokenReviews: number;
  accessReviews: number;
  podGets: number;
}

interface Claims {
  aud: string[];
  exp: number;
  iat: number;
  iss: string;
  sub: string;
  jti: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: { name: string; uid: string };
    pod?: { name: string; uid: string };
    node?: { name: string; uid: string };
  };
}

interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export class KubeAuthStandIn {
  readonly counters: AuthCounters = { tokenReviews: 0, accessReviews: 0, podGets: 0 };
  /** Every review as received (spec), for assertions on what the client asked. */
  readonly reviews: { kind: 'TokenReview' | 'SubjectAccessReview'; spec: Record<string, unknown> }[] = [];
  readonly #key = randomBytes(32);
  readonly #users = new Map<string, UserInfo>();
  readonly #grants: Grant[] = [];
  readonly #saUids = new Map<string, string>();
  #nodeClaims = true;

  constructor(private readonly getPod: (namespace: string, name: string) => V1Pod | undefined) {}

  /** Kubernetes >= 1.30 puts the node into pod-bound tokens; off = an older cluster (the pod fallback). */
  setNodeClaims(on: boolean): void {
    this.#nodeClaims = on;
  }

  /** A projected ServiceAccount token, as the kubelet would write it to the pod's volume. */
  issueServiceAccountToken(r: ServiceAccountTokenRequest): string {
    const now = Math.floor(Date.now() / 1000);
    const saKey = `${r.namespace}/${r.serviceAccount}`;
    if (!this.#saUids.has(saKey)) this.#saUids.set(saKey, randomUUID());
    const claims: Claims = {
      aud: r.audiences,
      exp: now + (r.expiresIn ?? 3600),
      iat: now,
      iss: 'https://kubernetes.default.svc.cluster.local',
      sub: `system:serviceaccount:${r.namespace}:${r.serviceAccount}`,
      jti: randomUUID(),
      'kubernetes.io': { namespace: r.namespace, serviceaccount: { name: r.serviceAccount, uid: this.#saUids.get(saKey)! } },
    };
    if (r.pod) {
      const pod = this.getPod(r.namespace, r.pod.name);
      if (!pod) throw new Error(`stand-in: pod ${r.namespace}/${r.pod.name} does not exist; a bound token needs it`);
      claims['kubernetes.io'].pod = { name: r.pod.name, uid: pod.metadata!.uid! };
      const node = pod.spec?.nodeName;
      if (node) claims['kubernetes.io'].node = { name: node, uid: `node-uid-${node}` };
    }
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const body = `${enc({ alg: 'RS256', kid: 'stand-in' })}.${enc(claims)}`;
    return `${body}.${createHmac('sha256', this.#key).update(body).digest('base64url')}`;
  }

  /** A static token for a user (the token-auth-file authenticator): valid for the default audience. */
  addUserToken(username: string, groups: string[] = []): string {
    const token = randomBytes(24).toString('hex');
    this.#users.set(token, { username, uid: randomUUID(), groups: [...groups, 'system:authenticated'] });
    return token;
  }

  /** RBAC: allow `verbs` on `resources` of API group `group_` to a user or group, cluster-wide or in one namespace. */
  grant(g: Grant): void {
    this.#grants.push(g);
  }

  /** Whether this stand-in serves the path (KubeApiServer routes it here after its gate). */
  serves(path: string): boolean {
    return path === TOKEN_REVIEWS || path === ACCESS_REVIEWS || POD_GET.test(path);
  }

  handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    const pod = POD_GET.exec(path);
    if (pod) {
      this.counters.podGets++;
      const p = this.getPod(decodeURIComponent(pod[1]!), decodeURIComponent(pod[2]!));
      if (req.method !== 'GET') send(res, 405, status(405, 'MethodNotAllowed', `${req.method} is not supported`));
      else if (!p) send(res, 404, status(404, 'NotFound', `pods "${pod[2]}" not found`));
      else send(res, 200, { kind: 'Pod', apiVersion: 'v1', ...p });
      return;
    }
    if (req.method !== 'POST') {
      send(res, 405, status(405, 'MethodNotAllowed', `${req.method} is not supported`));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: { spec?: Record<string, unknown> };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        send(res, 400, status(400, 'BadRequest', 'the body is not JSON'));
        return;
      }
      const spec = body?.spec ?? {};
      if (path === TOKEN_REVIEWS) {
        this.counters.tokenReviews++;
        this.reviews.push({ kind: 'TokenReview', spec });
        send(res, 201, {
          kind: 'TokenReview',
          apiVersion: 'authentication.k8s.io/v1',
          metadata: { creationTimestamp: null },
          spec,
          status: this.#review(String(spec.token ?? ''), (spec.audiences as string[] | undefined) ?? []),
        });
        return;
      }
      this.counters.accessReviews++;
      this.reviews.push({ kind: 'SubjectAccessReview', spec });
      send(res, 201, {
        kind: 'SubjectAccessReview',
        apiVersion: 'authorization.k8s.io/v1',
        metadata: { creationTimestamp: null },
        spec,
        status: this.#access(spec),
      });
    });
  }

  #review(token: string, requested: string[]): Record<string, unknown> {
    const audiences = requested.length ? requested : [DEFAULT_AUDIENCE];
    const refuse = (error: string) => ({ authenticated: false, error, user: {} });
    const user = this.#users.get(token);
    if (user) {
      if (!audiences.includes(DEFAULT_AUDIENCE)) return refuse('[invalid bearer token, token lookup failed]');
      return { authenticated: true, user, audiences: [DEFAULT_AUDIENCE] };
    }
    const parts = token.split('.');
    if (parts.length !== 3) return refuse('[invalid bearer token, square/go-jose: compact JWS format must have three parts]');
    const expected = createHmac('sha256', this.#key).update(`${parts[0]}.${parts[1]}`).digest('base64url');
    if (expected !== parts[2]) return refuse('[invalid bearer token, square/go-jose: error in cryptographic primitive]');
    const c = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Claims;
    if (c.exp * 1000 <= Date.now()) return refuse('[invalid bearer token, service account token has expired]');
    const matched = audiences.filter((a) => c.aud.includes(a));
    if (!matched.length) {
      return refuse(
        `[invalid bearer token, token audiences ${JSON.stringify(c.aud)} is invalid for the target audiences ${JSON.stringify(audiences)}]`,
      );
    }
    const k = c['kubernetes.io'];
    const extra: Record<string, string[]> = { 'authentication.kubernetes.io/credential-id': [`JTI=${c.jti}`] };
    if (k.pod) {
      const pod = this.getPod(k.namespace, k.pod.name);
      if (!pod || pod.metadata?.uid !== k.pod.uid) {
        return refuse('[invalid bearer token, service account token has been invalidated]');
      }
      extra['authentication.kubernetes.io/pod-name'] = [k.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [k.pod.uid];
      if (this.#nodeClaims && k.node) {
        extra['authentication.kubernetes.io/node-name'] = [k.node.name];
        extra['authentication.kubernetes.io/node-uid'] = [k.node.uid];
      }
    }
    return {
      authenticated: true,
      user: {
        username: c.sub,
        uid: k.serviceaccount.uid,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${k.namespace}`, 'system:authenticated'],
        extra,
      },
      audiences: matched,
    };
  }

  #access(spec: Record<string, unknown>): Record<string, unknown> {
    const user = String(spec.user ?? '');
    const groups = (spec.groups as string[] | undefined) ?? [];
    const ra = (spec.resourceAttributes ?? {}) as { namespace?: string; verb?: string; group?: string; resource?: string };
    const ns = ra.namespace ?? '';
    for (const g of this.#grants) {
      const subject = (g.user !== undefined && g.user === user) || (g.group !== undefined && groups.includes(g.group));
      if (!subject) continue;
      if (g.namespace !== undefined && g.namespace !== ns) continue;
      const rule =
        (g.group_ === '*' || g.group_ === (ra.group ?? '')) &&
        (g.resources.includes('*') || g.resources.includes(ra.resource ?? '')) &&
        (g.verbs.includes('*') || g.verbs.includes(ra.verb ?? ''));
      if (!rule) continue;
      const via = g.namespace === undefined ? 'ClusterRoleBinding' : `RoleBinding in namespace "${g.namespace}"`;
      return { allowed: true, reason: `RBAC: allowed by ${via} of ${g.user ? `User "${g.user}"` : `Group "${g.group}"`}` };
    }
    return { allowed: false, reason: '' };
  }
}

function status(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function send(res: ServerResponse, code: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
