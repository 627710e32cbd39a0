import assert from 'node:assert/strict';
import { rmdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AcceptProbes } from '../../src/bpf/accept-probes.js';
import { type Pipeline, startPipeline } from '../../src/cli/pipeline.js';
import { type AcceptEvent, EventKind, PolicyOrigin, SummaryReason } from '../../src/gen/doorwatch/v1/event.js';
import type { KubeMetadataSource } from '../../src/kube/source.js';
import { silentLogger } from '../../src/log/logger.js';
import { parsePolicyConfig } from '../../src/policy/config.js';
import type { PolicySource } from '../../src/policy/controller.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { type PolicyReport, type PolicyRow, policyReportOf } from '../../src/policy/report.js';
import { type PolicyResource, parseResource } from '../../src/policy/resource.js';
import type { KubeApiServer } from '../helpers/kube-api-server.js';
import { startKubeStandIn } from '../helpers/kube-stand-in.js';
import { PodSim } from '../helpers/pod-sim.js';
import { SimPods } from '../helpers/sim-pods.js';
import { requireRoot } from '../helpers/tracer.js';
import { until } from '../helpers/wait.js';

// Per-namespace audit policies end to end on the real kernel: kubelet-shaped
// cgroups with real servers in their own network namespaces (test/helpers/
// pod-sim.ts), the real probes and policy maps, the real pipeline
// (capture -> enrich -> policy), and a Kubernetes API stand-in
// (test/helpers/kube-api-server.ts: no kube-apiserver can run here). The
// AcceptAuditPolicy objects come from a controllable source here; the live
// watch of the objects through the API is test/kernel/policy-watch-e2e.test.ts.

requireRoot();
const NODE = 'node-policy';

/** AcceptAuditPolicy objects as the watcher would hand them over. */
class Resources implements PolicySource {
  list: PolicyResource[] = [];
  #fns: (() => void)[] = [];
  synced = () => true;
  policies = () => this.list;
  on(_e: 'change', fn: () => void) {
    this.#fns.push(fn);
  }
  set(objs: { namespace: string; name: string; spec: unknown }[]) {
    this.list = objs.map((o, i) => {
      const r = parseResource(
        { metadata: { namespace: o.namespace, name: o.name, uid: `u${i}`, generation: ++gen }, spec: o.spec },
        'doorwatch',
      );
      assert.ok(r.ok, JSON.stringify(!r.ok && r.rejected.problems));
      return r.policy;
    });
    for (const f of this.#fns) f();
  }
}
let gen = 0;

let api: KubeApiServer;
let kube: KubeMetadataSource;
let probes: AcceptProbes;
let pipe: Pipeline;
const events: AcceptEvent[] = [];
const resources = new Resources();
const sim = new PodSim();
let simPods: SimPods;

const fromPod = (name: string) => simPods.of(events, name);
const report = (): PolicyReport => policyReportOf(pipe.policy!);
const row = (key: string): PolicyRow => report().rows.find((r) => r.key === key) ?? assert.fail(`no report row ${key}`);
const mapped = (name: string) => pipe.policy!.sync.isMapped(simPods.get(name).cgroupId, 2);

before(async () => {
  ({ api, kube } = await startKubeStandIn({ node: NODE, namespaces: { payments: {}, 'kube-system': {}, 'ci-7': {}, shop: {} } }));
  simPods = new SimPods(api, sim, NODE);
  const config = parsePolicyConfig(
    {
      summaryInterval: '1h', // flushed explicitly by the tests
      default: { mode: 'events' },
      host: { mode: 'events' },
      rules: [
        { name: 'ci-summaries', namespaces: ['ci-*'], mode: 'summary' },
        { name: 'kube-system-off', namespaces: ['kube-system'], mode: 'off' },
      ],
    },
    { source: 'test', defaultAdminNamespace: 'doorwatch' },
  );
  const engine = new PolicyEngine(config);
  resources.set([{ namespace: 'payments', name: 'audit-all', spec: { mode: 'events' } }]);
  probes = AcceptProbes.load({ ringBytes: 1 << 22, includeEagain: false, log: silentLogger });
  pipe = startPipeline({
    probes,
    kube: { source: kube, detail: 'stand-in' },
    nodeName: NODE,
    pollMs: 5,
    pendingDeadlineMs: 1000,
    emit: (b) => events.push(...b),
    log: silentLogger,
    policy: { engine, resources },
  });
  await simPods.add('payments', 'pay');
  await simPods.add('kube-system', 'dns');
  await simPods.add('ci-7', 'runner');
  await simPods.add('shop', 'web');
  pipe.policy!.controller.requestReconcile(true);
  await until(() => Object.keys(simPods.byName).every(mapped), 'every pod cgroup mapped to its policy in the kernel', 10_000);
});

after(async () => {
  pipe?.stop();
  probes?.close();
  await kube?.stop();
  await api?.close();
  sim.cleanup();
});

describe('per-namespace audit policies (real kernel, cgroups, netns; API stand-in)', () => {
  it('emits every accept of an audited namespace, stamped with its policy', async () => {
    await simPods.accepts('pay', 5);
    const got = await until(() => (fromPod('pay').length >= 5 ? fromPod('pay') : undefined), 'payments events');
    assert.equal(got.length, 5);
    for (const e of got) {
      assert.equal(e.kind, EventKind.EVENT_KIND_ACCEPT);
      assert.deepEqual({ ...e.policy }, { origin: PolicyOrigin.POLICY_ORIGIN_RESOURCE, name: 'payments/audit-all', mode: 1 });
    }
  });

  it('lets nothing of an unaudited namespace reach userspace, and counts it per policy in the kernel', async () => {
    const before = row('rule:kube-system-off').kernel.off;
    const delivered = pipe.capture.stats().delivered;
    await simPods.accepts('dns', 20);
    await until(() => row('rule:kube-system-off').kernel.off - before === 20n, 'kernel off counter +20', 3000);
    await simPods.accepts('pay', 1); // a marker behind them in the ring
    await until(() => fromPod('pay').length >= 6, 'marker event');
    assert.equal(fromPod('dns').length, 0);
    const r = row('rule:kube-system-off');
    assert.deepEqual([r.name, r.mode], ['kube-system-off', 'off'], 'named by the engine: the stage never saw it');
    assert.equal(r.kernel.emitted, 0n);
    assert.equal(r.user.filtered.off, 0, 'decided in the kernel, not in userspace');
    // Only the marker crossed the ring meanwhile (the host may add its own accepts).
    assert.ok(pipe.capture.stats().delivered - delivered >= 1n);
    assert.equal(row('resource:payments/audit-all').kernel.emitted, 6n);
  });

  it('folds summary-mode accepts into summary records with exact counts', async () => {
    await simPods.accepts('runner', 30);
    await until(() => row('rule:ci-summaries').user.summarized >= 30, 'accepts folded', 5000);
    assert.equal(fromPod('runner').length, 0, 'no individual events in summary mode');
    pipe.policy!.stage.flush();
    const sums = fromPod('runner');
    assert.equal(sums.length, 1, 'one (pod, port, peer) key');
    const s = sums[0]!;
    assert.equal(s.kind, EventKind.EVENT_KIND_SUMMARY);
    assert.equal(s.summary?.reason, SummaryReason.SUMMARY_REASON_MODE);
    assert.equal(s.summary?.count, 30n);
    assert.equal(s.summary?.failedCount, 0n);
    assert.equal(s.summary?.localPort, 8080);
    assert.equal(s.summary?.peerIp, s.socket?.peer?.ip);
    assert.ok(s.summary!.lastTimeUnixNano >= s.summary!.firstTimeUnixNano);
    assert.equal(s.pod?.namespace, 'ci-7');
    assert.equal(s.policy?.name, 'ci-summaries');
  });

  it('switches to summaries above the rate limit, and every accept is counted once', async () => {
    resources.set([
      { namespace: 'payments', name: 'audit-all', spec: { mode: 'events', rateLimit: { eventsPerSecond: 1, burst: 10 } } },
    ]);
    await sleep(300);
    const before = fromPod('pay').length;
    await simPods.accepts('pay', 60);
    await until(
      () => row('resource:payments/audit-all').user.events + row('resource:payments/audit-all').user.summarized >= 60 + before,
      'all accounted',
      5000,
    );
    pipe.policy!.stage.flush();
    const after = fromPod('pay').slice(before);
    const single = after.filter((e) => e.kind === EventKind.EVENT_KIND_ACCEPT).length;
    const folded = after
      .filter((e) => e.kind === EventKind.EVENT_KIND_SUMMARY)
      .reduce((a, e) => {
        assert.equal(e.summary?.reason, SummaryReason.SUMMARY_REASON_RATE_LIMIT);
        return a + Number(e.summary!.count);
      }, 0);
    assert.ok(single >= 10 && single <= 13, `burst of 10 (+ refill) as events, got ${single}`);
    assert.equal(single + folded, 60, 'nothing above the limit is dropped uncounted');
  });

  it('filters listening ports and peers in the kernel', async () => {
    const hostSide = simPods.get('web').pod.netns.ip.replace(/\.2$/, '.1');
    resources.set([
      { namespace: 'payments', name: 'audit-all', spec: { mode: 'events', ports: { include: ['9000-9100'] } } },
      {
        namespace: 'shop',
        name: 'no-host',
        spec: { mode: 'events', peers: { include: ['10.0.0.0/8'], exclude: [`${hostSide}/32`] } },
      },
    ]);
    await until(() => pipe.policy!.sync.slotOf('resource:shop/no-host') !== undefined && mapped('web'), 'new policy mapped');
    await sleep(200);
    const payBefore = fromPod('pay').length;
    await simPods.accepts('pay', 4);
    await simPods.accepts('web', 4);
    await until(
      () => row('resource:payments/audit-all').kernel.port >= 4n && row('resource:shop/no-host').kernel.peer >= 4n,
      'filtered in kernel',
      3000,
    );
    await simPods.accepts('dns', 1);
    await sleep(100);
    assert.equal(fromPod('pay').length, payBefore);
    assert.equal(fromPod('web').length, 0);
    // The most specific prefix decides: the /32 exclude beats the /8 include.
    assert.equal(row('resource:shop/no-host').kernel.emitted, 0n);
  });

  it("unmaps a container's cgroup when it goes", async () => {
    const dns = simPods.get('dns');
    assert.ok(mapped('dns'));
    process.kill(dns.pid, 'SIGKILL');
    await until(() => {
      try {
        rmdirSync(dns.pod.cgroupDir); // removable once the process is reaped
        return true;
      } catch {
        return false;
      }
    }, 'the container cgroup removed');
    pipe.policy!.controller.requestReconcile(true);
    await until(() => !mapped('dns'), 'cgroup unmapped from the kernel filter', 5000);
  });

  it('applies a policy change within a second, both ways', async () => {
    resources.set([{ namespace: 'payments', name: 'audit-all', spec: { mode: 'off' } }]);
    await sleep(1000);
    const n = fromPod('pay').length;
    await simPods.accepts('pay', 3);
    await sleep(200);
    assert.equal(fromPod('pay').length, n, 'off within a second');
    resources.set([{ namespace: 'payments', name: 'audit-all', spec: { mode: 'events' } }]);
    await sleep(1000);
    await simPods.accepts('pay', 3);
    await until(() => fromPod('pay').length === n + 3, 'events again within a second', 2000);
  });
});
