import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { parse } from 'yaml';
import { resolveAgentConfig } from '../../src/agent/config.js';
import { parseCollectorYaml } from '../../src/collector/config.js';
import { parsePolicyConfig } from '../../src/policy/config.js';
import { sinkRegistry } from '../../src/sinks/registry.js';
import { find, type K8sObject, type RenderOptions, render } from '../helpers/helm.js';

/**
 * What the chart renders is accepted by the programs that read it: the agent's
 * and the collector's own config parsers (the same code `doorwatch agent
 * --config` and `doorwatch collector --config` run), and the generated
 * certificates by a real mutual TLS handshake as agent and collector make it.
 */

const data = (objects: K8sObject[], name: string, key: string): string => find(objects, 'ConfigMap', name).data[key];

function agentConfig(o: RenderOptions) {
  const { objects } = render(o);
  const text = data(objects, 'doorwatch-agent', 'agent.yaml');
  return resolveAgentConfig({
    flags: {},
    env: { NODE_NAME: 'node-1', POD_NAME: 'doorwatch-agent-x1', POD_NAMESPACE: 'doorwatch' },
    file: { path: '/etc/doorwatch/agent.yaml', text },
    hostname: 'host',
  });
}

const POLICY = {
  summaryInterval: '30s',
  default: { mode: 'summary' },
  host: { mode: 'off' },
  rules: [
    { name: 'payments', namespaces: ['payments'], mode: 'events', ports: { include: [443, '8000-8999'] } },
    { name: 'ci', namespaces: ['ci-*'], mode: 'summary' },
  ],
};

describe('chart configs are accepted by the agent and the collector', () => {
  it('agent.yaml (defaults) resolves to the intended agent settings', () => {
    const c = agentConfig({});
    assert.equal(c.collector, 'doorwatch-collector.doorwatch.svc.cluster.local:7443');
    assert.deepEqual(c.tls, {
      ca: '/etc/doorwatch/tls/ca.crt',
      cert: '/etc/doorwatch/tls/tls.crt',
      key: '/etc/doorwatch/tls/tls.key',
      serverName: 'doorwatch-collector.doorwatch.svc.cluster.local',
    });
    assert.deepEqual(c.spool, { dir: '/var/lib/doorwatch/spool', maxBytes: 256 * 1024 ** 2, overflow: 'drop-oldest' });
    assert.equal(c.nodeName, 'node-1', 'from NODE_NAME (downward API)');
    assert.equal(c.flushTimeoutMs, 5000);
    assert.deepEqual(c.health.address, { host: '0.0.0.0', port: 9090 });
    assert.deepEqual(c.pod, { name: 'doorwatch-agent-x1', namespace: 'doorwatch' });
    assert.deepEqual(c.policy, {});
    const p = parsePolicyConfig(c.policy, { source: 'agent.yaml', defaultAdminNamespace: 'doorwatch' });
    assert.equal(p.resources, true, 'AcceptAuditPolicy objects are watched');
  });

  it('agent.yaml with every agent.config value changed, label allow-lists and policy rules', () => {
    const c = agentConfig({
      values: [
        {
          agent: {
            healthPort: 9191,
            spoolHostPath: '/var/lib/dw',
            config: {
              logLevel: 'debug',
              spool: { maxBytes: '1GiB', overflow: 'drop-newest' },
              batch: { maxEvents: 1000, maxDelay: '50ms' },
              flushTimeout: '20s',
              includeEagain: true,
              ringSize: '32MiB',
              pollInterval: '5ms',
              pendingDeadline: '3s',
              kube: { labels: ['app', 'team*'], annotations: ['owner'] },
            },
            policy: POLICY,
          },
        },
      ],
    });
    assert.deepEqual(c.spool, { dir: '/var/lib/dw', maxBytes: 1024 ** 3, overflow: 'drop-newest' });
    assert.deepEqual(c.batch, { maxEvents: 1000, maxDelayMs: 50 });
    assert.equal(c.flushTimeoutMs, 20_000);
    assert.equal(c.includeEagain, true);
    assert.equal(c.ringBytes, 32 * 1024 ** 2);
    assert.equal(c.pollMs, 5);
    assert.equal(c.pendingDeadlineMs, 3000);
    assert.equal(c.logLevel, 'debug');
    assert.deepEqual(c.kube.labels, ['app', 'team*']);
    assert.deepEqual(c.kube.annotations, ['owner']);
    assert.deepEqual(c.health.address, { host: '0.0.0.0', port: 9191 });
    const p = parsePolicyConfig(c.policy, { source: 'agent.yaml', defaultAdminNamespace: 'doorwatch' });
    assert.deepEqual(
      p.rules.map((r) => r.name),
      ['payments', 'ci'],
    );
    assert.equal(p.summaryIntervalMs, 30_000);
  });

  it('agent.policy null: no policy key at all (every accept audited, no policy engine)', () => {
    const c = agentConfig({ values: [{ agent: { policy: null } }] });
    assert.equal(c.policy, undefined);
  });

  it('collector.yaml (defaults, and sinks of every type with secrets by reference) validates', () => {
    const sinks = [
      { name: 'file', type: 'jsonl', path: '/var/log/doorwatch/events.jsonl', maxBytes: '100MiB', maxFiles: 5 },
      {
        name: 'siem',
        type: 'syslog',
        required: false,
        format: 'ocsf',
        host: 'siem.example',
        port: 6514,
        tls: { ca: '/etc/doorwatch/secrets/siem-ca' },
      },
      {
        name: 'splunk',
        type: 'splunk_hec',
        url: 'https://hec.example:8088',
        tokenFile: '/etc/doorwatch/secrets/hec-token',
        ack: true,
      },
      {
        name: 'es',
        type: 'elasticsearch',
        url: 'https://es.example:9200',
        user: 'doorwatch',
        passwordFile: '/etc/doorwatch/secrets/es-pw',
      },
      { name: 'nats', type: 'nats', servers: ['nats://n:4222'], stream: 'DOORWATCH', tokenEnv: 'NATS_TOKEN' },
    ];
    for (const [o, contexts] of [
      [{}, true],
      [
        { values: [{ collector: { sinks, config: { drainTimeout: '20s', maxMessageBytes: '32MiB', batchContexts: false } } }] },
        false,
      ],
    ] as [RenderOptions, boolean][]) {
      const { objects } = render(o);
      const text = data(objects, 'doorwatch-collector', 'collector.yaml');
      const cfg = parseCollectorYaml(text, '/etc/doorwatch/collector.yaml', sinkRegistry);
      assert.equal(cfg.batchContexts, contexts, 'collector.config.batchContexts reaches the collector');
      assert.equal(cfg.listen, '0.0.0.0:7443');
      assert.equal(cfg.tls?.requireClientCert, true);
      assert.equal(cfg.insecure, false);
      assert.ok(cfg.sinks.length >= 1);
    }
  });
});

describe('generate-mode certificates', () => {
  it('complete a mutual TLS handshake as the agent (client) and the collector (server) make it', async () => {
    const { objects } = render();
    const secret = (name: string, key: string) => Buffer.from(find(objects, 'Secret', name).data[key], 'base64');
    const agent = parse(data(objects, 'doorwatch-agent', 'agent.yaml')) as K8sObject;
    const server = createServer({
      cert: secret('doorwatch-collector-tls', 'tls.crt'),
      key: secret('doorwatch-collector-tls', 'tls.key'),
      ca: secret('doorwatch-collector-tls', 'ca.crt'),
      requestCert: true,
      rejectUnauthorized: true,
    });
    const accepted = once(server, 'secureConnection') as Promise<[TLSSocket]>;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      const client = connect({
        host: '127.0.0.1',
        port,
        servername: agent.tls.serverName,
        ca: secret('doorwatch-agent-tls', 'ca.crt'),
        cert: secret('doorwatch-agent-tls', 'tls.crt'),
        key: secret('doorwatch-agent-tls', 'tls.key'),
        timeout: 10_000,
      });
      await once(client, 'secureConnect');
      assert.equal(client.authorized, true, `the agent verifies the collector for ${agent.tls.serverName}`);
      const [peer] = await accepted;
      assert.equal(peer.authorized, true, 'the collector verifies the agent');
      assert.match(peer.getPeerX509Certificate()!.subject, /doorwatch-agent/, 'the agent certificate names the agent');
      client.destroy();
      peer.destroy();

      // A client without a certificate is refused at the handshake.
      const anon = connect({
        host: '127.0.0.1',
        port,
        servername: agent.tls.serverName,
        ca: secret('doorwatch-agent-tls', 'ca.crt'),
      });
      // The server emits secureConnection only for a client it authorised: if it took this one, fail now rather
      // than wait for the test timeout.
      const outcome = await Promise.race([
        once(anon, 'error').then(() => 'refused'),
        once(anon, 'close').then(() => 'refused'),
        once(anon, 'data').then(() => 'accepted'),
        once(server, 'secureConnection').then(() => 'accepted'),
      ]);
      assert.equal(outcome, 'refused');
      anon.destroy();
    } finally {
      server.close();
    }
  });
});
