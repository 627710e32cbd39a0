import type { AgentMetrics } from '../agent/metrics.js';
import { UNDECLARED_LISTENER_RULE, type UndeclaredStats } from './undeclared.js';

/** The findings' Prometheus metrics (docs/metrics.md), read at scrape time. */
export function addFindingMetrics(m: AgentMetrics, stats: () => UndeclaredStats): void {
  m.addCollector({
    name: 'doorwatch_findings_total',
    help: 'Finding records raised, by rule',
    type: 'counter',
    labelNames: ['rule'],
    collect: () => [{ labels: { rule: UNDECLARED_LISTENER_RULE }, value: stats().findings }],
  });
  m.addCollector({
    name: 'doorwatch_findings_skipped_total',
    help: 'Listener records judged that raised no finding, by rule and reason',
    type: 'counter',
    labelNames: ['rule', 'reason'],
    collect: () =>
      Object.entries(stats().skipped).map(([reason, value]) => ({ labels: { rule: UNDECLARED_LISTENER_RULE, reason }, value })),
  });
  m.addCollector({
    name: 'doorwatch_findings_tracked',
    help: 'Undeclared (pod, port, protocol) keys with a live listener, remembered so re-sends raise no new finding',
    type: 'gauge',
    collect: () => [{ value: stats().tracked }],
  });
  m.addCollector({
    name: 'doorwatch_findings_held',
    help: 'Listener records waiting for the audit policies to load before they are judged',
    type: 'gauge',
    collect: () => [{ value: stats().held }],
  });
  m.addCollector({
    name: 'doorwatch_findings_untracked_total',
    help: 'Findings raised while the deduplication table was full (may be raised again at the next re-send)',
    type: 'counter',
    collect: () => [{ value: stats().untracked }],
  });
}
