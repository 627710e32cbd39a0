import type { SinkRecord } from '../formats/record.js';
import type { Logger } from '../log/logger.js';

export type { FormatName, SinkRecord } from '../formats/record.js';

/**
 * The contract between the collector's dispatcher and a sink. The dispatcher
 * owns batching, per-sink queues, retries with backoff, metrics and
 * back-pressure; a sink owns only its wire protocol. Payload building is a
 * pure function per sink, tested without a network.
 */

export interface Sink {
  /** The instance name from the config (`sinks[].name`). */
  readonly name: string;
  /**
   * Persist a batch. Resolve only once the destination has it (bytes
   * acknowledged by the server, HTTP 2xx with no per-item errors, JetStream
   * PubAck, data written to the file). Reject to have the dispatcher retry the
   * SAME batch later: sinks should be idempotent where the protocol allows
   * (Elasticsearch _id, Nats-Msg-Id = event_id).
   */
  write(batch: SinkRecord[]): Promise<void>;
  /** Push out anything buffered. */
  flush(): Promise<void>;
  /** Flush and release connections/files; idempotent. */
  close(): Promise<void>;
}

export interface SinkDeps {
  /** Already bound to the sink's name and type (the collector makes the child). */
  log: Logger;
  /**
   * The environment that `tokenEnv` / `passwordEnv` read: the collector's
   * process environment, passed down from the cli (the only module that
   * reads it). Absent: no variables.
   */
  env?: Readonly<Record<string, string | undefined>>;
}

/** One per sink type, registered in src/sinks/registry.ts. */
export interface SinkFactory<C = unknown> {
  readonly type: string;
  /** zod-style validation of the type-specific config; errors name the key. */
  parse(config: unknown, path: string): C;
  /** Connect/open and check the destination is usable; fail with a clear error otherwise. */
  create(name: string, config: C, deps: SinkDeps): Promise<Sink>;
}
