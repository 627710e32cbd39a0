import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { ZodError, type ZodIssue, z } from 'zod';
import { ConfigError, zodProblems } from '../config/errors.js';
import { type HostPort, parseHostPort } from '../config/host-port.js';
import { isObject, keyPath, knownKeysAt, suggestion } from '../config/keys.js';
import { parseDuration, parseSize } from '../config/units.js';
import { LOG_LEVELS, type LogLevel } from '../log/logger.js';
import type { OverflowPolicy } from './spool.js';

/**
 * The agent's settings from four layers, highest first: command-line flags,
 * environment (NODE_NAME, DOORWATCH_COLLECTOR), the YAML config file, and the
 * defaults below. The file's keys mirror the flags in camelCase
 * (docs/configuration.md). Validated once at start: every problem of every
 * layer is reported together, one line each, naming the key or the flag.
 *
 * `policy` is opaque here: it is handed to the policy module untouched (only
 * "is it an object" is checked), which validates its own keys.
 */

export type AgentTls = { ca: string; cert?: string; key?: string; serverName?: string } | { insecure: true };

export interface AgentConfig {
  /** host:port of the collector's gRPC endpoint. */
  collector: string;
  tls: AgentTls;
  spool: { dir: string; maxBytes: number; overflow: OverflowPolicy };
  batch: { maxEvents: number; maxDelayMs: number };
  flushTimeoutMs: number;
  nodeName: string;
  includeEagain: boolean;
  ringBytes: number;
  pollMs: number;
  pendingDeadlineMs: number;
  /** Listener inventory rescan and re-send period (also how soon a unix listener's end is seen). */
  listenersPeriodMs: number;
  logLevel: LogLevel;
  kube: { enabled: boolean; kubeconfig?: string; labels?: string[]; annotations?: string[] };
  /** /healthz, /readyz, /metrics; undefined when disabled ("" or "off"). */
  health: { address: HostPort | undefined };
  /** The `policy` object of the config file, unvalidated (the policy module's). */
  policy?: unknown;
  /** From the downward API (POD_NAME, POD_NAMESPACE): logs and doorwatch_agent_info. */
  pod: { name?: string; namespace?: string };
  /** The projected ServiceAccount token sent to the collector (re-read per stream); explicit: set by flag or file. */
  token: { file: string; explicit: boolean };
}

/**
 * One layer of settings: the config file's keys, values already in base
 * units (bytes, milliseconds). The CLI builds the flags' layer from what was
 * given on the command line only (commander's getOptionValueSource).
 */
export interface AgentSettings {
  collector?: string;
  tls?: { ca?: string; cert?: string; key?: string; serverName?: string; insecure?: boolean };
  spool?: { dir?: string; maxBytes?: number; overflow?: OverflowPolicy };
  batch?: { maxEvents?: number; maxDelay?: number };
  flushTimeout?: number;
  nodeName?: string;
  includeEagain?: boolean;
  ringSize?: number;
  pollInterval?: number;
  pendingDeadline?: number;
  listeners?: { period?: number };
  logLevel?: LogLevel;
  kube?: { enabled?: boolean; kubeconfig?: string; labels?: string[]; annotations?: string[] };
  /** "host:port", or "" / "off" to disable. */
  health?: { address?: string };
  policy?: unknown;
  /** The collector token file (projected ServiceAccount token). */
  tokenFile?: string;
}

export const AGENT_DEFAULTS = {
  spool: { dir: '/var/lib/doorwatch/spool', maxBytes: 256 * 1024 ** 2, overflow: 'drop-oldest' as OverflowPolicy },
  batch: { maxEvents: 500, maxDelay: 50 },
  flushTimeout: 5000,
  includeEagain: false,
  ringSize: 8 * 1024 ** 2,
  pollInterval: 10,
  pendingDeadline: 2000,
  listeners: { period: 10 * 60_000 },
  logLevel: 'info' as LogLevel,
  kube: { enabled: true },
  health: { address: '0.0.0.0:9090' },
  tokenFile: '/var/run/secrets/doorwatch/token',
} as const;

/** commander's attribute name of each agent flag -> the settings key it sets. */
export const FLAG_ATTRIBUTES: Readonly<Record<string, string>> = {
  collector: 'collector',
  ca: 'tls.ca',
  cert: 'tls.cert',
  key: 'tls.key',
  serverName: 'tls.serverName',
  insecure: 'tls.insecure',
  spoolDir: 'spool.dir',
  spoolMax: 'spool.maxBytes',
  spoolOverflow: 'spool.overflow',
  batchMaxEvents: 'batch.maxEvents',
  batchMaxDelay: 'batch.maxDelay',
  flushTimeout: 'flushTimeout',
  nodeName: 'nodeName',
  includeEagain: 'includeEagain',
  ringSize: 'ringSize',
  pollInterval: 'pollInterval',
  pendingDeadline: 'pendingDeadline',
  listenersPeriod: 'listeners.period',
  logLevel: 'logLevel',
  kube: 'kube.enabled',
  kubeconfig: 'kube.kubeconfig',
  podLabels: 'kube.labels',
  podAnnotations: 'kube.annotations',
  healthAddress: 'health.address',
  tokenFile: 'tokenFile',
};

/** The flag that sets each key (for messages and docs): commander's attribute in kebab case. */
export const FLAG_OF: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(FLAG_ATTRIBUTES).map(([attr, key]) => [
    key,
    attr === 'kube' ? '--no-kube' : `--${attr.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
  ]),
);

/** The environment variables read into the settings (the rest of the env goes to the kube config loader). */
export const ENV_OF: Readonly<Record<string, string>> = { collector: 'DOORWATCH_COLLECTOR', nodeName: 'NODE_NAME' };

/**
 * Every problem of the agent's settings. `fromFile`: a config file was
 * involved (DW_ERR_AGENT_CONFIG); otherwise only flags and env
 * (DW_ERR_CLI_USAGE, as any other bad flag). Exit code 2 either way.
 */
export class AgentConfigError extends ConfigError {
  readonly code: 'DW_ERR_AGENT_CONFIG' | 'DW_ERR_CLI_USAGE';
  readonly configPath: string | undefined;

  constructor(problems: string[], configPath: string | undefined) {
    super(configPath ?? 'the command line', problems);
    this.name = 'AgentConfigError';
    this.code = configPath !== undefined ? 'DW_ERR_AGENT_CONFIG' : 'DW_ERR_CLI_USAGE';
    this.configPath = configPath;
  }

  /** What the CLI prints: one problem on one line; several under a headline, one line each. */
  lines(): string[] {
    const hint =
      this.code === 'DW_ERR_AGENT_CONFIG'
        ? 'every key and flag: docs/configuration.md'
        : 'see `doorwatch agent --help` and docs/configuration.md';
    if (this.problems.length === 1) return [`${this.problems[0]} (${this.code}) — ${hint}`];
    const where = this.configPath !== undefined ? ` (${this.configPath} + flags + env)` : '';
    return [
      `invalid agent configuration${where}: ${this.problems.length} problems (${this.code}) — ${hint}`,
      ...this.problems.map((p) => `  ${p}`),
    ];
  }
}

// --- values ------------------------------------------------------------------------------------------------

/** The health address setting: undefined = disabled. Throws on anything else than host:port, "" or "off". */
export function parseHealthAddress(s: string): HostPort | undefined {
  const t = s.trim();
  if (t === '' || t.toLowerCase() === 'off') return undefined;
  const hp = parseHostPort(t);
  if (!hp) throw new Error(`"${s}" is not host:port (e.g. "0.0.0.0:9090", "127.0.0.1:9090"), "" or "off"`);
  return hp;
}

export function ringSizeBytes(s: string): number {
  const n = parseSize(s);
  if (n < 4096 || (n & (n - 1)) !== 0) throw new Error(`ring size ${s} must be a power of two of at least 4KiB (e.g. 8MiB)`);
  return n;
}

function checked<T>(parse: (s: string) => T, expected: string) {
  return z.union([z.string(), z.number()], { errorMap: () => ({ message: `expected ${expected}` }) }).transform((v, ctx) => {
    try {
      return parse(String(v));
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  });
}

const size = checked(parseSize, 'a size such as "256MiB" or a number of bytes');
const duration = checked(parseDuration, 'a duration such as "200ms", "30s" or a number of seconds');
const path = z.string().min(1, 'expected a file path');
const keys = z.array(z.string().min(1), { errorMap: () => ({ message: 'expected a list of keys, e.g. [app, "team*"]' }) });

const fileSchema = z
  .object({
    collector: z
      .string()
      .superRefine((s, ctx) => {
        if (!parseHostPort(s))
          ctx.addIssue({ code: 'custom', message: `"${s}" is not host:port (e.g. collector.doorwatch:7443)` });
      })
      .optional(),
    tls: z
      .object({
        ca: path.optional(),
        cert: path.optional(),
        key: path.optional(),
        serverName: z.string().min(1).optional(),
        insecure: z.boolean().optional(),
      })
      .strict()
      .optional(),
    spool: z
      .object({ dir: path.optional(), maxBytes: size.optional(), overflow: z.enum(['drop-oldest', 'drop-newest']).optional() })
      .strict()
      .optional(),
    batch: z
      .object({ maxEvents: z.number().int().min(1).max(100_000).optional(), maxDelay: duration.optional() })
      .strict()
      .optional(),
    flushTimeout: duration.optional(),
    tokenFile: path.optional(),
    nodeName: z.string().min(1).optional(),
    includeEagain: z.boolean().optional(),
    ringSize: checked(ringSizeBytes, 'a power-of-two size such as "8MiB"').optional(),
    pollInterval: duration.optional(),
    pendingDeadline: duration.optional(),
    listeners: z.object({ period: duration.optional() }).strict().optional(),
    logLevel: z.enum(LOG_LEVELS as unknown as [LogLevel, ...LogLevel[]]).optional(),
    kube: z
      .object({
        enabled: z.boolean().optional(),
        kubeconfig: path.optional(),
        labels: keys.optional(),
        annotations: keys.optional(),
      })
      .strict()
      .optional(),
    health: z
      .object({
        address: z
          .string({ invalid_type_error: 'expected "host:port", "" or "off"' })
          .superRefine((s, ctx) => {
            try {
              parseHealthAddress(s);
            } catch (e) {
              ctx.addIssue({ code: 'custom', message: (e as Error).message });
            }
          })
          .optional(),
      })
      .strict()
      .optional(),
    policy: z.custom<unknown>(isObject, { message: 'expected an object (its keys are checked by the policy module)' }).optional(),
  })
  .strict();

// --- problems, by key --------------------------------------------------------------------------------------

function issueProblems(issues: ZodIssue[]): string[] {
  const out: string[] = [];
  const rest: ZodIssue[] = [];
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      const known = knownKeysAt(fileSchema, i.path);
      const at = i.path.length ? ` in ${keyPath('', i.path)}` : '';
      for (const k of i.keys) out.push(`unknown key "${k}"${at}${suggestion(k, known)}`);
    } else rest.push(i);
  }
  return [...zodProblems(new ZodError(rest)), ...out];
}

/** Remove what an issue points at, so the rest of the file can still be read. */
function prune(raw: unknown, issue: ZodIssue): unknown {
  const at = issue.code === 'unrecognized_keys' ? issue.path : issue.path.slice(0, -1);
  const leaf = issue.code === 'unrecognized_keys' ? issue.keys : issue.path.slice(-1).map(String);
  if (!leaf.length) return {};
  let o: unknown = raw;
  for (const k of at) o = isObject(o) ? o[String(k)] : undefined;
  if (isObject(o)) for (const k of leaf) delete o[k];
  return raw;
}

/**
 * The config file's value (parsed YAML) -> a settings layer and its problems.
 * Valid keys are kept even when others are wrong, so checks across keys and
 * layers still see them (and do not invent problems about them).
 */
export function parseAgentFile(raw: unknown): { settings: AgentSettings; problems: string[]; badKeys: Set<string> } {
  const problems: string[] = [];
  const badKeys = new Set<string>();
  if (raw === null || raw === undefined) return { settings: {}, problems, badKeys };
  if (!isObject(raw)) {
    badKeys.add('*');
    return { settings: {}, problems: ['(root): expected a mapping of keys (collector, tls, spool, …)'], badKeys };
  }
  let value: unknown = structuredClone(raw);
  for (let pass = 0; pass < 4; pass++) {
    const r = fileSchema.safeParse(value);
    if (r.success) return { settings: r.data as AgentSettings, problems, badKeys };
    for (const p of issueProblems(r.error.issues)) if (!problems.includes(p)) problems.push(p);
    for (const i of r.error.issues) {
      if (i.code !== 'unrecognized_keys') badKeys.add(i.path.filter((k) => typeof k === 'string').join('.'));
      value = prune(value, i);
    }
  }
  return { settings: {}, problems, badKeys };
}

/** YAML text -> a settings layer; YAML syntax errors with line and column. */
export function parseAgentYaml(text: string): ReturnType<typeof parseAgentFile> {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    return {
      settings: {},
      // Nothing of the file is known: no rule across keys can be checked.
      badKeys: new Set(['*']),
      problems: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return `${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${what}`;
      }),
    };
  }
  return parseAgentFile(doc.toJS());
}

// --- the command line -------------------------------------------------------------------------------------

/**
 * The flags' layer: only the options given on the command line (`given`,
 * from commander's getOptionValueSource), so a flag's default never hides a
 * value from the file or the environment.
 */
export function settingsFromFlags(opts: Record<string, unknown>, given: (attribute: string) => boolean): AgentSettings {
  const out: Record<string, unknown> = {};
  for (const [attr, key] of Object.entries(FLAG_ATTRIBUTES)) {
    if (!given(attr) || opts[attr] === undefined) continue;
    const [a, b] = key.split('.') as [string, string | undefined];
    if (b === undefined) out[a] = opts[attr];
    else out[a] = { ...(out[a] as object | undefined), [b]: opts[attr] };
  }
  return out as AgentSettings;
}

// --- layers ------------------------------------------------------------------------------------------------

type Flat = Map<string, unknown>;
const SECTIONS = new Set(['tls', 'spool', 'batch', 'kube', 'health']);

function flatten(s: AgentSettings): Flat {
  const out: Flat = new Map();
  for (const [k, v] of Object.entries(s)) {
    if (v === undefined) continue;
    if (SECTIONS.has(k) && isObject(v)) {
      for (const [k2, v2] of Object.entries(v)) if (v2 !== undefined) out.set(`${k}.${k2}`, v2);
    } else out.set(k, v);
  }
  return out;
}

export interface AgentConfigInput {
  /** Only what was given on the command line (base units). */
  flags: AgentSettings;
  env: Record<string, string | undefined>;
  /** The config file, already read: its path (for messages) and text. */
  file?: { path: string; text: string };
  /** Default node name. */
  hostname: string;
}

/**
 * Merge flags > env > file > defaults and check the result. Throws
 * AgentConfigError with every problem (file keys, flags, env and the rules
 * across them), one line each.
 */
export function resolveAgentConfig(input: AgentConfigInput): AgentConfig {
  const problems: string[] = [];
  const file = input.file ? parseAgentYaml(input.file.text) : { settings: {}, problems: [], badKeys: new Set<string>() };
  const fileLabel = input.file?.path ?? '';
  problems.push(...file.problems.map((p) => `${fileLabel}: ${p}`));

  const envLayer: AgentSettings = {};
  const envCollector = input.env.DOORWATCH_COLLECTOR?.trim();
  if (envCollector) envLayer.collector = envCollector;
  const envNode = input.env.NODE_NAME?.trim();
  if (envNode) envLayer.nodeName = envNode;

  // Later layers win; remember who set each key, for messages.
  const layers: [string, Flat][] = [
    ['file', flatten(file.settings)],
    ['env', flatten(envLayer)],
    ['flag', flatten(input.flags)],
  ];
  const merged: Flat = new Map();
  const origin = new Map<string, string>();
  for (const [name, flat] of layers) {
    for (const [k, v] of flat) {
      merged.set(k, v);
      origin.set(k, name);
    }
  }
  const who = (key: string): string => {
    const o = origin.get(key);
    if (o === 'flag') return FLAG_OF[key] ?? key;
    if (o === 'env') return ENV_OF[key] ?? key;
    return `${fileLabel}: ${key}`;
  };
  const get = <T>(key: string, dflt?: T): T => (merged.has(key) ? (merged.get(key) as T) : (dflt as T));
  const bad = (...ks: string[]) =>
    file.badKeys.has('*') || ks.some((k) => file.badKeys.has(k) || file.badKeys.has(k.split('.')[0]!));

  // Values that did not come through the file's schema (flags, env) are checked here.
  const collector = get<string | undefined>('collector');
  if (collector === undefined) {
    if (!bad('collector')) {
      problems.push(
        '--collector is required (or DOORWATCH_COLLECTOR, or `collector:` in the config file): the collector host:port',
      );
    }
  } else if (!parseHostPort(collector)) {
    problems.push(`${who('collector')}: "${collector}" is not host:port (e.g. collector.doorwatch:7443)`);
  }

  const insecure = get<boolean>('tls.insecure', false);
  const ca = get<string | undefined>('tls.ca');
  const cert = get<string | undefined>('tls.cert');
  const key = get<string | undefined>('tls.key');
  if (!insecure && ca === undefined && !bad('tls.ca', 'tls.insecure')) {
    problems.push('--ca is required (or --insecure for plaintext); in the config file: tls.ca, or tls.insecure: true');
  }
  if (!insecure && !cert !== !key && !bad('tls.cert', 'tls.key')) {
    problems.push(`--cert and --key go together (tls.cert and tls.key): only ${cert ? who('tls.cert') : who('tls.key')} is set`);
  }

  let health: HostPort | undefined;
  try {
    health = parseHealthAddress(get<string>('health.address', AGENT_DEFAULTS.health.address));
  } catch (e) {
    if (!bad('health.address')) problems.push(`${who('health.address')}: ${(e as Error).message}`);
  }

  if (problems.length) throw new AgentConfigError(problems, input.file?.path);

  const podName = input.env.POD_NAME?.trim();
  const podNamespace = input.env.POD_NAMESPACE?.trim();
  const labels = get<string[] | undefined>('kube.labels');
  const annotations = get<string[] | undefined>('kube.annotations');
  const kubeconfig = get<string | undefined>('kube.kubeconfig');
  const serverName = get<string | undefined>('tls.serverName');
  const policy = get<unknown>('policy');
  return {
    collector: collector!,
    tls: insecure
      ? { insecure: true }
      : { ca: ca!, ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(serverName ? { serverName } : {}) },
    spool: {
      dir: get('spool.dir', AGENT_DEFAULTS.spool.dir),
      maxBytes: get('spool.maxBytes', AGENT_DEFAULTS.spool.maxBytes),
      overflow: get('spool.overflow', AGENT_DEFAULTS.spool.overflow),
    },
    batch: {
      maxEvents: get('batch.maxEvents', AGENT_DEFAULTS.batch.maxEvents),
      maxDelayMs: get('batch.maxDelay', AGENT_DEFAULTS.batch.maxDelay),
    },
    flushTimeoutMs: get('flushTimeout', AGENT_DEFAULTS.flushTimeout),
    nodeName: get('nodeName', input.hostname),
    includeEagain: get('includeEagain', AGENT_DEFAULTS.includeEagain),
    ringBytes: get('ringSize', AGENT_DEFAULTS.ringSize),
    pollMs: get('pollInterval', AGENT_DEFAULTS.pollInterval),
    pendingDeadlineMs: get('pendingDeadline', AGENT_DEFAULTS.pendingDeadline),
    listenersPeriodMs: get('listeners.period', AGENT_DEFAULTS.listeners.period),
    logLevel: get('logLevel', AGENT_DEFAULTS.logLevel),
    kube: {
      enabled: get('kube.enabled', AGENT_DEFAULTS.kube.enabled),
      ...(kubeconfig ? { kubeconfig } : {}),
      ...(labels ? { labels } : {}),
      ...(annotations ? { annotations } : {}),
    },
    health: { address: health },
    ...(policy !== undefined ? { policy } : {}),
    pod: { ...(podName ? { name: podName } : {}), ...(podNamespace ? { namespace: podNamespace } : {}) },
    token: { file: get('tokenFile', AGENT_DEFAULTS.tokenFile), explicit: merged.has('tokenFile') },
  };
}

/** resolveAgentConfig with the file read from `configPath` (unreadable: an AgentConfigError like any other problem). */
export function loadAgentConfig(input: Omit<AgentConfigInput, 'file'> & { configPath?: string }): AgentConfig {
  const { configPath, ...rest } = input;
  if (configPath === undefined) return resolveAgentConfig(rest);
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new AgentConfigError([`${configPath}: cannot read the config file (${err.code ?? err.message})`], configPath);
  }
  return resolveAgentConfig({ ...rest, file: { path: configPath, text } });
}
