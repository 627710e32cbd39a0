import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { SYSLOG_NG_ROOT } from '../helpers/syslog-ng.js';

/**
 * `sudo npm start` installs what `doorwatch trace` needs and nothing only the tests use; `npm test` (and so
 * .ci/run) installs everything. Read from the script itself (`setup.sh --list` prints a set and does nothing).
 */

const list = (...args: string[]) =>
  execFileSync('bash', ['scripts/setup.sh', ...args, '--list'], { cwd: REPO_ROOT, encoding: 'utf8' })
    .trim()
    .split('\n');

describe('scripts/setup.sh', () => {
  it('the main job installs the BPF build tools and libbpf only', () => {
    assert.deepEqual(list(), ['clang', 'libbpf-dev', 'libbpf1']);
  });

  it('--test adds the test tool chain', () => {
    const all = list('--test');
    for (const p of ['clang', 'libbpf-dev', 'libbpf1']) assert.ok(all.includes(p), p);
    for (const p of ['rsyslog', 'rsyslog-gnutls', 'nats-server', 'golang-go', 'python3-grpcio', 'prometheus', 'bpftool', 'gcc']) {
      assert.ok(all.includes(p), `${p} in the test set`);
    }
    assert.ok(all.includes(`syslog-ng-core (unpacked into ${SYSLOG_NG_ROOT})`), 'syslog-ng where its helper looks');
  });

  it('npm start runs the main set, npm test, bench and CI the test set', () => {
    const scripts = (JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> })
      .scripts;
    assert.match(scripts.start!, /^bash scripts\/setup\.sh && /);
    assert.match(scripts.test!, /^bash scripts\/setup\.sh --test && /);
    assert.match(scripts.bench!, /^bash scripts\/setup\.sh --test && /);
    assert.match(readFileSync(`${REPO_ROOT}/.ci/run`, 'utf8'), /^npm test/m);
  });

  it('an unknown option is refused', () => {
    assert.throws(
      () => execFileSync('bash', ['scripts/setup.sh', '--tests'], { cwd: REPO_ROOT, stdio: 'pipe' }),
      /unknown option "--tests"/,
    );
  });
});
