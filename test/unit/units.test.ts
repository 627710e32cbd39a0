import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHostPort } from '../../src/config/host-port.js';
import { formatDuration, formatSize, parseDuration, parseSize, UnitError } from '../../src/config/units.js';

describe('parseDuration', () => {
  it('accepts human forms and plain seconds', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('2'), 2000);
    assert.equal(parseDuration('1.5s'), 1500);
  });
  it('rejects garbage and zero with an example', () => {
    assert.throws(
      () => parseDuration('soon'),
      (e: Error) => e instanceof UnitError && /30s/.test(e.message),
    );
    assert.throws(() => parseDuration('0s'), /positive/);
    assert.throws(() => parseDuration('-1s'), UnitError);
  });
});

describe('parseSize', () => {
  it('accepts IEC, SI and plain bytes', () => {
    assert.equal(parseSize('64MiB'), 64 * 1024 * 1024);
    assert.equal(parseSize('4KiB'), 4096);
    assert.equal(parseSize('1kb'), 1000);
    assert.equal(parseSize('4096'), 4096);
  });
  it('rejects unknown units', () => {
    assert.throws(() => parseSize('8 parsecs'), /not a size/);
    assert.throws(() => parseSize('0'), /positive/);
  });
});

describe('formatDuration, formatSize', () => {
  it('write the largest exact unit, which the parsers read back to the same value', () => {
    const durations: [number, string][] = [
      [10, '10ms'],
      [1500, '1500ms'],
      [2000, '2s'],
      [90_000, '90s'],
      [300_000, '5m'],
      [7_200_000, '2h'],
    ];
    for (const [ms, text] of durations) {
      assert.equal(formatDuration(ms), text);
      assert.equal(parseDuration(text), ms, text);
    }
    const sizes: [number, string][] = [
      [4096, '4KiB'],
      [8 * 1024 ** 2, '8MiB'],
      [256 * 1024 ** 2, '256MiB'],
      [3 * 1024 ** 3, '3GiB'],
      [1000, '1000'],
    ];
    for (const [bytes, text] of sizes) {
      assert.equal(formatSize(bytes), text);
      assert.equal(parseSize(text), bytes, text);
    }
  });
});

describe('parseHostPort', () => {
  it('reads host:port and [v6]:port (port 0 = any free port)', () => {
    assert.deepEqual(parseHostPort('collector.doorwatch:7443'), { host: 'collector.doorwatch', port: 7443 });
    assert.deepEqual(parseHostPort('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseHostPort('[::1]:9090'), { host: '::1', port: 9090 });
  });
  it('refuses anything else, including the gRPC target forms it does not handle', () => {
    for (const bad of ['7443', ':7443', 'host:', 'host:70000', '[nope]:1', '::1:80', 'a b:1', 'dns:///c:443', 'unix:/run/c.sock'])
      assert.equal(parseHostPort(bad), undefined, bad);
  });
});
