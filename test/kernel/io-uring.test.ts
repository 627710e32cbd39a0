import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AddressFamily, Source } from '../../src/gen/doorwatch/v1/event.js';
import { buildFixtures, connectTcp, killAll, startFixture } from '../helpers/fixtures.js';
import { byPid, startTracer, type Tracer } from '../helpers/tracer.js';

// io_uring IORING_OP_ACCEPT (liburing, test/fixtures/uring_acceptor.c): never
// seen by the syscall tracepoints, caught at completion.
let t: Tracer;
before(() => {
  buildFixtures();
  t = startTracer();
  assert.equal(t.probes.ioUring, true, 'this kernel must load the io_uring probe (tp_btf/io_uring_complete)');
});
after(() => {
  t.stop();
  killAll();
});

describe('io_uring accepts', () => {
  for (const family of ['inet', 'inet6'] as const) {
    it(`${family}: right fd, peer, listener and user buffer`, async () => {
      const host = family === 'inet' ? '127.0.0.1' : '::1';
      const before = t.probes.kernelCounters().IO_URING;
      const fx = await startFixture('uring_acceptor', ['--family', family, '--count', '2']);
      const clients = [await connectTcp(host, fx.ready.port)];
      const l1 = await fx.next();
      clients.push(await connectTcp(host, fx.ready.port));
      const l2 = await fx.next();
      const evs = await t.waitFor(byPid(fx.ready.pid), 2);
      for (const c of clients) c.close();
      assert.equal(await fx.waitExit(), 0);

      assert.deepEqual(
        evs.map((e) => e.ret),
        [l1.fd, l2.fd],
      );
      for (const [i, e] of evs.entries()) {
        assert.equal(e.source, Source.SOURCE_IO_URING);
        assert.equal(
          e.socket?.family,
          family === 'inet' ? AddressFamily.ADDRESS_FAMILY_INET : AddressFamily.ADDRESS_FAMILY_INET6,
        );
        assert.deepEqual(e.socket?.peer, { ip: host, port: clients[i]!.localPort });
        assert.deepEqual(e.socket?.local, { ip: host, port: fx.ready.port });
        assert.equal(e.listener?.resolved, true);
        assert.equal(e.listener?.maxBacklog, 128);
        assert.equal(e.userAddress?.port, clients[i]!.localPort);
        assert.equal(e.userAddress?.mismatch, false);
      }
      assert.ok(t.probes.kernelCounters().IO_URING - before >= 2n);
    });
  }

  it('direct descriptors: reports the slot, not a bogus fd', async () => {
    const fx = await startFixture('uring_acceptor', ['--direct']);
    const client = await connectTcp('127.0.0.1', fx.ready.port);
    const line = await fx.next();
    const [ev] = await t.waitFor(byPid(fx.ready.pid));
    client.close();
    assert.equal(ev!.ret, line.slot);
    assert.ok(ev!.flags.includes('DIRECT_DESCRIPTOR'));
    assert.equal(ev!.socket?.resolved, false);
    assert.equal(ev!.userAddress?.port, client.localPort, 'the caller buffer still names the peer');
  });
});
