import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRecord, recordId } from '../../src/formats/format.js';
import { LossRecord } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent, AddressFamily, EventKind, SummaryReason } from '../../src/gen/doorwatch/v1/event.js';
import type { SinkRecord } from '../../src/sinks/sink.js';
import {
  buildSyslogFrame,
  buildSyslogFrames,
  buildSyslogMessage,
  escapeSdParam,
  type SyslogFrameOptions,
  severityOf,
  syslogHeader,
  syslogPri,
  syslogSink,
  syslogTimestamp,
} from '../../src/sinks/syslog.js';
import { configProblems } from '../helpers/config-problems.js';
import { parseRfc5424 } from '../helpers/rsyslog.js';
import {
  SAMPLE_POLICY,
  sampleEvent,
  sampleHostEvent,
  sampleLoss,
  sampleSummary,
  sampleUnixEvent,
} from '../helpers/sample-events.js';

const T = 1_700_000_000_123_456_789n; // 2023-11-14T22:13:20.123456789Z

function event(over: Parameters<typeof AcceptEvent.fromPartial>[0] = {}): SinkRecord {
  return {
    kind: 'event',
    event: AcceptEvent.fromPartial({
      eventId: 'node-1/boot/1/7',
      seq: 7n,
      timeUnixNano: T,
      nodeName: 'node-1',
      ret: 5,
      success: true,
      process: { pid: 4242, comm: 'nginx' },
      socket: {
        family: AddressFamily.ADDRESS_FAMILY_INET,
        local: { ip: '10.0.0.5', port: 443 },
        peer: { ip: '10.0.0.9', port: 51234 },
        resolved: true,
      },
      pod: { namespace: 'shop', name: 'web-0', labels: { app: 'web' } },
      ...over,
    }),
  };
}

const loss: SinkRecord = {
  kind: 'loss',
  loss: LossRecord.fromPartial({
    agent: { nodeName: 'node-2', bootId: 'b', instanceId: 'i' },
    fromSeq: 10n,
    toSeq: 19n,
    reason: 'seq gap',
    timeUnixNano: T,
  }),
};

const opts: SyslogFrameOptions = { facility: 'local0', format: 'native', appName: 'doorwatch', bom: false };

/** Splits "<len> <msg>" and checks the length counts bytes. */
function unframe(frame: Buffer): string {
  const sp = frame.indexOf(0x20);
  const len = Number(frame.subarray(0, sp).toString('ascii'));
  assert.equal(len, frame.length - sp - 1, 'octet count = bytes after the space');
  return frame.subarray(sp + 1).toString('utf8');
}

describe('syslog PRI and severity', () => {
  it('computes facility * 8 + severity', () => {
    assert.equal(syslogPri('kern', 0), 0);
    assert.equal(syslogPri('auth', 4), 36);
    assert.equal(syslogPri('local0', 6), 134);
    assert.equal(syslogPri('local7', 3), 187);
  });
  it('is info for success, warning for a failed accept, err for a loss', () => {
    assert.equal(severityOf(event()), 6);
    assert.equal(severityOf(event({ success: false, ret: -24, error: 'EMFILE' })), 4);
    assert.equal(severityOf(loss), 3);
  });
});

describe('syslog timestamp', () => {
  it('is RFC 3339 UTC with microseconds, truncated', () => {
    assert.equal(syslogTimestamp(T), '2023-11-14T22:13:20.123456Z');
    assert.equal(syslogTimestamp(1_700_000_000_000_001_999n), '2023-11-14T22:13:20.000001Z');
    assert.equal(syslogTimestamp(1_700_000_000_999_999_999n), '2023-11-14T22:13:20.999999Z');
  });
  it('is NILVALUE when unknown', () => {
    assert.equal(syslogTimestamp(0n), '-');
  });
});

describe('syslog SD-PARAM escaping', () => {
  it('escapes exactly ", \\ and ]', () => {
    assert.equal(escapeSdParam('a"b\\c]d'), 'a\\"b\\\\c\\]d');
    assert.equal(escapeSdParam('[x=y] ok'), '[x=y\\] ok');
    assert.equal(escapeSdParam('café\nnext'), 'café\nnext');
  });
});

describe('buildSyslogFrame', () => {
  it('builds an RFC 5424 message for an accept event', () => {
    const rec = event();
    const m = parseRfc5424(unframe(buildSyslogFrame(rec, opts)));
    assert.equal(m.pri, 134);
    assert.equal(m.version, 1);
    assert.equal(m.timestamp, '2023-11-14T22:13:20.123456Z');
    assert.equal(m.hostname, 'node-1');
    assert.equal(m.appName, 'doorwatch');
    assert.equal(m.procId, '4242');
    assert.equal(m.msgId, 'ACCEPT');
    assert.deepEqual(m.sd, {
      'doorwatch@32473': { id: recordId(rec), ns: 'shop', pod: 'web-0', src: '10.0.0.9:51234', dst: '10.0.0.5:443' },
    });
    assert.equal(m.msg, JSON.stringify(formatRecord(rec, 'native')));
  });

  it('uses the configured facility, format and app name', () => {
    const rec = event({ success: false, ret: -24, error: 'EMFILE', socket: undefined, pod: undefined });
    for (const format of ['native', 'ocsf', 'ecs'] as const) {
      const m = parseRfc5424(unframe(buildSyslogFrame(rec, { facility: 'auth', format, appName: 'dw-prod', bom: false })));
      assert.equal(m.pri, 4 * 8 + 4);
      assert.equal(m.appName, 'dw-prod');
      assert.deepEqual(m.sd, { 'doorwatch@32473': { id: recordId(rec) } }, 'no ns/pod/src/dst when unknown');
      assert.equal(m.msg, JSON.stringify(formatRecord(rec, format)));
    }
  });

  it('brackets IPv6 endpoints', () => {
    const rec = event({
      socket: { family: AddressFamily.ADDRESS_FAMILY_INET6, local: { ip: '::1', port: 80 }, peer: { ip: 'fe80::1', port: 9 } },
    });
    const sd = parseRfc5424(buildSyslogMessage(rec, opts)).sd['doorwatch@32473']!;
    assert.equal(sd.src, '[fe80::1]:9');
    assert.equal(sd.dst, '[::1]:80');
  });

  it('builds a SUMMARY message for a summary record: the key’s peer, counts and reason instead of src', () => {
    const rec: SinkRecord = { kind: 'event', event: sampleSummary() };
    const m = parseRfc5424(buildSyslogMessage(rec, opts));
    assert.equal(m.msgId, 'SUMMARY');
    assert.equal(m.pri, 16 * 8 + 6);
    assert.equal(m.procId, '812');
    assert.equal(m.timestamp, '2024-05-01T12:00:00.123456Z');
    assert.deepEqual(m.sd['doorwatch@32473'], {
      id: 'boot-1/inst-1/42',
      ns: 'shop',
      pod: 'web-7d9f-abc',
      peer: '10.0.0.9',
      dst: '10.0.0.5:443',
      count: '57',
      failed: '0',
      reason: 'rate_limit',
    });
    assert.equal(m.msg, JSON.stringify(formatRecord(rec, 'native')));
  });

  it('raises a summary to warning when any accept in it failed, and names no peer when peers were folded', () => {
    const rec: SinkRecord = {
      kind: 'event',
      event: sampleSummary({
        summary: { reason: SummaryReason.SUMMARY_REASON_MODE, count: 9n, failedCount: 2n, peerIp: '', peersFolded: true },
      }),
    };
    assert.equal(severityOf(rec), 4);
    const sd = parseRfc5424(buildSyslogMessage(rec, opts)).sd['doorwatch@32473']!;
    assert.equal(sd.peer, undefined);
    assert.equal(sd.src, undefined);
    assert.equal(sd.count, '9');
    assert.equal(sd.failed, '2');
    assert.equal(sd.reason, 'mode');
  });

  it('keeps ACCEPT for accepts with a policy ref or an explicit kind', () => {
    const rec = event({ kind: EventKind.EVENT_KIND_ACCEPT, policy: SAMPLE_POLICY });
    const m = parseRfc5424(buildSyslogMessage(rec, opts));
    assert.equal(m.msgId, 'ACCEPT');
    assert.equal(m.sd['doorwatch@32473']!.src, '10.0.0.9:51234');
  });

  it('builds a LOSS message at err from a loss record', () => {
    const m = parseRfc5424(buildSyslogMessage(loss, opts));
    assert.equal(m.pri, 16 * 8 + 3);
    assert.equal(m.hostname, 'node-2');
    assert.equal(m.procId, '-');
    assert.equal(m.msgId, 'LOSS');
    assert.deepEqual(m.sd['doorwatch@32473'], { id: recordId(loss), from: '10', to: '19', reason: 'seq gap' });
    assert.equal(m.msg, JSON.stringify(formatRecord(loss, 'native')));
  });

  it("an accept's header written as bytes equals the text header, byte for byte, across odd values", () => {
    const variants: Parameters<typeof event>[0][] = [
      {},
      { success: false, ret: -11 },
      { process: undefined },
      { process: { pid: 0, comm: 'x' } },
      { pod: undefined },
      { pod: { namespace: '', name: 'web-0' } },
      { pod: { namespace: 'a]b', name: 'p"q\\r' } },
      { pod: { namespace: 'café', name: '🚪' } },
      { eventId: '' },
      { eventId: 'n/b/1/"]\\' },
      { eventId: 'line1\nline2' },
      { nodeName: 'nöde 1' },
      { nodeName: '' },
      { timeUnixNano: 0n },
      { timeUnixNano: 1n },
      { timeUnixNano: 999n },
      { timeUnixNano: 1_000_000_000n },
      { timeUnixNano: 1_700_000_000_999_999_999n },
      { timeUnixNano: 2n ** 64n - 1n },
      { timeUnixNano: 2n ** 64n },
      {
        socket: {
          family: AddressFamily.ADDRESS_FAMILY_INET6,
          local: { ip: '::1', port: 8443 },
          peer: { ip: 'fe80::1', port: 0 },
        },
      },
      { socket: { family: AddressFamily.ADDRESS_FAMILY_INET, local: { ip: '', port: 80 }, peer: undefined } },
      { socket: undefined },
      { socket: { local: { ip: 'a"b', port: 1 }, peer: { ip: 'c]d:e', port: 2 } } },
      { kind: EventKind.EVENT_KIND_ACCEPT, policy: SAMPLE_POLICY },
    ];
    const all = [
      ...variants.map((v) => event(v)),
      { kind: 'event', event: sampleEvent() } as SinkRecord,
      { kind: 'event', event: sampleHostEvent() } as SinkRecord,
      { kind: 'event', event: sampleUnixEvent() } as SinkRecord,
    ];
    const optsSet: SyslogFrameOptions[] = [opts, { facility: 'auth', format: 'ocsf', appName: 'my app ü', bom: true }];
    for (const o of optsSet)
      for (const [i, rec] of all.entries()) {
        const want = syslogHeader(rec, o);
        const got = buildSyslogMessage(rec, o);
        assert.equal(got.slice(0, want.length), want, `variant ${i}, facility ${o.facility}`);
      }
  });

  it('round-trips SD values that need escaping', () => {
    const rec = event({ eventId: 'n/b/1/"]\\', pod: { namespace: 'a]b', name: 'p"q\\r' } });
    const raw = buildSyslogMessage(rec, opts);
    assert.match(raw, /ns="a\\]b" pod="p\\"q\\\\r"/);
    const sd = parseRfc5424(raw).sd['doorwatch@32473']!;
    assert.equal(sd.id, recordId(rec));
    assert.equal(sd.ns, 'a]b');
    assert.equal(sd.pod, 'p"q\\r');
  });

  it('counts octets, not characters, with non-ASCII content', () => {
    const rec = event({ pod: { namespace: 'shop', name: 'web-0', labels: { team: 'café 🚪 ünïcode' } } });
    const frame = buildSyslogFrame(rec, opts);
    const msg = buildSyslogMessage(rec, opts);
    assert.ok(Buffer.byteLength(msg) > msg.length, 'the fixture has multi-byte characters');
    assert.equal(frame.toString('utf8'), `${Buffer.byteLength(msg)} ${msg}`);
    assert.match(unframe(frame), /café 🚪 ünïcode/);
  });

  it('keeps header fields PRINTUSASCII: sanitized, truncated, NILVALUE when empty', () => {
    assert.equal(parseRfc5424(buildSyslogMessage(event({ nodeName: 'nöde 1' }), opts)).hostname, 'n_de_1');
    assert.equal(parseRfc5424(buildSyslogMessage(event({ nodeName: 'x'.repeat(300) }), opts)).hostname.length, 255);
    assert.equal(parseRfc5424(buildSyslogMessage(event({ nodeName: '' }), opts)).hostname, '-');
    assert.equal(parseRfc5424(buildSyslogMessage(event({ process: undefined }), opts)).procId, '-');
  });

  it('prefixes MSG with a UTF-8 BOM only when asked', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const rec = event();
    const json = Buffer.from(JSON.stringify(formatRecord(rec, 'native')));
    const withBom = buildSyslogFrame(rec, { ...opts, bom: true });
    const without = buildSyslogFrame(rec, opts);
    assert.ok(withBom.subarray(withBom.length - json.length - 3).equals(Buffer.concat([bom, json])));
    assert.ok(without.subarray(without.length - json.length).equals(json));
    assert.equal(without.indexOf(bom), -1);
    unframe(withBom);
  });

  it('frames a raw newline inside an SD value as one message', () => {
    const rec = event({ eventId: 'line1\nline2' });
    const text = unframe(buildSyslogFrame(rec, opts));
    assert.equal(parseRfc5424(text).sd['doorwatch@32473']!.id, recordId(rec));
  });
});

describe('syslog config', () => {
  const parse = (c: unknown) => syslogSink.parse(c, 'sinks[0]');
  const problems = (c: unknown): string[] => configProblems(parse, c);

  it('fills defaults: TLS on port 6514, local0, native, doorwatch', () => {
    assert.deepEqual(parse({ host: 'siem.example' }), {
      host: 'siem.example',
      port: 6514,
      tls: { rejectUnauthorized: true },
      facility: 'local0',
      format: 'native',
      appName: 'doorwatch',
      bom: false,
      resendWindowBytes: 10 * 1024 * 1024,
      connectTimeoutMs: 10_000,
      writeTimeoutMs: 30_000,
    });
  });

  it('takes plain TCP only from tls: false, then defaults to port 514', () => {
    const c = parse({ host: 'h', tls: false });
    assert.equal(c.tls, false);
    assert.equal(c.port, 514);
    assert.deepEqual(parse({ host: 'h', tls: true }).tls, { rejectUnauthorized: true });
  });

  it('accepts the common sink keys, a TLS object and human durations', () => {
    const c = parse({
      name: 'siem',
      type: 'syslog',
      required: true,
      host: 'h',
      port: 10514,
      format: 'ocsf',
      facility: 'auth',
      tls: { ca: '/ca.pem', cert: '/c.pem', key: '/k.pem', serverName: 'siem', rejectUnauthorized: false },
      connectTimeout: '2s',
      writeTimeout: 500,
    });
    assert.equal(c.port, 10514);
    assert.deepEqual(c.tls, { ca: '/ca.pem', cert: '/c.pem', key: '/k.pem', serverName: 'siem', rejectUnauthorized: false });
    assert.equal(c.connectTimeoutMs, 2000);
    assert.equal(c.writeTimeoutMs, 500);
    assert.equal('name' in c, false);
  });

  it('names every bad key at once', () => {
    const p = problems({ port: '514', facility: 'local9', format: 'xml', connectTimeout: 'soon', appName: 'has space' });
    const keys = p.map((x) => x.split(':')[0]);
    assert.deepEqual(keys.sort(), [
      'sinks[0].appName',
      'sinks[0].connectTimeout',
      'sinks[0].facility',
      'sinks[0].format',
      'sinks[0].host',
      'sinks[0].port',
    ]);
    assert.ok(p.some((x) => /^sinks\[0\]\.port: Expected number, received string/.test(x)));
  });

  it('rejects unknown keys, at the top and inside tls', () => {
    assert.deepEqual(problems({ host: 'h', hots: 'x' }), ['sinks[0]: Unrecognized key(s) in object: \'hots\' ("hots")']);
    assert.match(problems({ host: 'h', tls: { ca: '/x', verify: true } })[0]!, /^sinks\[0\]\.tls: Unrecognized key.*"verify"/);
  });

  it('wants tls.cert and tls.key together, and tls as a bool or object', () => {
    assert.match(problems({ host: 'h', tls: { cert: '/c.pem' } })[0]!, /^sinks\[0\]\.tls\.key: .*both tls\.cert and tls\.key/);
    assert.match(problems({ host: 'h', tls: 'yes' })[0]!, /^sinks\[0\]\.tls: expected true, false or/);
    assert.match(problems({ host: 'h', port: 70000 })[0]!, /^sinks\[0\]\.port: /);
  });
});

describe('buildSyslogFrames', () => {
  it('is the frames of the batch one after another, in every format, with node names and seconds changing', () => {
    const batch: SinkRecord[] = [
      { kind: 'event', event: sampleEvent() },
      { kind: 'event', event: sampleEvent({ nodeName: 'nöde "x"]', timeUnixNano: 1_800_000_000_000_000_000n }) },
      { kind: 'loss', loss: sampleLoss() },
      { kind: 'event', event: sampleSummary() },
      { kind: 'event', event: sampleHostEvent({ pod: { name: 'a]b"c\\' } }) },
      { kind: 'event', event: sampleUnixEvent({ timeUnixNano: 0n }) },
      { kind: 'event', event: sampleEvent() },
    ];
    for (const format of ['native', 'ocsf', 'ecs'] as const) {
      for (const bom of [false, true]) {
        const opts = { facility: 'local0' as const, format, appName: 'doorwatch', bom };
        const want = Buffer.concat(batch.map((r) => buildSyslogFrame(r, opts)));
        assert.ok(buildSyslogFrames(batch, opts).equals(want), `${format} bom=${bom}`);
      }
    }
  });
});
