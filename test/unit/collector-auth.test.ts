import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Metadata, ServerError, Status } from 'nice-grpc';
import { systemClock } from '../../src/collector/async.js';
import {
  type Authorizer,
  bearerToken,
  certificateAuthorizer,
  kubernetesAuthorizer,
} from '../../src/collector/auth/authorizer.js';
import { type KubeAuthApi, kubeAuthApi } from '../../src/collector/auth/kube-api.js';
import { guardPublish, InstanceRegistry } from '../../src/collector/auth/publish-guard.js';
import { jwtExpiry, TokenAuthenticator } from '../../src/collector/auth/token-authenticator.js';
import { startCollector } from '../../src/collector/collector.js';
import { type LimitsConfig, parseCollectorConfig } from '../../src/collector/config.js';
import { batchShape, PRECHECK_REFUSAL, precheckPublish } from '../../src/collector/precheck.js';
import { peerAddress, Refusals } from '../../src/collector/refusals.js';
import { SubscriberHub } from '../../src/collector/subscribe.js';
import { ConfigError } from '../../src/config/errors.js';
import { PublishRequest, type SubscribeResponse } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { AGENT_SA, AUDIENCE, agentToken, captureLogger, seedCluster } from '../helpers/auth-fixtures.js';
import type { KubeApiServer } from '../helpers/kube-api-server.js';
import { kubeApiStandIn } from '../helpers/kube-stand-in.js';
import { agentIdentity, makeBatch, makeEvent, memorySinks } from '../helpers/memory-sink.js';

let api: KubeApiServer;
let authApi: KubeAuthApi;
let tokens: ReturnType<typeof seedCluster>;

before(async () => {
  const s = await kubeApiStandIn();
  api = s.api;
  authApi = kubeAuthApi(s.kubeConfig);
  tokens = seedCluster(api);
});
after(() => api?.close());

const signal = () => AbortSignal.timeout(10_000);
const k8sCfg = { audience: AUDIENCE, agentServiceAccount: { ...AGENT_SA }, cacheMaxMs: 60_000 };

function authorizer(o: { api?: KubeAuthApi } = {}): { authz: Authorizer; tokens: TokenAuthenticator } {
  const a = o.api ?? authApi;
  const t = new TokenAuthenticator({
    api: a,
    clock: systemClock,
    log: silentLogger,
    cacheMaxMs: 60_000,
    backoff: { initialMs: 20, maxMs: 50 },
  });
  return { authz: kubernetesAuthorizer({ cfg: k8sCfg, api: a, tokens: t }), tokens: t };
}

const creds = (token?: string) => ({ authorization: token === undefined ? undefined : `Bearer ${token}`, peer: undefined });

async function refusedWith(p: Promise<unknown>, code: Status, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ServerError, `a ServerError, got ${e}`);
    assert.equal(Status[e.code], Status[code], e.details);
    assert.match(e.details, re);
    return true;
  });
}

describe('the Kubernetes API stand-in: TokenReview and SubjectAccessReview', () => {
  it('authenticates a pod-bound projected token for its audience, with the pod and node claims', async () => {
    const r = await authApi.tokenReview(agentToken(api, 'node-a'), [AUDIENCE], signal());
    assert.ok(r.authenticated);
    assert.equal(r.user.username, 'system:serviceaccount:doorwatch:doorwatch-agent');
    assert.deepEqual(r.user.extra['authentication.kubernetes.io/node-name'], ['node-a']);
    assert.deepEqual(r.user.extra['authentication.kubernetes.io/pod-name'], ['agent-node-a']);
    assert.ok(r.user.groups.includes('system:serviceaccounts:doorwatch'));
    assert.deepEqual(r.audiences, [AUDIENCE]);
  });

  it('refuses another audience, an expired token, a forged one, and the token of a deleted pod', async () => {
    const wrongAud = await authApi.tokenReview(agentToken(api, 'node-a', { audience: 'vault' }), [AUDIENCE], signal());
    assert.ok(!wrongAud.authenticated && /audiences/.test(wrongAud.error), JSON.stringify(wrongAud));
    const expired = await authApi.tokenReview(agentToken(api, 'node-a', { expiresIn: -5 }), [AUDIENCE], signal());
    assert.ok(!expired.authenticated && /expired/.test(expired.error));
    const t = agentToken(api, 'node-a');
    const forged = `${t.split('.').slice(0, 2).join('.')}.AAAA`;
    assert.ok(!(await authApi.tokenReview(forged, [AUDIENCE], signal())).authenticated);
    api.addPod({ ...api.getPod('doorwatch', 'agent-node-a')!, metadata: { name: 'agent-gone', namespace: 'doorwatch' } });
    const gone = api.auth.issueServiceAccountToken({
      namespace: 'doorwatch',
      serviceAccount: 'doorwatch-agent',
      audiences: [AUDIENCE],
      pod: { name: 'agent-gone' },
    });
    api.deletePod('doorwatch', 'agent-gone');
    const r = await authApi.tokenReview(gone, [AUDIENCE], signal());
    assert.ok(!r.authenticated && /invalidated/.test(r.error));
  });

  it('answers SubjectAccessReview from RoleBindings (one namespace) and ClusterRoleBindings (all, and cluster scope)', async () => {
    const alice = await authApi.tokenReview(tokens.paymentsToken, [], signal());
    const auditor = await authApi.tokenReview(tokens.auditorToken, [], signal());
    assert.ok(alice.authenticated && auditor.authenticated);
    const q = { group: 'doorwatch.io', resource: 'acceptevents', verb: 'watch' };
    assert.ok((await authApi.accessReview({ user: alice.user, namespace: 'payments', ...q }, signal())).allowed);
    assert.ok(!(await authApi.accessReview({ user: alice.user, namespace: 'auth', ...q }, signal())).allowed);
    assert.ok(!(await authApi.accessReview({ user: alice.user, namespace: '', ...q }, signal())).allowed);
    assert.ok((await authApi.accessReview({ user: auditor.user, namespace: '', ...q }, signal())).allowed);
    assert.ok(!(await authApi.accessReview({ user: alice.user, namespace: 'payments', ...q, verb: 'delete' }, signal())).allowed);
  });
});

describe('kubernetes authorizer: Publish', () => {
  it('binds an agent to the node of its token (node claim)', async () => {
    const { authz } = authorizer();
    const b = await authz.bindAgent(creds(agentToken(api, 'node-b')), signal());
    assert.deepEqual([...b!.nodes], ['node-b']);
    assert.match(b!.who, /doorwatch-agent \(pod doorwatch\/agent-node-b\)/);
  });

  it('without the node claim (Kubernetes < 1.30) takes the node from the bound pod', async () => {
    api.auth.setNodeClaims(false);
    try {
      const gets = api.auth.counters.podGets;
      const b = await authorizer().authz.bindAgent(creds(agentToken(api, 'node-a')), signal());
      assert.deepEqual([...b!.nodes], ['node-a']);
      assert.equal(api.auth.counters.podGets, gets + 1, 'one pod GET');
    } finally {
      api.auth.setNodeClaims(true);
    }
  });

  it('refuses: no token, not Bearer, another ServiceAccount, another audience, expired', async () => {
    const { authz } = authorizer();
    await refusedWith(authz.bindAgent(creds(), signal()), Status.UNAUTHENTICATED, /no bearer token/);
    await refusedWith(
      authz.bindAgent({ authorization: 'Basic Zm9v', peer: undefined }, signal()),
      Status.UNAUTHENTICATED,
      /not "Bearer <token>"/,
    );
    const other = api.auth.issueServiceAccountToken({
      namespace: 'doorwatch',
      serviceAccount: 'other',
      audiences: [AUDIENCE],
      pod: { name: 'other-0' },
    });
    await refusedWith(
      authz.bindAgent(creds(other), signal()),
      Status.PERMISSION_DENIED,
      /system:serviceaccount:doorwatch:other may not publish/,
    );
    await refusedWith(
      authz.bindAgent(creds(agentToken(api, 'node-a', { audience: 'other' })), signal()),
      Status.UNAUTHENTICATED,
      /audiences/,
    );
    await refusedWith(
      authz.bindAgent(creds(agentToken(api, 'node-a', { expiresIn: -1 })), signal()),
      Status.UNAUTHENTICATED,
      /expired/,
    );
    await refusedWith(authz.bindAgent(creds(tokens.auditorToken), signal()), Status.UNAUTHENTICATED, /audiences|token lookup/);
  });

  it('caches an answer (one TokenReview for many streams) and never past the token expiry', async () => {
    const { authz, tokens: t } = authorizer();
    const token = agentToken(api, 'node-a');
    for (let i = 0; i < 5; i++) await authz.bindAgent(creds(token), signal());
    assert.equal(t.stats.reviews, 1);
    assert.equal(t.stats.cacheHits, 4);
    const soon = agentToken(api, 'node-a', { expiresIn: 1 });
    assert.ok(Math.abs(jwtExpiry(soon)! - (Date.now() + 1000)) < 1500);
  });

  it('while the API is down, a new stream waits and retries (counted), then goes through', async () => {
    const { authz, tokens: t } = authorizer();
    const token = agentToken(api, 'node-b');
    api.setUnavailable(true);
    const p = authz.bindAgent(creds(token), signal());
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(t.stats.apiErrors >= 2, `retried: ${t.stats.apiErrors}`);
    assert.equal(t.stats.waiting, 1);
    api.setUnavailable(false);
    assert.deepEqual([...(await p)!.nodes], ['node-b']);
    assert.equal(t.stats.waiting, 0);
  });

  it('a waiting stream whose client goes away stops waiting', async () => {
    const { authz } = authorizer();
    api.setUnavailable(true);
    try {
      const ac = new AbortController();
      const p = authz.bindAgent(creds(agentToken(api, 'node-a')), ac.signal);
      setTimeout(() => ac.abort(), 100);
      assert.equal(await p, undefined);
    } finally {
      api.setUnavailable(false);
    }
  });
});

describe('kubernetes authorizer: Subscribe', () => {
  it('payments may watch payments, not auth, not everything', async () => {
    const { authz } = authorizer();
    const s = await authz.authorizeSubscriber(creds(tokens.paymentsToken), ['payments'], signal());
    assert.ok(s && !s.all && [...s.namespaces].join() === 'payments');
    await refusedWith(
      authz.authorizeSubscriber(creds(tokens.paymentsToken), ['payments', 'auth'], signal()),
      Status.PERMISSION_DENIED,
      /alice may not watch acceptevents.doorwatch.io in namespace auth/,
    );
    await refusedWith(
      authz.authorizeSubscriber(creds(tokens.paymentsToken), [], signal()),
      Status.PERMISSION_DENIED,
      /every namespace/,
    );
  });

  it('a cluster-wide viewer may watch all; the agents identity may not subscribe; strangers may not', async () => {
    const { authz } = authorizer();
    assert.deepEqual(await authz.authorizeSubscriber(creds(tokens.auditorToken), [], signal()), { who: 'auditor', all: true });
    const agentDefault = api.auth.issueServiceAccountToken({
      namespace: 'doorwatch',
      serviceAccount: 'doorwatch-agent',
      audiences: ['https://kubernetes.default.svc.cluster.local'],
      pod: { name: 'agent-node-a' },
    });
    await refusedWith(
      authz.authorizeSubscriber(creds(agentDefault), ['payments'], signal()),
      Status.PERMISSION_DENIED,
      /agents may publish, not subscribe/,
    );
    await refusedWith(
      authz.authorizeSubscriber(creds(tokens.nobodyToken), ['payments'], signal()),
      Status.PERMISSION_DENIED,
      /mallory may not watch/,
    );
    await refusedWith(authz.authorizeSubscriber(creds('garbage'), [], signal()), Status.UNAUTHENTICATED, /TokenReview/);
  });
});

describe('certificate authorizer (off-cluster)', () => {
  const authz = certificateAuthorizer({
    agents: { 'agent-a': ['node-a'], 'agent-ab': ['node-a', 'node-b'] },
    subscribers: { 'team-p': ['payments'], siem: ['*'] },
  });
  const peer = (...ids: string[]) => ({ authorization: undefined, peer: { certIdentities: ids } });
  it('maps certificate identities to nodes; unknown identities are refused', async () => {
    assert.deepEqual([...(await authz.bindAgent(peer('agent-ab'), signal()))!.nodes], ['node-a', 'node-b']);
    await refusedWith(authz.bindAgent(peer('team-p'), signal()), Status.PERMISSION_DENIED, /not an agent identity/);
    await refusedWith(authz.bindAgent(peer(), signal()), Status.UNAUTHENTICATED, /no client certificate/);
  });
  it('subscribers by namespace; agents cannot subscribe', async () => {
    assert.deepEqual(await authz.authorizeSubscriber(peer('siem'), [], signal()), { who: 'certificate siem', all: true });
    await refusedWith(authz.authorizeSubscriber(peer('team-p'), [], signal()), Status.PERMISSION_DENIED, /every namespace/);
    await refusedWith(authz.authorizeSubscriber(peer('team-p'), ['auth'], signal()), Status.PERMISSION_DENIED, /namespace auth/);
    await refusedWith(
      authz.authorizeSubscriber(peer('agent-a'), ['payments'], signal()),
      Status.PERMISSION_DENIED,
      /agent identity/,
    );
  });
});

describe('refusals', () => {
  it('one line per (address, reason) per interval, the next one saying how many were suppressed; every one counted', () => {
    const c = captureLogger();
    let t = 0;
    const r = new Refusals({ log: c.log, intervalMs: 1000, now: () => t });
    for (let i = 0; i < 5; i++) r.record(`10.0.0.1:${4000 + i}`, 'unauthenticated', 'no bearer token');
    r.record('10.0.0.1:5000', 'permission_denied', 'node');
    r.record('10.0.0.2:5000', 'unauthenticated', 'no bearer token');
    assert.equal(c.lines.length, 3);
    t = 1500;
    r.record('10.0.0.1:4100', 'unauthenticated', 'no bearer token');
    assert.equal(c.lines.length, 4);
    assert.equal(c.lines[3]!.suppressed, 4);
    assert.match(String(c.lines[3]!.msg), /^refused 10\.0\.0\.1: unauthenticated: no bearer token/);
    assert.equal(r.counts().unauthenticated, 7);
    assert.equal(r.counts().permission_denied, 1);
    assert.equal(r.counts().tls_unknown_ca, 0);
  });

  it('peer addresses: ports stripped, IPv4-mapped folded', () => {
    assert.equal(peerAddress('::ffff:127.0.0.1:5555'), '127.0.0.1');
    assert.equal(peerAddress('ipv4:10.1.1.1:80'), '10.1.1.1');
    assert.equal(peerAddress('[fd00::1]:80'), 'fd00::1');
    assert.equal(peerAddress('fd00::1:80'), 'fd00::1');
  });

  it('bearerToken', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer  abc '), 'abc');
    assert.equal(bearerToken('Basic abc'), undefined);
  });
});

describe('publish guard', () => {
  const limits: LimitsConfig = {
    connectionsPerPeer: 8,
    streamsPerPeer: 8,
    callsPerSecondPerPeer: 100,
    helloTimeoutMs: 150,
    handshakeTimeoutMs: 1000,
    maxBatchEvents: 10,
    maxEventBytes: 2000,
    refusalLogIntervalMs: 60_000,
  };
  const staticAuth = certificateAuthorizer({ agents: { a: ['node-a'] }, subscribers: {} });
  function run(reqs: AsyncIterable<PublishRequest>, authz: Authorizer = staticAuth) {
    const ctx = { peer: '10.0.0.9:1', metadata: Metadata(), signal: AbortSignal.timeout(5000) } as never;
    const out: PublishRequest[] = [];
    const done = (async () => {
      for await (const r of guardPublish(reqs, ctx, {
        authorizer: authz,
        limits,
        peerCredentials: () => ({ certIdentities: ['a'] }),
        instances: new InstanceRegistry(),
        log: silentLogger,
      }))
        out.push(r);
    })();
    return { out, done };
  }
  async function* of(...r: PublishRequest[]) {
    yield* r;
  }
  const hello = (node: string): PublishRequest => ({ hello: { agent: agentIdentity(node) }, batch: undefined });
  const batch = (b: ReturnType<typeof makeBatch>): PublishRequest => ({ hello: undefined, batch: b });

  it('passes a good stream through unchanged', async () => {
    const r = run(of(hello('node-a'), batch(makeBatch(1, 3)), batch(makeBatch(4, 2))));
    await r.done;
    assert.equal(r.out.length, 3);
  });

  it('no hello within the deadline: DEADLINE_EXCEEDED', async () => {
    async function* silent(): AsyncGenerator<PublishRequest> {
      await new Promise((res) => setTimeout(res, 2000));
      yield hello('node-a');
    }
    await refusedWith(run(silent()).done, Status.DEADLINE_EXCEEDED, /no hello within 150 ms/);
  });

  it('a hello or an event naming another node: PERMISSION_DENIED, and nothing of the batch passes', async () => {
    await refusedWith(run(of(hello('node-b'))).done, Status.PERMISSION_DENIED, /hello names node "node-b"/);
    const b = makeBatch(1, 3);
    b.events[2]!.nodeName = 'node-b';
    const r = run(of(hello('node-a'), batch(b)));
    await refusedWith(r.done, Status.PERMISSION_DENIED, /events\[2\] names node "node-b"/);
    assert.equal(r.out.length, 1, 'only the hello passed');
  });

  it('a precheck refusal found on the bytes becomes the status', async () => {
    const marked = Object.assign(batch(makeBatch(1, 1)), {
      [PRECHECK_REFUSAL]: new ServerError(Status.RESOURCE_EXHAUSTED, 'too many'),
    });
    await refusedWith(run(of(hello('node-a'), marked)).done, Status.RESOURCE_EXHAUSTED, /too many/);
  });

  it('an instance id stays with the node that first used it', async () => {
    const authz = certificateAuthorizer({ agents: { a: ['node-a', 'node-b'] }, subscribers: {} });
    const instances = new InstanceRegistry();
    const go = (node: string) =>
      (async () => {
        const ctx = { peer: '10.0.0.9:1', metadata: Metadata(), signal: AbortSignal.timeout(5000) } as never;
        const reqs = of({ hello: { agent: { ...agentIdentity(node), instanceId: 'shared' } }, batch: undefined });
        const deps = {
          authorizer: authz,
          limits,
          peerCredentials: () => ({ certIdentities: ['a'] }),
          instances,
          log: silentLogger,
        };
        for await (const _ of guardPublish(reqs, ctx, deps));
      })();
    await go('node-a');
    await refusedWith(go('node-b'), Status.PERMISSION_DENIED, /instance_id shared belongs to node "node-a"/);
  });
});

describe('precheck on the bytes', () => {
  const enc = (r: Partial<PublishRequest>) => PublishRequest.encode(PublishRequest.fromPartial(r)).finish();
  it('counts the events of a batch and finds the largest, without decoding', () => {
    const b = makeBatch(1, 5);
    b.events[3]!.process!.comm = 'x'.repeat(5000);
    const shape = batchShape(enc({ batch: b }));
    assert.equal(shape?.events, 5);
    assert.equal(shape?.largest.index, 3);
    assert.ok(shape!.largest.bytes > 5000);
    assert.deepEqual(batchShape(enc({ hello: { agent: agentIdentity('n') } })), {
      events: 0,
      largest: { index: -1, bytes: 0 },
      contexts: 0,
      largestContext: { index: -1, bytes: 0 },
    });
    assert.equal(batchShape(Uint8Array.from([0x12, 0x7f, 0x01])), undefined, 'a length past the end is malformed');
  });
  it('refuses too many events (RESOURCE_EXHAUSTED) and an oversized event (INVALID_ARGUMENT), naming the limit', () => {
    const limits = { maxBatchEvents: 10, maxEventBytes: 2000 };
    assert.equal(precheckPublish(enc({ batch: makeBatch(1, 10) }), limits), undefined);
    const many = precheckPublish(enc({ batch: makeBatch(1, 11) }), limits);
    assert.equal(many?.code, Status.RESOURCE_EXHAUSTED);
    assert.match(many!.details, /11 events; at most 10 \(limits.maxBatchEvents\)/);
    const b = makeBatch(1, 3);
    b.events[1]!.process!.comm = 'x'.repeat(3000);
    const big = precheckPublish(enc({ batch: b }), limits);
    assert.equal(big?.code, Status.INVALID_ARGUMENT);
    assert.match(big!.details, /batch.events\[1\] is \d+ bytes; at most 2000/);
  });
  it('counts batch contexts as events: no more of them than maxBatchEvents, none longer than maxEventBytes', () => {
    const limits = { maxBatchEvents: 10, maxEventBytes: 2000 };
    const ctx = (n: number) => Array.from({ length: n }, (_, i) => AcceptEvent.fromPartial({ pod: { name: `p${i}` } }));
    const ok = { ...makeBatch(1, 3), contexts: ctx(10), eventContexts: [1, 2, 3] };
    assert.equal(precheckPublish(enc({ batch: ok }), limits), undefined);
    assert.equal(batchShape(enc({ batch: ok }))?.contexts, 10);
    const many = precheckPublish(enc({ batch: { ...ok, contexts: ctx(11) } }), limits);
    assert.equal(many?.code, Status.RESOURCE_EXHAUSTED);
    assert.match(many!.details, /11 contexts; at most 10 \(limits.maxBatchEvents\)/);
    const long = ctx(2);
    long[1]!.pod!.labels = { note: 'x'.repeat(3000) };
    const big = precheckPublish(enc({ batch: { ...ok, contexts: long } }), limits);
    assert.equal(big?.code, Status.INVALID_ARGUMENT);
    assert.match(big!.details, /batch.contexts\[1\] is \d+ bytes; at most 2000/);
  });
});

describe('subscriber visibility', () => {
  it('a namespace-scoped subscriber gets its namespaces only, and loss records without whose they are', async () => {
    const hub = new SubscriberHub({ maxBuffered: 100, maxSubscribers: 10 });
    const ac = new AbortController();
    const got: SubscribeResponse[] = [];
    const sub = (async () => {
      for await (const item of hub.subscribe(undefined, ac.signal, { all: false, namespaces: new Set(['payments']) })) {
        got.push(item);
        if (got.length === 2) ac.abort();
      }
    })();
    await new Promise((r) => setImmediate(r));
    hub.publishEvents([
      makeEvent(1, { namespace: 'auth', pod: 'a' }),
      makeEvent(2),
      makeEvent(3, { namespace: 'payments', pod: 'p' }),
    ]);
    hub.publishLoss({
      agent: agentIdentity('node-z'),
      fromSeq: 5n,
      toSeq: 9n,
      reason: 'seq gap',
      counters: undefined,
      timeUnixNano: 1n,
    });
    await sub;
    assert.equal(got[0]!.event?.pod?.namespace, 'payments');
    assert.equal(got[1]!.loss?.reason, 'seq gap');
    assert.equal(got[1]!.loss?.agent, undefined);
    assert.equal(got[1]!.loss?.fromSeq, 0n);
  });
});

describe('auth and limits config', () => {
  const registry = { memory: memorySinks().factory };
  const base = { listen: '127.0.0.1:0', insecure: true, sinks: [{ name: 'm', type: 'memory' }] };
  const problems = (extra: Record<string, unknown>): string[] => {
    try {
      parseCollectorConfig({ ...base, ...extra }, 'test.yaml', registry);
      return [];
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e.problems;
    }
  };

  it('defaults: auth none, the documented limits', () => {
    const c = parseCollectorConfig(base, 'test.yaml', registry);
    assert.equal(c.auth.mode, 'none');
    assert.deepEqual(c.auth.kubernetes, {
      audience: 'doorwatch-collector',
      agentServiceAccount: { namespace: 'doorwatch', name: 'doorwatch-agent' },
      cacheMaxMs: 300_000,
    });
    assert.deepEqual(c.limits, {
      connectionsPerPeer: 32,
      streamsPerPeer: 64,
      callsPerSecondPerPeer: 20,
      helloTimeoutMs: 10_000,
      handshakeTimeoutMs: 10_000,
      maxBatchEvents: 10_000,
      maxEventBytes: 65_536,
      refusalLogIntervalMs: 60_000,
    });
  });

  it('one clear line per problem, by key', () => {
    assert.deepEqual(problems({ auth: { mode: 'certificate' } }), [
      'auth.certificate.agents: required when auth.mode is certificate (certificate identity -> node names)',
    ]);
    assert.deepEqual(
      problems({ auth: { mode: 'certificate', certificate: { agents: { a: ['n'] }, subscribers: { a: ['*'] } } } }),
      ['auth.certificate.subscribers.a: also an agent identity; publishing and subscribing need separate certificates'],
    );
    const p = problems({
      auth: { mode: 'kerberos', kubernetes: { audiense: 'x' } },
      limits: { helloTimeout: 'soon', maxEventBytes: 'big' },
    });
    assert.ok(
      p.some((x) => /^auth\.mode: /.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /unknown key "audiense" at auth\.kubernetes \(did you mean "audience"\?\)/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /^limits\.helloTimeout: /.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /^limits\.maxEventBytes: /.test(x)),
      p.join('\n'),
    );
  });

  it('kubernetes mode without an API, certificate mode without mutual TLS: refused at start, saying why', async () => {
    const k = parseCollectorConfig(
      { ...base, auth: { mode: 'kubernetes', kubernetes: { kubeconfig: '/nonexistent/kubeconfig' } } },
      'test.yaml',
      registry,
    );
    await assert.rejects(startCollector(k, { registry, log: silentLogger, env: {} }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.problems.join('\n'), /auth\.mode: kubernetes needs the Kubernetes API .*\/nonexistent\/kubeconfig/);
      return true;
    });
    const c = parseCollectorConfig(
      { ...base, auth: { mode: 'certificate', certificate: { agents: { a: ['n'] } } } },
      'test.yaml',
      registry,
    );
    await assert.rejects(startCollector(c, { registry, log: silentLogger }), /auth\.mode: certificate needs mutual TLS/);
  });
});
