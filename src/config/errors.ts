import type { ZodError } from 'zod';
import { keyPath } from './keys.js';

/**
 * A config problem names the key that is wrong, what was wrong with it, and
 * every problem at once (not the first one).
 */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`invalid configuration in ${source}: ${problems.join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** zod issues -> "sinks[1].port: Expected number, received string". */
export function zodProblems(err: ZodError, prefix = ''): string[] {
  return err.issues.map((i) => {
    const keys = i.code === 'unrecognized_keys' ? ` (${i.keys.map((k) => `"${k}"`).join(', ')})` : '';
    return `${keyPath(prefix, i.path)}: ${i.message}${keys}`;
  });
}
