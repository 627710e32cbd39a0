import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFilter } from '../../src/cli/trace-filter.js';
import { AcceptEvent, AddressFamily } from '../../src/gen/doorwatch/v1/event.js';

const ev = (pid: number, comm: string, lport: number, rport: number, family: AddressFamily) =>
  AcceptEvent.fromPartial({ process: { pid, comm }, socket: { family, local: { port: lport }, peer: { port: rport } } });

describe('trace display filter', () => {
  const a = ev(10, 'nginx', 443, 50000, AddressFamily.ADDRESS_FAMILY_INET);
  const b = ev(11, 'sshd', 22, 50001, AddressFamily.ADDRESS_FAMILY_INET6);

  it('keeps everything when empty', () => {
    const f = compileFilter({});
    assert.equal(f(a) && f(b), true);
  });
  it('filters by pid, comm, port (local or peer) and family', () => {
    assert.deepEqual([a, b].filter(compileFilter({ pids: [11] })), [b]);
    assert.deepEqual([a, b].filter(compileFilter({ comms: ['nginx'] })), [a]);
    assert.deepEqual([a, b].filter(compileFilter({ ports: [50001] })), [b]);
    assert.deepEqual([a, b].filter(compileFilter({ ports: [443] })), [a]);
    assert.deepEqual([a, b].filter(compileFilter({ families: [AddressFamily.ADDRESS_FAMILY_INET6] })), [b]);
    assert.deepEqual([a, b].filter(compileFilter({ pids: [10], comms: ['sshd'] })), []);
  });
  it('filters by pod namespace; host processes (no pod) never match', () => {
    const inPod = AcceptEvent.fromPartial({ ...a, pod: { namespace: 'payments', name: 'checkout-0' } });
    assert.deepEqual([a, b, inPod].filter(compileFilter({ namespaces: ['payments'] })), [inPod]);
    assert.deepEqual([a, b, inPod].filter(compileFilter({ namespaces: ['shop'] })), []);
  });
});
