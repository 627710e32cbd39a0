import { closeSync, readFileSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DoorwatchError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { CGROUP_KEY_LAYOUT, ConfigFlags, KernelCounter, PEER_KEY_LAYOUT, POLICY_LAYOUT, SLOT_COUNTERS } from './abi.js';
import { BPF_TRACE_RAW_TP, libbpf } from './libbpf.js';
import { BpfObject } from './object.js';
import { preflight } from './preflight.js';
import { RingReader } from './ringbuf.js';

/** The accept probes of bpf/accept.bpf.c: load, configure, attach, read counters. */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_OBJECT_PATH = resolve(ROOT, 'build/accept.bpf.o');
const IO_URING_PROGRAM = 'dw_io_uring_complete';
/** The listener snapshot iterator (bpf/lib/listen.h), run on demand. */
const LISTEN_ITER_PROGRAM = 'dw_iter_listeners';

export interface ProbeOptions {
  /** Ring buffer bytes: a power of two, >= one page. */
  ringBytes: number;
  includeEagain: boolean;
  log: Logger;
  objectPath?: string;
  /** Skip the privilege/BTF/tracefs checks (tests of the checks themselves). */
  skipPreflight?: boolean;
}

export type KernelCounters = Record<keyof typeof KernelCounter, bigint>;

export interface ProgramStats {
  name: string;
  runTimeNs: bigint;
  runCount: bigint;
  /** Runs the kernel skipped because a BPF program was already running on that CPU. */
  recursionMisses: bigint;
}

// struct bpf_prog_info offsets (uapi, append-only): checked against vmlinux BTF in tests.
export const PROG_INFO = { size: 232, run_time_ns: 192, run_cnt: 200, recursion_misses: 208 } as const;

function readObject(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new DoorwatchError(
      'DW_ERR_BPF_OBJECT',
      `cannot read the BPF object ${path}`,
      'build it with `npm run build` (needs clang and libbpf-dev)',
      { cause },
    );
  }
}

export class AcceptProbes {
  readonly ring: RingReader;
  readonly ioUring: boolean;
  /** The listener iterator loaded: readListeners() works (else the inventory reads /proc). */
  listenerIterator = false;
  readonly #obj: BpfObject;
  readonly #cpus: number;
  #cfgFlags = 0;
  #defaultSlot = 0;

  private constructor(obj: BpfObject, ring: RingReader, ioUring: boolean) {
    this.#obj = obj;
    this.ring = ring;
    this.ioUring = ioUring;
    this.#cpus = libbpf().num_possible_cpus();
  }

  static load(opts: ProbeOptions): AcceptProbes {
    if (!opts.skipPreflight) preflight();
    const elf = readObject(opts.objectPath ?? DEFAULT_OBJECT_PATH);
    const log = opts.log;

    let withIter = true;
    const openWith = (withUring: boolean, iter: boolean): BpfObject => {
      const obj = BpfObject.open(elf, 'doorwatch', log);
      try {
        obj.setMaxEntries('dw_events', opts.ringBytes);
        if (!withUring) obj.setAutoload(IO_URING_PROGRAM, false);
        if (!iter) obj.setAutoload(LISTEN_ITER_PROGRAM, false);
        obj.load();
        return obj;
      } catch (e) {
        obj.close();
        throw e;
      }
    };
    // The listener iterator is optional too: without it the inventory reads /proc (said once).
    const open = (withUring: boolean): BpfObject => {
      try {
        return openWith(withUring, withIter);
      } catch (e) {
        if (!withIter) throw e;
        const obj = openWith(withUring, false);
        withIter = false;
        log.warn(
          { err: (e as Error).message },
          'listener iterator (iter/task_file) failed to load; the listener inventory reads /proc',
        );
        return obj;
      }
    };

    // io_uring capture needs the tracepoint and its >= 6.0 signature; without
    // it, everything else still works and the gap is said out loud.
    let withUring = libbpf().find_vmlinux_btf_id('io_uring_complete', BPF_TRACE_RAW_TP) >= 0;
    let obj: BpfObject;
    try {
      obj = open(withUring);
    } catch (e) {
      if (!withUring) throw e;
      log.warn({ err: (e as Error).message }, 'io_uring probe failed to load; io_uring accepts will NOT be captured');
      withUring = false;
      obj = open(false);
    }
    if (!withUring) log.warn('kernel has no io_uring_complete tracepoint: io_uring accepts will not be captured');

    let ring: RingReader;
    try {
      obj.attachAll();
      ring = new RingReader(obj.mapFd('dw_events'), opts.ringBytes);
    } catch (e) {
      obj.close();
      throw e;
    }
    const probes = new AcceptProbes(obj, ring, withUring);
    probes.listenerIterator = withIter && obj.linkOf(LISTEN_ITER_PROGRAM) !== undefined;
    probes.setIncludeEagain(opts.includeEagain);
    log.debug({ programs: obj.attachedCount(), ringBytes: opts.ringBytes, ioUring: withUring }, 'probes attached');
    return probes;
  }

  #writeConfig(): void {
    const v = Buffer.alloc(8);
    v.writeUInt32LE(this.#cfgFlags, 0);
    v.writeUInt32LE(this.#defaultSlot, 4);
    const rc = libbpf().map_update_elem(this.#obj.mapFd('.data'), Buffer.alloc(4), v, 0n);
    if (rc < 0) throw new Error(`cannot write probe config: errno ${-rc}`);
  }

  #setConfigFlag(flag: number, on: boolean): void {
    this.#cfgFlags = on ? this.#cfgFlags | flag : this.#cfgFlags & ~flag;
    this.#writeConfig();
  }

  setIncludeEagain(on: boolean): void {
    this.#setConfigFlag(ConfigFlags.INCLUDE_EAGAIN, on);
  }

  /**
   * Run the listener iterator once: every listening socket held by some
   * task's fd, as DW_OP_LISTEN records (struct dw_accept_event) back to back.
   */
  readListeners(): Buffer {
    const link = this.#obj.linkOf(LISTEN_ITER_PROGRAM);
    if (!link) throw new Error('the listener iterator is not loaded');
    const fd = libbpf().iter_create(libbpf().link_fd(link));
    if (fd < 0) throw new Error(`bpf_iter_create: errno ${-fd}`);
    const chunks: Buffer[] = [];
    try {
      for (;;) {
        const b = Buffer.alloc(64 * 1024);
        const n = readSync(fd, b);
        if (n === 0) break;
        chunks.push(b.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
    return Buffer.concat(chunks);
  }

  /** Listener records (listen(2), TCP listener close) on or off; off by default: only the agent's inventory wants them. */
  setListeners(on: boolean): void {
    this.#setConfigFlag(ConfigFlags.LISTENERS, on);
  }

  /**
   * Audit policies on or off. Off (the default): every accept is audited and
   * the policy maps are not consulted. `defaultSlot` governs cgroups with no
   * entry in dw_audited_cgroups.
   */
  setPolicyFiltering(on: boolean, defaultSlot = 0): void {
    this.#defaultSlot = defaultSlot;
    this.#setConfigFlag(ConfigFlags.FILTER_CGROUPS, on);
  }

  #update(map: string, key: Buffer, value: Buffer, what: string): void {
    const rc = libbpf().map_update_elem(this.#obj.mapFd(map), key, value, 0n);
    if (rc < 0) throw new Error(`cannot write ${what} to ${map}: errno ${-rc}`);
  }

  /** struct dw_policy bytes (src/policy/kernel-plan.ts encodes them) into a slot. */
  writePolicySlot(slot: number, policy: Buffer): void {
    if (policy.length !== POLICY_LAYOUT.size)
      throw new Error(`policy value is ${policy.length} bytes, want ${POLICY_LAYOUT.size}`);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(slot);
    this.#update('dw_policies', key, policy, `policy slot ${slot}`);
  }

  static #peerKey(slot: number, addr: Uint8Array, prefix: number): Buffer {
    const key = Buffer.alloc(PEER_KEY_LAYOUT.size);
    key.writeUInt32LE(32 + prefix, PEER_KEY_LAYOUT.prefixlen);
    key.writeUInt32LE(slot, PEER_KEY_LAYOUT.slot);
    key.set(addr, PEER_KEY_LAYOUT.addr);
    return key;
  }

  /** One peer CIDR of a slot (address in the 16-byte form, prefix 0..128). */
  setPeerRule(slot: number, addr: Uint8Array, prefix: number, action: number): void {
    this.#update('dw_peer_rules', AcceptProbes.#peerKey(slot, addr, prefix), Buffer.from([action]), `peer rule of slot ${slot}`);
  }

  deletePeerRule(slot: number, addr: Uint8Array, prefix: number): void {
    libbpf().map_delete_elem(this.#obj.mapFd('dw_peer_rules'), AcceptProbes.#peerKey(slot, addr, prefix));
  }

  static #cgroupKey(id: bigint, version: 1 | 2): Buffer {
    const key = Buffer.alloc(CGROUP_KEY_LAYOUT.size);
    key.writeBigUInt64LE(id, CGROUP_KEY_LAYOUT.id);
    key.writeUInt32LE(version, CGROUP_KEY_LAYOUT.version);
    return key;
  }

  setCgroupSlot(id: bigint, version: 1 | 2, slot: number): void {
    const v = Buffer.alloc(4);
    v.writeUInt32LE(slot);
    this.#update('dw_audited_cgroups', AcceptProbes.#cgroupKey(id, version), v, `cgroup ${id} (v${version})`);
  }

  deleteCgroup(id: bigint, version: 1 | 2): void {
    libbpf().map_delete_elem(this.#obj.mapFd('dw_audited_cgroups'), AcceptProbes.#cgroupKey(id, version));
  }

  /** Entries of a per-CPU u64 array map, each summed across CPUs (0 where the lookup fails). */
  #perCpuSums(map: string, indexes: readonly number[]): bigint[] {
    const fd = this.#obj.mapFd(map);
    const key = Buffer.alloc(4);
    const val = Buffer.alloc(8 * this.#cpus);
    return indexes.map((idx) => {
      key.writeUInt32LE(idx);
      let sum = 0n;
      if (libbpf().map_lookup_elem(fd, key, val) === 0) {
        for (let c = 0; c < this.#cpus; c++) sum += val.readBigUInt64LE(8 * c);
      }
      return sum;
    });
  }

  /** Per-slot counters summed across CPUs: [emitted, off, port, peer, failed] by SlotCounter index. */
  slotCounters(slot: number): bigint[] {
    return this.#perCpuSums(
      'dw_slot_counters',
      Array.from({ length: SLOT_COUNTERS }, (_, i) => slot * SLOT_COUNTERS + i),
    );
  }

  kernelCounters(): KernelCounters {
    const names = Object.keys(KernelCounter) as (keyof typeof KernelCounter)[];
    const sums = this.#perCpuSums(
      'dw_counters',
      names.map((n) => KernelCounter[n]),
    );
    return Object.fromEntries(names.map((n, i) => [n, sums[i]])) as KernelCounters;
  }

  /** Run time needs kernel.bpf_stats_enabled=1; recursion misses are always counted. */
  programStats(): ProgramStats[] {
    return this.#obj.programFds().map(({ name, fd }) => {
      const info = Buffer.alloc(PROG_INFO.size);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(PROG_INFO.size);
      const rc = libbpf().obj_get_info_by_fd(fd, info, len);
      if (rc !== 0) return { name, runTimeNs: 0n, runCount: 0n, recursionMisses: 0n };
      return {
        name,
        runTimeNs: info.readBigUInt64LE(PROG_INFO.run_time_ns),
        runCount: info.readBigUInt64LE(PROG_INFO.run_cnt),
        recursionMisses: info.readBigUInt64LE(PROG_INFO.recursion_misses),
      };
    });
  }

  attachedPrograms(): number {
    return this.#obj.attachedCount();
  }

  /** Stop new records; the ring stays readable for a final drain. */
  detach(): void {
    this.#obj.detach();
  }

  /** Detach first (no new records), then unmap, then free the object. */
  close(): void {
    this.#obj.detach();
    this.ring.close();
    this.#obj.close();
  }
}
