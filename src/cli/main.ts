import { writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { AGENT_DEFAULTS, AgentConfigError, loadAgentConfig, ringSizeBytes, settingsFromFlags } from '../agent/config.js';
import { CollectorStartError } from '../collector/errors.js';
import { ConfigError } from '../config/errors.js';
import { formatDuration, formatSize, parseDuration, parseSize, UnitError } from '../config/units.js';
import { DoorwatchError } from '../errors.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type Logger, type LogLevel, resolveLogFormat } from '../log/logger.js';
import { TailConnectError } from './tail-error.js';
import type { TraceOptions } from './trace.js';
import { FAMILY_NAMES } from './trace-filter.js';
import { tuneV8 } from './v8-heap.js';

/**
 * The only place that reads the environment, installs signal handlers and
 * exits the process. Exit codes: 0 ok, 1 runtime failure, 2 usage error.
 */

const EXIT_RUNTIME = 1;
const EXIT_USAGE = 2;

function wrap<T>(fn: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return fn(v);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

function list<T>(parse: (s: string) => T) {
  return (value: string, prev: T[] | undefined): T[] => {
    const items = value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (!items.length) throw new InvalidArgumentError('expected a value');
    return [...(prev ?? []), ...items.map((s) => wrap(parse)(s))];
  };
}

const int =
  (min: number, max: number, what: string) =>
  (s: string): number => {
    if (!/^\d+$/.test(s)) throw new UnitError(`"${s}" is not a ${what}`);
    const n = Number(s);
    if (n < min || n > max) throw new UnitError(`${what} ${s} is out of range ${min}-${max}`);
    return n;
  };

function family(s: string) {
  const f = FAMILY_NAMES[s.toLowerCase()];
  if (f === undefined) throw new UnitError(`unknown family "${s}" (use inet, inet6 or unix)`);
  return f;
}

function labelPair(s: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) throw new UnitError(`"${s}" is not a label (key=value)`);
  return [s.slice(0, i), s.slice(i + 1)];
}

function stopSignal(): Promise<string> {
  return new Promise<string>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve(sig));
  });
}

/**
 * A duration flag. Its default is shown with its unit ("10ms", "2s"), as a user would type it: a plain number
 * on the command line is seconds, so a bare "10" in --help would be read back as 10 s.
 */
function durationOption(flags: string, description: string, defaultMs?: number): Option {
  const o = new Option(flags, description).argParser(wrap(parseDuration));
  return defaultMs === undefined ? o : o.default(defaultMs, formatDuration(defaultMs));
}

/** A size flag, its default shown with its unit ("8MiB"). */
function sizeOption(flags: string, description: string, parse: (s: string) => number, defaultBytes: number): Option {
  return new Option(flags, description).argParser(wrap(parse)).default(defaultBytes, formatSize(defaultBytes));
}

/** Said once under every command that takes durations. */
const DURATION_HELP = '\nDurations: 500ms, 30s, 5m, 1h; a plain number is seconds. Sizes: 4096, 64KiB, 8MiB.';

const logLevelOption = () =>
  new Option('--log-level <level>', 'log level (logs go to stderr)').choices(LOG_LEVELS).default(AGENT_DEFAULTS.logLevel);

const logFormatOption = () =>
  new Option(
    '--log-format <format>',
    'logs as JSON lines or readable text (env DOORWATCH_LOG_FORMAT; default: auto = text when stderr is a terminal, JSON otherwise)',
  ).choices(LOG_FORMATS);

/** The command's logger: --log-format, else DOORWATCH_LOG_FORMAT, else text on a terminal and JSON elsewhere. */
function commandLogger(level: LogLevel, flag: string | undefined, env: NodeJS.ProcessEnv): Logger {
  const asked = flag ?? env.DOORWATCH_LOG_FORMAT;
  if (asked !== undefined && !(LOG_FORMATS as readonly string[]).includes(asked)) {
    throw new DoorwatchError(
      'DW_ERR_CLI_USAGE',
      `DOORWATCH_LOG_FORMAT="${asked}" is not a log format`,
      `use ${LOG_FORMATS.join(', ')} (or unset it)`,
    );
  }
  const tty = process.stderr.isTTY === true;
  return createLogger(level, resolveLogFormat(asked, tty), tty && !env.NO_COLOR);
}

/** Flags the agent shares with trace: capture and enrichment. */
function captureOptions(cmd: Command): Command {
  return cmd
    .option(
      '--include-eagain',
      'also report EAGAIN/EWOULDBLOCK results (non-blocking polling; noisy)',
      AGENT_DEFAULTS.includeEagain,
    )
    .addOption(sizeOption('--ring-size <size>', 'kernel ring buffer size, power of two', ringSizeBytes, AGENT_DEFAULTS.ringSize))
    .addOption(durationOption('--poll-interval <duration>', 'how often the ring buffer is drained', AGENT_DEFAULTS.pollInterval))
    .option('--node-name <name>', "this node's name: event ids and the pod watch (env NODE_NAME, default: host name)")
    .option('--kubeconfig <path>', 'kubeconfig for pod metadata (default: in-cluster, $KUBECONFIG, ~/.kube/config)')
    .option(
      '--pod-labels <keys>',
      'pod/namespace labels to keep (comma list; `prefix*` globs; default: all)',
      list((s) => s),
    )
    .option(
      '--pod-annotations <keys>',
      'pod annotations to keep (comma list; `prefix*` globs; default: none)',
      list((s) => s),
    )
    .option('--no-kube', 'no Kubernetes metadata (containers are still identified from cgroups)')
    .addOption(
      durationOption(
        '--pending-deadline <duration>',
        'hold an event at most this long for its pod to appear in the API',
        AGENT_DEFAULTS.pendingDeadline,
      ),
    )
    .addHelpText('after', DURATION_HELP);
}

// biome-ignore lint/suspicious/noExplicitAny: commander's parsed options are untyped
function kubeOptions(opts: any, env: NodeJS.ProcessEnv): TraceOptions['kube'] {
  return {
    enabled: opts.kube !== false,
    kubeconfigPath: opts.kubeconfig,
    env,
    labelAllowList: opts.podLabels,
    annotationAllowList: opts.podAnnotations,
  };
}

export function buildProgram(env: NodeJS.ProcessEnv = process.env, errors: string[] = []): Command {
  const program = new Command('doorwatch')
    .description('Audit every accepted connection: accept(), accept4() and io_uring accepts, via eBPF')
    .showSuggestionAfterError(true)
    .configureOutput({ writeErr: (s) => errors.push(s) })
    .exitOverride();

  const trace = program
    .command('trace')
    .description('watch every accepted connection on this host, live (needs root or CAP_BPF+CAP_PERFMON)')
    .addOption(
      new Option('-o, --output <format>', 'table (human), json (one event per line) or tracee (Tracee v0.24 event JSON)')
        .choices(['table', 'json', 'tracee', 'auto'])
        .default('auto'),
    )
    .option('--pid <pids>', 'only these process ids (comma list, repeatable)', list(int(1, 2 ** 31 - 1, 'pid')))
    .option(
      '--comm <names>',
      'only these process names (comma list, repeatable)',
      list((s) => s),
    )
    .option('--port <ports>', 'only connections with this local or peer port', list(int(0, 65535, 'port')))
    .option('--family <families>', 'only these families: inet, inet6, unix', list(family))
    .option(
      '--namespace <namespaces>',
      'audit only pods in these namespaces, filtered in the kernel (needs Kubernetes metadata)',
      list((s) => s),
    )
    .option('--policy <file>', 'audit policies to apply, as the agent would (AcceptAuditPolicy YAML; docs/policy.md)')
    .addOption(durationOption('--duration <duration>', 'stop after this long (without it: until Ctrl-C)'));
  captureOptions(trace)
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async (opts) => {
      const output = opts.output === 'auto' ? (process.stdout.isTTY ? 'table' : 'json') : opts.output;
      const traceOpts: TraceOptions = {
        output,
        filter: { pids: opts.pid, comms: opts.comm, ports: opts.port, families: opts.family, namespaces: opts.namespace },
        includeEagain: opts.includeEagain,
        durationMs: opts.duration,
        ringBytes: opts.ringSize,
        pollMs: opts.pollInterval,
        nodeName: opts.nodeName ?? env.NODE_NAME ?? hostname(),
        kube: kubeOptions(opts, env),
        pendingDeadlineMs: opts.pendingDeadline,
        policyFile: opts.policy,
      };
      const log = commandLogger(opts.logLevel as LogLevel, opts.logFormat, env);
      const writeOut = (chunk: Uint8Array) => writeSync(1, chunk);
      // Each command loads only its own code: the agent never loads the collector's sinks (NATS, HTTP), and so on.
      const { runTrace } = await import('./trace.js');
      await runTrace(traceOpts, { stdout: process.stdout, stderr: process.stderr, writeOut, log, stopSignal: stopSignal() });
    });

  const agent = program
    .command('agent')
    .description('capture, enrich and stream every accept to the collector (the DaemonSet entrypoint)')
    .option('-c, --config <file>', 'YAML config file; its keys mirror these flags, which override it (docs/configuration.md)')
    .option('--collector <host:port>', "the collector's gRPC address (env DOORWATCH_COLLECTOR; required)")
    .option('--ca <file>', "CA that signed the collector's certificate (PEM)")
    .option('--cert <file>', "this agent's client certificate for mutual TLS (PEM)")
    .option('--key <file>', 'its private key (PEM)')
    .option('--server-name <name>', "name to verify the collector's certificate against")
    .option('--insecure', 'plaintext gRPC (never in production)')
    .option(
      '--token-file <file>',
      'projected ServiceAccount token sent to the collector, re-read for every stream (default /var/run/secrets/doorwatch/token)',
    )
    .option(
      '--spool-dir <dir>',
      'on-disk spool: survives agent restarts and collector outages (default /var/lib/doorwatch/spool)',
    )
    .addOption(sizeOption('--spool-max <size>', 'spool size bound', parseSize, AGENT_DEFAULTS.spool.maxBytes))
    .addOption(
      new Option(
        '--spool-overflow <policy>',
        'when the spool is full; drops are counted and reported (default drop-oldest)',
      ).choices(['drop-oldest', 'drop-newest']),
    )
    .option('--batch-max-events <n>', 'events per batch (default 500)', wrap(int(1, 100_000, 'batch size')))
    .addOption(
      durationOption(
        '--batch-max-delay <duration>',
        'longest an event waits for a fuller batch while earlier ones are unacknowledged',
        AGENT_DEFAULTS.batch.maxDelay,
      ),
    )
    .addOption(
      durationOption(
        '--flush-timeout <duration>',
        'on shutdown, wait this long for acks of pending events',
        AGENT_DEFAULTS.flushTimeout,
      ),
    )
    .option('--health-address <host:port>', 'serve /healthz, /readyz and /metrics here (default 0.0.0.0:9090; "off" disables)')
    .addOption(
      durationOption(
        '--listeners-period <duration>',
        'rescan /proc and re-send the listener inventory this often (docs/events.md)',
        AGENT_DEFAULTS.listeners.period,
      ),
    );
  captureOptions(agent)
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async (opts, cmd: Command) => {
      // Flags > env > file > defaults: only flags actually given count (their defaults live in src/agent/config.ts).
      const config = loadAgentConfig({
        configPath: opts.config,
        flags: settingsFromFlags(opts, (attr) => cmd.getOptionValueSource(attr) === 'cli'),
        env,
        hostname: hostname(),
      });
      const log = commandLogger(config.logLevel, opts.logFormat, env);
      const { agentOptions, runAgent } = await import('./agent.js');
      await runAgent(agentOptions(config, env), { log, stopSignal: stopSignal() });
    });

  program
    .command('listeners')
    .description("this node's listening TCP and unix sockets, attributed to process, container and pod (from /proc; needs root)")
    .addOption(
      new Option('-o, --output <format>', 'table (human) or json (one record per line, as the agent sends them)')
        .choices(['table', 'json', 'auto'])
        .default('auto'),
    )
    .option('--node-name <name>', "this node's name: the pod watch (env NODE_NAME, default: host name)")
    .option('--kubeconfig <path>', 'kubeconfig for pod metadata (default: in-cluster, $KUBECONFIG, ~/.kube/config)')
    .option(
      '--pod-labels <keys>',
      'pod/namespace labels to keep (comma list; `prefix*` globs; default: all)',
      list((s) => s),
    )
    .option('--no-kube', 'no Kubernetes metadata (containers are still identified from cgroups)')
    .addOption(
      durationOption(
        '--pending-deadline <duration>',
        'wait at most this long for pods to appear in the API',
        AGENT_DEFAULTS.pendingDeadline,
      ),
    )
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText('after', DURATION_HELP)
    .action(async (opts) => {
      const log = commandLogger(opts.logLevel as LogLevel, opts.logFormat, env);
      const { runListeners } = await import('./listeners.js');
      await runListeners(
        {
          output: opts.output === 'auto' ? (process.stdout.isTTY ? 'table' : 'json') : opts.output,
          nodeName: opts.nodeName ?? env.NODE_NAME ?? hostname(),
          kube: kubeOptions(opts, env),
          pendingDeadlineMs: opts.pendingDeadline,
        },
        { write: (t) => writeSync(1, t), log },
      );
    });

  const policy = program.command('policy').description('audit policies: check them offline (docs/policy.md)');
  policy
    .command('check')
    .description('validate a policy file (AcceptAuditPolicy objects and/or a policy configuration) and explain it')
    .argument('<file>', 'YAML file: AcceptAuditPolicy documents, an agent config, or its `policy:` block')
    .option('--admin-namespace <namespace>', 'the Doorwatch namespace (may select other namespaces)', 'doorwatch')
    .option('--example-namespace <namespace>', 'also say which policy governs a pod in this namespace')
    .option('--example-labels <k=v,...>', "that pod's labels", list(labelPair))
    .option('--example-namespace-labels <k=v,...>', "its namespace's labels", list(labelPair))
    .action(async (file: string, opts) => {
      const { runPolicyCheck } = await import('./policy.js');
      const r = runPolicyCheck({
        file,
        adminNamespace: opts.adminNamespace,
        example: opts.exampleNamespace
          ? {
              namespace: opts.exampleNamespace,
              labels: Object.fromEntries(opts.exampleLabels ?? []),
              namespaceLabels: Object.fromEntries(opts.exampleNamespaceLabels ?? []),
            }
          : undefined,
      });
      process.stdout.write(r.text);
      if (!r.ok)
        throw new DoorwatchError(
          'DW_ERR_POLICY_INVALID',
          `${file} holds policies agents would reject (listed above)`,
          'fix the keys named above; see docs/policy.md',
        );
    });

  program
    .command('collector')
    .description("receive agents' streams over gRPC (mutual TLS) and deliver them to SIEM sinks")
    .requiredOption('-c, --config <file>', 'collector configuration (YAML; see docs/collector.md)')
    .option(
      '--health-address <host:port>',
      'serve /healthz, /readyz and /metrics here over plain HTTP (overrides health.address; default off; "off" disables)',
    )
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async (opts) => {
      const log = commandLogger(opts.logLevel as LogLevel, opts.logFormat, env);
      const [{ runCollector }, { sinkRegistry }] = await Promise.all([import('./collector.js'), import('../sinks/registry.js')]);
      await runCollector(
        { configPath: opts.config, logLevel: opts.logLevel, healthAddress: opts.healthAddress },
        { log, stopSignal: stopSignal(), registry: sinkRegistry },
      );
    });

  program
    .command('tail')
    .description('follow live events from a collector (Subscribe), with filters')
    .requiredOption('--server <host:port>', "the collector's gRPC address")
    .option('--ca <file>', "CA of the collector's certificate (PEM)")
    .option('--cert <file>', 'client certificate (PEM), when the collector requires one')
    .option('--key <file>', 'its private key (PEM)')
    .option('--insecure', 'plaintext gRPC', false)
    .option(
      '--token-file <file>',
      "bearer token for the collector (default: the kubeconfig user's token; never sent in plaintext)",
    )
    .option('--kubeconfig <file>', 'kubeconfig whose current user token is sent (default $KUBECONFIG or ~/.kube/config)')
    .option(
      '--namespace <namespaces>',
      'only these pod namespaces',
      list((s) => s),
    )
    .option(
      '--pod <pods>',
      'only these pod names',
      list((s) => s),
    )
    .option(
      '--node <nodes>',
      'only these nodes',
      list((s) => s),
    )
    .option('--port <ports>', 'only this local or peer port', list(int(0, 65535, 'port')))
    .option(
      '--peer <cidrs>',
      'only peers in these IPs/CIDRs',
      list((s) => s),
    )
    .option(
      '--peer-namespace <namespaces>',
      "only peers (pods, Services) in these namespaces (the collector's peer attribution)",
      list((s) => s),
    )
    .option(
      '--peer-workload <workloads>',
      'only peer pods of these workloads: "web" or "Deployment/web"',
      list((s) => s),
    )
    .addOption(
      new Option('-o, --output <format>', 'table, json or tracee (Tracee v0.24 event JSON)')
        .choices(['table', 'json', 'tracee', 'auto'])
        .default('auto'),
    )
    .addOption(durationOption('--duration <duration>', 'stop after this long (without it: until Ctrl-C)'))
    .addHelpText('after', DURATION_HELP)
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async (opts) => {
      const log = commandLogger(opts.logLevel as LogLevel, opts.logFormat, env);
      const { runTail } = await import('./tail.js');
      await runTail(
        {
          server: opts.server,
          ca: opts.ca,
          cert: opts.cert,
          key: opts.key,
          insecure: opts.insecure,
          tokenFile: opts.tokenFile,
          kubeconfig: opts.kubeconfig,
          env,
          filter: {
            namespaces: opts.namespace,
            pods: opts.pod,
            nodes: opts.node,
            ports: opts.port,
            peers: opts.peer,
            peerNamespaces: opts.peerNamespace,
            peerWorkloads: opts.peerWorkload,
          },
          output: opts.output === 'auto' ? (process.stdout.isTTY ? 'table' : 'json') : opts.output,
          durationMs: opts.duration,
        },
        { stdout: process.stdout, stderr: process.stderr, log, stopSignal: stopSignal() },
      );
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  tuneV8();
  const usage: string[] = [];
  const program = buildProgram(process.env, usage);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0; // --help, --version
      // One line: commander's reason (and suggestion), the code, the way out.
      const why =
        usage
          .join(' ')
          .replace(/^error: /, '')
          .replace(/\s+/g, ' ')
          .trim() || e.message;
      const cmd = argv[0] && program.commands.some((c) => c.name() === argv[0]) ? ` ${argv[0]}` : '';
      process.stderr.write(`doorwatch: ${why} (DW_ERR_CLI_USAGE) — see \`doorwatch${cmd} --help\`\n`);
      return EXIT_USAGE;
    }
    if (e instanceof AgentConfigError) {
      process.stderr.write(`doorwatch: ${e.lines().join('\n')}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof ConfigError) {
      const doc =
        argv[0] === 'policy' || argv.includes('--policy')
          ? 'docs/policy.md'
          : argv[0] === 'collector'
            ? 'docs/collector.md'
            : 'docs/configuration.md';
      process.stderr.write(`doorwatch: ${e.message} (DW_ERR_CONFIG) — fix the keys named above; see ${doc}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof CollectorStartError) {
      const fix =
        e.code === 'DW_ERR_COLLECTOR_LISTEN'
          ? 'change `listen` or stop what holds the port'
          : 'fix the destination or the sink keys (docs/sinks/)';
      process.stderr.write(`doorwatch: ${e.message} (${e.code}) — ${fix}\n`);
      return EXIT_RUNTIME;
    }
    if (e instanceof TailConnectError) {
      process.stderr.write(`doorwatch: ${e.message} (DW_ERR_TAIL_CONNECT)\n`);
      return EXIT_RUNTIME;
    }
    if (e instanceof DoorwatchError) {
      process.stderr.write(`doorwatch: ${e.oneLine()}\n`);
      return e.code === 'DW_ERR_CLI_USAGE' ? EXIT_USAGE : EXIT_RUNTIME;
    }
    process.stderr.write(`doorwatch: unexpected error: ${(e as Error).stack ?? e}\n`);
    return EXIT_RUNTIME;
  }
}
