import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DECODE_ERROR, type MaybeMalformed } from '../../src/collector/publish.js';
import { ServerCollectorServiceDefinition } from '../../src/collector/server.js';
import { decodePublishRequest, wireCacheSizes } from '../../src/collector/wire.js';
import { PublishRequest } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { sampleEvent, sampleHostEvent, sampleSummary, sampleUnixEvent } from '../helpers/sample-events.js';

/**
 * src/collector/wire.ts must decode exactly as the generated decoder: the
 * same value (deep-equal) for every input it accepts, and an exception
 * whenever the generated decoder throws (the server turns it into
 * INVALID_ARGUMENT), over well-formed, odd and malformed requests.
 */

/** The five per-pod fields a batch context carries (EventBatch.contexts). */
const PER_POD = ['namespaces', 'cgroup', 'container', 'pod', 'enrichment'] as const;

/** A batch's contexts applied by the letter of collector.proto, over the generated decoder's value. */
function withContexts(req: PublishRequest): PublishRequest {
  const b = req.batch;
  if (!b) return req;
  if (b.eventContexts.length && b.eventContexts.length !== b.events.length) throw new Error('contexts: one per event');
  b.eventContexts.forEach((k, i) => {
    if (k === 0) return;
    const c = b.contexts[k - 1];
    if (!c) throw new Error('contexts: no such context');
    const ev = b.events[i]!;
    if (PER_POD.some((f) => ev[f] !== undefined)) throw new Error('contexts: event has its own');
    for (const f of PER_POD) (ev as unknown as Record<string, unknown>)[f] = c[f];
  });
  b.contexts = [];
  b.eventContexts = [];
  return req;
}

function same(bytes: Uint8Array, what: string): 'ok' | 'threw' {
  let want: PublishRequest | undefined;
  let wantErr: unknown;
  try {
    want = PublishRequest.decode(bytes);
  } catch (e) {
    wantErr = e;
  }
  if (want) {
    try {
      want = withContexts(want);
    } catch {
      // Contexts that cannot be applied: wire.ts throws too, in its own words.
      assert.throws(() => decodePublishRequest(bytes), /event_contexts|contexts|per-pod/, what);
      return 'threw';
    }
  }
  let got: PublishRequest | undefined;
  let gotErr: unknown;
  try {
    got = decodePublishRequest(bytes);
  } catch (e) {
    gotErr = e;
  }
  if (wantErr !== undefined) {
    assert.ok(gotErr !== undefined, `${what}: the generated decoder throws (${(wantErr as Error).message}), wire.ts did not`);
    assert.equal((gotErr as Error).message, (wantErr as Error).message, what);
    return 'threw';
  }
  assert.equal(gotErr, undefined, `${what}: wire.ts threw ${(gotErr as Error)?.message}`);
  assert.deepStrictEqual(got, want, what);
  return 'ok';
}

const batchBytes = (events: AcceptEvent[], firstSeq = events[0]?.seq ?? 1n, losses?: Partial<Record<string, bigint>>) =>
  PublishRequest.encode({
    batch: {
      firstSeq,
      events,
      losses: losses
        ? { kernelRingFull: 0n, decodeErrors: 0n, bpfRecursionMisses: 0n, queueDrops: 0n, spoolDrops: 0n, ...losses }
        : undefined,
      contexts: [],
      eventContexts: [],
    },
  }).finish();

/**
 * `events` as an agent sends them to a collector that takes contexts: each distinct set of per-pod fields
 * once (EventBatch.contexts), the events without them and a reference each (events with none: 0).
 */
function compactBatch(events: AcceptEvent[]): { bytes: Uint8Array; contexts: number } {
  const contexts: AcceptEvent[] = [];
  const keys = new Map<string, number>();
  const eventContexts: number[] = [];
  const stripped = events.map((e) => {
    const part = { namespaces: e.namespaces, cgroup: e.cgroup, container: e.container, pod: e.pod, enrichment: e.enrichment };
    if (Object.values(part).every((v) => v === undefined)) {
      eventContexts.push(0);
      return e;
    }
    const c = AcceptEvent.fromPartial(part);
    const key = Buffer.from(AcceptEvent.encode(c).finish()).toString('latin1');
    let k = keys.get(key);
    if (k === undefined) {
      contexts.push(c);
      k = contexts.length;
      keys.set(key, k);
    }
    eventContexts.push(k);
    return { ...e, namespaces: undefined, cgroup: undefined, container: undefined, pod: undefined, enrichment: undefined };
  });
  const bytes = PublishRequest.encode({
    batch: { firstSeq: events[0]!.seq, events: stripped, losses: undefined, contexts, eventContexts },
  }).finish();
  return { bytes, contexts: contexts.length };
}

/** A deterministic PRNG (mulberry32): the corpus is the same every run. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function variedEvents(): AcceptEvent[] {
  const evs: AcceptEvent[] = [];
  for (let i = 0; i < 12; i++) {
    const seq = BigInt(100 + i);
    const base = { seq, eventId: `boot-1/inst-1/${seq}` };
    evs.push(sampleEvent({ ...base, socket: { peer: { ip: `10.0.0.${i}`, port: 40000 + i } } }));
  }
  evs.push(sampleEvent({ seq: 112n, pod: { name: 'web-ü-ñ', labels: { 'app.kubernetes.io/name': 'wéb', '': 'empty-key' } } }));
  evs.push(sampleEvent({ seq: 113n, process: { comm: '\u{1f600}srv' }, error: 'EAGAIN', ret: -11, success: false }));
  evs.push(sampleEvent({ seq: 114n, nodeName: '\ufeffbom-node', flags: ['a', 'b'], acceptFlagNames: [] }));
  evs.push(sampleEvent({ seq: 115n, timeUnixNano: 0xffff_ffff_ffff_ffffn, ktimeNs: 1n << 63n, durationNs: 0x1_0000_0000n }));
  evs.push(sampleEvent({ seq: 116n, eventId: 'x'.repeat(300), pod: { annotations: { big: 'y'.repeat(5000) } } }));
  evs.push(sampleSummary({ seq: 117n }));
  evs.push(sampleHostEvent({ seq: 118n }));
  evs.push(sampleUnixEvent({ seq: 119n }));
  evs.push(sampleEvent({ seq: 120n, pod: { labels: { __proto__: 'x', constructor: 'y' } as Record<string, string> } }));
  evs.push({ ...sampleEvent({ seq: 121n }), pod: undefined, container: undefined, socket: undefined, process: undefined });
  evs.push(
    sampleEvent({ seq: 122n, socket: { v4Mapped: true, peerPid: 77, unixPath: '/run/x.sock' }, userAddress: { fault: true } }),
  );
  return evs;
}

describe('wire.ts decodePublishRequest', () => {
  it('repeated process, listener, local address and flag bytes share one frozen object; other bytes never do', () => {
    const proc = (pid: number) => ({ pid, tid: pid + 1, ppid: 1, uid: 101, gid: 102, comm: 'nginx' });
    const ev = (seq: bigint, pid: number, port: number, flags: string[]) =>
      sampleEvent({
        seq,
        process: proc(pid),
        socket: { ...sampleEvent().socket!, local: { ip: '10.0.0.7', port } },
        listener: { fd: 3, backlog: pid % 2, maxBacklog: 511, resolved: true },
        acceptFlagNames: flags,
      });
    const events = [
      ev(1n, 812, 80, ['SOCK_NONBLOCK']),
      ev(2n, 812, 80, ['SOCK_NONBLOCK']),
      ev(3n, 813, 443, []),
      ev(4n, 812, 80, ['SOCK_NONBLOCK', 'SOCK_CLOEXEC']),
    ];
    // 300 more processes between two of pid 812: more than the cache's slots, each decoded right.
    for (let i = 0; i < 300; i++) events.push(ev(5n + BigInt(i), 2000 + i, 8000 + (i % 7), []));
    events.push(ev(305n, 812, 80, ['SOCK_NONBLOCK']));
    const got = decodePublishRequest(batchBytes(events)).batch!.events;
    assert.deepStrictEqual(
      got,
      PublishRequest.decode(batchBytes(events)).batch!.events,
      'the same values as the generated decoder',
    );
    const [a, b, c, d] = got as [AcceptEvent, AcceptEvent, AcceptEvent, AcceptEvent];
    assert.equal(a.process, b.process, 'equal process bytes: one object');
    assert.ok(Object.isFrozen(a.process) && Object.isFrozen(a.socket!.local) && Object.isFrozen(a.listener));
    assert.notEqual(c.process, a.process);
    assert.equal(d.process, a.process, 'seen two events before: still the same object');
    assert.equal(a.socket!.local, b.socket!.local);
    assert.notEqual(c.socket!.local, a.socket!.local);
    assert.notEqual(a.socket, b.socket, 'the socket carries the peer: one per event');
    assert.equal(a.listener, b.listener);
    assert.notEqual(c.listener, a.listener, 'another backlog');
    assert.equal(a.acceptFlagNames, b.acceptFlagNames, 'equal flag names: one frozen array');
    assert.ok(Object.isFrozen(a.acceptFlagNames));
    assert.notEqual(d.acceptFlagNames, a.acceptFlagNames);
    assert.deepEqual(c.acceptFlagNames, []);
    assert.throws(() => (a.process as { pid: number }).pid++, TypeError, 'shared objects cannot be changed by a consumer');
  });

  it('equals the generated decoder on well-formed requests', () => {
    const evs = variedEvents();
    same(batchBytes(evs), 'varied batch');
    for (const [i, e] of evs.entries()) same(batchBytes([e]), `event ${i} alone`);
    same(batchBytes(evs, 100n, { kernelRingFull: 3n, spoolDrops: 0xffff_ffff_ffffn }), 'with losses');
    same(batchBytes([], 0n, { queueDrops: 1n }), 'losses only');
    same(batchBytes([]), 'empty batch');
    same(
      PublishRequest.encode({ hello: { agent: { nodeName: 'n', bootId: 'b', instanceId: 'i', version: 'v' } } }).finish(),
      'hello',
    );
    same(new Uint8Array(0), 'empty request');
    same(
      PublishRequest.encode({
        hello: { agent: undefined },
        batch: { firstSeq: 1n, events: [evs[0]!], losses: undefined, contexts: [], eventContexts: [] },
      }).finish(),
      'both',
    );
  });

  it('shares sub-messages with equal bytes, and only those', () => {
    const evs = [sampleEvent({ seq: 1n }), sampleEvent({ seq: 2n }), sampleEvent({ seq: 3n, pod: { name: 'other' } })];
    const got = decodePublishRequest(batchBytes(evs)).batch!.events;
    assert.equal(got[0]!.pod, got[1]!.pod, 'same pod bytes: one object');
    assert.equal(got[0]!.container, got[2]!.container);
    assert.notEqual(got[0]!.pod, got[2]!.pod, 'another pod: another object');
    assert.equal(got[2]!.pod!.name, 'other');
    assert.notEqual(got[0]!.socket, got[1]!.socket, 'per-event parts are not shared');
    // A later request with the same pod bytes still gets the shared object.
    assert.equal(decodePublishRequest(batchBytes([sampleEvent({ seq: 4n })])).batch!.events[0]!.pod, got[0]!.pod);
  });

  it('tells apart tails that differ in one byte anywhere (its cache key is a sample of the bytes)', () => {
    // Pod names of one length, differing at each position in turn: most positions are not in the sampled key,
    // so their tails share a fingerprint and only the byte-for-byte check keeps them apart.
    const base = 'web-0123456789abcdefghij';
    const events = [...base].map((_, i) =>
      sampleEvent({ seq: BigInt(i + 1), pod: { name: `${base.slice(0, i)}#${base.slice(i + 1)}` } }),
    );
    const got = decodePublishRequest(batchBytes(events));
    assert.deepEqual(
      got.batch!.events.map((e) => e.pod?.name),
      events.map((e) => e.pod?.name),
    );
    // The same again: every one from the cache, still its own.
    const again = decodePublishRequest(batchBytes(events));
    assert.deepEqual(
      again.batch!.events.map((e) => e.pod?.name),
      events.map((e) => e.pod?.name),
    );
  });

  it('applies batch contexts: a batch of events sharing contexts decodes to the whole events', () => {
    const events = variedEvents();
    const { bytes, contexts } = compactBatch(events);
    assert.ok(contexts >= 2 && contexts < events.length, `${contexts} contexts for ${events.length} events`);
    assert.ok(bytes.length < batchBytes(events).length * 0.8, `smaller (${bytes.length} vs ${batchBytes(events).length})`);
    const got = decodePublishRequest(bytes);
    assert.deepStrictEqual(got, PublishRequest.decode(batchBytes(events)));
    assert.equal(same(bytes, 'compact batch'), 'ok');
    // Events whose pods are equal share one pod object, as events of one pod do in whole batches.
    const pods = got.batch!.events.map((e) => e.pod).filter((p) => p !== undefined);
    let shared = 0;
    for (const [i, p] of pods.entries())
      for (const q of pods.slice(i + 1)) {
        const eq = JSON.stringify(p) === JSON.stringify(q);
        assert.equal(p === q, eq, 'one object per distinct pod');
        if (eq) shared++;
      }
    assert.ok(shared > 0, 'some events share a pod');
  });

  it('refuses contexts that cannot be applied: a count that is not one per event, a missing context, an event with its own', () => {
    const events = variedEvents().slice(0, 6);
    const strip = (e: AcceptEvent) => ({
      ...e,
      namespaces: undefined,
      cgroup: undefined,
      container: undefined,
      pod: undefined,
      enrichment: undefined,
    });
    const ctx = AcceptEvent.fromPartial({ pod: { name: 'p', namespace: 'n' } });
    const bad = (eventContexts: number[], evs: AcceptEvent[]) =>
      PublishRequest.encode({
        batch: { firstSeq: evs[0]!.seq, events: evs, losses: undefined, contexts: [ctx], eventContexts },
      }).finish();
    const stripped = events.map(strip);
    for (const [what, bytes, msg] of [
      ['too few refs', bad([1, 1], stripped), /has 2 entries for 6 events/],
      ['a ref past the contexts', bad([1, 0, 2, 0, 0, 0], stripped), /event_contexts\[2\] is 2, but the batch has 1 contexts/],
      [
        'an event with its own pod',
        bad([1, 1, 1, 1, 1, 1], [...stripped.slice(0, 5), events[5]!.pod ? events[5]! : { ...stripped[5]!, pod: ctx.pod }]),
        /carries per-pod fields/,
      ],
    ] as const) {
      assert.throws(() => decodePublishRequest(bytes), msg, what);
      assert.equal(same(bytes, what), 'threw');
    }
    // No refs at all: contexts are unused, the events are as sent.
    assert.equal(same(bad([], stripped), 'unused contexts'), 'ok');
  });

  it('equals the generated decoder, contexts applied, on every truncation and random corruption of a compact batch', () => {
    const { bytes } = compactBatch(variedEvents().slice(0, 14));
    let threw = 0;
    for (let n = 0; n < bytes.length; n++) if (same(bytes.subarray(0, n), `compact truncated to ${n}`) === 'threw') threw++;
    assert.ok(threw > bytes.length / 2, `most truncations are errors (${threw} of ${bytes.length})`);
    const rand = rng(43);
    let ok = 0;
    for (let k = 0; k < 2000; k++) {
      const b = Uint8Array.from(bytes);
      for (let j = 0; j < 1 + Math.floor(rand() * 3); j++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      if (same(b, `compact corruption ${k}`) === 'ok') ok++;
    }
    assert.ok(ok > 0 && ok < 2000, `a mix of errors and values (${ok} decoded)`);
  });

  it('equals the generated decoder on every truncation', () => {
    const bytes = batchBytes(variedEvents().slice(10, 16));
    let threw = 0;
    for (let n = 0; n < bytes.length; n++) if (same(bytes.subarray(0, n), `truncated to ${n}`) === 'threw') threw++;
    assert.ok(threw > bytes.length / 2, `most truncations are errors (${threw} of ${bytes.length})`);
  });

  it('equals the generated decoder on random corruption', () => {
    const rand = rng(42);
    const base = batchBytes(variedEvents().slice(0, 14));
    let threw = 0;
    for (let k = 0; k < 3000; k++) {
      const b = Uint8Array.from(base);
      const edits = 1 + Math.floor(rand() * 4);
      for (let j = 0; j < edits; j++) {
        const at = Math.floor(rand() * b.length);
        const r = rand();
        // Flip a bit, write a random byte, or a byte that matters to protobuf (a tag, 0, 0xff, a UTF-8 lead).
        b[at] =
          r < 0.4
            ? b[at]! ^ (1 << Math.floor(rand() * 8))
            : r < 0.7
              ? Math.floor(rand() * 256)
              : [0, 0xff, 0x80, 0xc3, 0x0b, 0x0c][Math.floor(rand() * 6)]!;
      }
      if (same(b, `corruption ${k}`) === 'threw') threw++;
    }
    assert.ok(threw > 50 && threw < 3000, `a mix of errors and values (${threw} threw)`);
  });

  it('equals the generated decoder on odd but valid encodings', () => {
    // One event (seq 5) with `extra` appended to its body, in a batch, in a request.
    const body0 = Buffer.from(AcceptEvent.encode(sampleEvent({ seq: 5n })).finish());
    const varint = (v: number) => (v < 128 ? [v] : [(v & 0x7f) | 0x80, v >> 7]);
    const inner = (extra: number[]) => {
      const body = Buffer.concat([body0, Buffer.from(extra)]);
      const batch = Buffer.concat([Buffer.from([0x08, 5, 0x12, ...varint(body.length)]), body]);
      return Buffer.concat([Buffer.from([0x12, ...varint(batch.length)]), batch]);
    };
    same(inner([]), 'the plain event');
    same(inner([0xf8, 0x06, 0x01]), 'unknown varint field 111');
    same(inner([0x10, 0x09]), 'seq twice: the last wins');
    same(inner([0x00, 0x10, 0x09]), 'zero tag');
    same(inner([0x0c]), 'end-group tag');
    same(inner([0x0b, 0x0c]), 'empty group');
    same(inner([0x2a, 0x02, 0xc3, 0x28]), 'invalid UTF-8 in nodeName');
    same(inner([0x2a, 0x03, 0xef, 0xbb, 0xbf]), 'a lone BOM as nodeName');
    same(inner([0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 'ret -1 in ten bytes');
    same(inner([0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 'an eleven-byte varint');
    same(inner([0x88, 0x00, 0x05]), 'a two-byte tag for field 1 varint (wrong wire type)');
    same(inner([0x90, 0x00, 0x07]), 'a non-canonical two-byte tag for seq');
    same(inner([0xaa, 0x01, 0x02, 0x08, 0x01]), 'a pod of two bytes (uid-less)');
    same(inner([0xaa, 0x01, 0x03, 0x0a, 0x05, 0x61]), 'a pod whose string runs past its end');
    same(inner([0xaa, 0x01, 0x01, 0x08]), 'a pod ending inside a varint');
    same(inner([0x72, 0x02, 0x00, 0x08]), 'a process with a zero tag');
  });

  it('keeps its shared-object caches bounded by bytes (large pods) as well as by entries', () => {
    const big = 'a'.repeat(4096);
    for (let b = 0; b < 12; b++) {
      const evs = Array.from({ length: 500 }, (_, i) => {
        const n = b * 500 + i;
        return sampleEvent({ seq: BigInt(n + 1), pod: { uid: `uid-${n}`, annotations: { big } } });
      });
      decodePublishRequest(batchBytes(evs));
    }
    const sizes = wireCacheSizes();
    // 6 000 distinct 4 KiB pods: tails are bounded by 16 MiB of keys, pods by 8 MiB.
    assert.ok(sizes.tails! <= (16 << 20) / 4096, `tails ${sizes.tails}`);
    assert.ok(sizes.pods! <= (8 << 20) / 4096, `pods ${sizes.pods}`);
    assert.ok(sizes.tails! > 0 && sizes.pods! > 0);
  });
});

describe('server.ts: a Publish request is decoded when first read, not when it arrives', () => {
  const deserialize = (b: Uint8Array) =>
    ServerCollectorServiceDefinition.methods.publish.requestType.decode(b) as MaybeMalformed<PublishRequest>;

  it('reads what the bytes hold at the first read, once, and equals the decoder', () => {
    const evs = [sampleEvent({ seq: 7n }), sampleEvent({ seq: 8n })];
    const bytes = batchBytes(evs);
    const req = deserialize(bytes);
    // Changed after it arrived and before it is read: the read sees the change, so nothing was decoded yet.
    const at = Buffer.from(bytes).indexOf('nginx');
    assert.ok(at > 0);
    bytes[at] = 'N'.charCodeAt(0);
    assert.equal(req.batch!.events[0]!.process!.comm, 'Nginx');
    assert.deepStrictEqual(req.batch, decodePublishRequest(bytes).batch);
    assert.equal(req.hello, undefined);
    assert.equal(req[DECODE_ERROR], undefined);
    bytes[at] = 'x'.charCodeAt(0);
    assert.equal(req.batch!.events[0]!.process!.comm, 'Nginx', 'decoded once');
  });

  it('malformed bytes: no exception on arrival, DECODE_ERROR (and an empty request) on read', () => {
    const req = deserialize(Uint8Array.from([0x12, 0x7f, 0x01]));
    assert.match(req[DECODE_ERROR] ?? '', /./);
    assert.equal(req.batch, undefined);
    assert.equal(req.hello, undefined);
  });
});
