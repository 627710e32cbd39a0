import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIPv4 } from '../../src/capture/address.js';
import { decodeRecord, LAYOUT, RECORD_SIZE } from '../../src/capture/record.js';
import { buildRecord, ipv4, RECORD_BASE } from '../helpers/record-builder.js';

/*
 * The capture path remembers the last values of fields that repeat from
 * record to record (comm, cgroup ids, pointers, IPv4 texts). A remembered
 * value must never stand in for a different one.
 */
describe('capture memos', () => {
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
});
