import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isHostPort, loadCollectorConfig, parseCollectorConfig, parseCollectorYaml } from '../../src/collector/config.js';
import { ConfigError } from '../../src/config/errors.js';
import { memorySinks } from '../helpers/memory-sink.js';

const registry = { memory: memorySinks().factory, jsonl: memorySinks('jsonl').factory };
const tls = { cert: '/etc/dw/server.crt', key: '/etc/dw/server.key', clientCa: '/etc/dw/ca.crt' };

function problems(raw: unknown): string[] {
  try {
    parseCollectorConfig(raw, 'collector.yaml', registry);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.match(e.message, /^invalid configuration in collector\.yaml: /);
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('collector config', () => {
  it('fills in the defaults', () => {
    const c = parseCollectorConfig({ tls, sinks: [{ name: 'a', type: 'memory' }] }, 'x', registry);
    assert.equal(c.listen, '0.0.0.0:7443');
    assert.equal(c.insecure, false);
    assert.deepEqual(c.tls, { ...tls, requireClientCert: true });
    assert.equal(c.maxMessageBytes, 16 * 1024 * 1024);
    assert.deepEqual(c.rateLimit, { eventsPerSecond: 200_000, burst: 200_000 });
    assert.deepEqual(c.subscribers, { maxBuffered: 10_000, max: 100 });
    assert.equal(c.drainTimeoutMs, 10_000);
    assert.equal(c.batchContexts, true);
    assert.deepEqual(c.sinks, [
      {
        name: 'a',
        type: 'memory',
        required: true,
        queue: { maxRecords: 100_000 },
        batch: { maxRecords: 500, maxDelayMs: 200 },
        retry: { initialMs: 200, maxMs: 30_000 },
        options: { delayMs: 0, failFirst: 0 },
      },
    ]);
  });

  it('reads human sizes and durations, and passes the type-specific keys to the sink type', () => {
    const c = parseCollectorYaml(
      `
listen: "[::]:9000"
insecure: true
maxMessageBytes: 4MiB
rateLimit: { eventsPerSecond: 1000, burst: 5000 }
subscribers: { maxBuffered: 50 }
drainTimeout: 1m
batchContexts: false
sinks:
  - name: siem
    type: memory
    required: false
    format: ocsf
    queue: { maxRecords: 10 }
    batch: { maxRecords: 5, maxDelay: 1s }
    retry: { initial: 50ms, max: 2 }
    delayMs: 7
`,
      'inline',
      registry,
    );
    assert.equal(c.listen, '[::]:9000');
    assert.equal(c.tls, undefined);
    assert.equal(c.maxMessageBytes, 4 * 1024 * 1024);
    assert.deepEqual(c.rateLimit, { eventsPerSecond: 1000, burst: 5000 });
    assert.equal(c.drainTimeoutMs, 60_000);
    assert.equal(c.batchContexts, false);
    const s = c.sinks[0]!;
    assert.equal(s.required, false);
    assert.deepEqual(s.batch, { maxRecords: 5, maxDelayMs: 1000 });
    assert.deepEqual(s.retry, { initialMs: 50, maxMs: 2000 }); // a plain number is seconds
    assert.deepEqual(s.options, { format: 'ocsf', delayMs: 7, failFirst: 0 }, 'format reaches the sink, which applies it');
  });

  it('reports every problem at once, each naming its key', () => {
    const p = problems({
      lisen: '0.0.0.0:7443',
      insecure: true,
      tls,
      maxMessageBytes: 'huge',
      rateLimit: { eventsPerSecond: -5 },
      sinks: [
        { name: 'a', type: 'memory' },
        { name: 'b', type: 'memory', required: 'yes' },
        { name: 'a', type: 'splunk' },
        { name: 'c', type: 'memroy', batch: { maxDelay: 'soon' } },
        { name: 'd', type: 'memory', delayMs: 'x', colour: 'red' },
        { name: 'e', type: 'memory', format: 'xml' },
      ],
    });
    const expected = [
      /^unknown key "lisen" at \(root\) \(did you mean "listen"\?\)$/,
      /^maxMessageBytes: "huge" is not a size/,
      /^rateLimit\.eventsPerSecond: Number must be greater than 0$/,
      /^tls: must be absent when insecure is true/,
      /^sinks\[1\]\.required: Expected boolean, received string$/,
      /^sinks\[2\]\.name: duplicate sink name "a" \(also sinks\[0\]\.name\)$/,
      /^sinks\[2\]\.type: unknown sink type "splunk" \(known: jsonl, memory\)$/,
      /^sinks\[3\]\.type: unknown sink type "memroy" \(did you mean "memory"\?\)/,
      /^sinks\[3\]\.batch\.maxDelay: "soon" is not a duration/,
      /^sinks\[4\]\.delayMs: Expected number, received string$/,
      /^sinks\[4\]: .*"colour"/,
      // The sink type's key, checked by the type: reported once.
      /^sinks\[5\]\.format: Invalid enum value/,
    ];
    for (const re of expected)
      assert.ok(
        p.some((x) => re.test(x)),
        `missing ${re} in:\n${p.join('\n')}`,
      );
    assert.equal(p.length, expected.length, p.join('\n'));
  });

  it('requires TLS unless insecure, and a client CA while client certs are required', () => {
    assert.deepEqual(problems({ sinks: [{ name: 'a', type: 'memory' }] }), [
      'tls: required (cert, key, clientCa), unless insecure: true is set for plaintext',
    ]);
    assert.deepEqual(problems({ tls: { cert: 'c', key: 'k' }, sinks: [{ name: 'a', type: 'memory' }] }), [
      'tls.clientCa: required while tls.requireClientCert is true (the CA that signs agent certificates)',
    ]);
    const c = parseCollectorConfig(
      { tls: { cert: 'c', key: 'k', requireClientCert: false }, sinks: [{ name: 'a', type: 'memory' }] },
      'x',
      registry,
    );
    assert.equal(c.tls?.requireClientCert, false);
  });

  it('needs at least one sink, a valid listen address, sane names and retry bounds', () => {
    assert.deepEqual(problems({ insecure: true, sinks: [] }), ['sinks: at least one sink is required']);
    assert.deepEqual(problems({ insecure: true }), ['sinks: Required']);
    const p = problems({
      insecure: true,
      listen: '7443',
      sinks: [{ name: 'has space', type: 'memory', retry: { initial: '10s', max: '1s' } }, 'jsonl'],
    });
    assert.ok(p.some((x) => /^listen: expected host:port/.test(x)));
    assert.ok(p.some((x) => /^sinks\[0\]\.name: use letters, digits/.test(x)));
    assert.ok(p.some((x) => /^sinks\[1\]: Expected object, received string$/.test(x)));
    assert.equal(p.length, 3, p.join('\n'));
    assert.deepEqual(problems({ insecure: true, sinks: [{ name: 'a', type: 'memory', retry: { initial: '10s', max: '1s' } }] }), [
      'sinks[0].retry.initial: must not exceed retry.max (10000ms > 1000ms)',
    ]);
  });

  it('reports YAML syntax errors with their position, and unreadable files', async () => {
    assert.throws(
      () => parseCollectorYaml('sinks: [\n  name: a\n', 'bad.yaml', registry),
      (e: unknown) => e instanceof ConfigError && /line \d+, column \d+/.test(e.problems[0]!),
    );
    assert.throws(
      () => parseCollectorYaml('listen: a:1\nlisten: b:2\n', 'dup.yaml', registry),
      (e: unknown) => e instanceof ConfigError && /unique/i.test(e.message),
    );
    await assert.rejects(
      loadCollectorConfig('/nonexistent/collector.yaml', registry),
      (e: unknown) => e instanceof ConfigError && /cannot read the config file/.test(e.message),
    );
    const dir = mkdtempSync(join(tmpdir(), 'dw-collector-config-'));
    const path = join(dir, 'c.yaml');
    writeFileSync(path, 'insecure: true\nsinks:\n  - { name: a, type: memory }\n');
    assert.equal((await loadCollectorConfig(path, registry)).sinks[0]!.name, 'a');
    // Environment variables are not expanded.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${VAR} in the YAML is the point
    writeFileSync(path, 'insecure: true\nlisten: ${LISTEN}\nsinks:\n  - { name: a, type: memory }\n');
    await assert.rejects(loadCollectorConfig(path, registry), /listen: expected host:port/);
  });

  it('recognises host:port forms', () => {
    for (const ok of ['0.0.0.0:7443', 'localhost:0', '[::]:1', '[::1]:65535', 'collector.example:443'])
      assert.ok(isHostPort(ok), ok);
    for (const bad of ['7443', ':7443', 'host:', 'host:70000', '[nope]:1', '::1:80', 'a b:1']) assert.ok(!isHostPort(bad), bad);
  });
});
