import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningCollector } from '../../src/collector/collector.js';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { type MemorySinks, startMemoryCollector } from '../helpers/memory-sink.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { tempDir } from '../helpers/temp-dir.js';
import { until } from '../helpers/wait.js';

// Interop: a client written with an independent gRPC implementation (Debian's
// python3-grpcio, messages built at run time from `buf build`'s descriptor
// set) publishes to and subscribes from the collector, over mutual TLS.
const PY = '/usr/bin/python3'; // Debian's, which has python3-grpcio
const CLIENT = join(REPO_ROOT, 'test/interop/grpc_client.py');

let pki: Pki;
let collector: RunningCollector;
let mem: MemorySinks;
let descriptors: string;

before(async () => {
  const probe = spawnSync(PY, ['-c', 'import grpc, google.protobuf'], { encoding: 'utf8' });
  assert.equal(
    probe.status,
    0,
    `python3-grpcio and python3-protobuf are required (apt-get install python3-grpcio python3-protobuf): ${probe.stderr}`,
  );
  descriptors = join(tempDir('doorwatch-desc-'), 'doorwatch.binpb');
  const built = spawnSync(join(REPO_ROOT, 'node_modules/.bin/buf'), ['build', '-o', descriptors], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  assert.equal(built.status, 0, built.stderr);
  pki = makePki();
  ({ collector, mem } = await startMemoryCollector(pki, [{ name: 'mem' }]));
});

after(async () => {
  await collector?.stop();
});

function python(mode: string, n: number) {
  const c = pki.client(`py-${mode}`);
  const args = [CLIENT, mode, descriptors, `127.0.0.1:${collector.port}`, pki.caFile, c.cert, c.key, String(n)];
  const p = spawn(PY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let err = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => {
    for (const l of d.split('\n').filter(Boolean)) lines.push(JSON.parse(l));
  });
  p.stderr.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`python ${mode} timed out: ${err}`));
    }, 30_000);
    p.once('exit', (code) => {
      clearTimeout(t);
      resolve(code ?? -1);
    });
  });
  return { lines, exit, stderr: () => err };
}

describe('python3-grpcio interop', () => {
  it("batch contexts from an independent protobuf implementation: the header read, the pod's fields once, every event whole", async () => {
    const N = 4;
    const pub = python('publish-contexts', N);
    assert.equal(await pub.exit, 0, pub.stderr());
    assert.deepEqual(pub.lines, [{ acked_seq: N, batch_contexts_header: '1' }]);
    const events = mem.get('mem').events.filter((e) => e.eventId.startsWith('py-boot/py-instance-ctx/'));
    assert.equal(events.length, N);
    for (const e of events) {
      assert.equal(e.pod?.name, 'py-pod-ctx');
      assert.equal(e.pod?.namespace, 'interop');
      assert.equal(e.container?.name, 'py-container');
      assert.equal(e.process?.comm, 'python-peer');
    }
    assert.ok(
      events.every((e) => e.pod === events[0]!.pod),
      'one context: one pod object',
    );
  });

  it('publishes a batch and gets it acknowledged; subscribes and receives the events', async () => {
    const N = 3;
    const sub = python('subscribe', N);
    await until(() => sub.lines.some((l) => l.subscribed), 'the python subscriber to start its call', 20_000);
    await until(() => collector.stats().subscribers === 1, 'the collector to register the subscription');

    const pub = python('publish', N);
    assert.equal(await pub.exit, 0, pub.stderr());
    assert.deepEqual(pub.lines, [{ acked_seq: N }]);

    const events = mem.get('mem').events.filter((e) => e.eventId.startsWith('py-boot/py-instance/'));
    assert.equal(events.length, N);
    assert.deepEqual(
      events.map((e) => e.eventId),
      ['py-boot/py-instance/1', 'py-boot/py-instance/2', 'py-boot/py-instance/3'],
    );
    assert.equal(events[0]!.process?.comm, 'python-peer');

    assert.equal(await sub.exit, 0, sub.stderr());
    const got = sub.lines.filter((l) => l.event) as { event: { eventId: string; socket: { peer: { port: number } } } }[];
    assert.equal(got.length, N);
    assert.deepEqual(
      got.map((g) => g.event.socket.peer.port),
      [40001, 40002, 40003],
    );
  });
});
