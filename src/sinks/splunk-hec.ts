import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { formatRecord, recordTimeNs, writeLine } from '../formats/format.js';
import { bytes, JsonWriter } from '../formats/native-json.js';
import { durationMs, entryKeys, envName, noInlineSecret, parseConfig, readSecret, tlsSchema } from './config.js';
import {
  baseUrl,
  HttpClient,
  type HttpResponse,
  HttpSinkError,
  isRetryableStatus,
  snippet,
  warnIfInsecure,
} from './http-client.js';
import type { FormatName, Sink, SinkDeps, SinkFactory, SinkRecord } from './sink.js';

/**
 * Splunk HTTP Event Collector (`type: splunk_hec`), docs/sinks/splunk-hec.md.
 *
 * A batch is one POST of concatenated JSON event objects to
 * /services/collector/event. It is accepted on HTTP 200 with `{"code":0}`
 * or, with `ack: true`, once the indexer acknowledges the request's ackId on
 * /services/collector/ack. HEC has no idempotency key: a batch retried after a
 * timeout may be indexed twice (dedup on `event.eventId` in searches).
 */

const TYPE = 'splunk_hec';

const schema = z
  .object({
    ...entryKeys(TYPE),
    url: baseUrl,
    path: z.string().startsWith('/').default('/services/collector/event'),
    tokenFile: z.string().min(1).optional(),
    tokenEnv: envName.optional(),
    token: noInlineSecret('put the HEC token in a file (tokenFile) or an environment variable (tokenEnv)'),
    source: z.string().min(1).default('doorwatch'),
    sourcetype: z.string().min(1).default('doorwatch:accept'),
    lossSourcetype: z.string().min(1).default('doorwatch:loss'),
    index: z.string().min(1).optional(),
    indexedFields: z.boolean().default(true),
    ack: z.boolean().default(false),
    ackPath: z.string().startsWith('/').default('/services/collector/ack'),
    channel: z.string().uuid().optional(),
    ackTimeout: durationMs.default('60s'),
    ackPollInterval: durationMs.default('1s'),
    timeout: durationMs.default('30s'),
    tls: tlsSchema.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.tokenFile === undefined) === (c.tokenEnv === undefined)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: [c.tokenFile === undefined ? 'tokenFile' : 'tokenEnv'],
        message: 'set exactly one of tokenFile and tokenEnv',
      });
    }
  });

export type SplunkHecConfig = z.output<typeof schema>;

// ---------------------------------------------------------------- payload (pure)

export interface HecOptions {
  format: FormatName;
  source: string;
  sourcetype: string;
  lossSourcetype: string;
  index?: string | undefined;
  indexedFields: boolean;
}

/** One HEC event object, as Splunk's /services/collector/event reads it. */
export interface HecEvent {
  time?: number;
  host?: string;
  source: string;
  sourcetype: string;
  index?: string;
  event: Record<string, unknown>;
  fields?: Record<string, string>;
}

/** Epoch seconds with a millisecond fraction (HEC's `time`), from Unix nanoseconds. */
export function hecTime(ns: bigint): number {
  return Number(ns / 1_000_000n) / 1000;
}

/** A HEC event object without its `event` (the formatted record): what Splunk indexes the record under. */
function envelope(rec: SinkRecord, o: HecOptions): Omit<HecEvent, 'event'> {
  const ns = recordTimeNs(rec);
  const host = rec.kind === 'event' ? rec.event.nodeName : (rec.loss.agent?.nodeName ?? '');
  const out: Omit<HecEvent, 'event'> = {
    // 0 = unknown: leave it out and Splunk uses the receipt time.
    ...(ns > 0n ? { time: hecTime(ns) } : {}),
    ...(host ? { host } : {}),
    source: o.source,
    sourcetype: rec.kind === 'event' ? o.sourcetype : o.lossSourcetype,
    ...(o.index ? { index: o.index } : {}),
  };
  const pod = rec.kind === 'event' ? rec.event.pod : undefined;
  if (o.indexedFields && pod && (pod.namespace || pod.name)) {
    const fields: Record<string, string> = {};
    if (pod.namespace) fields.namespace = pod.namespace;
    if (pod.name) fields.pod = pod.name;
    out.fields = fields;
  }
  return out;
}

export function hecEvent(rec: SinkRecord, o: HecOptions): HecEvent {
  return { ...envelope(rec, o), event: formatRecord(rec, o.format) };
}

const K = {
  time: bytes('{"time":'),
  host: bytes('"host":'),
  source: bytes('"source":'),
  sourcetype: bytes(',"sourcetype":'),
  index: bytes(',"index":'),
  fields: bytes(',"fields":{'),
  namespace: bytes('"namespace":'),
  pod: bytes('"pod":'),
  event: bytes(',"event":'),
  end: bytes('}\n'),
};
/** Where bodies are written (sinks write one batch at a time; the body handed out is a copy). */
const scratch = new JsonWriter(256 * 1024);

/**
 * The request body: hecEvent objects concatenated, one per line (HEC accepts
 * any whitespace between them), exactly as JSON.stringify(hecEvent(rec, o))
 * would write each (test/unit/sink-splunk-hec.test.ts). Written as bytes, the
 * record by its format's direct writer: an envelope object, a string per
 * record and the concatenated body cost as much as formatting the records.
 */
export function hecBody(batch: readonly SinkRecord[], o: HecOptions): Buffer {
  const w = scratch;
  w.reset();
  for (const rec of batch) {
    // The envelope's keys in envelope()'s order.
    const ns = recordTimeNs(rec);
    if (ns > 0n) {
      w.raw(K.time);
      w.num(hecTime(ns));
      w.byte(0x2c);
    } else w.byte(0x7b);
    const host = rec.kind === 'event' ? rec.event.nodeName : (rec.loss.agent?.nodeName ?? '');
    if (host) {
      w.raw(K.host);
      w.str(host);
      w.byte(0x2c);
    }
    w.raw(K.source);
    w.str(o.source);
    w.raw(K.sourcetype);
    w.str(rec.kind === 'event' ? o.sourcetype : o.lossSourcetype);
    if (o.index) {
      w.raw(K.index);
      w.str(o.index);
    }
    const pod = rec.kind === 'event' ? rec.event.pod : undefined;
    if (o.indexedFields && pod && (pod.namespace || pod.name)) {
      w.raw(K.fields);
      if (pod.namespace) {
        w.raw(K.namespace);
        w.str(pod.namespace);
        if (pod.name) w.byte(0x2c);
      }
      if (pod.name) {
        w.raw(K.pod);
        w.str(pod.name);
      }
      w.byte(0x7d);
    }
    w.raw(K.event);
    writeLine(w, rec, o.format);
    w.raw(K.end);
  }
  return Buffer.from(w.buf.subarray(0, w.pos));
}

/** HEC's reply: `{"text":"Success","code":0,"ackId":3}`; code is undefined when the body is not HEC JSON. */
export interface HecReply {
  code?: number;
  text?: string;
  ackId?: number;
}

export function parseHecReply(body: string): HecReply {
  try {
    const j = JSON.parse(body) as unknown;
    if (j === null || typeof j !== 'object') return {};
    const o = j as Record<string, unknown>;
    return {
      ...(typeof o.code === 'number' ? { code: o.code } : {}),
      ...(typeof o.text === 'string' ? { text: o.text } : {}),
      ...(typeof o.ackId === 'number' ? { ackId: o.ackId } : {}),
    };
  } catch {
    return {};
  }
}

/** What to do about HEC's status codes (Splunk's documented `code` values). */
const HEC_HINTS: Record<number, string> = {
  1: 'the token is disabled in Splunk: enable it or use another one',
  2: 'no token reached Splunk: check that tokenFile/tokenEnv holds the token',
  3: 'the Authorization header was malformed: tokenFile/tokenEnv must hold only the token',
  4: 'Splunk does not know this token: check tokenFile/tokenEnv and the HEC input',
  6: 'Splunk could not parse the body',
  7: "the index is not in the token's allowed indexes: fix `index` or the token's settings",
  9: 'Splunk is busy (indexing queues full)',
  10: 'the token requires indexer acknowledgement: set `ack: true`',
  11: 'the data channel is invalid: remove `channel` or use a GUID',
  12: 'an event had no `event` key',
  13: 'an event had a blank `event`',
  14: 'indexer acknowledgement is disabled on this token: set `ack: false`, or enable it on the token',
  15: 'Splunk rejected the indexed fields: set `indexedFields: false`',
  18: 'HEC is unhealthy (queues full)',
};

/**
 * The outcome of a POST to the event endpoint: undefined when accepted,
 * otherwise the error to reject with. Retryable: 408, 429, 5xx, and 2xx
 * whose body is not a success; any other 4xx says what to fix.
 */
export function hecFailure(res: { status: number; body: string }, what: string, atStart = false): HttpSinkError | undefined {
  const reply = parseHecReply(res.body);
  const ok2xx = res.status >= 200 && res.status < 300;
  if (ok2xx && reply.code === 0) return undefined;
  const hint = reply.code === undefined ? undefined : HEC_HINTS[reply.code];
  const said = reply.code === undefined ? snippet(res.body) : `"${reply.text ?? ''}" (code ${reply.code})`;
  if (ok2xx) {
    return new HttpSinkError(`${what}: HTTP ${res.status} but not a HEC success: ${said}`, {
      status: res.status,
      retryable: true,
    });
  }
  const retryable = isRetryableStatus(res.status);
  const tail = atStart
    ? ''
    : retryable
      ? ' (will be retried)'
      : ' (not retryable: waiting will not fix it; the batch is retried until the configuration is fixed)';
  return new HttpSinkError(`${what}: HTTP ${res.status} ${said}${hint ? ` — ${hint}` : ''}${tail}`, {
    status: res.status,
    retryable,
  });
}

/** Which of our ackIds the ack endpoint reports as indexed (`{"acks":{"3":true}}`). */
export function ackedIds(body: string): Set<number> {
  const done = new Set<number>();
  try {
    const j = JSON.parse(body) as { acks?: Record<string, unknown> };
    for (const [k, v] of Object.entries(j.acks ?? {})) if (v === true) done.add(Number(k));
  } catch {
    // not JSON: nothing acknowledged
  }
  return done;
}

// ---------------------------------------------------------------- sending

class SplunkHecSink implements Sink {
  private readonly channelHeaders: Record<string, string>;

  constructor(
    readonly name: string,
    private readonly cfg: SplunkHecConfig,
    private readonly client: HttpClient,
    channel: string | undefined,
    private readonly deps: SinkDeps,
  ) {
    this.channelHeaders = channel ? { 'X-Splunk-Request-Channel': channel } : {};
  }

  async write(batch: SinkRecord[]): Promise<void> {
    if (batch.length === 0) return;
    const what = `splunk_hec sink "${this.name}": POST ${this.cfg.path} (${batch.length} records)`;
    const res = await this.client.post(this.cfg.path, hecBody(batch, this.cfg), {
      'Content-Type': 'application/json',
      ...this.channelHeaders,
    });
    const failure = hecFailure(res, what);
    if (failure) throw failure;
    if (this.cfg.ack) await this.waitForAck(res, what);
    this.deps.log.debug({ records: batch.length }, 'HEC accepted batch');
  }

  private async waitForAck(res: HttpResponse, what: string): Promise<void> {
    const { ackId } = parseHecReply(res.body);
    if (ackId === undefined) {
      throw new HttpSinkError(`${what}: no ackId in the reply (${snippet(res.body)}) — ${HEC_HINTS[14]}`, {
        retryable: false,
      });
    }
    const deadline = Date.now() + this.cfg.ackTimeout;
    for (;;) {
      await sleep(Math.min(this.cfg.ackPollInterval, Math.max(0, deadline - Date.now())));
      const r = await this.client.post(this.cfg.ackPath, JSON.stringify({ acks: [ackId] }), {
        'Content-Type': 'application/json',
        ...this.channelHeaders,
      });
      if (r.status !== 200) {
        const f = hecFailure(r, `${what}: ack poll`);
        throw f ?? new HttpSinkError(`${what}: ack poll HTTP ${r.status}`, { status: r.status, retryable: true });
      }
      if (ackedIds(r.body).has(ackId)) return;
      if (Date.now() >= deadline) {
        throw new HttpSinkError(
          `${what}: not acknowledged by the indexer within ${this.cfg.ackTimeout} ms (ackId ${ackId}); the batch will be resent, which may index it twice`,
          { retryable: true },
        );
      }
    }
  }

  async flush(): Promise<void> {
    // Nothing is buffered: write() resolves only when HEC has the batch.
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

/**
 * Start-up check: an empty POST with the token. Splunk answers 400
 * `{"text":"No data","code":5}` when the token is good (the same probe AWS
 * Firehose uses) and 401/403 when it is not; nothing is indexed.
 */
async function probe(client: HttpClient, cfg: SplunkHecConfig, channelHeaders: Record<string, string>): Promise<void> {
  const res = await client.post(cfg.path, '', { 'Content-Type': 'application/json', ...channelHeaders });
  const reply = parseHecReply(res.body);
  if (res.status === 400 && reply.code === 5) return;
  if (res.status >= 200 && res.status < 300) return;
  if (res.status === 404) {
    throw new Error(`${client.urlFor(cfg.path).href} answered 404: check url and path (HEC listens on port 8088 by default)`);
  }
  const f = hecFailure(res, `start-up check POST ${client.urlFor(cfg.path).href}`, true);
  throw f ?? new Error(`unexpected HEC reply ${res.status}: ${snippet(res.body)}`);
}

export const splunkHecSink: SinkFactory<SplunkHecConfig> = {
  type: TYPE,
  parse: (config, path) => parseConfig(schema, TYPE, config, path),
  async create(name, cfg, deps) {
    const { log } = deps;
    const fail = (e: unknown): never => {
      throw new Error(`${TYPE} sink "${name}" cannot start: ${(e as Error).message}`, { cause: e });
    };
    let client: HttpClient | undefined;
    try {
      warnIfInsecure(cfg.url, cfg.tls, log);
      const token = readSecret(
        { key: cfg.tokenFile ? 'tokenFile' : 'tokenEnv', file: cfg.tokenFile, env: cfg.tokenEnv },
        deps.env ?? {},
      );
      client = new HttpClient({
        url: cfg.url,
        tls: cfg.tls,
        timeoutMs: cfg.timeout,
        headers: { Authorization: `Splunk ${token}` },
      });
      const channel = cfg.ack ? (cfg.channel ?? randomUUID()) : undefined;
      await probe(client, cfg, channel ? { 'X-Splunk-Request-Channel': channel } : {});
      log.info({ url: client.urlFor(cfg.path).href, ack: cfg.ack, format: cfg.format }, 'splunk_hec sink ready');
      return new SplunkHecSink(name, cfg, client, channel, deps);
    } catch (e) {
      client?.close();
      return fail(e);
    }
  },
};
