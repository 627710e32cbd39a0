import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningCollector } from '../../src/collector/collector.js';
import { type AcceptEvent, EventKind, ListenerOrigin } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { httpGet, metricSample, startInProcessAgent, testAgentOptions } from '../helpers/agent-harness.js';
import { type MemorySinks, startMemoryCollector } from '../helpers/memory-sink.js';
import { makePki } from '../helpers/pki.js';
import { requireRoot } from '../helpers/tracer.js';
import { bounded, until } from '../helpers/wait.js';

// The listener records on the agent's whole path: real probes and /proc scans -> enricher -> spool ->
// gRPC (mutual TLS) -> the real collector (its Publish decoder, src/collector/wire.ts, dedup and
// dispatch) -> a sink (an in-memory one: what a sink is handed). A listener open before the agent arrives
// as a snapshot record, one opened later as a listen record, its close as a closed record, each with its
// listenerInfo; the metrics count them.

requireRoot();
let collector: RunningCollector;
let mem: MemorySinks;
let stop: (why: string) => void;
let agentDone: Promise<void>;
let port = 0;
const dir = mkdtempSync(join(tmpdir(), 'dw-listeners-agent-'));
const procs: ChildProcess[] = [];

function listener(port: number): Promise<ChildProcess> {
  const p = spawn(
    'python3',
    [
      '-c',
      `import socket,time\ns=socket.socket();s.bind(('127.0.0.1',${port}));s.listen(11)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(600)`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  procs.push(p);
  return new Promise((resolve, reject) => {
    p.stdout!.once('data', () => resolve(p));
    p.once('exit', (c) => reject(new Error(`python3 listener exited ${c}`)));
  });
}

const delivered = (): AcceptEvent[] => mem.get('mem').events;
const at = (pid: number | undefined, kind: EventKind) => () =>
  delivered().find((e) => e.process?.pid === pid && e.kind === kind && e.listenerInfo !== undefined);

let before1: ChildProcess;

before(async () => {
  before1 = await listener(0);
  const pki = makePki();
  ({ collector, mem } = await startMemoryCollector(pki, [{ name: 'mem' }]));
  const agent = startInProcessAgent(
    testAgentOptions(
      { target: `127.0.0.1:${collector.port}`, pki },
      { client: 'agent-listeners', spoolDir: join(dir, 'spool') },
      { listenersPeriodMs: 60_000 },
    ),
    {
      log: silentLogger,
      processMetrics: false,
    },
  );
  stop = agent.stop;
  agentDone = agent.done;
  port = (await bounded(agent.listening, 15_000, 'agent endpoints')).port;
});

after(async () => {
  stop?.('test over');
  await agentDone?.catch(() => {});
  for (const p of procs) p.kill('SIGKILL');
  await collector?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('listener records through the agent, spool and gRPC to the collector', () => {
  it('a snapshot record, a listen record and a closed record arrive with their listenerInfo', async () => {
    const snap = await until(at(before1.pid, EventKind.EVENT_KIND_LISTENER), 'the snapshot record at the collector', 15_000);
    assert.equal(snap.listenerInfo?.origin, ListenerOrigin.LISTENER_ORIGIN_SNAPSHOT);
    assert.equal(snap.socket?.local?.ip, '127.0.0.1');
    assert.ok(snap.seq > 0n && snap.eventId.endsWith(`/${snap.seq}`), 'sequenced like every event');

    const later = await listener(0);
    const listen = await until(at(later.pid, EventKind.EVENT_KIND_LISTEN), 'the listen record at the collector', 10_000);
    assert.equal(listen.listenerInfo?.origin, ListenerOrigin.LISTENER_ORIGIN_KERNEL_LISTEN);
    assert.equal(listen.listenerInfo?.requestedBacklog, 11);
    assert.ok((listen.listenerInfo?.inode ?? 0n) > 0n);

    later.kill('SIGKILL');
    const closed = await until(at(later.pid, EventKind.EVENT_KIND_LISTENER_CLOSED), 'the closed record at the collector', 10_000);
    assert.equal(closed.listenerInfo?.inode, listen.listenerInfo?.inode);
    assert.equal(closed.socket?.local?.port, listen.socket?.local?.port);

    const m = (await httpGet(port, '/metrics')).body;
    assert.ok((metricSample(m, 'doorwatch_listeners') ?? 0) >= 1, 'the inventory gauge');
    assert.equal(metricSample(m, 'doorwatch_listener_scans_total{result="ok"}'), 1);
    assert.ok((metricSample(m, 'doorwatch_listeners_closed_total{by="kernel"}') ?? 0) >= 1);
  });
});
