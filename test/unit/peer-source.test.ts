import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseCollectorConfig } from '../../src/collector/config.js';
import { EXTERNAL, NOT_FOUND, NOT_SYNCED, PeerAttributor } from '../../src/collector/peers/attributor.js';
import { Side } from '../../src/collector/peers/index-store.js';
import { PeerSource } from '../../src/collector/peers/source.js';
import { ConfigError } from '../../src/config/errors.js';
import { OwnerKind } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { makePod } from '../helpers/kube-api-server.js';
import { FAST_BACKOFF, type KubeStandIn, kubeApiStandIn } from '../helpers/kube-stand-in.js';
import { memorySinks } from '../helpers/memory-sink.js';
import { until } from '../helpers/wait.js';

/** The collector's peer source against the Kubernetes API stand-in (no kube-apiserver here): list+watch of pods, Services, nodes. */

let s: KubeStandIn;
const sources: PeerSource[] = [];
const NOW = () => Date.now();

function source(o: Partial<ConstructorParameters<typeof PeerSource>[0]> = {}): PeerSource {
  const p = new PeerSource({ kubeConfig: s.kubeConfig, log: silentLogger, backoff: FAST_BACKOFF, maintainEveryMs: 50, ...o });
  sources.push(p);
  return p;
}

const name = (a: unknown) => (a as { name?: string } | undefined)?.name;

before(async () => {
  s = await kubeApiStandIn();
  s.api.addNode({
    metadata: { name: 'node-a', labels: { zone: 'z1' } },
    spec: { podCIDRs: ['10.244.1.0/24'] },
    status: {
      addresses: [
        { type: 'InternalIP', address: '192.168.10.1' },
        { type: 'ExternalIP', address: '203.0.113.5' },
      ],
    },
  });
  s.api.addService({ metadata: { name: 'api', namespace: 'shop' }, spec: { clusterIP: '10.96.0.7', clusterIPs: ['10.96.0.7'] } });
  s.api.addPod(makePod({ name: 'web-0', namespace: 'shop', nodeName: 'node-a', podIP: '10.244.1.9' }));
});

after(async () => {
  await Promise.all(sources.map((p) => p.stop()));
  await s?.api.close();
});

describe('peer source (API stand-in)', () => {
  it('one list and one watch per resource, cluster-wide; pods, Services and nodes resolve; node podCIDRs are cluster ranges', async () => {
    const p = source();
    await p.start();
    await until(() => p.status().connected, 'three watches open', 5000);
    const st = p.status();
    assert.deepEqual([st.synced, st.pods, st.services, st.nodes, st.clusterRanges], [true, 1, 1, 1, 1]);
    assert.equal(s.api.counters.lists.pods >= 1, true);
    assert.deepEqual(s.api.peerCounters.lists, { services: 1, nodes: 1 });
    assert.deepEqual(s.api.peerCounters.watches, { services: 1, nodes: 1 });
    const podWatch = s.api.requests.filter((r) => r.resource === 'pods' && r.watch);
    assert.ok(podWatch.length >= 1 && podWatch.every((r) => !r.query.fieldSelector), 'every node’s pods, no field selector');
    const a = new PeerAttributor(p, undefined, NOW);
    const t = Date.now();
    assert.equal(name(a.resolve('10.244.1.9', t, Side.Peer)), 'web-0');
    assert.equal(a.resolve('10.96.0.7', t, Side.Peer).kind, OwnerKind.OWNER_KIND_SERVICE);
    assert.equal(a.resolve('203.0.113.5', t, Side.Peer).kind, OwnerKind.OWNER_KIND_NODE);
    assert.equal(a.resolve('192.168.10.1', t, Side.Peer).labels.zone, 'z1');
    assert.equal(a.resolve('10.244.1.200', t, Side.Peer), NOT_FOUND, 'in the node’s podCIDR');
    assert.equal(a.resolve('10.50.0.1', t, Side.Peer), EXTERNAL, 'outside the known ranges');
  });

  it('follows the watch: a new pod resolves, a deleted one ends (kept for late events)', async () => {
    const p = source();
    await p.start();
    const a = new PeerAttributor(p, undefined, NOW);
    s.api.addPod(makePod({ name: 'job-1', namespace: 'shop', nodeName: 'node-a', podIP: '10.244.1.10' }));
    await until(() => name(a.resolve('10.244.1.10', Date.now(), Side.Peer)) === 'job-1', 'the new pod', 5000);
    const during = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    s.api.deletePod('shop', 'job-1');
    await until(() => p.status().ended === 1, 'the deletion', 5000);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(name(a.resolve('10.244.1.10', during, Side.Peer)), 'job-1', 'an event from while it held the address');
    assert.equal(a.resolve('10.244.1.10', Date.now(), Side.Peer), NOT_FOUND, 'released');
  });

  it('RBAC refused: not synced (unknown addresses say so), and the error names the collector’s RBAC', async () => {
    s.api.forbid('nodes');
    try {
      const p = source();
      await p.start();
      const st = p.status();
      assert.equal(st.synced, false);
      assert.match(st.lastError ?? '', /403.*collector's ServiceAccount needs get\/list\/watch on pods, services and nodes/);
      const a = new PeerAttributor(p, undefined, NOW);
      assert.equal(a.resolve('10.250.0.1', Date.now(), Side.Peer), NOT_SYNCED);
      assert.equal(name(a.resolve('10.244.1.9', Date.now(), Side.Peer)), 'web-0', 'what the other informers know still answers');
    } finally {
      s.api.forbid('nodes', false);
    }
  });
});

describe('collector config: peers', () => {
  const registry = { memory: memorySinks().factory };
  const parse = (peers: unknown) =>
    parseCollectorConfig({ insecure: true, peers, sinks: [{ name: 'm', type: 'memory' }] }, 'test.yaml', registry);

  it('defaults: off, 5m of history', () => {
    const c = parseCollectorConfig({ insecure: true, sinks: [{ name: 'm', type: 'memory' }] }, 'test.yaml', registry);
    assert.deepEqual(c.peers, { enabled: false, historyMs: 300_000, maxEndedHoldings: 200_000, clusterCidrs: [] });
    assert.deepEqual(parse({ enabled: true, history: '90s', clusterCidrs: ['10.96.0.0/12'], labelAllowList: ['app'] }).peers, {
      enabled: true,
      historyMs: 90_000,
      maxEndedHoldings: 200_000,
      labelAllowList: ['app'],
      clusterCidrs: ['10.96.0.0/12'],
    });
  });

  it('every problem by key', () => {
    assert.throws(
      () => parse({ enabled: 'yes', history: 'soon', clusterCidrs: ['10.0.0.0/33'], bogus: 1 }),
      (e: unknown) => {
        const msg = (e as ConfigError).problems.join('\n');
        assert.ok(e instanceof ConfigError);
        assert.match(msg, /peers\.enabled/);
        assert.match(msg, /peers\.history/);
        assert.match(msg, /peers\.clusterCidrs\[0\]: expected a CIDR/);
        assert.match(msg, /unknown key "bogus" at peers/);
        return true;
      },
    );
  });
});
