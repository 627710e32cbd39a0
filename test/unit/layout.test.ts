import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { DEFAULT_OBJECT_PATH } from '../../src/bpf/accept-probes.js';
import {
  COMM_LEN,
  ConfigFlags,
  KERNEL_COUNTER_SLOTS,
  KernelCounter,
  LAYOUT,
  OP_ACCEPT,
  RECORD_SIZE,
  RECORD_VERSION,
  RecordFlags,
  Source,
  UNIX_PATH_LEN,
  USER_ADDR_LEN,
} from '../../src/capture/record.js';
import { dumpBtf, parseDefines, parseStructs } from '../helpers/btf.js';

// The C struct (bpf/doorwatch.h), as compiled into the BPF object, and the
// TypeScript decoder's layout table must agree byte for byte.
const structs = parseStructs(dumpBtf(DEFAULT_OBJECT_PATH), ['dw_accept_event', 'dw_header', 'dw_config']);
const defines = parseDefines(readFileSync(new URL('../../bpf/doorwatch.h', import.meta.url), 'utf8'));

describe('record layout: C struct (BTF of build/accept.bpf.o) vs src/capture/record.ts', () => {
  it('has the same size', () => {
    assert.equal(structs.get('dw_accept_event')?.size, RECORD_SIZE);
    assert.equal(structs.get('dw_header')?.size, 16);
  });

  it('has every member at the offset the decoder reads', () => {
    const ev = structs.get('dw_accept_event')!;
    const hdr = structs.get('dw_header')!;
    const fromBtf = new Map<string, number>();
    for (const [name, m] of ev.members) {
      if (name.startsWith('_pad')) continue;
      if (name === 'hdr') {
        for (const [h, hm] of hdr.members) if (!h.startsWith('_pad')) fromBtf.set(`hdr.${h}`, m.offset + hm.offset);
      } else fromBtf.set(name, m.offset);
    }
    assert.deepEqual(Object.fromEntries(fromBtf), { ...LAYOUT });
  });

  it('uses the header constants', () => {
    const want: Record<string, number> = {
      DW_RECORD_VERSION: RECORD_VERSION,
      DW_OP_ACCEPT: OP_ACCEPT,
      DW_SRC_ACCEPT: Source.ACCEPT,
      DW_SRC_ACCEPT4: Source.ACCEPT4,
      DW_SRC_IO_URING: Source.IO_URING,
      DW_CNT_MAX: KERNEL_COUNTER_SLOTS,
      DW_COMM_LEN: COMM_LEN,
      DW_UNIX_PATH_LEN: UNIX_PATH_LEN,
      DW_USER_ADDR_LEN: USER_ADDR_LEN,
      DW_CFG_INCLUDE_EAGAIN: ConfigFlags.INCLUDE_EAGAIN,
      DW_CFG_FILTER_CGROUPS: ConfigFlags.FILTER_CGROUPS,
    };
    for (const [name, bit] of Object.entries(RecordFlags)) want[`DW_F_${name}`] = bit;
    for (const [name, idx] of Object.entries(KernelCounter)) want[`DW_CNT_${name}`] = idx;
    for (const [name, value] of Object.entries(want)) assert.equal(defines.get(name), value, `${name} in bpf/doorwatch.h`);
  });

  it('names every flag and counter the header defines', () => {
    const flags = [...defines.keys()].filter((k) => k.startsWith('DW_F_')).map((k) => k.slice(5));
    assert.deepEqual(flags.sort(), Object.keys(RecordFlags).sort());
    const counters = [...defines.keys()].filter((k) => k.startsWith('DW_CNT_') && k !== 'DW_CNT_MAX').map((k) => k.slice(7));
    assert.deepEqual(counters.sort(), Object.keys(KernelCounter).sort());
  });
});
