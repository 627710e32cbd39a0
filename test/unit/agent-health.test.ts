import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startHealthServer } from '../../src/agent/health.js';
import { evaluateReadiness, type Readiness, type ReadinessState, readinessText } from '../../src/agent/readiness.js';
import { DoorwatchError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import { httpGet as get } from '../helpers/agent-harness.js';

// /readyz's rules (pure) and the HTTP endpoints, without a kernel.

const MiB = 1024 * 1024;
const good: ReadinessState = {
  probes: { attached: 9 },
  kube: { source: true, synced: true, connected: true, pods: 12 },
  transport: { connected: true, spool: { open: true, bytes: 0, maxBytes: 256 * MiB, overflow: 'drop-oldest' } },
  stopping: false,
};
const failing = (r: Readiness) => r.checks.filter((c) => !c.ok).map((c) => c.name);

describe('readiness', () => {
  it('ready and connected when probes are attached, informers synced and the collector connected', () => {
    const r = evaluateReadiness(good);
    assert.equal(r.ready, true);
    assert.equal(r.mode, 'connected');
    assert.match(
      readinessText(r),
      /^ready \(connected\)\n\[\+\] probes: 9 programs attached\n\[\+\] kubernetes: informers synced/,
    );
  });

  it('not ready while the probes load, or with none attached', () => {
    assert.deepEqual(failing(evaluateReadiness({ ...good, probes: undefined })), ['probes']);
    assert.deepEqual(failing(evaluateReadiness({ ...good, probes: { attached: 0 } })), ['probes']);
    assert.match(readinessText(evaluateReadiness({ ...good, probes: undefined })), /^not ready: probes\n\[-\] probes: loading/);
  });

  it('waits for the informers’ first list; later API trouble does not make it unready', () => {
    const unsynced = evaluateReadiness({
      ...good,
      kube: { source: true, synced: false, connected: false, lastError: 'list pods: 503', pods: 0 },
    });
    assert.deepEqual(failing(unsynced), ['kubernetes']);
    assert.match(readinessText(unsynced), /\[-\] kubernetes: pod and namespace informers not synced yet: list pods: 503/);
    const watchDown = evaluateReadiness({
      ...good,
      kube: { source: true, synced: true, connected: false, lastError: 'watch reset', pods: 3 },
    });
    assert.equal(watchDown.ready, true);
    assert.match(readinessText(watchDown), /watch reconnecting: watch reset/);
  });

  it('without a Kubernetes API there is nothing to wait for (said why)', () => {
    const r = evaluateReadiness({ ...good, kube: { source: false, reason: 'Kubernetes metadata disabled (--no-kube)' } });
    assert.equal(r.ready, true);
    assert.match(readinessText(r), /\[\+\] kubernetes: no pod metadata to wait for: Kubernetes metadata disabled/);
  });

  it('collector unreachable: still ready while the spool accepts ("spooling"); not when drop-newest refuses', () => {
    const down = { connected: false, lastError: 'connection refused' };
    const spooling = evaluateReadiness({
      ...good,
      transport: { ...down, spool: { open: true, bytes: 10 * MiB, maxBytes: 256 * MiB, overflow: 'drop-newest' } },
    });
    assert.equal(spooling.ready, true);
    assert.equal(spooling.mode, 'spooling');
    assert.match(
      readinessText(spooling),
      /^ready \(spooling\)\n[\s\S]*\[\+\] transport: spooling: collector not connected: connection refused/,
    );

    const fullOldest = evaluateReadiness({
      ...good,
      transport: { ...down, spool: { open: true, bytes: 256 * MiB, maxBytes: 256 * MiB, overflow: 'drop-oldest' } },
    });
    assert.equal(fullOldest.ready, true, 'drop-oldest keeps accepting (the oldest go, counted)');
    assert.match(readinessText(fullOldest), /the oldest events are being dropped/);

    const refusing = evaluateReadiness({
      ...good,
      transport: { ...down, spool: { open: true, bytes: 256 * MiB - 100, maxBytes: 256 * MiB, overflow: 'drop-newest' } },
    });
    assert.deepEqual(failing(refusing), ['transport']);
    assert.match(readinessText(refusing), /new events are refused/);
  });

  it('never ready while starting (no transport yet) or stopping', () => {
    assert.deepEqual(failing(evaluateReadiness({ ...good, transport: undefined })), ['transport']);
    assert.deepEqual(failing(evaluateReadiness({ ...good, stopping: true })), ['agent']);
  });
});

describe('health server', () => {
  it('serves /healthz, /readyz (text and JSON, 200/503) and /metrics; 404 and 405 otherwise', async () => {
    let state: ReadinessState = { ...good, probes: undefined };
    const h = await startHealthServer({
      address: { host: '127.0.0.1', port: 0 },
      readiness: () => evaluateReadiness(state),
      metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'doorwatch_x 1\n' }),
      log: silentLogger,
    });
    const port = h.address.port;
    try {
      assert.ok(port > 0);
      assert.deepEqual(await get(port, '/healthz'), { status: 200, type: 'text/plain; charset=utf-8', body: 'ok\n' });
      const notReady = await get(port, '/readyz');
      assert.equal(notReady.status, 503);
      assert.match(notReady.body, /^not ready: probes\n/);
      const json = await get(port, '/readyz', { headers: { accept: 'application/json' } });
      assert.equal(json.status, 503);
      assert.equal(json.type, 'application/json');
      assert.deepEqual(JSON.parse(json.body).checks[0], { name: 'probes', ok: false, detail: 'loading the eBPF programs' });
      state = good;
      assert.equal((await get(port, '/readyz')).status, 200);
      assert.equal(JSON.parse((await get(port, '/readyz?format=json')).body).mode, 'connected');
      const m = await get(port, '/metrics');
      assert.deepEqual(m, { status: 200, type: 'text/plain; version=0.0.4; charset=utf-8', body: 'doorwatch_x 1\n' });
      assert.equal((await get(port, '/nope')).status, 404);
      const post = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/healthz', method: 'POST' }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(post, 405);
    } finally {
      await h.close();
    }
  });

  it('a failing scrape is a 500 with the reason, and the server stays up', async () => {
    const h = await startHealthServer({
      address: { host: '127.0.0.1', port: 0 },
      readiness: () => evaluateReadiness(good),
      metrics: async () => {
        throw new Error('map read failed');
      },
      log: silentLogger,
    });
    try {
      const r = await get(h.address.port, '/metrics');
      assert.equal(r.status, 500);
      assert.match(r.body, /map read failed/);
      assert.equal((await get(h.address.port, '/healthz')).status, 200);
    } finally {
      await h.close();
    }
  });

  it('a taken port is DW_ERR_AGENT_HEALTH_LISTEN, naming the address and the fix', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      await assert.rejects(
        startHealthServer({
          address: { host: '127.0.0.1', port },
          readiness: () => evaluateReadiness(good),
          metrics: async () => ({ contentType: 'text/plain', body: '' }),
          log: silentLogger,
        }),
        (e: unknown) =>
          e instanceof DoorwatchError &&
          e.code === 'DW_ERR_AGENT_HEALTH_LISTEN' &&
          e.message.includes(`127.0.0.1:${port}`) &&
          /EADDRINUSE/.test(e.message) &&
          /--health-address/.test(e.hint),
      );
    } finally {
      holder.close();
    }
  });

  it('the CLI: a taken port is one line and exit 1, before anything else starts', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      const cli = fileURLToPath(new URL('../helpers/doorwatch-cli-source.ts', import.meta.url));
      const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', cli, 'agent', '--collector', '127.0.0.1:1', '--insecure', '--health-address', `127.0.0.1:${port}`],
          { encoding: 'utf8', timeout: 30_000 },
          (err, _stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
        );
      });
      assert.equal(r.status, 1, r.stderr);
      const lines = r.stderr.trimEnd().split('\n');
      const last = lines.at(-1)!;
      assert.match(
        last,
        new RegExp(`^doorwatch: cannot listen on 127\\.0\\.0\\.1:${port} .*EADDRINUSE \\(DW_ERR_AGENT_HEALTH_LISTEN\\) — `),
      );
      // Only the plaintext warning (a JSON log line) may come before it: no probe was loaded.
      for (const l of lines.slice(0, -1)) assert.match(JSON.parse(l).msg, /plaintext/);
    } finally {
      holder.close();
    }
  });

  it('close() ends keep-alive connections (a scraper holding one does not block shutdown)', async () => {
    const h = await startHealthServer({
      address: { host: '127.0.0.1', port: 0 },
      readiness: () => evaluateReadiness(good),
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      log: silentLogger,
    });
    const agent = new Agent({ keepAlive: true });
    try {
      assert.equal((await get(h.address.port, '/healthz', { agent })).status, 200);
      const t0 = performance.now();
      await h.close();
      assert.ok(performance.now() - t0 < 1000, 'closed at once');
      await assert.rejects(get(h.address.port, '/healthz'), /ECONNREFUSED/);
    } finally {
      agent.destroy();
    }
  });
});
