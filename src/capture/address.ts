/** Socket address bytes -> text, and the caller's sockaddr parsed. Pure. */

export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;

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

/**
 * The caller's sockaddr as the kernel wrote it (or as the caller rewrote it):
 * sockaddr_in {u16 family, be16 port, 4 bytes addr} or
 * sockaddr_in6 {u16 family, be16 port, u32 flowinfo, 16 bytes addr, u32 scope}.
 * `len` is *addrlen; bytes beyond it were never written by the kernel.
 */
/** No address: shared (read-only) by every event that has none. */
export const NO_SOCKADDR: Readonly<ParsedSockaddr> = Object.freeze({ family: 0, ip: '', port: 0 });

export function parseSockaddr(b: Uint8Array, len: number): Readonly<ParsedSockaddr> {
  if (len < 2) return NO_SOCKADDR;
  const family = b[0]! | (b[1]! << 8);
  if (family === AF_INET && len >= 8) {
    return { family, port: (b[2]! << 8) | b[3]!, ip: formatIPv4(b, 4) };
  }
  if (family === AF_INET6 && len >= 24) {
    return { family, port: (b[2]! << 8) | b[3]!, ip: formatIPv6(b, 8) };
  }
  return { family, ip: '', port: 0 };
}

/** AF_UNIX sun_path bytes: a leading NUL is the abstract namespace, shown as "@". */
export function formatUnixPath(b: Uint8Array): string {
  if (b.length === 0) return '';
  if (b[0] === 0) return `@${Buffer.from(b.subarray(1)).toString('utf8').replace(/\0+$/, '')}`;
  const nul = b.indexOf(0);
  return Buffer.from(nul < 0 ? b : b.subarray(0, nul)).toString('utf8');
}
