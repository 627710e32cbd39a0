import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

// scripts/check-tap.mjs fails a run whose TAP has a test that started without a verdict (nodejs/node#64833).
const dir = mkdtempSync(join(tmpdir(), 'doorwatch-check-tap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function check(tap: string): { status: number | null; out: string } {
  const f = join(dir, `r${Math.random().toString(36).slice(2)}.tap`);
  writeFileSync(f, tap);
  const r = spawnSync(process.execPath, ['scripts/check-tap.mjs', f], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

const complete = `TAP version 13
# Subtest: suite
    # Subtest: a
    ok 1 - a
    # Subtest: b # with a hash
    not ok 2 - b # with a hash
    # Subtest: c
    ok 3 - c # SKIP not here
ok 1 - suite
`;

describe('scripts/check-tap.mjs', () => {
  it('passes a stream where every started test has a verdict (failed and skipped ones count)', () => {
    const r = check(complete);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /4 verdicts/);
  });

  it('fails, naming them, when the last results of a file were lost', () => {
    const cut = complete.split('\n').slice(0, 5).join('\n');
    const r = check(cut);
    assert.equal(r.status, 1);
    assert.match(r.out, /2 test\(s\) started without a verdict/);
    assert.match(r.out, /- b # with a hash/);
    assert.match(r.out, /- suite/);
  });

  it('repeats each failing test at the end, with its suites and diagnostics, but not the suites that failed with it', () => {
    const failed = `TAP version 13
# Subtest: outer
    # Subtest: inner
        # Subtest: leaf
        not ok 1 - leaf
          ---
          duration_ms: 1.5
          location: '/x/y.test.ts:3:5'
          error: 'boom'
          ...
        # Subtest: fine
        ok 2 - fine
        1..2
    not ok 1 - inner
      ---
      error: '1 subtest failed'
      ...
not ok 1 - outer
`;
    const r = check(failed);
    assert.equal(r.status, 0, r.out); // every test has a verdict; the runner's own exit code carries the failure
    assert.match(
      r.out,
      /1 failing test\(s\):\n {2}✗ outer › inner › leaf\n {4}location: '\/x\/y\.test\.ts:3:5'\n {4}error: 'boom'\n/,
    );
    assert.doesNotMatch(r.out, /duration_ms|✗ outer › inner\n|✗ outer\n/);
  });

  it('fails on a stream with no verdict at all', () => {
    assert.equal(check('TAP version 13\n').status, 1);
  });
});
