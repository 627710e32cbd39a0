/** Socket address bytes -> text, and the caller's sockaddr parsed. Pure. */

export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;

/** The kernel's socket type (sk->sk_type, SOCK_*) by name: "STREAM", "SEQPACKET", ... or the number. */
const SOCK_TYPES: Record<number, string> = { 1: 'STREAM', 2: 'DGRAM', 3: 'RAW', 4: 'RDM', 5: 'SEQPACKET' };
export const sockTypeName = (t: number): string => SOCK_TYPES[t] ?? String(t);

/*
 * The last few IPv4 texts by address: a host's local addresses and a busy
 * peer repeat from event to event, and a new string per address per event
 * was a good part of the capture path's allocations in a storm.
 */
const V4_CACHE = 8;
const v4Keys = new Int32Array(V4_CACHE).fill(-1);
const v4Texts: string[] = new Array<string>(V4_CACHE).fill('');
let v4Next = 0;

export function formatIPv4(b: Uint8Array, off = 0): string {
  const key = b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24) | 0;
  for (let i = 0; i < V4_CACHE; i++) if (v4Keys[i] === key) return v4Texts[i]!;
  const s = `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  v4Keys[v4Next] = key;
  v4Texts[v4Next] = s;
  v4Next = (v4Next + 1) % V4_CACHE;
  return s;
}

export function isV4Mapped(b: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 10; i++) if (b[off + i] !== 0) return false;
  return b[off + 10] === 0xff && b[off + 11] === 0xff;
}

/**
 * RFC 5952 text: lower case, the longest run of >= 2 zero groups (the first
 * on a tie) as "::", mapped IPv4 dotted. One pass, no arrays: it runs for the
 * local and the peer address of every IPv6 event.
 */
export function formatIPv6(b: Uint8Array, off = 0): string {
  if (isV4Mapped(b, off)) return `::ffff:${formatIPv4(b, off + 12)}`;
  let gap = -1;
  let gapLen = 1;
  for (let i = 0, run = 0; i < 8; i++) {
    run = b[off + 2 * i] === 0 && b[off + 2 * i + 1] === 0 ? run + 1 : 0;
    if (run > gapLen) {
      gapLen = run;
      gap = i - run + 1;
    }
  }
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === gap) {
      s += '::';
      i += gapLen - 1;
      continue;
    }
    if (i > 0 && i !== gap + gapLen) s += ':';
    s += ((b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!).toString(16);
  }
  return s;
}

export function formatIP(family: number, b: Uint8Array): string {
  if (family === AF_INET) return formatIPv4(b);
  if (family === AF_INET6) return formatIPv6(b);
  return '';
}

export interface ParsedSockaddr {
  family: number;
  ip: string;
  port: number;
}

/** No address: shared (read-only) by every event that has none. */
export const NO_SOCKADDR: Readonly<ParsedSockaddr> = Object.freeze({ family: 0, ip: '', port: 0 });

/*
 * sockaddr_in  {u16 family, be16 port, 4 bytes addr, 8 zero}              (16)
 * sockaddr_in6 {u16 family, be16 port, u32 flowinfo, 16 bytes addr, u32 scope id} (28)
 */
const PORT_END = 4;
const V4_ADDR = 4;
const V6_ADDR = 8;

/**
 * The caller's sockaddr as the kernel wrote it (or as the caller rewrote it).
 * `len` is how many bytes the kernel wrote (min(buffer size, address
 * length)): a field not wholly inside them is not shown — a sockaddr_in6
 * truncated to 16 bytes has its family and port, not its address.
 */
export function parseSockaddr(b: Uint8Array, len: number): Readonly<ParsedSockaddr> {
  if (len < 2) return NO_SOCKADDR;
  const family = b[0]! | (b[1]! << 8);
  const port = len >= PORT_END && (family === AF_INET || family === AF_INET6) ? (b[2]! << 8) | b[3]! : 0;
  if (family === AF_INET && len >= V4_ADDR + 4) return { family, port, ip: formatIPv4(b, V4_ADDR) };
  if (family === AF_INET6 && len >= V6_ADDR + 16) return { family, port, ip: formatIPv6(b, V6_ADDR) };
  return { family, ip: '', port };
}

/**
 * Whether the first `len` bytes of the caller's sockaddr contradict the
 * kernel's peer (family, port, address bytes) — each field compared only as
 * far as the kernel wrote it. Not compared: IPv6 flowinfo and scope id (the
 * kernel fills them from socket options and the interface, not from the
 * peer) and sin_zero; for AF_UNIX only the family (the peer's own bound
 * path is not in the record).
 */
export function sockaddrDisagrees(b: Uint8Array, len: number, family: number, port: number, addr: Uint8Array): boolean {
  if (len < 2) return false;
  if ((b[0]! | (b[1]! << 8)) !== family) return true;
  const off = family === AF_INET ? V4_ADDR : family === AF_INET6 ? V6_ADDR : -1;
  if (off < 0) return false;
  if (len >= PORT_END && ((b[2]! << 8) | b[3]!) !== port) return true;
  const n = Math.min(family === AF_INET ? 4 : 16, len - off);
  for (let i = 0; i < n; i++) if (b[off + i] !== addr[i]) return true;
  return false;
}

/** AF_UNIX sun_path bytes: a leading NUL is the abstract namespace, shown as "@". */
export function formatUnixPath(b: Uint8Array): string {
  if (b.length === 0) return '';
  if (b[0] === 0) return `@${Buffer.from(b.subarray(1)).toString('utf8').replace(/\0+$/, '')}`;
  const nul = b.indexOf(0);
  return Buffer.from(nul < 0 ? b : b.subarray(0, nul)).toString('utf8');
}
