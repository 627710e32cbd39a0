import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { checkBtf, checkPrivileges, checkTracefs, effectiveCaps } from '../../src/bpf/preflight.js';
import { DoorwatchError, ErrorCodes } from '../../src/errors.js';

describe('error reference', () => {
  it('docs/errors.md documents every code, and nothing else', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const documented = [...doc.matchAll(/^### (DW_ERR_\w+)/gm)].map((m) => m[1]);
    assert.deepEqual(documented.sort(), Object.keys(ErrorCodes).sort());
  });
});

describe('preflight checks', () => {
  const status = (capEff: string) => `Name:\tnode\nCapEff:\t${capEff}\n`;
  it('reads CapEff', () => assert.equal(effectiveCaps(status('000001ffffffffff')), 0x1ffffffffffn));
  it('accepts root and CAP_BPF+CAP_PERFMON', () => {
    checkPrivileges(status('000001ffffffffff'));
    checkPrivileges(status((2 ** 39 + 2 ** 38).toString(16).padStart(16, '0')));
  });
  it('refuses an unprivileged process with the fix in the message', () => {
    assert.throws(
      () => checkPrivileges(status('0000000000000000')),
      (e: unknown) => e instanceof DoorwatchError && e.code === 'DW_ERR_BPF_PRIVILEGE' && /sudo|root/.test(e.oneLine()),
    );
    // CAP_BPF alone cannot attach tracepoints.
    assert.throws(() => checkPrivileges(status((2 ** 39).toString(16).padStart(16, '0'))), DoorwatchError);
  });
  it('reports a missing BTF and tracefs with the fix', () => {
    assert.throws(
      () => checkBtf('/nonexistent/vmlinux'),
      (e: unknown) => e instanceof DoorwatchError && e.code === 'DW_ERR_BPF_NO_BTF',
    );
    assert.throws(
      () => checkTracefs(['/nonexistent/tracing']),
      (e: unknown) => e instanceof DoorwatchError && e.code === 'DW_ERR_BPF_NO_TRACEFS' && /mount -t tracefs/.test(e.hint),
    );
  });
});
