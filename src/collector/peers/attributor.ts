import type { AcceptEvent, AddressAttribution } from '../../gen/doorwatch/v1/event.js';
import { AttributionStatus, OwnerKind } from '../../gen/doorwatch/v1/event.js';
import { ipTo16 } from '../../policy/cidr.js';
import { AddressClass, classifyV4, classifyV6, isPrivateV4, isPrivateV6, v4Key } from './address.js';
import { type PeerIndex, Side, TOO_OLD } from './index-store.js';
import type { RangeSet } from './ranges.js';

/**
 * Every event's peer and local attribution, at the collector (publish.ts
 * calls attach() once per accepted event). Never blank: an address no
 * object holds gets a status and a reason. Every answer is a frozen object
 * shared by all the events it describes (an owner's, or one of the constants
 * below): per event, two lookups and two references, nothing allocated.
 */

function status(s: AttributionStatus, reason = ''): AddressAttribution {
  return Object.freeze({
    status: s,
    reason,
    kind: OwnerKind.OWNER_KIND_UNSPECIFIED,
    namespace: '',
    name: '',
    uid: '',
    workload: undefined,
    labels: Object.freeze({}) as { [key: string]: string },
    nodeName: '',
  });
}

export const NO_ADDRESS = status(AttributionStatus.ATTRIBUTION_STATUS_NO_ADDRESS);
export const LOOPBACK = status(AttributionStatus.ATTRIBUTION_STATUS_LOOPBACK);
export const LINK_LOCAL = status(AttributionStatus.ATTRIBUTION_STATUS_LINK_LOCAL);
export const EXTERNAL = status(AttributionStatus.ATTRIBUTION_STATUS_EXTERNAL);
export const NOT_SYNCED = status(AttributionStatus.ATTRIBUTION_STATUS_UNKNOWN, 'peer index not synced yet');
export const NOT_FOUND = status(AttributionStatus.ATTRIBUTION_STATUS_UNKNOWN, 'not found');

export function disabled(why: string): AddressAttribution {
  return status(AttributionStatus.ATTRIBUTION_STATUS_UNKNOWN, why);
}

/** What the attributor reads: the index, whether its first lists are in, and the cluster's ranges. */
export interface PeerView {
  index: PeerIndex;
  synced(): boolean;
  ranges: RangeSet;
  historyMs: number;
}

/** Status names as /metrics labels them (the native enum's suffix, lowercase). */
export const STATUS_LABELS = ['unspecified', 'resolved', 'external', 'loopback', 'link_local', 'unknown', 'no_address'] as const;

export class PeerAttributor {
  /** Peer attributions made, by status (AttributionStatus value): one increment per event. */
  readonly peerCounts = new Float64Array(STATUS_LABELS.length);
  readonly #view: PeerView | undefined;
  readonly #disabled: AddressAttribution;
  readonly #tooOld: AddressAttribution;
  readonly #now: () => number;

  /** `view` undefined: attribution is off, and `disabledReason` says why on every event. */
  constructor(view: PeerView | undefined, disabledReason = 'peer attribution disabled', now: () => number = Date.now) {
    this.#view = view;
    this.#disabled = disabled(disabledReason);
    const min = Math.round((view?.historyMs ?? 0) / 60_000);
    this.#tooOld = status(
      AttributionStatus.ATTRIBUTION_STATUS_UNKNOWN,
      `older than the address history (${min >= 1 ? `${min}m` : `${Math.round((view?.historyMs ?? 0) / 1000)}s`})`,
    );
    this.#now = now;
  }

  attach(ev: AcceptEvent): void {
    const sock = ev.socket;
    // The event's own time: who held the address THEN (ms; the agent's wall clock).
    const t = ev.timeUnixNano === 0n ? this.#now() : Number(ev.timeUnixNano) / 1e6;
    const peer = this.resolve(sock?.peer?.ip ?? '', t, Side.Peer);
    ev.peerAttribution = peer;
    this.peerCounts[peer.status]!++;
    ev.localAttribution = this.resolve(sock?.local?.ip ?? '', t, Side.Local);
  }

  resolve(ip: string, atMs: number, side: Side): AddressAttribution {
    if (ip === '') return NO_ADDRESS;
    const k = v4Key(ip);
    const cls = k >= 0 ? classifyV4(k) : classifyV6(ip);
    if (cls === AddressClass.Loopback) return LOOPBACK;
    if (cls === AddressClass.LinkLocal) return LINK_LOCAL;
    if (cls === AddressClass.Unspecified) return NO_ADDRESS;
    const v = this.#view;
    if (!v) return this.#disabled;
    const hit = k >= 0 ? v.index.lookupV4(k, atMs, side) : v.index.lookupV6(ip, atMs, side);
    if (hit === TOO_OLD) return this.#tooOld;
    if (hit !== undefined) return hit;
    if (!v.synced()) return NOT_SYNCED;
    // Inside the cluster's ranges (or, when none are known, a private address): a cluster object the
    // index does not have. Outside: not a cluster address.
    if (k >= 0) {
      if (v.ranges.size > 0 ? v.ranges.hasV4(k) : isPrivateV4(k)) return NOT_FOUND;
      return EXTERNAL;
    }
    if (v.ranges.size > 0) {
      const b = ipTo16(ip);
      return b && v.ranges.hasV6(b) ? NOT_FOUND : EXTERNAL;
    }
    return isPrivateV6(ip) ? NOT_FOUND : EXTERNAL;
  }
}
