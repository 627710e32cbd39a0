/**
 * A REAL nats-server (Debian's package, 2.9) with JetStream, for integration
 * tests: a free port on 127.0.0.1, a temporary store directory, optional
 * user/password or token auth and TLS (server cert, optionally verified client
 * certs). `stop()` kills it; `start()` starts it again on the same port and
 * store, so streams and their messages survive, as after a server restart.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './wait.js';

export interface NatsServerOptions {
  user?: string;
  pass?: string;
  token?: string;
  tls?: { cert: string; key: string /** Require client certificates signed by this CA. */; verifyCa?: string };
}

export interface NatsServer {
  /** nats://127.0.0.1:<port> (tls:// is not needed: the client upgrades when the server requires TLS). */
  url: string;
  port: number;
  storeDir: string;
  /** Everything the server logged so far. */
  log(): string;
  /** Kill the server (SIGTERM, then SIGKILL). */
  stop(): Promise<void>;
  /** Start it again on the same port and store. */
  start(): Promise<void>;
  /** Stop and remove the store. */
  dispose(): Promise<void>;
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'doorwatch-nats-'));
  const args = ['-js', '-sd', storeDir, '-p', String(port), '-a', '127.0.0.1', '-n', `doorwatch-test-${port}`];
  if (opts.user) args.push('--user', opts.user, '--pass', opts.pass ?? '');
  if (opts.token) args.push('--auth', opts.token);
  if (opts.tls) {
    args.push('--tls', '--tlscert', opts.tls.cert, '--tlskey', opts.tls.key);
    if (opts.tls.verifyCa) args.push('--tlsverify', '--tlscacert', opts.tls.verifyCa);
  }
  let proc: ChildProcess | undefined;
  let output = '';

  const start = () =>
    new Promise<void>((resolve, reject) => {
      const p = spawn('nats-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      proc = p;
      let run = '';
      const timer = setTimeout(() => {
        p.kill('SIGKILL');
        reject(new Error(`nats-server did not become ready in 10 s:\n${run.slice(-2000)}`));
      }, 10_000);
      const onData = (b: Buffer) => {
        output += b.toString();
        run += b.toString();
        // Logged once the client listener is up and JetStream is initialised.
        if (run.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      p.stdout!.on('data', onData);
      p.stderr!.on('data', onData);
      p.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run nats-server (apt-get install nats-server): ${e.message}`));
      });
      p.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code ?? signal}) before it was ready:\n${run.slice(-2000)}`));
      });
    });

  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => p.kill('SIGKILL'), 5000);
      p.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      p.kill('SIGTERM');
    });
  };

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    log: () => output,
    stop,
    start,
    dispose: async () => {
      await stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
