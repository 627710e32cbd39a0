import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createChannel, createClient, Metadata, Status } from 'nice-grpc';
import type { RunningCollector } from '../../src/collector/collector.js';
import { CollectorServiceDefinition, type SubscribeResponse } from '../../src/gen/doorwatch/v1/collector.js';
import { agentToken, type CapturedLog, captureLogger, kubernetesAuth, seedCluster } from '../helpers/auth-fixtures.js';
import { type KubeApiServer, tempDir } from '../helpers/kube-api-server.js';
import { kubeApiStandIn } from '../helpers/kube-stand-in.js';
import { agentIdentity, clientCredentials, makeBatch, startMemoryCollector, TestAgent } from '../helpers/memory-sink.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { until } from '../helpers/wait.js';

// The collector's auth over real gRPC + mTLS, in process: what the API
// stand-in's outage does to open and new streams, what a namespace-scoped
// subscriber receives, and the off-cluster static certificate mapping.

let pki: Pki;
let api: KubeApiServer;
let tokens: ReturnType<typeof seedCluster>;
const opened: RunningCollector[] = [];

before(async () => {
  pki = makePki();
  api = (await kubeApiStandIn()).api;
  tokens = seedCluster(api);
});
after(async () => {
  for (const c of opened) await c.stop();
  await api?.close();
});

async function collectorWith(extra: Record<string, unknown>): Promise<{ c: RunningCollector; l: CapturedLog }> {
  const l = captureLogger();
  const { collector: c } = await startMemoryCollector(pki, [{ name: 'mem' }], extra, { log: l.log });
  opened.push(c);
  return { c, l };
}

function creds(name: string) {
  const cl = pki.client(name);
  return clientCredentials({ ca: pki.caPem, cert: cl.certPem, key: cl.keyPem });
}

function agent(c: RunningCollector, node: string, token?: string, certName = 'agent') {
  return new TestAgent(c.port, creds(certName), {}, token ? { authorization: `Bearer ${token}` } : {}).hello(agentIdentity(node));
}

describe('Kubernetes API outage', () => {
  it('open streams keep flowing; a new stream waits (logged, counted) and goes through when the API is back', async () => {
    const { c, l } = await collectorWith({ auth: kubernetesAuth(api.writeKubeconfig(tempDir())) });
    const a = agent(c, 'node-a', agentToken(api, 'node-a')).batch(makeBatch(1, 2, { node: 'node-a' }));
    await a.waitAck(2);
    api.setUnavailable(true);
    try {
      a.batch(makeBatch(3, 2, { node: 'node-a' }));
      await a.waitAck(4);
      const b = agent(c, 'node-b', agentToken(api, 'node-b')).batch(makeBatch(1, 1, { node: 'node-b' }));
      await until(
        () => c.stats().auth.apiErrors >= 2 && c.stats().auth.waiting === 1,
        'the new stream to wait and retry',
        10_000,
      );
      assert.equal(b.lastAck, 0n);
      assert.ok(l.grep(/cannot authenticate new streams: the Kubernetes API did not answer/).length >= 1);
      a.batch(makeBatch(5, 1, { node: 'node-a' }));
      await a.waitAck(5);
      api.setUnavailable(false);
      await b.waitAck(1, 15_000);
      assert.equal(c.stats().auth.waiting, 0);
      b.close();
    } finally {
      api.setUnavailable(false);
      a.close();
    }
  });
});

describe('namespace-scoped subscription over gRPC', () => {
  it('payments sees payments only, and loss records without whose they are; the auditor sees all', async () => {
    const { c } = await collectorWith({ auth: kubernetesAuth(api.writeKubeconfig(tempDir())) });
    const channel = createChannel(`127.0.0.1:${c.port}`, creds('tail'), { 'grpc.ssl_target_name_override': 'localhost' });
    const client = createClient(CollectorServiceDefinition, channel);
    const follow = (token: string, namespaces: string[]) => {
      const got: SubscribeResponse[] = [];
      const ac = new AbortController();
      const done = (async () => {
        const metadata = Metadata({ authorization: `Bearer ${token}` });
        for await (const item of client.subscribe({ filter: { namespaces } }, { signal: ac.signal, metadata })) got.push(item);
      })().catch((e) => e);
      return { got, stop: () => ac.abort(), done };
    };
    const alice = follow(tokens.paymentsToken, ['payments']);
    const auditor = follow(tokens.auditorToken, []);
    await until(() => c.stats().subscribers === 2, 'two subscribers');
    const a = agent(c, 'node-a', agentToken(api, 'node-a'));
    a.batch(makeBatch(1, 2, { node: 'node-a', namespace: 'payments', pod: 'p' }));
    a.batch(makeBatch(10, 2, { node: 'node-a', namespace: 'auth', pod: 'x' })); // a gap: 3..9
    await a.waitAck(11);
    await until(() => auditor.got.length >= 5 && alice.got.length >= 3, 'deliveries');
    alice.stop();
    auditor.stop();
    a.close();
    const aliceEvents = alice.got.filter((g) => g.event);
    assert.deepEqual(
      aliceEvents.map((g) => g.event!.pod?.namespace),
      ['payments', 'payments'],
    );
    const aliceLoss = alice.got.find((g) => g.loss)!.loss!;
    assert.equal(aliceLoss.reason, 'seq gap');
    assert.equal(aliceLoss.agent, undefined);
    assert.equal(aliceLoss.fromSeq, 0n);
    const auditorLoss = auditor.got.find((g) => g.loss)!.loss!;
    assert.equal(auditorLoss.agent?.nodeName, 'node-a');
    assert.equal(auditorLoss.fromSeq, 3n);
    assert.equal(auditor.got.filter((g) => g.event).length, 4);

    const refused = follow(tokens.paymentsToken, ['auth']);
    const err = (await refused.done) as { code?: Status; details?: string };
    assert.equal(err?.code, Status.PERMISSION_DENIED);
    const agentSub = follow(agentToken(api, 'node-a', { audience: 'https://kubernetes.default.svc.cluster.local' }), [
      'payments',
    ]);
    assert.equal(((await agentSub.done) as { code?: Status })?.code, Status.PERMISSION_DENIED);
    channel.close();
  });
});

describe('off-cluster: certificate identities mapped to nodes', () => {
  it('a certificate publishes as its mapped node only; an agent certificate cannot subscribe', async () => {
    const { c } = await collectorWith({
      auth: { mode: 'certificate', certificate: { agents: { 'cert-a': ['node-a'] }, subscribers: { 'cert-siem': ['*'] } } },
    });
    const ok = agent(c, 'node-a', undefined, 'cert-a').batch(makeBatch(1, 2, { node: 'node-a' }));
    await ok.waitAck(2);
    ok.close();
    const liar = agent(c, 'node-b', undefined, 'cert-a');
    const err = (await liar.outcome) as { code?: Status; details?: string };
    assert.equal(err?.code, Status.PERMISSION_DENIED);
    assert.match(String(err.details), /hello names node "node-b" but certificate cert-a is bound to node-a/);
    liar.close();
    const stranger = agent(c, 'node-a', undefined, 'cert-stranger');
    assert.equal(((await stranger.outcome) as { code?: Status })?.code, Status.PERMISSION_DENIED);
    stranger.close();

    const sub = async (cert: string) => {
      const channel = createChannel(`127.0.0.1:${c.port}`, creds(cert), { 'grpc.ssl_target_name_override': 'localhost' });
      const client = createClient(CollectorServiceDefinition, channel);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 500);
      try {
        for await (const _ of client.subscribe({ filter: {} }, { signal: ac.signal }));
        return 'ended';
      } catch (e) {
        return ac.signal.aborted ? 'admitted' : (e as { code?: Status }).code;
      } finally {
        channel.close();
      }
    };
    assert.equal(await sub('cert-a'), Status.PERMISSION_DENIED);
    assert.equal(await sub('cert-siem'), 'admitted');
    assert.ok(c.stats().refusals.permission_denied >= 3);
  });
});
