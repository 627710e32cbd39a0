import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import { readTlsFile, type TlsFiles } from './config.js';

/**
 * What the HTTP sinks (Splunk HEC, Elasticsearch bulk) share: one keep-alive
 * connection pool per sink, TLS from files, an overall deadline per request,
 * and errors that say which URL failed and why. (The config pieces every sink
 * shares, TLS files and secrets included, are in config.ts.)
 *
 * No retries here: a failed request rejects, and the dispatcher retries the
 * whole batch with backoff.
 */

/** An http(s) base URL, without query or fragment. */
export const baseUrl = z
  .string()
  .url()
  .refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an http:// or https:// URL')
  .refine((u) => !new URL(u).search && !new URL(u).hash, 'must not have a query string or fragment')
  .refine((u) => !new URL(u).username && !new URL(u).password, "must not hold credentials: use the sink's secret files");

// ---------------------------------------------------------------- errors

/** A request that did not succeed. `retryable: false` means waiting will not fix it (bad token, bad request). */
export class HttpSinkError extends Error {
  readonly status: number | undefined;
  readonly retryable: boolean;
  constructor(message: string, opts: { status?: number; retryable: boolean; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HttpSinkError';
    this.status = opts.status;
    this.retryable = opts.retryable;
  }
}

/** 408, 429 and 5xx can succeed later; any other 4xx needs a config or code change. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|HOSTNAME|ALTNAME/;

function describeNetworkError(e: NodeJS.ErrnoException): string {
  const code = e.code ?? '';
  if (TLS_CODES.test(code) || TLS_CODES.test(e.message)) {
    return `TLS failure: ${e.message} (set tls.ca to the CA that signs the server's certificate, or tls.serverName to a name it lists)`;
  }
  if (code === 'ECONNREFUSED') return `connection refused: ${e.message} (is the server up and the port right?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve the host: ${e.message}`;
  return e.message;
}

// ---------------------------------------------------------------- the client

export interface HttpClientOptions {
  /** Base URL; request paths are appended to its path. */
  url: string;
  tls?: TlsFiles | undefined;
  /** Deadline for a whole request: connect, send, and read the response. */
  timeoutMs: number;
  /** Headers sent with every request (authorization). */
  headers?: Record<string, string>;
  /** Most concurrent connections; the dispatcher writes one batch at a time per sink. */
  maxSockets?: number;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Responses bigger than this are cut off (a bulk response for 10k items is ~2 MiB). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export class HttpClient {
  readonly baseUrl: URL;
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  private closed = false;

  /** Reads the TLS files now: a missing CA file fails the sink's start, not its first write. */
  constructor(opts: HttpClientOptions) {
    this.baseUrl = new URL(opts.url);
    this.timeoutMs = opts.timeoutMs;
    this.headers = opts.headers ?? {};
    const common = { keepAlive: true, maxSockets: opts.maxSockets ?? 4, keepAliveMsecs: 15_000 };
    if (this.baseUrl.protocol === 'https:') {
      const t = opts.tls;
      this.agent = new https.Agent({
        ...common,
        ca: readTlsFile('ca', t?.ca),
        cert: readTlsFile('cert', t?.cert),
        key: readTlsFile('key', t?.key),
        servername: t?.serverName,
        rejectUnauthorized: t?.rejectUnauthorized ?? true,
        minVersion: 'TLSv1.2',
      });
    } else {
      this.agent = new http.Agent(common);
    }
  }

  /** The URL for a path below the base URL (a base of https://h/es + /_bulk → https://h/es/_bulk). */
  urlFor(path: string): URL {
    const u = new URL(this.baseUrl.href);
    const [p, q] = path.split('?', 2) as [string, string | undefined];
    u.pathname = u.pathname.replace(/\/+$/, '') + (p.startsWith('/') ? p : `/${p}`);
    if (q !== undefined) u.search = q;
    return u;
  }

  request(method: 'GET' | 'POST', path: string, body?: string | Buffer, headers?: Record<string, string>): Promise<HttpResponse> {
    const url = this.urlFor(path);
    const what = `${method} ${url.origin}${url.pathname}`;
    if (this.closed) return Promise.reject(new HttpSinkError(`${what}: the sink is closed`, { retryable: false }));
    const payload = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<HttpResponse>((resolve, reject) => {
      let done = false;
      const finish = (err: Error | undefined, res?: HttpResponse) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(res!);
      };
      const req = mod.request(url, {
        method,
        agent: this.agent,
        headers: {
          ...this.headers,
          ...headers,
          ...(payload ? { 'Content-Length': String(payload.length) } : {}),
        },
      });
      const timer = setTimeout(() => {
        const e = new HttpSinkError(`${what} timed out after ${this.timeoutMs} ms`, { retryable: true });
        finish(e);
        req.destroy(e);
      }, this.timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) => {
        finish(new HttpSinkError(`${what} failed: ${describeNetworkError(e)}`, { retryable: true, cause: e }));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_RESPONSE_BYTES) chunks.push(c);
        });
        res.on('error', (e) => finish(new HttpSinkError(`${what}: response aborted: ${e.message}`, { retryable: true })));
        res.on('end', () =>
          finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
      });
      req.end(payload);
    });
  }

  post(path: string, body: string | Buffer, headers?: Record<string, string>): Promise<HttpResponse> {
    return this.request('POST', path, body, headers);
  }

  /** Idempotent; in-flight requests are aborted. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.agent.destroy();
  }
}

/** Say so when the connection does not protect the credentials and events. */
export function warnIfInsecure(url: string, tls: TlsFiles | undefined, log: { warn(msg: string): void }): void {
  if (new URL(url).protocol === 'http:')
    log.warn('plain http:// — credentials and events cross the network unencrypted; use https://');
  else if (tls?.rejectUnauthorized === false) log.warn('tls.rejectUnauthorized is false: the server is not authenticated');
}

/** A response body for an error message: one line, at most 300 characters. */
export function snippet(body: string, max = 300): string {
  const one = body.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max)}…` : one || '(empty body)';
}
