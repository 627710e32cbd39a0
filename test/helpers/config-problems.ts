import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/errors.js';

/** The problems a config parser reports; fails the test when it accepts the config instead. */
export function configProblems(parse: (c: unknown) => unknown, config: unknown): string[] {
  try {
    parse(config);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}
