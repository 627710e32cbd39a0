import { statSync } from 'node:fs';
import type { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { connectTcp } from './fixtures.js';
import { type KubeApiServer, makePod } from './kube-api-server.js';
import type { FakePod, PodSim } from './pod-sim.js';

/**
 * Named simulated pods for the kernel tests: a kubelet-shaped cgroup with a
 * real server in its own network namespace (pod-sim.ts), its Pod object in the
 * API stand-in, and accepts made against it one connection at a time.
 */

export interface SimPod {
  pod: FakePod;
  /** The server's pid: events of this pod carry it. */
  pid: number;
  /** The container cgroup's v2 id (its directory's inode). */
  cgroupId: bigint;
}

export class SimPods {
  readonly byName: Record<string, SimPod> = {};

  constructor(
    readonly api: KubeApiServer,
    readonly sim: PodSim,
    readonly node: string,
  ) {}

  get(name: string): SimPod {
    const p = this.byName[name];
    if (!p) throw new Error(`no simulated pod ${name}`);
    return p;
  }

  /** A pod `name` (label app=name) in `namespace`, its server listening on :8080. */
  async add(namespace: string, name: string): Promise<SimPod> {
    const pod = this.sim.systemdContainerdPod();
    this.api.addPod(
      makePod({
        name,
        namespace,
        uid: pod.uid,
        nodeName: this.node,
        labels: { app: name },
        containers: [{ name: 'srv', image: 'srv:1', id: pod.cid, runtime: 'containerd' }],
        podIP: pod.netns.ip,
      }),
    );
    const server = await this.sim.startServer(pod.cgroupDir, pod.netns.name);
    const p = { pod, pid: server.pid!, cgroupId: statSync(pod.cgroupDir, { bigint: true }).ino };
    this.byName[name] = p;
    return p;
  }

  /** n sequential connections; resolves when the server has accepted (and closed) each. */
  async accepts(name: string, n: number): Promise<void> {
    const p = this.get(name);
    for (let i = 0; i < n; i++) {
      const c = await connectTcp(p.pod.netns.ip, 8080);
      await new Promise<void>((r) => {
        c.socket.once('close', () => r());
        c.socket.resume();
      });
    }
  }

  /** The events of pod `name` among `events`. */
  of(events: readonly AcceptEvent[], name: string): AcceptEvent[] {
    const pid = this.get(name).pid;
    return events.filter((e) => e.process?.pid === pid);
  }
}
