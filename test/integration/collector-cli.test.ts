import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { runCollector } from '../../src/cli/collector.js';
import { runTail, TailConnectError, type TailOptions } from '../../src/cli/tail.js';
import { ConfigError } from '../../src/config/errors.js';
import { DoorwatchError } from '../../src/errors.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import {
  agentIdentity,
  bounded,
  clientCredentials,
  eventually,
  makeBatch,
  makeEvent,
  memorySinks,
  TestAgent,
} from '../helpers/memory-sink.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { freePort } from '../helpers/wait.js';

// `doorwatch collector` and `doorwatch tail` as the CLI runs them: a YAML
// file, a stop signal, real mTLS, stdout lines.

let pki: Pki;
let dir: string;
let port = 0;
let stopCollector: (sig: string) => void;
let collectorDone: Promise<void>;
const mem = memorySinks();
const logLines: Record<string, unknown>[] = [];

function captureLog() {
  return pino({ level: 'info' }, { write: (s: string) => logLines.push(JSON.parse(s)) });
}

function output() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d) => {
    text += d;
  });
  return { out, lines: () => text.split('\n').filter(Boolean) };
}

before(async () => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'dw-collector-cli-'));
  const configPath = join(dir, 'collector.yaml');
  writeFileSync(
    configPath,
    `# the collector's config, as an operator writes it
listen: 127.0.0.1:0
tls:
  cert: ${pki.server.cert}
  key: ${pki.server.key}
  clientCa: ${pki.caFile}
sinks:
  - name: archive
    type: memory
    batch: { maxDelay: 5ms }
`,
  );
  collectorDone = runCollector(
    { configPath, logLevel: 'info' },
    {
      log: captureLog(),
      stopSignal: new Promise((resolve) => {
        stopCollector = resolve;
      }),
      registry: { memory: mem.factory },
    },
  );
  await eventually(
    () => logLines.some((l) => l.msg === 'collector listening') || !!logLines.find((l) => l.level === 50),
    5000,
    'listening',
  );
  const listening = logLines.find((l) => l.msg === 'collector listening')!;
  port = Number(String(listening.listen).split(':').at(-1));
  assert.ok(port > 0);
});

after(async () => {
  stopCollector?.('SIGTERM');
  await bounded(collectorDone, 10_000, 'the collector to stop');
});

function tailOpts(over: Partial<TailOptions> = {}): TailOptions {
  const c = pki.client('tail-user');
  return {
    server: `localhost:${port}`,
    ca: pki.caFile,
    cert: c.cert,
    key: c.key,
    filter: {},
    output: 'json',
    ...over,
  };
}

async function publish(node: string, n: number, shape: Parameters<typeof makeEvent>[1] = {}) {
  const c = pki.client(`agent-${node}`);
  const a = new TestAgent(port, clientCredentials({ ca: pki.caPem, key: c.keyPem, cert: c.certPem }));
  a.hello(agentIdentity(node)).batch(makeBatch(1, n, { node, ...shape }));
  await a.waitAck(n);
  return a;
}

describe('doorwatch collector + tail', () => {
  it('tail --output json prints native JSON events and loss lines until stopped', async () => {
    const { out, lines } = output();
    const err = output();
    let stop!: (s: string) => void;
    const tail = runTail(tailOpts({ filter: { nodes: ['t1'] } }), {
      stdout: out,
      stderr: err.out,
      log: silentLogger,
      stopSignal: new Promise((r) => {
        stop = r;
      }),
    });
    await eventually(() => logLines.some((l) => l.msg === 'subscriber connected'), 3000, 'tail to subscribe');
    const a = await publish('t1', 3, { namespace: 'prod', pod: 'web-1' });
    a.batch(makeBatch(10, 1, { node: 't1' })); // gap 4..9
    await a.waitAck(10);
    await eventually(() => lines().length >= 5, 3000, '5 lines');
    stop('SIGINT');
    const result = await bounded(tail, 3000, 'tail to end');
    a.close();
    assert.deepEqual(result, { events: 4, losses: 1 });
    const parsed = lines().map((l) => JSON.parse(l));
    assert.equal(parsed[0].eventId, 't1/boot/1/1');
    assert.equal(parsed[0].seq, '1', '64-bit as strings: the proto3 JSON mapping');
    assert.equal(parsed[0].pod.namespace, 'prod');
    // What the agent sent, plus the collector's peer attribution (off here: it says so on every event).
    const got = AcceptEvent.fromJSON(parsed[1]);
    assert.equal(got.peerAttribution?.reason, 'peer attribution disabled (peers.enabled: false)');
    assert.deepEqual(
      { ...got, peerAttribution: undefined, localAttribution: undefined },
      makeEvent(2, { node: 't1', namespace: 'prod', pod: 'web-1' }),
    );
    const loss = parsed.find((p) => p.loss)!.loss;
    assert.deepEqual(
      { reason: loss.reason, fromSeq: loss.fromSeq, toSeq: loss.toSeq, node: loss.agent.nodeName },
      { reason: 'seq gap', fromSeq: '4', toSeq: '9', node: 't1' },
    );
    assert.match(err.lines().join('\n'), /4 events, 1 loss records/);
  });

  it('tail --output table shows pods and loss lines, and stops after --duration', async () => {
    const { out, lines } = output();
    const tail = runTail(tailOpts({ output: 'table', durationMs: 600, filter: { namespaces: ['shop'] } }), {
      stdout: out,
      stderr: new PassThrough(),
      log: silentLogger,
      stopSignal: new Promise(() => {}),
    });
    await eventually(() => logLines.filter((l) => l.msg === 'subscriber connected').length >= 2, 3000, 'tail to subscribe');
    const a = await publish('t2', 2, { namespace: 'shop', pod: 'cart-7' });
    const result = await bounded(tail, 3000, 'tail to end by itself');
    a.close();
    assert.equal(result.events, 2);
    const l = lines();
    assert.match(l[0]!, /^TIME\s+PID\s+COMM.*NAMESPACE\s+POD/);
    assert.match(l[1]!, /nginx .*shop\s+cart-7/);
  });

  it('tail fails with a clear one-line error when the collector cannot be reached or refuses it', async () => {
    const free = await freePort();
    const io = {
      stdout: new PassThrough(),
      stderr: new PassThrough(),
      log: silentLogger,
      stopSignal: new Promise<string>(() => {}),
    };
    await assert.rejects(bounded(runTail(tailOpts({ server: `127.0.0.1:${free}` }), io), 5000, 'refused'), (e: unknown) => {
      assert.ok(e instanceof TailConnectError);
      assert.match(e.message, /^cannot subscribe to the collector at 127\.0\.0\.1:\d+: UNAVAILABLE: .* — check --server/);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
    // No client certificate: the collector's TLS handshake refuses it.
    await assert.rejects(
      bounded(runTail(tailOpts({ cert: undefined, key: undefined }), io), 5000, 'no cert'),
      (e: unknown) => e instanceof TailConnectError && e.status === 14,
    );
    // Usage errors never connect.
    await assert.rejects(
      runTail(tailOpts({ insecure: true }), io),
      (e: unknown) => e instanceof DoorwatchError && e.code === 'DW_ERR_CLI_USAGE',
    );
    await assert.rejects(runTail(tailOpts({ key: undefined }), io), /--cert and --key go together/);
    await assert.rejects(
      runTail(tailOpts({ ca: '/nonexistent/ca.pem' }), io),
      /cannot read --ca "\/nonexistent\/ca\.pem": ENOENT/,
    );
    await assert.rejects(runTail(tailOpts({ filter: { peers: ['10.0.0.0/99'] } }), io), /--peer: prefix \/99/);
    await assert.rejects(runTail(tailOpts({ server: 'nohost' }), io), /--server "nohost" is not host:port/);
  });

  it('the collector delivered what the agents sent, once', () => {
    const sink = mem.get('archive');
    assert.equal(sink.events.filter((e) => e.nodeName === 't1').length, 4);
    assert.equal(sink.events.filter((e) => e.nodeName === 't2').length, 2);
  });
});

describe('doorwatch collector with a bad config', () => {
  it('throws the ConfigError with every problem before starting anything', async () => {
    const configPath = join(mkdtempSync(join(tmpdir(), 'dw-collector-bad-')), 'c.yaml');
    writeFileSync(configPath, 'lisen: 1.2.3.4:1\ninsecure: yes\nsinks:\n  - { name: a, type: kafka }\n');
    const created = memorySinks();
    await assert.rejects(
      runCollector(
        { configPath, logLevel: 'info' },
        { log: silentLogger, stopSignal: new Promise(() => {}), registry: { memory: created.factory } },
      ),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.problems.length, 4, e.problems.join('\n'));
        assert.match(e.message, /unknown key "lisen"/);
        assert.match(e.message, /insecure: Expected boolean, received string/);
        assert.match(e.message, /sinks\[0\]\.type: unknown sink type "kafka"/);
        return true;
      },
    );
    assert.equal(created.all().length, 0);
  });
});
