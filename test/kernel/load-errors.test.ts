import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AcceptProbes } from '../../src/bpf/accept-probes.js';
import { openLibbpf } from '../../src/bpf/libbpf.js';
import { BpfObject } from '../../src/bpf/object.js';
import { DoorwatchError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import { requireRoot } from '../helpers/tracer.js';
import { until, bounded as withTimeout } from '../helpers/wait.js';

// What a user sees when loading goes wrong: one line, a code, the fix.
requireRoot();
const BUILD = fileURLToPath(new URL('../../build/fixtures/', import.meta.url));

const isCode = (code: string, text?: RegExp) => (e: unknown) =>
  e instanceof DoorwatchError && e.code === code && (!text || text.test(e.oneLine()));

describe('load errors', () => {
  it('shows the tail of the verifier log when a program is rejected', () => {
    mkdirSync(BUILD, { recursive: true });
    const obj = `${BUILD}rejected.bpf.o`;
    const src = fileURLToPath(new URL('../fixtures/bpf/rejected.bpf.c', import.meta.url));
    const inc = fileURLToPath(new URL('../../bpf', import.meta.url));
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-I${inc}`, '-c', src, '-o', obj]);
    const o = BpfObject.open(readFileSync(obj), 'rejected', silentLogger);
    try {
      assert.throws(
        () => o.load(),
        isCode('DW_ERR_BPF_VERIFIER', /verifier rejected rejected[\s\S]*(invalid|unbounded|min value|variable stack|R\d)/),
      );
    } finally {
      o.close();
    }
  });

  it("frees the 4 MiB verifier log buffer once the real object has loaded (held for the agent's lifetime before)", () => {
    const o = BpfObject.open(
      readFileSync(fileURLToPath(new URL('../../build/accept.bpf.o', import.meta.url))),
      'accept',
      silentLogger,
    );
    try {
      assert.ok(o.logBufferBytes >= 1 << 20, `log buffer while loading: ${o.logBufferBytes}`);
      o.load();
      assert.equal(o.logBufferBytes, 0);
    } finally {
      o.close();
    }
  });

  it('names a missing BPF object and how to build it', () => {
    assert.throws(
      () =>
        AcceptProbes.load({
          ringBytes: 1 << 20,
          includeEagain: false,
          log: silentLogger,
          objectPath: '/nonexistent/accept.bpf.o',
        }),
      isCode('DW_ERR_BPF_OBJECT', /npm run build/),
    );
  });

  it('rejects a corrupt object without crashing', () => {
    const path = `${BUILD}corrupt.bpf.o`;
    mkdirSync(BUILD, { recursive: true });
    writeFileSync(path, Buffer.from('\x7fELF this is not really an object'));
    assert.throws(
      () => AcceptProbes.load({ ringBytes: 1 << 20, includeEagain: false, log: silentLogger, objectPath: path }),
      isCode('DW_ERR_BPF_OBJECT'),
    );
  });

  it('says how to install libbpf when it is missing', () => {
    assert.throws(() => openLibbpf('libbpf-missing.so.9'), isCode('DW_ERR_BPF_NO_LIBBPF', /apt-get install libbpf1/));
  });

  // The verifier stops with EAGAIN whenever a signal is pending; V8's CPU profiler sends SIGPROF every
  // interval, so before the load blocked signals neither probe object ever loaded under `node --cpu-prof`
  // ("the BPF verifier rejected doorwatch (Resource temporarily unavailable)").
  it('loads every probe while the process is flooded with signals (node --cpu-prof at 100 µs)', async () => {
    const prof = mkdtempSync(join(tmpdir(), 'dw-cpu-prof-'));
    const bin = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
    const p = spawn(
      process.execPath,
      ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', prof, bin, 'trace', '--no-kube', '-o', 'json'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exit = once(p, 'exit');
    try {
      await until(() => err.includes('tracing accepts') || p.exitCode !== null, 'trace to attach or fail', 30_000);
      assert.match(err, /"ioUring":true[^\n]*tracing accepts/, err);
      assert.doesNotMatch(err, /failed to load|interrupted|rejected/, err);
      p.kill('SIGINT');
      const [code] = await withTimeout(exit, 15_000, 'trace to exit');
      assert.equal(code, 0, err);
      // The profiler really ran through the load: its profile is written at exit.
      assert.equal(readdirSync(prof).filter((f) => f.endsWith('.cpuprofile')).length, 1);
    } finally {
      p.kill('SIGKILL');
      rmSync(prof, { recursive: true, force: true });
    }
  });
});
