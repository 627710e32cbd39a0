import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, rmdirSync } from 'node:fs';
import { discoverRoots } from '../../src/enrich/cgroup/resolver.js';
import { randomContainerId } from './kube-api-server.js';

/**
 * Pods without a kubelet: real cgroup v2 directories shaped like kubelet's
 * (systemd and cgroupfs drivers), a network namespace with a veth to the
 * host, and a real server (python3) moved into both before it starts.
 * Everything made is undone by cleanup(), bottom-up.
 */

/** The v2 hierarchy, wherever this host mounts it (/sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup on pure v2). */
function v2Root(): string {
  const v2 = discoverRoots().find((r) => r.version === 2);
  if (!v2) throw new Error('no cgroup2 mount in /proc/self/mountinfo: simulated pods need one');
  return v2.path;
}

export interface FakePod {
  uid: string;
  cid: string;
  cgroupDir: string;
  netns: { name: string; ip: string };
}

const SERVER = `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 8080)); s.listen(16)
print('ready', flush=True)
while True:
    c, a = s.accept(); c.close()
`;

/**
 * The second octet of this run's pod addresses (10.X.i.2): one no interface on the host uses yet. A run
 * killed before its cleanup leaves its veths behind; a new run that took the same 10.X/16 would have its
 * connections routed to the dead run's namespace (ECONNREFUSED), so the choice looks at what is there.
 */
function freeOctet(seed: number): number {
  const used = new Set<number>();
  const out = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
  for (const m of out.matchAll(/inet 10\.(\d+)\./g)) used.add(Number(m[1]));
  for (let k = 0; k < 100; k++) {
    const octet = 100 + ((seed + k) % 100);
    if (!used.has(octet)) return octet;
  }
  throw new Error('no free 10.X/16 for simulated pods (10.100-10.199 all in use): stale dw-* network namespaces?');
}

/** Something to Atomics.wait() on: a synchronous sleep without spawning `sleep`. */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export class PodSim {
  readonly run = randomBytes(3).toString('hex');
  #cleanups: (() => void)[] = [];
  #netIndex = 0;
  #v2: string | undefined;

  /** mkdir every level of a kubelet-shaped cgroup path. */
  makeCgroup(rel: string): string {
    this.#v2 ??= v2Root();
    let dir = this.#v2;
    for (const p of rel.split('/').filter(Boolean)) {
      dir = `${dir}/${p}`;
      try {
        mkdirSync(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw e;
      }
      const d = dir;
      this.#cleanups.push(() => {
        // A cgroup is removable once its processes are reaped: retry briefly (cleanup is synchronous).
        for (let i = 0; i < 50; i++) {
          try {
            rmdirSync(d);
            return;
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
            Atomics.wait(PAUSE, 0, 0, 50);
          }
        }
      });
    }
    return dir;
  }

  /** A pod-like network namespace with a veth to the host; returns the pod's IP. */
  #octet: number | undefined;

  makeNetns(): { name: string; ip: string } {
    const i = this.#netIndex++;
    const name = `dw-${this.run}-${i}`;
    const host = `dwh${this.run}${i}`;
    const peer = `dwp${this.run}${i}`;
    this.#octet ??= freeOctet(Number.parseInt(this.run, 16));
    const octet = this.#octet;
    sh('ip', ['netns', 'add', name]);
    this.#cleanups.push(() => {
      try {
        sh('ip', ['link', 'del', host]);
      } catch {}
      sh('ip', ['netns', 'del', name]);
    });
    sh('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
    sh('ip', ['link', 'set', peer, 'netns', name]);
    sh('ip', ['addr', 'add', `10.${octet}.${i}.1/30`, 'dev', host]);
    sh('ip', ['link', 'set', host, 'up']);
    sh('ip', ['netns', 'exec', name, 'ip', 'addr', 'add', `10.${octet}.${i}.2/30`, 'dev', peer]);
    sh('ip', ['netns', 'exec', name, 'ip', 'link', 'set', peer, 'up']);
    sh('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
    return { name, ip: `10.${octet}.${i}.2` };
  }

  systemdContainerdPod(): FakePod {
    const uid = randomUUID();
    const cid = randomContainerId();
    const cgroupDir = this.makeCgroup(
      `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid.replaceAll('-', '_')}.slice/cri-containerd-${cid}.scope`,
    );
    return { uid, cid, cgroupDir, netns: this.makeNetns() };
  }

  cgroupfsCrioPod(): FakePod {
    const uid = randomUUID();
    const cid = randomContainerId();
    return { uid, cid, cgroupDir: this.makeCgroup(`kubepods/besteffort/pod${uid}/crio-${cid}`), netns: this.makeNetns() };
  }

  /** python3 accepting on :8080 of the pod's netns, inside its cgroup. */
  async startServer(cgroupDir: string, netns: string): Promise<ChildProcess> {
    const p = spawn('sh', ['-c', `echo $$ > ${cgroupDir}/cgroup.procs && exec ip netns exec ${netns} python3 -c "$0"`, SERVER], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#cleanups.push(() => p.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      let err = '';
      p.stderr!.on('data', (d) => {
        err += d;
      });
      p.stdout!.once('data', () => resolve());
      p.once('exit', (c) => reject(new Error(`pod server exited ${c}: ${err}`)));
    });
    return p;
  }

  cleanup(): void {
    for (const c of this.#cleanups.splice(0).reverse()) {
      try {
        c();
      } catch {}
    }
  }
}
