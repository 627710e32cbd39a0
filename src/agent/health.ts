import type { HostPort } from '../config/host-port.js';
import type { Logger } from '../log/logger.js';
import { type EndpointsServer, startEndpoints } from '../observability/endpoints.js';
import { type Readiness, readinessText } from './readiness.js';

/**
 * The agent's HTTP endpoints (src/observability/endpoints.ts): /healthz,
 * /readyz with the agent's checks (readiness.ts), /metrics (metrics.ts).
 * Started before the probes load, so /healthz answers during a slow start.
 */

export interface HealthServerOptions {
  address: HostPort;
  readiness(): Readiness;
  metrics(): Promise<{ contentType: string; body: string }>;
  log: Logger;
}

export type HealthServer = EndpointsServer;

/** Listen, or throw DW_ERR_AGENT_HEALTH_LISTEN (port in use, address not local, no permission). */
export function startHealthServer(o: HealthServerOptions): Promise<HealthServer> {
  return startEndpoints({
    ...o,
    readinessText,
    listenError: { code: 'DW_ERR_AGENT_HEALTH_LISTEN', setting: '--health-address (health.address)' },
  });
}
