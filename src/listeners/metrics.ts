import type { AgentMetrics } from '../agent/metrics.js';
import { byLabel } from '../observability/scrape-metrics.js';
import type { InventoryStats } from './inventory.js';

/** The listener inventory's Prometheus metrics (docs/metrics.md), read at scrape time. */
export function addListenerMetrics(m: AgentMetrics, stats: () => InventoryStats): void {
  m.addCollector({
    name: 'doorwatch_listeners',
    help: 'Listening TCP and unix sockets in the inventory now',
    type: 'gauge',
    collect: () => [{ value: stats().listeners }],
  });
  m.addCollector({
    name: 'doorwatch_listener_scans_total',
    help: '/proc listener scans (snapshot and periodic rescans), by result',
    type: 'counter',
    labelNames: ['result'],
    collect: () => {
      const s = stats();
      return byLabel('result', { ok: s.scans, error: s.scanErrors });
    },
  });
  m.addCollector({
    name: 'doorwatch_listeners_closed_total',
    help: 'Listeners seen to go away: by the kernel (TCP close) or by a rescan (unix sockets, anything missed)',
    type: 'counter',
    labelNames: ['by'],
    collect: () => {
      const s = stats();
      return byLabel('by', { kernel: s.closedByKernel, rescan: s.closedByRescan });
    },
  });
}
