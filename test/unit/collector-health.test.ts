import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseCollectorConfig } from '../../src/collector/config.js';
import type { SinkStats } from '../../src/collector/dispatcher.js';
import { collectorReadinessText, evaluateCollectorReadiness } from '../../src/collector/health.js';
import { ConfigError } from '../../src/config/errors.js';
import { memorySinks } from '../helpers/memory-sink.js';

// The collector's health.address key and --health-address flag, and its readiness rules (the endpoints
// themselves, over real gRPC: test/integration/collector-metrics.test.ts).

const registry = { memory: memorySinks().factory };
const base = { insecure: true, sinks: [{ name: 'a', type: 'memory' }] };

function sink(name: string, required: boolean, lastError: string | null): SinkStats {
  return {
    name,
    type: 'memory',
    required,
    queued: 3,
    inFlight: 1,
    enqueued: 0,
    written: 0,
    retries: 0,
    dropped: 0,
    overflowRecords: 0,
    lastError,
    lastWriteMs: null,
    lastWriteDurationMs: null,
  };
}

describe('collector health.address', () => {
  it('is off by default; takes host:port, "" and "off"', () => {
    assert.equal(parseCollectorConfig(base, 'x', registry).health.address, undefined);
    assert.deepEqual(parseCollectorConfig({ ...base, health: { address: '127.0.0.1:9091' } }, 'x', registry).health.address, {
      host: '127.0.0.1',
      port: 9091,
    });
    for (const off of ['', 'off', 'OFF'])
      assert.equal(parseCollectorConfig({ ...base, health: { address: off } }, 'x', registry).health.address, undefined);
  });

  it('a bad address is reported by its key', () => {
    assert.throws(
      () => parseCollectorConfig({ ...base, health: { address: 'localhost' } }, 'collector.yaml', registry),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => /^health\.address: expected host:port .*"off"/.test(p)),
    );
    assert.throws(
      () => parseCollectorConfig({ ...base, health: { adress: ':1' } }, 'collector.yaml', registry),
      (e: unknown) =>
        e instanceof ConfigError && e.problems.some((p) => /unknown key "adress" at health.*did you mean "address"/.test(p)),
    );
  });
});

describe('collector readiness', () => {
  it('ready when listening and every required sink is healthy; a failing non-required sink does not count', () => {
    const r = evaluateCollectorReadiness({
      listening: { address: '0.0.0.0:7443' },
      stopping: false,
      sinks: [sink('siem', true, null), sink('debug', false, 'ECONNREFUSED')],
    });
    assert.equal(r.ready, true);
    assert.equal(
      collectorReadinessText(r),
      'ready\n[+] grpc: listening on 0.0.0.0:7443\n[+] sink siem: ok, 4 queued\n[+] sink debug (not required): write failing (retrying): ECONNREFUSED; 4 queued\n',
    );
  });

  it('not ready while a required sink fails, while starting, and while stopping', () => {
    const failing = evaluateCollectorReadiness({
      listening: { address: '0.0.0.0:7443' },
      stopping: false,
      sinks: [sink('siem', true, 'HTTP 503')],
    });
    assert.equal(failing.ready, false);
    assert.match(
      collectorReadinessText(failing),
      /^not ready: sink siem\n.*\n\[-\] sink siem: write failing \(retrying\): HTTP 503; 4 queued\n$/,
    );
    const starting = evaluateCollectorReadiness({ listening: undefined, stopping: false, sinks: undefined });
    assert.deepEqual(starting, { ready: false, checks: [{ name: 'grpc', ok: false, detail: 'starting the sinks' }] });
    const stopping = evaluateCollectorReadiness({ listening: { address: 'x:1' }, stopping: true, sinks: [] });
    assert.equal(stopping.ready, false);
    assert.match(collectorReadinessText(stopping), /^not ready: collector\n\[-\] collector: stopping/);
  });
});

describe('doorwatch collector --health-address', () => {
  const cli = fileURLToPath(new URL('../helpers/doorwatch-cli-source.ts', import.meta.url));
  const run = (args: string[]) =>
    new Promise<{ status: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'utf8', timeout: 30_000 }, (err, _out, stderr) =>
        resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
      );
    });

  it('a taken port is one line and exit 1; a malformed address exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dw-collector-health-'));
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      const config = join(dir, 'collector.yaml');
      writeFileSync(
        config,
        `listen: 127.0.0.1:0\ninsecure: true\nsinks:\n  - { name: out, type: jsonl, path: ${join(dir, 'out.jsonl')} }\n`,
      );
      const taken = await run(['collector', '-c', config, '--health-address', `127.0.0.1:${port}`]);
      assert.equal(taken.status, 1, taken.stderr);
      assert.match(
        taken.stderr.trimEnd().split('\n').at(-1)!,
        new RegExp(
          `^doorwatch: cannot listen on 127\\.0\\.0\\.1:${port} for /healthz, /readyz and /metrics: EADDRINUSE \\(DW_ERR_COLLECTOR_LISTEN\\) — choose another --health-address`,
        ),
      );
      const bad = await run(['collector', '-c', config, '--health-address', 'nowhere']);
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, /--health-address: "nowhere" is not host:port .* \(DW_ERR_CLI_USAGE\)/);
    } finally {
      holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
