import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { find, type K8sObject, PROMETHEUS_API, render } from '../helpers/helm.js';
import { promtool } from '../helpers/prometheus.js';

// The chart's PrometheusRule (prometheusRule.enabled), rendered as Helm would, checked by the real promtool
// (Debian's prometheus 2.42): `promtool check rules`, then `promtool test rules` with synthetic series for
// every alert, firing and not firing. The unit tests compare each alert's labels and its summary; the
// descriptions are left out of that comparison (promtool compares annotations whole) but their templates are
// checked by `check rules`.

const AGENT = { namespace: 'doorwatch', job: 'doorwatch-agent-metrics' };
const COLLECTOR = { namespace: 'doorwatch', job: 'doorwatch-collector-metrics' };

type Labels = Record<string, string>;
const series = (name: string, labels: Labels, values: string) => ({
  series: `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`,
  values,
});

interface Expect {
  labels: Labels;
  summary: string;
}
interface Case {
  /** The alert, and what the test shows. */
  alert: string;
  what: string;
  input: { series: string; values: string }[];
  /** [eval time, alerts expected then ([] = not firing)]. */
  at: [string, Expect[]][];
}

const agentAt = (node: string, extra: Labels = {}) => ({ ...AGENT, node, pod: `agent-${node}`, ...extra });
const collectorAt = (pod: string, extra: Labels = {}) => ({ ...COLLECTOR, pod, ...extra });

const CASES: Case[] = [
  {
    alert: 'DoorwatchAgentNotReady',
    what: 'an agent unready for 10 minutes; not one unready for 5, nor one of another release',
    input: [
      series('doorwatch_agent_ready', agentAt('n1'), '0x30'),
      series('doorwatch_agent_ready', agentAt('n2'), '1x30'),
      series('doorwatch_agent_ready', agentAt('n3'), '0x5 1x25'),
      series('doorwatch_agent_ready', { ...agentAt('n4'), namespace: 'other' }, '0x30'),
    ],
    at: [
      ['5m', []],
      ['15m', [{ labels: { severity: 'warning', ...agentAt('n1') }, summary: 'Doorwatch agent on n1 is not ready' }]],
    ],
  },
  {
    alert: 'DoorwatchAgentDown',
    what: 'an agent target down for 5 minutes',
    input: [series('up', agentAt('n1'), '1x2 0x20'), series('up', agentAt('n2'), '1x22')],
    at: [
      ['4m', []],
      ['10m', [{ labels: { severity: 'warning', ...agentAt('n1') }, summary: 'Doorwatch agent on n1 cannot be scraped' }]],
    ],
  },
  {
    alert: 'DoorwatchAgentMissing',
    what: 'a node without any agent series for 15 minutes (kube-state-metrics), until its agent appears',
    input: [
      series('kube_node_info', { job: 'kube-state-metrics', node: 'n1' }, '1x60'),
      series('kube_node_info', { job: 'kube-state-metrics', node: 'n2' }, '1x60'),
      series('doorwatch_agent_info', agentAt('n1', { version: '0.1.0' }), '1x60'),
      series('doorwatch_agent_info', agentAt('n2', { version: '0.1.0' }), '_x30 1x30'),
    ],
    at: [
      ['10m', []],
      ['20m', [{ labels: { severity: 'warning', node: 'n2' }, summary: 'No Doorwatch agent reports from node n2' }]],
      ['40m', []],
    ],
  },
  {
    alert: 'DoorwatchKernelEventsLost',
    what: 'ring-buffer drops within the last 10 minutes; none once 10 minutes pass without',
    input: [
      series('doorwatch_kernel_dropped_total', agentAt('n1', { reason: 'ring_buffer_full' }), '0x12 10x30'),
      series('doorwatch_kernel_dropped_total', agentAt('n2', { reason: 'ring_buffer_full' }), '0x42'),
    ],
    at: [
      ['10m', []],
      ['15m', [{ labels: { severity: 'warning', node: 'n1' }, summary: 'Doorwatch lost 10 accepts in the kernel on n1' }]],
      ['30m', []],
    ],
  },
  {
    alert: 'DoorwatchSpoolDropping',
    what: 'spool drops within the last 10 minutes',
    input: [
      series('doorwatch_spool_dropped_total', agentAt('n1'), '0x12 250x30'),
      series('doorwatch_spool_dropped_total', agentAt('n2'), '0x42'),
    ],
    at: [
      ['10m', []],
      ['15m', [{ labels: { severity: 'warning', node: 'n1' }, summary: 'Doorwatch spool on n1 dropped 250 events' }]],
      ['30m', []],
    ],
  },
  {
    alert: 'DoorwatchSpoolFilling',
    what: 'a spool over 80% of its bound for 5 minutes; not one at 10%',
    input: [
      series('doorwatch_spool_bytes', agentAt('n1'), '900x20'),
      series('doorwatch_spool_max_bytes', agentAt('n1'), '1000x20'),
      series('doorwatch_spool_bytes', agentAt('n2'), '100x20'),
      series('doorwatch_spool_max_bytes', agentAt('n2'), '1000x20'),
    ],
    at: [
      ['3m', []],
      ['10m', [{ labels: { severity: 'warning', ...agentAt('n1') }, summary: 'Doorwatch spool on n1 is 90% full' }]],
    ],
  },
  {
    alert: 'DoorwatchEnrichmentMostlyPartial',
    what: 'two thirds of a node\u2019s events partial for 30 minutes; not a node at 10%',
    input: [
      series('doorwatch_enrichment_total', agentAt('n1', { status: 'partial' }), '0+60x70'),
      series('doorwatch_enrichment_total', agentAt('n1', { status: 'complete' }), '0+30x70'),
      series('doorwatch_enrichment_total', agentAt('n2', { status: 'partial' }), '0+6x70'),
      series('doorwatch_enrichment_total', agentAt('n2', { status: 'complete' }), '0+54x70'),
    ],
    at: [
      ['30m', []],
      ['50m', [{ labels: { severity: 'info', node: 'n1' }, summary: 'Most Doorwatch events on n1 lack their pod or container' }]],
    ],
  },
  {
    alert: 'DoorwatchPolicyRejected',
    what: 'rejected AcceptAuditPolicy objects for 5 minutes; none while all are accepted',
    input: [
      series('doorwatch_policy_resources', agentAt('n1', { state: 'rejected' }), '0x10 2x20'),
      series('doorwatch_policy_resources', agentAt('n2', { state: 'rejected' }), '0x10 2x20'),
      series('doorwatch_policy_resources', agentAt('n1', { state: 'accepted' }), '3x30'),
    ],
    at: [
      ['8m', []],
      ['20m', [{ labels: { severity: 'warning' }, summary: '2 AcceptAuditPolicy objects are rejected' }]],
    ],
  },
  {
    alert: 'DoorwatchCollectorNotReady',
    what: 'a collector unready for 5 minutes',
    input: [
      series('doorwatch_collector_ready', collectorAt('collector-a'), '0x20'),
      series('doorwatch_collector_ready', collectorAt('collector-b'), '1x20'),
    ],
    at: [
      ['3m', []],
      [
        '10m',
        [
          {
            labels: { severity: 'warning', ...collectorAt('collector-a') },
            summary: 'Doorwatch collector collector-a is not ready',
          },
        ],
      ],
    ],
  },
  {
    alert: 'DoorwatchRequiredSinkFailing',
    what: 'a required sink failing for 5 minutes; not a failing non-required one',
    input: [
      series(
        'doorwatch_collector_sink_healthy',
        collectorAt('collector-a', { sink: 'siem', type: 'splunk-hec', required: 'true' }),
        '1 0x20',
      ),
      series(
        'doorwatch_collector_sink_healthy',
        collectorAt('collector-a', { sink: 'debug', type: 'jsonl', required: 'false' }),
        '0x20',
      ),
    ],
    at: [
      ['4m', []],
      [
        '10m',
        [
          {
            labels: {
              severity: 'critical',
              ...collectorAt('collector-a', { sink: 'siem', type: 'splunk-hec', required: 'true' }),
            },
            summary: 'Doorwatch sink siem has failed for 5 minutes',
          },
        ],
      ],
    ],
  },
  {
    alert: 'DoorwatchSinkBacklogged',
    what: 'a sink queue over 80% for 10 minutes; not one at 1%',
    input: [
      series('doorwatch_collector_sink_queue_records', collectorAt('collector-a', { sink: 'siem' }), '90000x30'),
      series('doorwatch_collector_sink_queue_capacity_records', collectorAt('collector-a', { sink: 'siem' }), '100000x30'),
      series('doorwatch_collector_sink_queue_records', collectorAt('collector-a', { sink: 'fast' }), '1000x30'),
      series('doorwatch_collector_sink_queue_capacity_records', collectorAt('collector-a', { sink: 'fast' }), '100000x30'),
    ],
    at: [
      ['5m', []],
      [
        '15m',
        [
          {
            labels: { severity: 'warning', ...collectorAt('collector-a', { sink: 'siem' }) },
            summary: 'Doorwatch sink siem queue is 90% full',
          },
        ],
      ],
    ],
  },
  {
    alert: 'DoorwatchSinkDropping',
    what: 'a non-required sink dropping from its full queue',
    input: [
      series(
        'doorwatch_collector_sink_dropped_total',
        collectorAt('collector-a', { sink: 'debug', required: 'false' }),
        '0x12 50x30',
      ),
      series('doorwatch_collector_sink_dropped_total', collectorAt('collector-a', { sink: 'siem', required: 'true' }), '0x42'),
    ],
    at: [
      ['10m', []],
      [
        '15m',
        [
          {
            labels: { severity: 'warning', pod: 'collector-a', sink: 'debug' },
            summary: 'Doorwatch sink debug dropped 50 events',
          },
        ],
      ],
      ['30m', []],
    ],
  },
  {
    alert: 'DoorwatchEventsNeverArrived',
    what: 'a seq gap in a node\u2019s stream',
    input: [
      series('doorwatch_collector_seq_gap_events_total', collectorAt('collector-a', { node: 'n1' }), '0x12 7x30'),
      series('doorwatch_collector_seq_gap_events_total', collectorAt('collector-a', { node: 'n2' }), '0x42'),
    ],
    at: [
      ['10m', []],
      ['15m', [{ labels: { severity: 'warning', node: 'n1' }, summary: '7 events of node n1 never reached the collector' }]],
      ['30m', []],
    ],
  },
  {
    alert: 'DoorwatchAckLatencyHigh',
    what: 'a 99th percentile ack latency of ~10 s for 10 minutes; not one under 1 s',
    input: [
      // Per minute: 10 acks, 1 within 1 s, the other 9 between 5 and 10 s.
      series('doorwatch_collector_ack_latency_seconds_bucket', collectorAt('collector-a', { le: '1' }), '0+1x40'),
      series('doorwatch_collector_ack_latency_seconds_bucket', collectorAt('collector-a', { le: '5' }), '0+1x40'),
      series('doorwatch_collector_ack_latency_seconds_bucket', collectorAt('collector-a', { le: '10' }), '0+10x40'),
      series('doorwatch_collector_ack_latency_seconds_bucket', collectorAt('collector-a', { le: '+Inf' }), '0+10x40'),
      // Another release's slow collector does not count.
      series(
        'doorwatch_collector_ack_latency_seconds_bucket',
        { ...collectorAt('x', { le: '10' }), namespace: 'other' },
        '0+10x40',
      ),
    ],
    at: [
      ['5m', []],
      ['25m', [{ labels: { severity: 'warning' }, summary: 'Doorwatch acks take 9.944s (99th percentile)' }]],
    ],
  },
  {
    alert: 'DoorwatchAckLatencyHigh',
    what: 'not firing: every ack within 1 s',
    input: [
      series('doorwatch_collector_ack_latency_seconds_bucket', collectorAt('collector-a', { le: '1' }), '0+10x40'),
      series('doorwatch_collector_ack_latency_seconds_bucket', collectorAt('collector-a', { le: '+Inf' }), '0+10x40'),
    ],
    at: [['25m', []]],
  },
];

let dir: string;
let rule: K8sObject;
let rulesFile: string;

before(() => {
  const r = render({ apiVersions: [PROMETHEUS_API], set: ['prometheusRule.enabled=true', 'serviceMonitor.enabled=true'] });
  rule = find(r.objects, 'PrometheusRule', 'doorwatch');
  dir = mkdtempSync(join(tmpdir(), 'dw-alerts-'));
  rulesFile = join(dir, 'rules.json');
  writeFileSync(rulesFile, JSON.stringify({ groups: rule.spec.groups }, null, 1));
});

after(() => rmSync(dir, { recursive: true, force: true }));

const alertsOf = (groups: { rules: { alert?: string }[] }[]) => groups.flatMap((g) => g.rules.map((r) => r.alert!));

describe('PrometheusRule (prometheusRule.enabled) with the real promtool', () => {
  it('passes promtool check rules', () => {
    const r = promtool(['check', 'rules', rulesFile]);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /SUCCESS: 14 rules found/);
  });

  it('every alert fires on its synthetic series and stays quiet otherwise (promtool test rules)', () => {
    const alerts = alertsOf(rule.spec.groups);
    assert.deepEqual([...new Set(CASES.map((c) => c.alert))].sort(), [...alerts].sort(), 'a case for every alert');
    // Descriptions are prose; they stay out of the exact comparison (see the top of this file).
    const noDescriptions = {
      groups: rule.spec.groups.map((g: K8sObject) => ({
        ...g,
        rules: g.rules.map((r: K8sObject) => ({ ...r, annotations: { summary: r.annotations.summary } })),
      })),
    };
    writeFileSync(join(dir, 'rules-summaries.json'), JSON.stringify(noDescriptions));
    const tests = {
      rule_files: ['rules-summaries.json'],
      evaluation_interval: '1m',
      tests: CASES.map((c) => ({
        name: `${c.alert}: ${c.what}`,
        interval: '1m',
        input_series: c.input,
        alert_rule_test: c.at.map(([t, exp]) => ({
          eval_time: t,
          alertname: c.alert,
          exp_alerts: exp.map((e) => ({ exp_labels: e.labels, exp_annotations: { summary: e.summary } })),
        })),
      })),
    };
    const file = join(dir, 'tests.json');
    writeFileSync(file, JSON.stringify(tests, null, 1));
    const r = promtool(['test', 'rules', file]);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /SUCCESS/);
  });

  it('scopes every expression to the release (namespace and job of its ServiceMonitors)', () => {
    for (const g of rule.spec.groups)
      for (const r of g.rules) {
        const selectors = [...String(r.expr).matchAll(/\b(?:doorwatch_\w+|up)\{([^}]*)\}/g)].map((m) => m[1]!);
        assert.ok(selectors.length > 0, `${r.alert} reads doorwatch series`);
        for (const s of selectors) assert.match(s, /namespace="doorwatch", job="doorwatch-(agent|collector)-metrics"/, r.alert);
      }
  });

  it('takes its thresholds and labels from values, and leaves out agentMissing on request', () => {
    const r = render({
      apiVersions: [PROMETHEUS_API],
      values: [
        {
          prometheusRule: {
            enabled: true,
            spoolFullRatio: 0.5,
            ackLatencySeconds: 2,
            agentMissing: false,
            alertLabels: { team: 'platform' },
            labels: { release: 'prometheus' },
          },
        },
      ],
    });
    const pr = find(r.objects, 'PrometheusRule');
    assert.equal(pr.metadata.labels.release, 'prometheus');
    const rules = pr.spec.groups.flatMap((g: K8sObject) => g.rules);
    assert.ok(!alertsOf(pr.spec.groups).includes('DoorwatchAgentMissing'));
    assert.match(rules.find((x: K8sObject) => x.alert === 'DoorwatchSpoolFilling').expr, / > 0\.5$/);
    assert.match(rules.find((x: K8sObject) => x.alert === 'DoorwatchAckLatencyHigh').expr, / > 2$/);
    for (const x of rules) assert.equal(x.labels.team, 'platform', x.alert);
  });

  it('is not rendered by default, and fails clearly without the Prometheus Operator API', () => {
    assert.ok(!render({ apiVersions: [PROMETHEUS_API] }).objects.some((o) => o.kind === 'PrometheusRule'));
    assert.throws(
      () => render({ set: ['prometheusRule.enabled=true'] }),
      /prometheusRule\.enabled is true but the cluster does not serve monitoring\.coreos\.com\/v1/,
    );
  });
});
