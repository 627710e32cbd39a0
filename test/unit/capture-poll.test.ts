import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import type { AcceptProbes } from '../../src/bpf/accept-probes.js';
import type { RecordHandler } from '../../src/bpf/ringbuf.js';
import { Capture } from '../../src/capture/capture.js';
import { RECORD_SIZE } from '../../src/capture/record.js';
import { silentLogger } from '../../src/log/logger.js';
import { buildRecord, RECORD_BASE } from '../helpers/record-builder.js';

/** A ring that yields `perDrain` records at each drain and counts the drains. */
function ring(perDrain: () => number): { probes: AcceptProbes; drains: () => number } {
  const view = buildRecord({ pid: 7, comm: 'x' });
  let drains = 0;
  const probes = {
    ring: {
      drain(onRecord: RecordHandler) {
        drains++;
        const n = perDrain();
        for (let i = 0; i < n; i++) onRecord(view, RECORD_BASE, RECORD_SIZE);
        return { records: n, more: false };
      },
    },
    kernelCounters: () => ({}),
    programStats: () => [],
  } as unknown as AcceptProbes;
  return { probes, drains: () => drains };
}

// The drain period follows the load: pollMs while events keep coming, idlePollMs while it is quiet.
describe('Capture drain period', () => {
  const run = (perDrain: () => number, ms: number, o: { pollMs?: number; idlePollMs?: number; steadyPollMs?: number } = {}) => {
    mock.timers.enable({ apis: ['setTimeout', 'setImmediate', 'Date'] });
    try {
      const r = ring(perDrain);
      let events = 0;
      const c = new Capture({ probes: r.probes, nodeName: 'n', log: silentLogger, ...o, onEvents: (b) => (events += b.length) });
      c.start();
      for (let t = 0; t < ms; t++) mock.timers.tick(1);
      c.stop();
      return { drains: r.drains() - 1 /* stop()'s own */, events };
    } finally {
      mock.timers.reset();
    }
  };

  it('quiet: every 50 ms (20 drains a second, not 100)', () => {
    assert.equal(run(() => 0, 1000).drains, 20);
  });

  it('busy (>= 32 records a drain): every pollMs', () => {
    const { drains, events } = run(() => 40, 1000);
    assert.equal(drains, 100);
    assert.equal(events, 100 * 40 + 40);
  });

  it('a burst after a quiet spell is drained at pollMs from the first busy drain on', () => {
    let t = 0;
    // 10 quiet drains (500 ms), then 40 records per drain.
    const { drains } = run(() => (t++ < 10 ? 0 : 40), 1000);
    assert.equal(drains, 10 + 50);
  });

  it('trickling (32 or more a drain, under 256 per steadyPollMs): every steadyPollMs, as the agent batches', () => {
    const { drains, events } = run(() => 40, 1000, { steadyPollMs: 25 });
    assert.equal(drains, 40);
    assert.equal(events, 40 * 40 + 40);
  });

  it('pouring (a steadyPollMs drain would hold 256 or more): every pollMs, so no drain holds more than a few hundred', () => {
    assert.equal(run(() => 300, 1000, { steadyPollMs: 25 }).drains, 100);
    // 150 per 10 ms drain is 375 per 25 ms: it stays at pollMs rather than alternating between the two.
    assert.equal(run(() => 150, 1000, { steadyPollMs: 25 }).drains, 100);
    // 100 per 10 ms is 250 per 25 ms: steady. The ring here yields a count per drain, not per ms, so the rate
    // read at 25 ms (4/ms) keeps it steady.
    assert.equal(run(() => 100, 1000, { steadyPollMs: 25 }).drains, 40);
  });

  it('steadyPollMs stays between pollMs and idlePollMs', () => {
    assert.equal(run(() => 40, 1000, { pollMs: 10, steadyPollMs: 5 }).drains, 100);
    assert.equal(run(() => 40, 1000, { pollMs: 10, steadyPollMs: 200 }).drains, 20);
  });

  it('idlePollMs is never shorter than pollMs', () => {
    assert.equal(run(() => 0, 1000, { pollMs: 100, idlePollMs: 20 }).drains, 10);
    assert.equal(run(() => 0, 1000, { pollMs: 5, idlePollMs: 25 }).drains, 40);
  });
});
