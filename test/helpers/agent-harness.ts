import { type Agent, request } from 'node:http';
import { type AgentIO, type AgentOptions, runAgent } from '../../src/cli/agent.js';
import type { HostPort } from '../../src/config/host-port.js';
import type { Pki } from './pki.js';

/** The agent run in a test process: its options, and its HTTP endpoints read back. */

/**
 * runAgent's options for a test: mutual TLS to `collector` (any collector
 * at `target` trusting `pki`: FakeCollector, the real one, a proxy in front
 * of it; a client certificate named `client` from that PKI), the spool in `spoolDir`, no
 * Kubernetes, endpoints on an ephemeral loopback port, short delays;
 * `over` replaces any of it.
 */
export function testAgentOptions(
  collector: { target: string; pki: Pki },
  o: { client: string; spoolDir: string },
  over: Partial<AgentOptions> = {},
): AgentOptions {
  const cert = collector.pki.client(o.client);
  return {
    collector: collector.target,
    tls: { ca: collector.pki.caFile, cert: cert.cert, key: cert.key, serverName: 'localhost' },
    spool: { dir: o.spoolDir, maxBytes: 64 << 20, overflow: 'drop-oldest' },
    batch: { maxEvents: 500, maxDelayMs: 20 },
    nodeName: 'test-node',
    includeEagain: false,
    ringBytes: 8 << 20,
    pollMs: 10,
    pendingDeadlineMs: 200,
    listenersPeriodMs: 600_000,
    kube: { enabled: false, env: {} },
    flushTimeoutMs: 2000,
    health: { host: '127.0.0.1', port: 0 },
    ...over,
  };
}

/**
 * runAgent in this process, stopped by `stop(why)` (its stop signal).
 * `listening` resolves with the endpoints' address once `io.endpointsListening`
 * (if any) has returned. `done` is runAgent's promise: a caller that does not
 * await it at once attaches its own catch.
 */
export function startInProcessAgent(
  options: AgentOptions,
  io: Omit<AgentIO, 'stopSignal'>,
): { done: Promise<void>; stop: (why: string) => void; listening: Promise<HostPort> } {
  let stop!: (why: string) => void;
  const stopSignal = new Promise<string>((resolve) => {
    stop = resolve;
  });
  let listened!: (address: HostPort) => void;
  const listening = new Promise<HostPort>((resolve) => {
    listened = resolve;
  });
  const done = runAgent(options, {
    ...io,
    stopSignal,
    endpointsListening: async (address) => {
      await io.endpointsListening?.(address);
      listened(address);
    },
  });
  return { done, stop, listening };
}

export interface Reply {
  status: number;
  type: string;
  body: string;
}

/**
 * GET on loopback. A fresh connection each time unless `agent` is given (no
 * keep-alive pool: after a stop, a refused connect is what a test looks for).
 */
export function httpGet(port: number, path: string, o: { headers?: Record<string, string>; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: o.headers, agent: o.agent ?? false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in 5s`)));
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample of a Prometheus exposition, e.g. 'doorwatch_events_total{syscall="accept",status="success"}'. */
export function metricSample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
