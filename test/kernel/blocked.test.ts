import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { buildFixtures, connectTcp, killAll, startFixture } from '../helpers/fixtures.js';
import { byPid, requireRoot, startTracer } from '../helpers/tracer.js';
import { until } from '../helpers/wait.js';

// A server already blocked in accept() when the probes attach: its enter was
// never seen, its exit still is.
before(() => {
  requireRoot();
  buildFixtures();
});
after(() => killAll());

describe('server blocked in accept before the probes attach', () => {
  for (const syscall of ['accept', 'accept4'] as const) {
    it(`${syscall}: still captured from the exit, marked NO_ENTER`, async () => {
      const fx = await startFixture('acceptor', ['--syscall', syscall, '--count', '2']);
      // Blocked in accept (its enter already past) before anything is attached.
      const wchan = `/proc/${fx.ready.pid}/wchan`;
      await until(() => readFileSync(wchan, 'utf8').includes('accept'), `${wchan} to show the accept wait`);
      const t = startTracer();
      try {
        const first = await connectTcp('127.0.0.1', fx.ready.port);
        const l1 = await fx.next();
        const second = await connectTcp('127.0.0.1', fx.ready.port);
        const l2 = await fx.next();
        const evs = await t.waitFor(byPid(fx.ready.pid), 2);
        first.close();
        second.close();
        const [a, b] = evs;
        assert.equal(a!.ret, l1.fd);
        assert.deepEqual(a!.flags, ['NO_ENTER', 'LISTENER_UNRESOLVED', 'USER_ADDR_NULL']);
        assert.equal(a!.socket?.peer?.port, first.localPort, 'the peer comes from the socket, not the seed');
        assert.equal(a!.listener?.fd, -1);
        assert.equal(a!.durationNs, 0n);
        // The next accept is seen whole.
        assert.equal(b!.ret, l2.fd);
        assert.deepEqual(b!.flags, []);
        assert.equal(b!.socket?.peer?.port, second.localPort);
        assert.ok(t.probes.kernelCounters().EXIT_NO_ENTER >= 1n);
      } finally {
        t.stop();
      }
    });
  }
});
