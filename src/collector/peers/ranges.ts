import { parseCidr } from '../../policy/cidr.js';

/**
 * The cluster's address ranges (node podCIDRs, configured pod and Service
 * CIDRs): an address inside one that no object holds is "unknown: not found"
 * (a pod the index has not seen, or one gone past the history); outside all of
 * them it is "external". Membership is one Set lookup per distinct prefix
 * length (a cluster's 5 000 node podCIDRs are all /24: one lookup), so the
 * check stays cheap on the path of every event from outside the cluster.
 */
export class RangeSet {
  /** prefix length (0..32) -> masked IPv4 networks. */
  readonly #v4 = new Map<number, Map<number, number>>();
  /** prefix length over the 16-byte form -> masked address bytes as latin1 text. */
  readonly #v6 = new Map<number, Map<string, number>>();
  #size = 0;

  /** Adds a reference to a CIDR ("10.244.3.0/24", "fd00:10::/64"); returns false for text that is no CIDR. */
  add(cidr: string): boolean {
    return this.#change(cidr, 1);
  }

  remove(cidr: string): boolean {
    return this.#change(cidr, -1);
  }

  #change(text: string, delta: number): boolean {
    let c: ReturnType<typeof parseCidr>;
    try {
      c = parseCidr(text);
    } catch {
      return false;
    }
    const v4 = !text.includes(':');
    if (v4) {
      const p = c.prefix - 96;
      const net = ((c.addr[12]! << 24) | (c.addr[13]! << 16) | (c.addr[14]! << 8) | c.addr[15]!) >>> 0;
      this.#size += refcount(this.#v4, p, net, delta);
    } else this.#size += refcount(this.#v6, c.prefix, Buffer.from(c.addr).toString('latin1'), delta);
    return true;
  }

  hasV4(k: number): boolean {
    for (const [p, nets] of this.#v4) {
      const mask = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
      if (nets.has((k & mask) >>> 0)) return true;
    }
    return false;
  }

  /** `bytes`: the address's 16-byte form (policy/cidr.ts ipTo16). */
  hasV6(bytes: Uint8Array): boolean {
    for (const [p, nets] of this.#v6) {
      const masked = Uint8Array.from(bytes);
      for (let i = 0; i < 16; i++) {
        const keep = Math.max(0, Math.min(8, p - 8 * i));
        masked[i]! &= (0xff << (8 - keep)) & 0xff;
      }
      if (nets.has(Buffer.from(masked).toString('latin1'))) return true;
    }
    return false;
  }

  /** Distinct CIDRs held. */
  get size(): number {
    return this.#size;
  }
}

/** Returns the change in distinct CIDRs (+1, -1 or 0). */
function refcount<K>(byPrefix: Map<number, Map<K, number>>, p: number, key: K, delta: number): number {
  let nets = byPrefix.get(p);
  if (!nets) {
    if (delta < 0) return 0;
    nets = new Map();
    byPrefix.set(p, nets);
  }
  const before = nets.get(key) ?? 0;
  const n = before + delta;
  if (n > 0) nets.set(key, n);
  else nets.delete(key);
  if (nets.size === 0) byPrefix.delete(p);
  return (n > 0 ? 1 : 0) - (before > 0 ? 1 : 0);
}
