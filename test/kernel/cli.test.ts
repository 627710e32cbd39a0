import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bpfObjectsOf, noneLoaded, stillLoaded } from '../helpers/bpf-objects.js';
import { connectTcp } from '../helpers/fixtures.js';
import { KubeApiServer, makePod, ownerRef, tempDir } from '../helpers/kube-api-server.js';
import { type FakePod, PodSim } from '../helpers/pod-sim.js';
import { requireRoot } from '../helpers/tracer.js';
import { until, bounded as withTimeout } from '../helpers/wait.js';

// `doorwatch trace` as a user runs it: the compiled CLI, real probes.
const BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
requireRoot();

interface Run {
  proc: ChildProcess;
  stdout: string[];
  stderr: string[];
  ready: Promise<void>;
  exit: Promise<number | null>;
}

/** Every trace started, so a failed assertion cannot leave one running (and the test file hanging). */
const running = new Set<ChildProcess>();

function startTrace(args: string[]): Run {
  const proc = spawn(process.execPath, [BIN, 'trace', '--log-level', 'info', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  const stdout: string[] = [];
  const stderr: string[] = [];
  let markReady: () => void;
  const ready = new Promise<void>((r) => {
    markReady = r;
  });
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => stdout.push(d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr.push(d);
    if (stderr.join('').includes('tracing accepts')) markReady();
  });
  const exit = once(proc, 'exit').then(([code]) => code as number | null);
  return { proc, stdout, stderr, ready, exit };
}

async function serveOnce(): Promise<{ port: number; clientPort: number; close(): void }> {
  const server = createServer((c) => c.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const clientPort = await new Promise<number>((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => {
      resolve(s.localPort!);
      s.end();
    });
    s.on('error', reject);
  });
  return { port, clientPort, close: () => server.close() };
}

after(() => {
  for (const p of running) p.kill('SIGKILL');
});

describe('doorwatch trace (CLI)', () => {
  it('streams JSON lines on stdout, logs and the summary on stderr, then exits 0 on SIGINT without leaking probes', async () => {
    const run = startTrace(['--output', 'json']);
    await withTimeout(run.ready, 15_000, `trace to attach; stderr: ${run.stderr.join('')}`);
    // This trace's own programs and maps (what its process holds), not every dw_* of the system.
    const ours = bpfObjectsOf(run.proc.pid!);
    assert.ok(ours.progs.length >= 4, 'probes are loaded while tracing');
    assert.ok(ours.maps.length >= 5, 'and their maps');
    const s = await serveOnce();
    const mine = () =>
      run.stdout
        .join('')
        .split('\n')
        .slice(0, -1) // the text after the last newline may be a line still being written
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((e) => e.socket?.local?.port === s.port);
    await until(() => mine().length, 'our connection on stdout', 5000, 20).catch(() => {}); // asserted below, after the exit
    s.close();
    run.proc.kill('SIGINT');
    assert.equal(await withTimeout(run.exit, 10_000, 'exit after SIGINT'), 0);

    const ev = mine();
    assert.equal(ev.length, 1, 'exactly our one connection');
    assert.equal(ev[0].process.pid, process.pid);
    assert.equal(ev[0].socket.peer.port, s.clientPort);
    assert.equal(ev[0].source, 'SOURCE_ACCEPT4');
    // "<boot id>/<instance>/<seq>": this boot, a 12-hex instance, the event's own seq.
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    assert.match(ev[0].eventId, new RegExp(`^${bootId}/[0-9a-f]{12}/${ev[0].seq}$`));
    // Every line on stdout is one JSON object: nothing else is printed there.
    for (const line of run.stdout.join('').split('\n').filter(Boolean)) assert.doesNotThrow(() => JSON.parse(line));
    const err = run.stderr.join('');
    assert.match(err, /doorwatch trace: \d+ shown of \d+ captured/);
    assert.match(err, /lost: 0 \(ring_buffer_full=0/);
    // The kernel frees programs after an RCU grace period: allow it a moment.
    await until(() => noneLoaded(ours), 'the trace’s programs and maps to go', 3000, 50).catch(() => {});
    assert.deepEqual(stillLoaded(ours), { progs: [], maps: [] }, 'every probe detached and unloaded after exit, its maps too');
  });

  it('stops by itself after --duration and applies --port as a display filter', async () => {
    const other = await serveOnce(); // before tracing starts: never shown
    const run = startTrace(['--output', 'json', '--duration', '2s', '--port', '1']);
    await withTimeout(run.ready, 15_000, 'trace to attach');
    const s = await serveOnce();
    assert.equal(await withTimeout(run.exit, 10_000, 'exit after --duration'), 0);
    s.close();
    other.close();
    assert.equal(run.stdout.join(''), '', 'no event on port 1');
    assert.match(run.stderr.join(''), /0 shown of [1-9]\d* captured/);
  });

  it('prints a human table with --output table', async () => {
    const run = startTrace(['--output', 'table', '--duration', '2s', '--pid', String(process.pid)]);
    await withTimeout(run.ready, 15_000, 'trace to attach');
    const s = await serveOnce();
    assert.equal(await withTimeout(run.exit, 10_000, 'exit'), 0);
    s.close();
    const lines = run.stdout.join('').trim().split('\n');
    assert.match(lines[0]!, /^TIME\s+PID\s+COMM\s+CALL\s+LOCAL\s+PEER\s+RESULT/);
    const row = lines.find((l) => l.includes(`127.0.0.1:${s.port}`));
    assert.ok(row, `a row for our server: ${lines.join('\n')}`);
    assert.match(row!, new RegExp(`\\b${process.pid}\\b.*accept4.*127\\.0\\.0\\.1:${s.clientPort}.*fd \\d+`));
  });

  it('refuses to run without privileges: one clear line, exit 1', () => {
    const r = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, BIN, 'trace'],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /DW_ERR_BPF_PRIVILEGE.*(root|sudo)/);
  });
});

describe('doorwatch trace with Kubernetes metadata (API stand-in)', () => {
  let api: KubeApiServer;
  let kubeconfig: string;
  const sim = new PodSim();
  const NODE = 'node-cli';
  let pod: FakePod;
  let serverPid = 0;

  before(async () => {
    api = await KubeApiServer.create();
    api.addNamespace('payments');
    kubeconfig = api.writeKubeconfig(tempDir());
    pod = sim.systemdContainerdPod();
    api.addPod(
      makePod({
        name: 'checkout-0',
        namespace: 'payments',
        uid: pod.uid,
        nodeName: NODE,
        labels: { tier: 'backend', secretish: 'x' },
        ownerReferences: [ownerRef('StatefulSet', 'checkout')],
        containers: [{ name: 'app', image: 'checkout:1', id: pod.cid }],
      }),
    );
    serverPid = (await sim.startServer(pod.cgroupDir, pod.netns.name)).pid!;
  });
  after(async () => {
    sim.cleanup();
    await api.close();
  });

  async function traceWhileConnecting(args: string[]): Promise<Run> {
    const run = startTrace(['--kubeconfig', kubeconfig, '--node-name', NODE, '--duration', '3s', ...args]);
    await withTimeout(run.ready, 15_000, 'trace to attach');
    await new Promise((r) => setTimeout(r, 300)); // the pod informer lists
    const c = await connectTcp(pod.netns.ip, 8080);
    c.close();
    const host = await serveOnce(); // a host process too
    host.close();
    assert.equal(await withTimeout(run.exit, 10_000, 'exit'), 0);
    return run;
  }

  it('shows namespace and pod columns in the table', async () => {
    const run = await traceWhileConnecting(['--output', 'table']);
    const lines = run.stdout.join('').trim().split('\n');
    assert.match(lines[0]!, /NAMESPACE\s+POD/);
    const row = lines.find((l) => new RegExp(`\\b${serverPid}\\b`).test(l));
    assert.ok(row, lines.join('\n'));
    assert.match(row!, /payments\s+checkout-0/);
    assert.ok(
      lines.some((l) => /\(host\)/.test(l)),
      'host processes say so',
    );
    assert.match(run.stderr.join(''), /enrichment: complete=[1-9]/);
  });

  it('--namespace keeps only that namespace, with full pod metadata in JSON', async () => {
    const run = await traceWhileConnecting(['--output', 'json', '--namespace', 'payments', '--pod-labels', 'tier']);
    const evs = run.stdout
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.ok(evs.length >= 1);
    for (const e of evs) assert.equal(e.pod.namespace, 'payments');
    const mine = evs.find((e) => e.process.pid === serverPid);
    assert.equal(mine.enrichment.status, 'ENRICHMENT_STATUS_COMPLETE');
    assert.deepEqual(mine.pod.workload, { kind: 'StatefulSet', name: 'checkout', inferred: false });
    assert.equal(mine.container.name, 'app');
    assert.deepEqual(mine.pod.labels, { tier: 'backend' }, 'only allow-listed labels');
  });

  it('--no-kube turns pod metadata off but still names the container', async () => {
    const requestsBefore = api.counters.requests;
    const run = await traceWhileConnecting(['--output', 'json', '--no-kube', '--pid', String(serverPid)]);
    const evs = run.stdout
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.equal(evs.length, 1);
    assert.equal(evs[0].enrichment.status, 'ENRICHMENT_STATUS_PARTIAL');
    assert.match(evs[0].enrichment.reason, /--no-kube/);
    assert.equal(evs[0].container.id, pod.cid);
    assert.equal(api.counters.requests, requestsBefore, 'no request reached the API server');
  });
});
