import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AcceptEvent, AddressFamily, Source } from '../../src/gen/doorwatch/v1/event.js';
import { buildFixtures, connectTcp, connectUnix, killAll, startFixture } from '../helpers/fixtures.js';
import { byPid, startTracer, type Tracer } from '../helpers/tracer.js';

// Real C servers (test/fixtures/acceptor.c) calling accept / accept4 directly,
// real clients, the real probes: one event per accepted connection, exact.

let t: Tracer;
before(() => {
  buildFixtures();
  t = startTracer();
});
after(() => {
  t.stop();
  killAll();
});

const SOURCE = { accept: Source.SOURCE_ACCEPT, accept4: Source.SOURCE_ACCEPT4 } as const;

interface Case {
  family: 'inet' | 'inet6' | 'v4mapped';
  host: string;
  ip: string;
  af: AddressFamily;
}
const CASES: Case[] = [
  { family: 'inet', host: '127.0.0.1', ip: '127.0.0.1', af: AddressFamily.ADDRESS_FAMILY_INET },
  { family: 'inet6', host: '::1', ip: '::1', af: AddressFamily.ADDRESS_FAMILY_INET6 },
  { family: 'v4mapped', host: '127.0.0.1', ip: '::ffff:127.0.0.1', af: AddressFamily.ADDRESS_FAMILY_INET6 },
];

describe('TCP accepts from a C server', () => {
  for (const syscall of ['accept', 'accept4'] as const) {
    for (const c of CASES) {
      it(`${syscall} over ${c.family}: exact 4-tuple, pid, fd, listener`, async () => {
        const fx = await startFixture('acceptor', ['--syscall', syscall, '--family', c.family, '--count', '1']);
        const client = await connectTcp(c.host, fx.ready.port);
        const line = await fx.next();
        const [ev] = await t.waitFor(byPid(fx.ready.pid));
        client.close();
        assert.equal(await fx.waitExit(), 0);

        assert.equal(ev!.source, SOURCE[syscall]);
        assert.equal(ev!.success, true);
        assert.equal(ev!.ret, line.fd, 'ret is the new fd the server got');
        assert.equal(ev!.process?.tid, fx.ready.pid, 'single-threaded: tid == pid');
        assert.equal(ev!.process?.comm, 'acceptor');
        assert.equal(ev!.socket?.family, c.af);
        assert.deepEqual(ev!.socket?.local, { ip: c.ip, port: fx.ready.port });
        assert.deepEqual(ev!.socket?.peer, { ip: c.ip, port: client.localPort });
        assert.equal(ev!.socket?.v4Mapped, c.family === 'v4mapped');
        assert.equal(ev!.socket?.type, 'STREAM');
        assert.equal(ev!.socket?.protocol, 6);
        assert.equal(ev!.listener?.fd, fx.ready.listen_fd);
        assert.equal(ev!.listener?.resolved, true);
        assert.equal(ev!.listener?.maxBacklog, 128);
        assert.equal(ev!.userAddress?.present, true);
        assert.equal(ev!.userAddress?.ip, c.ip);
        assert.equal(ev!.userAddress?.port, client.localPort);
        assert.equal(ev!.userAddress?.mismatch, false);
        assert.deepEqual(ev!.flags, []);
        assert.ok(ev!.durationNs > 0n, 'blocked time measured from the enter');
        assert.ok(ev!.namespaces!.net > 0 && ev!.namespaces!.mnt > 0 && ev!.namespaces!.pid > 0 && ev!.namespaces!.uts > 0);
      });
    }
  }

  it('decodes SOCK_NONBLOCK and SOCK_CLOEXEC', async () => {
    const fx = await startFixture('acceptor', ['--syscall', 'accept4', '--nonblock', '--cloexec']);
    const client = await connectTcp('127.0.0.1', fx.ready.port);
    await fx.next();
    const [ev] = await t.waitFor(byPid(fx.ready.pid));
    client.close();
    assert.deepEqual(ev!.acceptFlagNames, ['SOCK_NONBLOCK', 'SOCK_CLOEXEC']);
    assert.equal(ev!.acceptFlags, 0o4000 | 0o2000000);
  });

  it('handles addr = NULL (no user buffer, no mismatch)', async () => {
    const fx = await startFixture('acceptor', ['--syscall', 'accept', '--null-addr']);
    const client = await connectTcp('127.0.0.1', fx.ready.port);
    await fx.next();
    const [ev] = await t.waitFor(byPid(fx.ready.pid));
    client.close();
    assert.equal(ev!.userAddress?.present, false);
    assert.equal(ev!.userAddress?.mismatch, false);
    assert.deepEqual(ev!.flags, ['USER_ADDR_NULL']);
    assert.equal(ev!.socket?.peer?.port, client.localPort, 'the kernel view does not need the buffer');
  });
});

describe('unix sockets', () => {
  it('reports the bound path and the connecting pid', async () => {
    const path = `/tmp/dw-test-${process.pid}.sock`;
    const fx = await startFixture('acceptor', ['--family', 'unix', '--path', path]);
    const client = await connectUnix(path);
    await fx.next();
    const [ev] = await t.waitFor(byPid(fx.ready.pid));
    client.close();
    assert.equal(ev!.socket?.family, AddressFamily.ADDRESS_FAMILY_UNIX);
    assert.equal(ev!.socket?.unixPath, path);
    assert.equal(ev!.socket?.peerPid, process.pid, 'SO_PEERCRED pid of the client (this test process)');
    assert.equal(ev!.socket?.local?.ip, '');
    assert.equal(ev!.userAddress?.mismatch, false);
  });

  it('shows abstract names with @', async () => {
    const name = `dw-abstract-${process.pid}`;
    const fx = await startFixture('acceptor', ['--family', 'unix-abstract', '--path', name]);
    const client = await connectUnix(`\0${name}`);
    await fx.next();
    const [ev] = await t.waitFor(byPid(fx.ready.pid));
    client.close();
    assert.equal(ev!.socket?.unixPath, `@${name}`);
  });
});

describe('failed accepts', () => {
  const cases = [
    ['ebadf', 9, 'EBADF'],
    ['einval', 22, 'EINVAL'],
    ['enotsock', 88, 'ENOTSOCK'],
  ] as const;
  for (const [mode, errno, name] of cases) {
    for (const syscall of ['accept', 'accept4'] as const) {
      it(`${syscall} ${name} carries its errno`, async () => {
        const fx = await startFixture('acceptor', ['--syscall', syscall, '--fail', mode]);
        assert.equal((await fx.next()).errno, errno);
        const [ev] = await t.waitFor(byPid(fx.ready.pid));
        assert.equal(ev!.success, false);
        assert.equal(ev!.ret, -errno);
        assert.equal(ev!.error, name);
        assert.equal(ev!.source, SOURCE[syscall]);
        assert.equal(ev!.socket?.resolved, false);
      });
    }
  }

  it('drops EAGAIN in the kernel by default and counts it; --include-eagain reports it', async () => {
    const before = t.probes.kernelCounters().EAGAIN_SKIPPED;
    const fx = await startFixture('acceptor', ['--syscall', 'accept4', '--fail', 'eagain']);
    const line = await fx.next();
    assert.equal(line.errno, 11);
    await fx.waitExit();
    t.capture.drain();
    assert.equal(t.events.filter(byPid(fx.ready.pid)).length, 0, 'no EAGAIN event by default');
    assert.ok(t.probes.kernelCounters().EAGAIN_SKIPPED - before >= 5n, 'each EAGAIN counted');

    t.probes.setIncludeEagain(true);
    try {
      const fx2 = await startFixture('acceptor', ['--syscall', 'accept4', '--fail', 'eagain']);
      await fx2.next();
      const evs = await t.waitFor(byPid(fx2.ready.pid), 5);
      assert.ok(evs.every((e) => e.error === 'EAGAIN' && e.ret === -11));
    } finally {
      t.probes.setIncludeEagain(false);
    }
  });
});

describe('address tampering (tag U)', () => {
  it('flags a caller that rewrites its addr buffer right after accept, while reporting the true peer', async () => {
    // The rewrite must land between the kernel's copy and the exit tracepoint (microseconds, another CPU):
    // accept until one is caught, bounded in count and time (user-address-matrix.test.ts does IPv6).
    const MAX = 3000;
    const fx = await startFixture('acceptor', ['--syscall', 'accept', '--tamper', '--count', String(MAX)]);
    const clientPorts = new Set<number>();
    const mine = (e: AcceptEvent) => byPid(fx.ready.pid)(e) && e.success;
    const deadline = performance.now() + 30_000;
    let evs: AcceptEvent[] = [];
    let n = 0;
    try {
      while (n < MAX && performance.now() < deadline) {
        for (let i = 0; i < 100; i++, n++) {
          const c = await connectTcp('127.0.0.1', fx.ready.port);
          clientPorts.add(c.localPort);
          await fx.next();
          c.close();
        }
        evs = await t.waitFor(mine, n);
        if (evs.some((e) => e.userAddress?.mismatch)) break;
      }
    } finally {
      fx.kill();
    }
    const N = n;
    for (const e of evs) assert.ok(clientPorts.has(e.socket!.peer!.port), 'the kernel peer is always the real client');
    const flagged = evs.filter((e) => e.userAddress?.mismatch);
    assert.ok(flagged.length > 0, `at least one rewrite caught in ${N} accepts`);
    for (const e of flagged) {
      const u = e.userAddress!;
      assert.ok(u.ip !== e.socket?.peer?.ip || u.port !== e.socket?.peer?.port, 'flagged only when the views differ');
    }
    const clean = evs.filter((e) => !e.userAddress?.mismatch);
    for (const e of clean) assert.equal(e.userAddress?.port, e.socket?.peer?.port);
    // The rewrite may land whole or in part (the thread writes family, port, address in turn).
    assert.ok(
      flagged.some((e) => e.userAddress?.ip === '10.66.66.66' || e.userAddress?.port === 6666),
      'the forged address is shown',
    );
  });
});
