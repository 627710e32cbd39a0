import { type DestinationStream, type Logger, pino } from 'pino';
import { textLine } from './text.js';

export type { Logger };

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent'];

/** json: one object per line (the default); text: one readable line (text.ts); auto: text when stderr is a terminal. */
export type LogFormat = 'json' | 'text';
export const LOG_FORMATS = ['auto', 'json', 'text'] as const;

/**
 * Logs go to stderr: stdout belongs to machine-readable output (`trace --output json`), so nothing else may
 * ever write there. JSON unless the caller asks for text (the CLI does when stderr is a terminal).
 */
export function createLogger(level: LogLevel = 'info', format: LogFormat = 'json', color = false): Logger {
  const stderr = pino.destination({ fd: 2, sync: true });
  const dest: DestinationStream =
    format === 'text' ? { write: (line: string) => void stderr.write(textLine(line, color)) } : stderr;
  return pino({ level, base: { app: 'doorwatch' } }, dest);
}

/**
 * What `--log-format` / DOORWATCH_LOG_FORMAT (auto when neither) means here: text on a terminal, JSON
 * anywhere else (a pod, a pipe, a file), so log collectors always get JSON.
 */
export function resolveLogFormat(asked: string | undefined, stderrIsTty: boolean): LogFormat {
  if (asked === 'json' || asked === 'text') return asked;
  return stderrIsTty ? 'text' : 'json';
}

/** For library code used without a CLI (tests): quiet unless asked. */
export const silentLogger: Logger = pino({ level: 'silent' });
