import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { ALL_KEYS, compileAllowList, NO_KEYS } from '../../src/kube/allow-list.js';
import { deriveWorkload, MAX_DECLARED_PORTS, parseContainerId, toNamespaceMeta, toPodMeta } from '../../src/kube/pod-meta.js';
import { makePod, ownerRef, randomContainerId } from '../helpers/kube-api-server.js';

const defaults = { labels: ALL_KEYS, annotations: NO_KEYS };

describe('container ids', () => {
  it('splits the runtime prefix off and lowercases', () => {
    const hex = 'AB'.repeat(32);
    assert.deepEqual(parseContainerId(`containerd://${hex}`), { runtime: 'containerd', id: hex.toLowerCase() });
    assert.deepEqual(parseContainerId('cri-o://0123'), { runtime: 'cri-o', id: '0123' });
    assert.deepEqual(parseContainerId('docker://beef'), { runtime: 'docker', id: 'beef' });
    assert.deepEqual(parseContainerId('beef'), { runtime: '', id: 'beef' });
  });
  it('has none for a container that has not started', () => {
    assert.equal(parseContainerId(''), undefined);
    assert.equal(parseContainerId(undefined), undefined);
    assert.equal(parseContainerId('containerd://'), undefined);
  });
});

describe('V1Pod -> PodMeta', () => {
  it('reads every field from where the API keeps it', () => {
    const app = randomContainerId();
    const init = randomContainerId();
    const debug = randomContainerId();
    const pod = makePod({
      name: 'web-7d4b9c-x2x',
      namespace: 'shop',
      uid: '3f1c2a4e-1111-4222-8333-944455556666',
      nodeName: 'node-a',
      labels: { app: 'web', 'pod-template-hash': '7d4b9c' },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
      ownerReferences: [ownerRef('ReplicaSet', 'web-7d4b9c')],
      containers: [
        { name: 'app', image: 'ghcr.io/acme/web:1.2', id: app, imageId: 'ghcr.io/acme/web@sha256:aa' },
        { name: 'starting', image: 'busybox', id: '' },
      ],
      initContainers: [{ name: 'migrate', image: 'ghcr.io/acme/migrate:1', id: init, runtime: 'cri-o' }],
      ephemeralContainers: [{ name: 'debugger', image: 'busybox:1.36', id: debug, runtime: 'docker' }],
      qosClass: 'Burstable',
      podIP: '10.244.3.7',
      serviceAccountName: 'web-sa',
    });
    const m = toPodMeta(pod, defaults);
    assert.equal(m.uid, '3f1c2a4e-1111-4222-8333-944455556666');
    assert.equal(m.namespace, 'shop');
    assert.equal(m.name, 'web-7d4b9c-x2x');
    assert.equal(m.nodeName, 'node-a');
    assert.deepEqual(m.labels, { app: 'web', 'pod-template-hash': '7d4b9c' });
    assert.deepEqual(m.annotations, {}, 'annotations are opt-in');
    assert.equal(m.serviceAccount, 'web-sa');
    assert.equal(m.podIp, '10.244.3.7');
    assert.equal(m.hostNetwork, false);
    assert.equal(m.qosClass, 'Burstable');
    assert.deepEqual(m.workload, { kind: 'Deployment', name: 'web', inferred: false });
    assert.deepEqual(m.containers, [
      { id: app, runtime: 'containerd', name: 'app', image: 'ghcr.io/acme/web:1.2', imageId: 'ghcr.io/acme/web@sha256:aa' },
      {
        id: init,
        runtime: 'cri-o',
        name: 'migrate',
        image: 'ghcr.io/acme/migrate:1',
        imageId: m.containers[1]!.imageId,
      },
      { id: debug, runtime: 'docker', name: 'debugger', image: 'busybox:1.36', imageId: m.containers[2]!.imageId },
    ]);
    assert.match(m.containers[1]!.imageId, /^ghcr\.io\/acme\/migrate@sha256:[0-9a-f]{64}$/);
    assert.equal(m.deletedAtMs, undefined);
  });

  it('is frozen: one snapshot shared by every event', () => {
    const m = toPodMeta(makePod({ name: 'p', labels: { a: 'b' } }), defaults);
    assert.ok(
      Object.isFrozen(m) && Object.isFrozen(m.labels) && Object.isFrozen(m.containers) && Object.isFrozen(m.containers[0]),
    );
  });

  it('hostNetwork pods and missing fields', () => {
    const m = toPodMeta(makePod({ name: 'kube-proxy-abcde', hostNetwork: true }), defaults);
    assert.equal(m.hostNetwork, true);
    assert.equal(m.podIp, '10.0.0.10');
    const bare = toPodMeta({ metadata: { name: 'x', namespace: 'y', uid: 'u' } } as V1Pod, defaults);
    assert.deepEqual(
      { ...bare },
      {
        uid: 'u',
        namespace: 'y',
        name: 'x',
        nodeName: '',
        labels: {},
        annotations: {},
        serviceAccount: '',
        podIp: '',
        hostNetwork: false,
        qosClass: '',
        containers: [],
        declaredPorts: [],
      },
    );
  });

  it('keeps the ports the containers and native sidecars declare (TCP when no protocol), not classic init or debug containers', () => {
    const pod = makePod({
      name: 'p',
      containers: [
        {
          name: 'app',
          image: 'x',
          ports: [
            { containerPort: 8080, name: 'http' },
            { containerPort: 53, protocol: 'UDP' },
          ],
        },
        { name: 'metrics', image: 'y', ports: [{ containerPort: 9100, protocol: 'TCP', hostPort: 9100 }] },
      ],
      initContainers: [
        { name: 'mesh', image: 'envoy', restartPolicy: 'Always', ports: [{ containerPort: 15001 }] },
        { name: 'migrate', image: 'm', ports: [{ containerPort: 5432 }] },
      ],
      ephemeralContainers: [{ name: 'debugger', image: 'busybox' }],
    });
    const m = toPodMeta(pod, defaults);
    assert.deepEqual(m.declaredPorts, [
      { containerPort: 8080, hostPort: 0, protocol: 'TCP', container: 'app', name: 'http' },
      { containerPort: 53, hostPort: 0, protocol: 'UDP', container: 'app', name: '' },
      { containerPort: 9100, hostPort: 9100, protocol: 'TCP', container: 'metrics', name: '' },
      { containerPort: 15001, hostPort: 0, protocol: 'TCP', container: 'mesh', name: '' },
    ]);
    assert.ok(Object.isFrozen(m.declaredPorts) && Object.isFrozen(m.declaredPorts![0]));
  });

  it('keeps at most MAX_DECLARED_PORTS ports', () => {
    const ports = Array.from({ length: MAX_DECLARED_PORTS + 10 }, (_, i) => ({ containerPort: 1000 + i }));
    const m = toPodMeta(makePod({ name: 'p', containers: [{ name: 'app', image: 'x', ports }] }), defaults);
    assert.equal(m.declaredPorts!.length, MAX_DECLARED_PORTS);
    assert.equal(m.declaredPorts!.at(-1)!.containerPort, 1000 + MAX_DECLARED_PORTS - 1);
  });

  it('falls back to the status image when the spec does not name the container', () => {
    const pod = makePod({ name: 'p' });
    pod.spec!.containers = [];
    assert.equal(toPodMeta(pod, defaults).containers[0]!.image, 'nginx:1.27');
  });
});

describe('workload derivation', () => {
  const w = (kind: string, name: string, labels: Record<string, string> = {}) =>
    deriveWorkload(makePod({ name: 'p', labels, ownerReferences: [ownerRef(kind, name)] }));

  it('ReplicaSet -> Deployment when the pod-template-hash label matches the suffix (exact)', () => {
    assert.deepEqual(w('ReplicaSet', 'api-server-5f7c8d9b6', { 'pod-template-hash': '5f7c8d9b6' }), {
      kind: 'Deployment',
      name: 'api-server',
      inferred: false,
    });
  });
  it('a ReplicaSet without a matching hash is the workload itself', () => {
    assert.deepEqual(w('ReplicaSet', 'standalone'), { kind: 'ReplicaSet', name: 'standalone', inferred: false });
    assert.deepEqual(w('ReplicaSet', 'api-abc', { 'pod-template-hash': 'zzz' }), {
      kind: 'ReplicaSet',
      name: 'api-abc',
      inferred: false,
    });
    // The hash alone is not a name.
    assert.deepEqual(w('ReplicaSet', '-abc', { 'pod-template-hash': 'abc' }), {
      kind: 'ReplicaSet',
      name: '-abc',
      inferred: false,
    });
  });
  it('Job -> CronJob from the scheduled-minute suffix (inferred); other Jobs stay Jobs', () => {
    assert.deepEqual(w('Job', 'nightly-backup-29012345'), { kind: 'CronJob', name: 'nightly-backup', inferred: true });
    assert.deepEqual(w('Job', 'worker-2'), { kind: 'Job', name: 'worker-2', inferred: false });
    assert.deepEqual(w('Job', 'db-migrate'), { kind: 'Job', name: 'db-migrate', inferred: false });
  });
  it('StatefulSet, DaemonSet and other controllers as named; none for a bare pod', () => {
    assert.deepEqual(w('StatefulSet', 'db'), { kind: 'StatefulSet', name: 'db', inferred: false });
    assert.deepEqual(w('DaemonSet', 'doorwatch'), { kind: 'DaemonSet', name: 'doorwatch', inferred: false });
    assert.deepEqual(w('Node', 'node-a'), { kind: 'Node', name: 'node-a', inferred: false });
    assert.equal(deriveWorkload(makePod({ name: 'bare' })), undefined);
  });
  it('prefers the controller reference over other owners', () => {
    const gcOnly = { ...ownerRef('ConfigMap', 'cm', 'v1'), controller: false };
    const pod = makePod({ name: 'p', ownerReferences: [gcOnly, ownerRef('StatefulSet', 'db')] });
    assert.deepEqual(deriveWorkload(pod), { kind: 'StatefulSet', name: 'db', inferred: false });
  });
});

describe('label and annotation allow-lists', () => {
  const labels = { app: 'web', 'app.kubernetes.io/name': 'web', 'app.kubernetes.io/version': '1', team: 'x', secretish: 'y' };

  it('exact keys and prefix* globs', () => {
    const keep = compileAllowList(['team', 'app.kubernetes.io/*'], ALL_KEYS);
    const m = toPodMeta(makePod({ name: 'p', labels }), { labels: keep, annotations: NO_KEYS });
    assert.deepEqual(m.labels, { 'app.kubernetes.io/name': 'web', 'app.kubernetes.io/version': '1', team: 'x' });
  });
  it('defaults: all labels, no annotations; an empty list keeps nothing; * keeps all', () => {
    assert.equal(compileAllowList(undefined, ALL_KEYS)('anything'), true);
    assert.equal(compileAllowList(undefined, NO_KEYS)('anything'), false);
    assert.equal(compileAllowList([], ALL_KEYS)('app'), false);
    assert.equal(compileAllowList(['*'], NO_KEYS)('anything'), true);
  });
  it('annotations when opted in', () => {
    const pod = makePod({ name: 'p', annotations: { 'doorwatch.io/tier': 'edge', 'other/x': 'y' } });
    const m = toPodMeta(pod, { labels: ALL_KEYS, annotations: compileAllowList(['doorwatch.io/*'], NO_KEYS) });
    assert.deepEqual(m.annotations, { 'doorwatch.io/tier': 'edge' });
  });
  it('namespace labels use the same filter', () => {
    const ns = toNamespaceMeta(
      { metadata: { name: 'shop', labels: { team: 'x', env: 'prod' } } },
      compileAllowList(['env'], ALL_KEYS),
    );
    assert.deepEqual(ns, { name: 'shop', labels: { env: 'prod' } });
  });
});
