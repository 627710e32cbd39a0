import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { ZodError, type ZodIssue, z } from 'zod';
import { ConfigError, zodProblems } from '../config/errors.js';
import { type HostPort, parseHostPort } from '../config/host-port.js';
import { isObject, keyPath, knownKeysAt, suggestion } from '../config/keys.js';
import { parseDuration, parseSize } from '../config/units.js';
import type { SinkFactory } from '../sinks/sink.js';
import { RangeSet } from './peers/ranges.js';

/**
 * The collector's YAML config: one schema, validated once, every problem
 * reported together, each naming its key path. Environment variables are NOT
 * expanded (secrets come from files). Durations and sizes take the usual
 * human forms ("200ms", "16MiB"); a plain number is seconds / bytes, as on the
 * command line.
 */

/** Sink types by name; src/sinks/registry.ts builds the real one. */
export type SinkRegistry = Record<string, SinkFactory>;

export interface TlsConfig {
  /** Server certificate chain (PEM file). */
  cert: string;
  /** Its private key (PEM file). */
  key: string;
  /** CA bundle that client (agent) certificates must chain to (PEM file). */
  clientCa?: string;
  /** Refuse clients without a certificate from clientCa (mutual TLS). */
  requireClientCert: boolean;
}

export interface SinkConfig {
  name: string;
  type: string;
  /** Acks wait for this sink, and its queue never drops (back-pressure instead). */
  required: boolean;
  queue: { maxRecords: number };
  batch: { maxRecords: number; maxDelayMs: number };
  retry: { initialMs: number; maxMs: number };
  /** The type-specific keys (`format` included: each type has its own default), as parsed by the registry's `parse`. */
  options: unknown;
}

/**
 * Who may publish and who may subscribe (docs/security.md):
 * - none: any client that passes TLS may publish as any node and subscribe to everything (the old behaviour);
 * - kubernetes: agents present their projected ServiceAccount token, checked with TokenReview and bound to
 *   their node; subscribers present a token and are authorised per namespace with SubjectAccessReview;
 * - certificate: off-cluster, a static mapping from client-certificate identity (DNS SAN or CN) to the
 *   nodes it may publish as, and to the namespaces it may subscribe to.
 */
export interface AuthConfig {
  mode: 'none' | 'kubernetes' | 'certificate';
  kubernetes: {
    /** A kubeconfig file; default in-cluster config (then KUBECONFIG, ~/.kube/config). */
    kubeconfig?: string;
    /** The audience agents' projected tokens are minted for. */
    audience: string;
    /** The agents' ServiceAccount: the only identity that may publish. */
    agentServiceAccount: { namespace: string; name: string };
    /** Longest a TokenReview answer is reused (never past the token's own expiry). */
    cacheMaxMs: number;
  };
  certificate: {
    /** Certificate identity -> node names it may publish as. */
    agents: Record<string, string[]>;
    /** Certificate identity -> namespaces it may subscribe to ("*" = all). */
    subscribers: Record<string, string[]>;
  };
}

/** What one peer (client IP address) may hold, and what one request may carry. */
export interface LimitsConfig {
  connectionsPerPeer: number;
  streamsPerPeer: number;
  /** New calls per second per peer (burst: twice that). */
  callsPerSecondPerPeer: number;
  /** A Publish stream must send its Hello within this. */
  helloTimeoutMs: number;
  /** A TLS handshake must complete within this. */
  handshakeTimeoutMs: number;
  maxBatchEvents: number;
  /** Largest encoded event: bounds every string (and label map) in it. */
  maxEventBytes: number;
  /** At most one refusal log line per (peer address, reason) per this interval. */
  refusalLogIntervalMs: number;
}

/** Cluster-wide peer attribution (docs/configuration.md, "peers"). */
export interface PeersConfig {
  /** Watch pods, Services and nodes cluster-wide and attribute every event's peer and local address. */
  enabled: boolean;
  /** A kubeconfig file; default in-cluster config (then KUBECONFIG, ~/.kube/config). */
  kubeconfig?: string;
  /** How long an address's earlier holders stay answerable (IP reuse). */
  historyMs: number;
  /** Most ended holdings kept, whatever their age. */
  maxEndedHoldings: number;
  /** Label keys kept on attributions (exact or `prefix*`); absent = all. */
  labelAllowList?: string[];
  /** Pod/Service ranges besides the nodes' podCIDRs: unknown addresses inside are "not found", outside "external". */
  clusterCidrs: string[];
}

export interface CollectorConfig {
  /** host:port to listen on. */
  listen: string;
  tls?: TlsConfig;
  /** Plaintext gRPC (no TLS at all): only for tests and sidecar-terminated TLS. */
  insecure: boolean;
  maxMessageBytes: number;
  /** Per Publish stream. */
  rateLimit: { eventsPerSecond: number; burst: number };
  subscribers: { maxBuffered: number; max: number };
  /** How long stop() waits for the sink queues to drain. */
  drainTimeoutMs: number;
  /** Announce and apply batch contexts (a pod's fields once per batch: docs/transport.md). */
  batchContexts: boolean;
  auth: AuthConfig;
  limits: LimitsConfig;
  peers: PeersConfig;
  /** /healthz, /readyz and /metrics over plain HTTP; undefined: not served. */
  health: { address: HostPort | undefined };
  sinks: SinkConfig[];
}

const DEFAULT_LISTEN = '0.0.0.0:7443';

function human(kind: 'size' | 'duration', parse: (s: string) => number, example: string) {
  return z
    .union([z.string(), z.number()], { errorMap: () => ({ message: `expected a ${kind} such as ${example}` }) })
    .transform((v, ctx) => {
      try {
        return parse(String(v));
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
        return z.NEVER;
      }
    });
}

const size = human('size', parseSize, '"16MiB" or a number of bytes');
const duration = human('duration', parseDuration, '"200ms", "30s" or a number of seconds');
const count = z.number().int().positive();
const file = z.string().min(1, 'expected a file path');

export const isHostPort = (s: string): boolean => parseHostPort(s) !== undefined;

/** health.address: host:port, or "" / "off" (not served: the default outside the chart). */
export function parseHealthAddress(s: string): HostPort | undefined {
  const t = s.trim();
  if (t === '' || t.toLowerCase() === 'off') return undefined;
  const hp = parseHostPort(t);
  if (!hp) throw new Error(`"${s}" is not host:port (e.g. "0.0.0.0:9091", "127.0.0.1:0"), "" or "off"`);
  return hp;
}

const rootSchema = z
  .object({
    listen: z
      .string()
      .refine(isHostPort, { message: 'expected host:port (e.g. "0.0.0.0:7443", "[::]:7443", "localhost:0")' })
      .default(DEFAULT_LISTEN),
    tls: z
      .object({
        cert: file,
        key: file,
        clientCa: file.optional(),
        requireClientCert: z.boolean().default(true),
      })
      .strict()
      .optional(),
    insecure: z.boolean().default(false),
    maxMessageBytes: size.default('16MiB'),
    rateLimit: z
      .object({ eventsPerSecond: count.default(200_000), burst: count.optional() })
      .strict()
      .default({}),
    subscribers: z
      .object({ maxBuffered: count.default(10_000), max: count.default(100) })
      .strict()
      .default({}),
    drainTimeout: duration.default('10s'),
    batchContexts: z.boolean().default(true),
    auth: z
      .object({
        mode: z.enum(['none', 'kubernetes', 'certificate']).default('none'),
        kubernetes: z
          .object({
            kubeconfig: file.optional(),
            audience: z.string().min(1).default('doorwatch-collector'),
            agentServiceAccount: z
              .object({ namespace: z.string().min(1).default('doorwatch'), name: z.string().min(1).default('doorwatch-agent') })
              .strict()
              .default({}),
            cacheMax: duration.default('5m'),
          })
          .strict()
          .default({}),
        certificate: z
          .object({
            agents: z.record(z.array(z.string().min(1)).min(1, 'list at least one node name')).default({}),
            subscribers: z.record(z.array(z.string().min(1)).min(1, 'list at least one namespace, or "*"')).default({}),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    limits: z
      .object({
        connectionsPerPeer: count.default(32),
        streamsPerPeer: count.default(64),
        callsPerSecondPerPeer: count.default(20),
        helloTimeout: duration.default('10s'),
        handshakeTimeout: duration.default('10s'),
        maxBatchEvents: count.default(10_000),
        maxEventBytes: size.default('64KiB'),
        refusalLogInterval: duration.default('60s'),
      })
      .strict()
      .default({}),
    health: z
      .object({
        address: z
          .string()
          .refine(
            (s) => {
              try {
                parseHealthAddress(s);
                return true;
              } catch {
                return false;
              }
            },
            { message: 'expected host:port (e.g. "0.0.0.0:9091"), "" or "off"' },
          )
          .default('off'),
      })
      .strict()
      .default({}),
    peers: z
      .object({
        enabled: z.boolean().default(false),
        kubeconfig: file.optional(),
        history: duration.default('5m'),
        maxEndedHoldings: count.default(200_000),
        labelAllowList: z.array(z.string()).optional(),
        clusterCidrs: z
          .array(
            z
              .string()
              .refine((c) => new RangeSet().add(c), { message: 'expected a CIDR such as "10.244.0.0/16" or "fd00::/48"' }),
          )
          .default([]),
      })
      .strict()
      .default({}),
    sinks: z.array(z.unknown()).min(1, 'at least one sink is required'),
  })
  .strict();

const SINK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const sinkCommonSchema = z
  .object({
    name: z.string().min(1).regex(SINK_NAME, 'use letters, digits, "_", "." and "-" (it names the sink in logs and stats)'),
    type: z.string().min(1),
    required: z.boolean().default(true),
    queue: z
      .object({ maxRecords: count.default(100_000) })
      .strict()
      .default({}),
    batch: z
      .object({ maxRecords: count.default(500), maxDelay: duration.default('200ms') })
      .strict()
      .default({}),
    retry: z
      .object({ initial: duration.default('200ms'), max: duration.default('30s') })
      .strict()
      .default({}),
  })
  .passthrough();

const COMMON_SINK_KEYS = new Set(Object.keys(sinkCommonSchema.shape));

/** zod issues -> problems; unknown keys get their own line each, with a suggestion. */
function problemsOf(err: ZodError, schema: z.ZodTypeAny, prefix = '', prefixPath: (string | number)[] = []): string[] {
  const out: string[] = [];
  const rest: ZodIssue[] = [];
  for (const i of err.issues) {
    if (i.code === 'unrecognized_keys') {
      const known = knownKeysAt(schema, i.path.slice(prefixPath.length));
      for (const k of i.keys) out.push(`unknown key "${k}" at ${keyPath(prefix, i.path)}${suggestion(k, known)}`);
    } else rest.push(i);
  }
  return [...zodProblems(new ZodError(rest), prefix), ...out];
}

function sinkTypeProblems(
  factory: SinkFactory,
  rest: Record<string, unknown>,
  at: string,
): { options?: unknown; problems: string[] } {
  try {
    return { options: factory.parse(rest, at), problems: [] };
  } catch (e) {
    if (e instanceof ConfigError) return { problems: e.problems };
    if (e instanceof ZodError) return { problems: zodProblems(e, at) };
    return { problems: [`${at}: ${(e as Error).message}`] };
  }
}

/**
 * Validate an already-parsed YAML/JSON value. Throws ConfigError with every
 * problem; `source` names the file in the message.
 */
export function parseCollectorConfig(raw: unknown, source: string, registry: SinkRegistry): CollectorConfig {
  const problems: string[] = [];
  const root = rootSchema.safeParse(raw);
  if (!root.success) problems.push(...problemsOf(root.error, rootSchema));

  const obj = isObject(raw) ? raw : {};
  // Cross-key rules, checked on the raw value so they are reported together
  // with type errors elsewhere (zod skips refinements once a key is invalid).
  if (obj.insecure === true && obj.tls !== undefined) {
    problems.push('tls: must be absent when insecure is true (insecure means plaintext gRPC, no TLS at all)');
  }
  if (obj.insecure !== true && obj.tls === undefined && isObject(raw)) {
    problems.push('tls: required (cert, key, clientCa), unless insecure: true is set for plaintext');
  }
  if (isObject(obj.tls) && obj.tls.requireClientCert !== false && obj.tls.clientCa === undefined) {
    problems.push('tls.clientCa: required while tls.requireClientCert is true (the CA that signs agent certificates)');
  }

  problems.push(...authProblems(obj.auth));

  const sinks: SinkConfig[] = [];
  const seen = new Map<string, number>();
  const known = Object.keys(registry).sort();
  if (Array.isArray(obj.sinks)) {
    obj.sinks.forEach((s, i) => {
      const at = `sinks[${i}]`;
      const common = sinkCommonSchema.safeParse(s);
      if (!common.success) problems.push(...problemsOf(common.error, sinkCommonSchema, at));
      if (!isObject(s)) return;
      if (typeof s.name === 'string') {
        const first = seen.get(s.name);
        if (first !== undefined) problems.push(`${at}.name: duplicate sink name "${s.name}" (also sinks[${first}].name)`);
        else seen.set(s.name, i);
      }
      let factory: SinkFactory | undefined;
      if (typeof s.type === 'string') {
        factory = Object.hasOwn(registry, s.type) ? registry[s.type] : undefined;
        if (!factory) {
          problems.push(
            `${at}.type: unknown sink type "${s.type}"${suggestion(s.type, known)} (known: ${known.join(', ') || 'none'})`,
          );
        }
      }
      const rest = Object.fromEntries(Object.entries(s).filter(([k]) => !COMMON_SINK_KEYS.has(k)));
      const typed = factory ? sinkTypeProblems(factory, rest, at) : { problems: [] };
      problems.push(...typed.problems);
      if (common.success && factory && !typed.problems.length) {
        const c = common.data;
        if (c.retry.initial > c.retry.max) {
          problems.push(`${at}.retry.initial: must not exceed retry.max (${c.retry.initial}ms > ${c.retry.max}ms)`);
        }
        sinks.push({
          name: c.name,
          type: c.type,
          required: c.required,
          queue: c.queue,
          batch: { maxRecords: c.batch.maxRecords, maxDelayMs: c.batch.maxDelay },
          retry: { initialMs: c.retry.initial, maxMs: c.retry.max },
          options: typed.options,
        });
      }
    });
  }

  if (problems.length || !root.success) throw new ConfigError(source, problems);
  const r = root.data;
  return {
    listen: r.listen,
    ...(r.tls ? { tls: r.tls } : {}),
    insecure: r.insecure,
    maxMessageBytes: r.maxMessageBytes,
    rateLimit: { eventsPerSecond: r.rateLimit.eventsPerSecond, burst: r.rateLimit.burst ?? r.rateLimit.eventsPerSecond },
    subscribers: r.subscribers,
    drainTimeoutMs: r.drainTimeout,
    batchContexts: r.batchContexts,
    auth: {
      mode: r.auth.mode,
      kubernetes: {
        ...(r.auth.kubernetes.kubeconfig ? { kubeconfig: r.auth.kubernetes.kubeconfig } : {}),
        audience: r.auth.kubernetes.audience,
        agentServiceAccount: r.auth.kubernetes.agentServiceAccount,
        cacheMaxMs: r.auth.kubernetes.cacheMax,
      },
      certificate: r.auth.certificate,
    },
    limits: {
      connectionsPerPeer: r.limits.connectionsPerPeer,
      streamsPerPeer: r.limits.streamsPerPeer,
      callsPerSecondPerPeer: r.limits.callsPerSecondPerPeer,
      helloTimeoutMs: r.limits.helloTimeout,
      handshakeTimeoutMs: r.limits.handshakeTimeout,
      maxBatchEvents: r.limits.maxBatchEvents,
      maxEventBytes: r.limits.maxEventBytes,
      refusalLogIntervalMs: r.limits.refusalLogInterval,
    },
    peers: {
      enabled: r.peers.enabled,
      ...(r.peers.kubeconfig ? { kubeconfig: r.peers.kubeconfig } : {}),
      historyMs: r.peers.history,
      maxEndedHoldings: r.peers.maxEndedHoldings,
      ...(r.peers.labelAllowList ? { labelAllowList: r.peers.labelAllowList } : {}),
      clusterCidrs: r.peers.clusterCidrs,
    },
    health: { address: parseHealthAddress(r.health.address) },
    sinks,
  };
}

/** Cross-key rules of `auth`, on the raw value (reported together with everything else). */
function authProblems(auth: unknown): string[] {
  if (!isObject(auth)) return [];
  const out: string[] = [];
  const cert = isObject(auth.certificate) ? auth.certificate : {};
  if (auth.mode === 'certificate') {
    if (!isObject(cert.agents) || !Object.keys(cert.agents).length) {
      out.push('auth.certificate.agents: required when auth.mode is certificate (certificate identity -> node names)');
    }
    const agents = isObject(cert.agents) ? Object.keys(cert.agents) : [];
    const subs = isObject(cert.subscribers) ? Object.keys(cert.subscribers) : [];
    for (const id of agents.filter((a) => subs.includes(a))) {
      out.push(
        `auth.certificate.subscribers.${id}: also an agent identity; publishing and subscribing need separate certificates`,
      );
    }
  }
  return out;
}

/** YAML text -> config; YAML syntax errors are reported with line and column. */
export function parseCollectorYaml(text: string, source: string, registry: SinkRegistry): CollectorConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return `${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${what}`;
      }),
    );
  }
  return parseCollectorConfig(doc.toJS() ?? {}, source, registry);
}

export async function loadCollectorConfig(path: string, registry: SinkRegistry): Promise<CollectorConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, [`cannot read the config file: ${(e as Error).message}`]);
  }
  return parseCollectorYaml(text, path, registry);
}
