import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { find, type K8sObject, PROMETHEUS_API, render, validateAll } from '../helpers/helm.js';

// The collector's side of the chart's monitoring: its HTTP port and probes, the config key that serves them,
// its metrics Service and ServiceMonitor, and the NetworkPolicy rule for the port.

const container = (o: K8sObject) => o.spec.template.spec.containers[0];

describe('chart: collector health and metrics', () => {
  it('serves /healthz, /readyz, /metrics on collector.healthPort and probes them', () => {
    const { objects } = render({ set: ['collector.healthPort=9300'] });
    const c = container(find(objects, 'Deployment', 'doorwatch-collector'));
    assert.deepEqual(
      c.ports.find((p: K8sObject) => p.name === 'metrics'),
      { name: 'metrics', containerPort: 9300, protocol: 'TCP' },
    );
    assert.deepEqual(c.startupProbe.httpGet, { path: '/healthz', port: 'metrics' });
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'metrics' });
    const config = parse(find(objects, 'ConfigMap', 'doorwatch-collector').data['collector.yaml']);
    assert.deepEqual(config.health, { address: '0.0.0.0:9300' });
    // Not on the gRPC Service, which may be a LoadBalancer.
    const svc = find(objects, 'Service', 'doorwatch-collector');
    assert.deepEqual(
      svc.spec.ports.map((p: K8sObject) => p.name),
      ['grpc'],
    );
  });

  it('admits the metrics port in its NetworkPolicy, from collectorMetricsFrom when set', () => {
    const open = find(render().objects, 'NetworkPolicy', 'doorwatch-collector');
    const rule = open.spec.ingress.find((r: K8sObject) => r.ports.some((p: K8sObject) => p.port === 'metrics'));
    assert.ok(rule, 'a rule for the metrics port');
    assert.equal(rule.from, undefined, 'from anyone by default');
    const from = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];
    const closed = find(
      render({ values: [{ networkPolicy: { collectorMetricsFrom: from } }] }).objects,
      'NetworkPolicy',
      'doorwatch-collector',
    );
    assert.deepEqual(closed.spec.ingress.find((r: K8sObject) => r.ports.some((p: K8sObject) => p.port === 'metrics')).from, from);
  });

  it('serviceMonitor.enabled: a headless metrics Service and a ServiceMonitor for each of agent and collector', () => {
    const { objects } = render({
      apiVersions: [PROMETHEUS_API],
      set: ['serviceMonitor.enabled=true', 'serviceMonitor.labels.release=prom'],
    });
    assert.deepEqual(validateAll(objects), []);
    const svc = find(objects, 'Service', 'doorwatch-collector-metrics');
    assert.equal(svc.spec.clusterIP, 'None');
    assert.deepEqual(svc.spec.ports, [{ name: 'metrics', port: 9091, targetPort: 'metrics', protocol: 'TCP' }]);
    assert.equal(svc.spec.selector['app.kubernetes.io/component'], 'collector');
    const agent = find(objects, 'ServiceMonitor', 'doorwatch-agent');
    const collector = find(objects, 'ServiceMonitor', 'doorwatch-collector');
    for (const sm of [agent, collector]) {
      assert.equal(sm.metadata.labels.release, 'prom');
      assert.equal(sm.spec.endpoints[0].port, 'metrics');
    }
    assert.equal(collector.spec.selector.matchLabels['app.kubernetes.io/component'], 'collector');
    // The agent's series get the pod's node; the collector's keep their own `node` label (the agent's node).
    assert.equal(agent.spec.endpoints[0].relabelings[0].targetLabel, 'node');
    assert.equal(collector.spec.endpoints[0].relabelings, undefined);
  });
});
