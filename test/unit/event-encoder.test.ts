import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ByteSink, encodeEvent, encodeEventInto } from '../../src/agent/event-encoder.js';
import { AcceptEvent, AuditMode, PolicyOrigin, SummaryReason } from '../../src/gen/doorwatch/v1/event.js';
import { randomCorpus } from '../helpers/random-events.js';
import { sampleEvent, sampleHostEvent, sampleUnixEvent } from '../helpers/sample-events.js';

/*
 * The hand-written encoder against the generated one, byte for byte: fixed
 * shapes (every sub-message absent, empty, long, negative, 64-bit extremes,
 * non-ASCII) and a seeded random corpus. A field written in the wrong order,
 * a default not skipped or a length prefix off by one fails here.
 */

const generated = (ev: AcceptEvent) => Buffer.from(AcceptEvent.encode(ev).finish());

describe('fast AcceptEvent encoder', () => {
  const fixed: [string, AcceptEvent][] = [
    ['a fully attributed pod event', sampleEvent()],
    ['a host IPv6 event', sampleHostEvent()],
    ['a unix-socket event', sampleUnixEvent()],
    ['an empty event (every field default)', AcceptEvent.create()],
    ['a failed accept (negative ret: 10-byte varint)', sampleEvent({ ret: -11, success: false, error: 'EAGAIN' })],
    ['64-bit extremes', sampleEvent({ seq: 2n ** 64n - 1n, timeUnixNano: 2n ** 63n, cgroup: { id: 2n ** 64n - 1n, v1Id: 1n } })],
    ['a 300-byte string (2-byte length prefix)', sampleEvent({ error: 'x'.repeat(300) })],
    ['a sub-message over 16 KiB (3-byte length prefix)', sampleEvent({ socket: { unixPath: 'p'.repeat(20_000) } })],
    ['non-ASCII text', sampleEvent({ process: { comm: 'nginx✓é' }, nodeName: 'nœud-😀' })],
    [
      'a summary with a policy',
      sampleEvent({
        summary: { reason: SummaryReason.SUMMARY_REASON_RATE_LIMIT, count: 10n, failedCount: 2n, localPort: 443, peerIp: '::1' },
        policy: { origin: PolicyOrigin.POLICY_ORIGIN_RESOURCE, name: 'shop/web', mode: AuditMode.AUDIT_MODE_SUMMARY },
      }),
    ],
  ];
  for (const [what, ev] of fixed) {
    it(`${what}: identical to AcceptEvent.encode`, () => {
      assert.deepEqual(Buffer.from(encodeEvent(ev)), generated(ev));
    });
  }

  it('2000 random events (seed 7), one after another in one sink: identical to AcceptEvent.encode', () => {
    const corpus = randomCorpus(2000, 7);
    const w = new ByteSink(256); // small on purpose: growth mid-event must keep the earlier bytes
    const ends: number[] = [];
    for (const ev of corpus) {
      encodeEventInto(w, ev);
      ends.push(w.pos);
    }
    const all = w.take();
    let start = 0;
    corpus.forEach((ev, i) => {
      assert.deepEqual(all.subarray(start, ends[i]), generated(ev), `event ${i}`);
      start = ends[i]!;
    });
  });

  it("an event without an id gets its space's, prefix + decimal seq: identical to encoding it with that id", () => {
    const prefix = 'f3c1b2a4-1111-2222-3333-444455556666/0123456789abcdef/';
    const bytes = Buffer.from(prefix, 'utf8');
    const w = new ByteSink(64); // small on purpose: the id grows the sink
    const seqs = [1n, 9n, 10n, 99n, 100n, 123456789n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n];
    for (const seq of seqs) {
      const ev = { ...sampleEvent(), seq, eventId: '' };
      w.pos = 0;
      encodeEventInto(w, ev, bytes);
      assert.deepEqual(Buffer.from(w.buf.subarray(0, w.pos)), generated({ ...ev, eventId: prefix + seq }), `seq ${seq}`);
    }
    // An id the event carries wins; without a prefix an empty id stays empty (as AcceptEvent.encode leaves it).
    const own = { ...sampleEvent(), eventId: 'mine/1' };
    w.pos = 0;
    encodeEventInto(w, own, bytes);
    assert.deepEqual(Buffer.from(w.buf.subarray(0, w.pos)), generated(own));
    const none = { ...sampleEvent(), eventId: '' };
    assert.deepEqual(Buffer.from(encodeEvent(none)), generated(none));
  });

  it('cached per-pod bytes follow the object, and a changed policy value is re-encoded', () => {
    const a = sampleEvent();
    const b = sampleEvent({ pod: { name: 'other' }, policy: { origin: 1, name: 'p1', mode: 1 } });
    const c = sampleEvent({ policy: { origin: 1, name: 'p2', mode: 1 } });
    for (const ev of [a, b, c, a, b]) assert.deepEqual(Buffer.from(encodeEvent(ev)), generated(ev));
  });

  it("a pod's tail (namespaces through enrichment) is copied whole only while all five are the same immutable objects", () => {
    const base = sampleEvent();
    const frozen = {
      namespaces: Object.freeze({ ...base.namespaces! }),
      cgroup: Object.freeze({ ...base.cgroup! }),
      container: Object.freeze({ ...base.container! }),
      pod: base.pod,
      enrichment: Object.freeze({ ...base.enrichment!, missing: [] }),
    };
    const otherPod = sampleEvent({ pod: { name: 'web-2', labels: { app: 'x' } } }).pod;
    const mutableCgroup = { id: 9n, v1Id: 0n };
    // Each step: which part differs from a run of identical frozen tails (undefined: none).
    const steps: [string, Partial<typeof frozen> | undefined][] = [
      ['first', undefined],
      ['same five objects', undefined],
      ['another pod object', { pod: otherPod }],
      ['back to the first pod', undefined],
      ['a mutable cgroup', { cgroup: mutableCgroup as typeof frozen.cgroup }],
      ['the same mutable cgroup, changed', { cgroup: mutableCgroup as typeof frozen.cgroup }],
      ['no container', { container: undefined }],
      ['no pod, no namespaces', { pod: undefined, namespaces: undefined }],
      ['the frozen five again', undefined],
    ];
    steps.forEach(([what, change], i) => {
      if (what.endsWith('changed')) mutableCgroup.id = 10n;
      const e = { ...sampleEvent({ seq: BigInt(i + 1) }), ...frozen, ...change };
      assert.deepEqual(Buffer.from(encodeEvent(e)), generated(e), `step ${i}: ${what}`);
    });
  });

  it('shared frozen process/namespaces/cgroup/local objects reuse their bytes; other objects never do', () => {
    const p1 = Object.freeze({ pid: 1, tid: 1, ppid: 0, uid: 0, gid: 0, comm: 'a' });
    const p2 = Object.freeze({ pid: 2, tid: 3, ppid: 1, uid: 5, gid: 6, comm: 'bb' });
    const mutable = { pid: 7, tid: 7, ppid: 1, uid: 0, gid: 0, comm: 'm' };
    const local = Object.freeze({ ip: '10.0.0.1', port: 80 });
    const seq = [p1, p1, p2, p1, mutable, mutable];
    seq.forEach((proc, i) => {
      if (i === 5) mutable.comm = 'changed'; // the same object, other values: must be re-encoded
      const e = sampleEvent({ seq: BigInt(i + 1) });
      e.process = proc;
      e.socket!.local = i % 2 ? local : { ip: '10.0.0.2', port: 81 };
      e.namespaces = Object.freeze({ mnt: i, pid: 2, net: 3, uts: 4 });
      assert.deepEqual(Buffer.from(encodeEvent(e)), generated(e), `event ${i}`);
    });
  });
});
