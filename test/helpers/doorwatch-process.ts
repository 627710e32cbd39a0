import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Pki } from './pki.js';

/** The CLI as users run it (bin/doorwatch.js on the compiled dist/). */
export const DOORWATCH_BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));

/**
 * `doorwatch <args>` as a child process, resolved once its log (stderr) matches
 * `readyText`; rejected with the log if it exits first or is not ready within
 * timeoutMs. It stays in `procs` until it exits, for the caller's cleanup.
 */
export function startDoorwatch(
  args: string[],
  readyText: RegExp,
  o: { procs: Set<ChildProcess>; timeoutMs: number },
): Promise<ChildProcess> {
  const p = spawn(process.execPath, [DOORWATCH_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  o.procs.add(p);
  p.once('exit', () => o.procs.delete(p));
  let err = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${args[0]} not ready in ${o.timeoutMs / 1000}s: ${err}`)), o.timeoutMs);
    p.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err = (err + d).slice(-20_000);
      if (readyText.test(err)) {
        clearTimeout(t);
        resolve(p);
      }
    });
    p.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${args[0]} exited ${code}: ${err}`));
    });
  });
}

/**
 * A `doorwatch collector -c` file: gRPC on 127.0.0.1:`port` with mutual TLS
 * (pki's server certificate, clients of its CA), and one required JSON-lines
 * sink writing `eventsPath`, its batches flushed after 20 ms.
 */
export function writeJsonlCollectorYaml(file: string, o: { port: number; pki: Pki; eventsPath: string }): void {
  writeFileSync(
    file,
    [
      `listen: 127.0.0.1:${o.port}`,
      'tls:',
      `  cert: ${o.pki.server.cert}`,
      `  key: ${o.pki.server.key}`,
      `  clientCa: ${o.pki.caFile}`,
      'sinks:',
      '  - name: file',
      '    type: jsonl',
      '    required: true',
      `    path: ${o.eventsPath}`,
      '    batch: { maxDelay: 20ms }',
      '',
    ].join('\n'),
  );
}
