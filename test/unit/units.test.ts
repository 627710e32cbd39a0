import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration, parseSize, UnitError } from '../../src/config/units.js';

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
