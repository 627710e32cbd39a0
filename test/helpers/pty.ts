import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * Runs a command on a REAL pseudo-terminal (python3's pty module: stdin, stdout and stderr of the command
 * are the pty's slave side, so isatty() is true for each), and collects what it wrote there. A SIGTERM to
 * the runner is passed on to the command.
 */

const RUNNER = `
import os, pty, signal, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
while True:
    try:
        data = os.read(fd, 65536)
    except InterruptedError:
        continue
    except OSError:
        break  # EIO: the command exited and closed the pty
    if not data:
        break
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
`;

export interface PtyRun {
  /** Everything written to the terminal so far (a pty turns "\\n" into "\\r\\n"; this has plain "\\n"). */
  output(): string;
  /** Resolves once the output matches (rejects after timeoutMs, or when the command exits first). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM to the command; resolves with its exit code. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

export function runOnPty(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): PtyRun {
  if (!existsSync('/usr/bin/python3')) throw new Error('python3 is missing: run `bash scripts/setup.sh --test`');
  const child = spawn('python3', ['-c', RUNNER, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let text = '';
  child.stdout.on('data', (d: Buffer) => {
    text += d.toString().replace(/\r\n/g, '\n');
  });
  child.stderr.on('data', (d: Buffer) => {
    text += `[pty runner] ${d}`;
  });
  let done = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      done = true;
      resolve(code);
    }),
  );
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  return {
    output: () => text,
    exited,
    async waitFor(pattern, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(text)) {
        if (done) throw new Error(`the command exited before printing ${pattern}:\n${text}`);
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs}ms:\n${text}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (!done) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      process.off('exit', killOnExit);
      return code;
    },
  };
}
