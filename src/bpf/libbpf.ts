import koffi, { type LibraryHandle, type TypeObject } from 'koffi';
import { DoorwatchError } from '../errors.js';

/**
 * Typed koffi bindings to the system libbpf.so.1 (Debian libbpf1 >= 1.1):
 * only the calls doorwatch uses. Pointers are bigint (koffi 3); a NULL
 * pointer comes back as null and must never be passed on (libbpf would
 * dereference it and take Node down).
 */
export type Ptr = bigint;

export const OpenOpts = koffi.struct('bpf_object_open_opts', {
  sz: 'size_t',
  object_name: 'const char *',
  relaxed_maps: 'bool',
  pin_root_path: 'const char *',
  _removed_attach_prog_fd: 'uint32_t',
  kconfig: 'const char *',
  btf_custom_path: 'const char *',
  kernel_log_buf: 'void *',
  kernel_log_size: 'size_t',
  kernel_log_level: 'uint32_t',
});

const PrintFn = koffi.proto('int libbpf_print_fn(int level, const char *fmt, void *ap)');

export interface Libbpf {
  open_mem(buf: Buffer, size: number, opts: Record<string, unknown>): Ptr | null;
  load(obj: Ptr): number;
  close(obj: Ptr): void;
  next_program(obj: Ptr, prev: Ptr | null): Ptr | null;
  program_name(prog: Ptr): string;
  program_set_autoload(prog: Ptr, autoload: boolean): number;
  program_autoload(prog: Ptr): boolean;
  program_fd(prog: Ptr): number;
  program_attach(prog: Ptr): Ptr | null;
  link_fd(link: Ptr): number;
  iter_create(linkFd: number): number;
  link_destroy(link: Ptr): number;
  next_map(obj: Ptr, prev: Ptr | null): Ptr | null;
  map_name(map: Ptr): string;
  map_fd(map: Ptr): number;
  map_set_max_entries(map: Ptr, n: number): number;
  map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  map_update_elem(fd: number, key: Buffer, value: Buffer, flags: bigint): number;
  map_delete_elem(fd: number, key: Buffer): number;
  obj_get_info_by_fd(fd: number, info: Buffer, len: Buffer): number;
  num_possible_cpus(): number;
  find_vmlinux_btf_id(name: string, attachType: number): number;
  set_print(fn: Ptr | null): Ptr | null;
  printFnType: TypeObject;
}

/** enum bpf_attach_type value used with libbpf_find_vmlinux_btf_id for tp_btf. */
export const BPF_TRACE_RAW_TP = 23;

let cached: Libbpf | undefined;

export function libbpf(): Libbpf {
  cached ??= openLibbpf('libbpf.so.1');
  return cached;
}

/** Bind a libbpf shared object by soname (tests pass a missing one). */
export function openLibbpf(soname: string): Libbpf {
  let lib: LibraryHandle;
  try {
    lib = koffi.load(soname);
  } catch (cause) {
    throw new DoorwatchError(
      'DW_ERR_BPF_NO_LIBBPF',
      `cannot load ${soname}`,
      'install it: apt-get install libbpf1 (Debian/Ubuntu) or dnf install libbpf (Fedora/RHEL)',
      { cause },
    );
  }
  const f = (decl: string) => lib.func(decl);
  return {
    open_mem: f('void *bpf_object__open_mem(const void *buf, size_t size, const bpf_object_open_opts *opts)'),
    load: f('int bpf_object__load(void *obj)'),
    close: f('void bpf_object__close(void *obj)'),
    next_program: f('void *bpf_object__next_program(void *obj, void *prev)'),
    program_name: f('const char *bpf_program__name(void *prog)'),
    program_set_autoload: f('int bpf_program__set_autoload(void *prog, bool autoload)'),
    program_autoload: f('bool bpf_program__autoload(void *prog)'),
    program_fd: f('int bpf_program__fd(void *prog)'),
    program_attach: f('void *bpf_program__attach(void *prog)'),
    link_destroy: f('int bpf_link__destroy(void *link)'),
    link_fd: f('int bpf_link__fd(void *link)'),
    iter_create: f('int bpf_iter_create(int link_fd)'),
    next_map: f('void *bpf_object__next_map(void *obj, void *prev)'),
    map_name: f('const char *bpf_map__name(void *map)'),
    map_fd: f('int bpf_map__fd(void *map)'),
    map_set_max_entries: f('int bpf_map__set_max_entries(void *map, uint32_t n)'),
    map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    map_update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    obj_get_info_by_fd: f('int bpf_obj_get_info_by_fd(int fd, _Inout_ void *info, _Inout_ void *len)'),
    num_possible_cpus: f('int libbpf_num_possible_cpus(void)'),
    find_vmlinux_btf_id: f('int libbpf_find_vmlinux_btf_id(const char *name, int attach_type)'),
    set_print: f('void *libbpf_set_print(libbpf_print_fn *fn)'),
    printFnType: koffi.pointer(PrintFn),
  } as unknown as Libbpf;
}
