import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { formatLine, formatRecord } from '../../src/formats/format.js';
import { type AcceptEvent, AddressFamily, Source } from '../../src/gen/doorwatch/v1/event.js';
import { loadEcs, validateEcs } from '../helpers/schemas/ecs.js';
import { loadOcsf, validateOcsf } from '../helpers/schemas/ocsf.js';
import { loadTraceeSource, validateTracee } from '../helpers/schemas/tracee.js';
import { requireRoot, startTracer, type Tracer } from '../helpers/tracer.js';
import { bounded as withTimeout } from '../helpers/wait.js';

// Real accepts, captured by the real probes, formatted by every format and checked against the upstream
// schemas (OCSF 1.7.0, ECS 8.11.0) and Tracee v0.24.1's source; then `doorwatch trace --output tracee`.
requireRoot();
const BIN = fileURLToPath(new URL('../../bin/doorwatch.js', import.meta.url));
const ocsf = loadOcsf();
const ecs = loadEcs();
const tracee = loadTraceeSource();

/**
 * python3 (a real third-party runtime) accepting one connection of each shape
 * on its own listeners: accept4 with an address buffer (socket.accept) over
 * IPv4, IPv6, an IPv4-mapped peer on a dual-stack listener and a unix socket;
 * plain accept(2) through libc; and a failed accept4 (EINVAL: not listening).
 */
const PY = `
import ctypes, os, socket, sys
d = sys.argv[1]
def pair(fam, bind, cfam, caddr, plain=False):
    s = socket.socket(fam, socket.SOCK_STREAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(bind); s.listen(4)
    c = socket.socket(cfam, socket.SOCK_STREAM); c.connect(caddr(s.getsockname()))
    if plain:
        buf = ctypes.create_string_buffer(128); n = ctypes.c_uint(128)
        fd = ctypes.CDLL(None, use_errno=True).accept(s.fileno(), buf, ctypes.byref(n))
        assert fd >= 0, ctypes.get_errno(); os.close(fd)
    else:
        a, _ = s.accept(); a.close()
    c.close(); s.close()
pair(socket.AF_INET, ('127.0.0.1', 0), socket.AF_INET, lambda a: a)
pair(socket.AF_INET6, ('::1', 0), socket.AF_INET6, lambda a: a)
pair(socket.AF_INET6, ('::', 0), socket.AF_INET, lambda a: ('127.0.0.1', a[1]))
pair(socket.AF_UNIX, d + '/s.sock', socket.AF_UNIX, lambda a: a)
pair(socket.AF_INET, ('127.0.0.1', 0), socket.AF_INET, lambda a: a, plain=True)
f = socket.socket()
try:
    f.accept()
except OSError:
    pass
print('done', flush=True)
`;

const running = new Set<ChildProcess>();
let dir: string;
let tracer: Tracer;
let events: AcceptEvent[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dw-formats-'));
  tracer = startTracer();
  const py = spawn('python3', ['-c', PY, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(py);
  let err = '';
  py.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const [code] = await withTimeout(once(py, 'exit'), 20_000, 'python3 to make its accepts');
  assert.equal(code, 0, `python3 failed: ${err}`);
  events = await tracer.waitFor((e) => e.process?.pid === py.pid, 6, 5000);
});

after(() => {
  tracer?.stop();
  for (const p of running) p.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const shape = (e: AcceptEvent) =>
  e.success
    ? `${Source[e.source]} ${AddressFamily[e.socket!.family]}${e.socket!.v4Mapped ? ' (v4-mapped)' : ''}`
    : `${Source[e.source]} failed (${e.error})`;

describe('real accepts in every format', () => {
  it('captured every shape: IPv4, IPv6, v4-mapped, unix, plain accept, failed', () => {
    const shapes = events.map(shape).sort();
    assert.deepEqual(shapes, [
      'SOURCE_ACCEPT ADDRESS_FAMILY_INET',
      'SOURCE_ACCEPT4 ADDRESS_FAMILY_INET',
      'SOURCE_ACCEPT4 ADDRESS_FAMILY_INET6',
      'SOURCE_ACCEPT4 ADDRESS_FAMILY_INET6 (v4-mapped)',
      'SOURCE_ACCEPT4 ADDRESS_FAMILY_UNIX',
      'SOURCE_ACCEPT4 failed (EINVAL)',
    ]);
  });

  it('OCSF 1.7.0 and ECS 8.11.0: no violation, object and line forms', () => {
    for (const e of events) {
      const rec = { kind: 'event' as const, event: e };
      assert.deepEqual(validateOcsf(ocsf, formatRecord(rec, 'ocsf')), [], shape(e));
      assert.deepEqual(validateOcsf(ocsf, JSON.parse(formatLine(rec, 'ocsf'))), [], shape(e));
      assert.deepEqual(validateEcs(ecs, formatRecord(rec, 'ecs')), [], shape(e));
    }
  });

  it('tracee: a trace.Event with the definition’s args, and addr the peer the kernel wrote into the buffer', () => {
    for (const e of events) {
      const line = formatLine({ kind: 'event', event: e }, 'tracee');
      assert.deepEqual(validateTracee(tracee, line), [], shape(e));
      const l = JSON.parse(line) as {
        eventName: string;
        returnValue: number;
        args: { name: string; type: string; value: unknown }[];
      };
      const def = tracee.events.get(e.source === Source.SOURCE_ACCEPT ? 'accept' : 'accept4')!;
      assert.deepEqual(l.eventName, def.name);
      assert.deepEqual(
        l.args.map((a) => a.name),
        def.args.map((a) => a.name),
      );
      assert.equal(l.returnValue, e.ret);
      const addr = l.args.find((a) => a.name === 'addr')!.value as Record<string, string>;
      if (!e.success) {
        assert.deepEqual(addr, { sa_family: 'AF_UNSPEC' }, shape(e));
        continue;
      }
      const peer = e.socket!.peer!;
      if (e.socket!.family === AddressFamily.ADDRESS_FAMILY_INET) {
        assert.deepEqual(addr, { sa_family: 'AF_INET', sin_addr: peer.ip, sin_port: String(peer.port) }, shape(e));
      } else if (e.socket!.family === AddressFamily.ADDRESS_FAMILY_INET6) {
        assert.equal(addr.sa_family, 'AF_INET6', shape(e));
        assert.equal(addr.sin6_addr, e.socket!.v4Mapped ? '127.0.0.1' : '::1', shape(e));
        assert.equal(addr.sin6_port, String(peer.port), shape(e));
      } else {
        assert.deepEqual(addr, { sa_family: 'AF_UNIX', sun_path: '' }, shape(e)); // the client did not bind
      }
    }
  });
});

describe('doorwatch trace --output tracee', () => {
  it('writes one valid Tracee accept4 line per real accept', async () => {
    const N = 20;
    // python3 says its pid, waits for "go", then accepts N connections: the trace watches only that pid.
    const py = spawn(
      'python3',
      [
        '-c',
        `import os,socket,sys\nprint(os.getpid(),flush=True)\nsys.stdin.readline()\ns=socket.socket();s.bind(('127.0.0.1',0));s.listen(64)\nfor i in range(${N}):\n  c=socket.create_connection(s.getsockname());a,_=s.accept();a.close();c.close()`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    running.add(py);
    const pyExit = once(py, 'exit');
    const [pidLine] = (await withTimeout(once(py.stdout!.setEncoding('utf8'), 'data'), 10_000, 'python3 to start')) as [string];
    const pid = Number(pidLine.trim());
    assert.ok(pid > 0, `python3 pid: ${pidLine}`);

    const run = spawn(process.execPath, [BIN, 'trace', '-o', 'tracee', '--log-level', 'info', '--pid', String(pid)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(run);
    let out = '';
    let err = '';
    run.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    run.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    const exit = once(run, 'exit').then(([code]) => code as number | null);
    await withTimeout(
      (async () => {
        while (!err.includes('tracing accepts')) await sleep(20);
      })(),
      15_000,
      `trace to attach; stderr: ${err}`,
    );
    py.stdin!.end('go\n');
    const [pyCode] = await withTimeout(pyExit, 20_000, 'python3 accepts');
    assert.equal(pyCode, 0);
    await sleep(500);
    run.kill('SIGINT');
    assert.equal(await withTimeout(exit, 30_000, 'trace to exit after SIGINT'), 0, err);

    const lines = out.split('\n').filter(Boolean);
    assert.equal(lines.length, N, `one line per accept; stderr: ${err}`);
    for (const l of lines) {
      assert.deepEqual(validateTracee(tracee, l), [], l);
      const e = JSON.parse(l) as { eventName: string; hostProcessId: number; args: { name: string; value: unknown }[] };
      assert.equal(e.eventName, 'accept4');
      assert.equal(e.hostProcessId, pid);
      const addr = e.args.find((a) => a.name === 'addr')!.value as Record<string, string>;
      assert.equal(addr.sa_family, 'AF_INET');
      assert.equal(addr.sin_addr, '127.0.0.1');
    }
  });
});
