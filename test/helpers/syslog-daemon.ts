import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tcpListening } from './wait.js';

/**
 * A real syslog server (rsyslogd, syslog-ng) as a foreground child process that writes what it received
 * to one file, one JSON object per message. What the servers share: start and wait for the TCP port,
 * read the output, kill and restart on the same port. Each server's own helper (rsyslog.ts,
 * syslog-ng.ts) writes its configuration and says how its output template names the parsed fields.
 */

export interface SyslogDaemon<T> {
  port: number;
  dir: string;
  outFile: string;
  /** Everything received so far. */
  received(): T[];
  /** Resolves once at least n messages are in the output file; rejects after timeoutMs. */
  waitFor(n: number, timeoutMs?: number): Promise<T[]>;
  /** Kill the server (SIGKILL by default) and wait for it to exit; idempotent. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Start the server again on the same port and output file. */
  restart(): Promise<void>;
  /** The server's stderr/stdout, for failure messages. */
  output(): string;
}

export interface DaemonSpec {
  /** For messages: "rsyslogd", "syslog-ng". */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  dir: string;
  port: number;
  outFile: string;
}

/** Resolves once the server's TCP port accepts connections (bounded). */
export async function startSyslogDaemon<T>(spec: DaemonSpec): Promise<SyslogDaemon<T>> {
  const { name, command, args, port, outFile } = spec;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const killOnExit = () => child?.kill('SIGKILL');
  process.once('exit', killOnExit);

  const launch = async (timeoutMs = 10_000): Promise<void> => {
    const c = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: spec.env ?? process.env });
    child = c;
    let gone = false;
    exited = new Promise((resolve) =>
      c.once('exit', () => {
        gone = true;
        resolve();
      }),
    );
    c.stdout!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    c.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (gone) throw new Error(`${name} exited during startup:\n${log}`);
      if (await tcpListening(port)) return;
      if (Date.now() > deadline) {
        c.kill('SIGKILL');
        throw new Error(`${name} did not listen on ${port} within ${timeoutMs}ms:\n${log}`);
      }
      await sleep(50);
    }
  };

  const received = (): T[] => {
    if (!existsSync(outFile)) return [];
    const lines = readFileSync(outFile, 'utf8').split('\n');
    lines.pop(); // the last line is empty or still being written
    return lines.map((l) => JSON.parse(l) as T);
  };

  const stop = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const c = child as ChildProcess | null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await exited;
    }
  };

  await launch();
  return {
    port,
    dir: spec.dir,
    outFile,
    received,
    async waitFor(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = received();
        if (got.length >= n) return got;
        if (Date.now() > deadline) {
          throw new Error(`${name} received ${got.length} of ${n} messages within ${timeoutMs}ms; it said:\n${log}`);
        }
        await sleep(25);
      }
    },
    stop,
    async restart() {
      await stop();
      await launch();
    },
    output: () => log,
  };
}
