import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command, Option } from 'commander';
import { AGENT_DEFAULTS, FLAG_ATTRIBUTES, loadAgentConfig } from '../../src/agent/config.js';
import { buildProgram } from '../../src/cli/main.js';

/**
 * Every duration and size a command's --help shows as a default must mean that default when typed back: a
 * plain number on the command line is seconds, so "(default: 10)" for a 10 ms default would be read as 10 s.
 * The help text is parsed as a user reads it (commander's own --help output), not the option objects.
 */

function commands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(commands)];
}

/** The help text of each option, by long flag, its wrapped lines joined. */
function helpEntries(help: string): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | undefined;
  for (const line of help.split('\n')) {
    const start = /^ {2}(?:-\w, )?(--[\w-]+)/.exec(line);
    if (start) {
      current = start[1]!;
      out.set(current, line.trim());
    } else if (current && /^ {10,}\S/.test(line)) out.set(current, `${out.get(current)} ${line.trim()}`);
    else current = undefined;
  }
  return out;
}

const program = buildProgram({});

/** What `doorwatch <cmd> --help` prints (helpInformation() leaves out the text added after the options). */
function helpOf(cmd: Command): string {
  let out = '';
  cmd.configureOutput({ writeOut: (s) => (out += s) });
  cmd.outputHelp();
  return out;
}
const withUnits = (o: Option) => /<(duration|size)>/.test(o.flags);
const name = (c: Command) => (c.parent?.parent ? `${c.parent.name()} ${c.name()}` : c.name());

describe('--help shows every duration and size with its unit', () => {
  const checked: string[] = [];
  for (const cmd of commands(program)) {
    const options = cmd.options.filter(withUnits);
    if (!options.length) continue;
    it(`doorwatch ${name(cmd)}`, () => {
      const help = helpOf(cmd);
      const entries = helpEntries(help);
      for (const o of options) {
        const entry = entries.get(o.long!);
        assert.ok(entry, `${o.long} is in the help:\n${help}`);
        const shown = /\(default: ([^)]*)\)/.exec(entry);
        if (o.defaultValue === undefined) {
          assert.equal(shown, null, `${o.long} has no default and shows none: ${entry}`);
          continue;
        }
        assert.ok(shown, `${o.long} shows its default: ${entry}`);
        assert.match(shown[1]!, /^\d+(ms|s|m|h|KiB|MiB|GiB)$/, `${o.long}: the default ${shown[1]} carries its unit`);
        // Typed back on the command line, the shown text gives the actual default.
        assert.equal(o.parseArg!(shown[1]!, undefined), o.defaultValue, `${o.long} ${shown[1]} is the default`);
        checked.push(`${name(cmd)} ${o.long}=${shown[1]}`);
      }
      assert.match(help, /a plain number is seconds/, 'the help says what a plain number means');
    });
  }

  it("the agent's shown defaults are the ones it runs with (src/agent/config.ts)", () => {
    const agent = program.commands.find((c) => c.name() === 'agent')!;
    // Every duration and size flag's default is AGENT_DEFAULTS' value for the key the flag sets...
    for (const o of agent.options.filter(withUnits)) {
      const key = FLAG_ATTRIBUTES[o.attributeName()];
      assert.ok(key, `${o.long} sets a config key`);
      const dflt = key.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], AGENT_DEFAULTS);
      assert.equal(o.defaultValue, dflt, `${o.long}: AGENT_DEFAULTS.${key}`);
    }
    // ...and those are what the agent runs with when nothing sets them.
    const c = loadAgentConfig({ flags: { collector: 'collector:7443', tls: { insecure: true } }, env: {}, hostname: 'n' });
    const effective: Record<string, number> = {
      '--poll-interval': c.pollMs,
      '--pending-deadline': c.pendingDeadlineMs,
      '--batch-max-delay': c.batch.maxDelayMs,
      '--flush-timeout': c.flushTimeoutMs,
      '--ring-size': c.ringBytes,
      '--spool-max': c.spool.maxBytes,
    };
    for (const [flag, value] of Object.entries(effective)) {
      assert.equal(agent.options.find((o) => o.long === flag)?.defaultValue, value, flag);
    }
  });

  it('checked the flags the issue named', () => {
    for (const flag of ['trace --poll-interval=10ms', 'trace --pending-deadline=2s', 'agent --poll-interval=10ms']) {
      assert.ok(checked.includes(flag), `${flag} in ${checked.join(', ')}`);
    }
  });
});
