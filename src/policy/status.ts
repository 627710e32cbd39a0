import type { KubeConfig, V1ObjectMeta } from '@kubernetes/client-node';
import { describeApiError, httpStatusOf, statusMessage } from '../kube/api-error.js';
import { kubeRequest } from '../kube/rest.js';
import type { BackoffOptions } from '../kube/types.js';
import type { Logger } from '../log/logger.js';
import { WarnLimiter } from '../log/warn-limiter.js';
import { Backoff } from '../retry/backoff.js';
import { type ParsedResource, POLICY_API } from './resource.js';

/**
 * The `Accepted` condition of each AcceptAuditPolicy, written by the agents.
 *
 * Every agent of the DaemonSet sees every policy, so N agents would write the
 * same status N times. They don't, because:
 * - the condition is a pure function of the object (no node name, no time
 *   except lastTransitionTime), so every agent computes the same one, and an
 *   agent only PATCHes when the object's current condition differs from it
 *   (lastTransitionTime ignored);
 * - the first write of an object waits uniform(0, jitterMs): the agent that
 *   drew the shortest wait writes, the others see its write through their
 *   watch before their own wait ends, and skip;
 * - the patch carries `metadata.resourceVersion`, an optimistic-concurrency
 *   precondition: an agent whose view is stale gets 409 Conflict instead of
 *   overwriting a newer status (a lagging agent must never put back an older
 *   observedGeneration). The newer object reaches it through the watch.
 *
 * Failures never reach the caller: they are counted, warned (rate-limited),
 * and retried — transient ones (network, 429, 5xx) with a bounded jittered
 * backoff, the others (403: RBAC, 404, 4xx) on the object's next change or
 * the next relist.
 *
 * Transport: a `PATCH …/status` with `Content-Type: application/merge-patch+json` through src/kube/rest.ts,
 * which takes client-node's kubeconfig handling (TLS, token files that rotate, exec and OIDC auth plugins)
 * from `applyToHTTPSOptions`, as its Watch does. (client-node 1.4.0's generated patch labelled every body as
 * a JSON Patch, and its API classes load every generated model: rest.ts.)
 */

export const ACCEPTED_TYPE = 'Accepted';
export const ACCEPTED_MESSAGE = 'applied by doorwatch agents';
/** Field manager named on each write (metadata.managedFields). */
export const FIELD_MANAGER = 'doorwatch-agent';
/** The CRD allows 32768; a condition message is for humans, and problems past this are summarised. */
const MAX_MESSAGE = 8192;

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  /** RFC 3339, seconds precision (metav1.Time). */
  lastTransitionTime: string;
}

export interface AcceptedCondition {
  type: typeof ACCEPTED_TYPE;
  status: 'True' | 'False';
  reason: 'Valid' | 'InvalidSpec';
  message: string;
  observedGeneration: number;
}

/** An AcceptAuditPolicy as the API sends it (plain JSON: list items and watch objects alike). */
export interface PolicyApiObject {
  apiVersion?: string;
  kind?: string;
  /** Timestamps are RFC 3339 strings in this raw JSON, whatever V1ObjectMeta's types say. */
  metadata?: V1ObjectMeta;
  spec?: unknown;
  status?: { observedGeneration?: number; conditions?: unknown[] };
}

/** The body of a status merge patch. */
export interface StatusPatch {
  metadata: { resourceVersion: string };
  status: { observedGeneration: number; conditions: unknown[] };
}

/** What the agents say about a parsed object. Pure and node-independent. */
export function acceptedCondition(parsed: ParsedResource): AcceptedCondition {
  if (parsed.ok) {
    return {
      type: ACCEPTED_TYPE,
      status: 'True',
      reason: 'Valid',
      message: ACCEPTED_MESSAGE,
      observedGeneration: parsed.policy.generation,
    };
  }
  return {
    type: ACCEPTED_TYPE,
    status: 'False',
    reason: 'InvalidSpec',
    message: problemsMessage(parsed.rejected.problems, parsed.rejected.enforcedGeneration),
    observedGeneration: parsed.rejected.generation,
  };
}

/** Every problem, and what is enforced meanwhile. */
function problemsMessage(problems: string[], enforced: number | undefined): string {
  const kept =
    enforced === undefined
      ? ''
      : ` — not applied: the agents keep enforcing generation ${enforced}, this policy's last valid version`;
  return listProblems(problems, MAX_MESSAGE - kept.length) + kept;
}

function listProblems(problems: string[], max: number): string {
  const all = problems.join('; ');
  if (all.length <= max) return all;
  let text = '';
  let shown = 0;
  for (const p of problems) {
    const next = shown === 0 ? p : `${text}; ${p}`;
    if (next.length > max - 40) break;
    text = next;
    shown++;
  }
  if (shown === 0) return `${problems[0]!.slice(0, max - 40)}… (${problems.length} problems)`;
  return `${text}; … and ${problems.length - shown} more`;
}

/** metav1.Time: RFC 3339 in UTC, whole seconds. */
export function kubeTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The merge patch that brings `obj`'s status to what `parsed` says, or undefined when it already says it
 * (lastTransitionTime ignored). Other condition types are kept as they are (a merge patch replaces the whole
 * list); lastTransitionTime moves only when the condition's status changes. Pure.
 */
export function statusPatch(obj: PolicyApiObject, parsed: ParsedResource, nowMs: number): StatusPatch | undefined {
  const want = acceptedCondition(parsed);
  const conditions = Array.isArray(obj.status?.conditions) ? obj.status.conditions : [];
  const i = conditions.findIndex((c) => isRecord(c) && c.type === ACCEPTED_TYPE);
  const cur = i >= 0 ? (conditions[i] as Record<string, unknown>) : undefined;
  const same =
    cur !== undefined &&
    cur.status === want.status &&
    cur.reason === want.reason &&
    cur.message === want.message &&
    cur.observedGeneration === want.observedGeneration &&
    typeof cur.lastTransitionTime === 'string' &&
    obj.status?.observedGeneration === want.observedGeneration;
  if (same) return undefined;
  const lastTransitionTime =
    cur?.status === want.status && typeof cur.lastTransitionTime === 'string' ? cur.lastTransitionTime : kubeTime(nowMs);
  const condition: Condition = { ...want, lastTransitionTime };
  const next = [...conditions];
  if (i >= 0) next[i] = condition;
  else next.push(condition);
  return {
    metadata: { resourceVersion: obj.metadata?.resourceVersion ?? '' },
    status: { observedGeneration: want.observedGeneration, conditions: next },
  };
}

// ---------------------------------------------------------------------------------------------------------

/** One status PATCH; resolves with the object as the server stored it. */
export type PatchStatusFn = (namespace: string, name: string, body: StatusPatch, signal: AbortSignal) => Promise<unknown>;

export function patchStatusVia(kc: KubeConfig): PatchStatusFn {
  return (namespace, name, body, signal) =>
    kubeRequest(kc, {
      method: 'PATCH',
      path: `/apis/${POLICY_API.group}/${POLICY_API.version}/namespaces/${encodeURIComponent(namespace)}/${POLICY_API.plural}/${encodeURIComponent(name)}/status`,
      query: { fieldManager: FIELD_MANAGER },
      body,
      contentType: 'application/merge-patch+json',
      signal,
    });
}

export interface StatusWriterOptions {
  patch: PatchStatusFn;
  log: Logger;
  /** Retries of transient failures. */
  backoff: BackoffOptions;
  /** The first write of an object waits uniform(0, jitterMs), so N agents mostly write once. Default 2000. */
  jitterMs?: number;
  /** Limit on one PATCH. Default 30 s. */
  requestTimeoutMs?: number;
  now?: () => number;
  random?: () => number;
}

interface Entry {
  key: string;
  obj: PolicyApiObject;
  parsed: ParsedResource;
  timer?: NodeJS.Timeout;
  inFlight?: Promise<void>;
  /** observe() ran during the flight: look again afterwards. */
  again: boolean;
  /** Set after a transient failure; the next attempt waits its delay instead of the jitter. */
  retry?: Backoff;
  /** A non-transient failure for this resourceVersion: wait for the next change or resync. */
  failedRv?: string;
}

export interface StatusWriterStats {
  writes: number;
  errors: number;
  /** 409s: another writer (or a change) got there first; the watch brings the newer object. */
  conflicts: number;
}

/** HTTP statuses worth retrying on a timer; anything else waits for the object's next change or a relist. */
function transient(code: number | undefined): boolean {
  return code === undefined || code === 429 || code >= 500;
}

export class StatusWriter {
  readonly #o: StatusWriterOptions;
  readonly #log: Logger;
  readonly #warn: WarnLimiter;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #jitterMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #aborts = new Set<AbortController>();
  readonly #stats: StatusWriterStats = { writes: 0, errors: 0, conflicts: 0 };
  #stopped = false;

  constructor(o: StatusWriterOptions) {
    this.#o = o;
    this.#log = o.log;
    this.#now = o.now ?? Date.now;
    this.#random = o.random ?? Math.random;
    this.#jitterMs = o.jitterMs ?? 2000;
    this.#warn = new WarnLimiter(o.log, 60_000, this.#now);
  }

  /** The latest state of an object and what it parsed to: writes its condition if it differs. */
  observe(key: string, obj: PolicyApiObject, parsed: ParsedResource): void {
    if (this.#stopped) return;
    let e = this.#entries.get(key);
    if (!e) {
      e = { key, obj, parsed, again: false };
      this.#entries.set(key, e);
    } else {
      if (obj.metadata?.resourceVersion !== e.obj.metadata?.resourceVersion) e.failedRv = undefined;
      e.obj = obj;
      e.parsed = parsed;
    }
    this.#consider(e);
  }

  forget(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    clearTimeout(e.timer);
    this.#entries.delete(key);
  }

  /** Looks at every object again, failed ones included (after a relist). */
  resync(): void {
    for (const e of this.#entries.values()) {
      e.failedRv = undefined;
      this.#consider(e);
    }
  }

  stats(): StatusWriterStats {
    return { ...this.#stats };
  }

  /** Cancels pending writes and aborts those in flight; resolves once none is left. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const flights: Promise<void>[] = [];
    for (const e of this.#entries.values()) {
      clearTimeout(e.timer);
      if (e.inFlight) flights.push(e.inFlight);
    }
    for (const ac of this.#aborts) ac.abort();
    await Promise.all(flights);
  }

  #consider(e: Entry): void {
    if (this.#stopped || e.timer) return; // a pending timer reads the latest state when it fires
    if (e.inFlight) {
      e.again = true;
      return;
    }
    if (e.failedRv !== undefined && e.failedRv === e.obj.metadata?.resourceVersion) return;
    if (!this.#wanted(e)) {
      e.retry = undefined;
      return;
    }
    const delay = e.retry ? e.retry.next() : Math.floor(this.#random() * this.#jitterMs);
    e.timer = setTimeout(() => {
      e.timer = undefined;
      this.#write(e);
    }, delay);
  }

  #wanted(e: Entry): StatusPatch | undefined {
    const md = e.obj.metadata;
    // Nothing to say about an object on its way out; nothing addressable without a name.
    if (!md?.name || !md.namespace || md.deletionTimestamp) return undefined;
    return statusPatch(e.obj, e.parsed, this.#now());
  }

  #write(e: Entry): void {
    if (this.#stopped || this.#entries.get(e.key) !== e) return;
    const body = this.#wanted(e);
    if (!body) {
      e.retry = undefined;
      return;
    }
    const { namespace, name } = e.obj.metadata as { namespace: string; name: string };
    const ac = new AbortController();
    this.#aborts.add(ac);
    const signal = AbortSignal.any([ac.signal, AbortSignal.timeout(this.#o.requestTimeoutMs ?? 30_000)]);
    const rv = body.metadata.resourceVersion;
    e.again = false;
    e.inFlight = (async () => {
      try {
        const stored = await this.#o.patch(namespace, name, body, signal);
        this.#stats.writes++;
        e.retry = undefined;
        this.#log.debug(
          { namespace, name, generation: body.status.observedGeneration, accepted: e.parsed.ok },
          'policy status written',
        );
        // The server's copy is the newest we know, unless the watch brought a newer one meanwhile:
        // without it, the next look would still see the old status and write again.
        if (!e.again && isRecord(stored) && isRecord(stored.metadata)) e.obj = stored as PolicyApiObject;
      } catch (err) {
        if (this.#stopped) return;
        this.#failed(e, namespace, name, rv, err);
      } finally {
        this.#aborts.delete(ac);
        e.inFlight = undefined;
      }
      if (this.#entries.get(e.key) === e && (e.again || e.retry)) {
        e.again = false;
        this.#consider(e);
      }
    })();
  }

  #failed(e: Entry, namespace: string, name: string, rv: string, err: unknown): void {
    const code = httpStatusOf(err);
    if (code === 409) {
      // Someone else wrote (or the object changed) since our copy: the watch brings the newer version.
      this.#stats.conflicts++;
      this.#log.debug({ namespace, name }, 'policy status write conflicted with a newer version; waiting for it');
      return;
    }
    if (code === 404 && this.#entries.get(e.key) !== e) return; // deleted meanwhile
    this.#stats.errors++;
    const msg = describeStatusWriteError(namespace, name, err);
    if (transient(code)) {
      e.retry ??= new Backoff(this.#o.backoff.initialMs, this.#o.backoff.maxMs, this.#random);
    } else {
      e.retry = undefined;
      e.failedRv = rv;
    }
    this.#warn.warn(
      `status-write:${code ?? 'network'}`,
      { namespace, name, err: msg, retry: transient(code) ? 'with backoff' : 'on the next change or relist' },
      'could not write an AcceptAuditPolicy status',
    );
  }
}

const WRITE_HINTS: Record<number, string> = {
  401: 'the API server rejected the credentials: check the ServiceAccount token (in-cluster) or the kubeconfig user',
  403: "RBAC: the agent's ServiceAccount needs patch on acceptauditpolicies/status (API group doorwatch.io)",
  404: 'the object is gone, or the installed CRD has no status subresource: apply helm/doorwatch/crds/acceptauditpolicies.doorwatch.io.yaml',
  422: 'the API server refused the status; the installed CRD may be older than this agent',
};

export function describeStatusWriteError(namespace: string, name: string, err: unknown): string {
  const op = `patch acceptauditpolicies/status ${namespace}/${name}`;
  const code = httpStatusOf(err);
  if (code === undefined) return describeApiError(op, err);
  const e = err as { body?: unknown; message?: unknown; statusCode?: unknown };
  const detail = statusMessage(e.body) ?? (typeof e.statusCode === 'number' ? String(e.message) : undefined);
  const hint = WRITE_HINTS[code];
  return `${op}: HTTP ${code}${detail ? ` ${detail}` : ''}${hint ? ` — ${hint}` : ''}`;
}
