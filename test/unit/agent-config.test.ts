import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AGENT_DEFAULTS,
  type AgentConfig,
  AgentConfigError,
  type AgentConfigInput,
  FLAG_ATTRIBUTES,
  FLAG_OF,
  loadAgentConfig,
  resolveAgentConfig,
  settingsFromFlags,
} from '../../src/agent/config.js';
import { agentOptions } from '../../src/cli/agent.js';
import { buildProgram } from '../../src/cli/main.js';

// The agent's settings: flags > env > file > defaults, every problem at once.

const dir = mkdtempSync(join(tmpdir(), 'dw-agent-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function resolve(o: Partial<AgentConfigInput> & { yaml?: string } = {}): AgentConfig {
  const { yaml, ...rest } = o;
  return resolveAgentConfig({
    flags: {},
    env: {},
    hostname: 'host-a',
    ...(yaml !== undefined ? { file: { path: 'agent.yaml', text: yaml } } : {}),
    ...rest,
  });
}

function problems(o: Parameters<typeof resolve>[0]): string[] {
  try {
    resolve(o);
  } catch (e) {
    assert.ok(e instanceof AgentConfigError, `an AgentConfigError, got ${e}`);
    return e.problems;
  }
  assert.fail('expected an AgentConfigError');
}

const MINIMAL = 'collector: collector.doorwatch:7443\ntls: { insecure: true }\n';

describe('agent config: layers', () => {
  it('defaults: everything but the collector and TLS', () => {
    const c = resolve({ flags: { collector: 'c:1', tls: { insecure: true } } });
    assert.deepEqual(c, {
      collector: 'c:1',
      tls: { insecure: true },
      spool: { dir: '/var/lib/doorwatch/spool', maxBytes: 256 * 1024 * 1024, overflow: 'drop-oldest' },
      batch: { maxEvents: 500, maxDelayMs: 50 },
      flushTimeoutMs: 5000,
      nodeName: 'host-a',
      includeEagain: false,
      ringBytes: 8 * 1024 * 1024,
      pollMs: 10,
      pendingDeadlineMs: 2000,
      listenersPeriodMs: 600_000,
      logLevel: 'info',
      kube: { enabled: true },
      health: { address: { host: '0.0.0.0', port: 9090 } },
      pod: {},
      token: { file: '/var/run/secrets/doorwatch/token', explicit: false },
    });
  });

  it('tokenFile: the default path is implicit; a flag or file key makes it explicit', () => {
    assert.deepEqual(resolve({ flags: { collector: 'c:1', tls: { insecure: true }, tokenFile: '/t' } }).token, {
      file: '/t',
      explicit: true,
    });
    const yaml = 'collector: c:1\ntls: { insecure: true }\ntokenFile: /f\n';
    assert.deepEqual(resolve({ yaml }).token, { file: '/f', explicit: true });
  });

  it('flags > env > file for the collector and the node name', () => {
    const yaml = 'collector: from-file:1\nnodeName: node-file\ntls: { ca: /ca.pem }\n';
    const env = { DOORWATCH_COLLECTOR: 'from-env:2', NODE_NAME: 'node-env' };
    assert.equal(resolve({ yaml }).collector, 'from-file:1');
    assert.equal(resolve({ yaml }).nodeName, 'node-file');
    assert.equal(resolve({ yaml, env }).collector, 'from-env:2');
    assert.equal(resolve({ yaml, env }).nodeName, 'node-env');
    const c = resolve({ yaml, env, flags: { collector: 'from-flag:3', nodeName: 'node-flag' } });
    assert.equal(c.collector, 'from-flag:3');
    assert.equal(c.nodeName, 'node-flag');
    // Empty env values do not count.
    assert.equal(resolve({ yaml, env: { DOORWATCH_COLLECTOR: '', NODE_NAME: ' ' } }).nodeName, 'node-file');
  });

  it('flags override single keys of a section; the rest of the section stays the file’s', () => {
    const yaml = `${MINIMAL}spool: { dir: /data/spool, maxBytes: 64MiB, overflow: drop-newest }\nkube: { labels: [app], kubeconfig: /kc }\n`;
    const c = resolve({ yaml, flags: { spool: { maxBytes: 1024 * 1024 }, kube: { enabled: false } } });
    assert.deepEqual(c.spool, { dir: '/data/spool', maxBytes: 1024 * 1024, overflow: 'drop-newest' });
    assert.deepEqual(c.kube, { enabled: false, kubeconfig: '/kc', labels: ['app'] });
  });

  it('human durations and sizes in the file (a plain number is seconds / bytes)', () => {
    const c = resolve({
      yaml: `${MINIMAL}spool: { maxBytes: 64MiB }\nbatch: { maxEvents: 100, maxDelay: 50ms }\nflushTimeout: 10\nringSize: 16MiB\npollInterval: 5ms\npendingDeadline: 1.5s\n`,
    });
    assert.equal(c.spool.maxBytes, 64 * 1024 * 1024);
    assert.deepEqual(c.batch, { maxEvents: 100, maxDelayMs: 50 });
    assert.equal(c.flushTimeoutMs, 10_000);
    assert.equal(c.ringBytes, 16 * 1024 * 1024);
    assert.equal(c.pollMs, 5);
    assert.equal(c.pendingDeadlineMs, 1500);
  });

  it('TLS from the file; insecure wins over files given elsewhere', () => {
    const c = resolve({ yaml: 'collector: c:1\ntls: { ca: /ca, cert: /crt, key: /key, serverName: collector.local }\n' });
    assert.deepEqual(c.tls, { ca: '/ca', cert: '/crt', key: '/key', serverName: 'collector.local' });
    const insecure = resolve({ yaml: 'collector: c:1\ntls: { ca: /ca }\n', flags: { tls: { insecure: true } } });
    assert.deepEqual(insecure.tls, { insecure: true });
  });

  it('the health address: default, host:port, [v6]:port, port 0, "" and off disable', () => {
    const at = (address: string) => resolve({ flags: { collector: 'c:1', tls: { insecure: true }, health: { address } } });
    assert.deepEqual(at('127.0.0.1:9102').health.address, { host: '127.0.0.1', port: 9102 });
    assert.deepEqual(at('[::]:9090').health.address, { host: '::', port: 9090 });
    assert.deepEqual(at('127.0.0.1:0').health.address, { host: '127.0.0.1', port: 0 });
    assert.equal(at('off').health.address, undefined);
    assert.equal(at('').health.address, undefined);
    assert.equal(resolve({ yaml: `${MINIMAL}health: { address: "off" }\n` }).health.address, undefined);
    assert.equal(AGENT_DEFAULTS.health.address, '0.0.0.0:9090');
  });

  it('policy is passed through untouched (only "is an object" is checked here)', () => {
    const c = resolve({
      yaml: `${MINIMAL}policy:\n  default: { mode: summary, interval: 30s }\n  anything: [1, two, { three: 3 }]\n`,
    });
    assert.deepEqual(c.policy, { default: { mode: 'summary', interval: '30s' }, anything: [1, 'two', { three: 3 }] });
    assert.equal('policy' in resolve({ yaml: MINIMAL }), false);
    assert.deepEqual(problems({ yaml: `${MINIMAL}policy: [a]\n` }), [
      'agent.yaml: policy: expected an object (its keys are checked by the policy module)',
    ]);
  });

  it('POD_NAME and POD_NAMESPACE (downward API) become the pod identity', () => {
    const c = resolve({ yaml: MINIMAL, env: { POD_NAME: 'doorwatch-agent-x7k2p', POD_NAMESPACE: 'doorwatch' } });
    assert.deepEqual(c.pod, { name: 'doorwatch-agent-x7k2p', namespace: 'doorwatch' });
  });

  it('the full example in docs/configuration.md is valid and means what it says', () => {
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    const yaml = /A full `agent\.yaml`[^\n]*\n\n```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(yaml, 'the example is in the doc');
    const c = resolve({ yaml, env: { NODE_NAME: 'node-1' } });
    assert.equal(c.collector, 'doorwatch-collector.doorwatch.svc:7443');
    assert.deepEqual(c.tls, {
      ca: '/etc/doorwatch/tls/ca.crt',
      cert: '/etc/doorwatch/tls/tls.crt',
      key: '/etc/doorwatch/tls/tls.key',
      serverName: 'doorwatch-collector.doorwatch.svc',
    });
    const d = resolve({
      flags: { collector: 'doorwatch-collector.doorwatch.svc:7443', tls: { ca: '/etc/doorwatch/tls/ca.crt' } },
    });
    // Every other key is its default.
    assert.deepEqual(
      { ...c, tls: undefined, kube: undefined, nodeName: undefined },
      { ...d, tls: undefined, kube: undefined, nodeName: undefined },
    );
    assert.deepEqual(c.kube, { enabled: true, labels: ['app', 'app.kubernetes.io/*', 'team'], annotations: [] });
  });

  it('an empty file is no settings at all', () => {
    assert.equal(resolve({ yaml: '', flags: { collector: 'c:1', tls: { insecure: true } } }).collector, 'c:1');
    assert.equal(resolve({ yaml: '# nothing\n', flags: { collector: 'c:1', tls: { insecure: true } } }).collector, 'c:1');
  });
});

describe('agent config: problems', () => {
  it('unknown keys are errors, each named, with a suggestion', () => {
    const p = problems({ yaml: `${MINIMAL}colector: x:1\nkube: { lables: [app] }\nspool: { dirr: /x, zzz: 1 }\n` });
    assert.deepEqual(p.sort(), [
      'agent.yaml: unknown key "colector" (did you mean "collector"?)',
      'agent.yaml: unknown key "dirr" in spool (did you mean "dir"?)',
      'agent.yaml: unknown key "lables" in kube (did you mean "labels"?)',
      'agent.yaml: unknown key "zzz" in spool',
    ]);
  });

  it('bad types and values: every problem together, by key', () => {
    const p = problems({
      yaml: [
        'collector: no-port',
        'tls: { insecure: "yes" }',
        'spool: { maxBytes: lots, overflow: drop-everything }',
        'batch: { maxEvents: 0, maxDelay: soon }',
        'ringSize: 3MiB',
        'logLevel: loud',
        'includeEagain: 1',
        'kube: { labels: app }',
        'health: { address: 9090 }',
        '',
      ].join('\n'),
    });
    const expect = [
      /^agent\.yaml: collector: "no-port" is not host:port/,
      /^agent\.yaml: tls\.insecure: Expected boolean, received string$/,
      /^agent\.yaml: spool\.maxBytes: "lots" is not a size/,
      /^agent\.yaml: spool\.overflow: Invalid enum value/,
      /^agent\.yaml: batch\.maxEvents: Number must be greater than or equal to 1$/,
      /^agent\.yaml: batch\.maxDelay: "soon" is not a duration/,
      /^agent\.yaml: ringSize: ring size 3MiB must be a power of two/,
      /^agent\.yaml: logLevel: Invalid enum value/,
      /^agent\.yaml: includeEagain: Expected boolean, received number$/,
      /^agent\.yaml: kube\.labels: expected a list of keys/,
      /^agent\.yaml: health\.address: expected "host:port", "" or "off"$/,
    ];
    for (const re of expect)
      assert.ok(
        p.some((x) => re.test(x)),
        `${re} in:\n${p.join('\n')}`,
      );
    // No invented problems: tls.insecure was given (badly), so "--ca is required" is not one of them.
    assert.equal(p.length, expect.length, p.join('\n'));
  });

  it('valid keys next to bad ones still count (no made-up "required" problems)', () => {
    const p = problems({ yaml: 'collector: c:1\ntls: { ca: /ca, cert: 5 }\nspool: { maxBytes: lots }\n' });
    assert.deepEqual(p, [
      'agent.yaml: tls.cert: Expected string, received number',
      'agent.yaml: spool.maxBytes: "lots" is not a size (examples: 4096, 64KiB, 8MiB, 1GiB)',
    ]);
  });

  it('rules across layers: collector required, TLS or insecure, cert with key', () => {
    assert.deepEqual(problems({ yaml: 'spool: { dir: /x }\n' }), [
      '--collector is required (or DOORWATCH_COLLECTOR, or `collector:` in the config file): the collector host:port',
      '--ca is required (or --insecure for plaintext); in the config file: tls.ca, or tls.insecure: true',
    ]);
    assert.deepEqual(problems({ yaml: 'collector: c:1\ntls: { ca: /ca, cert: /crt }\n' }), [
      '--cert and --key go together (tls.cert and tls.key): only agent.yaml: tls.cert is set',
    ]);
    const both = resolve({ yaml: 'collector: c:1\ntls: { ca: /ca, cert: /crt }\n', flags: { tls: { key: '/k' } } });
    assert.deepEqual(both.tls, { ca: '/ca', cert: '/crt', key: '/k' });
  });

  it('flag and env values are checked too, named by flag / variable', () => {
    assert.deepEqual(
      problems({
        env: { DOORWATCH_COLLECTOR: 'no-port' },
        flags: { tls: { insecure: true }, health: { address: 'everywhere' } },
      }),
      [
        'DOORWATCH_COLLECTOR: "no-port" is not host:port (e.g. collector.doorwatch:7443)',
        '--health-address: "everywhere" is not host:port (e.g. "0.0.0.0:9090", "127.0.0.1:9090"), "" or "off"',
      ],
    );
  });

  it('YAML syntax errors say where', () => {
    const p = problems({ yaml: 'collector: c:1\ntls: { insecure: true\n' });
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^agent\.yaml: line \d+, column \d+: /);
    assert.deepEqual(problems({ yaml: '- a\n- b\n' }), [
      'agent.yaml: (root): expected a mapping of keys (collector, tls, spool, …)',
    ]);
    assert.match(problems({ yaml: 'collector: a:1\ncollector: b:2\n' })[0]!, /unique|duplicate/i);
  });

  it('the error code: a file involved = DW_ERR_AGENT_CONFIG, flags/env only = DW_ERR_CLI_USAGE', () => {
    const code = (o: Parameters<typeof resolve>[0]) => {
      try {
        resolve(o);
      } catch (e) {
        return (e as AgentConfigError).code;
      }
    };
    assert.equal(code({ yaml: 'collector: x\n' }), 'DW_ERR_AGENT_CONFIG');
    assert.equal(code({ flags: { collector: 'x' } }), 'DW_ERR_CLI_USAGE');
    const one = new AgentConfigError(['a: b'], 'f.yaml').lines();
    assert.deepEqual(one, ['a: b (DW_ERR_AGENT_CONFIG) — every key and flag: docs/configuration.md']);
    const two = new AgentConfigError(['a: b', 'c: d'], 'f.yaml').lines();
    assert.equal(two.length, 3);
    assert.deepEqual(two.slice(1), ['  a: b', '  c: d']);
  });

  it('runAgent gets every setting (the kube ones with the environment), the log level aside', () => {
    const c = resolve({
      yaml: `${MINIMAL}kube: { kubeconfig: /kc, labels: [app] }\nhealth: { address: "127.0.0.1:9102" }\npolicy: { default: { mode: events } }\n`,
      env: { POD_NAME: 'agent-x', POD_NAMESPACE: 'doorwatch' },
    });
    const env = { KUBECONFIG: '/elsewhere' };
    const { logLevel: _, kube: __, health: ___, ...same } = c;
    assert.deepEqual(agentOptions(c, env), {
      ...same,
      kube: { enabled: true, kubeconfigPath: '/kc', env, labelAllowList: ['app'], annotationAllowList: undefined },
      health: { host: '127.0.0.1', port: 9102 },
    });
    assert.deepEqual(agentOptions(c, env).pod, { name: 'agent-x', namespace: 'doorwatch' });
    assert.deepEqual(agentOptions(c, env).policy, { default: { mode: 'events' } });
  });

  it('an unreadable file is a problem like any other', () => {
    assert.throws(
      () => loadAgentConfig({ configPath: join(dir, 'missing.yaml'), flags: {}, env: {}, hostname: 'h' }),
      (e: unknown) => e instanceof AgentConfigError && /cannot read the config file \(ENOENT\)/.test(e.problems[0]!),
    );
  });
});

describe('agent config: the command line', () => {
  /** The agent command's parsed flags layer, without running the agent. */
  async function flagsOf(args: string[]) {
    const program = buildProgram({});
    const agent = program.commands.find((c) => c.name() === 'agent')!;
    let out: unknown;
    agent.action(async (opts, cmd) => {
      out = settingsFromFlags(opts, (a) => cmd.getOptionValueSource(a) === 'cli');
    });
    await program.parseAsync(['agent', ...args], { from: 'user' });
    return out;
  }

  it('every flag maps to a config key, and the flags named in messages exist', () => {
    const agent = buildProgram({}).commands.find((c) => c.name() === 'agent')!;
    const attrs = new Set(agent.options.map((o) => o.attributeName()));
    for (const a of Object.keys(FLAG_ATTRIBUTES)) assert.ok(attrs.has(a), `--${a} is an agent option`);
    const flags = new Set(agent.options.map((o) => o.long));
    for (const f of Object.values(FLAG_OF)) assert.ok(flags.has(f), `${f} is an agent flag`);
    // Every option but --config and --log-format (how this process writes its stderr, like every command's;
    // env DOORWATCH_LOG_FORMAT) is a settings key.
    for (const a of attrs) if (a !== 'config' && a !== 'logFormat') assert.ok(a in FLAG_ATTRIBUTES, `${a} has a config key`);
  });

  it('the defaults commander shows for the shared capture flags are the agent’s defaults', () => {
    const agent = buildProgram({}).commands.find((c) => c.name() === 'agent')!;
    const dflt = (attr: string) => agent.options.find((o) => o.attributeName() === attr)?.defaultValue;
    assert.equal(dflt('ringSize'), AGENT_DEFAULTS.ringSize);
    assert.equal(dflt('pollInterval'), AGENT_DEFAULTS.pollInterval);
    assert.equal(dflt('pendingDeadline'), AGENT_DEFAULTS.pendingDeadline);
    assert.equal(dflt('includeEagain'), AGENT_DEFAULTS.includeEagain);
    assert.equal(dflt('logLevel'), AGENT_DEFAULTS.logLevel);
  });

  it('only flags given on the command line count: defaults never hide the file', async () => {
    assert.deepEqual(await flagsOf([]), {});
    assert.deepEqual(
      await flagsOf([
        '--collector',
        'c:1',
        '--insecure',
        '--spool-max',
        '1MiB',
        '--batch-max-delay',
        '50ms',
        '--ring-size',
        '16MiB',
        '--no-kube',
        '--pod-labels',
        'app,team',
        '--health-address',
        'off',
        '--log-level',
        'debug',
      ]),
      {
        collector: 'c:1',
        tls: { insecure: true },
        spool: { maxBytes: 1024 * 1024 },
        batch: { maxDelay: 50 },
        ringSize: 16 * 1024 * 1024,
        kube: { enabled: false, labels: ['app', 'team'] },
        health: { address: 'off' },
        logLevel: 'debug',
      },
    );
  });
});

describe('agent config: the CLI', () => {
  const CLI = fileURLToPath(new URL('../helpers/doorwatch-cli-source.ts', import.meta.url));
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, DOORWATCH_COLLECTOR: '', NODE_NAME: '' },
    });

  it('a bad config file: exit 2, a headline with the code, then one line per problem', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'collector: c:1\ntls: { insecure: true }\nspool: { maxBytes: lots }\nkube: { lables: [a] }\npolicy: 3\n');
    const r = run('agent', '--config', file);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines[0]!, /^doorwatch: invalid agent configuration .*3 problems \(DW_ERR_AGENT_CONFIG\)/);
    assert.equal(lines.length, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`  ${file}: spool.maxBytes: "lots" is not a size`));
    assert.match(r.stderr, /unknown key "lables" in kube \(did you mean "labels"\?\)/);
    assert.match(r.stderr, /policy: expected an object/);
  });

  it('without a file, the same checks are usage errors (exit 2, DW_ERR_CLI_USAGE)', () => {
    const r = run('agent', '--collector', '127.0.0.1:7443');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--ca is required .*\(DW_ERR_CLI_USAGE\)/);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1);
  });
});
