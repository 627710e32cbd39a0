import type { CallContext } from 'nice-grpc';
import { ServerError, Status } from 'nice-grpc';
import { PublishRequest, type SubscribeRequest, type SubscribeResponse } from '../gen/doorwatch/v1/collector.js';
import type { Logger } from '../log/logger.js';
import type { Sink } from '../sinks/sink.js';
import { type Clock, systemClock, within } from './async.js';
import type { KubeAuthApi } from './auth/kube-api.js';
import { guardPublish } from './auth/publish-guard.js';
import { type AuthSetup, authStats, createAuth } from './auth/setup.js';
import type { CollectorConfig, SinkConfig, SinkRegistry } from './config.js';
import { Dispatcher, type QueuedRecord, type SinkStats } from './dispatcher.js';
import { CollectorStartError } from './errors.js';
import { evaluateCollectorReadiness, startCollectorHealth } from './health.js';
import { type Listener, listen, readTlsMaterial } from './listener.js';
import { CollectorMetrics } from './metrics.js';
import { STATUS_LABELS } from './peers/attributor.js';
import { type Peers, startPeers } from './peers/setup.js';
import type { PeerSourceStatus } from './peers/source.js';
import { withPublishPrecheck } from './precheck.js';
import { createPublishHandler, DECODE_ERROR, type MaybeMalformed, type PublishCounters } from './publish.js';
import { type RefusalReason, Refusals } from './refusals.js';
import { ServerCollectorServiceDefinition, serverCredentials, serverOptions } from './server.js';
import { type StreamState, StreamTable } from './streams.js';
import { SubscriberHub } from './subscribe.js';

/**
 * The collector: gRPC server + stream table + dispatcher + subscriber hub.
 * startCollector() creates every sink first (a sink that cannot start fails
 * the start, by name: no silently disabled sink), then listens.
 */

/** How often idle agent streams are looked for (StreamTable.sweep). */
const STREAM_SWEEP_MS = 60_000;

export interface CollectorDeps {
  registry: SinkRegistry;
  log: Logger;
  /** For tests: time and jitter. */
  clock?: Clock;
  random?: () => number;
  /** Names the config in error messages. */
  source?: string;
  /** The environment sinks' `tokenEnv` / `passwordEnv` read (the cli passes process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** For tests: the Kubernetes API auth.mode kubernetes talks to (default: from the kubeconfig). */
  kubeAuthApi?: KubeAuthApi;
}

export interface CollectorStats {
  /** Agent streams (instance_id/boot_id) tracked: connected, or idle with unacked events, or idle less than an hour. */
  streams: number;
  /** Open Publish calls. */
  publishers: number;
  batches: number;
  /** Events accepted (first time seen), sent to the sinks. */
  accepted: number;
  /** Replayed events dropped as already accepted. */
  duplicates: number;
  /** Seq gaps noticed, and the events they span. */
  gaps: number;
  gapEvents: number;
  /** Publish calls ended with an error status (bad requests). */
  rejected: number;
  backpressureWaits: number;
  rateLimitedMs: number;
  subscribers: number;
  /** Events dropped from slow subscribers. */
  subscriberDrops: number;
  /** Refused connections and calls, by reason (docs/security.md). */
  refusals: Record<RefusalReason, number>;
  /** TokenReview traffic (auth.mode kubernetes): reviews made, cache hits, API errors, calls waiting for the API. */
  auth: { reviews: number; cacheHits: number; apiErrors: number; waiting: number };
  /** Open client connections. */
  connections: number;
  sinks: SinkStats[];
  /** The peer index (peers.enabled): sync state and sizes; undefined when peer attribution is off. */
  peers?: PeerSourceStatus;
}

export interface RunningCollector {
  /** The bound port (useful with listen "host:0"). */
  readonly port: number;
  /** Where /healthz, /readyz and /metrics are served (health.address), with the real port. */
  readonly healthAddress: { host: string; port: number } | undefined;
  /** Stop accepting, drain the queues (at most drainTimeout), send the last acks, close the sinks. Idempotent. */
  stop(): Promise<void>;
  stats(): CollectorStats;
}

export { CollectorStartError };

async function createSinks(config: CollectorConfig, deps: CollectorDeps): Promise<{ config: SinkConfig; sink: Sink }[]> {
  const results = await Promise.allSettled(
    config.sinks.map(async (sc) => {
      const factory = Object.hasOwn(deps.registry, sc.type) ? deps.registry[sc.type] : undefined;
      if (!factory) throw new Error(`unknown sink type "${sc.type}"`);
      const log = deps.log.child({ sink: sc.name, type: sc.type });
      return { config: sc, sink: await factory.create(sc.name, sc.options, { log, env: deps.env }) };
    }),
  );
  const failed: string[] = [];
  const created: { config: SinkConfig; sink: Sink }[] = [];
  results.forEach((r, i) => {
    const sc = config.sinks[i]!;
    if (r.status === 'fulfilled') created.push(r.value);
    else failed.push(`sink "${sc.name}" (${sc.type}) could not start: ${(r.reason as Error)?.message ?? String(r.reason)}`);
  });
  if (failed.length) {
    await Promise.allSettled(created.map((c) => c.sink.close()));
    throw new CollectorStartError('DW_ERR_COLLECTOR_SINK_START', failed.join('; '), {
      cause: results.find((r) => r.status === 'rejected')?.reason,
    });
  }
  return created;
}

export async function startCollector(config: CollectorConfig, deps: CollectorDeps): Promise<RunningCollector> {
  const log = deps.log.child({ module: 'collector' });
  const clock = deps.clock ?? systemClock;
  await serverCredentials(config, deps.source); // every TLS problem reported by key, before anything starts
  const tlsMaterial = await readTlsMaterial(config);
  // The HTTP endpoints come first: /healthz answers (and /readyz says why not ready) while sinks connect.
  const metrics = new CollectorMetrics();
  const health: { listening?: { address: string }; stopping: boolean; dispatcher?: Dispatcher } = { stopping: false };
  const readiness = () =>
    evaluateCollectorReadiness({ listening: health.listening, stopping: health.stopping, sinks: health.dispatcher?.stats() });
  const endpoints = config.health.address
    ? await startCollectorHealth({ address: config.health.address, readiness, metrics: () => metrics.scrape(), log })
    : undefined;
  try {
    return await startServing(config, deps, { log, clock, tlsMaterial, metrics, health, endpoints });
  } catch (e) {
    await endpoints?.close();
    throw e;
  }
}

async function startServing(
  config: CollectorConfig,
  deps: CollectorDeps,
  o: {
    log: Logger;
    clock: Clock;
    tlsMaterial: Awaited<ReturnType<typeof readTlsMaterial>>;
    metrics: CollectorMetrics;
    health: { listening?: { address: string }; stopping: boolean; dispatcher?: Dispatcher };
    endpoints: Awaited<ReturnType<typeof startCollectorHealth>> | undefined;
  },
): Promise<RunningCollector> {
  const { log, clock, tlsMaterial, metrics, health, endpoints } = o;
  const refusals = new Refusals({ log, intervalMs: config.limits.refusalLogIntervalMs });
  const auth: AuthSetup = await createAuth(config, {
    log,
    clock,
    env: deps.env,
    kubeAuthApi: deps.kubeAuthApi,
    source: deps.source,
  });
  const sinks = await createSinks(config, deps);
  // Cluster-wide peer attribution: its informers start in the background, never holding the start.
  const peers: Peers = await startPeers(config.peers, { log, env: deps.env });

  const streams = new StreamTable(sinks.filter((s) => s.config.required).map((s) => s.config.name));
  const onPersisted = (sink: string, records: QueuedRecord[]) => {
    // Highest seq per stream in this batch: FIFO + retry-until-success make it a watermark.
    const high = new Map<StreamState, bigint>();
    for (const r of records) {
      if (r.stream && r.seq !== undefined) {
        const h = high.get(r.stream);
        if (h === undefined || r.seq > h) high.set(r.stream, r.seq);
      }
    }
    for (const [s, seq] of high) s.persistedBy(sink, seq);
  };
  const dispatcher = new Dispatcher(sinks, {
    log,
    onPersisted,
    onWritten: metrics.onWritten,
    clock,
    ...(deps.random ? { random: deps.random } : {}),
  });
  const hub = new SubscriberHub({ maxBuffered: config.subscribers.maxBuffered, maxSubscribers: config.subscribers.max });
  const stopping = new AbortController();
  const closing = new AbortController();
  const counters: PublishCounters = {
    activeSessions: 0,
    batches: 0,
    backpressureWaits: 0,
    rateLimitedMs: 0,
    rejected: 0,
    seqGapRecords: 0,
    agentLossRecords: 0,
  };
  const publish = createPublishHandler({
    streams,
    dispatcher,
    hub,
    rateLimit: config.rateLimit,
    lifecycle: { stopping: stopping.signal, closing: closing.signal },
    clock,
    log,
    counters,
    observe: metrics.observer,
    peers: peers.attributor,
    batchContexts: config.batchContexts,
  });
  health.dispatcher = dispatcher;
  let listener: Listener | undefined;
  const peerCredentials = (peer: string) => listener?.peerCredentials(peer);
  const guardDeps = { authorizer: auth.authorizer, limits: config.limits, peerCredentials, instances: auth.instances, log };
  const publishGuarded = (requests: AsyncIterable<MaybeMalformed<PublishRequest>>, ctx: CallContext) =>
    publish(guardPublish(requests, ctx, guardDeps), ctx);
  async function* subscribe(req: MaybeMalformed<SubscribeRequest>, ctx: CallContext): AsyncGenerator<SubscribeResponse, void> {
    const bad = req[DECODE_ERROR];
    if (bad !== undefined) throw new ServerError(Status.INVALID_ARGUMENT, `not a valid SubscribeRequest (${bad})`);
    const signal = AbortSignal.any([ctx.signal, stopping.signal]);
    const creds = { authorization: ctx.metadata.get('authorization'), peer: peerCredentials(ctx.peer) };
    const scope = await auth.authorizer.authorizeSubscriber(creds, req.filter?.namespaces ?? [], signal);
    if (!scope) return;
    log.info({ peer: ctx.peer, filter: req.filter, who: scope.who }, 'subscriber connected');
    try {
      yield* hub.subscribe(req.filter, signal, scope);
    } finally {
      log.info({ peer: ctx.peer }, 'subscriber disconnected');
    }
  }

  if (config.insecure) log.warn('insecure: true: agents connect in plaintext, unauthenticated');
  if (config.auth.mode === 'none') {
    log.warn('auth.mode: none: any client that passes TLS may publish as any node and subscribe to every namespace');
  }
  if (!streams.hasRequiredSinks) log.warn('no required sink: acks mean "enqueued", with no durability guarantee');

  // Size limits checked on the bytes, before decoding (precheck.ts).
  const publishDefinition = withPublishPrecheck(ServerCollectorServiceDefinition, config.limits, () => PublishRequest.create());
  dispatcher.start();
  let server: Listener;
  try {
    server = await listen(
      { definition: publishDefinition, implementation: { publish: publishGuarded, subscribe } },
      { address: config.listen, tls: tlsMaterial, grpcOptions: serverOptions(config), limits: config.limits, refusals },
    );
    listener = server;
    health.listening = { address: `${config.listen.slice(0, config.listen.lastIndexOf(':'))}:${server.port}` };
  } catch (e) {
    await dispatcher.close(0);
    await peers.stop();
    throw new CollectorStartError('DW_ERR_COLLECTOR_LISTEN', `cannot listen on ${config.listen}: ${(e as Error).message}`, {
      cause: e,
    });
  }

  // Agent streams that ended long ago, with nothing unacked, are forgotten (streams.ts): one per agent restart.
  const sweeper = setInterval(() => {
    const n = streams.sweep(clock.now());
    if (n) log.debug({ forgotten: n, tracked: streams.size }, 'forgot idle agent streams');
  }, STREAM_SWEEP_MS);
  sweeper.unref();

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      clearInterval(sweeper);
      log.info('stopping: no new calls, draining sink queues');
      health.stopping = true;
      const t0 = clock.now();
      const shutdown = server.shutdown(); // refuses new calls, waits for open ones
      stopping.abort();
      hub.close();
      const drained = await dispatcher.drain(config.drainTimeoutMs);
      if (!drained) {
        const left = dispatcher.stats().filter((s) => s.queued || s.inFlight);
        log.warn(
          { sinks: left.map((s) => ({ name: s.name, queued: s.queued, inFlight: s.inFlight, lastError: s.lastError })) },
          'drain timed out: unpersisted records stay unacked; agents resend them',
        );
      }
      closing.abort(); // publish streams send their last ack and end with UNAVAILABLE
      await dispatcher.close();
      await peers.stop();
      if (!(await within(shutdown, 1000, clock))) server.forceShutdown();
      await endpoints?.close();
      log.info({ drained, ms: Math.round(clock.now() - t0) }, 'stopped');
    })();
    return stopped;
  };

  const stats = (): CollectorStats => {
    let accepted = 0;
    let duplicates = 0;
    let gaps = 0;
    let gapEvents = 0n;
    for (const t of streams.totalsByNode().values()) {
      accepted += t.accepted;
      duplicates += t.duplicates;
      gaps += t.gaps;
      gapEvents += t.gapEvents;
    }
    const h = hub.stats();
    return {
      streams: streams.size,
      publishers: counters.activeSessions,
      batches: counters.batches,
      accepted,
      duplicates,
      gaps,
      gapEvents: Number(gapEvents),
      rejected: counters.rejected,
      backpressureWaits: counters.backpressureWaits,
      rateLimitedMs: counters.rateLimitedMs,
      subscribers: h.subscribers,
      subscriberDrops: h.dropped,
      refusals: refusals.counts(),
      auth: authStats(auth),
      connections: server.connections(),
      sinks: dispatcher.stats(),
      ...(peers.source ? { peers: peers.status() } : {}),
    };
  };

  const h = () => hub.stats();
  metrics.setSources({
    ready: () =>
      evaluateCollectorReadiness({ listening: health.listening, stopping: health.stopping, sinks: dispatcher.stats() }).ready,
    streams: () => streams.totalsByNode(),
    sinks: () => dispatcher.stats(),
    queueCapacity: (name) => config.sinks.find((x) => x.name === name)?.queue.maxRecords,
    publish: () => counters,
    subscribers: () => h(),
    refusals: () => refusals.counts(),
    auth: () => authStats(auth),
    connections: () => server.connections(),
    peers: () => peers.status(),
    peerAttributions: () =>
      Object.fromEntries(STATUS_LABELS.slice(1).map((label, i) => [label, peers.attributor.peerCounts[i + 1]!])),
  });

  return { port: server.port, healthAddress: endpoints?.address, stop, stats };
}
