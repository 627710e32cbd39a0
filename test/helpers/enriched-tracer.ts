import { CgroupResolver } from '../../src/enrich/cgroup/resolver.js';
import { Enricher } from '../../src/enrich/enricher.js';
import type { KubeMetadataSource } from '../../src/kube/source.js';
import { silentLogger } from '../../src/log/logger.js';
import type { KubeApiServer } from './kube-api-server.js';
import { startKubeStandIn } from './kube-stand-in.js';
import { startTracer, type Tracer } from './tracer.js';

/**
 * The kernel tests of pods simulated with pod-sim.ts: the real probes with the
 * real enricher between capture and the collected events, attributing through
 * the real cgroup directories and a node-scoped pod source on the Kubernetes
 * API stand-in (kube-stand-in.ts: no kube-apiserver runs here).
 */
export interface EnrichedTracer {
  api: KubeApiServer;
  kube: KubeMetadataSource;
  tracer: Tracer;
  /** Stops the probes, the enricher and the pod source, and closes the stand-in. */
  stop(): Promise<void>;
}

export async function startEnrichedTracer(o: {
  node: string;
  /** Namespace name -> labels, in the stand-in before the pod source lists. */
  namespaces: Record<string, Record<string, string>>;
  pendingDeadlineMs: number;
}): Promise<EnrichedTracer> {
  const { api, kube } = await startKubeStandIn(o);
  let enricher: Enricher | undefined;
  const stopKube = async () => {
    enricher?.stop();
    await kube.stop();
    await api.close();
  };
  let tracer: Tracer;
  try {
    const cgroups = new CgroupResolver({ log: silentLogger, minRescanIntervalMs: 0 });
    tracer = startTracer({
      through: (sink) => {
        const e = new Enricher({ cgroups, kube, pendingDeadlineMs: o.pendingDeadlineMs, emit: sink, log: silentLogger });
        enricher = e;
        e.start(20);
        return (b) => e.process(b);
      },
    });
  } catch (err) {
    await stopKube();
    throw err;
  }
  return {
    api,
    kube,
    tracer,
    async stop() {
      tracer.stop();
      await stopKube();
    },
  };
}
