import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

// The proto is a public contract (agents and collectors of different
// versions talk through it): lint it and refuse wire-breaking changes.
const BUF = join(REPO_ROOT, 'node_modules/.bin/buf');
const buf = (args: string[], cwd = REPO_ROOT) => spawnSync(BUF, args, { cwd, encoding: 'utf8', timeout: 60_000 });

describe('proto contract', () => {
  it('passes buf lint (STANDARD + COMMENTS: every element documented)', () => {
    const r = buf(['lint']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it('has no breaking change against main', () => {
    const r = buf(['breaking', '--against', '.git#branch=main']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it('the breaking check really catches a renumbered field', () => {
    const dir = tempDir('doorwatch-buf-');
    for (const side of ['before', 'after']) {
      cpSync(join(REPO_ROOT, 'proto'), join(dir, side, 'proto'), { recursive: true });
      cpSync(join(REPO_ROOT, 'buf.yaml'), join(dir, side, 'buf.yaml'));
    }
    const file = join(dir, 'after/proto/doorwatch/v1/event.proto');
    writeFileSync(file, readFileSync(file, 'utf8').replace('uint64 seq = 2;', 'uint64 seq = 99;'));
    const r = buf(['breaking', join(dir, 'after'), '--against', join(dir, 'before')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stdout + r.stderr, /seq/);
  });
});
