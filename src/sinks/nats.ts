import {
  type ConnectionOptions,
  connect,
  headers,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  NatsError,
  nanos,
  type PubAck,
  RetentionPolicy,
  StorageType,
  type StreamInfo,
} from 'nats';
import { z } from 'zod';
import { formatLine, recordId } from '../formats/format.js';
import { EnrichmentStatus } from '../gen/doorwatch/v1/event.js';
import { durationMs, entryKeys, envName, noInlineSecret, parseConfig, readSecret, readTlsFile } from './config.js';
import type { FormatName, Sink, SinkDeps, SinkFactory, SinkRecord } from './sink.js';

/**
 * NATS JetStream (`type: nats`), docs/sinks/nats.md.
 *
 * Every record is one message on `<subjectPrefix>.<namespace>` (`_host` for
 * host processes, `_unknown` when the pod is not known, `_loss` for loss
 * records) with `Nats-Msg-Id: <record id>`, so JetStream drops a replay that
 * arrives within the stream's duplicate window. A batch is published
 * concurrently and resolves only when every message has its PubAck.
 */

const TYPE = 'nats';

/** NATS subject tokens cannot hold whitespace, `.`, `*` or `>` (nor control characters). */
const BAD_TOKEN_CHARS = /[\s.*>\p{Cc}]/gu;

const subjectPrefix = z
  .string()
  .regex(
    /^[^\s.*>\p{Cc}]+(\.[^\s.*>\p{Cc}]+)*$/u,
    'must be dot-separated tokens without spaces or wildcards (e.g. doorwatch.accept)',
  );

const streamName = z.string().regex(/^[^\s.*>/\\\p{Cc}]+$/u, 'stream names cannot contain spaces, ".", "*", ">", "/" or "\\"');

const schema = z
  .object({
    ...entryKeys(TYPE),
    servers: z
      .union([z.string(), z.array(z.string()).min(1)])
      .transform((s) => (Array.isArray(s) ? s : [s]))
      .pipe(
        z.array(
          z
            .string()
            .regex(
              /^((nats|tls):\/\/)?[^\s/@]+$/,
              'must look like nats://host:4222 (credentials never go in the URL: use user + passwordFile, or tokenFile)',
            ),
        ),
      ),
    subjectPrefix: subjectPrefix.default('doorwatch.accept'),
    stream: streamName.optional(),
    createStream: z.boolean().default(false),
    duplicateWindow: durationMs.default('2m'),
    user: z.string().min(1).optional(),
    passwordFile: z.string().min(1).optional(),
    passwordEnv: envName.optional(),
    password: noInlineSecret('put the password in a file (passwordFile) or an environment variable (passwordEnv)'),
    tokenFile: z.string().min(1).optional(),
    tokenEnv: envName.optional(),
    token: noInlineSecret('put the token in a file (tokenFile) or an environment variable (tokenEnv)'),
    tls: z
      .object({
        ca: z.string().min(1).optional(),
        cert: z.string().min(1).optional(),
        key: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    ackTimeout: durationMs.default('5s'),
    connectTimeout: durationMs.default('10s'),
    reconnectWait: durationMs.default('2s'),
  })
  .strict()
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message });
    const hasPassword = c.passwordFile !== undefined || c.passwordEnv !== undefined;
    if (c.passwordFile !== undefined && c.passwordEnv !== undefined)
      issue('passwordEnv', 'set passwordFile or passwordEnv, not both');
    if (c.tokenFile !== undefined && c.tokenEnv !== undefined) issue('tokenEnv', 'set tokenFile or tokenEnv, not both');
    if (c.user !== undefined && !hasPassword) issue('passwordFile', 'user needs passwordFile (or passwordEnv)');
    if (c.user === undefined && hasPassword) issue('user', 'a password needs user');
    if (c.user !== undefined && (c.tokenFile !== undefined || c.tokenEnv !== undefined)) {
      issue('tokenFile', 'use either user + password or a token, not both');
    }
    if (c.createStream && c.stream === undefined) issue('stream', 'createStream needs the stream name');
    if (c.tls && !!c.tls.cert !== !!c.tls.key) issue('tls', 'a client certificate needs both tls.cert and tls.key');
  });

export type NatsConfig = z.output<typeof schema>;

// ---------------------------------------------------------------- payload (pure)

/** A value as one subject token: forbidden characters become `_`; empty becomes `_unknown`. */
export function subjectToken(s: string): string {
  return s.replace(BAD_TOKEN_CHARS, '_') || '_unknown';
}

/** `<prefix>.<namespace>`, `<prefix>._host`, `<prefix>._unknown` or `<prefix>._loss`. */
export function subjectFor(rec: SinkRecord, prefix: string): string {
  if (rec.kind === 'loss') return `${prefix}._loss`;
  const ns = rec.event.pod?.namespace;
  if (ns) return `${prefix}.${subjectToken(ns)}`;
  if (rec.event.enrichment?.status === EnrichmentStatus.ENRICHMENT_STATUS_HOST) return `${prefix}._host`;
  return `${prefix}._unknown`;
}

export interface NatsMessage {
  subject: string;
  /** Nats-Msg-Id. */
  id: string;
  data: Uint8Array;
}

const encoder = new TextEncoder();

export function natsMessage(rec: SinkRecord, prefix: string, format: FormatName): NatsMessage {
  return {
    subject: subjectFor(rec, prefix),
    id: recordId(rec),
    data: encoder.encode(formatLine(rec, format)),
  };
}

/**
 * Whether a stream subject pattern captures every subject matching `target`
 * (which may itself hold wildcards): `doorwatch.>` and `doorwatch.accept.*`
 * cover `doorwatch.accept.*`; `doorwatch.accept.prod` does not.
 */
export function patternCovers(pattern: string, target: string): boolean {
  const p = pattern.split('.');
  const t = target.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return i < t.length;
    if (i >= t.length) return false;
    if (t[i] === '>') return false;
    if (p[i] !== '*' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

// ---------------------------------------------------------------- sending

/** A publish failure in words: what happened and what to check. */
export function describePublishError(e: unknown, subject: string, ackTimeoutMs: number): string {
  if (e instanceof NatsError) {
    if (e.code === '503') return `no JetStream stream captures ${subject} (no responders)`;
    if (e.code === 'TIMEOUT') return `no PubAck within ${ackTimeoutMs} ms (server down or overloaded?)`;
    const api = e.jsError();
    if (api) return `JetStream refused ${subject}: ${api.description} (err_code ${api.err_code})`;
    return `${e.message} (${e.code})`;
  }
  return (e as Error).message;
}

class NatsSink implements Sink {
  private closed = false;

  constructor(
    readonly name: string,
    private readonly cfg: NatsConfig,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly deps: SinkDeps,
  ) {}

  async write(batch: SinkRecord[]): Promise<void> {
    if (batch.length === 0) return;
    if (this.closed) throw new Error(`nats sink "${this.name}" is closed`);
    const msgs = batch.map((r) => natsMessage(r, this.cfg.subjectPrefix, this.cfg.format));
    const results = await Promise.allSettled(
      msgs.map((m, i) => {
        const h = headers();
        h.set('Content-Type', 'application/json');
        h.set('Doorwatch-Record', batch[i]!.kind);
        return this.js.publish(m.subject, m.data, {
          msgID: m.id,
          headers: h,
          timeout: this.cfg.ackTimeout,
          ...(this.cfg.stream ? { expect: { streamName: this.cfg.stream } } : {}),
        });
      }),
    );
    let duplicates = 0;
    const failures: string[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') duplicates += (r.value as PubAck).duplicate ? 1 : 0;
      else failures.push(describePublishError(r.reason, msgs[i]!.subject, this.cfg.ackTimeout));
    });
    if (failures.length > 0) {
      const kinds = [...new Set(failures)];
      throw new Error(
        `nats sink "${this.name}": ${failures.length} of ${batch.length} messages not acknowledged by JetStream: ${kinds.slice(0, 3).join('; ')}` +
          (kinds.length > 3 ? ` (+${kinds.length - 3} other errors)` : ''),
      );
    }
    this.deps.log.debug({ published: batch.length, duplicates }, 'JetStream acknowledged batch');
  }

  async flush(): Promise<void> {
    // Nothing is buffered: write() resolves only when every PubAck is in.
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Every write has been acknowledged, so there is nothing to drain; close
    // does not wait for a server that may be down.
    await this.nc.close();
  }
}

function connectionOptions(name: string, cfg: NatsConfig, env: Readonly<Record<string, string | undefined>>): ConnectionOptions {
  const o: ConnectionOptions = {
    servers: cfg.servers,
    name: `doorwatch-collector/${name}`,
    timeout: cfg.connectTimeout,
    // Never give up after the start: the dispatcher keeps the batches and
    // retries, and writes reject (PubAck timeout) while the server is away.
    maxReconnectAttempts: -1,
    reconnectTimeWait: cfg.reconnectWait,
    waitOnFirstConnect: false,
  };
  if (cfg.user !== undefined) {
    o.user = cfg.user;
    o.pass = readSecret(
      cfg.passwordFile !== undefined
        ? { key: 'passwordFile', file: cfg.passwordFile }
        : { key: 'passwordEnv', env: cfg.passwordEnv },
      env,
    );
  }
  if (cfg.tokenFile !== undefined || cfg.tokenEnv !== undefined) {
    o.token = readSecret(
      cfg.tokenFile !== undefined ? { key: 'tokenFile', file: cfg.tokenFile } : { key: 'tokenEnv', env: cfg.tokenEnv },
      env,
    );
  }
  const t = cfg.tls;
  if (t) {
    const read = (key: 'ca' | 'cert' | 'key') => readTlsFile(key, t[key])?.toString('utf8');
    const [ca, cert, key] = [read('ca'), read('cert'), read('key')];
    o.tls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
  }
  return o;
}

const STREAM_NOT_FOUND = 10059;

/** Check (or create) the stream, and that it captures every subject this sink publishes to. */
async function ensureStream(jsm: JetStreamManager, cfg: NatsConfig, log: SinkDeps['log']): Promise<string> {
  const wanted = `${cfg.subjectPrefix}.*`;
  if (cfg.stream === undefined) {
    const names: string[] = [];
    for await (const n of jsm.streams.names(`${cfg.subjectPrefix}.>`)) names.push(n);
    if (names.length === 0) {
      throw new Error(
        `no JetStream stream captures ${cfg.subjectPrefix}.>: set \`stream\` and \`createStream: true\`, or create one ` +
          `(nats stream add DOORWATCH --subjects '${cfg.subjectPrefix}.>' --dupe-window 2m)`,
      );
    }
    return names.join(', ');
  }
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(cfg.stream);
  } catch (e) {
    if (!(e instanceof NatsError) || e.jsError()?.err_code !== STREAM_NOT_FOUND) throw e;
    if (!cfg.createStream) {
      throw new Error(
        `JetStream stream "${cfg.stream}" does not exist: create it (nats stream add ${cfg.stream} --subjects '${cfg.subjectPrefix}.>' ` +
          `--dupe-window 2m) or set \`createStream: true\``,
      );
    }
    info = await jsm.streams.add({
      name: cfg.stream,
      subjects: [`${cfg.subjectPrefix}.>`],
      duplicate_window: nanos(cfg.duplicateWindow),
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
    });
    log.info({ stream: cfg.stream, subjects: info.config.subjects }, 'created JetStream stream');
  }
  const subjects = info.config.subjects ?? [];
  if (!subjects.some((s) => patternCovers(s, wanted))) {
    throw new Error(
      `JetStream stream "${cfg.stream}" captures [${subjects.join(', ')}], not ${cfg.subjectPrefix}.>: ` +
        `add '${cfg.subjectPrefix}.>' to its subjects or change subjectPrefix`,
    );
  }
  const windowMs = Number(info.config.duplicate_window ?? 0) / 1e6;
  log.info({ stream: cfg.stream, duplicateWindowMs: windowMs }, 'JetStream stream ready');
  return cfg.stream;
}

function describeConnectError(e: unknown, cfg: NatsConfig): string {
  const servers = cfg.servers;
  const m = e instanceof NatsError ? `${e.message} (${e.code})` : (e as Error).message;
  const code = (e as NodeJS.ErrnoException).code ?? '';
  if (e instanceof NatsError && e.isAuthError()) {
    const configured = cfg.user !== undefined || cfg.tokenFile !== undefined || cfg.tokenEnv !== undefined;
    return configured
      ? `${m}: check user + passwordFile or tokenFile`
      : `${m}: the server requires credentials: set user + passwordFile, or tokenFile`;
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|HOSTNAME|ALTNAME/.test(code) || /certificate/i.test(m)) {
    return `TLS failure: ${m} (set tls.ca to the CA that signs the server's certificate)`;
  }
  if (/CONNECTION_REFUSED/i.test(m)) return `cannot connect to ${servers.join(', ')}: ${m}`;
  if (/jetstream not enabled|503/i.test(m)) return `JetStream is not enabled on the server (nats-server -js): ${m}`;
  return m;
}

export const natsSink: SinkFactory<NatsConfig> = {
  type: TYPE,
  parse: (config, path) => parseConfig(schema, TYPE, config, path),
  async create(name, cfg, deps) {
    const { log } = deps;
    let nc: NatsConnection | undefined;
    try {
      const opts = connectionOptions(name, cfg, deps.env ?? {});
      try {
        nc = await connect(opts);
      } catch (e) {
        throw new Error(describeConnectError(e, cfg), { cause: e });
      }
      let jsm: JetStreamManager;
      try {
        jsm = await nc.jetstreamManager();
      } catch (e) {
        throw new Error(describeConnectError(e, cfg), { cause: e });
      }
      const streams = await ensureStream(jsm, cfg, log);
      const conn = nc;
      void (async () => {
        for await (const s of conn.status()) {
          if (s.type === 'disconnect') log.warn({ server: s.data }, 'disconnected from NATS; reconnecting');
          else if (s.type === 'reconnect') log.info({ server: s.data }, 'reconnected to NATS');
          else if (s.type === 'error') log.warn({ err: String(s.data) }, 'NATS error');
        }
      })();
      log.info({ server: nc.getServer(), streams, subjectPrefix: cfg.subjectPrefix, format: cfg.format }, 'nats sink ready');
      return new NatsSink(name, cfg, nc, nc.jetstream(), deps);
    } catch (e) {
      await nc?.close().catch(() => {});
      throw new Error(`${TYPE} sink "${name}" cannot start: ${(e as Error).message}`, { cause: e });
    }
  },
};
