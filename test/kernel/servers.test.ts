import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AddressFamily, Source } from '../../src/gen/doorwatch/v1/event.js';
import { connectTcp } from '../helpers/fixtures.js';
import { byPid, startTracer, type Tracer } from '../helpers/tracer.js';
import { until } from '../helpers/wait.js';

// Real servers (Node's libuv, CPython) on loopback, traced by the real probes.

let t: Tracer;
before(() => {
  t = startTracer();
});
after(() => t.stop());

describe('Node.js server (libuv accept4)', () => {
  it('reports each connection with the exact 4-tuple, pid and flags', async () => {
    const server = createServer((c) => c.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const clients = await Promise.all([1, 2, 3].map(() => connectTcp('127.0.0.1', port)));
    const peers = clients.map((c) => c.localPort);
    const evs = await t.waitFor((e) => byPid(process.pid)(e) && e.socket?.local?.port === port, 3);
    server.close();
    for (const c of clients) c.close();

    assert.equal(evs.length, 3, 'one event per accepted connection');
    assert.deepEqual(evs.map((e) => e.socket?.peer?.port).sort(), [...peers].sort());
    for (const e of evs) {
      assert.equal(e.source, Source.SOURCE_ACCEPT4);
      assert.equal(e.success, true);
      assert.equal(e.socket?.family, AddressFamily.ADDRESS_FAMILY_INET);
      assert.equal(e.socket?.local?.ip, '127.0.0.1');
      assert.equal(e.socket?.peer?.ip, '127.0.0.1');
      assert.equal(e.socket?.protocol, 6);
      assert.ok((e.process?.comm ?? '').length > 0);
      // libuv accepts with SOCK_CLOEXEC | SOCK_NONBLOCK.
      assert.deepEqual([...e.acceptFlagNames].sort(), ['SOCK_CLOEXEC', 'SOCK_NONBLOCK']);
      assert.equal(e.userAddress?.mismatch, false);
      assert.equal(e.listener?.resolved, true);
      assert.ok((e.listener?.maxBacklog ?? 0) > 0);
      assert.ok(e.timeUnixNano > BigInt(Date.now() - 60_000) * 1_000_000n, 'wall clock within the last minute');
    }
  });
});

describe('Python server (CPython socket.accept -> accept4)', () => {
  it('reports IPv6 loopback connections with the right peer', async () => {
    const py = spawn(
      'python3',
      [
        '-c',
        `
import socket, sys
s = socket.socket(socket.AF_INET6); s.bind(('::1', 0)); s.listen()
print(s.getsockname()[1], flush=True)
for _ in range(2):
    c, a = s.accept(); print(a[1], flush=True); c.close()
`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const lines: string[] = [];
    py.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.trim().split('\n')));
    const port = Number(await until(() => lines[0], 'the Python server to print its port'));
    const a = await connectTcp('::1', port);
    const b = await connectTcp('::1', port);
    const clientPorts = [a.localPort, b.localPort];
    const evs = await t.waitFor((e) => e.process?.pid === py.pid && e.socket?.local?.port === port, 2);
    a.close();
    b.close();
    await once(py, 'exit');
    assert.deepEqual(evs.map((e) => e.socket?.peer?.port).sort(), clientPorts.sort());
    for (const e of evs) {
      assert.equal(e.process?.comm, 'python3');
      assert.equal(e.socket?.family, AddressFamily.ADDRESS_FAMILY_INET6);
      assert.equal(e.socket?.peer?.ip, '::1');
      assert.equal(e.socket?.local?.ip, '::1');
      assert.equal(e.userAddress?.ip, '::1');
      assert.equal(e.userAddress?.mismatch, false);
    }
  });
});

describe('client storm', () => {
  it('reports exactly one event per connection, none lost', async () => {
    const N = 2000;
    const server = createServer((c) => c.destroy());
    server.listen(0, '127.0.0.1', 1024);
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const before = t.probes.kernelCounters();
    // A list, not a set: the kernel may hand the same client port to a later
    // connection once the earlier one is closed.
    const peers: number[] = [];
    // 50 at a time: bounded in count and in concurrency.
    for (let i = 0; i < N; i += 50) {
      const batch = await Promise.all(Array.from({ length: Math.min(50, N - i) }, () => connectTcp('127.0.0.1', port)));
      for (const c of batch) {
        peers.push(c.localPort);
        c.close();
      }
    }
    const evs = await t.waitFor((e) => byPid(process.pid)(e) && e.socket?.local?.port === port, N, 15_000);
    server.close();
    const after = t.probes.kernelCounters();
    assert.equal(evs.length, N);
    // Exactly one event per connection: the events' peer ports are the clients' ports, as a multiset.
    const byNumber = (a: number, b: number) => a - b;
    assert.deepEqual(
      evs.map((e) => e.socket!.peer!.port).sort(byNumber),
      [...peers].sort(byNumber),
      'one event per connection, no stranger, no duplicate',
    );
    assert.equal(after.RINGBUF_FULL - before.RINGBUF_FULL, 0n, 'no ring buffer drops');
    const seqs = evs.map((e) => e.seq);
    assert.equal(new Set(seqs).size, N, 'unique sequence numbers');
  });
});
