import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tracePolicy } from '../../src/cli/trace.js';
import { ConfigError } from '../../src/config/errors.js';

// `doorwatch policy check FILE`, the real binary as users run it (dist/, from
// `npm run build`): exit 0 and an explanation for a valid file, 1 and every
// problem of every object agents would reject, 2 for a file that is not a
// policy file at all. No privileges, no cluster.

const BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../fixtures/policies/', import.meta.url));
const fixture = (name: string) => join(FIXTURES, name);
const run = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, 'policy', 'check', ...args], { encoding: 'utf8', timeout: 20_000 });

const dir = mkdtempSync(join(tmpdir(), 'dw-cli-policy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const PRECEDENCE =
  'precedence: namespace policy > cluster policy (Doorwatch namespace) > configuration rule > default; then the more ' +
  'specific pod selector, then namespace (name > label selector > glob); ties: off > events > summary';

function ok(...args: string[]): string[] {
  const r = run(...args);
  assert.equal(r.status, 0, `exit code: ${r.stderr}`);
  assert.equal(r.stderr, '');
  return r.stdout.trimEnd().split('\n');
}

function configError(file: string): string {
  const r = run(file);
  assert.equal(r.status, 2, `exit code: ${r.stderr}\n${r.stdout}`);
  assert.equal(r.stdout, '', 'nothing explained');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /\(DW_ERR_CONFIG\)/);
  assert.ok(lines[0]!.startsWith(`doorwatch: invalid configuration in ${file}: `), lines[0]);
  return lines[0]!;
}

describe('doorwatch policy check', () => {
  it('explains a valid file and exits 0', () => {
    const file = fixture('three-use-cases.yaml');
    const out = ok(file);
    assert.equal(out[0], `${file}: 4 policies valid, 0 invalid`);
    assert.deepEqual(
      out.filter((l) => /^ {2}\S/.test(l)),
      [
        '  cluster default (agent configuration) [default]',
        '  host processes (agent configuration) [default]',
        '  configuration rule "ci-summaries" [configuration rule]',
        '  configuration rule "kube-system-off" [configuration rule]',
        '  AcceptAuditPolicy payments/audit-all [namespace policy]',
        '  AcceptAuditPolicy auth/audit-all [namespace policy]',
      ],
    );
    const at = (header: string) => out.slice(out.indexOf(header) + 1, out.indexOf(header) + 3);
    assert.deepEqual(at('  configuration rule "ci-summaries" [configuration rule]'), [
      '    selects: every pod in namespaces ci-*',
      '    audits:  mode summary: counts per pod, port and peer; every listening port; every peer; failed accepts reported',
    ]);
    assert.deepEqual(at('  configuration rule "kube-system-off" [configuration rule]'), [
      '    selects: every pod in namespaces kube-system',
      '    audits:  mode off: nothing leaves the kernel (counted per policy)',
    ]);
    assert.deepEqual(at('  AcceptAuditPolicy payments/audit-all [namespace policy]'), [
      '    selects: every pod in namespace payments',
      '    audits:  mode events: one event per accept; above 200 accepts/s per pod (burst 400) summaries instead; ' +
        'every listening port; every peer; failed accepts reported',
    ]);
    assert.deepEqual(at('  AcceptAuditPolicy auth/audit-all [namespace policy]'), [
      '    selects: every pod in namespace auth',
      '    audits:  mode events: one event per accept; every listening port except 9090; peers: include 10.244.7.0/24, ' +
        'exclude 10.244.0.0/16 (the most specific prefix decides; unmatched peers are excluded, as an include list is set); ' +
        'failed accepts reported',
    ]);
    assert.equal(out.at(-1), PRECEDENCE);
  });

  it('lists every problem of every invalid object, still explains the rest, and exits 1 with DW_ERR_POLICY_INVALID', () => {
    const file = fixture('invalid-objects.yaml');
    const r = run(file);
    assert.equal(r.status, 1, r.stderr);
    const out = r.stdout.trimEnd().split('\n');
    const header = (name: string) =>
      `INVALID AcceptAuditPolicy shop/${name}: would be rejected (status Accepted=False, InvalidSpec):`;
    const reach =
      'spec.namespaces/namespaceSelector: only policies in the Doorwatch namespace "doorwatch" may select other namespaces; ' +
      'this one governs namespace "shop" — remove them, or move the policy';
    assert.deepEqual(out.slice(0, 14), [
      header('bad-cidr'),
      '    spec.peers.exclude[0]: "10.0.0.0/33": prefix length must be 0-32',
      header('backwards-range'),
      '    spec.ports.include[0]: "9000-80": range start is above its end',
      header('too-many-ranges'),
      "    spec.ports.exclude: at most 8 entries (the kernel filter's per-policy budget), got 9",
      header('reaches-out'),
      `    ${reach}`,
      header('all-at-once'),
      '    spec.ports.include[0]: "9000-80": range start is above its end',
      '    spec.peers.include[0]: "bogus" is not an IP address or CIDR (examples: 10.0.0.0/8, 192.168.1.7, fd00::/8)',
      `    ${reach}`,
      `${file}: 1 policy valid, 5 invalid (no configuration in the file: default and host policies are "events")`,
      '  cluster default (agent configuration) [default]',
    ]);
    assert.ok(out.includes('  AcceptAuditPolicy shop/fine [namespace policy]'), r.stdout);
    assert.ok(
      out.includes('    audits:  mode events: one event per accept; listening ports 443; every peer; failed accepts reported'),
    );
    assert.ok(!r.stdout.includes('[namespace policy]\n    selects: every pod in namespace shop\n    audits:  mode off'));
    const err = r.stderr.trimEnd().split('\n');
    assert.equal(err.length, 1, r.stderr);
    assert.equal(
      err[0],
      `doorwatch: ${file} holds policies agents would reject (listed above) (DW_ERR_POLICY_INVALID) — fix the keys named above; see docs/policy.md`,
    );
  });

  it('a malformed mode does not hide the other problems of the object (issue 14)', () => {
    const file = join(dir, 'mode-and-cidr.yaml');
    writeFileSync(
      file,
      [
        'apiVersion: doorwatch.io/v1alpha1',
        'kind: AcceptAuditPolicy',
        'metadata: {namespace: shop, name: web}',
        'spec:',
        '  mode: sometimes',
        '  peers: {include: [192.168.1.0/33]}',
        '  ports: {include: ["9000-80"]}',
        '',
      ].join('\n'),
    );
    const r = run(file);
    assert.equal(r.status, 1, r.stderr);
    const out = r.stdout.trimEnd().split('\n');
    assert.equal(out[0], 'INVALID AcceptAuditPolicy shop/web: would be rejected (status Accepted=False, InvalidSpec):');
    assert.match(out[1]!, /^ {4}spec\.mode: Invalid enum value\. Expected 'events' \| 'summary' \| 'off', received 'sometimes'$/);
    assert.deepEqual(out.slice(2, 4), [
      '    spec.ports.include[0]: "9000-80": range start is above its end',
      '    spec.peers.include[0]: "192.168.1.0/33": prefix length must be 0-32',
    ]);
  });

  it('a configuration with several bad policies: exit 2 naming every problem of each', () => {
    const file = join(dir, 'config-all.yaml');
    writeFileSync(
      file,
      [
        'policy:',
        '  default: {mode: sometimes, peers: {include: [10.0.0.0/40]}}',
        '  rules:',
        '    - {name: r, mode: evnets, ports: {include: [99999]}}',
        '',
      ].join('\n'),
    );
    const line = configError(file);
    for (const p of [
      "policy.default.mode: Invalid enum value. Expected 'events' | 'summary' | 'off', received 'sometimes'",
      'policy.default.peers.include[0]: "10.0.0.0/40": prefix length must be 0-32',
      "policy.rules[0].mode: Invalid enum value. Expected 'events' | 'summary' | 'off', received 'evnets'",
      'policy.rules[0].ports.include[0]: "99999"',
    ])
      assert.ok(line.includes(p), `${p} in ${line}`);
  });

  it('malformed YAML: exit 2, DW_ERR_CONFIG, the document named', () => {
    const line = configError(fixture('malformed.yaml'));
    assert.match(line, /: document 2: Flow sequence/);
  });

  it('unknown keys: exit 2, DW_ERR_CONFIG, every key named', () => {
    const line = configError(fixture('unknown-keys.yaml'));
    assert.match(line, /policy: Unrecognized key\(s\) in object: 'defualt', 'rule'/);
  });

  it('other kinds, two configurations and a missing file: exit 2, each problem named', () => {
    const file = join(dir, 'mixed.yaml');
    writeFileSync(
      file,
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n---\ndefault: { mode: events }\n---\nhost: { mode: "off" }\n',
    );
    const line = configError(file);
    assert.match(
      line,
      /document 1: kind "ConfigMap" is not AcceptAuditPolicy; 2 policy configurations: a file holds at most one/,
    );
    assert.match(configError(join(dir, 'nope.yaml')), /cannot read: ENOENT/);
  });

  it('--example-namespace: which policy governs such a pod, and what else selects it', () => {
    const file = fixture('three-use-cases.yaml');
    const example = (...args: string[]) => {
      const out = ok(file, ...args);
      return out.slice(out.indexOf(PRECEDENCE) + 1);
    };
    assert.deepEqual(example('--example-namespace', 'ci-7', '--example-labels', 'app=runner,tier=ci'), [
      'example pod in namespace ci-7 with labels {app=runner, tier=ci}:',
      '  governed by configuration rule "ci-summaries": mode summary: counts per pod, port and peer; every listening port; ' +
        'every peer; failed accepts reported',
      '  also selected, lower precedence: cluster default (agent configuration)',
    ]);
    assert.deepEqual(example('--example-namespace', 'shop'), [
      'example pod in namespace shop with labels {}:',
      '  governed by cluster default (agent configuration): mode events: one event per accept; every listening port; ' +
        'every peer; failed accepts reported',
    ]);
    assert.deepEqual(example('--example-namespace', 'kube-system').slice(1), [
      '  governed by configuration rule "kube-system-off": mode off: nothing leaves the kernel (counted per policy)',
      '  also selected, lower precedence: cluster default (agent configuration)',
    ]);
    // Without --example-namespace, no example.
    assert.deepEqual(example(), []);
  });

  it('--example-namespace-labels: namespace selectors of cluster policies, below the namespace own policy', () => {
    const file = fixture('cluster-wide.yaml');
    const governed = (labels: string, nsLabels: string) => {
      const out = ok(file, '--example-namespace', 'shop', '--example-labels', labels, '--example-namespace-labels', nsLabels);
      return out.slice(out.indexOf(PRECEDENCE) + 2).map((l) => l.replace(/:.*/, ''));
    };
    assert.deepEqual(governed('app=web', 'env=prod'), [
      '  governed by AcceptAuditPolicy shop/web-events',
      '  also selected, lower precedence',
      '  also selected, lower precedence',
    ]);
    const full = ok(file, '--example-namespace', 'shop', '--example-labels', 'app=web', '--example-namespace-labels', 'env=prod');
    assert.deepEqual(full.slice(-2), [
      '  also selected, lower precedence: AcceptAuditPolicy audit/prod-summaries',
      '  also selected, lower precedence: cluster default (agent configuration)',
    ]);
    assert.deepEqual(governed('app=api', 'env=prod'), [
      '  governed by AcceptAuditPolicy audit/prod-summaries',
      '  also selected, lower precedence',
    ]);
    assert.deepEqual(governed('app=api', 'env=dev'), ['  governed by cluster default (agent configuration)']);
  });

  it('--admin-namespace: which namespace may select others, when the file does not say', () => {
    const file = join(dir, 'cross.yaml');
    writeFileSync(
      file,
      'apiVersion: doorwatch.io/v1alpha1\nkind: AcceptAuditPolicy\nmetadata: { name: ci, namespace: audit }\n' +
        'spec: { mode: summary, namespaces: ["ci-*"] }\n',
    );
    const refused = run(file);
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stdout, /only policies in the Doorwatch namespace "doorwatch" may select other namespaces/);
    const out = ok(file, '--admin-namespace', 'audit');
    assert.ok(out.includes('  AcceptAuditPolicy audit/ci [cluster policy (Doorwatch namespace)]'), out.join('\n'));
    assert.ok(out.includes('    selects: every pod in namespaces ci-*'));
  });

  it('usage errors: no file, a label without =', () => {
    const none = run();
    assert.equal(none.status, 2);
    assert.match(none.stderr, /missing required argument 'file'.*\(DW_ERR_CLI_USAGE\)/);
    const bad = run(fixture('three-use-cases.yaml'), '--example-namespace', 'x', '--example-labels', 'novalue');
    assert.equal(bad.status, 2);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /"novalue" is not a label \(key=value\).*\(DW_ERR_CLI_USAGE\)/);
  });
});

describe('doorwatch trace --policy / --namespace (tracePolicy)', () => {
  it('neither: no engine, everything audited as before', () => {
    assert.equal(tracePolicy({ filter: {} }), undefined);
    assert.equal(tracePolicy({ filter: { namespaces: [] } }), undefined);
  });

  it('--namespace: those namespaces as events, everything else (the host too) off, decided in the kernel', () => {
    const e = tracePolicy({ filter: { namespaces: ['shop', 'ci-*'] } })!;
    assert.equal(e.config.resources, false);
    const at = (ns: string) => e.forPod({ namespace: ns, labels: {} }, {});
    assert.equal(at('shop').key, 'rule:--namespace');
    assert.equal(at('shop').spec.mode, 'events');
    assert.equal(at('ci-3').spec.mode, 'events');
    assert.equal(at('payments').key, 'default');
    assert.equal(at('payments').spec.mode, 'off');
    assert.equal(e.host().spec.mode, 'off');
    assert.equal(e.unattributed().spec.mode, 'events', 'not attributed yet: still audited');
    assert.throws(
      () => tracePolicy({ filter: { namespaces: ['Bad_NS'] } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems, ['policy.rules[0].namespaces[0]: must be a namespace name or a glob like ci-*']);
        return true;
      },
    );
  });

  it('--policy FILE: the engine of the file; the file wins over --namespace', () => {
    const e = tracePolicy({ policyFile: fixture('three-use-cases.yaml'), filter: { namespaces: ['shop'] } })!;
    assert.equal(e.forPod({ namespace: 'payments', labels: {} }, {}).key, 'resource:payments/audit-all');
    assert.equal(e.forPod({ namespace: 'kube-system', labels: {} }, {}).spec.mode, 'off');
    assert.equal(e.forPod({ namespace: 'shop', labels: {} }, {}).key, 'default');
  });

  it('--policy FILE with objects agents would reject: refused, every problem named by object', () => {
    assert.throws(
      () => tracePolicy({ policyFile: fixture('invalid-objects.yaml'), filter: {} }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.problems.length, 7, err.problems.join('\n'));
        assert.equal(
          err.problems[0],
          'AcceptAuditPolicy shop/bad-cidr: spec.peers.exclude[0]: "10.0.0.0/33": prefix length must be 0-32',
        );
        assert.equal(err.problems.filter((p) => p.startsWith('AcceptAuditPolicy shop/all-at-once: ')).length, 3);
        assert.ok(!err.problems.some((p) => p.includes('shop/fine')));
        return true;
      },
    );
  });
});
