import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { MAX_POLICY_SLOTS, PeerAction, POLICY_LAYOUT, PolicyFlags, PolicyMode, SlotCounter } from '../../src/bpf/abi.js';
import { PolicyOrigin } from '../../src/gen/doorwatch/v1/event.js';
import { parsePolicyConfig } from '../../src/policy/config.js';
import { type Policy, PolicyEngine } from '../../src/policy/engine.js';
import { encodePolicy, peerEntries } from '../../src/policy/kernel-plan.js';
import { type CgroupSlot, cgroupKey, KernelPolicySync, type PolicyMaps } from '../../src/policy/kernel-sync.js';
import { policyReportOf } from '../../src/policy/report.js';
import { type PolicySpec, parseSpec } from '../../src/policy/spec.js';
import { PolicyStage } from '../../src/policy/stage.js';

// What userspace writes into the kernel's policy maps (bpf/lib/maps.h): the
// struct dw_policy bytes, the peer trie, cgroup -> slot; only differences,
// with stable slots. A recording fake stands in for the probes' maps.

function spec(raw: object): PolicySpec {
  const r = parseSpec(raw, 'spec');
  if (!r.ok) assert.fail(r.problems.join('; '));
  return r.spec;
}

const pol = (key: string, raw: object = { mode: 'events' }): Policy => ({
  key,
  ref: { origin: PolicyOrigin.POLICY_ORIGIN_CONFIG_RULE, name: key, mode: 1 },
  spec: spec(raw),
  tier: 1,
  description: key,
});
const UNATTRIBUTED = pol('unattributed');

const hex = (a: Uint8Array) => Buffer.from(a).toString('hex');

/** The maps as plain state, and every call in order. */
class FakeMaps implements PolicyMaps {
  calls: string[] = [];
  slots = new Map<number, Buffer>();
  /** "slot|prefix|hex addr" -> action */
  peers = new Map<string, number>();
  cgroups = new Map<string, number>();
  counters = new Map<number, bigint[]>();
  filtering: { on: boolean; defaultSlot?: number } | undefined;
  /** Throws like a full map for these cgroup ids. */
  failCgroups = new Set<bigint>();
  /** The peer trie's max_entries. */
  peerCapacity = Number.POSITIVE_INFINITY;

  setPolicyFiltering(on: boolean, defaultSlot?: number) {
    this.calls.push(`filter ${on} ${defaultSlot}`);
    this.filtering = { on, defaultSlot };
  }
  writePolicySlot(slot: number, policy: Buffer) {
    this.calls.push(`slot ${slot}`);
    this.slots.set(slot, Buffer.from(policy));
  }
  setPeerRule(slot: number, addr: Uint8Array, prefix: number, action: number) {
    this.calls.push(`peer+ ${slot} ${prefix} ${action}`);
    const k = `${slot}|${prefix}|${hex(addr)}`;
    if (!this.peers.has(k) && this.peers.size >= this.peerCapacity)
      throw new Error(`cannot write peer rule of slot ${slot} to dw_peer_rules: errno 28`);
    this.peers.set(k, action);
  }
  deletePeerRule(slot: number, addr: Uint8Array, prefix: number) {
    this.calls.push(`peer- ${slot} ${prefix}`);
    this.peers.delete(`${slot}|${prefix}|${hex(addr)}`);
  }
  setCgroupSlot(id: bigint, version: 1 | 2, slot: number) {
    this.calls.push(`cg+ ${version}:${id} ${slot}`);
    if (this.failCgroups.has(id)) throw new Error(`cannot write cgroup ${id} (v${version}) to dw_audited_cgroups: errno 7`);
    this.cgroups.set(`${version}:${id}`, slot);
  }
  deleteCgroup(id: bigint, version: 1 | 2) {
    this.calls.push(`cg- ${version}:${id}`);
    this.cgroups.delete(`${version}:${id}`);
  }
  slotCounters(slot: number): bigint[] {
    return [...(this.counters.get(slot) ?? [0n, 0n, 0n, 0n, 0n])];
  }
  take(): string[] {
    const c = this.calls;
    this.calls = [];
    return c;
  }
  peerRulesOf(slot: number): string[] {
    return [...this.peers.entries()]
      .filter(([k]) => k.startsWith(`${slot}|`))
      .map(([k, a]) => `${k.split('|')[1]} ${a}`)
      .sort();
  }
}

function setup() {
  const maps = new FakeMaps();
  const warnings: { msg: string }[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) });
  return { maps, warnings, sync: new KernelPolicySync(maps, log) };
}

const cg = (id: bigint, slot: number, version: 1 | 2 = 2): [string, CgroupSlot] => [
  cgroupKey(id, version),
  { id, version, slot },
];

describe('kernel plan: struct dw_policy bytes and peer entries', () => {
  it('encodes mode, flags, range counts and ranges at the struct offsets, the rest zero', () => {
    const s = spec({
      mode: 'summary',
      failedAccepts: false,
      ports: { include: [443, '8000-8999'], exclude: [8500] },
      peers: { include: ['10.0.0.0/8'] },
    });
    const b = encodePolicy(s);
    assert.equal(b.length, POLICY_LAYOUT.size);
    assert.equal(b.length, 72);
    assert.equal(b[0], PolicyMode.SUMMARY);
    assert.equal(b[1], PolicyFlags.PEER_INCLUDE | PolicyFlags.PEER_RULES);
    assert.equal(b[2], 2);
    assert.equal(b[3], 1);
    assert.equal(hex(b.subarray(4, 8)), '00000000', '_pad0');
    // include[0] = {443, 443}, include[1] = {8000, 8999}, little-endian u16 pairs at offset 8
    assert.deepEqual([...b.subarray(8, 16)], [0xbb, 0x01, 0xbb, 0x01, 0x40, 0x1f, 0x27, 0x23]);
    assert.ok(
      b.subarray(16, 40).every((x) => x === 0),
      'unused include ranges',
    );
    assert.deepEqual([...b.subarray(40, 44)], [0x34, 0x21, 0x34, 0x21]);
    assert.ok(
      b.subarray(44, 72).every((x) => x === 0),
      'unused exclude ranges',
    );
  });

  it('flags: failed accepts, peer include, peer rules; modes', () => {
    const flags = (raw: object) => encodePolicy(spec(raw))[POLICY_LAYOUT.flags];
    assert.equal(flags({ mode: 'events' }), PolicyFlags.FAILED_ACCEPTS);
    assert.equal(flags({ mode: 'events', failedAccepts: false }), 0);
    assert.equal(
      flags({ mode: 'events', peers: { exclude: ['fd00::/8'] } }),
      PolicyFlags.FAILED_ACCEPTS | PolicyFlags.PEER_RULES,
    );
    assert.equal(
      flags({ mode: 'events', peers: { include: ['fd00::/8'] } }),
      PolicyFlags.FAILED_ACCEPTS | PolicyFlags.PEER_INCLUDE | PolicyFlags.PEER_RULES,
    );
    const mode = (m: string) => encodePolicy(spec({ mode: m }))[POLICY_LAYOUT.mode];
    assert.deepEqual([mode('events'), mode('summary'), mode('off')], [PolicyMode.EVENTS, PolicyMode.SUMMARY, PolicyMode.OFF]);
    assert.deepEqual([PolicyMode.EVENTS, PolicyMode.SUMMARY, PolicyMode.OFF], [1, 2, 3], 'DW_MODE_* in bpf/doorwatch.h');
  });

  it('eight ranges fill include exactly up to exclude', () => {
    const eight = Array.from({ length: 8 }, (_, i) => 100 + i);
    const b = encodePolicy(spec({ mode: 'events', ports: { include: eight, exclude: eight } }));
    assert.equal(b.readUInt16LE(POLICY_LAYOUT.include + 4 * 7), 107);
    assert.equal(b.readUInt16LE(POLICY_LAYOUT.include + 4 * 7 + 2), 107);
    assert.equal(POLICY_LAYOUT.include + 4 * 8, POLICY_LAYOUT.exclude);
    assert.equal(b.readUInt16LE(POLICY_LAYOUT.exclude), 100);
    assert.equal(b.readUInt16LE(POLICY_LAYOUT.exclude + 4 * 7 + 2), 107);
    assert.equal(POLICY_LAYOUT.exclude + 4 * 8, POLICY_LAYOUT.size);
  });

  it('peer entries: 16-byte address, prefix over 128 bits, action, identity', () => {
    const e = peerEntries(spec({ mode: 'events', peers: { include: ['10.1.2.3/16'], exclude: ['fd00::/8'] } }));
    assert.deepEqual(
      e.map((x) => [hex(x.addr), x.prefix, x.action, x.id]),
      [
        ['00000000000000000000ffff0a010000', 112, PeerAction.INCLUDE, '112/00000000000000000000ffff0a010000'],
        [`fd${'00'.repeat(15)}`, 8, PeerAction.EXCLUDE, `8/fd${'00'.repeat(15)}`],
      ],
    );
  });
});

describe('kernel sync: slots', () => {
  it('unattributed takes slot 0 wherever it is listed; the others 1, 2, ... in order', () => {
    const { maps, sync } = setup();
    const slots = sync.applyPolicies([pol('a'), pol('b', { mode: 'off' }), UNATTRIBUTED, pol('c')]);
    assert.deepEqual(
      [...slots],
      [
        ['a', 1],
        ['b', 2],
        ['unattributed', 0],
        ['c', 3],
      ],
    );
    assert.deepEqual(maps.take(), ['slot 1', 'slot 2', 'slot 0', 'slot 3']);
    assert.deepEqual(maps.slots.get(2), encodePolicy(spec({ mode: 'off' })));
    assert.deepEqual(maps.slots.get(0), encodePolicy(UNATTRIBUTED.spec));
    assert.equal(sync.slotOf('b'), 2);
    assert.equal(sync.slotOf('nope'), undefined);
  });

  it('writes nothing when nothing changed, and only the changed slot otherwise', () => {
    const { maps, sync } = setup();
    const policies = [UNATTRIBUTED, pol('a'), pol('b')];
    sync.applyPolicies(policies);
    maps.take();
    assert.deepEqual(
      [...sync.applyPolicies(policies)],
      [
        ['unattributed', 0],
        ['a', 1],
        ['b', 2],
      ],
    );
    // Equal specs as new objects (a relist) are no change either.
    sync.applyPolicies([UNATTRIBUTED, pol('a'), pol('b')]);
    assert.deepEqual(maps.take(), []);
    sync.applyPolicies([UNATTRIBUTED, pol('a'), pol('b', { mode: 'events', ports: { exclude: [22] } })]);
    assert.deepEqual(maps.take(), ['slot 2']);
    assert.equal(maps.slots.get(2)![POLICY_LAYOUT.n_exclude], 1);
  });

  it('slots are stable: a removed policy keeps its slot until release(), a new one takes a free slot', () => {
    const { maps, sync } = setup();
    sync.applyPolicies([UNATTRIBUTED, pol('a'), pol('b'), pol('c')]);
    // b is gone from the engine; d is new. b's slot is not reused before release.
    const s2 = sync.applyPolicies([UNATTRIBUTED, pol('a'), pol('c'), pol('d')]);
    assert.deepEqual(
      [...s2],
      [
        ['unattributed', 0],
        ['a', 1],
        ['c', 3],
        ['d', 4],
      ],
    );
    assert.equal(sync.slotOf('b'), 2, 'held until release');
    sync.release(new Set(['unattributed', 'a', 'c', 'd']));
    assert.equal(sync.slotOf('b'), undefined);
    maps.take();
    const s3 = sync.applyPolicies([UNATTRIBUTED, pol('a'), pol('c'), pol('d'), pol('e')]);
    assert.equal(s3.get('e'), 2, 'the freed slot');
    assert.equal(s3.get('d'), 4);
    assert.deepEqual(maps.take(), ['slot 2']);
  });

  it('release never frees unattributed, and deletes the released slots peer rules', () => {
    const { maps, sync } = setup();
    const peers = { mode: 'events', peers: { include: ['10.0.0.0/8'], exclude: ['10.1.0.0/16'] } };
    sync.applyPolicies([UNATTRIBUTED, pol('a', peers), pol('b', peers)]);
    assert.deepEqual(maps.peerRulesOf(1), ['104 1', '112 2']);
    maps.take();
    sync.release(new Set(['b']));
    assert.deepEqual(maps.take().sort(), ['peer- 1 104', 'peer- 1 112']);
    assert.deepEqual(maps.peerRulesOf(1), []);
    assert.deepEqual(maps.peerRulesOf(2), ['104 1', '112 2']);
    assert.equal(sync.slotOf('unattributed'), 0);
    assert.equal(sync.slotOf('a'), undefined);
    assert.equal(sync.slotOf('b'), 2);
  });

  it(`more policies than slots (${MAX_POLICY_SLOTS}): the rest get none, with one warning`, () => {
    const { maps, sync, warnings } = setup();
    const many = Array.from({ length: 300 }, (_, i) => pol(`p${String(i).padStart(3, '0')}`));
    const slots = sync.applyPolicies([UNATTRIBUTED, ...many]);
    assert.equal(slots.size, MAX_POLICY_SLOTS);
    assert.equal(slots.get('p254'), 255);
    assert.equal(slots.get('p255'), undefined);
    assert.equal(maps.slots.size, MAX_POLICY_SLOTS);
    assert.equal(Math.max(...maps.slots.keys()), MAX_POLICY_SLOTS - 1);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.msg, /more policies than kernel slots/);
    sync.applyPolicies([UNATTRIBUTED, ...many]);
    assert.equal(warnings.length, 1, 'said once');
    // Freed slots go to the ones left out.
    sync.release(new Set(['unattributed', ...many.slice(10).map((p) => p.key)]));
    const again = sync.applyPolicies([UNATTRIBUTED, ...many.slice(10)]);
    assert.equal(again.size, MAX_POLICY_SLOTS);
    assert.equal(again.get('p264'), 10);
    assert.equal(again.get('p265'), undefined);
  });
});

describe('kernel sync: peer rules', () => {
  const v1 = { mode: 'events', peers: { include: ['10.0.0.0/8', '10.1.2.0/24'], exclude: ['10.1.0.0/16'] } };

  it('writes each rule once, and only the differences afterwards', () => {
    const { maps, sync } = setup();
    sync.applyPolicies([UNATTRIBUTED, pol('a', v1)]);
    assert.deepEqual(maps.peerRulesOf(1), ['104 1', '112 2', '120 1']);
    assert.equal(maps.take().filter((c) => c.startsWith('peer')).length, 3);

    // Same rules, written differently (host bits): no calls.
    sync.applyPolicies([UNATTRIBUTED, pol('a', { ...v1, peers: { ...v1.peers, include: ['10.9.9.9/8', '10.1.2.0/24'] } })]);
    assert.deepEqual(maps.take(), []);

    // One rule changes its action: one write, no delete; the slot's flags did not change.
    const v2 = { mode: 'events', peers: { include: ['10.0.0.0/8'], exclude: ['10.1.0.0/16', '10.1.2.0/24'] } };
    sync.applyPolicies([UNATTRIBUTED, pol('a', v2)]);
    assert.deepEqual(maps.take(), ['peer+ 1 120 2']);
    assert.deepEqual(maps.peerRulesOf(1), ['104 1', '112 2', '120 2']);

    // Two rules go, the include list empties: the slot is rewritten (flags) and both deleted.
    const v3 = { mode: 'events', peers: { exclude: ['10.1.0.0/16'] } };
    sync.applyPolicies([UNATTRIBUTED, pol('a', v3)]);
    assert.deepEqual(maps.take().sort(), ['peer- 1 104', 'peer- 1 120', 'slot 1']);
    assert.deepEqual(maps.peerRulesOf(1), ['112 2']);
    assert.equal(maps.slots.get(1)![POLICY_LAYOUT.flags], PolicyFlags.FAILED_ACCEPTS | PolicyFlags.PEER_RULES);

    // A ports-only change touches no peer rule.
    sync.applyPolicies([UNATTRIBUTED, pol('a', { ...v3, ports: { include: [443] } })]);
    assert.deepEqual(maps.take(), ['slot 1']);
  });

  it('rules are per slot: the same CIDR in two policies is two entries', () => {
    const { maps, sync } = setup();
    sync.applyPolicies([UNATTRIBUTED, pol('a', v1), pol('b', v1)]);
    assert.deepEqual(maps.peerRulesOf(1), maps.peerRulesOf(2));
    assert.equal(maps.peers.size, 6);
  });

  it('a reused slot starts from its new policy only: no stale rule of the previous one', () => {
    const { maps, sync } = setup();
    sync.applyPolicies([UNATTRIBUTED, pol('a', v1)]);
    sync.release(new Set());
    sync.applyPolicies([UNATTRIBUTED, pol('b', { mode: 'events', peers: { exclude: ['fd00::/8'] } })]);
    assert.equal(sync.slotOf('b'), 1);
    assert.deepEqual(maps.peerRulesOf(1), ['8 2']);
    assert.deepEqual(maps.slots.get(1), encodePolicy(spec({ mode: 'events', peers: { exclude: ['fd00::/8'] } })));
  });

  it('a full peer trie is survived: that policy is left to userspace, the others still get their slots', () => {
    const { maps, sync, warnings } = setup();
    maps.peerCapacity = 4;
    const wide = { mode: 'events', peers: { include: ['10.0.0.0/8', '10.1.0.0/16', '10.2.0.0/16'] } };
    let slots = new Map<string, number>();
    assert.doesNotThrow(() => {
      slots = sync.applyPolicies([UNATTRIBUTED, pol('a', wide), pol('b', wide), pol('c')]);
    });
    assert.equal(slots.get('a'), 1);
    assert.equal(slots.get('b'), undefined, 'incomplete in the kernel: decided in userspace');
    assert.equal(slots.get('c'), 3);
    assert.equal(warnings.length, 1);
    // Room again (a's rules shrink): b is completed, without rewriting the rule it has.
    maps.take();
    const narrow = { mode: 'events', peers: { include: ['10.0.0.0/8'] } };
    slots = sync.applyPolicies([UNATTRIBUTED, pol('a', narrow), pol('b', wide), pol('c')]);
    assert.equal(slots.get('b'), 2);
    assert.deepEqual(maps.take(), ['peer- 1 112', 'peer- 1 112', 'peer+ 2 112 1', 'peer+ 2 112 1']);
    assert.deepEqual(maps.peerRulesOf(2), ['104 1', '112 1', '112 1']);
    sync.applyPolicies([UNATTRIBUTED, pol('a', narrow), pol('b', wide), pol('c')]);
    assert.deepEqual(maps.take(), [], 'complete: nothing left to write');
    assert.equal(warnings.length, 1);
  });
});

describe('kernel sync: cgroups', () => {
  it('adds, changes and removes exactly the differences', () => {
    const { maps, sync } = setup();
    assert.deepEqual(sync.setCgroups(new Map([cg(10n, 1), cg(11n, 1), cg(12n, 2), cg(12n, 3, 1)])), {
      added: 4,
      changed: 0,
      removed: 0,
    });
    assert.deepEqual(maps.take(), ['cg+ 2:10 1', 'cg+ 2:11 1', 'cg+ 2:12 2', 'cg+ 1:12 3']);
    assert.equal(sync.mappedCgroups(), 4);
    assert.equal(sync.isMapped(12n, 1), true);
    assert.equal(sync.isMapped(13n, 2), false);

    assert.deepEqual(sync.setCgroups(new Map([cg(10n, 1), cg(11n, 2), cg(12n, 3, 1), cg(13n, 1)])), {
      added: 1,
      changed: 1,
      removed: 1,
    });
    assert.deepEqual(maps.take(), ['cg+ 2:11 2', 'cg+ 2:13 1', 'cg- 2:12']);
    assert.deepEqual(
      new Map(maps.cgroups),
      new Map([
        ['2:10', 1],
        ['2:11', 2],
        ['1:12', 3],
        ['2:13', 1],
      ]),
    );

    assert.deepEqual(sync.setCgroups(new Map([cg(10n, 1), cg(11n, 2), cg(12n, 3, 1), cg(13n, 1)])), {
      added: 0,
      changed: 0,
      removed: 0,
    });
    assert.deepEqual(maps.take(), []);
    assert.deepEqual(sync.setCgroups(new Map()), { added: 0, changed: 0, removed: 4 });
    assert.equal(maps.cgroups.size, 0);
    assert.equal(sync.mappedCgroups(), 0);
  });

  it('a cgroup the map cannot take (full) is survived, stays unmapped (default slot) and is retried', () => {
    const { maps, sync, warnings } = setup();
    maps.failCgroups.add(11n);
    assert.deepEqual(sync.setCgroups(new Map([cg(10n, 1), cg(11n, 1), cg(12n, 1)])), { added: 2, changed: 0, removed: 0 });
    assert.equal(sync.isMapped(11n, 2), false);
    assert.equal(maps.cgroups.has('2:11'), false);
    assert.equal(maps.cgroups.get('2:12'), 1, 'the ones after it still mapped');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.msg, /cannot map cgroup/);
    maps.failCgroups.clear();
    maps.take();
    assert.deepEqual(sync.setCgroups(new Map([cg(10n, 1), cg(11n, 1), cg(12n, 1)])), { added: 1, changed: 0, removed: 0 });
    assert.deepEqual(maps.take(), ['cg+ 2:11 1']);
  });

  it('a cgroup that cannot be moved is not left on its old slot, which release() may hand to another policy', () => {
    const { maps, sync } = setup();
    sync.applyPolicies([UNATTRIBUTED, pol('a'), pol('b')]);
    sync.setCgroups(new Map([cg(10n, 1)]));
    maps.failCgroups.add(10n);
    // a is gone: the cgroup should move to b's slot, the write fails.
    sync.applyPolicies([UNATTRIBUTED, pol('b')]);
    sync.setCgroups(new Map([cg(10n, 2)]));
    sync.release(new Set(['unattributed', 'b']));
    // Slot 1 is free now, and the next policy takes it.
    sync.applyPolicies([UNATTRIBUTED, pol('b'), pol('off', { mode: 'off' })]);
    assert.equal(sync.slotOf('off'), 1);
    assert.notEqual(maps.cgroups.get('2:10'), 1, 'the cgroup must not end up governed by "off"');
    assert.equal(maps.cgroups.has('2:10'), false, 'on the default slot: audited, decided in userspace');
    assert.equal(sync.isMapped(10n, 2), false);
  });
});

describe('kernel sync: filtering switch and counters', () => {
  it('enable() switches the kernel filter with slot 0 as default, once per change', () => {
    const { maps, sync } = setup();
    assert.equal(sync.enabled, false);
    sync.enable(false);
    assert.deepEqual(maps.take(), []);
    sync.enable(true);
    sync.enable(true);
    assert.deepEqual(maps.take(), ['filter true 0']);
    assert.equal(sync.enabled, true);
    sync.enable(false);
    assert.deepEqual(maps.take(), ['filter false 0']);
    assert.equal(sync.enabled, false);
  });

  it('counters are per policy, since it took its slot: a reused slot starts at zero', () => {
    const { maps, sync } = setup();
    const set = (slot: number, c: Partial<Record<keyof typeof SlotCounter, bigint>>) => {
      const v = maps.slotCounters(slot);
      for (const [k, n] of Object.entries(c)) v[SlotCounter[k as keyof typeof SlotCounter]] = n;
      maps.counters.set(slot, v);
    };
    set(1, { EMITTED: 3n }); // left over from before the agent started
    sync.applyPolicies([UNATTRIBUTED, pol('a')]);
    set(1, { EMITTED: 10n, OFF: 2n, PORT: 3n, PEER: 4n, FAILED: 5n });
    set(0, { EMITTED: 7n });
    assert.deepEqual(sync.counters().get('a'), { emitted: 7n, off: 2n, port: 3n, peer: 4n, failed: 5n });
    assert.deepEqual(sync.counters().get('unattributed'), { emitted: 7n, off: 0n, port: 0n, peer: 0n, failed: 0n });

    sync.release(new Set());
    assert.equal(sync.counters().has('a'), false);
    sync.applyPolicies([UNATTRIBUTED, pol('b', { mode: 'off' })]);
    assert.equal(sync.slotOf('b'), 1);
    assert.deepEqual(sync.counters().get('b'), { emitted: 0n, off: 0n, port: 0n, peer: 0n, failed: 0n });
    set(1, { OFF: 6n });
    assert.deepEqual(sync.counters().get('b'), { emitted: 0n, off: 4n, port: 0n, peer: 0n, failed: 0n });
  });
});

describe('policy report', () => {
  it('names and modes every row, a policy decided only in the kernel (never seen by the stage) too', () => {
    const { maps, sync } = setup();
    const engine = new PolicyEngine(
      parsePolicyConfig(
        { rules: [{ name: 'quiet', namespaces: ['kube-system'], mode: 'off' }] },
        { source: 'test', defaultAdminNamespace: 'doorwatch' },
      ),
    );
    const stage = new PolicyStage({ engine, ready: () => true, emit: () => {} });
    sync.applyPolicies(engine.all());
    const counters = maps.slotCounters(sync.slotOf('rule:quiet')!);
    counters[SlotCounter.OFF] = 20n;
    maps.counters.set(sync.slotOf('rule:quiet')!, counters);
    const row = policyReportOf({ stage, sync }).rows.find((r) => r.key === 'rule:quiet');
    assert.deepEqual(
      { name: row?.name, mode: row?.mode, kernel: row?.kernel, user: row?.user },
      {
        name: 'quiet',
        mode: 'off',
        kernel: { emitted: 0n, off: 20n, port: 0n, peer: 0n, failed: 0n },
        user: { events: 0, summarized: 0, filtered: { off: 0, port: 0, peer: 0, failed: 0 } },
      },
    );
  });
});
