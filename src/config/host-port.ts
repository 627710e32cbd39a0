import { isIP } from 'node:net';

/** "host:port" addresses in settings and flags: one parser for every one of them. */

export interface HostPort {
  host: string;
  port: number;
}

/** "host:port", "[v6]:port"; port 0 = any free port (tests). undefined for anything else (dns:///..., unix:...). */
export function parseHostPort(s: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  if (m[1] !== undefined && isIP(m[1]) !== 6) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}
