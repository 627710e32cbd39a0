import assert from 'node:assert/strict';
import net from 'node:net';
import { it } from 'node:test';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { runOnPty } from '../helpers/pty.js';
import { bounded } from '../helpers/wait.js';

/**
 * `doorwatch trace` as a new user sees it: on a real terminal (python3's pty), the live table on stdout and
 * its logs on stderr, both on the same screen. Logs are readable text lines, not JSON; the TIME column is
 * whole. Root: it loads the probes.
 */

it('trace on a terminal: table rows with the whole time, logs as text, no JSON', async () => {
  const server = net.createServer((s) => s.end()).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const port = (server.address() as net.AddressInfo).port;
  const { DOORWATCH_LOG_FORMAT: _, ...env } = process.env;
  const run = runOnPty(
    process.execPath,
    [
      '--import',
      'tsx',
      `${REPO_ROOT}/test/helpers/doorwatch-cli-source.ts`,
      'trace',
      '--no-kube',
      '--duration',
      '3s',
      '--port',
      String(port),
    ],
    { ...env, NO_COLOR: '1' },
  );
  try {
    await run.waitFor(/tracing accepts/, 30_000);
    for (let i = 0; i < 3; i++) {
      const c = net.connect(port, '127.0.0.1');
      await new Promise((r) => c.on('close', r));
    }
    assert.equal(await bounded(run.exited, 20_000, 'trace --duration 3s to end'), 0, run.output());
  } finally {
    await run.stop();
    server.close();
  }
  const lines = run.output().split('\n').filter(Boolean);
  assert.match(lines[0]!, /^TIME {9}PID {5}COMM/, 'the table header');
  const rows = lines.filter((l) => l.includes(`127.0.0.1:${port} `));
  assert.equal(rows.length, 3, run.output());
  for (const r of rows) assert.match(r, /^\d\d:\d\d:\d\d\.\d{3} \d+ +node +accept4? /, `a row with the whole time: ${r}`);
  const log = lines.find((l) => l.includes('tracing accepts'))!;
  assert.match(log, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}tracing accepts; Ctrl-C to stop {2}/, 'a text log line');
  assert.ok(!lines.some((l) => l.startsWith('{')), `no JSON on the terminal:\n${run.output()}`);
});
