import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import { Backoff } from '../retry/backoff.js';
import { describeApiError, httpStatusOf } from './api-error.js';
import type { BackoffOptions } from './types.js';

/**
 * A list+watch of one resource that never gives up: the reflector loop of
 * client-go, on top of client-node's `Watch` transport.
 *
 * Not client-node's `ListWatch`: in 1.4.0 it stops for good after a dropped
 * connection or a failed list (it only restarts after a 410 or a clean close),
 * never asks for bookmarks, has no client-side timeout (a half-open connection
 * hangs forever), and starts a watch that nobody will abort when stop() lands
 * during a list. Here, in one loop:
 * - relist only when there is no usable resourceVersion (first start, 410 Gone);
 *   every other restart resumes the watch from the last RV seen, bookmarks included;
 * - any failure waits a full-jitter backoff; a watch that lived `healthyAfterMs`
 *   or delivered an event resets it, so one blip after a long healthy stream
 *   reconnects within `initialMs`;
 * - a relist whose fresh RV is already expired backs off too, so a struggling
 *   apiserver is never hit by a relist storm (lists are its most expensive call);
 * - every watch asks the server to end it after 5–10 min (client-go's spread) and
 *   a watchdog aborts it if the server does not, so a dead connection cannot
 *   silently freeze the metadata.
 */

export interface InformerHandlers<T> {
  upsert(obj: T): void;
  /** `obj` is the final state when a watch DELETED carried it; undefined when a relist found the object gone. */
  remove(key: string, obj?: T): void;
}

export type WatchFn = (
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  callback: (phase: string, apiObj: unknown) => void,
  done: (err: unknown) => void,
) => Promise<AbortController>;

export interface ResilientInformerOptions<T extends KubernetesObject> {
  /** Plural resource name, for logs and errors ('pods'). */
  resource: string;
  /** Collection path of the watch ('/api/v1/pods'). */
  path: string;
  fieldSelector?: string;
  /** One list call; must honour `signal`. */
  list(signal: AbortSignal): Promise<KubernetesListObject<T>>;
  /** client-node's `Watch.prototype.watch`, bound. */
  watch: WatchFn;
  /** Identity in the diff after a relist (pods: uid, so a recreated `db-0` is a delete plus an add). */
  keyOf(obj: T): string;
  handlers: InformerHandlers<T>;
  log: Logger;
  backoff: BackoffOptions;
  random?: () => number;
  /** Server-side timeout asked for each watch; default uniform 300..600 s. */
  watchTimeoutSeconds?: () => number;
  /** Limit on a list, and on a watch getting its response headers. Default 60 s. */
  requestTimeoutMs?: number;
  /** Default backoff.maxMs. */
  healthyAfterMs?: number;
  /** How long past its own timeout the server may take to end a watch before it counts as dead. Default 60 s. */
  watchdogGraceMs?: number;
  /** The fix a 403 names; default the agent's (get/list/watch on pods and namespaces). */
  forbiddenHint?: string;
}

export interface InformerState {
  /** Listed successfully at least once. */
  listed: boolean;
  /** A watch stream is open now. */
  connected: boolean;
  restarts: number;
  /** The current failure; cleared once a watch is open again. */
  lastError?: string;
}

interface WatchOutcome {
  healthy: boolean;
  expired: boolean;
}

export class ResilientInformer<T extends KubernetesObject> {
  readonly #o: ResilientInformerOptions<T>;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #random: () => number;
  readonly #requestTimeoutMs: number;
  readonly #healthyAfterMs: number;
  readonly #watchdogGraceMs: number;
  /** undefined = must relist. */
  #rv: string | undefined;
  /** key -> resourceVersion of every object the handlers know, for the relist diff. */
  readonly #known = new Map<string, string>();
  #stopped = false;
  #loop: Promise<void> | undefined;
  #firstAttempt: { promise: Promise<void>; resolve: () => void };
  #firstAttemptDone = false;
  #listAbort: AbortController | undefined;
  #cancelWatch: (() => void) | undefined;
  #wake: (() => void) | undefined;
  #state: InformerState = { listed: false, connected: false, restarts: 0 };
  #failures = 0;
  #lastWarned: string | undefined;

  constructor(o: ResilientInformerOptions<T>) {
    this.#o = o;
    this.#log = o.log;
    this.#random = o.random ?? Math.random;
    this.#backoff = new Backoff(o.backoff.initialMs, o.backoff.maxMs, this.#random);
    this.#requestTimeoutMs = o.requestTimeoutMs ?? 60_000;
    this.#healthyAfterMs = o.healthyAfterMs ?? o.backoff.maxMs;
    this.#watchdogGraceMs = o.watchdogGraceMs ?? 60_000;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.#firstAttempt = { promise, resolve };
  }

  /** Starts the loop; resolves after the first list attempt, successful or not. Never rejects. */
  start(): Promise<void> {
    if (!this.#loop && !this.#stopped) this.#loop = this.#run();
    return this.#firstAttempt.promise;
  }

  /** Ends the loop and any request in flight; resolves once nothing is left running. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#listAbort?.abort();
    this.#cancelWatch?.();
    this.#wake?.();
    this.#markFirstAttemptDone();
    await this.#loop;
  }

  state(): InformerState {
    return { ...this.#state };
  }

  /** The resourceVersion the next watch resumes from (undefined: the next step is a list). */
  get resourceVersion(): string | undefined {
    return this.#rv;
  }

  async #run(): Promise<void> {
    let first = true;
    while (!this.#stopped) {
      if (!first) this.#state.restarts++;
      first = false;
      let delay = 0;
      let listedNow = false;
      try {
        if (this.#rv === undefined) {
          await this.#relist();
          listedNow = true;
        }
        this.#markFirstAttemptDone();
        if (this.#stopped) break;
        const w = await this.#watchOnce();
        if (w.healthy) this.#backoff.reset();
        if (w.expired) {
          this.#rv = undefined;
          this.#log.info({ resource: this.#o.resource }, 'watch resource version expired (410 Gone): relisting');
          // An RV handed out by the list just made and already expired: the server is struggling.
          delay = listedNow ? this.#backoff.next() : 0;
        } else {
          // A clean end: the server's watch timeout, or an apiserver shutting down gracefully.
          delay = w.healthy ? 0 : this.#backoff.next();
        }
      } catch (err) {
        if (this.#stopped) break;
        if (httpStatusOf((err as Error)?.cause ?? err) === 410) this.#rv = undefined;
        this.#fail(err);
        delay = this.#backoff.next();
      }
      this.#markFirstAttemptDone();
      if (this.#stopped) break;
      if (delay > 0) await this.#sleep(delay);
    }
    this.#state.connected = false;
  }

  #markFirstAttemptDone(): void {
    if (this.#firstAttemptDone) return;
    this.#firstAttemptDone = true;
    this.#firstAttempt.resolve();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  #fail(err: unknown): void {
    const msg = err instanceof InformerError ? err.message : describeApiError(`${this.#o.resource}`, err, this.#o.forbiddenHint);
    this.#failures++;
    this.#state.lastError = msg;
    this.#state.connected = false;
    // One warning per distinct failure; the retries of an outage go to debug.
    const fields = { resource: this.#o.resource, failures: this.#failures, err: msg };
    if (msg !== this.#lastWarned) {
      this.#lastWarned = msg;
      this.#log.warn(fields, 'Kubernetes list/watch failed; retrying with backoff');
    } else {
      this.#log.debug(fields, 'Kubernetes list/watch failed again');
    }
  }

  #connected(): void {
    this.#state.connected = true;
    if (this.#failures > 0) {
      this.#log.info({ resource: this.#o.resource, failures: this.#failures }, 'Kubernetes watch re-established');
    }
    this.#failures = 0;
    this.#lastWarned = undefined;
    this.#state.lastError = undefined;
  }

  #apply(fn: () => void): void {
    // A handler bug must cost one object, not the informer (and client-node's watch
    // would swallow the exception silently).
    try {
      fn();
    } catch (err) {
      this.#log.error({ resource: this.#o.resource, err: (err as Error)?.message ?? String(err) }, 'metadata handler failed');
    }
  }

  async #relist(): Promise<void> {
    const ac = new AbortController();
    this.#listAbort = ac;
    const timeout = AbortSignal.timeout(this.#requestTimeoutMs);
    let list: KubernetesListObject<T>;
    try {
      list = await this.#o.list(AbortSignal.any([ac.signal, timeout]));
    } catch (err) {
      if (timeout.aborted && !ac.signal.aborted) {
        throw new InformerError(`list ${this.#o.resource}: no answer within ${this.#requestTimeoutMs / 1000}s`);
      }
      throw new InformerError(describeApiError(`list ${this.#o.resource}`, err, this.#o.forbiddenHint), err);
    } finally {
      this.#listAbort = undefined;
    }
    if (this.#stopped) return;
    const items = list.items ?? [];
    const seen = new Set<string>();
    for (const item of items) seen.add(this.#o.keyOf(item));
    // Removals first: a namespace deleted and recreated under the same key must end up present.
    for (const key of [...this.#known.keys()]) {
      if (seen.has(key)) continue;
      this.#known.delete(key);
      this.#apply(() => this.#o.handlers.remove(key));
    }
    for (const item of items) {
      const key = this.#o.keyOf(item);
      const rv = item.metadata?.resourceVersion ?? '';
      if (rv !== '' && this.#known.get(key) === rv) continue;
      this.#known.set(key, rv);
      this.#apply(() => this.#o.handlers.upsert(item));
    }
    this.#rv = list.metadata?.resourceVersion ?? '';
    if (!this.#state.listed) this.#log.debug({ resource: this.#o.resource, items: items.length }, 'initial list done');
    this.#state.listed = true;
  }

  #watchOnce(): Promise<WatchOutcome> {
    const o = this.#o;
    const timeoutS = o.watchTimeoutSeconds?.() ?? Math.floor(300 + this.#random() * 300);
    const startedAt = performance.now();
    return new Promise<WatchOutcome>((resolve, reject) => {
      let settled = false;
      let events = 0;
      let expired = false;
      let streamError: Error | undefined;
      let controller: AbortController | undefined;

      const finish = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        clearTimeout(watchdog);
        this.#cancelWatch = undefined;
        this.#state.connected = false;
        controller?.abort();
        const healthy = events > 0 || performance.now() - startedAt >= this.#healthyAfterMs;
        if (streamError) reject(streamError);
        else if (err && !this.#stopped)
          reject(new InformerError(describeApiError(`watch ${o.resource}`, err, o.forbiddenHint), err));
        else resolve({ healthy, expired });
      };
      // Ends the watch from our side: whatever `done` reports after an abort is not a failure.
      const end = (why?: Error) => {
        streamError ??= why;
        finish(undefined);
      };
      this.#cancelWatch = () => end();

      const connectTimer = setTimeout(() => {
        if (!controller) end(new InformerError(`watch ${o.resource}: no response within ${this.#requestTimeoutMs / 1000}s`));
      }, this.#requestTimeoutMs);
      const watchdog = setTimeout(
        () => end(new InformerError(`watch ${o.resource}: still open past its ${timeoutS}s timeout; assuming a dead connection`)),
        timeoutS * 1000 + this.#watchdogGraceMs,
      );
      watchdog.unref();

      const onEvent = (type: string, raw: unknown) => {
        if (settled) return;
        const obj = raw as T;
        switch (type) {
          case 'ADDED':
          case 'MODIFIED': {
            events++;
            this.#known.set(o.keyOf(obj), obj.metadata?.resourceVersion ?? '');
            this.#apply(() => o.handlers.upsert(obj));
            break;
          }
          case 'DELETED': {
            events++;
            const key = o.keyOf(obj);
            this.#known.delete(key);
            this.#apply(() => o.handlers.remove(key, obj));
            break;
          }
          case 'BOOKMARK':
            // Nothing changed, but the RV moved on: resuming from it avoids a 410 after a quiet spell.
            events++;
            break;
          case 'ERROR': {
            const status = raw as { code?: number; message?: string; reason?: string };
            if (status?.code === 410) {
              expired = true;
              end();
            } else {
              end(
                new InformerError(describeApiError(`watch ${o.resource}`, { code: status?.code, body: status }, o.forbiddenHint)),
              );
            }
            return;
          }
          default:
            return;
        }
        const rv = obj.metadata?.resourceVersion;
        if (rv) this.#rv = rv;
      };

      const query: Record<string, string | number | boolean | undefined> = {
        resourceVersion: this.#rv,
        allowWatchBookmarks: true,
        timeoutSeconds: timeoutS,
        fieldSelector: o.fieldSelector,
      };
      let started: Promise<AbortController>;
      try {
        started = o.watch(o.path, query, onEvent, finish);
      } catch (err) {
        finish(err);
        return;
      }
      started.then(
        (c) => {
          controller = c;
          if (settled) {
            c.abort();
            return;
          }
          this.#connected();
        },
        (err) => finish(err),
      );
    });
  }
}

/** An error whose message is already the one line to show. */
class InformerError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'InformerError';
  }
}
