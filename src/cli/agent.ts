import type { AgentConfig } from '../agent/config.js';
import { type HealthServer, startHealthServer } from '../agent/health.js';
import { AgentMetrics } from '../agent/metrics.js';
import { addPolicyMetrics } from '../agent/policy-metrics.js';
import { BATCH_INTERVAL_MS, Publisher, type PublisherTls } from '../agent/publisher.js';
import { evaluateReadiness, type Readiness } from '../agent/readiness.js';
import { Spool } from '../agent/spool.js';
import { tokenFileAuthorization } from '../agent/token.js';
import { AcceptProbes } from '../bpf/accept-probes.js';
import type { HostPort } from '../config/host-port.js';
import { addFindingMetrics } from '../findings/metrics.js';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';
import { addListenerMetrics } from '../listeners/metrics.js';
import type { Logger } from '../log/logger.js';
import { parsePolicyConfig } from '../policy/config.js';
import { PolicyEngine } from '../policy/engine.js';
import { DEFAULT_ADMIN_NAMESPACE } from '../policy/file.js';
import { policyReportOf } from '../policy/report.js';
import type { PolicyWatcher } from '../policy/watch.js';
import { readPem } from './pem.js';
import { type KubeHandle, startKube, startPipeline } from './pipeline.js';
import type { TraceOptions } from './trace.js';
import { startFullGcTimer } from './v8-heap.js';

/**
 * `doorwatch agent`: capture -> enrich -> sequence -> spool -> collector.
 * The spool is written before anything is sent, so a collector outage or an
 * agent restart loses nothing the kernel delivered.
 *
 * /healthz, /readyz and /metrics listen before the probes load (readiness
 * rules: src/agent/readiness.ts; metrics: docs/metrics.md).
 */

export const AGENT_VERSION = '0.1.0';
/** While events flow, a full collection at least this often (src/cli/v8-heap.ts startFullGcTimer). */
const FULL_GC_INTERVAL_MS = 5000;

/** The validated settings (AgentConfig, whose fields say what each is), as runAgent takes them. */
export type AgentOptions = Omit<AgentConfig, 'kube' | 'health' | 'pod' | 'logLevel' | 'token'> & {
  /** The collector token file; absent: no token is sent. */
  token?: AgentConfig['token'];
  /** Kubernetes metadata, with the environment the kube config loader reads. */
  kube: TraceOptions['kube'];
  /** /healthz, /readyz, /metrics; undefined: no HTTP endpoints. */
  health?: HostPort;
  pod?: AgentConfig['pod'];
};

export interface AgentIO {
  log: Logger;
  stopSignal: Promise<string>;
  /**
   * Called once the HTTP endpoints listen, before the probes load; the agent
   * waits for it (tests look at /healthz and /readyz at that moment).
   */
  endpointsListening?: (address: HostPort) => Promise<void> | void;
  /** prom-client's process_* / nodejs_* metrics (default true). */
  processMetrics?: boolean;
}

/** AgentConfig (validated settings) + the environment -> what runAgent takes. */
export function agentOptions(c: AgentConfig, env: Readonly<Record<string, string | undefined>>): AgentOptions {
  const { kube, health, logLevel: _logLevel, ...same } = c;
  return {
    ...same,
    kube: {
      enabled: kube.enabled,
      kubeconfigPath: kube.kubeconfig,
      env,
      labelAllowList: kube.labels,
      annotationAllowList: kube.annotations,
    },
    health: health.address,
  };
}

export async function runAgent(o: AgentOptions, io: AgentIO): Promise<void> {
  const log = io.log;
  const tls: PublisherTls | { insecure: true } =
    'insecure' in o.tls
      ? { insecure: true }
      : {
          ca: readPem(o.tls.ca, '--ca', 'tls.ca'),
          cert: o.tls.cert ? readPem(o.tls.cert, '--cert', 'tls.cert') : undefined,
          key: o.tls.key ? readPem(o.tls.key, '--key', 'tls.key') : undefined,
          serverName: o.tls.serverName,
        };
  if ('insecure' in tls) log.warn('sending events to the collector in plaintext (--insecure): use mutual TLS in production');

  // Validated before anything starts: a bad policy must not half-apply.
  const policyConfig =
    o.policy === undefined
      ? undefined
      : parsePolicyConfig(o.policy, {
          source: 'the agent configuration',
          defaultAdminNamespace: o.pod?.namespace ?? DEFAULT_ADMIN_NAMESPACE,
        });

  const metrics = new AgentMetrics({
    info: { version: AGENT_VERSION, node: o.nodeName, pod: o.pod?.name, namespace: o.pod?.namespace },
    processMetrics: io.processMetrics ?? true,
  });

  // What readiness looks at; filled in as the parts start.
  let probes: AcceptProbes | undefined;
  let kube: KubeHandle | undefined;
  let spool: Spool | undefined;
  let publisher: Publisher | undefined;
  let stopping = false;
  const readiness = (): Readiness =>
    evaluateReadiness({
      probes: probes ? { attached: probes.attachedPrograms() } : undefined,
      kube: !kube
        ? { source: true, synced: false, connected: false, lastError: 'not started yet', pods: 0 }
        : kube.source
          ? { source: true, ...kube.source.status() }
          : { source: false, reason: kube.reason ?? kube.detail },
      transport:
        publisher && spool
          ? (() => {
              const p = publisher.status();
              return {
                connected: p.connected,
                lastError: p.lastError,
                spool: { open: !stopping, bytes: p.spoolBytes, maxBytes: spool.maxBytes, overflow: spool.overflow },
              };
            })()
          : undefined,
      stopping,
    });
  metrics.setSources({ readiness });

  let health: HealthServer | undefined;
  if (o.health) health = await startHealthServer({ address: o.health, readiness, metrics: () => metrics.scrape(), log });
  else log.info('HTTP endpoints disabled (health.address off): no /healthz, /readyz or /metrics');
  log.info(
    { node: o.nodeName, pod: o.pod?.name, namespace: o.pod?.namespace, version: AGENT_VERSION, policy: o.policy !== undefined },
    'agent starting',
  );

  try {
    if (health) await io.endpointsListening?.(health.address);
    probes = AcceptProbes.load({ ringBytes: o.ringBytes, includeEagain: o.includeEagain, log });
    spool = Spool.open({ dir: o.spool.dir, maxBytes: o.spool.maxBytes, overflow: o.spool.overflow, log });
  } catch (e) {
    probes?.close();
    await health?.close();
    throw e;
  }
  const identity = spool.identity;
  metrics.setInfo({ instance: identity.instanceId });
  publisher = new Publisher({
    target: o.collector,
    tls,
    identity: { nodeName: o.nodeName, version: AGENT_VERSION, ...identity },
    spool,
    batch: o.batch,
    log,
    onAck: (rttMs) => metrics.observeRtt(rttMs),
    ...(o.token ? { authorization: tokenFileAuthorization(o.token.file, o.token.explicit) } : {}),
  });
  publisher.start();
  const pub = publisher;
  const sp = spool;

  // seq is assigned after enrichment: held events would otherwise leave out of order. The event id,
  // "<boot id>/<instance id>/<seq>", is the spool's to write (straight into the event's bytes).
  const sequence = (batch: AcceptEvent[]) => {
    let seq = sp.nextSeq();
    for (const ev of batch) {
      ev.seq = seq++;
      ev.eventId = '';
    }
    metrics.countEvents(batch);
    pub.publish(batch);
  };

  kube = await startKube({ kube: o.kube, nodeName: o.nodeName }, log);
  const kubeSource = kube.source;
  // Imported only with a Kubernetes configuration: the watcher's module loads client-node.
  let watcher: PolicyWatcher | undefined;
  if (policyConfig?.resources && kube.kubeConfig) {
    const { PolicyWatcher } = await import('../policy/watch.js');
    watcher = new PolicyWatcher({
      kubeConfig: kube.kubeConfig,
      adminNamespace: policyConfig.adminNamespace,
      writeStatus: policyConfig.writeStatus,
      log: log.child({ module: 'policy-watch' }),
    });
  }
  if (policyConfig?.resources && !watcher)
    log.warn('no Kubernetes API: AcceptAuditPolicy objects cannot be watched; only the configuration policy rules apply');
  void watcher?.start();
  const { capture, enricher, policy, listeners, findings, stop } = startPipeline({
    probes,
    kube,
    nodeName: o.nodeName,
    pollMs: o.pollMs,
    // One drain per batch while events trickle in: the publisher sends at most this often while busy
    // (Capture keeps it within pollMs..idlePollMs).
    steadyPollMs: BATCH_INTERVAL_MS,
    pendingDeadlineMs: o.pendingDeadlineMs,
    emit: sequence,
    eventIds: false,
    listeners: { periodMs: o.listenersPeriodMs },
    log,
    policy: policyConfig ? { engine: new PolicyEngine(policyConfig), resources: watcher } : undefined,
  });
  if (listeners) addListenerMetrics(metrics, () => listeners.stats());
  if (findings) addFindingMetrics(metrics, () => findings.stats());
  if (policy)
    addPolicyMetrics(metrics, {
      report: () => policyReportOf(policy),
      ...(watcher ? { resources: () => watcher.status() } : {}),
    });
  metrics.setSources({
    capture: () => capture.stats(),
    enricher: () => enricher.stats(),
    ...(kubeSource ? { kube: () => kubeSource.status() } : {}),
    publisher: () => pub.status(),
    spool: () => ({ ...sp.stats(), maxBytes: sp.maxBytes }),
  });

  // Losses upstream of the spool travel in the stream, as deltas.
  let last = { ring: 0n, decode: 0n, recursion: 0n };
  const reportLosses = () => {
    const s = capture.stats();
    const now = {
      ring: s.kernel.RINGBUF_FULL,
      decode: s.decodeErrors,
      recursion: s.programs.reduce((a, p) => a + p.recursionMisses, 0n),
    };
    pub.reportLosses({
      kernelRingFull: now.ring - last.ring,
      decodeErrors: now.decode - last.decode,
      bpfRecursionMisses: now.recursion - last.recursion,
    });
    last = now;
  };
  const lossTimer = setInterval(reportLosses, 1000);
  // Bounds the native memory dead objects hold between V8's own (rare) full collections: src/cli/v8-heap.ts.
  const fullGc = startFullGcTimer({ intervalMs: FULL_GC_INTERVAL_MS, progress: () => capture.delivered });
  let wasReady = false;
  const readyTimer = setInterval(() => {
    const r = readiness();
    if (r.ready === wasReady) return;
    wasReady = r.ready;
    if (r.ready) log.info({ mode: r.mode }, 'agent ready');
    else log.warn({ failing: r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`) }, 'agent not ready');
  }, 1000);
  readyTimer.unref();
  const statusTimer = setInterval(() => {
    const p = pub.status();
    log.info(
      {
        connected: p.connected,
        ackedSeq: String(p.ackedSeq),
        inFlight: p.inFlightBatches,
        spoolBytes: p.spoolBytes,
        lastError: p.lastError,
      },
      'agent status',
    );
  }, 30_000);
  log.info(
    {
      collector: o.collector,
      instance: identity.instanceId,
      firstSeq: String(sp.nextSeq()),
      kubernetes: kube.detail,
      health: health ? `${health.address.host}:${health.address.port}` : 'off',
    },
    'agent started: capturing accepts',
  );

  const why = await io.stopSignal;
  stopping = true;
  clearInterval(lossTimer);
  fullGc.stop();
  clearInterval(readyTimer);
  clearInterval(statusTimer);
  probes.detach();
  stop();
  reportLosses();
  const { flushed } = await pub.close({ flushTimeoutMs: o.flushTimeoutMs });
  // Scrapes read the probes' maps and the spool: the endpoints go before those close.
  await health?.close();
  sp.close();
  probes.close();
  await watcher?.stop();
  await kubeSource?.stop();
  log.info(
    { reason: why, flushed, ackedSeq: String(sp.ackedSeq(identity)) },
    flushed ? 'agent stopped: all events acknowledged' : 'agent stopped: unacknowledged events stay in the spool',
  );
}
