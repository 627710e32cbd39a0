import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIPv4 } from '../../src/capture/address.js';
import { decodeRecord, LAYOUT, RECORD_SIZE } from '../../src/capture/record.js';
import { toAcceptEvent } from '../../src/capture/to-event.js';
import { buildRecord, ipv4, RECORD_BASE } from '../helpers/record-builder.js';

/*
 * The capture path remembers the last values of fields that repeat from
 * record to record (comm, cgroup ids, pointers, IPv4 texts). A remembered
 * value must never stand in for a different one.
 */
describe('capture memos', () => {
  it('the aligned decoder reads every field at an offset aligned to its width (the C struct’s natural alignment)', () => {
    const width: Record<string, number> = { 'hdr.version': 1, source: 1, laddr: 1, raddr: 1, user_addr: 1, unix_path: 1 };
    for (const k of ['hdr.op', 'family', 'sock_type', 'protocol', 'lport', 'rport', 'unix_path_len', 'policy_slot']) width[k] = 2;
    for (const k of ['hdr.ktime_ns', 'cgroup_id', 'cgroup_v1_id', 'enter_ktime_ns', 'addr_ptr', 'addrlen_ptr']) width[k] = 8;
    width.comm = 4; // compared as four 32-bit words
    for (const [name, off] of Object.entries(LAYOUT)) assert.equal(off % (width[name] ?? 4), 0, name);
  });

  it('aligned and unaligned (copied to an aligned buffer first) records decode the same', () => {
    const want = {
      flags: 0x41,
      ktimeNs: 2n ** 63n + 5n,
      enterKtimeNs: 7n,
      cgroupId: 99n,
      cgroupV1Id: 2n ** 40n,
      pid: 2 ** 32 - 1,
      tid: 2,
      ret: -11,
      sockfd: -1,
      acceptFlags: 0o2004000,
      addrPtr: 0x7fff0000n,
      family: 10,
      lport: 65535,
      rport: 1,
      source: 3,
      comm: 'x',
      peerPid: 123,
      policySlot: 65535,
      unixPath: new Uint8Array([0, 97, 98]),
    };
    const aligned = buildRecord(want);
    const odd = new DataView(new ArrayBuffer(RECORD_SIZE + 32), 4); // base 3 of an offset-4 view: unaligned
    new Uint8Array(odd.buffer, 4 + 3, RECORD_SIZE).set(new Uint8Array(aligned.buffer, RECORD_BASE, RECORD_SIZE));
    const plain = (r: ReturnType<typeof decodeRecord>) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Uint8Array ? [...v] : v]));
    const a = plain(decodeRecord(aligned, RECORD_BASE, RECORD_SIZE));
    assert.deepEqual(plain(decodeRecord(odd, 3, RECORD_SIZE)), a);
    assert.equal(a.ret, -11);
    assert.equal(a.pid, 2 ** 32 - 1);
    assert.throws(() => decodeRecord(aligned, RECORD_BASE + 16, RECORD_SIZE), /runs past its/); // past the end: one clear error
  });

  it('IPv4 texts: more distinct addresses than the cache holds, revisited, all exact', () => {
    const addrs: string[] = [];
    for (let i = 0; i < 40; i++) addrs.push(`10.${i}.${(i * 7) % 256}.${255 - i}`, `127.0.0.${i}`);
    for (let round = 0; round < 3; round++) {
      for (const a of addrs) assert.equal(formatIPv4(ipv4(a)), a);
      for (const a of [...addrs].reverse()) assert.equal(formatIPv4(ipv4(a)), a);
    }
    assert.equal(formatIPv4(ipv4('255.255.255.255')), '255.255.255.255'); // key -1: the empty slots' marker
    assert.equal(formatIPv4(ipv4('0.0.0.0')), '0.0.0.0');
    const b = new Uint8Array([9, 1, 2, 3, 4]);
    assert.equal(formatIPv4(b, 1), '1.2.3.4');
  });

  it('comm, cgroup ids and pointers: each record decodes its own, changed or repeated', () => {
    const records = [
      { comm: 'nginx', cgroupId: 5n, cgroupV1Id: 7n, addrPtr: 0x7fff0000n, addrlenPtr: 0x7fff0100n },
      { comm: 'nginx', cgroupId: 5n, cgroupV1Id: 7n, addrPtr: 0x7fff0000n, addrlenPtr: 0x7fff0100n },
      { comm: 'nginy', cgroupId: 5n + (1n << 32n), cgroupV1Id: 7n, addrPtr: 0n, addrlenPtr: 0x7fff0100n },
      { comm: 'a-fifteen-chars', cgroupId: 2n ** 64n - 1n, cgroupV1Id: 0n, addrPtr: 1n, addrlenPtr: 0n },
      { comm: '', cgroupId: 0n, cgroupV1Id: 2n ** 63n, addrPtr: 1n, addrlenPtr: 0n },
      { comm: 'nginx', cgroupId: 5n, cgroupV1Id: 7n, addrPtr: 0x7fff0000n, addrlenPtr: 0x7fff0100n },
    ];
    for (let round = 0; round < 2; round++) {
      for (const want of records) {
        const r = decodeRecord(buildRecord(want), RECORD_BASE, RECORD_SIZE);
        assert.deepEqual(
          { comm: r.comm, cgroupId: r.cgroupId, cgroupV1Id: r.cgroupV1Id, addrPtr: r.addrPtr, addrlenPtr: r.addrlenPtr },
          want,
        );
      }
    }
  });

  it('comm: bytes after the NUL do not matter, bytes before it do', () => {
    const v = buildRecord({ comm: 'ab' });
    const r1 = decodeRecord(v, RECORD_BASE, RECORD_SIZE).comm;
    // Same text, different garbage after the terminator.
    const w = buildRecord({ comm: 'ab' });
    w.setUint8(RECORD_BASE + LAYOUT.comm + 5, 0x41);
    assert.equal(decodeRecord(w, RECORD_BASE, RECORD_SIZE).comm, r1);
    assert.equal(decodeRecord(buildRecord({ comm: 'ac' }), RECORD_BASE, RECORD_SIZE).comm, 'ac');
  });

  it('events share a frozen process, namespaces, cgroup and local endpoint only while their values are equal', () => {
    const ctx = { nodeName: 'n', idPrefix: 'b/i', toUnixNano: (k: bigint) => k };
    const base = { pid: 7, tid: 8, comm: 'srv', mntNs: 1, netNs: 2, cgroupId: 3n, cgroupV1Id: 4n, family: 2, lport: 80 };
    const event = (over: Record<string, unknown>, seq: bigint) =>
      toAcceptEvent(decodeRecord(buildRecord({ laddr: ipv4('10.0.0.1'), ...base, ...over }), RECORD_BASE, RECORD_SIZE), seq, ctx);
    const a = event({}, 1n);
    const b = event({}, 2n);
    assert.equal(a.process, b.process);
    assert.equal(a.namespaces, b.namespaces);
    assert.equal(a.cgroup, b.cgroup);
    assert.equal(a.socket!.local, b.socket!.local);
    assert.ok(Object.isFrozen(a.process) && Object.isFrozen(a.namespaces) && Object.isFrozen(a.cgroup));
    for (const [over, check] of [
      [{ tid: 9 }, (e: typeof a) => e.process!.tid === 9],
      [{ comm: 'srw' }, (e: typeof a) => e.process!.comm === 'srw'],
      [{ utsNs: 5 }, (e: typeof a) => e.namespaces!.uts === 5],
      [{ cgroupV1Id: 5n }, (e: typeof a) => e.cgroup!.v1Id === 5n],
      [{ lport: 81 }, (e: typeof a) => e.socket!.local!.port === 81],
      [{ laddr: ipv4('10.0.0.2') }, (e: typeof a) => e.socket!.local!.ip === '10.0.0.2'],
    ] as const) {
      const e = event(over, 3n);
      assert.ok(
        check(e),
        JSON.stringify(over, (_, v) => (typeof v === 'bigint' ? `${v}` : v)),
      );
      const again = event({}, 4n);
      assert.deepEqual(
        [again.process, again.namespaces, again.cgroup, again.socket!.local],
        [a.process, a.namespaces, a.cgroup, a.socket!.local],
      );
    }
  });
});
