import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROG_INFO } from '../../src/bpf/accept-probes.js';
import { dumpBtf, parseStructs } from '../helpers/btf.js';

// The offsets used to read run time and recursion misses from struct
// bpf_prog_info must match this kernel's uapi layout.
describe('struct bpf_prog_info offsets (vmlinux BTF)', () => {
  it('matches PROG_INFO', () => {
    const info = parseStructs(dumpBtf('/sys/kernel/btf/vmlinux'), ['bpf_prog_info']).get('bpf_prog_info');
    assert.ok(info, 'bpf_prog_info in vmlinux BTF');
    assert.equal(info.members.get('run_time_ns')?.offset, PROG_INFO.run_time_ns);
    assert.equal(info.members.get('run_cnt')?.offset, PROG_INFO.run_cnt);
    assert.equal(info.members.get('recursion_misses')?.offset, PROG_INFO.recursion_misses);
    assert.ok(info.size >= PROG_INFO.size, 'our buffer is not larger than the kernel struct');
  });
});
