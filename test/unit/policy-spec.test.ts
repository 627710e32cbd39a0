import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cidrContains, ipTo16, parseCidr } from '../../src/policy/cidr.js';
import { globToRegExp, matchesSelector, selectorSize } from '../../src/policy/selector.js';
import { KERNEL_LIMITS, type PolicySpec, parsePortRange, parseSpec } from '../../src/policy/spec.js';

// The policy spec shared by AcceptAuditPolicy objects and configuration rules:
// ports to ranges, peers to 16-byte CIDRs as the kernel's trie holds them,
// selectors, and every problem reported at once with its key path.

function spec(raw: unknown): PolicySpec {
  const r = parseSpec(raw, 'spec');
  if (!r.ok) assert.fail(`expected a valid spec, got: ${r.problems.join('; ')}`);
  return r.spec;
}

function problems(raw: unknown, path = 'spec'): string[] {
  const r = parseSpec(raw, path);
  if (r.ok) assert.fail(`expected problems, got a valid spec: ${JSON.stringify(r.spec)}`);
  return r.problems;
}

const hex = (a: Uint8Array | undefined) => (a ? Buffer.from(a).toString('hex') : 'undefined');
const V4MAP = '00000000000000000000ffff';

describe('policy spec: ports', () => {
  it('normalises a port and a range, as numbers or strings, to inclusive ranges', () => {
    assert.deepEqual(parsePortRange(443), { lo: 443, hi: 443 });
    assert.deepEqual(parsePortRange('443'), { lo: 443, hi: 443 });
    assert.deepEqual(parsePortRange('8000-8999'), { lo: 8000, hi: 8999 });
    assert.deepEqual(parsePortRange(' 8000 - 8999 '), { lo: 8000, hi: 8999 });
    assert.deepEqual(parsePortRange('65535'), { lo: 65535, hi: 65535 });
    assert.deepEqual(parsePortRange('1-65535'), { lo: 1, hi: 65535 });
    assert.deepEqual(parsePortRange('80-80'), { lo: 80, hi: 80 });
  });

  it('rejects what is not a port or a range, naming the value and showing the form', () => {
    for (const bad of ['http', '', '80-', '-80', '1-2-3', '80,443', '0x50', '8000..8999', '443/tcp', '123456']) {
      assert.throws(() => parsePortRange(bad), /is not a port or range \(examples: 443, 8000-8999\)/, `"${bad}"`);
    }
    assert.throws(() => parsePortRange(-1), /"-1" is not a port or range/);
  });

  it('rejects ports above 65535, at either end of a range', () => {
    assert.throws(() => parsePortRange(65536), /"65536" is not a port or range/);
    assert.throws(() => parsePortRange('80-70000'), /"80-70000" is not a port or range/);
    assert.throws(() => parsePortRange('70000-80'), /"70000-80" is not a port or range/);
  });

  it('rejects a range whose start is above its end', () => {
    assert.throws(() => parsePortRange('9000-80'), /"9000-80": range start is above its end/);
  });

  it('parses include and exclude lists, in order', () => {
    const s = spec({ mode: 'events', ports: { include: [443, '8000-8999'], exclude: ['8500'] } });
    assert.deepEqual(s.ports, {
      include: [
        { lo: 443, hi: 443 },
        { lo: 8000, hi: 8999 },
      ],
      exclude: [{ lo: 8500, hi: 8500 }],
    });
  });

  it(`allows ${KERNEL_LIMITS.portRanges} ranges per list (one kernel slot) and rejects more`, () => {
    const eight = Array.from({ length: 8 }, (_, i) => 1000 + i);
    assert.equal(spec({ mode: 'events', ports: { include: eight, exclude: eight } }).ports.include.length, 8);
    const nine = [...eight, 2000];
    assert.deepEqual(problems({ mode: 'events', ports: { exclude: nine } }), [
      "spec.ports.exclude: at most 8 entries (the kernel filter's per-policy budget), got 9",
    ]);
  });

  it('names the index of each bad entry', () => {
    assert.deepEqual(problems({ mode: 'events', ports: { include: [443, 'x', '9000-80'], exclude: [70000] } }), [
      'spec.ports.include[1]: "x" is not a port or range (examples: 443, 8000-8999)',
      'spec.ports.include[2]: "9000-80": range start is above its end',
      'spec.ports.exclude[0]: "70000" is not a port or range (examples: 443, 8000-8999)',
    ]);
  });

  it('rejects a fractional port at the schema', () => {
    assert.deepEqual(problems({ mode: 'events', ports: { include: [44.3] } }), [
      'spec.ports.include[0]: Expected integer, received float',
    ]);
  });
});

describe('policy spec: peers (CIDRs)', () => {
  it('stores IPv4 as IPv4-mapped IPv6, the prefix counted over 128 bits', () => {
    const c = parseCidr('10.0.0.0/8');
    assert.equal(hex(c.addr), `${V4MAP}0a000000`);
    assert.equal(c.prefix, 96 + 8);
    assert.equal(c.text, '10.0.0.0/8');
    assert.equal(parseCidr('0.0.0.0/0').prefix, 96);
    assert.equal(hex(parseCidr('0.0.0.0/0').addr), `${V4MAP}00000000`);
  });

  it('takes IPv6 prefixes as written', () => {
    const c = parseCidr('fd00::/8');
    assert.equal(hex(c.addr), `fd${'00'.repeat(15)}`);
    assert.equal(c.prefix, 8);
    assert.equal(parseCidr('::/0').prefix, 0);
    assert.equal(parseCidr('2001:db8::/32').prefix, 32);
  });

  it('reads a bare IP as one host: /32 for IPv4, /128 for IPv6', () => {
    assert.equal(parseCidr('192.168.1.7').prefix, 128);
    assert.equal(hex(parseCidr('192.168.1.7').addr), `${V4MAP}c0a80107`);
    assert.equal(parseCidr('fe80::1').prefix, 128);
    assert.equal(hex(parseCidr('fe80::1').addr), `fe80${'00'.repeat(13)}01`);
  });

  it('clears host bits, also inside a byte', () => {
    assert.equal(hex(parseCidr('10.1.2.3/8').addr), `${V4MAP}0a000000`);
    assert.equal(hex(parseCidr('10.255.255.255/9').addr), `${V4MAP}0a800000`);
    assert.equal(hex(parseCidr('192.168.1.7/31').addr), `${V4MAP}c0a80106`);
    assert.equal(hex(parseCidr('fd12:3456::1/12').addr), `fd10${'00'.repeat(14)}`);
    assert.equal(hex(parseCidr('ffff::ffff/0').addr), '00'.repeat(16));
  });

  it('rejects prefixes beyond the family, and what is not an address', () => {
    assert.throws(() => parseCidr('10.0.0.0/33'), /"10.0.0.0\/33": prefix length must be 0-32/);
    assert.throws(() => parseCidr('fd00::/129'), /"fd00::\/129": prefix length must be 0-128/);
    assert.throws(() => parseCidr('10.0.0.0/'), /prefix length must be 0-32/);
    assert.throws(() => parseCidr('10.0.0.0/-1'), /prefix length must be 0-32/);
    assert.throws(() => parseCidr('10.0.0.0/8/8'), /prefix length must be 0-32/);
    for (const bad of ['10.0.0.256', 'example.com', '10.0.0', '', 'fd00:::1/8', '10.0.0.0 /8'])
      assert.throws(() => parseCidr(bad), /is not an IP address or CIDR \(examples: /, `"${bad}"`);
  });

  it('parses include and exclude lists in a spec', () => {
    const s = spec({ mode: 'events', peers: { include: ['10.244.7.0/24'], exclude: ['10.244.0.0/16', 'fd00::/8'] } });
    assert.deepEqual(
      s.peers.include.map((c) => [c.text, c.prefix]),
      [['10.244.7.0/24', 120]],
    );
    assert.deepEqual(
      s.peers.exclude.map((c) => [c.text, c.prefix]),
      [
        ['10.244.0.0/16', 112],
        ['fd00::/8', 8],
      ],
    );
  });

  it('rejects the same prefix both included and excluded, whatever its spelling', () => {
    assert.deepEqual(problems({ mode: 'events', peers: { include: ['10.1.0.0/16'], exclude: ['10.1.2.3/16'] } }), [
      'spec.peers: 10.1.0.0/16 is both included and excluded (10.1.2.3/16)',
    ]);
    // The IPv4-mapped spelling is the same kernel key.
    assert.deepEqual(problems({ mode: 'events', peers: { include: ['::ffff:10.0.0.0/104'], exclude: ['10.0.0.0/8'] } }), [
      'spec.peers: ::ffff:10.0.0.0/104 is both included and excluded (10.0.0.0/8)',
    ]);
    // Nested prefixes are fine: the most specific decides.
    spec({ mode: 'events', peers: { include: ['10.1.2.0/24'], exclude: ['10.1.0.0/16'] } });
    // Same address, different prefix: fine.
    spec({ mode: 'events', peers: { include: ['10.0.0.0/8'], exclude: ['10.0.0.0/9'] } });
  });

  it(`allows ${KERNEL_LIMITS.peerCidrs} CIDRs per list and rejects more`, () => {
    const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `10.${i}.0.0/16`);
    assert.equal(spec({ mode: 'events', peers: { include: cidrs(32) } }).peers.include.length, 32);
    assert.deepEqual(problems({ mode: 'events', peers: { include: cidrs(33) } }), [
      "spec.peers.include: at most 32 entries (the kernel filter's per-policy budget), got 33",
    ]);
  });
});

describe('policy spec: ipTo16 and cidrContains (the kernel trie key)', () => {
  it('maps IPv4 into ::ffff:0:0/96', () => {
    assert.equal(hex(ipTo16('1.2.3.4')), `${V4MAP}01020304`);
    assert.equal(hex(ipTo16('255.255.255.255')), `${V4MAP}ffffffff`);
    assert.equal(hex(ipTo16('0.0.0.0')), `${V4MAP}00000000`);
  });

  it('reads every IPv6 spelling', () => {
    assert.equal(hex(ipTo16('::')), '00'.repeat(16));
    assert.equal(hex(ipTo16('::1')), `${'00'.repeat(15)}01`);
    assert.equal(hex(ipTo16('fe80::1')), `fe80${'00'.repeat(13)}01`);
    assert.equal(hex(ipTo16('1::')), `0001${'00'.repeat(14)}`);
    assert.equal(hex(ipTo16('2001:db8:0:0:0:0:0:1')), `20010db8${'00'.repeat(11)}01`);
    assert.equal(hex(ipTo16('2001:DB8:1:2:3:4:5:6')), '20010db8000100020003000400050006');
    assert.equal(hex(ipTo16('2001:db8::1:0:0:1')), '20010db8000000000001000000000001');
  });

  it('reads IPv4-mapped and embedded dotted forms: the same bytes as the IPv4 address', () => {
    assert.equal(hex(ipTo16('::ffff:1.2.3.4')), hex(ipTo16('1.2.3.4')));
    assert.equal(hex(ipTo16('::ffff:102:304')), hex(ipTo16('1.2.3.4')));
    assert.equal(hex(ipTo16('0:0:0:0:0:ffff:1.2.3.4')), hex(ipTo16('1.2.3.4')));
    assert.equal(hex(ipTo16('64:ff9b::10.0.0.1')), `0064ff9b${'00'.repeat(8)}0a000001`);
  });

  it('returns undefined for what is not an address', () => {
    for (const bad of ['', 'x', '1.2.3', '1.2.3.256', '1.2.3.4/8', ':::', '12345::', 'g::1'])
      assert.equal(ipTo16(bad), undefined, bad);
  });

  const contains = (cidr: string, ip: string) => cidrContains(parseCidr(cidr), ipTo16(ip)!);

  it('prefix 0 contains everything, IPv4-mapped included', () => {
    assert.equal(contains('::/0', '::1'), true);
    assert.equal(contains('::/0', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), true);
    assert.equal(contains('::/0', '10.0.0.1'), true);
  });

  it('prefix 7, 8 and 9: the partial byte is masked, not compared whole', () => {
    // fc00::/7 holds fc00::/8 and fd00::/8, not fe00::.
    assert.equal(contains('fc00::/7', 'fc00::1'), true);
    assert.equal(contains('fc00::/7', 'fd12::1'), true);
    assert.equal(contains('fc00::/7', 'fe80::1'), false);
    assert.equal(contains('fc00::/7', 'fb00::1'), false);
    assert.equal(contains('fd00::/8', 'fd99::1'), true);
    assert.equal(contains('fd00::/8', 'fc00::1'), false);
    assert.equal(contains('fd00::/8', 'fe00::1'), false);
    assert.equal(contains('fd80::/9', 'fdff::1'), true);
    assert.equal(contains('fd80::/9', 'fd7f::1'), false);
    assert.equal(contains('fd00::/9', 'fd7f::1'), true);
    assert.equal(contains('fd00::/9', 'fd80::1'), false);
    // The same boundaries in IPv4 (prefix 96 + n).
    assert.equal(contains('10.0.0.0/7', '11.255.0.1'), true);
    assert.equal(contains('10.0.0.0/7', '12.0.0.1'), false);
    assert.equal(contains('10.0.0.0/8', '10.255.255.255'), true);
    assert.equal(contains('10.0.0.0/8', '11.0.0.0'), false);
    assert.equal(contains('10.128.0.0/9', '10.200.0.1'), true);
    assert.equal(contains('10.128.0.0/9', '10.127.255.255'), false);
  });

  it('prefix 128 (and /32) is exactly one address', () => {
    assert.equal(contains('fe80::1', 'fe80::1'), true);
    assert.equal(contains('fe80::1/128', 'fe80::2'), false);
    assert.equal(contains('fe80::1/128', 'fe80::1:0'), false);
    assert.equal(contains('192.168.1.7/32', '192.168.1.7'), true);
    assert.equal(contains('192.168.1.7/32', '192.168.1.6'), false);
    assert.equal(contains('192.168.1.7', '::ffff:192.168.1.7'), true);
  });

  it('an IPv4 rule never matches a native IPv6 peer, and ::ffff:0:0/96 is all of IPv4', () => {
    assert.equal(contains('0.0.0.0/0', '::1'), false);
    assert.equal(contains('0.0.0.0/0', '::'), false);
    assert.equal(contains('0.0.0.0/0', '203.0.113.9'), true);
    assert.equal(contains('::ffff:0:0/96', '203.0.113.9'), true);
  });
});

describe('policy spec: selectors', () => {
  it('accepts the four operators with the right values', () => {
    const s = spec({
      mode: 'events',
      podSelector: {
        matchLabels: { app: 'web' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['front', 'edge'] },
          { key: 'track', operator: 'NotIn', values: ['canary'] },
          { key: 'team', operator: 'Exists' },
          { key: 'legacy', operator: 'DoesNotExist', values: [] },
        ],
      },
    });
    assert.equal(selectorSize(s.podSelector), 5);
  });

  it('In and NotIn need values; Exists and DoesNotExist take none; unknown operators are refused', () => {
    assert.deepEqual(
      problems({
        mode: 'events',
        podSelector: {
          matchExpressions: [
            { key: 'a', operator: 'In' },
            { key: 'b', operator: 'NotIn', values: [] },
            { key: 'c', operator: 'Exists', values: ['x'] },
            { key: 'd', operator: 'DoesNotExist', values: ['y'] },
          ],
        },
        namespaceSelector: { matchExpressions: [{ key: 'e', operator: 'In' }] },
      }),
      [
        'spec.podSelector.matchExpressions[0]: operator In needs at least one value',
        'spec.podSelector.matchExpressions[1]: operator NotIn needs at least one value',
        'spec.podSelector.matchExpressions[2]: operator Exists takes no values',
        'spec.podSelector.matchExpressions[3]: operator DoesNotExist takes no values',
        'spec.namespaceSelector.matchExpressions[0]: operator In needs at least one value',
      ],
    );
    const p = problems({ mode: 'events', podSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['b'] }] } });
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^spec\.podSelector\.matchExpressions\[0\]\.operator: /);
  });

  it('matches as metav1.LabelSelector: everything ANDed, NotIn and DoesNotExist hold for absent keys', () => {
    const s = {
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'tier', operator: 'In' as const, values: ['front'] },
        { key: 'track', operator: 'NotIn' as const, values: ['canary'] },
      ],
    };
    assert.equal(matchesSelector(s, { app: 'web', tier: 'front' }), true);
    assert.equal(matchesSelector(s, { app: 'web', tier: 'front', track: 'stable' }), true);
    assert.equal(matchesSelector(s, { app: 'web', tier: 'front', track: 'canary' }), false);
    assert.equal(matchesSelector(s, { app: 'web', tier: 'back' }), false);
    assert.equal(matchesSelector(s, { app: 'web' }), false, 'In needs the key');
    assert.equal(matchesSelector(s, { app: 'api', tier: 'front' }), false);
    assert.equal(matchesSelector({ matchExpressions: [{ key: 'x', operator: 'Exists' }] }, { x: '' }), true);
    assert.equal(matchesSelector({ matchExpressions: [{ key: 'x', operator: 'Exists' }] }, {}), false);
    assert.equal(matchesSelector({ matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] }, { x: '' }), false);
    assert.equal(matchesSelector({ matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] }, {}), true);
    assert.equal(matchesSelector(undefined, {}), true, 'no selector: every pod');
    assert.equal(matchesSelector({}, { any: 'thing' }), true, 'empty selector: every pod');
  });

  it('namespace globs: * is any run, everything else literal', () => {
    const g = globToRegExp('ci-*');
    assert.equal(g.test('ci-7'), true);
    assert.equal(g.test('ci-'), true);
    assert.equal(g.test('xci-7'), false);
    assert.equal(g.test('ci'), false);
    assert.equal(globToRegExp('a.b*').test('axb1'), false, '. is literal');
    assert.equal(globToRegExp('*-prod').test('shop-prod'), true);
    assert.equal(globToRegExp('*-prod').test('shop-prod-2'), false);
  });

  it('namespaces must be names or globs', () => {
    assert.deepEqual(spec({ mode: 'events', namespaces: ['ci-*', 'kube-system', '*'] }).namespaces, ['ci-*', 'kube-system', '*']);
    const p = problems({ mode: 'events', namespaces: ['ok', 'Bad_NS', '-x'] });
    assert.deepEqual(p, [
      'spec.namespaces[1]: must be a namespace name or a glob like ci-*',
      'spec.namespaces[2]: must be a namespace name or a glob like ci-*',
    ]);
  });
});

describe('policy spec: modes, defaults, every problem together', () => {
  it('fills defaults: no ports or peers, failed accepts reported, burst = rate', () => {
    assert.deepEqual(spec({ mode: 'events' }), {
      mode: 'events',
      podSelector: undefined,
      namespaces: undefined,
      namespaceSelector: undefined,
      ports: { include: [], exclude: [] },
      peers: { include: [], exclude: [] },
      failedAccepts: true,
      rateLimit: undefined,
    });
    assert.deepEqual(spec({ mode: 'events', rateLimit: { eventsPerSecond: 50 } }).rateLimit, { eventsPerSecond: 50, burst: 50 });
    assert.deepEqual(spec({ mode: 'events', rateLimit: { eventsPerSecond: 50, burst: 7 } }).rateLimit, {
      eventsPerSecond: 50,
      burst: 7,
    });
    assert.equal(spec({ mode: 'summary', failedAccepts: false }).failedAccepts, false);
  });

  it('mode is required and one of events, summary, off', () => {
    assert.match(problems({})[0]!, /^spec\.mode: Required/);
    assert.match(problems({ mode: 'audit' })[0]!, /^spec\.mode: Invalid enum value/);
    assert.deepEqual(problems(null), ['spec: Expected object, received null']);
  });

  it('mode off with ports, peers or a rate limit is refused (they would be ignored)', () => {
    const msg = 'spec: mode "off" audits nothing, so ports, peers and rateLimit would be ignored; remove them';
    assert.deepEqual(problems({ mode: 'off', ports: { include: [443] } }), [msg]);
    assert.deepEqual(problems({ mode: 'off', peers: { exclude: ['10.0.0.0/8'] } }), [msg]);
    assert.deepEqual(problems({ mode: 'off', rateLimit: { eventsPerSecond: 5 } }), [msg]);
    assert.equal(spec({ mode: 'off', podSelector: { matchLabels: { a: 'b' } } }).mode, 'off');
  });

  it('unknown keys are named, at any depth', () => {
    assert.deepEqual(problems({ mode: 'events', port: [443] }), ['spec: Unrecognized key(s) in object: \'port\' ("port")']);
    assert.deepEqual(problems({ mode: 'events', ports: { includes: [443] } }), [
      'spec.ports: Unrecognized key(s) in object: \'includes\' ("includes")',
    ]);
    assert.deepEqual(problems({ mode: 'events', rateLimit: { eventsPerSecond: 0 } }), [
      'spec.rateLimit.eventsPerSecond: Number must be greater than or equal to 1',
    ]);
  });

  it('reports every problem of a spec together, each under its key path', () => {
    const p = problems(
      {
        mode: 'events',
        podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] },
        ports: { include: ['9000-80', 'http', ...Array.from({ length: 7 }, (_, i) => 100 + i)] },
        peers: { include: ['10.0.0.0/33', '10.1.0.0/16'], exclude: ['fd00::/8', '10.1.0.0/16'] },
      },
      'policy.rules[3]',
    );
    assert.deepEqual(p, [
      'policy.rules[3].podSelector.matchExpressions[0]: operator Exists takes no values',
      'policy.rules[3].ports.include[0]: "9000-80": range start is above its end',
      'policy.rules[3].ports.include[1]: "http" is not a port or range (examples: 443, 8000-8999)',
      "policy.rules[3].ports.include: at most 8 entries (the kernel filter's per-policy budget), got 9",
      'policy.rules[3].peers.include[0]: "10.0.0.0/33": prefix length must be 0-32',
      'policy.rules[3].peers: 10.1.0.0/16 is both included and excluded (10.1.0.0/16)',
    ]);
  });

  it('reports every schema problem together', () => {
    const p = problems({ mode: 'loud', ports: { include: [true] }, failedAccepts: 'no', extra: 1 });
    assert.equal(p.length, 4, p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('spec.mode: ')));
    assert.ok(p.some((x) => x.startsWith('spec.ports.include[0]: ')));
    assert.ok(p.some((x) => x.startsWith('spec.failedAccepts: ')));
    assert.ok(p.some((x) => x.startsWith("spec: Unrecognized key(s) in object: 'extra'")));
  });
});

describe('policy spec: every problem at once (issue 14)', () => {
  it('a malformed field does not hide the problems of the others', () => {
    const r = parseSpec(
      {
        mode: 'sometimes',
        peers: { include: ['192.168.1.0/33'] },
        ports: { include: ['9000-80', 443] },
        rateLimit: { eventsPerSecond: 0 },
      },
      'spec',
    );
    assert.equal(r.ok, false);
    const problems = r.ok ? [] : r.problems;
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(problems[0]!, /^spec\.mode: Invalid enum value.*'sometimes'/);
    assert.match(problems[1]!, /^spec\.rateLimit\.eventsPerSecond: /);
    assert.ok(problems.includes('spec.ports.include[0]: "9000-80": range start is above its end'));
    assert.ok(problems.includes('spec.peers.include[0]: "192.168.1.0/33": prefix length must be 0-32'));
  });

  it('an unknown key and a bad selector are reported beside a bad CIDR', () => {
    const r = parseSpec(
      {
        mode: 'events',
        colour: 'blue',
        podSelector: { matchExpressions: [{ key: 'app', operator: 'In' }] },
        peers: { exclude: ['nope'] },
      },
      'policy.rules[0]',
    );
    const problems = r.ok ? [] : r.problems;
    assert.ok(
      problems.some((p) => p.startsWith('policy.rules[0]: Unrecognized key') && p.includes('"colour"')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.startsWith('policy.rules[0].podSelector')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.startsWith('policy.rules[0].peers.exclude[0]: "nope"')),
      problems.join('\n'),
    );
  });
});
