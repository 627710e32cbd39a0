import koffi from 'koffi';

/** The few libc calls the ring-buffer reader and libbpf log capture need. */
const libc = koffi.load('libc.so.6');

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_FAILED = 0xffffffffffffffffn;

export const mmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as (
  addr: null,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  off: number,
) => bigint | null;

export const munmap = libc.func('int munmap(void *addr, size_t len)') as (addr: bigint, len: number) => number;

/** va_list is a pointer on x86_64 SysV: libbpf's printf-style log can be formatted here. */
export const vsnprintf = libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t n, const char *fmt, void *ap)') as (
  buf: Buffer,
  n: number,
  fmt: string,
  ap: bigint,
) => number;

export const sysconf = libc.func('long sysconf(int name)') as (name: number) => number;
const SC_PAGESIZE = 30;
export const pageSize = (): number => sysconf(SC_PAGESIZE);

export const strerror = libc.func('const char *strerror(int errnum)') as (errnum: number) => string;
export const errno = (): number => koffi.errno();
