import { readFileSync } from 'node:fs';
import { DoorwatchError } from '../errors.js';

/** A PEM file named by a flag (`--ca`, and its config key when it has one): unreadable is a usage error saying which. */
export function readPem(path: string, flag: string, key?: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new DoorwatchError(
      'DW_ERR_CLI_USAGE',
      `cannot read ${flag} "${path}": ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`,
      `check that ${flag}${key ? ` (${key})` : ''} points at a readable PEM file`,
      { cause },
    );
  }
}
