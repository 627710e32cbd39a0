import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasLosses, StreamTable, streamKey } from '../../src/collector/streams.js';
import { agentIdentity, makeBatch } from '../helpers/memory-sink.js';

// Dedup, gaps and acks as pure bookkeeping.

const seqs = (evs: { seq: bigint }[]) => evs.map((e) => Number(e.seq));

describe('stream table', () => {
  it('keys streams by instance_id/boot_id', () => {
    const t = new StreamTable(['a']);
    const id = agentIdentity('n', 'inst', 'boot');
    assert.equal(streamKey(id), 'inst/boot');
    const s = t.open(id);
    assert.equal(t.open({ ...id, nodeName: 'renamed' }), s, 'same instance and boot: same stream');
    assert.equal(s.agent.nodeName, 'renamed', 'the latest hello wins');
    assert.notEqual(t.open({ ...id, bootId: 'boot2' }), s, 'a reboot starts a new seq space');
    assert.equal(t.size, 2);
  });

  it('forgets a stream only when nothing is lost by it: no session, all acked, idle an hour (or past maxStreams)', () => {
    const t = new StreamTable(['a'], { idleMs: 1000, maxStreams: 3 });
    const open = (inst: string, node = 'n1') => {
      const s = t.open(agentIdentity(node, inst, 'boot'));
      t.attach(s);
      s.admit(1n, makeBatch(1, 10).events);
      return s;
    };
    const acked = open('acked');
    acked.persistedBy('a', 10n);
    const unacked = open('unacked');
    unacked.persistedBy('a', 9n);
    const connected = open('connected', 'n2');
    connected.persistedBy('a', 10n);
    t.detach(acked, 0);
    t.detach(unacked, 0);
    assert.equal(t.sweep(999), 0, 'idle 999 ms of 1000');
    assert.equal(t.sweep(1000), 1, 'the acked, idle stream');
    assert.deepEqual(
      [...t.all()].map((s) => s.key),
      ['unacked/boot', 'connected/boot'],
      'seq 10 not persisted; a session open',
    );
    // Its counts stay in its node's totals: counters never go back.
    assert.deepEqual(t.totalsByNode().get('n1'), { accepted: 20, duplicates: 0, gaps: 0, gapEvents: 0n, sessions: 0 });
    assert.equal(t.totalsByNode().get('n2')!.sessions, 1);
    // The same agent again: a new baseline, as after a collector restart; it resends only what is unacked.
    const again = t.open(agentIdentity('n1', 'acked', 'boot'));
    assert.notEqual(again, acked);
    assert.equal(again.admit(11n, makeBatch(11, 5).events).baseline, true);
    // Past maxStreams (3), settled idle streams go at once, oldest first; unsettled or connected ones never.
    t.attach(again);
    again.persistedBy('a', 15n);
    t.detach(again, 5000);
    const late = open('late');
    late.persistedBy('a', 10n);
    t.detach(late, 5001);
    assert.equal(t.size, 4);
    assert.equal(t.sweep(5002), 1, 'one over the bound');
    assert.deepEqual(
      [...t.all()].map((s) => s.key),
      ['unacked/boot', 'connected/boot', 'late/boot'],
    );
    assert.equal(t.totalsByNode().get('n1')!.accepted, 35);
  });

  it('takes the first batch as the baseline, then drops duplicates and keeps new tails', () => {
    const s = new StreamTable(['a']).open(agentIdentity('n'));
    const b1 = s.admit(50n, makeBatch(50, 10).events);
    assert.equal(b1.baseline, true);
    assert.equal(b1.gap, undefined, 'no gap for 1..49: acked by a previous collector or reported by the agent');
    assert.deepEqual(seqs(b1.accepted), [50, 51, 52, 53, 54, 55, 56, 57, 58, 59]);
    assert.equal(s.next, 60n);

    const dup = s.admit(50n, makeBatch(50, 10).events);
    assert.deepEqual(dup.accepted, []);
    assert.equal(dup.duplicates, 10);

    const older = s.admit(1n, makeBatch(1, 5).events);
    assert.equal(older.duplicates, 5, 'anything below next is a duplicate');

    const overlap = s.admit(55n, makeBatch(55, 10).events);
    assert.equal(overlap.duplicates, 5);
    assert.deepEqual(seqs(overlap.accepted), [60, 61, 62, 63, 64]);
    assert.equal(s.next, 65n);
    assert.equal(s.accepted, 15);
    assert.equal(s.duplicates, 20);
  });

  it('reports a gap as the missing seq range', () => {
    const s = new StreamTable(['a']).open(agentIdentity('n'));
    s.admit(1n, makeBatch(1, 3).events);
    const g = s.admit(10n, makeBatch(10, 2).events);
    assert.deepEqual(g.gap, { from: 4n, to: 9n });
    assert.deepEqual(seqs(g.accepted), [10, 11]);
    assert.equal(s.gaps, 1);
    assert.equal(s.gapEvents, 6n);
    assert.equal(s.next, 12n);
  });

  it('acks the lowest watermark of the required sinks, and only forward', () => {
    const s = new StreamTable(['a', 'b']).open(agentIdentity('n'));
    const acks: bigint[] = [];
    s.onAck(() => acks.push(s.acked));
    s.admit(1n, makeBatch(1, 10).events);
    assert.equal(s.acked, 0n);
    s.persistedBy('a', 10n);
    assert.equal(s.acked, 0n, 'b has nothing yet');
    s.persistedBy('b', 4n);
    assert.equal(s.acked, 4n);
    s.persistedBy('b', 3n); // stale: ignored
    s.persistedBy('b', 10n);
    assert.equal(s.acked, 10n);
    assert.deepEqual(acks, [4n, 10n]);
  });

  it('after a baseline, acks start from it', () => {
    const s = new StreamTable(['a']).open(agentIdentity('n'));
    s.admit(100n, makeBatch(100, 5).events);
    assert.equal(s.acked, 99n);
    s.persistedBy('a', 104n);
    assert.equal(s.acked, 104n);
  });

  it('with no required sink, enqueued is acked', () => {
    const s = new StreamTable([]).open(agentIdentity('n'));
    s.admit(1n, makeBatch(1, 5).events);
    s.enqueuedWithoutRequiredSinks();
    assert.equal(s.acked, 5n);
  });

  it('knows a loss when it sees one', () => {
    const zero = { kernelRingFull: 0n, decodeErrors: 0n, bpfRecursionMisses: 0n, queueDrops: 0n, spoolDrops: 0n };
    assert.equal(hasLosses(undefined), false);
    assert.equal(hasLosses(zero), false);
    assert.equal(hasLosses({ ...zero, spoolDrops: 1n }), true);
  });
});
