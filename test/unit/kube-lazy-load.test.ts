import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// client-node costs ~70 MiB of RSS and ~0.5 s of CPU to import: `trace --no-kube`, and a host with no
// Kubernetes configuration at all, must never load it. The child refuses the import (a resolve hook).
const CHILD = fileURLToPath(new URL('../helpers/kube-lazy-child.ts', import.meta.url));
const home = mkdtempSync(join(tmpdir(), 'doorwatch-lazy-'));
after(() => rmSync(home, { recursive: true, force: true }));

function child(scenario: string, ...args: string[]): { source?: boolean; reason?: string; detail?: string; error?: string } {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home };
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, scenario, ...args], {
    encoding: 'utf8',
    env,
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `child ${scenario}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
}

describe('client-node is imported only when a Kubernetes configuration is found', () => {
  it('--no-kube: the trace, agent and collector modules and startKube never import it', () => {
    const r = child('no-kube');
    assert.equal(r.error, undefined, r.error);
    assert.deepEqual(r, {
      source: false,
      reason: 'Kubernetes metadata disabled (--no-kube)',
      detail: 'disabled (--no-kube)',
    });
  });

  it('nothing found (no in-cluster env, no KUBECONFIG, no ~/.kube/config): not imported either', () => {
    const r = child('nothing-found');
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.source, false);
    assert.match(r.reason ?? '', /^no Kubernetes API configured: no Kubernetes credentials: not in a pod/);
    assert.match(r.reason ?? '', new RegExp(`no ${join(home, '.kube', 'config')}`));
  });

  it('a kubeconfig found: it is imported then (the check above can fail)', () => {
    const file = join(home, 'kubeconfig');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]',
        'users: [{ name: u, user: { token: t } }]',
        'contexts: [{ name: x, context: { cluster: c, user: u } }]',
        'current-context: x',
        '',
      ].join('\n'),
    );
    const r = child('kubeconfig', file);
    assert.match(r.error ?? '', /client-node imported by file:\/\/.*\/src\/kube\/config\.ts/);
  });
});
