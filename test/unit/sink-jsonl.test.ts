import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRecord } from '../../src/formats/format.js';
import { JsonWriter } from '../../src/formats/native-json.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import {
  encodeLines,
  idIs,
  idOfLine,
  jsonlLine,
  jsonlSink,
  parseEventId,
  planRotation,
  StreamMarks,
} from '../../src/sinks/jsonl.js';
import type { SinkRecord } from '../../src/sinks/sink.js';
import { configProblems } from '../helpers/config-problems.js';
import { sampleEvent, sampleHostEvent, sampleLoss, sampleSummary, sampleUnixEvent } from '../helpers/sample-events.js';

describe('jsonlLine', () => {
  it('is the formatted record as one line, even with newlines and unicode inside', () => {
    const rec: SinkRecord = {
      kind: 'event',
      event: AcceptEvent.fromPartial({ eventId: 'a\nb', nodeName: 'nöde 🚪', seq: 1n, timeUnixNano: 1n }),
    };
    for (const format of ['native', 'ocsf', 'ecs'] as const) {
      const line = jsonlLine(rec, format).toString('utf8');
      assert.ok(line.endsWith('\n'));
      assert.equal(line.indexOf('\n'), line.length - 1, 'exactly one newline, at the end');
      assert.deepEqual(JSON.parse(line), JSON.parse(JSON.stringify(formatRecord(rec, format))));
    }
  });

  it('a summary record is a line like any event, whose event id recovery finds in every format', () => {
    const rec: SinkRecord = { kind: 'event', event: sampleSummary() };
    for (const format of ['native', 'ocsf', 'ecs'] as const) {
      const id = idOfLine(jsonlLine(rec, format).toString('utf8'), format);
      assert.equal(id, 'boot-1/inst-1/42', format);
      assert.deepEqual(parseEventId(id!), { stream: 'boot-1/inst-1', seq: 42n });
    }
  });
});

describe("idIs (the sink dedup's shortcut for parseEventId)", () => {
  it('is true exactly when parseEventId would give that stream and seq', () => {
    const ids = [
      'boot-1/inst-1/42',
      'boot-1/inst-1/042',
      'boot-1/inst-1/0',
      'boot-1/inst-1/4x',
      'boot-1/inst-1/',
      'boot-1/inst-2/42',
    ];
    ids.push('boot-1/inst-1/42/7', 'xboot-1/inst-1/42', 'boot-1/inst-1/1234567890123456', 'boot-1/inst-1/123456789012345');
    for (const id of ids)
      for (const [stream, seq] of [
        ['boot-1/inst-1', 42n],
        ['boot-1/inst-1', 43n],
        ['boot-1/inst-2', 42n],
        ['', 42n],
        ['boot-1/inst-1', 123456789012345n],
        ['boot-1/inst-1', 1234567890123456n],
      ] as const) {
        const p = parseEventId(id);
        const want =
          stream !== '' &&
          p?.stream === stream &&
          p.seq === seq &&
          !/\/0/.test(id.slice(stream.length)) &&
          id.length <= stream.length + 16;
        assert.equal(idIs(id, stream, seq), want, `${id} vs ${stream}/${seq}`);
      }
  });
});

describe("StreamMarks (the file sink's dedup watermarks)", () => {
  it('keeps the highest seq per stream, bounded: the least recently written stream goes first', () => {
    const m = new StreamMarks(3);
    m.mark('a', 5n);
    m.mark('b', 7n);
    m.mark('c', 1n);
    m.mark('a', 6n); // written again: now the most recent
    m.mark('d', 2n);
    assert.equal(m.size, 3);
    assert.equal(m.get('b'), undefined, 'b, written longest ago, forgotten');
    assert.deepEqual([m.get('a'), m.get('c'), m.get('d')], [6n, 1n, 2n]);
  });
});

describe('encodeLines', () => {
  it('writes a batch as the bytes of its jsonlLines, one after another, with each line end', () => {
    const batch: SinkRecord[] = [
      { kind: 'event', event: sampleEvent() },
      { kind: 'loss', loss: sampleLoss() },
      { kind: 'event', event: sampleSummary() },
      { kind: 'event', event: sampleHostEvent() },
      { kind: 'event', event: sampleUnixEvent({ nodeName: 'nöde 🚪', error: 'a\nb"c' }) },
      { kind: 'event', event: sampleEvent({ pod: { labels: { 'ü\u2028': '\ud800' } } }) },
    ];
    const w = new JsonWriter(16); // tiny: it has to grow
    const ends: number[] = [99];
    for (const format of ['native', 'ocsf', 'ecs'] as const) {
      encodeLines(batch, format, w, ends);
      const lines = batch.map((r) => jsonlLine(r, format));
      assert.ok(Buffer.from(w.buf.subarray(0, w.pos)).equals(Buffer.concat(lines)), format);
      let end = 0;
      assert.deepEqual(
        ends,
        lines.map((l) => (end += l.length)),
      );
    }
  });
});

describe('planRotation', () => {
  it('keeps everything in the current file while it fits', () => {
    assert.deepEqual(planRotation([10, 10, 10], 0, 30), [[0, 1, 2]]);
    assert.deepEqual(planRotation([], 25, 30), [[]]);
  });
  it('rotates before the line that would not fit', () => {
    assert.deepEqual(planRotation([10, 10, 10], 15, 30), [[0], [1, 2]]);
    assert.deepEqual(planRotation([10, 10, 10, 10], 0, 20), [
      [0, 1],
      [2, 3],
    ]);
  });
  it('rotates a non-empty file first when even the first line does not fit', () => {
    assert.deepEqual(planRotation([10], 25, 30), [[], [0]]);
  });
  it('gives a line larger than maxBytes a file of its own, never splitting it', () => {
    assert.deepEqual(planRotation([50], 0, 30), [[0]]);
    assert.deepEqual(planRotation([5, 50, 5], 0, 30), [[0], [1], [2]]);
  });
});

describe('jsonl config', () => {
  const parse = (c: unknown) => jsonlSink.parse(c, 'sinks[2]');
  const problems = (c: unknown): string[] => configProblems(parse, c);

  it('fills defaults: native, 100MiB, 5 files, no fsync', () => {
    assert.deepEqual(parse({ path: '/var/log/doorwatch/events.jsonl' }), {
      path: '/var/log/doorwatch/events.jsonl',
      format: 'native',
      maxBytes: 100 * 1024 * 1024,
      maxFiles: 5,
      fsync: false,
    });
  });

  it('accepts human sizes, the common sink keys, and stdout', () => {
    const c = parse({ name: 'local', type: 'jsonl', required: false, path: '/x', maxBytes: '64KiB', maxFiles: 2, fsync: true });
    assert.equal(c.maxBytes, 65536);
    assert.equal(c.maxFiles, 2);
    assert.equal(c.fsync, true);
    assert.equal(parse({ path: '/x', maxBytes: 4096 }).maxBytes, 4096);
    assert.equal(parse({ path: '-', format: 'ecs' }).format, 'ecs');
  });

  it('names every bad key at once', () => {
    const p = problems({ maxBytes: 'lots', maxFiles: 0, format: 'csv', fsync: 'yes' });
    assert.deepEqual(p.map((x) => x.split(':')[0]).sort(), [
      'sinks[2].format',
      'sinks[2].fsync',
      'sinks[2].maxBytes',
      'sinks[2].maxFiles',
      'sinks[2].path',
    ]);
    assert.ok(p.some((x) => /^sinks\[2\]\.maxBytes: "lots" is not a size/.test(x)));
  });

  it('rejects unknown keys and file-only settings for stdout', () => {
    assert.deepEqual(problems({ path: '/x', rotate: true }), ['sinks[2]: Unrecognized key(s) in object: \'rotate\' ("rotate")']);
    assert.deepEqual(problems({ path: '-', maxBytes: '1MiB', fsync: true }), [
      'sinks[2].maxBytes: applies to files only, not to stdout (path "-")',
      'sinks[2].fsync: applies to files only, not to stdout (path "-")',
    ]);
  });
});
