import { formatIPv6 } from '../../capture/address.js';
import { ipTo16 } from '../../policy/cidr.js';

/**
 * Address text -> the index's keys, and the classes of address no cluster
 * object can own. IPv4 (and IPv4-mapped IPv6, as dual-stack sockets report
 * IPv4 peers) becomes a uint32; IPv6 stays text in RFC 5952 form, which is
 * what the agent writes (capture/address.ts) and what the API's addresses are
 * brought to here, once, when they are indexed.
 */

/** "a.b.c.d" (or "::ffff:a.b.c.d") -> uint32; -1 when not IPv4. No allocation: it runs for every event. */
export function v4Key(ip: string): number {
  let i = 0;
  const n = ip.length;
  if (n > 7 && ip.charCodeAt(0) === 58 /* : */) {
    if (!ip.startsWith('::ffff:')) return -1;
    i = 7;
  }
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (; i < n; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/** Any IPv6 text -> RFC 5952 (as the agent writes it); undefined when not IPv6. For indexing, not per event. */
export function canonicalV6(ip: string): string | undefined {
  if (!ip.includes(':')) return undefined;
  const b = ipTo16(ip);
  return b ? formatIPv6(b) : undefined;
}

export enum AddressClass {
  Unicast = 0,
  Loopback = 1,
  LinkLocal = 2,
  /** 0.0.0.0, :: — nobody's address. */
  Unspecified = 3,
}

export function classifyV4(k: number): AddressClass {
  const a = k >>> 24;
  if (a === 127) return AddressClass.Loopback;
  if (a === 169 && ((k >>> 16) & 0xff) === 254) return AddressClass.LinkLocal;
  if (k === 0) return AddressClass.Unspecified;
  return AddressClass.Unicast;
}

/** On RFC 5952 text (lower case, compressed). */
export function classifyV6(ip: string): AddressClass {
  if (ip === '::1') return AddressClass.Loopback;
  if (ip === '::') return AddressClass.Unspecified;
  // fe80::/10 = fe80 .. febf
  const c0 = ip.charCodeAt(0);
  if (c0 === 102 /* f */ && ip.charCodeAt(1) === 101 /* e */ && ip.charCodeAt(4) === 58) {
    const c2 = ip.charCodeAt(2);
    if (c2 === 56 || c2 === 57 || c2 === 97 || c2 === 98) return AddressClass.LinkLocal;
  }
  return AddressClass.Unicast;
}

/**
 * RFC 1918, shared address space (100.64/10, what many CNIs and cloud VPCs
 * use) and unique local IPv6 (fc00::/7): where pods, Services and nodes live
 * when the cluster's own ranges are not known (no node podCIDRs, no
 * `peers.clusterCidrs`). An address here that no object holds is "unknown:
 * not found", not "external".
 */
export function isPrivateV4(k: number): boolean {
  const a = k >>> 24;
  const b = (k >>> 16) & 0xff;
  return a === 10 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b < 128);
}

export function isPrivateV6(ip: string): boolean {
  const c0 = ip.charCodeAt(0);
  const c1 = ip.charCodeAt(1);
  return c0 === 102 /* f */ && (c1 === 99 /* c */ || c1 === 100) /* d */ && ip.charCodeAt(4) === 58;
}
