import { createHash } from 'node:crypto';
import { describeApiError, httpStatusOf } from '../../kube/api-error.js';
import type { Logger } from '../../log/logger.js';
import { Backoff } from '../../retry/backoff.js';
import type { Clock } from '../async.js';
import type { KubeAuthApi, ReviewedUser } from './kube-api.js';

/**
 * Bearer tokens -> users, by TokenReview, cached.
 *
 * - A positive answer is reused until the token's own `exp` (read from the
 *   JWT payload, unverified: only to bound the cache, the API decided
 *   validity) and at most `cacheMaxMs`; a refusal for NEGATIVE_TTL_MS, so a
 *   client retrying a bad token cannot turn into an API storm.
 * - The API unreachable or failing (network, 5xx, 429, our own RBAC): the
 *   caller waits and we retry with backoff until its signal aborts; streams
 *   that are already authenticated are not affected (nothing re-checks
 *   them). Logged at warn at most every 10 s, counted in `apiErrors`, and
 *   `waiting` says how many calls are held.
 * - Keys are SHA-256 of the token: the cache never holds a usable secret.
 */

const NEGATIVE_TTL_MS = 10_000;
const MAX_ENTRIES = 10_000;

export type Authentication = { ok: true; user: ReviewedUser; audiences: string[] | undefined } | { ok: false; error: string };

interface Entry {
  result: Authentication;
  until: number;
}

export interface TokenAuthenticatorOptions {
  api: KubeAuthApi;
  clock: Clock;
  log: Logger;
  cacheMaxMs: number;
  /** Wall clock (ms since epoch) for comparing with a JWT's exp. */
  wallNow?: () => number;
  backoff?: { initialMs: number; maxMs: number };
}

export interface TokenAuthenticatorStats {
  reviews: number;
  cacheHits: number;
  apiErrors: number;
  waiting: number;
}

/** The `exp` claim (ms since epoch) of a JWT, if it has one; nothing is verified. */
export function jwtExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** The API's failure in one line; 401/403 are the collector's own credentials or RBAC, not the agent's. */
function describeReviewError(e: unknown): string {
  const status = httpStatusOf(e);
  if (status === 401 || status === 403) {
    return `TokenReview: HTTP ${status} — the collector's own ServiceAccount needs create on tokenreviews.authentication.k8s.io (the chart's collector-rbac.yaml)`;
  }
  return describeApiError('TokenReview', e);
}

export class TokenAuthenticator {
  readonly #o: TokenAuthenticatorOptions;
  readonly #cache = new Map<string, Entry>();
  readonly #wallNow: () => number;
  #lastWarn = Number.NEGATIVE_INFINITY;
  readonly stats: TokenAuthenticatorStats = { reviews: 0, cacheHits: 0, apiErrors: 0, waiting: 0 };

  constructor(o: TokenAuthenticatorOptions) {
    this.#o = o;
    this.#wallNow = o.wallNow ?? Date.now;
  }

  /** Resolves with the answer; waits (retrying) while the API cannot answer; undefined when `signal` aborted first. */
  async authenticate(token: string, audiences: string[], signal: AbortSignal): Promise<Authentication | undefined> {
    const key = createHash('sha256').update(audiences.join('\n')).update('\0').update(token).digest('base64');
    const now = this.#o.clock.now();
    const hit = this.#cache.get(key);
    if (hit && hit.until > now) {
      this.stats.cacheHits++;
      return hit.result;
    }
    const backoff = new Backoff(this.#o.backoff?.initialMs ?? 200, this.#o.backoff?.maxMs ?? 5_000);
    this.stats.waiting++;
    try {
      while (!signal.aborted) {
        try {
          this.stats.reviews++;
          const r = await this.#o.api.tokenReview(token, audiences, signal);
          const result: Authentication = r.authenticated
            ? { ok: true, user: r.user, audiences: r.audiences }
            : { ok: false, error: r.error };
          this.#store(key, result, token);
          return result;
        } catch (e) {
          if (signal.aborted) break;
          this.stats.apiErrors++;
          const delay = backoff.next();
          const t = this.#o.clock.now();
          if (t - this.#lastWarn >= 10_000) {
            this.#lastWarn = t;
            this.#o.log.warn(
              { err: describeReviewError(e), waiting: this.stats.waiting, apiErrors: this.stats.apiErrors },
              'cannot authenticate new streams: the Kubernetes API did not answer; they wait and retry (open streams continue)',
            );
          }
          await this.#o.clock.sleep(delay, signal);
        }
      }
      return undefined;
    } finally {
      this.stats.waiting--;
    }
  }

  #store(key: string, result: Authentication, token: string): void {
    const now = this.#o.clock.now();
    let ttl = result.ok ? this.#o.cacheMaxMs : NEGATIVE_TTL_MS;
    const exp = jwtExpiry(token);
    if (result.ok && exp !== undefined) ttl = Math.min(ttl, exp - this.#wallNow());
    if (ttl <= 0) return;
    if (this.#cache.size >= MAX_ENTRIES) {
      for (const [k, v] of this.#cache) {
        if (v.until <= now || this.#cache.size >= MAX_ENTRIES) this.#cache.delete(k);
        else break;
      }
    }
    this.#cache.set(key, { result, until: now + ttl });
  }
}
