import { loadKubeConfig } from '../../kube/config.js';
import type { Logger } from '../../log/logger.js';
import type { PeersConfig } from '../config.js';
import { PeerAttributor } from './attributor.js';
import { PeerSource, type PeerSourceStatus } from './source.js';

/** The collector's peer attribution for its `peers` config, started in the background. */

export interface Peers {
  attributor: PeerAttributor;
  /** Undefined when attribution is off (and every event says why). */
  source: PeerSource | undefined;
  status(): PeerSourceStatus | undefined;
  stop(): Promise<void>;
}

export async function startPeers(
  cfg: PeersConfig,
  deps: { log: Logger; env: Readonly<Record<string, string | undefined>> | undefined; now?: () => number },
): Promise<Peers> {
  const off = (why: string): Peers => ({
    attributor: new PeerAttributor(undefined, why),
    source: undefined,
    status: () => undefined,
    stop: async () => {},
  });
  if (!cfg.enabled) return off('peer attribution disabled (peers.enabled: false)');
  const loaded = await loadKubeConfig({ env: deps.env ?? {}, ...(cfg.kubeconfig ? { kubeconfigPath: cfg.kubeconfig } : {}) });
  if (!loaded.kubeConfig) {
    deps.log.warn({ reason: loaded.reason }, 'peers.enabled but no Kubernetes API configuration: peers go out unattributed');
    return off(`no Kubernetes API configuration (${loaded.reason})`);
  }
  const source = new PeerSource({
    kubeConfig: loaded.kubeConfig,
    log: deps.log,
    historyMs: cfg.historyMs,
    maxEndedHoldings: cfg.maxEndedHoldings,
    ...(cfg.labelAllowList ? { labelAllowList: cfg.labelAllowList } : {}),
    clusterCidrs: cfg.clusterCidrs,
    ...(deps.now ? { now: deps.now } : {}),
  });
  // Not awaited: a slow or unreachable API must not hold the collector's start (events say "not synced yet").
  source
    .start()
    .catch((err: unknown) => deps.log.error({ err: (err as Error)?.message ?? String(err) }, 'peer index failed to start'));
  return {
    attributor: new PeerAttributor(source, undefined, deps.now),
    source,
    status: () => source.status(),
    stop: () => source.stop(),
  };
}
