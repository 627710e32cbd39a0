import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatRecord, recordId, recordTimeNs } from '../../src/formats/format.js';
import { LossRecord } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent, AddressFamily } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import type { FormatName, Sink, SinkRecord } from '../../src/sinks/sink.js';
import {
  buildSyslogMessage,
  SD_ID,
  type SyslogFrameOptions,
  syslogPri,
  syslogSink,
  syslogTimestamp,
} from '../../src/sinks/syslog.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { parseRfc5424, type Received, type Rsyslog, type RsyslogTls, startRsyslog } from '../helpers/rsyslog.js';
import { freePort } from '../helpers/wait.js';

function event(seq: number, over: Parameters<typeof AcceptEvent.fromPartial>[0] = {}): SinkRecord {
  return {
    kind: 'event',
    event: AcceptEvent.fromPartial({
      eventId: `node-${seq % 3}/boot/1/${seq}`,
      seq: BigInt(seq),
      timeUnixNano: 1_700_000_000_000_000_000n + BigInt(seq) * 1_234_567n,
      nodeName: `node-${seq % 3}`,
      success: seq % 5 !== 0,
      ret: seq % 5 !== 0 ? 7 : -24,
      error: seq % 5 !== 0 ? '' : 'EMFILE',
      process: { pid: 1000 + seq, comm: 'nginx' },
      socket: {
        family: AddressFamily.ADDRESS_FAMILY_INET,
        local: { ip: '10.0.0.5', port: 443 },
        peer: { ip: '10.1.2.3', port: 40000 + seq },
        resolved: true,
      },
      pod: { namespace: 'shop', name: `web-${seq}`, labels: { app: 'web' } },
      ...over,
    }),
  };
}

const events = (from: number, n: number) => Array.from({ length: n }, (_, i) => event(from + i));

/** What rsyslog received must be exactly what the sink built, and rsyslog must parse it as RFC 5424. */
function assertReceived(got: Received, rec: SinkRecord, opts: SyslogFrameOptions): void {
  assert.equal(got.raw, buildSyslogMessage(rec, opts));
  const p = parseRfc5424(got.raw);
  const e = rec.kind === 'event' ? rec.event : undefined;
  assert.equal(got.pri, String(syslogPri(opts.facility, e ? (e.success ? 6 : 4) : 3)));
  assert.equal(got.timestamp, syslogTimestamp(recordTimeNs(rec)));
  assert.equal(got.hostname, p.hostname);
  if (e && /^[\x21-\x7e]+$/.test(e.nodeName)) assert.equal(got.hostname, e.nodeName);
  assert.equal(got.appName, opts.appName);
  assert.equal(got.procId, e ? String(e.process!.pid) : '-');
  assert.equal(got.msgId, e ? 'ACCEPT' : 'LOSS');
  assert.equal(p.sd[SD_ID]!.id, recordId(rec));
  if (e?.pod) {
    assert.equal(p.sd[SD_ID]!.ns, e.pod.namespace);
    assert.equal(p.sd[SD_ID]!.pod, e.pod.name);
    assert.equal(p.sd[SD_ID]!.src, `${e.socket!.peer!.ip}:${e.socket!.peer!.port}`);
    assert.equal(p.sd[SD_ID]!.dst, `${e.socket!.local!.ip}:${e.socket!.local!.port}`);
  }
  assert.ok(got.raw.includes(` ${got.structuredData} `), 'rsyslog saw the same structured data');
  assert.deepEqual(JSON.parse(got.msg), JSON.parse(JSON.stringify(formatRecord(rec, opts.format))));
}

function assertAllReceived(got: Received[], recs: SinkRecord[], opts: SyslogFrameOptions): void {
  assert.equal(got.length, recs.length, 'no message lost, split or merged');
  for (const [i, rec] of recs.entries()) assertReceived(got[i]!, rec, opts);
}

const frameOpts = (format: FormatName = 'native'): SyslogFrameOptions => ({
  facility: 'local0',
  format,
  appName: 'doorwatch',
  bom: false,
});

describe('syslog sink against a real rsyslogd', () => {
  let pki: Pki;
  let serverTls: RsyslogTls;
  let rs: Rsyslog;
  const servers: Rsyslog[] = [];
  const sinks: Sink[] = [];

  const start = async (opts: Parameters<typeof startRsyslog>[0]) => {
    const r = await startRsyslog(opts);
    servers.push(r);
    return r;
  };
  const create = async (config: Record<string, unknown>) => {
    const sink = await syslogSink.create('siem', syslogSink.parse(config, 'sinks[0]'), { log: silentLogger });
    sinks.push(sink);
    return sink;
  };
  const tlsTo = (r: Rsyslog, extra: Record<string, unknown> = {}) => ({
    host: '127.0.0.1',
    port: r.port,
    tls: { ca: pki.caFile, ...extra },
    connectTimeout: '3s',
  });

  before(async () => {
    pki = makePki();
    serverTls = { caFile: pki.caFile, certFile: pki.server.cert, keyFile: pki.server.key };
    rs = await start({ tls: serverTls });
  });

  after(async () => {
    for (const s of sinks) await s.close().catch(() => {});
    for (const r of servers) {
      await r.stop();
      rmSync(r.dir, { recursive: true, force: true });
    }
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('delivers events and a loss record over TLS, intact and in order', async () => {
    const base = rs.received().length;
    const sink = await create({ ...tlsTo(rs), format: 'native' });
    const loss: SinkRecord = {
      kind: 'loss',
      loss: LossRecord.fromPartial({
        agent: { nodeName: 'node-9', bootId: 'b', instanceId: 'i' },
        fromSeq: 5n,
        toSeq: 9n,
        reason: 'seq gap',
        timeUnixNano: 1_700_000_001_000_000_000n,
      }),
    };
    const recs = [...events(1, 300), loss];
    for (let i = 0; i < recs.length; i += 50) await sink.write(recs.slice(i, i + 50));
    const got = (await rs.waitFor(base + recs.length)).slice(base);
    assert.equal(got.length, recs.length);
    assertAllReceived(got, recs, frameOpts());
    await sink.close();
    await sink.close();
    await assert.rejects(sink.write(recs.slice(0, 1)), /closed/);
  });

  it('octet counting keeps messages with raw newlines, escapes and unicode whole', async () => {
    const base = rs.received().length;
    const sink = await create({ ...tlsTo(rs), format: 'ocsf' });
    const recs = [
      event(1, { eventId: 'line one\nline two\n', pod: { namespace: 'a]b', name: 'p"q\\r', labels: { team: 'café 🚪 ✓' } } }),
      event(2, { nodeName: 'nöde-ü', pod: { namespace: 'ns', name: '日本語', labels: { note: 'x\ny\r\nz' } } }),
      event(3, { eventId: '12 <134>1 fake header' }),
    ];
    await sink.write(recs);
    const got = (await rs.waitFor(base + recs.length)).slice(base);
    assert.equal(got.length, 3, 'no message was split or merged');
    assertAllReceived(got, recs, frameOpts('ocsf'));
    assert.equal(got[1]!.hostname, 'n_de-_', 'a non-ASCII node name is made PRINTUSASCII');
    await sink.close(); // else the restarts below would make it resend these
  });

  it('reconnects on the next write after rsyslogd is killed and restarted', async () => {
    const base = rs.received().length;
    const sink = await create(tlsTo(rs));
    await sink.write(events(1, 10));
    await rs.waitFor(base + 10);

    // Down: the write fails (connection refused) and the dispatcher keeps the batch for a retry.
    await rs.stop();
    await assert.rejects(sink.write(events(11, 10)), /syslog sink "siem": connection to 127\.0\.0\.1:\d+ refused/);

    // Back (same port): the retried batch goes out on a new connection.
    await rs.restart();
    await sink.write(events(11, 10));
    await rs.waitFor(base + 20);

    // Killed and restarted between two writes: at most the first write after it may fail.
    await rs.restart();
    let failures = 0;
    for (;;) {
      try {
        await sink.write(events(21, 10));
        break;
      } catch (err) {
        if (++failures > 1) throw err;
        await sleep(100);
      }
    }
    // At least once: what each lost connection carried is sent again (counted); the first copy of each is whole.
    await sleep(200);
    const resent = (sink as unknown as { resentRecords: number }).resentRecords;
    assert.ok(resent >= 10, `the batches written before the kills were resent (${resent})`);
    const got = (await rs.waitFor(base + 30 + resent)).slice(base);
    // ...or part of a write that failed half-way and was retried (above).
    assert.ok(
      got.length <= 30 + resent + failures * 10,
      `${got.length} copies: 30 + ${resent} resent + ${failures} retried batch`,
    );
    const firsts = got.filter((g, i) => got.findIndex((o) => o.raw === g.raw) === i);
    assertAllReceived(firsts, events(1, 30), frameOpts());
  });

  it('fails at create with a clear TLS error when the server certificate is from another CA', async () => {
    const impostor = await start({
      tls: { caFile: pki.other.caFile, certFile: pki.other.server.cert, keyFile: pki.other.server.key },
    });
    await assert.rejects(
      create(tlsTo(impostor)),
      /syslog sink "siem": TLS handshake with 127\.0\.0\.1:\d+ failed: the server's certificate is not trusted: .*\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\) — set tls\.ca/,
    );
    // And the other way round: our server, a CA that did not sign it.
    await assert.rejects(create({ ...tlsTo(rs), tls: { ca: pki.other.caFile } }), /not trusted/);
  });

  it('presents a client certificate when rsyslog requires one (x509/certvalid)', async () => {
    const strict = await start({ tls: { ...serverTls, authMode: 'x509/certvalid' } });
    await assert.rejects(create(tlsTo(strict)), /closed the connection right after the TLS handshake.*tls\.cert, tls\.key/);
    await assert.rejects(
      create(tlsTo(strict, { cert: pki.other.client.cert, key: pki.other.client.key })),
      /closed the connection right after the TLS handshake/,
    );
    const client = pki.client('doorwatch-collector');
    const sink = await create(tlsTo(strict, { cert: client.cert, key: client.key }));
    await sink.write(events(1, 5));
    const got = await strict.waitFor(5);
    assertAllReceived(got, events(1, 5), frameOpts());
  });

  it('speaks plain TCP only with tls: false', async () => {
    const plain = await start({});
    const sink = await create({ host: '127.0.0.1', port: plain.port, tls: false, facility: 'auth', appName: 'dw-test' });
    await sink.write(events(1, 20));
    const got = await plain.waitFor(20);
    const opts: SyslogFrameOptions = { facility: 'auth', format: 'native', appName: 'dw-test', bom: false };
    assertAllReceived(got, events(1, 20), opts);

    // A TLS sink against the plain port never completes a handshake: bounded by connectTimeout.
    await assert.rejects(
      create({ ...tlsTo(plain), connectTimeout: '500ms' }),
      /TLS connection to 127\.0\.0\.1:\d+ failed: no TLS handshake within 500ms/,
    );
  });

  it('fails at create when nothing listens', async () => {
    const port = await freePort();
    await assert.rejects(
      create({ host: '127.0.0.1', port, tls: false }),
      new RegExp(`connection to 127\\.0\\.0\\.1:${port} refused \\(ECONNREFUSED\\): check host and port`),
    );
  });

  it('names the tls file it cannot read', async () => {
    await assert.rejects(
      create({ ...tlsTo(rs), tls: { ca: '/nonexistent/ca.pem' } }),
      /tls\.ca: cannot read "\/nonexistent\/ca\.pem"/,
    );
  });
});
