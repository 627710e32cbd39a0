import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readlinkSync, rmdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { CgroupResolver } from '../../src/enrich/cgroup/resolver.js';
import { Enricher } from '../../src/enrich/enricher.js';
import { loadKubeConfig } from '../../src/enrich/kube/config.js';
import { KubeMetadataSource } from '../../src/enrich/kube/source.js';
import { type AcceptEvent, EnrichmentStatus } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { connectTcp } from '../helpers/fixtures.js';
import { KubeApiServer, makePod, ownerRef, randomContainerId, tempDir } from '../helpers/kube-api-server.js';
import { requireRoot, startTracer, type Tracer } from '../helpers/tracer.js';

// End to end on the real kernel: real cgroup v2 directories shaped like
// kubelet's, a real server inside one and in its own network namespace (like
// a pod), the real probes, the real enricher, and a Kubernetes API stand-in
// (test/helpers/kube-api-server.ts: no kube-apiserver can run here).

requireRoot();
const V2 = '/sys/fs/cgroup/unified';
const NODE = 'node-e2e';
const PENDING_MS = 600;
const run = randomBytes(3).toString('hex');

let api: KubeApiServer;
let kube: KubeMetadataSource;
let enricher: Enricher;
let t: Tracer;
const cleanups: (() => void)[] = [];

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** mkdir every level of a kubelet-shaped cgroup; removed bottom-up afterwards. */
function makeCgroup(rel: string): string {
  const parts = rel.split('/').filter(Boolean);
  let dir = V2;
  for (const p of parts) {
    dir = `${dir}/${p}`;
    try {
      mkdirSync(dir);
      const d = dir;
      cleanups.push(() => {
        for (let i = 0; i < 50; i++) {
          try {
            rmdirSync(d);
            return;
          } catch {
            execFileSync('sleep', ['0.05']);
          }
        }
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  return dir;
}

let netIndex = 0;
/** A pod-like network namespace with a veth to the host; returns the pod's IP. */
function makeNetns(): { name: string; ip: string } {
  const i = netIndex++;
  const name = `dw-${run}-${i}`;
  const host = `dwh${run}${i}`;
  const peer = `dwp${run}${i}`;
  const octet = 100 + (Number.parseInt(run, 16) % 100);
  sh('ip', ['netns', 'add', name]);
  cleanups.push(() => {
    try {
      sh('ip', ['link', 'del', host]);
    } catch {}
    sh('ip', ['netns', 'del', name]);
  });
  sh('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
  sh('ip', ['link', 'set', peer, 'netns', name]);
  sh('ip', ['addr', 'add', `10.${octet}.${i}.1/30`, 'dev', host]);
  sh('ip', ['link', 'set', host, 'up']);
  sh('ip', ['netns', 'exec', name, 'ip', 'addr', 'add', `10.${octet}.${i}.2/30`, 'dev', peer]);
  sh('ip', ['netns', 'exec', name, 'ip', 'link', 'set', peer, 'up']);
  sh('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  return { name, ip: `10.${octet}.${i}.2` };
}

const SERVER = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 8080)); s.listen(16)
print('ready', flush=True)
while True:
    c, a = s.accept(); c.close()
`;

/** python3 accepting on :8080, moved into `cgroupDir` and `netns` before it starts. */
async function startPodServer(cgroupDir: string, netns: string): Promise<ChildProcess> {
  const p = spawn('sh', ['-c', `echo $$ > ${cgroupDir}/cgroup.procs && exec ip netns exec ${netns} python3 -c "$0"`, SERVER], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanups.push(() => p.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    let err = '';
    p.stderr!.on('data', (d) => {
      err += d;
    });
    p.stdout!.once('data', () => resolve());
    p.once('exit', (c) => reject(new Error(`pod server exited ${c}: ${err}`)));
  });
  return p;
}

interface FakePod {
  uid: string;
  cid: string;
  cgroupDir: string;
  netns: { name: string; ip: string };
}

function systemdContainerdPod(): FakePod {
  const uid = randomUUID();
  const cid = randomContainerId();
  const cgroupDir = makeCgroup(
    `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid.replaceAll('-', '_')}.slice/cri-containerd-${cid}.scope`,
  );
  return { uid, cid, cgroupDir, netns: makeNetns() };
}

function cgroupfsCrioPod(): FakePod {
  const uid = randomUUID();
  const cid = randomContainerId();
  return { uid, cid, cgroupDir: makeCgroup(`kubepods/besteffort/pod${uid}/crio-${cid}`), netns: makeNetns() };
}

async function acceptOne(pod: FakePod, pid: number, timeoutMs = 5000): Promise<AcceptEvent> {
  const c = await connectTcp(pod.netns.ip, 8080);
  const port = c.localPort;
  const [ev] = await t.waitFor((e) => e.process?.pid === pid && e.socket?.peer?.port === port, 1, timeoutMs);
  c.close();
  return ev!;
}

before(async () => {
  api = await KubeApiServer.create();
  api.addNamespace('payments', { team: 'pay', 'doorwatch.io/audit': 'true' });
  api.addNamespace('data', { team: 'data' });
  const kubeconfig = api.writeKubeconfig(tempDir());
  const loaded = loadKubeConfig({ kubeconfigPath: kubeconfig });
  assert.ok(loaded.kubeConfig, 'kubeconfig loads');
  kube = new KubeMetadataSource({
    kubeConfig: loaded.kubeConfig,
    nodeName: NODE,
    log: silentLogger,
    backoff: { initialMs: 50, maxMs: 200 },
  });
  await kube.start();
  const cgroups = new CgroupResolver({ log: silentLogger, minRescanIntervalMs: 0 });
  t = startTracer({
    through: (sink) => {
      enricher = new Enricher({ cgroups, kube, pendingDeadlineMs: PENDING_MS, emit: sink, log: silentLogger });
      enricher.start(20);
      return (b) => enricher.process(b);
    },
  });
});

after(async () => {
  t?.stop();
  enricher?.stop();
  await kube?.stop();
  await api?.close();
  for (const c of cleanups.reverse()) {
    try {
      c();
    } catch {}
  }
});

describe('enrichment end to end (real cgroups, netns, probes; API stand-in)', () => {
  it('attributes an accept in a Deployment pod (systemd driver, containerd) completely', async () => {
    const pod = systemdContainerdPod();
    api.addPod(
      makePod({
        name: 'web-6d8f9c7b5-x2k4q',
        namespace: 'payments',
        uid: pod.uid,
        nodeName: NODE,
        labels: { app: 'web', 'pod-template-hash': '6d8f9c7b5' },
        ownerReferences: [ownerRef('ReplicaSet', 'web-6d8f9c7b5')],
        containers: [{ name: 'web', image: 'registry.example/web:1.2', id: pod.cid, runtime: 'containerd' }],
        qosClass: 'Burstable',
        podIP: pod.netns.ip,
        serviceAccountName: 'web-sa',
      }),
    );
    const server = await startPodServer(pod.cgroupDir, pod.netns.name);
    const ev = await acceptOne(pod, server.pid!);

    assert.equal(ev.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, ev.enrichment?.reason);
    assert.equal(ev.pod?.namespace, 'payments');
    assert.equal(ev.pod?.name, 'web-6d8f9c7b5-x2k4q');
    assert.equal(ev.pod?.uid, pod.uid);
    assert.deepEqual(ev.pod?.workload, { kind: 'Deployment', name: 'web', inferred: false });
    assert.equal(ev.pod?.labels.app, 'web');
    assert.deepEqual(ev.pod?.namespaceLabels, {
      team: 'pay',
      'doorwatch.io/audit': 'true',
      'kubernetes.io/metadata.name': 'payments',
    });
    assert.equal(ev.pod?.serviceAccount, 'web-sa');
    assert.equal(ev.pod?.qosClass, 'Burstable');
    assert.equal(ev.pod?.ip, pod.netns.ip);
    assert.equal(ev.container?.id, pod.cid);
    assert.equal(ev.container?.name, 'web');
    assert.equal(ev.container?.image, 'registry.example/web:1.2');
    assert.equal(ev.container?.runtime, 'containerd');
    assert.ok(ev.container?.cgroupPath.endsWith(`cri-containerd-${pod.cid}.scope`));
    // The accept happened in the pod's own network namespace.
    const hostNet = Number(/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'))![1]);
    assert.notEqual(ev.namespaces?.net, hostNet);
    assert.deepEqual(ev.socket?.local, { ip: pod.netns.ip, port: 8080 });
  });

  it('attributes a StatefulSet pod created after the agent started (cgroupfs driver, CRI-O)', async () => {
    const pod = cgroupfsCrioPod();
    const server = await startPodServer(pod.cgroupDir, pod.netns.name);
    api.addPod(
      makePod({
        name: 'db-0',
        namespace: 'data',
        uid: pod.uid,
        nodeName: NODE,
        labels: { app: 'db' },
        ownerReferences: [ownerRef('StatefulSet', 'db')],
        containers: [{ name: 'postgres', image: 'postgres:16', id: pod.cid, runtime: 'cri-o' }],
      }),
    );
    const ev = await acceptOne(pod, server.pid!);
    assert.equal(ev.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, ev.enrichment?.reason);
    assert.deepEqual(ev.pod?.workload, { kind: 'StatefulSet', name: 'db', inferred: false });
    assert.equal(ev.container?.runtime, 'cri-o');
    assert.equal(ev.container?.name, 'postgres');
    assert.equal(ev.pod?.qosClass, 'BestEffort');
  });

  it('still attributes an accept whose pod is deleted right after it', async () => {
    const pod = systemdContainerdPod();
    api.addPod(
      makePod({
        name: 'job-pod',
        namespace: 'payments',
        uid: pod.uid,
        nodeName: NODE,
        ownerReferences: [ownerRef('Job', 'report-29384756')],
        containers: [{ name: 'report', image: 'busybox', id: pod.cid }],
      }),
    );
    const server = await startPodServer(pod.cgroupDir, pod.netns.name);
    await new Promise((r) => setTimeout(r, 100)); // the informer has it
    const c = await connectTcp(pod.netns.ip, 8080);
    const port = c.localPort;
    api.deletePod('payments', 'job-pod');
    const [ev] = await t.waitFor((e) => e.process?.pid === server.pid && e.socket?.peer?.port === port);
    c.close();
    assert.equal(ev!.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, ev!.enrichment?.reason);
    assert.equal(ev!.pod?.name, 'job-pod');
    assert.deepEqual(ev!.pod?.workload, { kind: 'CronJob', name: 'report', inferred: true });
  });

  it('keeps events flowing (partial, with the reason) while the API is down, and recovers without a restart', async () => {
    await api.stop();
    const pod = systemdContainerdPod();
    const server = await startPodServer(pod.cgroupDir, pod.netns.name);
    const down = await acceptOne(pod, server.pid!, PENDING_MS + 5000);
    assert.equal(down.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL);
    assert.deepEqual(down.enrichment?.missing, ['pod']);
    assert.match(
      down.enrichment?.reason ?? '',
      new RegExp(`container ${pod.cid} not in the Kubernetes API after ${PENDING_MS}ms`),
    );
    assert.equal(down.container?.id, pod.cid, 'what the cgroup says still goes out');
    assert.equal(down.pod?.uid, pod.uid);
    assert.ok((down.enrichment?.waitedMs ?? 0) >= PENDING_MS);

    await api.start();
    api.addPod(
      makePod({
        name: 'late',
        namespace: 'payments',
        uid: pod.uid,
        nodeName: NODE,
        containers: [{ name: 'app', image: 'x', id: pod.cid }],
      }),
    );
    const deadline = Date.now() + 10_000;
    while (!kube.byContainerId(pod.cid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const back = await acceptOne(pod, server.pid!);
    assert.equal(back.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, back.enrichment?.reason);
    assert.equal(back.pod?.name, 'late');
  });

  it('marks a host process as host', async () => {
    const { createServer } = await import('node:net');
    const server = createServer((c) => c.destroy()).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as { port: number }).port;
    const c = await connectTcp('127.0.0.1', port);
    const [ev] = await t.waitFor((e) => e.process?.pid === process.pid && e.socket?.local?.port === port);
    c.close();
    server.close();
    assert.equal(ev!.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_HOST);
    assert.equal(ev!.pod, undefined);
    assert.equal(ev!.container, undefined);
  });

  it('used one list and one watch per resource in the steady state', () => {
    // Restarts during the outage add lists; nothing is per event.
    assert.ok(api.counters.lists.pods <= 1 + kube.status().restarts + 1, JSON.stringify(api.counters));
    assert.ok(kube.status().synced);
  });
});
