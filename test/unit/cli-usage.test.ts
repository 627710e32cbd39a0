import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The real CLI binary, as users run it. Usage errors need no privileges.
const BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });

function assertUsageError(args: string[], mention: RegExp) {
  const r = run(...args);
  assert.equal(r.status, 2, `exit code for ${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stdout, '', 'nothing on stdout');
  assert.match(r.stderr, mention);
  assert.match(r.stderr, /DW_ERR_CLI_USAGE/);
}

describe('doorwatch CLI usage errors', () => {
  it('rejects an unknown flag and suggests the right one', () =>
    assertUsageError(['trace', '--prot', '80'], /unknown option '--prot'[\s\S]*--port/));
  it('rejects an unknown command', () => assertUsageError(['tracee'], /unknown command 'tracee'/));
  it('rejects an out-of-range port', () => assertUsageError(['trace', '--port', '70000'], /port 70000 is out of range/));
  it('rejects a non-numeric pid', () => assertUsageError(['trace', '--pid', 'abc'], /"abc" is not a pid/));
  it('rejects an unknown family', () => assertUsageError(['trace', '--family', 'ipx'], /unknown family "ipx"/));
  it('rejects a bad duration', () => assertUsageError(['trace', '--duration', 'soon'], /not a duration/));
  it('rejects a ring size that is not a power of two', () => assertUsageError(['trace', '--ring-size', '3MiB'], /power of two/));
  it('rejects an unknown output format', () => assertUsageError(['trace', '-o', 'xml'], /xml/));
  it('tail: flags that do not go together, or a PEM file it cannot read, are usage errors', () => {
    assertUsageError(['tail', '--server', '127.0.0.1:1', '--insecure', '--ca', '/x'], /--insecure cannot be combined with --ca/);
    assertUsageError(
      ['tail', '--server', '127.0.0.1:1', '--ca', '/nonexistent/ca.pem'],
      /cannot read --ca "\/nonexistent\/ca\.pem"/,
    );
  });
  it('agent: requires --ca unless --insecure, and --cert with --key', () => {
    assertUsageError(['agent', '--collector', '127.0.0.1:7443'], /--ca is required/);
    assertUsageError(['agent', '--collector', '127.0.0.1:7443', '--ca', '/x', '--cert', '/y'], /--cert and --key go together/);
  });

  it('collector: a bad config lists every problem by key, one line, exit 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dw-cli-'));
    const file = join(dir, 'collector.yaml');
    writeFileSync(
      file,
      'lisen: 0.0.0.0:1\ninsecure: true\nsinks:\n  - name: a\n    type: nosuch\n  - name: b\n    type: jsonl\n    path: 5\n',
    );
    const r = run('collector', '-c', file);
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /DW_ERR_CONFIG/);
    assert.match(lines[0]!, /lisen/);
    assert.match(lines[0]!, /sinks\[0\]\.type: unknown sink type "nosuch"/);
    assert.match(lines[0]!, /sinks\[1\]\.path/);
  });

  it('tail: an unreachable collector is one clear line, exit 1', () => {
    const r = run('tail', '--server', '127.0.0.1:1', '--insecure', '--duration', '2s');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /DW_ERR_TAIL_CONNECT/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });

  it('prints help on stdout and exits 0', () => {
    const r = run('trace', '--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--include-eagain/);
  });
});
