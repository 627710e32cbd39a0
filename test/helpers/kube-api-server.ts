/**
 * A STAND-IN for kube-apiserver, for tests only: there is no real Kubernetes API on this machine.
 *
 * It reproduces the parts of the API that a node-scoped list+watch client depends on, with the real
 * wire behaviour rather than a mock of the client library:
 * - HTTPS with a CA and server certificate made by the `openssl` CLI at test time (pki.ts), bearer-token auth
 *   (401 Status otherwise), 403 Status for resources a test forbids (RBAC), 503 while "unavailable".
 * - `GET /api/v1/pods`, `/api/v1/namespaces`, and (for the collector's peer index) `/api/v1/services` and
 *   `/api/v1/nodes`: a list (with `metadata.resourceVersion`) or, with
 *   `watch=true`, a chunked stream of newline-delimited WatchEvents (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR).
 * - One monotonically increasing resourceVersion (etcd's revision) and an event history, so a watch
 *   from an older RV replays what it missed; after `expireBefore()`/`compact()` such a watch receives an
 *   ERROR event carrying a Status with code 410 (reason Expired) and the stream ends — as the real
 *   server does — and the client must relist.
 * - Field selectors (`spec.nodeName=X` and a few others) with the real watch semantics: an object that
 *   starts matching is ADDED for that watcher, one that stops matching is DELETED.
 * - Bookmarks only for watchers that asked with `allowWatchBookmarks=true`; `timeoutSeconds` ends the
 *   stream cleanly.
 * - Unset/"0" watch RV: synthetic ADDED events for the current state, then the stream.
 * - The AcceptAuditPolicy custom resource (helm/doorwatch/crds), as the real server serves a CRD with a
 *   status subresource: list/watch of `/apis/doorwatch.io/v1alpha1/acceptauditpolicies` (all namespaces,
 *   same RV/bookmark/410 rules), `metadata.generation` bumped by spec changes only, status ignored on
 *   create/update, and `PATCH …/namespaces/{ns}/acceptauditpolicies/{name}/status` with a JSON merge patch
 *   (status only; `metadata.resourceVersion` in the patch is a precondition, 409 Conflict when stale; a
 *   no-op patch writes nothing). Every 404 while the CRD is "not installed" (`setPolicyCrdInstalled`).
 *
 * - TokenReview, SubjectAccessReview and a single-pod GET: kube-auth-stand-in.ts (`api.auth`), behind the same
 *   availability and caller-authentication gate.
 *
 * Test controls: object mutations, `sendBookmark()`, `closeWatches()` (clean end), `dropConnections()`
 * (connection reset), `stop()`/`start()` (API server down, then back on the same port),
 * `setUnavailable()`, `forbid()`, and request counters so tests can assert on the client's traffic
 * (`policyCounters` and `policyPatches` for the custom resource).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { V1Namespace, V1Node, V1ObjectMeta, V1OwnerReference, V1Pod, V1Service } from '@kubernetes/client-node';
import { KubeAuthStandIn } from './kube-auth-stand-in.js';
import { makePki, type Pki } from './pki.js';

export type Resource = 'pods' | 'namespaces';
/** The custom resource (doorwatch.io/v1alpha1), counted apart so the core counters keep their shape. */
export const POLICIES = 'acceptauditpolicies';
/** What the collector's peer index watches cluster-wide (with pods), counted apart too (`peerCounters`). */
export type PeerResource = 'services' | 'nodes';
export type ServedResource = Resource | typeof POLICIES | PeerResource;
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** An AcceptAuditPolicy as stored and sent: plain JSON. */
export interface PolicyObject {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
  spec?: unknown;
  status?: { observedGeneration?: number; conditions?: Record<string, unknown>[]; [k: string]: unknown };
}
// Stored objects are plain JSON, exactly what goes on the wire.
type KObject = V1Pod | V1Namespace | V1Service | V1Node | PolicyObject;

const POLICY_GROUP_VERSION = 'doorwatch.io/v1alpha1';
const POLICY_PATH = `/apis/${POLICY_GROUP_VERSION}/${POLICIES}`;
const POLICY_STATUS_PATH = /^\/apis\/doorwatch\.io\/v1alpha1\/namespaces\/([^/]+)\/acceptauditpolicies\/([^/]+)\/status$/;

interface HistoryEntry {
  rv: number;
  resource: ServedResource;
  type: EventType;
  object: KObject;
  /** The object before a MODIFIED, so selector transitions can be computed per watcher. */
  previous?: KObject;
}

interface Watcher {
  resource: ServedResource;
  selector: FieldRequirement[];
  bookmarks: boolean;
  res: ServerResponse;
  socket: Socket;
  timer?: NodeJS.Timeout;
}

interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

export interface RequestRecord {
  resource?: ServedResource;
  watch: boolean;
  path: string;
  query: Record<string, string>;
  /** The HTTP status answered (200 for a watch stream, even one that carries a 410 ERROR). */
  status: number;
  /** performance.now() when it arrived. */
  at: number;
}

export interface RequestCounters {
  /** Every HTTP request that reached the server, whatever its outcome. */
  requests: number;
  /** List requests per resource, whatever their outcome. */
  lists: Record<Resource, number>;
  /** Watch requests per resource, whatever their outcome. */
  watches: Record<Resource, number>;
  unauthorized: number;
  forbidden: number;
  unavailable: number;
}

/** The custom resource's traffic (whatever the outcome). */
export interface PolicyCounters {
  lists: number;
  watches: number;
  /** PATCH requests on the status subresource. */
  statusPatches: number;
}

/** One PATCH of a policy's status, as received. */
export interface PolicyPatchRecord {
  namespace: string;
  name: string;
  contentType: string;
  /** The parsed JSON body (the raw text when it did not parse). */
  body: unknown;
  /** The HTTP status answered. */
  status: number;
}

const KIND: Record<ServedResource, { kind: string; list: string; apiVersion: string }> = {
  pods: { kind: 'Pod', list: 'PodList', apiVersion: 'v1' },
  namespaces: { kind: 'Namespace', list: 'NamespaceList', apiVersion: 'v1' },
  [POLICIES]: { kind: 'AcceptAuditPolicy', list: 'AcceptAuditPolicyList', apiVersion: POLICY_GROUP_VERSION },
  services: { kind: 'Service', list: 'ServiceList', apiVersion: 'v1' },
  nodes: { kind: 'Node', list: 'NodeList', apiVersion: 'v1' },
};

// Field labels the real server accepts for these resources (a subset, enough to reject typos).
const FIELDS: Record<ServedResource, Record<string, (o: KObject) => string>> = {
  pods: {
    'metadata.name': (o) => o.metadata?.name ?? '',
    'metadata.namespace': (o) => o.metadata?.namespace ?? '',
    'spec.nodeName': (o) => (o as V1Pod).spec?.nodeName ?? '',
    'spec.serviceAccountName': (o) => (o as V1Pod).spec?.serviceAccountName ?? '',
    'status.phase': (o) => (o as V1Pod).status?.phase ?? '',
    'status.podIP': (o) => (o as V1Pod).status?.podIP ?? '',
  },
  namespaces: {
    'metadata.name': (o) => o.metadata?.name ?? '',
    'status.phase': (o) => (o as V1Namespace).status?.phase ?? '',
  },
  // What every custom resource supports.
  [POLICIES]: {
    'metadata.name': (o) => o.metadata?.name ?? '',
    'metadata.namespace': (o) => o.metadata?.namespace ?? '',
  },
  services: {
    'metadata.name': (o) => o.metadata?.name ?? '',
    'metadata.namespace': (o) => o.metadata?.namespace ?? '',
  },
  nodes: {
    'metadata.name': (o) => o.metadata?.name ?? '',
    'spec.unschedulable': (o) => String((o as V1Node).spec?.unschedulable ?? false),
  },
};

// Certificates: test/helpers/pki.ts's CA and 127.0.0.1 server certificate, made once per test process.

let pki: Pki | undefined;

function serverPki(): Pki {
  if (pki) return pki;
  const p = makePki();
  process.once('exit', () => rmSync(p.dir, { recursive: true, force: true }));
  pki = p;
  return p;
}

interface Refusal {
  code: number;
  reason: string;
  message: string;
}
const NOT_FOUND: Refusal = { code: 404, reason: 'NotFound', message: 'the server could not find the requested resource' };

const ROUTES = new Map<string, ServedResource>([
  ['/api/v1/pods', 'pods'],
  ['/api/v1/namespaces', 'namespaces'],
  ['/api/v1/services', 'services'],
  ['/api/v1/nodes', 'nodes'],
  [POLICY_PATH, POLICIES],
]);

function status(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

// ---------------------------------------------------------------------------------------------------------

export interface KubeApiServerOptions {
  /** The bearer token clients must present; random by default. */
  token?: string;
  /** First resourceVersion handed out; real clusters are far from 1. */
  initialResourceVersion?: number;
}

export class KubeApiServer {
  readonly token: string;
  readonly caPem: string;
  readonly counters: RequestCounters = {
    requests: 0,
    lists: { pods: 0, namespaces: 0 },
    watches: { pods: 0, namespaces: 0 },
    unauthorized: 0,
    forbidden: 0,
    unavailable: 0,
  };
  readonly policyCounters: PolicyCounters = { lists: 0, watches: 0, statusPatches: 0 };
  /** List and watch requests for services and nodes (the collector's peer index). */
  readonly peerCounters = { lists: { services: 0, nodes: 0 }, watches: { services: 0, nodes: 0 } };
  /** Every PATCH of a policy status, in order. */
  readonly policyPatches: PolicyPatchRecord[] = [];
  /** Every request, in order. */
  readonly requests: RequestRecord[] = [];
  /** TokenReview / SubjectAccessReview / pod GET (kube-auth-stand-in.ts). */
  readonly auth: KubeAuthStandIn = new KubeAuthStandIn((ns, name) => this.getPod(ns, name));

  #server: Server;
  #port = 0;
  #running = false;
  #sockets = new Set<Socket>();
  #watchers = new Set<Watcher>();
  #rv: number;
  /** Watches from an RV below this get 410 Gone. */
  #floor = 0;
  #history: HistoryEntry[] = [];
  #objects: Record<ServedResource, Map<string, KObject>> = {
    pods: new Map(),
    namespaces: new Map(),
    [POLICIES]: new Map(),
    services: new Map(),
    nodes: new Map(),
  };
  #unavailable = false;
  #forbidden = new Set<ServedResource | 'acceptauditpolicies/status'>();
  #policyCrd = true;

  private constructor(opts: KubeApiServerOptions) {
    const p = serverPki();
    this.token = opts.token ?? randomBytes(16).toString('hex');
    this.caPem = p.caPem.toString('utf8');
    this.#rv = opts.initialResourceVersion ?? 1000;
    this.#server = createServer({ cert: p.server.certPem, key: p.server.keyPem }, (req, res) => this.#handle(req, res));
    // Track raw sockets so stop() and dropConnections() can cut them like a crash would.
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    // TLS handshake failures (a client that does not trust the CA) are the client's problem.
    this.#server.on('tlsClientError', () => {});
  }

  /** Starts on an ephemeral port of 127.0.0.1. */
  static async create(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const s = new KubeApiServer(opts);
    await s.start();
    return s;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Listens again (on the same port after a stop()). */
  async start(): Promise<void> {
    if (this.#running) return;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    this.#running = true;
  }

  /** The API server goes down: the port is closed (connection refused) and every connection is cut. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const w of this.#watchers) if (w.timer) clearTimeout(w.timer);
    this.#watchers.clear();
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  /** Stops for good. */
  async close(): Promise<void> {
    await this.stop();
  }

  // ---- test controls --------------------------------------------------------------------------------------

  addPod(pod: V1Pod): V1Pod {
    return this.#add('pods', pod) as V1Pod;
  }

  /** Replaces the pod with the same namespace/name (uid and creationTimestamp are kept). */
  updatePod(pod: V1Pod): V1Pod {
    return this.#update('pods', pod) as V1Pod;
  }

  deletePod(namespace: string, name: string): void {
    this.#delete('pods', `${namespace}/${name}`);
  }

  getPod(namespace: string, name: string): V1Pod | undefined {
    const p = this.#objects.pods.get(`${namespace}/${name}`);
    return p ? (structuredClone(p) as V1Pod) : undefined;
  }

  addNamespace(name: string, labels: Record<string, string> = {}): V1Namespace {
    const ns: V1Namespace = {
      metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    };
    return this.#add('namespaces', ns) as V1Namespace;
  }

  updateNamespace(name: string, labels: Record<string, string>): V1Namespace {
    const cur = this.#objects.namespaces.get(name);
    if (!cur) throw new Error(`namespace ${name} not found`);
    const next = structuredClone(cur) as V1Namespace;
    next.metadata!.labels = { 'kubernetes.io/metadata.name': name, ...labels };
    return this.#update('namespaces', next) as V1Namespace;
  }

  deleteNamespace(name: string): void {
    this.#delete('namespaces', name);
  }

  addService(svc: V1Service): V1Service {
    return this.#add('services', svc) as V1Service;
  }

  updateService(svc: V1Service): V1Service {
    return this.#update('services', svc) as V1Service;
  }

  deleteService(namespace: string, name: string): void {
    this.#delete('services', `${namespace}/${name}`);
  }

  addNode(node: V1Node): V1Node {
    return this.#add('nodes', node) as V1Node;
  }

  updateNode(node: V1Node): V1Node {
    return this.#update('nodes', node) as V1Node;
  }

  deleteNode(name: string): void {
    this.#delete('nodes', name);
  }

  /** A BOOKMARK with the current RV to every watcher that asked for bookmarks. */
  sendBookmark(): void {
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue;
      this.#write(w, {
        type: 'BOOKMARK',
        object: {
          kind: KIND[w.resource].kind,
          apiVersion: KIND[w.resource].apiVersion,
          metadata: { resourceVersion: String(this.#rv) },
        },
      });
    }
  }

  /** Ends every watch stream cleanly, as the server does when a watch's timeout expires. */
  closeWatches(): void {
    for (const w of [...this.#watchers]) this.#endWatch(w);
  }

  /** Cuts every open watch connection abruptly (TCP RST): what a crashed apiserver or a dropping LB does. */
  dropConnections(): number {
    const n = this.#watchers.size;
    for (const w of [...this.#watchers]) {
      this.#watchers.delete(w);
      if (w.timer) clearTimeout(w.timer);
      resetSocket(w.socket);
    }
    return n;
  }

  /** Forgets history below `rv`: a watch from an older RV gets 410 Gone. */
  expireBefore(rv: number | string): void {
    this.#floor = Math.max(this.#floor, Number(rv));
    this.#history = this.#history.filter((e) => e.rv >= this.#floor);
  }

  /** Forgets all history: only a watch from the current RV is still served. */
  compact(): void {
    this.expireBefore(this.#rv);
  }

  /** While on, every request gets 503 ServiceUnavailable (an apiserver starting up, or an LB without backends). */
  setUnavailable(on: boolean): void {
    this.#unavailable = on;
  }

  /**
   * RBAC: list and watch of `resource` get 403 Forbidden until allowed again
   * (`acceptauditpolicies/status`: the status PATCH).
   */
  forbid(resource: ServedResource | 'acceptauditpolicies/status', forbidden = true): void {
    if (forbidden) this.#forbidden.add(resource);
    else this.#forbidden.delete(resource);
  }

  /** Open watch streams per resource. */
  openWatches(resource?: ServedResource): number {
    let n = 0;
    for (const w of this.#watchers) if (!resource || w.resource === resource) n++;
    return n;
  }

  // ---- AcceptAuditPolicy (custom resource) ----------------------------------------------------------------

  /**
   * Creates or replaces (by namespace/name) a policy, as `kubectl apply` would through a CRD with a status
   * subresource: the input's status is ignored (kept from the stored object), generation starts at 1 and
   * is bumped only when the spec changes. Throws while the CRD is not installed.
   */
  upsertPolicy(input: PolicyObject): PolicyObject {
    if (!this.#policyCrd) throw new Error('the AcceptAuditPolicy CRD is not installed (setPolicyCrdInstalled)');
    const obj = structuredClone(input);
    obj.apiVersion ??= POLICY_GROUP_VERSION;
    obj.kind ??= KIND[POLICIES].kind;
    obj.metadata ??= {};
    obj.metadata.namespace ??= 'default';
    const previous = this.#objects[POLICIES].get(this.#key(POLICIES, obj)) as PolicyObject | undefined;
    delete obj.status;
    if (!previous) {
      obj.metadata.generation = 1;
      return this.#add(POLICIES, obj) as PolicyObject;
    }
    const specChanged = !isDeepStrictEqual(previous.spec, obj.spec);
    obj.metadata.generation = (previous.metadata?.generation ?? 1) + (specChanged ? 1 : 0);
    if (previous.status !== undefined) obj.status = structuredClone(previous.status);
    return this.#update(POLICIES, obj) as PolicyObject;
  }

  deletePolicy(namespace: string, name: string): void {
    this.#delete(POLICIES, `${namespace}/${name}`);
  }

  getPolicy(namespace: string, name: string): PolicyObject | undefined {
    const p = this.#objects[POLICIES].get(`${namespace}/${name}`);
    return p ? (structuredClone(p) as PolicyObject) : undefined;
  }

  /**
   * Installs or removes the CRD. Removing it does what the real server does: every policy is deleted
   * (DELETED to watchers), the policy watches end, and from then on every policy request is 404.
   */
  setPolicyCrdInstalled(installed: boolean): void {
    if (installed === this.#policyCrd) return;
    if (!installed) {
      for (const key of [...this.#objects[POLICIES].keys()]) this.#delete(POLICIES, key);
      for (const w of [...this.#watchers]) if (w.resource === POLICIES) this.#endWatch(w);
    }
    this.#policyCrd = installed;
  }

  /**
   * Applies a JSON merge patch to a policy's status, as `PATCH …/status` does (see the HTTP handler):
   * only `status` changes, the RV moves and watchers get MODIFIED — unless nothing changed.
   */
  patchPolicyStatus(namespace: string, name: string, patch: unknown): PolicyObject {
    const key = `${namespace}/${name}`;
    const cur = this.#objects[POLICIES].get(key) as PolicyObject | undefined;
    if (!cur) throw new Error(`${POLICIES} ${key} not found`);
    const merged = mergePatch(structuredClone(cur), patch) as PolicyObject;
    if (isDeepStrictEqual(merged.status, cur.status)) return structuredClone(cur);
    const next = structuredClone(cur);
    if (merged.status === undefined) delete next.status;
    else next.status = merged.status;
    return this.#update(POLICIES, next) as PolicyObject;
  }

  /**
   * Writes a kubeconfig for this server (CA inline, bearer token) into `dir` and returns its path.
   * `token` overrides the token, e.g. to test a rejected credential.
   */
  writeKubeconfig(dir: string, opts: { token?: string; fileName?: string } = {}): string {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, opts.fileName ?? 'kubeconfig');
    const ca = Buffer.from(this.caPem).toString('base64');
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: stand-in',
        '  cluster:',
        `    server: ${this.url}`,
        `    certificate-authority-data: ${ca}`,
        'users:',
        '- name: doorwatch',
        '  user:',
        `    token: ${opts.token ?? this.token}`,
        'contexts:',
        '- name: stand-in',
        '  context:',
        '    cluster: stand-in',
        '    user: doorwatch',
        'current-context: stand-in',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    return path;
  }

  /**
   * Lays out what kubelet mounts into a pod (token, ca.crt, namespace) under `dir` and returns the
   * environment an in-cluster client sees.
   */
  writeServiceAccount(dir: string, opts: { token?: string } = {}): { dir: string; env: Record<string, string> } {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'token'), opts.token ?? this.token);
    writeFileSync(join(dir, 'ca.crt'), this.caPem);
    writeFileSync(join(dir, 'namespace'), 'doorwatch');
    return { dir, env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(this.#port) } };
  }

  // ---- object store -------------------------------------------------------------------------------------

  #key(resource: ServedResource, o: KObject): string {
    const m = o.metadata ?? {};
    if (!m.name) throw new Error(`${resource}: metadata.name is required`);
    if (resource === 'pods' || resource === 'services' || resource === POLICIES) {
      if (!m.namespace) throw new Error(`${resource}: metadata.namespace is required`);
      return `${m.namespace}/${m.name}`;
    }
    return m.name;
  }

  #add(resource: ServedResource, input: KObject): KObject {
    const obj = structuredClone(input);
    const key = this.#key(resource, obj);
    if (this.#objects[resource].has(key)) throw new Error(`${resource} ${key} already exists`);
    obj.metadata!.uid ??= randomUUID();
    obj.metadata!.creationTimestamp ??= new Date().toISOString() as unknown as Date;
    obj.metadata!.resourceVersion = String(++this.#rv);
    this.#objects[resource].set(key, obj);
    this.#record({ rv: this.#rv, resource, type: 'ADDED', object: obj });
    return structuredClone(obj);
  }

  #update(resource: ServedResource, input: KObject): KObject {
    const obj = structuredClone(input);
    const key = this.#key(resource, obj);
    const previous = this.#objects[resource].get(key);
    if (!previous) throw new Error(`${resource} ${key} not found`);
    obj.metadata!.uid = previous.metadata!.uid;
    obj.metadata!.creationTimestamp = previous.metadata!.creationTimestamp;
    obj.metadata!.resourceVersion = String(++this.#rv);
    this.#objects[resource].set(key, obj);
    this.#record({ rv: this.#rv, resource, type: 'MODIFIED', object: obj, previous });
    return structuredClone(obj);
  }

  #delete(resource: ServedResource, key: string): void {
    const cur = this.#objects[resource].get(key);
    if (!cur) throw new Error(`${resource} ${key} not found`);
    this.#objects[resource].delete(key);
    // The DELETED event carries the last state with a new RV, like the real server.
    const obj = structuredClone(cur);
    obj.metadata!.resourceVersion = String(++this.#rv);
    this.#record({ rv: this.#rv, resource, type: 'DELETED', object: obj });
  }

  #record(e: HistoryEntry): void {
    this.#history.push(e);
    for (const w of this.#watchers) if (w.resource === e.resource) this.#deliver(w, e);
  }

  /** Applies the watcher's selector with the real semantics (enter = ADDED, leave = DELETED). */
  #deliver(w: Watcher, e: HistoryEntry): void {
    const now = matches(w.resource, w.selector, e.object);
    let type: EventType | undefined = e.type;
    if (e.type === 'MODIFIED') {
      const before = e.previous ? matches(w.resource, w.selector, e.previous) : now;
      if (before && !now) type = 'DELETED';
      else if (!before && now) type = 'ADDED';
      else if (!now) type = undefined;
    } else if (!now) {
      type = undefined;
    }
    if (type) this.#write(w, { type, object: wireObject(w.resource, e.object) });
  }

  #write(w: Watcher, event: object): void {
    if (!w.res.writableEnded && !w.socket.destroyed) w.res.write(`${JSON.stringify(event)}\n`);
  }

  #endWatch(w: Watcher): void {
    this.#watchers.delete(w);
    if (w.timer) clearTimeout(w.timer);
    if (!w.res.writableEnded) w.res.end();
  }

  // ---- HTTP ---------------------------------------------------------------------------------------------

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.counters.requests++;
    const url = new URL(req.url ?? '/', 'https://stand-in');
    const resource = ROUTES.get(url.pathname);
    const statusTarget = POLICY_STATUS_PATH.exec(url.pathname);
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    if (resource === POLICIES) this.policyCounters[watch ? 'watches' : 'lists']++;
    else if (resource === 'services' || resource === 'nodes') this.peerCounters[watch ? 'watches' : 'lists'][resource]++;
    else if (resource) this.counters[watch ? 'watches' : 'lists'][resource]++;
    else if (statusTarget && req.method === 'PATCH') this.policyCounters.statusPatches++;
    const record: RequestRecord = {
      watch,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      status: 0,
      at: performance.now(),
    };
    if (resource) record.resource = resource;
    else if (statusTarget) record.resource = POLICIES;
    this.requests.push(record);
    res.once('finish', () => {
      record.status = res.statusCode;
    });
    res.once('close', () => {
      record.status ||= res.statusCode;
    });

    if (this.auth.serves(url.pathname)) {
      const gate = this.#gate(req);
      if (gate) send(res, gate.code, status(gate.code, gate.reason, gate.message));
      else this.auth.handle(req, res, url.pathname);
      return;
    }
    if (statusTarget) {
      this.#handleStatusPatch(req, res, decodeURIComponent(statusTarget[1]!), decodeURIComponent(statusTarget[2]!));
      return;
    }
    const refusal = this.#refusal(req, resource, watch, url.searchParams);
    if (refusal) {
      send(res, refusal.code, status(refusal.code, refusal.reason, refusal.message));
      return;
    }
    const selector = parseFieldSelector(resource!, url.searchParams.get('fieldSelector') ?? '');
    if (watch) this.#serveWatch(req, res, resource!, selector, url.searchParams);
    else this.#serveList(res, resource!, selector);
  }

  /** Availability and authentication: the first two refusals of every request. */
  #gate(req: IncomingMessage): Refusal | undefined {
    if (this.#unavailable) {
      this.counters.unavailable++;
      return { code: 503, reason: 'ServiceUnavailable', message: 'the server is currently unable to handle the request' };
    }
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      this.counters.unauthorized++;
      return { code: 401, reason: 'Unauthorized', message: 'Unauthorized' };
    }
    return undefined;
  }

  /** Why a request is turned away, in the real server's order: availability, authn, routing, authz, validation. */
  #refusal(req: IncomingMessage, resource: ServedResource | undefined, watch: boolean, q: URLSearchParams): Refusal | undefined {
    const gate = this.#gate(req);
    if (gate) return gate;
    if (!resource || (resource === POLICIES && !this.#policyCrd)) return NOT_FOUND;
    if (req.method !== 'GET') return { code: 405, reason: 'MethodNotAllowed', message: `${req.method} is not supported` };
    if (this.#forbidden.has(resource)) {
      this.counters.forbidden++;
      const verb = watch ? 'watch' : 'list';
      const group = resource === POLICIES ? 'doorwatch.io' : '';
      return {
        code: 403,
        reason: 'Forbidden',
        message: `${group ? `${resource}.${group}` : resource} is forbidden: User "system:serviceaccount:doorwatch:doorwatch" cannot ${verb} resource "${resource}" in API group "${group}" at the cluster scope`,
      };
    }
    if (q.has('labelSelector')) {
      return { code: 400, reason: 'BadRequest', message: 'labelSelector is not implemented by the test stand-in' };
    }
    try {
      parseFieldSelector(resource, q.get('fieldSelector') ?? '');
    } catch (err) {
      return { code: 400, reason: 'BadRequest', message: (err as Error).message };
    }
    const rv = q.get('resourceVersion') ?? '';
    if (watch && rv !== '' && !/^\d+$/.test(rv))
      return { code: 400, reason: 'BadRequest', message: `invalid resource version: ${rv}` };
    return undefined;
  }

  #serveList(res: ServerResponse, resource: ServedResource, selector: FieldRequirement[]): void {
    const items = [...this.#objects[resource].values()]
      .filter((o) => matches(resource, selector, o))
      // Built-in list items carry no kind/apiVersion on the wire (the list does); custom resources' do.
      .map((o) => {
        if (resource === POLICIES) return wireObject(resource, o);
        const { kind: _k, apiVersion: _a, ...rest } = o;
        return rest;
      });
    const { list: kind, apiVersion } = KIND[resource];
    send(res, 200, { kind, apiVersion, metadata: { resourceVersion: String(this.#rv) }, items });
  }

  /**
   * `PATCH /apis/doorwatch.io/v1alpha1/namespaces/{ns}/acceptauditpolicies/{name}/status` in the real server's
   * order: availability, authn, routing (CRD installed), method, authz, media type, body, object, precondition.
   * Only JSON merge patch is implemented (415 otherwise); a status subresource ignores everything but
   * `status`, and `metadata.resourceVersion` in the patch is an optimistic-concurrency precondition.
   */
  #handleStatusPatch(req: IncomingMessage, res: ServerResponse, namespace: string, name: string): void {
    const early =
      this.#gate(req) ??
      (this.#policyCrd ? undefined : NOT_FOUND) ??
      (req.method === 'PATCH' ? undefined : { code: 405, reason: 'MethodNotAllowed', message: `${req.method} is not supported` });
    if (early) {
      send(res, early.code, status(early.code, early.reason, early.message));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const contentType = String(req.headers['content-type'] ?? '')
        .split(';')[0]!
        .trim();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text: refused below
      }
      const rec: PolicyPatchRecord = { namespace, name, contentType, body, status: 0 };
      this.policyPatches.push(rec);
      const answer = this.#applyStatusPatch(namespace, name, contentType, body);
      rec.status = answer.code;
      send(res, answer.code, answer.body);
    });
  }

  #applyStatusPatch(namespace: string, name: string, contentType: string, body: unknown): { code: number; body: object } {
    const refuse = (code: number, reason: string, message: string) => ({ code, body: status(code, reason, message) });
    const what = `${POLICIES}.doorwatch.io "${name}"`;
    if (this.#forbidden.has('acceptauditpolicies/status')) {
      this.counters.forbidden++;
      return refuse(
        403,
        'Forbidden',
        `${what} is forbidden: User "system:serviceaccount:doorwatch:doorwatch" cannot patch resource "acceptauditpolicies/status" in API group "doorwatch.io" in the namespace "${namespace}"`,
      );
    }
    if (contentType !== 'application/merge-patch+json') {
      const message = `the test stand-in implements application/merge-patch+json only, got "${contentType}"`;
      return refuse(415, 'UnsupportedMediaType', message);
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      return refuse(400, 'BadRequest', 'a merge patch must be a JSON object');
    const cur = this.#objects[POLICIES].get(`${namespace}/${name}`);
    if (!cur) return refuse(404, 'NotFound', `${what} not found`);
    const precondition = (body as PolicyObject).metadata?.resourceVersion;
    if (precondition !== undefined && precondition !== cur.metadata?.resourceVersion) {
      const message = `Operation cannot be fulfilled on ${what}: the object has been modified; please apply your changes to the latest version and try again`;
      return refuse(409, 'Conflict', message);
    }
    return { code: 200, body: wireObject(POLICIES, this.patchPolicyStatus(namespace, name, body)) };
  }

  #serveWatch(
    req: IncomingMessage,
    res: ServerResponse,
    resource: ServedResource,
    selector: FieldRequirement[],
    q: URLSearchParams,
  ): void {
    const rvParam = q.get('resourceVersion') ?? '';
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const w: Watcher = {
      resource,
      selector,
      bookmarks: q.get('allowWatchBookmarks') === 'true',
      res,
      socket: req.socket,
    };
    const rv = rvParam === '' ? 0 : Number(rvParam);
    if (rv !== 0 && rv < this.#floor) {
      // Like the real server: a 200 stream carrying one ERROR event, then the end.
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${rv} (${this.#floor})`) })}\n`,
      );
      return;
    }
    if (rv === 0) {
      // "Any/most recent": synthetic ADDED events for the current state.
      for (const o of this.#objects[resource].values()) {
        if (matches(resource, selector, o)) this.#write(w, { type: 'ADDED', object: wireObject(resource, o) });
      }
    } else {
      for (const e of this.#history) if (e.rv > rv && e.resource === resource) this.#deliver(w, e);
    }
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    if (timeout > 0) {
      w.timer = setTimeout(() => this.#endWatch(w), timeout * 1000);
      w.timer.unref();
    }
    this.#watchers.add(w);
    res.on('close', () => {
      this.#watchers.delete(w);
      if (w.timer) clearTimeout(w.timer);
    });
  }
}

function send(res: ServerResponse, code: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function wireObject(resource: ServedResource, o: KObject): KObject {
  return { ...o, kind: KIND[resource].kind, apiVersion: KIND[resource].apiVersion };
}

/** RFC 7386 JSON merge patch: objects merge key by key, `null` deletes, anything else (arrays too) replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function parseFieldSelector(resource: ServedResource, selector: string): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  for (const part of selector.split(',')) {
    if (part.trim() === '') continue;
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part);
    if (!m) throw new Error(`invalid field selector: ${part}`);
    const field = m[1]!;
    if (!FIELDS[resource][field]) throw new Error(`field label not supported: ${field}`);
    out.push({ field, op: m[2] === '!=' ? '!=' : '=', value: m[3]! });
  }
  return out;
}

function matches(resource: ServedResource, selector: FieldRequirement[], o: KObject): boolean {
  return selector.every((r) => (FIELDS[resource][r.field]!(o) === r.value) === (r.op === '='));
}

/**
 * TCP RST rather than FIN, so the client sees `read ECONNRESET` mid-stream. A TLS socket's own
 * resetAndDestroy() throws (its handle is a TLSWrap); the TCP socket under it (`_parent`, internal
 * to node:tls) can be reset. Falls back to a plain destroy.
 */
function resetSocket(s: Socket): void {
  const tcp = (s as Socket & { _parent?: Socket })._parent ?? s;
  try {
    tcp.resetAndDestroy();
  } catch {
    // not a TCP handle: a FIN is the best we can do
  }
  s.destroy();
}

// ---------------------------------------------------------------------------------------------------------
// Realistic pod objects.

export type Runtime = 'containerd' | 'cri-o' | 'docker';

/** A runtime container id: 64 hex characters, as containerd, CRI-O and dockershim print them. */
export function randomContainerId(): string {
  return randomBytes(32).toString('hex');
}

export interface ContainerSpec {
  name: string;
  image: string;
  /** Bare id (64 hex); random when omitted. Set to '' for a container that has not started yet. */
  id?: string;
  runtime?: Runtime;
  imageId?: string;
  /** spec.containers[].ports, as the API has them (containerPort, protocol, hostPort, name). */
  ports?: { containerPort: number; protocol?: string; hostPort?: number; name?: string }[];
  /** Init containers only: 'Always' makes a native sidecar. */
  restartPolicy?: 'Always';
}

export interface MakePodOptions {
  name: string;
  namespace?: string;
  uid?: string;
  nodeName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: V1OwnerReference[];
  containers?: ContainerSpec[];
  initContainers?: ContainerSpec[];
  ephemeralContainers?: ContainerSpec[];
  qosClass?: 'Guaranteed' | 'Burstable' | 'BestEffort';
  podIP?: string;
  hostNetwork?: boolean;
  serviceAccountName?: string;
  phase?: string;
}

function imageDigest(image: string): string {
  const repo = image.split('@')[0]!.replace(/:[^/:]+$/, '');
  return `${repo.includes('/') ? repo : `docker.io/library/${repo}`}@sha256:${randomBytes(32).toString('hex')}`;
}

function containerStatus(c: ContainerSpec, running: boolean): object {
  const id = c.id ?? randomContainerId();
  const started = id !== '';
  return {
    name: c.name,
    image: c.image,
    imageID: started ? (c.imageId ?? imageDigest(c.image)) : '',
    ...(started ? { containerID: `${c.runtime ?? 'containerd'}://${id}` } : {}),
    ready: started && running,
    restartCount: 0,
    started: started && running,
    state: !started
      ? { waiting: { reason: 'ContainerCreating' } }
      : running
        ? { running: { startedAt: new Date().toISOString() } }
        : { terminated: { exitCode: 0, reason: 'Completed', containerID: `${c.runtime ?? 'containerd'}://${id}` } },
  };
}

/** A Pod as the API returns it once kubelet has started it: spec, and status with container ids. */
export function makePod(o: MakePodOptions): V1Pod {
  const containers = o.containers ?? [{ name: 'app', image: 'nginx:1.27' }];
  const pod = {
    metadata: {
      name: o.name,
      namespace: o.namespace ?? 'default',
      ...(o.uid ? { uid: o.uid } : {}),
      labels: o.labels ?? {},
      ...(o.annotations ? { annotations: o.annotations } : {}),
      ...(o.ownerReferences ? { ownerReferences: o.ownerReferences } : {}),
    },
    spec: {
      nodeName: o.nodeName ?? 'node-a',
      serviceAccountName: o.serviceAccountName ?? 'default',
      serviceAccount: o.serviceAccountName ?? 'default',
      ...(o.hostNetwork ? { hostNetwork: true } : {}),
      restartPolicy: 'Always',
      containers: containers.map((c) => ({ name: c.name, image: c.image, ...(c.ports ? { ports: c.ports } : {}) })),
      ...(o.initContainers
        ? {
            initContainers: o.initContainers.map((c) => ({
              name: c.name,
              image: c.image,
              ...(c.ports ? { ports: c.ports } : {}),
              ...(c.restartPolicy ? { restartPolicy: c.restartPolicy } : {}),
            })),
          }
        : {}),
      ...(o.ephemeralContainers
        ? {
            ephemeralContainers: o.ephemeralContainers.map((c) => ({
              name: c.name,
              image: c.image,
              targetContainerName: containers[0]?.name,
            })),
          }
        : {}),
    },
    status: {
      phase: o.phase ?? 'Running',
      qosClass: o.qosClass ?? 'BestEffort',
      hostIP: '10.0.0.10',
      podIP: o.podIP ?? (o.hostNetwork ? '10.0.0.10' : '10.244.1.23'),
      podIPs: [{ ip: o.podIP ?? (o.hostNetwork ? '10.0.0.10' : '10.244.1.23') }],
      startTime: new Date().toISOString(),
      containerStatuses: containers.map((c) => containerStatus(c, true)),
      ...(o.initContainers ? { initContainerStatuses: o.initContainers.map((c) => containerStatus(c, false)) } : {}),
      ...(o.ephemeralContainers
        ? { ephemeralContainerStatuses: o.ephemeralContainers.map((c) => containerStatus(c, true)) }
        : {}),
    },
  };
  return pod as unknown as V1Pod;
}

/** The ownerReference a controller sets on the objects it creates. */
export function ownerRef(kind: string, name: string, apiVersion = kind === 'Job' ? 'batch/v1' : 'apps/v1'): V1OwnerReference {
  return { apiVersion, kind, name, uid: randomUUID(), controller: true, blockOwnerDeletion: true };
}

export { tempDir } from './temp-dir.js';
export { until } from './wait.js';
