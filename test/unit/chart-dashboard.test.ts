import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { addPolicyMetrics } from '../../src/agent/policy-metrics.js';
import { CollectorMetrics } from '../../src/collector/metrics.js';
import { CHART, find, type K8sObject, PROMETHEUS_API, render, validateAll } from '../helpers/helm.js';

// The Grafana dashboard ConfigMap (grafanaDashboard.*): the kube-prometheus-stack sidecar's label by default,
// switchable, its namespace overridable, the JSON exactly helm/doorwatch/dashboards/doorwatch.json; and every
// series the dashboard and the alerts read is one the agent or the collector exposes. (That each panel returns
// data from a live agent and collector: test/kernel/monitoring-prometheus.test.ts.)

// biome-ignore lint/suspicious/noExplicitAny: the dashboard JSON is walked loosely
type Any = any;
const file = readFileSync(join(CHART, 'dashboards/doorwatch.json'), 'utf8');
const dashboard = JSON.parse(file) as Any;

/** Every series name the two processes expose (histograms as their _bucket, _sum and _count). */
async function exposedNames(): Promise<Set<string>> {
  const agent = new AgentMetrics({ info: { version: 't', node: 'n' } });
  addPolicyMetrics(agent, {
    report: () => undefined,
    resources: () => ({ accepted: 0, rejected: 0, crdMissing: false, synced: true }),
  });
  const collector = new CollectorMetrics();
  const names = new Set<string>();
  for (const reg of [agent.registry, collector.registry])
    for (const m of await reg.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
    }
  return names;
}

const seriesIn = (expr: string) => [...expr.matchAll(/\b(doorwatch_\w+)/g)].map((m) => m[1]!);

describe('Grafana dashboard ConfigMap (grafanaDashboard)', () => {
  it('is not rendered by default', () => {
    assert.ok(!render().objects.some((o) => o.metadata?.name === 'doorwatch-dashboard'));
  });

  it('carries the sidecar label grafana_dashboard: "1" and the dashboard JSON as it is in the chart', () => {
    const r = render({ set: ['grafanaDashboard.enabled=true'] });
    const cm = find(r.objects, 'ConfigMap', 'doorwatch-dashboard');
    assert.equal(cm.metadata.namespace, 'doorwatch');
    assert.equal(cm.metadata.labels.grafana_dashboard, '1');
    assert.equal(cm.data['doorwatch.json'], file.trimEnd());
    assert.deepEqual(validateAll(r.objects), []);
  });

  it('takes another label, value, namespace and annotations', () => {
    const r = render({
      values: [
        {
          grafanaDashboard: {
            enabled: true,
            label: 'dashboards.example.com/grafana',
            labelValue: 'doorwatch',
            namespace: 'monitoring',
            annotations: { grafana_folder: 'Security' },
          },
        },
      ],
    });
    const cm = find(r.objects, 'ConfigMap', 'doorwatch-dashboard');
    assert.equal(cm.metadata.namespace, 'monitoring');
    assert.equal(cm.metadata.labels['dashboards.example.com/grafana'], 'doorwatch');
    assert.equal(cm.metadata.labels.grafana_dashboard, undefined);
    assert.deepEqual(cm.metadata.annotations, { grafana_folder: 'Security' });
  });

  it('is a dashboard with a datasource, namespace and node variable and the areas the issue asks for', () => {
    assert.equal(dashboard.uid, 'doorwatch');
    assert.deepEqual(
      dashboard.templating.list.map((v: Any) => v.name),
      ['datasource', 'namespace', 'node'],
    );
    const rows = dashboard.panels.filter((p: Any) => p.type === 'row').map((p: Any) => p.title);
    assert.deepEqual(rows, [
      'Overview',
      'Accepts',
      'Losses',
      'Enrichment',
      'Spool and transport',
      'Collector and sinks',
      'Policies',
    ]);
    const ids = dashboard.panels.map((p: Any) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids unique');
    for (const p of dashboard.panels.filter((x: Any) => x.type !== 'row')) {
      assert.match(p.datasource.uid, /^\$\{datasource\}$/, p.title);
      for (const t of p.targets) assert.match(t.expr, /namespace="\$namespace"/, `${p.title}: scoped to the namespace variable`);
    }
  });

  it('reads only series the agent and the collector expose, and so do the alerts', async () => {
    const names = await exposedNames();
    const exprs = dashboard.panels.filter((p: Any) => p.type !== 'row').flatMap((p: Any) => p.targets.map((t: Any) => t.expr));
    const rule = find(render({ apiVersions: [PROMETHEUS_API], set: ['prometheusRule.enabled=true'] }).objects, 'PrometheusRule');
    for (const g of rule.spec.groups as K8sObject[]) for (const r of g.rules) exprs.push(r.expr);
    const unknown = exprs.flatMap(seriesIn).filter((n: string) => !names.has(n));
    assert.deepEqual([...new Set(unknown)], []);
  });
});
