/**
 * Every error a user can see, with a stable code, the value that was wrong and
 * the fix. docs/errors.md lists each code; test/unit/errors.test.ts keeps the
 * two in sync. Only src/cli turns these into exit codes.
 */
export const ErrorCodes = {
  DW_ERR_CLI_USAGE: 'a command-line flag or argument is invalid',
  DW_ERR_CONFIG: 'a configuration file is invalid (every problem is listed, by key)',
  DW_ERR_COLLECTOR_SINK_START: 'a configured sink could not start (unreachable, refused, misconfigured)',
  DW_ERR_COLLECTOR_LISTEN: 'the collector cannot listen on its address',
  DW_ERR_POLICY_INVALID: 'an audit policy file holds policies that would be rejected',
  DW_ERR_TAIL_CONNECT: 'the collector is unreachable or refused the subscription',
  DW_ERR_AGENT_CONFIG: "the agent's settings (config file, flags, env) are invalid (every problem is listed)",
  DW_ERR_AGENT_HEALTH_LISTEN: 'the agent cannot listen on its health/metrics address',
  DW_ERR_BPF_PRIVILEGE: 'the process lacks the privileges to load eBPF programs',
  DW_ERR_BPF_NO_BTF: 'the kernel does not expose BTF type information',
  DW_ERR_BPF_NO_LIBBPF: 'the system libbpf shared library is missing',
  DW_ERR_BPF_NO_TRACEFS: 'tracefs is not mounted, so tracepoints cannot be attached',
  DW_ERR_BPF_OBJECT: 'the compiled BPF object is missing or unreadable',
  DW_ERR_BPF_LOAD: 'the kernel refused to load a BPF program or map',
  DW_ERR_BPF_VERIFIER: 'the BPF verifier rejected a program',
  DW_ERR_BPF_ATTACH: 'a BPF program could not be attached to its hook',
  DW_ERR_BPF_RINGBUF: 'the event ring buffer could not be mapped',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class DoorwatchError extends Error {
  readonly code: ErrorCode;
  /** What to do about it, one sentence. */
  readonly hint: string;

  constructor(code: ErrorCode, message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DoorwatchError';
    this.code = code;
    this.hint = hint;
  }

  /** The one line a user sees: "doorwatch: <what> (<code>): <fix>". */
  oneLine(): string {
    return `${this.message} (${this.code}) — ${this.hint}`;
  }
}
