import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { AcceptProbes } from '../src/bpf/accept-probes.js';
import { startPipeline } from '../src/cli/pipeline.js';
import { eventToJsonLine } from '../src/formats/native-json.js';
import { type AcceptEvent, EnrichmentStatus } from '../src/gen/doorwatch/v1/event.js';
import { loadKubeConfig } from '../src/kube/config.js';
import { KubeMetadataSource } from '../src/kube/source.js';
import { silentLogger } from '../src/log/logger.js';
import { parsePolicyConfig } from '../src/policy/config.js';
import { PolicyEngine } from '../src/policy/engine.js';
import { DEFAULT_ADMIN_NAMESPACE } from '../src/policy/file.js';
import { type PolicyRow, policyReportOf } from '../src/policy/report.js';
import { KubeApiServer, makePod, ownerRef, tempDir } from '../test/helpers/kube-api-server.js';
import { type FakePod, PodSim } from '../test/helpers/pod-sim.js';
import { until } from '../test/helpers/wait.js';
import {
  BPF_OBJECT,
  buildStorm,
  cpuWindow,
  kill,
  killChildren,
  machineInfo,
  noisePct,
  quiesce,
  ROOT,
  restoreBpfStats,
  startNodeAgent,
  startStorm,
  usageErrors,
  withBpfStats,
} from './proc.js';
import { bpfCost, bpfNsPerAccept, kernelSince, type ProgramRun, programsSince, type StormResult } from './protocol.js';
import { type Column, fmt, fmtSpread, renderTable, spread } from './report.js';

/**
 * Per-namespace audit policies, what they save: 90 % of the accepts in a
 * namespace whose policy is `off`, 10 % in an audited one, measured side by
 * side with no policy at all (everything captured, decoded, enriched) and
 * with the policy engine (the unaudited namespace filtered in the kernel).
 *
 *   npx tsx bench/policy.ts [--payments 20000 --batch 180000 --rounds 3 --json]
 *
 * Two simulated pods (test/helpers/pod-sim.ts: kubelet-shaped cgroup v2
 * directories, a network namespace each), described by the Kubernetes API
 * stand-in (test/helpers/kube-api-server.ts): `payments` (audited) and
 * `batch` (the rule `namespaces: [batch]`, mode off). The load is
 * bench/storm.c run INSIDE each pod (its cgroup and netns): both storms at
 * once, bounded by count and wall clock, pinned to --storm-cpus.
 *
 * The agent is this same file with --agent, compiled with tsc and run by
 * node as bin/doorwatch.js is (docs/benchmarks.md: "Compiled, not tsx"), in
 * its own process: the real `startPipeline` (Capture -> Enricher -> PolicyStage)
 * with the real probes and a KubeMetadataSource, so process.cpuUsage() there
 * is the agent's CPU and nothing else's (the API stand-in, the pods and the
 * storms live in this process and its other children). Protocol on its
 * stdin (commands) and stdout (one JSON line each): ready; "cpu" (its CPU so
 * far, twice around an idle second); then the warm-up storms; "mark" (drain,
 * zero every count and baseline) right before the measured storms are
 * released; "finish" (final drain, the books, exit).
 *
 * Root. Everything made (pods' cgroups and netns, processes, the sysctl) is
 * undone on exit, failure or Ctrl-C. Results: .bench/policy.json, and
 * docs/benchmarks.md ("Per-namespace policies") says what they mean.
 */

const NODE = 'bench-node';
const NS_AUDITED = 'payments';
const NS_OFF = 'batch';
const RULE_OFF = 'batch-unaudited';
const RULE_AUDITED = 'payments-audited';
const PHASES = ['none', 'policy'] as const;
type Phase = (typeof PHASES)[number];
const LABEL: Record<Phase, string> = { none: 'no policy', policy: 'policy' };
/** The idle measurement before each run. */
const IDLE_MS = 1000;

/** The agent's policy: payments audited, batch off in the kernel, everything else as without policies. */
const POLICY = {
  resources: false,
  default: { mode: 'events' },
  host: { mode: 'events' },
  rules: [
    { name: RULE_AUDITED, namespaces: [NS_AUDITED], mode: 'events' },
    { name: RULE_OFF, namespaces: [NS_OFF], mode: 'off' },
  ],
};

// ============================================================== the agent (--agent, compiled)

interface AgentReadyLine {
  ready: true;
  pid: number;
  phase: Phase;
  programs: number;
  mappedCgroups: number;
}

interface EmitCounts {
  /** Events of each pod's namespace that reached the end of the pipeline. */
  payments: number;
  batch: number;
  host: number;
  other: number;
  /** Pod events that left without a complete attribution (must be 0: both pods are in the API). */
  incomplete: number;
}

interface PolicyRowDelta {
  key: string;
  mode: string;
  kernel: { emitted: number; off: number; port: number; peer: number; failed: number };
  user: { events: number; summarized: number; filtered: number };
}

interface AgentFinalLine {
  phase: Phase;
  /** process.cpuUsage() from the mark to the end of the final drain. */
  cpuUserUs: number;
  cpuSystemUs: number;
  /** Records decoded and handed to the enricher (Capture's `delivered`): events that reached userspace. */
  delivered: number;
  decodeErrors: number;
  emitted: EmitCounts;
  /**
   * Events the enricher still holds at the end: other processes' accepts in cgroups that look like
   * containers not in the API stand-in (other pod simulations on the machine); never the bench's pods.
   */
  enricherPending: number;
  /** Garbage-collection pauses in the window: their total wall ms, and how many. */
  gcMs: number;
  gcs: number;
  kernel: Record<string, number>;
  programs: ProgramRun[];
  policy?: PolicyRowDelta[];
}

async function agentMain(a: {
  phase: Phase;
  kubeconfig: string;
  object: string;
  ringBytes: number;
  json: boolean;
  cgroupIds: bigint[];
}): Promise<void> {
  const loaded = await loadKubeConfig({ env: {}, kubeconfigPath: a.kubeconfig });
  if (!loaded.kubeConfig) throw new Error(`agent: kubeconfig: ${loaded.reason}`);
  const kube = new KubeMetadataSource({
    kubeConfig: loaded.kubeConfig,
    nodeName: NODE,
    log: silentLogger,
    backoff: { initialMs: 50, maxMs: 500 },
  });
  await kube.start();
  await until(() => kube.synced(), 'the pods and namespaces listed', 20_000, 20);

  const counts: EmitCounts = { payments: 0, batch: 0, host: 0, other: 0, incomplete: 0 };
  // --json: what `trace -o json` adds, one write per batch as runTrace does.
  const devNull = a.json ? openSync('/dev/null', 'w') : -1;
  const emit = (batch: AcceptEvent[]) => {
    let out = '';
    for (const ev of batch) {
      const ns = ev.pod?.namespace;
      if (ns === NS_AUDITED) counts.payments++;
      else if (ns === NS_OFF) counts.batch++;
      else if (ev.enrichment?.status === EnrichmentStatus.ENRICHMENT_STATUS_HOST) counts.host++;
      else counts.other++;
      if (ns && ev.enrichment?.status !== EnrichmentStatus.ENRICHMENT_STATUS_COMPLETE) counts.incomplete++;
      if (a.json) out += `${eventToJsonLine(ev)}\n`;
    }
    if (out) writeSync(devNull, out);
  };

  const probes = AcceptProbes.load({ ringBytes: a.ringBytes, includeEagain: false, log: silentLogger, objectPath: a.object });
  const engine =
    a.phase === 'policy'
      ? new PolicyEngine(parsePolicyConfig(POLICY, { source: 'bench', defaultAdminNamespace: DEFAULT_ADMIN_NAMESPACE }))
      : undefined;
  const pipeline = startPipeline({
    probes,
    kube: { source: kube, detail: 'bench' },
    nodeName: NODE,
    pollMs: 10,
    pendingDeadlineMs: 2000,
    emit,
    log: silentLogger,
    policy: engine ? { engine } : undefined,
  });
  const pol = pipeline.policy;
  if (pol) {
    // The controller maps the pods' cgroups to their slots once pods and namespaces are known.
    await until(
      () => pol.controller.status().kernelFiltering && a.cgroupIds.every((id) => pol.sync.isMapped(id, 2)),
      "the pods' cgroups mapped to their policy slots",
      10_000,
      20,
    );
  }

  const drainAll = () => {
    for (let got = pipeline.capture.drain(); got > 0; got = pipeline.capture.drain()) {}
  };
  // policyReportOf reads snapshots (PolicyStage.stats()): a baseline does not move with later accepts.
  const policyRows = (): PolicyRow[] => (pol ? policyReportOf(pol).rows : []);

  // Garbage-collection pauses (main thread, wall ms) between the mark and the final drain.
  let gcMs = 0;
  let gcs = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      gcs++;
    }
  }).observe({ entryTypes: ['gc'] });

  let cpu0 = process.cpuUsage();
  let stats0 = pipeline.capture.stats();
  let rows0: PolicyRow[] = [];

  const ready: AgentReadyLine = {
    ready: true,
    pid: process.pid,
    phase: a.phase,
    programs: probes.attachedPrograms(),
    mappedCgroups: pol?.sync.mappedCgroups() ?? 0,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);

  const mark = () => {
    drainAll();
    for (const k of Object.keys(counts) as (keyof EmitCounts)[]) counts[k] = 0;
    stats0 = pipeline.capture.stats();
    rows0 = policyRows();
    gcMs = 0;
    gcs = 0;
    cpu0 = process.cpuUsage();
    process.stdout.write(`${JSON.stringify({ marked: true })}\n`);
  };

  const finish = () => {
    // The storms have exited: every record they caused is in the ring. Take it all, then stop the clock.
    drainAll();
    const cpu = process.cpuUsage(cpu0);
    const stats = pipeline.capture.stats();
    const rows = policyRows();
    const policy = pol
      ? rows.map((r): PolicyRowDelta => {
          const b = rows0.find((x) => x.key === r.key);
          const k = (f: keyof PolicyRow['kernel']) => Number(r.kernel[f] - (b?.kernel[f] ?? 0n));
          const userFiltered = (x?: PolicyRow) => (x ? Object.values(x.user.filtered).reduce((s, n) => s + n, 0) : 0);
          return {
            key: r.key,
            mode: r.mode,
            kernel: { emitted: k('emitted'), off: k('off'), port: k('port'), peer: k('peer'), failed: k('failed') },
            user: {
              events: r.user.events - (b?.user.events ?? 0),
              summarized: r.user.summarized - (b?.user.summarized ?? 0),
              filtered: userFiltered(r) - userFiltered(b),
            },
          };
        })
      : undefined;
    const final: AgentFinalLine = {
      phase: a.phase,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      delivered: Number(stats.delivered - stats0.delivered),
      decodeErrors: Number(stats.decodeErrors - stats0.decodeErrors),
      emitted: { ...counts },
      enricherPending: pipeline.enricher.stats().pending,
      gcMs,
      gcs,
      kernel: kernelSince(stats.kernel, stats0.kernel),
      programs: programsSince(stats.programs, stats0.programs),
      policy,
    };
    probes.detach();
    pipeline.stop();
    probes.close();
    if (devNull >= 0) closeSync(devNull);
    void kube.stop();
    process.stdout.write(`${JSON.stringify(final)}\n`, () => process.exit(0));
  };

  createInterface({ input: process.stdin })
    .on('line', (line) => {
      const cmd = line.trim();
      if (cmd === 'mark') mark();
      else if (cmd === 'finish') finish();
      else if (cmd === 'cpu') {
        const c = process.cpuUsage();
        process.stdout.write(`${JSON.stringify({ cpuUs: c.user + c.system })}\n`);
      }
    })
    // The bench closed our stdin (it died): stop without a report.
    .on('close', () => process.exit(1));
}

// ============================================================== the bench (tsx)

const USAGE = `usage: npx tsx bench/policy.ts [options]   (root: BPF, cgroups, network namespaces)
  --payments N        accepts per measured storm in the audited pod (default 20000)
  --batch N           accepts per measured storm in the unaudited pod (default 180000)
  --warmup-percent P  warm-up storms right before each measurement, in % of the above (default 100)
  --rounds R          pairs of runs, alternating the order (none,policy / policy,none) (default 3)
  --json              the agent also writes every event as a JSON line to /dev/null (as \`trace -o json\`)
  --ring-mib M        the agent's ring buffer (default 64: a whole no-policy storm fits, nothing dropped)
  --storm-cpus LIST   CPUs of both storms (default 0: the agent has the other CPU); "all" = unpinned
  --clients C         connecting threads per storm (default 2)
  --timeout S         wall-clock bound per storm, seconds (default 60)
  --no-bpf-stats      leave kernel.bpf_stats_enabled alone (no in-kernel ns/accept)
  --max-noise P       run a round again when other work used more than P % of a CPU during it (default 25)
  --retries N         at most N such repeats per round (default 3); the last attempt is kept whatever its noise
  --out F             machine-readable results (default .bench/policy.json)
`;

interface Measured {
  phase: Phase;
  round: number;
  storms: { payments: StormResult; batch: StormResult };
  agent: AgentFinalLine;
  /** CPU of the agent process read from /proc (ticks) over the same window, µs: a cross-check. */
  agentProcCpuUs: number;
  noisePct: number;
  /** The agent's CPU while nothing is accepted, µs per second (measured before the warm-up). */
  idleUsPerS: number;
  /** Mark to final report, s: the window the agent's CPU is counted over. */
  windowS: number;
}

interface Row {
  phase: Phase;
  paymentsAccepts: number;
  batchAccepts: number;
  acceptsPerS: number;
  delivered: number;
  podEvents: { payments: number; batch: number };
  otherEvents: number;
  ringbufFull: number;
  cpuMs: number;
  cpuUsPerAccept: number;
  cpuUsPerDelivered: number;
  /** The agent's idle rate (no accepts), ms of CPU per second. */
  idleMsPerS: number;
  /** Agent CPU minus its idle rate over the same window, per accept: what the accepts themselves cost. */
  cpuUsPerAcceptAboveIdle: number;
  bpfNsPerAccept?: number;
  kernelOff: number;
  noisePct: number;
}

const accepts = (s: StormResult) => s.connections + s.acceptErrors;

function rowOf(m: Measured): Row {
  const a = m.agent;
  const pay = accepts(m.storms.payments);
  const bat = accepts(m.storms.batch);
  const cpuUs = a.cpuUserUs + a.cpuSystemUs;
  return {
    phase: m.phase,
    paymentsAccepts: pay,
    batchAccepts: bat,
    acceptsPerS: (pay + bat) / Math.max(m.storms.payments.elapsedS, m.storms.batch.elapsedS),
    delivered: a.delivered,
    podEvents: { payments: a.emitted.payments, batch: a.emitted.batch },
    otherEvents: a.emitted.host + a.emitted.other,
    ringbufFull: a.kernel.RINGBUF_FULL ?? 0,
    cpuMs: cpuUs / 1000,
    cpuUsPerAccept: cpuUs / (pay + bat),
    cpuUsPerDelivered: a.delivered ? cpuUs / a.delivered : Number.NaN,
    idleMsPerS: m.idleUsPerS / 1000,
    cpuUsPerAcceptAboveIdle: (cpuUs - m.idleUsPerS * m.windowS) / (pay + bat),
    // Per exit-program run: one per accept of the whole machine (the storms' and anyone else's).
    bpfNsPerAccept: bpfNsPerAccept(bpfCost(a.programs)),
    kernelOff: a.kernel.CGROUP_FILTERED ?? 0,
    noisePct: m.noisePct,
  };
}

const COLUMNS: Column<Row>[] = [
  ['pipeline', 10, (r) => LABEL[r.phase]],
  ['accepts pay+batch', 18, (r) => `${r.paymentsAccepts}+${r.batchAccepts}`],
  ['accepts/s', 10, (r) => fmt(r.acceptsPerS)],
  ['to userspace', 13, (r) => fmt(r.delivered)],
  ['pay/batch events', 17, (r) => `${r.podEvents.payments}/${r.podEvents.batch}`],
  ['other', 6, (r) => fmt(r.otherEvents)],
  ['rb full', 8, (r) => fmt(r.ringbufFull)],
  ['kernel off', 11, (r) => fmt(r.kernelOff)],
  ['agent CPU ms', 13, (r) => fmt(r.cpuMs, 1)],
  ['µs/accept', 10, (r) => fmt(r.cpuUsPerAccept, 3)],
  ['µs/event', 9, (r) => fmt(r.cpuUsPerDelivered, 2)],
  ['idle ms/s', 10, (r) => fmt(r.idleMsPerS, 1)],
  ['µs/accept-idle', 15, (r) => fmt(r.cpuUsPerAcceptAboveIdle, 3)],
  ['BPF ns/accept', 14, (r) => fmt(r.bpfNsPerAccept)],
  ['noise %', 7, (r) => fmt(r.noisePct)],
];

function table(rows: Row[]): string {
  return renderTable(COLUMNS, rows);
}

const isNumber = (v: number | undefined): v is number => v !== undefined && !Number.isNaN(v);

/** median [min..max], or '-' for none. */
const spreadText = (xs: number[], digits: number) => {
  const s = spread(xs);
  return s ? fmtSpread(s, digits) : '-';
};

/** Nothing silently lost: every accept is an event, or a count the kernel kept for the policy that dropped it. */
function checks(m: Measured): string[] {
  const a = m.agent;
  const pay = accepts(m.storms.payments);
  const bat = accepts(m.storms.batch);
  const bad: string[] = [];
  const expect = (what: string, got: number, want: number) => {
    if (got !== want) bad.push(`${LABEL[m.phase]} (round ${m.round}): ${what} = ${got}, expected ${want}`);
  };
  expect('payments events', a.emitted.payments, pay);
  expect('ring buffer full', a.kernel.RINGBUF_FULL ?? 0, 0);
  expect('decode errors', a.decodeErrors, 0);
  expect('incomplete pod attributions', a.emitted.incomplete, 0);
  if (m.phase === 'none') {
    expect('batch events', a.emitted.batch, bat);
    expect('kernel off (CGROUP_FILTERED)', a.kernel.CGROUP_FILTERED ?? 0, 0);
  } else {
    const row = (key: string) => a.policy?.find((r) => r.key === key);
    const off = row(`rule:${RULE_OFF}`);
    const on = row(`rule:${RULE_AUDITED}`);
    expect('batch events', a.emitted.batch, 0);
    expect(`kernel off count of rule:${RULE_OFF}`, off?.kernel.off ?? -1, bat);
    expect(`kernel emitted count of rule:${RULE_OFF}`, off?.kernel.emitted ?? -1, 0);
    expect(`kernel emitted count of rule:${RULE_AUDITED}`, on?.kernel.emitted ?? -1, pay);
    expect(`events of rule:${RULE_AUDITED}`, on?.user.events ?? -1, pay);
    const userFiltered = (a.policy ?? []).reduce((s, r) => s + r.user.filtered, 0);
    expect('accepts filtered in userspace (kernel misses)', userFiltered, 0);
    // The machine-wide off counter is this rule's alone: nothing else was switched off.
    expect('kernel off (CGROUP_FILTERED) = off count of the rule', a.kernel.CGROUP_FILTERED ?? 0, off?.kernel.off ?? -1);
  }
  return bad;
}

async function benchMain(): Promise<number> {
  const { values: args } = parseArgs({
    options: {
      payments: { type: 'string', default: '20000' },
      batch: { type: 'string', default: '180000' },
      'warmup-percent': { type: 'string', default: '100' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
      'ring-mib': { type: 'string', default: '64' },
      'storm-cpus': { type: 'string', default: '0' },
      clients: { type: 'string', default: '2' },
      timeout: { type: 'string', default: '60' },
      'no-bpf-stats': { type: 'boolean', default: false },
      'max-noise': { type: 'string', default: '25' },
      retries: { type: 'string', default: '3' },
      out: { type: 'string', default: join(ROOT, '.bench/policy.json') },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { fail, int } = usageErrors('bench/policy', USAGE);
  const ringMib = int('ring-mib', args['ring-mib']);
  if ((ringMib & (ringMib - 1)) !== 0) fail(`--ring-mib must be a power of two, got ${ringMib}`);
  const opts = {
    payments: int('payments', args.payments),
    batch: int('batch', args.batch),
    warmupPercent: int('warmup-percent', args['warmup-percent'], 0),
    rounds: int('rounds', args.rounds),
    json: args.json ?? false,
    ringBytes: ringMib << 20,
    stormCpus: args['storm-cpus'] ?? '0',
    clients: int('clients', args.clients),
    timeoutS: int('timeout', args.timeout),
    bpfStats: !args['no-bpf-stats'],
    maxNoise: int('max-noise', args['max-noise'], 0),
    retries: int('retries', args.retries, 0),
    out: resolve(args.out ?? join(ROOT, '.bench/policy.json')),
  };
  if (process.getuid?.() !== 0) throw new Error('bench/policy loads eBPF programs, makes cgroups and netns: run it as root');

  buildStorm();
  const agentJs = buildAgent();

  // The cluster: two namespaces, one pod each, on this node.
  api = await KubeApiServer.create();
  api.addNamespace(NS_AUDITED, { team: 'pay' });
  api.addNamespace(NS_OFF, { team: 'data' });
  sim = new PodSim();
  const pods = { payments: sim.systemdContainerdPod(), batch: sim.systemdContainerdPod() };
  const podSpec = (ns: string, name: string, app: string, p: FakePod) =>
    makePod({
      name,
      namespace: ns,
      uid: p.uid,
      nodeName: NODE,
      labels: { app },
      ownerReferences: [ownerRef('ReplicaSet', name.replace(/-[^-]+$/, ''))],
      containers: [{ name: app, image: `registry.example/${app}:1`, id: p.cid, runtime: 'containerd' }],
      qosClass: 'Burstable',
      podIP: p.netns.ip,
    });
  api.addPod(podSpec(NS_AUDITED, 'checkout-7f9c8d6b5-q2w3e', 'checkout', pods.payments));
  api.addPod(podSpec(NS_OFF, 'etl-5c6d7e8f9-a1s2d', 'etl', pods.batch));
  const kubeconfig = api.writeKubeconfig(tempDir('doorwatch-bench-policy-'));
  const cgroupIds = [pods.payments.cgroupDir, pods.batch.cgroupDir].map((d) => statSync(d, { bigint: true }).ino);

  const machine = machineInfo();
  process.stderr.write(
    `bench/policy: ${opts.payments} accepts in ${NS_AUDITED} (audited) + ${opts.batch} in ${NS_OFF} (off) per run, ` +
      `${opts.rounds} round(s); storms on CPU(s) ${opts.stormCpus}; ${machine.cpus} CPUs, kernel ${machine.kernel}; ` +
      `pods' netns ${pods.payments.netns.name}, ${pods.batch.netns.name}\n`,
  );

  /** Both storms at once, each in its pod, released together once both listen and `beforeGo` is done. */
  const storms = async (
    n: { payments: number; batch: number },
    beforeGo?: () => Promise<void>,
  ): Promise<{ payments: StormResult; batch: StormResult }> => {
    const started = { payments: stormIn(pods.payments, n.payments, opts), batch: stormIn(pods.batch, n.batch, opts) };
    try {
      await Promise.all([started.payments.ready, started.batch.ready]);
      await beforeGo?.();
      started.payments.go();
      started.batch.go();
      const [payments, batch] = await Promise.all([started.payments.result(), started.batch.result()]);
      for (const [what, r] of [
        [NS_AUDITED, payments],
        [NS_OFF, batch],
      ] as const) {
        if (r.timedOut)
          throw new Error(`the ${what} storm timed out after ${r.elapsedS.toFixed(1)} s (${r.connections} accepted)`);
      }
      return { payments, batch };
    } finally {
      started.payments.kill();
      started.batch.kill();
    }
  };

  const warm = (n: number) => Math.max(1, Math.round((n * opts.warmupPercent) / 100));
  const runPhase = async (phase: Phase, round: number): Promise<Measured> => {
    const agent = startAgent(agentJs, { phase, kubeconfig, ringBytes: opts.ringBytes, json: opts.json, cgroupIds });
    try {
      await agent.ready;
      const quiet = await quiesce();
      if (quiet > 10) process.stderr.write(`bench/policy: warning: the machine is busy (${quiet.toFixed(0)} % of a CPU)\n`);
      // What the agent costs with no accepts at all (timers: ring poll, enricher tick, policy reconcile).
      const idle0 = await agent.cpu();
      const i0 = process.hrtime.bigint();
      await sleep(IDLE_MS);
      const idleUsPerS = ((await agent.cpu()) - idle0) / (Number(process.hrtime.bigint() - i0) / 1e9);
      // JIT, caches and V8's young generation sized for the traffic (the steady state of a long-running
      // agent), then the measured storm right after: an idle gap lets V8 shrink the young generation again.
      if (opts.warmupPercent > 0) await storms({ payments: warm(opts.payments), batch: warm(opts.batch) });
      let win: ReturnType<typeof cpuWindow> | undefined;
      const s = await storms({ payments: opts.payments, batch: opts.batch }, async () => {
        await agent.mark();
        win = cpuWindow(agent.pid);
      });
      const { wallUs, busyUs, pidUs: agentProcCpuUs } = win!.sample();
      const final = await agent.finish();
      const stormCpu = [s.payments, s.batch].reduce((x, r) => x + r.cpuUserUs + r.cpuSysUs, 0);
      const noise = noisePct(busyUs, stormCpu + agentProcCpuUs, wallUs);
      const windowS = win!.sample().wallUs / 1e6;
      return { phase, round, storms: s, agent: final, agentProcCpuUs, noisePct: noise, idleUsPerS, windowS };
    } finally {
      agent.kill();
    }
  };

  const runs: Measured[] = [];
  /** Rounds run again because other work on the machine overlapped them (kept in the JSON, not in the medians). */
  const noisy: Measured[] = [];
  const body = async () => {
    // Untraced warm-up: page cache, the network namespaces' first connections.
    await storms({ payments: warm(opts.payments), batch: warm(opts.batch) });
    for (let r = 1; r <= opts.rounds; r++) {
      const order: Phase[] = r % 2 ? ['none', 'policy'] : ['policy', 'none'];
      for (let attempt = 0; ; attempt++) {
        const pair: Measured[] = [];
        for (const phase of order) {
          process.stderr.write(`bench/policy: round ${r}/${opts.rounds}: ${LABEL[phase]}...\n`);
          pair.push(await runPhase(phase, r));
        }
        const noise = Math.max(...pair.map((m) => m.noisePct));
        if (noise > opts.maxNoise && attempt < opts.retries) {
          process.stderr.write(
            `bench/policy: round ${r}: other work used ${noise.toFixed(0)} % of a CPU during it ` +
              `(> --max-noise ${opts.maxNoise}); running it again\n`,
          );
          noisy.push(...pair);
          continue;
        }
        runs.push(...pair);
        const rows = pair.map(rowOf).sort((a, b) => PHASES.indexOf(a.phase) - PHASES.indexOf(b.phase));
        process.stdout.write(`\nround ${r}/${opts.rounds}\n${table(rows)}\n`);
        break;
      }
    }
  };
  if (opts.bpfStats) await withBpfStats(body);
  else await body();

  // Over rounds: medians, and the ratios policy / no policy.
  const rows = runs.map(rowOf);
  /** median [min..max] of one column over the rounds of a phase. */
  const med = (p: Phase, f: (r: Row) => number | undefined, digits: number) =>
    spreadText(
      rows
        .filter((r) => r.phase === p)
        .map(f)
        .filter(isNumber),
      digits,
    );
  const rowAt = (p: Phase, round: number) => rows[runs.findIndex((m) => m.phase === p && m.round === round)];
  /** policy / no policy within each round (same machine state), one ratio per round. */
  const ratios = (f: (r: Row) => number | undefined) => {
    const out: number[] = [];
    for (let r = 1; r <= opts.rounds; r++) {
      const a = rowAt('policy', r);
      const b = rowAt('none', r);
      const va = a && f(a);
      const vb = b && f(b);
      if (isNumber(va) && isNumber(vb) && vb > 0) out.push(va / vb);
    }
    return out;
  };
  const again = noisy.length ? ` (${noisy.length / 2} noisy attempt(s) discarded and run again)` : '';
  const lines = [`\nover ${opts.rounds} round(s)${again}: median [min..max]`];
  for (const p of PHASES) {
    lines.push(
      `  ${LABEL[p].padEnd(10)} to userspace ${med(p, (r) => r.delivered, 0)}, ` +
        `agent CPU ${med(p, (r) => r.cpuUsPerAccept, 3)} µs/accept (${med(p, (r) => r.cpuUsPerDelivered, 2)} µs/event; ` +
        `${med(p, (r) => r.cpuUsPerAcceptAboveIdle, 3)} µs/accept above its idle ${med(p, (r) => r.idleMsPerS, 1)} ms/s), ` +
        `BPF ${med(p, (r) => r.bpfNsPerAccept, 0)} ns/accept, accepts/s ${med(p, (r) => r.acceptsPerS, 0)}`,
    );
  }
  const ratio = {
    delivered: ratios((r) => r.delivered),
    cpuPerAccept: ratios((r) => r.cpuUsPerAccept),
    cpuPerAcceptAboveIdle: ratios((r) => r.cpuUsPerAcceptAboveIdle),
    bpfPerAccept: ratios((r) => r.bpfNsPerAccept),
  };
  const share = opts.payments / (opts.payments + opts.batch);
  lines.push(
    `policy / no policy (per round, then median): events to userspace ${spreadText(ratio.delivered, 3)} ` +
      `(audited share of the accepts: ${share.toFixed(3)}); agent CPU per accept ${spreadText(ratio.cpuPerAccept, 3)} ` +
      `(above idle: ${spreadText(ratio.cpuPerAcceptAboveIdle, 3)}); in-kernel BPF time per accept ` +
      `${ratio.bpfPerAccept.length ? spreadText(ratio.bpfPerAccept, 3) : '-'}`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);

  const problems = runs.flatMap(checks);
  process.stdout.write(
    problems.length
      ? `\nFAIL: something was lost or misattributed:\n  ${problems.join('\n  ')}\n`
      : `\nchecks: every payments accept reached userspace as an event, every batch accept was counted off in the kernel ` +
          `(rule:${RULE_OFF}) and none reached userspace, no ring buffer loss, nothing decided in userspace\n`,
  );

  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(
    opts.out,
    `${JSON.stringify({ date: new Date().toISOString(), machine, options: opts, runs, rows, ratio, problems, noisy }, null, 2)}\n`,
  );
  process.stderr.write(`bench/policy: wrote ${relative(process.cwd(), opts.out) || opts.out}\n`);
  return problems.length ? 1 : 0;
}

// ---------------------------------------------------------------- processes

/** Its own tsc output and incremental state: independent of bench/run.ts's build/bench-js. */
const AGENT_BUILD = join(ROOT, 'build/bench-policy');

let api: KubeApiServer | undefined;
let sim: PodSim | undefined;

/** This file compiled by tsc (bench/tsconfig.json's settings, this file as the root): returns the .js to run. */
function buildAgent(): string {
  mkdirSync(AGENT_BUILD, { recursive: true });
  const tsconfig = join(AGENT_BUILD, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    `${JSON.stringify(
      {
        extends: relative(AGENT_BUILD, join(ROOT, 'bench/tsconfig.json')),
        compilerOptions: { outDir: 'js', tsBuildInfoFile: 'js/.tsbuildinfo' },
        files: [relative(AGENT_BUILD, join(ROOT, 'bench/policy.ts'))],
      },
      null,
      2,
    )}\n`,
  );
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', tsconfig], { stdio: 'inherit' });
  return join(AGENT_BUILD, 'js/bench/policy.js');
}

/** bench/storm.c inside a pod: moved into its cgroup, then into its network namespace (as PodSim.startServer does). */
function stormIn(pod: FakePod, connections: number, o: { clients: number; stormCpus: string; timeoutS: number }) {
  return startStorm({ ...o, connections }, `storm in ${pod.netns.name}`, [
    'sh',
    '-c',
    `echo $$ > ${pod.cgroupDir}/cgroup.procs && exec ip netns exec ${pod.netns.name} "$0" "$@"`,
  ]);
}

function startAgent(js: string, a: { phase: Phase; kubeconfig: string; ringBytes: number; json: boolean; cgroupIds: bigint[] }) {
  const agent = startNodeAgent(
    js,
    [
      '--agent',
      ...['--phase', a.phase, '--kubeconfig', a.kubeconfig, '--object', BPF_OBJECT],
      ...['--ring-bytes', String(a.ringBytes), '--cgroup-ids', a.cgroupIds.join(',')],
      ...(a.json ? ['--json'] : []),
    ],
    `agent (${a.phase})`,
  );
  const command = <T>(cmd: string, timeoutMs: number) => {
    agent.child.stdin!.write(`${cmd}\n`);
    return agent.nextJson<T>(timeoutMs);
  };
  return {
    pid: agent.pid,
    ready: agent.nextJson<AgentReadyLine>(60_000),
    async mark() {
      await command<{ marked: true }>('mark', 60_000);
    },
    /** The agent's total CPU so far, µs (process.cpuUsage()). */
    async cpu(): Promise<number> {
      return (await command<{ cpuUs: number }>('cpu', 10_000)).cpuUs;
    },
    finish: () => command<AgentFinalLine>('finish', 120_000),
    kill: () => kill(agent.child),
  };
}

/** Everything this run made, undone: the processes it started (by handle), the pods' cgroups and netns, the sysctl. */
function cleanup(): void {
  killChildren();
  // A cgroup can only be removed once its processes are gone (PodSim retries briefly).
  sim?.cleanup();
  sim = undefined;
  restoreBpfStats();
}

// ---------------------------------------------------------------- entry

if (process.argv.includes('--agent')) {
  const { values } = parseArgs({
    options: {
      agent: { type: 'boolean' },
      phase: { type: 'string' },
      kubeconfig: { type: 'string' },
      object: { type: 'string' },
      'ring-bytes': { type: 'string' },
      'cgroup-ids': { type: 'string', default: '' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!PHASES.includes(values.phase as Phase)) throw new Error(`--phase must be one of ${PHASES.join(', ')}`);
  await agentMain({
    phase: values.phase as Phase,
    kubeconfig: values.kubeconfig!,
    object: values.object!,
    ringBytes: Number(values['ring-bytes']),
    json: values.json ?? false,
    cgroupIds: (values['cgroup-ids'] ?? '').split(',').filter(Boolean).map(BigInt),
  });
} else {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanup();
      process.exit(130);
    });
  }
  try {
    process.exitCode = await benchMain();
  } catch (err) {
    process.stderr.write(`bench/policy: ${(err as Error).stack ?? (err as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    cleanup();
    await api?.close();
  }
}
