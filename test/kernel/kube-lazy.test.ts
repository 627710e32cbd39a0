import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requireRoot } from '../helpers/tracer.js';

// The compiled CLI as users run it, with a resolve hook (node --import) that refuses @kubernetes/client-node
// (~70 MiB of RSS, ~0.5 s of CPU): `trace --no-kube`, `trace` with no Kubernetes configuration anywhere,
// and `agent --no-kube` must run without ever importing it. test/unit/kube-lazy-load.test.ts shows the
// hook does refuse it once a configuration is found.
const BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
requireRoot();

const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === '@kubernetes/client-node' || specifier.startsWith('@kubernetes/client-node/'))
    throw new Error('client-node imported by ' + context.parentURL);
  return next(specifier, context);
}`;
const refuseClientNode = `data:text/javascript,${encodeURIComponent(
  `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`,
)}`;

const dir = mkdtempSync(join(tmpdir(), 'doorwatch-kube-lazy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** No in-cluster variables, no KUBECONFIG, and a HOME without .kube/config. */
const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir };

async function run(args: string[], stopOn?: RegExp): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', refuseClientNode, BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let stopped = false;
  proc.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (!stopped && stopOn?.test(stderr)) {
      stopped = true; // once: a second signal means "stop now"
      proc.kill('SIGTERM');
    }
  });
  const killer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  const [code] = await once(proc, 'exit');
  clearTimeout(killer);
  return { code: code as number | null, stdout, stderr };
}

describe('client-node is not loaded without a Kubernetes configuration', () => {
  it('trace --no-kube', async () => {
    const r = await run(['trace', '--no-kube', '--duration', '1s', '-o', 'json']);
    assert.doesNotMatch(r.stderr, /client-node imported/);
    assert.equal(r.code, 0, r.stderr);
  });

  it('trace with no in-cluster env, no KUBECONFIG, no ~/.kube/config', async () => {
    const r = await run(['trace', '--duration', '1s', '-o', 'json', '--log-level', 'debug']);
    assert.doesNotMatch(r.stderr, /client-node imported/);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no Kubernetes configuration found; continuing without pod metadata/);
  });

  it('agent --no-kube', async () => {
    const r = await run(
      [
        'agent',
        '--collector',
        '127.0.0.1:1',
        '--insecure',
        '--no-kube',
        '--spool-dir',
        join(dir, 'spool'),
        '--health-address',
        '127.0.0.1:0',
        '--flush-timeout',
        '100ms',
      ],
      /agent started: capturing accepts/,
    );
    assert.doesNotMatch(r.stderr, /client-node imported/);
    assert.match(r.stderr, /agent started: capturing accepts/);
    assert.equal(r.code, 0, r.stderr);
  });
});
