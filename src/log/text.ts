/**
 * pino's JSON log lines as one readable line each, for a person at a terminal (`doorwatch trace` shows its live
 * table on stdout; JSON logs between its rows were hard to read). A pino destination, not a transport: no
 * worker thread and nothing more to load, so a terminal run starts as fast as a headless one. Pods, pipes
 * and files keep JSON (logger.ts decides).
 *
 *   19:31:30.551 INFO  agent started: capturing accepts  collector=10.0.0.7:7443 firstSeq=1
 */

const LEVELS: Record<number, [name: string, color: string]> = {
  10: ['TRACE', '\x1b[90m'],
  20: ['DEBUG', '\x1b[36m'],
  30: ['INFO ', '\x1b[32m'],
  40: ['WARN ', '\x1b[33m'],
  50: ['ERROR', '\x1b[31m'],
  60: ['FATAL', '\x1b[41m'],
};
const RESET = '\x1b[0m';

/** Said once per process (the JSON lines carry it for log collectors): not repeated on every line. */
const OMITTED = new Set(['level', 'time', 'msg', 'app', 'pid', 'hostname']);

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

const two = (n: number) => String(n).padStart(2, '0');

/** One pino JSON line (ending in a newline) -> one text line (plus an error's stack, indented). */
export function textLine(json: string, color: boolean): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json; // not ours to reformat
  }
  const t = new Date(typeof rec.time === 'number' ? rec.time : Date.now());
  const time = `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}.${String(t.getMilliseconds()).padStart(3, '0')}`;
  const [name, hue] = LEVELS[rec.level as number] ?? [String(rec.level), ''];
  let line = `${time} ${color && hue ? `${hue}${name}${RESET}` : name} ${rec.msg ?? ''}`;
  let stack = '';
  const fields: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (OMITTED.has(k) || v === undefined) continue;
    if (k === 'err' && v && typeof v === 'object' && 'message' in v) {
      const e = v as { message: unknown; stack?: unknown };
      fields.push(`err=${value(e.message)}`);
      if (typeof e.stack === 'string') stack = `\n    ${e.stack.split('\n').slice(1).join('\n    ').trim()}`;
    } else fields.push(`${k}=${value(v)}`);
  }
  if (fields.length) line += `  ${fields.join(' ')}`;
  return `${line}${stack}\n`;
}
