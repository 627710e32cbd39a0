import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connectTcp } from '../helpers/fixtures.js';
import { requireRoot } from '../helpers/tracer.js';
import { until, bounded as withTimeout } from '../helpers/wait.js';

// Issue 14 item 6: `doorwatch trace --policy FILE` with a summary-mode policy
// and no display filter used to end with "27 shown of 36 captured (9 filtered
// out by display filters)" — the 9 were folded into summary records. The
// compiled CLI, the real probes: every part of the line is checked against
// what was printed on stdout, and the parts must add up to what was captured.

const BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
requireRoot();

const dir = mkdtempSync(join(tmpdir(), 'dw-trace-summary-'));
const running = new Set<ChildProcess>();
after(() => {
  for (const p of running) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// Every process here is a host process (--no-kube): the host policy governs them all.
const POLICY = join(dir, 'summary.yaml');
writeFileSync(POLICY, 'policy:\n  summaryInterval: 1h\n  host: {mode: summary}\n  default: {mode: events}\n');

const LINE =
  /^doorwatch trace: (\d+) shown of (\d+) captured \((\d+) accepts? as events, (\d+) summary records? folding (\d+) accepts?(?:, (\d+) listener records?)?(?:, (\d+) filtered by policy in userspace)?; (\d+) filtered out by display filters\)$/m;

async function traceAround(args: string[], work: () => Promise<void>) {
  const proc = spawn(process.execPath, [BIN, 'trace', '--no-kube', '--log-level', 'info', '--output', 'json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = once(proc, 'exit');
  await until(() => err.includes('tracing accepts'), 'trace to attach', 15_000);
  await work();
  proc.kill('SIGINT');
  const [code] = await withTimeout(exit, 15_000, 'trace to exit');
  running.delete(proc);
  assert.equal(code, 0, err);
  const records = out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const m = LINE.exec(err);
  assert.ok(m, `the exit summary line:\n${err}`);
  const [shown, captured, events, summaries, folded, listeners, policyFiltered, hidden] = m.slice(1).map((x) => Number(x ?? 0));
  return {
    records,
    err,
    shown: shown!,
    captured: captured!,
    events: events!,
    summaries: summaries!,
    folded: folded!,
    listeners: listeners!,
    policyFiltered: policyFiltered!,
    hidden: hidden!,
  };
}

async function server(): Promise<{ port: number; close(): void }> {
  const s = createServer((c) => c.end());
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return { port: (s.address() as AddressInfo).port, close: () => s.close() };
}

async function connections(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) (await connectTcp('127.0.0.1', port)).close();
}

const N = 12;

describe('trace exit summary with a summary-mode policy (issue 14)', () => {
  it('no display filter: folded accepts are counted as folded, none as filtered, and the parts add up', async () => {
    const s = await server();
    const r = await traceAround(['--policy', POLICY], () => connections(s.port, N));
    s.close();
    const sums = r.records.filter((e) => e.kind === 'EVENT_KIND_SUMMARY');
    const ours = sums.filter((e) => e.summary.localPort === s.port && e.process.pid === process.pid);
    assert.equal(
      ours.reduce((a, e) => a + Number(e.summary.count), 0),
      N,
      'our accepts, folded into summary records',
    );
    assert.equal(r.hidden, 0, `nothing is hidden without a display filter: ${r.err}`);
    assert.equal(r.shown, r.records.length, 'shown = records printed');
    assert.equal(r.summaries, sums.length);
    assert.equal(
      r.folded,
      sums.reduce((a, e) => a + Number(e.summary.count), 0),
      'folding = the counts of the summary records printed',
    );
    const listenerRecords = r.records.filter((e) => /LISTEN/.test(e.kind)).length;
    assert.equal(r.listeners, listenerRecords, 'listener records, listed apart');
    assert.equal(r.events, r.records.length - sums.length - listenerRecords);
    assert.equal(r.shown, r.events + r.summaries + r.listeners);
    assert.equal(
      r.captured,
      r.events + r.folded + r.listeners + r.policyFiltered + r.hidden,
      'every captured accept in one part',
    );
    assert.ok(r.folded > r.summaries, 'several accepts per summary record (the old line called the difference filtered)');
  });

  it('with a display filter: a hidden summary record hides the accepts it folds', async () => {
    const shownSrv = await server();
    const hiddenSrv = await server();
    const r = await traceAround(['--policy', POLICY, '--port', String(shownSrv.port)], async () => {
      await connections(shownSrv.port, 3);
      await connections(hiddenSrv.port, N);
    });
    shownSrv.close();
    hiddenSrv.close();
    assert.ok(
      r.records.every((e) => e.summary?.localPort === shownSrv.port || e.socket?.local?.port === shownSrv.port),
      'only the filtered port is printed',
    );
    assert.equal(r.shown, r.records.length);
    assert.equal(r.folded, 3, 'the shown summary folds our 3 accepts');
    assert.ok(r.hidden >= N, `the ${N} accepts on the other port are hidden (inside a hidden summary): ${r.err}`);
    assert.equal(
      r.captured,
      r.events + r.folded + r.listeners + r.policyFiltered + r.hidden,
      'every captured accept in one part',
    );
  });
});
