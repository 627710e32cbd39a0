// Its own module: the cli's error handler checks for it without loading the collector.

/** Thrown when a sink cannot be created or the server cannot listen. */
export class CollectorStartError extends Error {
  readonly code: 'DW_ERR_COLLECTOR_SINK_START' | 'DW_ERR_COLLECTOR_LISTEN';
  constructor(code: CollectorStartError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CollectorStartError';
    this.code = code;
  }
}
