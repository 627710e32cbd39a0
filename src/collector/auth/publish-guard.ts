import { type CallContext, ServerError, Status } from 'nice-grpc';
import type { EventBatch, PublishRequest } from '../../gen/doorwatch/v1/collector.js';
import type { Logger } from '../../log/logger.js';
import type { LimitsConfig } from '../config.js';
import { PRECHECK_REFUSAL, type Prechecked } from '../precheck.js';
import { DECODE_ERROR, type MaybeMalformed } from '../publish.js';
import type { AgentBinding, Authorizer, PeerCredentials } from './authorizer.js';

/**
 * The trust boundary of a Publish stream, in front of publish.ts: it wraps
 * the stream's requests, so whatever publish.ts reads has already passed.
 *
 * - The Hello must come within `helloTimeoutMs` (DEADLINE_EXCEEDED): an open
 *   stream that never speaks holds a slot for nothing.
 * - The Hello is held until the credential is checked (authorizer.bindAgent,
 *   which waits while the Kubernetes API is down), then must name a node the
 *   credential is bound to (PERMISSION_DENIED).
 * - A seq space (instance_id) stays with the node that first used it: an
 *   agent of node A cannot send under node B's instance id and have B's real
 *   events dropped as "duplicates".
 * - Every batch, before publish.ts sees it: the size limits found on its
 *   bytes (precheck.ts: too many events, an oversized event) become their
 *   status here, and (with auth) every event must name the Hello's node
 *   (PERMISSION_DENIED). A refused batch is refused whole: nothing of it
 *   reaches a sink.
 *
 * Malformed messages, a second Hello and seqs that are not consecutive
 * (backwards, wrapped) are passed through: publish.ts owns those answers.
 */

export interface PublishGuardDeps {
  authorizer: Authorizer;
  limits: LimitsConfig;
  /** The client certificate's identities, from the listener. */
  peerCredentials(peer: string): PeerCredentials | undefined;
  /** instance_id -> node it was first seen with. */
  instances: InstanceRegistry;
  log: Logger;
  /** Called once a stream is authenticated (for logs and stats). */
  onBound?: (peer: string, binding: AgentBinding) => void;
}

/** instance_id -> node name, bounded (a stream per agent restart, so a few per node). */
export class InstanceRegistry {
  readonly #nodes = new Map<string, string>();
  constructor(private readonly max = 100_000) {}

  /** The node this instance is bound to, binding it now when new. */
  claim(instanceId: string, node: string): string {
    const had = this.#nodes.get(instanceId);
    if (had !== undefined) return had;
    if (this.#nodes.size >= this.max) this.#nodes.delete(this.#nodes.keys().next().value!);
    this.#nodes.set(instanceId, node);
    return node;
  }
}

const denied = (m: string) => new ServerError(Status.PERMISSION_DENIED, m);

/**
 * The index of the first event naming a node other than `node`, or -1. The one place that reads events'
 * node names: a lazily decoded batch changes only this. No allocation: it runs for every batch.
 */
export function foreignNodeIndex(b: EventBatch, node: string): number {
  const evs = b.events;
  for (let i = 0; i < evs.length; i++) if (evs[i]!.nodeName !== node) return i;
  return -1;
}

function withDeadline<T>(p: Promise<T>, ms: number, signal: AbortSignal): Promise<T | 'timeout' | 'aborted'> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      done();
      p.catch(() => {});
      resolve('aborted');
    };
    const t = setTimeout(() => {
      done();
      p.catch(() => {});
      resolve('timeout');
    }, ms);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        done();
        resolve(v);
      },
      (e) => {
        done();
        reject(e);
      },
    );
  });
}

export function guardPublish(
  requests: AsyncIterable<Prechecked<PublishRequest>>,
  ctx: CallContext,
  deps: PublishGuardDeps,
): AsyncIterable<MaybeMalformed<PublishRequest>> {
  const { limits } = deps;
  const authed = deps.authorizer.mode !== 'none';
  return (async function* guarded() {
    const it = requests[Symbol.asyncIterator]();
    try {
      const first = await withDeadline(it.next(), limits.helloTimeoutMs, ctx.signal);
      if (first === 'aborted') return;
      if (first === 'timeout') {
        throw new ServerError(Status.DEADLINE_EXCEEDED, `no hello within ${limits.helloTimeoutMs} ms of opening the stream`);
      }
      if (first.done) return;
      const hello = first.value;
      const early = hello[PRECHECK_REFUSAL];
      if (early) throw early;
      if (hello[DECODE_ERROR] !== undefined || !hello.hello?.agent) {
        yield hello; // publish.ts answers INVALID_ARGUMENT
        return;
      }
      const agent = hello.hello.agent;
      let node = agent.nodeName;
      if (authed) {
        const creds = {
          authorization: ctx.metadata.get('authorization'),
          peer: deps.peerCredentials(ctx.peer),
        };
        const binding = await deps.authorizer.bindAgent(creds, ctx.signal);
        if (!binding) return; // the client went away while we waited for the API
        if (!binding.nodes.has(agent.nodeName)) {
          throw denied(`hello names node "${agent.nodeName}" but ${binding.who} is bound to ${[...binding.nodes].join(', ')}`);
        }
        const owner = deps.instances.claim(agent.instanceId, agent.nodeName);
        if (owner !== agent.nodeName) {
          throw denied(`instance_id ${agent.instanceId} belongs to node "${owner}", not "${agent.nodeName}"`);
        }
        deps.onBound?.(ctx.peer, binding);
        node = agent.nodeName;
      }
      yield hello;

      while (true) {
        const r = await it.next();
        if (r.done) return;
        const req = r.value;
        const refusal = req[PRECHECK_REFUSAL];
        if (refusal) throw refusal;
        const b = req.batch;
        if (authed && req[DECODE_ERROR] === undefined && b) {
          const i = foreignNodeIndex(b, node);
          if (i >= 0) throw denied(`batch.events[${i}] names node "${b.events[i]!.nodeName}"; this stream is bound to "${node}"`);
        }
        yield req;
      }
    } finally {
      void it.return?.()?.catch(() => {});
    }
  })();
}
