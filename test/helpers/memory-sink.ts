import { ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { type Channel, type ClientError, createChannel, createClient, Metadata } from 'nice-grpc';
import { z } from 'zod';
import { type CollectorDeps, type RunningCollector, startCollector } from '../../src/collector/collector.js';
import { parseCollectorConfig } from '../../src/collector/config.js';
import { ConfigError, zodProblems } from '../../src/config/errors.js';
import {
  type AgentIdentity,
  CollectorServiceDefinition,
  type DeepPartial,
  type EventBatch,
  type LossRecord,
  type PublishRequest,
} from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent, AddressFamily, EnrichmentStatus, Source } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import type { Sink, SinkFactory, SinkRecord } from '../../src/sinks/sink.js';
import type { Pki } from './pki.js';
import { until } from './wait.js';

/**
 * An in-memory sink for collector tests: records what was persisted, with a
 * configurable delay per write, a number of failing writes, a gate that holds
 * writes until opened, and a create() that fails on demand. Instances are
 * reachable by name through the MemorySinks handle that built the factory.
 *
 * Also: small builders for events and batches, a raw test agent, and a
 * collector with memory sinks, shared by the collector tests.
 */

const memoryOptions = z
  .object({
    /** Accepted like every real sink's (the collector hands it over). */
    format: z.enum(['native', 'ocsf', 'ecs']).optional(),
    delayMs: z.number().int().nonnegative().default(0),
    failFirst: z.number().int().nonnegative().default(0),
    failCreate: z.string().optional(),
  })
  .strict();

export type MemorySinkOptions = z.infer<typeof memoryOptions>;

export class MemorySink implements Sink {
  readonly records: SinkRecord[] = [];
  writes = 0;
  failures = 0;
  closed = false;
  delayMs: number;
  failFirst: number;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(
    readonly name: string,
    opts: MemorySinkOptions,
  ) {
    this.delayMs = opts.delayMs;
    this.failFirst = opts.failFirst;
  }

  get events(): AcceptEvent[] {
    return this.records.flatMap((r) => (r.kind === 'event' ? [r.event] : []));
  }

  get losses(): LossRecord[] {
    return this.records.flatMap((r) => (r.kind === 'loss' ? [r.loss] : []));
  }

  /** Hold every write until open() (writes in progress wait too). */
  block(): void {
    this.gate ??= new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  open(): void {
    this.openGate?.();
    this.gate = undefined;
    this.openGate = undefined;
  }

  async write(batch: SinkRecord[]): Promise<void> {
    this.writes++;
    if (this.closed) throw new Error(`memory sink ${this.name} is closed`);
    if (this.gate) await this.gate;
    if (this.closed) throw new Error(`memory sink ${this.name} closed during the write`);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failures < this.failFirst) {
      this.failures++;
      throw new Error(`memory sink ${this.name}: injected failure ${this.failures}/${this.failFirst}`);
    }
    this.records.push(...batch);
  }

  async flush(): Promise<void> {}

  /** A write held by the gate fails: it was never persisted. */
  async close(): Promise<void> {
    this.closed = true;
    this.open();
  }

  /** Resolves when `cond` holds; rejects after `timeoutMs`. */
  async until(cond: (s: MemorySink) => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    await until(() => cond(this), `memory sink ${this.name}: ${what}`, timeoutMs);
  }
}

export interface MemorySinks {
  factory: SinkFactory<MemorySinkOptions>;
  get(name: string): MemorySink;
  all(): MemorySink[];
}

export function memorySinks(type = 'memory'): MemorySinks {
  const byName = new Map<string, MemorySink>();
  const factory: SinkFactory<MemorySinkOptions> = {
    type,
    parse(config, path) {
      const r = memoryOptions.safeParse(config);
      if (!r.success) throw new ConfigError('memory sink', zodProblems(r.error, path));
      return r.data;
    },
    async create(name, config) {
      if (config.failCreate) throw new Error(config.failCreate);
      const s = new MemorySink(name, config);
      byName.set(name, s);
      return s;
    },
  };
  return {
    factory,
    get(name) {
      const s = byName.get(name);
      if (!s) throw new Error(`no memory sink named ${name}`);
      return s;
    },
    all: () => [...byName.values()],
  };
}

// ---- builders ----------------------------------------------------------------

export function agentIdentity(node: string, instanceId = `inst-${node}`, bootId = `boot-${node}`): AgentIdentity {
  return { nodeName: node, bootId, instanceId, version: 'test' };
}

export interface EventShape {
  node?: string;
  namespace?: string;
  pod?: string;
  localPort?: number;
  peerIp?: string;
  peerPort?: number;
}

export function makeEvent(seq: bigint | number, shape: EventShape = {}): AcceptEvent {
  const node = shape.node ?? 'node-a';
  const s = BigInt(seq);
  const peerIp = shape.peerIp ?? '10.1.2.3';
  return AcceptEvent.fromPartial({
    eventId: `${node}/boot/1/${s}`,
    seq: s,
    timeUnixNano: 1_700_000_000_000_000_000n + s,
    nodeName: node,
    source: Source.SOURCE_ACCEPT4,
    ret: 5,
    success: true,
    process: { pid: 100, tid: 100, comm: 'nginx' },
    socket: {
      family: peerIp.includes(':') ? AddressFamily.ADDRESS_FAMILY_INET6 : AddressFamily.ADDRESS_FAMILY_INET,
      familyNumber: peerIp.includes(':') ? 10 : 2,
      type: 'STREAM',
      protocol: 6,
      local: { ip: '10.0.0.1', port: shape.localPort ?? 8080 },
      peer: { ip: peerIp, port: shape.peerPort ?? 40000 },
      resolved: true,
    },
    pod: shape.pod || shape.namespace ? { namespace: shape.namespace ?? 'default', name: shape.pod ?? 'web-0' } : undefined,
    enrichment: { status: EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE },
  });
}

/** A batch of `count` events with seqs first..first+count-1. */
export function makeBatch(first: bigint | number, count: number, shape: EventShape = {}): EventBatch {
  const f = BigInt(first);
  return {
    firstSeq: f,
    events: Array.from({ length: count }, (_, i) => makeEvent(f + BigInt(i), shape)),
    losses: undefined,
    contexts: [],
    eventContexts: [],
  };
}

// ---- a raw test agent over real gRPC -------------------------------------------

export interface TlsClientFiles {
  ca?: Buffer;
  key?: Buffer;
  cert?: Buffer;
}

export function clientCredentials(tls: TlsClientFiles | 'insecure'): ChannelCredentials {
  if (tls === 'insecure') return ChannelCredentials.createInsecure();
  return ChannelCredentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
}

/**
 * One Publish stream driven by the test: send() queues a request, end()
 * half-closes; `acks` collects every ack; `outcome` settles with the call's
 * end (undefined when OK, the ClientError otherwise); `pulled` counts the
 * requests the transport took from us (back-pressure shows as it stalling).
 */
export class TestAgent {
  readonly acks: bigint[] = [];
  pulled = 0;
  readonly outcome: Promise<ClientError | Error | undefined>;
  private readonly queue: DeepPartial<PublishRequest>[] = [];
  private ended = false;
  private wake: (() => void) | undefined;
  private readonly channel: Channel;
  private readonly abort = new AbortController();

  constructor(port: number, creds: ChannelCredentials, options: ChannelOptions = {}, callMetadata: Record<string, string> = {}) {
    // SNI "localhost" (the server cert has it): an IP as TLS ServerName is deprecated in Node.
    this.channel = createChannel(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': 'localhost', ...options });
    const client = createClient(CollectorServiceDefinition, this.channel);
    const self = this;
    async function* requests(): AsyncGenerator<DeepPartial<PublishRequest>> {
      while (true) {
        const next = self.queue.shift();
        if (next) {
          self.pulled++;
          yield next;
          continue;
        }
        if (self.ended) return;
        await new Promise<void>((r) => {
          self.wake = r;
        });
      }
    }
    this.outcome = (async () => {
      try {
        const metadata = Metadata(callMetadata);
        for await (const r of client.publish(requests(), { signal: this.abort.signal, metadata })) this.acks.push(r.ackedSeq);
        return undefined;
      } catch (e) {
        return e as Error;
      }
    })();
  }

  get lastAck(): bigint {
    return this.acks.at(-1) ?? 0n;
  }

  send(req: DeepPartial<PublishRequest>): this {
    this.queue.push(req);
    this.wake?.();
    return this;
  }

  hello(agent: AgentIdentity): this {
    return this.send({ hello: { agent } });
  }

  batch(b: EventBatch): this {
    return this.send({ batch: b });
  }

  end(): this {
    this.ended = true;
    this.wake?.();
    return this;
  }

  /** Resolves once an ack >= seq arrived; rejects on timeout or if the call ends first. */
  async waitAck(seq: bigint | number, timeoutMs = 5000): Promise<void> {
    const want = BigInt(seq);
    let ended: { outcome: unknown } | undefined;
    void this.outcome.then((outcome) => {
      ended = { outcome };
    });
    await until(
      () => {
        if (this.lastAck >= want) return true;
        if (ended) throw new Error(`call ended before ack ${want} (last ack ${this.lastAck}): ${ended.outcome}`);
        return false;
      },
      `ack ${want}`,
      timeoutMs,
    ).catch((e: Error) => {
      throw new Error(`${e.message} (last ack ${this.lastAck})`);
    });
  }

  close(): void {
    this.abort.abort();
    this.channel.close();
  }
}

// ---- a collector with memory sinks over real gRPC + mTLS ------------------------

/**
 * A collector on a free loopback port with mutual TLS from `pki`, and memory
 * sinks (`type: memory` unless an entry says otherwise); `extra` adds or
 * overrides top-level config keys.
 */
export async function startMemoryCollector(
  pki: Pki,
  sinks: Record<string, unknown>[],
  extra: Record<string, unknown> = {},
  deps: Partial<Pick<CollectorDeps, 'random' | 'kubeAuthApi' | 'log'>> = {},
): Promise<{ collector: RunningCollector; mem: MemorySinks }> {
  const mem = memorySinks();
  const registry = { memory: mem.factory };
  const config = parseCollectorConfig(
    {
      listen: '127.0.0.1:0',
      tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.caFile },
      ...extra,
      sinks: sinks.map((s) => ({ type: 'memory', ...s })),
    },
    'test',
    registry,
  );
  return { collector: await startCollector(config, { registry, log: silentLogger, ...deps }), mem };
}

export { bounded } from './wait.js';

/** until() with the (cond, ms, what) order these tests use. */
export const eventually = (cond: () => boolean, ms: number, what: string): Promise<unknown> => until(cond, what, ms);
