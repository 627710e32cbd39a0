import { isIPv4, isIPv6 } from 'node:net';

/**
 * Peer CIDRs as the kernel matches them: every address is 16 bytes, IPv4 as
 * IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix + 96), so one longest-prefix trie
 * serves both families and a v4-mapped peer on a dual-stack socket matches
 * the IPv4 rule written for it. Pure.
 */

export interface Cidr {
  /** As written by the user, for explanations and errors. */
  text: string;
  /** 16 bytes, host bits cleared. */
  addr: Uint8Array;
  /** 0..128 over the 16-byte form. */
  prefix: number;
}

const V4_MAPPED = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

export function ipTo16(ip: string): Uint8Array | undefined {
  if (isIPv4(ip)) return Uint8Array.from([...V4_MAPPED, ...ip.split('.').map(Number)]);
  if (!isIPv6(ip)) return undefined;
  let text = ip;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    tail.push(...dotted[1]!.split('.').map(Number));
    text = `${text.slice(0, -dotted[1]!.length)}0:0`;
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (s: string | undefined) => (s ? s.split(':').map((h) => Number.parseInt(h, 16)) : []);
  const h = parse(head);
  const r = rest === undefined ? [] : parse(rest);
  const groups = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tail.length) out.set(tail, 12);
  return out;
}

/** "10.0.0.0/8", "fd00::/8", or a bare IP (a /32 or /128). Throws a message naming the value. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const ip = slash < 0 ? text : text.slice(0, slash);
  const addr = ipTo16(ip);
  if (!addr) throw new Error(`"${text}" is not an IP address or CIDR (examples: 10.0.0.0/8, 192.168.1.7, fd00::/8)`);
  const v4 = isIPv4(ip);
  const max = v4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new Error(`"${text}": prefix length must be 0-${max}`);
    bits = Number(p);
  }
  const prefix = v4 ? bits + 96 : bits;
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    addr[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return { text, addr, prefix };
}

export function cidrContains(c: Cidr, addr: Uint8Array): boolean {
  const full = c.prefix >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== c.addr[i]) return false;
  const rem = c.prefix & 7;
  if (!rem) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return ((addr[full] ?? 0) & mask) === c.addr[full];
}
