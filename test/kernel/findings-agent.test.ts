import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { RunningCollector } from '../../src/collector/collector.js';
import { formatLine, formatRecord } from '../../src/formats/format.js';
import { type AcceptEvent, EventKind, ListenerOrigin, PolicyOrigin } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { httpGet, metricSample, startInProcessAgent, testAgentOptions } from '../helpers/agent-harness.js';
import { KubeApiServer, makePod, ownerRef, tempDir } from '../helpers/kube-api-server.js';
import { type MemorySinks, startMemoryCollector } from '../helpers/memory-sink.js';
import { makePki } from '../helpers/pki.js';
import { type FakePod, PodSim } from '../helpers/pod-sim.js';
import { loadEcs, validateEcs } from '../helpers/schemas/ecs.js';
import { loadOcsf, validateOcsf } from '../helpers/schemas/ocsf.js';
import { loadTraceeSource, validateTracee } from '../helpers/schemas/tracee.js';
import { requireRoot } from '../helpers/tracer.js';
import { bounded, freePort, until } from '../helpers/wait.js';

// Undeclared listeners as findings (issue 12 item 3) on the agent's whole path: real probes and kernel
// listener scans -> enricher (pod metadata from the Kubernetes API stand-in, test/helpers/kube-api-server.ts:
// no kube-apiserver runs here) -> inventory -> the undeclared-listener rule -> spool -> gRPC (mutual TLS) ->
// the real collector (its Publish decoder, dedup and dispatch) -> an in-memory sink. Real servers (python3, socat) in simulated
// pods (kubelet-shaped cgroup v2 directories and their own network namespaces, test/helpers/pod-sim.ts).
// Pod `web` (namespace shop) declares 8080/TCP; pod `tool` (namespace quiet) declares nothing, and an agent
// policy rule turns findings off in `quiet`; pod `node-daemon` is hostNetwork (its cgroup, the host's network
// namespace) and declares one containerPort/hostPort.

requireRoot();
const NODE = 'node-findings';
const PERIOD_MS = 1500;
const UNDECLARED = 9090;
const run = promisify(execFile);
const sim = new PodSim();
const dir = mkdtempSync(join(tmpdir(), 'dw-findings-agent-'));
const procs: ChildProcess[] = [];
let api: KubeApiServer;
let collector: RunningCollector;
let mem: MemorySinks;
let stop: (why: string) => void;
let agentDone: Promise<void>;
let port = 0;
let web: FakePod;
let tool: FakePod;
/** A hostNetwork pod: its cgroup only, its processes in the host's network namespace. */
let daemon: FakePod;
let daemonDeclared = 0;
let declared: ChildProcess;

/** A command in a simulated pod: its cgroup, then its network namespace. */
function inPod(pod: FakePod, cmd: string[]): ChildProcess {
  const p = spawn(
    'sh',
    ['-c', `echo $$ > ${pod.cgroupDir}/cgroup.procs && exec ip netns exec ${pod.netns.name} "$@"`, 'sh', ...cmd],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  procs.push(p);
  return p;
}

async function listeningIn(pod: FakePod, p: number, ip = ''): Promise<void> {
  await until(
    async () => {
      const { stdout } = await run('ip', ['netns', 'exec', pod.netns.name, 'ss', '-Hltn', `sport = :${p}`]);
      return stdout.includes(`${ip}:${p}`) || undefined;
    },
    `port ${p} listening in ${pod.netns.name}`,
    5000,
  );
}

const socat = (pod: FakePod, p: number) => inPod(pod, ['socat', `TCP4-LISTEN:${p},reuseaddr,fork`, 'EXEC:/bin/cat']);
const delivered = (): AcceptEvent[] => mem.get('mem').events;
const findings = (): AcceptEvent[] => delivered().filter((e) => e.kind === EventKind.EVENT_KIND_FINDING);
const findingsOf = (pod: FakePod) => findings().filter((e) => e.pod?.uid === pod.uid);
const listenerRecords = (pid: number | undefined, kind: EventKind) =>
  delivered().filter((e) => e.process?.pid === pid && e.kind === kind && e.findingInfo === undefined);

before(async () => {
  api = await KubeApiServer.create();
  api.addNamespace('shop', { team: 'web' });
  api.addNamespace('quiet', { team: 'tools' });
  web = sim.systemdContainerdPod();
  tool = sim.systemdContainerdPod();
  daemon = sim.systemdContainerdPod();
  daemonDeclared = await freePort();
  api.addPod(
    makePod({
      name: 'node-daemon-x7k2p',
      namespace: 'shop',
      uid: daemon.uid,
      nodeName: NODE,
      hostNetwork: true,
      ownerReferences: [ownerRef('DaemonSet', 'node-daemon')],
      containers: [
        {
          name: 'daemon',
          image: 'registry.example/daemon:1',
          id: daemon.cid,
          runtime: 'containerd',
          ports: [{ containerPort: daemonDeclared, hostPort: daemonDeclared, name: 'metrics' }],
        },
      ],
    }),
  );
  api.addPod(
    makePod({
      name: 'web-7c9d8-abcde',
      namespace: 'shop',
      uid: web.uid,
      nodeName: NODE,
      ownerReferences: [ownerRef('ReplicaSet', 'web-7c9d8')],
      containers: [
        {
          name: 'web',
          image: 'registry.example/web:1',
          id: web.cid,
          runtime: 'containerd',
          ports: [{ containerPort: 8080, name: 'http' }],
        },
      ],
      podIP: web.netns.ip,
    }),
  );
  api.addPod(
    makePod({
      name: 'tool',
      namespace: 'quiet',
      uid: tool.uid,
      nodeName: NODE,
      containers: [{ name: 'tool', image: 'registry.example/tool:1', id: tool.cid, runtime: 'containerd' }],
      podIP: tool.netns.ip,
    }),
  );
  // Before the agent: only its snapshot can know this one (the declared port, 0.0.0.0:8080).
  declared = await sim.startServer(web.cgroupDir, web.netns.name);
  const pki = makePki();
  ({ collector, mem } = await startMemoryCollector(pki, [{ name: 'mem' }]));
  const agent = startInProcessAgent(
    testAgentOptions(
      { target: `127.0.0.1:${collector.port}`, pki },
      { client: 'agent-findings', spoolDir: join(dir, 'spool') },
      {
        nodeName: NODE,
        listenersPeriodMs: PERIOD_MS,
        pendingDeadlineMs: 2000,
        kube: { enabled: true, env: {}, kubeconfigPath: api.writeKubeconfig(tempDir()) },
        policy: {
          resources: false,
          rules: [{ name: 'quiet-listeners', namespaces: ['quiet'], mode: 'events', listeners: { undeclared: 'off' } }],
        },
      },
    ),
    {
      log: silentLogger,
      processMetrics: false,
    },
  );
  stop = agent.stop;
  agentDone = agent.done;
  agentDone.catch(() => {});
  port = (await bounded(agent.listening, 20_000, 'agent endpoints')).port;
});

after(async () => {
  stop?.('test over');
  await bounded(agentDone, 15_000, 'the agent to stop').catch(() => {});
  for (const p of procs) p.kill('SIGKILL');
  await collector?.stop();
  await api?.close();
  sim.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('undeclared listeners as findings (real probes, real servers, simulated pods, agent to collector)', () => {
  let first: AcceptEvent;
  let server: ChildProcess;

  it('a server on an undeclared port raises a finding; the declared port raises none', async () => {
    // The snapshot saw the declared listener (attributed to the pod) ...
    const snap = await until(
      () => listenerRecords(declared.pid, EventKind.EVENT_KIND_LISTENER).find((e) => e.pod?.uid === web.uid),
      'the declared listener in the snapshot, attributed',
      15_000,
    );
    assert.deepEqual(snap.socket?.local, { ip: '0.0.0.0', port: 8080 });
    server = socat(web, UNDECLARED);
    await listeningIn(web, UNDECLARED);
    first = await until(() => findingsOf(web)[0], 'the finding at the collector', 10_000);
    const info = first.findingInfo!;
    assert.equal(info.ruleId, 'undeclared-listener');
    assert.equal(info.uid, `undeclared-listener/${web.uid}/TCP/${UNDECLARED}`);
    assert.equal(info.port, UNDECLARED);
    assert.equal(info.protocol, 'TCP');
    assert.deepEqual(
      info.declaredPorts.map((d) => ({ ...d })),
      [{ containerPort: 8080, hostPort: 0, protocol: 'TCP', container: 'web', name: 'http' }],
    );
    // The listener that raised it, from the kernel, attributed like an accept.
    assert.equal(first.process?.pid, server.pid);
    assert.equal(first.process?.comm, 'socat');
    assert.equal(first.listenerInfo?.origin, ListenerOrigin.LISTENER_ORIGIN_KERNEL_LISTEN);
    assert.deepEqual(first.socket?.local, { ip: '0.0.0.0', port: UNDECLARED });
    assert.equal(first.pod?.name, 'web-7c9d8-abcde');
    assert.equal(first.container?.id, web.cid);
    assert.deepEqual({ ...first.policy }, { origin: PolicyOrigin.POLICY_ORIGIN_CONFIG_DEFAULT, name: 'default', mode: 1 });
    assert.ok(first.seq > 0n && first.eventId.endsWith(`/${first.seq}`), 'sequenced like every record');
    // Its listen record travels too, before it.
    const listen = listenerRecords(server.pid, EventKind.EVENT_KIND_LISTEN)[0];
    assert.ok(listen && listen.seq < first.seq, 'the listen record precedes its finding');
    // Nothing about the declared port, ever.
    assert.deepEqual(
      findings().filter((f) => f.findingInfo?.port === 8080),
      [],
    );
  });

  it('is valid OCSF (Detection Finding), ECS (alert) and Tracee as it arrived', () => {
    const rec = { kind: 'event' as const, event: first };
    const ocsf = loadOcsf();
    assert.deepEqual(validateOcsf(ocsf, formatRecord(rec, 'ocsf')), []);
    assert.deepEqual(validateOcsf(ocsf, JSON.parse(formatLine(rec, 'ocsf'))), []);
    assert.equal((formatRecord(rec, 'ocsf') as { class_uid: number }).class_uid, 2004);
    const ecs = formatRecord(rec, 'ecs') as { event: { kind: string } };
    assert.deepEqual(validateEcs(loadEcs(), ecs), []);
    assert.equal(ecs.event.kind, 'alert');
    assert.deepEqual(validateTracee(loadTraceeSource(), formatLine(rec, 'tracee')), []);
  });

  it('a loopback-only listener and a namespace whose policy turns findings off raise none', async () => {
    const local = inPod(web, ['socat', 'TCP4-LISTEN:9191,bind=127.0.0.1,reuseaddr,fork', 'EXEC:/bin/cat']);
    await listeningIn(web, 9191, '127.0.0.1');
    const quiet = socat(tool, UNDECLARED);
    await listeningIn(tool, UNDECLARED);
    // Both listen records arrive, attributed: the rule saw them.
    await until(() => listenerRecords(local.pid, EventKind.EVENT_KIND_LISTEN)[0], 'the loopback listen record', 10_000);
    const q = await until(
      () => listenerRecords(quiet.pid, EventKind.EVENT_KIND_LISTEN)[0],
      'the quiet pod listen record',
      10_000,
    );
    assert.equal(q.pod?.namespace, 'quiet');
    // Let two periods of re-sends pass too.
    await sleep(2 * PERIOD_MS + 500);
    assert.deepEqual(findingsOf(tool), []);
    assert.deepEqual(
      findings().filter((f) => f.findingInfo?.port === 9191),
      [],
    );
    const m = (await httpGet(port, '/metrics')).body;
    assert.ok((metricSample(m, 'doorwatch_findings_skipped_total{rule="undeclared-listener",reason="policy_off"}') ?? 0) >= 1);
    assert.ok((metricSample(m, 'doorwatch_findings_skipped_total{rule="undeclared-listener",reason="loopback"}') ?? 0) >= 1);
    assert.ok((metricSample(m, 'doorwatch_findings_skipped_total{rule="undeclared-listener",reason="declared"}') ?? 0) >= 1);
  });

  it('a hostNetwork pod: a port it declares raises none, a new port on the node raises a finding', async () => {
    const onHost = (p: number) => {
      const proc = spawn(
        'sh',
        ['-c', `echo $$ > ${daemon.cgroupDir}/cgroup.procs && exec socat TCP4-LISTEN:${p},reuseaddr,fork EXEC:/bin/cat`],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      procs.push(proc);
      return proc;
    };
    const ok = onHost(daemonDeclared);
    const extra = await freePort();
    const bad = onHost(extra);
    const listenOf = (p: ChildProcess) =>
      until(() => listenerRecords(p.pid, EventKind.EVENT_KIND_LISTEN)[0], `listen record of pid ${p.pid}`, 10_000);
    const okRec = await listenOf(ok);
    assert.equal(okRec.pod?.hostNetwork, true);
    await listenOf(bad);
    const f = await until(() => findingsOf(daemon)[0], 'the hostNetwork finding', 10_000);
    assert.equal(f.findingInfo?.port, extra);
    assert.equal(f.process?.pid, bad.pid);
    assert.match(f.findingInfo!.title, /\(hostNetwork: on the node\)/);
    await sleep(500);
    assert.deepEqual(
      findingsOf(daemon).map((x) => x.findingInfo?.port),
      [extra],
    );
  });

  it('periodic re-sends raise no second finding; a new listener after the close does', async () => {
    // At least two rescans re-sent the undeclared listener as state records ...
    await until(
      () => listenerRecords(server.pid, EventKind.EVENT_KIND_LISTENER).length >= 2 || undefined,
      'two re-sent state records of the undeclared listener',
      4 * PERIOD_MS + 5000,
    );
    assert.equal(findingsOf(web).length, 1, '... and still one finding');
    server.kill('SIGKILL');
    await until(() => listenerRecords(server.pid, EventKind.EVENT_KIND_LISTENER_CLOSED)[0], 'the closed record', 10_000);
    const again = socat(web, UNDECLARED);
    await listeningIn(web, UNDECLARED);
    const second = await until(() => findingsOf(web).find((f) => f.process?.pid === again.pid), 'the second finding', 10_000);
    assert.equal(second.findingInfo?.uid, first.findingInfo?.uid, 'the same finding identity, raised again');
    assert.ok(second.seq > first.seq);
    await sleep(PERIOD_MS + 500);
    assert.equal(findingsOf(web).length, 2);
    const m = (await httpGet(port, '/metrics')).body;
    // Two for the web pod, one for the hostNetwork daemon: every finding raised reached the collector.
    assert.equal(findings().length, 3);
    assert.equal(metricSample(m, 'doorwatch_findings_total{rule="undeclared-listener"}'), 3);
    assert.ok((metricSample(m, 'doorwatch_findings_skipped_total{rule="undeclared-listener",reason="duplicate"}') ?? 0) >= 2);
  });
});
