import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAgent } from '../../src/cli/agent.js';
import type { RunningCollector } from '../../src/collector/collector.js';
import { type AcceptEvent, AttributionStatus, OwnerKind } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { httpGet, testAgentOptions } from '../helpers/agent-harness.js';
import { KubeApiServer, makePod, tempDir } from '../helpers/kube-api-server.js';
import { type MemorySinks, startMemoryCollector } from '../helpers/memory-sink.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { PodSim } from '../helpers/pod-sim.js';
import { TcpGate } from '../helpers/tcp-gate.js';
import { requireRoot } from '../helpers/tracer.js';
import { bounded, until } from '../helpers/wait.js';

/*
 * Peer attribution end to end: the real agent (real probes) -> gRPC/mTLS -> the real collector with peer
 * attribution on, whose pods, Services and nodes come from the Kubernetes API STAND-IN
 * (test/helpers/kube-api-server.ts: there is no kube-apiserver here) by list+watch.
 *
 * Two simulated pods (pod-sim.ts: kubelet-shaped cgroup, own network namespace) joined by a veth pair
 * whose addresses (198.18.R.0/30, 192.0.2.10, 192.0.2.20: benchmarking and documentation ranges) exist
 * only inside the namespaces this test creates. The client pod connects to the server pod: the event at
 * the collector names the client's pod and Deployment. Then the client's address is taken by a new pod
 * (the old one deleted, the new one added, through the stand-in's watch; a new network namespace with
 * the same address). The agent's events of the old client are held back (a closed TCP gate between agent
 * and collector) until after the reuse, so the collector attributes them after the address changed
 * hands: they must still name the old pod, and the new client's events the new one. A node address and a
 * Service's external IP, from the stand-in, resolve to that node and Service.
 */

requireRoot();

const R = Math.floor(Math.random() * 64) * 4;
const SERVER_IP = `198.18.${R >> 8}.${(R & 255) + 1}`;
const CLIENT_IP = `198.18.${R >> 8}.${(R & 255) + 2}`;
const NODE_IP = '192.0.2.10';
const SERVICE_IP = '192.0.2.20';
const NODE = 'node-peers';

let api: KubeApiServer;
let pki: Pki;
let dir: string;
let sim: PodSim;
let gate: TcpGate;
let collector: RunningCollector;
let mem: MemorySinks;
let serverPid: number;
let stop: (why: string) => void;
let agentDone: Promise<void>;
let agentPort = 0;
const netnses: string[] = [];
const run = randomBytes(3).toString('hex');

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
const inNs = (ns: string, ...args: string[]) => sh('ip', ['netns', 'exec', ns, ...args]);

/** A client "pod": a network namespace joined to the server pod's by a veth pair (its address: CLIENT_IP, and NODE_IP). */
function clientNetns(serverNs: string, tag: string): string {
  const ns = `dwc-${run}-${tag}`;
  const a = `dwj${run}${tag}s`;
  const b = `dwj${run}${tag}c`;
  sh('ip', ['netns', 'add', ns]);
  netnses.push(ns);
  sh('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  sh('ip', ['link', 'set', a, 'netns', serverNs]);
  sh('ip', ['link', 'set', b, 'netns', ns]);
  inNs(serverNs, 'ip', 'addr', 'add', `${SERVER_IP}/30`, 'dev', a);
  inNs(serverNs, 'ip', 'addr', 'add', `${SERVICE_IP}/32`, 'dev', a);
  inNs(serverNs, 'ip', 'link', 'set', a, 'up');
  inNs(serverNs, 'ip', 'route', 'add', `${NODE_IP}/32`, 'dev', a);
  inNs(ns, 'ip', 'addr', 'add', `${CLIENT_IP}/30`, 'dev', b);
  inNs(ns, 'ip', 'addr', 'add', `${NODE_IP}/32`, 'dev', b);
  inNs(ns, 'ip', 'link', 'set', b, 'up');
  inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  inNs(ns, 'ip', 'route', 'add', `${SERVICE_IP}/32`, 'dev', b);
  return ns;
}

function deleteNetns(ns: string): void {
  sh('ip', ['netns', 'del', ns]); // its veth end goes with it, and the pair with that
  netnses.splice(netnses.indexOf(ns), 1);
}

const CLIENT = `
import socket, sys
s = socket.socket()
if len(sys.argv) > 3: s.bind((sys.argv[3], 0))
s.settimeout(5); s.connect((sys.argv[1], int(sys.argv[2]))); s.recv(1); s.close()
`;

/** One connection from the client namespace to the server pod, accepted and closed by it. */
function connect(ns: string, to = SERVER_IP, from?: string): Promise<void> {
  const p: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', CLIENT, to, '8080', ...(from ? [from] : [])], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  p.stderr!.on('data', (d) => {
    err += d;
  });
  return bounded(
    new Promise<void>((resolve, reject) =>
      p.once('exit', (c) => (c === 0 ? resolve() : reject(new Error(`client in ${ns} exited ${c}: ${err}`)))),
    ),
    10_000,
    'a client connection',
  );
}

const serverEvents = (): AcceptEvent[] =>
  mem.get('mem').events.filter((e) => e.process?.pid === serverPid && e.success && !e.listenerInfo); // accepts, not listener records

const peerStats = () => {
  const s = collector.stats().peers;
  assert.ok(s, 'the collector runs its peer index');
  return s;
};

const clientPod = (name: string, uid: string, owner: { kind: string; name: string }, hash?: string) =>
  makePod({
    name,
    namespace: 'shop',
    uid,
    nodeName: NODE,
    labels: { app: 'client', ...(hash ? { 'pod-template-hash': hash } : {}) },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: `${uid}-owner`, controller: true }],
    podIP: CLIENT_IP,
  });

before(async () => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'dw-peers-e2e-'));
  api = await KubeApiServer.create();
  const kubeconfig = api.writeKubeconfig(tempDir());
  sim = new PodSim();
  const server = sim.systemdContainerdPod();
  serverPid = (await sim.startServer(server.cgroupDir, server.netns.name)).pid!;

  api.addNode({
    metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } },
    spec: { podCIDRs: ['198.18.0.0/16'] },
    status: {
      addresses: [
        { type: 'InternalIP', address: NODE_IP },
        { type: 'Hostname', address: NODE },
      ],
    },
  });
  api.addService({
    metadata: { name: 'front', namespace: 'shop', labels: { tier: 'edge' } },
    spec: { clusterIP: '198.18.255.10', clusterIPs: ['198.18.255.10'], externalIPs: [SERVICE_IP] },
  });
  api.addPod(
    makePod({ name: 'web-0', namespace: 'shop', uid: server.uid, nodeName: NODE, labels: { app: 'web' }, podIP: SERVER_IP }),
  );
  api.addPod(clientPod('client-7c9d-a1b2c', 'uid-client-a', { kind: 'ReplicaSet', name: 'client-7c9d' }, '7c9d'));

  ({ collector, mem } = await startMemoryCollector(pki, [{ name: 'mem' }], {
    peers: { enabled: true, kubeconfig },
    health: { address: '127.0.0.1:0' },
  }));
  await until(() => peerStats().synced && peerStats().pods === 2, 'the peer index synced from the stand-in', 10_000);
  // The agent reaches the collector through a gate that holds its stream until the reuse is done.
  gate = await TcpGate.start({ host: '127.0.0.1', port: collector.port });
  const stopSignal = new Promise<string>((r) => {
    stop = r;
  });
  let listening: (p: number) => void;
  const up = new Promise<number>((r) => {
    listening = r;
  });
  const target = { target: `127.0.0.1:${gate.port}`, pki };
  agentDone = runAgent(testAgentOptions(target, { client: 'agent-peers', spoolDir: join(dir, 'spool') }, { nodeName: NODE }), {
    log: silentLogger,
    stopSignal,
    processMetrics: false,
    endpointsListening: (a) => listening(a.port),
  });
  agentDone.catch(() => {});
  agentPort = await bounded(Promise.race([up, agentDone.then(() => 0)]), 20_000, 'agent endpoints');
});

after(async () => {
  stop?.('test over');
  await bounded(agentDone, 15_000, 'the agent to stop').catch(() => {});
  await gate?.close();
  await collector?.stop();
  await api?.close();
  for (const ns of [...netnses]) {
    try {
      deleteNetns(ns);
    } catch {}
  }
  sim?.cleanup();
  rmSync(dir, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

describe('peer attribution at the collector (real probes, API stand-in)', () => {
  it('names the client pod and its workload; after the address is reused, earlier events still name the old pod', async () => {
    const serverNs = execFileSync('ip', ['netns', 'identify', String(serverPid)], { encoding: 'utf8' }).trim();
    const nsA = clientNetns(serverNs, 'a');
    // Probes attached (readiness: probes, and the spool accepting while the collector is out of reach).
    await until(async () => (await httpGet(agentPort, '/readyz')).status === 200, 'the agent ready', 20_000);
    for (let i = 0; i < 3; i++) await connect(nsA);
    const sentBeforeReuse = Date.now();
    assert.equal(serverEvents().length, 0, 'nothing reached the collector yet (the gate is closed)');

    // The address changes hands in the API (the watch carries the deletion, then the new pod) and on the wire.
    const endedBefore = peerStats().ended;
    api.deletePod('shop', 'client-7c9d-a1b2c');
    await until(() => peerStats().ended > endedBefore && peerStats().pods === 1, 'the deletion through the watch', 10_000);
    deleteNetns(nsA);
    api.addPod(clientPod('batch-0', 'uid-client-b', { kind: 'StatefulSet', name: 'batch' }));
    await until(() => peerStats().pods === 2, 'the new pod through the watch', 10_000);
    const reusedAt = Date.now();
    const nsB = clientNetns(serverNs, 'b');

    gate.open();
    await until(() => serverEvents().length >= 3, 'the held events at the collector', 20_000);
    const early = serverEvents();
    assert.equal(early.length, 3);
    for (const e of early) {
      const a = e.peerAttribution;
      assert.equal(e.socket?.peer?.ip, CLIENT_IP);
      assert.ok(Number(e.timeUnixNano / 1_000_000n) <= sentBeforeReuse, 'happened before the reuse');
      assert.equal(a?.status, AttributionStatus.ATTRIBUTION_STATUS_RESOLVED, JSON.stringify(a));
      assert.equal(a?.kind, OwnerKind.OWNER_KIND_POD);
      assert.equal(`${a?.namespace}/${a?.name}`, 'shop/client-7c9d-a1b2c', 'attributed after the reuse, to the pod of its time');
      assert.equal(a?.uid, 'uid-client-a');
      assert.deepEqual(a?.workload, { kind: 'Deployment', name: 'client', inferred: false });
      assert.equal(a?.nodeName, NODE);
      assert.equal(a?.labels.app, 'client');
      assert.equal(e.localAttribution?.name, 'web-0', 'the local address is the server pod’s');
    }

    await connect(nsB);
    await connect(nsB);
    await until(() => serverEvents().length >= early.length + 2, 'the new client’s events', 20_000);
    const late = serverEvents().slice(early.length);
    for (const e of late) {
      assert.ok(Number(e.timeUnixNano / 1_000_000n) >= reusedAt);
      assert.equal(e.peerAttribution?.name, 'batch-0');
      assert.equal(e.peerAttribution?.uid, 'uid-client-b');
      assert.deepEqual(e.peerAttribution?.workload, { kind: 'StatefulSet', name: 'batch', inferred: false });
    }
  });

  it('a node address and a Service’s external IP from the stand-in resolve to that node and Service', async () => {
    const nsB = netnses.find((n) => n.endsWith('-b'))!;
    const n0 = serverEvents().length;
    await connect(nsB, SERVER_IP, NODE_IP); // from the node's InternalIP
    await connect(nsB, SERVICE_IP); // to the Service's external IP
    await until(() => serverEvents().length >= n0 + 2, 'both events', 20_000);
    const [fromNode, toService] = serverEvents().slice(n0);
    assert.equal(fromNode!.socket?.peer?.ip, NODE_IP);
    assert.equal(fromNode!.peerAttribution?.kind, OwnerKind.OWNER_KIND_NODE);
    assert.equal(fromNode!.peerAttribution?.name, NODE);
    assert.equal(toService!.socket?.local?.ip, SERVICE_IP);
    assert.equal(toService!.localAttribution?.kind, OwnerKind.OWNER_KIND_SERVICE);
    assert.equal(`${toService!.localAttribution?.namespace}/${toService!.localAttribution?.name}`, 'shop/front');
    assert.equal(toService!.localAttribution?.labels.tier, 'edge');
    assert.equal(toService!.peerAttribution?.name, 'batch-0');
  });

  it('/metrics: attributions by status, and the index', async () => {
    const m = (await httpGet(collector.healthAddress!.port, '/metrics')).body;
    const resolved = Number(/^doorwatch_collector_peer_attributions_total\{status="resolved"\} (\d+)/m.exec(m)?.[1]);
    assert.ok(resolved >= serverEvents().length, `resolved ${resolved} >= the server pod's ${serverEvents().length} events`);
    assert.match(m, /^doorwatch_collector_peer_index_synced 1$/m);
    assert.match(m, /^doorwatch_collector_peer_index_holdings\{state="ended"\} [1-9]/m, 'the old client kept for late events');
  });
});
