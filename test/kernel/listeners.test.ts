import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AcceptProbes } from '../../src/bpf/accept-probes.js';
import { type Pipeline, startPipeline } from '../../src/cli/pipeline.js';
import { formatLine, formatRecord } from '../../src/formats/format.js';
import { eventToJson } from '../../src/formats/native-json.js';
import {
  AcceptEvent,
  AddressFamily,
  EnrichmentStatus,
  EventKind,
  ListenerOrigin,
  Source,
} from '../../src/gen/doorwatch/v1/event.js';
import type { KubeMetadataSource } from '../../src/kube/source.js';
import { silentLogger } from '../../src/log/logger.js';
import { type KubeApiServer, makePod, ownerRef, tempDir } from '../helpers/kube-api-server.js';
import { startKubeStandIn } from '../helpers/kube-stand-in.js';
import { type FakePod, PodSim } from '../helpers/pod-sim.js';
import { loadEcs, validateEcs } from '../helpers/schemas/ecs.js';
import { loadOcsf, validateOcsf } from '../helpers/schemas/ocsf.js';
import { loadTraceeSource, validateTracee } from '../helpers/schemas/tracee.js';
import { requireRoot, startTracer } from '../helpers/tracer.js';
import { freePort, until } from '../helpers/wait.js';

// The listener inventory for real (issue 12 item 2): the real probes (listen(2) and the TCP state
// tracepoint), the agent's pipeline (enricher, inventory, /proc scans), real servers (python3, socat,
// ncat) on the host and in a simulated pod (kubelet-shaped cgroup v2 directory + its own network
// namespace, test/helpers/pod-sim.ts). The Kubernetes API is a stand-in (test/helpers/kube-api-server.ts:
// no kube-apiserver runs here). Listeners opened before the pipeline must come from the /proc snapshot,
// later ones from the kernel; a closed TCP listener from the kernel, a closed unix one from the rescan.

requireRoot();
const NODE = 'node-listeners';
const PERIOD_MS = 1500;
const run = promisify(execFile);
const sim = new PodSim();
const dir = mkdtempSync(join(tmpdir(), 'dw-listeners-'));
const procs: ChildProcess[] = [];
let api: KubeApiServer;
let kube: KubeMetadataSource;
let probes: AcceptProbes;
let pipe: Pipeline;
let pod: FakePod;
let podServer: ChildProcess;
let hostPre: ChildProcess;
let hostPrePort = 0;
let nobody: ChildProcess;
let nobodyPort = 0;
const PY_NOBODY = `
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(21)
print(s.getsockname()[1], flush=True)
time.sleep(600)`;
const records: AcceptEvent[] = [];

/** A process that prints one line when its listener is up. */
async function started(p: ChildProcess, what: string): Promise<string> {
  procs.push(p);
  return new Promise((resolve, reject) => {
    let err = '';
    p.stderr?.on('data', (d) => {
      err += d;
    });
    p.stdout!.once('data', (d) => resolve(String(d).trim()));
    p.once('exit', (c) => reject(new Error(`${what} exited ${c}: ${err}`)));
  });
}

/** A command run in the simulated pod: its cgroup, then its network namespace. */
function inPod(cmd: string): ChildProcess {
  return spawn('sh', ['-c', `echo $$ > ${pod.cgroupDir}/cgroup.procs && exec ip netns exec ${pod.netns.name} ${cmd}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

const py = (code: string) => spawn('python3', ['-c', code], { stdio: ['ignore', 'pipe', 'pipe'] });

/** Wait until the port is listening inside the pod's network namespace (socat prints nothing when ready). */
async function listeningInPod(port: number): Promise<void> {
  await until(
    async () => {
      const { stdout } = await run('ip', ['netns', 'exec', pod.netns.name, 'ss', '-Hltn', `sport = :${port}`]);
      return stdout.includes(`:${port}`) || undefined;
    },
    `port ${port} listening in the pod`,
    5000,
  );
}

function find(pred: (e: AcceptEvent) => boolean, what: string, timeoutMs = 6000): Promise<AcceptEvent> {
  return until(
    () => {
      pipe.capture.drain();
      return records.find(pred);
    },
    what,
    timeoutMs,
  );
}

const isKind = (k: EventKind, o: ListenerOrigin) => (e: AcceptEvent) => e.kind === k && e.listenerInfo?.origin === o;

before(async () => {
  ({ api, kube } = await startKubeStandIn({ node: NODE, namespaces: { shop: { team: 'web' } } }));
  pod = sim.systemdContainerdPod();
  api.addPod(
    makePod({
      name: 'web-7c9d8-abcde',
      namespace: 'shop',
      uid: pod.uid,
      nodeName: NODE,
      ownerReferences: [ownerRef('ReplicaSet', 'web-7c9d8')],
      containers: [{ name: 'web', image: 'registry.example/web:1', id: pod.cid, runtime: 'containerd' }],
      podIP: pod.netns.ip,
    }),
  );
  // Before the probes: only the snapshot can know these. The pod's python3 listens on 0.0.0.0:8080.
  podServer = await sim.startServer(pod.cgroupDir, pod.netns.name);
  hostPre = py(`
import socket, time
s = socket.socket(socket.AF_INET6); s.bind(('::1', 0)); s.listen(5)
u = socket.socket(socket.AF_UNIX); u.bind('${dir}/pre.sock'); u.listen(4)
print(s.getsockname()[1], flush=True)
time.sleep(600)`);
  hostPrePort = Number(await started(hostPre, 'host pre-listener'));
  // Another user's process: /proc/<pid>/fd would need CAP_SYS_PTRACE (the agent has none); the kernel iterator does not.
  nobody = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/python3', '-c', PY_NOBODY], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  nobodyPort = Number(await started(nobody, 'nobody listener'));
  probes = AcceptProbes.load({ ringBytes: 8 << 20, includeEagain: false, log: silentLogger });
  pipe = startPipeline({
    probes,
    kube: { source: kube, detail: 'stand-in' },
    nodeName: NODE,
    pollMs: 5,
    pendingDeadlineMs: 1000,
    emit: (b) => {
      records.push(...b);
    },
    log: silentLogger,
    listeners: { periodMs: PERIOD_MS },
  });
});

after(async () => {
  pipe?.stop();
  probes?.close();
  for (const p of procs) p.kill('SIGKILL');
  await kube?.stop();
  await api?.close();
  sim.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('listener inventory (real probes, real servers, simulated pod)', () => {
  it('sends a snapshot of the listeners that existed before it started, attributed', async () => {
    const snap = isKind(EventKind.EVENT_KIND_LISTENER, ListenerOrigin.LISTENER_ORIGIN_SNAPSHOT);
    const inPodRec = await find((e) => snap(e) && e.process?.pid === podServer.pid, 'snapshot of the pod server');
    assert.equal(inPodRec.source, Source.SOURCE_PROC_SCAN);
    assert.equal(inPodRec.socket?.family, AddressFamily.ADDRESS_FAMILY_INET);
    assert.deepEqual(inPodRec.socket?.local, { ip: '0.0.0.0', port: 8080 });
    assert.equal(inPodRec.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE, inPodRec.enrichment?.reason);
    assert.equal(inPodRec.pod?.name, 'web-7c9d8-abcde');
    assert.equal(inPodRec.pod?.namespace, 'shop');
    assert.equal(inPodRec.container?.id, pod.cid);
    assert.ok((inPodRec.listener?.fd ?? -1) >= 0, 'the holder fd from /proc/<pid>/fd');
    assert.ok((inPodRec.listenerInfo?.inode ?? 0n) > 0n);
    // From the kernel iterator (the pipeline's probes load it): /proc does not show the queue's bound.
    assert.equal(inPodRec.listener?.maxBacklog, 16);

    const other = await find((e) => snap(e) && e.process?.pid === nobody.pid, "another user's listener");
    assert.equal(other.process?.uid, 65534);
    assert.deepEqual(other.socket?.local, { ip: '127.0.0.1', port: nobodyPort });
    assert.equal(other.listener?.maxBacklog, 21);

    const v6 = await find((e) => snap(e) && e.process?.pid === hostPre.pid && e.socket?.local?.port === hostPrePort, 'v6');
    assert.equal(v6.socket?.family, AddressFamily.ADDRESS_FAMILY_INET6);
    assert.equal(v6.socket?.local?.ip, '::1');
    assert.equal(v6.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_HOST);
    const unix = await find((e) => snap(e) && e.socket?.unixPath === `${dir}/pre.sock`, 'unix snapshot');
    assert.equal(unix.process?.pid, hostPre.pid);
    assert.equal(unix.process?.comm, 'python3');
  });

  let socat: ChildProcess;
  let unixLate: ChildProcess;
  const SOCAT_PORT = 9090;

  it('sends a listen record for listeners opened later, from the kernel, attributed', async () => {
    socat = inPod(`socat TCP4-LISTEN:${SOCAT_PORT},reuseaddr,backlog=37,fork EXEC:/bin/cat`);
    procs.push(socat);
    await listeningInPod(SOCAT_PORT);
    const listen = isKind(EventKind.EVENT_KIND_LISTEN, ListenerOrigin.LISTENER_ORIGIN_KERNEL_LISTEN);
    const s = await find((e) => listen(e) && e.process?.pid === socat.pid, 'socat listen record');
    assert.equal(s.source, Source.SOURCE_LISTEN);
    assert.equal(s.process?.comm, 'socat');
    assert.deepEqual(s.socket?.local, { ip: '0.0.0.0', port: SOCAT_PORT });
    assert.equal(s.listenerInfo?.requestedBacklog, 37);
    assert.equal(s.listener?.maxBacklog, 37);
    assert.equal(s.pod?.name, 'web-7c9d8-abcde');
    assert.equal(s.container?.id, pod.cid);
    // The socket's network namespace is the pod's, not the host's.
    const podNet = Number(
      /\[(\d+)\]/.exec((await run('ip', ['netns', 'exec', pod.netns.name, 'readlink', '/proc/self/ns/net'])).stdout)?.[1],
    );
    assert.equal(s.namespaces?.net, podNet);

    const port = await freePort();
    const ncat = spawn('ncat', ['-6', '-l', '-k', '::1', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(ncat);
    const n = await find((e) => listen(e) && e.process?.pid === ncat.pid, 'ncat listen record');
    assert.equal(n.socket?.family, AddressFamily.ADDRESS_FAMILY_INET6);
    assert.deepEqual(n.socket?.local, { ip: '::1', port });

    unixLate = py(`
import socket, time
u = socket.socket(socket.AF_UNIX); u.bind('${dir}/late.sock'); u.listen(9)
print('ready', flush=True)
time.sleep(600)`);
    await started(unixLate, 'late unix listener');
    const u = await find((e) => listen(e) && e.process?.pid === unixLate.pid, 'unix listen record');
    assert.equal(u.socket?.family, AddressFamily.ADDRESS_FAMILY_UNIX);
    assert.equal(u.socket?.unixPath, `${dir}/late.sock`);
    assert.equal(u.listenerInfo?.requestedBacklog, 9);
  });

  it('sends a closed record when a TCP listener closes (kernel) and a unix one goes (rescan)', async () => {
    const listenRec = records.find((e) => e.kind === EventKind.EVENT_KIND_LISTEN && e.process?.pid === socat.pid)!;
    socat.kill('SIGTERM');
    const closed = await find(
      (e) =>
        isKind(EventKind.EVENT_KIND_LISTENER_CLOSED, ListenerOrigin.LISTENER_ORIGIN_KERNEL_CLOSE)(e) &&
        e.listenerInfo?.inode === listenRec.listenerInfo?.inode,
      'socat closed record',
    );
    assert.equal(closed.source, Source.SOURCE_LISTEN_CLOSE);
    // The owner's attribution (the live record's), whoever closed it.
    assert.equal(closed.process?.pid, socat.pid);
    assert.equal(closed.process?.comm, 'socat');
    assert.deepEqual(closed.socket?.local, { ip: '0.0.0.0', port: SOCAT_PORT });
    assert.equal(closed.pod?.name, 'web-7c9d8-abcde');
    assert.ok(closed.timeUnixNano >= listenRec.timeUnixNano);

    unixLate.kill('SIGKILL');
    const gone = await find(
      (e) =>
        isKind(EventKind.EVENT_KIND_LISTENER_CLOSED, ListenerOrigin.LISTENER_ORIGIN_RESCAN)(e) &&
        e.socket?.unixPath === `${dir}/late.sock`,
      'unix closed by the rescan',
      PERIOD_MS * 3 + 2000,
    );
    assert.equal(gone.process?.pid, unixLate.pid);
    // Still-open listeners are not closed by the rescan.
    assert.ok(
      !records.some(
        (e) =>
          e.kind === EventKind.EVENT_KIND_LISTENER_CLOSED && (e.process?.pid === podServer.pid || e.process?.pid === hostPre.pid),
      ),
    );
  });

  it('re-sends the inventory every period, keeping first-seen', async () => {
    const again = await find(
      (e) => isKind(EventKind.EVENT_KIND_LISTENER, ListenerOrigin.LISTENER_ORIGIN_RESCAN)(e) && e.process?.pid === podServer.pid,
      'a periodic record of the pod server',
      PERIOD_MS * 3 + 2000,
    );
    const first = records.find(
      (e) => e.listenerInfo?.origin === ListenerOrigin.LISTENER_ORIGIN_SNAPSHOT && e.process?.pid === podServer.pid,
    )!;
    assert.equal(again.listenerInfo?.firstSeenUnixNano, first.listenerInfo?.firstSeenUnixNano);
    assert.ok(again.timeUnixNano > first.timeUnixNano);
    assert.equal(again.pod?.name, 'web-7c9d8-abcde');
    const live = pipe.listeners!.list();
    assert.ok(live.some((e) => e.process?.pid === podServer.pid));
    assert.ok(!live.some((e) => e.process?.pid === socat.pid), 'socat is no longer in the inventory');
    assert.ok(pipe.listeners!.stats().closedByKernel >= 1);
  });

  it('every listener record is valid OCSF 1.7.0, ECS 8.11.0 and Tracee, and native JSON reads back', () => {
    // Listener records, not the findings they raise (their listenerInfo is the listener's: test/kernel/findings-agent.test.ts).
    const mine = records.filter((e) => e.listenerInfo !== undefined && e.findingInfo === undefined);
    const kinds = new Set(mine.map((e) => e.kind));
    assert.deepEqual([...kinds].sort(), [
      EventKind.EVENT_KIND_LISTEN,
      EventKind.EVENT_KIND_LISTENER,
      EventKind.EVENT_KIND_LISTENER_CLOSED,
    ]);
    const ocsf = loadOcsf();
    const ecs = loadEcs();
    const tracee = loadTraceeSource();
    for (const ev of mine) {
      const rec = { kind: 'event' as const, event: ev };
      const o = formatRecord(rec, 'ocsf') as { activity_id: number; dst_endpoint?: object; src_endpoint?: object };
      assert.deepEqual(validateOcsf(ocsf, o), [], JSON.stringify(o));
      assert.deepEqual(validateOcsf(ocsf, JSON.parse(formatLine(rec, 'ocsf'))), []);
      assert.equal(o.activity_id, ev.kind === EventKind.EVENT_KIND_LISTENER_CLOSED ? 2 : 7);
      assert.equal(o.src_endpoint, undefined, 'a listener has no peer');
      const e = formatRecord(rec, 'ecs') as { event: { type: string[]; dataset: string } };
      assert.deepEqual(validateEcs(ecs, e), []);
      assert.match(e.event.dataset, /^doorwatch\.(listen|listener|listener_closed)$/);
      assert.deepEqual(validateTracee(tracee, formatLine(rec, 'tracee')), []);
      assert.deepEqual(AcceptEvent.fromJSON(JSON.parse(formatLine(rec, 'native'))), AcceptEvent.fromJSON(eventToJson(ev)));
      assert.equal(AcceptEvent.fromJSON(JSON.parse(formatLine(rec, 'native'))).listenerInfo?.inode, ev.listenerInfo?.inode);
    }
  });
});

describe('probes without the inventory (trace)', () => {
  it('emit accepts but no listener records', async () => {
    const t = startTracer();
    try {
      const p = py(`
import socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(3)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
print('done', flush=True)
import time; time.sleep(30)`);
      await started(p, 'self-accepting python3');
      const [acc] = await t.waitFor((e) => e.process?.pid === p.pid, 1, 5000);
      assert.equal(acc!.kind, EventKind.EVENT_KIND_ACCEPT);
      t.capture.drain();
      assert.deepEqual(
        t.events.filter((e) => e.process?.pid === p.pid).map((e) => e.kind),
        [EventKind.EVENT_KIND_ACCEPT],
      );
    } finally {
      t.stop();
    }
  });
});

describe('doorwatch listeners (the CLI, from source)', () => {
  const cli = (args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'test/helpers/doorwatch-cli-source.ts', 'listeners', ...args], {
      cwd: new URL('../..', import.meta.url).pathname,
      timeout: 30_000,
    });

  it('prints the node inventory as JSON, attributed through the API', async () => {
    const kubeconfig = api.writeKubeconfig(tempDir());
    const { stdout } = await cli(['-o', 'json', '--kubeconfig', kubeconfig, '--node-name', NODE, '--pending-deadline', '3s']);
    const evs = stdout
      .trim()
      .split('\n')
      .map((l) => AcceptEvent.fromJSON(JSON.parse(l)));
    const p = evs.find((e) => e.process?.pid === podServer.pid);
    assert.ok(p, stdout);
    assert.equal(p.kind, EventKind.EVENT_KIND_LISTENER);
    assert.equal(p.socket?.local?.port, 8080);
    assert.equal(p.pod?.name, 'web-7c9d8-abcde');
    assert.ok(evs.some((e) => e.socket?.unixPath === `${dir}/pre.sock` && e.process?.pid === hostPre.pid));
    assert.ok(!evs.some((e) => e.socket?.unixPath === `${dir}/late.sock`), 'the killed listener is gone');
  });

  it('prints a table', async () => {
    const { stdout } = await cli(['-o', 'table', '--no-kube']);
    const lines = stdout.trim().split('\n');
    assert.match(lines[0]!, /^PROTO\s+LOCAL\s+PID\s+COMM\s+FD\s+QUEUE\s+NAMESPACE\s+POD\s+CONTAINER$/);
    const row = lines.find((l) => l.includes(`[::1]:${hostPrePort}`));
    assert.ok(row, stdout);
    assert.match(row!, new RegExp(`^tcp6\\s+\\[::1\\]:${hostPrePort}\\s+${hostPre.pid}\\s+python3\\s+\\d+\\s+0\\s+-`));
  });

  it('refuses an unknown output format with one line and a usage exit', async () => {
    await assert.rejects(cli(['-o', 'yaml']), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 2);
      assert.match(e.stderr, /yaml/);
      return true;
    });
  });
});
