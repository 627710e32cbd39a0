import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildRenderer, find, GO_ENV, type K8sObject, listFiles, parseManifests, ROOT, validateAll } from '../helpers/helm.js';

/**
 * manifests/ is the chart rendered by scripts/render-manifests.sh. Rendered
 * again here into a temporary directory, it must be byte for byte what is
 * committed; and what is committed must be valid and complete.
 */

const MANIFESTS = join(ROOT, 'manifests');

describe('manifests/', () => {
  it('equals a fresh render of the chart (run `npm run manifests` after changing the chart)', () => {
    buildRenderer(); // a missing `go` fails here with the fix
    const out = mkdtempSync(join(tmpdir(), 'dw-manifests-'));
    try {
      const r = spawnSync('bash', [join(ROOT, 'scripts/render-manifests.sh'), out], {
        encoding: 'utf8',
        timeout: 300_000,
        env: { ...process.env, ...GO_ENV },
      });
      assert.equal(r.status, 0, `render-manifests.sh failed:\n${r.stderr}`);
      const yamlFiles = (dir: string) => listFiles(dir).filter((f) => f.endsWith('.yaml'));
      assert.deepEqual(yamlFiles(out), yamlFiles(MANIFESTS));
      for (const f of yamlFiles(out)) {
        assert.equal(
          readFileSync(join(MANIFESTS, f), 'utf8'),
          readFileSync(join(out, f), 'utf8'),
          `manifests/${f} is out of date: run \`npm run manifests\``,
        );
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('is valid, in one namespace, with the namespace and the CRD applied first', () => {
    const files = listFiles(MANIFESTS).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(files, ['00-namespace.yaml', '10-crds.yaml', '20-doorwatch.yaml'], 'kubectl applies them in this order');
    const objects: K8sObject[] = files.flatMap((f) => parseManifests(readFileSync(join(MANIFESTS, f), 'utf8')));
    assert.deepEqual(validateAll(objects), []);
    const ns = find(objects, 'Namespace', 'doorwatch');
    assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
    for (const o of objects) {
      if (o.metadata.namespace !== undefined) assert.equal(o.metadata.namespace, 'doorwatch', `${o.kind}/${o.metadata.name}`);
    }
    for (const f of files) assert.ok(!readFileSync(join(MANIFESTS, f), 'utf8').includes('PRIVATE KEY'), `${f}: no key material`);
    assert.ok(!objects.some((o) => o.kind === 'Secret'), 'the TLS Secrets are created by the user (docs/install.md)');
    const secrets = JSON.stringify(find(objects, 'DaemonSet')) + JSON.stringify(find(objects, 'Deployment'));
    assert.match(secrets, /"doorwatch-agent-tls"/);
    assert.match(secrets, /"doorwatch-collector-tls"/);
    assert.equal(find(objects, 'CustomResourceDefinition').metadata.name, 'acceptauditpolicies.doorwatch.io');
  });
});
