import { z } from 'zod';
import { recordId, recordTimeNs, writeLine } from '../formats/format.js';
import { bytes, JsonWriter } from '../formats/native-json.js';
import { durationMs, entryKeys, noInlineSecret, parseConfig, readSecret, tlsSchema } from './config.js';
import { baseUrl, HttpClient, HttpSinkError, isRetryableStatus, snippet, warnIfInsecure } from './http-client.js';
import type { FormatName, Sink, SinkDeps, SinkFactory, SinkRecord } from './sink.js';

/**
 * Elasticsearch / OpenSearch `_bulk` (`type: elasticsearch`), docs/sinks/elasticsearch.md.
 *
 * A batch is one POST /_bulk of `create` actions whose `_id` is the record's
 * id (event_id), into an index named from the event's own time. A replayed
 * batch therefore lands on the same ids in the same indices and gets 409
 * version conflicts, which mean "already indexed": success. Any other item
 * error rejects the batch; the dispatcher resends all of it, and the items
 * that did get in come back as 409s.
 */

const TYPE = 'elasticsearch';

/** Characters Elasticsearch forbids in index names. */
const BAD_INDEX_CHARS = /[\\/*?"<>| ,#:A-Z]/;

/** Why an index name template is unusable, or undefined when it is fine. */
export function indexTemplateProblem(template: string): string | undefined {
  const unknown = /%[^YmdH%]/.exec(template) ?? /%$/.exec(template);
  if (unknown) return `unknown date directive "${unknown[0]}" (use %Y, %m, %d, %H or %%)`;
  const sample = expandIndex(template, 0n);
  if (BAD_INDEX_CHARS.test(sample)) return 'index names must be lowercase, without spaces or any of \\ / * ? " < > | , # :';
  if (/^[-_+]/.test(sample)) return 'index names must not start with -, _ or +';
  if (sample === '.' || sample === '..') return 'index names cannot be "." or ".."';
  if (Buffer.byteLength(sample) > 255) return 'index names are at most 255 bytes';
  return undefined;
}

const indexTemplate = z
  .string()
  .min(1)
  .superRefine((t, ctx) => {
    const p = indexTemplateProblem(t);
    if (p) ctx.addIssue({ code: z.ZodIssueCode.custom, message: p });
  });

const schema = z
  .object({
    ...entryKeys(TYPE, 'ecs'),
    url: baseUrl,
    index: indexTemplate.default('doorwatch-accept-%Y.%m.%d'),
    lossIndex: indexTemplate.default('doorwatch-loss-%Y.%m.%d'),
    pipeline: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    passwordFile: z.string().min(1).optional(),
    password: noInlineSecret('put the password in a file and set passwordFile'),
    apiKeyFile: z.string().min(1).optional(),
    apiKey: noInlineSecret('put the API key in a file and set apiKeyFile'),
    timeout: durationMs.default('30s'),
    tls: tlsSchema.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message });
    if (c.user !== undefined && c.passwordFile === undefined) issue('passwordFile', 'user needs passwordFile');
    if (c.passwordFile !== undefined && c.user === undefined) issue('user', 'passwordFile needs user');
    if (c.apiKeyFile !== undefined && c.user !== undefined)
      issue('apiKeyFile', 'use either user + passwordFile or apiKeyFile, not both');
  });

export type ElasticsearchConfig = z.output<typeof schema>;

// ---------------------------------------------------------------- payload (pure)

const pad = (n: number) => String(n).padStart(2, '0');

/** An index name from a template: %Y %m %d %H of the given Unix-nanosecond time, in UTC; %% is a %. */
export function expandIndex(template: string, ns: bigint): string {
  const d = new Date(Number(ns / 1_000_000n));
  return template.replace(/%([YmdH%])/g, (_, c: string) => {
    switch (c) {
      case 'Y':
        return String(d.getUTCFullYear());
      case 'm':
        return pad(d.getUTCMonth() + 1);
      case 'd':
        return pad(d.getUTCDate());
      case 'H':
        return pad(d.getUTCHours());
      default:
        return '%';
    }
  });
}

export interface BulkOptions {
  format: FormatName;
  index: string;
  lossIndex: string;
}

export interface BulkRequest {
  /** NDJSON: an action line and a document line per record, newline-terminated (UTF-8). */
  body: Buffer;
  /** `_index` and `_id` per record, in order (the response's items follow it). */
  targets: { index: string; id: string }[];
}

/**
 * Index names depend on a record's UTC hour only (%Y %m %d %H): one expansion per template and hour, the
 * hour's bounds kept so a record in it costs two comparisons.
 */
const HOUR_NS = 3_600_000_000_000n;
const lastIndex = new Map<string, { from: bigint; to: bigint; name: string }>();
function indexFor(template: string, ns: bigint): string {
  const hit = lastIndex.get(template);
  if (hit !== undefined && ns >= hit.from && ns < hit.to) return hit.name;
  const from = (ns / HOUR_NS) * HOUR_NS;
  const name = expandIndex(template, ns);
  if (lastIndex.size >= 64) lastIndex.clear(); // a sink has two templates; tests make more
  lastIndex.set(template, { from, to: from + HOUR_NS, name });
  return name;
}

const CREATE = bytes('{"create":{"_index":');
const ID = bytes(',"_id":');
const ACTION_END = bytes('}}\n');
/** Where bodies are written (sinks write one batch at a time; the body handed out is a copy). */
const scratch = new JsonWriter(256 * 1024);

/**
 * The _bulk body. The index comes from the record's own time, so a replay
 * targets the same index; a record with no time (0) uses `nowNs`. Written as
 * bytes (the documents by the formats' direct writers): the string per line
 * and the joined body of each batch cost as much as formatting the records.
 */
export function bulkRequest(
  batch: readonly SinkRecord[],
  o: BulkOptions,
  nowNs: bigint = BigInt(Date.now()) * 1_000_000n,
): BulkRequest {
  const targets: BulkRequest['targets'] = [];
  const w = scratch;
  w.reset();
  for (const rec of batch) {
    const t = recordTimeNs(rec);
    const index = indexFor(rec.kind === 'event' ? o.index : o.lossIndex, t > 0n ? t : nowNs);
    const id = recordId(rec);
    targets.push({ index, id });
    w.raw(CREATE);
    w.str(index);
    w.raw(ID);
    w.str(id);
    w.raw(ACTION_END);
    writeLine(w, rec, o.format);
    w.byte(0x0a);
  }
  return { body: Buffer.from(w.buf.subarray(0, w.pos)), targets };
}

export interface BulkItemFailure {
  index: string;
  id: string;
  status: number;
  type: string;
  reason: string;
}

export interface BulkSummary {
  /** 200/201. */
  created: number;
  /** 409 on create: the document is already there (a replay). */
  duplicates: number;
  failed: BulkItemFailure[];
}

/** Reads a _bulk response. Throws when it is not one, or does not have one item per action. */
export function summarizeBulk(body: string, expected: number): BulkSummary {
  let parsed: { errors?: unknown; items?: unknown };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    throw new Error(`the _bulk response is not JSON: ${snippet(body)}`);
  }
  if (!Array.isArray(parsed.items)) throw new Error(`the _bulk response has no items: ${snippet(body)}`);
  if (parsed.items.length !== expected) {
    throw new Error(`the _bulk response has ${parsed.items.length} items for ${expected} actions`);
  }
  const s: BulkSummary = { created: 0, duplicates: 0, failed: [] };
  for (const item of parsed.items as Record<string, unknown>[]) {
    const r = (Object.values(item ?? {})[0] ?? {}) as {
      _index?: string;
      _id?: string;
      status?: number;
      error?: { type?: string; reason?: string };
    };
    const status = typeof r.status === 'number' ? r.status : 0;
    if (status >= 200 && status < 300) s.created++;
    else if (status === 409) s.duplicates++;
    else {
      s.failed.push({
        index: r._index ?? '',
        id: r._id ?? '',
        status,
        type: r.error?.type ?? 'unknown',
        reason: r.error?.reason ?? snippet(JSON.stringify(r)),
      });
    }
  }
  return s;
}

/** The rejection for a bulk response with item failures, or undefined when every item is in. */
export function bulkFailure(s: BulkSummary, total: number, what: string): HttpSinkError | undefined {
  if (s.failed.length === 0) return undefined;
  const byKind = new Map<string, number>();
  for (const f of s.failed) byKind.set(`${f.status} ${f.type}`, (byKind.get(`${f.status} ${f.type}`) ?? 0) + 1);
  const kinds = [...byKind].map(([k, n]) => `${n}× ${k}`).join(', ');
  const first = s.failed[0]!;
  const retryable = s.failed.every((f) => isRetryableStatus(f.status));
  return new HttpSinkError(
    `${what}: ${s.failed.length} of ${total} items failed (${s.created} created, ${s.duplicates} already indexed): ${kinds}; ` +
      `first: [${first.index}/${first.id}] ${first.reason}` +
      (retryable ? '' : ' (not retryable: fix the mapping, index template or pipeline; the batch is resent until then)'),
    { retryable },
  );
}

const HTTP_HINTS: Record<number, string> = {
  401: 'authentication failed: check user + passwordFile, or apiKeyFile',
  403: 'the credentials lack a privilege: the role needs `create_doc` (or `write`) and `auto_configure` on the index pattern',
  404: 'not found: check url (a path prefix behind a proxy?)',
  413: 'the batch is too large for http.max_content_length: lower the batch size',
  429: 'Elasticsearch is overloaded (429)',
};

/** The rejection for a non-2xx _bulk reply. */
export function httpFailure(res: { status: number; body: string }, what: string): HttpSinkError {
  const retryable = isRetryableStatus(res.status);
  const hint = HTTP_HINTS[res.status];
  return new HttpSinkError(
    `${what}: HTTP ${res.status} ${snippet(res.body)}${hint ? ` — ${hint}` : ''}${retryable ? '' : ' (not retryable: fix the configuration)'}`,
    { status: res.status, retryable },
  );
}

/** The Authorization header value, or undefined without credentials. */
export function authorization(cfg: ElasticsearchConfig, env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (cfg.apiKeyFile !== undefined) {
    const key = readSecret({ key: 'apiKeyFile', file: cfg.apiKeyFile }, env);
    // Elasticsearch hands out `encoded` (base64 of id:api_key); accept the id:api_key form too.
    return `ApiKey ${key.includes(':') ? Buffer.from(key).toString('base64') : key}`;
  }
  if (cfg.user !== undefined) {
    const password = readSecret({ key: 'passwordFile', file: cfg.passwordFile }, env);
    return `Basic ${Buffer.from(`${cfg.user}:${password}`).toString('base64')}`;
  }
  return undefined;
}

// ---------------------------------------------------------------- sending

class ElasticsearchSink implements Sink {
  private readonly bulkPath: string;

  constructor(
    readonly name: string,
    private readonly cfg: ElasticsearchConfig,
    private readonly client: HttpClient,
    private readonly deps: SinkDeps,
  ) {
    this.bulkPath = cfg.pipeline ? `/_bulk?pipeline=${encodeURIComponent(cfg.pipeline)}` : '/_bulk';
  }

  async write(batch: SinkRecord[]): Promise<void> {
    if (batch.length === 0) return;
    const what = `elasticsearch sink "${this.name}": _bulk of ${batch.length}`;
    const req = bulkRequest(batch, this.cfg);
    const res = await this.client.post(this.bulkPath, req.body, { 'Content-Type': 'application/x-ndjson' });
    if (res.status < 200 || res.status >= 300) throw httpFailure(res, what);
    let s: BulkSummary;
    try {
      s = summarizeBulk(res.body, req.targets.length);
    } catch (e) {
      throw new HttpSinkError(`${what}: ${(e as Error).message}`, { retryable: true });
    }
    const failure = bulkFailure(s, batch.length, what);
    if (failure) throw failure;
    this.deps.log.debug({ created: s.created, duplicates: s.duplicates }, 'bulk indexed');
  }

  async flush(): Promise<void> {
    // Nothing is buffered: write() resolves only when every item is indexed.
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

/**
 * Start-up check: GET / with the credentials. 401 fails the start; 403 is
 * only logged (a write-only API key lacks the `monitor` privilege GET /
 * needs, and writes will tell).
 */
async function probe(client: HttpClient, log: SinkDeps['log']): Promise<void> {
  const res = await client.request('GET', '/');
  if (res.status === 403) {
    log.warn('GET / is forbidden (no `monitor` privilege): the cluster is reachable and the credentials valid; writes will tell');
    return;
  }
  if (res.status < 200 || res.status >= 300) throw httpFailure(res, `GET ${client.baseUrl.href}`);
  try {
    const info = JSON.parse(res.body) as { cluster_name?: string; version?: { number?: string; distribution?: string } };
    log.info(
      { cluster: info.cluster_name, version: info.version?.number, distribution: info.version?.distribution ?? 'elasticsearch' },
      'connected',
    );
  } catch {
    throw new Error(`GET ${client.baseUrl.href} did not answer like Elasticsearch/OpenSearch: ${snippet(res.body)}`);
  }
}

export const elasticsearchSink: SinkFactory<ElasticsearchConfig> = {
  type: TYPE,
  parse: (config, path) => parseConfig(schema, TYPE, config, path),
  async create(name, cfg, deps) {
    const { log } = deps;
    let client: HttpClient | undefined;
    try {
      warnIfInsecure(cfg.url, cfg.tls, log);
      const auth = authorization(cfg, deps.env ?? {});
      client = new HttpClient({
        url: cfg.url,
        tls: cfg.tls,
        timeoutMs: cfg.timeout,
        headers: auth ? { Authorization: auth } : {},
      });
      await probe(client, log);
      log.info({ url: cfg.url, index: cfg.index, format: cfg.format }, 'elasticsearch sink ready');
      return new ElasticsearchSink(name, cfg, client, deps);
    } catch (e) {
      client?.close();
      throw new Error(`${TYPE} sink "${name}" cannot start: ${(e as Error).message}`, { cause: e });
    }
  },
};
