import { setTimeout as sleep } from 'node:timers/promises';
import { connectivityState } from '@grpc/grpc-js';
import { type Channel, ChannelCredentials, type ChannelOptions, createChannel } from 'nice-grpc';
import type { AgentIdentity, LossCounters } from '../gen/doorwatch/v1/collector.js';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { Backoff } from '../retry/backoff.js';
import { collectorTlsName } from './collector-tls.js';
import { LiveBatches } from './live-batches.js';
import { type PreflightTls, preflight } from './preflight.js';
import { publishCall } from './publish-call.js';
import { PushQueue } from './push-queue.js';
import type { SpaceInfo, Spool, SpoolIdentity } from './spool.js';
import { describeTransportError } from './transport-error.js';
import {
  contextsFromPayloads,
  contextsWorthIt,
  encodeBatchRequest,
  encodeContextsRequest,
  type OutgoingRequest,
} from './wire.js';

/**
 * The agent's side of CollectorService.Publish (docs/transport.md).
 *
 * Write-ahead: every event goes to the spool first, then onto the stream in
 * batches; the spool forgets it only when the collector acknowledges it. A
 * bounded window of unacknowledged batches keeps a slow collector from
 * growing memory — the spool is the buffer. A broken stream is reopened with
 * jittered exponential backoff and everything unacknowledged is resent; the
 * collector deduplicates by (instance_id, boot_id, seq), so a resend is safe.
 */

export interface PublisherTls {
  /** CA bundle that signed the collector's certificate (PEM). */
  ca: Buffer | string;
  /** Client certificate and key for mutual TLS (PEM); both or neither. */
  cert?: Buffer | string;
  key?: Buffer | string;
  /** Name to verify the collector's certificate against, when not the target's host. */
  serverName?: string;
}

export interface PublisherOptions {
  /** host:port of the collector. */
  target: string;
  tls: PublisherTls | { insecure: true };
  /** nodeName and version; instanceId and bootId come from the spool (and must match it if given). */
  identity: Pick<AgentIdentity, 'nodeName' | 'version'> & Partial<AgentIdentity>;
  spool: Spool;
  /**
   * A batch leaves at once when nothing is in flight; while batches are in
   * flight, events wait for the next ack, for maxEvents (default 500) of them,
   * or until the oldest waited maxDelayMs (default 50): batching only while
   * more is coming, never a fixed delay.
   */
  batch?: { maxEvents?: number; maxDelayMs?: number };
  /**
   * Unacknowledged batches on the stream at most (default 64); unsent events
   * kept in memory at most maxLiveBytes (default 16 MiB), beyond which they
   * wait on disk only and are read back from the spool.
   */
  window?: { maxBatches?: number; maxLiveBytes?: number };
  /** Reconnect delays: full jitter over initialMs·2ⁿ, capped at maxMs (defaults 200, 30 000). */
  backoff?: { initialMs?: number; maxMs?: number };
  log?: Logger;
  /** Clock for batching and RTT (ms). Default Date.now. */
  now?: () => number;
  /** Jitter source in [0, 1). Default Math.random. */
  random?: () => number;
  /** Called on every acknowledgement that completes batches: now() at the ack minus now() when the newest of them was sent. */
  onAck?: (rttMs: number) => void;
  /**
   * The `authorization` call metadata for each new stream (the projected
   * ServiceAccount token, re-read every time: the kubelet rotates it). A throw
   * fails the attempt like a transport error (backoff, lastError).
   */
  authorization?: () => string | undefined;
}

export interface PublisherStatus {
  /** A stream is open on a connected (READY) channel. */
  connected: boolean;
  /** The most recent failure, in words first (kept after recovery; see lastErrorAt). */
  lastError: string | undefined;
  /** When lastError happened (now() ms). */
  lastErrorAt: number | undefined;
  /** Acknowledged watermark of the current seq space. */
  ackedSeq: bigint;
  /** Batches sent on the current stream and not yet acknowledged. */
  inFlightBatches: number;
  /** Bytes of spool segment files. */
  spoolBytes: number;
  /** Events the spool dropped since it was opened (overflow policy, torn records). */
  spoolDrops: bigint;
  /** Streams opened after a failure. */
  reconnects: number;
  /** Time from sending a batch to the ack covering it, for the latest ack. */
  lastRttMs: number | undefined;
  /** The delay drawn before the latest reconnect (0 before any). */
  lastBackoffMs: number;
  /** An older seq space (previous boot) is being drained: its identity. */
  draining: SpoolIdentity | undefined;
  /** The current stream's collector applies batch contexts: a pod's fields travel once per batch. */
  batchContexts: boolean;
}

interface InFlight {
  lastSeq: bigint;
  sentAt: number;
  losses: LossCounters;
  /** Its bytes may be reused (live-batches.ts): on its ack, or when its stream is gone. */
  release: () => void;
}

interface Session {
  space: SpaceInfo;
  queue: PushQueue<OutgoingRequest>;
  abort: AbortController;
  /** Next seq to send. */
  cursor: bigint;
  acked: bigint;
  inFlight: InFlight[];
  readySince: number | undefined;
  /** Old space fully acknowledged: the stream is being closed on purpose. */
  done: boolean;
  /** The collector announced it applies EventBatch.contexts (its response header): pods' fields go once per batch. */
  contexts: boolean;
}

/**
 * Unsent events in memory (besides the spool): enough for the collector's ack
 * delay at a storm's rate (~25 000 events of ~650 bytes), so the steady state
 * never reads its own spool back; bounded, so a stalled stream cannot grow it.
 */
const DEFAULT_MAX_LIVE_BYTES = 16 * 1024 * 1024;

/**
 * While events keep coming, batches leave at most this often even when the
 * collector has acknowledged everything (it answers within one 10 ms drain):
 * a batch's fixed cost (a gRPC message, TLS records, an ack) is then shared by
 * two or three drains' events, for at most this much latency. The agent's capture drains at this period while
 * events trickle in (Capture's steadyPollMs): one drain per batch.
 */
export const BATCH_INTERVAL_MS = 25;

/** A channel that stayed READY this long resets the backoff even without an ack. */
const STABLE_MS = 10_000;
/** A TLS handshake (the preflight) that takes longer than this counts as a failed attempt. */
const PREFLIGHT_TIMEOUT_MS = 10_000;
/** After half-closing a drained old space, how long the collector gets to end the stream. */
const DRAIN_CLOSE_MS = 2_000;

const zeroLosses = (): LossCounters => ({
  kernelRingFull: 0n,
  decodeErrors: 0n,
  bpfRecursionMisses: 0n,
  queueDrops: 0n,
  spoolDrops: 0n,
});

function toBuf(v: Buffer | string): Buffer {
  return typeof v === 'string' ? Buffer.from(v) : v;
}

function positiveInt(v: number, what: string, min = 1): number {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`publisher ${what} must be an integer >= ${min}, got ${v}`);
  return v;
}

export class Publisher {
  readonly #spool: Spool;
  readonly #target: string;
  readonly #creds: ChannelCredentials;
  readonly #channelOptions: ChannelOptions;
  readonly #preflightTls: PreflightTls | undefined;
  readonly #node: Pick<AgentIdentity, 'nodeName' | 'version'>;
  readonly #maxEvents: number;
  readonly #maxDelayMs: number;
  readonly #maxBatches: number;
  readonly #maxLiveBytes: number;
  readonly #backoff: Backoff;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #onAckHook: ((rttMs: number) => void) | undefined;
  readonly #authorization: (() => string | undefined) | undefined;

  #state: 'new' | 'running' | 'closing' | 'closed' = 'new';
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #session: Session | undefined;
  /**
   * Events of the current space spooled in this process and not yet sent on
   * the current stream, as the Publish requests they will travel in (their
   * protobuf bytes, not the event objects, which die young).
   */
  readonly #live: LiveBatches;
  #flushTimer: NodeJS.Timeout | undefined;
  #flushAt = 0;
  /** When the last live batch was sent (now()). */
  #lastSentAt = Number.NEGATIVE_INFINITY;
  #flushing = false;
  #pendingLosses = zeroLosses();
  /** Spool drops attached to batches not yet acknowledged. */
  #spoolDropsInFlight = 0n;
  #waiters = new Set<() => void>();

  #connected = false;
  #lastError: string | undefined;
  #lastErrorAt: number | undefined;
  #reconnects = 0;
  #lastRttMs: number | undefined;
  #lastBackoffMs = 0;

  constructor(o: PublisherOptions) {
    this.#spool = o.spool;
    this.#target = o.target;
    this.#log = o.log ?? silentLogger;
    this.#now = o.now ?? Date.now;
    this.#onAckHook = o.onAck;
    this.#authorization = o.authorization;
    const sid = o.spool.identity;
    for (const k of ['instanceId', 'bootId'] as const) {
      const v = o.identity[k];
      if (v && v !== sid[k]) {
        throw new Error(`publisher identity.${k} "${v}" differs from the spool's "${sid[k]}": the spool owns the seq space`);
      }
    }
    this.#node = { nodeName: o.identity.nodeName, version: o.identity.version };
    this.#maxEvents = positiveInt(o.batch?.maxEvents ?? 500, 'batch.maxEvents');
    this.#maxDelayMs = positiveInt(o.batch?.maxDelayMs ?? 50, 'batch.maxDelayMs', 0);
    this.#maxBatches = positiveInt(o.window?.maxBatches ?? 64, 'window.maxBatches');
    // Unsent events are kept in memory as well as on disk up to this bound;
    // a backlog beyond it is read back from the spool.
    this.#maxLiveBytes = positiveInt(o.window?.maxLiveBytes ?? DEFAULT_MAX_LIVE_BYTES, 'window.maxLiveBytes');
    this.#live = new LiveBatches(this.#maxEvents, this.#now);
    this.#backoff = new Backoff(o.backoff?.initialMs ?? 200, o.backoff?.maxMs ?? 30_000, o.random);

    this.#channelOptions = {
      // Dead peers behind a silent network: ping at most every 5 min (what
      // gRPC servers allow by default) and give up after 20 s without a reply.
      'grpc.keepalive_time_ms': 300_000,
      'grpc.keepalive_timeout_ms': 20_000,
      // One channel per stream attempt, closed when the stream ends: the
      // channel must never reconnect on its own (our backoff decides), and a
      // background reconnect racing close() leaks its socket in grpc-js 1.14.
      'grpc.initial_reconnect_backoff_ms': 86_400_000,
      'grpc.max_reconnect_backoff_ms': 86_400_000,
      'grpc.use_local_subchannel_pool': 1,
    };
    if ('insecure' in o.tls) {
      this.#preflightTls = undefined;
      this.#creds = ChannelCredentials.createInsecure();
    } else {
      const { ca, cert, key, serverName } = o.tls;
      if (!cert !== !key) throw new Error('publisher tls.cert and tls.key go together: give both or neither');
      this.#preflightTls = { ca: toBuf(ca), cert: cert ? toBuf(cert) : undefined, key: key ? toBuf(key) : undefined, serverName };
      // Which name the certificate is verified against, without an IP address as TLS ServerName (collector-tls.ts).
      const name = collectorTlsName(o.target, serverName);
      this.#creds = ChannelCredentials.createSsl(
        toBuf(ca),
        key ? toBuf(key) : null,
        cert ? toBuf(cert) : null,
        name.verifyOptions,
      );
      Object.assign(this.#channelOptions, name.channelOptions);
    }
  }

  /** Connect and keep a stream open until close(). Idempotent. */
  start(): void {
    if (this.#state !== 'new') return;
    this.#state = 'running';
    this.#loop = this.#run();
  }

  /**
   * Spool the events (write-ahead), then send them when the window allows.
   * Events of the spool's current space, seqs increasing. Throws after close().
   */
  publish(events: readonly AcceptEvent[]): void {
    if (this.#state === 'closing' || this.#state === 'closed') throw new Error('publisher is closed: events not accepted');
    if (!events.length) return;
    const { accepted, buf, starts, ends, tails, tailAt } = this.#spool.append(events);
    // The encoded events are valid until the next append: copied now.
    for (let i = 0; i < accepted.length; i++) this.#live.append(accepted[i]!.seq, buf, starts[i]!, ends[i]!, tails[i], tailAt[i]);
    // Beyond the window's worth, events wait on disk only (read back in catch-up).
    this.#live.bound(this.#maxLiveBytes);
    this.#pump();
  }

  /** Losses upstream of the spool (kernel ring, decoder, queue): reported with the next batch. */
  reportLosses(delta: Partial<LossCounters>): void {
    const l = this.#pendingLosses;
    l.kernelRingFull += delta.kernelRingFull ?? 0n;
    l.decodeErrors += delta.decodeErrors ?? 0n;
    l.bpfRecursionMisses += delta.bpfRecursionMisses ?? 0n;
    l.queueDrops += delta.queueDrops ?? 0n;
    l.spoolDrops += delta.spoolDrops ?? 0n;
  }

  status(): PublisherStatus {
    const s = this.#session;
    return {
      connected: this.#connected,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt,
      ackedSeq: this.#spool.ackedSeq(this.#spool.identity),
      inFlightBatches: s?.inFlight.length ?? 0,
      spoolBytes: this.#spool.bytes(),
      spoolDrops: this.#spool.stats().dropsTotal,
      reconnects: this.#reconnects,
      lastRttMs: this.#lastRttMs,
      lastBackoffMs: this.#lastBackoffMs,
      draining: s && !s.space.current ? { ...s.space.identity } : undefined,
      batchContexts: s?.contexts ?? false,
    };
  }

  /**
   * Stop accepting events, send what is pending and wait for its acks up to
   * flushTimeoutMs (default 5000), then close the stream. Whatever is still
   * unacknowledged stays in the spool for the next start. The spool itself is
   * the caller's to close.
   */
  async close(o: { flushTimeoutMs?: number } = {}): Promise<{ flushed: boolean }> {
    if (this.#state === 'closed' || this.#state === 'closing') return { flushed: this.#allAcked() };
    const wasRunning = this.#state === 'running';
    this.#state = 'closing';
    this.#flushing = true;
    if (wasRunning) {
      this.#pump();
      const deadline = Date.now() + (o.flushTimeoutMs ?? 5000);
      while (!this.#allAcked() && Date.now() < deadline) await this.#changed(deadline - Date.now());
    }
    const flushed = this.#allAcked();
    this.#state = 'closed';
    this.#stop.abort();
    this.#session?.abort.abort();
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    await this.#loop;
    this.#log.info(
      { flushed, spoolBytes: this.#spool.bytes(), ackedSeq: String(this.#spool.ackedSeq()) },
      flushed ? 'publisher closed, everything acknowledged' : 'publisher closed; unacknowledged events stay in the spool',
    );
    return { flushed };
  }

  // --- connection loop ---------------------------------------------------------

  async #run(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      const spaces = this.#spool.spaces();
      const space = spaces.find((s) => !s.current && s.unacked) ?? spaces.find((s) => s.current)!;
      try {
        await this.#runSession(space);
        continue; // an old space drained: on to the next one at once
      } catch (err) {
        if (this.#stop.signal.aborted) break;
        const text = describeTransportError(err, this.#target);
        const level = text === this.#lastError ? 'debug' : 'warn';
        this.#lastError = text;
        this.#lastErrorAt = this.#now();
        const delay = this.#backoff.next();
        this.#lastBackoffMs = delay;
        this.#log[level]({ err: text, attempt: this.#backoff.attempt, retryInMs: delay }, 'collector stream failed; retrying');
      }
      try {
        await sleep(this.#lastBackoffMs, undefined, { signal: this.#stop.signal });
      } catch {
        break;
      }
      this.#reconnects++;
    }
  }

  async #runSession(space: SpaceInfo): Promise<void> {
    if (this.#preflightTls) await preflight(this.#target, this.#preflightTls, PREFLIGHT_TIMEOUT_MS, this.#stop.signal);
    const authorization = this.#authorization?.();
    const channel = createChannel(this.#target, this.#creds, this.#channelOptions);
    const s: Session = {
      space,
      queue: new PushQueue<OutgoingRequest>(),
      abort: new AbortController(),
      cursor: this.#spool.ackedSeq(space.identity) + 1n,
      acked: this.#spool.ackedSeq(space.identity),
      inFlight: [],
      readySince: undefined,
      done: false,
      contexts: false,
    };
    this.#session = s;
    this.#watchReady(channel, s);
    s.queue.push({ hello: { agent: { ...this.#node, ...space.identity } } });
    this.#log.debug(
      { bootId: space.identity.bootId, current: space.current, resendFrom: String(s.cursor) },
      'collector stream opening',
    );
    this.#pump();
    try {
      // Batches are queued already encoded: publishCall hands them to grpc-js as they are.
      const onHeaders = (contexts: boolean) => {
        s.contexts = contexts;
      };
      for await (const res of publishCall(channel, s.queue, { authorization, signal: s.abort.signal, onHeaders }))
        this.#onAck(s, res.ackedSeq);
      if (!s.done) throw new Error('the collector ended the stream');
    } catch (err) {
      if (!s.done) throw err;
    } finally {
      this.#endSession(s);
      channel.close();
    }
  }

  #watchReady(channel: Channel, s: Session): void {
    const check = (): void => {
      const st = channel.getConnectivityState(false);
      if (this.#session !== s || st === connectivityState.SHUTDOWN) return;
      const ready = st === connectivityState.READY;
      if (ready && s.readySince === undefined) {
        s.readySince = this.#now();
        this.#connected = true;
        this.#log.info({ target: this.#target, bootId: s.space.identity.bootId }, 'connected to the collector');
      } else if (!ready && s.readySince !== undefined) {
        this.#connected = false;
      }
      channel.watchConnectivityState(st, Number.POSITIVE_INFINITY, check);
    };
    check();
  }

  #endSession(s: Session): void {
    if (this.#session === s) this.#session = undefined;
    this.#connected = false;
    s.queue.end();
    // Losses of unacknowledged batches are reported again on the next stream.
    for (const b of s.inFlight) {
      b.release();
      this.#spoolDropsInFlight -= b.losses.spoolDrops;
      this.reportLosses({ ...b.losses, spoolDrops: 0n });
    }
    s.inFlight = [];
    if (s.readySince !== undefined && this.#now() - s.readySince >= STABLE_MS) this.#backoff.reset();
    this.#notify();
  }

  #onAck(s: Session, acked: bigint): void {
    if (this.#session !== s || acked <= s.acked) return;
    s.acked = acked;
    this.#spool.ack(s.space.identity, acked);
    let newest: InFlight | undefined;
    while (s.inFlight.length && s.inFlight[0]!.lastSeq <= acked) {
      const b = s.inFlight.shift()!;
      b.release();
      newest = b;
      if (b.losses.spoolDrops) {
        this.#spoolDropsInFlight -= b.losses.spoolDrops;
        this.#spool.confirmDrops(b.losses.spoolDrops);
      }
    }
    if (newest) {
      this.#lastRttMs = this.#now() - newest.sentAt;
      this.#onAckHook?.(this.#lastRttMs);
    }
    this.#connected = true;
    this.#backoff.reset();
    // The collector may hold more than this stream sent (acks lost before a reconnect).
    if (s.cursor <= acked) s.cursor = acked + 1n;
    this.#notify();
    this.#pump();
  }

  // --- sending -------------------------------------------------------------------

  #pump(): void {
    const s = this.#session;
    if (!s || s.done || s.queue.ended) return;
    if (!s.space.current && !this.#spaceUnacked(s.space.identity)) {
      this.#finishOldSpace(s);
      return;
    }
    while (s.inFlight.length < this.#maxBatches) {
      const req = this.#nextRequest(s);
      if (!req) break;
      s.queue.push(req.bytes);
      s.inFlight.push({
        lastSeq: req.firstSeq + BigInt(req.count - 1),
        sentAt: this.#now(),
        losses: req.losses,
        release: req.release,
      });
    }
    this.#armFlushTimer(s);
  }

  /** The next batch at the cursor, encoded, or undefined (nothing, or wait for a fuller batch). */
  #nextRequest(
    s: Session,
  ): { bytes: Uint8Array; firstSeq: bigint; count: number; losses: LossCounters; release: () => void } | undefined {
    const id = s.space.identity;
    if (!s.space.current) return this.#fromDisk(s, undefined);
    // Drop live events already sent, acknowledged, or deleted by drop-oldest.
    let below = this.#spool.floorSeq(id); // bigints: no Math.max
    if (s.cursor > below) below = s.cursor;
    const live = this.#live;
    live.dropBelow(below);
    const head = live.firstSeq;
    if (head === undefined || s.cursor < head) {
      // Catch-up: what is unsent before the live events is on disk only.
      const disk = this.#fromDisk(s, head);
      if (disk) return disk;
      if (head === undefined) return undefined;
      s.cursor = head;
    }
    // A partial batch waits for more events while earlier batches are unacknowledged (until
    // the next ack: #onAck pumps), or while the last one left less than BATCH_INTERVAL_MS ago
    // (events keep coming: each batch costs a gRPC message, TLS and an ack), never longer
    // than maxDelayMs. Nothing in flight and a quiet stream: it leaves at once.
    const now = this.#now();
    const waited = now - (live.headSince ?? 0);
    const busy = s.inFlight.length > 0 || now - this.#lastSentAt < BATCH_INTERVAL_MS;
    if (!live.headFull && live.headIsTail && !this.#flushing && busy && waited < this.#maxDelayMs) return undefined;
    this.#lastSentAt = now;
    const losses = this.#takeLosses();
    const req = live.takeRequest(losses, s.contexts)!;
    s.cursor = req.firstSeq + BigInt(req.count);
    return { ...req, losses };
  }

  /** Unsent events from the spool at the cursor (below `before`), as stored. */
  #fromDisk(s: Session, before: bigint | undefined) {
    const raw = this.#spool.readRaw(s.space.identity, s.cursor, this.#maxEvents, before);
    if (!raw.seqs.length) return undefined;
    s.cursor = raw.seqs.at(-1)! + 1n;
    const losses = this.#takeLosses();
    // A backlog (after an outage, every agent at once) is when a collector most needs the smaller batches.
    const ctx = s.contexts ? contextsFromPayloads(raw.seqs[0]!, raw.payloads) : undefined;
    const bytes =
      ctx && contextsWorthIt(ctx)
        ? encodeContextsRequest(ctx, losses)
        : encodeBatchRequest({ firstSeq: raw.seqs[0]!, parts: raw.payloads, skip: 0 }, losses);
    return { bytes, firstSeq: raw.seqs[0]!, count: raw.seqs.length, losses, release: () => {} };
  }

  #armFlushTimer(s: Session): void {
    if (!s.space.current || s.inFlight.length >= this.#maxBatches) return;
    const since = this.#live.headSince;
    if (since === undefined) return;
    let at = since + this.#maxDelayMs;
    if (s.inFlight.length === 0) at = Math.min(at, this.#lastSentAt + BATCH_INTERVAL_MS);
    if (this.#flushTimer) {
      if (at >= this.#flushAt) return;
      clearTimeout(this.#flushTimer);
    }
    this.#flushAt = at;
    this.#flushTimer = setTimeout(
      () => {
        this.#flushTimer = undefined;
        this.#pump();
      },
      Math.max(0, at - this.#now()),
    );
    this.#flushTimer.unref();
  }

  #takeLosses(): LossCounters {
    const l = this.#pendingLosses;
    this.#pendingLosses = zeroLosses();
    let fresh = this.#spool.unconfirmedDrops() - this.#spoolDropsInFlight;
    if (fresh < 0n) fresh = 0n;
    this.#spoolDropsInFlight += fresh;
    l.spoolDrops += fresh;
    return l;
  }

  #finishOldSpace(s: Session): void {
    s.done = true;
    s.queue.end();
    this.#log.info({ bootId: s.space.identity.bootId, ackedSeq: String(s.acked) }, 'previous seq space drained');
    setTimeout(() => s.abort.abort(), DRAIN_CLOSE_MS).unref();
  }

  #spaceUnacked(id: SpoolIdentity): boolean {
    return this.#spool
      .spaces()
      .some((x) => x.unacked && x.identity.instanceId === id.instanceId && x.identity.bootId === id.bootId);
  }

  #allAcked(): boolean {
    return this.#spool.spaces().every((x) => !x.unacked);
  }

  #notify(): void {
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  #changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, Math.max(0, ms));
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.#waiters.add(done);
    });
  }
}
