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

const pthreadSigmask = libc.func('int pthread_sigmask(int how, const uint8_t *set, _Out_ uint8_t *old)') as (
  how: number,
  set: Buffer | null,
  old: Buffer | null,
) => number;
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
/** glibc's sigset_t: 1024 bits. */
const SIGSET_BYTES = 128;
/** Faults and the two signals no mask stops: blocking a fault signal would make a crash hang instead. */
const NEVER_BLOCKED = [4 /* SIGILL */, 7 /* SIGBUS */, 8 /* SIGFPE */, 9 /* SIGKILL */, 11 /* SIGSEGV */, 19 /* SIGSTOP */];

/**
 * Run fn with this thread's signals blocked (delivered after it returns). The kernel's BPF verifier gives up
 * with EAGAIN whenever a signal is pending, and libbpf's retries do not outlast a steady stream of them:
 * V8's CPU profiler (`node --cpu-prof`) sends SIGPROF to the main thread every millisecond, so no load ever
 * finished under it.
 */
export function withSignalsBlocked<T>(fn: () => T): T {
  const set = Buffer.alloc(SIGSET_BYTES);
  // Signals 1..64 are bits 0..63 of the first eight bytes.
  set.fill(0xff, 0, 8);
  for (const s of NEVER_BLOCKED) set[(s - 1) >> 3]! &= ~(1 << ((s - 1) & 7));
  const old = Buffer.alloc(SIGSET_BYTES);
  if (pthreadSigmask(SIG_BLOCK, set, old) !== 0) return fn();
  try {
    return fn();
  } finally {
    pthreadSigmask(SIG_SETMASK, old, null);
  }
}
