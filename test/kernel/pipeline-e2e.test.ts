import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDoorwatch, writeJsonlCollectorYaml } from '../helpers/doorwatch-process.js';
import { buildFixtures, connectTcp, type Fixture, killAll, startFixture } from '../helpers/fixtures.js';
import { makePki, type Pki, tlsFlags } from '../helpers/pki.js';
import { tempDir } from '../helpers/temp-dir.js';
import { requireRoot } from '../helpers/tracer.js';
import { freePort, until as waitUntil } from '../helpers/wait.js';

// The whole path as users run it: `doorwatch agent` (real probes, on-disk
// spool) -> gRPC over mutual TLS -> `doorwatch collector` -> JSON-lines sink.
// The collector is SIGKILLed mid-stream and restarted; the agent is SIGKILLed
// with unacknowledged events in its spool and restarted. Every accept arrives
// at the sink exactly once.

requireRoot();

let pki: Pki;
let dir: string;
let out: string;
let port: number;
let collectorYaml: string;
let server: Fixture;
const procs = new Set<ChildProcess>();

const start = (args: string[], readyText: RegExp) => startDoorwatch(args, readyText, { procs, timeoutMs: 20_000 });

const startCollector = () => start(['collector', '-c', collectorYaml, '--log-level', 'info'], /collector listening/);

function startAgent(): Promise<ChildProcess> {
  const c = pki.client('agent-e2e');
  return start(
    [
      'agent',
      '--collector',
      `127.0.0.1:${port}`,
      ...tlsFlags(pki.caFile, c),
      '--server-name',
      'localhost',
      '--spool-dir',
      join(dir, 'spool'),
      '--node-name',
      'e2e-node',
      '--no-kube',
      '--batch-max-delay',
      '20ms',
      '--health-address',
      '127.0.0.1:0', // an ephemeral port: the default 0.0.0.0:9090 may be taken on a CI host
      '--log-level',
      'info',
    ],
    /agent started/,
  );
}

async function kill(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await exited;
}

/** Events of our server in the sink file. */
function delivered(): { eventId: string; seq: string; socket: { peer: { port: number } } }[] {
  if (!existsSync(out)) return [];
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((e) => e.process?.pid === server.ready.pid && !e.listenerInfo); // accepts, not the listener inventory
}

/** Until the sink holds n events of our server. */
const until = (n: number, what: string, ms = 20_000) => waitUntil(() => delivered().length >= n, what, ms);

const clientPorts: number[] = [];
async function connections(n: number, gapMs = 0): Promise<void> {
  for (let i = 0; i < n; i++) {
    const c = await connectTcp('127.0.0.1', server.ready.port);
    clientPorts.push(c.localPort);
    await server.next();
    c.close();
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
  }
}

before(async () => {
  buildFixtures();
  pki = makePki();
  dir = tempDir('doorwatch-e2e-');
  out = join(dir, 'events.jsonl');
  port = await freePort();
  collectorYaml = join(dir, 'collector.yaml');
  writeJsonlCollectorYaml(collectorYaml, { port, pki, eventsPath: out });
  server = await startFixture('acceptor', ['--syscall', 'accept4', '--count', '100000']);
});

after(async () => {
  for (const p of [...procs]) await kill(p);
  killAll();
});

describe('agent -> collector -> sink, through crashes (real processes, mTLS)', () => {
  it('delivers every accept exactly once across a collector crash and an agent crash', async () => {
    let collector = await startCollector();
    let agent = await startAgent();

    await connections(50);
    await until(50, 'first 50 events at the sink');

    // The collector dies mid-stream: connections keep coming meanwhile.
    const midStream = connections(100, 5);
    await new Promise((r) => setTimeout(r, 200));
    await kill(collector);
    await midStream;
    collector = await startCollector();
    await until(150, 'events of the collector crash');

    // The agent dies while the collector is down: its events are only in the spool.
    await kill(collector);
    await connections(50);
    await new Promise((r) => setTimeout(r, 300)); // captured and spooled
    await kill(agent);
    collector = await startCollector();
    agent = await startAgent();
    await until(200, 'events replayed from the spool');
    await new Promise((r) => setTimeout(r, 500)); // anything extra would show up now

    const evs = delivered();
    assert.equal(evs.length, 200, 'exactly once: no loss, no duplicate');
    assert.equal(new Set(evs.map((e) => e.eventId)).size, 200, 'unique event ids');
    assert.deepEqual(evs.map((e) => e.socket.peer.port).sort(), [...clientPorts].sort(), 'exactly the connections made');
    // Numbered in capture order, in one seq space across both crashes (the spool keeps it): in seq order, the
    // events are the connections in the order they were made.
    const bySeq = [...evs].sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
    assert.deepEqual(
      bySeq.map((e) => e.socket.peer.port),
      clientPorts,
      'seqs follow the order of the connections',
    );
    const streams = new Set(evs.map((e) => e.eventId.split('/').slice(0, 2).join('/')));
    assert.equal(streams.size, 1, 'the restarted agent continued its seq space');
    await kill(agent);
    await kill(collector);
  });
});
