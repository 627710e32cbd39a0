import type { AcceptProbes } from '../bpf/accept-probes.js';
import { Capture } from '../capture/capture.js';
import { CgroupResolver } from '../enrich/cgroup/resolver.js';
import { Enricher } from '../enrich/enricher.js';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';
import type { Logger } from '../log/logger.js';
import type { startKube } from './trace.js';

/**
 * capture -> enrich -> `emit`, the path `trace` and `agent` share. Stop order
 * (probes detached by the caller first): capture.stop() drains the ring,
 * enricher.stop() releases held events, so nothing captured is dropped.
 */
export interface Pipeline {
  capture: Capture;
  enricher: Enricher;
  stop(): void;
}

export function startPipeline(o: {
  probes: AcceptProbes;
  kube: ReturnType<typeof startKube>;
  nodeName: string;
  pollMs: number;
  pendingDeadlineMs: number;
  emit(batch: AcceptEvent[]): void;
  log: Logger;
}): Pipeline {
  const cgroups = new CgroupResolver({ log: o.log });
  cgroups.rescan();
  const enricher = new Enricher({
    cgroups,
    kube: o.kube.source,
    kubeDisabledReason: o.kube.reason,
    pendingDeadlineMs: o.pendingDeadlineMs,
    emit: o.emit,
    log: o.log,
  });
  enricher.start();
  const capture = new Capture({
    probes: o.probes,
    nodeName: o.nodeName,
    log: o.log,
    pollMs: o.pollMs,
    onEvents: (b) => enricher.process(b),
  });
  capture.start();
  return {
    capture,
    enricher,
    stop() {
      capture.stop();
      enricher.stop();
    },
  };
}
