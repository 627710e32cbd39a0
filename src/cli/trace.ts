import { AcceptProbes } from '../bpf/accept-probes.js';
import type { CaptureStats } from '../capture/capture.js';
import { ConfigError } from '../config/errors.js';
import type { EnricherStats } from '../enrich/enricher.js';
import { JsonWriter, writeEventJson } from '../formats/native-json.js';
import { writeEventTracee } from '../formats/tracee.js';
import { type AcceptEvent, EventKind } from '../gen/doorwatch/v1/event.js';
import { isListenerKind } from '../listeners/event.js';
import type { Logger } from '../log/logger.js';
import { parsePolicyConfig } from '../policy/config.js';
import { PolicyEngine } from '../policy/engine.js';
import { DEFAULT_ADMIN_NAMESPACE, loadPolicyFile } from '../policy/file.js';
import { type PolicyReport, policyLines, policyReportOf } from '../policy/report.js';
import { startKube, startPipeline } from './pipeline.js';
import { tableHeader, tableRow } from './table.js';
import { compileFilter, type TraceFilter } from './trace-filter.js';

/** `doorwatch trace`: watch every accept on this host, live. */

/** Bytes of JSON lines per stdout write (a pipe's default capacity is 64 KiB). */
const OUT_CHUNK = 64 * 1024;
/** Atomics.wait on this is a 1 ms sleep (a full stdout pipe). */
const pause = new Int32Array(new SharedArrayBuffer(4));

export interface TraceOptions {
  output: 'table' | 'json' | 'tracee';
  filter: TraceFilter;
  includeEagain: boolean;
  durationMs?: number;
  ringBytes: number;
  pollMs: number;
  nodeName: string;
  /** Kubernetes metadata: off (--no-kube), or discovered (flag, in-cluster, KUBECONFIG, ~/.kube/config). */
  kube: {
    enabled: boolean;
    kubeconfigPath?: string;
    env: Readonly<Record<string, string | undefined>>;
    labelAllowList?: string[];
    annotationAllowList?: string[];
  };
  /** Hold an event at most this long for its pod to appear in the API. */
  pendingDeadlineMs: number;
  /** Audit policy file (docs/policy.md): the agent's engine, run locally. */
  policyFile?: string;
}

export interface TraceIO {
  stdout: NodeJS.WritableStream;
  /**
   * How event lines reach stdout: returns the bytes written (a short write is
   * continued). main() passes fs.writeSync on fd 1: stdout is synchronous on
   * Linux anyway, and JSON lines are written as bytes from one reused Buffer
   * in pieces of at most OUT_CHUNK, so no per-batch string or Buffer is made
   * (their memory kept the garbage collector busy enough to overflow the ring
   * in a storm).
   */
  writeOut?: (chunk: Uint8Array) => number;
  stderr: NodeJS.WritableStream;
  log: Logger;
  /** Resolves when the user asks to stop (SIGINT/SIGTERM). */
  stopSignal: Promise<string>;
}

export interface TraceResult {
  shown: number;
  captured: bigint;
  stats: CaptureStats;
  enrichment: EnricherStats;
  policy?: PolicyReport;
}

/**
 * The engine `trace` runs: a policy file, or `--namespace` compiled to one
 * (audit those namespaces, nothing else — decided in the kernel), or none.
 */
export function tracePolicy(o: Pick<TraceOptions, 'policyFile' | 'filter'>): PolicyEngine | undefined {
  if (o.policyFile) {
    const f = loadPolicyFile(o.policyFile);
    if (f.rejected.length)
      throw new ConfigError(
        o.policyFile,
        f.rejected.flatMap((r) => r.problems.map((p) => `AcceptAuditPolicy ${r.namespace}/${r.name}: ${p}`)),
      );
    const engine = new PolicyEngine(f.config);
    engine.setResources(f.resources);
    return engine;
  }
  const ns = o.filter.namespaces;
  if (!ns?.length) return undefined;
  return new PolicyEngine(
    parsePolicyConfig(
      {
        resources: false,
        default: { mode: 'off' },
        host: { mode: 'off' },
        rules: [{ name: '--namespace', namespaces: ns, mode: 'events' }],
      },
      { source: '--namespace', defaultAdminNamespace: DEFAULT_ADMIN_NAMESPACE },
    ),
  );
}

/** What the display did with the records the pipeline emitted (summaries stand for several accepts). */
export class DisplayCounts {
  /** Records written: accept events and summary records. */
  shown = 0;
  /** Of those, summary records, and the accepts they fold. */
  summaries = 0;
  foldedShown = 0n;
  /** Of those, listener records (listen(2), a listener closed: not accepts). */
  listeners = 0;
  /** Accepts hidden by the display filters: accept events, and the accepts of hidden summary records. */
  hidden = 0n;

  /** Counts one record; `kept`: it passed the display filters. */
  add(ev: AcceptEvent, kept: boolean): void {
    const folded = ev.kind === EventKind.EVENT_KIND_SUMMARY ? (ev.summary?.count ?? 0n) : 0n;
    if (!kept) {
      this.hidden += folded || 1n;
      return;
    }
    this.shown++;
    if (isListenerKind(ev.kind)) this.listeners++;
    if (ev.kind === EventKind.EVENT_KIND_SUMMARY) {
      this.summaries++;
      this.foldedShown += folded;
    }
  }
}

const plural = (n: number | bigint, one: string, many: string) => `${n} ${n === 1 || n === 1n ? one : many}`;

/**
 * "27 shown of 36 captured (18 accepts as events, 9 summary records folding 18 accepts; 0 filtered out by
 * display filters)": captured counts kernel records (accepts, listen(2)s), shown counts records written, and
 * every captured one is in one of the parts — an event, folded in a summary record, a listener record,
 * filtered by policy in userspace, or hidden by a display filter.
 */
export function shownLine(d: DisplayCounts, captured: bigint, policyFiltered: number): string {
  const parts: string[] = [];
  if (d.summaries || d.listeners || policyFiltered) {
    parts.push(`${plural(d.shown - d.summaries - d.listeners, 'accept', 'accepts')} as events`);
    if (d.summaries)
      parts.push(
        `${plural(d.summaries, 'summary record', 'summary records')} folding ${plural(d.foldedShown, 'accept', 'accepts')}`,
      );
    if (d.listeners) parts.push(plural(d.listeners, 'listener record', 'listener records'));
    if (policyFiltered) parts.push(`${policyFiltered} filtered by policy in userspace`);
  }
  const display = `${d.hidden} filtered out by display filters`;
  return `doorwatch trace: ${d.shown} shown of ${captured} captured (${parts.length ? `${parts.join(', ')}; ` : ''}${display})`;
}

export function formatSummary(d: DisplayCounts, s: CaptureStats, e?: EnricherStats, p?: PolicyReport): string {
  const k = s.kernel;
  const recursion = s.programs.reduce((a, p) => a + p.recursionMisses, 0n);
  const lost = k.RINGBUF_FULL + s.decodeErrors + recursion;
  const policyFiltered = (p?.rows ?? []).reduce((n, r) => n + Object.values(r.user.filtered).reduce((a, b) => a + b, 0), 0);
  const lines = [
    shownLine(d, s.delivered, policyFiltered),
    `  kernel: emitted=${k.EMITTED} exit_without_enter=${k.EXIT_NO_ENTER} eagain_skipped=${k.EAGAIN_SKIPPED} ` +
      `io_uring=${k.IO_URING} socket_unresolved=${k.SOCK_UNRESOLVED} enter_map_full=${k.ENTER_MAP_FULL} ` +
      `cgroup_filtered=${k.CGROUP_FILTERED} port_filtered=${k.PORT_FILTERED} peer_filtered=${k.PEER_FILTERED} ` +
      `failed_filtered=${k.FAILED_FILTERED}`,
    `  lost: ${lost} (ring_buffer_full=${k.RINGBUF_FULL} decode_errors=${s.decodeErrors} bpf_recursion_misses=${recursion})`,
  ];
  if (e) {
    lines.push(
      `  enrichment: complete=${e.complete} partial=${e.partial} host=${e.host} held_then_expired=${e.pendingExpired} ` +
        `queue_overflow=${e.pendingOverflow} proc_fallback=${e.procFallback}`,
    );
  }
  if (p) lines.push(...policyLines(p));
  return `${lines.join('\n')}\n`;
}

export async function runTrace(o: TraceOptions, io: TraceIO): Promise<TraceResult> {
  const keep = compileFilter(o.filter);
  const display = new DisplayCounts();
  let outputBroken = false;
  io.stdout.on('error', () => {
    outputBroken = true; // EPIPE (`| head`): stop writing, still shut down cleanly.
  });

  const engine = tracePolicy(o);
  const kube = await startKube(o, io.log);
  const probes = AcceptProbes.load({ ringBytes: o.ringBytes, includeEagain: o.includeEagain, log: io.log });
  const withPods = kube.source !== undefined;
  if (o.output === 'table') io.stdout.write(`${tableHeader(withPods)}\n`);

  // JSON lines are appended to one Buffer and written whenever it holds OUT_CHUNK bytes, and at the end of
  // every batch: memory stays flat however large a batch is.
  const out = new JsonWriter(OUT_CHUNK + 64 * 1024);
  const flush = () => {
    const n = out.pos;
    out.reset();
    if (!n || outputBroken) return;
    if (!io.writeOut) {
      io.stdout.write(Buffer.from(out.buf.subarray(0, n))); // a copy: the writer's Buffer is reused
      return;
    }
    for (let off = 0; off < n; ) {
      try {
        off += io.writeOut(out.buf.subarray(off, n));
      } catch (err) {
        // Node makes a stdout pipe non-blocking: a full pipe is EAGAIN, so wait for the reader
        // (as a blocking write would; the ring buffer meanwhile fills, and what it drops is counted).
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          Atomics.wait(pause, 0, 0, 1);
          continue;
        }
        outputBroken = true; // EPIPE (`| head`): stop writing, still shut down cleanly.
        return;
      }
    }
  };
  const show = (batch: AcceptEvent[]) => {
    if (o.output !== 'table') {
      const write = o.output === 'tracee' ? writeEventTracee : writeEventJson;
      for (const ev of batch) {
        const kept = keep(ev);
        display.add(ev, kept);
        if (!kept) continue;
        write(out, ev);
        out.byte(0x0a);
        if (out.pos >= OUT_CHUNK) flush();
      }
      flush();
      return;
    }
    let text = '';
    for (const ev of batch) {
      const kept = keep(ev);
      display.add(ev, kept);
      if (!kept) continue;
      text += `${tableRow(ev, withPods)}\n`;
    }
    if (text && !outputBroken) io.stdout.write(text);
  };
  const { capture, enricher, policy, stop } = startPipeline({
    probes,
    kube,
    nodeName: o.nodeName,
    pollMs: o.pollMs,
    pendingDeadlineMs: o.pendingDeadlineMs,
    emit: show,
    log: io.log,
    policy: engine ? { engine } : undefined,
  });
  io.log.info(
    { ioUring: probes.ioUring, programs: probes.attachedPrograms(), kubernetes: kube.detail },
    'tracing accepts; Ctrl-C to stop',
  );

  let timer: NodeJS.Timeout | undefined;
  const stops: Promise<string>[] = [io.stopSignal];
  if (o.durationMs !== undefined) {
    const ms = o.durationMs;
    stops.push(
      new Promise((r) => {
        timer = setTimeout(() => r('duration'), ms);
      }),
    );
  }
  const why = await Promise.race(stops);
  if (timer) clearTimeout(timer);

  // Detach first so nothing new arrives, then take what the ring still holds.
  probes.detach();
  stop(); // drains the ring, releases held events (partial): nothing captured is dropped
  const stats = capture.stats();
  const enrichment = enricher.stats();
  const policyReport = policy ? policyReportOf(policy) : undefined;
  probes.close();
  await kube.source?.stop();
  io.log.debug({ reason: why }, 'stopped');
  io.stderr.write(formatSummary(display, stats, enrichment, policyReport));
  return { shown: display.shown, captured: stats.delivered, stats, enrichment, policy: policyReport };
}
