import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createChannel } from 'nice-grpc';
import { publishCall } from '../../src/agent/publish-call.js';
import { encodePublishRequest, type OutgoingRequest } from '../../src/agent/wire.js';
import type { RunningCollector } from '../../src/collector/collector.js';
import { type AgentIdentity, PublishRequest } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import type { SinkRecord } from '../../src/sinks/sink.js';
import { captureLogger } from '../helpers/auth-fixtures.js';
import { clientCredentials, type MemorySinks, makeBatch, startMemoryCollector } from '../helpers/memory-sink.js';
import { makePki, type Pki } from '../helpers/pki.js';

// A seeded, reproducible fuzz of the Publish stream (DOORWATCH_FUZZ_SEED to
// replay one): thousands of frames — valid batches as the agent's own wire
// encoder makes them (src/agent/wire.ts), those same frames mutated (bit flips,
// byte insertions and deletions, truncation, a seq or node name changed), and
// random bytes — over real gRPC + mutual TLS to a collector that binds streams
// to nodes (auth.mode certificate). An independent model (the generated
// decoder, and the protocol's rules written out again here) says which frames
// must be accepted; the test holds the collector to it:
// - it never crashes (this process would die) and never hangs (every stream
//   ends within its deadline, and the collector still serves a good stream at
//   the end);
// - what reaches the sink is exactly the events of the accepted frames, byte
//   for byte, and nothing of any refused frame.

const SEED = Number(process.env.DOORWATCH_FUZZ_SEED ?? 0x5eed_d00d);
// One fuzzed frame per stream, after a valid prefix: a refused frame ends its stream, so this is how every
// fuzzed frame is actually read by the collector (10 500 of them), and the valid frames around it check that
// what came before a refusal is kept and what came after never read.
const STREAMS = Number(process.env.DOORWATCH_FUZZ_STREAMS ?? 10_500);
const CONCURRENCY = 16;
const STREAM_DEADLINE_MS = 15_000;

/** mulberry32: small, seedable, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let pki: Pki;
let collector: RunningCollector;
let mem: MemorySinks;

before(async () => {
  pki = makePki();
  ({ collector, mem } = await startMemoryCollector(
    pki,
    [{ name: 'mem' }],
    {
      auth: { mode: 'certificate', certificate: { agents: { 'fuzz-agent': ['node-a'] } } },
      limits: { streamsPerPeer: 64, callsPerSecondPerPeer: 100_000, helloTimeout: '5s' },
    },
    { log: captureLogger('warn').log },
  ));
});
after(() => collector?.stop());

// ---- the frames -----------------------------------------------------------------------------------------------

const NAMESPACES = ['payments', 'auth', 'default'];

function validBatch(rand: () => number, first: bigint): Uint8Array {
  const n = 1 + Math.floor(rand() * 12);
  const b = makeBatch(first, n, {
    node: 'node-a',
    namespace: NAMESPACES[Math.floor(rand() * 3)]!,
    pod: `p-${Math.floor(rand() * 50)}`,
  });
  return encodePublishRequest({ hello: undefined, batch: b });
}

function mutate(rand: () => number, src: Uint8Array): Uint8Array {
  const b = Buffer.from(src);
  const kind = Math.floor(rand() * 7);
  const at = Math.floor(rand() * b.length);
  switch (kind) {
    case 0: // flip 1-4 bits
      for (let i = 0, n = 1 + Math.floor(rand() * 4); i < n; i++) {
        const p = Math.floor(rand() * b.length);
        b[p] = b[p]! ^ (1 << Math.floor(rand() * 8));
      }
      return b;
    case 1: // insert bytes
      return Buffer.concat([
        b.subarray(0, at),
        Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * 256))),
        b.subarray(at),
      ]);
    case 2: // delete bytes
      return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + Math.floor(rand() * 8))]);
    case 3: // truncate
      return b.subarray(0, at);
    case 4: {
      // a seq off by one (or the first seq moved): decodes, must be refused unless still consecutive
      const req = PublishRequest.decode(src);
      const evs = req.batch!.events;
      const i = Math.floor(rand() * evs.length);
      evs[i]!.seq += rand() < 0.5 ? 1n : -1n;
      return PublishRequest.encode(req).finish();
    }
    case 5: {
      // another node's name in one event: decodes, must be PERMISSION_DENIED
      const req = PublishRequest.decode(src);
      const evs = req.batch!.events;
      evs[Math.floor(rand() * evs.length)]!.nodeName = 'node-b';
      return PublishRequest.encode(req).finish();
    }
    default: // overwrite one byte
      b[at] = Math.floor(rand() * 256);
      return b;
  }
}

// ---- the model --------------------------------------------------------------------------------------------------

interface Expected {
  /** Events that must reach the sink, by seq. */
  events: Map<bigint, AcceptEvent>;
  /** Frames the collector reads: until (and including) the first refused one. */
  sent: number;
  refused: boolean;
}

/** Whether the collector must accept this frame, by the protocol (docs/collector.md) and the node binding. */
function modelAccepts(frame: Uint8Array): PublishRequest | undefined {
  let req: PublishRequest;
  try {
    req = PublishRequest.decode(frame);
  } catch {
    return undefined;
  }
  if (req.hello || !req.batch) return undefined;
  const b = req.batch;
  // Batch contexts (collector.proto): one reference per event or none; each names a context; an event that
  // refers to one has no per-pod fields of its own, and gets the context's.
  if (b.eventContexts.length) {
    if (b.eventContexts.length !== b.events.length) return undefined;
    const perPod = ['namespaces', 'cgroup', 'container', 'pod', 'enrichment'] as const;
    for (const [i, k] of b.eventContexts.entries()) {
      if (k === 0) continue;
      const c = b.contexts[k - 1];
      const e = b.events[i]!;
      if (!c || perPod.some((f) => e[f] !== undefined)) return undefined;
      for (const f of perPod) (e as unknown as Record<string, unknown>)[f] = c[f];
    }
  }
  const losses = b.losses && Object.values(b.losses).some((v) => v !== 0n);
  if (!b.events.length) return losses ? req : undefined;
  if (b.firstSeq < 1n) return undefined;
  for (let i = 0; i < b.events.length; i++) if (b.events[i]!.seq !== b.firstSeq + BigInt(i)) return undefined;
  if (b.events.some((e) => e.nodeName !== 'node-a')) return undefined;
  return req;
}

function plan(rand: () => number): { frames: Uint8Array[]; expected: Expected } {
  const frames: Uint8Array[] = [];
  let seqCursor = 1n;
  const valid = () => {
    const f = validBatch(rand, seqCursor);
    seqCursor += BigInt(PublishRequest.decode(f).batch!.events.length);
    return f;
  };
  for (let i = Math.floor(rand() * 4); i > 0; i--) frames.push(valid());
  // The fuzzed frame: a mutation of the next valid batch (70 %) or random bytes.
  frames.push(
    rand() < 0.7
      ? mutate(rand, validBatch(rand, seqCursor))
      : Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256))),
  );
  for (let i = Math.floor(rand() * 3); i > 0; i--) frames.push(validBatch(rand, seqCursor + 1000n * BigInt(i)));

  const expected: Expected = { events: new Map(), sent: 0, refused: false };
  let next = 1n; // the collector's next expected seq for this stream
  for (const frame of frames) {
    expected.sent++;
    const req = modelAccepts(frame);
    if (!req) {
      expected.refused = true;
      break;
    }
    const b = req.batch!;
    for (const e of b.events) if (e.seq >= next) expected.events.set(e.seq, e);
    if (b.events.length) {
      const last = b.firstSeq + BigInt(b.events.length) - 1n;
      if (last >= next) next = last + 1n;
    }
  }
  return { frames, expected };
}

// ---- the run ----------------------------------------------------------------------------------------------------

let agentCert: { certPem: Buffer; keyPem: Buffer } | undefined;

/** One connection per worker: streams share it (HTTP/2), as an agent's reconnects would not, but a handshake per stream would make the run minutes long. */
function connection() {
  agentCert ??= pki.client('fuzz-agent'); // openssl once, not per stream
  const creds = clientCredentials({ ca: pki.caPem, cert: agentCert.certPem, key: agentCert.keyPem });
  const channel = createChannel(`127.0.0.1:${collector.port}`, creds, { 'grpc.ssl_target_name_override': 'localhost' });
  return { channel };
}

async function runStream(
  frames: Uint8Array[],
  agent: AgentIdentity,
  conn: ReturnType<typeof connection> = connection(),
  own = true,
): Promise<'ended'> {
  const { channel } = conn;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), STREAM_DEADLINE_MS);
  async function* requests(): AsyncGenerator<OutgoingRequest> {
    // Bytes go to grpc-js as they are, through the agent's own Publish call.
    yield { hello: { agent }, batch: undefined };
    for (const f of frames) yield f;
  }
  try {
    for await (const _ of publishCall(channel, requests(), { signal: ac.signal }));
  } catch (e) {
    if (ac.signal.aborted) throw new Error(`stream ${agent.instanceId} hung: no end within ${STREAM_DEADLINE_MS} ms`);
    void e; // a refusal: expected for most streams
  } finally {
    clearTimeout(timer);
    if (own) channel.close();
  }
  return 'ended';
}

describe(`collector fuzz (seed ${SEED}: DOORWATCH_FUZZ_SEED=${SEED} replays it)`, () => {
  it(`${STREAMS} random and mutated Publish frames (each read by the collector): no crash, no hang, only validated records written`, async () => {
    const rand = prng(SEED);
    const plans = Array.from({ length: STREAMS }, (_, i) => ({
      agent: { nodeName: 'node-a', bootId: 'fuzz-boot', instanceId: `fuzz-${SEED}-${i}`, version: 'fuzz' },
      ...plan(rand),
    }));
    const refusedStreams = plans.filter((p) => p.expected.refused).length;
    // The mix must exercise both sides, or the test proves nothing: most fuzzed frames are refused, some
    // mutations stay valid (a flipped bit in a port, unknown fields) and must then be accepted.
    assert.ok(refusedStreams > STREAMS / 2 && refusedStreams < STREAMS * 0.98, `refused streams: ${refusedStreams}`);

    const queue = [...plans];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        const conn = connection();
        for (let p = queue.shift(); p; p = queue.shift()) await runStream(p.frames, p.agent, conn, false);
        conn.channel.close();
      }),
    );

    // Everything accepted is persisted (the streams ended after their acks or their refusal).
    const records: SinkRecord[] = mem.get('mem').records;
    const sinkEvents = records.filter((r) => r.kind === 'event');
    const expectedTotal = plans.reduce((n, p) => n + p.expected.events.size, 0);
    assert.equal(sinkEvents.length, expectedTotal, 'exactly the accepted events reached the sink');

    // Byte for byte: every written event is one the model accepted (events carry no stream id of their own,
    // so compare as multisets of encodings). The collector sets the peer and local attribution itself
    // (whatever a frame carried there): compared without them, and checked set.
    const own = (e: AcceptEvent): AcceptEvent => ({ ...e, peerAttribution: undefined, localAttribution: undefined });
    const want = new Map<string, number>();
    for (const p of plans) {
      for (const e of p.expected.events.values()) {
        const k = Buffer.from(AcceptEvent.encode(own(e)).finish()).toString('base64');
        want.set(k, (want.get(k) ?? 0) + 1);
      }
    }
    for (const r of sinkEvents) {
      if (r.kind !== 'event') continue;
      assert.ok(r.event.peerAttribution && r.event.localAttribution, 'attributed by the collector, never blank');
      const k = Buffer.from(AcceptEvent.encode(own(r.event)).finish()).toString('base64');
      const n = want.get(k) ?? 0;
      assert.ok(
        n > 0,
        `the sink holds an event the model did not accept: ${JSON.stringify(AcceptEvent.toJSON(r.event)).slice(0, 300)}`,
      );
      want.set(k, n - 1);
      assert.equal(r.event.nodeName, 'node-a');
    }

    // Still alive and serving; every stream is gone.
    const s = collector.stats();
    assert.equal(s.publishers, 0);
    assert.ok(s.refusals.invalid_argument + s.refusals.permission_denied >= refusedStreams * 0.9, JSON.stringify(s.refusals));
    const final = await runStream([validBatchFor(1n)], {
      nodeName: 'node-a',
      bootId: 'fuzz-boot',
      instanceId: 'final',
      version: 'fuzz',
    });
    assert.equal(final, 'ended');
    assert.equal(mem.get('mem').records.filter((r) => r.kind === 'event').length, expectedTotal + 2);
  });
});

function validBatchFor(first: bigint): Uint8Array {
  return encodePublishRequest({ hello: undefined, batch: makeBatch(first, 2, { node: 'node-a' }) });
}
