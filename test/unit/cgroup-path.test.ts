import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CgroupIdentity, parseCgroupPath } from '../../src/enrich/cgroup/path.js';

// Shapes copied from real nodes (kubelet systemd and cgroupfs drivers, CRI-O,
// Docker, podman, kind, k3d, GitHub Actions); ids are made up but well formed.
const ID = '3e2d5f0a9c1b4e7d8a6f5c4b3a2918070615243342516f7e8d9cabbacdfe0123';
const ID2 = 'aa11bb22cc33dd44ee55ff6677889900aabbccddeeff00112233445566778899';
const UID = '3f2b8c1e-6a4d-4b7f-9e2a-1c5d8f0b7a63';
const UID_ = UID.replaceAll('-', '_');

const container = (runtime: CgroupIdentity['runtime'], extra: Partial<CgroupIdentity> = {}): CgroupIdentity => ({
  kind: 'container',
  ...(runtime ? { runtime } : {}),
  containerId: ID,
  ...extra,
});
const inPod = (qos: CgroupIdentity['qos']) => ({ podUid: UID, qos });

const cases: [string, string, CgroupIdentity][] = [
  // kubelet, systemd driver (v1 and v2 paths are the same strings)
  [
    'systemd, containerd, Burstable',
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    container('containerd', inPod('Burstable')),
  ],
  [
    'systemd, containerd, BestEffort',
    `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    container('containerd', inPod('BestEffort')),
  ],
  [
    'systemd, containerd, Guaranteed (no QoS slice)',
    `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    container('containerd', inPod('Guaranteed')),
  ],
  [
    'systemd, cri-o, Burstable',
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${ID}.scope`,
    container('cri-o', inPod('Burstable')),
  ],
  [
    'systemd, cri-o, Guaranteed',
    `/kubepods.slice/kubepods-pod${UID_}.slice/crio-${ID}.scope`,
    container('cri-o', inPod('Guaranteed')),
  ],
  [
    'systemd, cri-o + crun on v2: the container sub-cgroup',
    `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${ID}.scope/container`,
    container('cri-o', inPod('BestEffort')),
  ],
  [
    'systemd, cri-o conmon: the pod, not the container',
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-conmon-${ID}.scope`,
    { kind: 'pod', runtime: 'cri-o', ...inPod('Burstable') },
  ],
  [
    'systemd, cri-dockerd, BestEffort',
    `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/docker-${ID}.scope`,
    container('docker', inPod('BestEffort')),
  ],
  [
    'systemd, pod-level cgroup',
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`,
    { kind: 'pod', ...inPod('Burstable') },
  ],
  ['systemd, Guaranteed pod-level cgroup', `/kubepods.slice/kubepods-pod${UID_}.slice`, { kind: 'pod', ...inPod('Guaranteed') }],
  // kubelet, cgroupfs driver
  ['cgroupfs, Burstable', `/kubepods/burstable/pod${UID}/${ID}`, container(undefined, inPod('Burstable'))],
  ['cgroupfs, BestEffort', `/kubepods/besteffort/pod${UID}/${ID}`, container(undefined, inPod('BestEffort'))],
  ['cgroupfs, Guaranteed', `/kubepods/pod${UID}/${ID}`, container(undefined, inPod('Guaranteed'))],
  ['cgroupfs, cri-o', `/kubepods/burstable/pod${UID}/crio-${ID}`, container('cri-o', inPod('Burstable'))],
  ['cgroupfs, cri-o conmon', `/kubepods/pod${UID}/crio-conmon-${ID}`, { kind: 'pod', runtime: 'cri-o', ...inPod('Guaranteed') }],
  ['cgroupfs, pod-level cgroup', `/kubepods/besteffort/pod${UID}`, { kind: 'pod', ...inPod('BestEffort') }],
  // Outside Kubernetes
  ['docker, cgroupfs driver', `/docker/${ID}`, container('docker')],
  ['docker, systemd driver', `/system.slice/docker-${ID}.scope`, container('docker')],
  ['podman, rootful', `/machine.slice/libpod-${ID}.scope`, container('podman')],
  ['podman, v2 container sub-cgroup', `/machine.slice/libpod-${ID}.scope/container`, container('podman')],
  ['podman, rootless', `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`, container('podman')],
  ['podman, cgroupfs manager', `/libpod_parent/libpod-${ID}`, container('podman')],
  ['podman conmon: host side', `/machine.slice/libpod-conmon-${ID}.scope`, { kind: 'host' }],
  ['nerdctl', `/system.slice/nerdctl-${ID}.scope`, container('containerd')],
  ['containerd namespace, bare id', `/default/${ID}`, container(undefined)],
  ['GitHub Actions job container', `/actions_job/${ID}`, container(undefined)],
  // Nested: the innermost container or pod is the workload
  [
    'kind node (docker, systemd) -> containerd pod',
    `/system.slice/docker-${ID2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    container('containerd', inPod('BestEffort')),
  ],
  [
    'kind node, Guaranteed',
    `/docker/${ID2}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`,
    container('containerd', inPod('Guaranteed')),
  ],
  [
    'k3d (k3s in docker, cgroupfs)',
    `/docker/${ID2}/kubepods/burstable/pod${UID}/${ID}`,
    container(undefined, inPod('Burstable')),
  ],
  [
    'k3d pod-level cgroup: the pod, not the outer node',
    `/docker/${ID2}/kubepods/besteffort/pod${UID}`,
    { kind: 'pod', ...inPod('BestEffort') },
  ],
  [
    'kind in a GitHub Actions job',
    `/actions_job/${ID2}/kubelet/kubepods/pod${UID}/${ID}`,
    container(undefined, inPod('Guaranteed')),
  ],
  [
    'docker-in-docker inside a pod: inner container, enclosing pod',
    `/kubepods/burstable/pod${UID}/${ID2}/docker/${ID}`,
    container('docker', inPod('Burstable')),
  ],
  ['docker-in-docker', `/docker/${ID2}/docker/${ID}`, container('docker')],
  // Host
  ['root', '/', { kind: 'host' }],
  ['empty', '', { kind: 'host' }],
  ['sshd', '/system.slice/sshd.service', { kind: 'host' }],
  ['containerd daemon', '/system.slice/containerd.service', { kind: 'host' }],
  ['kubelet', '/system.slice/kubelet.service', { kind: 'host' }],
  ['user session', '/user.slice/user-1000.slice/session-3.scope', { kind: 'host' }],
  ['init', '/init.scope', { kind: 'host' }],
  ['QoS slice without a pod', '/kubepods.slice/kubepods-burstable.slice', { kind: 'host' }],
  ['kubepods root (cgroupfs)', '/kubepods/besteffort', { kind: 'host' }],
  ['32-hex ids are not container ids', '/process_api/1b0325589a7e9f98333070b7ebb526ec', { kind: 'host' }],
  ['upper-case hex is not a container id', `/docker/${ID.toUpperCase()}`, { kind: 'host' }],
  ['63 hex', `/docker/${ID.slice(1)}`, { kind: 'host' }],
  ['docker.service', '/system.slice/docker.service', { kind: 'host' }],
  ['a malformed pod uid', `/kubepods/burstable/pod${UID.slice(1)}`, { kind: 'host' }],
];

describe('parseCgroupPath', () => {
  for (const [name, path, want] of cases) {
    it(name, () => assert.deepEqual(parseCgroupPath(path), want));
  }

  it('canonicalises systemd pod uids to dashes', () => {
    const got = parseCgroupPath(`/kubepods.slice/kubepods-pod${UID_}.slice`);
    assert.equal(got.podUid, UID);
    assert.match(got.podUid!, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('ignores a trailing slash or newline (as read from /proc)', () => {
    assert.deepEqual(parseCgroupPath(`/docker/${ID}/\n`), container('docker'));
  });
});
