import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { Status } from 'nice-grpc';
import type { RunningCollector } from '../../src/collector/collector.js';
import type { RefusalReason } from '../../src/collector/refusals.js';
import { agentToken, type CapturedLog, captureLogger, kubernetesAuth, seedCluster } from '../helpers/auth-fixtures.js';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { type KubeApiServer, tempDir } from '../helpers/kube-api-server.js';
import { kubeApiStandIn } from '../helpers/kube-stand-in.js';
import {
  agentIdentity,
  clientCredentials,
  type MemorySinks,
  makeBatch,
  startMemoryCollector,
  TestAgent,
} from '../helpers/memory-sink.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { until } from '../helpers/wait.js';

// A hostile client against the collector: every refusal has its status, one
// log line naming the peer and the reason, and a counter; the collector stays
// up and nothing of a refused request reaches a sink. The Publish cases are
// driven by an independent gRPC implementation (python3-grpcio, messages built
// from `buf build`'s descriptors), the TLS and limit cases by raw Node sockets
// and grpc-js.

const PY = '/usr/bin/python3';
const HOSTILE = join(REPO_ROOT, 'test/interop/hostile_client.py');

let pki: Pki;
let api: KubeApiServer;
let descriptors: string;
let collector: RunningCollector;
let mem: MemorySinks;
let logs: CapturedLog;
const opened: RunningCollector[] = [];

before(async () => {
  const probe = spawnSync(PY, ['-c', 'import grpc, google.protobuf'], { encoding: 'utf8' });
  assert.equal(probe.status, 0, `python3-grpcio and python3-protobuf are required: ${probe.stderr}`);
  descriptors = join(tempDir('doorwatch-desc-'), 'doorwatch.binpb');
  const built = spawnSync(join(REPO_ROOT, 'node_modules/.bin/buf'), ['build', '-o', descriptors], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  assert.equal(built.status, 0, built.stderr);
  pki = makePki();
  api = (await kubeApiStandIn()).api;
  seedCluster(api);
  logs = captureLogger();
  ({ collector, mem } = await startMemoryCollector(
    pki,
    [{ name: 'mem' }],
    { auth: kubernetesAuth(api.writeKubeconfig(tempDir())) },
    { log: logs.log },
  ));
  opened.push(collector);
});

after(async () => {
  for (const c of opened) await c.stop();
  await api?.close();
});

/** One log line "refused <address>: <reason>: …" appeared and the counter moved. */
async function refusedVisibly(c: RunningCollector, l: CapturedLog, reason: RefusalReason, before: number, detail?: RegExp) {
  await until(() => c.stats().refusals[reason] > before, `refusals.${reason} to count`, 10_000);
  const lines = l.lines.filter((x) => x.reason === reason);
  assert.ok(lines.length >= 1, `a log line for ${reason}`);
  const last = lines.at(-1)!;
  assert.match(String(last.msg), new RegExp(`^refused 127\\.0\\.0\\.1: ${reason}: `));
  assert.equal(last.level, 40, 'at warn');
  if (detail) assert.match(String(last.detail), detail);
}

function python(
  kase: string,
  token?: string,
  client: { cert: string; key: string } = pki.client('py-hostile'),
): Promise<{ case: string; code: string; details: string; acked: number }> {
  const c = client;
  const args = [HOSTILE, kase, descriptors, `127.0.0.1:${collector.port}`, pki.caFile, c.cert, c.key, 'node-a'];
  if (token) args.push(token);
  const p = spawn(PY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  p.stderr.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`python ${kase} timed out: ${err}`));
    }, 60_000);
    p.once('exit', (code) => {
      clearTimeout(t);
      if (code !== 0) reject(new Error(`python ${kase} exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1)!));
    });
  });
}

describe('hostile Publish streams (python3-grpcio)', () => {
  const cases: { kase: string; code: string; details: RegExp; reason: RefusalReason; token?: 'none' }[] = [
    { kase: 'duplicate-hello', code: 'INVALID_ARGUMENT', details: /hello may only be sent once/, reason: 'invalid_argument' },
    { kase: 'seq-backwards', code: 'INVALID_ARGUMENT', details: /events\[1\]\.seq is 4, expected 6/, reason: 'invalid_argument' },
    {
      kase: 'seq-wrap',
      code: 'INVALID_ARGUMENT',
      details: /events\[1\]\.seq is 0, expected 18446744073709551616/,
      reason: 'invalid_argument',
    },
    {
      kase: 'million-events',
      code: 'RESOURCE_EXHAUSTED',
      details: /1000000 events; at most 10000/,
      reason: 'resource_exhausted',
    },
    {
      kase: 'huge-string',
      code: 'INVALID_ARGUMENT',
      details: /events\[0\] is \d+ bytes; at most 65536/,
      reason: 'invalid_argument',
    },
    { kase: 'garbage', code: 'INVALID_ARGUMENT', details: /message 1 is not a valid PublishRequest/, reason: 'invalid_argument' },
    { kase: 'oversized', code: 'RESOURCE_EXHAUSTED', details: /larger than max/, reason: 'resource_exhausted' },
    { kase: 'other-node', code: 'PERMISSION_DENIED', details: /hello names node "victim-node"/, reason: 'permission_denied' },
    { kase: 'valid', code: 'UNAUTHENTICATED', details: /no bearer token/, reason: 'unauthenticated', token: 'none' },
  ];
  for (const c of cases) {
    it(`${c.kase}${c.token === 'none' ? ' without a token' : ''}: ${c.code}, logged and counted, nothing written`, async () => {
      const n = collector.stats().refusals[c.reason];
      const written = mem.get('mem').events.length;
      const r = await python(c.kase, c.token === 'none' ? undefined : agentToken(api, 'node-a'));
      assert.equal(r.code, c.code, r.details);
      assert.match(r.details, c.details);
      await refusedVisibly(collector, logs, c.reason, n);
      assert.equal(mem.get('mem').events.length, written, 'nothing of the refused stream reached the sink');
    });
  }

  it('TLS refusals of the independent client: no certificate, another CA — logged and counted', async () => {
    const none = collector.stats().refusals.tls_no_certificate;
    const r1 = await python('valid', agentToken(api, 'node-a'), { cert: '-', key: '-' });
    assert.equal(r1.code, 'UNAVAILABLE', r1.details);
    await refusedVisibly(collector, logs, 'tls_no_certificate', none);
    const other = collector.stats().refusals.tls_unknown_ca;
    const r2 = await python('valid', agentToken(api, 'node-a'), pki.other.client);
    assert.equal(r2.code, 'UNAVAILABLE', r2.details);
    await refusedVisibly(collector, logs, 'tls_unknown_ca', other);
  });

  it('the collector is still up: a valid stream from the same client is acknowledged', async () => {
    const before = mem.get('mem').events.length;
    const r = await python('valid', agentToken(api, 'node-a'));
    assert.equal(r.code, 'OK', r.details);
    assert.equal(r.acked, 3);
    assert.equal(mem.get('mem').events.length, before + 3);
    assert.ok(mem.get('mem').events.every((e) => e.nodeName === 'node-a'));
  });
});

/** A client certificate of the test CA that expired a moment ago. */
function expiredClient(p: Pki): { cert: Buffer; key: Buffer } {
  const dir = p.dir;
  execFileSync(
    'openssl',
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=expired',
      '-keyout',
      'expired.key',
      '-out',
      'expired.csr',
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  writeFileSync(join(dir, 'expired.ext'), 'subjectAltName=DNS:expired\nextendedKeyUsage=clientAuth\n');
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      'expired.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '0',
      '-extfile',
      'expired.ext',
      '-out',
      'expired.crt',
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  return { cert: readFileSync(join(dir, 'expired.crt')), key: readFileSync(join(dir, 'expired.key')) };
}

describe('TLS refusals are visible (grpc-js would hide them)', () => {
  const attempt = async (creds: ReturnType<typeof clientCredentials>) => {
    const a = new TestAgent(collector.port, creds).hello(agentIdentity('node-a'));
    const out = await a.outcome;
    a.close();
    return out;
  };
  it('no client certificate', async () => {
    const n = collector.stats().refusals.tls_no_certificate;
    assert.ok(await attempt(clientCredentials({ ca: pki.caPem })));
    await refusedVisibly(collector, logs, 'tls_no_certificate', n, /sent no certificate/);
  });
  it('a certificate from another CA', async () => {
    const n = collector.stats().refusals.tls_unknown_ca;
    assert.ok(await attempt(clientCredentials({ ca: pki.caPem, cert: pki.other.client.certPem, key: pki.other.client.keyPem })));
    await refusedVisibly(collector, logs, 'tls_unknown_ca', n, /not signed by tls.clientCa/);
  });
  it('an expired certificate', async () => {
    const exp = expiredClient(pki);
    await new Promise((r) => setTimeout(r, 1100)); // -days 0: notAfter is its issue second
    const n = collector.stats().refusals.tls_expired;
    assert.ok(await attempt(clientCredentials({ ca: pki.caPem, cert: exp.cert, key: exp.key })));
    await refusedVisibly(collector, logs, 'tls_expired', n, /expired/);
  });
  it('a TCP connect-and-close (a tcpSocket probe, a health check) is not a refusal', async () => {
    const before = { ...collector.stats().refusals };
    const lines = logs.lines.length;
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = connect(collector.port, '127.0.0.1', () => s.end());
        s.on('close', () => resolve());
        s.on('error', reject);
      });
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(collector.stats().refusals, before);
    assert.equal(logs.lines.slice(lines).filter((l) => l.reason).length, 0);
  });

  it('plaintext on the TLS port', async () => {
    const n = collector.stats().refusals.tls_handshake;
    assert.ok(await attempt(clientCredentials('insecure')));
    await refusedVisibly(collector, logs, 'tls_handshake', n, /not TLS/);
  });
});

describe('per-peer limits and the hello deadline', () => {
  async function limited(limits: Record<string, unknown>) {
    const l = captureLogger();
    const { collector: c } = await startMemoryCollector(pki, [{ name: 'mem' }], { limits }, { log: l.log });
    opened.push(c);
    return { c, l };
  }
  const creds = () => {
    const cl = pki.client('limits');
    return clientCredentials({ ca: pki.caPem, cert: cl.certPem, key: cl.keyPem });
  };

  it('connections per peer: the one over the limit is closed, logged and counted', async () => {
    const { c, l } = await limited({ connectionsPerPeer: 3 });
    const cl = pki.client('conn');
    const sockets: tls.TLSSocket[] = [];
    const connect = () =>
      new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port: c.port,
          ca: pki.caPem,
          cert: cl.certPem,
          key: cl.keyPem,
          servername: 'localhost',
          ALPNProtocols: ['h2'],
        });
        s.once('secureConnect', () => resolve(s));
        s.once('error', reject);
        s.once('close', () => reject(new Error('closed before the handshake')));
        sockets.push(s);
      });
    for (let i = 0; i < 3; i++) await connect();
    await until(() => c.stats().connections === 3, '3 connections open');
    await assert.rejects(connect());
    await refusedVisibly(c, l, 'too_many_connections', 0, /3 open, at most 3/);
    for (const s of sockets) s.destroy();
    await until(() => c.stats().connections === 0, 'connections closed');
    const again = await connect();
    again.destroy();
  });

  it('streams per peer: RESOURCE_EXHAUSTED too many streams', async () => {
    const { c, l } = await limited({ streamsPerPeer: 2 });
    const agents = [0, 1].map((i) => new TestAgent(c.port, creds()).hello(agentIdentity(`n${i}`)));
    await until(() => c.stats().publishers === 2, 'two streams open');
    const third = new TestAgent(c.port, creds()).hello(agentIdentity('n2'));
    const err = (await third.outcome) as { code?: Status; details?: string };
    assert.equal(err?.code, Status.RESOURCE_EXHAUSTED);
    assert.match(String(err.details), /too many streams from 127\.0\.0\.1: 2 open, at most 2/);
    await refusedVisibly(c, l, 'too_many_streams', 0);
    for (const a of [...agents, third]) a.close();
  });

  it('new calls per second per peer: RESOURCE_EXHAUSTED rate limited', async () => {
    const { c, l } = await limited({ callsPerSecondPerPeer: 1 });
    const outcomes: unknown[] = [];
    for (let i = 0; i < 4; i++) {
      const a = new TestAgent(c.port, creds()).hello(agentIdentity(`r${i}`)).end();
      outcomes.push(await a.outcome);
      a.close();
    }
    const limitedOnes = outcomes.filter((e) => (e as { code?: Status })?.code === Status.RESOURCE_EXHAUSTED);
    assert.ok(limitedOnes.length >= 1, `burst 2, then refused: ${outcomes.map(String).join('; ')}`);
    assert.match(String((limitedOnes[0] as { details: string }).details), /rate limited: more than 1 new calls per second/);
    await refusedVisibly(c, l, 'rate_limited', 0);
  });

  it('a stream that never says hello: DEADLINE_EXCEEDED after limits.helloTimeout', async () => {
    const { c, l } = await limited({ helloTimeout: '300ms' });
    const a = new TestAgent(c.port, creds());
    const t0 = performance.now();
    const err = (await a.outcome) as { code?: Status; details?: string };
    a.close();
    assert.equal(err?.code, Status.DEADLINE_EXCEEDED);
    assert.match(String(err.details), /no hello within 300 ms/);
    assert.ok(performance.now() - t0 < 5000);
    await refusedVisibly(c, l, 'deadline_exceeded', 0);
  });

  it('a batch that is fine is still fine', async () => {
    const { c } = await limited({});
    const a = new TestAgent(c.port, creds()).hello(agentIdentity('ok')).batch(makeBatch(1, 3, { node: 'ok' }));
    await a.waitAck(3);
    a.close();
  });
});
