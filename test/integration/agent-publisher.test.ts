import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Publisher, type PublisherOptions } from '../../src/agent/publisher.js';
import { Spool, type SpoolOptions } from '../../src/agent/spool.js';
import type { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { FakeCollector, makeEvents, spaceKey } from '../helpers/fake-collector.js';
import { startMemoryCollector } from '../helpers/memory-sink.js';
import { type CertFiles, makePki, type Pki } from '../helpers/pki.js';
import { podEvents } from '../helpers/sample-events.js';
import { until } from '../helpers/wait.js';

// The Publisher against a real gRPC server over real mutual TLS on loopback.

let pki: Pki;
let agentCert: CertFiles;
before(() => {
  pki = makePki();
  agentCert = pki.client('agent-node-a');
});
after(() => rmSync(pki.dir, { recursive: true, force: true }));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'doorwatch-pub-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function collector(o: Parameters<typeof FakeCollector.start>[1] = {}): Promise<FakeCollector> {
  const c = await FakeCollector.start(pki, o);
  if (process.env.DEBUG_PORTS) console.error('COLLECTOR', c.port);
  cleanups.push(() => c.close());
  return c;
}

function openSpool(dir: string, o: Partial<SpoolOptions> = {}): Spool {
  const spool = Spool.open({ dir, bootId: 'boot-a', segmentBytes: '64KiB', ...o });
  cleanups.push(() => spool.close());
  return spool;
}

function publisher(
  target: string,
  spool: Spool,
  o: Partial<PublisherOptions> = {},
): { pub: Publisher; logs: LogLine[]; start(): Publisher } {
  const logs: LogLine[] = [];
  const pub = new Publisher({
    target,
    tls: { ca: pki.caPem, cert: agentCert.certPem, key: agentCert.keyPem, serverName: 'localhost' },
    identity: { nodeName: 'node-a', version: 'test' },
    spool,
    batch: { maxEvents: 500, maxDelayMs: 10 },
    backoff: { initialMs: 20, maxMs: 200 },
    log: pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) }),
    ...o,
  });
  // Registered before the spool's close (cleanups run in reverse).
  cleanups.push(async () => {
    await pub.close({ flushTimeoutMs: 0 });
  });
  return {
    pub,
    logs,
    start: () => {
      pub.start();
      return pub;
    },
  };
}

const seqs = (evs: { seq: bigint }[]): number[] => evs.map((e) => Number(e.seq));
const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** Open socket descriptors of this process. */
function socketFds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

describe('Publisher over mTLS', () => {
  it('happy path: 10k events arrive exactly once, in order; acks trim the spool', async () => {
    const c = await collector();
    const dir = tempDir();
    const spool = openSpool(dir, { segmentBytes: '32KiB' });
    const pub = publisher(c.target, spool).start();
    const id = spool.identity;
    let maxSegments = 0;
    for (let s = 1n; s <= 10_000n; s += 100n) {
      pub.publish(makeEvents(id, s, 100));
      maxSegments = Math.max(maxSegments, spool.stats().segments);
      if (s % 1000n === 1n) await sleep(1);
    }
    const key = spaceKey(id);
    await until(() => c.watermark(key) === 10_000n, 'all 10k events acknowledged', 15_000);
    await until(() => pub.status().ackedSeq === 10_000n, 'the agent to see the last ack', 5_000);

    assert.deepEqual(seqs(c.delivered(key)), range(1, 10_000), 'exactly once, in order');
    assert.equal(c.duplicates, 0);
    assert.equal(c.received, 10_000);
    assert.equal(c.delivered(key)[9_999]!.eventId, `boot-a/${id.instanceId}/10000`);
    assert.deepEqual(c.hellos, [{ nodeName: 'node-a', version: 'test', ...id }]);
    assert.ok(c.batches.every((b) => b.count <= 500));
    assert.ok(c.batches.length >= 20, `batched: ${c.batches.length} batches`);

    assert.ok(maxSegments > 1, `segments rolled over (${maxSegments} at most)`);
    // Full segments go at the ack; the one being written at the spool's next tick (1 s) once fully acknowledged.
    await until(() => spool.stats().segments === 0, 'every segment deleted once acknowledged', 3_000);
    assert.equal(readdirSync(dir).filter((f) => f.endsWith('.dws')).length, 0);
    const st = pub.status();
    assert.equal(st.connected, true);
    assert.equal(st.inFlightBatches, 0);
    assert.equal(st.spoolBytes, 0);
    assert.equal(st.spoolDrops, 0n);
    assert.equal(st.reconnects, 0);
    assert.equal(typeof st.lastRttMs, 'number');
    assert.equal(st.lastError, undefined);
    assert.deepEqual(await pub.close({ flushTimeoutMs: 1000 }), { flushed: true });
    assert.throws(() => pub.publish(makeEvents(id, 10_001n, 1)), /publisher is closed/);
  });

  for (const contexts of [true, false]) {
    it(`a real collector ${contexts ? "that applies batch contexts gets a pod's fields once per batch" : 'from before batch contexts gets whole events'}: the sink sees the very same events`, async () => {
      // batchContexts: false is the collector's config key, and what a collector from before contexts does.
      const { collector: col, mem } = await startMemoryCollector(pki, [{ name: 'mem', required: true }], {
        batchContexts: contexts,
      });
      cleanups.push(() => col.stop());
      const spool = openSpool(tempDir(), { segmentBytes: '1MiB' });
      const pub = publisher(`127.0.0.1:${col.port}`, spool).start();
      const id = spool.identity;
      // 3 000 events of 6 pods (interleaved), host processes and unshared ones among them.
      const events: AcceptEvent[] = podEvents(3000, 6).map((e) => ({ ...e, eventId: `${id.bootId}/${id.instanceId}/${e.seq}` }));
      for (let i = 0; i < events.length; i += 250) {
        pub.publish(events.slice(i, i + 250));
        await sleep(2);
      }
      await until(() => pub.status().ackedSeq === 3000n, 'all 3 000 events acknowledged', 15_000);
      assert.equal(pub.status().batchContexts, contexts, 'what the collector announced');
      const got = mem
        .get('mem')
        .records.filter((r) => r.kind === 'event')
        .map((r) => (r.kind === 'event' ? r.event : undefined)!);
      assert.equal(got.length, 3000);
      const own = (e: AcceptEvent) => ({ ...e, peerAttribution: undefined, localAttribution: undefined });
      assert.deepStrictEqual(got.map(own), events.map(own));
    });
  }

  it('a backlog read back from the spool goes to a collector that applies contexts with each pod once; the sink sees the very same events', async () => {
    const { collector: col, mem } = await startMemoryCollector(pki, [{ name: 'mem', required: true }]);
    cleanups.push(() => col.stop());
    const spool = openSpool(tempDir(), { segmentBytes: '1MiB' });
    // 8 KiB of unsent events in memory at most: nearly all of them are read back from disk (the catch-up path).
    const { pub } = publisher(`127.0.0.1:${col.port}`, spool, { window: { maxLiveBytes: 8192 } });
    const id = spool.identity;
    const events: AcceptEvent[] = podEvents(3000, 5).map((e) => ({ ...e, eventId: `${id.bootId}/${id.instanceId}/${e.seq}` }));
    pub.start();
    await until(() => pub.status().batchContexts, 'the collector to announce batch contexts', 10_000);
    // At once, far more than the 8 KiB kept in memory: the rest is sent from disk.
    for (let i = 0; i < events.length; i += 500) pub.publish(events.slice(i, i + 500));
    await until(() => pub.status().ackedSeq === 3000n, 'all 3 000 events acknowledged', 15_000);
    assert.equal(pub.status().batchContexts, true);
    const got = mem.get('mem').records.flatMap((r) => (r.kind === 'event' ? [r.event] : []));
    const own = (e: AcceptEvent) => ({ ...e, peerAttribution: undefined, localAttribution: undefined });
    assert.deepStrictEqual(got.map(own), events.map(own));
  });

  it('batching waits only while more is coming: a lone event leaves at once, a trickle is coalesced', async () => {
    const c = await collector();
    const spool = openSpool(tempDir());
    // maxDelay far beyond the test: whatever leaves, leaves without it.
    const pub = publisher(c.target, spool, { batch: { maxEvents: 500, maxDelayMs: 60_000 } }).start();
    const id = spool.identity;
    const key = spaceKey(id);
    await until(() => pub.status().connected, 'connected', 5_000);
    const t0 = Date.now();
    pub.publish(makeEvents(id, 1n, 1));
    await until(() => c.watermark(key) === 1n, 'the lone event acknowledged', 5_000);
    assert.ok(Date.now() - t0 < 5_000, 'it did not wait for maxDelay');
    const before = c.batches.length;
    // 40 drains' worth, 5 ms apart: each would be its own batch without coalescing.
    const t1 = Date.now();
    for (let i = 0; i < 40; i++) {
      pub.publish(makeEvents(id, 2n + BigInt(i) * 10n, 10));
      await sleep(5);
    }
    // A batch every 25 ms at most: the bound follows how long the drains really took (a loaded machine
    // stretches the 5 ms sleeps), and stays below one batch per drain.
    const most = Math.min(39, Math.ceil((Date.now() - t1) / 25) + 2);
    await until(() => c.watermark(key) === 401n, 'the trickle acknowledged', 10_000);
    const batches = c.batches.length - before;
    assert.ok(
      batches <= most && batches >= 2,
      `coalesced into ${batches} batches (every 25 ms at most, not one per drain: at most ${most})`,
    );
    assert.deepEqual(seqs(c.delivered(key)), range(1, 401));
  });

  it('a collector stopped mid-stream and restarted on the same port gets every event; only unacked ones are resent', async () => {
    // Acks lag 100 ms: when the collector dies it has persisted events the agent never heard about.
    const c = await collector({ ack: { lateMs: 100 } });
    const spool = openSpool(tempDir());
    const { pub, logs, start } = publisher(c.target, spool, {
      backoff: { initialMs: 50, maxMs: 400 },
      random: () => 0.9,
    });
    start();
    const id = spool.identity;
    const key = spaceKey(id);
    let seq = 1n;
    const feed = async (n: number) => {
      for (let i = 0; i < n; i++) {
        pub.publish(makeEvents(id, seq, 50));
        seq += 50n;
        await sleep(2);
      }
    };
    await feed(30);
    await until(() => pub.status().ackedSeq > 0n, 'first acks', 5_000);
    await feed(5);
    await c.stop();
    const collectorHad = c.watermark(key);
    await until(() => !pub.status().connected, 'the agent to notice', 5_000);
    await sleep(50);
    const agentAcked = pub.status().ackedSeq;
    assert.ok(agentAcked <= collectorHad);
    await feed(20); // the agent keeps spooling while the collector is down
    await sleep(600);
    const whileDown = pub.status();
    assert.match(whileDown.lastError ?? '', /connection refused/);
    await c.restart();
    await feed(10);
    const last = seq - 1n;
    await until(() => c.watermark(key) === last, 'everything after the restart', 10_000);

    assert.deepEqual(seqs(c.delivered(key)), range(1, Number(last)), 'the delivered set is exactly once, in order');
    const resent = c.batches.filter((b) => b.stream > 1);
    assert.equal(resent[0]!.firstSeq, agentAcked + 1n, 'the resend starts right after what the agent saw acknowledged');
    assert.ok(collectorHad > agentAcked, 'some persisted events were never acknowledged to the agent');
    assert.equal(c.duplicates, Number(collectorHad - agentAcked), 'duplicates are only what was persisted but not yet acked');
    const st = pub.status();
    assert.ok(st.reconnects >= 1, `reconnected (${st.reconnects})`);
    // Backoff: 0.9 of a ceiling doubling from 50 ms to 400 ms over ~700 ms of downtime.
    assert.ok(st.reconnects <= 6, `backoff bounds the attempts (${st.reconnects})`);
    const retries = logs.filter((l) => l.msg === 'collector stream failed; retrying').map((l) => l.retryInMs as number);
    assert.deepEqual(retries.slice(0, 3), [45, 90, 180]);
    assert.ok(retries.every((d) => d <= 400));
    assert.equal(st.connected, true);
  });

  it('window full: with no acks, at most maxBatches are in flight; acks release the rest', async () => {
    const c = await collector({ ack: 'never' });
    const spool = openSpool(tempDir());
    const pub = publisher(c.target, spool, { batch: { maxEvents: 10, maxDelayMs: 5 }, window: { maxBatches: 4 } }).start();
    const id = spool.identity;
    pub.publish(makeEvents(id, 1n, 200));
    await until(() => c.batches.length >= 4, '4 batches', 5_000);
    await sleep(300);
    assert.equal(c.batches.length, 4, 'nothing beyond the window');
    assert.equal(pub.status().inFlightBatches, 4);
    pub.publish(makeEvents(id, 201n, 50)); // still accepted: the spool is the buffer
    await sleep(50);
    assert.equal(c.batches.length, 4);
    assert.deepEqual(seqs([...spool.pending()]), range(1, 250));

    c.ackNow(); // acks 40: the window moves by exactly 4 batches
    await until(() => c.batches.length === 8, '4 more batches', 5_000);
    await sleep(100);
    assert.equal(c.batches.length, 8);
    c.ack = 'immediate';
    c.ackNow();
    const key = spaceKey(id);
    await until(() => c.watermark(key) === 250n && pub.status().ackedSeq === 250n, 'the rest', 5_000);
    assert.deepEqual(seqs(c.delivered(key)), range(1, 250));
    assert.equal(pub.status().inFlightBatches, 0);
  });

  for (const overflow of ['drop-oldest', 'drop-newest'] as const) {
    it(`spool full (${overflow}): every dropped event is counted in the next batch's losses.spool_drops`, async () => {
      const c = await collector();
      await c.stop(); // the collector is down while the spool fills
      const spool = openSpool(tempDir(), { maxBytes: '48KiB', segmentBytes: '8KiB', overflow });
      const pub = publisher(c.target, spool, { backoff: { initialMs: 20, maxMs: 50 } }).start();
      const id = spool.identity;
      for (let s = 1n; s <= 1000n; s += 50n) pub.publish(makeEvents(id, s, 50));
      const dropped = spool.stats().dropsTotal;
      assert.ok(dropped > 0n, 'the spool overflowed');
      const kept = seqs([...spool.pending()]);
      assert.equal(BigInt(kept.length) + dropped, 1000n, 'kept + dropped = appended');
      if (overflow === 'drop-oldest') assert.equal(kept.at(-1), 1000);
      else assert.equal(kept[0], 1);
      assert.equal(pub.status().spoolDrops, dropped);

      await c.restart();
      const key = spaceKey(id);
      await until(() => c.watermark(key) >= BigInt(kept.at(-1)!), 'the kept events', 10_000);
      assert.deepEqual(seqs(c.delivered(key)), kept);
      const first = c.batches.filter((b) => b.count > 0)[0]!;
      assert.equal(first.losses?.spoolDrops, dropped, 'the next batch carries the count');
      assert.equal(c.losses().spoolDrops, dropped, 'and only once');
      await until(() => spool.unconfirmedDrops() === 0n, 'the ack to confirm the report', 5_000);
      if (overflow === 'drop-oldest') assert.deepEqual(c.gaps, [{ space: key, from: 1n, to: BigInt(kept[0]! - 1) }]);
    });
  }

  it('a torn write found at open is reported as spool drops (all its events) in the first batch', async () => {
    const c = await collector();
    const dir = tempDir();
    const first = Spool.open({ dir, bootId: 'boot-a' });
    first.append(makeEvents(first.identity, 1n, 19));
    first.append(makeEvents(first.identity, 20n, 3));
    first.close();
    const seg = join(dir, readdirSync(dir).find((f) => f.endsWith('.dws'))!);
    truncateSync(seg, statSync(seg).size - 3);
    const spool = openSpool(dir);
    const pub = publisher(c.target, spool).start();
    const key = spaceKey(spool.identity);
    await until(() => c.watermark(key) === 19n, 'the valid prefix', 5_000);
    assert.deepEqual(seqs(c.delivered(key)), range(1, 19));
    assert.equal(c.batches[0]!.losses?.spoolDrops, 3n);
    // The torn write's seqs were never sent: they are reused by the next events, so no gap.
    assert.equal(spool.nextSeq(), 20n);
    pub.publish(makeEvents(spool.identity, 20n, 1));
    await until(() => c.watermark(key) === 20n, 'seq 20', 5_000);
  });

  it('reportLosses rides on the next batch, once', async () => {
    const c = await collector();
    const spool = openSpool(tempDir());
    const pub = publisher(c.target, spool).start();
    const id = spool.identity;
    pub.reportLosses({ kernelRingFull: 7n, decodeErrors: 2n });
    pub.reportLosses({ kernelRingFull: 1n, queueDrops: 3n });
    pub.publish(makeEvents(id, 1n, 5));
    await until(() => c.watermark(spaceKey(id)) === 5n, 'the batch', 5_000);
    pub.publish(makeEvents(id, 6n, 5));
    await until(() => c.watermark(spaceKey(id)) === 10n, 'the second batch', 5_000);
    assert.deepEqual(c.losses(), {
      kernelRingFull: 8n,
      decodeErrors: 2n,
      bpfRecursionMisses: 0n,
      queueDrops: 3n,
      spoolDrops: 0n,
    });
    assert.equal(c.batches[0]!.losses?.kernelRingFull, 8n);
  });

  it('losses on a batch that was never acknowledged are reported again on the next stream', async () => {
    const c = await collector({ ack: 'never' });
    const spool = openSpool(tempDir());
    const pub = publisher(c.target, spool).start();
    const id = spool.identity;
    pub.reportLosses({ kernelRingFull: 5n });
    pub.publish(makeEvents(id, 1n, 5));
    await until(() => c.batches.length === 1, 'the batch', 5_000);
    c.ack = 'immediate';
    c.dropStreams();
    await until(() => c.watermark(spaceKey(id)) === 5n && pub.status().ackedSeq === 5n, 'the resend', 5_000);
    assert.equal(c.batches.at(-1)!.losses?.kernelRingFull, 5n);
    assert.equal(c.losses().kernelRingFull, 10n, 'at least once: counted twice rather than lost');
  });

  it('a new boot id: the old seq space is drained first, under its own identity', async () => {
    const c = await collector();
    const dir = tempDir();
    const old = Spool.open({ dir, bootId: 'boot-old', segmentBytes: '16KiB' });
    const oldId = old.identity;
    old.append(makeEvents(oldId, 1n, 1200));
    old.ack(oldId, 200n); // acknowledged before the reboot
    old.close();

    const spool = openSpool(dir, { bootId: 'boot-new' });
    const newId = spool.identity;
    assert.equal(newId.instanceId, oldId.instanceId);
    const { pub } = publisher(c.target, spool, { batch: { maxEvents: 100, maxDelayMs: 5 } });
    pub.publish(makeEvents(newId, 1n, 300)); // captured before the stream is up
    let sawDraining = false;
    const poll = setInterval(() => {
      if (pub.status().draining?.bootId === 'boot-old') sawDraining = true;
    }, 1);
    cleanups.push(() => clearInterval(poll));
    pub.start();
    const oldKey = spaceKey(oldId);
    const newKey = spaceKey(newId);
    await until(() => c.watermark(newKey) === 300n, 'the new space', 10_000);
    pub.publish(makeEvents(newId, 301n, 10));
    await until(() => c.watermark(newKey) === 310n, 'live events after the drain', 5_000);

    assert.deepEqual(seqs(c.delivered(oldKey)), range(201, 1200), 'old space: what was unacked, once');
    assert.deepEqual(seqs(c.delivered(newKey)), range(1, 310));
    assert.deepEqual(
      c.hellos.map((h) => h.bootId),
      ['boot-old', 'boot-new'],
      'one stream per space, old first',
    );
    const lastOld = c.batches.findLastIndex((b) => b.space === oldKey);
    const firstNew = c.batches.findIndex((b) => b.space === newKey);
    assert.ok(lastOld < firstNew, 'every old batch before any new one');
    assert.ok(sawDraining, 'status().draining named the old space');
    assert.deepEqual(
      spool.spaces().map((s) => s.identity.bootId),
      ['boot-new'],
      'the old space is gone from the spool',
    );
    assert.equal(pub.status().reconnects, 0, 'switching spaces is not a failure');
  });

  it('close() flushes what is pending; without acks it gives up at the timeout and keeps the events', async () => {
    const c = await collector({ ack: 'never' });
    const dir = tempDir();
    const spool = openSpool(dir);
    const pub = publisher(c.target, spool, { batch: { maxEvents: 500, maxDelayMs: 10_000 } }).start();
    const id = spool.identity;
    pub.publish(makeEvents(id, 1n, 30)); // would wait 10 s for a fuller batch
    await until(() => pub.status().connected, 'connected', 5_000);
    const t0 = Date.now();
    assert.deepEqual(await pub.close({ flushTimeoutMs: 300 }), { flushed: false });
    const took = Date.now() - t0;
    assert.ok(took >= 250 && took < 2_000, `close took ${took} ms`);
    assert.equal(c.received, 30, 'close sent the partial batch at once');
    assert.deepEqual(seqs([...spool.pending()]), range(1, 30), 'unacked events stay in the spool');

    c.ack = 'immediate';
    const pub2 = publisher(c.target, spool).start();
    pub2.publish(makeEvents(id, 31n, 5));
    assert.deepEqual(await pub2.close({ flushTimeoutMs: 5_000 }), { flushed: true });
    assert.deepEqual(seqs(c.delivered(spaceKey(id))), range(1, 35));
    await until(() => spool.bytes() === 0, 'the acknowledged segment deleted at the next tick', 3_000);
  });
});

describe('Publisher TLS failures', () => {
  const cases: [string, () => Partial<PublisherOptions>, RegExp][] = [
    [
      'wrong CA',
      () => ({ tls: { ca: pki.other.caPem, cert: agentCert.certPem, key: agentCert.keyPem, serverName: 'localhost' } }),
      /^TLS: the collector's certificate is not signed by the configured CA \(check tls\.ca\) \[.*self-signed certificate/,
    ],
    [
      'no client certificate',
      () => ({ tls: { ca: pki.caPem, serverName: 'localhost' } }),
      /^TLS: the collector requires a client certificate and none was sent \(set tls\.cert and tls\.key\)/,
    ],
    [
      'client certificate from an unknown CA',
      () => ({
        tls: { ca: pki.caPem, cert: pki.other.client.certPem, key: pki.other.client.keyPem, serverName: 'localhost' },
      }),
      /client certificate/,
    ],
  ];
  for (const [name, opts, expected] of cases) {
    it(`${name}: lastError says so and the agent keeps retrying with backoff`, async () => {
      const c = await collector();
      const spool = openSpool(tempDir());
      const { pub, logs, start } = publisher(c.target, spool, { backoff: { initialMs: 10, maxMs: 80 }, ...opts() });
      const fds = socketFds();
      start();
      pub.publish(makeEvents(spool.identity, 1n, 10));
      await until(() => pub.status().reconnects >= 8, 'several attempts', 5_000);
      await sleep(50);
      assert.ok(socketFds() - fds <= 2, `no socket leaked per attempt (${fds} -> ${socketFds()})`);
      const st = pub.status();
      assert.match(st.lastError ?? '', expected);
      assert.equal(st.connected, false);
      assert.equal(c.received, 0);
      assert.ok(st.lastBackoffMs <= 80);
      const warns = logs.filter((l) => l.level === 40 && l.msg === 'collector stream failed; retrying');
      assert.equal(warns.length, 1, 'the same error is logged at warn once, then at debug');
      assert.deepEqual(seqs([...spool.pending()]), range(1, 10), 'nothing lost meanwhile');
    });
  }

  it('rejects a cert without its key and an identity that is not the spool’s', () => {
    const spool = openSpool(tempDir());
    assert.throws(
      () => publisher('127.0.0.1:1', spool, { tls: { ca: pki.caPem, cert: agentCert.certPem } }),
      /tls.cert and tls.key go together/,
    );
    assert.throws(
      () => publisher('127.0.0.1:1', spool, { identity: { nodeName: 'n', version: 'v', bootId: 'other' } }),
      /differs from the spool's/,
    );
  });
});
