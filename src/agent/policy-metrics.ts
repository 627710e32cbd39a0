import { byLabel } from '../observability/scrape-metrics.js';
import type { PolicyReport } from '../policy/report.js';
import type { AgentMetrics, Sample } from './metrics.js';

/** Per-policy counters (docs/policy.md "What is counted") as Prometheus metrics, read at scrape time. */

export interface PolicyMetricsSources {
  report(): PolicyReport | undefined;
  resources?(): { accepted: number; rejected: number; crdMissing: boolean; synced: boolean };
}

export function addPolicyMetrics(m: AgentMetrics, s: PolicyMetricsSources): void {
  const rows = (pick: (r: PolicyReport) => Sample[]) => () => {
    const r = s.report();
    return r ? pick(r) : undefined;
  };
  m.addCollector({
    name: 'doorwatch_policy_kernel_total',
    help: 'Accepts the kernel passed on (emitted) or filtered (off, port, peer, failed), per audit policy',
    type: 'counter',
    labelNames: ['policy', 'result'],
    collect: rows((r) =>
      r.rows.flatMap((row) =>
        (['emitted', 'off', 'port', 'peer', 'failed'] as const).map((result) => ({
          labels: { policy: row.key, result },
          value: row.kernel[result],
        })),
      ),
    ),
  });
  m.addCollector({
    name: 'doorwatch_policy_userspace_total',
    help: 'Accepts the agent sent as events, folded into summaries, or filtered (cgroup not mapped yet), per audit policy',
    type: 'counter',
    labelNames: ['policy', 'result'],
    collect: rows((r) =>
      r.rows.flatMap((row) => [
        { labels: { policy: row.key, result: 'events' }, value: row.user.events },
        { labels: { policy: row.key, result: 'summarized' }, value: row.user.summarized },
        ...(['off', 'port', 'peer', 'failed'] as const).map((why) => ({
          labels: { policy: row.key, result: `filtered_${why}` },
          value: row.user.filtered[why],
        })),
      ]),
    ),
  });
  m.addCollector({
    name: 'doorwatch_policy_summaries_total',
    help: 'Summary records emitted',
    type: 'counter',
    collect: rows((r) => [{ value: r.summaries.summaries }]),
  });
  m.addCollector({
    name: 'doorwatch_policy_mapped_cgroups',
    help: 'Cgroups mapped to a policy slot in the kernel',
    type: 'gauge',
    collect: rows((r) => [{ value: r.mappedCgroups }]),
  });
  m.addCollector({
    name: 'doorwatch_policy_kernel_filtering',
    help: '1 when the kernel filter is on (pods and policies listed), 0 while everything is audited',
    type: 'gauge',
    collect: rows((r) => [{ value: r.kernelFiltering ? 1 : 0 }]),
  });
  const res = s.resources;
  if (res)
    m.addCollector({
      name: 'doorwatch_policy_resources',
      help: 'AcceptAuditPolicy objects by state (accepted, rejected); crd_missing 1 when the CRD is not installed',
      type: 'gauge',
      labelNames: ['state'],
      collect: () => {
        const r = res();
        return byLabel('state', { accepted: r.accepted, rejected: r.rejected, crd_missing: r.crdMissing ? 1 : 0 });
      },
    });
}
