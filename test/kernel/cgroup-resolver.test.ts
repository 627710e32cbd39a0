import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { readProcCgroupPath } from '../../src/enrich/cgroup/proc.js';
import { CgroupResolver, type CgroupRoot, discoverRoots } from '../../src/enrich/cgroup/resolver.js';
import { silentLogger } from '../../src/log/logger.js';
import { buildFixtures, connectTcp, killAll, startFixture } from '../helpers/fixtures.js';
import { byPid, startTracer } from '../helpers/tracer.js';

// Real cgroups shaped like kubelet's, in the real hierarchies, with real
// processes in them. Everything is named from random ids so runs never share
// (or delete) a directory they did not create.

const UID_A = randomUUID();
const UID_B = randomUUID();
const ID_A = randomBytes(32).toString('hex');
const ID_B = randomBytes(32).toString('hex');
const POD_A = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_A.replaceAll('-', '_')}.slice`;
const SYSTEMD_LEAF = `${POD_A}/cri-containerd-${ID_A}.scope`;
const CGROUPFS_LEAF = `/kubepods/besteffort/pod${UID_B}/${ID_B}`;
const SYSTEMD_IDENTITY = { kind: 'container', runtime: 'containerd', containerId: ID_A, podUid: UID_A, qos: 'Burstable' };
const CGROUPFS_IDENTITY = { kind: 'container', containerId: ID_B, podUid: UID_B, qos: 'BestEffort' };

let v2: CgroupRoot;
let v1: CgroupRoot | undefined; // absent on pure v2 hosts
/** Directories this run created, in creation order: removed in reverse. */
const created: string[] = [];
const children: ChildProcess[] = [];

const ino = (dir: string) => statSync(dir, { bigint: true }).ino;

function mkcgroup(root: CgroupRoot, path: string): string {
  let dir = root.path;
  for (const seg of path.split('/').filter(Boolean)) {
    dir += `/${seg}`;
    if (existsSync(dir)) continue;
    mkdirSync(dir);
    created.push(dir);
  }
  return dir;
}

function enter(root: CgroupRoot, path: string, pid: number): void {
  writeFileSync(`${root.path}${path}/cgroup.procs`, String(pid));
}

function sleeper(): ChildProcess {
  const p = spawn('sleep', ['30'], { stdio: 'ignore' });
  children.push(p);
  return p;
}

/** A cgroup is only removable once its last process was reaped, and the kernel may lag a moment behind. */
async function rmdirRetrying(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= 50) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

before(() => {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'cgroup kernel tests create cgroups and move processes into them: run as root (sudo npm test); refusing to skip',
    );
  }
  const roots = discoverRoots();
  const found = roots.find((r) => r.version === 2);
  if (!found) throw new Error(`no cgroup2 mount in /proc/self/mountinfo: ${JSON.stringify(roots)}`);
  v2 = found;
  v1 = roots.find((r) => r.version === 1);
  for (const root of [v2, v1]) {
    if (!root) continue;
    mkcgroup(root, SYSTEMD_LEAF);
    mkcgroup(root, CGROUPFS_LEAF);
  }
});

after(async () => {
  killAll();
  await Promise.all(
    children.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          p.once('exit', () => resolve());
          p.kill('SIGKILL');
        }),
    ),
  );
  const errors: unknown[] = [];
  for (const dir of created.reverse()) {
    try {
      await rmdirRetrying(dir);
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, `could not remove ${errors.length} test cgroups`);
});

describe('CgroupResolver on the real cgroupfs', () => {
  it('discovers the hierarchies of this host', () => {
    assert.ok(existsSync(`${v2.path}/cgroup.controllers`), `${v2.path} is a cgroup2 root`);
    if (v1) assert.ok(existsSync(`${v1.path}/memory.usage_in_bytes`), `${v1.path} is the v1 memory hierarchy`);
  });

  it('resolves kubelet-shaped leaves by their inode ids, in v2 and in v1 memory', () => {
    const r = new CgroupResolver({ log: silentLogger });
    for (const root of [v2, v1]) {
      if (!root) continue;
      for (const [path, identity] of [
        [SYSTEMD_LEAF, SYSTEMD_IDENTITY],
        [CGROUPFS_LEAF, CGROUPFS_IDENTITY],
      ] as const) {
        const id = ino(root.path + path);
        assert.deepEqual(r.resolve(id, root.version), { id, path, version: root.version, identity }, `${root.path}${path}`);
      }
      assert.deepEqual(r.resolve(ino(root.path + POD_A), root.version)?.identity, {
        kind: 'pod',
        podUid: UID_A,
        qos: 'Burstable',
      });
    }
    const s = r.stats();
    assert.equal(s.rescans, 1, 'one walk learned them all');
    assert.equal(s.misses, 0);
  });

  it('readProcCgroupPath sees the same paths as the processes inside', async () => {
    const a = sleeper();
    const b = sleeper();
    await Promise.all([a, b].map((p) => new Promise((r) => p.once('spawn', r))));
    for (const root of [v2, v1]) {
      if (!root) continue;
      enter(root, SYSTEMD_LEAF, a.pid!);
      enter(root, CGROUPFS_LEAF, b.pid!);
    }
    assert.deepEqual(readProcCgroupPath(a.pid!), { path: SYSTEMD_LEAF, version: 2 });
    assert.deepEqual(readProcCgroupPath(b.pid!), { path: CGROUPFS_LEAF, version: 2 });
    if (v1) {
      assert.match(readFileSync(`/proc/${a.pid}/cgroup`, 'utf8'), new RegExp(`:memory:${SYSTEMD_LEAF}\n`));
      // Hybrid hosts whose runtimes leave v2 at '/' (this VM): only the memory line tells.
      const c = sleeper();
      await new Promise((r) => c.once('spawn', r));
      writeFileSync(`${v2.path}/cgroup.procs`, String(c.pid));
      enter(v1, CGROUPFS_LEAF, c.pid!);
      assert.deepEqual(readProcCgroupPath(c.pid!), { path: CGROUPFS_LEAF, version: 1 });
    }
    a.kill('SIGKILL');
    await new Promise((r) => a.once('exit', r));
    assert.equal(readProcCgroupPath(a.pid!), undefined, 'gone');
  });

  it('the kernel reports the leaf inodes as cgroup.id and cgroup.v1Id, and they resolve', async () => {
    buildFixtures();
    const r = new CgroupResolver({ log: silentLogger });
    const t = startTracer();
    try {
      const fx = await startFixture('acceptor', ['--syscall', 'accept4', '--count', '1']);
      for (const root of [v2, v1]) if (root) enter(root, SYSTEMD_LEAF, fx.ready.pid);
      const conn = await connectTcp('127.0.0.1', fx.ready.port);
      await fx.next();
      const [ev] = await t.waitFor(byPid(fx.ready.pid));
      conn.close();
      assert.equal(ev!.cgroup?.id, ino(v2.path + SYSTEMD_LEAF));
      assert.deepEqual(r.resolve(ev!.cgroup!.id, 2)?.identity, SYSTEMD_IDENTITY);
      // Pure v2: v1Id equals id, and resolves in v2.
      assert.equal(ev!.cgroup?.v1Id, v1 ? ino(v1.path + SYSTEMD_LEAF) : ev!.cgroup?.id);
      assert.deepEqual(r.resolve(ev!.cgroup!.v1Id, 1)?.identity, SYSTEMD_IDENTITY);
    } finally {
      t.stop();
      killAll();
    }
  });

  it('a removed cgroup still resolves until forgetAfterMs has passed', async () => {
    let now = 0;
    const r = new CgroupResolver({ log: silentLogger, now: () => now, forgetAfterMs: 60_000 });
    const path = `${POD_A}/cri-containerd-${randomBytes(32).toString('hex')}.scope`;
    const dir = mkcgroup(v2, path);
    const id = ino(dir);
    assert.equal(r.resolve(id, 2)?.path, path);
    await rmdirRetrying(dir);
    now += 1000;
    r.rescan();
    assert.equal(r.resolve(id, 2)?.path, path, 'late events of a deleted container');
    now += 60_000;
    r.rescan();
    assert.equal(r.resolve(id, 2), undefined);
  });
});
