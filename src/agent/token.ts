import { readFileSync } from 'node:fs';

/**
 * The agent's credential for the collector: its projected ServiceAccount
 * token (audience doorwatch-collector, short expiry), re-read from the file
 * for every new Publish stream, because the kubelet rewrites the file before
 * the token expires (at 80 % of its lifetime) and a token read once at start
 * would stop working an hour later. The file is small and read once per
 * stream, never per batch.
 *
 * The default path is where the chart mounts it. When the file is absent at
 * the default path the agent sends no token (a collector with auth.mode
 * none or certificate needs none, and one in kubernetes mode answers
 * UNAUTHENTICATED, which the agent reports); a path given explicitly must be
 * readable, every time.
 */

export const DEFAULT_TOKEN_FILE = '/var/run/secrets/doorwatch/token';

export class TokenFileError extends Error {}

/** A provider of the `authorization` metadata for a new stream (undefined: send none). */
export function tokenFileAuthorization(path: string, explicit: boolean): () => string | undefined {
  return () => {
    let token: string;
    try {
      token = readFileSync(path, 'utf8').trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!explicit && code === 'ENOENT') return undefined;
      throw new TokenFileError(
        `cannot read the collector token file "${path}": ${code ?? (e as Error).message} (check --token-file)`,
      );
    }
    if (!token) throw new TokenFileError(`the collector token file "${path}" is empty (check --token-file)`);
    return `Bearer ${token}`;
  };
}
