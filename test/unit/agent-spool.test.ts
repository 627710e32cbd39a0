import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { Spool, type SpoolOptions } from '../../src/agent/spool.js';
import {
  decodeSegmentHeader,
  encodeGroup,
  encodeRecord,
  encodeSegmentHeader,
  GROUP_HEADER_BYTES,
  GROUP_RECORD_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  readGroup,
  readRecord,
  readUnit,
} from '../../src/agent/spool-format.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { makeEvents } from '../helpers/fake-collector.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'doorwatch-spool-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function open(dir: string, o: Partial<SpoolOptions> = {}): { spool: Spool; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const spool = Spool.open({
    dir,
    bootId: 'boot-a',
    log: pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) }),
    ...o,
  });
  cleanups.push(() => spool.close());
  return { spool, logs };
}

const seqs = (evs: Iterable<{ seq: bigint }>): number[] => [...evs].map((e) => Number(e.seq));
const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const segments = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.dws'));

describe('spool format', () => {
  it('round-trips a segment header and rejects a damaged one', () => {
    const h = { instanceId: 'abc', bootId: 'b-1', epoch: 3, firstSeq: 42n };
    const buf = encodeSegmentHeader(h);
    const r = decodeSegmentHeader(buf);
    assert.ok(r.ok);
    assert.deepEqual(r.header, h);
    assert.equal(r.bytes, buf.length);
    assert.equal(r.version, 2);
    const v1 = decodeSegmentHeader(encodeSegmentHeader(h, 1));
    assert.ok(v1.ok && v1.version === 1 && v1.header.firstSeq === 42n, "an older agent's segment header");
    const bad = Buffer.from(buf);
    bad[bad.length - 2]! ^= 0xff;
    assert.deepEqual(decodeSegmentHeader(bad), { ok: false, reason: 'header CRC mismatch' });
    assert.equal(decodeSegmentHeader(buf.subarray(0, 10)).ok, false);
    assert.equal(decodeSegmentHeader(Buffer.from('not a segment at all....')).ok, false);
  });

  it('groups records under one CRC; detects short, corrupt and inconsistent groups', () => {
    const recs = [
      { seq: 7n, payload: Buffer.from('hello protobuf') },
      { seq: 8n, payload: Buffer.alloc(0) },
      { seq: 10n, payload: Buffer.from('x'.repeat(300)) },
    ];
    const g = encodeGroup(recs);
    assert.equal(g.length, GROUP_HEADER_BYTES + 3 * GROUP_RECORD_HEADER_BYTES + 14 + 300);
    const two = Buffer.concat([g, encodeGroup([{ seq: 11n, payload: Buffer.from('z') }])]);
    const r = readGroup(two, 0);
    assert.ok(r.kind === 'unit');
    assert.deepEqual(r.seqs, [7n, 8n, 10n]);
    assert.deepEqual(
      r.payloads,
      recs.map((x) => x.payload),
    );
    assert.equal(r.next, g.length);
    const r2 = readUnit(two, r.next, 2);
    assert.ok(r2.kind === 'unit' && r2.seqs[0] === 11n && r2.next === two.length);
    assert.deepEqual(readGroup(two, two.length), { kind: 'end' });
    // Cut anywhere: short, and what it held is known from its header once that is there.
    assert.deepEqual(readGroup(g.subarray(0, g.length - 1), 0), { kind: 'short', need: g.length, lost: 3 });
    assert.deepEqual(readGroup(g.subarray(0, 9), 0), { kind: 'short', need: GROUP_HEADER_BYTES, lost: 1 });
    // Any flipped bit, in the body or in the count: the CRC.
    for (const at of [GROUP_HEADER_BYTES + 2, GROUP_HEADER_BYTES + 5, g.length - 1, 8, 12]) {
      const bad = Buffer.from(g);
      bad[at]! ^= 1;
      const t = readGroup(bad, 0);
      assert.equal(t.kind, 'torn', `bit flipped at ${at}`);
      if (t.kind === 'torn') assert.equal(t.reason, 'group CRC mismatch');
    }
    const huge = Buffer.from(g);
    huge.writeUInt32LE(0xfffffff0, 0);
    assert.equal(readGroup(huge, 0).kind, 'torn');
    // A consistent checksum over inconsistent contents (a bug, not a crash) is still refused.
    const dup = encodeGroup([recs[0]!, recs[0]!]);
    assert.match((readGroup(dup, 0) as { reason: string }).reason, /seq 7 not above 7/);
  });

  it("still reads version 1 records (an older agent's segments): length, CRC and seq; detects short and corrupt ones", () => {
    const payload = Buffer.from('hello protobuf');
    const a = encodeRecord(7n, payload);
    const b = encodeRecord(8n, Buffer.alloc(0));
    const buf = Buffer.concat([a, b]);
    const r1 = readRecord(buf, 0);
    assert.equal(r1.kind, 'record');
    if (r1.kind !== 'record') return;
    assert.equal(r1.seq, 7n);
    assert.deepEqual(r1.payload, payload);
    assert.equal(r1.next, RECORD_HEADER_BYTES + payload.length);
    const r2 = readRecord(buf, r1.next);
    assert.ok(r2.kind === 'record' && r2.seq === 8n && r2.payload.length === 0);
    assert.deepEqual(readRecord(buf, buf.length), { kind: 'end' });
    assert.equal(readRecord(a.subarray(0, a.length - 1), 0).kind, 'short');
    assert.equal(readRecord(a.subarray(0, 5), 0).kind, 'short');
    const flipped = Buffer.from(a);
    flipped[RECORD_HEADER_BYTES + 2]! ^= 1;
    assert.deepEqual(readRecord(flipped, 0), { kind: 'torn', reason: 'record CRC mismatch' });
    const seqFlip = Buffer.from(a);
    seqFlip[9]! ^= 1;
    assert.equal(readRecord(seqFlip, 0).kind, 'torn');
  });
});

describe('Spool', () => {
  it('creates an identity once and keeps it; continues the seq after a restart', () => {
    const dir = tempDir();
    const { spool } = open(dir, { segmentBytes: 4096, maxBytes: '1MiB' });
    const id = spool.identity;
    assert.equal(id.bootId, 'boot-a');
    assert.match(id.instanceId, /^[0-9a-f]{16}$/);
    assert.equal(spool.nextSeq(), 1n);
    const r = spool.append(makeEvents(id, 1n, 100));
    assert.equal(r.accepted.length, 100);
    assert.equal(r.refused, 0);
    assert.ok(segments(dir).length > 1, 'small segments roll over');
    assert.equal(spool.nextSeq(), 101n);
    spool.close();

    const { spool: again } = open(dir, { segmentBytes: 4096, maxBytes: '1MiB' });
    assert.deepEqual(again.identity, id);
    assert.equal(again.nextSeq(), 101n);
    const pending = [...again.pending()];
    assert.deepEqual(seqs(pending), range(1, 100));
    assert.equal(pending[41]!.eventId, `boot-a/${id.instanceId}/42`);
    assert.equal(pending[41]!.socket?.peer?.ip, '10.0.0.2');
  });

  it("writes an event appended without an id with its space's, <boot id>/<instance id>/<seq>", () => {
    const dir = tempDir();
    const { spool } = open(dir);
    const id = spool.identity;
    const events = makeEvents(id, 1n, 3).map((e) => ({ ...e, eventId: '' }));
    events[1]!.eventId = 'kept/as/given';
    const { buf, starts, ends } = spool.append(events);
    const sent = starts.map((s, i) => AcceptEvent.decode(buf.subarray(s, ends[i])).eventId);
    const want = [`boot-a/${id.instanceId}/1`, 'kept/as/given', `boot-a/${id.instanceId}/3`];
    assert.deepEqual(sent, want, 'as sent');
    spool.close();
    const { spool: again } = open(dir);
    assert.deepEqual(
      [...again.pending()].map((e) => e.eventId),
      want,
      'as read back',
    );
  });

  it('interval policy: syncs in the background across rollovers and deletions, closing every file once', async () => {
    const dir = tempDir();
    // This spool's files held open by the process.
    const fds = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    const { spool, logs } = open(dir, { segmentBytes: 4096, maxBytes: '1MiB', fsync: 'interval', fsyncIntervalMs: 5 });
    let next = 1n;
    for (let round = 0; round < 20; round++) {
      // Each round rolls over a few segments (their syncs start on libuv's pool) while ticks sync the active one.
      spool.append(makeEvents(spool.identity, next, 25));
      next += 25n;
      if (round % 5 === 4) spool.ack(spool.identity, next - 30n); // deletes segments, some maybe still syncing
      await new Promise((r) => setTimeout(r, 3));
    }
    spool.close();
    // Deferred closes run when their syncs end: then no file of the spool is left open.
    for (let i = 0; i < 200 && fds() > 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(fds(), 0, 'every segment file closed');
    // A file closed under a running sync would fail it (EBADF), or worse, sync whatever reused the number.
    assert.deepEqual(
      logs.filter((l) => l.level >= 40).map((l) => l.msg),
      [],
    );
    const { spool: again } = open(dir, { segmentBytes: 4096, maxBytes: '1MiB' });
    assert.deepEqual(seqs([...again.pending()]), range(Number(next - 29n), Number(next - 1n)));
    again.close();
  });

  it('refuses seqs that do not increase', () => {
    const { spool } = open(tempDir());
    spool.append(makeEvents(spool.identity, 1n, 3));
    assert.throws(() => spool.append(makeEvents(spool.identity, 3n, 1)), /seq 3 is not above the last seq 3/);
  });

  it('ack deletes fully acknowledged segments and persists the watermark', () => {
    const dir = tempDir();
    const { spool } = open(dir, { segmentBytes: 4096 });
    spool.append(makeEvents(spool.identity, 1n, 200));
    const before = segments(dir).length;
    const bytesBefore = spool.bytes();
    spool.ack(spool.identity, 120n);
    assert.ok(segments(dir).length < before, 'acked segments deleted');
    assert.ok(spool.bytes() < bytesBefore);
    assert.deepEqual(seqs(spool.pending()), range(121, 200));
    assert.equal(spool.floorSeq(), 121n);
    spool.ack(spool.identity, 100n); // regression: ignored
    assert.equal(spool.ackedSeq(), 120n);
    spool.close();

    const { spool: again } = open(dir, { segmentBytes: 4096 });
    assert.equal(again.ackedSeq(), 120n);
    assert.deepEqual(seqs(again.pending()), range(121, 200));
    again.ack(again.identity, 200n);
    assert.equal(segments(dir).length, 0, 'everything acked: no segment left');
    assert.equal(again.bytes(), 0);
    again.close();
    // With no segment left the seq still continues, from the ack watermark.
    const { spool: third } = open(dir);
    assert.equal(third.nextSeq(), 201n);
  });

  it('the tick writes a lazy watermark in the background, never over a newer one written at once', async (t) => {
    // The spool's tick on a mock clock: it runs exactly when the test says, and what it starts on libuv's
    // pool cannot finish before the test next yields.
    t.mock.timers.enable({ apis: ['setInterval'] });
    const dir = tempDir();
    const state = () => JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).acks as Record<string, string>;
    const { spool, logs } = open(dir, { segmentBytes: 4096, fsyncIntervalMs: 1000 });
    const key = `${spool.identity.instanceId}/${spool.identity.bootId}`;
    const settle = async () => {
      for (let i = 0; i < 50; i++) await new Promise((r) => setTimeout(r, 2));
    };
    let next = 1n;
    let lazyRounds = 0;
    for (let i = 0; i < 10; i++) {
      spool.append(makeEvents(spool.identity, next, 60));
      next += 60n;
      spool.ack(spool.identity, next - 1n); // finished segments go (state written at once); the active one stays
      spool.append(makeEvents(spool.identity, next, 2));
      next += 2n;
      // Only the active segment holds it: lazy, left to the tick (unless the two events filled a segment,
      // whose deletion writes it at once).
      spool.ack(spool.identity, next - 2n);
      if (state()[key] === String(next - 3n)) lazyRounds++;
      t.mock.timers.tick(1000); // the tick starts writing it in the background
      // Meanwhile an ack that deletes finished segments writes its (newer) watermark at once.
      spool.append(makeEvents(spool.identity, next, 60));
      next += 60n;
      spool.ack(spool.identity, next - 1n);
      assert.equal(state()[key], String(next - 1n), `round ${i}: written at once`);
      await settle();
      assert.equal(state()[key], String(next - 1n), `round ${i}: not overwritten by the older background write`);
    }
    assert.ok(lazyRounds >= 5, `${lazyRounds} of 10 rounds had a background write to race`);
    // A lazy watermark alone reaches the disk through the tick.
    spool.append(makeEvents(spool.identity, next, 1));
    spool.ack(spool.identity, next);
    assert.notEqual(state()[key], String(next));
    t.mock.timers.tick(1000);
    await settle();
    assert.equal(state()[key], String(next));
    assert.deepEqual(
      logs.filter((l) => l.level >= 40).map((l) => l.msg),
      [],
    );
  });

  it('acks keep the segment being written (one file for many batches); a full one rotates and the acked one goes', () => {
    const dir = tempDir();
    const { spool } = open(dir, { segmentBytes: 64 * 1024 });
    const id = spool.identity;
    let seq = 1n;
    spool.append(makeEvents(id, seq, 10));
    const [file] = segments(dir);
    for (let i = 0; i < 20; i++, seq += 10n) {
      if (i) spool.append(makeEvents(id, seq, 10));
      spool.ack(id, seq + 9n);
      assert.deepEqual(segments(dir), [file], `batch ${i + 1}: still the one segment file`);
    }
    assert.equal(spool.ackedSeq(), 200n);
    assert.deepEqual([...spool.pending()], []);
    // Fill it past 64 KiB: it rotates, and once acknowledged the full one is deleted.
    for (let i = 0; i < 40; i++, seq += 10n) {
      spool.append(makeEvents(id, seq, 10));
      spool.ack(id, seq + 9n);
    }
    assert.equal(segments(dir).length, 1);
    assert.notEqual(segments(dir)[0], file, 'the first segment rotated out and was deleted once acked');
    spool.close();
    const { spool: again } = open(dir, { segmentBytes: 64 * 1024 });
    assert.equal(again.ackedSeq(), seq - 1n, 'the watermark survives a restart');
    assert.deepEqual([...again.pending()], []);
    assert.equal(again.nextSeq(), seq);
  });

  it('read returns a run of consecutive seqs, bounded by maxEvents and beforeSeq', () => {
    const { spool } = open(tempDir(), { segmentBytes: 4096, overflow: 'drop-newest' });
    const id = spool.identity;
    spool.append([...makeEvents(id, 1n, 10), ...makeEvents(id, 15n, 10)]);
    assert.deepEqual(seqs(spool.read(id, 1n, 100)), range(1, 10), 'stops at the gap');
    assert.deepEqual(seqs(spool.read(id, 11n, 100)), range(15, 24));
    assert.deepEqual(seqs(spool.read(id, 3n, 4)), range(3, 6));
    assert.deepEqual(seqs(spool.read(id, 7n, 100, 9n)), [7, 8]);
    assert.deepEqual(spool.read(id, 25n, 100), []);
    assert.deepEqual(seqs(spool.pending(id, 5n)), [...range(5, 10), ...range(15, 24)]);
  });

  it('one append larger than its encode buffer: every frame intact on disk and as returned (the buffer grows mid-record)', () => {
    // The spool encodes a drain into one reused 256 KiB buffer that doubles when a record does not fit. A record's
    // header must be sealed in the buffer its payload landed in: sealing the old one wrote garbage frames (seq 0,
    // CRC mismatch) on the first large drain after start.
    const dir = tempDir();
    const first = open(dir, { segmentBytes: 64 << 20 });
    const id = first.spool.identity;
    const n = 6000;
    const events = makeEvents(id, 1n, n);
    const { buf, starts, ends } = first.spool.append(events);
    assert.equal(starts.length, n);
    for (let i = 0; i < n; i++) {
      assert.equal(buf.readBigUInt64LE(starts[i]! - 8), events[i]!.seq, `record ${i + 1}'s header as returned by append`);
      assert.deepEqual(AcceptEvent.decode(buf.subarray(starts[i]!, ends[i]!)), events[i], `event ${i + 1} as returned`);
    }
    first.spool.close();
    const again = open(dir, { segmentBytes: 64 << 20 });
    assert.deepEqual(again.spool.read(id, 1n, n + 10), events, 'every record read back from disk');
    assert.equal(again.logs.filter((l) => l.level >= 50).length, 0, 'no corrupt record reported');
  });

  it("recovers the valid prefix of a segment torn mid-write, counts the torn append's events and says so", () => {
    const dir = tempDir();
    const { spool } = open(dir, { segmentBytes: '1MiB' });
    spool.append(makeEvents(spool.identity, 1n, 30));
    spool.append(makeEvents(spool.identity, 31n, 20));
    spool.close();
    const [seg] = segments(dir);
    const path = join(dir, seg!);
    truncateSync(path, statSync(path).size - 7); // the crash cut the last write short

    const { spool: again, logs } = open(dir, { segmentBytes: '1MiB' });
    assert.deepEqual(seqs(again.pending()), range(1, 30));
    assert.equal(again.nextSeq(), 31n, "the torn append's events were never sent: their seqs are reused");
    assert.equal(again.stats().dropsTotal, 20n, 'every event of the torn write counted');
    assert.equal(again.unconfirmedDrops(), 20n);
    const line = logs.find((l) => /torn record/.test(l.msg));
    assert.ok(line, 'a log line names the torn record');
    assert.equal(line.level, 40);
    assert.equal(line.reason, 'record cut short');
    assert.equal(line.lost, 20);
    // The file itself was truncated: a second open finds nothing torn.
    again.close();
    const { spool: third } = open(dir, { segmentBytes: '1MiB' });
    assert.equal(third.stats().dropsTotal, 0n);
    assert.equal(third.unconfirmedDrops(), 20n, 'unreported drops survive restarts');
    third.confirmDrops(20n);
    assert.equal(third.unconfirmedDrops(), 0n);
  });

  it('detects a group whose bytes changed (CRC) at the tail', () => {
    const dir = tempDir();
    const { spool } = open(dir);
    spool.append(makeEvents(spool.identity, 1n, 4));
    spool.append(makeEvents(spool.identity, 5n, 3));
    spool.close();
    const path = join(dir, segments(dir)[0]!);
    const buf = readFileSync(path);
    buf[buf.length - 3]! ^= 0x55;
    writeFileSync(path, buf);
    const { spool: again, logs } = open(dir);
    assert.deepEqual(seqs(again.pending()), range(1, 4));
    assert.equal(again.stats().dropsTotal, 3n);
    assert.ok(logs.some((l) => l.reason === 'group CRC mismatch'));
  });

  it("recovers an older agent's version 1 segment after an upgrade, and writes version 2 after it", () => {
    const dir = tempDir();
    // As an agent before version 2 left it: identity, then one segment of per-record CRCs, the last one torn.
    const first = open(dir);
    const id = first.spool.identity;
    first.spool.close();
    for (const f of segments(dir)) rmSync(join(dir, f));
    const old = makeEvents(id, 1n, 6);
    const seg = Buffer.concat([
      encodeSegmentHeader({ ...id, epoch: 1, firstSeq: 1n }, 1),
      ...old.map((e) => encodeRecord(e.seq, AcceptEvent.encode(e).finish())),
    ]);
    writeFileSync(join(dir, `seg-000001-${'1'.padStart(20, '0')}.dws`), seg.subarray(0, seg.length - 5));

    const { spool, logs } = open(dir);
    assert.deepEqual(spool.read(id, 1n, 100), old.slice(0, 5), 'the version 1 records, read back');
    assert.equal(spool.stats().dropsTotal, 1n, 'its torn record counted');
    assert.ok(logs.some((l) => l.reason === 'record cut short'));
    assert.equal(spool.nextSeq(), 6n);
    spool.append(makeEvents(id, 6n, 4));
    assert.deepEqual(seqs(spool.pending()), range(1, 9), 'old and new segments read as one run');
    spool.close();
    const files = segments(dir).map((f) => readFileSync(join(dir, f)).subarray(0, 8).toString('latin1'));
    assert.deepEqual(files.sort(), ['DWSPOOL1', 'DWSPOOL2']);
    const { spool: third } = open(dir);
    assert.deepEqual(seqs(third.pending()), range(1, 9));
    assert.equal(third.stats().dropsTotal, 0n);
  });

  it('drop-oldest: deletes the oldest unacknowledged segment and counts every event in it', () => {
    const { spool, logs } = open(tempDir(), { maxBytes: 16 * 1024, segmentBytes: 4096, overflow: 'drop-oldest' });
    const id = spool.identity;
    let accepted = 0;
    for (let s = 1n; s <= 400n; s += 20n) accepted += spool.append(makeEvents(id, s, 20)).accepted.length;
    assert.equal(accepted, 400, 'drop-oldest always takes the new events');
    assert.ok(spool.bytes() <= 16 * 1024);
    const left = seqs(spool.pending());
    assert.equal(left.at(-1), 400, 'the newest are kept');
    const dropped = 400 - left.length;
    assert.ok(dropped > 0);
    assert.equal(spool.stats().dropsTotal, BigInt(dropped), 'every dropped event counted');
    assert.equal(spool.unconfirmedDrops(), BigInt(dropped));
    assert.deepEqual(left, range(left[0]!, 400), 'what is left is contiguous');
    assert.equal(spool.floorSeq(), BigInt(left[0]!));
    assert.ok(logs.some((l) => l.level === 40 && /oldest unacknowledged segment deleted/.test(l.msg)));
  });

  it('drop-oldest inside one append: the groups of deleted segments vanish, what is returned is what stays', () => {
    // One append many times larger than the whole spool: segments (and their open groups) are rolled and
    // deleted while the append runs; the events it returns must be exactly those left on disk, intact.
    const dir = tempDir();
    const { spool } = open(dir, { maxBytes: 8 * 1024, segmentBytes: 4096, overflow: 'drop-oldest' });
    const id = spool.identity;
    const events = makeEvents(id, 1n, 120);
    const { accepted, buf, starts, ends } = spool.append(events);
    const left = seqs(spool.pending());
    assert.ok(left.length > 0 && left.length < 120, `kept ${left.length}`);
    assert.deepEqual(seqs(accepted), left, 'returned = kept');
    assert.deepEqual(left, range(121 - left.length, 120), 'the newest, contiguous');
    for (const [i, e] of accepted.entries()) {
      assert.deepEqual(AcceptEvent.decode(buf.subarray(starts[i]!, ends[i]!)), e, `event ${e.seq}`);
    }
    assert.equal(spool.stats().dropsTotal, BigInt(120 - left.length), 'every other event counted');
    assert.ok(spool.bytes() <= 8 * 1024);
    spool.close();
    const { spool: again, logs } = open(dir, { maxBytes: 8 * 1024, segmentBytes: 4096 });
    assert.deepEqual(seqs(again.pending()), left, 'and the same after a restart');
    assert.equal(logs.filter((l) => l.level >= 40).length, 0, 'nothing torn or corrupt on disk');
  });

  it('drop-oldest does not count events that were already acknowledged', () => {
    const { spool } = open(tempDir(), { maxBytes: 16 * 1024, segmentBytes: 4096, overflow: 'drop-oldest' });
    const id = spool.identity;
    spool.append(makeEvents(id, 1n, 20));
    spool.ack(id, 20n);
    for (let s = 21n; s <= 120n; s += 20n) spool.append(makeEvents(id, s, 20));
    assert.equal(spool.stats().dropsTotal, 0n);
  });

  it('drop-newest: refuses new events when full and counts them', () => {
    const { spool } = open(tempDir(), { maxBytes: 16 * 1024, segmentBytes: 4096, overflow: 'drop-newest' });
    const id = spool.identity;
    let refused = 0;
    for (let s = 1n; s <= 400n; s += 20n) refused += spool.append(makeEvents(id, s, 20)).refused;
    const left = seqs(spool.pending());
    assert.equal(left[0], 1, 'the oldest are kept');
    assert.equal(refused, 400 - left.length);
    assert.ok(refused > 0);
    assert.equal(spool.stats().dropsTotal, BigInt(refused));
    assert.equal(spool.nextSeq(), 401n, 'refused seqs are not reused in this process');
    // Once acknowledged, space frees and appends are accepted again.
    spool.ack(id, BigInt(left.at(-1)!));
    assert.equal(spool.append(makeEvents(id, 401n, 5)).accepted.length, 5);
  });

  it('a new boot id starts a new seq space at 1 and keeps the old one until it is acknowledged', () => {
    const dir = tempDir();
    const { spool } = open(dir, { bootId: 'boot-a' });
    const a = spool.identity;
    spool.append(makeEvents(a, 1n, 30));
    spool.ack(a, 10n);
    spool.close();

    const { spool: after } = open(dir, { bootId: 'boot-b' });
    const b = after.identity;
    assert.equal(b.instanceId, a.instanceId, 'instance id survives reboots');
    assert.equal(b.bootId, 'boot-b');
    assert.equal(after.nextSeq(), 1n);
    after.append(makeEvents(b, 1n, 5));
    const spaces = after.spaces();
    assert.deepEqual(
      spaces.map((s) => [s.identity.bootId, s.current, s.unacked, s.ackedSeq]),
      [
        ['boot-a', false, true, 10n],
        ['boot-b', true, true, 0n],
      ],
    );
    assert.ok(spaces[0]!.epoch < spaces[1]!.epoch);
    assert.deepEqual(seqs(after.pending(a)), range(11, 30));
    assert.deepEqual(seqs(after.pending()), range(1, 5));
    after.ack(a, 30n);
    assert.deepEqual(
      after.spaces().map((s) => s.identity.bootId),
      ['boot-b'],
    );
    after.close();
    // And back on the same boot: still boot-b's space, seq continues.
    const { spool: third } = open(dir, { bootId: 'boot-b' });
    assert.equal(third.nextSeq(), 6n);
    assert.equal(third.spaces().length, 1);
  });

  it('fsync always: every append is synced (and works the same)', () => {
    const dir = tempDir();
    const { spool } = open(dir, { fsync: 'always', segmentBytes: 4096 });
    spool.append(makeEvents(spool.identity, 1n, 40));
    spool.ack(spool.identity, 5n);
    spool.close();
    const { spool: again } = open(dir, { fsync: 'always' });
    assert.deepEqual(seqs(again.pending()), range(6, 40));
  });

  it('validates its options', () => {
    assert.throws(() => open(tempDir(), { maxBytes: 'lots' }), /not a size/);
    assert.throws(() => open(tempDir(), { maxBytes: 4096, segmentBytes: 8192 }), /must not exceed maxBytes/);
    assert.throws(() => open(tempDir(), { overflow: 'drop-all' as never }), /drop-oldest or drop-newest/);
  });
});
