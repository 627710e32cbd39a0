import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DoorwatchError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { ConfigFlags, KERNEL_COUNTER_SLOTS, KernelCounter } from './abi.js';
import { BPF_TRACE_RAW_TP, libbpf } from './libbpf.js';
import { BpfObject } from './object.js';
import { preflight } from './preflight.js';
import { RingReader } from './ringbuf.js';

/** The accept probes of bpf/accept.bpf.c: load, configure, attach, read counters. */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_OBJECT_PATH = resolve(ROOT, 'build/accept.bpf.o');
const IO_URING_PROGRAM = 'dw_io_uring_complete';

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
  readonly #obj: BpfObject;
  readonly #cpus: number;
  #cfgFlags = 0;

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

    const open = (withUring: boolean): BpfObject => {
      const obj = BpfObject.open(elf, 'doorwatch', log);
      try {
        obj.setMaxEntries('dw_events', opts.ringBytes);
        if (!withUring) obj.setAutoload(IO_URING_PROGRAM, false);
        obj.load();
        return obj;
      } catch (e) {
        obj.close();
        throw e;
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
    probes.setIncludeEagain(opts.includeEagain);
    log.debug({ programs: obj.attachedCount(), ringBytes: opts.ringBytes, ioUring: withUring }, 'probes attached');
    return probes;
  }

  #writeConfig(): void {
    const v = Buffer.alloc(8);
    v.writeUInt32LE(this.#cfgFlags, 0);
    const rc = libbpf().map_update_elem(this.#obj.mapFd('.data'), Buffer.alloc(4), v, 0n);
    if (rc < 0) throw new Error(`cannot write probe config: errno ${-rc}`);
  }

  setIncludeEagain(on: boolean): void {
    this.#cfgFlags = on ? this.#cfgFlags | ConfigFlags.INCLUDE_EAGAIN : this.#cfgFlags & ~ConfigFlags.INCLUDE_EAGAIN;
    this.#writeConfig();
  }

  /** The kernel filter hook: null audits every cgroup; a list audits only those. */
  setAuditedCgroups(ids: bigint[] | null, slot = 1): void {
    const fd = this.#obj.mapFd('dw_audited_cgroups');
    const val = Buffer.alloc(4);
    val.writeUInt32LE(slot);
    for (const id of ids ?? []) {
      const key = Buffer.alloc(8);
      key.writeBigUInt64LE(id);
      libbpf().map_update_elem(fd, key, val, 0n);
    }
    const on = ids !== null;
    this.#cfgFlags = on ? this.#cfgFlags | ConfigFlags.FILTER_CGROUPS : this.#cfgFlags & ~ConfigFlags.FILTER_CGROUPS;
    this.#writeConfig();
  }

  kernelCounters(): KernelCounters {
    const fd = this.#obj.mapFd('dw_counters');
    const key = Buffer.alloc(4);
    const val = Buffer.alloc(8 * this.#cpus);
    const out = {} as KernelCounters;
    for (const [name, idx] of Object.entries(KernelCounter) as [keyof typeof KernelCounter, number][]) {
      if (idx >= KERNEL_COUNTER_SLOTS) continue;
      key.writeUInt32LE(idx);
      let sum = 0n;
      if (libbpf().map_lookup_elem(fd, key, val) === 0) {
        for (let c = 0; c < this.#cpus; c++) sum += val.readBigUInt64LE(8 * c);
      }
      out[name] = sum;
    }
    return out;
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
