import type { CgroupResolver } from '../enrich/cgroup/resolver.js';
import type { KubeMetadataSource } from '../kube/source.js';
import type { Logger } from '../log/logger.js';
import type { Policy, PolicyEngine } from './engine.js';
import { type CgroupSlot, cgroupKey, type KernelPolicySync } from './kernel-sync.js';
import type { PolicyResource } from './resource.js';

/**
 * Keeps the kernel filter equal to the policies: on every pod, namespace or
 * policy change (and every few seconds, for containers that appeared), each
 * known cgroup is mapped to the slot of the policy governing its pod (or the
 * host policy). Until pods and policies have been listed, the kernel filter
 * stays off: nothing is unaudited because the agent did not know yet.
 */

export interface PolicySource {
  synced(): boolean;
  policies(): PolicyResource[];
  on(event: 'change', fn: () => void): void;
}

export interface PolicyControllerOptions {
  engine: PolicyEngine;
  /** Absent for tests without probes: decisions then happen in userspace only. */
  sync?: KernelPolicySync;
  cgroups: CgroupResolver;
  kube?: KubeMetadataSource;
  resources?: PolicySource;
  log: Logger;
  /** Periodic rescan + reconcile. Default 5000. */
  intervalMs?: number;
}

export interface PolicyControllerStatus {
  ready: boolean;
  kernelFiltering: boolean;
  mappedCgroups: number;
  reconciles: number;
  policies: number;
}

export class PolicyController {
  readonly #o: PolicyControllerOptions;
  #timer: NodeJS.Timeout | undefined;
  #pending: NodeJS.Timeout | undefined;
  #reconciles = 0;
  #lastRescan = 0;
  #stopped = false;

  constructor(o: PolicyControllerOptions) {
    this.#o = o;
    o.kube?.on('change', () => this.requestReconcile(true));
    o.resources?.on('change', () => this.requestReconcile(false));
  }

  start(): void {
    this.reconcile();
    this.#timer = setInterval(() => this.requestReconcile(true), this.#o.intervalMs ?? 5000);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#pending) clearTimeout(this.#pending);
  }

  /** Pods and policies listed (or not used). */
  ready(): boolean {
    const kubeOk = !this.#o.kube || this.#o.kube.synced();
    return kubeOk && (!this.#o.resources || this.#o.resources.synced());
  }

  /** Debounced: a burst of pod changes costs one pass. `rescan`: walk cgroupfs first (new containers). */
  requestReconcile(rescan = false): void {
    if (this.#stopped) return;
    if (rescan) this.#rescanWanted = true;
    if (this.#pending) return;
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      this.reconcile();
    }, 100);
    this.#pending.unref();
  }

  #rescanWanted = false;

  reconcile(): void {
    const { engine, sync, cgroups, kube, resources, log } = this.#o;
    this.#reconciles++;
    if (resources && engine.setResources(resources.policies()))
      log.info({ policies: resources.policies().length }, 'audit policies changed; applying');
    if (!this.ready()) {
      sync?.enable(false);
      return;
    }
    if (!sync) return;
    const now = Date.now();
    if (this.#rescanWanted && now - this.#lastRescan >= 1000) {
      this.#lastRescan = now;
      this.#rescanWanted = false;
      cgroups.rescan();
    }
    const all = engine.all();
    const slots = sync.applyPolicies(all);
    const desired = new Map<string, CgroupSlot>();
    for (const c of cgroups.entries()) {
      // The roots (id 1) hold every process of a hierarchy a host does not use: never map them.
      if (c.id <= 1n) continue;
      let p: Policy | undefined;
      if (c.identity.kind === 'host') p = engine.host();
      else if (kube) {
        const pod = c.identity.podUid
          ? kube.byPodUid(c.identity.podUid)
          : c.identity.containerId
            ? kube.byContainerId(c.identity.containerId)?.pod
            : undefined;
        const ns = pod ? kube.namespace(pod.namespace) : undefined;
        // Unknown pod or namespace: leave it on the default slot, decided in userspace once attributed.
        if (pod && ns) p = engine.forPod({ namespace: pod.namespace, labels: pod.labels }, ns.labels);
      }
      const slot = p ? slots.get(p.key) : undefined;
      if (slot !== undefined) desired.set(cgroupKey(c.id, c.version), { id: c.id, version: c.version, slot });
    }
    const diff = sync.setCgroups(desired);
    sync.release(new Set(all.map((p) => p.key)));
    sync.enable(true);
    if (diff.added || diff.changed || diff.removed) log.debug(diff, 'kernel policy map updated');
  }

  status(): PolicyControllerStatus {
    return {
      ready: this.ready(),
      kernelFiltering: this.#o.sync?.enabled ?? false,
      mappedCgroups: this.#o.sync?.mappedCgroups() ?? 0,
      reconciles: this.#reconciles,
      policies: this.#o.engine.all().length,
    };
  }
}
