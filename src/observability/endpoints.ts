import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HostPort } from '../config/host-port.js';
import { DoorwatchError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/logger.js';

/**
 * The plain-HTTP endpoints the agent and the collector both serve, for the
 * kubelet and Prometheus (each process supplies its own readiness and metrics):
 *
 *   GET /healthz  200 "ok" while the process serves requests (liveness; /livez too)
 *   GET /readyz   200 when ready, 503 otherwise; the process's own text (one line per check),
 *                 its readiness object as JSON with `Accept: application/json` or `?format=json`
 *   GET /metrics  Prometheus text format
 */

export interface Readiness {
  ready: boolean;
}

export interface EndpointsOptions<R extends Readiness> {
  address: HostPort;
  readiness(): R;
  /** The /readyz body for people: one line per check. */
  readinessText(r: R): string;
  metrics(): Promise<{ contentType: string; body: string }>;
  log: Logger;
  /** What a bind failure is reported as: its code, and the setting that chooses the address (for the fix). */
  listenError: { code: ErrorCode; setting: string };
}

export interface EndpointsServer {
  /** Where it listens (the real port when 0 was asked). */
  readonly address: HostPort;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, contentType: string, body: string, head: boolean): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : body);
}

function wantsJson(req: IncomingMessage, url: URL): boolean {
  return url.searchParams.get('format') === 'json' || /\bapplication\/json\b/.test(req.headers.accept ?? '');
}

const TEXT = 'text/plain; charset=utf-8';

function handler<R extends Readiness>(o: EndpointsOptions<R>) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://doorwatch');
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, TEXT, 'method not allowed: GET or HEAD\n', false);
      return;
    }
    switch (url.pathname) {
      case '/healthz':
      case '/livez':
        send(res, 200, TEXT, 'ok\n', head);
        return;
      case '/readyz': {
        const r = o.readiness();
        const status = r.ready ? 200 : 503;
        if (wantsJson(req, url)) send(res, status, 'application/json', `${JSON.stringify(r)}\n`, head);
        else send(res, status, TEXT, o.readinessText(r), head);
        return;
      }
      case '/metrics':
        o.metrics().then(
          (m) => send(res, 200, m.contentType, m.body, head),
          (err: Error) => {
            o.log.warn({ err: err.message }, 'metrics collection failed');
            send(res, 500, TEXT, `metrics collection failed: ${err.message}\n`, head);
          },
        );
        return;
      default:
        send(res, 404, TEXT, 'not found: /healthz, /readyz, /metrics\n', head);
    }
  };
}

export function shownAddress(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Listen, or throw a DoorwatchError with o.listenError's code (port in use, address not local, no permission). */
export async function startEndpoints<R extends Readiness>(o: EndpointsOptions<R>): Promise<EndpointsServer> {
  const server: Server = createServer(handler(o));
  // Probes are short requests; do not let a slow client hold a socket forever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        new DoorwatchError(
          o.listenError.code,
          `cannot listen on ${shownAddress(o.address)} for /healthz, /readyz and /metrics: ${err.code ?? err.message}`,
          `choose another ${o.listenError.setting}, stop what holds the port, or set it to "off"`,
          { cause: err },
        ),
      );
    };
    server.once('error', onError);
    server.listen(o.address.port, o.address.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => o.log.warn({ err: err.message }, 'health server error'));
  const bound = server.address() as AddressInfo;
  const address = { host: bound.address, port: bound.port };
  o.log.info({ address: shownAddress(address) }, 'serving /healthz, /readyz and /metrics');
  let closing: Promise<void> | undefined;
  return {
    address,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections (Prometheus, kubelet) would hold close() open.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
