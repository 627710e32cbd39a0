import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/**
 * The few REST calls Doorwatch makes to the API server (lists, a status merge patch), sent with
 * client-node's KubeConfig — its credentials, exec and OIDC plugins, TLS and proxy settings, applied by
 * `applyToHTTPSOptions` exactly as its own Watch applies them — but without its generated API classes.
 * Those cannot be loaded alone: every generated API imports the ObjectSerializer, which imports all ~720
 * models, and importing them cost the agent ~10 MiB of RSS at 20 000 events/s (113-115 -> 103-104 MiB) for
 * a few GETs whose answers it reads as plain JSON anyway (its watch events always were plain JSON; docs/benchmarks.md).
 *
 * Failures keep the shapes src/kube/api-error.ts reads: an HTTP status is a KubeHttpError with
 * `statusCode` and the Status body as text; a network or TLS failure is Node's own error.
 */

export class KubeHttpError extends Error {
  override name = 'KubeHttpError';
  constructor(
    readonly statusCode: number,
    /** The response body as text: the API server's Status JSON, when it sent one. */
    readonly body: string,
    statusText: string,
  ) {
    super(statusText || `HTTP ${statusCode}`);
  }
}

export interface KubeRequest {
  method?: 'GET' | 'POST' | 'PATCH';
  /** From the API root, e.g. `/api/v1/pods`. */
  path: string;
  /** Query parameters; undefined and empty values are left out. */
  query?: Record<string, string | undefined>;
  /** Sent as JSON. */
  body?: unknown;
  /** The body's media type; default application/json. */
  contentType?: string;
  signal: AbortSignal;
}

/** One request; resolves with the parsed JSON of a 2xx answer. */
export async function kubeRequest<T>(kc: KubeConfig, r: KubeRequest): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the Kubernetes configuration has no current cluster (current-context)');
  // As client-node builds its URLs: the server's own path (an API proxy's prefix) is kept.
  const url = new URL(cluster.server + r.path);
  for (const [k, v] of Object.entries(r.query ?? {})) if (v !== undefined && v !== '') url.searchParams.set(k, v);
  const method = r.method ?? 'GET';
  const opts: RequestOptions = { method };
  await kc.applyToHTTPSOptions(opts);
  const payload = r.body === undefined ? undefined : Buffer.from(JSON.stringify(r.body));
  opts.headers = {
    ...opts.headers,
    Accept: 'application/json',
    ...(payload && { 'Content-Type': r.contentType ?? 'application/json', 'Content-Length': payload.length }),
  };
  opts.signal = r.signal;
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = send(url, opts, resolve);
    req.on('error', reject);
    req.end(payload);
  });
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const code = res.statusCode ?? 0;
  if (code < 200 || code > 299) throw new KubeHttpError(code, text, res.statusMessage ?? '');
  try {
    return JSON.parse(text) as T;
  } catch {
    const start = text.slice(0, 80).replace(/\s+/g, ' ');
    throw new Error(`${method} ${r.path}: the API server answered HTTP ${code} with a body that is not JSON ("${start}")`);
  }
}
