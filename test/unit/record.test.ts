import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeRecord,
  OP_ACCEPT,
  type RawAccept,
  RECORD_SIZE,
  RECORD_VERSION,
  RecordError,
  RecordFlags,
  reusableRecord,
  Source,
} from '../../src/capture/record.js';
import { toAcceptEvent } from '../../src/capture/to-event.js';
import { AddressFamily, Source as ProtoSource } from '../../src/gen/doorwatch/v1/event.js';
import { buildRecord, ipv4, RECORD_BASE, sockaddrIn } from '../helpers/record-builder.js';

const ctx = { nodeName: 'node-a', idPrefix: 'boot/inst', toUnixNano: (k: bigint) => k + 1_000_000_000_000n };

const base = {
  ktimeNs: 5_000n,
  enterKtimeNs: 1_000n,
  pid: 42,
  tid: 43,
  comm: 'nginx',
  ret: 7,
  sockfd: 3,
  source: Source.ACCEPT4,
  family: 2,
  sockType: 1,
  protocol: 6,
  laddr: ipv4('10.0.0.1'),
  raddr: ipv4('10.0.0.2'),
  lport: 443,
  rport: 51000,
  addrPtr: 0x7fff0000n,
  addrlenPtr: 0x7fff0100n,
  userAddrlen: 16,
  userAddrlenIn: 128,
  userAddr: sockaddrIn('10.0.0.2', 51000),
  acceptFlags: 0o4000 | 0o2000000,
  backlog: 3,
  maxBacklog: 128,
};

describe('decodeRecord', () => {
  it('reads every field at its offset, with its width and sign', () => {
    // Distinct values, so two fields read from each other's offsets cannot pass.
    const want: RawAccept = {
      ...base,
      op: OP_ACCEPT,
      version: RECORD_VERSION,
      flags: RecordFlags.CGROUP_V1_UNKNOWN | RecordFlags.USER_ADDR_FAULT,
      cgroupId: 0xffff_0000_0000_0077n,
      cgroupV1Id: 88n,
      ppid: 41,
      uid: 1000,
      gid: 1001,
      mntNs: 4026531841,
      pidNs: 4026531836,
      netNs: 4026531840,
      utsNs: 4026531838,
      ret: -7,
      sockfd: 0x7fff_fff3,
      addrPtr: 0xffff_ffff_7fff_0000n,
      unixPath: new TextEncoder().encode('/run/x.sock'),
      peerPid: 99,
      policySlot: 17,
    };
    const plain = (r: RawAccept) => ({
      ...r,
      laddr: [...r.laddr],
      raddr: [...r.raddr],
      userAddr: [...r.userAddr],
      unixPath: [...r.unixPath],
    });
    assert.deepEqual(plain(decodeRecord(buildRecord(want), RECORD_BASE, RECORD_SIZE)), plain(want));
  });

  it('decodes negative returns and a -1 sockfd', () => {
    const r = decodeRecord(buildRecord({ ret: -9, sockfd: -1 }), RECORD_BASE, RECORD_SIZE);
    assert.equal(r.ret, -9);
    assert.equal(r.sockfd, -1);
  });

  it('rejects short records, unknown ops and other versions', () => {
    assert.throws(() => decodeRecord(buildRecord({}), RECORD_BASE, RECORD_SIZE - 8), RecordError);
    assert.throws(() => decodeRecord(buildRecord({ op: 99 }), RECORD_BASE, RECORD_SIZE), /unknown record op 99/);
    assert.throws(() => decodeRecord(buildRecord({ version: 9 }), RECORD_BASE, RECORD_SIZE), /version 9/);
  });

  it('decodes record after record into one reused record; the events made from it own their values', () => {
    const out = reusableRecord();
    const arrays = [out.laddr, out.raddr, out.userAddr];
    const a = buildRecord({ ...base, pid: 11, rport: 1111 });
    const first = toAcceptEvent(decodeRecord(a, RECORD_BASE, RECORD_SIZE, out), 1n, ctx);
    const firstWanted = toAcceptEvent(
      decodeRecord(buildRecord({ ...base, pid: 11, rport: 1111 }), RECORD_BASE, RECORD_SIZE),
      1n,
      ctx,
    );
    new Uint8Array(a.buffer).fill(0); // the ring slot is reused after the drain
    assert.equal(out.raddr[0], base.raddr[0], "the addresses are out's own copy, not a view of the ring");
    const b = buildRecord({ ...base, pid: 22, rport: 2222, raddr: ipv4('10.9.9.9'), ret: -11 });
    const r = decodeRecord(b, RECORD_BASE, RECORD_SIZE, out);
    assert.equal(r, out, 'the same object, filled again');
    assert.deepEqual([out.laddr, out.raddr, out.userAddr], arrays, 'and the same arrays: nothing allocated per record');
    const fresh = decodeRecord(b, RECORD_BASE, RECORD_SIZE);
    assert.deepEqual(
      { ...r, laddr: [...r.laddr], raddr: [...r.raddr], userAddr: [...r.userAddr] },
      {
        ...fresh,
        laddr: [...fresh.laddr],
        raddr: [...fresh.raddr],
        userAddr: [...fresh.userAddr],
      },
    );
    assert.equal(r.pid, 22);
    assert.equal(r.ret, -11);
    assert.deepEqual(first, firstWanted, 'the first event is untouched by the second decode');
    assert.equal(first.socket?.peer?.ip, '10.0.0.2');
  });
});

describe('toAcceptEvent', () => {
  it('maps a successful IPv4 accept4', () => {
    const ev = toAcceptEvent(decodeRecord(buildRecord(base), RECORD_BASE, RECORD_SIZE), 5n, ctx);
    assert.equal(ev.eventId, 'boot/inst/5');
    assert.equal(ev.source, ProtoSource.SOURCE_ACCEPT4);
    assert.equal(ev.success, true);
    assert.equal(ev.error, '');
    assert.equal(ev.durationNs, 4_000n);
    assert.equal(ev.timeUnixNano, 1_000_000_005_000n);
    assert.deepEqual(ev.acceptFlagNames, ['SOCK_NONBLOCK', 'SOCK_CLOEXEC']);
    assert.equal(ev.socket?.family, AddressFamily.ADDRESS_FAMILY_INET);
    assert.deepEqual(ev.socket?.local, { ip: '10.0.0.1', port: 443 });
    assert.deepEqual(ev.socket?.peer, { ip: '10.0.0.2', port: 51000 });
    assert.equal(ev.socket?.type, 'STREAM');
    assert.equal(ev.userAddress?.mismatch, false);
    assert.equal(ev.userAddress?.ip, '10.0.0.2');
    assert.deepEqual(ev.listener, { fd: 3, backlog: 3, maxBacklog: 128, resolved: true });
  });

  it('flags a user buffer that disagrees with the kernel peer', () => {
    const ev = toAcceptEvent(
      decodeRecord(buildRecord({ ...base, userAddr: sockaddrIn('10.66.66.66', 6666) }), RECORD_BASE, RECORD_SIZE),
      1n,
      ctx,
    );
    assert.equal(ev.userAddress?.mismatch, true);
    assert.equal(ev.userAddress?.ip, '10.66.66.66');
    assert.deepEqual(ev.socket?.peer, { ip: '10.0.0.2', port: 51000 });
  });

  it('does not call a NULL addr a mismatch', () => {
    const r = {
      ...base,
      addrPtr: 0n,
      addrlenPtr: 0n,
      userAddrlen: 0,
      userAddr: new Uint8Array(28),
      flags: RecordFlags.USER_ADDR_NULL,
    };
    const ev = toAcceptEvent(decodeRecord(buildRecord(r), RECORD_BASE, RECORD_SIZE), 1n, ctx);
    assert.equal(ev.userAddress?.present, false);
    assert.equal(ev.userAddress?.mismatch, false);
  });

  it('names the errno of a failed accept and leaves the socket unresolved', () => {
    const ev = toAcceptEvent(decodeRecord(buildRecord({ ...base, ret: -22 }), RECORD_BASE, RECORD_SIZE), 1n, ctx);
    assert.equal(ev.success, false);
    assert.equal(ev.error, 'EINVAL');
    assert.equal(ev.socket?.resolved, false);
    assert.equal(ev.socket?.peer?.ip, '');
    assert.equal(ev.userAddress?.mismatch, false);
  });

  it('marks exits without enter', () => {
    const r = {
      ...base,
      flags: RecordFlags.NO_ENTER | RecordFlags.LISTENER_UNRESOLVED | RecordFlags.USER_ADDR_NULL,
      enterKtimeNs: 0n,
    };
    const ev = toAcceptEvent(decodeRecord(buildRecord(r), RECORD_BASE, RECORD_SIZE), 1n, ctx);
    assert.deepEqual(ev.flags, ['NO_ENTER', 'LISTENER_UNRESOLVED', 'USER_ADDR_NULL']);
    assert.equal(ev.durationNs, 0n);
    assert.equal(ev.listener?.resolved, false);
  });

  it('formats IPv4-mapped IPv6 peers and unix paths', () => {
    const mapped = new Uint8Array(16);
    mapped.set([0xff, 0xff, 127, 0, 0, 1], 10);
    const ev6 = toAcceptEvent(
      decodeRecord(
        buildRecord({ ...base, family: 10, raddr: mapped, laddr: mapped, userAddr: new Uint8Array(28), userAddrlen: 28 }),
        RECORD_BASE,
        RECORD_SIZE,
      ),
      1n,
      ctx,
    );
    assert.equal(ev6.socket?.peer?.ip, '::ffff:127.0.0.1');
    assert.equal(ev6.socket?.v4Mapped, true);
    assert.equal(ev6.userAddress?.mismatch, true, 'an all-zero user buffer disagrees with the kernel');

    const path = new TextEncoder().encode('/run/app.sock');
    const evu = toAcceptEvent(
      decodeRecord(
        buildRecord({
          ...base,
          family: 1,
          protocol: 0,
          unixPath: path,
          peerPid: 99,
          userAddrlen: 2,
          userAddr: new Uint8Array([1, 0]),
        }),
        RECORD_BASE,
        RECORD_SIZE,
      ),
      1n,
      ctx,
    );
    assert.equal(evu.socket?.family, AddressFamily.ADDRESS_FAMILY_UNIX);
    assert.equal(evu.socket?.unixPath, '/run/app.sock');
    assert.equal(evu.socket?.peerPid, 99);
    assert.equal(evu.socket?.local?.ip, '');
  });
});
