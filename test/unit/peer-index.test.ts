import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { canonicalV6, v4Key } from '../../src/collector/peers/address.js';
import {
  EXTERNAL,
  LINK_LOCAL,
  LOOPBACK,
  NO_ADDRESS,
  NOT_FOUND,
  NOT_SYNCED,
  PeerAttributor,
} from '../../src/collector/peers/attributor.js';
import { PeerIndex, Side, TOO_OLD } from '../../src/collector/peers/index-store.js';
import { OwnerFactory } from '../../src/collector/peers/objects.js';
import { RangeSet } from '../../src/collector/peers/ranges.js';
import { type AcceptEvent, AttributionStatus, OwnerKind } from '../../src/gen/doorwatch/v1/event.js';
import { ALL_KEYS, compileAllowList } from '../../src/kube/allow-list.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, set: (v: number) => (t = v), add: (d: number) => (t += d) };
}

function pod(
  name: string,
  ip: string | string[],
  o: Partial<{
    uid: string;
    ns: string;
    rs: string;
    hash: string;
    hostNetwork: boolean;
    phase: string;
    labels: Record<string, string>;
  }> = {},
): V1Pod {
  const ips = Array.isArray(ip) ? ip : [ip];
  return {
    metadata: {
      name,
      namespace: o.ns ?? 'shop',
      uid: o.uid ?? `uid-${name}`,
      labels: { app: 'web', ...(o.hash ? { 'pod-template-hash': o.hash } : {}), ...o.labels },
      ...(o.rs
        ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: o.rs, uid: 'rs', controller: true }] }
        : {}),
    },
    spec: { containers: [], nodeName: 'node-a', ...(o.hostNetwork ? { hostNetwork: true } : {}) },
    status: { phase: o.phase ?? 'Running', podIP: ips[0], podIPs: ips.map((x) => ({ ip: x })) },
  };
}

function setup(historyMs = 300_000, maxEnded?: number) {
  const c = clock();
  const index = new PeerIndex({ historyMs, now: c.now, ...(maxEnded ? { maxEndedHoldings: maxEnded } : {}) });
  const f = new OwnerFactory(compileAllowList(undefined, ALL_KEYS));
  const apply = (o: ReturnType<OwnerFactory['pod']>) => index.set(o.kind, o.key, o.attr, o.addresses);
  return { c, index, f, apply };
}

describe('peer index', () => {
  it('resolves a pod with its workload (the agent derivation), labels and node; v4 and IPv4-mapped text', () => {
    const { index, f, apply } = setup();
    apply(f.pod(pod('web-7d9f-abcde', '10.244.1.5', { rs: 'web-7d9f', hash: '7d9f' })));
    index.loaded();
    const a = index.lookup('10.244.1.5', 1_000_000, Side.Peer);
    assert.ok(a && a !== TOO_OLD);
    assert.equal(a.status, AttributionStatus.ATTRIBUTION_STATUS_RESOLVED);
    assert.equal(a.kind, OwnerKind.OWNER_KIND_POD);
    assert.deepEqual([a.namespace, a.name, a.nodeName], ['shop', 'web-7d9f-abcde', 'node-a']);
    assert.deepEqual(a.workload, { kind: 'Deployment', name: 'web', inferred: false });
    assert.equal(a.labels.app, 'web');
    assert.ok(Object.isFrozen(a));
    assert.equal(index.lookup('::ffff:10.244.1.5', 1_000_000, Side.Peer), a, 'the same shared object');
    assert.equal(index.lookup('10.244.1.6', 1_000_000, Side.Peer), undefined);
  });

  it('IP reuse is time-correct: an event before the deletion names the old pod, after the reuse the new one', () => {
    const { c, index, f, apply } = setup();
    apply(f.pod(pod('old', '10.244.2.9')));
    index.loaded();
    const t0 = c.now();
    c.add(10_000);
    index.delete(OwnerKind.OWNER_KIND_POD, 'uid-old');
    const tDeleted = c.now();
    c.add(5_000);
    apply(f.pod(pod('new', '10.244.2.9')));
    const tNew = c.now();
    c.add(1_000);
    const at = (t: number) => {
      const r = index.lookup('10.244.2.9', t, Side.Peer);
      return r === TOO_OLD ? 'too old' : r?.name;
    };
    assert.equal(at(t0 + 1), 'old');
    assert.equal(at(tDeleted - 1), 'old');
    assert.equal(at(tDeleted + 1), 'new', 'between holders: the next holder');
    assert.equal(at(tNew + 1), 'new');
    assert.equal(at(t0 - 60_000), 'old', 'before anything known, since the initial list: the first holder');
  });

  it('a new pod claiming a live pod’s address ends the old holding (release seen late)', () => {
    const { c, index, f, apply } = setup();
    apply(f.pod(pod('a', '10.1.0.1')));
    index.loaded();
    const t0 = c.now();
    c.add(1000);
    apply(f.pod(pod('b', '10.1.0.1')));
    c.add(1000);
    assert.equal((index.lookup('10.1.0.1', t0 + 500, Side.Peer) as { name: string }).name, 'a');
    assert.equal((index.lookup('10.1.0.1', c.now(), Side.Peer) as { name: string }).name, 'b');
    // The late deletion of a changes nothing for b.
    index.delete(OwnerKind.OWNER_KIND_POD, 'uid-a');
    assert.equal((index.lookup('10.1.0.1', c.now(), Side.Peer) as { name: string }).name, 'b');
    assert.equal(index.stats().pods, 1);
  });

  it('Succeeded/Failed and hostNetwork pods hold no address', () => {
    const { c, index, f, apply } = setup();
    apply(f.pod(pod('job', '10.1.0.2', { phase: 'Running' })));
    const running = c.now();
    assert.equal((index.lookup('10.1.0.2', running, Side.Peer) as { name: string }).name, 'job');
    c.add(1000);
    apply(f.pod(pod('job', '10.1.0.2', { phase: 'Succeeded' })));
    c.add(1000);
    assert.equal(index.lookup('10.1.0.2', c.now(), Side.Peer), undefined, 'released: nobody holds it now');
    assert.equal((index.lookup('10.1.0.2', running + 500, Side.Peer) as { name: string }).name, 'job', 'while it ran');
    apply(f.pod(pod('hn', '192.168.0.10', { hostNetwork: true })));
    const s = index.stats();
    assert.equal(s.current, 0);
    assert.equal(s.ended, 1);
    assert.equal(index.lookup('192.168.0.10', 0, Side.Peer), undefined);
  });

  it('history is bounded in time: past historyMs an ended holding is gone, and events older than it say so', () => {
    const { c, index, f, apply } = setup(60_000);
    apply(f.pod(pod('old', '10.2.0.1')));
    index.loaded();
    const t0 = c.now();
    c.add(1000);
    index.delete(OwnerKind.OWNER_KIND_POD, 'uid-old');
    c.add(61_000);
    index.maintain();
    assert.equal(index.stats().ended, 0);
    assert.equal(index.stats().addresses, 0, 'an address with no holding left is dropped');
    apply(f.pod(pod('new', '10.2.0.1')));
    assert.equal(index.lookup('10.2.0.1', t0 + 500, Side.Peer), TOO_OLD, 'the old holder is forgotten: not the new one');
    assert.equal((index.lookup('10.2.0.1', c.now() - 10, Side.Peer) as { name: string }).name, 'new');
  });

  it('history is bounded in count: the oldest ended holdings go first, counted', () => {
    const { c, index, f, apply } = setup(3_600_000, 10);
    for (let i = 0; i < 25; i++) {
      apply(f.pod(pod(`p${i}`, `10.3.0.${i + 1}`)));
      c.add(1);
      index.delete(OwnerKind.OWNER_KIND_POD, `uid-p${i}`);
    }
    apply(f.pod(pod('trigger', '10.3.1.1')));
    const s = index.stats();
    assert.ok(s.ended <= 10, JSON.stringify(s));
    assert.equal(s.evictedEarly, 15);
    assert.equal(index.lookup('10.3.0.1', 0, Side.Peer), undefined, 'the oldest went first');
    assert.equal((index.lookup('10.3.0.25', c.now() - 2, Side.Peer) as { name: string }).name, 'p24');
  });

  it('IPv6 (dual-stack pods), canonical text either way', () => {
    const { index, f, apply } = setup();
    apply(f.pod(pod('dual', ['10.4.0.1', 'FD00:10:0:0::1'])));
    assert.equal(canonicalV6('FD00:10:0:0::1'), 'fd00:10::1');
    const a = index.lookup('fd00:10::1', 0, Side.Peer);
    assert.equal((a as { name: string }).name, 'dual');
    assert.equal(index.lookup('10.4.0.1', 0, Side.Peer), a);
    // Dropping the v6 address ends only that holding.
    apply(f.pod(pod('dual', ['10.4.0.1'])));
    assert.equal(index.stats().current, 1);
  });

  it('Services (cluster, external, LB ingress; not headless) and nodes (Internal/External IP); ranking per side', () => {
    const { index, f } = setup();
    const svc: V1Service = {
      metadata: { name: 'front', namespace: 'shop', uid: 'svc-1', labels: { tier: 'edge' } },
      spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00:96::a'], externalIPs: ['192.168.5.5'] },
      status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }, { hostname: 'lb.example' }] } },
    };
    const headless: V1Service = { metadata: { name: 'db', namespace: 'shop', uid: 'svc-2' }, spec: { clusterIP: 'None' } };
    const node: V1Node = {
      metadata: { name: 'node-a', uid: 'n-1' },
      spec: { podCIDRs: ['10.244.1.0/24'] },
      status: {
        addresses: [
          { type: 'InternalIP', address: '192.168.5.5' },
          { type: 'ExternalIP', address: '198.51.100.4' },
          { type: 'Hostname', address: 'node-a' },
        ],
      },
    };
    for (const o of [f.service(svc), f.service(headless), f.node(node)]) index.set(o.kind, o.key, o.attr, o.addresses);
    const kindAt = (ip: string, side: Side) => (index.lookup(ip, 0, side) as { kind: OwnerKind } | undefined)?.kind;
    assert.equal(kindAt('10.96.0.10', Side.Peer), OwnerKind.OWNER_KIND_SERVICE);
    assert.equal(kindAt('fd00:96::a', Side.Local), OwnerKind.OWNER_KIND_SERVICE);
    assert.equal(kindAt('203.0.113.7', Side.Peer), OwnerKind.OWNER_KIND_SERVICE);
    assert.equal(kindAt('198.51.100.4', Side.Peer), OwnerKind.OWNER_KIND_NODE);
    // 192.168.5.5 is both the node's InternalIP and the Service's externalIP.
    assert.equal(kindAt('192.168.5.5', Side.Peer), OwnerKind.OWNER_KIND_NODE, 'as a peer: the node originates traffic');
    assert.equal(kindAt('192.168.5.5', Side.Local), OwnerKind.OWNER_KIND_SERVICE, 'as the local end: what was dialled');
    assert.equal(index.stats().services, 1, 'a headless Service holds nothing');
    const n = index.lookup('198.51.100.4', 0, Side.Peer) as { name: string; nodeName: string; namespace: string };
    assert.deepEqual([n.name, n.nodeName, n.namespace], ['node-a', 'node-a', '']);
  });

  it('labels and workloads are interned: replicas share one object; the allow-list applies', () => {
    const c = clock();
    const index = new PeerIndex({ now: c.now });
    const f = new OwnerFactory(compileAllowList(['app'], ALL_KEYS));
    const a = f.pod(pod('web-1', '10.5.0.1', { rs: 'web-7d9f', hash: '7d9f', labels: { secret: 'x' } }));
    const b = f.pod(pod('web-2', '10.5.0.2', { rs: 'web-7d9f', hash: '7d9f', labels: { secret: 'x' } }));
    assert.equal(a.attr.labels, b.attr.labels);
    assert.equal(a.attr.workload, b.attr.workload);
    assert.deepEqual(a.attr.labels, { app: 'web' });
    index.set(a.kind, a.key, a.attr, a.addresses);
  });

  it('v4Key parses only dotted quads', () => {
    assert.equal(v4Key('10.0.0.1'), 0x0a000001);
    assert.equal(v4Key('255.255.255.255'), 0xffffffff);
    assert.equal(v4Key('::ffff:1.2.3.4'), 0x01020304);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', 'fd00::1', '1.2.3.4 ', '::1'])
      assert.equal(v4Key(bad), -1, bad);
  });

  it('the table survives growth and deletions (backward shift): every live key still found', () => {
    const { c, index, f, apply } = setup(1000);
    for (let i = 0; i < 5000; i++) apply(f.pod(pod(`p${i}`, `10.${(i >> 8) & 255}.${i & 255}.7`)));
    for (let i = 0; i < 5000; i += 2) index.delete(OwnerKind.OWNER_KIND_POD, `uid-p${i}`);
    c.add(2000);
    index.maintain();
    for (let i = 0; i < 5000; i++) {
      const r = index.lookup(`10.${(i >> 8) & 255}.${i & 255}.7`, c.now(), Side.Peer);
      if (i % 2) assert.equal((r as { name: string }).name, `p${i}`);
      else assert.equal(r, undefined);
    }
    assert.equal(index.stats().addresses, 2500);
  });
});

describe('peer attributor', () => {
  const ev = (peer: string, local = '10.244.1.5', t = 1_000_000): AcceptEvent =>
    ({
      socket: { peer: { ip: peer, port: 1 }, local: { ip: local, port: 80 } },
      timeUnixNano: BigInt(t) * 1_000_000n,
    }) as AcceptEvent;

  function attributor(synced: boolean, cidrs: string[] = []) {
    const { index, f, apply } = setup();
    apply(f.pod(pod('web', '10.244.1.5')));
    const ranges = new RangeSet();
    for (const c of cidrs) ranges.add(c);
    return new PeerAttributor({ index, synced: () => synced, ranges, historyMs: 300_000 });
  }

  it('statuses: resolved, loopback, link-local, no address, external, not found, not synced, disabled', () => {
    const a = attributor(true);
    const e = ev('10.244.1.5');
    a.attach(e);
    assert.equal(e.peerAttribution?.name, 'web');
    assert.equal(e.localAttribution?.name, 'web');
    const peer = (ip: string, at = a) => {
      const x = ev(ip);
      at.attach(x);
      return x.peerAttribution;
    };
    assert.equal(peer('127.0.0.1'), LOOPBACK);
    assert.equal(peer('::1'), LOOPBACK);
    assert.equal(peer('::ffff:127.0.0.1'), LOOPBACK);
    assert.equal(peer('169.254.169.254'), LINK_LOCAL);
    assert.equal(peer('fe80::1'), LINK_LOCAL);
    assert.equal(peer(''), NO_ADDRESS);
    assert.equal(peer('8.8.8.8'), EXTERNAL);
    assert.equal(peer('2001:db8::1'), EXTERNAL);
    assert.equal(peer('10.9.9.9'), NOT_FOUND, 'no ranges known: a private address is a cluster address not found');
    assert.equal(peer('fd00::9'), NOT_FOUND);
    assert.equal(peer('10.9.9.9', attributor(false)), NOT_SYNCED);
    assert.equal(peer('10.244.1.5', attributor(false))?.name, 'web', 'what is known already answers');
    const ranged = attributor(true, ['10.244.0.0/16', 'fd00:10::/64']);
    assert.equal(peer('10.244.7.7', ranged), NOT_FOUND);
    assert.equal(peer('10.9.9.9', ranged), EXTERNAL, 'outside the known ranges');
    assert.equal(peer('fd00:10::77', ranged), NOT_FOUND);
    const off = new PeerAttributor(undefined, 'peer attribution disabled (peers.enabled: false)');
    const d = peer('10.244.1.5', off);
    assert.equal(d?.status, AttributionStatus.ATTRIBUTION_STATUS_UNKNOWN);
    assert.match(d?.reason ?? '', /disabled/);
    assert.equal(peer('127.0.0.1', off), LOOPBACK, 'loopback needs no index');
    for (const x of [LOOPBACK, EXTERNAL, NOT_FOUND, d]) assert.ok(Object.isFrozen(x));
  });

  it('an event with no socket (failed accept) gets NO_ADDRESS on both ends', () => {
    const a = attributor(true);
    const e = { timeUnixNano: 0n } as AcceptEvent;
    a.attach(e);
    assert.equal(e.peerAttribution, NO_ADDRESS);
    assert.equal(e.localAttribution, NO_ADDRESS);
  });
});
