import type { KubeConfig } from '@kubernetes/client-node';
import type { AcceptProbes } from '../bpf/accept-probes.js';
import { Capture } from '../capture/capture.js';
import { CgroupResolver } from '../enrich/cgroup/resolver.js';
import { Enricher } from '../enrich/enricher.js';
import { governingFor } from '../findings/governing.js';
import { UndeclaredListenerDetector } from '../findings/undeclared.js';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';
import { loadKubeConfig } from '../kube/config.js';
import { KubeMetadataSource } from '../kube/source.js';
import { isListenerKind } from '../listeners/event.js';
import { ListenerInventory } from '../listeners/inventory.js';
import { listenersFromIterator } from '../listeners/iter-scan.js';
import type { Logger } from '../log/logger.js';
import { PolicyController, type PolicySource } from '../policy/controller.js';
import type { PolicyEngine } from '../policy/engine.js';
import { KernelPolicySync, type PolicyMaps } from '../policy/kernel-sync.js';
import { PolicyStage } from '../policy/stage.js';
import type { TraceOptions } from './trace.js';

/**
 * capture -> enrich -> `emit`, the path `trace` and `agent` share. Stop order
 * (probes detached by the caller first): capture.stop() drains the ring,
 * enricher.stop() releases held events, so nothing captured is dropped.
 */
export interface Pipeline {
  capture: Capture;
  enricher: Enricher;
  /** Present when audit policies are in use. */
  policy?: { stage: PolicyStage; controller: PolicyController; sync: KernelPolicySync };
  /** Present when the listener inventory runs (the agent). */
  listeners?: ListenerInventory;
  /** Undeclared-listener findings: with the inventory and pod metadata (src/findings). */
  findings?: UndeclaredListenerDetector;
  stop(): void;
}

/** Audit policies for the pipeline: the engine, and the AcceptAuditPolicy objects when watched. */
export interface PipelinePolicy {
  engine: PolicyEngine;
  resources?: PolicySource;
}

export function startPipeline(o: {
  probes: AcceptProbes;
  kube: KubeHandle;
  nodeName: string;
  pollMs: number;
  /** The drain period while events trickle in (Capture's steadyPollMs; default pollMs). */
  steadyPollMs?: number;
  pendingDeadlineMs: number;
  emit(batch: AcceptEvent[]): void;
  log: Logger;
  policy?: PipelinePolicy;
  /** The kernel policy maps; default: the probes' own (tests wrap them). */
  policyMaps?: PolicyMaps;
  /** Run the listener inventory: a /proc snapshot now, a rescan every periodMs (src/listeners). */
  listeners?: { periodMs: number };
  /** Capture names events (default true); false where `emit` renumbers them (the agent). */
  eventIds?: boolean;
}): Pipeline {
  const cgroups = new CgroupResolver({ log: o.log });
  cgroups.rescan();
  let policy: Pipeline['policy'];
  let emit = o.emit;
  if (o.policy) {
    const sync = new KernelPolicySync(o.policyMaps ?? o.probes, o.log.child({ module: 'policy' }));
    const controller = new PolicyController({
      engine: o.policy.engine,
      sync,
      cgroups,
      kube: o.kube.source,
      resources: o.policy.resources,
      log: o.log.child({ module: 'policy' }),
    });
    const stage = new PolicyStage({
      engine: o.policy.engine,
      ready: () => controller.ready(),
      emit: o.emit,
      onKernelMiss: () => controller.requestReconcile(true),
    });
    controller.start();
    stage.start();
    policy = { stage, controller, sync };
    emit = (b) => stage.process(b);
  }
  // Listener records are not accepts: they skip the policy stage (no policy
  // governs the inventory) and pass through the inventory, in order.
  let listeners: ListenerInventory | undefined;
  // Findings need the pods' declared ports: only with the inventory and pod metadata.
  const kubeSource = o.kube.source;
  const findings =
    o.listeners && kubeSource
      ? new UndeclaredListenerDetector({
          declaredPorts: (uid) => {
            const pod = kubeSource.byPodUid(uid);
            return pod && (pod.declaredPorts ?? []);
          },
          governing: governingFor(policy && o.policy && { engine: o.policy.engine, ready: () => policy.controller.ready() }),
          emit: o.emit,
        })
      : undefined;
  const accepts = emit;
  emit = (b) => {
    let i = 0;
    while (i < b.length && !isListenerKind(b[i]!.kind)) i++;
    if (i === b.length) return accepts(b); // the usual batch: accepts only
    const rest: AcceptEvent[] = [];
    const own: AcceptEvent[] = [];
    for (const ev of b) {
      if (!isListenerKind(ev.kind)) {
        rest.push(ev);
        continue;
      }
      const kept = listeners ? listeners.observe(ev) : ev;
      own.push(kept);
      // The finding follows the listener record that raised it.
      if (findings) for (const f of findings.observe(kept)) own.push(f);
    }
    if (rest.length) accepts(rest);
    o.emit(own);
  };
  const enricher = new Enricher({
    cgroups,
    kube: o.kube.source,
    kubeDisabledReason: o.kube.reason,
    pendingDeadlineMs: o.pendingDeadlineMs,
    emit,
    log: o.log,
  });
  enricher.start();
  const capture = new Capture({
    probes: o.probes,
    nodeName: o.nodeName,
    log: o.log,
    pollMs: o.pollMs,
    steadyPollMs: o.steadyPollMs,
    eventIds: o.eventIds,
    onEvents: (b) => enricher.process(b),
  });
  capture.start();
  if (o.listeners) {
    o.probes.setListeners(true);
    listeners = new ListenerInventory({
      nodeName: o.nodeName,
      periodMs: o.listeners.periodMs,
      attribute: (b) => enricher.process(b),
      // Closed by a rescan: the detector forgets them too.
      emit: (b) => {
        if (findings) for (const ev of b) findings.observe(ev);
        o.emit(b);
      },
      log: o.log.child({ module: 'listeners' }),
      // In the kernel when the iterator loaded (no CAP_SYS_PTRACE needed for other users' fds), else /proc.
      ...(o.probes.listenerIterator ? { scan: async () => listenersFromIterator(o.probes.readListeners()) } : {}),
    });
    // After the probes are attached: a listener opened during the scan is seen by one or the other.
    void listeners.start();
    findings?.start();
  }
  return {
    capture,
    enricher,
    policy,
    listeners,
    findings,
    stop() {
      listeners?.stop();
      findings?.stop();
      capture.stop();
      enricher.stop();
      policy?.stage.stop();
      policy?.controller.stop();
    },
  };
}

/** What startKube found: off, absent (said why), or a started source. */
export interface KubeHandle {
  source?: KubeMetadataSource;
  kubeConfig?: KubeConfig;
  reason?: string;
  detail: string;
}

/**
 * Pod metadata for trace and agent: off, absent (said why), or a started source.
 * Async because client-node is imported only when a configuration was found (config.ts).
 */
export async function startKube(o: Pick<TraceOptions, 'kube' | 'nodeName'>, log: Logger): Promise<KubeHandle> {
  if (!o.kube.enabled) return { reason: 'Kubernetes metadata disabled (--no-kube)', detail: 'disabled (--no-kube)' };
  const loaded = await loadKubeConfig({ env: o.kube.env, kubeconfigPath: o.kube.kubeconfigPath });
  if (!loaded.kubeConfig) {
    if (o.kube.kubeconfigPath)
      log.warn({ reason: loaded.reason }, 'cannot use the given kubeconfig; continuing without pod metadata');
    else log.debug({ reason: loaded.reason }, 'no Kubernetes configuration found; continuing without pod metadata');
    return { reason: `no Kubernetes API configured: ${loaded.reason}`, detail: `off: ${loaded.reason}` };
  }
  const source = new KubeMetadataSource({
    kubeConfig: loaded.kubeConfig,
    nodeName: o.nodeName,
    log,
    labelAllowList: o.kube.labelAllowList,
    annotationAllowList: o.kube.annotationAllowList,
  });
  // Never blocks: an unreachable API server retries in the background while events flow.
  void source.start();
  return { source, kubeConfig: loaded.kubeConfig, detail: `${loaded.source} ${loaded.server} (node ${o.nodeName})` };
}
