import type { KernelPolicyCounters, KernelPolicySync } from './kernel-sync.js';
import { type PolicyCounts, type PolicyStage, zeroCounts } from './stage.js';
import type { SummarizerStats } from './summarize.js';

/**
 * Per policy, what the kernel and userspace did with its accepts: the one
 * view the trace summary, the agent's metrics and tests read.
 */

export interface PolicyRow {
  key: string;
  name: string;
  mode: string;
  kernel: KernelPolicyCounters;
  user: PolicyCounts;
}

export interface PolicyReport {
  rows: PolicyRow[];
  summaries: SummarizerStats;
  mappedCgroups: number;
  kernelFiltering: boolean;
}

const ZERO_K: KernelPolicyCounters = { emitted: 0n, off: 0n, port: 0n, peer: 0n, failed: 0n };

export function policyReportOf(p: { stage: PolicyStage; sync: KernelPolicySync }): PolicyReport {
  const kernel = p.sync.counters();
  const user = p.stage.stats();
  const keys = new Set([...kernel.keys(), ...user.byPolicy.keys()]);
  // The engine's current policies: one whose accepts were all decided in the kernel never reached the stage.
  const current = new Map(p.stage.engine.all().map((x) => [x.key, x]));
  const rows: PolicyRow[] = [];
  for (const key of [...keys].sort()) {
    const u = user.byPolicy.get(key);
    const policy = current.get(key) ?? u?.policy;
    const name = policy?.ref.name ?? key;
    const mode = policy?.spec.mode ?? '';
    rows.push({ key, name, mode, kernel: kernel.get(key) ?? ZERO_K, user: u?.counts ?? zeroCounts() });
  }
  return { rows, summaries: user.summaries, mappedCgroups: p.sync.mappedCgroups(), kernelFiltering: p.sync.enabled };
}

export function policyLines(r: PolicyReport): string[] {
  const out = [
    `  policy: kernel_filtering=${r.kernelFiltering ? 'on' : 'off'} mapped_cgroups=${r.mappedCgroups} ` +
      `summaries=${r.summaries.summaries} folded_accepts=${r.summaries.folded} accepts_under_coarsened_keys=${r.summaries.keysFolded}`,
  ];
  for (const row of r.rows) {
    const k = row.kernel;
    const u = row.user;
    const idle = !k.emitted && !k.off && !k.port && !k.peer && !k.failed && !u.events && !u.summarized;
    if (idle) continue;
    out.push(
      `    ${row.key}: events=${u.events} summarized=${u.summarized} | kernel emitted=${k.emitted} ` +
        `filtered off=${k.off} port=${k.port} peer=${k.peer} failed=${k.failed} | userspace filtered ` +
        `off=${u.filtered.off} port=${u.filtered.port} peer=${u.filtered.peer} failed=${u.filtered.failed}`,
    );
  }
  return out;
}
