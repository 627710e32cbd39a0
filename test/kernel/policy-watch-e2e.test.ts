import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AcceptProbes } from '../../src/bpf/accept-probes.js';
import { type Pipeline, startPipeline } from '../../src/cli/pipeline.js';
import type { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import type { KubeMetadataSource } from '../../src/kube/source.js';
import { silentLogger } from '../../src/log/logger.js';
import { parsePolicyConfig } from '../../src/policy/config.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import type { PolicyMaps } from '../../src/policy/kernel-sync.js';
import { type PolicyRow, policyReportOf } from '../../src/policy/report.js';
import { PolicyWatcher } from '../../src/policy/watch.js';
import type { KubeApiServer } from '../helpers/kube-api-server.js';
import { FAST_BACKOFF, startKubeStandIn } from '../helpers/kube-stand-in.js';
import { PodSim } from '../helpers/pod-sim.js';
import { SimPods } from '../helpers/sim-pods.js';
import { requireRoot } from '../helpers/tracer.js';
import { until } from '../helpers/wait.js';

// AcceptAuditPolicy objects applied live through the API (stand-in:
// test/helpers/kube-api-server.ts, no kube-apiserver can run here) to the real
// kernel: real kubelet-shaped cgroups, servers in their own network
// namespaces, the real probes, watcher and pipeline.

requireRoot();
const NODE = 'node-policy-watch';

let api: KubeApiServer;
let kube: KubeMetadataSource;
let watcher: PolicyWatcher;
let probes: AcceptProbes;
let pipe: Pipeline;
const events: AcceptEvent[] = [];
const sim = new PodSim();
let simPods: SimPods;
/** cgroup ids the kernel sync must leave unmapped: their accepts are decided in userspace. */
const refuse = new Set<bigint>();

const fromPod = (name: string) => simPods.of(events, name);
const row = (key: string): PolicyRow | undefined => policyReportOf(pipe.policy!).rows.find((r) => r.key === key);
const policy = (namespace: string, name: string, spec: unknown) =>
  api.upsertPolicy({ metadata: { namespace, name }, spec: spec as Record<string, unknown> });

before(async () => {
  const k8s = await startKubeStandIn({ node: NODE, namespaces: { payments: {}, orders: {}, 'twin-a': {}, 'twin-b': {} } });
  ({ api, kube } = k8s);
  simPods = new SimPods(api, sim, NODE);
  watcher = new PolicyWatcher({
    kubeConfig: k8s.kubeConfig,
    adminNamespace: 'doorwatch',
    writeStatus: true,
    log: silentLogger,
    backoff: FAST_BACKOFF,
    statusJitterMs: 0,
  });
  policy('payments', 'audit', { mode: 'events' });
  await watcher.start();
  const engine = new PolicyEngine(
    parsePolicyConfig(
      { summaryInterval: '1h', default: { mode: 'events' } },
      { source: 'test', defaultAdminNamespace: 'doorwatch' },
    ),
  );
  probes = AcceptProbes.load({ ringBytes: 1 << 22, includeEagain: false, log: silentLogger });
  // The real maps, except that some cgroups are refused as if the map were full.
  const maps: PolicyMaps = {
    setPolicyFiltering: (on, slot) => probes.setPolicyFiltering(on, slot),
    writePolicySlot: (s, b) => probes.writePolicySlot(s, b),
    setPeerRule: (s, a, p, x) => probes.setPeerRule(s, a, p, x),
    deletePeerRule: (s, a, p) => probes.deletePeerRule(s, a, p),
    setCgroupSlot: (id, v, s) => {
      if (refuse.has(id)) throw new Error('E2BIG (test: map full)');
      probes.setCgroupSlot(id, v, s);
    },
    deleteCgroup: (id, v) => probes.deleteCgroup(id, v),
    slotCounters: (s) => probes.slotCounters(s),
  };
  pipe = startPipeline({
    probes,
    kube: { source: kube, detail: 'stand-in' },
    nodeName: NODE,
    pollMs: 5,
    pendingDeadlineMs: 1000,
    emit: (b) => events.push(...b),
    log: silentLogger,
    policy: { engine, resources: watcher },
    policyMaps: maps,
  });
  await simPods.add('payments', 'pay');
  await simPods.add('orders', 'orders');
  await simPods.add('twin-a', 'kernel-twin');
  await simPods.add('twin-b', 'user-twin');
  refuse.add(simPods.get('user-twin').cgroupId);
  pipe.policy!.controller.requestReconcile(true);
  await until(
    () => ['pay', 'orders', 'kernel-twin'].every((n) => pipe.policy!.sync.isMapped(simPods.get(n).cgroupId, 2)),
    'pod cgroups mapped',
    10_000,
  );
});

after(async () => {
  pipe?.stop();
  probes?.close();
  await watcher?.stop();
  await kube?.stop();
  await api?.close();
  sim.cleanup();
});

describe('AcceptAuditPolicy objects applied live to the kernel (API stand-in)', () => {
  it('audits a namespace as soon as its policy is accepted, and marks it Accepted', async () => {
    await simPods.accepts('pay', 3);
    await until(() => fromPod('pay').length === 3, 'payments events');
    assert.equal(fromPod('pay')[0]!.policy?.name, 'payments/audit');
    const cond = await until(() => api.getPolicy('payments', 'audit')?.status?.conditions?.[0], 'status condition');
    assert.equal(cond.type, 'Accepted');
    assert.equal(cond.status, 'True');
  });

  it('turns a namespace off through the API within a second, and back on', async () => {
    const t0 = Date.now();
    policy('orders', 'quiet', { mode: 'off' });
    await sleep(1000);
    await simPods.accepts('orders', 5);
    await until(() => (row('resource:orders/quiet')?.kernel.off ?? 0n) === 5n, 'kernel off +5', 2000);
    assert.equal(fromPod('orders').length, 0);
    assert.ok(Date.now() - t0 < 5000);
    api.deletePolicy('orders', 'quiet');
    await sleep(1000);
    await simPods.accepts('orders', 2);
    await until(() => fromPod('orders').length === 2, 'back to the default (events) within a second', 2000);
    assert.equal(fromPod('orders')[0]!.policy?.name, 'default');
  });

  it('never applies an invalid policy, even in part, and says why on the object', async () => {
    // Invalid from its creation: governs nothing, orders stays on the default (events).
    policy('orders', 'broken', { mode: 'sometimes', peers: { include: ['192.168.1.0/33'] } });
    const fresh = await until(() => {
      const c = api.getPolicy('orders', 'broken')?.status?.conditions?.[0];
      return c?.status === 'False' ? c : undefined;
    }, 'Accepted=False (new object)');
    assert.equal(fresh.reason, 'InvalidSpec');
    assert.match(String(fresh.message), /mode/);
    assert.match(String(fresh.message), /192\.168\.1\.0\/33/, 'every problem, not only the first');
    await sleep(500);
    const o = fromPod('orders').length;
    await simPods.accepts('orders', 2);
    await until(() => fromPod('orders').length === o + 2, 'orders still audited');
    assert.equal(fromPod('orders').at(-1)!.policy?.name, 'default');
    api.deletePolicy('orders', 'broken');

    // A valid object edited into an invalid one: its last valid version stays enforced (docs/policy.md).
    policy('payments', 'audit', { mode: 'off', peers: { include: ['10.0.0.300/8'] } });
    const cond = await until(() => {
      const c = api.getPolicy('payments', 'audit')?.status?.conditions?.[0];
      return c?.status === 'False' ? c : undefined;
    }, 'Accepted=False');
    assert.equal(cond.reason, 'InvalidSpec');
    assert.match(String(cond.message), /10\.0\.0\.300\/8/);
    assert.match(String(cond.message), /last valid version/);
    await sleep(500);
    const n = fromPod('pay').length;
    await simPods.accepts('pay', 2);
    // Not mode off (the invalid edit): still audited under the last valid payments/audit.
    await until(() => fromPod('pay').length === n + 2, 'still audited');
    assert.equal(fromPod('pay').at(-1)!.policy?.name, 'payments/audit');
  });

  it('decides the same in userspace as in the kernel for a cgroup it could not map', async () => {
    const spec = { mode: 'events', ports: { include: ['8000-8100'], exclude: [8080] }, failedAccepts: false };
    policy('twin-a', 'same', spec);
    policy('twin-b', 'same', spec);
    await until(
      () => row('resource:twin-a/same') !== undefined || pipe.policy!.sync.slotOf('resource:twin-a/same') !== undefined,
      'policies applied',
    );
    await sleep(500);
    assert.ok(pipe.policy!.sync.isMapped(simPods.get('kernel-twin').cgroupId, 2));
    assert.ok(!pipe.policy!.sync.isMapped(simPods.get('user-twin').cgroupId, 2), 'refused: stays on the default slot');
    await simPods.accepts('kernel-twin', 4);
    await simPods.accepts('user-twin', 4);
    await until(() => (row('resource:twin-a/same')?.kernel.port ?? 0n) === 4n, 'kernel filtered on port', 3000);
    await until(() => row('resource:twin-b/same')?.user.filtered.port === 4, 'userspace filtered on port', 3000);
    assert.equal(fromPod('kernel-twin').length, 0);
    assert.equal(fromPod('user-twin').length, 0);
    // Each decided where it should have: no kernel filtering for the unmapped one, no userspace for the mapped one.
    assert.equal(row('resource:twin-b/same')?.kernel.port ?? 0n, 0n);
    assert.equal(row('resource:twin-a/same')?.user.filtered.port, 0);
  });
});
