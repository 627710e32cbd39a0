import { type AcceptEvent, AddressFamily } from '../gen/doorwatch/v1/event.js';
import { type Cidr, cidrContains, ipTo16 } from './cidr.js';
import type { PolicySpec, PortRange } from './spec.js';

/**
 * The kernel's policy checks (bpf/lib/policy.h), in userspace, for accepts
 * that reached the agent before their cgroup was mapped to a policy (the
 * kernel let them through on the default slot) and for `doorwatch trace
 * --policy`. Same order, same answers; test/kernel/policy-*.test.ts holds the
 * two equal. Pure.
 */

export type FilterReason = 'off' | 'port' | 'peer' | 'failed';

const inRanges = (r: PortRange[], port: number) => r.some((x) => port >= x.lo && port <= x.hi);

/** Longest prefix wins; undefined = no rule matches. Equal prefixes cannot be both (spec validation). */
export function peerAction(peers: PolicySpec['peers'], addr: Uint8Array): 'include' | 'exclude' | undefined {
  let best: { prefix: number; action: 'include' | 'exclude' } | undefined;
  const scan = (list: Cidr[], action: 'include' | 'exclude') => {
    for (const c of list) if ((!best || c.prefix > best.prefix) && cidrContains(c, addr)) best = { prefix: c.prefix, action };
  };
  scan(peers.include, 'include');
  scan(peers.exclude, 'exclude');
  return best?.action;
}

export function compileMatcher(spec: PolicySpec): (ev: AcceptEvent) => FilterReason | undefined {
  if (spec.mode === 'off') return () => 'off';
  const { include, exclude } = spec.ports;
  const hasPorts = include.length > 0 || exclude.length > 0;
  const peerInclude = spec.peers.include.length > 0;
  const hasPeers = peerInclude || spec.peers.exclude.length > 0;
  return (ev) => {
    if (!ev.success) return spec.failedAccepts ? undefined : 'failed';
    const s = ev.socket;
    if (!s?.resolved) return undefined; // cannot be checked: audited, never guessed away
    const inet = s.family === AddressFamily.ADDRESS_FAMILY_INET || s.family === AddressFamily.ADDRESS_FAMILY_INET6;
    if (hasPorts) {
      const port = s.local?.port ?? 0;
      const ok = inet
        ? (!include.length || inRanges(include, port)) && !(exclude.length && inRanges(exclude, port))
        : !include.length;
      if (!ok) return 'port';
    }
    if (hasPeers) {
      if (!inet) return peerInclude ? 'peer' : undefined;
      const addr = ipTo16(s.peer?.ip ?? '');
      const action = addr ? peerAction(spec.peers, addr) : undefined;
      if (action ? action === 'exclude' : peerInclude) return 'peer';
    }
    return undefined;
  };
}
