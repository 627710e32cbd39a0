import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import type { Sink, SinkRecord } from '../../src/sinks/sink.js';
import { syslogSink } from '../../src/sinks/syslog.js';
import { until } from '../helpers/wait.js';

/**
 * The syslog sink's resend window without a syslog daemon: a plain TCP server on loopback that records the
 * octet-counted frames of each connection and can drop a connection the way a restarted server does. (The
 * same with real rsyslog and syslog-ng: test/integration/sink-syslog-*.test.ts.)
 */

const rec = (id: string): SinkRecord => ({
  kind: 'event',
  event: AcceptEvent.fromPartial({ eventId: id, nodeName: 'n', timeUnixNano: 1_700_000_000_000_000_000n, success: true }),
});

/** Event ids of the frames each connection carried. */
async function recorder() {
  const conns: string[][] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    const ids: string[] = [];
    conns.push(ids);
    sockets.push(s);
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      for (let m = /^(\d+) /.exec(buf); m && buf.length >= m[0].length + Number(m[1]); m = /^(\d+) /.exec(buf)) {
        const msg = buf.slice(m[0].length, m[0].length + Number(m[1]));
        buf = buf.slice(m[0].length + Number(m[1]));
        ids.push(/ id="([^"]*)"/.exec(msg)![1]!);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    /** Drop the newest connection (a server restart). */
    drop: () => sockets.at(-1)!.destroy(),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

describe('syslog sink resend window', () => {
  const sinks: Sink[] = [];
  const recorders: Awaited<ReturnType<typeof recorder>>[] = [];
  after(async () => {
    for (const r of recorders) await r.close();
    for (const s of sinks) await s.close();
  });
  const create = async (port: number, over: Record<string, unknown> = {}) => {
    const config = syslogSink.parse({ host: '127.0.0.1', port, tls: false, ...over }, 'sinks[0]');
    const sink = await syslogSink.create('siem', config, { log: silentLogger });
    sinks.push(sink);
    return sink;
  };
  const resent = (s: Sink) => (s as unknown as { resentRecords: number }).resentRecords;

  it('after a lost connection, what was written on it goes again first, without waiting for the next batch', async () => {
    const r = await recorder();
    recorders.push(r);
    const sink = await create(r.port);
    await sink.write([rec('a1'), rec('a2')]);
    await sink.write([rec('b1')]);
    await until(() => r.conns[0]?.length === 3, 'the first connection to carry 3');
    r.drop();
    // No write: the sink reconnects by itself and resends.
    await until(() => r.conns[1]?.length === 3, 'the resend on a new connection', 5000);
    assert.deepEqual(r.conns[1], ['a1', 'a2', 'b1']);
    assert.equal(resent(sink), 3);
    await sink.write([rec('c1')]);
    await until(() => r.conns[1]?.length === 4, 'c1');
    assert.deepEqual(r.conns, [
      ['a1', 'a2', 'b1'],
      ['a1', 'a2', 'b1', 'c1'],
    ]);
    await r.close();
  });

  it('keeps the newest batches that make up resendWindow, no more', async () => {
    const r = await recorder();
    recorders.push(r);
    const sink = await create(r.port, { resendWindow: '1KiB' }); // one record's frame is ~0.55 KiB
    for (const id of ['old', 'mid', 'new']) await sink.write([rec(id)]);
    await until(() => r.conns[0]?.length === 3, 'three');
    r.drop();
    await until(() => r.conns[1]?.length === 2, 'the resend', 5000);
    await new Promise((res) => setTimeout(res, 100));
    assert.deepEqual(r.conns[1], ['mid', 'new'], 'the last 1 KiB (two frames), not the oldest');
    await r.close();
  });

  it('buffers of large batches out of the window are reused, and what the window still holds is never overwritten', async () => {
    const r = await recorder();
    recorders.push(r);
    // 130 records of ~0.55 KiB: a batch over SLAB_MIN (64 KiB) gets a buffer of its own; the window holds two.
    const sink = await create(r.port, { resendWindow: '150KiB' });
    const batches = Array.from({ length: 8 }, (_, b) => Array.from({ length: 130 }, (_, i) => `b${b}-${i}`));
    for (const ids of batches) await sink.write(ids.map(rec));
    const all = batches.flat();
    await until(() => r.conns[0]?.length === all.length, 'every record');
    assert.deepEqual(r.conns[0], all, 'each batch written as framed, none overwritten by a later one');
    const spare = (sink as unknown as { spare: Buffer[] }).spare;
    assert.ok(spare.length >= 1, 'buffers that left the window are kept for reuse');
    r.drop();
    const window = [...batches[6]!, ...batches[7]!];
    await until(() => r.conns[1]?.length === window.length, 'the resend', 5000);
    assert.deepEqual(r.conns[1], window, 'the window’s batches resent intact after their neighbours reused buffers');
    await r.close();
  });

  it('small batches take no buffer of their own: a window of them holds their bytes, not a buffer each', async () => {
    const r = await recorder();
    recorders.push(r);
    const sink = await create(r.port);
    for (let i = 0; i < 50; i++) await sink.write([rec(`s${i}`)]);
    await until(() => r.conns[0]?.length === 50, 'fifty');
    const state = sink as unknown as { spare: Buffer[]; recent: { slab?: Buffer }[] };
    assert.equal(state.recent.length, 50, 'the default window holds all fifty');
    assert.ok(
      state.recent.every((w) => w.slab === undefined),
      'no one-record batch holds a buffer of its own',
    );
    assert.equal(state.spare.length, 0);
    await r.close();
  });

  it('resendWindow: 0 resends nothing', async () => {
    const r = await recorder();
    recorders.push(r);
    const sink = await create(r.port, { resendWindow: 0 });
    await sink.write([rec('a1')]);
    await until(() => r.conns[0]?.length === 1, 'a1');
    r.drop();
    await new Promise((res) => setTimeout(res, 300));
    await sink.write([rec('b1')]);
    await until(() => r.conns[1]?.length === 1, 'b1');
    assert.deepEqual(r.conns, [['a1'], ['b1']]);
    assert.equal(resent(sink), 0);
    await r.close();
  });

  it('its own close is not a lost connection: nothing is resent', async () => {
    const r = await recorder();
    recorders.push(r);
    const sink = await create(r.port);
    await sink.write([rec('a1')]);
    await until(() => r.conns[0]?.length === 1, 'a1');
    await sink.close();
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(r.conns.length, 1);
    assert.equal(resent(sink), 0);
    await r.close();
  });
});
