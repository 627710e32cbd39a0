import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeEvent } from '../../src/formats/ocsf.js';
import {
  AcceptEvent,
  AddressFamily,
  EnrichmentStatus,
  EventKind,
  type Pod,
  PolicyOrigin,
  SummaryReason,
} from '../../src/gen/doorwatch/v1/event.js';
import { parsePolicyConfig } from '../../src/policy/config.js';
import { type PodView, PolicyEngine } from '../../src/policy/engine.js';
import { parseResource } from '../../src/policy/resource.js';
import { PolicyStage } from '../../src/policy/stage.js';
import { RateLimiter, Summarizer } from '../../src/policy/summarize.js';
import { until } from '../helpers/wait.js';

// Summaries (one record per pod or host cgroup, reason, port, peer and
// interval; bounded, counts exact) and the policy stage that routes accepts
// to events, summaries or userspace filtering. Clocks are injected.

const MODE = SummaryReason.SUMMARY_REASON_MODE;
const RATE = SummaryReason.SUMMARY_REASON_RATE_LIMIT;

interface Acc {
  t?: bigint;
  pod?: string;
  cgroup?: bigint;
  v1?: bigint;
  port?: number;
  peer?: string;
  ok?: boolean;
}

function acc(a: Acc = {}): AcceptEvent {
  const ok = a.ok ?? true;
  return AcceptEvent.fromPartial({
    timeUnixNano: a.t ?? 1000n,
    success: ok,
    ret: ok ? 5 : -24,
    cgroup: { id: a.cgroup ?? 77n, v1Id: a.v1 ?? 0n },
    pod: a.pod === undefined ? undefined : { uid: a.pod, namespace: 'ns', name: a.pod },
    socket: ok
      ? {
          family: AddressFamily.ADDRESS_FAMILY_INET,
          local: { port: a.port ?? 443 },
          peer: { ip: a.peer ?? '10.0.0.9', port: 40000 },
          resolved: true,
        }
      : { local: { port: 0 }, peer: { ip: '', port: 0 }, resolved: false },
  });
}

function summarizer(o: { maxKeys?: number; intervalMs?: number } = {}) {
  let now = 5_000n;
  const batches: AcceptEvent[][] = [];
  const s = new Summarizer({
    intervalMs: o.intervalMs ?? 10_000,
    maxKeys: o.maxKeys ?? 100,
    emit: (b) => batches.push(b),
    nowNs: () => now,
  });
  return {
    s,
    batches,
    at: (t: bigint) => {
      now = t;
    },
    /** Everything emitted so far, flattened. */
    all: () => batches.flat(),
  };
}

const keyOf = (e: AcceptEvent) =>
  `${e.pod?.uid ?? `cg:${e.cgroup?.id}`}|${e.summary?.reason}|${e.summary?.localPort}|${e.summary?.peerIp}`;
const total = (evs: AcceptEvent[]) => evs.reduce((n, e) => n + e.summary!.count, 0n);

describe('Summarizer', () => {
  it('one record per key with exact count, failed count, first/last time and the interval', () => {
    const { s, batches, at } = summarizer();
    s.add(acc({ pod: 'p1', t: 300n }), MODE);
    s.add(acc({ pod: 'p1', t: 100n }), MODE);
    s.add(acc({ pod: 'p1', t: 200n }), MODE);
    s.add(acc({ pod: 'p1', t: 50n, ok: false }), MODE);
    s.add(acc({ pod: 'p1', t: 900n, ok: false }), MODE);
    assert.equal(batches.length, 0, 'nothing before the interval ends');
    at(9_000n);
    s.flush();
    assert.equal(batches.length, 1);
    const [ok, failed] = batches[0]!;
    assert.equal(ok!.kind, EventKind.EVENT_KIND_SUMMARY);
    assert.deepEqual(ok!.summary, {
      reason: MODE,
      count: 3n,
      failedCount: 0n,
      firstTimeUnixNano: 100n,
      lastTimeUnixNano: 300n,
      intervalStartUnixNano: 5_000n,
      intervalEndUnixNano: 9_000n,
      localPort: 443,
      peerIp: '10.0.0.9',
      peersFolded: false,
    });
    // Failed accepts have no peer (nor port): their own key.
    assert.deepEqual(failed!.summary, {
      reason: MODE,
      count: 2n,
      failedCount: 2n,
      firstTimeUnixNano: 50n,
      lastTimeUnixNano: 900n,
      intervalStartUnixNano: 5_000n,
      intervalEndUnixNano: 9_000n,
      localPort: 0,
      peerIp: '',
      peersFolded: false,
    });
    // The sample is the first accept of the key.
    assert.equal(ok!.timeUnixNano, 300n);
    assert.equal(ok!.pod?.uid, 'p1');
  });

  it('the key is (pod or host cgroup, reason, port, peer)', () => {
    const { s, all } = summarizer();
    const evs = [
      acc({ pod: 'p1' }),
      acc({ pod: 'p1' }),
      acc({ pod: 'p2' }),
      acc({ pod: 'p1', port: 80 }),
      acc({ pod: 'p1', peer: '10.0.0.10' }),
      acc({ cgroup: 5n }),
      acc({ cgroup: 5n }),
      acc({ cgroup: 6n }),
      acc({ cgroup: 5n, v1: 9n }),
    ];
    for (const e of evs) s.add(e, MODE);
    s.add(acc({ pod: 'p1' }), RATE);
    s.flush();
    assert.deepEqual(
      all().map((e) => [keyOf(e), e.summary!.count]),
      [
        [`p1|${MODE}|443|10.0.0.9`, 2n],
        [`p2|${MODE}|443|10.0.0.9`, 1n],
        [`p1|${MODE}|80|10.0.0.9`, 1n],
        [`p1|${MODE}|443|10.0.0.10`, 1n],
        [`cg:5|${MODE}|443|10.0.0.9`, 2n],
        [`cg:6|${MODE}|443|10.0.0.9`, 1n],
        [`cg:5|${MODE}|443|10.0.0.9`, 1n], // same v2 id, another v1 id: another host cgroup
        [`p1|${RATE}|443|10.0.0.9`, 1n],
      ],
    );
    assert.equal(all()[6]!.cgroup?.v1Id, 9n);
  });

  it('each interval starts where the last ended, and closes its rows', () => {
    const { s, batches, at } = summarizer();
    s.add(acc({ pod: 'p' }), MODE);
    at(6_000n);
    s.flush();
    at(7_000n);
    s.flush(); // nothing open: nothing emitted, the interval still moves
    s.add(acc({ pod: 'p' }), MODE);
    s.add(acc({ pod: 'p' }), MODE);
    at(8_000n);
    s.flush();
    assert.equal(batches.length, 2);
    assert.deepEqual(
      batches.map((b) => [b[0]!.summary!.intervalStartUnixNano, b[0]!.summary!.intervalEndUnixNano, b[0]!.summary!.count]),
      [
        [5_000n, 6_000n, 1n],
        [7_000n, 8_000n, 2n],
      ],
    );
    assert.deepEqual(s.stats(), { folded: 3, summaries: 2, keysFolded: 0, open: 0 });
  });

  it('past maxKeys, new peers of a (pod, port) fold into one row; known keys keep theirs', () => {
    const { s, all } = summarizer({ maxKeys: 3 });
    for (const peer of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) s.add(acc({ pod: 'p', peer }), MODE);
    assert.equal(s.stats().keysFolded, 0);
    s.add(acc({ pod: 'p', peer: '10.0.0.4' }), MODE);
    s.add(acc({ pod: 'p', peer: '10.0.0.5' }), MODE);
    s.add(acc({ pod: 'p', peer: '10.0.0.5', ok: false }), MODE); // failed: no peer to fold: its listener's row
    s.add(acc({ pod: 'p', peer: '10.0.0.1' }), MODE); // an existing key
    s.add(acc({ pod: 'p', peer: '10.0.0.6', port: 80 }), MODE); // another port: its own folded row
    assert.equal(s.stats().keysFolded, 3, 'the three accepts with a new peer past maxKeys');
    assert.equal(s.stats().open, 6);
    s.flush();
    const rows = all().map((e) => [
      e.summary!.localPort,
      e.summary!.peerIp,
      e.summary!.peersFolded,
      e.summary!.count,
      e.summary!.failedCount,
    ]);
    assert.deepEqual(rows, [
      [443, '10.0.0.1', false, 2n, 0n],
      [443, '10.0.0.2', false, 1n, 0n],
      [443, '10.0.0.3', false, 1n, 0n],
      [443, '', true, 2n, 0n],
      [0, '', false, 1n, 1n],
      [80, '', true, 1n, 0n],
    ]);
    assert.equal(total(all()), 8n);
  });

  it('past twice maxKeys, new ports of a pod fold too (port 0); counts stay exact', () => {
    const { s, all } = summarizer({ maxKeys: 2 });
    let n = 0;
    const add = (a: Acc) => {
      s.add(acc({ pod: 'p', ...a }), MODE);
      n++;
    };
    add({ port: 1, peer: '10.0.0.1' });
    add({ port: 1, peer: '10.0.0.2' });
    add({ port: 1, peer: '10.0.0.3' }); // peers of port 1 folded (3 rows)
    add({ port: 2, peer: '10.0.0.1' }); // peers of port 2 folded (4 rows)
    add({ port: 3, peer: '10.0.0.1' }); // 4 >= 2 x 2: ports folded (5 rows)
    add({ port: 4, peer: '10.0.0.9' });
    add({ port: 1, peer: '10.0.0.7' }); // port 1 has a folded row: still used
    add({ port: 1, peer: '10.0.0.1' }); // an exact key: still used
    for (let i = 0; i < 100; i++) add({ port: 1000 + i, peer: `10.1.0.${i}` });
    s.add(acc({ pod: 'q', port: 5, peer: '10.0.0.1' }), MODE); // another pod: its own coarse row
    n++;
    assert.equal(s.stats().open, 6);
    s.flush();
    const rows = all().map((e) => [
      e.pod?.uid,
      e.summary!.localPort,
      e.summary!.peerIp,
      e.summary!.peersFolded,
      e.summary!.count,
    ]);
    assert.deepEqual(rows, [
      ['p', 1, '10.0.0.1', false, 2n],
      ['p', 1, '10.0.0.2', false, 1n],
      ['p', 1, '', true, 2n],
      ['p', 2, '', true, 1n],
      ['p', 0, '', true, 102n],
      ['q', 0, '', true, 1n],
    ]);
    assert.equal(total(all()), BigInt(n), 'every accept counted once');
    assert.equal(s.stats().folded, n);
  });

  it('stop() flushes what is open; start() flushes every interval', async () => {
    const a = summarizer();
    a.s.start();
    a.s.add(acc({ pod: 'p' }), MODE);
    a.s.stop();
    assert.equal(a.batches.length, 1);
    assert.equal(a.all()[0]!.summary!.count, 1n);
    a.s.stop();
    assert.equal(a.batches.length, 1, 'nothing open: nothing more');

    const b = summarizer({ intervalMs: 20 });
    b.s.start();
    b.s.add(acc({ pod: 'p' }), MODE);
    await until(() => b.batches.length === 1, 'the interval timer flushed', 2000);
    b.s.stop();
    assert.equal(b.batches.length, 1);
  });
});

describe('RateLimiter', () => {
  it('a burst, then eventsPerSecond; never more than the burst saved up', () => {
    let now = 1_000;
    const r = new RateLimiter(() => now);
    const e = acc({ pod: 'p' });
    const take = () => r.take(e, 2, 3);
    assert.deepEqual([take(), take(), take(), take()], [true, true, true, false]);
    now += 499; // 0.998 tokens
    assert.equal(take(), false);
    now += 1; // 1 token, counting the 499ms before
    assert.equal(take(), true);
    assert.equal(take(), false);
    now += 60_000; // capped at the burst
    assert.deepEqual([take(), take(), take(), take()], [true, true, true, false]);
  });

  it('one bucket per pod (or host cgroup)', () => {
    const now = 0;
    const r = new RateLimiter(() => now);
    assert.equal(r.take(acc({ pod: 'a' }), 1, 1), true);
    assert.equal(r.take(acc({ pod: 'a' }), 1, 1), false);
    assert.equal(r.take(acc({ pod: 'b' }), 1, 1), true);
    assert.equal(r.take(acc({ cgroup: 9n }), 1, 1), true);
    assert.equal(r.take(acc({ cgroup: 9n }), 1, 1), false);
    assert.equal(r.take(acc({ cgroup: 10n }), 1, 1), true);
  });

  it('sweep forgets idle buckets only', () => {
    let now = 0;
    const r = new RateLimiter(() => now);
    r.take(acc({ pod: 'idle' }), 1, 1);
    now = 500;
    r.take(acc({ pod: 'busy' }), 1, 1);
    now = 1200;
    r.sweep(600); // idle: 1200 ms (past its 1 s refill), busy: 700 ms
    // A forgotten bucket starts full; a kept one has 0.7 tokens.
    assert.equal(r.take(acc({ pod: 'idle' }), 1, 1), true);
    assert.equal(r.take(acc({ pod: 'busy' }), 1, 1), false);
  });

  it('sweep never forgets a bucket before it would have refilled (no early burst)', () => {
    let now = 0;
    const r = new RateLimiter(() => now);
    for (let i = 0; i < 100; i++) r.take(acc({ pod: 'slow' }), 1, 100); // burst 100 at 1/s: 100 s to refill
    now = 70_000;
    r.sweep(60_000); // idle 70 s > 60 s, but only 70 tokens are back
    let granted = 0;
    for (let i = 0; i < 100; i++) if (r.take(acc({ pod: 'slow' }), 1, 100)) granted++;
    assert.equal(granted, 70);
  });
});

// ---- PolicyStage ----

const ADMIN = 'doorwatch';

/** A real engine that counts forPod calls. */
class CountingEngine extends PolicyEngine {
  calls = 0;
  override forPod(pod: PodView, nsLabels: Readonly<Record<string, string>> | undefined) {
    this.calls++;
    return super.forPod(pod, nsLabels);
  }
}

function stage(config: object, o: { ready?: boolean } = {}) {
  const engine = new CountingEngine(parsePolicyConfig(config, { source: 'test', defaultAdminNamespace: ADMIN }));
  const out: AcceptEvent[] = [];
  let misses = 0;
  let ms = 0;
  let ns = 1_000n;
  let ready = o.ready ?? true;
  const st = new PolicyStage({
    engine,
    ready: () => ready,
    emit: (b) => out.push(...b),
    onKernelMiss: () => misses++,
    nowMs: () => ms,
    nowNs: () => ns,
  });
  return {
    st,
    engine,
    out,
    misses: () => misses,
    advance: (d: number) => {
      ms += d;
      ns += BigInt(d) * 1_000_000n;
    },
    setReady: (v: boolean) => {
      ready = v;
    },
  };
}

function podObj(namespace: string, labels: Record<string, string> = {}, uid = `uid-${namespace}`): Pod {
  return {
    namespace,
    name: `pod-${namespace}`,
    uid,
    labels,
    annotations: {},
    workload: undefined,
    serviceAccount: '',
    nodeName: 'n',
    ip: '',
    hostNetwork: false,
    qosClass: '',
    namespaceLabels: {},
    deleted: false,
  };
}

/** An accept of `pod` (shared object, as the enricher shares it) or of the host. */
function inPod(pod: Pod | 'host' | 'partial', a: Acc = {}): AcceptEvent {
  const e = acc(a);
  if (pod === 'host')
    e.enrichment = {
      status: EnrichmentStatus.ENRICHMENT_STATUS_HOST,
      missing: [],
      reason: '',
      cgroupFromProc: false,
      waitedMs: 0,
    };
  else if (pod === 'partial') {
    e.pod = podObj('shop');
    e.enrichment = {
      status: EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL,
      missing: ['namespace'],
      reason: '',
      cgroupFromProc: false,
      waitedMs: 0,
    };
  } else {
    e.pod = pod;
    e.enrichment = {
      status: EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE,
      missing: [],
      reason: '',
      cgroupFromProc: false,
      waitedMs: 0,
    };
  }
  return e;
}

const CONFIG = {
  summaryInterval: '1h',
  default: { mode: 'events' },
  host: { mode: 'summary' },
  rules: [
    { name: 'quiet', namespaces: ['quiet'], mode: 'off' },
    { name: 'web-only', namespaces: ['shop'], mode: 'events', ports: { include: [443] }, peers: { exclude: ['10.9.0.0/16'] } },
    { name: 'ci', namespaces: ['ci-*'], mode: 'summary' },
    { name: 'limited', namespaces: ['busy'], mode: 'events', rateLimit: { eventsPerSecond: 2, burst: 3 } },
    { name: 'no-failures', namespaces: ['strict'], mode: 'events', failedAccepts: false },
  ],
};

describe('PolicyStage', () => {
  it('until pods and policies are known, everything is unattributed and emitted', () => {
    const t = stage(CONFIG, { ready: false });
    const evs = [inPod(podObj('quiet')), inPod('host'), inPod(podObj('shop'), { port: 80 })];
    t.st.process(evs);
    assert.equal(t.out.length, 3);
    for (const e of t.out) assert.equal(e.policy?.origin, PolicyOrigin.POLICY_ORIGIN_UNATTRIBUTED);
    assert.equal(t.engine.calls, 0);
    assert.equal(t.misses(), 0);
    assert.equal(t.st.stats().byPolicy.get('unattributed')?.counts.events, 3);
  });

  it('host accepts get the host policy; partial attribution and no pod are unattributed', () => {
    const t = stage(CONFIG);
    assert.equal(t.st.policyOf(inPod('host')).key, 'host');
    assert.equal(t.st.policyOf(inPod('partial')).key, 'unattributed');
    assert.equal(t.st.policyOf(acc()).key, 'unattributed');
    assert.equal(t.st.policyOf(inPod(podObj('quiet'))).key, 'rule:quiet');
    assert.equal(t.st.policyOf(inPod(podObj('elsewhere'))).key, 'default');
  });

  it('the policy of a pod is cached per Pod object and engine version', () => {
    const t = stage(CONFIG);
    const p = podObj('shop');
    for (let i = 0; i < 5; i++) assert.equal(t.st.policyOf(inPod(p)).key, 'rule:web-only');
    assert.equal(t.engine.calls, 1);
    // A changed pod is a new object.
    assert.equal(t.st.policyOf(inPod(podObj('shop', { app: 'x' }))).key, 'rule:web-only');
    assert.equal(t.engine.calls, 2);
    // A policy change bumps the version: decided again.
    const r = parseResource(
      { metadata: { namespace: 'shop', name: 'off', uid: 'u', generation: 1 }, spec: { mode: 'off' } },
      ADMIN,
    );
    assert.ok(r.ok);
    t.engine.setResources([r.policy]);
    assert.equal(t.st.policyOf(inPod(p)).key, 'resource:shop/off');
    assert.equal(t.st.policyOf(inPod(p)).key, 'resource:shop/off');
    assert.equal(t.engine.calls, 3);
  });

  it('filters in userspace what the kernel would have, counted by reason, and reports the kernel miss', () => {
    const t = stage(CONFIG);
    const shop = podObj('shop');
    const strict = podObj('strict');
    t.st.process([
      inPod(shop, { port: 443 }), // kept
      inPod(shop, { port: 80 }), // port
      inPod(shop, { port: 443, peer: '10.9.1.1' }), // peer
      inPod(podObj('quiet')), // off
      inPod(strict, { ok: false }), // failed
      inPod(strict), // kept
    ]);
    assert.equal(t.out.length, 2);
    assert.deepEqual(
      t.out.map((e) => [e.pod?.namespace, e.policy?.name]),
      [
        ['shop', 'web-only'],
        ['strict', 'no-failures'],
      ],
    );
    assert.equal(t.misses(), 1, 'once per batch');
    const by = t.st.stats().byPolicy;
    assert.deepEqual(by.get('rule:web-only')?.counts, {
      events: 1,
      summarized: 0,
      filtered: { off: 0, port: 1, peer: 1, failed: 0 },
    });
    assert.deepEqual(by.get('rule:quiet')?.counts, {
      events: 0,
      summarized: 0,
      filtered: { off: 1, port: 0, peer: 0, failed: 0 },
    });
    assert.deepEqual(by.get('rule:no-failures')?.counts, {
      events: 1,
      summarized: 0,
      filtered: { off: 0, port: 0, peer: 0, failed: 1 },
    });
    t.st.process([inPod(shop, { port: 443 })]);
    assert.equal(t.misses(), 1, 'nothing filtered: no miss');
    t.st.process([]);
    assert.equal(t.misses(), 1);
  });

  it('summary mode folds into summaries (reason mode), stamped with the policy', () => {
    const t = stage(CONFIG);
    const ci = podObj('ci-7', {}, 'ci-pod');
    t.st.process([inPod(ci), inPod(ci), inPod(ci, { peer: '10.0.0.8' }), inPod('host', { cgroup: 3n })]);
    assert.equal(t.out.length, 0);
    t.advance(1000);
    t.st.flush();
    assert.deepEqual(
      t.out.map((e) => [e.kind, e.policy?.name, e.summary?.reason, e.summary?.count, e.summary?.peerIp]),
      [
        [EventKind.EVENT_KIND_SUMMARY, 'ci', MODE, 2n, '10.0.0.9'],
        [EventKind.EVENT_KIND_SUMMARY, 'ci', MODE, 1n, '10.0.0.8'],
        [EventKind.EVENT_KIND_SUMMARY, 'host', MODE, 1n, '10.0.0.9'],
      ],
    );
    assert.equal(t.out[0]!.summary!.intervalEndUnixNano - t.out[0]!.summary!.intervalStartUnixNano, 1_000_000_000n);
    assert.equal(t.st.stats().byPolicy.get('rule:ci')?.counts.summarized, 3);
    assert.equal(t.st.stats().byPolicy.get('host')?.counts.summarized, 1);
    assert.equal(t.st.stats().summaries.summaries, 3);
    assert.equal(t.misses(), 0);
  });

  it('above the rate limit, accepts become summaries (reason rate limit); nothing is dropped', () => {
    const t = stage(CONFIG);
    const busy = podObj('busy');
    t.st.process(Array.from({ length: 10 }, () => inPod(busy)));
    assert.equal(t.out.length, 3, 'the burst');
    t.advance(1000); // 2 tokens
    t.st.process(Array.from({ length: 10 }, () => inPod(busy)));
    assert.equal(t.out.length, 5);
    const events = t.out.length;
    t.st.flush();
    const sums = t.out.slice(events);
    assert.equal(sums.length, 1);
    assert.equal(sums[0]!.summary?.reason, RATE);
    assert.equal(sums[0]!.summary?.count, 15n);
    assert.equal(sums[0]!.policy?.name, 'limited');
    assert.deepEqual(t.st.stats().byPolicy.get('rule:limited')?.counts, {
      events: 5,
      summarized: 15,
      filtered: { off: 0, port: 0, peer: 0, failed: 0 },
    });
  });

  it('stop() flushes open summaries', () => {
    const t = stage(CONFIG);
    t.st.start();
    t.st.process([inPod(podObj('ci-1'))]);
    t.st.stop();
    assert.equal(t.out.length, 1);
    assert.equal(t.out[0]!.summary?.count, 1n);
  });

  it('a changed policy keeps counting under its key', () => {
    const t = stage(CONFIG);
    const mk = (gen: number, spec: object) => {
      const r = parseResource({ metadata: { namespace: 'x', name: 'p', uid: 'u', generation: gen }, spec }, ADMIN);
      assert.ok(r.ok);
      return r.policy;
    };
    t.engine.setResources([mk(1, { mode: 'events' })]);
    t.st.process([inPod(podObj('x'))]);
    t.engine.setResources([mk(2, { mode: 'events', ports: { include: [1] } })]);
    t.st.process([inPod(podObj('x'))]);
    const row = t.st.stats().byPolicy.get('resource:x/p')!;
    assert.deepEqual(row.counts, { events: 1, summarized: 0, filtered: { off: 0, port: 1, peer: 0, failed: 0 } });
    assert.deepEqual(row.policy.spec.ports.include, [{ lo: 1, hi: 1 }], 'the current policy');
  });
});

describe('Summarizer keys: process and listening socket (issue 14)', () => {
  const UNIX = AddressFamily.ADDRESS_FAMILY_UNIX;
  const INET = AddressFamily.ADDRESS_FAMILY_INET;
  /** As capture builds them: a failed accept's socket fields describe its listener (resolved stays false). */
  const ev = (o: { pid: number; comm?: string; fd: number; ok: boolean; port?: number; path?: string; peer?: string }) =>
    AcceptEvent.fromPartial({
      timeUnixNano: 1000n,
      success: o.ok,
      ret: o.ok ? 9 : -24,
      error: o.ok ? '' : 'EMFILE',
      source: 2,
      process: { pid: o.pid, comm: o.comm ?? `srv${o.pid}` },
      cgroup: { id: 77n },
      listener: { fd: o.fd, resolved: o.port !== undefined || o.path !== undefined },
      socket:
        o.path !== undefined
          ? { family: UNIX, familyNumber: 1, unixPath: o.path, resolved: o.ok }
          : o.port !== undefined
            ? {
                family: INET,
                familyNumber: 2,
                local: { ip: '0.0.0.0', port: o.port },
                peer: { ip: o.ok ? (o.peer ?? '10.0.0.9') : '', port: o.ok ? 40000 : 0 },
                resolved: o.ok,
              }
            : { resolved: false },
    });
  const rows = (all: AcceptEvent[]) =>
    all.map((e) => ({
      pid: e.process?.pid,
      port: e.summary!.localPort,
      count: e.summary!.count,
      failed: e.summary!.failedCount,
      text: describeEvent(e),
    }));

  it("failures on one process's TCP listener never merge with another process's unix accepts in the cgroup", () => {
    const { s, all } = summarizer();
    for (let i = 0; i < 12; i++) s.add(ev({ pid: 20, comm: 'app', fd: 3, ok: true, path: '/run/m.sock' }), MODE);
    for (let i = 0; i < 6; i++) s.add(ev({ pid: 20, comm: 'app', fd: 3, ok: false, path: '/run/m.sock' }), MODE);
    for (let i = 0; i < 8; i++) s.add(ev({ pid: 10, comm: 'web', fd: 5, ok: false, port: 8080 }), MODE);
    s.flush();
    assert.deepEqual(rows(all()), [
      {
        pid: 20,
        port: 0,
        count: 18n,
        failed: 6n,
        text: 'app[20]: 18 accepts (6 failed) on unix socket /run/m.sock via accept4 over 0s, summarised (policy mode summary)',
      },
      {
        pid: 10,
        port: 8080,
        count: 8n,
        failed: 8n,
        text: 'web[10]: 8 accepts (8 failed) on port 8080 via accept4 over 0s, summarised (policy mode summary)',
      },
    ]);
  });

  it('keys successes and failures of one TCP listener apart (peer), each naming the port', () => {
    const { s, all } = summarizer();
    s.add(ev({ pid: 10, fd: 5, ok: true, port: 8080 }), MODE);
    s.add(ev({ pid: 10, fd: 5, ok: false, port: 8080 }), MODE);
    s.add(ev({ pid: 10, fd: 6, ok: false, port: 9090 }), MODE);
    s.flush();
    assert.deepEqual(
      rows(all()).map((r) => [r.port, r.count, r.failed]),
      [
        [8080, 1n, 0n],
        [8080, 1n, 1n],
        [9090, 1n, 1n],
      ],
    );
  });

  it('one listening port shared by two processes (pre-forked workers): a row each, each naming its process', () => {
    const { s, all } = summarizer();
    for (const pid of [31, 32, 31]) s.add(ev({ pid, comm: 'nginx', fd: 6, ok: true, port: 443 }), MODE);
    s.flush();
    assert.deepEqual(
      rows(all()).map((r) => [r.pid, r.count, r.text.split(':')[0]]),
      [
        [31, 2n, 'nginx[31]'],
        [32, 1n, 'nginx[32]'],
      ],
    );
  });

  it('unix listeners of one process are kept apart by path', () => {
    const { s, all } = summarizer();
    s.add(ev({ pid: 20, fd: 3, ok: true, path: '/run/a.sock' }), MODE);
    s.add(ev({ pid: 20, fd: 4, ok: true, path: '/run/b.sock' }), MODE);
    s.add(ev({ pid: 20, fd: 4, ok: false, path: '/run/b.sock' }), MODE);
    s.flush();
    assert.deepEqual(
      all().map((e) => [e.socket?.unixPath, e.summary!.count, e.summary!.failedCount]),
      [
        ['/run/a.sock', 1n, 0n],
        ['/run/b.sock', 2n, 1n],
      ],
    );
  });

  it('failures whose listener was not resolved (EBADF, ENOTSOCK) are keyed by the fd, and say so', () => {
    const { s, all } = summarizer();
    s.add(ev({ pid: 10, fd: 7, ok: false }), MODE);
    s.add(ev({ pid: 10, fd: 7, ok: false }), MODE);
    s.add(ev({ pid: 10, fd: 9, ok: false }), MODE);
    s.flush();
    assert.deepEqual(
      rows(all()).map((r) => [r.count, r.text]),
      [
        [
          2n,
          'srv10[10]: 2 accepts (2 failed) on fd 7 (listener not resolved) via accept4 over 0s, summarised (policy mode summary)',
        ],
        [
          1n,
          'srv10[10]: 1 accept (1 failed) on fd 9 (listener not resolved) via accept4 over 0s, summarised (policy mode summary)',
        ],
      ],
    );
    for (const e of all()) assert.doesNotMatch(describeEvent(e), /port 0/);
  });

  it('the row folding every further listener of a pod says so, not "port 0"', () => {
    const { s, all } = summarizer({ maxKeys: 1 });
    s.add(ev({ pid: 10, fd: 5, ok: false, port: 8080 }), MODE);
    s.add(ev({ pid: 10, fd: 6, ok: false, port: 8081 }), MODE); // 2nd row: no peer to fold
    s.add(ev({ pid: 11, fd: 3, ok: false, path: '/run/x.sock' }), MODE); // 2 >= 2 x 1: listeners folded
    s.add(ev({ pid: 12, fd: 4, ok: true, port: 22 }), MODE);
    s.flush();
    const texts = rows(all()).map((r) => r.text);
    assert.equal(texts.length, 3);
    assert.match(texts[2]!, /srv11\[11\]: 2 accepts \(1 failed\) from many peers \(key table full\) on several listeners via/);
    assert.equal(total(all()), 4n);
  });
});
