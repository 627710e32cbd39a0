import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_SA, AUDIENCE, agentToken, seedCluster } from '../helpers/auth-fixtures.js';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { type KubeApiServer, tempDir } from '../helpers/kube-api-server.js';
import { kubeApiStandIn } from '../helpers/kube-stand-in.js';
import { agentIdentity, clientCredentials, makeBatch, TestAgent } from '../helpers/memory-sink.js';
import { makePki, type Pki, tlsFlags } from '../helpers/pki.js';
import { requireRoot } from '../helpers/tracer.js';
import { freePort, until } from '../helpers/wait.js';

// The trust boundary end to end, with the real processes: `doorwatch
// collector` (auth.mode kubernetes) against the Kubernetes API stand-in,
// `doorwatch agent` (real probes) presenting a projected-token file, and
// `doorwatch tail` with a user's token. The collector's log and its final
// refusal counters are read from its stderr.

requireRoot();
const CLI = join(REPO_ROOT, 'test/helpers/doorwatch-cli-source.ts');

let pki: Pki;
let api: KubeApiServer;
let dir: string;
let port: number;
let sinkFile: string;
let collector: ChildProcess;
let tokens: ReturnType<typeof seedCluster>;
const collectorLog: Record<string, unknown>[] = [];
const procs = new Set<ChildProcess>();

interface Proc {
  p: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exit: Promise<number | null>;
}

function run(args: string[]): Proc {
  const p = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(p);
  let err = '';
  let out = '';
  p.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  p.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const exit = new Promise<number | null>((r) =>
    p.once('exit', (code) => {
      procs.delete(p);
      r(code);
    }),
  );
  return { p, stderr: () => err, stdout: () => out, exit };
}

async function kill(x: Proc): Promise<void> {
  if (x.p.exitCode === null && x.p.signalCode === null) x.p.kill('SIGKILL');
  await x.exit;
}

/** Collector log lines (JSON) so far. */
function logLines(): Record<string, unknown>[] {
  return collectorLog;
}

function refusals(reason: string, detail: RegExp): Record<string, unknown>[] {
  return logLines().filter((l) => l.reason === reason && detail.test(String(l.detail)));
}

function startAgent(name: string, node: string, tokenFile: string): Proc {
  const c = pki.client(`agent-${name}`);
  return run([
    'agent',
    '--collector',
    `127.0.0.1:${port}`,
    ...tlsFlags(pki.caFile, c),
    '--server-name',
    'localhost',
    '--spool-dir',
    join(dir, `spool-${name}`),
    '--node-name',
    node,
    '--no-kube',
    '--token-file',
    tokenFile,
    '--batch-max-delay',
    '20ms',
    '--health-address',
    '127.0.0.1:0',
    '--log-level',
    'info',
  ]);
}

function sinkEvents(): { nodeName: string; pod?: { namespace: string } }[] {
  if (!existsSync(sinkFile)) return [];
  return readFileSync(sinkFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

before(async () => {
  pki = makePki();
  api = (await kubeApiStandIn()).api;
  tokens = seedCluster(api);
  dir = tempDir('doorwatch-auth-e2e-');
  sinkFile = join(dir, 'events.jsonl');
  port = await freePort();
  const yaml = join(dir, 'collector.yaml');
  writeFileSync(
    yaml,
    [
      `listen: 127.0.0.1:${port}`,
      'tls:',
      `  cert: ${pki.server.cert}`,
      `  key: ${pki.server.key}`,
      `  clientCa: ${pki.caFile}`,
      'auth:',
      '  mode: kubernetes',
      '  kubernetes:',
      `    kubeconfig: ${api.writeKubeconfig(tempDir())}`,
      `    audience: ${AUDIENCE}`,
      `    agentServiceAccount: { namespace: ${AGENT_SA.namespace}, name: ${AGENT_SA.name} }`,
      // Every client here is 127.0.0.1: log every refusal (the per-peer rate limit is unit-tested).
      'limits: { refusalLogInterval: 1ms }',
      'sinks:',
      '  - name: file',
      '    type: jsonl',
      `    path: ${sinkFile}`,
      '    batch: { maxDelay: 20ms }',
      '',
    ].join('\n'),
  );
  const c = run(['collector', '-c', yaml, '--log-level', 'info']);
  collector = c.p;
  let buf = '';
  c.p.stderr!.on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) if (l.startsWith('{')) collectorLog.push(JSON.parse(l));
  });
  await until(() => logLines().some((l) => l.msg === 'collector listening'), `the collector to listen: ${c.stderr()}`, 30_000);
});

after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await api?.close();
});

describe('agents are bound to their node', () => {
  it("an agent holding node-a's token and claiming node-b is refused (PERMISSION_DENIED, logged)", async () => {
    const file = join(dir, 'token-a');
    writeFileSync(file, agentToken(api, 'node-a'));
    const agent = startAgent('liar', 'node-b', file);
    try {
      await until(
        () => refusals('permission_denied', /hello names node "node-b" but .*agent-node-a\) is bound to node-a/).length > 0,
        'the refusal in the collector log',
        60_000,
      );
      await until(() => /PERMISSION_DENIED/.test(agent.stderr()), 'the agent to report PERMISSION_DENIED', 30_000);
      assert.ok(
        !logLines().some((l) => l.msg === 'agent connected' && (l.agent as { nodeName?: string })?.nodeName === 'node-b'),
      );
    } finally {
      await kill(agent);
    }
  });

  it("another ServiceAccount's token is refused", async () => {
    const file = join(dir, 'token-other');
    writeFileSync(
      file,
      api.auth.issueServiceAccountToken({
        namespace: 'doorwatch',
        serviceAccount: 'other',
        audiences: [AUDIENCE],
        pod: { name: 'other-0' },
      }),
    );
    const agent = startAgent('other', 'node-a', file);
    try {
      await until(
        () => refusals('permission_denied', /system:serviceaccount:doorwatch:other may not publish/).length > 0,
        'the refusal',
        60_000,
      );
    } finally {
      await kill(agent);
    }
  });

  it('an expired token is refused; the rotated file is picked up without restarting the agent', async () => {
    const file = join(dir, 'token-rotating');
    writeFileSync(file, agentToken(api, 'node-a', { expiresIn: -5 }));
    const agent = startAgent('rotating', 'node-a', file);
    const server: Server = createServer((s) => s.destroy());
    try {
      await until(() => refusals('unauthenticated', /expired/).length > 0, 'the expired token refused', 60_000);
      // The kubelet rewrites the file: the next stream reads it.
      writeFileSync(file, agentToken(api, 'node-a'));
      await until(
        () => logLines().some((l) => l.msg === 'agent connected' && (l.agent as { nodeName?: string })?.nodeName === 'node-a'),
        'the agent to connect with the rotated token',
        60_000,
      );
      assert.equal(agent.p.exitCode, null, 'same agent process');
      // Accepts on this host now reach the sink, as node-a's.
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      const addr = server.address() as { port: number };
      await until(
        async () => {
          await new Promise<void>((r) =>
            connect(addr.port, '127.0.0.1')
              .on('close', () => r())
              .on('error', () => r()),
          );
          return sinkEvents().some((e) => e.nodeName === 'node-a');
        },
        'an event of node-a in the sink',
        60_000,
      );
      assert.ok(
        sinkEvents().every((e) => e.nodeName === 'node-a'),
        'only node-a published',
      );
    } finally {
      server.close();
      await kill(agent);
    }
  });
});

describe('subscribers are authorised per namespace', () => {
  it('tail with a token allowed payments sees payments only, and is refused auth', async () => {
    const c = pki.client('tail');
    const tokenFile = join(dir, 'alice-token');
    writeFileSync(tokenFile, tokens.paymentsToken);
    const tailArgs = (ns: string) => [
      'tail',
      '--server',
      `127.0.0.1:${port}`,
      ...tlsFlags(pki.caFile, c),
      '--token-file',
      tokenFile,
      '--output',
      'json',
      '--duration',
      '15s',
      ...(ns ? ['--namespace', ns] : []),
    ];
    const tail = run(tailArgs('payments'));
    await until(
      () => logLines().some((l) => l.msg === 'subscriber connected' && l.who === 'alice'),
      'the tail to subscribe',
      30_000,
    );
    // node-b's agent (a raw client with node-b's projected token) publishes both namespaces.
    const cl = pki.client('agent-b');
    const publisher = new TestAgent(
      port,
      clientCredentials({ ca: pki.caPem, cert: cl.certPem, key: cl.keyPem }),
      {},
      {
        authorization: `Bearer ${agentToken(api, 'node-b')}`,
      },
    );
    publisher.hello(agentIdentity('node-b'));
    publisher.batch(makeBatch(1, 3, { node: 'node-b', namespace: 'payments', pod: 'pay-0' }));
    publisher.batch(makeBatch(4, 3, { node: 'node-b', namespace: 'auth', pod: 'auth-0' }));
    publisher.batch(makeBatch(7, 2, { node: 'node-b', namespace: 'payments', pod: 'pay-1' }));
    await publisher.waitAck(8, 20_000);
    await until(() => tail.stdout().split('\n').filter(Boolean).length >= 5, 'the payments events on stdout', 20_000);
    tail.p.kill('SIGINT');
    await tail.exit;
    publisher.close();
    const lines = tail
      .stdout()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { pod?: { namespace: string }; loss?: unknown });
    const events = lines.filter((l) => !l.loss);
    assert.equal(events.length, 5);
    assert.ok(
      events.every((e) => e.pod?.namespace === 'payments'),
      JSON.stringify(events.map((e) => e.pod)),
    );

    const refused = run(tailArgs('auth'));
    const code = await refused.exit;
    assert.notEqual(code, 0);
    assert.match(refused.stderr(), /PERMISSION_DENIED: alice may not watch acceptevents\.doorwatch\.io in namespace auth/);
    await until(() => refusals('permission_denied', /alice may not watch/).length > 0, 'the refusal logged', 10_000);
  });
});

describe('every refusal counted', () => {
  it('the collector reports its refusal counters when it stops', async () => {
    collector.kill('SIGTERM');
    await until(() => logLines().some((l) => l.msg === 'collector stopped'), 'the collector to stop', 30_000);
    const stopped = logLines().find((l) => l.msg === 'collector stopped')!;
    const r = stopped.refusals as Record<string, number>;
    assert.ok((r.permission_denied ?? 0) >= 3, JSON.stringify(r));
    assert.ok((r.unauthenticated ?? 0) >= 1, JSON.stringify(r));
  });
});
