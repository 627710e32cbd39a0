import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { FakeCollector } from '../helpers/fake-collector.js';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { makePki } from '../helpers/pki.js';
import { bounded, until } from '../helpers/wait.js';

/**
 * The agent's logs promise JSON on stderr (what a pod's log collector parses). With `--collector` an IP
 * address, grpc-js used to set the TLS ServerName to it and Node printed a DeprecationWarning (DEP0123), a
 * non-JSON line, at every start. The real agent (from source; root: it loads its probes) against a gRPC
 * collector stand-in on 127.0.0.1 over mutual TLS, until it is connected and ready.
 */

it('agent --collector 127.0.0.1:PORT: every stderr line is JSON, from start to SIGTERM', async () => {
  const pki = makePki();
  const collector = await FakeCollector.start(pki);
  const dir = mkdtempSync(join(tmpdir(), 'dw-agent-stderr-'));
  const cert = pki.client('agent-stderr');
  const { DOORWATCH_LOG_FORMAT: _, ...env } = process.env; // the default: JSON when stderr is not a terminal
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/helpers/doorwatch-cli-source.ts',
      'agent',
      '--collector',
      collector.target,
      '--ca',
      pki.caFile,
      '--cert',
      cert.cert,
      '--key',
      cert.key,
      '--no-kube',
      '--spool-dir',
      join(dir, 'spool'),
      '--health-address',
      '127.0.0.1:0',
      '--node-name',
      'stderr-node',
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    assert.match(collector.target, /^127\.0\.0\.1:\d+$/, 'the collector is addressed by IP');
    await until(
      () => stderr.includes('"agent ready"') && collector.hellos.length > 0,
      'the agent to connect and be ready',
      30_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; its stderr:\n${stderr}`);
    });
  } finally {
    child.kill('SIGTERM');
    await bounded(exited, 15_000, 'the agent to stop').catch(() => child.kill('SIGKILL'));
    await collector.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  }
  const lines = stderr.split('\n').filter(Boolean);
  assert.ok(
    lines.some((l) => l.includes('connected to the collector')),
    stderr,
  );
  for (const l of lines) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(l);
    } catch {
      assert.fail(`a non-JSON line on stderr: ${l}`);
    }
    assert.equal(typeof (parsed as { level: unknown }).level, 'number', l);
  }
  assert.doesNotMatch(stderr, /DeprecationWarning|DEP0123/);
});
