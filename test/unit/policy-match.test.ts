import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PeerAction, POLICY_LAYOUT, PolicyFlags, PolicyMode } from '../../src/bpf/abi.js';
import { AcceptEvent, AddressFamily } from '../../src/gen/doorwatch/v1/event.js';
import { ipTo16 } from '../../src/policy/cidr.js';
import { encodePolicy, peerEntries } from '../../src/policy/kernel-plan.js';
import { compileMatcher, type FilterReason, peerAction } from '../../src/policy/match.js';
import { type PolicySpec, parseSpec } from '../../src/policy/spec.js';

// The userspace matcher decides what the kernel would have for accepts that
// reached the agent before their cgroup was mapped: it must give the kernel's
// answer (bpf/lib/accept.h + bpf/lib/policy.h). Explicit cases, then the
// whole grid against a transliteration of the kernel's C that reads the
// compiled slot (encodePolicy bytes and peer trie entries), not the spec.

function spec(raw: object): PolicySpec {
  const r = parseSpec(raw, 'spec');
  if (!r.ok) assert.fail(r.problems.join('; '));
  return r.spec;
}

type Fam = 'inet' | 'inet6' | 'unix';
interface Case {
  ret: number;
  /** DW_F_SOCK_UNRESOLVED: the accepted fd did not resolve to a socket. */
  unresolved?: boolean;
  family: Fam;
  lport: number;
  /** Peer as formatted by src/capture (IPv4 dotted, IPv6 RFC 5952, mapped as ::ffff:a.b.c.d). */
  peer: string;
}

const FAMILY = {
  inet: AddressFamily.ADDRESS_FAMILY_INET,
  inet6: AddressFamily.ADDRESS_FAMILY_INET6,
  unix: AddressFamily.ADDRESS_FAMILY_UNIX,
} as const;

/** The event src/capture/to-event.ts makes of such a record. */
function event(c: Case): AcceptEvent {
  const success = c.ret >= 0;
  const resolved = success && !c.unresolved;
  const inet = c.family !== 'unix';
  return AcceptEvent.fromPartial({
    ret: c.ret,
    success,
    socket: {
      family: resolved ? FAMILY[c.family] : AddressFamily.ADDRESS_FAMILY_UNSPECIFIED,
      local: { port: resolved ? c.lport : 0 },
      peer: { ip: resolved && inet ? c.peer : '', port: resolved ? 40000 : 0 },
      unixPath: resolved && !inet ? '/run/app.sock' : '',
      resolved,
    },
  });
}

const match = (s: PolicySpec, c: Partial<Case>) =>
  compileMatcher(s)(event({ ret: 5, family: 'inet', lport: 443, peer: '10.0.0.1', ...c }));

/**
 * bpf/lib/accept.h dw_handle_exit + bpf/lib/policy.h, line by line, over the
 * slot as userspace writes it. Returns the slot counter it would bump.
 */
function kernel(slot: Buffer, trie: { addr: Uint8Array; prefix: number; action: number }[], c: Case): FilterReason | undefined {
  const mode = slot.readUInt8(POLICY_LAYOUT.mode);
  const flags = slot.readUInt8(POLICY_LAYOUT.flags);
  const nInclude = slot.readUInt8(POLICY_LAYOUT.n_include);
  const nExclude = slot.readUInt8(POLICY_LAYOUT.n_exclude);
  const portIn = (off: number, n: number, port: number) => {
    for (let i = 0; i < 8 && i < n; i++)
      if (port >= slot.readUInt16LE(off + 4 * i) && port <= slot.readUInt16LE(off + 4 * i + 2)) return true;
    return false;
  };
  // dw_policy_off
  if (mode === PolicyMode.OFF) return 'off';
  // dw_policy_drops_failure
  if (c.ret < 0 && !(flags & PolicyFlags.FAILED_ACCEPTS)) return 'failed';
  // dw_policy_admits
  if (c.ret < 0 || c.unresolved) return undefined;
  const inet = c.family === 'inet' || c.family === 'inet6';
  const portOk = inet
    ? (!nInclude || portIn(POLICY_LAYOUT.include, nInclude, c.lport)) &&
      !(nExclude && portIn(POLICY_LAYOUT.exclude, nExclude, c.lport))
    : !nInclude;
  if (!portOk) return 'port';
  if (!(flags & (PolicyFlags.PEER_RULES | PolicyFlags.PEER_INCLUDE))) return undefined;
  let peerOk: boolean;
  if (!inet) peerOk = !(flags & PolicyFlags.PEER_INCLUDE);
  else {
    // The raddr bytes as the kernel has them: 4 bytes for AF_INET (mapped into the key), 16 for AF_INET6.
    const key = new Uint8Array(16);
    if (c.family === 'inet') {
      key[10] = 0xff;
      key[11] = 0xff;
      key.set(c.peer.split('.').map(Number), 12);
    } else key.set(ipTo16(c.peer)!);
    // LPM trie lookup: the longest matching prefix.
    let best: { prefix: number; action: number } | undefined;
    for (const e of trie) {
      let hit = true;
      for (let b = 0; b < e.prefix && hit; b++) {
        const bit = (x: Uint8Array) => (x[b >> 3]! >> (7 - (b & 7))) & 1;
        if (bit(key) !== bit(e.addr)) hit = false;
      }
      if (hit && (!best || e.prefix > best.prefix)) best = e;
    }
    peerOk = best ? best.action === PeerAction.INCLUDE : !(flags & PolicyFlags.PEER_INCLUDE);
  }
  return peerOk ? undefined : 'peer';
}

describe('policy match: explicit cases', () => {
  it('mode off filters everything, failed and unresolved accepts too', () => {
    const s = spec({ mode: 'off' });
    assert.equal(match(s, {}), 'off');
    assert.equal(match(s, { ret: -11 }), 'off');
    assert.equal(match(s, { unresolved: true }), 'off');
    assert.equal(match(s, { family: 'unix' }), 'off');
  });

  it('failed accepts: reported by default, filtered with failedAccepts: false', () => {
    assert.equal(match(spec({ mode: 'events' }), { ret: -24 }), undefined);
    assert.equal(match(spec({ mode: 'events', failedAccepts: false }), { ret: -24 }), 'failed');
    assert.equal(match(spec({ mode: 'events', failedAccepts: false }), { ret: 0 }), undefined, 'fd 0 is a success');
    // A failed accept has no port or peer: port and peer rules do not apply to it.
    const strict = spec({ mode: 'events', ports: { include: [1] }, peers: { include: ['192.0.2.0/24'] } });
    assert.equal(match(strict, { ret: -24 }), undefined);
  });

  it('an unresolved socket passes: what cannot be checked is audited', () => {
    const s = spec({ mode: 'events', ports: { include: [1] }, peers: { include: ['192.0.2.0/24'] } });
    assert.equal(match(s, {}), 'port');
    assert.equal(match(s, { unresolved: true }), undefined);
  });

  it('ports: include ranges, then exclude ranges', () => {
    const s = spec({ mode: 'events', ports: { include: [443, '8000-8999'], exclude: [8500] } });
    assert.equal(match(s, { lport: 443 }), undefined);
    assert.equal(match(s, { lport: 8000 }), undefined);
    assert.equal(match(s, { lport: 8999 }), undefined);
    assert.equal(match(s, { lport: 8500 }), 'port');
    assert.equal(match(s, { lport: 80 }), 'port');
    assert.equal(match(s, { lport: 9000 }), 'port');
    assert.equal(match(s, { lport: 442 }), 'port');
    const exclude = spec({ mode: 'events', ports: { exclude: [9090] } });
    assert.equal(match(exclude, { lport: 9090 }), 'port');
    assert.equal(match(exclude, { lport: 80 }), undefined);
    assert.equal(match(exclude, { lport: 9090, family: 'inet6', peer: 'fd00::1' }), 'port');
  });

  it('unix sockets pass unless the policy lists ports or peers to include', () => {
    const unix = { family: 'unix' as const, lport: 0, peer: '' };
    assert.equal(match(spec({ mode: 'events' }), unix), undefined);
    assert.equal(match(spec({ mode: 'events', ports: { exclude: [0, 9090] } }), unix), undefined);
    assert.equal(match(spec({ mode: 'events', ports: { include: [443] } }), unix), 'port');
    assert.equal(match(spec({ mode: 'events', peers: { exclude: ['0.0.0.0/0'] } }), unix), undefined);
    assert.equal(match(spec({ mode: 'events', peers: { include: ['0.0.0.0/0'] } }), unix), 'peer');
  });

  it('peers: the longest matching prefix decides; unmatched peers are filtered only when an include list is set', () => {
    const s = spec({ mode: 'events', peers: { include: ['10.0.0.0/8', '10.1.2.0/24'], exclude: ['10.1.0.0/16'] } });
    assert.equal(match(s, { peer: '10.5.5.5' }), undefined);
    assert.equal(match(s, { peer: '10.1.5.5' }), 'peer');
    assert.equal(match(s, { peer: '10.1.2.3' }), undefined);
    assert.equal(match(s, { peer: '192.168.1.1' }), 'peer');
    const excludeOnly = spec({ mode: 'events', peers: { exclude: ['10.244.0.0/16'] } });
    assert.equal(match(excludeOnly, { peer: '10.244.3.4' }), 'peer');
    assert.equal(match(excludeOnly, { peer: '10.245.3.4' }), undefined);
    // A /32 exclude inside a /8 include (test/kernel/policy-e2e.test.ts does this on the real kernel).
    const host = spec({ mode: 'events', peers: { include: ['10.0.0.0/8'], exclude: ['10.200.0.1/32'] } });
    assert.equal(match(host, { peer: '10.200.0.1' }), 'peer');
    assert.equal(match(host, { peer: '10.200.0.2' }), undefined);
  });

  it('an IPv4-mapped peer on a dual-stack socket matches the IPv4 rule; native IPv6 peers do not', () => {
    const s = spec({ mode: 'events', peers: { include: ['10.0.0.0/8'], exclude: ['10.9.0.0/16'] } });
    const v6 = (peer: string) => match(s, { family: 'inet6', peer });
    assert.equal(v6('::ffff:10.1.2.3'), undefined);
    assert.equal(v6('::ffff:10.9.2.3'), 'peer');
    assert.equal(v6('::ffff:192.168.0.1'), 'peer');
    assert.equal(v6('fd00::1'), 'peer');
    assert.equal(v6('::a01:203'), 'peer', '::10.1.2.3 (not mapped) is another address');
    const six = spec({ mode: 'events', peers: { exclude: ['fd00::/8'] } });
    assert.equal(match(six, { family: 'inet6', peer: 'fd12:3456::1' }), 'peer');
    assert.equal(match(six, { family: 'inet6', peer: 'fe80::1' }), undefined);
    assert.equal(match(six, { peer: '10.0.0.1' }), undefined);
  });

  it('ports are checked before peers', () => {
    const s = spec({ mode: 'events', ports: { include: [443] }, peers: { include: ['192.0.2.0/24'] } });
    assert.equal(match(s, { lport: 80, peer: '10.0.0.1' }), 'port');
    assert.equal(match(s, { lport: 443, peer: '10.0.0.1' }), 'peer');
    assert.equal(match(s, { lport: 443, peer: '192.0.2.7' }), undefined);
  });

  it('summary mode filters the same way as events', () => {
    const s = spec({ mode: 'summary', ports: { exclude: [22] } });
    assert.equal(match(s, { lport: 22 }), 'port');
    assert.equal(match(s, { lport: 23 }), undefined);
  });

  it('peerAction: include, exclude or no rule', () => {
    const s = spec({ mode: 'events', peers: { include: ['10.0.0.0/8'], exclude: ['10.1.0.0/16', 'fd00::/8'] } });
    assert.equal(peerAction(s.peers, ipTo16('10.2.0.1')!), 'include');
    assert.equal(peerAction(s.peers, ipTo16('10.1.0.1')!), 'exclude');
    assert.equal(peerAction(s.peers, ipTo16('fd00::5')!), 'exclude');
    assert.equal(peerAction(s.peers, ipTo16('11.0.0.1')!), undefined);
    assert.equal(peerAction({ include: [], exclude: [] }, ipTo16('10.0.0.1')!), undefined);
  });
});

describe('policy match: equal to the kernel on the whole grid', () => {
  const specs: Record<string, object> = {
    'events, nothing else': { mode: 'events' },
    off: { mode: 'off' },
    'no failed accepts': { mode: 'summary', failedAccepts: false },
    'port include': { mode: 'events', ports: { include: [443, '8000-8999'] } },
    'port include + exclude': { mode: 'events', ports: { include: ['1-9999'], exclude: [22, '8500-8600'] } },
    'port exclude': { mode: 'events', ports: { exclude: [9090] } },
    'eight ranges': { mode: 'events', ports: { include: [1, 22, 80, 443, '1000-1010', 5432, 6379, '8000-8080'] } },
    'peer include': { mode: 'events', peers: { include: ['10.0.0.0/8'] } },
    'peer exclude': { mode: 'events', peers: { exclude: ['10.244.0.0/16', 'fd00::/8'] } },
    'peer nested': {
      mode: 'events',
      failedAccepts: false,
      peers: { include: ['10.0.0.0/8', '10.1.2.0/24', 'fd00::/8'], exclude: ['10.1.0.0/16', '10.1.2.3', 'fd00:1::/32'] },
    },
    'ports and peers': { mode: 'summary', ports: { exclude: [9090] }, peers: { include: ['::ffff:10.0.0.0/104', '::1'] } },
    'every IPv6': { mode: 'events', peers: { include: ['::/0'], exclude: ['0.0.0.0/0'] } },
  };
  const peers4 = ['10.0.0.1', '10.1.5.5', '10.1.2.3', '10.1.2.4', '10.244.1.1', '192.168.1.1', '0.0.0.0'];
  const peers6 = ['::ffff:10.1.2.3', '::ffff:10.1.5.5', '::ffff:192.168.1.1', 'fd00::1', 'fd00:1::1', '::1', 'fe80::1'];
  const ports = [0, 1, 22, 80, 443, 1005, 8000, 8500, 8999, 9090, 9999, 65535];
  const cases: Case[] = [];
  for (const ret of [7, 0, -11, -24])
    for (const lport of ports) {
      for (const peer of peers4) cases.push({ ret, family: 'inet', lport, peer });
      for (const peer of peers6) cases.push({ ret, family: 'inet6', lport, peer });
      cases.push({ ret, family: 'unix', lport: 0, peer: '' });
      cases.push({ ret, unresolved: true, family: 'inet', lport, peer: '10.1.5.5' });
    }

  for (const [name, raw] of Object.entries(specs)) {
    it(name, () => {
      const s = spec(raw);
      const m = compileMatcher(s);
      const slot = encodePolicy(s);
      const trie = peerEntries(s);
      const seen = new Set<string>();
      for (const c of cases) {
        const want = kernel(slot, trie, c);
        seen.add(String(want));
        assert.equal(m(event(c)), want, `${name}: ${JSON.stringify(c)}`);
      }
      // The grid reaches every outcome the spec allows: nothing to filter, off only, or more than one.
      const single = raw === specs.off || raw === specs['events, nothing else'];
      assert.ok(single ? seen.size === 1 : seen.size > 1, `${name}: outcomes ${[...seen]}`);
    });
  }
});
