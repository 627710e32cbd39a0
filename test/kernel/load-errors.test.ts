import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AcceptProbes } from '../../src/bpf/accept-probes.js';
import { openLibbpf } from '../../src/bpf/libbpf.js';
import { BpfObject } from '../../src/bpf/object.js';
import { DoorwatchError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import { requireRoot } from '../helpers/tracer.js';

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
});
