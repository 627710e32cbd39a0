import { ServerCredentials } from '@grpc/grpc-js';
import { type CallContext, createServer, type Server, ServerError, Status } from 'nice-grpc';
import { PushQueue } from '../../src/agent/push-queue.js';
import {
  type AgentIdentity,
  CollectorServiceDefinition,
  type LossCounters,
  type PublishRequest,
  type PublishResponse,
} from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import type { Pki } from './pki.js';

/**
 * A real gRPC server (nice-grpc over grpc-js, mutual TLS with the test PKI)
 * implementing CollectorService.Publish the way the real collector promises
 * to: Hello first, batches of consecutive seqs, dedup by (instance_id,
 * boot_id, seq), ack = highest contiguous seq persisted. "Persisted" here is
 * an in-memory list that survives stop()/restart(), like a real sink would.
 *
 * Controls: ack immediately / late / never, drop every open stream, stop and
 * restart on the same port. Why a double when the real collector runs here:
 * these faults and the per-batch introspection (hellos, batch sizes,
 * duplicates seen) cannot be asked of the real one; the real agent against
 * the real collector is tested in test/kernel/pipeline-e2e.test.ts and
 * test/integration/collector-*.test.ts. A seq gap (the agent dropped events and said so
 * in losses) is recorded and skipped, so acks move on past it.
 */

export type AckMode = 'immediate' | 'never' | { lateMs: number };

export interface ReceivedBatch {
  space: string;
  firstSeq: bigint;
  count: number;
  losses: LossCounters | undefined;
  /** Which stream (1, 2, ...) carried it. */
  stream: number;
}

export interface Gap {
  space: string;
  from: bigint;
  to: bigint;
}

interface Stream {
  id: number;
  out: PushQueue<PublishResponse>;
  fail(err: Error): void;
  space: string | undefined;
}

interface SpaceState {
  watermark: bigint;
  above: Set<bigint>;
  delivered: AcceptEvent[];
}

export const spaceKey = (a: { instanceId: string; bootId: string }): string => `${a.instanceId}/${a.bootId}`;

export class FakeCollector {
  readonly pki: Pki;
  port = 0;
  ack: AckMode;
  readonly batches: ReceivedBatch[] = [];
  readonly hellos: AgentIdentity[] = [];
  readonly gaps: Gap[] = [];
  /** Every event received, duplicates included. */
  received = 0;
  duplicates = 0;
  streamsOpened = 0;
  #server: Server | undefined;
  readonly #streams = new Set<Stream>();
  readonly #spaces = new Map<string, SpaceState>();
  readonly #requireClientCert: boolean;

  private constructor(pki: Pki, ack: AckMode, requireClientCert: boolean) {
    this.pki = pki;
    this.ack = ack;
    this.#requireClientCert = requireClientCert;
  }

  static async start(pki: Pki, o: { ack?: AckMode; port?: number; requireClientCert?: boolean } = {}): Promise<FakeCollector> {
    const c = new FakeCollector(pki, o.ack ?? 'immediate', o.requireClientCert ?? true);
    await c.#listen(o.port ?? 0);
    return c;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  /** Deduplicated events of a space, in the order they were persisted. */
  delivered(space: string): AcceptEvent[] {
    return this.#spaces.get(space)?.delivered ?? [];
  }

  /** Keys of every space seen. */
  spaces(): string[] {
    return [...this.#spaces.keys()];
  }

  watermark(space: string): bigint {
    return this.#spaces.get(space)?.watermark ?? 0n;
  }

  /** Sum of the loss counters of every batch received. */
  losses(): LossCounters {
    const t: LossCounters = { kernelRingFull: 0n, decodeErrors: 0n, bpfRecursionMisses: 0n, queueDrops: 0n, spoolDrops: 0n };
    for (const b of this.batches) {
      if (!b.losses) continue;
      t.kernelRingFull += b.losses.kernelRingFull;
      t.decodeErrors += b.losses.decodeErrors;
      t.bpfRecursionMisses += b.losses.bpfRecursionMisses;
      t.queueDrops += b.losses.queueDrops;
      t.spoolDrops += b.losses.spoolDrops;
    }
    return t;
  }

  /** Send the current watermark on every open stream (after 'never'). */
  ackNow(): void {
    for (const s of this.#streams) this.#sendAck(s);
  }

  /** Fail every open stream with UNAVAILABLE; the server keeps listening. */
  dropStreams(): void {
    for (const s of [...this.#streams]) s.fail(new ServerError(Status.UNAVAILABLE, 'stream dropped by the test'));
  }

  /** Kill the server and every connection (a crashed collector). */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of [...this.#streams]) s.fail(new ServerError(Status.UNAVAILABLE, 'collector stopping'));
    server?.forceShutdown();
  }

  /** Listen again on the same port, state kept. */
  async restart(): Promise<void> {
    if (this.#server) return;
    await this.#listen(this.port);
  }

  async close(): Promise<void> {
    await this.stop();
  }

  async #listen(port: number): Promise<void> {
    const server = createServer();
    server.add(CollectorServiceDefinition, {
      publish: (requests, ctx) => this.#publish(requests, ctx),
      // Not used by the agent.
      async *subscribe() {},
    });
    const creds = ServerCredentials.createSsl(
      this.pki.caPem,
      [{ cert_chain: this.pki.server.certPem, private_key: this.pki.server.keyPem }],
      this.#requireClientCert,
    );
    this.port = await server.listen(`127.0.0.1:${port}`, creds);
    this.#server = server;
  }

  async *#publish(requests: AsyncIterable<PublishRequest>, ctx: CallContext): AsyncGenerator<PublishResponse> {
    const id = ++this.streamsOpened;
    const out = new PushQueue<PublishResponse>();
    let failure: Error | undefined;
    const stream: Stream = {
      id,
      out,
      space: undefined,
      fail: (err) => {
        failure = err;
        out.end();
      },
    };
    this.#streams.add(stream);
    const onAbort = () => out.end();
    ctx.signal.addEventListener('abort', onAbort);
    const reader = (async () => {
      let first = true;
      for await (const req of requests) {
        if (first) {
          first = false;
          if (!req.hello?.agent) throw new ServerError(Status.INVALID_ARGUMENT, 'the first message must be a Hello');
          this.hellos.push(req.hello.agent);
          stream.space = spaceKey(req.hello.agent);
          continue;
        }
        if (!req.batch) throw new ServerError(Status.INVALID_ARGUMENT, 'expected a batch');
        this.#batch(stream, req.batch.firstSeq, req.batch.events, req.batch.losses);
      }
    })().then(
      () => out.end(),
      (err: Error) => stream.fail(err),
    );
    try {
      for await (const res of out) yield res;
      if (failure) throw failure;
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      this.#streams.delete(stream);
      void reader;
    }
  }

  #batch(stream: Stream, firstSeq: bigint, events: AcceptEvent[], losses: LossCounters | undefined): void {
    const key = stream.space!;
    let sp = this.#spaces.get(key);
    if (!sp) {
      sp = { watermark: 0n, above: new Set(), delivered: [] };
      this.#spaces.set(key, sp);
    }
    this.batches.push({ space: key, firstSeq, count: events.length, losses, stream: stream.id });
    events.forEach((e, i) => {
      if (e.seq !== firstSeq + BigInt(i)) {
        throw new ServerError(Status.INVALID_ARGUMENT, `events[${i}].seq ${e.seq} != first_seq + ${i}`);
      }
    });
    if (events.length && firstSeq > sp.watermark + 1n && !sp.above.size) {
      // The agent skipped seqs (dropped, and counted in losses): record the gap, move on.
      this.gaps.push({ space: key, from: sp.watermark + 1n, to: firstSeq - 1n });
      sp.watermark = firstSeq - 1n;
    }
    for (const e of events) {
      this.received++;
      if (e.seq <= sp.watermark || sp.above.has(e.seq)) {
        this.duplicates++;
        continue;
      }
      // Round-trip through the wire form, as a sink would store it.
      sp.delivered.push(AcceptEvent.decode(AcceptEvent.encode(e).finish()));
      sp.above.add(e.seq);
    }
    while (sp.above.has(sp.watermark + 1n)) {
      sp.above.delete(sp.watermark + 1n);
      sp.watermark++;
    }
    const mode = this.ack;
    if (mode === 'immediate') this.#sendAck(stream);
    else if (mode !== 'never') {
      // A late ack says what was persisted when the batch was, not when it leaves.
      const w = sp.watermark;
      setTimeout(() => this.#sendAck(stream, w), mode.lateMs);
    }
  }

  #sendAck(stream: Stream, seq?: bigint): void {
    if (!stream.space || !this.#streams.has(stream)) return;
    stream.out.push({ ackedSeq: seq ?? this.watermark(stream.space) });
  }
}

/** Events with consecutive seqs from `from`, as Capture makes them. */
export function makeEvents(id: { instanceId: string; bootId: string }, from: bigint, n: number, node = 'node-a'): AcceptEvent[] {
  const out: AcceptEvent[] = [];
  for (let i = 0; i < n; i++) {
    const seq = from + BigInt(i);
    out.push(
      AcceptEvent.fromPartial({
        eventId: `${id.bootId}/${id.instanceId}/${seq}`,
        seq,
        timeUnixNano: 1_700_000_000_000_000_000n + seq,
        nodeName: node,
        source: 2,
        ret: 5,
        success: true,
        process: { pid: 1000, tid: 1000, comm: 'nginx' },
        socket: {
          family: 1,
          type: 'STREAM',
          protocol: 6,
          local: { ip: '10.0.0.1', port: 80 },
          peer: { ip: '10.0.0.2', port: 40000 },
        },
      }),
    );
  }
  return out;
}
