import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type AcceptEvent, EnrichmentStatus } from '../../src/gen/doorwatch/v1/event.js';
import type { KubeMetadataSource } from '../../src/kube/source.js';
import { type EnrichedTracer, startEnrichedTracer } from '../helpers/enriched-tracer.js';
import { connectTcp } from '../helpers/fixtures.js';
import { type KubeApiServer, makePod, ownerRef } from '../helpers/kube-api-server.js';
import { type FakePod, PodSim } from '../helpers/pod-sim.js';
import { requireRoot, type Tracer } from '../helpers/tracer.js';
import { until } from '../helpers/wait.js';

// End to end on the real kernel: real cgroup v2 directories shaped like
// kubelet's, a real server inside one and in its own network namespace (like
// a pod), the real probes, the real enricher, and a Kubernetes API stand-in
// (test/helpers/kube-api-server.ts: no kube-apiserver can run here).

requireRoot();
const NODE = 'node-e2e';
const PENDING_MS = 600;

let env: EnrichedTracer | undefined;
let api: KubeApiServer;
let kube: KubeMetadataSource;
let t: Tracer;
const sim = new PodSim();

async function acceptOne(pod: FakePod, pid: number, timeoutMs = 5000): Promise<AcceptEvent> {
  const c = await connectTcp(pod.netns.ip, 8080);
  const port = c.localPort;
  const [ev] = await t.waitFor((e) => e.process?.pid === pid && e.socket?.peer?.port === port, 1, timeoutMs);
  c.close();
  return ev!;
}

before(async () => {
  env = await startEnrichedTracer({
    node: NODE,
    namespaces: { payments: { team: 'pay', 'doorwatch.io/audit': 'true' }, data: { team: 'data' } },
    pendingDeadlineMs: PENDING_MS,
  });
  ({ api, kube, tracer: t } = env);
});

after(async () => {
  await env?.stop();
  sim.cleanup();
});

describe('enrichment end to end (real cgroups, netns, probes; API stand-in)', () => {
  it('attributes an accept in a Deployment pod (systemd driver, containerd) completely', async () => {
    const pod = sim.systemdContainerdPod();
    api.addPod(
      makePod({
        name: 'web-6d8f9c7b5-x2k4q',
        namespace: 'payments',
        uid: pod.uid,
        nodeName: NODE,
        labels: { app: 'web', 'pod-template-hash': '6d8f9c7b5' },
        ownerReferences: [ownerRef('ReplicaSet', 'web-6d8f9c7b5')],
        containers: [{ name: 'web', image: 'registry.example/web:1.2', id: pod.cid, runtime: 'containerd' }],
        qosClass: 'Burstable',
        podIP: pod.netns.ip,
        serviceAccountName: 'web-sa',
      }),
    );
    const server = await sim.startServer(pod.cgroupDir, pod.netns.name);
    const ev = await acceptOne(pod, server.pid!);

    assert.equal(ev.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, ev.enrichment?.reason);
    assert.equal(ev.pod?.namespace, 'payments');
    assert.equal(ev.pod?.name, 'web-6d8f9c7b5-x2k4q');
    assert.equal(ev.pod?.uid, pod.uid);
    assert.deepEqual(ev.pod?.workload, { kind: 'Deployment', name: 'web', inferred: false });
    assert.equal(ev.pod?.labels.app, 'web');
    assert.deepEqual(ev.pod?.namespaceLabels, {
      team: 'pay',
      'doorwatch.io/audit': 'true',
      'kubernetes.io/metadata.name': 'payments',
    });
    assert.equal(ev.pod?.serviceAccount, 'web-sa');
    assert.equal(ev.pod?.qosClass, 'Burstable');
    assert.equal(ev.pod?.ip, pod.netns.ip);
    assert.equal(ev.container?.id, pod.cid);
    assert.equal(ev.container?.name, 'web');
    assert.equal(ev.container?.image, 'registry.example/web:1.2');
    assert.equal(ev.container?.runtime, 'containerd');
    assert.ok(ev.container?.cgroupPath.endsWith(`cri-containerd-${pod.cid}.scope`));
    // The accept happened in the pod's own network namespace.
    const hostNet = Number(/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'))![1]);
    assert.notEqual(ev.namespaces?.net, hostNet);
    assert.deepEqual(ev.socket?.local, { ip: pod.netns.ip, port: 8080 });
  });

  it('attributes a StatefulSet pod created after the agent started (cgroupfs driver, CRI-O)', async () => {
    const pod = sim.cgroupfsCrioPod();
    const server = await sim.startServer(pod.cgroupDir, pod.netns.name);
    api.addPod(
      makePod({
        name: 'db-0',
        namespace: 'data',
        uid: pod.uid,
        nodeName: NODE,
        labels: { app: 'db' },
        ownerReferences: [ownerRef('StatefulSet', 'db')],
        containers: [{ name: 'postgres', image: 'postgres:16', id: pod.cid, runtime: 'cri-o' }],
      }),
    );
    const ev = await acceptOne(pod, server.pid!);
    assert.equal(ev.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, ev.enrichment?.reason);
    assert.deepEqual(ev.pod?.workload, { kind: 'StatefulSet', name: 'db', inferred: false });
    assert.equal(ev.container?.runtime, 'cri-o');
    assert.equal(ev.container?.name, 'postgres');
    assert.equal(ev.pod?.qosClass, 'BestEffort');
  });

  it('still attributes an accept whose pod is deleted right after it', async () => {
    const pod = sim.systemdContainerdPod();
    api.addPod(
      makePod({
        name: 'job-pod',
        namespace: 'payments',
        uid: pod.uid,
        nodeName: NODE,
        ownerReferences: [ownerRef('Job', 'report-29384756')],
        containers: [{ name: 'report', image: 'busybox', id: pod.cid }],
      }),
    );
    const server = await sim.startServer(pod.cgroupDir, pod.netns.name);
    await until(() => kube.byContainerId(pod.cid), 'the informer has the pod');
    const c = await connectTcp(pod.netns.ip, 8080);
    const port = c.localPort;
    api.deletePod('payments', 'job-pod');
    const [ev] = await t.waitFor((e) => e.process?.pid === server.pid && e.socket?.peer?.port === port);
    c.close();
    assert.equal(ev!.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, ev!.enrichment?.reason);
    assert.equal(ev!.pod?.name, 'job-pod');
    assert.deepEqual(ev!.pod?.workload, { kind: 'CronJob', name: 'report', inferred: true });
  });

  it('keeps events flowing (partial, with the reason) while the API is down, and recovers without a restart', async () => {
    await api.stop();
    const pod = sim.systemdContainerdPod();
    const server = await sim.startServer(pod.cgroupDir, pod.netns.name);
    const down = await acceptOne(pod, server.pid!, PENDING_MS + 5000);
    assert.equal(down.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL);
    assert.deepEqual(down.enrichment?.missing, ['pod']);
    assert.match(
      down.enrichment?.reason ?? '',
      new RegExp(`container ${pod.cid} not in the Kubernetes API after ${PENDING_MS}ms`),
    );
    assert.equal(down.container?.id, pod.cid, 'what the cgroup says still goes out');
    assert.equal(down.pod?.uid, pod.uid);
    assert.ok((down.enrichment?.waitedMs ?? 0) >= PENDING_MS);

    await api.start();
    api.addPod(
      makePod({
        name: 'late',
        namespace: 'payments',
        uid: pod.uid,
        nodeName: NODE,
        containers: [{ name: 'app', image: 'x', id: pod.cid }],
      }),
    );
    await until(() => kube.byContainerId(pod.cid), 'the pod, once the API is back', 10_000);
    const back = await acceptOne(pod, server.pid!);
    assert.equal(back.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, back.enrichment?.reason);
    assert.equal(back.pod?.name, 'late');
  });

  it('marks a host process as host', async () => {
    const server = createServer((c) => c.destroy()).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as { port: number }).port;
    const c = await connectTcp('127.0.0.1', port);
    const [ev] = await t.waitFor((e) => e.process?.pid === process.pid && e.socket?.local?.port === port);
    c.close();
    server.close();
    assert.equal(ev!.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_HOST);
    assert.equal(ev!.pod, undefined);
    assert.equal(ev!.container, undefined);
  });

  it('used one list and one watch per resource in the steady state', () => {
    // Restarts during the outage add lists; nothing is per event.
    assert.ok(api.counters.lists.pods <= 1 + kube.status().restarts + 1, JSON.stringify(api.counters));
    assert.ok(kube.status().synced);
  });
});
