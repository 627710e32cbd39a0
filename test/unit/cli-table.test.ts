import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tableHeader, tableRow } from '../../src/cli/table.js';
import { AddressFamily, Source } from '../../src/gen/doorwatch/v1/event.js';
import { sampleEvent } from '../helpers/sample-events.js';

describe('trace table', () => {
  const ev = sampleEvent({
    timeUnixNano: 1_714_564_890_551_987_654n,
    source: Source.SOURCE_ACCEPT4,
    process: { pid: 4_194_304, comm: 'fifteen-chars-x' },
    socket: {
      family: AddressFamily.ADDRESS_FAMILY_INET,
      local: { ip: '10.0.0.5', port: 443 },
      peer: { ip: '10.100.200.250', port: 65535 },
      resolved: true,
    },
  });

  it('shows the whole TIME (HH:MM:SS.mmm), pid and a 15-character comm, uncut', () => {
    const row = tableRow(ev);
    const d = new Date(1_714_564_890_551);
    const hhmmss = d.toTimeString().slice(0, 8);
    assert.ok(row.startsWith(`${hhmmss}.551 4194304 fifteen-chars-x accept4`), row);
    assert.ok(!row.includes('…'), `nothing cut: ${row}`);
  });

  it('each cell starts under its heading', () => {
    for (const withPods of [false, true]) {
      const header = tableHeader(withPods);
      const row = tableRow(ev, withPods);
      for (const [heading, cell] of [
        ['PID', '4194304'],
        ['COMM', 'fifteen-chars-x'],
        ['LOCAL', '10.0.0.5:443'],
        ['PEER', '10.100.200.250:65535'],
      ]) {
        assert.equal(row.indexOf(` ${cell}`) + 1, header.indexOf(` ${heading}`) + 1, `${heading}:\n${header}\n${row}`);
      }
    }
  });

  it('still cuts what does not fit, with an ellipsis', () => {
    const row = tableRow(sampleEvent({ process: { comm: 'a-very-long-process-name' } }));
    assert.match(row, / a-very-long-pr… /);
  });
});
