import { type CallContext, ServerError, Status } from 'nice-grpc';
import type { AgentIdentity, EventBatch, LossRecord, PublishRequest, PublishResponse } from '../gen/doorwatch/v1/collector.js';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';
import type { Logger } from '../log/logger.js';
import { BATCH_CONTEXTS_HEADER } from '../protocol.js';
import { ABORTED, type Clock, Notifier, raceSignal } from './async.js';
import { Deque } from './deque.js';
import type { Dispatcher, QueuedRecord } from './dispatcher.js';
import type { PeerAttributor } from './peers/attributor.js';
import { TokenBucket } from './rate.js';
import { hasLosses, lossRecord, type StreamState, type StreamTable } from './streams.js';
import type { SubscriberHub } from './subscribe.js';

/**
 * One Publish stream (one agent connection). Two halves run concurrently:
 *
 * - the reader pulls requests, but only when every required sink's queue has
 *   room and the stream's rate budget allows (so a full queue or a fast agent
 *   stops the reading, and HTTP/2 flow control pushes back on the agent:
 *   nothing is ever dropped for a required sink). It validates, dedups and
 *   enqueues each batch;
 * - the writer yields an ack whenever the stream's acked seq advances.
 *
 * When the agent half-closes, the stream stays open until everything it sent
 * is acked, then ends OK. When the collector stops, the reader stops at once,
 * the writer sends the last ack after the drain and ends the stream with
 * UNAVAILABLE (retryable: the agent reconnects and resends what is unacked).
 */

/** Set on a request whose bytes did not decode (see server.ts). */
export const DECODE_ERROR: unique symbol = Symbol('decode error');
export type MaybeMalformed<T> = T & { [DECODE_ERROR]?: string };

export interface PublishLifecycle {
  /** Aborted when the collector stops: stop reading requests. */
  stopping: AbortSignal;
  /** Aborted once the queues have drained: send the last ack and end the stream. */
  closing: AbortSignal;
}

export interface PublishCounters {
  activeSessions: number;
  batches: number;
  /** Times a reader waited for a required sink's queue to have room. */
  backpressureWaits: number;
  /** Total time readers waited for the rate limit. */
  rateLimitedMs: number;
  rejected: number;
  /** Loss records made from seq gaps, and from losses the agents reported. */
  seqGapRecords: number;
  agentLossRecords: number;
}

/** Metrics hooks (metrics.ts), called per batch and per ack, never per event. */
export interface PublishObserver {
  /** The events a batch added (first time seen). */
  accepted(events: AcceptEvent[]): void;
  /** An ack was sent: seconds since the batch it covers arrived, once per batch covered. */
  ackLatency(seconds: number): void;
}

export interface PublishDeps {
  streams: StreamTable;
  dispatcher: Dispatcher;
  hub: SubscriberHub;
  rateLimit: { eventsPerSecond: number; burst: number };
  lifecycle: PublishLifecycle;
  clock: Clock;
  log: Logger;
  counters: PublishCounters;
  observe?: PublishObserver;
  /** Fills every event's peer/local attribution before it reaches sinks and subscribers. */
  peers?: PeerAttributor;
  /** Announce that batches may carry contexts (the config's batchContexts). */
  batchContexts: boolean;
}

const invalid = (msg: string) => new ServerError(Status.INVALID_ARGUMENT, msg);

function checkDecoded(req: MaybeMalformed<PublishRequest>, index: number): void {
  const err = req[DECODE_ERROR];
  if (err !== undefined) throw invalid(`message ${index} is not a valid PublishRequest (${err})`);
}

function checkHello(req: PublishRequest): AgentIdentity {
  if (!req.hello) throw invalid('first message must be hello');
  const a = req.hello.agent;
  if (!a) throw invalid('hello.agent is missing');
  if (!a.instanceId) throw invalid('hello.agent.instance_id is empty');
  if (!a.bootId) throw invalid('hello.agent.boot_id is empty');
  return a;
}

function checkBatch(b: EventBatch): void {
  if (!b.events.length) {
    if (hasLosses(b.losses)) return; // losses-only batch: allowed, first_seq unused
    throw invalid('batch has no events');
  }
  if (b.firstSeq < 1n) throw invalid(`batch.first_seq is ${b.firstSeq}; seqs start at 1`);
  for (let i = 0; i < b.events.length; i++) {
    const want = b.firstSeq + BigInt(i);
    const got = b.events[i]!.seq;
    if (got !== want) throw invalid(`batch.events[${i}].seq is ${got}, expected ${want} (first_seq + ${i})`);
  }
}

export function createPublishHandler(deps: PublishDeps) {
  return async function* publish(
    requests: AsyncIterable<MaybeMalformed<PublishRequest>>,
    ctx: CallContext,
  ): AsyncGenerator<PublishResponse, void> {
    const { lifecycle, counters } = deps;
    // Agents send a batch's shared per-pod fields once (EventBatch.contexts) only to a collector that says
    // it applies them: the header goes out now, before any ack, so an agent knows from its first batches.
    if (deps.batchContexts) {
      ctx.header.set(BATCH_CONTEXTS_HEADER, '1');
      ctx.sendHeader();
    }
    const readSignal = AbortSignal.any([ctx.signal, lifecycle.stopping]);
    const endSignal = AbortSignal.any([ctx.signal, lifecycle.closing]);
    const wake = new Notifier();
    const session = { stream: undefined as StreamState | undefined, firstSeq: undefined as bigint | undefined, maxSeq: 0n };
    let readerDone = false;
    let readerError: unknown;
    let unlisten: (() => void) | undefined;
    // Batches not yet acked: the last seq of each and when it arrived (for the ack latency).
    const unacked = deps.observe ? new Deque<{ last: bigint; at: number }>() : undefined;
    counters.activeSessions++;

    const reader = async () => {
      const it = requests[Symbol.asyncIterator]();
      const bucket = new TokenBucket(deps.rateLimit.eventsPerSecond, deps.rateLimit.burst, deps.clock);
      let index = 0;
      try {
        while (!readSignal.aborted) {
          if (session.stream && !deps.dispatcher.accepting) {
            counters.backpressureWaits++;
            await deps.dispatcher.whenAccepting(readSignal);
          }
          const delay = bucket.delayMs();
          if (delay > 0) {
            counters.rateLimitedMs += delay;
            await deps.clock.sleep(delay, readSignal);
          }
          if (readSignal.aborted) break;
          const r = await raceSignal(it.next(), readSignal);
          if (r === ABORTED || r.done) break;
          const req = r.value;
          checkDecoded(req, index++);
          if (!session.stream) {
            const agent = checkHello(req);
            session.stream = deps.streams.open(agent);
            deps.streams.attach(session.stream);
            unlisten = session.stream.onAck(() => wake.notify());
            deps.log.info({ agent, peer: ctx.peer }, 'agent connected');
            continue;
          }
          if (req.hello) throw invalid('hello may only be sent once, as the first message');
          if (!req.batch) throw invalid(`message ${index - 1} has neither hello nor batch`);
          checkBatch(req.batch);
          counters.batches++;
          handleBatch(deps, session.stream, req.batch);
          if (req.batch.events.length) {
            const last = req.batch.firstSeq + BigInt(req.batch.events.length) - 1n;
            session.firstSeq ??= req.batch.firstSeq;
            if (last > session.maxSeq) session.maxSeq = last;
            unacked?.push({ last, at: deps.clock.now() });
            bucket.consume(req.batch.events.length);
          }
          wake.notify();
        }
      } finally {
        // Stop pulling; the transport's own cancellation ends the iterator.
        void it.return?.().catch(() => {});
      }
    };

    const readerDoneP = reader().then(
      () => {
        readerDone = true;
        wake.notify();
      },
      (e) => {
        readerError = e;
        wake.notify();
      },
    );

    let lastSent = 0n;
    try {
      while (true) {
        if (readerError !== undefined) {
          if (readerError instanceof ServerError) counters.rejected++;
          throw readerError;
        }
        const s = session.stream;
        if (s && session.firstSeq !== undefined && s.acked > lastSent && s.acked >= session.firstSeq) {
          lastSent = s.acked;
          if (unacked) {
            const now = deps.clock.now();
            while (unacked.length && unacked.peek()!.last <= lastSent)
              deps.observe!.ackLatency((now - unacked.shift()!.at) / 1000);
          }
          yield { ackedSeq: lastSent };
          continue;
        }
        if (ctx.signal.aborted) return;
        if (readerDone && !lifecycle.stopping.aborted) {
          // The agent half-closed: end once everything it sent is acked.
          if (session.firstSeq === undefined || lastSent >= session.maxSeq) return;
        }
        if (lifecycle.closing.aborted) throw new ServerError(Status.UNAVAILABLE, 'collector shutting down; reconnect and resend');
        await wake.wait(endSignal);
      }
    } finally {
      counters.activeSessions--;
      unlisten?.();
      if (session.stream) {
        deps.streams.detach(session.stream, deps.clock.now());
        deps.log.info({ agent: session.stream.agent, acked: String(session.stream.acked) }, 'agent disconnected');
      }
      void readerDoneP;
    }
  };
}

function handleBatch(deps: PublishDeps, stream: StreamState, b: EventBatch): void {
  const losses: LossRecord[] = [];
  let accepted: AcceptEvent[] = [];
  if (b.events.length) {
    const adm = stream.admit(b.firstSeq, b.events);
    accepted = adm.accepted;
    if (adm.gap) {
      losses.push(lossRecord(stream.agent, 'seq gap', adm.gap, undefined));
      deps.counters.seqGapRecords++;
      deps.log.warn({ agent: stream.agent, from: String(adm.gap.from), to: String(adm.gap.to) }, 'seq gap: events never arrived');
    }
  }
  if (hasLosses(b.losses)) {
    losses.push(lossRecord(stream.agent, 'agent reported losses', undefined, b.losses));
    deps.counters.agentLossRecords++;
  }
  // Peer attribution: a lookup per address, a shared frozen object per answer.
  if (deps.peers) for (const event of accepted) deps.peers.attach(event);
  // Losses first: a gap's record reaches the sinks ahead of the events after it.
  const records: QueuedRecord[] = losses.map((loss) => ({ record: { kind: 'loss', loss }, stream }));
  for (const event of accepted) records.push({ record: { kind: 'event', event }, stream, seq: event.seq });
  deps.dispatcher.enqueue(records);
  for (const loss of losses) deps.hub.publishLoss(loss);
  if (accepted.length) {
    deps.hub.publishEvents(accepted);
    deps.observe?.accepted(accepted);
  }
  if (!deps.streams.hasRequiredSinks) stream.enqueuedWithoutRequiredSinks();
}
