import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { AGENT_VERSION } from '../../src/cli/agent.js';
import {
  httpGet as get,
  type Reply,
  metricSample as sample,
  startInProcessAgent,
  testAgentOptions,
} from '../helpers/agent-harness.js';
import { FakeCollector, spaceKey } from '../helpers/fake-collector.js';
import { buildFixtures, connectTcp, killAll, startFixture } from '../helpers/fixtures.js';
import { KubeApiServer } from '../helpers/kube-api-server.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { TcpGate } from '../helpers/tcp-gate.js';
import { requireRoot } from '../helpers/tracer.js';
import { bounded, until } from '../helpers/wait.js';

// The real agent in this process (real probes, spool, publisher, informers)
// with its HTTP endpoints: /healthz answers before the probes load; /readyz
// waits for the probes AND the informers' first list (held back by a TCP gate
// in front of the Kubernetes API stand-in); /metrics counts real accepts; a
// dead collector leaves the agent ready, "spooling".

requireRoot();
const NODE = 'endpoints-node';

let pki: Pki;
let dir: string;
let api: KubeApiServer;
let gate: TcpGate;
let collector: FakeCollector;
let port = 0;
let stop: (why: string) => void;
let agentDone: Promise<void>;
const logs: { msg: string; [k: string]: unknown }[] = [];
/** What /healthz and /readyz said while the probes were not loaded yet. */
let atStart: { healthz: Reply; readyz: Reply } | undefined;

const metrics = async () => (await get(port, '/metrics')).body;

before(async () => {
  buildFixtures();
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'dw-agent-endpoints-'));
  api = await KubeApiServer.create();
  api.addNamespace('default');
  gate = await TcpGate.start({ host: '127.0.0.1', port: api.port });
  // The agent reaches the API through the gate: its first list waits until the test opens it.
  const kubeconfig = api.writeKubeconfig(dir);
  writeFileSync(kubeconfig, readFileSync(kubeconfig, 'utf8').replace(api.url, `https://127.0.0.1:${gate.port}`));
  collector = await FakeCollector.start(pki);

  const agent = startInProcessAgent(
    testAgentOptions(
      collector,
      { client: 'agent-endpoints', spoolDir: join(dir, 'spool') },
      {
        nodeName: NODE,
        kube: { enabled: true, kubeconfigPath: kubeconfig, env: {} },
        flushTimeoutMs: 500,
        pod: { name: 'doorwatch-agent-t3st', namespace: 'doorwatch' },
      },
    ),
    {
      log: pino(
        { level: 'info' },
        {
          write: (s: string) => {
            if (process.env.DW_DEBUG) process.stderr.write(s); // the agent's log, when debugging this test
            logs.push(JSON.parse(s));
          },
        },
      ),
      endpointsListening: async (address) => {
        port = address.port;
        atStart = { healthz: await get(port, '/healthz'), readyz: await get(port, '/readyz') };
      },
    },
  );
  stop = agent.stop;
  agentDone = agent.done;
  // A start failure must fail the tests, not hang them.
  agentDone.catch(() => {});
  await bounded(
    Promise.race([
      until(() => logs.some((l) => l.msg === 'agent started: capturing accepts'), 'the agent to start', 20_000),
      agentDone,
    ]),
    21_000,
    'agent start',
  );
});

after(async () => {
  stop?.('test over');
  await bounded(agentDone, 15_000, 'the agent to stop').catch(() => {});
  killAll();
  await collector?.close();
  await gate?.close();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

describe('agent endpoints (real probes)', () => {
  it('/healthz answers at once; /readyz is 503 while the probes load', () => {
    assert.ok(atStart, 'endpoints were up before the probes loaded');
    assert.deepEqual(atStart.healthz, { status: 200, type: 'text/plain; charset=utf-8', body: 'ok\n' });
    assert.equal(atStart.readyz.status, 503);
    assert.match(atStart.readyz.body, /^not ready: probes, kubernetes, transport\n/);
    assert.match(atStart.readyz.body, /\[-\] probes: loading the eBPF programs/);
    const starting = logs.find((l) => l.msg === 'agent starting');
    assert.equal(starting?.pod, 'doorwatch-agent-t3st');
    assert.equal(starting?.namespace, 'doorwatch');
  });

  it('/readyz waits for the informers’ first list, then says ready (connected)', async () => {
    // Probes attached, collector connected: only the held list is missing.
    await until(
      async () => sample(await metrics(), 'doorwatch_collector_connected') === 1,
      'the collector connection',
      10_000,
      50,
    );
    await until(() => gate.held > 0, 'the list request at the gate', 10_000);
    for (let i = 0; i < 3; i++) {
      const r = await get(port, '/readyz');
      assert.equal(r.status, 503, r.body);
      assert.match(r.body, /^not ready: kubernetes\n/);
      assert.match(r.body, /\[\+\] probes: \d+ programs attached/);
      assert.match(r.body, /\[-\] kubernetes: pod and namespace informers not synced yet/);
      assert.match(r.body, /\[\+\] transport: connected to the collector/);
      await sleep(100);
    }
    assert.equal(sample(await metrics(), 'doorwatch_kube_informer_synced'), 0);
    assert.equal(sample(await metrics(), 'doorwatch_agent_ready'), 0);

    gate.open();
    let last: Reply | undefined;
    await until(
      async () => {
        last = await get(port, '/readyz');
        return last.status === 200;
      },
      'ready after the list went through',
      15_000,
      50,
    );
    assert.match(last!.body, /^ready \(connected\)\n/);
    assert.match(last!.body, /\[\+\] kubernetes: informers synced/);
    const m = await metrics();
    assert.equal(sample(m, 'doorwatch_kube_informer_synced'), 1);
    assert.equal(sample(m, 'doorwatch_agent_ready'), 1);
  });

  it('/metrics counts real accepts, kernel counters, enrichment, acks', async () => {
    const before = await metrics();
    const ok4 = 'doorwatch_events_total{syscall="accept4",status="success"}';
    const okAccept = 'doorwatch_events_total{syscall="accept",status="success"}';
    const failed = 'doorwatch_events_total{syscall="accept",status="error"}';
    const emitted = 'doorwatch_kernel_events_total{counter="emitted"}';
    const enriched = (t: string) =>
      ['complete', 'partial', 'host'].reduce((a, s) => a + (sample(t, `doorwatch_enrichment_total{status="${s}"}`) ?? 0), 0);

    const fx4 = await startFixture('acceptor', ['--syscall', 'accept4', '--count', '5']);
    const fx = await startFixture('acceptor', ['--syscall', 'accept', '--count', '3']);
    for (const [f, n] of [
      [fx4, 5],
      [fx, 3],
    ] as const) {
      for (let i = 0; i < n; i++) {
        const c = await connectTcp('127.0.0.1', f.ready.port);
        await f.next();
        c.close();
      }
    }
    const bad = await startFixture('acceptor', ['--syscall', 'accept', '--fail', 'ebadf']);
    assert.equal((await bad.next()).errno, 9);

    let now = '';
    await until(
      async () => {
        now = await metrics();
        return (
          sample(now, ok4)! >= sample(before, ok4)! + 5 &&
          sample(now, okAccept)! >= sample(before, okAccept)! + 3 &&
          sample(now, failed)! >= sample(before, failed)! + 1
        );
      },
      'the accepts in doorwatch_events_total',
      10_000,
      50,
    );
    assert.ok(sample(now, emitted)! >= sample(before, emitted)! + 9, 'kernel emitted counter');
    assert.ok(enriched(now) >= enriched(before) + 9, 'enrichment counts');
    assert.ok(sample(now, 'doorwatch_enrichment_total{status="host"}')! > 0, 'the fixtures are host processes');
    assert.equal(sample(now, 'doorwatch_kernel_dropped_total{reason="ring_buffer_full"}'), 0);
    assert.equal(sample(now, 'doorwatch_decode_errors_total'), 0);
    assert.match(now, /^doorwatch_bpf_program_run_count_total\{program="dw_\w+"\} \d+$/m);
    assert.match(now, /^doorwatch_bpf_program_run_time_seconds_total\{program="dw_\w+"\} [\d.e-]+$/m);
    assert.match(now, /^doorwatch_bpf_program_recursion_misses_total\{program="dw_\w+"\} 0$/m);
    assert.match(
      now,
      new RegExp(
        `^doorwatch_agent_info\\{version="${AGENT_VERSION}",node="${NODE}",pod="doorwatch-agent-t3st",namespace="doorwatch",instance="[0-9a-f]+"\\} 1$`,
        'm',
      ),
    );
    assert.match(now, /^process_resident_memory_bytes \d+/m);

    // Our events reached the collector; the acks moved the watermark and fed the RTT histogram.
    const pids = new Set([fx4.ready.pid, fx.ready.pid, bad.ready.pid]);
    await until(
      () =>
        collector
          .spaces()
          .some((s) => collector.delivered(s).filter((e) => pids.has(e.process?.pid ?? 0) && !e.listenerInfo).length >= 9),
      'our 9 events at the collector',
      10_000,
    );
    await until(async () => (sample(await metrics(), 'doorwatch_collector_rtt_seconds_count') ?? 0) > 0, 'an ack', 5000, 50);
    const m = await metrics();
    assert.ok(sample(m, 'doorwatch_spool_acked_seq')! > 0);
    assert.equal(sample(m, 'doorwatch_collector_connected'), 1);
    assert.equal(sample(m, 'doorwatch_spool_max_bytes'), 64 << 20);
    assert.ok(
      collector
        .spaces()
        .includes(spaceKey({ instanceId: /instance="([0-9a-f]+)"/.exec(m)![1]!, bootId: collector.hellos[0]!.bootId })),
    );
  });

  it('collector gone: still ready, "spooling", and the spool grows', async () => {
    await collector.stop();
    let r: Reply | undefined;
    await until(
      async () => {
        r = await get(port, '/readyz');
        return r.status === 200 && r.body.startsWith('ready (spooling)');
      },
      '/readyz to say spooling',
      10_000,
      50,
    );
    assert.match(r!.body, /\[\+\] transport: spooling: collector not connected/);
    const json = JSON.parse((await get(port, '/readyz?format=json')).body);
    assert.equal(json.ready, true);
    assert.equal(json.mode, 'spooling');
    assert.equal(sample(await metrics(), 'doorwatch_collector_connected'), 0);

    const before = sample(await metrics(), 'doorwatch_spool_bytes')!;
    const fx = await startFixture('acceptor', ['--syscall', 'accept4', '--count', '20']);
    for (let i = 0; i < 20; i++) {
      const c = await connectTcp('127.0.0.1', fx.ready.port);
      await fx.next();
      c.close();
    }
    await until(
      async () => sample(await metrics(), 'doorwatch_spool_bytes')! > before,
      'unacknowledged events in the spool',
      10_000,
      50,
    );
    assert.equal((await get(port, '/readyz')).status, 200);
  });

  it('on stop the endpoints close with the agent', async () => {
    stop('SIGTERM');
    await bounded(agentDone, 15_000, 'the agent to stop');
    await assert.rejects(get(port, '/healthz'), /ECONNREFUSED/);
    assert.ok(logs.some((l) => l.msg.startsWith('agent stopped')));
  });
});
