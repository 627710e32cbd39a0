import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  CGROUP_KEY_LAYOUT,
  MAX_POLICY_SLOTS,
  PEER_KEY_LAYOUT,
  PeerAction,
  POLICY_LAYOUT,
  POLICY_PORTS_MAX,
  PolicyFlags,
  PolicyMode,
  SLOT_COUNTERS,
  SlotCounter,
} from '../../src/bpf/abi.js';
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
const structs = parseStructs(dumpBtf(DEFAULT_OBJECT_PATH), [
  'dw_accept_event',
  'dw_header',
  'dw_config',
  'dw_policy',
  'dw_cgroup_key',
  'dw_peer_key',
]);
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
      DW_MAX_POLICY_SLOTS: MAX_POLICY_SLOTS,
      DW_POL_PORTS_MAX: POLICY_PORTS_MAX,
      DW_PEER_INCLUDE: PeerAction.INCLUDE,
      DW_PEER_EXCLUDE: PeerAction.EXCLUDE,
      DW_SLOT_CNT_MAX: SLOT_COUNTERS,
    };
    for (const [name, v] of Object.entries(PolicyMode)) want[`DW_MODE_${name}`] = v;
    for (const [name, v] of Object.entries(PolicyFlags)) want[`DW_POL_${name}`] = v;
    for (const [name, v] of Object.entries(SlotCounter)) want[`DW_SLOT_CNT_${name}`] = v;
    for (const [name, bit] of Object.entries(RecordFlags)) want[`DW_F_${name}`] = bit;
    for (const [name, idx] of Object.entries(KernelCounter)) want[`DW_CNT_${name}`] = idx;
    for (const [name, value] of Object.entries(want)) assert.equal(defines.get(name), value, `${name} in bpf/doorwatch.h`);
  });

  it('lays out the policy maps as src/bpf/abi.ts encodes them', () => {
    const offsets = (name: string) => {
      const st = structs.get(name)!;
      const o: Record<string, number> = { size: st.size };
      for (const [m, v] of st.members) if (!m.startsWith('_pad')) o[m] = v.offset;
      return o;
    };
    assert.deepEqual(offsets('dw_policy'), { ...POLICY_LAYOUT });
    assert.deepEqual(offsets('dw_cgroup_key'), { ...CGROUP_KEY_LAYOUT });
    assert.deepEqual(offsets('dw_peer_key'), { ...PEER_KEY_LAYOUT });
    assert.deepEqual(offsets('dw_config'), { size: 8, flags: 0, default_slot: 4 });
  });

  it('names every flag and counter the header defines', () => {
    const flags = [...defines.keys()].filter((k) => k.startsWith('DW_F_')).map((k) => k.slice(5));
    assert.deepEqual(flags.sort(), Object.keys(RecordFlags).sort());
    const counters = [...defines.keys()].filter((k) => k.startsWith('DW_CNT_') && k !== 'DW_CNT_MAX').map((k) => k.slice(7));
    assert.deepEqual(counters.sort(), Object.keys(KernelCounter).sort());
  });
});
