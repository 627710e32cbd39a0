import { type AddressAttribution, OwnerKind } from '../../gen/doorwatch/v1/event.js';
import { AddressClass, canonicalV6, classifyV4, classifyV6, v4Key } from './address.js';

/**
 * Address -> the cluster object that held it, and when: the collector's peer
 * index. Time-correct under IP reuse: each address keeps the list of its
 * holdings [from, to) (newest first), so an event is attributed to whoever
 * held the address at the event's time, for `historyMs` after a holding ended.
 *
 * Built for a cluster of 5 000 nodes and 150 000 pods (bench/peer-index.ts):
 * - IPv4 keys are uint32 in an open-addressing table (typed arrays, linear
 *   probing, backward-shift deletion): no string, no Map entry, no boxed
 *   number per address; IPv6 keys are RFC 5952 text in a Map (fewer, and the
 *   agent writes that form already);
 * - holdings are rows of typed arrays (from, to, next, key, kind) plus one
 *   reference to their owner's record; an owner (pod, Service, node) is one
 *   small record pointing at its frozen AddressAttribution, which every event
 *   naming it shares (labels, workloads and strings interned by objects.ts);
 * - lookups parse the address text without allocating and walk a chain that
 *   is one holding long almost always. Expiry is a FIFO of ended holdings
 *   (they end in clock order), trimmed on updates and by maintain(), and
 *   bounded in count as well as in time.
 *
 * Holding times are the collector's clock when the API told it: a pod's IP
 * is held from when its status named it until its deletion (or its phase
 * Succeeded/Failed, when the IP is released though the object stays) reached
 * the collector. An event between two holders (the address free, or the next
 * holder's status not seen yet) goes to the next holder: whoever used the
 * address next is the only one who could. Before the first holding the index
 * knows, the first holder answers, unless the address's earlier history was
 * evicted or the key appeared after the initial list and the event is older
 * than `historyMs`: then the answer is "older than the address history".
 */

export interface PeerIndexOptions {
  /** How long an ended holding stays answerable. Default 5 min. */
  historyMs?: number;
  /** Most ended holdings kept (the oldest go first, counted). Default 200 000. */
  maxEndedHoldings?: number;
  now?: () => number;
}

export const DEFAULT_HISTORY_MS = 5 * 60_000;
export const DEFAULT_MAX_ENDED = 200_000;

/** Which end of the connection an address is: it decides between two objects holding one address at once. */
export enum Side {
  Peer = 0,
  Local = 1,
}

// Two objects may hold one address at once (a Service's externalIP set to a node's address, a LoadBalancer
// IP that is also a node's ExternalIP). As a peer, an address is whoever can originate traffic: a pod,
// else the node, then a Service. As the local end it is what a client dialled: a Service first.
const RANK: readonly (readonly number[])[] = [
  /* peer  */ [0, 3, 1, 2],
  /* local */ [0, 2, 3, 1],
];

/** The lookup's answer when the event predates what the index remembers of that address. */
export const TOO_OLD: unique symbol = Symbol('older than the address history');
export type LookupResult = AddressAttribution | typeof TOO_OLD | undefined;

interface OwnerRecord {
  /** The owners map's key (the uid or name string the attribution holds too). */
  key: string;
  attr: AddressAttribution;
  /** First of its open holdings (chained through hSib), -1 when none. */
  first: number;
}

/** An IPv6 address's entry (IPv4 ones live in the typed table). */
interface V6Entry {
  head: number;
  floor: number;
}

export interface PeerIndexStats {
  /** Distinct addresses with at least one holding. */
  addresses: number;
  /** Holdings open now. */
  current: number;
  /** Ended holdings kept for late events. */
  ended: number;
  pods: number;
  services: number;
  nodes: number;
  /** Ended holdings dropped before historyMs because maxEndedHoldings was reached. */
  evictedEarly: number;
}

const NONE = -1;
// A holding row in #h (Float64Array, one 32-byte row: what a lookup reads is one cache line).
const FROM = 0;
const TO = 1;
const NEXT = 2;
const KIND = 3;
const ROW = 4;
const HASH = 0x9e3779b1;
// An IPv4 table slot.
const TS = 4;
const T_HEAD = 1;
const T_FLOOR = 2;
const T_SINGLE = 3;
const NO_FLOOR = -2147483648;

function grow<T extends Int32Array | Float64Array | Uint32Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

export class PeerIndex {
  readonly #historyMs: number;
  readonly #maxEnded: number;
  readonly #now: () => number;

  // IPv4 table, linear probing. A slot is 4 int32 (16 bytes: a lookup reads one cache line): the key,
  // the newest holding + 1 (0 = empty slot), the floor (see below) in seconds from #epoch (INT32_MIN:
  // none), and 1 when the address has exactly one holding and it is open — the usual case, answered
  // from the slot without reading the holding. The floor:
  // the time before which the address's history is unknown.
  #t = new Int32Array(TS << 10);
  readonly #epoch: number;
  #tBits = 10;
  #tCount = 0;
  readonly #v6 = new Map<string, V6Entry>();

  // Holdings: #h rows (from, to, next older holding of the address / free list, kind), and what
  // only updates read: the owner, its next open holding, the address.
  #h = new Float64Array(1024 * ROW);
  #hAttr: (AddressAttribution | undefined)[] = [];
  #hRec: (OwnerRecord | undefined)[] = [];
  #hSib = new Int32Array(1024);
  #hV4 = new Uint32Array(1024);
  #hV6: (string | undefined)[] = [];
  #hFree = NONE;
  #hNextRow = 0;

  // Ended holdings, in the order they ended (a ring).
  #ended = new Int32Array(1024);
  #endedHead = 0;
  #endedLen = 0;

  readonly #owners: Map<string, OwnerRecord>[] = [new Map(), new Map(), new Map(), new Map()];
  #loading = true;
  #open = 0;
  #evictedEarly = 0;

  constructor(o: PeerIndexOptions = {}) {
    this.#historyMs = o.historyMs ?? DEFAULT_HISTORY_MS;
    this.#maxEnded = o.maxEndedHoldings ?? DEFAULT_MAX_ENDED;
    this.#now = o.now ?? Date.now;
    this.#epoch = Math.floor(this.#now() / 1000);
  }

  /**
   * The initial lists are in: from now on an address seen for the first time was not
   * necessarily held by its first holder before that (its past is older than the index).
   */
  loaded(): void {
    this.#loading = false;
  }

  // ------------------------------------------------------------------ updates

  /**
   * Sets what an object holds now: `addresses` replaces its previous set (addresses it
   * no longer lists end now, new ones start now); `attr` replaces its attribution on the
   * holdings that continue. `key`: pod/Service uid, node name.
   */
  set(kind: OwnerKind, key: string, attr: AddressAttribution, addresses: readonly string[]): void {
    const now = this.#now();
    this.#purge(now);
    const owners = this.#owners[kind]!;
    let rec = owners.get(key);
    if (!rec) {
      if (addresses.length === 0) return;
      rec = { key, attr, first: NONE };
      owners.set(key, rec);
    }
    rec.attr = attr;
    const wanted: (number | string)[] = [];
    for (const a of addresses) {
      const k = indexKey(a);
      if (k !== undefined && !wanted.includes(k)) wanted.push(k);
    }
    // Holdings that continue keep their start (and take the new attribution); the others end now.
    let prev = NONE;
    for (let h = rec.first; h !== NONE; ) {
      const next = this.#hSib[h]!;
      const at = wanted.indexOf(this.#hV6[h] ?? this.#hV4[h]!);
      if (at >= 0) {
        wanted.splice(at, 1);
        this.#hAttr[h] = attr;
        prev = h;
      } else {
        if (prev === NONE) rec.first = next;
        else this.#hSib[prev] = next;
        this.#end(h, now);
      }
      h = next;
    }
    for (const k of wanted) this.#start(rec, kind, k, now);
    if (rec.first === NONE) owners.delete(key);
  }

  /** The object is gone: its holdings end now. */
  delete(kind: OwnerKind, key: string): void {
    const now = this.#now();
    this.#purge(now);
    const owners = this.#owners[kind]!;
    const rec = owners.get(key);
    if (!rec) return;
    owners.delete(key);
    for (let h = rec.first; h !== NONE; ) {
      const next = this.#hSib[h]!;
      this.#end(h, now);
      h = next;
    }
    rec.first = NONE;
  }

  /** Drops what is past the history; the source calls it periodically, updates call it too. */
  maintain(): void {
    this.#purge(this.#now());
  }

  #start(rec: OwnerRecord, kind: OwnerKind, k: number | string, now: number): void {
    const h = this.#row();
    let head: number;
    let v6: V6Entry | undefined;
    let slot = NONE;
    if (typeof k === 'string') {
      v6 = this.#v6.get(k);
      if (!v6) {
        v6 = { head: NONE, floor: this.#newFloor(now) };
        this.#v6.set(k, v6);
      }
      head = v6.head;
      this.#hV6[h] = k;
    } else {
      slot = this.#slot(k, true);
      head = this.#t[TS * slot + T_HEAD]! - 1;
      this.#hV6[h] = undefined;
      this.#hV4[h] = k;
    }
    // One object of a kind per address: a pod whose address is now another's released it (its
    // deletion or phase may arrive later, or never in a relist's order).
    const b = this.#h;
    for (let x = head; x !== NONE; x = b[x * ROW + NEXT]!) {
      if (b[x * ROW + KIND] === kind && b[x * ROW + TO] === Number.POSITIVE_INFINITY) {
        const other = this.#hRec[x]!;
        this.#unlinkSibling(other, x);
        this.#end(x, now);
        const owners = this.#owners[kind]!;
        if (other.first === NONE && owners.get(other.key) === other) owners.delete(other.key);
      }
    }
    const r = h * ROW;
    b[r + FROM] = now;
    b[r + TO] = Number.POSITIVE_INFINITY;
    b[r + NEXT] = head;
    b[r + KIND] = kind;
    this.#hAttr[h] = rec.attr;
    this.#hRec[h] = rec;
    this.#hSib[h] = rec.first;
    rec.first = h;
    this.#open++;
    if (v6) v6.head = h;
    else {
      this.#t[TS * slot + T_HEAD] = h + 1;
      this.#refresh(slot);
    }
  }

  #unlinkSibling(rec: OwnerRecord, h: number): void {
    if (rec.first === h) {
      rec.first = this.#hSib[h]!;
      return;
    }
    for (let p = rec.first; p !== NONE; p = this.#hSib[p]!) {
      if (this.#hSib[p] === h) {
        this.#hSib[p] = this.#hSib[h]!;
        return;
      }
    }
  }

  #end(h: number, now: number): void {
    this.#h[h * ROW + TO] = now;
    this.#hSib[h] = NONE;
    this.#hRec[h] = undefined;
    this.#open--;
    if (this.#hV6[h] === undefined) this.#refresh(this.#slot(this.#hV4[h]!, false));
    if (this.#endedLen === this.#ended.length) {
      // Unroll the ring into a larger one.
      const b = new Int32Array(this.#ended.length * 2);
      for (let i = 0; i < this.#endedLen; i++) b[i] = this.#ended[(this.#endedHead + i) % this.#ended.length]!;
      this.#ended = b;
      this.#endedHead = 0;
    }
    this.#ended[(this.#endedHead + this.#endedLen) % this.#ended.length] = h;
    this.#endedLen++;
  }

  #purge(now: number): void {
    const cutoff = now - this.#historyMs;
    while (this.#endedLen > 0) {
      const h = this.#ended[this.#endedHead]!;
      const early = this.#endedLen > this.#maxEnded;
      if (!early && this.#h[h * ROW + TO]! > cutoff) break;
      if (early) this.#evictedEarly++;
      this.#endedHead = (this.#endedHead + 1) % this.#ended.length;
      this.#endedLen--;
      this.#evict(h);
    }
  }

  /** Unlinks an ended holding from its address; the address goes when nothing is left of it. */
  #evict(h: number): void {
    const b = this.#h;
    const to = b[h * ROW + TO]!;
    const v6key = this.#hV6[h];
    const v6 = v6key === undefined ? undefined : this.#v6.get(v6key);
    const slot = v6key === undefined ? this.#slot(this.#hV4[h]!, false) : NONE;
    let head = v6 ? v6.head : this.#t[TS * slot + T_HEAD]! - 1;
    let p = NONE;
    for (let x = head; x !== NONE; x = b[x * ROW + NEXT]!) {
      if (x === h) {
        if (p === NONE) head = b[h * ROW + NEXT]!;
        else b[p * ROW + NEXT] = b[h * ROW + NEXT]!;
        break;
      }
      p = x;
    }
    if (v6) {
      v6.head = head;
      if (to > v6.floor) v6.floor = to;
      if (head === NONE) this.#v6.delete(v6key!);
    } else {
      const t = this.#t;
      t[TS * slot + T_HEAD] = head + 1;
      const toSec = Math.floor(to / 1000) - this.#epoch;
      if (toSec > t[TS * slot + T_FLOOR]!) t[TS * slot + T_FLOOR] = toSec;
      if (head === NONE) this.#tDelete(slot);
      else this.#refresh(slot);
    }
    this.#hAttr[h] = undefined;
    this.#hV6[h] = undefined;
    b[h * ROW + NEXT] = this.#hFree;
    this.#hFree = h;
  }

  #row(): number {
    if (this.#hFree !== NONE) {
      const h = this.#hFree;
      this.#hFree = this.#h[h * ROW + NEXT]!;
      return h;
    }
    const h = this.#hNextRow++;
    if (h === this.#hSib.length) {
      // Grows by half: typed arrays are the bulk of the index, doubling would leave up to half of it unused.
      const n = h + (h >> 1);
      this.#h = grow(this.#h, n * ROW);
      this.#hSib = grow(this.#hSib, n);
      this.#hV4 = grow(this.#hV4, n);
    }
    this.#hAttr.push(undefined);
    this.#hRec.push(undefined);
    this.#hV6.push(undefined);
    return h;
  }

  // ------------------------------------------------------------------ IPv4 table

  /** A key first seen after the initial lists: its past before the history is not known. */
  #newFloor(now: number): number {
    return this.#loading ? Number.NEGATIVE_INFINITY : now - this.#historyMs;
  }

  #newFloorSec(): number {
    const f = this.#newFloor(this.#now());
    return f === Number.NEGATIVE_INFINITY ? NO_FLOOR : Math.floor(f / 1000) - this.#epoch;
  }

  /** The slot's single-open-holding mark, from its chain. */
  #refresh(slot: number): void {
    const t = this.#t;
    const head = t[TS * slot + T_HEAD]! - 1;
    const b = this.#h;
    t[TS * slot + T_SINGLE] =
      head !== NONE && b[head * ROW + NEXT] === NONE && b[head * ROW + TO] === Number.POSITIVE_INFINITY ? 1 : 0;
  }

  /** The slot of `k`; with `create`, a new slot when absent (NONE otherwise). */
  #slot(k: number, create: boolean): number {
    const t = this.#t;
    const mask = (1 << this.#tBits) - 1;
    const key = k | 0;
    let i = Math.imul(k, HASH) >>> (32 - this.#tBits);
    for (;;) {
      if (t[TS * i + T_HEAD] === 0) break;
      if (t[TS * i] === key) return i;
      i = (i + 1) & mask;
    }
    if (!create) return NONE;
    // The slot reads as empty until the caller stores its first holding (#start does, right away).
    this.#tCount++;
    if (this.#tCount * 2 > 1 << this.#tBits) {
      this.#rehash(this.#tBits + 1);
      return this.#insertFresh(key);
    }
    t[TS * i] = key;
    t[TS * i + T_FLOOR] = this.#newFloorSec();
    t[TS * i + T_SINGLE] = 0;
    return i;
  }

  /** After a rehash: the slot for a key known to be absent. */
  #insertFresh(key: number): number {
    const t = this.#t;
    const mask = (1 << this.#tBits) - 1;
    let i = Math.imul(key, HASH) >>> (32 - this.#tBits);
    while (t[TS * i + T_HEAD] !== 0) i = (i + 1) & mask;
    t[TS * i] = key;
    t[TS * i + T_FLOOR] = this.#newFloorSec();
    t[TS * i + T_SINGLE] = 0;
    return i;
  }

  #tDelete(slot: number): void {
    const t = this.#t;
    const mask = (1 << this.#tBits) - 1;
    let i = slot;
    let j = i;
    // Backward-shift deletion: no tombstones, probe chains stay short.
    for (;;) {
      j = (j + 1) & mask;
      if (t[TS * j + T_HEAD] === 0) break;
      const home = Math.imul(t[TS * j]!, HASH) >>> (32 - this.#tBits);
      // Move j back to i unless its home lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        t.copyWithin(TS * i, TS * j, TS * j + TS);
        i = j;
      }
    }
    t.fill(0, TS * i, TS * i + TS);
    this.#tCount--;
  }

  #rehash(bits: number): void {
    const old = this.#t;
    this.#tBits = bits;
    const t = new Int32Array(TS << bits);
    this.#t = t;
    const mask = (1 << bits) - 1;
    for (let s = 0; s < old.length; s += TS) {
      if (old[s + T_HEAD] === 0) continue;
      let i = Math.imul(old[s]!, HASH) >>> (32 - bits);
      while (t[TS * i + T_HEAD] !== 0) i = (i + 1) & mask;
      t.set(old.subarray(s, s + TS), TS * i);
    }
  }

  // ------------------------------------------------------------------ lookups

  /**
   * Who held `ip` at `atMs` (wall clock, ms): the attribution, TOO_OLD, or undefined
   * when nobody did (never held, or released before then). `ip` is text as events carry
   * it; a v4 key (v4Key) may be passed instead to skip the parse.
   */
  lookup(ip: string | number, atMs: number, side: Side): LookupResult {
    const k = typeof ip === 'number' ? ip : v4Key(ip);
    return k >= 0 ? this.lookupV4(k, atMs, side) : this.lookupV6(ip as string, atMs, side);
  }

  /** lookup() of an IPv4 address as a uint32 (v4Key). */
  lookupV4(k: number, atMs: number, side: Side): LookupResult {
    const t = this.#t;
    const mask = (1 << this.#tBits) - 1;
    const key = k | 0;
    let i = Math.imul(k, HASH) >>> (32 - this.#tBits);
    for (;;) {
      const v = t[TS * i + T_HEAD]!;
      if (v === 0) return undefined;
      if (t[TS * i] === key) {
        // One open holding, and the event is not older than what the index knows of the address:
        // its holder, whatever the event's time relative to the holding's start (see the class comment).
        if (t[TS * i + T_SINGLE] === 1 && atMs >= (t[TS * i + T_FLOOR]! + this.#epoch + 1) * 1000) return this.#hAttr[v - 1];
        return this.#answer(v - 1, atMs, side, i, undefined);
      }
      i = (i + 1) & mask;
    }
  }

  /** lookup() of IPv6 text in RFC 5952 form (as the agent writes it). */
  lookupV6(ip: string, atMs: number, side: Side): LookupResult {
    const e = this.#v6.get(ip);
    return e ? this.#answer(e.head, atMs, side, NONE, e) : undefined;
  }

  /** The holder at atMs among the address's holdings (`slot` or `v6`: where its floor is, read only if needed). */
  #answer(head: number, atMs: number, side: Side, slot: number, v6: V6Entry | undefined): LookupResult {
    const b = this.#h;
    const r0 = head * ROW;
    // The usual case: one holding, open since before the event.
    if (b[r0 + NEXT] === NONE && b[r0 + FROM]! <= atMs && b[r0 + TO]! > atMs) return this.#hAttr[head];
    const rank = RANK[side]!;
    let best = NONE;
    let bestRank = -1;
    let next = NONE;
    let nextFrom = Number.POSITIVE_INFINITY;
    for (let h = head; h !== NONE; h = b[h * ROW + NEXT]!) {
      if (b[h * ROW + TO]! <= atMs) continue; // ended before the event
      const from = b[h * ROW + FROM]!;
      const r = rank[b[h * ROW + KIND]!]!;
      if (from <= atMs) {
        if (r > bestRank) {
          best = h;
          bestRank = r;
        }
      } else if (from < nextFrom || (from === nextFrom && r > rank[b[next * ROW + KIND]!]!)) {
        next = h;
        nextFrom = from;
      }
    }
    if (best !== NONE) return this.#hAttr[best];
    if (next === NONE) return undefined;
    // Before the first holding the index knows: its holder, unless the past is unknown.
    let floor: number;
    if (v6) floor = v6.floor;
    else {
      const sec = this.#t[TS * slot + T_FLOOR]!;
      floor = sec === NO_FLOOR ? Number.NEGATIVE_INFINITY : (sec + this.#epoch) * 1000;
    }
    if (atMs < floor) return TOO_OLD;
    return this.#hAttr[next];
  }

  stats(): PeerIndexStats {
    return {
      addresses: this.#tCount + this.#v6.size,
      current: this.#open,
      ended: this.#endedLen,
      pods: this.#owners[OwnerKind.OWNER_KIND_POD]!.size,
      services: this.#owners[OwnerKind.OWNER_KIND_SERVICE]!.size,
      nodes: this.#owners[OwnerKind.OWNER_KIND_NODE]!.size,
      evictedEarly: this.#evictedEarly,
    };
  }
}

/** An API address -> the index's key; undefined for text that is no address, and addresses nobody owns. */
export function indexKey(ip: string): number | string | undefined {
  const k = v4Key(ip);
  if (k >= 0) return classifyV4(k) === AddressClass.Unspecified ? undefined : k;
  const v6 = canonicalV6(ip);
  if (v6 === undefined || classifyV6(v6) === AddressClass.Unspecified) return undefined;
  return v6;
}
