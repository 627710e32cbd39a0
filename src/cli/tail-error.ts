import type { Status } from 'nice-grpc';

// Its own module: the cli's error handler checks for it without loading gRPC.

/**
 * The collector could not be reached or refused the subscription
 * (DW_ERR_TAIL_CONNECT): one line that carries the gRPC status and the fix,
 * which main() prints with the code.
 */
export class TailConnectError extends Error {
  readonly status: Status | undefined;
  constructor(message: string, status?: Status, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TailConnectError';
    this.status = status;
  }
}
