import { Status } from 'nice-grpc';
import type { Logger } from '../log/logger.js';

/**
 * Every refusal the collector makes, visible: a counter per reason, and one
 * warn line per (peer address, reason) per interval, the next one saying how
 * many were suppressed. A refused client used to leave no trace at all (TLS
 * failures happen below grpc-js, and a rejected call only said "agent
 * disconnected"); an operator must be able to see an attack or a
 * misconfigured agent, without a hostile client flooding the log.
 *
 * The limiter's table is bounded (MAX_KEYS): a client cycling through source
 * addresses cannot grow memory, it only loses its per-address lines sooner.
 */

export const REFUSAL_REASONS = [
  'tls_unknown_ca',
  'tls_no_certificate',
  'tls_expired',
  'tls_handshake',
  'unauthenticated',
  'permission_denied',
  'invalid_argument',
  'resource_exhausted',
  'deadline_exceeded',
  'rate_limited',
  'too_many_connections',
  'too_many_streams',
  'auth_unavailable',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** The reason a gRPC status code counts as; undefined: not a refusal (OK, CANCELLED, UNAVAILABLE on shutdown…). */
export function reasonOfStatus(code: number): RefusalReason | undefined {
  switch (code) {
    case Status.UNAUTHENTICATED:
      return 'unauthenticated';
    case Status.PERMISSION_DENIED:
      return 'permission_denied';
    case Status.INVALID_ARGUMENT:
      return 'invalid_argument';
    case Status.RESOURCE_EXHAUSTED:
      return 'resource_exhausted';
    case Status.DEADLINE_EXCEEDED:
      return 'deadline_exceeded';
    default:
      return undefined;
  }
}

/**
 * The address of a peer without its port: grpc-js's getPeer() is
 * `${remoteAddress}:${remotePort}` (IPv6 unbracketed, "::ffff:1.2.3.4" for
 * IPv4 on a dual-stack socket); an IPv4-mapped address is folded to IPv4 so
 * limits and log keys do not depend on how the socket was bound.
 */
export function peerAddress(peer: string): string {
  let p = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(p);
  if (bracket) p = bracket[1]!;
  else if (/:\d+$/.test(p)) p = p.slice(0, p.lastIndexOf(':'));
  return p.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
}

const MAX_KEYS = 10_000;

export interface RefusalOptions {
  log: Logger;
  /** One line per (address, reason) per interval; default 60 s. */
  intervalMs?: number;
  now?: () => number;
}

export class Refusals {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #counts = new Map<RefusalReason, number>(REFUSAL_REASONS.map((r) => [r, 0]));
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(o: RefusalOptions) {
    this.#log = o.log;
    this.#intervalMs = o.intervalMs ?? 60_000;
    this.#now = o.now ?? Date.now;
  }

  /** Count the refusal and log it unless this (address, reason) was logged within the interval. */
  record(peer: string, reason: RefusalReason, detail: string, fields: Record<string, unknown> = {}): void {
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + 1);
    const address = peerAddress(peer);
    const key = `${address}\u0000${reason}`;
    const now = this.#now();
    const s = this.#last.get(key);
    if (s && now - s.at < this.#intervalMs) {
      s.suppressed++;
      return;
    }
    if (!s && this.#last.size >= MAX_KEYS) this.#prune(now);
    this.#last.delete(key); // re-insert: the map's order stays oldest first
    this.#last.set(key, { at: now, suppressed: 0 });
    const extra = s?.suppressed ? { suppressed: s.suppressed } : {};
    this.#log.warn({ peer, reason, detail, ...fields, ...extra }, `refused ${address}: ${reason}: ${detail}`);
  }

  #prune(now: number): void {
    for (const [k, v] of this.#last) {
      if (now - v.at >= this.#intervalMs || this.#last.size >= MAX_KEYS) this.#last.delete(k);
      else break;
    }
  }

  /** Refusals by reason since start (every reason present, zeros included). */
  counts(): Record<RefusalReason, number> {
    return Object.fromEntries(this.#counts) as Record<RefusalReason, number>;
  }
}
