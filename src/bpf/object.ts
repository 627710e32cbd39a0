import koffi from 'koffi';
import { DoorwatchError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { libbpf, OpenOpts, type Ptr } from './libbpf.js';
import { errno, strerror, vsnprintf, withSignalsBlocked } from './libc.js';

/**
 * A libbpf object in stages — open, configure, load, attach — each stage with
 * its own error, and one cleanup path (close()) that is safe after any failure.
 */

const VERIFIER_LOG_BYTES = 4 << 20;
const VERIFIER_TAIL_LINES = 12;
const NO_LOG = Buffer.alloc(0);

/** libbpf's own log, routed into pino (debug) instead of raw stderr. */
let printRegistered: bigint | undefined;
let printLogger: Logger | undefined;
function routeLibbpfLog(log: Logger): void {
  printLogger = log;
  if (printRegistered !== undefined) return;
  if (process.arch !== 'x64') {
    // va_list is only a plain pointer on x86_64 SysV; elsewhere stay quiet.
    libbpf().set_print(null);
    return;
  }
  const line = Buffer.alloc(4096);
  printRegistered = koffi.register((level: number, fmt: string, ap: bigint) => {
    const n = vsnprintf(line, line.length, fmt, ap);
    const text = line
      .subarray(0, Math.max(0, Math.min(n, line.length - 1)))
      .toString('utf8')
      .trimEnd();
    // libbpf levels: 0 warn, 1 info, 2 debug. All of it is detail for operators.
    if (level === 0) printLogger?.debug({ libbpf: 'warn' }, text);
    else printLogger?.trace({ libbpf: level === 1 ? 'info' : 'debug' }, text);
    return 0;
  }, libbpf().printFnType) as unknown as bigint;
  libbpf().set_print(printRegistered);
}

function errText(code: number): string {
  const e = Math.abs(code);
  return `${strerror(e)} (errno ${e})`;
}

function lastLines(log: string, n: number): string {
  const lines = log.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-n).join('\n');
}

interface AttachedProgram {
  name: string;
  link: Ptr;
}

export class BpfObject {
  #obj: Ptr | null;
  #links: AttachedProgram[] = [];
  #logBuf: Buffer;
  #log: Logger;
  readonly name: string;

  private constructor(obj: Ptr, logBuf: Buffer, name: string, log: Logger) {
    this.#obj = obj;
    this.#logBuf = logBuf;
    this.name = name;
    this.#log = log;
  }

  /** Open from an in-memory ELF (CO-RE relocations happen at load). */
  static open(elf: Buffer, name: string, log: Logger): BpfObject {
    routeLibbpfLog(log);
    const logBuf = Buffer.alloc(VERIFIER_LOG_BYTES);
    const opts = {
      sz: koffi.sizeof(OpenOpts),
      // Internal maps are named after the object (".bss" -> "<name>.bss"):
      // without a name libbpf uses the buffer's address.
      object_name: name,
      relaxed_maps: false,
      pin_root_path: null,
      _removed_attach_prog_fd: 0,
      kconfig: null,
      btf_custom_path: null,
      kernel_log_buf: logBuf,
      kernel_log_size: logBuf.length,
      kernel_log_level: 0,
    };
    const obj = libbpf().open_mem(elf, elf.length, opts);
    if (!obj) {
      const e = errno();
      throw new DoorwatchError(
        'DW_ERR_BPF_OBJECT',
        `cannot parse the BPF object ${name}: ${errText(e)}`,
        'rebuild it with `npm run build` (clang, -target bpf)',
      );
    }
    return new BpfObject(obj, logBuf, name, log);
  }

  #ptr(): Ptr {
    if (this.#obj === null) throw new Error(`BPF object ${this.name} is closed`);
    return this.#obj;
  }

  programs(): { name: string; ptr: Ptr }[] {
    const out: { name: string; ptr: Ptr }[] = [];
    let p = libbpf().next_program(this.#ptr(), null);
    while (p) {
      out.push({ name: libbpf().program_name(p), ptr: p });
      p = libbpf().next_program(this.#ptr(), p);
    }
    return out;
  }

  setAutoload(program: string, on: boolean): void {
    const p = this.programs().find((x) => x.name === program);
    if (!p) throw new Error(`no BPF program named ${program}`);
    libbpf().program_set_autoload(p.ptr, on);
  }

  /** Map by exact name, or by suffix for internal maps (".data", ".bss"). */
  map(name: string): Ptr {
    let m = libbpf().next_map(this.#ptr(), null);
    while (m) {
      const n = libbpf().map_name(m);
      if (n === name || (name.startsWith('.') && n.endsWith(name))) return m;
      m = libbpf().next_map(this.#ptr(), m);
    }
    throw new Error(`no BPF map named ${name} in ${this.name}`);
  }

  /** Bytes of verifier log buffer still held (0 once loaded). */
  get logBufferBytes(): number {
    return this.#logBuf.length;
  }

  mapFd(name: string): number {
    const fd = libbpf().map_fd(this.map(name));
    if (fd < 0) throw new Error(`BPF map ${name} has no fd (object not loaded?)`);
    return fd;
  }

  setMaxEntries(map: string, n: number): void {
    const rc = libbpf().map_set_max_entries(this.map(map), n);
    if (rc < 0) throw new Error(`cannot size BPF map ${map} to ${n}: ${errText(rc)}`);
  }

  load(): void {
    const rc = withSignalsBlocked(() => libbpf().load(this.#ptr()));
    if (rc === 0) {
      // libbpf writes the log only while loading (an object loads once): 4 MiB of RSS freed for the agent's lifetime.
      this.#logBuf = NO_LOG;
      return;
    }
    const log = this.#logBuf.subarray(0, this.#logBuf.indexOf(0)).toString('utf8');
    const tail = lastLines(log, VERIFIER_TAIL_LINES);
    if (tail) this.#log.debug({ verifierLog: log }, 'verifier log');
    if (Math.abs(rc) === 1) {
      throw new DoorwatchError(
        'DW_ERR_BPF_PRIVILEGE',
        `the kernel refused to load ${this.name}: ${errText(rc)}`,
        'run as root, or grant CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE (kernel >= 5.8)',
      );
    }
    if (Math.abs(rc) === 11) {
      // EAGAIN: the verifier stops whenever a signal is pending; not a rejection of the program.
      throw new DoorwatchError(
        'DW_ERR_BPF_LOAD',
        `loading ${this.name} was interrupted by signals on every attempt (${errText(rc)})`,
        'retry; if it persists, stop whatever signals the process continuously (a profiler, a debugger)',
      );
    }
    if (tail) {
      throw new DoorwatchError(
        'DW_ERR_BPF_VERIFIER',
        `the BPF verifier rejected ${this.name} (${errText(rc)}); last verifier lines:\n${tail}`,
        'report this with `uname -r` and the log above; run with --log-level trace for libbpf details',
      );
    }
    throw new DoorwatchError(
      'DW_ERR_BPF_LOAD',
      `cannot load ${this.name}: ${errText(rc)}`,
      "run with --log-level trace to see libbpf's reason (CO-RE relocation, missing kernel feature)",
    );
  }

  /** Attach every autoloaded program; on failure detach what was attached. */
  attachAll(): void {
    for (const p of this.programs()) {
      if (!libbpf().program_autoload(p.ptr)) continue;
      const link = libbpf().program_attach(p.ptr);
      if (!link) {
        const e = errno();
        this.detach();
        throw new DoorwatchError(
          'DW_ERR_BPF_ATTACH',
          `cannot attach BPF program ${p.name}: ${errText(e)}`,
          e === 2
            ? 'the hook does not exist on this kernel, or tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)'
            : 'check capabilities (CAP_BPF, CAP_PERFMON) and that the kernel supports the hook',
        );
      }
      this.#links.push({ name: p.name, link });
    }
  }

  programFds(): { name: string; fd: number }[] {
    return this.programs()
      .filter((p) => libbpf().program_autoload(p.ptr))
      .map((p) => ({ name: p.name, fd: libbpf().program_fd(p.ptr) }));
  }

  /** The link of an attached program (an iterator's: what bpf_iter_create runs), or undefined. */
  linkOf(name: string): Ptr | undefined {
    return this.#links.find((l) => l.name === name)?.link;
  }

  attachedCount(): number {
    return this.#links.length;
  }

  detach(): void {
    for (const l of this.#links.splice(0)) libbpf().link_destroy(l.link);
  }

  /** Detach and free; idempotent. Callers must stop readers of its maps first. */
  close(): void {
    this.detach();
    if (this.#obj !== null) {
      libbpf().close(this.#obj);
      this.#obj = null;
    }
  }
}
