import { isIP } from 'node:net';
import { type AcceptEvent, AddressFamily, type AuditPolicyRef, EnrichmentStatus, EventKind } from '../gen/doorwatch/v1/event.js';
import type { DeclaredPortMeta } from '../kube/types.js';
import { listenerKey } from '../listeners/event.js';
import type { UndeclaredListenerAction } from '../policy/spec.js';
import { findingEvent } from './record.js';

/**
 * Rule `undeclared-listener`: a pod listening on a TCP port that none of its
 * containers (nor its native sidecars) declares in spec.containers[].ports.
 * Fed every listener record leaving the enricher (the inventory's observe()),
 * so it sees listen(2) as it happens, the snapshot at start, the periodic
 * re-sends and the closes.
 *
 * One finding per (pod uid, port, protocol) while a listener on it lives: the
 * re-sent inventory (every listeners.period) and SO_REUSEPORT siblings or the
 * IPv4 + IPv6 pair on the same port add nothing. Once every listener of that
 * key has closed, a new listen on it is a new finding. The state is the live
 * undeclared listeners only (bounded by maxTracked); an agent restart raises
 * the findings of its snapshot again.
 *
 * Not findings (docs/events.md "Findings"): loopback-only listeners (127.0.0.0/8,
 * ::1: not reachable from outside the pod, e.g. a sidecar's admin port), unix
 * sockets (no port to declare), host processes (no pod spec), pods whose
 * governing policy says `listeners.undeclared: off`.
 */

export const UNDECLARED_LISTENER_RULE = 'undeclared-listener';

/** What the governing policy says, or that it cannot be told yet (policies not loaded). */
export type Governing = { action: UndeclaredListenerAction; ref?: AuditPolicyRef | undefined } | 'not-ready';

export interface UndeclaredOptions {
  /** The pod's declared ports from the node's pod informer; undefined when the pod is not (or no longer) known. */
  declaredPorts(podUid: string): readonly DeclaredPortMeta[] | undefined;
  /** The policy governing the record's pod (src/policy/engine.ts precedence). */
  governing(ev: AcceptEvent): Governing;
  /** Findings raised outside observe() (records held while policies loaded). */
  emit(batch: AcceptEvent[]): void;
  /** Live undeclared (pod, port, protocol) keys remembered for deduplication. Default 10 000. */
  maxTracked?: number;
  /** Records held while policies are not loaded yet. Default 4 096. */
  maxHeld?: number;
  /** How often held records are judged again. Default 1 s. */
  retryMs?: number;
}

/** Why a listener record raised no finding; each counted (doorwatch_findings_skipped_total). */
export type SkipReason =
  | 'declared'
  | 'loopback'
  | 'policy_off'
  | 'duplicate'
  | 'no_pod'
  | 'pod_unknown'
  | 'not_tcp'
  | 'held_overflow';

export interface UndeclaredStats {
  findings: number;
  skipped: Record<SkipReason, number>;
  /** Undeclared (pod, port, protocol) keys with a live listener now. */
  tracked: number;
  /** Records waiting for the policies to load. */
  held: number;
  /** Findings raised while the dedup table was full: they may be raised again at the next re-send. */
  untracked: number;
}

const IPPROTO_TCP = 6;
const IPPROTO_SCTP = 132;

/** Loopback-only: 127.0.0.0/8, ::1, and the IPv4-mapped loopback. A wildcard (0.0.0.0, ::) is reachable. */
export function isLoopbackOnly(ip: string): boolean {
  const v = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  if (isIP(v) === 4) return v.startsWith('127.');
  return v === '::1';
}

/** The protocol as Kubernetes names it in ports[].protocol; undefined when it has no port (unix) or is not judged. */
function k8sProtocol(ev: AcceptEvent): string | undefined {
  const s = ev.socket;
  if (s?.family !== AddressFamily.ADDRESS_FAMILY_INET && s?.family !== AddressFamily.ADDRESS_FAMILY_INET6) return undefined;
  if (s.protocol === IPPROTO_TCP) return 'TCP';
  if (s.protocol === IPPROTO_SCTP) return 'SCTP';
  return undefined;
}

/**
 * Whether `port`/`protocol` is declared. A pod with its own network namespace
 * listens on containerPorts (a hostPort is the node's side of the mapping); a
 * hostNetwork pod listens on the node, where containerPort and hostPort are the
 * same port (the API requires it) and either counts.
 */
export function isDeclared(declared: readonly DeclaredPortMeta[], port: number, protocol: string, hostNetwork: boolean): boolean {
  return declared.some((d) => d.protocol === protocol && (d.containerPort === port || (hostNetwork && d.hostPort === port)));
}

export class UndeclaredListenerDetector {
  readonly #o: UndeclaredOptions;
  /** finding key -> the listener keys (listenerKey) of its live listeners. */
  readonly #live = new Map<string, Set<string>>();
  /** listener key -> finding key. */
  readonly #byListener = new Map<string, string>();
  /** listener key -> a record waiting for the policies. */
  readonly #held = new Map<string, AcceptEvent>();
  readonly #stats = {
    findings: 0,
    skipped: {
      declared: 0,
      loopback: 0,
      policy_off: 0,
      duplicate: 0,
      no_pod: 0,
      pod_unknown: 0,
      not_tcp: 0,
      held_overflow: 0,
    } as Record<SkipReason, number>,
    untracked: 0,
  };
  #timer: NodeJS.Timeout | undefined;

  constructor(o: UndeclaredOptions) {
    this.#o = o;
  }

  /** Judge held records every retryMs (only while some are held it does anything). */
  start(): void {
    this.#timer = setInterval(() => this.retry(), this.#o.retryMs ?? 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** A listener record leaving the inventory; returns the findings it raises (none or one). */
  observe(ev: AcceptEvent): AcceptEvent[] {
    if (ev.kind === EventKind.EVENT_KIND_LISTENER_CLOSED) {
      this.#closed(listenerKey(ev));
      return [];
    }
    if (ev.kind !== EventKind.EVENT_KIND_LISTEN && ev.kind !== EventKind.EVENT_KIND_LISTENER) return [];
    const f = this.#judge(ev);
    return f ? [f] : [];
  }

  /** Judge the held records again (the policies may have loaded). */
  retry(): void {
    if (this.#held.size === 0) return;
    const out: AcceptEvent[] = [];
    // A copy: a record still undecided is held again, and a Map visits entries added while iterating.
    const held = [...this.#held];
    this.#held.clear();
    for (const [, ev] of held) {
      const f = this.#judge(ev);
      if (f) out.push(f);
    }
    if (out.length) this.#o.emit(out);
  }

  stats(): UndeclaredStats {
    return {
      findings: this.#stats.findings,
      skipped: { ...this.#stats.skipped },
      tracked: this.#live.size,
      held: this.#held.size,
      untracked: this.#stats.untracked,
    };
  }

  #skip(reason: SkipReason): undefined {
    this.#stats.skipped[reason]++;
    return undefined;
  }

  #closed(lk: string): void {
    this.#held.delete(lk);
    const fk = this.#byListener.get(lk);
    if (fk === undefined) return;
    this.#byListener.delete(lk);
    const set = this.#live.get(fk);
    set?.delete(lk);
    if (set && set.size === 0) this.#live.delete(fk);
  }

  #judge(ev: AcceptEvent): AcceptEvent | undefined {
    const protocol = k8sProtocol(ev);
    // Unix sockets have no port to declare; UDP is not in the inventory.
    if (!protocol) return this.#skip('not_tcp');
    const pod = ev.pod;
    // A host process has no pod spec; a pod not attributed (yet) is judged at the next re-send.
    if (!pod?.uid)
      return this.#skip(ev.enrichment?.status === EnrichmentStatus.ENRICHMENT_STATUS_HOST ? 'no_pod' : 'pod_unknown');
    const local = ev.socket?.local;
    const port = local?.port ?? 0;
    if (isLoopbackOnly(local?.ip ?? '')) return this.#skip('loopback');
    const lk = listenerKey(ev);
    const fk = `${pod.uid}/${protocol}/${port}`;
    const live = this.#live.get(fk);
    if (live) {
      live.add(lk);
      this.#byListener.set(lk, fk);
      return this.#skip('duplicate');
    }
    const declared = this.#o.declaredPorts(pod.uid);
    if (!declared) return this.#skip('pod_unknown');
    if (isDeclared(declared, port, protocol, pod.hostNetwork)) return this.#skip('declared');
    const g = this.#o.governing(ev);
    if (g === 'not-ready') {
      if (this.#held.size >= (this.#o.maxHeld ?? 4096) && !this.#held.has(lk)) return this.#skip('held_overflow');
      this.#held.set(lk, ev);
      return undefined;
    }
    if (g.action === 'off') return this.#skip('policy_off');
    if (this.#live.size < (this.#o.maxTracked ?? 10_000)) {
      this.#live.set(fk, new Set([lk]));
      this.#byListener.set(lk, fk);
    } else {
      // Raised anyway (a finding is never dropped to save memory); it may be raised again at the next re-send.
      this.#stats.untracked++;
    }
    this.#stats.findings++;
    return findingEvent(ev, {
      ruleId: UNDECLARED_LISTENER_RULE,
      uid: `${UNDECLARED_LISTENER_RULE}/${fk}`,
      port,
      protocol,
      declared,
      hostNetwork: pod.hostNetwork,
      policy: g.ref,
    });
  }
}
