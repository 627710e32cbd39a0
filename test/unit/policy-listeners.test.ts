import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { parsePolicyConfig } from '../../src/policy/config.js';
import { parseSpec, UNDECLARED_LISTENER_ACTIONS, undeclaredListenerAction } from '../../src/policy/spec.js';

// The policy field `listeners.undeclared` (docs/policy.md "Undeclared listeners"): parsed with every other
// problem, in the CRD's schema, explained by `doorwatch policy check` (the real binary, dist/ from npm run build).

const spec = (raw: unknown) => {
  const p = parseSpec(raw, 'spec');
  assert.ok(p.ok, p.ok ? '' : p.problems.join('\n'));
  return p.spec;
};
const problems = (raw: unknown) => {
  const p = parseSpec(raw, 'spec');
  assert.ok(!p.ok, 'expected problems');
  return p.problems;
};

describe('policy field listeners.undeclared', () => {
  it('finding by default, off when said, independent of mode', () => {
    assert.equal(undeclaredListenerAction(spec({ mode: 'events' })), 'finding');
    assert.equal(spec({ mode: 'events' }).listeners, undefined, 'absent stays absent');
    assert.deepEqual(spec({ mode: 'events', listeners: {} }).listeners, { undeclared: 'finding' });
    assert.equal(undeclaredListenerAction(spec({ mode: 'summary', listeners: { undeclared: 'off' } })), 'off');
    // mode off silences accepts only; listeners may still be set either way (not "ignored").
    assert.equal(undeclaredListenerAction(spec({ mode: 'off', listeners: { undeclared: 'finding' } })), 'finding');
    assert.equal(undeclaredListenerAction(spec({ mode: 'off' })), 'finding');
  });

  it('every problem at once, the listeners ones among the others', () => {
    const p = problems({ mode: 'loud', ports: { include: ['x'] }, listeners: { undeclared: 'maybe', loopback: true } });
    assert.ok(p.some((x) => x.startsWith('spec.mode: ')));
    assert.ok(p.some((x) => x.startsWith('spec.ports.include[0]: ')));
    assert.ok(
      p.includes("spec.listeners.undeclared: Invalid enum value. Expected 'finding' | 'off', received 'maybe'"),
      p.join('\n'),
    );
    assert.ok(p.includes(`spec.listeners: Unrecognized key(s) in object: 'loopback' ("loopback")`), p.join('\n'));
    assert.deepEqual(problems({ mode: 'events', listeners: 'off' }), ['spec.listeners: Expected object, received string']);
  });

  it('config-file policies take it too, with the rule path in problems', () => {
    const c = parsePolicyConfig(
      {
        default: { mode: 'events', listeners: { undeclared: 'off' } },
        rules: [{ name: 'r', mode: 'summary', listeners: { undeclared: 'finding' } }],
      },
      { source: 'test', defaultAdminNamespace: 'doorwatch' },
    );
    assert.equal(undeclaredListenerAction(c.default), 'off');
    assert.equal(undeclaredListenerAction(c.rules[0]!.spec), 'finding');
    assert.throws(
      () =>
        parsePolicyConfig(
          { rules: [{ name: 'r', mode: 'events', listeners: { undeclared: 'no' } }] },
          { source: 'f', defaultAdminNamespace: 'd' },
        ),
      (e: Error) => e.message.includes('policy.rules[0].listeners.undeclared: '),
    );
  });

  it('the CRD schema has the same field and values (helm/doorwatch/crds)', () => {
    const crd = parse(
      readFileSync(
        fileURLToPath(new URL('../../helm/doorwatch/crds/acceptauditpolicies.doorwatch.io.yaml', import.meta.url)),
        'utf8',
      ),
    );
    const props = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
    assert.equal(props.listeners.type, 'object');
    assert.deepEqual(props.listeners.properties.undeclared.enum, [...UNDECLARED_LISTENER_ACTIONS]);
    assert.equal(props.listeners.properties.undeclared.default, 'finding');
  });
});

describe('doorwatch policy check: listeners', () => {
  const BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
  const file = fileURLToPath(new URL('../fixtures/policies/listeners.yaml', import.meta.url));

  it('says what each policy does with undeclared listeners, and every invalid listeners key', () => {
    const r = spawnSync(process.execPath, [BIN, 'policy', 'check', file], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1, r.stderr);
    const out = r.stdout.split('\n');
    const after = (header: string) => out[out.indexOf(header) + 3];
    assert.equal(
      after('  cluster default (agent configuration) [default]'),
      '    listens: a listener on a port the pod does not declare is a finding (default)',
    );
    assert.equal(
      after('  host processes (agent configuration) [default]'),
      '    listens: not judged: processes in no pod have no declared ports',
    );
    assert.equal(
      after('  configuration rule "dev-quiet" [configuration rule]'),
      '    listens: listeners on undeclared ports are not findings (listeners.undeclared: off)',
    );
    assert.equal(
      after('  AcceptAuditPolicy sandbox/no-findings [namespace policy]'),
      '    listens: listeners on undeclared ports are not findings (listeners.undeclared: off)',
    );
    const typo = out.indexOf('INVALID AcceptAuditPolicy shop/typo: would be rejected (status Accepted=False, InvalidSpec):');
    assert.deepEqual(out.slice(typo + 1, typo + 3), [
      "    spec.listeners.undeclared: Invalid enum value. Expected 'finding' | 'off', received 'maybe'",
      `    spec.listeners: Unrecognized key(s) in object: 'loopback' ("loopback")`,
    ]);
    assert.ok(out.includes('    spec.listeners: Expected object, received string'));
    assert.ok(out.includes(`${file}: 2 policies valid, 2 invalid`));
  });
});
