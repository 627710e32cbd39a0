import { type AcceptEvent, AddressFamily } from '../gen/doorwatch/v1/event.js';

/** `doorwatch listeners` on a terminal: one line per listening socket. */

const COLS = [
  ['PROTO', 6],
  ['LOCAL', 40],
  ['PID', 7],
  ['COMM', 15],
  ['FD', 4],
  ['QUEUE', 5],
  ['NAMESPACE', 16],
  ['POD', 28],
  ['CONTAINER', 20],
] as const;

const pad = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));

export const listenersHeader = (): string =>
  COLS.map(([h, n]) => pad(h, n))
    .join(' ')
    .trimEnd();

function proto(ev: AcceptEvent): string {
  const s = ev.socket;
  if (s?.family === AddressFamily.ADDRESS_FAMILY_INET) return 'tcp';
  if (s?.family === AddressFamily.ADDRESS_FAMILY_INET6) return 'tcp6';
  if (s?.family === AddressFamily.ADDRESS_FAMILY_UNIX) return s.type === 'SEQPACKET' ? 'unix/sp' : 'unix';
  return '?';
}

function local(ev: AcceptEvent): string {
  const s = ev.socket;
  if (s?.family === AddressFamily.ADDRESS_FAMILY_UNIX) return s.unixPath || '(unnamed)';
  const ip = s?.local?.ip ?? '';
  return ip.includes(':') ? `[${ip}]:${s?.local?.port}` : `${ip}:${s?.local?.port}`;
}

export function listenersRow(ev: AcceptEvent): string {
  const p = ev.process;
  const cells = [
    proto(ev),
    local(ev),
    p?.pid ? String(p.pid) : '-',
    p?.comm || '-',
    (ev.listener?.fd ?? -1) >= 0 ? String(ev.listener!.fd) : '-',
    String(ev.listener?.backlog ?? 0),
    ev.pod?.namespace || '-',
    ev.pod?.name || '-',
    ev.container?.name || (ev.container?.id ? ev.container.id.slice(0, 12) : '-'),
  ];
  return cells
    .map((c, i) => pad(c, COLS[i]![1]))
    .join(' ')
    .trimEnd();
}

/** Table order: by protocol, then port or path. */
export function byAddress(a: AcceptEvent, b: AcceptEvent): number {
  const pa = proto(a);
  const pb = proto(b);
  if (pa !== pb) return pa < pb ? -1 : 1;
  const d = (a.socket?.local?.port ?? 0) - (b.socket?.local?.port ?? 0);
  if (d) return d;
  return local(a) < local(b) ? -1 : local(a) > local(b) ? 1 : 0;
}
