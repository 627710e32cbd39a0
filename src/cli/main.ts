import { hostname } from 'node:os';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseDuration, parseSize, UnitError } from '../config/units.js';
import { DoorwatchError } from '../errors.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../log/logger.js';
import { runTrace, type TraceOptions } from './trace.js';
import { FAMILY_NAMES } from './trace-filter.js';

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

function ringSize(s: string): number {
  const n = parseSize(s);
  if (n < 4096 || (n & (n - 1)) !== 0) throw new UnitError(`ring size ${s} must be a power of two of at least 4KiB (e.g. 8MiB)`);
  return n;
}

function family(s: string) {
  const f = FAMILY_NAMES[s.toLowerCase()];
  if (f === undefined) throw new UnitError(`unknown family "${s}" (use inet, inet6 or unix)`);
  return f;
}

export function buildProgram(env: NodeJS.ProcessEnv = process.env, errors: string[] = []): Command {
  const program = new Command('doorwatch')
    .description('Audit every accepted connection: accept(), accept4() and io_uring accepts, via eBPF')
    .showSuggestionAfterError(true)
    .configureOutput({ writeErr: (s) => errors.push(s) })
    .exitOverride();

  program
    .command('trace')
    .description('watch every accepted connection on this host, live (needs root or CAP_BPF+CAP_PERFMON)')
    .addOption(
      new Option('-o, --output <format>', 'table (human) or json (one event per line)')
        .choices(['table', 'json', 'auto'])
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
    .option('--include-eagain', 'also report EAGAIN/EWOULDBLOCK results (non-blocking polling; noisy)', false)
    .option('--duration <duration>', 'stop after this long (30s, 5m)', wrap(parseDuration))
    .option('--ring-size <size>', 'kernel ring buffer size, power of two', wrap(ringSize), 8 << 20)
    .option('--poll-interval <duration>', 'how often the ring buffer is drained', wrap(parseDuration), 10)
    .option(
      '--namespace <namespaces>',
      'only pods in these namespaces (needs Kubernetes metadata)',
      list((s) => s),
    )
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
    .option(
      '--pending-deadline <duration>',
      'hold an event at most this long for its pod to appear in the API',
      wrap(parseDuration),
      2000,
    )
    .addOption(new Option('--log-level <level>', 'log level (logs go to stderr)').choices(LOG_LEVELS).default('info'))
    .action(async (opts) => {
      const output = opts.output === 'auto' ? (process.stdout.isTTY ? 'table' : 'json') : opts.output;
      const log = createLogger(opts.logLevel as LogLevel);
      const traceOpts: TraceOptions = {
        output,
        filter: { pids: opts.pid, comms: opts.comm, ports: opts.port, families: opts.family, namespaces: opts.namespace },
        includeEagain: opts.includeEagain,
        durationMs: opts.duration,
        ringBytes: opts.ringSize,
        pollMs: opts.pollInterval,
        nodeName: opts.nodeName ?? env.NODE_NAME ?? hostname(),
        kube: {
          enabled: opts.kube !== false,
          kubeconfigPath: opts.kubeconfig,
          env,
          labelAllowList: opts.podLabels,
          annotationAllowList: opts.podAnnotations,
        },
        pendingDeadlineMs: opts.pendingDeadline,
      };
      const stopSignal = new Promise<string>((resolve) => {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve(sig));
      });
      await runTrace(traceOpts, { stdout: process.stdout, stderr: process.stderr, log, stopSignal });
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
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
    if (e instanceof DoorwatchError) {
      process.stderr.write(`doorwatch: ${e.oneLine()}\n`);
      return EXIT_RUNTIME;
    }
    process.stderr.write(`doorwatch: unexpected error: ${(e as Error).stack ?? e}\n`);
    return EXIT_RUNTIME;
  }
}
