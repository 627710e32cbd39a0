import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readProcCgroupPath } from '../../src/enrich/cgroup/proc.js';
import { CgroupResolver, type CgroupResolverOptions, discoverRoots } from '../../src/enrich/cgroup/resolver.js';
import { silentLogger } from '../../src/log/logger.js';

// A fake cgroupfs: plain directories in a temp dir. Their real inode numbers
// play the cgroup ids, exactly as kernfs inode numbers do.
const ID = 'c0ffee00'.repeat(8);
const UID = '9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d';
const LEAF = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-${ID}.scope`;

let tmp: string;
let v2: string;
let v1: string;
const ino = (dir: string) => statSync(dir, { bigint: true }).ino;

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dw-cgroup-'));
  v2 = join(tmp, 'unified');
  v1 = join(tmp, 'memory');
  mkdirSync(v2 + LEAF, { recursive: true });
  mkdirSync(join(v2, 'system.slice', 'sshd.service'), { recursive: true });
  writeFileSync(join(v2, 'cgroup.procs'), ''); // files are not cgroups
  mkdirSync(join(v1, 'kubepods', 'besteffort', `pod${UID}`, ID), { recursive: true });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function fakeClock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

function resolver(opts: CgroupResolverOptions = {}) {
  return new CgroupResolver({
    roots: [
      { path: v2, version: 2 },
      { path: v1, version: 1 },
    ],
    log: silentLogger,
    ...opts,
  });
}

describe('CgroupResolver', () => {
  it('resolves a v2 leaf to its path and identity', () => {
    const r = resolver();
    const got = r.resolve(ino(v2 + LEAF), 2);
    assert.deepEqual(got, {
      id: ino(v2 + LEAF),
      path: LEAF,
      version: 2,
      identity: { kind: 'container', runtime: 'containerd', containerId: ID, podUid: UID, qos: 'Burstable' },
    });
  });

  it('resolves v1 ids in the v1 hierarchy, and the roots as /', () => {
    const r = resolver();
    const leaf = join(v1, 'kubepods', 'besteffort', `pod${UID}`, ID);
    const got = r.resolve(ino(leaf), 1);
    assert.equal(got?.path, `/kubepods/besteffort/pod${UID}/${ID}`);
    assert.equal(got?.version, 1);
    assert.deepEqual(got?.identity, { kind: 'container', containerId: ID, podUid: UID, qos: 'BestEffort' });
    assert.equal(r.resolve(ino(v2), 2)?.path, '/');
    assert.deepEqual(r.resolve(ino(v1), 1)?.identity, { kind: 'host' });
  });

  it('learns directories only', () => {
    const r = resolver();
    r.rescan();
    assert.equal(r.resolve(ino(join(v2, 'cgroup.procs')), 2), undefined);
    // unified: / + 4 kubepods levels + system.slice + sshd.service; memory: / + 4
    assert.equal(r.stats().entries, 7 + 5);
  });

  it('caches: a second lookup does not walk', () => {
    const r = resolver();
    const id = ino(join(v2, 'system.slice', 'sshd.service'));
    assert.equal(r.resolve(id, 2)?.path, '/system.slice/sshd.service');
    assert.equal(r.stats().rescans, 1);
    assert.equal(r.resolve(id, 2)?.path, '/system.slice/sshd.service');
    assert.deepEqual(r.stats(), { entries: 12, rescans: 1, rescansSkipped: 0, misses: 0, hits: 2 });
  });

  it('rate-limits the rescans a flood of unknown ids causes', () => {
    const clock = fakeClock();
    const r = resolver({ now: clock.now, minRescanIntervalMs: 1000 });
    for (let i = 0; i < 500; i++) assert.equal(r.resolve(10n ** 15n + BigInt(i), 2), undefined);
    assert.deepEqual(r.stats(), { entries: 12, rescans: 1, rescansSkipped: 499, misses: 500, hits: 0 });
    clock.advance(999);
    r.resolve(1n, 2);
    assert.equal(r.stats().rescans, 1);
    clock.advance(1);
    r.resolve(1n, 2);
    assert.equal(r.stats().rescans, 2);
  });

  it('finds a cgroup created after the last walk once the interval has passed', () => {
    const clock = fakeClock();
    const r = resolver({ now: clock.now });
    r.rescan();
    const dir = join(v2, 'system.slice', 'late.service');
    mkdirSync(dir);
    try {
      assert.equal(r.resolve(ino(dir), 2), undefined, 'too soon after the last walk');
      clock.advance(1000);
      assert.equal(r.resolve(ino(dir), 2)?.path, '/system.slice/late.service');
    } finally {
      rmdirSync(dir);
    }
  });

  it('keeps resolving a removed cgroup until forgetAfterMs, then forgets it', () => {
    const clock = fakeClock();
    const r = resolver({ now: clock.now, forgetAfterMs: 60_000 });
    const dir = join(v2, 'system.slice', 'gone.service');
    mkdirSync(dir);
    const id = ino(dir);
    r.rescan();
    rmdirSync(dir);
    r.rescan(); // stamps it gone at t0
    assert.equal(r.resolve(id, 2)?.path, '/system.slice/gone.service', 'late events still resolve');
    clock.advance(59_999);
    r.rescan();
    assert.equal(r.resolve(id, 2)?.path, '/system.slice/gone.service');
    clock.advance(1);
    r.rescan();
    const before = r.stats();
    assert.equal(r.resolve(id, 2), undefined);
    assert.equal(r.stats().misses, before.misses + 1);
  });

  it('a cgroup that comes back is no longer stamped gone; a renamed one gets its new path', () => {
    const clock = fakeClock();
    const r = resolver({ now: clock.now, forgetAfterMs: 10 });
    const dir = join(v2, 'system.slice', 'flap.service');
    const away = join(tmp, 'flap.service'); // outside every root; rename keeps the inode
    mkdirSync(dir);
    const id = ino(dir);
    try {
      r.rescan();
      renameSync(dir, away);
      r.rescan();
      renameSync(away, dir);
      clock.advance(5);
      r.rescan(); // seen again: the stamp is cleared
      clock.advance(100);
      r.rescan();
      assert.equal(r.resolve(id, 2)?.path, '/system.slice/flap.service', 'not forgotten');
      renameSync(dir, join(v2, 'flap.service'));
      r.rescan();
      assert.equal(r.resolve(id, 2)?.path, '/flap.service');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(away, { recursive: true, force: true });
      rmSync(join(v2, 'flap.service'), { recursive: true, force: true });
    }
  });

  it('does not descend below maxDepth', () => {
    const r = resolver({ maxDepth: 2 });
    r.rescan();
    assert.equal(
      r.resolve(ino(join(v2, 'kubepods.slice', 'kubepods-burstable.slice')), 2)?.path,
      '/kubepods.slice/kubepods-burstable.slice',
    );
    assert.equal(r.resolve(ino(v2 + LEAF), 2), undefined);
  });

  it('stops at maxEntries per root, and then does not mistake unseen for gone', () => {
    const clock = fakeClock();
    const full = resolver({ now: clock.now, forgetAfterMs: 0 });
    full.rescan();
    const r = resolver({ now: clock.now, maxEntries: 3, forgetAfterMs: 0 });
    r.rescan();
    assert.equal(r.stats().entries, 6, '3 per root');
    clock.advance(5000);
    r.rescan();
    assert.equal(r.stats().entries, 6, 'a truncated walk forgets nothing');
  });

  it('does not follow symlinks (no loops)', () => {
    const link = join(v2, 'system.slice', 'loop');
    symlinkSync(v2, link);
    try {
      const r = resolver();
      r.rescan();
      assert.equal(r.stats().entries, 12);
    } finally {
      rmSync(link);
    }
  });

  it('survives a missing root', () => {
    const r = new CgroupResolver({ roots: [{ path: join(tmp, 'nope'), version: 2 }], log: silentLogger });
    assert.equal(r.resolve(1n, 2), undefined);
    assert.deepEqual(r.stats(), { entries: 0, rescans: 1, rescansSkipped: 0, misses: 1, hits: 0 });
  });

  it('keeps hierarchies apart: the same id in v1 and v2 are different cgroups', () => {
    // One directory mounted as both hierarchies: same inode, two entries.
    const r = new CgroupResolver({
      roots: [
        { path: v1, version: 1 },
        { path: v1, version: 2 },
      ],
      log: silentLogger,
    });
    const id = ino(v1);
    assert.equal(r.resolve(id, 1)?.version, 1);
    assert.equal(r.resolve(id, 2)?.version, 2);
    assert.equal(r.resolve(id)?.version, 2, 'without a version, v2 first');
  });

  it('looks v1 ids up in v2 on a host without a v1 memory hierarchy', () => {
    const r = new CgroupResolver({ roots: [{ path: v2, version: 2 }], log: silentLogger });
    assert.equal(r.resolve(ino(v2 + LEAF), 1)?.path, LEAF);
  });
});

// This machine (a Firecracker VM): hybrid, v1 controllers each on its own mount, cgroup2 at unified.
const HYBRID = `22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

// Ubuntu 22.04 / any systemd >= 247 default: pure v2 at /sys/fs/cgroup.
const PURE_V2 = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
35 25 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
36 25 0:31 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:10 - pstore pstore rw
`;

// CentOS 7 / Docker's classic layout: v1 only, controllers co-mounted.
const V1_ONLY = `24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,seclabel,mode=755
25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,seclabel,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,seclabel,cpu,cpuacct
31 24 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,seclabel,memory
`;

describe('discoverRoots', () => {
  it('hybrid (this machine): cgroup2 at unified, v1 memory', () => {
    assert.deepEqual(discoverRoots(HYBRID), [
      { path: '/sys/fs/cgroup/unified', version: 2 },
      { path: '/sys/fs/cgroup/memory', version: 1 },
    ]);
  });

  it('pure v2', () => {
    assert.deepEqual(discoverRoots(PURE_V2), [{ path: '/sys/fs/cgroup', version: 2 }]);
  });

  it('v1 only, controllers co-mounted', () => {
    assert.deepEqual(discoverRoots(V1_ONLY), [{ path: '/sys/fs/cgroup/memory', version: 1 }]);
  });

  it('memory co-mounted with other controllers, an escaped mount point', () => {
    const mi = '40 31 0:40 / /host/sys/fs/cgroup/memory\\040x rw - cgroup cgroup rw,cpu,memory,pids\n';
    assert.deepEqual(discoverRoots(mi), [{ path: '/host/sys/fs/cgroup/memory x', version: 1 }]);
  });

  it('prefers a mount of the whole hierarchy over a bind-mounted subtree', () => {
    const mi = [
      '50 40 0:30 /kubepods.slice/pod.slice /sys/fs/cgroup ro - cgroup2 cgroup2 rw',
      '51 40 0:30 / /host/sys/fs/cgroup ro - cgroup2 cgroup2 rw',
    ].join('\n');
    assert.deepEqual(discoverRoots(mi), [{ path: '/host/sys/fs/cgroup', version: 2 }]);
  });

  it('nothing mounted', () => {
    assert.deepEqual(discoverRoots('22 27 0:21 / /proc rw,relatime - proc proc rw\n'), []);
  });

  it('reads /proc/self/mountinfo by default', () => {
    const roots = discoverRoots();
    assert.ok(
      roots.some((r) => r.version === 2),
      `a cgroup2 mount is expected on any supported kernel: ${JSON.stringify(roots)}`,
    );
  });
});

describe('readProcCgroupPath', () => {
  let proc: string;
  const write = (pid: number, text: string) => {
    mkdirSync(join(proc, String(pid)), { recursive: true });
    writeFileSync(join(proc, String(pid), 'cgroup'), text);
  };
  before(() => {
    proc = mkdtempSync(join(tmpdir(), 'dw-proc-'));
  });
  after(() => rmSync(proc, { recursive: true, force: true }));

  it('pure v2', () => {
    write(10, `0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-${ID}.scope\n`);
    assert.deepEqual(readProcCgroupPath(10, proc), {
      path: `/kubepods.slice/kubepods-pod1.slice/cri-containerd-${ID}.scope`,
      version: 2,
    });
  });

  it('hybrid with v2 at /: the v1 memory line (this machine)', () => {
    write(11, '9:name=systemd:/\n8:pids:/\n4:memory:/process_api/1b03\n3:cpuset:/\n0::/\n');
    assert.deepEqual(readProcCgroupPath(11, proc), { path: '/process_api/1b03', version: 1 });
  });

  it('hybrid with a populated v2 line: v2 wins', () => {
    write(12, `4:memory:/docker/${ID}\n0::/docker/${ID}\n`);
    assert.deepEqual(readProcCgroupPath(12, proc), { path: `/docker/${ID}`, version: 2 });
  });

  it('co-mounted v1 controllers, no v2 line', () => {
    write(13, `11:cpu,cpuacct:/docker/${ID}\n5:memory,hugetlb:/docker/${ID}\n1:name=systemd:/docker/${ID}\n`);
    assert.deepEqual(readProcCgroupPath(13, proc), { path: `/docker/${ID}`, version: 1 });
  });

  it('only a root v2 line', () => {
    write(14, '0::/\n');
    assert.deepEqual(readProcCgroupPath(14, proc), { path: '/', version: 2 });
  });

  it("strips v2's (deleted) marker and keeps colons in paths", () => {
    write(15, '0::/odd:name/x (deleted)\n');
    assert.deepEqual(readProcCgroupPath(15, proc), { path: '/odd:name/x', version: 2 });
  });

  it('a process that is gone, or a nonsense pid', () => {
    assert.equal(readProcCgroupPath(999_999, proc), undefined);
    assert.equal(readProcCgroupPath(0, proc), undefined);
    assert.equal(readProcCgroupPath(-1, proc), undefined);
  });

  it('reads the real /proc for this process', () => {
    const got = readProcCgroupPath(process.pid);
    assert.ok(got?.path.startsWith('/'));
  });
});
