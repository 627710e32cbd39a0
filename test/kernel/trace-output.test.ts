import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { requireRoot } from '../helpers/tracer.js';
import { bounded as withTimeout } from '../helpers/wait.js';

// `doorwatch trace -o json` writing many lines into a pipe whose reader is slow: the compiled CLI, real probes.
const BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
requireRoot();

const running = new Set<ChildProcess>();
after(() => {
  for (const p of running) p.kill('SIGKILL');
});

/** A local server that closes every connection, and a way to make `n` of them one after another (bounded by `deadlineMs`). */
async function server() {
  const srv = createServer((c) => c.end());
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  return {
    port,
    close: () => srv.close(),
    async connect(n: number, deadlineMs: number): Promise<void> {
      const end = Date.now() + deadlineMs;
      for (let i = 0; i < n; i++) {
        if (Date.now() > end) throw new Error(`only ${i} of ${n} connections within ${deadlineMs} ms`);
        await new Promise<void>((resolve, reject) => {
          const s = connect({ port, host: '127.0.0.1' }, () => s.end());
          s.on('close', () => resolve());
          s.on('error', reject);
        });
      }
    },
  };
}

describe('doorwatch trace -o json into a slow pipe', () => {
  it('waits for the reader instead of dropping output: every line arrives, whole, and the summary agrees', async () => {
    const N = 3000; // ~3 MB of JSON: far more than a pipe holds (64 KiB)
    const s = await server();
    const run = spawn(process.execPath, [BIN, 'trace', '-o', 'json', '--log-level', 'info', '--port', String(s.port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(run);
    let runErr = '';
    run.stderr!.setEncoding('utf8').on('data', (d: string) => {
      runErr += d;
    });
    const runExit = once(run, 'exit').then(([code]) => code as number | null);
    await withTimeout(
      (async () => {
        while (!runErr.includes('tracing accepts')) await sleep(20);
      })(),
      15_000,
      `trace to attach; stderr: ${runErr}`,
    );
    // Nobody reads stdout yet: the pipe fills and the trace's writes meet EAGAIN.
    await s.connect(N, 60_000);
    await sleep(500);
    const chunks: Buffer[] = [];
    run.stdout!.on('data', (d: Buffer) => chunks.push(d));
    await sleep(1000);
    run.kill('SIGINT');
    assert.equal(await withTimeout(runExit, 30_000, 'exit after SIGINT'), 0);
    s.close();

    const text = Buffer.concat(chunks).toString('utf8');
    assert.ok(text.endsWith('\n'), 'ends with a whole line');
    const lines = text.split('\n').slice(0, -1);
    const events = lines.map((l) => JSON.parse(l) as { socket: { local: { port: number } } });
    assert.equal(events.filter((e) => e.socket.local.port === s.port).length, N, 'every connection, once');
    const shown = Number(/(\d+) shown of/.exec(runErr)?.[1]);
    assert.equal(lines.length, shown, 'as many lines as the summary says were shown');
    assert.match(runErr, /lost: 0 \(/);
  });
});
