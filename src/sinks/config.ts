import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, zodProblems } from '../config/errors.js';
import { parseDuration, parseSize, UnitError } from '../config/units.js';
import { FORMATS, type FormatName } from '../formats/record.js';

/**
 * The config pieces every sink type shares: the keys of a `sinks[]` entry,
 * durations and sizes, TLS files, secrets read from files or the environment,
 * and validation that reports every problem by key. Files and secrets are read
 * when the sink starts, so a rotated certificate or token needs a restart.
 */

/**
 * The keys every `sinks[]` entry has. The collector validates name, type and
 * required and hands the rest of the entry to the sink type; they are accepted
 * here too, so a whole entry parses on its own. `format` belongs to the sink
 * type, which has its own default.
 */
export function entryKeys<T extends string>(type: T, format: FormatName = 'native') {
  return {
    name: z.string().optional(),
    type: z.literal(type).optional(),
    required: z.boolean().optional(),
    format: z.enum(FORMATS).default(format),
  };
}

function unit(parse: (text: string) => number) {
  return z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
    if (typeof v === 'number') return v;
    try {
      return parse(v);
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: err.message });
      return z.NEVER;
    }
  });
}

/** "500ms", "10s", "2m" → milliseconds; a YAML number is milliseconds. */
export const durationMs = unit(parseDuration);

/** "64KiB", "100MiB" → bytes; a YAML number is bytes. */
export const sizeBytes = unit(parseSize);

/** TLS settings of a client connection to the destination (syslog, HTTP sinks). */
export const tlsSchema = z
  .object({
    /** PEM file of the CA(s) to trust instead of Node's built-in list. */
    ca: z.string().min(1).optional(),
    /** PEM file of a client certificate, for mutual TLS; needs key. */
    cert: z.string().min(1).optional(),
    /** PEM file of the client certificate's private key; needs cert. */
    key: z.string().min(1).optional(),
    /** Name to verify in the server's certificate, when it differs from the host connected to. */
    serverName: z.string().min(1).optional(),
    /** false accepts any server certificate. Testing only: anyone on the path can then read the events. */
    rejectUnauthorized: z.boolean().default(true),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (!!t.cert !== !!t.key) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: [t.cert ? 'key' : 'cert'],
        message: 'a client certificate needs both tls.cert and tls.key',
      });
    }
  });
export type TlsFiles = z.infer<typeof tlsSchema>;

/** The PEM file named by `tls.<key>`, read now; undefined when the key is not set. */
export function readTlsFile(key: string, file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`tls.${key}: cannot read "${file}": ${(e as Error).message}`, { cause: e });
  }
}

/** A key that must NOT carry a secret inline; the message says where the secret goes instead. */
export function noInlineSecret(instead: string) {
  return z.undefined({ invalid_type_error: `inline secrets are not accepted: ${instead}` }).optional();
}

/** An environment variable name. */
export const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');

/** Where a secret is: a file (mounted from a Kubernetes Secret) or an environment variable. */
export interface SecretRef {
  /** The config key naming it, for messages ("tokenFile"). */
  key: string;
  file?: string | undefined;
  env?: string | undefined;
}

/**
 * Read a secret once, at start-up. Trailing whitespace (the newline editors
 * and `kubectl create secret --from-file` leave) is removed; an empty secret
 * is an error, never an unauthenticated request.
 */
export function readSecret(ref: SecretRef, env: Readonly<Record<string, string | undefined>>): string {
  let value: string | undefined;
  let where: string;
  if (ref.file !== undefined) {
    where = `${ref.key} ${ref.file}`;
    try {
      value = readFileSync(ref.file, 'utf8');
    } catch (e) {
      throw new Error(`cannot read ${where}: ${(e as Error).message}`, { cause: e });
    }
  } else if (ref.env !== undefined) {
    where = `${ref.key} ${ref.env}`;
    value = env[ref.env];
    if (value === undefined) throw new Error(`environment variable ${ref.env} (${ref.key}) is not set`);
  } else {
    throw new Error(`no ${ref.key} configured`);
  }
  const trimmed = value.replace(/\s+$/, '');
  if (trimmed === '') throw new Error(`${where} is empty`);
  if (/[\r\n]/.test(trimmed)) throw new Error(`${where} holds more than one line; it must contain only the secret`);
  return trimmed;
}

/** Validate a sink's config with its schema; every problem at once, each naming its key under `path`. */
export function parseConfig<S extends z.ZodTypeAny>(schema: S, type: string, config: unknown, path: string): z.output<S> {
  const r = schema.safeParse(config);
  if (!r.success) throw new ConfigError(`${path || 'sink'} (${type})`, zodProblems(r.error, path));
  return r.data;
}
