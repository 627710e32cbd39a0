import type { HostPort } from '../config/host-port.js';
import type { Logger } from '../log/logger.js';
import { type EndpointsServer, startEndpoints } from '../observability/endpoints.js';
import type { SinkStats } from './dispatcher.js';

/**
 * The collector's /healthz, /readyz and /metrics (src/observability/endpoints.ts),
 * on their own plain-HTTP port: the gRPC port is mutual TLS, which neither the
 * kubelet nor a usual Prometheus scrape can present.
 *
 * Ready = the gRPC port is listening, the collector is not stopping, and every
 * required sink is healthy: its last write attempt did not fail. A required
 * sink that fails holds every ack (agents spool meanwhile), so a collector
 * whose required sink is down should not get new agents from the Service;
 * the first successful retry makes it ready again. Non-required sinks are
 * reported but do not count.
 */

export interface CollectorReadinessCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface CollectorReadiness {
  ready: boolean;
  checks: CollectorReadinessCheck[];
}

export interface CollectorReadinessState {
  /** undefined: not listening yet. */
  listening: { address: string } | undefined;
  stopping: boolean;
  /** undefined: the sinks are still starting. */
  sinks: SinkStats[] | undefined;
}

export function evaluateCollectorReadiness(s: CollectorReadinessState): CollectorReadiness {
  const checks: CollectorReadinessCheck[] = [];
  if (s.stopping) checks.push({ name: 'collector', ok: false, detail: 'stopping: draining the sink queues' });
  checks.push(
    s.listening
      ? { name: 'grpc', ok: true, detail: `listening on ${s.listening.address}` }
      : { name: 'grpc', ok: false, detail: s.sinks ? 'not listening yet' : 'starting the sinks' },
  );
  for (const x of s.sinks ?? []) {
    const queued = x.queued + x.inFlight;
    const detail = x.lastError === null ? `ok, ${queued} queued` : `write failing (retrying): ${x.lastError}; ${queued} queued`;
    checks.push({
      name: `sink ${x.name}${x.required ? '' : ' (not required)'}`,
      ok: !x.required || x.lastError === null,
      detail,
    });
  }
  return { ready: checks.every((c) => c.ok), checks };
}

export function collectorReadinessText(r: CollectorReadiness): string {
  const head = r.ready
    ? 'ready'
    : `not ready: ${r.checks
        .filter((c) => !c.ok)
        .map((c) => c.name)
        .join(', ')}`;
  return `${head}\n${r.checks.map((c) => `[${c.ok ? '+' : '-'}] ${c.name}: ${c.detail}`).join('\n')}\n`;
}

export interface CollectorHealthOptions {
  address: HostPort;
  readiness(): CollectorReadiness;
  metrics(): Promise<{ contentType: string; body: string }>;
  log: Logger;
}

/** Listen, or throw DW_ERR_COLLECTOR_LISTEN naming the health address. */
export function startCollectorHealth(o: CollectorHealthOptions): Promise<EndpointsServer> {
  return startEndpoints({
    ...o,
    readinessText: collectorReadinessText,
    listenError: { code: 'DW_ERR_COLLECTOR_LISTEN', setting: '--health-address (health.address)' },
  });
}
