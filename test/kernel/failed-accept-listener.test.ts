import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AcceptEvent, AddressFamily, Source } from '../../src/gen/doorwatch/v1/event.js';
import { buildFixtures, connectTcp, connectUnix, killAll, startFixture } from '../helpers/fixtures.js';
import { startTracer, type Tracer } from '../helpers/tracer.js';
import { until } from '../helpers/wait.js';

// Issue 14 item 4: a failed accept's record names the listening socket it
// failed on (read in the kernel through the sockfd, checked against the socket
// that fd named at the enter), so summaries can key failures by listener.
// Real failures: EMFILE from a python3 server at its fd limit (TCP and unix
// listeners), EINVAL on a bound socket that is not listening, EBADF (no
// listener at all).

let t: Tracer;
const dir = mkdtempSync(join(tmpdir(), 'dw-failed-listener-'));
before(() => {
  buildFixtures();
  t = startTracer();
});
after(() => {
  t.stop();
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

const isAccept = (e: AcceptEvent) => e.source === Source.SOURCE_ACCEPT || e.source === Source.SOURCE_ACCEPT4;

// Binds, fills its fd table to the limit, then accepts: EMFILE with a connection pending.
const EMFILE_SERVER = `
import os, resource, socket, sys
fam, where = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX if fam == 'unix' else socket.AF_INET)
s.bind(where if fam == 'unix' else ('127.0.0.1', 0)); s.listen(8)
print(s.getsockname()[1] if fam != 'unix' else 0, s.fileno(), flush=True)
sys.stdin.readline()                       # the client connected
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
hold = []
try:
    while True: hold.append(os.open('/dev/null', os.O_RDONLY))
except OSError: pass
for _ in range(3):
    try: s.accept()
    except OSError as e: print('errno', e.errno, flush=True)
`;

async function emfile(fam: 'tcp' | 'unix') {
  const path = join(dir, 'emfile.sock');
  const py = spawn('python3', ['-c', EMFILE_SERVER, fam, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  py.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const [port, fd] = (await until(() => /^(\d+) (\d+)\n/.exec(out)?.slice(1), 'the python server')).map(Number);
  const client = fam === 'unix' ? await connectUnix(path) : await connectTcp('127.0.0.1', port!);
  py.stdin.write('\n');
  const evs = await t.waitFor((e) => e.process?.pid === py.pid && isAccept(e), 3);
  client.close();
  py.kill();
  return { evs, port: port!, fd: fd!, path };
}

describe('failed accepts name their listener', () => {
  it('EMFILE on a TCP listener: family, local port and fd of the listener', async () => {
    const { evs, port, fd } = await emfile('tcp');
    for (const e of evs) {
      assert.equal(e.success, false);
      assert.equal(e.error, 'EMFILE');
      assert.equal(e.listener?.fd, fd);
      assert.equal(e.listener?.resolved, true);
      assert.equal(e.socket?.resolved, false, 'no accepted socket');
      assert.equal(e.socket?.family, AddressFamily.ADDRESS_FAMILY_INET);
      assert.deepEqual(e.socket?.local, { ip: '127.0.0.1', port });
      assert.deepEqual(e.socket?.peer, { ip: '', port: 0 }, 'no peer for a failure');
      assert.equal(e.userAddress?.mismatch, false);
    }
  });

  it('EMFILE on a unix listener: its path', async () => {
    const { evs, path } = await emfile('unix');
    for (const e of evs) {
      assert.equal(e.error, 'EMFILE');
      assert.equal(e.socket?.family, AddressFamily.ADDRESS_FAMILY_UNIX);
      assert.equal(e.socket?.unixPath, path);
      assert.equal(e.socket?.local?.port, 0);
    }
  });

  it('EINVAL on a bound socket that is not listening: that socket; EBADF: no listener', async () => {
    const inval = await startFixture('acceptor', ['--syscall', 'accept4', '--fail', 'einval']);
    await inval.next();
    const [a] = await t.waitFor((e) => e.process?.pid === inval.ready.pid && isAccept(e));
    assert.equal(a!.error, 'EINVAL');
    assert.equal(a!.socket?.local?.port, inval.ready.port);
    assert.equal(a!.listener?.resolved, true);

    const badf = await startFixture('acceptor', ['--syscall', 'accept', '--fail', 'ebadf']);
    await badf.next();
    const [b] = await t.waitFor((e) => e.process?.pid === badf.ready.pid && isAccept(e));
    assert.equal(b!.error, 'EBADF');
    assert.equal(b!.listener?.resolved, false);
    assert.equal(b!.socket?.family, AddressFamily.ADDRESS_FAMILY_UNSPECIFIED);
    assert.deepEqual(b!.flags, ['LISTENER_UNRESOLVED']);
  });
});
