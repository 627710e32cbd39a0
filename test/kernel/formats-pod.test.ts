import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatLine, formatRecord } from '../../src/formats/format.js';
import { EnrichmentStatus } from '../../src/gen/doorwatch/v1/event.js';
import { type EnrichedTracer, startEnrichedTracer } from '../helpers/enriched-tracer.js';
import { connectTcp } from '../helpers/fixtures.js';
import { type KubeApiServer, makePod, ownerRef } from '../helpers/kube-api-server.js';
import { PodSim } from '../helpers/pod-sim.js';
import { loadEcs, validateEcs } from '../helpers/schemas/ecs.js';
import { loadOcsf, validateOcsf } from '../helpers/schemas/ocsf.js';
import { loadTraceeSource, validateTracee } from '../helpers/schemas/tracee.js';
import { requireRoot, type Tracer } from '../helpers/tracer.js';

// A real accept in a pod-shaped place (real cgroup v2 directories like kubelet's, its own network namespace,
// the real probes and enricher; the Kubernetes API is a stand-in, test/helpers/kube-api-server.ts: no
// kube-apiserver runs here), fully attributed, then formatted: valid under OCSF 1.7.0, ECS 8.11.0 and
// Tracee's event shape, with the pod and container where each format puts them.

requireRoot();
const NODE = 'node-formats';
let env: EnrichedTracer | undefined;
let api: KubeApiServer;
let t: Tracer;
const sim = new PodSim();

before(async () => {
  env = await startEnrichedTracer({ node: NODE, namespaces: { shop: { team: 'web' } }, pendingDeadlineMs: 600 });
  ({ api, tracer: t } = env);
});

after(async () => {
  await env?.stop();
  sim.cleanup();
});

describe('a real, fully attributed pod accept in every format', () => {
  it('is valid in OCSF, ECS and Tracee, with the pod and container mapped', async () => {
    const pod = sim.systemdContainerdPod();
    api.addPod(
      makePod({
        name: 'web-6d8f9c7b5-x2k4q',
        namespace: 'shop',
        uid: pod.uid,
        nodeName: NODE,
        labels: { app: 'web', 'app.kubernetes.io/name': 'web' },
        ownerReferences: [ownerRef('ReplicaSet', 'web-6d8f9c7b5')],
        containers: [{ name: 'web', image: 'registry.example/web:1.2', id: pod.cid, runtime: 'containerd' }],
        podIP: pod.netns.ip,
      }),
    );
    const server = await sim.startServer(pod.cgroupDir, pod.netns.name);
    const c = await connectTcp(pod.netns.ip, 8080);
    const [ev] = await t.waitFor((e) => e.process?.pid === server.pid && e.socket?.peer?.port === c.localPort, 1, 5000);
    c.close();
    assert.equal(ev!.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, ev!.enrichment?.reason);
    const rec = { kind: 'event' as const, event: ev! };

    const o = formatRecord(rec, 'ocsf') as { actor: { process: { container: { pod_uuid: string } } } };
    assert.deepEqual(validateOcsf(loadOcsf(), o), []);
    assert.deepEqual(validateOcsf(loadOcsf(), JSON.parse(formatLine(rec, 'ocsf'))), []);
    assert.equal(o.actor.process.container.pod_uuid, pod.uid);

    const e = formatRecord(rec, 'ecs') as { orchestrator: { resource: { id: string } } };
    assert.deepEqual(validateEcs(loadEcs(), e), []);
    assert.equal(e.orchestrator.resource.id, pod.uid);

    const line = formatLine(rec, 'tracee');
    assert.deepEqual(validateTracee(loadTraceeSource(), line), []);
    const tr = JSON.parse(line) as { containerId: string; container: object; kubernetes: object; hostName: string };
    assert.equal(tr.containerId, pod.cid);
    assert.ok(ev!.container?.imageId, 'the stand-in reports an image id');
    assert.deepEqual(tr.container, {
      id: pod.cid,
      name: 'web',
      image: 'registry.example/web:1.2',
      imageDigest: ev!.container!.imageId,
    });
    assert.deepEqual(tr.kubernetes, { podName: 'web-6d8f9c7b5-x2k4q', podNamespace: 'shop', podUID: pod.uid });
    assert.equal(tr.hostName, 'web-6d8f9c7b5-x2k4q');
  });
});
