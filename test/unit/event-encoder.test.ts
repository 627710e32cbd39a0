import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ByteSink, encodeEvent, encodeEventInto } from '../../src/agent/event-encoder.js';
import { AcceptEvent, AuditMode, PolicyOrigin, SummaryReason } from '../../src/gen/doorwatch/v1/event.js';
import { sampleEvent, sampleHostEvent, sampleUnixEvent } from '../helpers/sample-events.js';

/*
 * The hand-written encoder against the generated one, byte for byte: fixed
 * shapes (every sub-message absent, empty, long, negative, 64-bit extremes,
 * non-ASCII) and a seeded random corpus. A field written in the wrong order,
 * a default not skipped or a length prefix off by one fails here.
 */

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

const ALPHABET = ['a', 'Z', '0', '/', '-', '"', '\\', 'é', '✓', '😀', '\u0000', ' '];

function randomCorpus(n: number, seed: number): AcceptEvent[] {
  const r = rng(seed);
  const int = (max: number) => Math.floor(r() * max);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const str = (max: number) => {
    const len = r() < 0.2 ? 0 : int(max);
    let s = '';
    for (let i = 0; i < len; i++) s += r() < 0.8 ? String.fromCharCode(97 + int(26)) : pick(ALPHABET);
    return s;
  };
  const u32 = () => pick([0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, int(2 ** 32)]);
  const i32 = () => pick([0, 1, -1, -2147483648, 2147483647, int(2 ** 16) - 2 ** 15]);
  const u64 = () =>
    pick([0n, 1n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n, BigInt(int(2 ** 32)) * 1000003n]);
  const maybe = <T>(make: () => T): T | undefined => (r() < 0.2 ? undefined : make());
  const map = () => Object.fromEntries(Array.from({ length: int(4) }, () => [str(20) || 'k', str(30)]));
  return Array.from({ length: n }, () => ({
    eventId: str(60),
    seq: u64(),
    timeUnixNano: u64(),
    ktimeNs: u64(),
    nodeName: pick(['', 'node-a', 'node-b', str(300)]),
    source: int(4),
    ret: i32(),
    success: r() < 0.5,
    error: str(10),
    durationNs: u64(),
    acceptFlags: u32(),
    acceptFlagNames: pick([[], ['SOCK_NONBLOCK'], ['SOCK_NONBLOCK', 'SOCK_CLOEXEC']]),
    flags: pick([[], ['NO_ENTER'], ['A', 'B', 'C']]),
    process: maybe(() => ({ pid: u32(), tid: u32(), ppid: u32(), uid: u32(), gid: u32(), comm: str(16) })),
    socket: maybe(() => ({
      family: int(5),
      familyNumber: u32(),
      type: str(8),
      protocol: u32(),
      local: maybe(() => ({ ip: str(40), port: u32() })),
      peer: maybe(() => ({ ip: str(40), port: u32() })),
      v4Mapped: r() < 0.5,
      unixPath: str(200),
      peerPid: u32(),
      resolved: r() < 0.5,
    })),
    listener: maybe(() => ({ fd: i32(), backlog: u32(), maxBacklog: u32(), resolved: r() < 0.5 })),
    userAddress: maybe(() => ({
      present: r() < 0.5,
      addrlen: u32(),
      familyNumber: u32(),
      ip: str(40),
      port: u32(),
      fault: r() < 0.5,
      mismatch: r() < 0.5,
    })),
    namespaces: maybe(() => ({ mnt: u32(), pid: u32(), net: u32(), uts: u32() })),
    cgroup: maybe(() => ({ id: u64(), v1Id: u64() })),
    container: maybe(() => ({
      id: str(64),
      runtime: str(10),
      name: str(20),
      image: str(80),
      imageId: str(150),
      cgroupPath: str(200),
    })),
    pod: maybe(() => ({
      namespace: str(20),
      name: str(40),
      uid: str(36),
      labels: map(),
      annotations: map(),
      workload: maybe(() => ({ kind: str(12), name: str(30), inferred: r() < 0.5 })),
      serviceAccount: str(20),
      nodeName: str(20),
      ip: str(15),
      hostNetwork: r() < 0.5,
      qosClass: str(10),
      namespaceLabels: map(),
      deleted: r() < 0.5,
    })),
    enrichment: maybe(() => ({
      status: int(4),
      missing: pick([[], ['pod'], ['pod', 'container']]),
      reason: str(150),
      cgroupFromProc: r() < 0.5,
      waitedMs: u32(),
    })),
    kind: int(3),
    summary: maybe(() => ({
      reason: int(3),
      count: u64(),
      failedCount: u64(),
      firstTimeUnixNano: u64(),
      lastTimeUnixNano: u64(),
      intervalStartUnixNano: u64(),
      intervalEndUnixNano: u64(),
      localPort: u32(),
      peerIp: str(40),
      peersFolded: r() < 0.5,
    })),
    policy: maybe(() => ({ origin: int(6), name: pick(['a', 'b', str(30)]), mode: int(4) })),
    // The agent never sets these (the collector does); its encoder leaves them out.
    peerAttribution: undefined,
    localAttribution: undefined,
    listenerInfo: maybe(() => ({ origin: int(5), inode: u64(), requestedBacklog: i32(), firstSeenUnixNano: u64() })),
    findingInfo: maybe(() => ({
      ruleId: 'undeclared-listener',
      uid: str(60),
      title: str(80),
      reason: str(120),
      port: u32(),
      protocol: pick(['TCP', 'UDP']),
      declaredPorts: [{ containerPort: u32(), hostPort: u32(), protocol: 'TCP', container: str(20), name: str(10) }],
    })),
  }));
}

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

  it('cached per-pod bytes follow the object, and a changed policy value is re-encoded', () => {
    const a = sampleEvent();
    const b = sampleEvent({ pod: { name: 'other' }, policy: { origin: 1, name: 'p1', mode: 1 } });
    const c = sampleEvent({ policy: { origin: 1, name: 'p2', mode: 1 } });
    for (const ev of [a, b, c, a, b]) assert.deepEqual(Buffer.from(encodeEvent(ev)), generated(ev));
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
