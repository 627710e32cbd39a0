/**
 * STAND-INS for Splunk's HTTP Event Collector and Elasticsearch's _bulk API, for tests only: neither
 * Splunk nor Elasticsearch can run on this machine.
 *
 * They are real HTTP(S) servers that check the wire format the way the real products do and answer
 * with their status codes and bodies, so the sinks are tested against the protocol rather than against
 * a mock of themselves:
 *
 * Splunk HEC (`startHecStandin`):
 * - POST /services/collector/event (also /services/collector and /event/1.0); GET /services/collector/health;
 *   POST /services/collector/ack. Anything else: 404 `{"text":"The requested URL was not found on this server.","code":404}`.
 * - `Authorization: Splunk <token>`: none → 401 code 2 "Token is required"; malformed → 401 code 3
 *   "Invalid authorization"; unknown token → 403 code 4 "Invalid token".
 * - The body is JSON event objects concatenated (whitespace between is allowed): empty → 400 code 5
 *   "No data"; unparsable or not an object → 400 code 6 "Invalid data format"; no `event` → 400 code 12
 *   "Event field is required"; blank `event` → 400 code 13; `time` not a number → 400 code 6; `fields`
 *   values not strings → 400 code 15; `index` outside `allowedIndexes` → 400 code 7 "Incorrect index".
 *   Errors carry `invalid-event-number`, as Splunk's do. A request is accepted whole or not at all.
 * - Indexer acknowledgement (`ack: true`): `X-Splunk-Request-Channel` (or `?channel=`) required → 400 code 10
 *   "Data channel is missing" / 11 "Invalid data channel" (not a GUID); success carries an `ackId` per
 *   channel from 0; the ack endpoint answers `{"acks":{"<id>":bool}}`, true after `ackAfterPolls` polls.
 *   Without `ack`, the ack endpoint answers 400 code 14 "ACK is disabled".
 * - `setBusy(true)`: 503 code 9 "Server is busy" to event posts.
 *
 * Elasticsearch (`startEsStandin`):
 * - GET / → the cluster info document; POST /_bulk and /{index}/_bulk.
 * - Basic or ApiKey auth: missing or wrong credentials → 401 security_exception with WWW-Authenticate.
 * - Content-Type must be application/x-ndjson or application/json (406 otherwise); the body must end with
 *   a newline (400 illegal_argument_exception); action lines must be objects with one of
 *   index/create/update/delete (400 otherwise, naming the line); a source line must follow non-delete
 *   actions. `_index` is required unless in the URL.
 * - Per item: invalid index name → 400 invalid_index_name_exception; `create` of an existing `_id` →
 *   409 version_conflict_engine_exception; data streams (`dataStreams`) accept only `create` and need
 *   `@timestamp`; an unknown `?pipeline=` → 400. The response is `{took, errors, items}` with the real
 *   item shape (`_index, _id, _version, result, _shards, _seq_no, _primary_term, status` or `error`).
 * - `failNextItems(n, error)`: the next n items fail once with that error (e.g. 429 es_rejected_execution_exception).
 * - `setUnavailable(true)`: 503 for every request.
 *
 * Both record every request (method, path, query, headers, status) and what they stored.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface StandinTls {
  cert: Buffer;
  key: Buffer;
  /** Require client certificates signed by this CA (mutual TLS). */
  clientCa?: Buffer;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingMessage['headers'];
  status: number;
  /** Peer certificate subject CN, with mutual TLS. */
  clientCn?: string;
}

interface Served {
  url: string;
  requests: RequestRecord[];
  close(): Promise<void>;
}

type Handler = (
  req: IncomingMessage,
  body: Buffer,
  url: URL,
) => { status: number; body: unknown; headers?: Record<string, string> };

async function serve(tls: StandinTls | undefined, handler: Handler): Promise<Served> {
  const requests: RequestRecord[] = [];
  const sockets = new Set<Socket>();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://standin');
      const out = handler(req, Buffer.concat(chunks), url);
      const peer = (req.socket as Socket & { getPeerCertificate?: () => { subject?: { CN?: string } } }).getPeerCertificate?.();
      requests.push({
        method: req.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        status: out.status,
        ...(peer?.subject?.CN ? { clientCn: peer.subject.CN } : {}),
      });
      const text = JSON.stringify(out.body);
      res.writeHead(out.status, { 'Content-Type': 'application/json; charset=UTF-8', ...out.headers });
      res.end(text);
    });
  };
  const server = tls
    ? https.createServer(
        {
          cert: tls.cert,
          key: tls.key,
          ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
        },
        onRequest,
      )
    : http.createServer(onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ================================================================ Splunk HEC

export interface HecStandinOptions {
  token: string;
  tls?: StandinTls;
  /** Indexer acknowledgement enabled on the token. */
  ack?: boolean;
  /** Ack polls of an ackId answered false before it turns true (default 1). */
  ackAfterPolls?: number;
  /** When set, `index` must be one of these (the token's allowed indexes). */
  allowedIndexes?: string[];
}

/** One accepted event object, as received, with the channel it came on. */
export interface HecReceived {
  channel?: string;
  event: Record<string, unknown>;
}

export interface HecStandin {
  url: string;
  requests: RequestRecord[];
  received: HecReceived[];
  setBusy(busy: boolean): void;
  setToken(token: string): void;
  close(): Promise<void>;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Splits concatenated JSON values ("{..}{..}\n{..}"); throws at the first value that does not parse. */
export function splitConcatenatedJson(text: string): unknown[] {
  const out: unknown[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    if (text[i] !== '{') throw new Error(`expected an object at offset ${i}`);
    let depth = 0;
    let inString = false;
    let j = i;
    for (; j < text.length; j++) {
      const c = text[j]!;
      if (inString) {
        if (c === '\\') j++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        depth--;
        if (depth === 0) break;
      }
    }
    if (depth !== 0) throw new Error(`unterminated object at offset ${i}`);
    out.push(JSON.parse(text.slice(i, j + 1)));
    i = j + 1;
  }
  return out;
}

export async function startHecStandin(opts: HecStandinOptions): Promise<HecStandin> {
  let token = opts.token;
  let busy = false;
  const received: HecReceived[] = [];
  const channels = new Map<string, { next: number; polls: Map<number, number> }>();
  const reply = (status: number, code: number, text: string, extra: Record<string, unknown> = {}) => ({
    status,
    body: { text, code, ...extra },
  });

  const served = await serve(opts.tls, (req, raw, url) => {
    const path = url.pathname.replace(/\/+$/, '');
    const isEvent = ['/services/collector', '/services/collector/event', '/services/collector/event/1.0'].includes(path);
    const isAck = path === '/services/collector/ack';
    if (path === '/services/collector/health' && req.method === 'GET') return reply(200, 17, 'HEC is healthy');
    if (!(isEvent || isAck) || req.method !== 'POST') return reply(404, 404, 'The requested URL was not found on this server.');

    const auth = req.headers.authorization;
    if (!auth) return reply(401, 2, 'Token is required');
    const m = /^Splunk (\S+)$/.exec(auth);
    if (!m) return reply(401, 3, 'Invalid authorization');
    if (m[1] !== token) return reply(403, 4, 'Invalid token');

    const channel =
      (req.headers['x-splunk-request-channel'] as string | undefined) ?? url.searchParams.get('channel') ?? undefined;
    if (isAck) {
      if (!opts.ack) return reply(400, 14, 'ACK is disabled');
      if (!channel) return reply(400, 10, 'Data channel is missing');
      const ch = channels.get(channel);
      if (!ch) return reply(400, 11, 'Invalid data channel');
      let ids: unknown;
      try {
        ids = (JSON.parse(raw.toString()) as { acks?: unknown }).acks;
      } catch {
        return reply(400, 6, 'Invalid data format');
      }
      if (!Array.isArray(ids)) return reply(400, 6, 'Invalid data format');
      const acks: Record<string, boolean> = {};
      for (const id of ids as number[]) {
        const polls = ch.polls.get(id);
        if (polls === undefined) {
          acks[String(id)] = false;
          continue;
        }
        ch.polls.set(id, polls + 1);
        acks[String(id)] = polls + 1 > (opts.ackAfterPolls ?? 1);
      }
      return { status: 200, body: { acks } };
    }

    if (busy) return reply(503, 9, 'Server is busy');
    if (opts.ack) {
      if (!channel) return reply(400, 10, 'Data channel is missing');
      if (!GUID.test(channel)) return reply(400, 11, 'Invalid data channel');
    }
    const text = raw.toString('utf8');
    if (text.trim() === '') return reply(400, 5, 'No data');
    let objects: unknown[];
    try {
      objects = splitConcatenatedJson(text);
    } catch {
      return reply(400, 6, 'Invalid data format', { 'invalid-event-number': 0 });
    }
    for (const [n, o] of objects.entries()) {
      const bad = (code: number, msg: string) => reply(400, code, msg, { 'invalid-event-number': n });
      if (o === null || typeof o !== 'object' || Array.isArray(o)) return bad(6, 'Invalid data format');
      const e = o as Record<string, unknown>;
      if (!('event' in e)) return bad(12, 'Event field is required');
      if (e.event === '' || e.event === null) return bad(13, 'Event field cannot be blank');
      if (e.time !== undefined && !(typeof e.time === 'number' || (typeof e.time === 'string' && /^\d+(\.\d+)?$/.test(e.time)))) {
        return bad(6, 'Invalid data format');
      }
      if (e.fields !== undefined) {
        const f = e.fields;
        const okValue = (v: unknown) => typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'));
        if (f === null || typeof f !== 'object' || Array.isArray(f) || !Object.values(f).every(okValue)) {
          return bad(15, 'Error in handling indexed fields');
        }
      }
      if (opts.allowedIndexes && e.index !== undefined && !opts.allowedIndexes.includes(String(e.index))) {
        return bad(7, 'Incorrect index');
      }
    }
    for (const o of objects) received.push({ ...(channel ? { channel } : {}), event: o as Record<string, unknown> });
    if (opts.ack && channel) {
      let ch = channels.get(channel);
      if (!ch) {
        ch = { next: 0, polls: new Map() };
        channels.set(channel, ch);
      }
      const ackId = ch.next++;
      ch.polls.set(ackId, 0);
      return reply(200, 0, 'Success', { ackId });
    }
    return reply(200, 0, 'Success');
  });

  return {
    url: served.url,
    requests: served.requests,
    received,
    setBusy: (b) => {
      busy = b;
    },
    setToken: (t) => {
      token = t;
    },
    close: served.close,
  };
}

// ================================================================ Elasticsearch

export interface EsStandinOptions {
  /** Credentials the cluster accepts; none = security disabled. */
  auth?: { user: string; password: string } | { apiKey: string };
  tls?: StandinTls;
  /** Names that are data streams (create only, @timestamp required). */
  dataStreams?: string[];
  /** Ingest pipelines that exist. */
  pipelines?: string[];
}

export interface EsItemError {
  status: number;
  type: string;
  reason: string;
}

export interface EsStandin {
  url: string;
  requests: RequestRecord[];
  /** index → _id → document source. */
  indices: Map<string, Map<string, Record<string, unknown>>>;
  /** Documents in an index, or in all of them. */
  count(index?: string): number;
  failNextItems(n: number, error: EsItemError): void;
  setUnavailable(down: boolean): void;
  close(): Promise<void>;
}

const ACTIONS = ['index', 'create', 'update', 'delete'] as const;

function esError(status: number, type: string, reason: string) {
  return { status, body: { error: { root_cause: [{ type, reason }], type, reason }, status } };
}

function invalidIndexReason(name: string): string | undefined {
  if (name !== name.toLowerCase()) return `Invalid index name [${name}], must be lowercase`;
  if (/[\\/*?"<>| ,#:]/.test(name))
    return `Invalid index name [${name}], must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?, #, :]`;
  if (/^[-_+]/.test(name)) return `Invalid index name [${name}], must not start with '_', '-', or '+'`;
  return undefined;
}

export async function startEsStandin(opts: EsStandinOptions = {}): Promise<EsStandin> {
  const indices = new Map<string, Map<string, Record<string, unknown>>>();
  const dataStreams = new Set(opts.dataStreams ?? []);
  let unavailable = false;
  let seqNo = 0;
  const pendingFailures: EsItemError[] = [];

  const authenticate = (req: IncomingMessage, path: string) => {
    if (!opts.auth) return undefined;
    const h = req.headers.authorization ?? '';
    const challenge = { 'WWW-Authenticate': 'Basic realm="security", charset="UTF-8", ApiKey' };
    const fail = (reason: string) => ({ ...esError(401, 'security_exception', reason), headers: challenge });
    if (!h) return fail(`missing authentication credentials for REST request [${path}]`);
    if ('apiKey' in opts.auth) {
      if (h !== `ApiKey ${opts.auth.apiKey}`) {
        return fail('unable to authenticate with provided credentials and anonymous access is not allowed for this request');
      }
      return undefined;
    }
    const m = /^Basic (.+)$/.exec(h);
    const [user, ...rest] = m ? Buffer.from(m[1]!, 'base64').toString().split(':') : [];
    if (user !== opts.auth.user || rest.join(':') !== opts.auth.password) {
      return fail(`unable to authenticate user [${user ?? ''}] for REST request [${path}]`);
    }
    return undefined;
  };

  const served = await serve(opts.tls, (req, raw, url) => {
    if (unavailable)
      return esError(503, 'cluster_block_exception', 'blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];');
    const denied = authenticate(req, url.pathname);
    if (denied) return denied;
    if (req.method === 'GET' && url.pathname === '/') {
      return {
        status: 200,
        body: {
          name: 'standin-node-0',
          cluster_name: 'doorwatch-standin',
          cluster_uuid: 'U2t9dW5kZXJzdGFuZGlu',
          version: { number: '8.15.0', build_flavor: 'default', build_type: 'docker', lucene_version: '9.11.1' },
          tagline: 'You Know, for Search',
        },
      };
    }
    const bulk = /^(?:\/([^/]+))?\/_bulk$/.exec(url.pathname);
    if (!bulk || (req.method !== 'POST' && req.method !== 'PUT')) {
      return esError(
        404,
        'resource_not_found_exception',
        `no handler found for uri [${url.pathname}] and method [${req.method}]`,
      );
    }
    const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (ct !== 'application/x-ndjson' && ct !== 'application/json') {
      return {
        status: 406,
        body: { error: `Content-Type header [${req.headers['content-type'] ?? ''}] is not supported`, status: 406 },
      };
    }
    const text = raw.toString('utf8');
    if (text === '') return esError(400, 'action_request_validation_exception', 'Validation Failed: 1: no requests added;');
    if (!text.endsWith('\n'))
      return esError(400, 'illegal_argument_exception', 'The bulk request must be terminated by a newline [\\n]');
    const pipeline = url.searchParams.get('pipeline') ?? undefined;
    const lines = text.slice(0, -1).split('\n');

    // Parse the whole request first: a malformed line fails the request, as in Elasticsearch.
    const ops: { action: (typeof ACTIONS)[number]; index?: string; id?: string; source?: unknown; sourceError?: string }[] = [];
    for (let i = 0; i < lines.length; i++) {
      const n = i + 1;
      let action: unknown;
      try {
        action = JSON.parse(lines[i]!);
      } catch {
        return esError(400, 'x_content_parse_exception', `[${n}:1] Unexpected character in action/metadata line [${n}]`);
      }
      if (action === null || typeof action !== 'object' || Array.isArray(action)) {
        return esError(
          400,
          'illegal_argument_exception',
          `Malformed action/metadata line [${n}], expected START_OBJECT or END_OBJECT`,
        );
      }
      const keys = Object.keys(action);
      const name = keys[0] as (typeof ACTIONS)[number];
      if (keys.length !== 1 || !ACTIONS.includes(name)) {
        return esError(
          400,
          'illegal_argument_exception',
          `Malformed action/metadata line [${n}], expected field [create], [delete], [index] or [update] but found [${keys[0] ?? ''}]`,
        );
      }
      const meta = (action as Record<string, Record<string, unknown>>)[name] ?? {};
      for (const k of Object.keys(meta)) {
        if (!['_index', '_id', 'routing', 'pipeline', 'require_alias', 'if_seq_no', 'if_primary_term', 'version'].includes(k)) {
          return esError(400, 'illegal_argument_exception', `Action/metadata line [${n}] contains an unknown parameter [${k}]`);
        }
      }
      const index = typeof meta._index === 'string' ? meta._index : bulk[1];
      if (index === undefined)
        return esError(400, 'action_request_validation_exception', 'Validation Failed: 1: index is missing;');
      const op: (typeof ops)[number] = { action: name, index, ...(typeof meta._id === 'string' ? { id: meta._id } : {}) };
      if (name !== 'delete') {
        i++;
        if (i >= lines.length)
          return esError(400, 'illegal_argument_exception', `Action/metadata line [${n}] has no source line`);
        try {
          op.source = JSON.parse(lines[i]!);
          if (op.source === null || typeof op.source !== 'object' || Array.isArray(op.source)) op.sourceError = 'not an object';
        } catch (e) {
          op.sourceError = (e as Error).message;
        }
      }
      ops.push(op);
    }

    const started = Date.now();
    const items = ops.map((op) => {
      const index = op.index!;
      const fail = (status: number, type: string, reason: string) => ({
        [op.action]: { _index: index, _id: op.id ?? null, status, error: { type, reason, index } },
      });
      const injected = pendingFailures.shift();
      if (injected) return fail(injected.status, injected.type, injected.reason);
      const bad = invalidIndexReason(index);
      if (bad) return fail(400, 'invalid_index_name_exception', bad);
      if (pipeline !== undefined && !(opts.pipelines ?? []).includes(pipeline)) {
        return fail(400, 'illegal_argument_exception', `pipeline with id [${pipeline}] does not exist`);
      }
      if (op.sourceError) return fail(400, 'document_parsing_exception', `[1:1] failed to parse: ${op.sourceError}`);
      if (op.action === 'update' || op.action === 'delete') {
        return fail(400, 'illegal_argument_exception', `the stand-in does not implement [${op.action}]`);
      }
      const source = op.source as Record<string, unknown>;
      if (dataStreams.has(index)) {
        if (op.action !== 'create') {
          return fail(400, 'illegal_argument_exception', `only write ops with an op_type of create are allowed in data streams`);
        }
        if (!('@timestamp' in source)) {
          return fail(
            400,
            'document_parsing_exception',
            `[1:1] failed to parse: data stream timestamp field [@timestamp] is missing`,
          );
        }
      }
      let docs = indices.get(index);
      if (!docs) {
        docs = new Map();
        indices.set(index, docs);
      }
      const id = op.id ?? randomBytes(15).toString('base64url');
      const existing = docs.has(id);
      if (existing && op.action === 'create') {
        return {
          create: {
            _index: index,
            _id: id,
            status: 409,
            error: {
              type: 'version_conflict_engine_exception',
              reason: `[${id}]: version conflict, document already exists (current version [1])`,
              index_uuid: 'c3RhbmRpbi1pbmRleA',
              shard: '0',
              index,
            },
          },
        };
      }
      docs.set(id, source);
      const created = !existing;
      return {
        [op.action]: {
          _index: dataStreams.has(index) ? `.ds-${index}-2024.01.01-000001` : index,
          _id: id,
          _version: 1,
          result: created ? 'created' : 'updated',
          _shards: { total: 2, successful: 1, failed: 0 },
          _seq_no: seqNo++,
          _primary_term: 1,
          status: created ? 201 : 200,
        },
      };
    });
    const errors = items.some((it) => 'error' in (Object.values(it)[0] as object));
    return { status: 200, body: { errors, took: Date.now() - started, items } };
  });

  return {
    url: served.url,
    requests: served.requests,
    indices,
    count: (index) =>
      index === undefined ? [...indices.values()].reduce((n, d) => n + d.size, 0) : (indices.get(index)?.size ?? 0),
    failNextItems: (n, error) => {
      for (let i = 0; i < n; i++) pendingFailures.push(error);
    },
    setUnavailable: (d) => {
      unavailable = d;
    },
    close: served.close,
  };
}
