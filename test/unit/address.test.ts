import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIPv6, formatUnixPath, isV4Mapped, parseSockaddr } from '../../src/capture/address.js';

const v6 = (s: string) => {
  // test-only parser for fully written groups
  const b = new Uint8Array(16);
  s.split(':').forEach((g, i) => {
    const n = Number.parseInt(g, 16);
    b[2 * i] = n >> 8;
    b[2 * i + 1] = n & 0xff;
  });
  return b;
};

describe('formatIPv6 (RFC 5952)', () => {
  const cases: [string, string][] = [
    ['0:0:0:0:0:0:0:1', '::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['fe80:0:0:0:abcd:ef01:2345:6789', 'fe80::abcd:ef01:2345:6789'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
    ['2001:0:1:2:3:4:5:6', '2001:0:1:2:3:4:5:6'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['0:0:1:0:1:0:0:0', '0:0:1:0:1::'],
  ];
  for (const [full, want] of cases) it(`${full} -> ${want}`, () => assert.equal(formatIPv6(v6(full)), want));

  it('agrees with the WHATWG URL serializer (RFC 5952 compression) on zero-heavy addresses', () => {
    let seed = 1;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (let n = 0; n < 5000; n++) {
      const full = Array.from({ length: 8 }, () => (rnd() % 2 ? 0 : rnd() % 0x10000).toString(16)).join(':');
      const b = v6(full);
      if (isV4Mapped(b)) continue;
      assert.equal(formatIPv6(b), new URL(`http://[${full}]/`).hostname.slice(1, -1), full);
    }
  });

  it('writes IPv4-mapped addresses dotted', () => {
    const b = new Uint8Array(16);
    b.set([0xff, 0xff, 192, 168, 1, 9], 10);
    assert.equal(isV4Mapped(b), true);
    assert.equal(formatIPv6(b), '::ffff:192.168.1.9');
  });
});

describe('parseSockaddr', () => {
  it('reads sockaddr_in6', () => {
    const b = new Uint8Array(28);
    b[0] = 10;
    b[2] = 0x1f;
    b[3] = 0x90;
    b.set(v6('0:0:0:0:0:0:0:1'), 8);
    assert.deepEqual(parseSockaddr(b, 28), { family: 10, ip: '::1', port: 8080 });
  });

  it('shows only the fields the kernel wrote whole', () => {
    const b = new Uint8Array(28);
    b[0] = 2;
    b[2] = 0x1f;
    b[3] = 0x90;
    b.set([10, 1, 2, 3], 4);
    assert.deepEqual(parseSockaddr(b, 8), { family: 2, ip: '10.1.2.3', port: 8080 });
    assert.deepEqual(parseSockaddr(b, 7), { family: 2, ip: '', port: 8080 });
    assert.deepEqual(parseSockaddr(b, 3), { family: 2, ip: '', port: 0 });
    assert.deepEqual(parseSockaddr(b, 1), { family: 0, ip: '', port: 0 });
  });
});

describe('formatUnixPath', () => {
  it('shows abstract names with @', () => {
    assert.equal(formatUnixPath(new Uint8Array([0, 0x61, 0x62])), '@ab');
    assert.equal(formatUnixPath(new TextEncoder().encode('/tmp/x\0\0')), '/tmp/x');
    assert.equal(formatUnixPath(new Uint8Array()), '');
  });
});
