import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { CRD_FILE, PolicyWatcher, type PolicyWatcherOptions } from '../../src/policy/watch.js';
import type { KubeApiServer, PolicyObject } from '../helpers/kube-api-server.js';
import { apiRequest, kubeApiStandIn } from '../helpers/kube-stand-in.js';
import { bounded, until } from '../helpers/wait.js';

// PolicyWatcher against the kube-apiserver stand-in: real HTTPS, the real
// list/watch wire protocol, real status PATCHes. Backoff and status jitter are
// small so recovery takes milliseconds; every wait is bounded.

const FAST = { initialMs: 20, maxMs: 200 };
const ADMIN = 'doorwatch';

interface LogLine {
  level: number;
  msg: string;
  err?: string;
  problems?: string[];
  [k: string]: unknown;
}

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function standIn(opts: { crd?: boolean } = {}) {
  const { api: server, kubeConfig } = await kubeApiStandIn();
  cleanups.push(() => server.close());
  if (opts.crd === false) server.setPolicyCrdInstalled(false);
  return { server, kubeConfig };
}

/** One agent: its watcher, its log lines, and a count of its 'change' events. */
function agent(kubeConfig: KubeConfig, extra: Partial<PolicyWatcherOptions> = {}) {
  const logs: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) });
  const w = new PolicyWatcher({
    kubeConfig,
    adminNamespace: ADMIN,
    writeStatus: true,
    log,
    backoff: FAST,
    statusJitterMs: 20,
    ...extra,
  });
  cleanups.push(() => w.stop());
  const counter = { changes: 0 };
  w.on('change', () => counter.changes++);
  return { w, logs, counter };
}

async function setup(opts: { crd?: boolean } & Partial<PolicyWatcherOptions> = {}) {
  const { crd, ...extra } = opts;
  const s = await standIn({ crd });
  return { ...s, ...agent(s.kubeConfig, extra) };
}

function policy(namespace: string, name: string, spec: unknown): PolicyObject {
  return { metadata: { namespace, name }, spec };
}

const names = (list: { namespace: string; name: string }[]) => list.map((p) => `${p.namespace}/${p.name}`);

function accepted(server: KubeApiServer, ns: string, name: string): Cond | undefined {
  return server.getPolicy(ns, name)?.status?.conditions?.find((c) => c.type === 'Accepted') as Cond | undefined;
}

/** Resolves once the object's status says `status` for its current generation. */
function statusSettled(server: KubeApiServer, ns: string, name: string, status: 'True' | 'False') {
  return until(
    () => {
      const o = server.getPolicy(ns, name);
      const c = accepted(server, ns, name);
      return (
        c?.status === status &&
        c.observedGeneration === o?.metadata?.generation &&
        o?.status?.observedGeneration === c.observedGeneration
      );
    },
    `${ns}/${name} Accepted=${status}`,
    3000,
  );
}

const VALID = { mode: 'events', ports: { include: [443, '8000-8999'] }, peers: { exclude: ['10.0.0.0/8'] } };

describe('AcceptAuditPolicy stand-in (wire behaviour)', () => {
  const call = (server: KubeApiServer, method: string, path: string, body?: string, contentType?: string) =>
    apiRequest(server, method, path, { body, contentType });
  const statusPath = (ns: string, name: string) =>
    `/apis/doorwatch.io/v1alpha1/namespaces/${ns}/acceptauditpolicies/${name}/status`;

  it('lists with kind/apiVersion on items; generation moves with the spec only; status PATCH is a merge patch with an RV precondition', async () => {
    const { server } = await standIn();
    const created = server.upsertPolicy({ ...policy('shop', 'p', VALID), status: { observedGeneration: 9 } });
    assert.equal(created.metadata?.generation, 1);
    assert.equal(created.status, undefined, 'status is ignored on create (status subresource)');
    const list = await call(server, 'GET', '/apis/doorwatch.io/v1alpha1/acceptauditpolicies');
    assert.equal(list.body.kind, 'AcceptAuditPolicyList');
    assert.equal(list.body.apiVersion, 'doorwatch.io/v1alpha1');
    assert.equal((list.body.items as PolicyObject[])[0]?.kind, 'AcceptAuditPolicy');

    const rv = created.metadata!.resourceVersion!;
    const patch = { metadata: { resourceVersion: rv }, status: { observedGeneration: 1, conditions: [{ type: 'Accepted' }] } };
    assert.equal(
      (await call(server, 'PATCH', statusPath('shop', 'p'), JSON.stringify(patch), 'application/json-patch+json')).status,
      415,
    );
    const ok = await call(server, 'PATCH', statusPath('shop', 'p'), JSON.stringify(patch), 'application/merge-patch+json');
    assert.equal(ok.status, 200);
    const after = server.getPolicy('shop', 'p')!;
    assert.equal(after.metadata?.generation, 1, 'a status write is no spec change');
    assert.ok(Number(after.metadata?.resourceVersion) > Number(rv));
    assert.deepEqual(after.status, patch.status);
    const stale = await call(server, 'PATCH', statusPath('shop', 'p'), JSON.stringify(patch), 'application/merge-patch+json');
    assert.equal(stale.status, 409);
    assert.equal(stale.body.reason, 'Conflict');
    // A no-op patch writes nothing.
    const rv2 = server.resourceVersion;
    server.patchPolicyStatus('shop', 'p', { status: { observedGeneration: 1 } });
    assert.equal(server.resourceVersion, rv2);
    // Spec change: generation 2, status kept.
    const changed = server.upsertPolicy(policy('shop', 'p', { mode: 'summary' }));
    assert.equal(changed.metadata?.generation, 2);
    assert.deepEqual(changed.status, patch.status);
    assert.deepEqual(
      server.policyPatches.map((p) => [p.contentType, p.status]),
      [
        ['application/json-patch+json', 415],
        ['application/merge-patch+json', 200],
        ['application/merge-patch+json', 409],
      ],
    );

    server.forbid('acceptauditpolicies/status');
    const denied = await call(server, 'PATCH', statusPath('shop', 'p'), '{}', 'application/merge-patch+json');
    assert.equal(denied.status, 403);
    assert.match(String(denied.body.message), /cannot patch resource "acceptauditpolicies\/status"/);
    server.setPolicyCrdInstalled(false);
    assert.equal(server.getPolicy('shop', 'p'), undefined, 'removing the CRD deletes its objects');
    assert.equal((await call(server, 'GET', '/apis/doorwatch.io/v1alpha1/acceptauditpolicies')).status, 404);
    assert.throws(() => server.upsertPolicy(policy('shop', 'q', VALID)), /not installed/);
  });
});

describe('PolicyWatcher: sync and live changes', () => {
  it('the initial list: valid ones sorted by namespace/name, invalid ones rejected, each status written once; one list, one watch', async () => {
    const { server, w, logs } = await setup();
    server.upsertPolicy(policy('shop', 'web', VALID));
    server.upsertPolicy(policy(ADMIN, 'ci-quiet', { mode: 'off', namespaces: ['ci-*'] }));
    server.upsertPolicy(policy('billing', 'api', { mode: 'summary' }));
    server.upsertPolicy(policy('shop', 'broken', { mode: 'events', ports: { include: ['9000-80'] } }));
    await bounded(w.start(), 3000, 'start');
    assert.equal(w.synced(), true);
    assert.deepEqual(names(w.policies()), ['billing/api', `${ADMIN}/ci-quiet`, 'shop/web']);
    assert.equal(w.policies()[1]!.clusterScoped, true);
    assert.deepEqual(w.policies()[2]!.spec.ports.include, [
      { lo: 443, hi: 443 },
      { lo: 8000, hi: 8999 },
    ]);
    assert.deepEqual(names(w.rejected()), ['shop/broken']);

    await statusSettled(server, 'shop', 'web', 'True');
    await statusSettled(server, 'billing', 'api', 'True');
    await statusSettled(server, ADMIN, 'ci-quiet', 'True');
    await statusSettled(server, 'shop', 'broken', 'False');
    await until(() => w.status().connected, 'connected');
    assert.deepEqual(accepted(server, 'shop', 'web'), {
      type: 'Accepted',
      status: 'True',
      reason: 'Valid',
      message: 'applied by doorwatch agents',
      observedGeneration: 1,
      lastTransitionTime: accepted(server, 'shop', 'web')!.lastTransitionTime,
    });
    assert.match(accepted(server, 'shop', 'web')!.lastTransitionTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // Our own writes come back through the watch: nothing more to write.
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(server.policyPatches.length, 4);
    assert.ok(server.policyPatches.every((p) => p.status === 200 && p.contentType === 'application/merge-patch+json'));
    const { lastError: _e, ...s } = w.status();
    assert.deepEqual(s, {
      synced: true,
      connected: true,
      accepted: 3,
      rejected: 1,
      crdMissing: false,
      statusWrites: 4,
      statusWriteErrors: 0,
    });
    assert.deepEqual(server.policyCounters, { lists: 1, watches: 1, statusPatches: 4 });
    const watchReq = server.requests.find((r) => r.resource === 'acceptauditpolicies' && r.watch)!;
    assert.equal(watchReq.query.allowWatchBookmarks, 'true');
    assert.equal(watchReq.query.fieldSelector, undefined, 'all namespaces, no selector');
    // One verdict line per object.
    assert.equal(logs.filter((l) => l.msg === 'policy accepted').length, 3);
    const rejectedLines = logs.filter((l) => l.msg === 'policy rejected');
    assert.equal(rejectedLines.length, 1);
    assert.equal(rejectedLines[0]!.level, 40);
    assert.deepEqual(rejectedLines[0]!.problems, ['spec.ports.include[0]: "9000-80": range start is above its end']);
  });

  it('add, modify (generation bump) and delete are applied live, each announced by a change event', async () => {
    const { server, w, counter, logs } = await setup();
    await w.start();
    await until(() => w.status().connected, 'connected');
    let base = counter.changes;

    server.upsertPolicy(policy('shop', 'web', VALID));
    await until(() => counter.changes > base, 'change after the add', 3000);
    assert.deepEqual(names(w.policies()), ['shop/web']);
    await statusSettled(server, 'shop', 'web', 'True');

    base = counter.changes;
    server.upsertPolicy(policy('shop', 'web', { ...VALID, mode: 'summary' }));
    await until(() => counter.changes > base, 'change after the modification', 3000);
    assert.equal(w.policies()[0]!.spec.mode, 'summary');
    assert.equal(w.policies()[0]!.generation, 2);
    await statusSettled(server, 'shop', 'web', 'True');
    assert.equal(accepted(server, 'shop', 'web')!.observedGeneration, 2);
    assert.equal(server.getPolicy('shop', 'web')!.status!.observedGeneration, 2);

    // A status-only change (a write by anyone) moves the RV but not what the policy says: no change event.
    await new Promise((r) => setTimeout(r, 100));
    base = counter.changes;
    server.patchPolicyStatus('shop', 'web', { status: { note: 'written by someone else' } });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(counter.changes, base);

    server.deletePolicy('shop', 'web');
    await until(() => counter.changes > base, 'change after the delete', 3000);
    assert.deepEqual(w.policies(), []);
    assert.equal(w.status().accepted, 0);
    assert.equal(logs.filter((l) => l.msg === 'policy accepted').length, 2, 'once per generation');
    assert.ok(logs.some((l) => l.msg === 'policy removed'));
    assert.equal(server.policyCounters.lists, 1, 'nothing per event');
  });

  it('invalid policies are rejected whole, with Accepted=False/InvalidSpec and the problem on the object; fixing one accepts it', async () => {
    const { server, w, logs } = await setup();
    const cases: [string, unknown, RegExp][] = [
      [
        'bad-cidr',
        { mode: 'events', peers: { include: ['10.1.0.0/33'] } },
        /spec\.peers\.include\[0\]: "10\.1\.0\.0\/33": prefix length/,
      ],
      [
        'bad-range',
        { mode: 'events', ports: { include: ['9000-80'] } },
        /spec\.ports\.include\[0\]: "9000-80": range start is above its end/,
      ],
      ['mode-typo', { mode: 'evnets' }, /spec\.mode: Invalid enum value.*'evnets'/],
      [
        'reach-out',
        { mode: 'off', namespaces: ['kube-system'] },
        /only policies in the Doorwatch namespace "doorwatch" may select/,
      ],
    ];
    for (const [name, spec] of cases) server.upsertPolicy(policy('shop', name, spec));
    server.upsertPolicy(policy('shop', 'fine', { mode: 'events' }));
    await w.start();
    assert.deepEqual(names(w.policies()), ['shop/fine']);
    assert.deepEqual(names(w.rejected()), ['shop/bad-cidr', 'shop/bad-range', 'shop/mode-typo', 'shop/reach-out']);
    for (const [name, , problem] of cases) {
      await statusSettled(server, 'shop', name, 'False');
      const c = accepted(server, 'shop', name)!;
      assert.equal(c.reason, 'InvalidSpec');
      assert.match(c.message, problem);
      assert.deepEqual(
        w
          .rejected()
          .find((r) => r.name === name)
          ?.problems.join('; '),
        c.message,
        'the object says what the agent rejected it for',
      );
      assert.ok(logs.some((l) => l.level === 40 && l.msg === 'policy rejected' && l.name === name));
    }
    const falseSince = accepted(server, 'shop', 'bad-range')!.lastTransitionTime;

    await new Promise((r) => setTimeout(r, 1100)); // lastTransitionTime has whole seconds
    server.upsertPolicy(policy('shop', 'bad-range', { mode: 'events', ports: { include: ['80-9000'] } }));
    await until(() => w.policies().some((p) => p.name === 'bad-range'), 'accepted after the fix', 3000);
    assert.equal(w.rejected().length, 3);
    await statusSettled(server, 'shop', 'bad-range', 'True');
    const c = accepted(server, 'shop', 'bad-range')!;
    assert.equal(c.observedGeneration, 2);
    assert.notEqual(c.lastTransitionTime, falseSince, 'False -> True is a transition');
  });

  it('a valid policy edited into an invalid one stays enforced as its last valid version; Accepted=False names every problem (issue 14)', async () => {
    const { server, w, logs } = await setup();
    server.upsertPolicy(policy('shop', 'web', { mode: 'summary', ports: { include: [443] } }));
    await w.start();
    await statusSettled(server, 'shop', 'web', 'True');
    assert.equal(w.policies()[0]?.generation, 1);

    server.upsertPolicy(policy('shop', 'web', { mode: 'sometimes', peers: { include: ['192.168.1.0/33'] } }));
    await until(() => w.rejected().length === 1, 'the edit rejected', 3000);
    // Still enforced as generation 1: its pods do not fall back to another policy.
    assert.deepEqual(
      w.policies().map((p) => [p.name, p.generation, p.spec.mode, p.spec.ports.include]),
      [['web', 1, 'summary', [{ lo: 443, hi: 443 }]]],
    );
    const rej = w.rejected()[0]!;
    assert.equal(rej.generation, 2);
    assert.equal(rej.enforcedGeneration, 1);
    assert.equal(rej.problems.length, 2, rej.problems.join('\n'));
    await statusSettled(server, 'shop', 'web', 'False');
    const c = accepted(server, 'shop', 'web')!;
    assert.equal(c.reason, 'InvalidSpec');
    assert.equal(c.observedGeneration, 2);
    assert.match(c.message, /spec\.mode: Invalid enum value.*'sometimes'/);
    assert.match(c.message, /spec\.peers\.include\[0\]: "192\.168\.1\.0\/33": prefix length must be 0-32/);
    assert.match(c.message, /the agents keep enforcing generation 1, this policy's last valid version$/);
    assert.ok(logs.some((l) => l.level === 40 && l.msg === 'policy rejected: its last valid version stays enforced'));

    // A second bad edit still keeps generation 1; a fix replaces it.
    server.upsertPolicy(policy('shop', 'web', { mode: 'events', ports: { include: ['9000-80'] } }));
    await until(() => w.rejected()[0]?.generation === 3, 'the second edit rejected', 3000);
    assert.deepEqual(
      w.policies().map((p) => p.generation),
      [1],
    );
    server.upsertPolicy(policy('shop', 'web', { mode: 'events' }));
    await until(() => w.rejected().length === 0, 'the fix accepted', 3000);
    assert.deepEqual(
      w.policies().map((p) => [p.generation, p.spec.mode]),
      [[4, 'events']],
    );
    await statusSettled(server, 'shop', 'web', 'True');

    // Deleted while invalid: nothing of it stays.
    server.upsertPolicy(policy('shop', 'web', { mode: 'nope' }));
    await until(() => w.rejected().length === 1, 'rejected again', 3000);
    assert.equal(w.policies()[0]?.generation, 4);
    server.deletePolicy('shop', 'web');
    await until(() => w.policies().length === 0 && w.rejected().length === 0, 'gone', 3000);
  });

  it('a policy invalid from its creation is not enforced (no valid version was ever seen)', async () => {
    const { server, w } = await setup();
    server.upsertPolicy(policy('shop', 'new', { mode: 'sometimes' }));
    await w.start();
    assert.deepEqual(w.policies(), []);
    assert.equal(w.rejected()[0]?.enforcedGeneration, undefined);
    await statusSettled(server, 'shop', 'new', 'False');
    assert.doesNotMatch(accepted(server, 'shop', 'new')!.message, /keep enforcing/);
  });

  it('a second agent finds the statuses already right and writes nothing', async () => {
    const { server, kubeConfig, w } = await setup();
    server.upsertPolicy(policy('shop', 'web', VALID));
    server.upsertPolicy(policy('shop', 'broken', { mode: 'events', peers: { include: ['banana'] } }));
    await w.start();
    await statusSettled(server, 'shop', 'web', 'True');
    await statusSettled(server, 'shop', 'broken', 'False');
    const patches = server.policyPatches.length;

    const second = agent(kubeConfig);
    await second.w.start();
    assert.deepEqual(names(second.w.policies()), ['shop/web']);
    assert.deepEqual(names(second.w.rejected()), ['shop/broken']);
    await new Promise((r) => setTimeout(r, 200)); // ten times its status jitter
    assert.equal(server.policyPatches.length, patches);
    assert.equal(second.w.status().statusWrites, 0);
  });

  it('two agents starting together: the one with the shorter jitter writes, the other sees it through the watch and skips', async () => {
    const { server, kubeConfig } = await standIn();
    for (let i = 0; i < 5; i++) server.upsertPolicy(policy('shop', `p${i}`, { mode: i % 2 ? 'events' : 'bogus' }));
    const early = agent(kubeConfig, { statusJitterMs: 400, random: () => 0 });
    const late = agent(kubeConfig, { statusJitterMs: 400, random: () => 0.99 });
    await Promise.all([early.w.start(), late.w.start()]);
    for (let i = 0; i < 5; i++) await statusSettled(server, 'shop', `p${i}`, i % 2 ? 'True' : 'False');
    await new Promise((r) => setTimeout(r, 600)); // past the late agent's jitter
    assert.equal(server.policyPatches.length, 5, 'one write per object');
    assert.equal(early.w.status().statusWrites, 5);
    assert.equal(late.w.status().statusWrites, 0);
  });

  it('writeStatus: false never writes', async () => {
    const { server, w } = await setup({ writeStatus: false });
    server.upsertPolicy(policy('shop', 'web', VALID));
    await w.start();
    assert.equal(w.policies().length, 1);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(server.policyCounters.statusPatches, 0);
  });
});

describe('PolicyWatcher: resilience', () => {
  it('CRD not installed: one warning with the fix, synced with nothing; installing it later is picked up', async () => {
    const { server, w, logs, counter } = await setup({ crd: false });
    await bounded(w.start(), 3000, 'start does not wait for the CRD');
    assert.equal(w.synced(), true, 'nothing to wait for');
    assert.equal(w.status().crdMissing, true);
    assert.deepEqual(w.policies(), []);
    await until(() => server.policyCounters.lists >= 4, 'retries', 3000);
    const warns = logs.filter((l) => l.level >= 40);
    assert.equal(warns.length, 1, JSON.stringify(warns));
    assert.equal(
      warns[0]!.msg,
      `AcceptAuditPolicy CRD not installed (HTTP 404 on list /apis/doorwatch.io/v1alpha1/acceptauditpolicies): only the agent configuration's policy rules apply; install ${CRD_FILE}`,
    );

    server.setPolicyCrdInstalled(true);
    server.upsertPolicy(policy('shop', 'web', VALID));
    await until(() => w.policies().length === 1, 'the policy after the install', 3000);
    await until(() => w.status().connected, 'connected', 3000);
    assert.equal(w.status().crdMissing, false);
    assert.equal(w.status().lastError, undefined);
    assert.ok(counter.changes > 0);
    assert.ok(logs.some((l) => l.msg === 'AcceptAuditPolicy CRD found: watching the policies'));
    await statusSettled(server, 'shop', 'web', 'True');
  });

  it('watch reset: resumes from its RV (no relist) and keeps everything; 410 Gone: relists and finds what changed', async () => {
    const { server, w } = await setup();
    server.upsertPolicy(policy('shop', 'stays', VALID));
    server.upsertPolicy(policy('shop', 'goes', VALID));
    await w.start();
    await until(() => w.status().connected, 'connected');

    server.dropConnections();
    server.upsertPolicy(policy('shop', 'after-reset', { mode: 'summary' }));
    await until(() => w.policies().length === 3, 'the policy added after the reset', 3000);
    await until(() => w.status().connected, 'reconnected');
    assert.equal(server.policyCounters.lists, 1, 'resumed, not relisted');

    server.dropConnections();
    // While it is away (synchronously: it cannot reconnect in between): changes, then compaction.
    server.upsertPolicy(policy('shop', 'while-away', { mode: 'nope' }));
    server.deletePolicy('shop', 'goes');
    server.compact();
    await until(() => server.policyCounters.lists === 2, 'the relist', 3000);
    await until(() => w.rejected().length === 1 && w.policies().length === 2, 'the relist diff applied', 3000);
    assert.deepEqual(names(w.policies()), ['shop/after-reset', 'shop/stays']);
    assert.deepEqual(names(w.rejected()), ['shop/while-away']);
    await statusSettled(server, 'shop', 'while-away', 'False');
  });

  it('API server down, then back: recovers by itself', async () => {
    const { server, w } = await setup();
    await w.start();
    await until(() => w.status().connected, 'connected');
    await server.stop();
    server.upsertPolicy(policy('shop', 'during-outage', VALID));
    await until(() => /ECONNREFUSED/.test(w.status().lastError ?? ''), 'refused reconnects', 3000);
    await server.start();
    await until(() => w.policies().length === 1, 'the policy created during the outage', 3000);
    await statusSettled(server, 'shop', 'during-outage', 'True');
  });

  it('403 on list: a clear error naming the verbs and resource, nothing applied; granting it later recovers', async () => {
    const { server, w, logs } = await setup();
    server.upsertPolicy(policy('shop', 'web', VALID));
    server.forbid('acceptauditpolicies');
    await bounded(w.start(), 3000, 'start');
    assert.equal(w.synced(), false);
    const err = w.status().lastError ?? '';
    assert.match(err, /HTTP 403 acceptauditpolicies\.doorwatch\.io is forbidden: .*cannot list resource "acceptauditpolicies"/);
    assert.match(
      err,
      /RBAC: the agent's ServiceAccount needs get, list and watch on acceptauditpolicies \(API group doorwatch\.io/,
    );
    assert.match(err, /patch on acceptauditpolicies\/status/);
    assert.doesNotMatch(err, /pods and namespaces/);
    assert.ok(logs.some((l) => l.level === 40 && /RBAC/.test(String(l.err))));
    assert.equal(w.status().crdMissing, false);
    server.forbid('acceptauditpolicies', false);
    await until(() => w.synced() && w.policies().length === 1, 'synced after the grant', 3000);
  });

  it('403 on the status write: counted and warned once, policies still applied; retried on the next change', async () => {
    const { server, w, logs } = await setup();
    server.forbid('acceptauditpolicies/status');
    server.upsertPolicy(policy('shop', 'a', VALID));
    server.upsertPolicy(policy('shop', 'b', { mode: 'bad' }));
    await w.start();
    assert.equal(w.policies().length, 1, 'applied anyway');
    await until(() => w.status().statusWriteErrors === 2, 'both writes refused', 3000);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(server.policyCounters.statusPatches, 2, 'no timer retries for a 403');
    const warns = logs.filter((l) => l.level === 40 && l.msg === 'could not write an AcceptAuditPolicy status');
    assert.equal(warns.length, 1);
    assert.match(String(warns[0]!.err), /HTTP 403 .*cannot patch resource "acceptauditpolicies\/status".*RBAC/);

    server.forbid('acceptauditpolicies/status', false);
    server.upsertPolicy(policy('shop', 'b', { mode: 'off' }));
    await statusSettled(server, 'shop', 'b', 'True');
    assert.equal(accepted(server, 'shop', 'a'), undefined, 'unchanged objects wait for a relist');
    // A relist (after a 410) looks at every object again.
    server.dropConnections();
    server.upsertPolicy(policy('other', 'moves-the-rv', VALID));
    server.compact();
    await statusSettled(server, 'shop', 'a', 'True');
    assert.equal(server.policyCounters.lists, 2);
  });

  it('CRD removed while watching: its objects go (DELETED first), crdMissing; reinstalled: back without a restart', async () => {
    const { server, w, logs } = await setup();
    server.upsertPolicy(policy('shop', 'web', VALID));
    await w.start();
    await until(() => w.status().connected, 'connected');
    server.setPolicyCrdInstalled(false);
    await until(() => w.status().crdMissing, 'the 404 seen', 3000);
    assert.deepEqual(w.policies(), []);
    assert.equal(w.synced(), true);
    assert.equal(logs.filter((l) => l.level >= 40 && /CRD not installed/.test(l.msg)).length, 1);
    server.setPolicyCrdInstalled(true);
    server.upsertPolicy(policy('shop', 'again', VALID));
    await until(() => w.policies().length === 1 && !w.status().crdMissing, 'back after the reinstall', 3000);
    assert.deepEqual(names(w.policies()), ['shop/again']);
  });

  it('stop() is prompt, mid-outage too, and leaves no watch open', async () => {
    const { server, w } = await setup();
    await w.start();
    await until(() => server.openWatches('acceptauditpolicies') === 1, 'watch open');
    await w.stop();
    await until(() => server.openWatches('acceptauditpolicies') === 0, 'watch closed');

    const down = await setup();
    await down.server.stop();
    await down.w.start();
    const t0 = performance.now();
    await down.w.stop();
    assert.ok(performance.now() - t0 < 500, 'no waiting out a backoff');
    assert.equal(down.w.status().connected, false);
  });
});
