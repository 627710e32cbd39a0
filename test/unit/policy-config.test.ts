import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../src/config/errors.js';
import { type PolicyConfig, parsePolicyConfig } from '../../src/policy/config.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { describeSelection, describeSettings, explainPolicies } from '../../src/policy/explain.js';
import { DEFAULT_ADMIN_NAMESPACE, loadPolicyFile } from '../../src/policy/file.js';
import { type PolicySpec, parseSpec } from '../../src/policy/spec.js';
import { configProblems } from '../helpers/config-problems.js';

// The `policy` key of the agent configuration, policy files (AcceptAuditPolicy
// documents + at most one configuration) and their explanation in words.

const FIXTURES = fileURLToPath(new URL('../fixtures/policies/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dw-policy-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const parse = (c: unknown, admin = 'doorwatch'): PolicyConfig =>
  parsePolicyConfig(c, { source: 'agent.yaml', defaultAdminNamespace: admin });
const problems = (c: unknown) => configProblems((x) => parse(x), c);

let n = 0;
function file(text: string): string {
  const p = join(dir, `p${n++}.yaml`);
  writeFileSync(p, text);
  return p;
}

function fileProblems(path: string, admin?: string): string[] {
  try {
    loadPolicyFile(path, admin);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.match(e.message, new RegExp(`^invalid configuration in ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `));
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

function spec(raw: object): PolicySpec {
  const r = parseSpec(raw, 'spec');
  if (!r.ok) assert.fail(r.problems.join('; '));
  return r.spec;
}

/** `mode: events` with every default (spelled out in test/unit/policy-spec.test.ts). */
const EVENTS = spec({ mode: 'events' });

const policyDoc = (ns: string, name: string, spec: string) =>
  `apiVersion: doorwatch.io/v1alpha1\nkind: AcceptAuditPolicy\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n${spec
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}\n`;

describe('policy configuration', () => {
  it('absent: resources watched, status written, everything events, 10s summaries of at most 10000 keys', () => {
    const want: PolicyConfig = {
      resources: true,
      writeStatus: true,
      adminNamespace: 'doorwatch',
      summaryIntervalMs: 10_000,
      maxSummaryKeys: 10_000,
      default: EVENTS,
      host: EVENTS,
      rules: [],
    };
    assert.deepEqual(parse(undefined), want);
    assert.deepEqual(parse(null), want);
    assert.deepEqual(parse({}), want);
    assert.equal(parse({}, 'monitoring').adminNamespace, 'monitoring');
    assert.equal(parse({ adminNamespace: 'audit' }, 'monitoring').adminNamespace, 'audit');
  });

  it('reads every key', () => {
    const c = parse({
      resources: false,
      writeStatus: false,
      summaryInterval: '30s',
      maxSummaryKeys: 500,
      default: { mode: 'summary', ports: { exclude: [22] } },
      host: { mode: 'off' },
      rules: [{ name: 'ci', namespaces: ['ci-*'], mode: 'summary', failedAccepts: false }],
    });
    assert.equal(c.resources, false);
    assert.equal(c.writeStatus, false);
    assert.equal(c.summaryIntervalMs, 30_000);
    assert.equal(c.maxSummaryKeys, 500);
    assert.equal(c.default.mode, 'summary');
    assert.deepEqual(c.default.ports.exclude, [{ lo: 22, hi: 22 }]);
    assert.equal(c.host.mode, 'off');
    assert.equal(c.rules.length, 1);
    assert.equal(c.rules[0]!.name, 'ci');
    assert.deepEqual(c.rules[0]!.spec.namespaces, ['ci-*']);
    assert.equal(c.rules[0]!.spec.failedAccepts, false);
  });

  it('durations: human units, or a number of seconds', () => {
    assert.equal(parse({ summaryInterval: '500ms' }).summaryIntervalMs, 500);
    assert.equal(parse({ summaryInterval: '2m' }).summaryIntervalMs, 120_000);
    assert.equal(parse({ summaryInterval: 5 }).summaryIntervalMs, 5_000);
    assert.equal(parse({ summaryInterval: 0.25 }).summaryIntervalMs, 250);
    assert.deepEqual(problems({ summaryInterval: 'soon' }), [
      'policy.summaryInterval: "soon" is not a duration (examples: 500ms, 30s, 5m, 1h)',
    ]);
    assert.equal(problems({ summaryInterval: 0 }).length, 1);
    assert.match(problems({ summaryInterval: 0 })[0]!, /^policy\.summaryInterval: /);
    assert.match(problems({ summaryInterval: '0s' })[0]!, /^policy\.summaryInterval: "0s" must be a positive duration/);
  });

  it('names unknown keys, at the top and inside a policy', () => {
    assert.deepEqual(problems({ defaults: { mode: 'events' } }), [
      'policy: Unrecognized key(s) in object: \'defaults\' ("defaults")',
    ]);
    assert.deepEqual(problems({ default: { mode: 'events', ports: { includes: [1] } } }), [
      'policy.default.ports: Unrecognized key(s) in object: \'includes\' ("includes")',
    ]);
    assert.deepEqual(problems({ rules: [{ name: 'a', mode: 'events', namespace: 'x' }] }), [
      'policy.rules[0]: Unrecognized key(s) in object: \'namespace\' ("namespace")',
    ]);
  });

  it('the default and host policies take no selectors', () => {
    assert.deepEqual(
      problems({
        default: { mode: 'events', podSelector: { matchLabels: { a: 'b' } } },
        host: { mode: 'off', namespaces: ['x'], namespaceSelector: {} },
      }),
      [
        'policy.default.podSelector: the default policy selects no pods, remove it',
        'policy.host.namespaces: the host policy selects no pods, remove it',
        'policy.host.namespaceSelector: the host policy selects no pods, remove it',
      ],
    );
  });

  it('rule names are required and unique', () => {
    assert.deepEqual(
      problems({
        rules: [
          { name: 'a', mode: 'events' },
          { name: 'b', mode: 'off' },
          { name: 'a', mode: 'summary' },
        ],
      }),
      ['policy.rules[2].name: "a" is used twice'],
    );
    assert.match(problems({ rules: [{ mode: 'events' }] })[0]!, /^policy\.rules\[0\]\.name: Required/);
    assert.match(problems({ rules: [{ name: '', mode: 'events' }] })[0]!, /^policy\.rules\[0\]\.name: /);
  });

  it('reports every problem of every policy together, by key', () => {
    assert.deepEqual(
      problems({
        default: { mode: 'events', namespaces: ['x'] },
        host: { mode: 'loud' },
        rules: [
          { name: 'a', mode: 'events', ports: { include: ['9000-80'] } },
          { name: 'a', mode: 'off', peers: { include: ['10.0.0.0/33'] } },
          { name: 'ok', mode: 'summary' },
        ],
      }),
      [
        'policy.default.namespaces: the default policy selects no pods, remove it',
        "policy.host.mode: Invalid enum value. Expected 'events' | 'summary' | 'off', received 'loud'",
        'policy.rules[0].ports.include[0]: "9000-80": range start is above its end',
        'policy.rules[1].name: "a" is used twice',
        'policy.rules[1].peers.include[0]: "10.0.0.0/33": prefix length must be 0-32',
        'policy.rules[1]: mode "off" audits nothing, so ports, peers and rateLimit would be ignored; remove them',
      ],
    );
  });

  it("a problem at the top does not hide the policies' own problems", () => {
    assert.deepEqual(
      problems({
        summaryIntervl: '10s',
        default: { mode: 'audit' },
        rules: [{ name: 'a', mode: 'events', ports: { include: ['9000-80'] } }],
      }),
      [
        `policy: Unrecognized key(s) in object: 'summaryIntervl' ("summaryIntervl")`,
        "policy.default.mode: Invalid enum value. Expected 'events' | 'summary' | 'off', received 'audit'",
        'policy.rules[0].ports.include[0]: "9000-80": range start is above its end',
      ],
    );
  });

  it('bounds maxSummaryKeys', () => {
    assert.match(problems({ maxSummaryKeys: 15 })[0]!, /^policy\.maxSummaryKeys: Number must be greater than or equal to 16/);
    assert.match(problems({ maxSummaryKeys: 2_000_000 })[0]!, /^policy\.maxSummaryKeys: /);
    assert.equal(parse({ maxSummaryKeys: 16 }).maxSummaryKeys, 16);
  });
});

describe('policy files', () => {
  it('the three use cases: one configuration and two AcceptAuditPolicy objects', () => {
    const path = join(FIXTURES, 'three-use-cases.yaml');
    const f = loadPolicyFile(path);
    assert.equal(f.path, path);
    assert.equal(f.hasConfig, true);
    assert.deepEqual(
      f.config.rules.map((r) => [r.name, r.spec.mode, r.spec.namespaces]),
      [
        ['ci-summaries', 'summary', ['ci-*']],
        ['kube-system-off', 'off', ['kube-system']],
      ],
    );
    assert.deepEqual(
      f.resources.map((r) => [r.namespace, r.name, r.clusterScoped, r.spec.mode]),
      [
        ['payments', 'audit-all', false, 'events'],
        ['auth', 'audit-all', false, 'events'],
      ],
    );
    assert.deepEqual(f.resources[0]!.spec.rateLimit, { eventsPerSecond: 200, burst: 400 });
    assert.deepEqual(
      f.resources[1]!.spec.peers.include.map((c) => c.text),
      ['10.244.7.0/24'],
    );
    assert.deepEqual(f.rejected, []);
    assert.equal(f.config.adminNamespace, DEFAULT_ADMIN_NAMESPACE);

    const e = new PolicyEngine(f.config);
    e.setResources(f.resources);
    const who = (ns: string) => e.forPod({ namespace: ns, labels: {} }, {}).key;
    assert.equal(who('payments'), 'resource:payments/audit-all');
    assert.equal(who('auth'), 'resource:auth/audit-all');
    assert.equal(who('ci-42'), 'rule:ci-summaries');
    assert.equal(who('kube-system'), 'rule:kube-system-off');
    assert.equal(who('shop'), 'default');
  });

  it('AcceptAuditPolicy documents alone: no configuration, everything else events', () => {
    const f = loadPolicyFile(file(`${policyDoc('shop', 'a', 'mode: off')}---\n${policyDoc('web', 'b', 'mode: summary')}`));
    assert.equal(f.hasConfig, false);
    assert.deepEqual(f.config, parse(undefined));
    assert.deepEqual(
      f.resources.map((r) => `${r.namespace}/${r.name}`),
      ['shop/a', 'web/b'],
    );
  });

  it('a configuration as the `policy:` key of an agent config, or as its content', () => {
    const a = loadPolicyFile(file('policy:\n  default: { mode: summary }\n  rules: [{ name: r, mode: "off" }]\n'));
    assert.equal(a.hasConfig, true);
    assert.equal(a.config.default.mode, 'summary');
    assert.equal(a.config.rules[0]!.name, 'r');
    const b = loadPolicyFile(file('default: { mode: summary }\nhost: { mode: "off" }\n'));
    assert.equal(b.config.default.mode, 'summary');
    assert.equal(b.config.host.mode, 'off');
    // The other keys of an agent config are not ours to judge.
    const c = loadPolicyFile(file('collector: c:7443\ntls: { insecure: true }\npolicy:\n  host: { mode: summary }\n'));
    assert.equal(c.config.host.mode, 'summary');
    // Empty documents are skipped.
    assert.equal(loadPolicyFile(file('---\n---\n')).hasConfig, false);
  });

  it('the configuration names the admin namespace, unless none: then the one given', () => {
    const cross = policyDoc('audit', 'ci', 'mode: summary\nnamespaces: [ci-*]');
    const withConfig = loadPolicyFile(file(`policy:\n  adminNamespace: audit\n---\n${cross}`), 'doorwatch');
    assert.deepEqual(withConfig.rejected, []);
    assert.equal(withConfig.resources[0]!.clusterScoped, true);
    const given = loadPolicyFile(file(cross), 'audit');
    assert.equal(given.resources[0]!.clusterScoped, true);
    const defaulted = loadPolicyFile(file(cross));
    assert.equal(defaulted.resources.length, 0);
    assert.equal(defaulted.rejected.length, 1);
  });

  it('invalid objects are returned as rejected, each with every problem', () => {
    const f = loadPolicyFile(
      file(
        [
          policyDoc('shop', 'ok', 'mode: events'),
          policyDoc('shop', 'bad-cidr', 'mode: events\npeers:\n  exclude: [10.0.0.0/33]'),
          policyDoc('shop', 'backwards', 'mode: events\nports:\n  include: ["9000-80"]'),
          policyDoc('shop', 'nine', 'mode: events\nports:\n  exclude: [1, 2, 3, 4, 5, 6, 7, 8, 9]'),
          policyDoc('shop', 'reach', 'mode: "off"\nnamespaces: [payments]'),
          policyDoc(
            'shop',
            'everything',
            'mode: events\nnamespaceSelector: { matchLabels: { a: b } }\npeers:\n  include: [bogus]',
          ),
        ].join('---\n'),
      ),
    );
    assert.deepEqual(
      f.resources.map((r) => r.name),
      ['ok'],
    );
    const byName = Object.fromEntries(f.rejected.map((r) => [r.name, r]));
    assert.deepEqual(Object.keys(byName), ['bad-cidr', 'backwards', 'nine', 'reach', 'everything']);
    assert.equal(byName['bad-cidr']!.namespace, 'shop');
    assert.deepEqual(byName['bad-cidr']!.problems, ['spec.peers.exclude[0]: "10.0.0.0/33": prefix length must be 0-32']);
    assert.deepEqual(byName.backwards!.problems, ['spec.ports.include[0]: "9000-80": range start is above its end']);
    assert.deepEqual(byName.nine!.problems, [
      "spec.ports.exclude: at most 8 entries (the kernel filter's per-policy budget), got 9",
    ]);
    assert.equal(byName.reach!.problems.length, 1);
    assert.match(
      byName.reach!.problems[0]!,
      /^spec\.namespaces\/namespaceSelector: only policies in the Doorwatch namespace "doorwatch"/,
    );
    // Every problem at once: the bad CIDR does not hide the cross-namespace selection.
    assert.equal(byName.everything!.problems.length, 2, byName.everything!.problems.join('\n'));
    assert.match(byName.everything!.problems[0]!, /^spec\.peers\.include\[0\]: "bogus" is not an IP address/);
    assert.match(
      byName.everything!.problems[1]!,
      /^spec\.namespaces\/namespaceSelector: only policies in the Doorwatch namespace/,
    );
  });

  it('refuses two configurations', () => {
    assert.deepEqual(fileProblems(file('default: { mode: events }\n---\npolicy:\n  host: { mode: "off" }\n')), [
      '2 policy configurations: a file holds at most one',
    ]);
  });

  it('refuses other kinds and documents that are not mappings, by document number', () => {
    assert.deepEqual(
      fileProblems(
        file(
          `${policyDoc('shop', 'a', 'mode: events')}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\n---\n- a\n- b\n---\njust text\n`,
        ),
      ),
      [
        'document 2: kind "Deployment" is not AcceptAuditPolicy',
        'document 3: expected a mapping (an AcceptAuditPolicy or a policy configuration)',
        'document 4: expected a mapping (an AcceptAuditPolicy or a policy configuration)',
      ],
    );
  });

  it('names the document holding a YAML syntax error, with the configuration problems', () => {
    const p = fileProblems(file(`${policyDoc('shop', 'a', 'mode: events')}---\nspec: [unclosed\n---\nrules: 5\n`));
    assert.equal(p.length, 2, p.join('\n'));
    assert.match(p[0]!, /^document 2: /);
    assert.match(p[1]!, /^policy\.rules: Expected array, received number/);
  });

  it('a configuration problem in a file is reported as such', () => {
    assert.deepEqual(fileProblems(file('policy:\n  defaults: { mode: events }\n')), [
      'policy: Unrecognized key(s) in object: \'defaults\' ("defaults")',
    ]);
  });

  it('a missing file is one clear problem', () => {
    assert.deepEqual(fileProblems(join(dir, 'nope.yaml')), ['cannot read: ENOENT']);
  });
});

describe('policy explanations', () => {
  it('says what a policy audits', () => {
    assert.equal(
      describeSettings(spec({ mode: 'events' })),
      'mode events: one event per accept; every listening port; every peer; failed accepts reported',
    );
    assert.equal(describeSettings(spec({ mode: 'off' })), 'mode off: nothing leaves the kernel (counted per policy)');
    assert.equal(
      describeSettings(
        spec({
          mode: 'events',
          failedAccepts: false,
          rateLimit: { eventsPerSecond: 200, burst: 400 },
          ports: { include: [443, '8000-8999'], exclude: [8500] },
          peers: { include: ['10.244.7.0/24'], exclude: ['10.244.0.0/16'] },
        }),
      ),
      'mode events: one event per accept; above 200 accepts/s per pod (burst 400) summaries instead; ' +
        'listening ports 443, 8000-8999 except 8500; peers: include 10.244.7.0/24, exclude 10.244.0.0/16 ' +
        '(the most specific prefix decides; unmatched peers are excluded, as an include list is set); failed accepts not reported',
    );
    assert.equal(
      describeSettings(spec({ mode: 'summary', ports: { exclude: [9090] }, peers: { exclude: ['fd00::/8'] } })),
      'mode summary: counts per pod, port and peer; every listening port except 9090; ' +
        'peers: exclude fd00::/8 (the most specific prefix decides; unmatched peers are included); failed accepts reported',
    );
  });

  it('says what a policy selects', () => {
    const e = new PolicyEngine(
      parse({
        rules: [
          {
            name: 'web',
            mode: 'events',
            namespaces: ['ci-*', 'shop'],
            namespaceSelector: { matchLabels: { team: 'a' } },
            podSelector: {
              matchLabels: { app: 'web' },
              matchExpressions: [
                { key: 'tier', operator: 'In', values: ['front', 'edge'] },
                { key: 'legacy', operator: 'DoesNotExist' },
                { key: 'team', operator: 'Exists' },
              ],
            },
          },
          { name: 'all', mode: 'summary' },
        ],
      }),
    );
    const by = new Map(e.all().map((p) => [p.key, p]));
    assert.equal(
      describeSelection(by.get('rule:web')!),
      'pods with app=web, tier in (front, edge), !legacy, team in namespaces ci-*, shop that are also namespaces labelled team=a',
    );
    assert.equal(describeSelection(by.get('rule:all')!), 'every pod in every namespace');
    assert.equal(describeSelection(by.get('default')!), 'every pod no other policy selects');
    assert.equal(describeSelection(by.get('host')!), 'processes in no pod (the node itself)');
    assert.equal(describeSelection(by.get('unattributed')!), 'accepts not yet attributed to a pod');
  });

  it('explains every policy but unattributed, with its tier', () => {
    const f = loadPolicyFile(join(FIXTURES, 'three-use-cases.yaml'));
    const e = new PolicyEngine(f.config);
    e.setResources(f.resources);
    const text = explainPolicies(e);
    assert.equal(text.length, 6);
    assert.deepEqual(
      text.map((t) => t.split('\n')[0]),
      [
        'cluster default (agent configuration) [default]',
        'host processes (agent configuration) [default]',
        'configuration rule "ci-summaries" [configuration rule]',
        'configuration rule "kube-system-off" [configuration rule]',
        'AcceptAuditPolicy payments/audit-all [namespace policy]',
        'AcceptAuditPolicy auth/audit-all [namespace policy]',
      ],
    );
    assert.equal(text[4]!.split('\n')[1], '    selects: every pod in namespace payments');
    assert.match(text[5]!, /audits: {2}mode events: one event per accept; every listening port except 9090; peers: include/);
  });
});

describe('policy configuration: every problem of every policy at once (issue 14)', () => {
  const problemsOf = (raw: unknown): string[] => {
    try {
      parsePolicyConfig(raw, { source: 'agent.yaml', defaultAdminNamespace: 'doorwatch' });
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
    assert.fail('expected a ConfigError');
  };

  it('the default, the host policy and each rule report all their problems, beside the outer layer', () => {
    const p = problemsOf({
      summaryInterval: 'soon',
      default: { mode: 'sometimes', peers: { include: ['192.168.1.0/33'] } },
      host: { mode: 'events', namespaces: ['x'], ports: { include: ['70000'] } },
      rules: [
        { mode: 'evnets', peers: { include: ['bogus'] } }, // no name
        { name: 'a', mode: 'events' },
        { name: 'a', mode: 'off', rateLimit: { eventsPerSecond: 5 } },
      ],
    });
    const want = [
      /^policy\.summaryInterval: /,
      /^policy\.rules\.0\.name: |^policy\.rules\[0\]\.name: /,
      /^policy\.default\.mode: Invalid enum value.*'sometimes'/,
      /^policy\.default\.peers\.include\[0\]: "192\.168\.1\.0\/33": prefix length must be 0-32$/,
      /^policy\.host\.namespaces: the host policy selects no pods/,
      /^policy\.host\.ports\.include\[0\]: "70000"/,
      /^policy\.rules\[0\]\.mode: Invalid enum value.*'evnets'/,
      /^policy\.rules\[0\]\.peers\.include\[0\]: "bogus"/,
      /^policy\.rules\[2\]\.name: "a" is used twice$/,
      /^policy\.rules\[2\]: mode "off" audits nothing/,
    ];
    for (const re of want)
      assert.ok(
        p.some((x) => re.test(x)),
        `${re} in:\n${p.join('\n')}`,
      );
  });
});
