import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCgroupPath } from '../../src/enrich/cgroup/path.js';
import type { CgroupResolver, ResolvedCgroup } from '../../src/enrich/cgroup/resolver.js';
import { Enricher } from '../../src/enrich/enricher.js';
import { AcceptEvent, EnrichmentStatus } from '../../src/gen/doorwatch/v1/event.js';
import type { KubeMetadataSource } from '../../src/kube/source.js';
import type { ContainerMeta, PodMeta } from '../../src/kube/types.js';
import { silentLogger } from '../../src/log/logger.js';

// The enricher's decisions, with fake cgroupfs and API (the real ones are
// tested in test/kernel/enrich-e2e.test.ts).

const CID = 'a'.repeat(64);
const UID = '3f2b6c1e-0000-4000-8000-000000000001';
const CONTAINER_PATH = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-${CID}.scope`;

function resolver(table: Record<string, string>): CgroupResolver {
  return {
    resolve(id: bigint, version?: 1 | 2): ResolvedCgroup | undefined {
      const path = table[`${version}:${id}`];
      return path ? { id, path, version: version ?? 2, identity: parseCgroupPath(path) } : undefined;
    },
  } as unknown as CgroupResolver;
}

const container: ContainerMeta = { id: CID, runtime: 'containerd', name: 'web', image: 'nginx:1.27', imageId: 'sha256:abc' };
const pod: PodMeta = {
  uid: UID,
  namespace: 'payments',
  name: 'web-7d9f-abcde',
  nodeName: 'n1',
  labels: { app: 'web' },
  annotations: {},
  serviceAccount: 'web',
  podIp: '10.1.2.3',
  hostNetwork: false,
  qosClass: 'Burstable',
  workload: { kind: 'Deployment', name: 'web', inferred: false },
  containers: [container],
};

class FakeKube {
  pods = new Map<string, PodMeta>();
  listeners: (() => void)[] = [];
  isSynced = true;
  on(_: 'change', fn: () => void) {
    this.listeners.push(fn);
  }
  add(p: PodMeta) {
    this.pods.set(p.uid, p);
    for (const l of this.listeners) l();
  }
  byContainerId(id: string) {
    for (const p of this.pods.values()) {
      const c = p.containers.find((x) => x.id === id);
      if (c) return { pod: p, container: c };
    }
    return undefined;
  }
  byPodUid(uid: string) {
    return this.pods.get(uid);
  }
  namespace(name: string) {
    return name === 'payments' ? { name, labels: { team: 'pay' } } : undefined;
  }
  synced() {
    return this.isSynced;
  }
  status() {
    return {
      synced: this.isSynced,
      connected: this.isSynced,
      restarts: 0,
      lastError: this.isSynced ? undefined : 'ECONNREFUSED',
      pods: this.pods.size,
      namespaces: 1,
      deletedRetained: 0,
    };
  }
}

const ev = (v2: bigint, v1: bigint, pid = 1234) => AcceptEvent.fromPartial({ process: { pid }, cgroup: { id: v2, v1Id: v1 } });

function setup(kube?: FakeKube, procPath?: string) {
  let t = 0;
  const out: AcceptEvent[] = [];
  const e = new Enricher({
    cgroups: resolver({ '2:500': CONTAINER_PATH, '1:600': '/system.slice/sshd.service' }),
    kube: kube as unknown as KubeMetadataSource,
    kubeDisabledReason: 'Kubernetes metadata disabled (--no-kube)',
    now: () => t,
    readProcCgroup: () => (procPath ? { path: procPath, version: 1 } : undefined),
    emit: (b) => out.push(...b),
    log: silentLogger,
  });
  return {
    e,
    out,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe('Enricher', () => {
  it('attributes a known container completely', () => {
    const kube = new FakeKube();
    kube.add(pod);
    const { e, out } = setup(kube);
    e.process([ev(500n, 0n)]);
    const x = out[0]!;
    assert.equal(x.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE);
    assert.deepEqual(x.container, {
      id: CID,
      runtime: 'containerd',
      name: 'web',
      image: 'nginx:1.27',
      imageId: 'sha256:abc',
      cgroupPath: CONTAINER_PATH,
    });
    assert.equal(x.pod?.name, 'web-7d9f-abcde');
    assert.deepEqual(x.pod?.workload, { kind: 'Deployment', name: 'web', inferred: false });
    assert.deepEqual(x.pod?.namespaceLabels, { team: 'pay' });
    assert.equal(e.stats().complete, 1);
  });

  it('marks host processes as host, not blank', () => {
    const { e, out } = setup(new FakeKube());
    e.process([ev(1n, 600n), ev(1n, 1n)]);
    assert.equal(out.length, 2);
    for (const x of out) {
      assert.equal(x.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_HOST);
      assert.equal(x.container, undefined);
      assert.equal(x.pod, undefined);
    }
    assert.equal(e.stats().host, 2);
  });

  it('holds an event for a container the API does not know yet, and releases it when the pod appears', () => {
    const kube = new FakeKube();
    const { e, out, advance } = setup(kube);
    e.process([ev(500n, 0n)]);
    assert.equal(out.length, 0);
    assert.equal(e.stats().pending, 1);
    advance(300);
    kube.add(pod);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE);
    assert.equal(out[0]!.enrichment?.waitedMs, 300);
  });

  it('after the deadline sends the event partial, saying what is missing and why', () => {
    const kube = new FakeKube();
    kube.isSynced = false;
    const { e, out, advance } = setup(kube);
    e.process([ev(500n, 0n)]);
    advance(1999);
    e.tick();
    assert.equal(out.length, 0);
    advance(1);
    e.tick();
    const x = out[0]!;
    assert.equal(x.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL);
    assert.deepEqual(x.enrichment?.missing, ['pod']);
    assert.match(x.enrichment?.reason ?? '', /not in the Kubernetes API after 2000ms.*not synced: ECONNREFUSED/);
    assert.equal(x.container?.id, CID, 'what is known still goes out');
    assert.equal(x.pod?.uid, UID, 'the pod UID from the cgroup');
    assert.equal(x.pod?.qosClass, 'Burstable');
    assert.equal(e.stats().pendingExpired, 1);
  });

  it('bounds its cgroup cache (4096 ids): a storm of distinct cgroups cannot grow it without limit', () => {
    let lookups = 0;
    const cgroups = {
      resolve(id: bigint, version?: 1 | 2): ResolvedCgroup | undefined {
        lookups++;
        const path = `/system.slice/unit-${id}.service`;
        return { id, path, version: version ?? 2, identity: parseCgroupPath(path) };
      },
    } as unknown as CgroupResolver;
    const e = new Enricher({ cgroups, emit: () => {}, log: silentLogger });
    e.process([ev(10n, 0n)]);
    e.process([ev(10n, 0n)]);
    assert.equal(lookups, 1, 'a known cgroup is not looked up again');
    // 4096 more distinct ids: the cache is full and starts over, so id 10 is looked up afresh.
    e.process(Array.from({ length: 4096 }, (_, i) => ev(BigInt(1000 + i), 0n)));
    lookups = 0;
    e.process([ev(10n, 0n)]);
    assert.equal(lookups, 1, 'the cache was bounded: the oldest entries are gone');
    e.stop();
  });

  it('bounds the pending queue: the oldest leaves early, counted', () => {
    const kube = new FakeKube();
    let t = 0;
    const out: AcceptEvent[] = [];
    const e = new Enricher({
      cgroups: resolver({ '2:500': CONTAINER_PATH }),
      kube: kube as unknown as KubeMetadataSource,
      maxPending: 2,
      now: () => t,
      emit: (b) => out.push(...b),
      log: silentLogger,
    });
    e.process([ev(500n, 0n, 1), ev(500n, 0n, 2), ev(500n, 0n, 3)]);
    t += 1;
    assert.equal(out.length, 1);
    assert.equal(out[0]!.process?.pid, 1);
    assert.match(out[0]!.enrichment?.reason ?? '', /pending queue full/);
    assert.equal(e.stats().pendingOverflow, 1);
    // Full again: each new event pushes the oldest still held out, in arrival order.
    e.process([ev(500n, 0n, 4), ev(500n, 0n, 5), ev(500n, 0n, 6)]);
    assert.deepEqual(
      out.map((x) => x.process?.pid),
      [1, 2, 3, 4],
    );
    assert.equal(e.stats().pendingOverflow, 4);
    assert.equal(e.stats().pending, 2);
    e.stop();
    assert.deepEqual(
      out.map((x) => x.process?.pid),
      [1, 2, 3, 4, 5, 6],
      'stop releases everything held, oldest first',
    );
    assert.match(out[5]!.enrichment?.reason ?? '', /shutting down/);
    assert.equal(e.stats().pending, 0);
  });

  it('without Kubernetes says so, and still reports the container', () => {
    const { e, out } = setup(undefined);
    e.process([ev(500n, 0n)]);
    assert.equal(out[0]!.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL);
    assert.match(out[0]!.enrichment?.reason ?? '', /--no-kube/);
    assert.equal(out[0]!.container?.id, CID);
  });

  it('falls back to /proc for an unknown cgroup id and marks it', () => {
    const kube = new FakeKube();
    kube.add(pod);
    const { e, out } = setup(kube, CONTAINER_PATH);
    e.process([ev(999n, 0n)]);
    assert.equal(out[0]!.enrichment?.status, EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE);
    assert.equal(out[0]!.enrichment?.cgroupFromProc, true);
    assert.equal(e.stats().procFallback, 1);
  });

  it('reads /proc once per pid per batch, not once per event', () => {
    let reads = 0;
    const out: AcceptEvent[] = [];
    const e = new Enricher({
      cgroups: resolver({}),
      readProcCgroup: () => {
        reads++;
        return { path: '/system.slice/x.service', version: 1 };
      },
      emit: (b) => out.push(...b),
      log: silentLogger,
    });
    e.process([ev(999n, 0n, 7), ev(999n, 0n, 7), ev(999n, 0n, 7), ev(999n, 0n, 8)]);
    assert.equal(out.length, 4);
    assert.equal(reads, 2);
    assert.ok(out.every((x) => x.enrichment?.cgroupFromProc));
  });

  it('an unknown cgroup and a vanished process: partial, with the ids', () => {
    const { e, out } = setup(new FakeKube());
    e.process([ev(999n, 998n)]);
    assert.deepEqual(out[0]!.enrichment?.missing, ['container', 'pod']);
    assert.match(out[0]!.enrichment?.reason ?? '', /999 \(v2\), 998 \(v1\) not found/);
  });
});
