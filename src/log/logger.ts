import { type Logger, pino } from 'pino';

export type { Logger };

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent'];

/**
 * Logs are JSON on stderr: stdout belongs to machine-readable output
 * (`trace --output json`), so nothing else may ever write there.
 */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({ level, base: { app: 'doorwatch' } }, pino.destination({ fd: 2, sync: true }));
}

/** For library code used without a CLI (tests): quiet unless asked. */
export const silentLogger: Logger = pino({ level: 'silent' });
