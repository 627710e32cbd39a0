import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { resolveLogFormat } from '../../src/log/logger.js';
import { textLine } from '../../src/log/text.js';

/** What pino writes, captured: the real JSON lines textLine() reads. */
function pinoLines(log: (l: pino.Logger) => void): string[] {
  const lines: string[] = [];
  log(pino({ level: 'trace', base: { app: 'doorwatch' } }, { write: (s: string) => void lines.push(s) }));
  return lines;
}

describe('text log lines', () => {
  it('time, level, message, then the fields; quoted only when they need it', () => {
    const [line] = pinoLines((l) =>
      l.info({ collector: '10.0.0.7:7443', note: 'two words', n: 3, ok: true, obj: { a: 1 } }, 'agent started'),
    );
    const t = new Date(JSON.parse(line!).time as number);
    const two = (n: number) => String(n).padStart(2, '0');
    const time = `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}.${String(t.getMilliseconds()).padStart(3, '0')}`;
    assert.equal(
      textLine(line!, false),
      `${time} INFO  agent started  collector=10.0.0.7:7443 note="two words" n=3 ok=true obj={"a":1}\n`,
    );
  });

  it('every level by name; colour only when asked', () => {
    const lines = pinoLines((l) => {
      l.trace('t');
      l.debug('d');
      l.info('i');
      l.warn('w');
      l.error('e');
      l.fatal('f');
    });
    const names = lines.map((l) => textLine(l, false).split(' ')[1]);
    assert.deepEqual(names, ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL']);
    const esc = String.fromCharCode(27);
    assert.ok(textLine(lines[3]!, true).endsWith(` ${esc}[33mWARN ${esc}[0m w\n`), 'WARN in yellow');
    assert.ok(!textLine(lines[3]!, false).includes(esc));
  });

  it("an error's message on the line and its stack below, indented", () => {
    const [line] = pinoLines((l) => l.error({ err: new Error('boom') }, 'failed'));
    const out = textLine(line!, false).split('\n');
    assert.match(out[0]!, / ERROR failed {2}err=boom$/);
    assert.match(out[1]!, /^ {4}at /);
  });

  it('a line that is not JSON passes through', () => {
    assert.equal(textLine('plain\n', false), 'plain\n');
  });

  it('auto: text on a terminal, JSON elsewhere; an explicit format wins', () => {
    assert.equal(resolveLogFormat(undefined, true), 'text');
    assert.equal(resolveLogFormat(undefined, false), 'json');
    assert.equal(resolveLogFormat('auto', true), 'text');
    assert.equal(resolveLogFormat('json', true), 'json');
    assert.equal(resolveLogFormat('text', false), 'text');
  });
});
