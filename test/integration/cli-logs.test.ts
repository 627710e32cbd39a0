import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { runOnPty } from '../helpers/pty.js';
import { bounded, until } from '../helpers/wait.js';

/**
 * Logs are readable text on a terminal and JSON everywhere else, unless --log-format or
 * DOORWATCH_LOG_FORMAT says otherwise. The collector (no privileges needed) is the command: run from
 * source, on a real pty (test/helpers/pty.ts) or with stderr on a pipe.
 */

const CLI = ['--import', 'tsx', 'test/helpers/doorwatch-cli-source.ts'];
let dir: string;
let config: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'dw-cli-logs-'));
  config = join(dir, 'collector.yaml');
  writeFileSync(
    config,
    `listen: 127.0.0.1:0\ninsecure: true\nsinks:\n  - name: archive\n    type: jsonl\n    path: ${join(dir, 'events.jsonl')}\n`,
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

const env = (over: Record<string, string | undefined> = {}) => {
  const e: NodeJS.ProcessEnv = { ...process.env, DOORWATCH_LOG_FORMAT: undefined, NO_COLOR: undefined, ...over };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return e;
};

/** The collector's log lines on a terminal, from start to a SIGTERM once it listens. */
async function onTerminal(args: string[], e: NodeJS.ProcessEnv): Promise<string[]> {
  process.chdir(REPO_ROOT);
  const run = runOnPty(process.execPath, [...CLI, 'collector', '-c', config, ...args], e);
  try {
    await run.waitFor(/collector listening/);
  } finally {
    assert.equal(await run.stop(), 0, run.output());
  }
  return run.output().split('\n').filter(Boolean);
}

/** The same with stderr on a pipe. */
async function onPipe(args: string[], e: NodeJS.ProcessEnv): Promise<string[]> {
  const child = spawn(process.execPath, [...CLI, 'collector', '-c', config, ...args], {
    cwd: REPO_ROOT,
    env: e,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    await until(() => err.includes('collector listening'), 'the collector to listen', 20_000);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await bounded(exited, 10_000, 'the collector to stop'), 0, err);
  return err.split('\n').filter(Boolean);
}

const isJson = (l: string) => {
  try {
    return typeof JSON.parse(l).level === 'number';
  } catch {
    return false;
  }
};
const ESC = String.fromCharCode(27);
// "19:31:30.551 INFO  collector listening  listen=127.0.0.1:40123 ..."
const TEXT = new RegExp(
  `^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} (${ESC}\\[\\d+m)?(TRACE|DEBUG|INFO |WARN |ERROR|FATAL)(${ESC}\\[0m)? \\S`,
);

describe('log format', () => {
  it('on a terminal: one readable text line per log, in colour, no JSON', async () => {
    const lines = await onTerminal([], env());
    assert.ok(lines.length >= 2, lines.join('\n'));
    for (const l of lines) assert.match(l, TEXT, `a text log line: ${JSON.stringify(l)}`);
    const listening = lines.find((l) => l.includes('collector listening'))!;
    assert.ok(listening.includes(`${ESC}[32mINFO ${ESC}[0m collector listening  `), `green INFO: ${JSON.stringify(listening)}`);
    assert.match(listening, /listen=127\.0\.0\.1:\d+/);
    assert.ok(!lines.some(isJson));
  });

  it('NO_COLOR: the same text without escape codes', async () => {
    const lines = await onTerminal([], env({ NO_COLOR: '1' }));
    for (const l of lines) assert.match(l, TEXT);
    assert.ok(!lines.join('\n').includes(ESC), 'no escape codes');
  });

  it('on a terminal, --log-format json or DOORWATCH_LOG_FORMAT=json forces JSON lines', async () => {
    for (const [args, e] of [
      [['--log-format', 'json'], env()],
      [[], env({ DOORWATCH_LOG_FORMAT: 'json' })],
      [['--log-format', 'json'], env({ DOORWATCH_LOG_FORMAT: 'text' })], // the flag wins
    ] as const) {
      const lines = await onTerminal([...args], e);
      assert.ok(lines.length >= 2);
      for (const l of lines) assert.ok(isJson(l), `a JSON line (${args.join(' ')}): ${l}`);
    }
  });

  it('stderr not a terminal: JSON by default; --log-format text forces text (no colour off a terminal)', async () => {
    const json = await onPipe([], env());
    assert.ok(json.length >= 2);
    for (const l of json) assert.ok(isJson(l), `a JSON line: ${l}`);
    const text = await onPipe(['--log-format', 'text'], env());
    for (const l of text) assert.match(l, TEXT);
    assert.ok(!text.join('\n').includes(ESC), 'no escape codes into a pipe');
  });

  it('a DOORWATCH_LOG_FORMAT that is not a format is a usage error', async () => {
    const child = spawn(process.execPath, [...CLI, 'collector', '-c', config], {
      cwd: REPO_ROOT,
      env: env({ DOORWATCH_LOG_FORMAT: 'pretty' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    const code = await bounded(new Promise((resolve) => child.on('exit', resolve)), 20_000, 'exit');
    assert.equal(code, 2, err);
    assert.match(err, /^doorwatch: DOORWATCH_LOG_FORMAT="pretty" is not a log format .*DW_ERR_CLI_USAGE/);
  });
});
