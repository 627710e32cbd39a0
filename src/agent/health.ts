import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HostPort } from '../config/host-port.js';
import { DoorwatchError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { type Readiness, readinessText } from './readiness.js';

/**
 * The agent's HTTP endpoints, for the kubelet and Prometheus:
 *
 *   GET /healthz  200 "ok" while the process serves requests (liveness)
 *   GET /readyz   200 when ready, 503 otherwise; one line per check (readiness.ts),
 *                 JSON with `Accept: application/json` or `?format=json`
 *   GET /metrics  Prometheus text format (metrics.ts)
 *
 * Started before the probes load, so /healthz answers during a slow start.
 */

export interface HealthServerOptions {
  address: HostPort;
  readiness(): Readiness;
  metrics(): Promise<{ contentType: string; body: string }>;
  log: Logger;
}

export interface HealthServer {
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

function handler(o: HealthServerOptions) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://agent');
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
        else send(res, status, TEXT, readinessText(r), head);
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

function shown(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Listen, or throw DW_ERR_AGENT_HEALTH_LISTEN (port in use, address not local, no permission). */
export async function startHealthServer(o: HealthServerOptions): Promise<HealthServer> {
  const server: Server = createServer(handler(o));
  // Probes are short requests; do not let a slow client hold a socket forever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        new DoorwatchError(
          'DW_ERR_AGENT_HEALTH_LISTEN',
          `cannot listen on ${shown(o.address)} for /healthz, /readyz and /metrics: ${err.code ?? err.message}`,
          'choose another --health-address (health.address), stop what holds the port, or set it to "off"',
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
  o.log.info({ address: shown(address) }, 'serving /healthz, /readyz and /metrics');
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
