/**
 * One readable line for whatever a list or watch failed with, plus the fix for
 * the failures an operator can fix. client-node 1.4 reports them in three
 * shapes: ApiException (list: `code`, `body` = Status JSON text, except for 401
 * whose body it drops), a plain Error with `statusCode` (watch: the Status body
 * is dropped), and node-fetch's FetchError (network, TLS).
 */

const HINTS: Record<number, string> = {
  401: 'the API server rejected the credentials: check the ServiceAccount token (in-cluster) or the kubeconfig user',
  403: "RBAC: the agent's ServiceAccount needs get/list/watch on pods and namespaces (a ClusterRole bound to it)",
  410: 'the resource version expired; the informer relists',
};

interface HttpishError {
  code?: unknown;
  statusCode?: unknown;
  body?: unknown;
  message?: unknown;
  name?: unknown;
}

/** The Status message out of a response body, when there is one. */
export function statusMessage(body: unknown): string | undefined {
  let b = body;
  if (typeof body === 'string') {
    try {
      b = JSON.parse(body);
    } catch {
      return body.trim().slice(0, 300) || undefined;
    }
  }
  if (b && typeof b === 'object' && typeof (b as { message?: unknown }).message === 'string') {
    return (b as { message: string }).message;
  }
  return undefined;
}

/** The HTTP status carried by a client-node error, if any. */
export function httpStatusOf(err: unknown): number | undefined {
  const e = err as HttpishError | null;
  if (!e || typeof e !== 'object') return undefined;
  if (typeof e.statusCode === 'number') return e.statusCode;
  // FetchError puts errno strings (ECONNREFUSED) in `code`: only numbers are HTTP statuses.
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

/** `forbiddenHint`: the fix for a 403 when the caller is not the agent (the collector's RBAC differs). */
export function describeApiError(op: string, err: unknown, forbiddenHint?: string): string {
  const e = err as HttpishError | null;
  const status = httpStatusOf(err);
  if (status !== undefined) {
    const detail = statusMessage(e?.body) ?? (typeof e?.statusCode === 'number' ? String(e.message) : undefined);
    const hint = status === 403 && forbiddenHint ? forbiddenHint : HINTS[status];
    return `${op}: HTTP ${status}${detail ? ` ${detail}` : ''}${hint ? ` — ${hint}` : ''}`;
  }
  const msg = err instanceof Error ? err.message : String(err);
  const tls = /certificate|self[- ]signed|CERT_|SSL|TLS/i.test(msg);
  return `${op}: ${msg}${tls ? ' — check the cluster CA (ca.crt / certificate-authority in the kubeconfig)' : ''}`;
}
