import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../helpers/kube-api-server.js';
import { requireRoot } from '../helpers/tracer.js';
import { until } from '../helpers/wait.js';

// The compiled CLI as users run it, with a module load hook (node --import) that records every file the process
// loads. The CLI is a bundle, so client-node has no module of its own there: what a command loaded is what
// its bundle chunks contain. `trace --no-kube`, `trace` with no Kubernetes configuration anywhere, and
// `agent --no-kube` must load no client-node code at all (~8 MiB of RSS); an agent with a kubeconfig loads
// its KubeConfig and Watch but none of its generated API and model classes (~16 MiB more,
// src/kube/rest.ts). test/unit/kube-lazy-load.test.ts checks the sources the same way (a resolve hook).
const BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
requireRoot();

const hooks = `
import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (url.startsWith('file:')) appendFileSync(process.env.DOORWATCH_TEST_LOADED, url + '\\n');
  return next(url, context);
}`;
const recordLoads = `data:text/javascript,${encodeURIComponent(
  `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`,
)}`;
/** client-node's KubeConfig (the name its getName() answers). */
const CLIENT_NODE = 'kubeconfig authentication';
/**
 * Never needed: client-node's generated models (each has an attributeTypeMap) and APIs (each calls the
 * ObjectSerializer), and tr46's Unicode table (node-fetch's whatwg-url fallback; scripts/bundle.mjs).
 */
const UNUSED = /attributeTypeMap|ObjectSerializer|disallowed_STD3_valid/;

const dir = mkdtempSync(join(tmpdir(), 'doorwatch-kube-lazy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** No in-cluster variables, no KUBECONFIG, and a HOME without .kube/config. */
const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir };

let runs = 0;

/** `files`: every file the process loaded, with its text; `loaded`: those texts joined. */
async function run(
  args: string[],
  stopOn?: RegExp,
  /** Awaited once stopOn matched, before the SIGTERM. */
  beforeStop: () => Promise<unknown> = async () => {},
): Promise<{ code: number | null; stdout: string; stderr: string; loaded: string; files: Map<string, string> }> {
  const log = join(dir, `loaded-${++runs}.txt`);
  writeFileSync(log, '');
  const proc = spawn(process.execPath, ['--import', recordLoads, BIN, ...args], {
    env: { ...env, DOORWATCH_TEST_LOADED: log },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
      // A wait that timed out is reported by the caller's own assertion on what it waited for.
      void beforeStop()
        .catch(() => {})
        .finally(() => proc.kill('SIGTERM'));
    }
  });
  const killer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  const [code] = await once(proc, 'exit');
  clearTimeout(killer);
  const paths = [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))].map((u) => fileURLToPath(u));
  // The hook itself is checked: a run that recorded nothing, or not the bundle, proves nothing.
  assert.ok(
    paths.some((f) => f.endsWith('/dist/bundle/main.js')),
    `the load hook recorded the bundle: ${paths.join(', ')}`,
  );
  const files = new Map(paths.map((f) => [f, readFileSync(f, 'utf8')]));
  return { code: code as number | null, stdout, stderr, loaded: [...files.values()].join('\n'), files };
}

describe('what of client-node the CLI loads', () => {
  it('trace --no-kube', async () => {
    const r = await run(['trace', '--no-kube', '--duration', '1s', '-o', 'json']);
    assert.ok(!r.loaded.includes(CLIENT_NODE), `no client-node code among ${r.files.size} files`);
    assert.equal(r.code, 0, r.stderr);
  });

  it('trace with no in-cluster env, no KUBECONFIG, no ~/.kube/config', async () => {
    const r = await run(['trace', '--duration', '1s', '-o', 'json', '--log-level', 'debug']);
    assert.ok(!r.loaded.includes(CLIENT_NODE), `no client-node code among ${r.files.size} files`);
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
    assert.ok(!r.loaded.includes(CLIENT_NODE), `no client-node code among ${r.files.size} files`);
    assert.match(r.stderr, /agent started: capturing accepts/);
    assert.equal(r.code, 0, r.stderr);
  });

  it('agent with a kubeconfig and policy resources: KubeConfig and Watch, none of the generated API or models', async () => {
    // The Kubernetes API stand-in (no kube-apiserver can run here: test/helpers/kube-api-server.ts).
    const api = await KubeApiServer.create();
    try {
      api.addNamespace('default');
      const config = join(dir, 'agent.yaml');
      writeFileSync(config, 'policy: {}\n'); // AcceptAuditPolicy objects watched (policy.resources defaults to true)
      const r = await run(
        [
          'agent',
          ...['-c', config, '--collector', '127.0.0.1:1', '--insecure', '--node-name', 'node-a'],
          ...['--kubeconfig', api.writeKubeconfig(dir), '--spool-dir', join(dir, 'spool-kube')],
          ...['--health-address', '127.0.0.1:0', '--flush-timeout', '100ms'],
        ],
        /agent started: capturing accepts/,
        () => until(() => api.policyCounters.lists > 0, 'the policy list', 10_000),
      );
      assert.equal(r.code, 0, r.stderr);
      // Its lists and the policy list went through src/kube/rest.ts, and were answered.
      assert.ok(api.counters.lists.pods > 0 && api.counters.lists.namespaces > 0, JSON.stringify(api.counters));
      assert.ok(api.policyCounters.lists > 0, JSON.stringify(api.policyCounters));
      assert.ok(r.loaded.includes(CLIENT_NODE), "the agent loaded client-node's KubeConfig");
      const unused = [...r.files].filter(([, text]) => UNUSED.test(text)).map(([f]) => f);
      assert.deepEqual(unused, [], 'no loaded file holds generated API or model classes, or the tr46 table');
    } finally {
      await api.close();
    }
  });
});
