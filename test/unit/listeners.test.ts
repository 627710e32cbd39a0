import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { encodeEvent } from '../../src/agent/event-encoder.js';
import { ConfigFlags, OP_LISTEN, OP_LISTEN_CLOSE, RECORD_SIZE, Source as RecordSource } from '../../src/capture/record.js';
import { tableRow } from '../../src/cli/table.js';
import { decodePublishRequest } from '../../src/collector/wire.js';
import { eventToJson, eventToJsonLine } from '../../src/formats/native-json.js';
import { PublishRequest } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent, EventKind, ListenerOrigin, Source } from '../../src/gen/doorwatch/v1/event.js';
import { listenerKey } from '../../src/listeners/event.js';
import { ListenerInventory } from '../../src/listeners/inventory.js';
import { listenersFromIterator } from '../../src/listeners/iter-scan.js';
import { parseProcTcp, parseProcUnix, procIPv4, procIPv6, type ScannedListener } from '../../src/listeners/proc-scan.js';
import { silentLogger } from '../../src/log/logger.js';
import { parseDefines } from '../helpers/btf.js';
import { buildRecord, ipv4, RECORD_BASE } from '../helpers/record-builder.js';
import { sampleEvent } from '../helpers/sample-events.js';

// /proc lines as the kernel prints them (net/ipv4/tcp_ipv4.c get_tcp4_sock, net/ipv6/tcp_ipv6.c
// get_tcp6_sock, net/unix/af_unix.c unix_seq_show), for little-endian hosts.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0200007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0000000000000000 20 4 30 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0
   2: B80D0120000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 779 1 0000000000000000 100 0 0 10 0
`;
const UNIX = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 5001 /run/app.sock
0000000000000000: 00000002 00000000 00010000 0005 01 5002 @abstract name
0000000000000000: 00000003 00000000 00000000 0001 03 5003 /run/app.sock
0000000000000000: 00000002 00000000 00000000 0002 01 5004 /dev/log
`;

describe('/proc socket tables', () => {
  it('reads LISTEN TCP sockets, their address, port, queue and inode', () => {
    assert.deepEqual(parseProcTcp(TCP, 2), [
      {
        family: 2,
        sockType: 'STREAM',
        protocol: 6,
        localIp: '127.0.0.1',
        localPort: 8080,
        unixPath: '',
        inode: 4242n,
        queued: 3,
      },
    ]);
    const v6 = parseProcTcp(TCP6, 10);
    assert.deepEqual(
      v6.map((s) => [s.localIp, s.localPort, s.inode]),
      [
        ['::1', 80, 777n],
        ['::ffff:127.0.0.1', 443, 778n],
        ['2001:db8::1', 22, 779n],
      ],
    );
  });

  it('reads listening unix sockets (__SO_ACCEPTCON) only, paths with spaces and abstract names', () => {
    assert.deepEqual(
      parseProcUnix(UNIX).map((s) => [s.sockType, s.unixPath, s.inode]),
      [
        ['STREAM', '/run/app.sock', 5001n],
        ['SEQPACKET', '@abstract name', 5002n],
      ],
    );
  });

  it('formats addresses as the capture path does', () => {
    assert.equal(procIPv4('0100007F'), '127.0.0.1');
    assert.equal(procIPv4('00000000'), '0.0.0.0');
    assert.equal(procIPv6('00000000000000000000000000000000'), '::');
  });
});

describe('kernel listener record constants', () => {
  it('match bpf/doorwatch.h', () => {
    const d = parseDefines(readFileSync(new URL('../../bpf/doorwatch.h', import.meta.url), 'utf8'));
    assert.equal(d.get('DW_OP_LISTEN'), OP_LISTEN);
    assert.equal(d.get('DW_OP_LISTEN_CLOSE'), OP_LISTEN_CLOSE);
    assert.equal(d.get('DW_SRC_LISTEN'), RecordSource.LISTEN);
    assert.equal(d.get('DW_SRC_LISTEN_CLOSE'), RecordSource.LISTEN_CLOSE);
    assert.equal(d.get('DW_CFG_LISTENERS'), ConfigFlags.LISTENERS);
    assert.equal(d.get('DW_SRC_LISTEN_SCAN'), RecordSource.LISTEN_SCAN);
  });
});

const listenerRecord = (over: Partial<AcceptEvent> = {}): AcceptEvent =>
  sampleEvent({
    kind: EventKind.EVENT_KIND_LISTEN,
    source: Source.SOURCE_LISTEN,
    socket: { peer: { ip: '', port: 0 } },
    acceptFlagNames: [],
    listenerInfo: {
      origin: ListenerOrigin.LISTENER_ORIGIN_KERNEL_LISTEN,
      inode: 99n,
      requestedBacklog: 128,
      firstSeenUnixNano: 5n,
    },
    ...over,
  });

describe('listener records in the trace/tail table', () => {
  it('name the call and what happened to the listener, not an fd', () => {
    const row = tableRow(listenerRecord());
    assert.match(row, / listen +\S+ +- +listen$/);
    const closed = tableRow(listenerRecord({ kind: EventKind.EVENT_KIND_LISTENER_CLOSED, source: Source.SOURCE_LISTEN_CLOSE }));
    assert.match(closed, / close .* closed$/);
  });
});

describe('listener records on the wire and in native JSON', () => {
  it('the agent encoder and the collector decoder carry listenerInfo', () => {
    const ev = listenerRecord();
    assert.deepEqual(AcceptEvent.decode(encodeEvent(ev)).listenerInfo, ev.listenerInfo);
    const req = PublishRequest.encode({
      batch: { firstSeq: 1n, events: [sampleEvent(), ev], losses: undefined, contexts: [], eventContexts: [] },
    }).finish();
    const got = decodePublishRequest(req).batch!.events;
    assert.equal(got[0]!.listenerInfo, undefined);
    assert.deepEqual(got[1]!.listenerInfo, ev.listenerInfo);
  });

  it('the fast native writer equals the generic walk, after an accept of the same pod and before one', () => {
    const acc = sampleEvent();
    const lst = listenerRecord({ pod: acc.pod, namespaces: acc.namespaces, cgroup: acc.cgroup });
    for (const ev of [acc, lst, acc]) assert.deepEqual(JSON.parse(eventToJsonLine(ev)), eventToJson(ev));
    assert.equal(JSON.parse(eventToJsonLine(lst)).listenerInfo.inode, '99');
    assert.equal(JSON.parse(eventToJsonLine(acc)).listenerInfo, null);
  });
});

function scanned(inode: bigint, port: number, unixPath = ''): ScannedListener {
  return {
    family: unixPath ? 1 : 2,
    sockType: 'STREAM',
    protocol: unixPath ? 0 : 6,
    localIp: unixPath ? '' : '0.0.0.0',
    localPort: port,
    unixPath,
    inode,
    queued: 0,
    netNs: 4026531840,
    holders: 1,
    holder: {
      proc: { pid: 10, ppid: 1, uid: 0, gid: 0, comm: 'srv', ns: { mnt: 1, pid: 2, net: 4026531840, uts: 3 }, cgroupId: 0n },
      fd: 3,
    },
  };
}

describe('ListenerInventory (scan stand-in: the /proc scan itself is tested for real in test/kernel/listeners.test.ts)', () => {
  function inventory(scans: ScannedListener[][]) {
    const out: AcceptEvent[] = [];
    let now = 1_000n;
    const inv: ListenerInventory = new ListenerInventory({
      nodeName: 'n',
      periodMs: 0,
      // The enricher's place: hands records on at once.
      attribute: (b) => out.push(...b.map((e) => inv.observe(e))),
      emit: (b) => out.push(...b),
      log: silentLogger,
      scan: async () => ({ listeners: scans.shift() ?? [], unreadable: 0 }),
      nowUnixNano: () => (now += 1000n),
    });
    return { inv, out };
  }

  it('snapshots, re-sends with first-seen kept, closes what a rescan no longer finds', async () => {
    const { inv, out } = inventory([[scanned(1n, 80), scanned(2n, 0, '/run/a.sock')], [scanned(1n, 80)]]);
    await inv.start();
    assert.equal(out.length, 2);
    assert.ok(out.every((e) => e.listenerInfo?.origin === ListenerOrigin.LISTENER_ORIGIN_SNAPSHOT));
    const first = out[0]!.listenerInfo!.firstSeenUnixNano;
    await inv.rescan(ListenerOrigin.LISTENER_ORIGIN_RESCAN);
    const again = out.find(
      (e) => e.listenerInfo?.origin === ListenerOrigin.LISTENER_ORIGIN_RESCAN && e.kind === EventKind.EVENT_KIND_LISTENER,
    )!;
    assert.equal(again.listenerInfo!.firstSeenUnixNano, first);
    const closed = out.filter((e) => e.kind === EventKind.EVENT_KIND_LISTENER_CLOSED);
    assert.deepEqual(
      closed.map((e) => [e.socket?.unixPath, e.listenerInfo?.origin]),
      [['/run/a.sock', ListenerOrigin.LISTENER_ORIGIN_RESCAN]],
    );
    assert.deepEqual(inv.stats(), { listeners: 1, scans: 2, scanErrors: 0, unreadable: 0, closedByKernel: 0, closedByRescan: 1 });
  });

  it('stopped while a scan is in flight: the scan hands nothing on (the pipeline behind may be closed)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const out: AcceptEvent[] = [];
    const inv = new ListenerInventory({
      nodeName: 'n',
      periodMs: 0,
      attribute: (b) => out.push(...b),
      emit: (b) => out.push(...b),
      log: silentLogger,
      scan: async () => {
        await gate;
        return { listeners: [scanned(1n, 8080)], unreadable: 0 };
      },
    });
    const started = inv.start();
    inv.stop();
    release();
    await started;
    assert.deepEqual(out, []);
  });

  it('a kernel close leaves with the owner, not the closer; a listen newer than the scan is not closed by it', async () => {
    const { inv } = inventory([[scanned(7n, 8080)], []]);
    await inv.start();
    const owner = inv.list()[0]!;
    const close = listenerRecord({
      kind: EventKind.EVENT_KIND_LISTENER_CLOSED,
      source: Source.SOURCE_LISTEN_CLOSE,
      process: { pid: 999, tid: 999, ppid: 1, uid: 0, gid: 0, comm: 'killer' },
      namespaces: owner.namespaces,
      listenerInfo: {
        origin: ListenerOrigin.LISTENER_ORIGIN_KERNEL_CLOSE,
        inode: 7n,
        requestedBacklog: 0,
        firstSeenUnixNano: 0n,
      },
    });
    assert.equal(listenerKey(close), listenerKey(owner));
    const out = inv.observe(close);
    assert.equal(out.process?.comm, 'srv');
    assert.equal(out.kind, EventKind.EVENT_KIND_LISTENER_CLOSED);
    assert.equal(out.listenerInfo?.origin, ListenerOrigin.LISTENER_ORIGIN_KERNEL_CLOSE);
    assert.equal(inv.list().length, 0);
    // A listener recorded after the next scan started (its time is later) is not closed by that scan.
    inv.observe(listenerRecord({ timeUnixNano: 10n ** 18n }));
    await inv.rescan(ListenerOrigin.LISTENER_ORIGIN_RESCAN);
    assert.equal(inv.list().length, 1);
    assert.equal(inv.stats().closedByKernel, 1);
  });
});

describe('the kernel iterator snapshot (records as bpf/lib/listen.h writes them; the real iterator: test/kernel)', () => {
  const rec = (pid: number, fd: number, inode: bigint) => {
    const v = buildRecord({
      op: OP_LISTEN,
      source: RecordSource.LISTEN_SCAN,
      pid,
      tid: pid,
      sockfd: fd,
      family: 2,
      sockType: 1,
      protocol: 6,
      laddr: ipv4('10.1.2.3'),
      lport: 8080,
      addrPtr: inode,
      netNs: 4026532000,
      backlog: 2,
      maxBacklog: 511,
      comm: 'nginx',
    });
    return Buffer.from(v.buffer, RECORD_BASE, RECORD_SIZE);
  };

  it('keeps a socket shared by forked workers once, with its lowest pid, and counts its holders', () => {
    const r = listenersFromIterator(Buffer.concat([rec(300, 6, 77n), rec(100, 6, 77n), rec(200, 6, 77n), rec(100, 9, 78n)]));
    assert.equal(r.unreadable, 0);
    assert.deepEqual(
      r.listeners.map((l) => [l.inode, l.holder?.proc.pid, l.holders, l.localIp, l.localPort, l.queued, l.maxBacklog]),
      [
        [77n, 100, 3, '10.1.2.3', 8080, 2, 511],
        [78n, 100, 1, '10.1.2.3', 8080, 2, 511],
      ],
    );
  });

  it('counts a truncated tail and undecodable records instead of dropping them silently', () => {
    const bad = rec(1, 3, 5n);
    bad.writeUInt16LE(99, 0); // unknown op
    const r = listenersFromIterator(Buffer.concat([bad, rec(2, 3, 6n), Buffer.alloc(10)]));
    assert.equal(r.listeners.length, 1);
    assert.equal(r.unreadable, 2);
  });
});
