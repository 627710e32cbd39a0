import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AcceptEvent, AddressFamily } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { type JsonlConfig, jsonlLine, jsonlSink } from '../../src/sinks/jsonl.js';
import type { Sink, SinkRecord } from '../../src/sinks/sink.js';
import { REPO_ROOT } from '../helpers/fixtures.js';

// The stdout tests run this same file as a child process (DW_JSONL_CHILD=<mode> <count>).
const CHILD = process.env.DW_JSONL_CHILD;

function records(from: number, count: number): SinkRecord[] {
  return Array.from({ length: count }, (_, k) => {
    const seq = from + k + 1;
    return {
      kind: 'event' as const,
      event: AcceptEvent.fromPartial({
        eventId: `node-1/boot/1/${seq}`,
        seq: BigInt(seq),
        timeUnixNano: 1_700_000_000_000_000_000n + BigInt(seq) * 1000n,
        nodeName: 'node-1',
        success: true,
        ret: 5,
        process: { pid: 100 + (seq % 7), comm: 'srv' },
        socket: {
          family: AddressFamily.ADDRESS_FAMILY_INET,
          local: { ip: '10.0.0.1', port: 443 },
          peer: { ip: '10.0.0.2', port: seq },
        },
        // Variable length lines, some multi-byte, one with a newline inside a string.
        pod: {
          namespace: 'ns',
          name: `pod-${seq}`,
          labels: { note: 'ü🚪'.repeat(seq % 13), multi: seq % 50 === 0 ? 'a\nb' : '' },
        },
      }),
    };
  });
}

const cfg = (c: Record<string, unknown>): JsonlConfig => jsonlSink.parse(c, 'sinks[0]');

if (CHILD?.startsWith('rotate ')) {
  // rotate <path>: 600 records through a 16 KiB, 3-file set (rotations), under strace in the parent.
  const sink = await jsonlSink.create('f', cfg({ path: CHILD.slice(7), maxBytes: '16KiB', maxFiles: 3 }), { log: silentLogger });
  for (let i = 0; i < 600; i += 50) await sink.write(records(i, 50));
  await sink.close();
} else if (CHILD) {
  const [mode, count] = CHILD.split(' ');
  const sink = await jsonlSink.create('stdout', cfg({ path: '-' }), { log: silentLogger });
  if (mode === 'write') {
    const n = Number(count);
    for (let i = 0; i < n; i += 100) await sink.write(records(i, Math.min(100, n - i)));
    await sink.close();
  } else {
    // epipe: write until the reader is gone; the sink must reject, not crash the process.
    const deadline = Date.now() + 10_000;
    for (let i = 0; Date.now() < deadline; i += 10) {
      try {
        await sink.write(records(i, 10));
      } catch (err) {
        process.stderr.write(`REJECTED ${(err as Error).message}\n`);
        break;
      }
    }
    await sink.close();
  }
} else {
  const self = fileURLToPath(import.meta.url);
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'doorwatch-jsonl-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Files of a rotated set, oldest first: file.N ... file.1, file. */
  function rotatedSet(path: string): string[] {
    const base = path.split('/').pop()!;
    const dir = path.slice(0, -base.length - 1);
    const nums = readdirSync(dir)
      .filter((f) => f.startsWith(`${base}.`))
      .map((f) => Number(f.slice(base.length + 1)))
      .sort((a, b) => b - a);
    assert.deepEqual(
      [...nums].reverse(),
      nums.map((_, i) => i + 1),
      'rotated files are numbered 1..N without gaps',
    );
    return [...nums.map((n) => `${path}.${n}`), path];
  }

  /** Checks every file is whole lines of valid JSON within maxBytes; returns all lines, oldest first. */
  function readAll(files: string[], maxBytes: number): string[] {
    const lines: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      assert.ok(statSync(f).size <= maxBytes, `${f} is ${statSync(f).size} bytes > ${maxBytes}`);
      if (text === '') continue;
      assert.ok(text.endsWith('\n'), `${f} ends with a whole line`);
      for (const l of text.slice(0, -1).split('\n')) {
        JSON.parse(l);
        lines.push(`${l}\n`);
      }
    }
    return lines;
  }

  const expected = (recs: SinkRecord[]) => recs.map((r) => jsonlLine(r, 'native').toString('utf8'));

  async function writeConcurrently(sink: Sink, recs: SinkRecord[], batch: number): Promise<void> {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < recs.length; i += batch) writes.push(sink.write(recs.slice(i, i + batch)));
    await Promise.all(writes);
  }

  describe('jsonl sink: files', () => {
    it('rotates under concurrent load without losing or splitting a line', async () => {
      const path = join(tmp(), 'events.jsonl');
      const maxBytes = 32 * 1024;
      const sink = await jsonlSink.create('f', cfg({ path, maxBytes: '32KiB', maxFiles: 1000 }), { log: silentLogger });
      const recs = records(0, 2000);
      await writeConcurrently(sink, recs, 17);
      await sink.close();
      const files = rotatedSet(path);
      assert.ok(files.length > 10, `rotation happened (${files.length} files)`);
      assert.deepEqual(readAll(files, maxBytes), expected(recs), 'every line, once, in order');
    });

    it('never renames over an existing file when rotating (ext4 writes the renamed file out inside rename())', () => {
      // strace (a Debian package, scripts/setup.sh) of a child process rotating a 3-file set: every file
      // operation in the directory, replayed against the set of names that exist.
      const dir = tmp();
      const path = join(dir, 'events.jsonl');
      const trace = join(dir, 'strace.txt');
      execFileSync(
        'strace',
        [
          '-f',
          '-qq',
          '-o',
          trace,
          '-e',
          'trace=openat,rename,renameat,renameat2,unlink,unlinkat',
          process.execPath,
          '--import',
          'tsx',
          self,
        ],
        {
          cwd: REPO_ROOT,
          env: { ...process.env, DW_JSONL_CHILD: `rotate ${path}` },
          stdio: ['ignore', 'ignore', 'inherit'],
          timeout: 60_000,
        },
      );
      const exists = new Set<string>();
      let renames = 0;
      for (const line of readFileSync(trace, 'utf8').split('\n')) {
        if (!line.includes(dir) || / = -\d+ E/.test(line)) continue; // another file, or a failed call
        const names = [...line.matchAll(/"([^"]+)"/g)].map((m) => m[1]!).filter((n) => n.startsWith(dir));
        if (/\bopenat\(/.test(line) && /O_CREAT/.test(line)) exists.add(names[0]!);
        else if (/\brename(at2?)?\(/.test(line)) {
          const [from, to] = names as [string, string];
          assert.ok(!exists.has(to), `renamed ${from} over the existing ${to}:\n${line}`);
          exists.delete(from);
          exists.add(to);
          renames++;
        } else if (/\bunlink(at)?\(/.test(line)) exists.delete(names[0]!);
      }
      assert.ok(renames >= 6, `rotations happened (${renames} renames traced)`);
      assert.deepEqual(rotatedSet(path), [`${path}.2`, `${path}.1`, path]);
    });

    it('keeps maxFiles files, dropping the oldest', async () => {
      const path = join(tmp(), 'events.jsonl');
      const maxBytes = 16 * 1024;
      const sink = await jsonlSink.create('f', cfg({ path, maxBytes, maxFiles: 3 }), { log: silentLogger });
      const recs = records(0, 1000);
      await writeConcurrently(sink, recs, 25);
      await sink.close();
      const files = rotatedSet(path);
      assert.deepEqual(files, [`${path}.2`, `${path}.1`, path]);
      const kept = readAll(files, maxBytes);
      const all = expected(recs);
      assert.ok(kept.length > 0 && kept.length < all.length);
      assert.deepEqual(kept, all.slice(all.length - kept.length), 'the newest lines, contiguous and in order');
      // Every rotated file was full: the first line of the next file would not have fitted.
      for (const [i, f] of files.slice(0, -1).entries()) {
        const next = readFileSync(files[i + 1]!, 'utf8');
        assert.ok(statSync(f).size + Buffer.byteLength(next.slice(0, next.indexOf('\n') + 1)) > maxBytes, `${f} was full`);
      }
    });

    it('appends to an existing file and counts its bytes towards rotation (fsync on)', async () => {
      const path = join(tmp(), 'events.jsonl');
      const first = records(0, 5);
      const s1 = await jsonlSink.create('f', cfg({ path, fsync: true }), { log: silentLogger });
      await s1.write(first);
      await s1.close();
      const size = statSync(path).size;
      const s2 = await jsonlSink.create('f', cfg({ path, maxBytes: size + 10, fsync: true }), { log: silentLogger });
      const second = records(5, 3);
      await s2.write(second);
      await s2.flush();
      await s2.close();
      await s2.close(); // idempotent
      assert.equal(readFileSync(`${path}.1`, 'utf8'), expected(first).join(''));
      assert.deepEqual(readAll([path], Number.POSITIVE_INFINITY), expected(second));
      await assert.rejects(s2.write(second), /closed/);
    });

    it('with maxFiles: 1 starts over instead of keeping old files', async () => {
      const path = join(tmp(), 'events.jsonl');
      const sink = await jsonlSink.create('f', cfg({ path, maxBytes: 2048, maxFiles: 1 }), { log: silentLogger });
      await sink.write(records(0, 20));
      await sink.close();
      assert.deepEqual(rotatedSet(path), [path]);
      assert.ok(readAll([path], 2048).length > 0);
    });

    it('on a full disk rejects the batch, leaves no half line, and the retry writes it once', async () => {
      // A real full filesystem: a 64KiB tmpfs (tests run as root), with a filler file to free space later.
      const dir = tmp();
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
      let sink: Sink | undefined;
      try {
        writeFileSync(join(dir, 'filler'), Buffer.alloc(24 * 1024));
        const path = join(dir, 'events.jsonl');
        sink = await jsonlSink.create('f', cfg({ path }), { log: silentLogger });
        const recs = records(0, 400);
        let failed: SinkRecord[] | undefined;
        let written = 0;
        for (; written < recs.length; written += 8) {
          const batch = recs.slice(written, written + 8);
          const ok = await sink.write(batch).then(
            () => true,
            (err: Error) => {
              assert.match(err.message, /jsonl sink "f": write to ".*events\.jsonl" failed: .*ENOSPC/);
              return false;
            },
          );
          if (!ok) {
            failed = batch;
            break;
          }
        }
        assert.ok(failed, 'the disk filled up');
        assert.deepEqual(readAll([path], Number.POSITIVE_INFINITY), expected(recs.slice(0, written)), 'only whole lines');
        rmSync(join(dir, 'filler'));
        await sink.write(failed); // the dispatcher's retry of the same batch
        await sink.close();
        assert.deepEqual(readAll([path], Number.POSITIVE_INFINITY), expected(recs.slice(0, written + 8)));
      } finally {
        await sink?.close().catch(() => {});
        execFileSync('umount', ['--lazy', dir]);
      }
    });

    it('fails loudly at create when the file cannot be opened', async () => {
      const path = join(tmp(), 'missing-dir', 'events.jsonl');
      await assert.rejects(
        jsonlSink.create('audit', cfg({ path }), { log: silentLogger }),
        /jsonl sink "audit": cannot open ".*missing-dir\/events\.jsonl": ENOENT.*create the directory first/,
      );
    });
  });

  describe('jsonl sink: stdout', () => {
    function child(mode: string) {
      return spawn(process.execPath, ['--import', 'tsx', self], {
        cwd: REPO_ROOT,
        env: { ...process.env, DW_JSONL_CHILD: mode },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    }
    function exited(c: ReturnType<typeof child>, timeoutMs: number): Promise<number | null> {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          c.kill('SIGKILL');
          reject(new Error(`child did not exit within ${timeoutMs}ms`));
        }, timeoutMs);
        c.once('exit', (code) => {
          clearTimeout(t);
          resolve(code);
        });
      });
    }

    it('writes exactly one JSON line per record to stdout, nothing else', async () => {
      const c = child('write 1234');
      const out: Buffer[] = [];
      let err = '';
      c.stdout.on('data', (d: Buffer) => out.push(d));
      c.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      assert.equal(await exited(c, 30_000), 0, err);
      assert.equal(Buffer.concat(out).toString('utf8'), expected(records(0, 1234)).join(''));
    });

    it('rejects the write when the reader goes away (EPIPE) instead of crashing', async () => {
      const c = child('epipe 0');
      let err = '';
      c.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      c.stdout.once('data', () => c.stdout.destroy());
      assert.equal(await exited(c, 30_000), 0, err);
      assert.match(err, /REJECTED jsonl sink "stdout": write to stdout failed: .*EPIPE/);
    });
  });
}
