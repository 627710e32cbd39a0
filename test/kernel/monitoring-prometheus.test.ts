import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { httpGet } from '../helpers/agent-harness.js';
import { startDoorwatch, writeJsonlCollectorYaml } from '../helpers/doorwatch-process.js';
import { buildFixtures, connectTcp, type Fixture, killAll, startFixture } from '../helpers/fixtures.js';
import { CHART, find, PROMETHEUS_API, render } from '../helpers/helm.js';
import type { KubeApiServer } from '../helpers/kube-api-server.js';
import { kubeApiStandIn } from '../helpers/kube-stand-in.js';
import { makePki, type Pki, tlsFlags } from '../helpers/pki.js';
import { checkMetrics, type RunningPrometheus, startPrometheus } from '../helpers/prometheus.js';
import { requireRoot } from '../helpers/tracer.js';
import { freePort, until } from '../helpers/wait.js';

// The chart's Grafana dashboard against the real thing: Debian's Prometheus 2.42 scrapes a live
// `doorwatch agent` (real probes, a policy configuration, pod metadata and AcceptAuditPolicy objects from
// the Kubernetes API stand-in: no kube-apiserver can run here) and a live `doorwatch collector` (mutual
// TLS, a JSON-lines sink), both real processes, while accepts happen. Every panel's every query, with the
// dashboard variables set as Grafana would, must return data through Prometheus' HTTP API; so must the
// variables' own queries. Both expositions pass `promtool check metrics`.

requireRoot();
const NODE = 'dash-node';
const NAMESPACE = 'doorwatch';
// What the ServiceMonitors would attach (job = the metrics Service, node from the pod's node for the agent).
const AGENT_JOB = 'doorwatch-agent-metrics';
const COLLECTOR_JOB = 'doorwatch-collector-metrics';

// biome-ignore lint/suspicious/noExplicitAny: the dashboard JSON is walked loosely
type Any = any;
const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards/doorwatch.json'), 'utf8')) as Any;

let pki: Pki;
let dir: string;
let api: KubeApiServer;
let server: Fixture;
let prom: RunningPrometheus | undefined;
let agentPort: number;
let collectorPort: number;
const procs = new Set<ChildProcess>();
let load: { stop: boolean; done: Promise<void> } | undefined;

const start = (args: string[], readyText: RegExp) => startDoorwatch(args, readyText, { procs, timeoutMs: 30_000 });

async function kill(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

/** Accepts on the fixture server, ~50 a second, until stopped (bounded: at most 90 s). */
function acceptLoad(): { stop: boolean; done: Promise<void> } {
  const state = { stop: false, done: Promise.resolve() };
  const deadline = Date.now() + 90_000;
  state.done = (async () => {
    while (!state.stop && Date.now() < deadline) {
      const c = await connectTcp('127.0.0.1', server.ready.port);
      await server.next();
      c.close();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return state;
}

/** A panel query as Grafana sends it: the dashboard's variables replaced. */
function substitute(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$namespace', NAMESPACE).replaceAll('$node', NODE);
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
const query = (expr: string) => prom!.api<{ resultType: string; result: Sample[] }>('query', { query: expr });

before(async () => {
  buildFixtures();
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'dw-monitoring-'));
  ({ api } = await kubeApiStandIn());
  api.addNamespace(NAMESPACE);
  api.addNamespace('shop');
  // One AcceptAuditPolicy the agent accepts, one it rejects (an unknown mode).
  api.upsertPolicy({ metadata: { namespace: 'shop', name: 'audit' }, spec: { mode: 'events' } });
  api.upsertPolicy({ metadata: { namespace: 'shop', name: 'broken' }, spec: { mode: 'sometimes' } });
  const kubeconfig = api.writeKubeconfig(dir);

  server = await startFixture('acceptor', ['--syscall', 'accept4', '--count', '1000000']);
  const grpcPort = await freePort();
  collectorPort = await freePort();
  agentPort = await freePort();
  const collectorYaml = join(dir, 'collector.yaml');
  writeJsonlCollectorYaml(collectorYaml, { port: grpcPort, pki, eventsPath: join(dir, 'events.jsonl') });
  const agentYaml = join(dir, 'agent.yaml');
  writeFileSync(agentYaml, JSON.stringify({ kube: { kubeconfig }, policy: { summaryInterval: '1s' } }));

  await start(
    ['collector', '-c', collectorYaml, '--health-address', `127.0.0.1:${collectorPort}`, '--log-level', 'info'],
    /collector listening/,
  );
  const c = pki.client('agent-dash');
  await start(
    [
      'agent',
      '--config',
      agentYaml,
      '--collector',
      `127.0.0.1:${grpcPort}`,
      ...tlsFlags(pki.caFile, c),
      '--server-name',
      'localhost',
      '--spool-dir',
      join(dir, 'spool'),
      '--node-name',
      NODE,
      '--batch-max-delay',
      '20ms',
      '--health-address',
      `127.0.0.1:${agentPort}`,
      '--log-level',
      'info',
    ],
    /agent started/,
  );
  await until(async () => (await httpGet(agentPort, '/readyz')).status === 200, 'the agent ready', 20_000);
  await until(async () => (await httpGet(collectorPort, '/readyz')).status === 200, 'the collector ready', 20_000);

  prom = await startPrometheus([
    { job: AGENT_JOB, target: `127.0.0.1:${agentPort}`, labels: { namespace: NAMESPACE, node: NODE, pod: 'doorwatch-agent-x1' } },
    { job: COLLECTOR_JOB, target: `127.0.0.1:${collectorPort}`, labels: { namespace: NAMESPACE, pod: 'doorwatch-collector-0' } },
  ]);
  load = acceptLoad();
  // Enough 1 s scrapes for every rate() over 1m, with accepts, writes and acks in the window.
  await until(
    async () => {
      const r = await query(`sum(increase(doorwatch_collector_events_received_total{namespace="${NAMESPACE}"}[1m]))`);
      const n = await query(`count_over_time(doorwatch_agent_ready{namespace="${NAMESPACE}"}[1m])`);
      return Number(r.result[0]?.value[1] ?? 0) >= 50 && Number(n.result[0]?.value[1] ?? 0) >= 10;
    },
    'Prometheus to hold 10 s of scrapes with accepts',
    60_000,
  );
});

after(async () => {
  if (load) {
    load.stop = true;
    await load.done.catch(() => {});
  }
  await prom?.stop();
  for (const p of [...procs]) await kill(p);
  killAll();
  await api?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

describe('Grafana dashboard vs a real Prometheus scraping a live agent and collector', () => {
  it('both /metrics pass promtool check metrics', async () => {
    assert.deepEqual(checkMetrics((await httpGet(agentPort, '/metrics')).body), [], 'agent');
    assert.deepEqual(checkMetrics((await httpGet(collectorPort, '/metrics')).body), [], 'collector');
  });

  it("the dashboard variables' queries find the namespace and the node", async () => {
    const vars = dashboard.templating.list as Any[];
    assert.deepEqual(
      vars.map((v) => v.name),
      ['datasource', 'namespace', 'node'],
    );
    const ns = await prom!.api<string[]>('label/namespace/values', { 'match[]': 'doorwatch_agent_info' });
    assert.ok(ns.includes(NAMESPACE), `label_values(doorwatch_agent_info, namespace): ${ns}`);
    const nodes = await prom!.api<string[]>('label/node/values', { 'match[]': `doorwatch_agent_info{namespace="${NAMESPACE}"}` });
    assert.deepEqual(nodes, [NODE]);
  });

  it('every panel query returns data', async () => {
    const targets = (dashboard.panels as Any[])
      .filter((p) => p.type !== 'row')
      .flatMap((p) => (p.targets as Any[]).map((t) => ({ panel: p.title as string, expr: substitute(t.expr) })));
    assert.ok(targets.length >= 35, `${targets.length} queries`);
    const empty: string[] = [];
    for (const t of targets) {
      const r = await query(t.expr);
      if (r.result.length === 0) empty.push(`${t.panel}: ${t.expr}`);
    }
    assert.deepEqual(empty, [], 'panels without data');
  });

  it('the panels show what happened: accepts on the node, from host processes, both policies, one rejected', async () => {
    const one = async (expr: string) => {
      const r = await query(substitute(expr));
      return r.result;
    };
    const byNode = await one(
      `sum by (node) (rate(doorwatch_events_total{namespace="$namespace", node=~"$node"}[$__rate_interval]))`,
    );
    assert.equal(byNode[0]?.metric.node, NODE);
    assert.ok(Number(byNode[0]?.value[1]) > 1, `accepts/s on ${NODE}: ${byNode[0]?.value[1]}`);
    const ns = await one(
      `sum by (pod_namespace) (increase(doorwatch_collector_accepts_total{namespace="$namespace", result="success"}[$__rate_interval]))`,
    );
    assert.ok(
      ns.some((s) => s.metric.pod_namespace === '_none' && Number(s.value[1]) > 0),
      'host accepts under _none',
    );
    const policies = await one('max by (state) (doorwatch_policy_resources{namespace="$namespace", node=~"$node"})');
    const state = Object.fromEntries(policies.map((s) => [s.metric.state, Number(s.value[1])]));
    assert.equal(state.accepted, 1);
    assert.equal(state.rejected, 1);
    const written = await one(
      'sum(increase(doorwatch_collector_sink_written_total{namespace="$namespace", sink="file"}[$__rate_interval]))',
    );
    assert.ok(Number(written[0]?.value[1]) > 0, 'the sink wrote');
  });

  it("every alert's expression is valid PromQL against the live series", async () => {
    // The rules are unit-tested by promtool (test/unit/chart-alerts.test.ts); here each must also evaluate
    // without error against real series of this release's names.
    const rendered = find(
      render({ apiVersions: [PROMETHEUS_API], set: ['prometheusRule.enabled=true'] }).objects,
      'PrometheusRule',
    );
    for (const g of rendered.spec.groups as Any[]) for (const r of g.rules as Any[]) await query(String(r.expr));
  });
});
