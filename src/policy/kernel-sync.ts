import { MAX_POLICY_SLOTS, SlotCounter } from '../bpf/abi.js';
import type { Logger } from '../log/logger.js';
import type { Policy } from './engine.js';
import { encodePolicy, type PeerEntry, peerEntries } from './kernel-plan.js';

/**
 * Keeps the kernel's policy maps equal to the engine's answer: a slot per
 * policy (stable across changes, so cgroup entries stay valid), its peer
 * rules, and cgroup → slot. Writes only differences. Slot 0 is the
 * `unattributed` policy and the default slot: a cgroup the agent has not
 * mapped yet is audited and decided in userspace.
 */

/** The probe maps, as src/bpf/accept-probes.ts offers them (an interface, so tests can record calls). */
export interface PolicyMaps {
  setPolicyFiltering(on: boolean, defaultSlot?: number): void;
  writePolicySlot(slot: number, policy: Buffer): void;
  setPeerRule(slot: number, addr: Uint8Array, prefix: number, action: number): void;
  deletePeerRule(slot: number, addr: Uint8Array, prefix: number): void;
  setCgroupSlot(id: bigint, version: 1 | 2, slot: number): void;
  deleteCgroup(id: bigint, version: 1 | 2): void;
  slotCounters(slot: number): bigint[];
}

export interface CgroupSlot {
  id: bigint;
  version: 1 | 2;
  slot: number;
}

export interface KernelPolicyCounters {
  emitted: bigint;
  off: bigint;
  port: bigint;
  peer: bigint;
  failed: bigint;
}

interface SlotState {
  slot: number;
  bytes: Buffer;
  peers: Map<string, PeerEntry>;
  /** Counter values when this policy took the slot over (slots are reused). */
  baseline: bigint[];
}

export const cgroupKey = (id: bigint, version: 1 | 2) => `${version}:${id}`;

/** The lowest slot above 0 (the default slot) that no policy holds; -1 when all are taken. */
function freeSlot(used: ReadonlySet<number>): number {
  for (let s = 1; s < MAX_POLICY_SLOTS; s++) if (!used.has(s)) return s;
  return -1;
}

export class KernelPolicySync {
  readonly #maps: PolicyMaps;
  readonly #log: Logger;
  readonly #slots = new Map<string, SlotState>();
  readonly #cgroups = new Map<string, CgroupSlot>();
  #enabled = false;
  #warnedFull = false;
  /** Policies whose peer rules did not fit, warned about once each. */
  readonly #warnedPeers = new Set<string>();

  constructor(maps: PolicyMaps, log: Logger) {
    this.#maps = maps;
    this.#log = log;
  }

  /**
   * Give every policy a slot and write what changed. Slots of policies no
   * longer present are released only by release(), after the cgroups have
   * been moved off them. Returns policy key -> slot (policies beyond the
   * kernel's slots get none and are decided in userspace, said once).
   */
  applyPolicies(policies: readonly Policy[]): Map<string, number> {
    const used = new Set([...this.#slots.values()].map((s) => s.slot));
    const out = new Map<string, number>();
    for (const p of policies) {
      let st = this.#slots.get(p.key);
      if (!st) {
        const slot = p.key === 'unattributed' ? 0 : freeSlot(used);
        if (slot < 0) {
          if (!this.#warnedFull)
            this.#log.warn({ max: MAX_POLICY_SLOTS }, 'more policies than kernel slots: the rest are decided in userspace');
          this.#warnedFull = true;
          continue;
        }
        used.add(slot);
        st = { slot, bytes: Buffer.alloc(0), peers: new Map(), baseline: this.#maps.slotCounters(slot) };
        this.#slots.set(p.key, st);
      }
      const bytes = encodePolicy(p.spec);
      if (!bytes.equals(st.bytes)) {
        this.#maps.writePolicySlot(st.slot, bytes);
        st.bytes = bytes;
      }
      if (!this.#writePeers(p.key, st, new Map(peerEntries(p.spec).map((e) => [e.id, e])))) continue;
      out.set(p.key, st.slot);
    }
    return out;
  }

  /**
   * Make the slot's peer rules equal `want`; false when the trie could not
   * take them all (full: its max_entries is below 255 slots' worth). Such a
   * policy gets no slot this pass, as when slots run out: its cgroups stay on
   * the default slot, decided in userspace. What was written is remembered,
   * so the next pass writes only what is missing.
   */
  #writePeers(key: string, st: SlotState, want: Map<string, PeerEntry>): boolean {
    // Deletions first: they make room for the additions.
    for (const [id, e] of st.peers) if (!want.has(id)) this.#maps.deletePeerRule(st.slot, e.addr, e.prefix);
    const have = new Map<string, PeerEntry>();
    let error: string | undefined;
    for (const [id, e] of want) {
      const had = st.peers.get(id);
      if (had?.action === e.action) {
        have.set(id, had);
        continue;
      }
      try {
        this.#maps.setPeerRule(st.slot, e.addr, e.prefix, e.action);
        have.set(id, e);
      } catch (err) {
        error ??= (err as Error).message;
        if (had) have.set(id, had); // still in the trie, with its old action
      }
    }
    st.peers = have;
    if (error === undefined) {
      this.#warnedPeers.delete(key);
      return true;
    }
    if (!this.#warnedPeers.has(key))
      this.#log.warn({ err: error, policy: key }, 'peer rules do not fit in the kernel: this policy is decided in userspace');
    this.#warnedPeers.add(key);
    return false;
  }

  /** Make dw_audited_cgroups equal `desired` (keyed by cgroupKey). */
  setCgroups(desired: ReadonlyMap<string, CgroupSlot>): { added: number; changed: number; removed: number } {
    let added = 0;
    let changed = 0;
    let removed = 0;
    for (const [k, c] of desired) {
      const had = this.#cgroups.get(k);
      if (had?.slot === c.slot) continue;
      try {
        this.#maps.setCgroupSlot(c.id, c.version, c.slot);
      } catch (err) {
        // Map full: the cgroup stays on the default slot (audited, decided in userspace). One that was
        // mapped is taken off its old slot: release() may free that slot and another policy take it.
        this.#log.warn({ err: (err as Error).message, cgroup: k }, 'cannot map cgroup to its policy in the kernel');
        if (had) {
          this.#maps.deleteCgroup(c.id, c.version);
          this.#cgroups.delete(k);
          removed++;
        }
        continue;
      }
      this.#cgroups.set(k, c);
      if (had) changed++;
      else added++;
    }
    for (const [k, c] of this.#cgroups) {
      if (desired.has(k)) continue;
      this.#maps.deleteCgroup(c.id, c.version);
      this.#cgroups.delete(k);
      removed++;
    }
    return { added, changed, removed };
  }

  /** Free the slots of policies not in `keep` (call after setCgroups moved cgroups off them). */
  release(keep: ReadonlySet<string>): void {
    for (const [key, st] of this.#slots) {
      if (keep.has(key) || key === 'unattributed') continue;
      for (const e of st.peers.values()) this.#maps.deletePeerRule(st.slot, e.addr, e.prefix);
      this.#slots.delete(key);
      this.#warnedPeers.delete(key);
    }
  }

  enable(on: boolean): void {
    if (on === this.#enabled) return;
    this.#maps.setPolicyFiltering(on, 0);
    this.#enabled = on;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  slotOf(key: string): number | undefined {
    return this.#slots.get(key)?.slot;
  }

  mappedCgroups(): number {
    return this.#cgroups.size;
  }

  isMapped(id: bigint, version: 1 | 2): boolean {
    return this.#cgroups.has(cgroupKey(id, version));
  }

  /** What the kernel emitted and filtered per policy, since the policy got its slot. */
  counters(): Map<string, KernelPolicyCounters> {
    const out = new Map<string, KernelPolicyCounters>();
    for (const [key, st] of this.#slots) {
      const now = this.#maps.slotCounters(st.slot);
      const d = (i: number) => (now[i] ?? 0n) - (st.baseline[i] ?? 0n);
      out.set(key, {
        emitted: d(SlotCounter.EMITTED),
        off: d(SlotCounter.OFF),
        port: d(SlotCounter.PORT),
        peer: d(SlotCounter.PEER),
        failed: d(SlotCounter.FAILED),
      });
    }
    return out;
  }
}
