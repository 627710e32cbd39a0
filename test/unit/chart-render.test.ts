import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import {
  CERT_MANAGER_API,
  find,
  type K8sObject,
  kinds,
  PROMETHEUS_API,
  type RenderOptions,
  render,
  renderRaw,
  validateAll,
} from '../helpers/helm.js';

/**
 * helm/doorwatch rendered as `helm template` would (test/helm-render stands
 * in for helm, which cannot run here) with the value sets users will use, and
 * every object checked against the Kubernetes schemas (kubernetes-models,
 * unknown fields included) and the API server's own rules.
 */

function renderValid(o: RenderOptions = {}) {
  const r = render(o);
  assert.deepEqual(validateAll(r.objects), [], 'every rendered object is valid');
  return r;
}

function configOf(objects: K8sObject[], name: string, key: string): K8sObject {
  return parse(find(objects, 'ConfigMap', name).data[key]) as K8sObject;
}

describe('chart render: value sets', () => {
  it('default values: agent, collector, RBAC, generated mTLS, NetworkPolicies, the CRD', () => {
    const { objects, notes } = renderValid();
    assert.deepEqual(kinds(objects).sort(), [
      'ClusterRole/doorwatch-agent',
      'ClusterRole/doorwatch-collector',
      'ClusterRole/doorwatch-collector-peers',
      'ClusterRole/doorwatch-viewer',
      'ClusterRoleBinding/doorwatch-agent',
      'ClusterRoleBinding/doorwatch-collector',
      'ClusterRoleBinding/doorwatch-collector-peers',
      'ConfigMap/doorwatch-agent',
      'ConfigMap/doorwatch-collector',
      'CustomResourceDefinition/acceptauditpolicies.doorwatch.io',
      'DaemonSet/doorwatch-agent',
      'Deployment/doorwatch-collector',
      'NetworkPolicy/doorwatch-agent',
      'NetworkPolicy/doorwatch-collector',
      'PodDisruptionBudget/doorwatch-collector',
      'PriorityClass/doorwatch-agent',
      'Role/doorwatch-collector',
      'RoleBinding/doorwatch-collector',
      'Secret/doorwatch-agent-tls',
      'Secret/doorwatch-ca',
      'Secret/doorwatch-collector-tls',
      'Service/doorwatch-collector',
      'ServiceAccount/doorwatch-agent',
      'ServiceAccount/doorwatch-collector',
    ]);
    assert.equal(objects[0]!.kind, 'CustomResourceDefinition', 'CRDs come first, as helm --include-crds prints them');
    assert.match(notes, /pod-security\.kubernetes\.io\/enforce=privileged/);
    assert.match(notes, /tls\.mode=generate made a CA/);
  });

  it('the agent config file has the keys `doorwatch agent --config` reads, pointing at the mounted files', () => {
    const { objects } = renderValid();
    const cfg = configOf(objects, 'doorwatch-agent', 'agent.yaml');
    assert.deepEqual(cfg, {
      collector: 'doorwatch-collector.doorwatch.svc.cluster.local:7443',
      tls: {
        ca: '/etc/doorwatch/tls/ca.crt',
        cert: '/etc/doorwatch/tls/tls.crt',
        key: '/etc/doorwatch/tls/tls.key',
        serverName: 'doorwatch-collector.doorwatch.svc.cluster.local',
      },
      spool: { dir: '/var/lib/doorwatch/spool', maxBytes: '256MiB', overflow: 'drop-oldest' },
      batch: { maxEvents: 500, maxDelay: '50ms' },
      flushTimeout: '5s',
      includeEagain: false,
      ringSize: '8MiB',
      pollInterval: '10ms',
      pendingDeadline: '2s',
      listeners: { period: '10m' },
      logLevel: 'info',
      health: { address: '0.0.0.0:9090' },
      policy: {},
      tokenFile: '/var/run/secrets/doorwatch/token',
    });
    const ds = find(objects, 'DaemonSet');
    const c = ds.spec.template.spec.containers[0];
    assert.deepEqual(c.args, ['agent', '--config', '/etc/doorwatch/agent.yaml']);
    const files = ds.spec.template.spec.volumes
      .find((v: K8sObject) => v.name === 'config')
      .projected.sources.flatMap((s: K8sObject) =>
        (s.configMap ?? s.secret).items.map((i: K8sObject) => `/etc/doorwatch/${i.path}`),
      );
    for (const f of [cfg.tls.ca, cfg.tls.cert, cfg.tls.key, '/etc/doorwatch/agent.yaml'])
      assert.ok(files.includes(f), `${f} is mounted`);
    const env = Object.fromEntries(c.env.map((e: K8sObject) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]));
    assert.deepEqual(env, {
      NODE_NAME: 'spec.nodeName',
      POD_NAME: 'metadata.name',
      POD_NAMESPACE: 'metadata.namespace',
      // The V8 young-generation cap and glibc's fixed mmap threshold the agent's figures in docs/benchmarks.md were measured with.
      NODE_OPTIONS: '--max-semi-space-size=2',
      MALLOC_MMAP_THRESHOLD_: '131072',
    });
    // Empty: no variable at all (Node's and glibc's defaults), not an empty one.
    const bare = find(renderValid({ set: ['agent.nodeOptions=', 'agent.mallocMmapThreshold='] }).objects, 'DaemonSet').spec
      .template.spec.containers[0];
    assert.ok(!bare.env.some((e: K8sObject) => e.name === 'NODE_OPTIONS' || e.name === 'MALLOC_MMAP_THRESHOLD_'));
  });

  it('the collector config file validates against docs/collector.md keys and points at the mounted TLS files', () => {
    const { objects } = renderValid();
    const cfg = configOf(objects, 'doorwatch-collector', 'collector.yaml');
    assert.equal(cfg.listen, '0.0.0.0:7443');
    assert.deepEqual(cfg.tls, {
      cert: '/etc/doorwatch/tls/tls.crt',
      key: '/etc/doorwatch/tls/tls.key',
      clientCa: '/etc/doorwatch/tls/ca.crt',
      requireClientCert: true,
    });
    assert.deepEqual(cfg.sinks, [{ name: 'stdout', type: 'jsonl', path: '-', format: 'native' }]);
    const dep = find(objects, 'Deployment');
    assert.deepEqual(dep.spec.template.spec.containers[0].args, [
      'collector',
      '--config',
      '/etc/doorwatch/collector.yaml',
      '--log-level',
      'info',
    ]);
    // The V8 young generation the collector's figures in docs/benchmarks.md were measured with; glibc's malloc as it comes.
    assert.deepEqual(dep.spec.template.spec.containers[0].env, [{ name: 'NODE_OPTIONS', value: '--max-semi-space-size=8' }]);
    const tuned = find(renderValid({ set: ['collector.mallocMmapThreshold=131072'] }).objects, 'Deployment').spec.template.spec
      .containers[0];
    assert.deepEqual(tuned.env[1], { name: 'MALLOC_MMAP_THRESHOLD_', value: '131072' });
    const bare = find(renderValid({ set: ['collector.nodeOptions=', 'collector.mallocMmapThreshold='] }).objects, 'Deployment')
      .spec.template.spec.containers[0];
    assert.equal(bare.env, undefined, 'empty: no NODE_OPTIONS or MALLOC_MMAP_THRESHOLD_ (defaults), and no empty env list');
  });

  it('generate mode: a CA and two certificates it signed; the server one names the Service', () => {
    const { objects } = renderValid();
    const pem = (name: string, key: string) => Buffer.from(find(objects, 'Secret', name).data[key], 'base64').toString();
    const ca = new X509Certificate(pem('doorwatch-ca', 'tls.crt'));
    assert.ok(ca.ca, 'the CA is a CA');
    assert.match(pem('doorwatch-ca', 'tls.key'), /PRIVATE KEY/);
    const server = new X509Certificate(pem('doorwatch-collector-tls', 'tls.crt'));
    const client = new X509Certificate(pem('doorwatch-agent-tls', 'tls.crt'));
    for (const [name, cert] of [
      ['server', server],
      ['client', client],
    ] as const) {
      assert.ok(cert.verify(ca.publicKey), `the ${name} certificate is signed by the CA`);
      assert.ok(cert.checkIssued(ca), `the ${name} certificate is issued by the CA`);
    }
    assert.equal(pem('doorwatch-collector-tls', 'ca.crt'), ca.toString());
    assert.equal(pem('doorwatch-agent-tls', 'ca.crt'), ca.toString());
    assert.equal(
      server.checkHost('doorwatch-collector.doorwatch.svc.cluster.local'),
      'doorwatch-collector.doorwatch.svc.cluster.local',
    );
    assert.equal(server.checkHost('doorwatch-collector.doorwatch.svc'), 'doorwatch-collector.doorwatch.svc');
    assert.ok(new Date(server.validTo).getTime() > Date.now() + 3000 * 86_400_000, 'valid for tls.generate.validityDays');
  });

  it('certManager mode: self-signed root, CA certificate, CA issuer, server and client Certificates', () => {
    const { objects } = renderValid({ set: ['tls.mode=certManager'], apiVersions: [CERT_MANAGER_API] });
    assert.ok(!objects.some((o) => o.kind === 'Secret'), 'cert-manager writes the Secrets');
    assert.equal(find(objects, 'Issuer', 'doorwatch-selfsigned').spec.selfSigned !== undefined, true);
    const ca = find(objects, 'Certificate', 'doorwatch-ca');
    assert.equal(ca.spec.isCA, true);
    assert.equal(ca.spec.secretName, 'doorwatch-ca');
    assert.equal(find(objects, 'Issuer', 'doorwatch-ca').spec.ca.secretName, 'doorwatch-ca');
    const server = find(objects, 'Certificate', 'doorwatch-collector');
    assert.equal(server.spec.secretName, 'doorwatch-collector-tls');
    assert.ok(server.spec.dnsNames.includes('doorwatch-collector.doorwatch.svc.cluster.local'));
    assert.ok(server.spec.usages.includes('server auth'));
    assert.deepEqual(server.spec.issuerRef, { name: 'doorwatch-ca', kind: 'Issuer', group: 'cert-manager.io' });
    const client = find(objects, 'Certificate', 'doorwatch-agent');
    assert.equal(client.spec.secretName, 'doorwatch-agent-tls');
    assert.ok(client.spec.usages.includes('client auth'));
    assert.deepEqual(client.spec.privateKey, { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' });
    // The workloads mount what cert-manager writes.
    const secretOf = (o: K8sObject) =>
      o.spec.template.spec.volumes.find((v: K8sObject) => v.name === 'config').projected.sources.find((s: K8sObject) => s.secret)
        .secret.name;
    assert.equal(secretOf(find(objects, 'DaemonSet')), 'doorwatch-agent-tls');
    assert.equal(secretOf(find(objects, 'Deployment')), 'doorwatch-collector-tls');
  });

  it('certManager mode with an existing ClusterIssuer: no chart-made CA', () => {
    const { objects } = renderValid({
      values: [{ tls: { mode: 'certManager', certManager: { issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer' } } } }],
      apiVersions: [CERT_MANAGER_API],
    });
    assert.deepEqual(
      objects
        .filter((o) => o.apiVersion === CERT_MANAGER_API)
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .sort(),
      ['Certificate/doorwatch-agent', 'Certificate/doorwatch-collector'],
    );
    assert.deepEqual(find(objects, 'Certificate', 'doorwatch-agent').spec.issuerRef, { name: 'corp-ca', kind: 'ClusterIssuer' });
  });

  it('certManager mode without cert-manager in the cluster fails and says how to fix it', () => {
    const r = renderRaw({ set: ['tls.mode=certManager'] });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /does not serve cert-manager\.io\/v1: install cert-manager first/);
  });

  it('secret mode: the named Secrets are mounted, nothing is generated', () => {
    const { objects } = renderValid({
      values: [{ tls: { mode: 'secret', secret: { serverSecretName: 'dw-server', clientSecretName: 'dw-client' } } }],
    });
    assert.ok(!objects.some((o) => o.kind === 'Secret' || o.apiVersion === CERT_MANAGER_API));
    const text = JSON.stringify(objects);
    assert.match(text, /"name":"dw-server"/);
    assert.match(text, /"name":"dw-client"/);
  });

  it('secret mode without the Secret names fails with what to set', () => {
    const r = renderRaw({ set: ['tls.mode=secret'] });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /tls\.secret\.(server|client)SecretName is required when tls\.mode is "secret"/);
  });

  it('serviceMonitor: a headless metrics Service and a ServiceMonitor for the agents', () => {
    const { objects } = renderValid({ set: ['serviceMonitor.enabled=true'], apiVersions: [PROMETHEUS_API] });
    const svc = find(objects, 'Service', 'doorwatch-agent-metrics');
    assert.equal(svc.spec.clusterIP, 'None');
    const sm = find(objects, 'ServiceMonitor');
    assert.deepEqual(sm.spec.endpoints[0].port, 'metrics');
    assert.deepEqual(sm.spec.selector.matchLabels, svc.spec.selector);
    const r = renderRaw({ set: ['serviceMonitor.enabled=true'] });
    assert.equal(r.status, 1, 'without the Prometheus Operator API it fails');
    assert.match(r.stderr, /monitoring\.coreos\.com\/v1/);
  });

  it('autoscaling: an autoscaling/v2 HPA, and the Deployment leaves replicas to it', () => {
    const { objects } = renderValid({
      set: ['collector.autoscaling.enabled=true', 'collector.autoscaling.targetMemoryUtilizationPercentage=80'],
    });
    const hpa = find(objects, 'HorizontalPodAutoscaler');
    assert.equal(hpa.spec.scaleTargetRef.name, 'doorwatch-collector');
    assert.deepEqual(
      hpa.spec.metrics.map((m: K8sObject) => m.resource.name),
      ['cpu', 'memory'],
    );
    assert.equal(find(objects, 'Deployment').spec.replicas, undefined);
    const r = renderRaw({
      set: ['collector.autoscaling.enabled=true', 'collector.autoscaling.minReplicas=5', 'collector.autoscaling.maxReplicas=2'],
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /minReplicas \(5\) is above maxReplicas \(2\)/);
  });

  it('privileged escape hatch: privileged, no added capabilities, no allowPrivilegeEscalation=false', () => {
    const { objects } = renderValid({ set: ['agent.privileged=true'] });
    const sc = find(objects, 'DaemonSet').spec.template.spec.containers[0].securityContext;
    assert.equal(sc.privileged, true);
    assert.equal(sc.capabilities, undefined);
    assert.equal(sc.allowPrivilegeEscalation, true);
  });

  it('networkPolicy off: no NetworkPolicy objects', () => {
    const { objects } = renderValid({ set: ['networkPolicy.enabled=false'] });
    assert.ok(!objects.some((o) => o.kind === 'NetworkPolicy'));
  });

  it("auth: the collector config binds agents to the chart's ServiceAccount; namespace viewers get RoleBindings", () => {
    const subjects = [{ kind: 'Group', name: 'team-payments', apiGroup: 'rbac.authorization.k8s.io' }];
    const { objects } = renderValid({ values: [{ auth: { namespaceViewers: [{ namespace: 'payments', subjects }] } }] });
    const cfg = configOf(objects, 'doorwatch-collector', 'collector.yaml');
    assert.deepEqual(cfg.auth, {
      mode: 'kubernetes',
      kubernetes: { audience: 'doorwatch-collector', agentServiceAccount: { namespace: 'doorwatch', name: 'doorwatch-agent' } },
    });
    const rb = find(objects, 'RoleBinding', 'doorwatch-viewer');
    assert.equal(rb.metadata.namespace, 'payments');
    assert.deepEqual(rb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'doorwatch-viewer' });
    assert.deepEqual(rb.subjects, subjects);
    const none = renderValid({ values: [{ auth: { mode: 'none' } }] });
    assert.equal(configOf(none.objects, 'doorwatch-collector', 'collector.yaml').auth, undefined);
    assert.equal(configOf(none.objects, 'doorwatch-agent', 'agent.yaml').tokenFile, undefined);
    assert.ok(!find(none.objects, 'DaemonSet').spec.template.spec.volumes.some((v: K8sObject) => v.name === 'collector-token'));
  });

  it('restricted collector egress: DNS plus the given rules', () => {
    const rule = { to: [{ ipBlock: { cidr: '10.20.0.0/16' } }], ports: [{ port: 6514, protocol: 'TCP' }] };
    const { objects } = renderValid({
      values: [{ networkPolicy: { collectorEgress: { allowAll: false, rules: [rule] }, apiServer: { cidrs: ['10.0.0.1/32'] } } }],
    });
    const np = find(objects, 'NetworkPolicy', 'doorwatch-collector');
    assert.equal(np.spec.egress.length, 3, 'DNS, the API server (auth.mode kubernetes), the rule');
    assert.deepEqual(np.spec.egress[1].to, [{ ipBlock: { cidr: '10.0.0.1/32' } }]);
    assert.deepEqual(np.spec.egress[2], rule);
    const none = renderValid({
      values: [
        {
          auth: { mode: 'none' },
          collector: { peers: { enabled: false } },
          networkPolicy: { collectorEgress: { allowAll: false, rules: [rule] } },
        },
      ],
    });
    assert.equal(
      find(none.objects, 'NetworkPolicy', 'doorwatch-collector').spec.egress.length,
      2,
      'no API server without auth and peer attribution',
    );
    const peersOnly = renderValid({
      values: [{ auth: { mode: 'none' }, networkPolicy: { collectorEgress: { allowAll: false, rules: [rule] } } }],
    });
    assert.equal(
      find(peersOnly.objects, 'NetworkPolicy', 'doorwatch-collector').spec.egress.length,
      3,
      'the API server for peer attribution alone',
    );
    const agentNp = find(objects, 'NetworkPolicy', 'doorwatch-agent');
    assert.deepEqual(agentNp.spec.egress[2].to, [{ ipBlock: { cidr: '10.0.0.1/32' } }]);
  });

  it('custom sinks with secrets by reference: files and env from Secrets, paths in the config', () => {
    const { objects } = renderValid({
      values: [
        {
          collector: {
            sinks: [
              {
                name: 'splunk',
                type: 'splunk_hec',
                url: 'https://splunk.example.internal:8088',
                tokenFile: '/etc/doorwatch/secrets/hec-token',
                tls: { ca: '/etc/doorwatch/secrets/splunk-ca' },
              },
              { name: 'nats', type: 'nats', servers: ['nats://nats:4222'], user: 'doorwatch', passwordEnv: 'NATS_PASSWORD' },
            ],
            secretFiles: [
              { name: 'hec-token', secretName: 'splunk-hec', key: 'token' },
              { name: 'splunk-ca', secretName: 'splunk-ca', key: 'ca.crt' },
            ],
            secretEnv: [{ name: 'NATS_PASSWORD', secretName: 'nats-creds', key: 'password' }],
          },
        },
      ],
    });
    const cfg = configOf(objects, 'doorwatch-collector', 'collector.yaml');
    assert.equal(cfg.sinks[0].tokenFile, '/etc/doorwatch/secrets/hec-token');
    assert.equal(cfg.sinks[1].passwordEnv, 'NATS_PASSWORD');
    const pod = find(objects, 'Deployment').spec.template.spec;
    const sources = pod.volumes.find((v: K8sObject) => v.name === 'config').projected.sources;
    assert.deepEqual(
      sources.filter((s: K8sObject) => s.secret && s.secret.name !== 'doorwatch-collector-tls').map((s: K8sObject) => s.secret),
      [
        { name: 'splunk-hec', items: [{ key: 'token', path: 'secrets/hec-token' }] },
        { name: 'splunk-ca', items: [{ key: 'ca.crt', path: 'secrets/splunk-ca' }] },
      ],
    );
    assert.deepEqual(pod.containers[0].env, [
      { name: 'NATS_PASSWORD', valueFrom: { secretKeyRef: { name: 'nats-creds', key: 'password' } } },
      { name: 'NODE_OPTIONS', value: '--max-semi-space-size=8' },
    ]);
  });

  it('release name and namespace flow into every name, the certificate and the agent address', () => {
    const { objects } = renderValid({ releaseName: 'audit', namespace: 'security' });
    assert.ok(find(objects, 'DaemonSet', 'audit-doorwatch-agent'));
    const cfg = configOf(objects, 'audit-doorwatch-agent', 'agent.yaml');
    assert.equal(cfg.collector, 'audit-doorwatch-collector.security.svc.cluster.local:7443');
    for (const o of objects) {
      if (!['ClusterRole', 'ClusterRoleBinding', 'PriorityClass', 'CustomResourceDefinition'].includes(o.kind)) {
        assert.equal(o.metadata.namespace, 'security', `${o.kind}/${o.metadata.name} is namespaced in the release namespace`);
      }
    }
  });

  it('a release name of 53 characters (the longest helm allows) still gives valid names everywhere', () => {
    const { objects } = renderValid({
      releaseName: 'a'.repeat(53),
      set: ['serviceMonitor.enabled=true', 'collector.autoscaling.enabled=true'],
      apiVersions: [PROMETHEUS_API],
    });
    assert.ok(objects.every((o) => o.metadata.name.length <= 63));
    const { objects: own } = renderValid({ set: ['agent.priorityClass.name=system-node-critical'] });
    assert.ok(!own.some((o) => o.kind === 'PriorityClass'), 'an existing PriorityClass is used, none created');
    assert.equal(find(own, 'DaemonSet').spec.template.spec.priorityClassName, 'system-node-critical');
  });

  it('Kubernetes before 1.30: AppArmor by annotation, no recursiveReadOnly', () => {
    const { objects } = renderValid({ kubeVersion: 'v1.27.3' });
    const tpl = find(objects, 'DaemonSet').spec.template;
    assert.equal(tpl.metadata.annotations['container.apparmor.security.beta.kubernetes.io/agent'], 'unconfined');
    assert.equal(tpl.spec.containers[0].securityContext.appArmorProfile, undefined);
    assert.ok(!JSON.stringify(tpl).includes('recursiveReadOnly'));
    const r = renderRaw({ kubeVersion: 'v1.24.0' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /chart requires kubeVersion: >=1\.25\.0-0/);
  });
});

describe('chart render: invalid values are refused with a clear message', () => {
  const refused = (o: RenderOptions, message: RegExp) => {
    const r = renderRaw(o);
    assert.equal(r.status, 1, `refused: ${JSON.stringify(o)}`);
    assert.match(r.stderr, message);
  };

  it('an unknown key (a typo) anywhere', () => {
    refused(
      { set: ['agent.hostPid=false'] },
      /values don't meet the specifications[\s\S]*Additional property hostPid is not allowed/,
    );
    refused({ set: ['colector.replicas=3'] }, /Additional property colector is not allowed/);
  });
  it('a wrong type or an out-of-range value', () => {
    refused({ set: ['agent.hostPID=yes'] }, /agent\.hostPID: Invalid type\. Expected: boolean, given: string/);
    refused({ set: ['collector.port=70000'] }, /collector\.port: Must be less than or equal to 65535/);
    refused({ set: ['tls.mode=selfsigned'] }, /tls\.mode: tls\.mode must be one of the following/);
  });
  it('a duration or size the agent would refuse', () => {
    refused({ set: ['agent.config.flushTimeout=soon'] }, /agent\.config\.flushTimeout/);
    refused({ set: ['agent.config.spool.maxBytes=lots'] }, /agent\.config\.spool\.maxBytes/);
  });
  it('an inline secret in a sink (the collector refuses it too)', () => {
    refused(
      { values: [{ collector: { sinks: [{ name: 'splunk', type: 'splunk_hec', url: 'https://s:8088', token: 'hunter2' }] } }] },
      /collector\.sinks\.0: Must not validate the schema \(not\)/,
    );
  });
  it('no sink at all, or an unknown sink type', () => {
    refused({ values: [{ collector: { sinks: [] } }] }, /collector\.sinks: Array must have at least 1 items/);
    refused({ values: [{ collector: { sinks: [{ name: 'x', type: 'kafka' }] } }] }, /collector\.sinks\.0\.type/);
  });
  it('containers without requests or limits (null removes a default, as in helm)', () => {
    refused({ values: [{ agent: { resources: { limits: null } } }] }, /agent\.resources: limits is required/);
    refused({ values: [{ collector: { resources: { requests: null } } }] }, /collector\.resources: requests is required/);
  });
  it('a secret file name used twice', () => {
    refused(
      {
        values: [
          {
            collector: {
              secretFiles: [
                { name: 'a', secretName: 's1', key: 'k' },
                { name: 'a', secretName: 's2', key: 'k' },
              ],
            },
          },
        ],
      },
      /collector\.secretFiles: the name "a" is used twice/,
    );
  });
  it('a grace period too short for the shutdown the agent or the collector must do', () => {
    refused(
      { set: ['agent.config.flushTimeout=1m'] },
      /agent\.terminationGracePeriodSeconds \(30\) must exceed agent\.config\.flushTimeout \(1m\) by at least 5 seconds/,
    );
    refused({ set: ['collector.config.drainTimeout=28s'] }, /collector\.terminationGracePeriodSeconds \(30\) must exceed/);
    renderValid({ set: ['agent.config.flushTimeout=20s', 'collector.config.drainTimeout=1500ms'] });
    // The bound itself (the grace period is at least the timeout + 5 s, as values.yaml says), and fractions.
    renderValid({ set: ['agent.config.flushTimeout=25s', 'collector.config.drainTimeout=25000ms'] });
    refused({ set: ['agent.config.flushTimeout=25001ms'] }, /agent\.terminationGracePeriodSeconds \(30\) must exceed/);
    refused(
      { set: ['agent.config.flushTimeout=1.5m', 'agent.terminationGracePeriodSeconds=94'] },
      /agent\.terminationGracePeriodSeconds \(94\) must exceed agent\.config\.flushTimeout \(1\.5m\)/,
    );
    renderValid({ set: ['agent.config.flushTimeout=1.5m', 'agent.terminationGracePeriodSeconds=95'] });
  });
  it('an existing agent ServiceAccount without its name', () => {
    refused({ set: ['agent.serviceAccount.create=false'] }, /agent\.serviceAccount\.name is required/);
  });
});
