import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { idOfLine, jsonlSink, parseEventId } from '../../src/sinks/jsonl.js';
import type { FormatName, SinkRecord } from '../../src/sinks/sink.js';

// A collector that crashed after writing but before acking receives the same
// events again: the file sink recovers what it holds and writes each once.

const ev = (stream: string, seq: number): SinkRecord => ({
  kind: 'event',
  event: AcceptEvent.fromPartial({ eventId: `${stream}/${seq}`, seq: BigInt(seq), nodeName: 'n' }),
});

async function sinkAt(path: string, format: FormatName) {
  const cfg = jsonlSink.parse({ path, format }, 'sinks[0]');
  return jsonlSink.create('file', cfg, { log: silentLogger });
}

describe('jsonl sink replay recovery', () => {
  for (const format of ['native', 'ocsf', 'ecs'] as const) {
    it(`${format}: a restarted sink skips events the file already has, per stream`, async () => {
      const path = join(mkdtempSync(join(tmpdir(), 'dw-jsonl-')), 'events.jsonl');
      const a = await sinkAt(path, format);
      await a.write([ev('b1/i1', 1), ev('b1/i1', 2), ev('b1/i1', 3), ev('b1/i2', 1)]);
      await a.close();

      const b = await sinkAt(path, format); // "the collector restarted"
      await b.write([ev('b1/i1', 2), ev('b1/i1', 3), ev('b1/i1', 4), ev('b1/i2', 1), ev('b1/i2', 2), ev('b9/i9', 1)]);
      await b.close();

      const ids = readFileSync(path, 'utf8')
        .trim()
        .split('\n')
        .map((l) => idOfLine(l, format));
      assert.deepEqual(ids, ['b1/i1/1', 'b1/i1/2', 'b1/i1/3', 'b1/i2/1', 'b1/i1/4', 'b1/i2/2', 'b9/i9/1']);
    });
  }

  it('interleaved streams in one batch, replays among them: each event once, and the marks of every stream kept', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'dw-jsonl-')), 'events.jsonl');
    const a = await sinkAt(path, 'native');
    await a.write([
      ev('s/a', 1),
      ev('s/b', 1),
      ev('s/a', 2),
      ev('s/a', 2),
      ev('s/b', 1),
      ev('s/c', 5),
      ev('s/b', 2),
      ev('s/a', 1),
    ]);
    // The next batch: replays of every stream, then new events.
    await a.write([ev('s/c', 5), ev('s/b', 2), ev('s/a', 2), ev('s/a', 3), ev('s/c', 6), ev('s/b', 3)]);
    await a.close();
    const ids = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => idOfLine(l, 'native'));
    assert.deepEqual(ids, ['s/a/1', 's/b/1', 's/a/2', 's/c/5', 's/b/2', 's/a/3', 's/c/6', 's/b/3']);
  });

  it('parses event ids and ignores anything else', () => {
    assert.deepEqual(parseEventId('boot/inst/42'), { stream: 'boot/inst', seq: 42n });
    assert.equal(parseEventId('boot/inst/loss/1-2/abc'), undefined);
    assert.equal(idOfLine('{"eventId": "x/y/1"', 'native'), undefined, 'a torn last line is ignored');
  });
});
