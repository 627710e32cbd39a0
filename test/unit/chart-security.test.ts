import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CERT_MANAGER_API, find, type K8sObject, PROMETHEUS_API, type RenderOptions, render } from '../helpers/helm.js';

/**
 * The security properties a platform team checks before accepting the chart,
 * asserted on what it renders (test/helm-render stands in for helm).
 */

/** The value sets of chart-render.test.ts that change workloads, each rendered once. */
const VARIANTS: Record<string, RenderOptions> = {
  default: {},
  certManager: { set: ['tls.mode=certManager'], apiVersions: [CERT_MANAGER_API] },
  secret: { values: [{ tls: { mode: 'secret', secret: { serverSecretName: 'dw-server', clientSecretName: 'dw-client' } } }] },
  serviceMonitor: { set: ['serviceMonitor.enabled=true'], apiVersions: [PROMETHEUS_API] },
  hpa: { set: ['collector.autoscaling.enabled=true'] },
  networkPolicyOff: { set: ['networkPolicy.enabled=false'] },
  kube127: { kubeVersion: 'v1.27.0' },
};

function agentContainer(objects: K8sObject[]): K8sObject {
  return find(objects, 'DaemonSet').spec.template.spec.containers[0];
}

/** The agent's and the collector's pod specs (both must be there: a check over none would pass vacuously). */
function podSpecs(objects: K8sObject[]): [string, K8sObject][] {
  const specs = objects
    .filter((o) => o.kind === 'DaemonSet' || o.kind === 'Deployment')
    .map((o): [string, K8sObject] => [`${o.kind}/${o.metadata.name}`, o.spec.template.spec]);
  assert.deepEqual(
    specs.map(([name]) => name),
    ['DaemonSet/doorwatch-agent', 'Deployment/doorwatch-collector'],
  );
  return specs;
}

describe('chart security', () => {
  const rendered = Object.fromEntries(Object.entries(VARIANTS).map(([k, o]) => [k, render(o).objects]));

  it('no container is privileged unless agent.privileged is set', () => {
    for (const [variant, objects] of Object.entries(rendered)) {
      for (const [name, spec] of podSpecs(objects)) {
        for (const c of spec.containers) assert.notEqual(c.securityContext?.privileged, true, `${variant}: ${name}/${c.name}`);
      }
    }
  });

  it('the agent drops every capability and adds exactly BPF, PERFMON and SYS_RESOURCE', () => {
    for (const [variant, objects] of Object.entries(rendered)) {
      const sc = agentContainer(objects).securityContext;
      assert.deepEqual(sc.capabilities, { drop: ['ALL'], add: ['BPF', 'PERFMON', 'SYS_RESOURCE'] }, variant);
      assert.equal(sc.allowPrivilegeEscalation, false, variant);
      assert.equal(sc.runAsUser, 0, `${variant}: root, limited by capabilities`);
      assert.equal(sc.seccompProfile.type, 'Unconfined', `${variant}: bpf() and perf_event_open() are not blocked`);
    }
    const hardened = render({ set: ['agent.seccompProfile=RuntimeDefault', 'agent.appArmorProfile=RuntimeDefault'] }).objects;
    const sc = agentContainer(hardened).securityContext;
    assert.equal(sc.seccompProfile.type, 'RuntimeDefault');
    assert.equal(sc.appArmorProfile.type, 'RuntimeDefault');
  });

  it('every container has a read-only root filesystem, resources (requests and limits) and probes', () => {
    for (const [variant, objects] of Object.entries(rendered)) {
      for (const [name, spec] of podSpecs(objects)) {
        for (const c of spec.containers) {
          const at = `${variant}: ${name}/${c.name}`;
          assert.equal(c.securityContext.readOnlyRootFilesystem, true, at);
          assert.ok(c.resources.requests.cpu && c.resources.requests.memory, `${at}: requests`);
          assert.ok(c.resources.limits.cpu && c.resources.limits.memory, `${at}: limits`);
          assert.ok(c.livenessProbe, `${at}: liveness probe`);
          assert.ok(c.readinessProbe, `${at}: readiness probe`);
        }
      }
    }
  });

  it('the agent probes /healthz and /readyz on its metrics port', () => {
    const c = agentContainer(rendered.default!);
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'metrics' });
    assert.deepEqual(c.ports, [{ name: 'metrics', containerPort: 9090, protocol: 'TCP' }]);
  });

  it('host paths are read-only, except the spool', () => {
    for (const [variant, objects] of Object.entries(rendered)) {
      const pod = find(objects, 'DaemonSet').spec.template.spec;
      const hostVolumes = new Map<string, string>(
        pod.volumes.filter((v: K8sObject) => v.hostPath).map((v: K8sObject) => [v.name, v.hostPath.path]),
      );
      assert.deepEqual(
        [...hostVolumes.values()].sort(),
        ['/sys/fs/cgroup', '/sys/kernel/btf', '/sys/kernel/tracing', '/var/lib/doorwatch/spool'],
        variant,
      );
      for (const m of pod.containers[0].volumeMounts) {
        const host = hostVolumes.get(m.name);
        if (host === undefined) continue;
        if (host === '/var/lib/doorwatch/spool') {
          assert.notEqual(m.readOnly, true, `${variant}: the spool is writable`);
          assert.equal(m.mountPath, host, 'mounted at the same path');
        } else {
          assert.equal(m.readOnly, true, `${variant}: ${host} is read-only`);
          assert.equal(m.mountPath, host, 'mounted at the same path');
        }
      }
      assert.equal(pod.hostNetwork, false, `${variant}: no hostNetwork`);
      assert.equal(pod.hostPID, true, `${variant}: hostPID by default`);
      assert.equal(pod.hostIPC, undefined, `${variant}: no hostIPC`);
      const collector = find(objects, 'Deployment').spec.template.spec;
      assert.deepEqual(
        collector.volumes.filter((v: K8sObject) => v.hostPath).map((v: K8sObject) => v.name),
        [],
        `${variant}: the collector mounts nothing from the host`,
      );
      for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) assert.equal(collector[k], undefined, `${variant}: collector ${k}`);
    }
    const cgroup = find(rendered.default!, 'DaemonSet').spec.template.spec.containers[0].volumeMounts.find(
      (m: K8sObject) => m.name === 'cgroup',
    );
    assert.equal(cgroup.recursiveReadOnly, 'IfPossible', 'cgroup v1 sub-mounts are read-only too (Kubernetes 1.30+)');
    assert.equal(find(render({ set: ['agent.hostPID=false'] }).objects, 'DaemonSet').spec.template.spec.hostPID, false);
  });

  it('RBAC: the agent exactly get/list/watch on pods, namespaces and acceptauditpolicies, patch on their status; no wildcards, no secrets', () => {
    const roles = rendered.default!.filter((o) => ['ClusterRole', 'Role'].includes(o.kind));
    assert.deepEqual(
      roles.map((r) => `${r.kind}/${r.metadata.name}`),
      [
        'ClusterRole/doorwatch-agent',
        'ClusterRole/doorwatch-collector-peers',
        'ClusterRole/doorwatch-collector',
        'ClusterRole/doorwatch-viewer',
        'Role/doorwatch-collector',
      ],
    );
    // Peer attribution: list/watch on pods, services and nodes, nothing else (collector-peers-rbac.yaml).
    assert.deepEqual(find(rendered.default!, 'ClusterRole', 'doorwatch-collector-peers').rules, [
      { apiGroups: [''], resources: ['pods', 'services', 'nodes'], verbs: ['list', 'watch'] },
    ]);
    assert.deepEqual(find(rendered.default!, 'ClusterRoleBinding', 'doorwatch-collector-peers').subjects, [
      { kind: 'ServiceAccount', name: 'doorwatch-collector', namespace: 'doorwatch' },
    ]);
    assert.deepEqual(roles[0]!.rules, [
      { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['doorwatch.io'], resources: ['acceptauditpolicies'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['doorwatch.io'], resources: ['acceptauditpolicies/status'], verbs: ['patch'] },
    ]);
    for (const objects of Object.values(rendered)) {
      for (const r of objects.filter((o) => ['ClusterRole', 'Role'].includes(o.kind))) {
        const flat = JSON.stringify(r.rules);
        assert.ok(!flat.includes('*'), 'no wildcard');
        assert.ok(!flat.includes('secrets'), 'no access to Secrets');
      }
    }
    const binding = find(rendered.default!, 'ClusterRoleBinding', 'doorwatch-agent');
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'doorwatch-agent', namespace: 'doorwatch' }]);
  });

  it('RBAC: the collector may only create TokenReviews and SubjectAccessReviews, and get pods in its namespace', () => {
    const objects = rendered.default!;
    assert.deepEqual(find(objects, 'ClusterRole', 'doorwatch-collector').rules, [
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    ]);
    const role = find(objects, 'Role', 'doorwatch-collector');
    assert.equal(role.metadata.namespace, 'doorwatch');
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }]);
    for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
      assert.deepEqual(find(objects, kind, 'doorwatch-collector').subjects, [
        { kind: 'ServiceAccount', name: 'doorwatch-collector', namespace: 'doorwatch' },
      ]);
    }
    assert.deepEqual(find(objects, 'ClusterRole', 'doorwatch-viewer').rules, [
      { apiGroups: ['doorwatch.io'], resources: ['acceptevents'], verbs: ['get', 'list', 'watch'] },
    ]);
  });

  it("the agent's projected token: own audience, short-lived, read-only at the path the agent reads", () => {
    const ds = find(rendered.default!, 'DaemonSet').spec.template.spec;
    const vol = ds.volumes.find((v: K8sObject) => v.name === 'collector-token');
    assert.deepEqual(vol.projected.sources, [
      { serviceAccountToken: { audience: 'doorwatch-collector', expirationSeconds: 3600, path: 'token' } },
    ]);
    const mount = ds.containers[0].volumeMounts.find((m: K8sObject) => m.name === 'collector-token');
    assert.deepEqual(mount, { name: 'collector-token', mountPath: '/var/run/secrets/doorwatch', readOnly: true });
  });

  it('the collector runs as a fixed non-root user, drops every capability, RuntimeDefault seccomp; an API token only for auth', () => {
    for (const [variant, objects] of Object.entries(rendered)) {
      const dep = find(objects, 'Deployment');
      const pod = dep.spec.template.spec;
      assert.equal(pod.securityContext.runAsNonRoot, true, variant);
      assert.equal(pod.securityContext.runAsUser, 65532, variant);
      assert.equal(pod.automountServiceAccountToken, true, `${variant}: auth.mode kubernetes needs it`);
      const sc = pod.containers[0].securityContext;
      assert.equal(sc.runAsNonRoot, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
      assert.equal(sc.seccompProfile.type, 'RuntimeDefault');
      assert.equal(find(objects, 'ServiceAccount', 'doorwatch-collector').automountServiceAccountToken, true);
    }
    // Peer attribution (on by default) needs the token too: without auth it is its only reason.
    const peersOnly = render({ set: ['auth.mode=none'] }).objects;
    assert.equal(find(peersOnly, 'Deployment').spec.template.spec.automountServiceAccountToken, true);
    assert.ok(!peersOnly.some((o) => o.metadata.name === 'doorwatch-collector' && /Role/.test(o.kind)));
    assert.ok(peersOnly.some((o) => o.metadata.name === 'doorwatch-collector-peers' && o.kind === 'ClusterRole'));
    const none = render({ set: ['auth.mode=none', 'collector.peers.enabled=false'] }).objects;
    assert.equal(find(none, 'Deployment').spec.template.spec.automountServiceAccountToken, false);
    assert.equal(find(none, 'ServiceAccount', 'doorwatch-collector').automountServiceAccountToken, false);
    assert.ok(
      !none.some((o) => o.metadata.name === 'doorwatch-collector' && /Role/.test(o.kind)),
      'no collector RBAC without auth',
    );
  });

  it('no secret material in any ConfigMap; secrets reach the collector only by reference', () => {
    const SECRET_NAMES = ['splunk-hec', 'nats-creds'];
    const variants: RenderOptions[] = [
      ...Object.values(VARIANTS),
      {
        values: [
          {
            collector: {
              sinks: [
                { name: 'splunk', type: 'splunk_hec', url: 'https://s:8088', tokenFile: '/etc/doorwatch/secrets/hec' },
                { name: 'nats', type: 'nats', servers: 'nats://n:4222', tokenEnv: 'NATS_TOKEN' },
              ],
              secretFiles: [{ name: 'hec', secretName: 'splunk-hec', key: 'token' }],
              secretEnv: [{ name: 'NATS_TOKEN', secretName: 'nats-creds', key: 'token' }],
            },
          },
        ],
      },
    ];
    for (const o of variants) {
      const { objects } = render(o);
      const secretValues = objects
        .filter((x) => x.kind === 'Secret')
        .flatMap((x) => Object.values(x.data ?? {}).map((v) => Buffer.from(String(v), 'base64').toString()));
      for (const cm of objects.filter((x) => x.kind === 'ConfigMap')) {
        const text = JSON.stringify(cm.data);
        assert.ok(!/PRIVATE KEY|BEGIN CERTIFICATE/.test(text), `${cm.metadata.name}: no PEM material`);
        for (const v of secretValues) assert.ok(!text.includes(v.trim().slice(0, 64)), `${cm.metadata.name}: no Secret value`);
        for (const n of SECRET_NAMES)
          assert.ok(!text.includes(n), `${cm.metadata.name}: the Secret is mounted, not named in the config`);
      }
    }
  });

  it('NetworkPolicy: the agent may reach only the collector, DNS and the API server ports; the collector accepts only agents', () => {
    const objects = rendered.default!;
    const agent = find(objects, 'NetworkPolicy', 'doorwatch-agent');
    assert.deepEqual(agent.spec.policyTypes, ['Ingress', 'Egress']);
    assert.equal(agent.spec.egress.length, 3);
    assert.equal(agent.spec.egress[0].to[0].podSelector.matchLabels['app.kubernetes.io/component'], 'collector');
    assert.deepEqual(agent.spec.egress[0].ports, [{ port: 'grpc', protocol: 'TCP' }]);
    assert.deepEqual(
      agent.spec.egress[1].ports.map((p: K8sObject) => p.port),
      [53, 53],
    );
    assert.deepEqual(
      agent.spec.egress[2].ports.map((p: K8sObject) => p.port),
      [443, 6443],
    );
    for (const rule of agent.spec.egress) assert.ok(rule.ports?.length, 'every egress rule is port-restricted');
    assert.deepEqual(agent.spec.ingress, [{ ports: [{ port: 'metrics', protocol: 'TCP' }] }]);
    const collector = find(objects, 'NetworkPolicy', 'doorwatch-collector');
    assert.deepEqual(collector.spec.ingress[0].from, [
      {
        podSelector: {
          matchLabels: {
            'app.kubernetes.io/name': 'doorwatch',
            'app.kubernetes.io/instance': 'doorwatch',
            'app.kubernetes.io/component': 'agent',
          },
        },
      },
    ]);
    assert.deepEqual(collector.spec.ingress[0].ports, [{ port: 'grpc', protocol: 'TCP' }]);
  });

  it('the agent tolerates every taint and outlives its flush timeout at shutdown', () => {
    const pod = find(rendered.default!, 'DaemonSet').spec.template.spec;
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
    const flush = Number.parseInt(
      /flushTimeout: (\d+)s/.exec(find(rendered.default!, 'ConfigMap', 'doorwatch-agent').data['agent.yaml'])![1]!,
      10,
    );
    assert.ok(pod.terminationGracePeriodSeconds >= flush * 3, 'terminationGracePeriodSeconds well above flushTimeout');
    assert.equal(pod.priorityClassName, 'doorwatch-agent');
  });
});
