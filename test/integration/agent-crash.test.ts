import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, it } from 'node:test';
import { Publisher } from '../../src/agent/publisher.js';
import { Spool } from '../../src/agent/spool.js';
import { FakeCollector, makeEvents, spaceKey } from '../helpers/fake-collector.js';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { type CertFiles, makePki, type Pki } from '../helpers/pki.js';
import { until } from '../helpers/wait.js';

// An agent killed with SIGKILL while the collector held back every ack: the
// next agent on the same spool directory must resend all of it, under the
// same identity, and continue the seq where the dead one stopped.

let pki: Pki;
let cert: CertFiles;
before(() => {
  pki = makePki();
  cert = pki.client('agent-crash');
});
after(() => rmSync(pki.dir, { recursive: true, force: true }));

interface ChildLine {
  ready?: boolean;
  instanceId?: string;
  bootId?: string;
  appended?: string;
  inFlight?: number;
}

it('after a SIGKILL, a new Publisher on the same spool resends every unacked event exactly once (after dedup)', async () => {
  const c = await FakeCollector.start(pki, { ack: 'never' });
  const dir = mkdtempSync(join(tmpdir(), 'doorwatch-crash-'));
  const spools: Spool[] = [];
  try {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/helpers/agent-child.ts', dir, c.target, pki.caFile, cert.cert, cert.key],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    const lines: ChildLine[] = [];
    createInterface({ input: child.stdout }).on('line', (l) => lines.push(JSON.parse(l) as ChildLine));
    let appended = 0n;
    try {
      await until(
        () => {
          const last = lines.at(-1);
          if (last?.appended) appended = BigInt(last.appended);
          return appended >= 3000n && c.batches.length >= 10;
        },
        'the child to spool 3000 events and send some',
        15_000,
      );
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`${(err as Error).message}; child stderr: ${stderr}`);
    }
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    const hello = lines.find((l) => l.ready)!;
    const firstLife = c.received;
    assert.ok(firstLife > 0, 'the dead agent had sent batches (never acknowledged)');

    const spool = Spool.open({ dir, bootId: 'boot-crash' });
    spools.push(spool);
    const id = spool.identity;
    assert.deepEqual(id, { instanceId: hello.instanceId, bootId: 'boot-crash' }, 'same identity');
    const next = spool.nextSeq();
    assert.ok(next > appended, `seq continues after the last append (${next} > ${appended})`);
    const pending = [...spool.pending()].map((e) => e.seq);
    assert.equal(pending.length, Number(next - 1n), 'every unacked event is still in the spool');
    assert.equal(pending.at(-1), next - 1n);

    c.ack = 'immediate';
    const pub = new Publisher({
      target: c.target,
      tls: { ca: pki.caPem, cert: cert.certPem, key: cert.keyPem, serverName: 'localhost' },
      identity: { nodeName: 'node-a', version: 'test' },
      spool,
      batch: { maxEvents: 500, maxDelayMs: 5 },
      backoff: { initialMs: 20, maxMs: 200 },
    });
    pub.start();
    pub.publish(makeEvents(id, next, 100));
    const last = next + 99n;
    const key = spaceKey(id);
    await until(() => c.watermark(key) === last, 'everything, old and new', 15_000);
    assert.deepEqual((await pub.close({ flushTimeoutMs: 5_000 })).flushed, true);

    const delivered = c.delivered(key).map((e) => e.seq);
    assert.equal(delivered.length, Number(last));
    assert.ok(
      delivered.every((s, i) => s === BigInt(i + 1)),
      'exactly once, in order',
    );
    assert.equal(c.duplicates, firstLife, 'the only duplicates are what the dead agent had sent unacked');
    assert.deepEqual(
      c.hellos.map((h) => h.instanceId),
      [id.instanceId, id.instanceId],
    );
    await until(() => spool.bytes() === 0, 'acked: the spool is empty (the last segment goes at the next tick)', 3_000);
  } finally {
    for (const s of spools) s.close();
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
