import type { OverflowPolicy } from './spool.js';

/**
 * When the agent is ready (GET /readyz), as a pure function of what its
 * parts report. Three checks, all required:
 *
 * - probes: the eBPF programs are attached (attachedPrograms() > 0);
 * - kubernetes: the pod and namespace informers listed at least once, or
 *   there is no Kubernetes API to wait for (--no-kube, or no configuration);
 *   a later API outage does not make the agent unready: the store keeps what
 *   it has and events say what is missing;
 * - transport: connected to the collector, OR the spool is accepting events
 *   ("spooling"). A collector outage is what the spool is for: every agent
 *   turning unready at once would say nothing a collector alert does not, and
 *   it would block a DaemonSet rollout (maxUnavailable) exactly when an agent
 *   fix may be needed. Not accepting = the spool is full under drop-newest
 *   (new events are being refused), or closed.
 *
 * The agent is never ready while it starts (probes loading) or stops.
 */

export interface ReadinessCheck {
  name: 'probes' | 'kubernetes' | 'transport' | 'agent';
  ok: boolean;
  detail: string;
}

export interface Readiness {
  ready: boolean;
  /** How events leave when ready: straight to the collector, or into the spool only. */
  mode?: 'connected' | 'spooling';
  checks: ReadinessCheck[];
}

export interface ReadinessState {
  /** undefined: still loading. */
  probes: { attached: number } | undefined;
  kube:
    | { source: false; reason: string }
    | { source: true; synced: boolean; connected: boolean; lastError?: string; pods: number };
  /** undefined: not started yet. */
  transport:
    | {
        connected: boolean;
        lastError?: string;
        spool: { open: boolean; bytes: number; maxBytes: number; overflow: OverflowPolicy };
      }
    | undefined;
  stopping: boolean;
}

/** Under drop-newest, a spool with less room than this refuses (or is about to refuse) new events. */
export const SPOOL_FULL_MARGIN_BYTES = 64 * 1024;

function mib(n: number): string {
  return `${(n / 1024 ** 2).toFixed(1)}MiB`;
}

export function evaluateReadiness(s: ReadinessState): Readiness {
  const checks: ReadinessCheck[] = [];
  if (s.stopping) checks.push({ name: 'agent', ok: false, detail: 'shutting down' });

  if (!s.probes) checks.push({ name: 'probes', ok: false, detail: 'loading the eBPF programs' });
  else if (s.probes.attached <= 0) checks.push({ name: 'probes', ok: false, detail: 'no eBPF program attached' });
  else checks.push({ name: 'probes', ok: true, detail: `${s.probes.attached} programs attached` });

  const k = s.kube;
  if (!k.source) checks.push({ name: 'kubernetes', ok: true, detail: `no pod metadata to wait for: ${k.reason}` });
  else if (k.synced) {
    const watch = k.connected ? 'watching' : `watch reconnecting${k.lastError ? `: ${k.lastError}` : ''}`;
    checks.push({ name: 'kubernetes', ok: true, detail: `informers synced (${k.pods} pods on this node; ${watch})` });
  } else {
    checks.push({
      name: 'kubernetes',
      ok: false,
      detail: `pod and namespace informers not synced yet: ${k.lastError ?? 'first list in progress'}`,
    });
  }

  let mode: Readiness['mode'];
  const t = s.transport;
  if (!t) checks.push({ name: 'transport', ok: false, detail: 'spool and publisher not started' });
  else if (t.connected) {
    mode = 'connected';
    checks.push({ name: 'transport', ok: true, detail: `connected to the collector (spool ${mib(t.spool.bytes)})` });
  } else {
    const why = `collector not connected${t.lastError ? `: ${t.lastError}` : ''}`;
    const room = t.spool.maxBytes - t.spool.bytes;
    if (!t.spool.open) checks.push({ name: 'transport', ok: false, detail: `${why}; the spool is closed` });
    else if (t.spool.overflow === 'drop-newest' && room < SPOOL_FULL_MARGIN_BYTES) {
      checks.push({
        name: 'transport',
        ok: false,
        detail: `${why}; spool full (${mib(t.spool.bytes)} of ${mib(t.spool.maxBytes)}, drop-newest): new events are refused`,
      });
    } else {
      mode = 'spooling';
      const full = room < SPOOL_FULL_MARGIN_BYTES ? ', full: the oldest events are being dropped' : '';
      checks.push({
        name: 'transport',
        ok: true,
        detail: `spooling: ${why}; events are kept in the spool (${mib(t.spool.bytes)} of ${mib(t.spool.maxBytes)}${full})`,
      });
    }
  }

  const ready = checks.every((c) => c.ok);
  return ready ? { ready, ...(mode ? { mode } : {}), checks } : { ready, checks };
}

/** The plain-text body of /readyz: a first line, then one line per check ([+] ok, [-] failing). */
export function readinessText(r: Readiness): string {
  const head = r.ready
    ? `ready${r.mode ? ` (${r.mode})` : ''}`
    : `not ready: ${r.checks
        .filter((c) => !c.ok)
        .map((c) => c.name)
        .join(', ')}`;
  return `${head}\n${r.checks.map((c) => `[${c.ok ? '+' : '-'}] ${c.name}: ${c.detail}`).join('\n')}\n`;
}
