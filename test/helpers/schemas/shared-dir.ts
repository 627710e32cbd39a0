import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The upstream schemas the validators read: the project's `../shared/schemas`, byte-for-byte copies of OCSF
 * 1.7.0 and ECS 8.11.0 (its README says what and from where), beside the repository here and in CI. Missing,
 * the tests fail with this message rather than validate against nothing.
 */
export function sharedSchemaDir(name: string): string {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
  const dir = join(repo, '..', 'shared', 'schemas', name);
  if (!existsSync(dir)) {
    throw new Error(
      `schema validators: ${dir} not found — the upstream schemas live in ../shared/schemas beside the repository (check out the shared directory next to it)`,
    );
  }
  return dir;
}
