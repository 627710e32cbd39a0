import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuditMode, PolicyOrigin } from '../../src/gen/doorwatch/v1/event.js';
import { parsePolicyConfig } from '../../src/policy/config.js';
import { PolicyEngine, Tier } from '../../src/policy/engine.js';
import { type PolicyResource, parseResource } from '../../src/policy/resource.js';

// Which policy governs a pod (the precedence in the header of
// src/policy/engine.ts): tier, pod selector, namespace match, mode, key.

const ADMIN = 'doorwatch';

function engine(config: object = {}, resources: PolicyResource[] = []): PolicyEngine {
  const e = new PolicyEngine(parsePolicyConfig(config, { source: 'test', defaultAdminNamespace: ADMIN }));
  if (resources.length) assert.equal(e.setResources(resources), true);
  return e;
}

function res(namespace: string, name: string, spec: object, generation = 1): PolicyResource {
  const r = parseResource({ metadata: { namespace, name, uid: `uid-${namespace}-${name}`, generation }, spec }, ADMIN);
  if (!r.ok) assert.fail(`${namespace}/${name} rejected: ${r.rejected.problems.join('; ')}`);
  return r.policy;
}

const pod = (namespace: string, labels: Record<string, string> = {}) => ({ namespace, labels });
/** The governing policy's key for a pod. */
const who = (e: PolicyEngine, namespace: string, labels: Record<string, string> = {}, nsLabels: Record<string, string> = {}) =>
  e.forPod(pod(namespace, labels), nsLabels).key;
/** Every selecting policy's key, winner first. */
const ranking = (
  e: PolicyEngine,
  namespace: string,
  labels: Record<string, string> = {},
  nsLabels: Record<string, string> = {},
) => e.explainPod(pod(namespace, labels), nsLabels).map((r) => r.policy.key);

describe('policy engine: the fixed policies', () => {
  it('with nothing configured, every pod gets the cluster default (events)', () => {
    const e = engine();
    const p = e.forPod(pod('shop', { app: 'web' }), {});
    assert.equal(p.key, 'default');
    assert.equal(p.tier, Tier.DEFAULT);
    assert.deepEqual(
      { ...p.ref },
      { origin: PolicyOrigin.POLICY_ORIGIN_CONFIG_DEFAULT, name: 'default', mode: AuditMode.AUDIT_MODE_EVENTS },
    );
    assert.equal(p.spec.mode, 'events');
  });

  it('host() is the configured host policy; unattributed() audits everything as events', () => {
    const e = engine({ default: { mode: 'off' }, host: { mode: 'summary', ports: { include: [22] } } });
    const h = e.host();
    assert.equal(h.key, 'host');
    assert.deepEqual({ ...h.ref }, { origin: PolicyOrigin.POLICY_ORIGIN_HOST, name: 'host', mode: AuditMode.AUDIT_MODE_SUMMARY });
    assert.deepEqual(h.spec.ports.include, [{ lo: 22, hi: 22 }]);
    const u = e.unattributed();
    assert.equal(u.key, 'unattributed');
    assert.deepEqual(
      { ...u.ref },
      {
        origin: PolicyOrigin.POLICY_ORIGIN_UNATTRIBUTED,
        name: 'unattributed',
        mode: AuditMode.AUDIT_MODE_EVENTS,
      },
    );
    // Fail open whatever the default says: no filters, failed accepts reported.
    assert.deepEqual(u.spec, {
      mode: 'events',
      ports: { include: [], exclude: [] },
      peers: { include: [], exclude: [] },
      failedAccepts: true,
    });
    assert.equal(e.forPod(pod('shop'), {}).spec.mode, 'off');
    // Neither governs a pod.
    assert.ok(!ranking(e, 'shop').includes('host'));
    assert.ok(!ranking(e, 'shop').includes('unattributed'));
  });

  it('refs are frozen and shared: stamped on every event of the policy', () => {
    const e = engine();
    const a = e.forPod(pod('a'), {});
    const b = e.forPod(pod('b'), {});
    assert.equal(a.ref, b.ref);
    assert.ok(Object.isFrozen(a.ref));
  });

  it('all(): unattributed, default, host, then rules, then resources', () => {
    const e = engine(
      {
        rules: [
          { name: 'r1', mode: 'events' },
          { name: 'r2', mode: 'summary' },
        ],
      },
      [res('shop', 'p', { mode: 'events' }), res(ADMIN, 'c', { mode: 'off', namespaces: ['x'] })],
    );
    assert.deepEqual(
      e.all().map((p) => p.key),
      ['unattributed', 'default', 'host', 'rule:r1', 'rule:r2', 'resource:shop/p', 'resource:doorwatch/c'],
    );
    const byKey = new Map(e.all().map((p) => [p.key, p]));
    assert.equal(byKey.get('rule:r2')!.ref.origin, PolicyOrigin.POLICY_ORIGIN_CONFIG_RULE);
    assert.equal(byKey.get('rule:r2')!.ref.name, 'r2');
    assert.equal(byKey.get('rule:r2')!.ref.mode, AuditMode.AUDIT_MODE_SUMMARY);
    assert.equal(byKey.get('resource:shop/p')!.ref.origin, PolicyOrigin.POLICY_ORIGIN_RESOURCE);
    assert.equal(byKey.get('resource:shop/p')!.ref.name, 'shop/p');
    assert.equal(byKey.get('resource:shop/p')!.tier, Tier.NAMESPACE_RESOURCE);
    assert.equal(byKey.get('resource:doorwatch/c')!.tier, Tier.CLUSTER_RESOURCE);
    assert.equal(byKey.get('resource:doorwatch/c')!.ref.mode, AuditMode.AUDIT_MODE_OFF);
  });
});

describe('policy engine: precedence', () => {
  it('tier first: own-namespace resource > admin-namespace cluster resource > configuration rule > default', () => {
    // All in summary mode without selectors: only the tier tells them apart.
    const rule = { name: 'payments-rule', namespaces: ['payments'], mode: 'summary' };
    const cluster = res(ADMIN, 'cluster', { mode: 'summary', namespaces: ['payments'] });
    const own = res('payments', 'own', { mode: 'summary' });
    const e = engine({ rules: [rule] }, [cluster, own]);
    assert.deepEqual(ranking(e, 'payments'), [
      'resource:payments/own',
      'resource:doorwatch/cluster',
      'rule:payments-rule',
      'default',
    ]);
    assert.equal(who(e, 'payments'), 'resource:payments/own');
    e.setResources([cluster]);
    assert.equal(who(e, 'payments'), 'resource:doorwatch/cluster');
    e.setResources([]);
    assert.equal(who(e, 'payments'), 'rule:payments-rule');
    assert.equal(who(e, 'shop'), 'default');
  });

  it('a lower tier loses even with a more specific selector and mode off', () => {
    const e = engine(
      { rules: [{ name: 'web-off', namespaces: ['payments'], podSelector: { matchLabels: { app: 'web' } }, mode: 'off' }] },
      [
        res(ADMIN, 'cluster-web', {
          mode: 'off',
          namespaces: ['payments'],
          podSelector: { matchLabels: { app: 'web', tier: 'front' } },
        }),
        res('payments', 'all', { mode: 'summary' }),
      ],
    );
    assert.equal(who(e, 'payments', { app: 'web', tier: 'front' }), 'resource:payments/all');
  });

  it('a policy never governs another namespace by itself', () => {
    const e = engine({}, [res('payments', 'all', { mode: 'off' })]);
    assert.equal(who(e, 'payments'), 'resource:payments/all');
    assert.equal(who(e, 'payments-2'), 'default');
    assert.equal(who(e, 'shop'), 'default');
  });

  it('within a tier, the more specific pod selector wins', () => {
    const e = engine({}, [
      res('shop', 'all', { mode: 'off' }), // off would win a tie: specificity comes first
      res('shop', 'web', { mode: 'summary', podSelector: { matchLabels: { app: 'web' } } }),
      res('shop', 'web-front', {
        mode: 'summary',
        podSelector: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['front'] }] },
      }),
    ]);
    assert.equal(who(e, 'shop', { app: 'web', tier: 'front' }), 'resource:shop/web-front');
    assert.equal(who(e, 'shop', { app: 'web', tier: 'back' }), 'resource:shop/web');
    assert.equal(who(e, 'shop', { app: 'api' }), 'resource:shop/all');
    assert.deepEqual(ranking(e, 'shop', { app: 'web', tier: 'front' }), [
      'resource:shop/web-front',
      'resource:shop/web',
      'resource:shop/all',
      'default',
    ]);
  });

  it('then the namespace match: exact name > label selector > glob > any', () => {
    const rules = [
      { name: 'any', mode: 'summary' },
      { name: 'glob', namespaces: ['ci-*'], mode: 'summary' },
      { name: 'selector', namespaceSelector: { matchLabels: { team: 'ci' } }, mode: 'summary' },
      { name: 'exact', namespaces: ['ci-7'], mode: 'summary' },
    ];
    const e = engine({ rules });
    assert.deepEqual(ranking(e, 'ci-7', {}, { team: 'ci' }), ['rule:exact', 'rule:selector', 'rule:glob', 'rule:any', 'default']);
    assert.deepEqual(ranking(e, 'ci-8', {}, { team: 'ci' }), ['rule:selector', 'rule:glob', 'rule:any', 'default']);
    assert.deepEqual(ranking(e, 'ci-8', {}, { team: 'web' }), ['rule:glob', 'rule:any', 'default']);
    assert.deepEqual(ranking(e, 'shop', {}, {}), ['rule:any', 'default']);
    // The namespace match ranks below the pod selector.
    const e2 = engine({
      rules: [...rules, { name: 'any-web', podSelector: { matchLabels: { app: 'web' } }, mode: 'summary' }],
    });
    assert.equal(who(e2, 'ci-7', { app: 'web' }, { team: 'ci' }), 'rule:any-web');
  });

  it('names and a label selector together must both hold; the better match counts', () => {
    const e = engine({
      rules: [
        { name: 'glob-and-label', namespaces: ['ci-*'], namespaceSelector: { matchLabels: { team: 'ci' } }, mode: 'summary' },
        { name: 'glob', namespaces: ['ci-*'], mode: 'summary' },
      ],
    });
    assert.deepEqual(ranking(e, 'ci-1', {}, { team: 'ci' }), ['rule:glob-and-label', 'rule:glob', 'default']);
    assert.deepEqual(ranking(e, 'ci-1', {}, { team: 'web' }), ['rule:glob', 'default']);
    assert.deepEqual(ranking(e, 'shop', {}, { team: 'ci' }), ['default']);
  });

  it('ties: off > events > summary', () => {
    const summary = res('shop', 'a-summary', { mode: 'summary' });
    const events = res('shop', 'b-events', { mode: 'events' });
    const off = res('shop', 'c-off', { mode: 'off' });
    const e = engine({}, [summary, events, off]);
    assert.deepEqual(ranking(e, 'shop'), ['resource:shop/c-off', 'resource:shop/b-events', 'resource:shop/a-summary', 'default']);
    e.setResources([summary, events]);
    assert.equal(who(e, 'shop'), 'resource:shop/b-events');
    e.setResources([summary]);
    assert.equal(who(e, 'shop'), 'resource:shop/a-summary');
  });

  it('then the key, alphabetically, whatever the order they were listed in', () => {
    const a = res('shop', 'a', { mode: 'events' });
    const b = res('shop', 'b', { mode: 'events' });
    assert.equal(who(engine({}, [b, a]), 'shop'), 'resource:shop/a');
    assert.equal(who(engine({}, [a, b]), 'shop'), 'resource:shop/a');
    const e = engine({
      rules: [
        { name: 'zeta', mode: 'events' },
        { name: 'alpha', mode: 'events' },
      ],
    });
    assert.equal(who(e, 'shop'), 'rule:alpha');
  });

  it('a namespace label selector needs the namespace labels', () => {
    const e = engine({}, [res(ADMIN, 'prod', { mode: 'off', namespaceSelector: { matchLabels: { env: 'prod' } } })]);
    assert.equal(who(e, 'shop', {}, { env: 'prod' }), 'resource:doorwatch/prod');
    assert.equal(who(e, 'billing', {}, { env: 'prod', team: 'x' }), 'resource:doorwatch/prod');
    assert.equal(who(e, 'shop', {}, { env: 'dev' }), 'default');
    assert.equal(who(e, 'shop', {}, {}), 'default');
    assert.equal(e.forPod(pod('shop'), undefined).key, 'default', 'namespace not known yet');
  });

  it('a cluster resource in the admin namespace selects only what it names, and the admin namespace own policies are namespace tier', () => {
    const e = engine({}, [
      res(ADMIN, 'ci', { mode: 'summary', namespaces: ['ci-*'] }),
      res(ADMIN, 'self', { mode: 'events', podSelector: { matchLabels: { app: 'agent' } } }),
    ]);
    assert.equal(who(e, 'ci-1'), 'resource:doorwatch/ci');
    assert.equal(who(e, ADMIN), 'default');
    assert.equal(who(e, ADMIN, { app: 'agent' }), 'resource:doorwatch/self');
    assert.equal(who(e, 'shop', { app: 'agent' }), 'default');
    assert.equal(e.explainPod(pod(ADMIN, { app: 'agent' }), {})[0]!.policy.tier, Tier.NAMESPACE_RESOURCE);
  });

  it('explainPod gives the rank that ordered them', () => {
    const e = engine({ rules: [{ name: 'ci', namespaces: ['ci-*'], mode: 'off' }] }, [
      res('ci-1', 'web', { mode: 'summary', podSelector: { matchLabels: { app: 'web' } } }),
    ]);
    assert.deepEqual(
      e.explainPod(pod('ci-1', { app: 'web' }), {}).map((r) => [r.policy.key, r.rank]),
      [
        ['resource:ci-1/web', [Tier.NAMESPACE_RESOURCE, 1, 3, 0]],
        ['rule:ci', [Tier.RULE, 0, 1, 2]],
        ['default', [Tier.DEFAULT, 0, 0, 1]],
      ],
    );
  });
});

describe('policy engine: setResources', () => {
  it('returns false and keeps the version when nothing changed', () => {
    const e = engine();
    assert.equal(e.version, 0);
    const list = [res('shop', 'a', { mode: 'events' }), res('shop', 'b', { mode: 'off' })];
    assert.equal(e.setResources(list), true);
    assert.equal(e.version, 1);
    // A fresh list of the same objects (a relist) is no change.
    assert.equal(e.setResources([res('shop', 'a', { mode: 'events' }), res('shop', 'b', { mode: 'off' })]), false);
    assert.equal(e.version, 1);
    assert.equal(engine().setResources([]), false, 'none before, none now');
  });

  it('bumps the version on a new generation, an addition or a removal, and the answer follows', () => {
    const e = engine();
    e.setResources([res('shop', 'a', { mode: 'events' })]);
    const v = e.version;
    assert.equal(who(e, 'shop'), 'resource:shop/a');
    assert.equal(e.forPod(pod('shop'), {}).spec.mode, 'events');

    assert.equal(e.setResources([res('shop', 'a', { mode: 'off' }, 2)]), true);
    assert.equal(e.version, v + 1);
    assert.equal(e.forPod(pod('shop'), {}).spec.mode, 'off');

    assert.equal(e.setResources([res('shop', 'a', { mode: 'off' }, 2), res('web', 'b', { mode: 'summary' })]), true);
    assert.equal(e.version, v + 2);
    assert.equal(who(e, 'web'), 'resource:web/b');

    assert.equal(e.setResources([res('web', 'b', { mode: 'summary' })]), true);
    assert.equal(e.version, v + 3);
    assert.equal(who(e, 'shop'), 'default');
    assert.deepEqual(
      e.all().map((p) => p.key),
      ['unattributed', 'default', 'host', 'resource:web/b'],
    );
  });

  it('a recreated object (new uid, same name) is a change', () => {
    const e = engine({}, [res('shop', 'a', { mode: 'events' })]);
    const v = e.version;
    const again = { ...res('shop', 'a', { mode: 'events' }), uid: 'another-uid' };
    assert.equal(e.setResources([again]), true);
    assert.equal(e.version, v + 1);
  });
});
