import { BlockList, isIP } from 'node:net';
import { ServerError, Status } from 'nice-grpc';
import type { LossRecord, SubscribeFilter, SubscribeResponse } from '../gen/doorwatch/v1/collector.js';
import { type AcceptEvent, type AddressAttribution, AttributionStatus } from '../gen/doorwatch/v1/event.js';
import { Notifier } from './async.js';
import { Deque } from './deque.js';
import { emptyCounters, lossRecord } from './streams.js';

/**
 * Live subscriptions (`doorwatch tail`, pull-style SIEMs). Best effort by
 * design: each subscriber has a bounded buffer; when it reads too slowly the
 * oldest items are dropped and the next thing it receives is a LossRecord
 * "subscriber too slow" whose counters.queueDrops is how many it missed. Loss
 * records are never filtered and never dropped. A subscriber sees events
 * accepted after it connected, nothing older.
 *
 * What a subscriber may see is decided before it is served (auth/authorizer.ts)
 * and enforced here, under its own filter: a subscriber scoped to namespaces
 * gets only events of pods in them (never host events, whose socket may be any
 * pod's), and loss records without the agent identity or seq range, which
 * would describe other nodes' streams: it learns that and how much was lost,
 * not whose.
 */

export class FilterError extends Error {}

export type EventMatcher = (ev: AcceptEvent) => boolean;

/** Empty lists match everything; within a list any entry matches; across lists all must match. */
export function compileSubscribeFilter(f: SubscribeFilter | undefined): EventMatcher {
  const namespaces = new Set(f?.namespaces ?? []);
  const pods = new Set(f?.pods ?? []);
  const nodes = new Set(f?.nodes ?? []);
  const ports = new Set(f?.ports ?? []);
  for (const [i, p] of (f?.ports ?? []).entries()) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new FilterError(`filter.ports[${i}]: ${p} is not a port (0-65535)`);
  }
  let peers: BlockList | undefined;
  for (const [i, spec] of (f?.peers ?? []).entries()) {
    peers ??= new BlockList();
    addPeer(peers, spec, `filter.peers[${i}]`);
  }
  const peerNamespaces = new Set(f?.peerNamespaces ?? []);
  const peerWorkloads = new Set(f?.peerWorkloads ?? []);
  const tests: EventMatcher[] = [];
  if (namespaces.size) tests.push((ev) => !!ev.pod && namespaces.has(ev.pod.namespace));
  if (peerNamespaces.size)
    tests.push((ev) => !!ev.peerAttribution?.namespace && peerNamespaces.has(ev.peerAttribution.namespace));
  if (peerWorkloads.size) {
    // "web" or "Deployment/web".
    tests.push((ev) => {
      const w = ev.peerAttribution?.workload;
      return !!w && (peerWorkloads.has(w.name) || peerWorkloads.has(`${w.kind}/${w.name}`));
    });
  }
  if (pods.size) tests.push((ev) => !!ev.pod && pods.has(ev.pod.name));
  if (nodes.size) tests.push((ev) => nodes.has(ev.nodeName));
  if (ports.size) {
    tests.push((ev) => {
      const s = ev.socket;
      return !!s && ((!!s.local && ports.has(s.local.port)) || (!!s.peer && ports.has(s.peer.port)));
    });
  }
  if (peers) {
    const list = peers;
    tests.push((ev) => peerMatches(list, ev.socket?.peer?.ip ?? ''));
  }
  return (ev) => tests.every((t) => t(ev));
}

function addPeer(list: BlockList, spec: string, at: string): void {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(spec.trim());
  const ip = m?.[1] ?? '';
  const family = isIP(ip);
  if (!m || family === 0) throw new FilterError(`${at}: "${spec}" is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8)`);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (m[2] === undefined) {
    list.addAddress(ip, type);
    return;
  }
  const prefix = Number(m[2]);
  if (prefix > (family === 4 ? 32 : 128)) throw new FilterError(`${at}: prefix /${prefix} is too long for "${ip}"`);
  list.addSubnet(ip, prefix, type);
}

function peerMatches(list: BlockList, ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return list.check(ip, 'ipv4');
  if (family !== 6) return false;
  if (list.check(ip, 'ipv6')) return true;
  // An IPv4-mapped peer ("::ffff:10.1.2.3") matches IPv4 entries too.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return !!mapped && list.check(mapped[1]!, 'ipv4');
}

/** What a subscriber may see (auth/authorizer.ts's SubscriberScope, without the who). */
export type Visibility = { all: true } | { all: false; namespaces: ReadonlySet<string> };

/** The filter, narrowed to what the subscriber may see. */
function scoped(matches: EventMatcher, v: Visibility): EventMatcher {
  if (v.all) return matches;
  const allowed = v.namespaces;
  return (ev) => !!ev.pod && allowed.has(ev.pod.namespace) && matches(ev);
}

/**
 * An event as a namespace-scoped subscriber may know it: a peer or local attribution naming a
 * pod or Service in a namespace it may not watch says only its kind. One frozen stand-in per kind;
 * a copy of the event only when something is hidden.
 */
const hiddenAttribution = new Map<number, AddressAttribution>();
function hidden(a: AddressAttribution): AddressAttribution {
  let h = hiddenAttribution.get(a.kind);
  if (!h) {
    h = Object.freeze({
      status: AttributionStatus.ATTRIBUTION_STATUS_UNKNOWN,
      reason: 'in a namespace this subscriber may not watch',
      kind: a.kind,
      namespace: '',
      name: '',
      uid: '',
      workload: undefined,
      labels: {},
      nodeName: '',
    });
    hiddenAttribution.set(a.kind, h);
  }
  return h;
}

export function redactEvent(ev: AcceptEvent, allowed: ReadonlySet<string>): AcceptEvent {
  const p = ev.peerAttribution;
  const l = ev.localAttribution;
  const hidePeer = !!p?.namespace && !allowed.has(p.namespace);
  const hideLocal = !!l?.namespace && !allowed.has(l.namespace);
  if (!hidePeer && !hideLocal) return ev;
  return { ...ev, peerAttribution: hidePeer ? hidden(p!) : p, localAttribution: hideLocal ? hidden(l!) : l };
}

/** A loss record as a namespace-scoped subscriber may know it: reason, counts and time. */
export function redactLoss(l: LossRecord): LossRecord {
  return { ...l, agent: undefined, fromSeq: 0n, toSeq: 0n };
}

class Subscriber {
  readonly buffer = new Deque<SubscribeResponse>();
  readonly ready = new Notifier();
  /** Events dropped since the last "subscriber too slow" record. */
  dropped = 0;
  /** Loss records pushed out of a full buffer: delivered anyway. */
  carried: LossRecord[] = [];
  closed = false;

  constructor(
    readonly matches: EventMatcher,
    private readonly maxBuffered: number,
    readonly seesAll: boolean,
    /** Namespace-scoped: what the subscriber may see of an event (redactEvent); matched after it. */
    readonly view?: (ev: AcceptEvent) => AcceptEvent,
  ) {}

  push(item: SubscribeResponse): void {
    this.buffer.push(item);
    while (this.buffer.length > this.maxBuffered) {
      const old = this.buffer.shift()!;
      if (old.loss) this.carried.push(old.loss);
      else this.dropped++;
    }
    this.ready.notify();
  }
}

export interface SubscriberHubStats {
  subscribers: number;
  /** Events dropped from slow subscribers' buffers, all subscribers together. */
  dropped: number;
}

export class SubscriberHub {
  private readonly subs = new Set<Subscriber>();
  private droppedTotal = 0;

  constructor(private readonly opts: { maxBuffered: number; maxSubscribers: number }) {}

  publishEvents(events: readonly AcceptEvent[]): void {
    if (!this.subs.size) return;
    for (const s of this.subs) {
      const view = s.view;
      if (view) {
        for (const ev of events) {
          const e = view(ev);
          if (s.matches(e)) s.push({ event: e });
        }
      } else for (const ev of events) if (s.matches(ev)) s.push({ event: ev });
    }
  }

  publishLoss(loss: LossRecord): void {
    const redacted = redactLoss(loss);
    for (const s of this.subs) s.push({ loss: s.seesAll ? loss : redacted });
  }

  /**
   * A subscription's stream. It ends when `signal` aborts (the client went
   * away) or the hub closes (the collector stops).
   */
  async *subscribe(
    filter: SubscribeFilter | undefined,
    signal: AbortSignal,
    visibility: Visibility = { all: true },
  ): AsyncGenerator<SubscribeResponse, void> {
    let matches: EventMatcher;
    try {
      matches = compileSubscribeFilter(filter);
    } catch (e) {
      if (e instanceof FilterError) throw new ServerError(Status.INVALID_ARGUMENT, e.message);
      throw e;
    }
    if (this.subs.size >= this.opts.maxSubscribers) {
      throw new ServerError(
        Status.RESOURCE_EXHAUSTED,
        `too many subscribers (${this.opts.maxSubscribers}); raise subscribers.max in the collector config`,
      );
    }
    const allowed = visibility.all ? undefined : visibility.namespaces;
    const sub = new Subscriber(
      scoped(matches, visibility),
      this.opts.maxBuffered,
      visibility.all,
      allowed && ((ev) => redactEvent(ev, allowed)),
    );
    this.subs.add(sub);
    try {
      while (!signal.aborted) {
        if (sub.carried.length) {
          yield { loss: sub.carried.shift()! };
          continue;
        }
        if (sub.dropped) {
          const n = sub.dropped;
          sub.dropped = 0;
          this.droppedTotal += n;
          yield { loss: lossRecord(undefined, 'subscriber too slow', undefined, { ...emptyCounters(), queueDrops: BigInt(n) }) };
          continue;
        }
        const item = sub.buffer.shift();
        if (item) {
          yield item;
          continue;
        }
        if (sub.closed) return;
        await sub.ready.wait(signal);
      }
    } finally {
      this.subs.delete(sub);
    }
  }

  /** End every subscription once its buffer is delivered. */
  close(): void {
    for (const s of this.subs) {
      s.closed = true;
      s.ready.notify();
    }
  }

  stats(): SubscriberHubStats {
    let pending = 0;
    for (const s of this.subs) pending += s.dropped;
    return { subscribers: this.subs.size, dropped: this.droppedTotal + pending };
  }
}
