// Helpers for kernel tests: build the C fixtures in test/fixtures, run them, and talk to them.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository root, for tests that run its scripts, binaries or tools. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SOURCE_DIR = resolve(HERE, '../fixtures');

/** Where the compiled fixture binaries live: <repo>/build/fixtures. */
export const FIXTURE_DIR: string = resolve(HERE, '../../build/fixtures');

export type FixtureBin = 'acceptor' | 'uring_acceptor';

const GCC_ARGS: Record<FixtureBin, { src: string; pre: string[]; post: string[] }> = {
  acceptor: { src: 'acceptor.c', pre: ['-O2', '-Wall', '-Werror', '-pthread'], post: [] },
  uring_acceptor: { src: 'uring_acceptor.c', pre: ['-O2', '-Wall', '-Werror'], post: ['-luring'] },
};

const DEFAULT_TIMEOUT_MS = 5000;

/** Absolute path of a fixture binary (it may not be built yet). */
export function fixturePath(bin: FixtureBin): string {
  return join(FIXTURE_DIR, bin);
}

/**
 * Compiles every fixture whose binary is missing or older than its source.
 * Output is written to a temporary name and renamed, so concurrent test processes never see a partial binary.
 * Throws an Error carrying the compiler's stderr on failure.
 */
export function buildFixtures(): void {
  mkdirSync(FIXTURE_DIR, { recursive: true });
  for (const bin of Object.keys(GCC_ARGS) as FixtureBin[]) {
    const spec = GCC_ARGS[bin];
    const src = join(SOURCE_DIR, spec.src);
    const out = fixturePath(bin);
    if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) continue;
    const tmp = `${out}.${process.pid}.tmp`;
    try {
      execFileSync('gcc', [...spec.pre, '-o', tmp, src, ...spec.post], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      rmSync(tmp, { force: true });
      const e = err as { stderr?: Buffer | string; message?: string };
      const stderr = e.stderr ? e.stderr.toString().trim() : '';
      throw new Error(`building fixture ${bin} failed: ${stderr || e.message || String(err)}`);
    }
    renameSync(tmp, out);
  }
}

/** The first line every fixture prints once it is listening. */
export interface Ready {
  pid: number;
  port: number;
  listen_fd: number;
}

/** Any later JSON line a fixture prints (accept result, slot, or errno). */
export interface FixtureLine {
  fd?: number;
  slot?: number;
  peer_ip?: string;
  peer_port?: number;
  addrlen?: number;
  tampered?: boolean;
  errno?: number;
  calls?: number;
  [key: string]: unknown;
}

export interface Fixture {
  proc: ChildProcess;
  ready: Ready;
  /** Next parsed JSON line from stdout; rejects after timeoutMs (default 5000) or if the process exits first. */
  next(timeoutMs?: number): Promise<FixtureLine>;
  /** Resolves with the exit code (128 + signal number if killed by a signal); rejects after timeoutMs (default 5000). */
  waitExit(timeoutMs?: number): Promise<number>;
  /** Everything the fixture wrote to stderr so far. */
  stderr(): string;
  /** SIGKILL the process if it is still running. */
  kill(): void;
}

const live = new Set<ChildProcess>();

function isAlive(proc: ChildProcess): boolean {
  return proc.exitCode === null && proc.signalCode === null;
}

/** Kills every fixture process still running. Also runs automatically on process exit. */
export function killAll(): void {
  for (const proc of live) {
    if (isAlive(proc)) {
      try {
        proc.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

process.on('exit', killAll);

function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  if (signal !== null) return 128 + (osConstants.signals[signal] ?? 0);
  return -1;
}

type Waiter = { resolve: (line: FixtureLine) => void; reject: (err: Error) => void };

/**
 * Spawns a fixture (building it first if needed) and resolves once its ready line arrived.
 * Rejects with the fixture's stderr if it exits first, prints something unexpected, or timeoutMs (default 5000) passes.
 */
export async function startFixture(bin: FixtureBin, args: string[], opts: { timeoutMs?: number } = {}): Promise<Fixture> {
  buildFixtures();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const name = `${bin} ${args.join(' ')}`.trim();
  const proc = spawn(fixturePath(bin), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  // A still-running fixture must not keep the test process alive: unref the child and its pipes so the
  // event loop can drain, 'exit' fires and killAll() reaps it. Pending next()/waitExit() timers stay ref'd.
  proc.unref();
  (proc.stdout as net.Socket).unref();
  (proc.stderr as net.Socket).unref();

  let stderrText = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => {
    stderrText += chunk;
  });

  const queue: Array<FixtureLine | Error> = [];
  const waiters: Waiter[] = [];
  let ended: Error | null = null;
  let exited = false;
  let exitCode = -1;
  const exitWaiters: Array<(code: number) => void> = [];

  const push = (item: FixtureLine | Error): void => {
    const w = waiters.shift();
    if (!w) {
      queue.push(item);
    } else if (item instanceof Error) {
      w.reject(item);
    } else {
      w.resolve(item);
    }
  };

  const rl = createInterface({ input: proc.stdout!, crlfDelay: Number.POSITIVE_INFINITY });
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    try {
      push(JSON.parse(line) as FixtureLine);
    } catch {
      push(new Error(`fixture ${name} printed a non-JSON line: ${JSON.stringify(line)}`));
    }
  });

  // 'close' fires after stdout/stderr are drained, so every line has been delivered by then.
  proc.on('close', (code, signal) => {
    exited = true;
    exitCode = exitStatus(code, signal);
    live.delete(proc);
    const err = new Error(`fixture ${name} exited with status ${exitCode}${stderrText ? `; stderr: ${stderrText.trim()}` : ''}`);
    ended = err;
    for (const w of waiters.splice(0)) w.reject(err);
    for (const r of exitWaiters.splice(0)) r(exitCode);
  });

  proc.on('error', (err) => {
    push(new Error(`fixture ${name} failed to start: ${err.message}`));
  });

  const next = (lineTimeoutMs: number = DEFAULT_TIMEOUT_MS): Promise<FixtureLine> => {
    const queued = queue.shift();
    if (queued !== undefined) return queued instanceof Error ? Promise.reject(queued) : Promise.resolve(queued);
    if (ended) return Promise.reject(ended);
    return new Promise<FixtureLine>((resolveLine, rejectLine) => {
      const waiter: Waiter = {
        resolve: (l) => {
          clearTimeout(timer);
          resolveLine(l);
        },
        reject: (e) => {
          clearTimeout(timer);
          rejectLine(e);
        },
      };
      const timer = setTimeout(() => {
        const i = waiters.indexOf(waiter);
        if (i >= 0) waiters.splice(i, 1);
        rejectLine(
          new Error(
            `fixture ${name}: no output line within ${lineTimeoutMs}ms${stderrText ? `; stderr: ${stderrText.trim()}` : ''}`,
          ),
        );
      }, lineTimeoutMs);
      waiters.push(waiter);
    });
  };

  const waitExit = (exitTimeoutMs: number = DEFAULT_TIMEOUT_MS): Promise<number> => {
    if (exited) return Promise.resolve(exitCode);
    return new Promise<number>((resolveExit, rejectExit) => {
      const done = (code: number): void => {
        clearTimeout(timer);
        resolveExit(code);
      };
      const timer = setTimeout(() => {
        const i = exitWaiters.indexOf(done);
        if (i >= 0) exitWaiters.splice(i, 1);
        rejectExit(new Error(`fixture ${name} (pid ${proc.pid}) did not exit within ${exitTimeoutMs}ms`));
      }, exitTimeoutMs);
      exitWaiters.push(done);
    });
  };

  const kill = (): void => {
    if (isAlive(proc)) proc.kill('SIGKILL');
  };

  let first: FixtureLine;
  try {
    first = await next(timeoutMs);
  } catch (err) {
    kill();
    throw err;
  }
  if (first['ready'] !== true || typeof first['pid'] !== 'number' || typeof first['port'] !== 'number') {
    kill();
    throw new Error(`fixture ${name}: expected a ready line first, got ${JSON.stringify(first)}`);
  }
  const ready: Ready = { pid: first['pid'], port: first['port'], listen_fd: Number(first['listen_fd']) };

  return { proc, ready, next, waitExit, stderr: () => stderrText, kill };
}

export interface TcpClient {
  socket: net.Socket;
  localAddress: string;
  localPort: number;
  close(): void;
}

export interface UnixClient {
  close(): void;
}

type RawSocketApi = {
  socket: (domain: number, type: number, protocol: number) => number;
  connect: (fd: number, addr: Buffer, len: number) => number;
  close: (fd: number) => number;
  errno: () => number;
};
let rawApi: RawSocketApi | undefined;

/** libc socket()/connect()/close() via koffi, loaded on first use. */
function rawSocketApi(): RawSocketApi {
  if (!rawApi) {
    const libc = koffi.load('libc.so.6');
    rawApi = {
      socket: libc.func('int socket(int domain, int type, int protocol)') as RawSocketApi['socket'],
      connect: libc.func('int connect(int fd, const uint8_t *addr, uint32_t len)') as RawSocketApi['connect'],
      close: libc.func('int close(int fd)') as RawSocketApi['close'],
      errno: () => koffi.errno(),
    };
  }
  return rawApi;
}

const AF_UNIX = 1;
const SOCK_STREAM_CLOEXEC = 1 | 0o2000000;

/**
 * Node (libuv) connects abstract sockets with addrlen = sizeof(sockaddr_un), i.e. the name padded with NULs,
 * which does not match a name bound with its exact length (as the acceptor fixture does). So abstract names
 * are connected with a plain blocking libc connect() using the exact length.
 */
function connectAbstract(name: Buffer): UnixClient {
  const api = rawSocketApi();
  const addr = Buffer.alloc(2 + name.length);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  const fd = api.socket(AF_UNIX, SOCK_STREAM_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket(AF_UNIX) failed: errno ${api.errno()}`);
  if (api.connect(fd, addr, addr.length) < 0) {
    const err = api.errno();
    api.close(fd);
    throw new Error(`connect to abstract ${JSON.stringify(name.toString())} failed: errno ${err}`);
  }
  let open = true;
  return {
    close: () => {
      if (open) {
        open = false;
        api.close(fd);
      }
    },
  };
}

function connectSocket(opts: net.NetConnectOpts, what: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise<net.Socket>((resolveConn, rejectConn) => {
    const socket = net.connect(opts);
    const timer = setTimeout(() => {
      socket.destroy();
      rejectConn(new Error(`connect to ${what} timed out after ${timeoutMs}ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      // Ignore late errors (e.g. ECONNRESET when the fixture closes its end first).
      socket.on('error', () => {});
      resolveConn(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      rejectConn(new Error(`connect to ${what} failed: ${err.message}`));
    });
  });
}

/** Opens a TCP connection and resolves once connected. */
export async function connectTcp(host: string, port: number, family?: 4 | 6, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<TcpClient> {
  const opts: net.NetConnectOpts = family === undefined ? { host, port } : { host, port, family };
  const socket = await connectSocket(opts, `${host}:${port}`, timeoutMs);
  return {
    socket,
    localAddress: socket.localAddress ?? '',
    localPort: socket.localPort ?? 0,
    close: () => socket.destroy(),
  };
}

/** Connects to a unix stream socket; a path starting with '\0' names an abstract socket (exact-length name). */
export async function connectUnix(path: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<UnixClient> {
  if (path.startsWith('\0')) return connectAbstract(Buffer.from(path, 'utf8'));
  const socket = await connectSocket({ path }, JSON.stringify(path), timeoutMs);
  return { close: () => socket.destroy() };
}
