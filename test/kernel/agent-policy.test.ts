import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runAgent } from '../../src/cli/agent.js';
import { ConfigError } from '../../src/config/errors.js';
import { EventKind, PolicyOrigin, SummaryReason } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { httpGet, metricSample as sample, testAgentOptions } from '../helpers/agent-harness.js';
import { bpfObjectsOf, noneLoaded, stillLoaded } from '../helpers/bpf-objects.js';
import { FakeCollector } from '../helpers/fake-collector.js';
import { buildFixtures, connectTcp, type Fixture, killAll, startFixture } from '../helpers/fixtures.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { requireRoot } from '../helpers/tracer.js';
import { bounded, until } from '../helpers/wait.js';

// `doorwatch agent` with a policy configuration, in this process: real probes,
// spool and publisher, a fake collector (test/helpers/fake-collector.ts). The
// test's accepts are host processes, so the host policy governs them: a port
// it excludes never leaves the kernel, a rate limit turns a burst into events
// plus summaries with exact counts, and /metrics says so per policy.

requireRoot();

let pki: Pki;
let dir: string;
let collector: FakeCollector;
let stop: (why: string) => void;
let agentDone: Promise<void>;
let port = 0;
let quiet: Fixture;
let limited: Fixture;
const CGROUP = `/sys/fs/cgroup/unified/dw-agent-policy-${process.pid}`;

const metrics = async () => (await httpGet(port, '/metrics')).body;
const delivered = () => collector.spaces().flatMap((s) => collector.delivered(s));
// Accepts and summaries: the listener inventory reports every listener whatever the audit policy (docs/events.md).
const onPort = (p: number) => delivered().filter((e) => e.socket?.local?.port === p && !e.listenerInfo);

async function acceptN(f: Fixture, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const c = await connectTcp('127.0.0.1', f.ready.port);
    await f.next();
    c.close();
  }
}

before(async () => {
  buildFixtures();
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'dw-agent-policy-'));
  collector = await FakeCollector.start(pki);
  quiet = await startFixture('acceptor', ['--count', '6']);
  limited = await startFixture('acceptor', ['--count', '30']);
  // Its own (host) cgroup, so its rate-limit bucket is not shared with the
  // other host processes (this test's /metrics scrapes are host accepts too).
  mkdirSync(CGROUP);
  writeFileSync(join(CGROUP, 'cgroup.procs'), String(limited.ready.pid));
  const stopSignal = new Promise<string>((r) => {
    stop = r;
  });
  let listening: (p: number) => void;
  const up = new Promise<number>((r) => {
    listening = r;
  });
  agentDone = runAgent(
    testAgentOptions(
      collector,
      { client: 'agent-policy', spoolDir: join(dir, 'spool') },
      {
        nodeName: 'policy-node',
        policy: {
          resources: false,
          summaryInterval: '300ms',
          host: { mode: 'events', ports: { exclude: [quiet.ready.port] }, rateLimit: { eventsPerSecond: 1, burst: 5 } },
        },
      },
    ),
    { log: silentLogger, stopSignal, processMetrics: false, endpointsListening: (a) => listening(a.port) },
  );
  agentDone.catch(() => {});
  port = await bounded(Promise.race([up, agentDone.then(() => 0)]), 20_000, 'agent endpoints');
});

after(async () => {
  stop?.('test over');
  await bounded(agentDone, 15_000, 'the agent to stop').catch(() => {});
  killAll();
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(CGROUP);
      break;
    } catch {
      await sleep(50);
    }
  }
  await collector?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

describe('agent with audit policies (real probes, fake collector)', () => {
  it('keeps an excluded port in the kernel and counts it per policy', async () => {
    await until(async () => (await metrics()).includes('doorwatch_policy_kernel_filtering 1'), 'kernel filter on', 10_000);
    await acceptN(quiet, 6);
    const series = 'doorwatch_policy_kernel_total{policy="host",result="port"}';
    const m = await until(
      async () => {
        const t = await metrics();
        return (sample(t, series) ?? 0) >= 6 ? t : undefined;
      },
      'the 6 port-filtered accepts counted',
      5000,
    );
    assert.equal(sample(m, series), 6);
    await sleep(300);
    assert.equal(onPort(quiet.ready.port).length, 0, 'nothing of the excluded port reached the collector');
  });

  it('turns a burst above the rate limit into events plus summaries, every accept counted once', async () => {
    await acceptN(limited, 30);
    const total = () =>
      onPort(limited.ready.port).reduce(
        (a, e) => a + (e.kind === EventKind.EVENT_KIND_SUMMARY ? Number(e.summary!.count) : 1),
        0,
      );
    await until(() => total() === 30, 'all 30 accepts at the collector (events + summary counts)', 10_000);
    const got = onPort(limited.ready.port);
    const singles = got.filter((e) => e.kind === EventKind.EVENT_KIND_ACCEPT);
    const sums = got.filter((e) => e.kind === EventKind.EVENT_KIND_SUMMARY);
    assert.ok(singles.length >= 1 && singles.length <= 8, `the burst went out as events: ${singles.length}`);
    assert.ok(sums.length >= 1);
    for (const s of sums) assert.equal(s.summary?.reason, SummaryReason.SUMMARY_REASON_RATE_LIMIT);
    for (const e of got) assert.deepEqual({ ...e.policy }, { origin: PolicyOrigin.POLICY_ORIGIN_HOST, name: 'host', mode: 1 });
    // Summaries are records of their own: sequenced like events, with their own ids.
    assert.equal(new Set(got.map((e) => e.eventId)).size, got.length);
    const m = await metrics();
    assert.ok((sample(m, 'doorwatch_policy_userspace_total{policy="host",result="summarized"}') ?? 0) >= 30 - singles.length);
    assert.ok((sample(m, 'doorwatch_policy_summaries_total') ?? 0) >= sums.length);
  });

  it('on stop, detaches and leaves no Doorwatch program or map in the kernel', async () => {
    // This agent's own objects (what this process holds), not every dw_* of the system: other tests load theirs.
    const ours = bpfObjectsOf('self');
    assert.ok(ours.progs.length >= 4, 'programs attached while running');
    assert.ok(ours.maps.length >= 5, 'maps (events, inflight, counters, policies, ...) while running');
    assert.deepEqual(stillLoaded(ours), ours);
    stop('test: stop');
    await bounded(agentDone, 15_000, 'the agent to stop');
    // The kernel frees a released program or map after an RCU grace period: give it a moment.
    await until(() => noneLoaded(ours), 'this agent’s programs and maps to go', 3000, 50).catch(() => {});
    assert.deepEqual(stillLoaded(ours), { progs: [], maps: [] }, 'no program or map of this agent left (nothing pinned)');
    assert.deepEqual(bpfObjectsOf('self'), { progs: [], maps: [] }, 'no descriptor left open either');
  });

  it('refuses to start with an invalid policy configuration, before loading anything', async () => {
    await assert.rejects(
      runAgent(
        testAgentOptions(
          collector,
          { client: 'agent-policy-bad', spoolDir: join(dir, 'spool2') },
          {
            tls: { insecure: true },
            health: undefined,
            policy: { default: { mode: 'audit' }, rules: [{ name: 'r', ports: { include: ['9000-80'] }, mode: 'events' }] },
          },
        ),
        { log: silentLogger, stopSignal: new Promise(() => {}), processMetrics: false },
      ),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /policy\.default\.mode/);
        assert.match(e.message, /policy\.rules\[0\]\.ports\.include\[0\]: "9000-80": range start is above its end/);
        return true;
      },
    );
  });
});
