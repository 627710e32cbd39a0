import {
  type AcceptEvent,
  AddressFamily,
  AttributionStatus,
  EnrichmentStatus,
  EventKind,
  OwnerKind,
  Source,
} from '../gen/doorwatch/v1/event.js';

/** The human view of `doorwatch trace` on a TTY: one line per accept. */

const COLS = [
  ['TIME', 12],
  ['PID', 7],
  ['COMM', 15],
  ['CALL', 8],
  ['LOCAL', 26],
  ['PEER', 26],
  ['RESULT', 9],
] as const;

// A cell that fits exactly is kept whole: the columns are already separated by a space.
const pad = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));

const POD_COLS = [
  ['NAMESPACE', 16],
  ['POD', 28],
  ['PEER OWNER', 36],
] as const;

/**
 * Who the peer is, from the collector's peer attribution: `ns/workload` (or `ns/pod`) for a pod,
 * `svc ns/name`, `node name`, or the status. Events that never went through a collector
 * (`doorwatch trace`) have none: peers are attributed at the collector only (no agent watches the
 * whole cluster), which the cell says.
 */
function peerCell(ev: AcceptEvent): string {
  const a = ev.peerAttribution;
  if (!a) return '(at collector)';
  switch (a.status) {
    case AttributionStatus.ATTRIBUTION_STATUS_RESOLVED:
      if (a.kind === OwnerKind.OWNER_KIND_NODE) return `node ${a.name}`;
      if (a.kind === OwnerKind.OWNER_KIND_SERVICE) return `svc ${a.namespace}/${a.name}`;
      return a.workload ? `${a.namespace}/${a.workload.name} (${a.name})` : `${a.namespace}/${a.name}`;
    case AttributionStatus.ATTRIBUTION_STATUS_EXTERNAL:
      return 'external';
    case AttributionStatus.ATTRIBUTION_STATUS_LOOPBACK:
      return 'loopback';
    case AttributionStatus.ATTRIBUTION_STATUS_LINK_LOCAL:
      return 'link-local';
    case AttributionStatus.ATTRIBUTION_STATUS_NO_ADDRESS:
      return '-';
    default:
      return `? ${a.reason || 'unknown'}`;
  }
}

export function tableHeader(withPods = false): string {
  const cols = withPods ? [...COLS, ...POD_COLS] : COLS;
  return `${cols.map(([h, w]) => pad(h, w)).join(' ')} NOTES`;
}

/** Namespace and pod, or what stands in their place: never a silent blank. */
function podCells(ev: AcceptEvent): string[] {
  const st = ev.enrichment?.status;
  if (st === EnrichmentStatus.ENRICHMENT_STATUS_HOST) return ['(host)', '-'];
  if (ev.pod?.name) return [ev.pod.namespace, ev.pod.name];
  return ['?', ev.container?.id ? `(container ${ev.container.id.slice(0, 12)})` : '?'];
}

function endpoint(ev: AcceptEvent, side: 'local' | 'peer'): string {
  const s = ev.socket;
  if (!s?.resolved) return '-';
  if (s.family === AddressFamily.ADDRESS_FAMILY_UNIX) {
    if (side === 'local') return s.unixPath || 'unix:(unnamed)';
    return s.peerPid ? `unix pid ${s.peerPid}` : 'unix';
  }
  const e = s[side];
  if (!e) return '-';
  return s.family === AddressFamily.ADDRESS_FAMILY_INET6 ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

const CALL: Record<number, string> = {
  [Source.SOURCE_ACCEPT]: 'accept',
  [Source.SOURCE_ACCEPT4]: 'accept4',
  [Source.SOURCE_IO_URING]: 'io_uring',
  // Listener records (src/listeners), as `tail` shows them among accepts.
  [Source.SOURCE_LISTEN]: 'listen',
  [Source.SOURCE_LISTEN_CLOSE]: 'close',
  [Source.SOURCE_PROC_SCAN]: 'scan',
};

/** A listener record's RESULT cell: what it says of the listener (it has no fd result). */
const LISTENER_RESULT: Record<number, string> = {
  [EventKind.EVENT_KIND_LISTEN]: 'listen',
  [EventKind.EVENT_KIND_LISTENER]: 'listening',
  [EventKind.EVENT_KIND_LISTENER_CLOSED]: 'closed',
  // A finding about a listener (src/findings): its rule is in the notes.
  [EventKind.EVENT_KIND_FINDING]: 'FINDING',
};

function time(ns: bigint): string {
  const d = new Date(Number(ns / 1_000_000n));
  return d.toTimeString().slice(0, 8) + `.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

export function tableRow(ev: AcceptEvent, withPods = false): string {
  const notes: string[] = [];
  if (withPods && ev.enrichment?.status === EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL)
    notes.push(`partial:${ev.enrichment.missing.join('+')}`);
  if (ev.findingInfo) notes.push(ev.findingInfo.ruleId);
  if (ev.userAddress?.mismatch) notes.push('ADDR-MISMATCH');
  if (ev.flags.includes('NO_ENTER')) notes.push('no-enter');
  if (ev.listener?.resolved && ev.listener.maxBacklog > 0 && ev.listener.backlog * 2 >= ev.listener.maxBacklog) {
    notes.push(`backlog ${ev.listener.backlog}/${ev.listener.maxBacklog}`);
  }
  if (ev.acceptFlagNames.length) notes.push(ev.acceptFlagNames.map((f) => f.replace('SOCK_', '').toLowerCase()).join(','));
  const cells = [
    time(ev.timeUnixNano),
    String(ev.process?.pid ?? ''),
    ev.process?.comm ?? '',
    CALL[ev.source] ?? '?',
    endpoint(ev, 'local'),
    ev.kind in LISTENER_RESULT ? '-' : endpoint(ev, 'peer'), // a listener has no peer
    LISTENER_RESULT[ev.kind] ?? (ev.success ? `fd ${ev.ret}` : ev.error),
  ];
  const cols = withPods ? [...COLS, ...POD_COLS] : COLS;
  if (withPods) cells.push(...podCells(ev), peerCell(ev));
  return `${cells.map((c, i) => pad(c, cols[i]![1])).join(' ')} ${notes.join(' ')}`.trimEnd();
}
