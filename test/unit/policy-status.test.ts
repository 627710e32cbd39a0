import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { parseResource } from '../../src/policy/resource.js';
import {
  ACCEPTED_MESSAGE,
  acceptedCondition,
  kubeTime,
  type PatchStatusFn,
  type PolicyApiObject,
  type StatusPatch,
  StatusWriter,
  statusPatch,
} from '../../src/policy/status.js';
import { until } from '../helpers/wait.js';

// The status condition as a pure function of the object, and the writer's
// retry rules with the network replaced by a function: no server needed.

const T0 = Date.parse('2025-01-02T03:04:05.678Z');

function obj(spec: unknown, extra: Partial<PolicyApiObject> = {}, generation = 1): PolicyApiObject {
  return {
    apiVersion: 'doorwatch.io/v1alpha1',
    kind: 'AcceptAuditPolicy',
    metadata: { name: 'p', namespace: 'shop', uid: 'u-1', generation, resourceVersion: '17' },
    spec,
    ...extra,
  };
}
const valid = { mode: 'events', ports: { include: [443] } };
const invalid = { mode: 'events', ports: { include: ['9000-80'] }, peers: { include: ['10.0.0.0/33'] } };
const parse = (o: PolicyApiObject) => parseResource(o, 'doorwatch');

describe('acceptedCondition / statusPatch (pure)', () => {
  it('valid: True/Valid with the fixed message; invalid: False/InvalidSpec with every problem joined by "; "', () => {
    assert.deepEqual(acceptedCondition(parse(obj(valid))), {
      type: 'Accepted',
      status: 'True',
      reason: 'Valid',
      message: ACCEPTED_MESSAGE,
      observedGeneration: 1,
    });
    const bad = acceptedCondition(parse(obj(invalid, {}, 3)));
    assert.equal(bad.status, 'False');
    assert.equal(bad.reason, 'InvalidSpec');
    assert.equal(bad.observedGeneration, 3);
    assert.equal(
      bad.message,
      'spec.ports.include[0]: "9000-80": range start is above its end; spec.peers.include[0]: "10.0.0.0/33": prefix length must be 0-32',
    );
  });

  it('a patch for a fresh object: observedGeneration, the condition with a whole-second time, the RV as precondition', () => {
    const p = statusPatch(obj(valid), parse(obj(valid)), T0);
    assert.deepEqual(p, {
      metadata: { resourceVersion: '17' },
      status: {
        observedGeneration: 1,
        conditions: [
          {
            type: 'Accepted',
            status: 'True',
            reason: 'Valid',
            message: ACCEPTED_MESSAGE,
            observedGeneration: 1,
            lastTransitionTime: '2025-01-02T03:04:05Z',
          },
        ],
      },
    });
  });

  it('nothing to write when the object already says it, whatever its lastTransitionTime', () => {
    const o = obj(valid);
    const written = statusPatch(o, parse(o), T0)!;
    const stored = obj(valid, { status: written.status });
    assert.equal(statusPatch(stored, parse(stored), T0 + 3_600_000), undefined);
  });

  it('lastTransitionTime moves only when the status flips; other condition types are kept in place', () => {
    const other = { type: 'Custom', status: 'True', reason: 'X', message: 'kept', lastTransitionTime: '2020-01-01T00:00:00Z' };
    const before = obj(invalid, {
      status: {
        observedGeneration: 1,
        conditions: [
          other,
          { ...acceptedCondition(parse(obj(invalid))), message: 'older problems', lastTransitionTime: '2024-06-01T00:00:00Z' },
        ],
      },
    });
    // Still False (other problems): the time is kept.
    const same = statusPatch(before, parse(before), T0)!;
    assert.deepEqual(same.status.conditions[0], other);
    assert.equal((same.status.conditions[1] as { lastTransitionTime: string }).lastTransitionTime, '2024-06-01T00:00:00Z');
    // Fixed at generation 2: True now, a new time.
    const fixed = obj(valid, { status: before.status }, 2);
    const flipped = statusPatch(fixed, parse(fixed), T0)!;
    assert.equal(flipped.status.observedGeneration, 2);
    assert.deepEqual(flipped.status.conditions[1], {
      type: 'Accepted',
      status: 'True',
      reason: 'Valid',
      message: ACCEPTED_MESSAGE,
      observedGeneration: 2,
      lastTransitionTime: kubeTime(T0),
    });
  });

  it('a stale observedGeneration is rewritten even when the condition text is the same', () => {
    const o = obj(valid, {}, 2);
    const cond = { ...acceptedCondition(parse(obj(valid))), lastTransitionTime: '2024-01-01T00:00:00Z' };
    const stale = obj(valid, { status: { observedGeneration: 1, conditions: [cond] } }, 2);
    assert.equal(statusPatch(stale, parse(stale), T0)?.status.observedGeneration, 2);
    assert.ok(statusPatch(o, parse(o), T0));
  });

  it('a huge problem list is cut with a count, below the CRD limit', () => {
    const many = { mode: 'events', peers: { include: Array.from({ length: 400 }, (_, i) => `bad-${'x'.repeat(40)}-${i}`) } };
    const c = acceptedCondition(parse(obj(many)));
    assert.ok(c.message.length <= 8192, `${c.message.length}`);
    assert.match(c.message, /… and \d+ more$/);
  });
});

// ---------------------------------------------------------------------------------------------------------

interface LogLine {
  level: number;
  msg: string;
  err?: string;
}

const writers: StatusWriter[] = [];
afterEach(async () => {
  for (const w of writers.splice(0)) await w.stop();
});

function writer(patch: PatchStatusFn) {
  const logs: LogLine[] = [];
  const w = new StatusWriter({
    patch,
    log: pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) }),
    backoff: { initialMs: 10, maxMs: 40 },
    jitterMs: 5,
    random: () => 0.5,
  });
  writers.push(w);
  return { w, logs };
}

function httpError(code: number, message: string): Error {
  return Object.assign(new Error(`HTTP-Code: ${code}`), {
    code,
    body: JSON.stringify({ kind: 'Status', code, message }),
  });
}

describe('StatusWriter', () => {
  it('writes once per needed change; the stored object it gets back stops a second write', async () => {
    const calls: StatusPatch[] = [];
    const { w } = writer(async (_ns, _n, body) => {
      calls.push(body);
      return obj(valid, { status: body.status, metadata: { ...obj(valid).metadata, resourceVersion: '18' } });
    });
    const o = obj(valid);
    w.observe('u-1', o, parse(o));
    w.observe('u-1', o, parse(o)); // the same again before the jitter ran out: still one write
    await until(() => w.stats().writes === 1, 'the write');
    w.resync();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(calls.length, 1);
    assert.deepEqual(w.stats(), { writes: 1, errors: 0, conflicts: 0 });
  });

  it('transient failures (5xx, network) are retried with backoff until they succeed', async () => {
    let n = 0;
    const { w, logs } = writer(async (_ns, _n, body) => {
      n++;
      if (n === 1) throw httpError(503, 'the server is currently unable to handle the request');
      if (n === 2) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
      return obj(valid, { status: body.status, metadata: { ...obj(valid).metadata, resourceVersion: '99' } });
    });
    const o = obj(valid);
    w.observe('u-1', o, parse(o));
    await until(() => w.stats().writes === 1, 'the write after two failures');
    assert.equal(n, 3);
    assert.equal(w.stats().errors, 2);
    const warns = logs.filter((l) => l.level === 40);
    assert.match(String(warns[0]?.err), /HTTP 503/);
    assert.match(String(warns[1]?.err), /ECONNREFUSED/);
  });

  it('403 is not retried on a timer (it waits for a change or a relist), and is warned once, naming the permission', async () => {
    let n = 0;
    let allow = false;
    const { w, logs } = writer(async (_ns, name, body) => {
      n++;
      if (!allow) throw httpError(403, `acceptauditpolicies.doorwatch.io "${name}" is forbidden`);
      return { metadata: { resourceVersion: '50' }, status: body.status };
    });
    for (const name of ['a', 'b', 'c']) {
      const o = obj(valid, { metadata: { ...obj(valid).metadata, name, uid: name } });
      w.observe(name, o, parse(o));
    }
    await until(() => w.stats().errors === 3, 'three failures');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(n, 3, 'no timer retries');
    const warns = logs.filter((l) => l.level === 40);
    assert.equal(warns.length, 1, 'rate-limited');
    assert.match(String(warns[0]!.err), /HTTP 403 .*forbidden — RBAC: .*patch on acceptauditpolicies\/status/);
    allow = true;
    w.resync(); // what a relist does
    await until(() => w.stats().writes === 3, 'written after the relist');
  });

  it('409 Conflict is not an error: the newer object comes through the watch and is looked at again', async () => {
    const { w } = writer(async (_ns, _n, body) => {
      if (body.metadata.resourceVersion === '17') throw httpError(409, 'the object has been modified');
      return { metadata: { resourceVersion: '30' }, status: body.status };
    });
    const o = obj(valid);
    w.observe('u-1', o, parse(o));
    await until(() => w.stats().conflicts === 1, 'the conflict');
    const newer = obj(valid, { metadata: { ...obj(valid).metadata, resourceVersion: '20' } });
    w.observe('u-1', newer, parse(newer));
    await until(() => w.stats().writes === 1, 'written from the newer version');
    assert.equal(w.stats().errors, 0);
  });

  it('forget() and stop() cancel pending writes and abort those in flight', async () => {
    let aborted = false;
    const patched: string[] = [];
    const { w } = writer(
      (_ns, name, _b, signal) =>
        new Promise((_resolve, reject) => {
          patched.push(name);
          signal.addEventListener('abort', () => {
            aborted = true;
            reject(new Error('aborted'));
          });
        }),
    );
    const o = obj(valid);
    w.observe('u-1', o, parse(o));
    const gone = obj(valid, { metadata: { ...obj(valid).metadata, name: 'gone', uid: 'u-2' } });
    w.observe('u-2', gone, parse(gone));
    w.forget('u-2');
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(patched, ['p'], 'the forgotten object is never written');
    await w.stop();
    assert.equal(aborted, true);
    assert.deepEqual(w.stats(), { writes: 0, errors: 0, conflicts: 0 });
  });
});
