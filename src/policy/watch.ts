import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig, KubernetesListObject } from '@kubernetes/client-node';
import { kubeWatch } from '../kube/api.js';
import { httpStatusOf, statusMessage } from '../kube/api-error.js';
import { CoalescedChange } from '../kube/change.js';
import { ResilientInformer } from '../kube/informer.js';
import { kubeRequest } from '../kube/rest.js';
import { DEFAULT_BACKOFF } from '../kube/source.js';
import type { BackoffOptions } from '../kube/types.js';
import type { Logger } from '../log/logger.js';
import { type ParsedResource, POLICY_API, type PolicyResource, parseResource, type RejectedResource } from './resource.js';
import { type PolicyApiObject, patchStatusVia, StatusWriter } from './status.js';

/**
 * Every AcceptAuditPolicy of the cluster, kept current by list+watch and
 * parsed as it arrives: the valid ones are what policies() hands out, the
 * invalid ones are rejected whole (never applied half-way), logged once per
 * (uid, generation) and, when `writeStatus`, reported on the object itself
 * (status.conditions[type=Accepted], see status.ts). An object that was valid
 * and is edited into an invalid one stays enforced as its last valid version
 * (in policies() and in rejected(), with enforcedGeneration) until it is fixed
 * or deleted.
 *
 * The loop is the pods' and namespaces' (src/kube/informer.ts): resumes
 * from the last resourceVersion, relists after 410, bounded jittered backoff
 * through outages, bookmarks, a watchdog on dead connections. Each of the N
 * agents watches all policies: there are few, and every agent must apply the
 * ones that select its pods.
 *
 * The CRD not installed (404): one warning with the fix, and the agent runs on
 * its configuration's rules alone. That counts as synced — there is nothing to
 * wait for, a zero-object answer rather than an unanswered question — so
 * readiness does not hang on an optional CRD. The list is retried with the
 * backoff (≤ maxMs), so installing the CRD later is picked up without a restart.
 * A 404 does not clear what is held: deleting a CRD deletes its objects first,
 * and those deletions arrive as watch events or in the next relist's diff
 * (only a CRD deleted while this agent was disconnected leaves its last policies
 * applied until the CRD is back).
 */

export const POLICY_COLLECTION_PATH = `/apis/${POLICY_API.group}/${POLICY_API.version}/${POLICY_API.plural}`;
export const CRD_FILE = 'helm/doorwatch/crds/acceptauditpolicies.doorwatch.io.yaml';
const CRD_MISSING = 'AcceptAuditPolicy CRD not installed';

export interface PolicyWatcherOptions {
  kubeConfig: KubeConfig;
  /** The agent's own namespace: only policies there may select other namespaces. */
  adminNamespace: string;
  /** Write status.conditions[type=Accepted] on each object (needs patch on acceptauditpolicies/status). */
  writeStatus: boolean;
  log: Logger;
  /** Default 500 ms .. 30 s, full jitter: list/watch retries and transient status-write retries. */
  backoff?: BackoffOptions;
  /** Injectable for tests (lastTransitionTime, warning rate limits). */
  now?: () => number;
  /** Injectable for tests (jitter). */
  random?: () => number;
  /** The first status write of an object waits uniform(0, this); default 2000 ms (see status.ts). */
  statusJitterMs?: number;
}

export interface PolicyWatcherStatus {
  /** Listed at least once, or the CRD is known not to be installed (nothing to wait for). */
  synced: boolean;
  /** A watch stream is open now. */
  connected: boolean;
  /** The current list/watch failure, with the fix where there is one. */
  lastError?: string;
  accepted: number;
  rejected: number;
  /** The last list/watch answered 404: the CRD is not installed (retrying with backoff). */
  crdMissing: boolean;
  /** Status PATCHes that succeeded. */
  statusWrites: number;
  /** Status PATCHes that failed (409 conflicts with a newer version are not failures). */
  statusWriteErrors: number;
}

interface Entry {
  obj: PolicyApiObject;
  parsed: ParsedResource;
  /**
   * The newest valid version of this object seen by this agent. A policy
   * edited into an invalid one keeps being enforced as it was last valid —
   * for an audit product, a typo must not silently hand its pods to another
   * (weaker) policy — while the object says Accepted=False with every problem.
   */
  lastValid?: PolicyResource;
}

/** Identity in the informer and here: the uid (a policy deleted and recreated under its name is another object). */
const keyOf = (p: PolicyApiObject): string => p.metadata?.uid ?? `${p.metadata?.namespace}/${p.metadata?.name}`;

function byNamespaceName(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  return a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export class PolicyWatcher {
  readonly #o: PolicyWatcherOptions;
  readonly #log: Logger;
  readonly #change: CoalescedChange;
  /** By keyOf. */
  readonly #entries = new Map<string, Entry>();
  /** uid -> the generation whose verdict was logged. */
  readonly #logged = new Map<string, number>();
  readonly #informer: ResilientInformer<PolicyApiObject>;
  readonly #writer: StatusWriter | undefined;
  #starting: Promise<void> | undefined;
  #stopped = false;
  #crdMissing = false;
  #crdWarned = false;
  #sorted: { policies: PolicyResource[]; rejected: RejectedResource[] } | undefined;

  constructor(o: PolicyWatcherOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'policy-watch' });
    this.#change = new CoalescedChange(this.#log);
    const backoff = o.backoff ?? DEFAULT_BACKOFF;
    const watch = kubeWatch(o.kubeConfig);
    this.#informer = new ResilientInformer<PolicyApiObject>({
      resource: POLICY_API.plural,
      path: POLICY_COLLECTION_PATH,
      list: (signal) => this.#list(signal),
      watch: async (path, query, cb, done) => {
        let failed = false;
        const controller = await watch(path, query, cb, (err) => {
          if (err) failed = true;
          done(err ? this.#translate('watch', err) : err);
        });
        // client-node resolves after the response headers, having called done() first when they were not a 200.
        if (!failed) this.#found();
        return controller;
      },
      keyOf,
      handlers: {
        upsert: (p) => this.#upsert(p),
        remove: (key) => this.#remove(key),
      },
      log: demoteCrdMissing(this.#log),
      backoff,
      random: o.random,
    });
    if (o.writeStatus) {
      this.#writer = new StatusWriter({
        patch: patchStatusVia(o.kubeConfig),
        log: this.#log,
        backoff,
        jitterMs: o.statusJitterMs,
        now: o.now,
        random: o.random,
      });
    }
  }

  /**
   * Starts the list+watch; resolves after the first list attempt, successful or not (an unreachable API
   * never holds the agent up: it retries in the background). Never rejects.
   */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#stopped) return;
    await this.#informer.start();
    if (this.#stopped) return;
    const s = this.status();
    if (this.#informer.state().listed) {
      this.#log.info({ accepted: s.accepted, rejected: s.rejected }, 'AcceptAuditPolicy objects listed');
    } else if (!s.crdMissing) {
      this.#log.warn(
        { err: s.lastError },
        "AcceptAuditPolicy objects not readable yet: only the agent configuration's policy rules apply until they are; retrying in the background",
      );
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([this.#informer.stop(), this.#writer?.stop()]);
  }

  /** Listed at least once, or the CRD is known to be absent (zero objects: nothing to wait for). */
  synced(): boolean {
    return this.#informer.state().listed || this.#crdMissing;
  }

  /** The valid policies, sorted by namespace then name. Shared: do not mutate. */
  policies(): PolicyResource[] {
    return [...this.#view().policies];
  }

  /** The invalid ones with their problems, sorted by namespace then name. */
  rejected(): RejectedResource[] {
    return [...this.#view().rejected];
  }

  status(): PolicyWatcherStatus {
    const st = this.#informer.state();
    const view = this.#view();
    const w = this.#writer?.stats();
    return {
      synced: this.synced(),
      connected: st.connected,
      ...(st.lastError !== undefined ? { lastError: st.lastError } : {}),
      accepted: view.policies.length,
      rejected: view.rejected.length,
      crdMissing: this.#crdMissing,
      statusWrites: w?.writes ?? 0,
      statusWriteErrors: w?.errors ?? 0,
    };
  }

  /** After an add/update/delete/relist that changed policies() or rejected(); a burst is reported once. */
  on(event: 'change', fn: () => void): void {
    if (event !== 'change') throw new Error(`unknown event ${String(event)}`);
    this.#change.on(fn);
  }

  // ---- list/watch -----------------------------------------------------------------------------------------

  async #list(signal: AbortSignal): Promise<KubernetesListObject<PolicyApiObject>> {
    let list: KubernetesListObject<PolicyApiObject>;
    try {
      list = await kubeRequest(this.#o.kubeConfig, { path: POLICY_COLLECTION_PATH, signal });
    } catch (err) {
      throw this.#translate('list', err);
    }
    this.#found();
    // The informer applies the list's diff right after this resolves; objects whose status write
    // failed for good are tried again once it has (a relist is the retry point for those).
    setImmediate(() => {
      if (!this.#stopped) this.#writer?.resync();
    });
    return list;
  }

  /** A list or watch was answered: the CRD is there (again). */
  #found(): void {
    if (!this.#crdMissing) return;
    this.#crdMissing = false;
    this.#crdWarned = false;
    this.#log.info('AcceptAuditPolicy CRD found: watching the policies');
  }

  /**
   * 404 and 403 get this resource's own message (the shared hints speak of pods and namespaces). The
   * result carries no HTTP status, so the informer takes the message as it is.
   */
  #translate(op: 'list' | 'watch', err: unknown): unknown {
    const code = httpStatusOf(err);
    if (code !== 404 && code !== 403) return err;
    const e = err as { body?: unknown; message?: unknown };
    const detail = statusMessage(e.body) ?? (typeof e.message === 'string' ? e.message : '');
    if (code === 404) {
      const msg = `${CRD_MISSING} (HTTP 404 on ${op} ${POLICY_COLLECTION_PATH}): only the agent configuration's policy rules apply; install ${CRD_FILE}`;
      this.#crdMissing = true;
      if (!this.#crdWarned) {
        this.#crdWarned = true;
        this.#log.warn({ path: POLICY_COLLECTION_PATH, detail }, msg);
      }
      return new Error(msg);
    }
    return new Error(
      `HTTP 403 ${detail} — RBAC: the agent's ServiceAccount needs get, list and watch on acceptauditpolicies ` +
        '(API group doorwatch.io, cluster-wide: a ClusterRole)' +
        (this.#writer ? ', and patch on acceptauditpolicies/status' : ''),
    );
  }

  // ---- objects ----------------------------------------------------------------------------------------------

  #upsert(obj: PolicyApiObject): void {
    const key = keyOf(obj);
    let parsed = parseResource(obj, this.#o.adminNamespace);
    const prev = this.#entries.get(key);
    const lastValid = parsed.ok ? parsed.policy : prev?.lastValid;
    if (!parsed.ok && lastValid)
      parsed = { ok: false, rejected: { ...parsed.rejected, enforcedGeneration: lastValid.generation } };
    this.#entries.set(key, { obj, parsed, lastValid });
    this.#logVerdict(key, parsed);
    // A status write (ours or another agent's) changes the object but not what it parses to.
    if (!prev || !isDeepStrictEqual(prev.parsed, parsed)) this.#changed();
    this.#writer?.observe(key, obj, parsed);
  }

  #remove(key: string): void {
    const prev = this.#entries.get(key);
    this.#entries.delete(key);
    this.#logged.delete(key);
    this.#writer?.forget(key);
    if (!prev) return;
    const id = prev.parsed.ok ? prev.parsed.policy : prev.parsed.rejected;
    this.#log.info({ namespace: id.namespace, name: id.name }, 'policy removed');
    this.#changed();
  }

  #logVerdict(key: string, parsed: ParsedResource): void {
    const id = parsed.ok ? parsed.policy : parsed.rejected;
    if (this.#logged.get(key) === id.generation) return;
    this.#logged.set(key, id.generation);
    const fields = { namespace: id.namespace, name: id.name, generation: id.generation };
    if (parsed.ok) {
      this.#log.info({ ...fields, mode: parsed.policy.spec.mode, clusterScoped: parsed.policy.clusterScoped }, 'policy accepted');
    } else if (parsed.rejected.enforcedGeneration !== undefined) {
      this.#log.warn(
        { ...fields, problems: parsed.rejected.problems, enforcedGeneration: parsed.rejected.enforcedGeneration },
        'policy rejected: its last valid version stays enforced',
      );
    } else {
      this.#log.warn({ ...fields, problems: parsed.rejected.problems }, 'policy rejected');
    }
  }

  #view(): { policies: PolicyResource[]; rejected: RejectedResource[] } {
    if (!this.#sorted) {
      const policies: PolicyResource[] = [];
      const rejected: RejectedResource[] = [];
      for (const { parsed, lastValid } of this.#entries.values()) {
        if (parsed.ok) policies.push(parsed.policy);
        else {
          rejected.push(parsed.rejected);
          if (lastValid) policies.push(lastValid);
        }
      }
      // uid last: the same name twice only in the instant between a delete and a re-create.
      const order = <T extends { namespace: string; name: string; uid: string }>(a: T, b: T) =>
        byNamespaceName(a, b) || (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0);
      this.#sorted = { policies: policies.sort(order), rejected: rejected.sort(order) };
    }
    return this.#sorted;
  }

  #changed(): void {
    this.#sorted = undefined;
    this.#change.fire();
  }
}

/**
 * The informer's logger, except that its own warning about the missing CRD goes to debug: the watcher
 * says it once, with what it means and the fix, and the retries stay quiet.
 */
function demoteCrdMissing(log: Logger): Logger {
  const wrapped = Object.create(log) as Logger;
  const warn = (obj: unknown, ...rest: unknown[]) => {
    const err = (obj as { err?: unknown } | null)?.err;
    const fn = typeof err === 'string' && err.includes(CRD_MISSING) ? log.debug : log.warn;
    return (fn as (...a: unknown[]) => void).call(log, obj, ...rest);
  };
  wrapped.warn = warn as Logger['warn'];
  return wrapped;
}
